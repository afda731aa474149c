//! Raw spec -> checked [`Stack`]. Every check records a [`Diagnostic`] and carries on, so one run of
//! `webscale validate` lists every problem in the file rather than the first.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::raw::*;
use super::*;

/// Where the stack's region comes from when the file is not the last word.
#[derive(Debug, Clone, Default)]
pub struct RegionChoice {
    /// `--region`: beats the file.
    pub forced: Option<String>,
    /// AWS_REGION / the profile: used when the file names no region.
    pub ambient: Option<String>,
}

/// Parses and checks the text of a stack file; `path` is only used to name the file in diagnostics.
pub fn parse(path: &Path, text: &str, region: &RegionChoice) -> Result<Stack, SpecError> {
    let mut cx = Checker { file: path, text, diags: Vec::new() };
    let raw = match toml::Deserializer::parse(text) {
        Err(e) => {
            cx.err(e.span().unwrap_or(0..0), "(syntax)", e.message().trim());
            return Err(SpecError::Invalid(cx.diags));
        }
        Ok(de) => match serde_path_to_error::deserialize::<_, RawSpec>(de) {
            Ok(raw) => raw,
            Err(e) => {
                let field = match e.path().to_string() {
                    p if p == "." => "(top level)".to_string(),
                    p => p,
                };
                let inner = e.into_inner();
                cx.err(inner.span().unwrap_or(0..0), field, inner.message().trim());
                return Err(SpecError::Invalid(cx.diags));
            }
        },
    };
    let stack = cx.check(raw, region);
    if cx.diags.is_empty() { Ok(stack) } else { Err(SpecError::Invalid(cx.diags)) }
}

struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    fn err(&mut self, span: Range<usize>, field: impl Into<String>, message: impl Into<String>) {
        let (line, column) = line_col(self.text, span.start);
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        });
    }

    fn check(&mut self, raw: RawSpec, choice: &RegionChoice) -> Stack {
        let name = self.stack_name(&raw.stack.name);
        let region = match (&choice.forced, &raw.stack.region, &choice.ambient) {
            (Some(forced), _, _) => forced.clone(),
            (None, Some(r), _) => self.region(r),
            (None, None, Some(ambient)) => ambient.clone(),
            (None, None, None) => {
                self.err(
                    raw.stack.name.span(),
                    "stack.region",
                    "no region: set `region` in [stack], or AWS_REGION, or pass --region",
                );
                String::new()
            }
        };
        let mut tags = BTreeMap::new();
        for (k, v) in &raw.stack.tags {
            let field = format!("stack.tags.{}", k.get_ref());
            if k.get_ref().starts_with("aws:") || k.get_ref().starts_with("webscale:") {
                self.err(k.span(), field, "tag keys starting with \"aws:\" or \"webscale:\" are reserved");
            } else if k.get_ref().is_empty() || k.get_ref().len() > 128 {
                self.err(k.span(), field, "a tag key must be 1 to 128 characters");
            } else if v.get_ref().len() > 256 {
                self.err(v.span(), field, "a tag value must be at most 256 characters");
            }
            tags.insert(k.get_ref().clone(), v.get_ref().clone());
        }

        let group_names: BTreeSet<String> = raw.security_groups.keys().map(|k| k.get_ref().clone()).collect();
        let network = self.network(raw.network, &region);
        let security_groups = raw
            .security_groups
            .into_iter()
            .map(|(k, v)| self.security_group(&name, k, v.into_inner(), &group_names))
            .collect();
        let mut nacl_tiers = BTreeMap::new();
        let network_acls = raw
            .network_acls
            .into_iter()
            .map(|(k, v)| self.network_acl(k, v.into_inner(), &mut nacl_tiers))
            .collect();
        Stack { name, region, tags, network, security_groups, network_acls }
    }

    fn stack_name(&mut self, name: &Spanned<String>) -> String {
        let n = name.get_ref();
        let ok = (1..=32).contains(&n.len())
            && n.starts_with(|c: char| c.is_ascii_lowercase())
            && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if !ok {
            self.err(
                name.span(),
                "stack.name",
                format!(
                    "{n:?} is not a valid stack name: use 1 to 32 lowercase letters, digits and hyphens, starting with a letter"
                ),
            );
        }
        n.clone()
    }

    fn region(&mut self, region: &Spanned<String>) -> String {
        let r = region.get_ref();
        let parts: Vec<&str> = r.split('-').collect();
        let ok = parts.len() >= 3
            && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
            && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            self.err(region.span(), "stack.region", format!("{r:?} is not an AWS region name such as \"us-east-1\""));
        }
        r.clone()
    }

    /// A CIDR block as AWS accepts it for a VPC or subnet: network address only, prefix /16 to /28.
    fn block(&mut self, value: &Spanned<String>, field: &str) -> Option<Ipv4Net> {
        let net = self.cidr(value, field)?;
        if !(16..=28).contains(&net.prefix_len()) {
            self.err(
                value.span(),
                field,
                format!("{net} has a /{} prefix; AWS allows /16 to /28 here", net.prefix_len()),
            );
            return None;
        }
        Some(net)
    }

    /// Any IPv4 CIDR, host bits zero.
    fn cidr(&mut self, value: &Spanned<String>, field: &str) -> Option<Ipv4Net> {
        let s = value.get_ref();
        match s.parse::<Ipv4Net>() {
            Err(_) => {
                self.err(value.span(), field, format!("{s:?} is not an IPv4 CIDR block such as \"10.0.0.0/16\""));
                None
            }
            Ok(net) if net.addr() != net.network() => {
                self.err(
                    value.span(),
                    field,
                    format!("{s} has host bits set; did you mean \"{}\"?", net.trunc()),
                );
                None
            }
            Ok(net) => Some(net),
        }
    }

    fn network(&mut self, raw: Spanned<RawNetwork>, region: &str) -> Network {
        let raw = raw.into_inner();
        let cidr = self.block(&raw.cidr, "network.cidr");

        let zones_span = raw.zones.span();
        let raw_zones = raw.zones.into_inner();
        if raw_zones.len() < 2 {
            self.err(
                zones_span,
                "network.zones",
                format!(
                    "{} availability zone{} defined; a highly available stack needs at least two (add another [network.zones.NAME] table)",
                    raw_zones.len(),
                    if raw_zones.len() == 1 { " is" } else { "s are" }
                ),
            );
        }
        let mut zones = Vec::new();
        let mut seen_az: BTreeMap<String, String> = BTreeMap::new();
        // Every subnet checked so far, for the overlap check: (field, block).
        let mut subnets: Vec<(String, Ipv4Net)> = Vec::new();
        for (zname, zone) in raw_zones {
            let zfield = format!("network.zones.{}", zname.get_ref());
            self.ident(&zname, &zfield, false);
            let zone = zone.into_inner();
            let written = zone.availability_zone.get_ref();
            // A bare letter ("a") means that zone of the stack's region, which keeps a spec portable (--region).
            let az = if written.len() == 1 { format!("{region}{written}") } else { written.clone() };
            let az_field = format!("{zfield}.availability_zone");
            let suffix = az.strip_prefix(region);
            if !suffix.is_some_and(|s| !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase())) {
                self.err(
                    zone.availability_zone.span(),
                    &az_field,
                    format!(
                        "{written:?} is not an availability zone of region {region}: write \"{region}a\" or just \"a\""
                    ),
                );
            } else if let Some(other) = seen_az.insert(az.clone(), zfield.clone()) {
                self.err(
                    zone.availability_zone.span(),
                    &az_field,
                    format!("{az} is already used by {other}; each zone must be a different availability zone"),
                );
            }
            let mut block = |cx: &mut Self, v: &Spanned<String>, which: &str| -> Ipv4Net {
                let field = format!("{zfield}.{which}");
                let Some(net) = cx.block(v, &field) else { return Ipv4Net::default() };
                if let Some(vpc) = cidr
                    && !vpc.contains(&net)
                {
                    cx.err(
                        v.span(),
                        &field,
                        format!("{net} is outside the VPC CIDR {vpc} (network.cidr); subnets must lie inside it"),
                    );
                }
                if let Some((other, on)) = subnets.iter().find(|(_, o)| o.contains(&net) || net.contains(o)) {
                    cx.err(v.span(), &field, format!("{net} overlaps {other} ({on}); subnets must not overlap"));
                }
                subnets.push((field, net));
                net
            };
            let public_subnet = block(self, &zone.public_subnet, "public_subnet");
            let private_subnet = block(self, &zone.private_subnet, "private_subnet");
            zones.push(Zone { name: zname.into_inner(), availability_zone: az, public_subnet, private_subnet });
        }

        let mut route_tables = Vec::new();
        let mut tiers = BTreeMap::new();
        for (name, rt) in raw.route_tables {
            let field = format!("network.route_tables.{}", name.get_ref());
            self.ident(&name, &field, false);
            let rt = rt.into_inner();
            let tier = self.tier(&rt.tier, &format!("{field}.tier"), &mut tiers, &field);
            let mut routes = Vec::new();
            let mut dests = BTreeSet::new();
            for (i, route) in rt.routes.iter().enumerate() {
                let rfield = format!("{field}.routes[{i}]");
                let route = route.get_ref();
                let target = match route.target.get_ref().as_str() {
                    "internet_gateway" => {
                        if !raw.internet_gateway {
                            self.err(
                                route.target.span(),
                                format!("{rfield}.target"),
                                "targets the internet gateway, but network.internet_gateway is false",
                            );
                        }
                        Some(RouteTarget::InternetGateway)
                    }
                    other => {
                        self.err(
                            route.target.span(),
                            format!("{rfield}.target"),
                            format!("unknown route target {other:?}; valid targets: \"internet_gateway\""),
                        );
                        None
                    }
                };
                let dest_field = format!("{rfield}.destination");
                let Some(dest) = self.cidr(&route.destination, &dest_field) else { continue };
                if let Some(vpc) = cidr
                    && (vpc.contains(&dest) || dest.contains(&vpc))
                    && dest.prefix_len() > 0
                {
                    self.err(
                        route.destination.span(),
                        &dest_field,
                        format!("{dest} overlaps the VPC CIDR {vpc}, which AWS routes locally"),
                    );
                }
                if !dests.insert(dest) {
                    self.err(route.destination.span(), &dest_field, format!("a route to {dest} is already defined"));
                }
                if let Some(target) = target {
                    routes.push(Route { destination: dest, target });
                }
            }
            if let Some(tier) = tier {
                route_tables.push(RouteTable { name: name.into_inner(), tier, routes });
            }
        }

        Network {
            cidr: cidr.unwrap_or_default(),
            internet_gateway: raw.internet_gateway,
            dns_hostnames: raw.dns_hostnames,
            zones,
            route_tables,
        }
    }

    /// Logical names become part of addresses (`subnet.public_a`) and AWS names, so keep them plain.
    fn ident(&mut self, name: &Spanned<String>, field: &str, allow_hyphen: bool) {
        let n = name.get_ref();
        let ok = !n.is_empty()
            && n.len() <= 32
            && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || (allow_hyphen && c == '-'));
        if !ok {
            self.err(
                name.span(),
                field,
                format!("{n:?} is not a valid name: use 1 to 32 lowercase letters, digits and underscores"),
            );
        }
    }

    /// Parses a tier and records which table claimed it: a subnet has one route table and one network ACL.
    fn tier(
        &mut self,
        value: &Spanned<String>,
        field: &str,
        claimed: &mut BTreeMap<Tier, String>,
        owner: &str,
    ) -> Option<Tier> {
        let tier = match value.get_ref().as_str() {
            "public" => Tier::Public,
            "private" => Tier::Private,
            other => {
                self.err(value.span(), field, format!("unknown tier {other:?}; valid tiers: \"public\", \"private\""));
                return None;
            }
        };
        if let Some(prev) = claimed.insert(tier, owner.to_string()) {
            self.err(
                value.span(),
                field,
                format!("tier {:?} is already claimed by {prev}; a subnet can have only one", tier.as_str()),
            );
            return None;
        }
        Some(tier)
    }

    fn protocol(&mut self, value: &Spanned<String>, field: &str) -> Option<Protocol> {
        let p = match value.get_ref().to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" => Protocol::Icmp,
            "all" | "-1" => Protocol::All,
            other => {
                self.err(value.span(), field, format!("unknown protocol {other:?}; valid: {}", Protocol::NAMES));
                return None;
            }
        };
        Some(p)
    }

    /// `ports` is required for tcp/udp and meaningless for the others.
    fn ports(
        &mut self,
        protocol: Option<Protocol>,
        ports: Option<&Spanned<toml::Value>>,
        rule_span: Range<usize>,
        field: &str,
    ) -> Option<PortRange> {
        let protocol = protocol?;
        let field = format!("{field}.ports");
        let Some(ports) = ports else {
            if protocol.has_ports() {
                self.err(
                    rule_span,
                    field,
                    format!("a {} rule needs ports: a number such as 443 or a range such as \"1024-65535\"", protocol.as_str()),
                );
            }
            return None;
        };
        if !protocol.has_ports() {
            self.err(
                ports.span(),
                field,
                format!("a {} rule covers every port; remove ports (or use protocol \"tcp\"/\"udp\")", protocol.as_str()),
            );
            return None;
        }
        let port = |n: i64| u16::try_from(n).ok();
        let parsed = match ports.get_ref() {
            toml::Value::Integer(n) => port(*n).map(|p| PortRange { from: p, to: p }),
            toml::Value::String(s) => match s.split_once('-') {
                Some((a, b)) => match (a.trim().parse::<i64>().ok().and_then(port), b.trim().parse::<i64>().ok().and_then(port)) {
                    (Some(from), Some(to)) if from <= to => Some(PortRange { from, to }),
                    _ => None,
                },
                None => s.trim().parse::<i64>().ok().and_then(port).map(|p| PortRange { from: p, to: p }),
            },
            _ => None,
        };
        if parsed.is_none() {
            self.err(
                ports.span(),
                field,
                format!(
                    "{} is not a valid port or range: use a number from 0 to 65535 (443) or \"FROM-TO\" with FROM <= TO (\"1024-65535\")",
                    ports.get_ref()
                ),
            );
        }
        parsed
    }

    fn security_group(
        &mut self,
        stack: &str,
        name: Spanned<String>,
        raw: RawSecurityGroup,
        groups: &BTreeSet<String>,
    ) -> SecurityGroup {
        let field = format!("security_groups.{}", name.get_ref());
        self.ident(&name, &field, false);
        let name = name.into_inner();
        let description = match &raw.description {
            None => format!("{name} tier of webscale stack {stack}"),
            Some(d) => {
                let ok = d.get_ref().len() <= 255
                    && d.get_ref().chars().all(|c| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c));
                if !ok {
                    self.err(
                        d.span(),
                        format!("{field}.description"),
                        "AWS allows at most 255 characters: letters, digits, spaces and ._-:/()#,@[]+=&;{}!$*",
                    );
                }
                d.get_ref().clone()
            }
        };
        let ingress = self.sg_rules(&raw.ingress, &format!("{field}.ingress"), groups);
        let egress = match &raw.egress {
            None => vec![SgRule { protocol: Protocol::All, ports: None, peer: Peer::Cidr(Ipv4Net::default()) }],
            Some(rules) => self.sg_rules(rules, &format!("{field}.egress"), groups),
        };
        SecurityGroup { name, description, ingress, egress }
    }

    fn sg_rules(&mut self, raw: &[Spanned<RawSgRule>], field: &str, groups: &BTreeSet<String>) -> Vec<SgRule> {
        let mut rules: Vec<SgRule> = Vec::new();
        for (i, rule) in raw.iter().enumerate() {
            let rfield = format!("{field}[{i}]");
            let span = rule.span();
            let rule = rule.get_ref();
            let protocol = self.protocol(&rule.protocol, &format!("{rfield}.protocol"));
            let ports = self.ports(protocol, rule.ports.as_ref(), span.clone(), &rfield);
            let peer = match (&rule.cidr, &rule.security_group) {
                (Some(c), None) => self.cidr(c, &format!("{rfield}.cidr")).map(Peer::Cidr),
                (None, Some(g)) => {
                    if groups.contains(g.get_ref()) {
                        Some(Peer::Group(g.get_ref().clone()))
                    } else {
                        let known: Vec<_> = groups.iter().map(|g| format!("{g:?}")).collect();
                        self.err(
                            g.span(),
                            format!("{rfield}.security_group"),
                            format!("no security group named {:?}; defined groups: {}", g.get_ref(), known.join(", ")),
                        );
                        None
                    }
                }
                _ => {
                    self.err(span.clone(), rfield.clone(), "set exactly one of `cidr` or `security_group`");
                    None
                }
            };
            let (Some(protocol), Some(peer)) = (protocol, peer) else { continue };
            if protocol.has_ports() && ports.is_none() {
                continue;
            }
            let r = SgRule { protocol, ports, peer };
            if rules.contains(&r) {
                self.err(span, rfield, "the same rule is listed twice; AWS rejects duplicate rules");
                continue;
            }
            rules.push(r);
        }
        rules
    }

    fn network_acl(
        &mut self,
        name: Spanned<String>,
        raw: RawNetworkAcl,
        tiers: &mut BTreeMap<Tier, String>,
    ) -> NetworkAcl {
        let field = format!("network_acls.{}", name.get_ref());
        self.ident(&name, &field, false);
        let tier = self.tier(&raw.tier, &format!("{field}.tier"), tiers, &field);
        let ingress = self.nacl_rules(&raw.ingress, &format!("{field}.ingress"));
        let egress = self.nacl_rules(&raw.egress, &format!("{field}.egress"));
        NetworkAcl { name: name.into_inner(), tier: tier.unwrap_or(Tier::Public), ingress, egress }
    }

    fn nacl_rules(&mut self, raw: &[Spanned<RawNaclRule>], field: &str) -> Vec<NaclRule> {
        let mut rules: Vec<NaclRule> = Vec::new();
        let mut numbers = BTreeMap::new();
        for (i, rule) in raw.iter().enumerate() {
            let rfield = format!("{field}[{i}]");
            let span = rule.span();
            let rule = rule.get_ref();
            let n = *rule.rule.get_ref();
            let number = if !(1..=32766).contains(&n) {
                self.err(
                    rule.rule.span(),
                    format!("{rfield}.rule"),
                    format!("rule number {n} is out of range; AWS allows 1 to 32766 (32767 is the built-in deny-all)"),
                );
                None
            } else if let Some(prev) = numbers.insert(n, rfield.clone()) {
                self.err(
                    rule.rule.span(),
                    format!("{rfield}.rule"),
                    format!("rule number {n} is already used by {prev}; numbers must be unique per direction"),
                );
                None
            } else {
                Some(n as i32)
            };
            let protocol = self.protocol(&rule.protocol, &format!("{rfield}.protocol"));
            let ports = self.ports(protocol, rule.ports.as_ref(), span.clone(), &rfield);
            let cidr = self.cidr(&rule.cidr, &format!("{rfield}.cidr"));
            let allow = match rule.action.get_ref().as_str() {
                "allow" => Some(true),
                "deny" => Some(false),
                other => {
                    self.err(
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
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}
