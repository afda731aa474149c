//! The `[security_groups.NAME]` tables: one group per tier of servers, with ingress and egress rules whose peer
//! is a CIDR block or another group of this stack.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use serde::Deserialize;
use toml::Spanned;

use super::validate::{Checker, Shape, in_file_order, key_segment};
use super::{PortRange, Protocol};

#[derive(Debug, Clone)]
pub struct SecurityGroup {
    pub name: String,
    pub description: String,
    pub ingress: Vec<SgRule>,
    /// Already expanded: an omitted `egress` means AWS's default allow-all rule.
    pub egress: Vec<SgRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SgRule {
    pub protocol: Protocol,
    pub ports: Option<PortRange>,
    pub peer: Peer,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    Cidr(Ipv4Net),
    /// Another security group of this stack, by name.
    Group(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSecurityGroup {
    description: Option<Spanned<String>>,
    #[serde(default)]
    ingress: Vec<Spanned<RawSgRule>>,
    /// `None` keeps AWS's default allow-all egress; `Some([])` removes it.
    egress: Option<Vec<Spanned<RawSgRule>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSgRule {
    protocol: Spanned<String>,
    /// An integer (`80`) or an inclusive range string (`"1024-65535"`); absent for `all` and `icmp`.
    ports: Option<Spanned<toml::Value>>,
    cidr: Option<Spanned<String>>,
    security_group: Option<Spanned<String>>,
}

/// One `[security_groups.NAME]`'s keys and its rules', for finding every unknown key at once.
pub(super) fn shape() -> Shape {
    let rules = || Shape::each(Shape::table::<RawSgRule>(vec![]));
    Shape::table::<RawSecurityGroup>(vec![("ingress", rules()), ("egress", rules())])
}

/// Every group, sorted by name. `stack` is the stack's name, for default descriptions.
pub(super) fn check(
    cx: &mut Checker,
    raw: BTreeMap<Spanned<String>, Spanned<RawSecurityGroup>>,
    stack: &str,
) -> Vec<SecurityGroup> {
    // Collected before any group is checked: a rule may name a group defined further down the file.
    let names: BTreeSet<String> = raw.keys().map(|k| k.get_ref().clone()).collect();
    let mut groups: Vec<SecurityGroup> =
        in_file_order(raw).into_iter().map(|(k, v)| security_group(cx, stack, k, v.into_inner(), &names)).collect();
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    groups
}

fn security_group(
    cx: &mut Checker,
    stack: &str,
    name: Spanned<String>,
    raw: RawSecurityGroup,
    groups: &BTreeSet<String>,
) -> SecurityGroup {
    let field = format!("security_groups.{}", key_segment(name.get_ref()));
    cx.ident(&name, &field, false);
    let name = name.into_inner();
    let description = match &raw.description {
        None => format!("{name} tier of webscale stack {stack}"),
        Some(d) => description(cx, d, &format!("{field}.description")),
    };
    let ingress = rules(cx, &raw.ingress, &format!("{field}.ingress"), groups);
    let egress = match &raw.egress {
        // What AWS gives a new group: all traffic to anywhere.
        None => vec![SgRule { protocol: Protocol::All, ports: None, peer: Peer::Cidr(Ipv4Net::default()) }],
        Some(written) => rules(cx, written, &format!("{field}.egress"), groups),
    };
    SecurityGroup { name, description, ingress, egress }
}

/// A written description, kept as is even when AWS would refuse it (reported).
fn description(cx: &mut Checker, d: &Spanned<String>, field: &str) -> String {
    // The character set and length AWS accepts for a group description.
    const ALLOWED: &str = " ._-:/()#,@[]+=&;{}!$*";
    let text = d.get_ref();
    let bad = text.chars().find(|c| !(c.is_ascii_alphanumeric() || ALLOWED.contains(*c)));
    let problem = match bad {
        Some(c) => Some(format!("{c:?} is not allowed in a description")),
        None if text.len() > 255 => Some(format!("the description is {} characters long", text.len())),
        None => None,
    };
    if let Some(problem) = problem {
        cx.err(
            d.span(),
            field,
            format!("{problem}; AWS allows at most 255 characters: letters, digits, spaces and {}", ALLOWED.trim()),
        );
    }
    text.clone()
}

/// One direction's rules; a rule with any problem is dropped (reported), as is a repeat of an earlier rule.
fn rules(cx: &mut Checker, raw: &[Spanned<RawSgRule>], field: &str, groups: &BTreeSet<String>) -> Vec<SgRule> {
    // Each accepted rule with the index it was written at, to name the first copy of a duplicate.
    let mut rules: Vec<(SgRule, usize)> = Vec::new();
    for (i, rule) in raw.iter().enumerate() {
        let rfield = format!("{field}[{i}]");
        let span = rule.span();
        let rule = rule.get_ref();
        let protocol = cx.protocol(&rule.protocol, &format!("{rfield}.protocol"));
        let ports = cx.ports(protocol, rule.ports.as_ref(), span.clone(), &rfield);
        let peer = match (&rule.cidr, &rule.security_group) {
            (Some(c), None) => cx.cidr(c, &format!("{rfield}.cidr")).map(Peer::Cidr),
            (None, Some(g)) => {
                if groups.contains(g.get_ref()) {
                    Some(Peer::Group(g.get_ref().clone()))
                } else {
                    let known: Vec<_> = groups.iter().map(|g| format!("{g:?}")).collect();
                    cx.err(
                        g.span(),
                        format!("{rfield}.security_group"),
                        format!("no security group named {:?}; defined groups: {}", g.get_ref(), known.join(", ")),
                    );
                    None
                }
            }
            (Some(_), Some(_)) => {
                cx.err(
                    span.clone(),
                    rfield.clone(),
                    "the rule sets both `cidr` and `security_group`; a rule has one peer, so keep exactly one",
                );
                None
            }
            (None, None) => {
                cx.err(
                    span.clone(),
                    rfield.clone(),
                    "the rule sets neither `cidr` nor `security_group`; add one, e.g. cidr = \"0.0.0.0/0\" or security_group = \"web\"",
                );
                None
            }
        };
        let (Some(protocol), Some(peer)) = (protocol, peer) else { continue };
        if protocol.has_ports() && ports.is_none() {
            continue;
        }
        let r = SgRule { protocol, ports, peer };
        if let Some((_, first)) = rules.iter().find(|(other, _)| *other == r) {
            cx.err(
                span,
                rfield,
                format!("this rule repeats {field}[{first}]; AWS rejects duplicate rules, so remove one"),
            );
            continue;
        }
        rules.push((r, i));
    }
    rules.into_iter().map(|(r, _)| r).collect()
}
