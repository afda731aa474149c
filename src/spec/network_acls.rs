//! The `[network_acls.NAME]` tables: a stateless firewall per subnet tier, numbered allow/deny entries for each
//! direction.

use std::collections::BTreeMap;

use ipnet::Ipv4Net;
use serde::Deserialize;
use toml::Spanned;

use super::validate::{Checker, Shape, in_file_order, key_segment};
use super::{PortRange, Protocol, Tier};

#[derive(Debug, Clone)]
pub struct NetworkAcl {
    pub name: String,
    pub tier: Tier,
    pub ingress: Vec<NaclRule>,
    pub egress: Vec<NaclRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaclRule {
    pub number: i32,
    pub protocol: Protocol,
    pub ports: Option<PortRange>,
    pub cidr: Ipv4Net,
    pub allow: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetworkAcl {
    tier: Spanned<String>,
    #[serde(default)]
    ingress: Vec<Spanned<RawNaclRule>>,
    #[serde(default)]
    egress: Vec<Spanned<RawNaclRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNaclRule {
    rule: Spanned<i64>,
    protocol: Spanned<String>,
    ports: Option<Spanned<toml::Value>>,
    cidr: Spanned<String>,
    action: Spanned<String>,
}

/// One `[network_acls.NAME]`'s keys and its rules', for finding every unknown key at once.
pub(super) fn shape() -> Shape {
    let rules = || Shape::each(Shape::table::<RawNaclRule>(vec![]));
    Shape::table::<RawNetworkAcl>(vec![("ingress", rules()), ("egress", rules())])
}

/// Every ACL, sorted by name. Each tier may be claimed by one ACL (a route table claiming it too is fine).
pub(super) fn check(cx: &mut Checker, raw: BTreeMap<Spanned<String>, Spanned<RawNetworkAcl>>) -> Vec<NetworkAcl> {
    let mut tiers = BTreeMap::new();
    let mut acls: Vec<NetworkAcl> =
        in_file_order(raw).into_iter().map(|(k, v)| network_acl(cx, k, v.into_inner(), &mut tiers)).collect();
    acls.sort_by(|a, b| a.name.cmp(&b.name));
    acls
}

fn network_acl(
    cx: &mut Checker,
    name: Spanned<String>,
    raw: RawNetworkAcl,
    tiers: &mut BTreeMap<Tier, String>,
) -> NetworkAcl {
    let field = format!("network_acls.{}", key_segment(name.get_ref()));
    cx.ident(&name, &field, false);
    let tier = cx.tier(&raw.tier, &format!("{field}.tier"), tiers, &field, "network ACL");
    let ingress = rules(cx, &raw.ingress, &format!("{field}.ingress"));
    let egress = rules(cx, &raw.egress, &format!("{field}.egress"));
    // An invalid tier is already reported, so the stack is rejected and the placeholder is never used.
    NetworkAcl { name: name.into_inner(), tier: tier.unwrap_or(Tier::Public), ingress, egress }
}

/// One direction's entries; rule numbers are unique within a direction (ingress 100 and egress 100 coexist).
fn rules(cx: &mut Checker, raw: &[Spanned<RawNaclRule>], field: &str) -> Vec<NaclRule> {
    let mut rules: Vec<NaclRule> = Vec::new();
    let mut numbers = BTreeMap::new();
    for (i, rule) in raw.iter().enumerate() {
        let rfield = format!("{field}[{i}]");
        let span = rule.span();
        let rule = rule.get_ref();
        let n = *rule.rule.get_ref();
        let number = if !(1..=32766).contains(&n) {
            cx.err(
                rule.rule.span(),
                format!("{rfield}.rule"),
                format!("rule number {n} is out of range; AWS allows 1 to 32766 (32767 is the built-in deny-all)"),
            );
            None
        } else if let Some(prev) = numbers.get(&n) {
            cx.err(
                rule.rule.span(),
                format!("{rfield}.rule"),
                format!("rule number {n} is already used by {prev}; numbers must be unique per direction"),
            );
            None
        } else {
            numbers.insert(n, rfield.clone());
            Some(n as i32)
        };
        let protocol = cx.protocol(&rule.protocol, &format!("{rfield}.protocol"));
        let ports = cx.ports(protocol, rule.ports.as_ref(), span.clone(), &rfield);
        let cidr = cx.cidr(&rule.cidr, &format!("{rfield}.cidr"));
        let allow = match rule.action.get_ref().as_str() {
            "allow" => Some(true),
            "deny" => Some(false),
            other => {
                cx.err(
                    rule.action.span(),
                    format!("{rfield}.action"),
                    format!("unknown action {other:?}; valid: \"allow\", \"deny\""),
                );
                None
            }
        };
        if let (Some(number), Some(protocol), Some(cidr), Some(allow)) = (number, protocol, cidr, allow)
            && (!protocol.has_ports() || ports.is_some())
        {
            rules.push(NaclRule { number, protocol, ports, cidr, allow });
        }
    }
    rules
}
