//! Raw spec -> checked [`Stack`]. Every check records a [`Diagnostic`] and carries on, so one run of
//! `webscale validate` lists every problem in the file rather than the first.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

use ipnet::Ipv4Net;
use serde_path_to_error::Segment;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

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
                let inner = e.inner();
                let span = inner.span().unwrap_or(0..0);
                let message = inner.message().trim();
                let field = serde_field(text, e.path(), span.start, message);
                // serde says only "missing field `x`": say what to do about it too.
                let message = match missing_field(message) {
                    Some(name) => format!("missing required field `{name}`; add it to this table"),
                    None => message.to_string(),
                };
                cx.err(span, field, message);
                return Err(SpecError::Invalid(cx.diags));
            }
        },
    };
    let stack = cx.check(raw, region);
    if cx.diags.is_empty() {
        Ok(stack)
    } else {
        // Checks run section by section (network before security groups, whatever the file's order), but a
        // reader goes top to bottom.
        // The sort is stable, so two problems at one spot keep the order they were found in.
        cx.diags.sort_by_key(|d| (d.line, d.column));
        Err(SpecError::Invalid(cx.diags))
    }
}

/// The name in serde's "missing field `x`" message.
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.strip_suffix('`')
}

/// The dotted field path of a serde error, e.g. `network.zones.b.public_subnet`.
///
/// serde_path_to_error alone is not enough: every `Spanned` wrapper adds a `$__serde_spanned_private_value`
/// segment, and a map keyed by `Spanned<String>` (our named tables: zones, groups, ACLs) records its key only as
/// `?`. So the path is replayed over the parsed document, dropping the wrapper segments and recovering each `?`
/// as the child whose part of the file holds the error. A "missing field" error points at the table that
/// lacks it; the path then ends with the missing key, which is what the user has to add.
fn serde_field(text: &str, path: &serde_path_to_error::Path, offset: usize, message: &str) -> String {
    // Deserializer::parse succeeded on this text already, so this parse does too.
    let root = DeTable::parse(text).ok().map(|t| Spanned::new(t.span(), DeValue::Table(t.into_inner())));
    let mut at: Option<&Spanned<DeValue>> = root.as_ref();
    let mut field = String::new();
    for segment in path {
        match segment {
            Segment::Map { key } if key.starts_with("$__serde_spanned_private") => {}
            Segment::Map { key } => {
                push_key(&mut field, key);
                at = at.and_then(|v| table_child(v, |k| k == key.as_str()));
            }
            Segment::Seq { index } => {
                field.push_str(&format!("[{index}]"));
                at = at.and_then(|v| match v.get_ref() {
                    DeValue::Array(a) => a.get(*index),
                    _ => None,
                });
            }
            Segment::Unknown | Segment::Enum { .. } => {
                let child = at.and_then(|v| match v.get_ref() {
                    DeValue::Table(t) => t.iter().find(|(k, v)| in_span(&k.span(), offset) || holds(v, offset)),
                    _ => None,
                });
                match child {
                    Some((k, v)) => {
                        push_key(&mut field, k.get_ref());
                        at = Some(v);
                    }
                    None => {
                        // Not found (should not happen): say so rather than guess a name.
                        field.push_str(if field.is_empty() { "?" } else { ".?" });
                        at = None;
                    }
                }
            }
        }
    }
    if let Some(name) = missing_field(message) {
        push_key(&mut field, name);
    }
    if field.is_empty() { "(top level)".to_string() } else { field }
}

fn push_key(field: &mut String, key: &str) {
    if !field.is_empty() {
        field.push('.');
    }
    field.push_str(&key_segment(key));
}

fn table_child<'a, 'i>(v: &'a Spanned<DeValue<'i>>, is_key: impl Fn(&str) -> bool) -> Option<&'a Spanned<DeValue<'i>>> {
    match v.get_ref() {
        DeValue::Table(t) => t.iter().find(|(k, _)| is_key(k.get_ref())).map(|(_, v)| v),
        _ => None,
    }
}

fn in_span(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

/// Whether `offset` falls on this value or anything inside it. A `[header]` table's own span is just its header,
/// so its keys are searched too.
fn holds(v: &Spanned<DeValue>, offset: usize) -> bool {
    in_span(&v.span(), offset)
        || match v.get_ref() {
            DeValue::Table(t) => t.iter().any(|(k, v)| in_span(&k.span(), offset) || holds(v, offset)),
            DeValue::Array(a) => a.iter().any(|v| holds(v, offset)),
            _ => false,
        }
}

/// One key of a dotted field path, quoted the way TOML would need it (`stack.tags."aws:owner"`), so the path
/// stays unambiguous when a key holds a dot or other punctuation.
fn key_segment(key: &str) -> Cow<'_, str> {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(format!("{key:?}"))
    }
}

/// A map's entries in the order they appear in the file. The maps iterate by name, but when two entries clash
/// ("already used by ...") the diagnostic belongs on the later one, the one a reader meets second.
fn in_file_order<V>(map: BTreeMap<Spanned<String>, V>) -> Vec<(Spanned<String>, V)> {
    let mut entries: Vec<_> = map.into_iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

/// Whether `r` looks like an AWS region name: at least three hyphen-separated lowercase parts, the last a number
/// (`us-east-1`, `us-gov-west-1`, `ap-southeast-2`).
fn is_region_name(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.chars().all(|c| c.is_ascii_digit()))
}

/// The article for a protocol name in prose: "a tcp rule", "an all rule".
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
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
        let stack_span = raw.stack.span();
        let raw_stack = raw.stack.into_inner();
        let name = self.stack_name(&raw_stack.name);
        let region = self.choose_region(raw_stack.region.as_ref(), choice, stack_span);
        let tags = self.tags(&raw_stack.tags);
        let ignore_tags = self.ignore_tags(&raw_stack.ignore_tags, &tags);

        let group_names: BTreeSet<String> = raw.security_groups.keys().map(|k| k.get_ref().clone()).collect();
        let network = self.network(raw.network, region.as_deref());
        let mut security_groups: Vec<SecurityGroup> = in_file_order(raw.security_groups)
            .into_iter()
            .map(|(k, v)| self.security_group(&name, k, v.into_inner(), &group_names))
            .collect();
        security_groups.sort_by(|a, b| a.name.cmp(&b.name));
        let mut nacl_tiers = BTreeMap::new();
        let mut network_acls: Vec<NetworkAcl> = in_file_order(raw.network_acls)
            .into_iter()
            .map(|(k, v)| self.network_acl(k, v.into_inner(), &mut nacl_tiers))
            .collect();
        network_acls.sort_by(|a, b| a.name.cmp(&b.name));
        Stack { name, region: region.unwrap_or_default(), tags, ignore_tags, network, security_groups, network_acls }
    }

    /// `--region` beats the file, which beats AWS_REGION / the profile. `None` when there is no usable region
    /// (already reported), so zone checks can skip rather than pile on errors about an empty region.
    fn choose_region(
        &mut self,
        in_file: Option<&Spanned<String>>,
        choice: &RegionChoice,
        stack_span: Range<usize>,
    ) -> Option<String> {
        // The file's region is checked even when --region overrides it: the file is wrong for anyone who runs it
        // without the flag.
        let file_region = in_file.and_then(|r| {
            let ok = is_region_name(r.get_ref());
            if !ok {
                self.err(
                    r.span(),
                    "stack.region",
                    format!("{:?} is not an AWS region name such as \"us-east-1\"", r.get_ref()),
                );
            }
            ok.then(|| r.get_ref().clone())
        });
        // A region from outside the file has no place in it to point at: blame `region` if written, else [stack].
        let outside = |cx: &mut Self, r: &String, from: &str| {
            if is_region_name(r) {
                return Some(r.clone());
            }
            let span = in_file.map_or(stack_span.clone(), |f| f.span());
            cx.err(
                span,
                "stack.region",
                format!("{r:?} (from {from}) is not an AWS region name such as \"us-east-1\""),
            );
            None
        };
        match (&choice.forced, in_file, &choice.ambient) {
            (Some(forced), _, _) => outside(self, forced, "--region"),
            (None, Some(_), _) => file_region,
            (None, None, Some(ambient)) => outside(self, ambient, "AWS_REGION / the AWS profile"),
            (None, None, None) => {
                self.err(
                    stack_span,
                    "stack.region",
                    "no region: set `region = \"us-east-1\"` (for example) in [stack], set AWS_REGION, or pass --region",
                );
                None
            }
        }
    }

    /// Tag keys another tool owns. webscale's own keys cannot be given away: ownership depends on them.
    fn ignore_tags(&mut self, raw: &[Spanned<String>], tags: &BTreeMap<String, String>) -> Vec<String> {
        let mut out = Vec::new();
        for (i, p) in raw.iter().enumerate() {
            let pattern = p.get_ref();
            let field = format!("stack.ignore_tags[{i}]");
            let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
            if prefix.is_empty() || prefix.contains('*') {
                self.err(
                    p.span(),
                    field,
                    format!("{pattern:?} is not a tag key or a prefix ending in one `*` (\"CreatedBy\", \"cost:*\")"),
                );
            } else if ["Name", "webscale:stack", "webscale:address"].iter().any(|k| spec_tag_ignored(pattern, k)) {
                self.err(p.span(), field, format!("{pattern:?} would ignore a tag webscale sets (Name, webscale:*); it cannot be left to another tool"));
            } else if let Some(k) = tags.keys().find(|k| spec_tag_ignored(pattern, k)) {
                self.err(p.span(), field, format!("{pattern:?} ignores {k:?}, which [stack.tags] sets; a tag is either webscale's or another tool's"));
            } else {
                out.push(pattern.clone());
            }
        }
        out
    }

    fn tags(&mut self, raw: &BTreeMap<Spanned<String>, Spanned<String>>) -> BTreeMap<String, String> {
        let mut tags = BTreeMap::new();
        for (k, v) in raw {
            let key = k.get_ref();
            let field = format!("stack.tags.{}", key_segment(key));
            // AWS refuses "aws:" in any letter case; "webscale:" and Name are set on every resource by webscale
            // (resources::ec2_tags), which would silently overwrite the user's value.
            let lower = key.to_ascii_lowercase();
            if lower.starts_with("aws:") || lower.starts_with("webscale:") {
                self.err(
                    k.span(),
                    field,
                    format!("tag key {key:?} is reserved: keys starting with \"aws:\" or \"webscale:\" belong to AWS and webscale; pick another key"),
                );
            } else if key == "Name" {
                self.err(
                    k.span(),
                    field,
                    "tag key \"Name\" is reserved: webscale names every resource STACK-KIND-NAME; pick another key",
                );
            } else if key.is_empty() || key.chars().count() > 128 {
                self.err(k.span(), field, "a tag key must be 1 to 128 characters long");
            } else if v.get_ref().chars().count() > 256 {
                self.err(
                    v.span(),
                    field,
                    format!(
                        "this tag value is {} characters long; AWS allows at most 256",
                        v.get_ref().chars().count()
                    ),
                );
            }
            tags.insert(key.clone(), v.get_ref().clone());
        }
        // AWS allows 50 tags per resource; webscale sets three of its own (Name and the ownership pair).
        if tags.len() > 47 {
            let span = raw.keys().nth(47).map(|k| k.span()).unwrap_or(0..0);
            self.err(
                span,
                "stack.tags",
                format!("{} tags; AWS allows 50 per resource and webscale sets 3, so at most 47", tags.len()),
            );
        }
        tags
    }

    fn stack_name(&mut self, name: &Spanned<String>) -> String {
        let n = name.get_ref();
        let ok = (1..=32).contains(&n.len())
            && n.starts_with(|c: char| c.is_ascii_lowercase())
            && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok && n.starts_with("sg-") {
            // Security group names start with the stack name, and AWS refuses group names starting with "sg-".
            self.err(name.span(), "stack.name", format!("{n:?} starts with \"sg-\", which AWS refuses in security group names (they start with the stack name); pick another name"));
        } else if !ok {
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
                self.err(value.span(), field, format!("{s} has host bits set; did you mean \"{}\"?", net.trunc()));
                None
            }
            Ok(net) => Some(net),
        }
    }

    fn network(&mut self, raw: Spanned<RawNetwork>, region: Option<&str>) -> Network {
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
        for (zname, zone) in in_file_order(raw_zones) {
            let zfield = format!("network.zones.{}", key_segment(zname.get_ref()));
            self.ident(&zname, &zfield, false);
            let zone = zone.into_inner();
            let az = self.availability_zone(&zone.availability_zone, &format!("{zfield}.availability_zone"), region);
            // A zone already reported as outside the region is not also reported as a duplicate.
            if let Some(az) = &az
                && let Some(other) = seen_az.insert(az.clone(), zfield.clone())
            {
                self.err(
                    zone.availability_zone.span(),
                    format!("{zfield}.availability_zone"),
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
                    cx.err(
                        v.span(),
                        &field,
                        format!("{net} overlaps {other} ({on}); every subnet needs its own address range"),
                    );
                }
                subnets.push((field, net));
                net
            };
            let public_subnet = block(self, &zone.public_subnet, "public_subnet");
            let private_subnet = block(self, &zone.private_subnet, "private_subnet");
            let availability_zone = az.unwrap_or_else(|| zone.availability_zone.into_inner());
            zones.push(Zone { name: zname.into_inner(), availability_zone, public_subnet, private_subnet });
        }
        zones.sort_by(|a, b| a.name.cmp(&b.name));

        let mut route_tables = Vec::new();
        let mut tiers = BTreeMap::new();
        for (name, rt) in in_file_order(raw.route_tables) {
            let field = format!("network.route_tables.{}", key_segment(name.get_ref()));
            self.ident(&name, &field, false);
            let rt = rt.into_inner();
            let tier = self.tier(&rt.tier, &format!("{field}.tier"), &mut tiers, &field, "route table");
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
                                "targets the internet gateway, but network.internet_gateway is false: set it to true or remove this route",
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
                // 0.0.0.0/0 contains every VPC CIDR but is the default route, not a clash with the local one.
                if let Some(vpc) = cidr
                    && (vpc.contains(&dest) || dest.contains(&vpc))
                    && dest.prefix_len() > 0
                {
                    self.err(
                        route.destination.span(),
                        &dest_field,
                        format!(
                            "{dest} overlaps the VPC CIDR {vpc}, which AWS routes locally; route only destinations outside {vpc}"
                        ),
                    );
                }
                if !dests.insert(dest) {
                    self.err(
                        route.destination.span(),
                        &dest_field,
                        format!(
                            "a route to {dest} is already defined in this table; each destination can have one route"
                        ),
                    );
                }
                if let Some(target) = target {
                    routes.push(Route { destination: dest, target });
                }
            }
            if let Some(tier) = tier {
                route_tables.push(RouteTable { name: name.into_inner(), tier, routes });
            }
        }
        route_tables.sort_by(|a, b| a.name.cmp(&b.name));

        Network {
            cidr: cidr.unwrap_or_default(),
            internet_gateway: raw.internet_gateway,
            dns_hostnames: raw.dns_hostnames,
            zones,
            route_tables,
        }
    }

    /// The full availability zone name. A bare letter ("a") means that zone of the stack's region, which keeps a
    /// spec portable across `--region`. Without a usable region (already reported) the spelling is taken as is.
    /// `None` when the zone is not one of the region's (reported here).
    fn availability_zone(&mut self, value: &Spanned<String>, field: &str, region: Option<&str>) -> Option<String> {
        let written = value.get_ref();
        let Some(region) = region else { return Some(written.clone()) };
        let az = if written.chars().count() == 1 { format!("{region}{written}") } else { written.clone() };
        // A regular zone is the region name plus one letter (us-east-1a ... us-east-1f).
        let is_zone =
            az.strip_prefix(region).is_some_and(|s| s.len() == 1 && s.chars().all(|c| c.is_ascii_lowercase()));
        if !is_zone {
            self.err(
                value.span(),
                field,
                format!(
                    "{written:?} is not an availability zone of region {region}: write \"{region}a\" or just \"a\""
                ),
            );
            return None;
        }
        Some(az)
    }

    /// Logical names become part of addresses (`subnet.public_a`) and AWS names, so keep them plain.
    fn ident(&mut self, name: &Spanned<String>, field: &str, allow_hyphen: bool) {
        let n = name.get_ref();
        let ok = !n.is_empty()
            && n.len() <= 32
            && n.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || (allow_hyphen && c == '-'));
        if ok && n.starts_with(crate::resources::STRAY) {
            // Reserved for resources that carry the stack tag but lost their address tag (see resources::stray).
            self.err(
                name.span(),
                field,
                format!("{n:?}: names starting with {:?} are reserved", crate::resources::STRAY),
            );
        } else if !ok {
            self.err(
                name.span(),
                field,
                format!("{n:?} is not a valid name: use 1 to 32 lowercase letters, digits and underscores"),
            );
        }
    }

    /// Parses a tier and records which table claimed it: a subnet has one route table and one network ACL
    /// (`what` says which, for the message).
    fn tier(
        &mut self,
        value: &Spanned<String>,
        field: &str,
        claimed: &mut BTreeMap<Tier, String>,
        owner: &str,
        what: &str,
    ) -> Option<Tier> {
        let tier = match value.get_ref().as_str() {
            "public" => Tier::Public,
            "private" => Tier::Private,
            other => {
                self.err(value.span(), field, format!("unknown tier {other:?}; valid tiers: \"public\", \"private\""));
                return None;
            }
        };
        if let Some(prev) = claimed.get(&tier) {
            self.err(
                value.span(),
                field,
                format!(
                    "tier {:?} is already claimed by {prev}; a subnet can have only one {what}, so each tier may be claimed once",
                    tier.as_str()
                ),
            );
            return None;
        }
        claimed.insert(tier, owner.to_string());
        Some(tier)
    }

    fn protocol(&mut self, value: &Spanned<String>, field: &str) -> Option<Protocol> {
        let p = match value.get_ref().to_ascii_lowercase().as_str() {
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "icmp" => Protocol::Icmp,
            "all" | "-1" => Protocol::All,
            _ => {
                self.err(
                    value.span(),
                    field,
                    format!("unknown protocol {:?}; valid: {}", value.get_ref(), Protocol::NAMES),
                );
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
        let name = protocol.as_str();
        let Some(ports) = ports else {
            if protocol.has_ports() {
                self.err(
                    rule_span,
                    field,
                    format!(
                        "{} {name} rule needs ports: a number such as 443 or a range such as \"1024-65535\"",
                        article(name)
                    ),
                );
            }
            return None;
        };
        if !protocol.has_ports() {
            self.err(
                ports.span(),
                field,
                format!(
                    "{} {name} rule covers every {}; remove `ports` (or use protocol \"tcp\" or \"udp\")",
                    article(name),
                    if protocol == Protocol::Icmp { "ICMP type and code" } else { "port" },
                ),
            );
            return None;
        }
        match port_range(ports.get_ref()) {
            Ok(range) => Some(range),
            Err(problem) => {
                self.err(
                    ports.span(),
                    field,
                    format!(
                        "{problem}: use a port from 0 to 65535 (443) or a range \"FROM-TO\" with FROM <= TO (\"1024-65535\")"
                    ),
                );
                None
            }
        }
    }

    fn security_group(
        &mut self,
        stack: &str,
        name: Spanned<String>,
        raw: RawSecurityGroup,
        groups: &BTreeSet<String>,
    ) -> SecurityGroup {
        let field = format!("security_groups.{}", key_segment(name.get_ref()));
        self.ident(&name, &field, false);
        let name = name.into_inner();
        let description = match &raw.description {
            None => format!("{name} tier of webscale stack {stack}"),
            Some(d) => {
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
                    self.err(
                        d.span(),
                        format!("{field}.description"),
                        format!(
                            "{problem}; AWS allows at most 255 characters: letters, digits, spaces and {}",
                            ALLOWED.trim()
                        ),
                    );
                }
                text.clone()
            }
        };
        let ingress = self.sg_rules(&raw.ingress, &format!("{field}.ingress"), groups);
        let egress = match &raw.egress {
            // What AWS gives a new group: all traffic to anywhere.
            None => vec![SgRule { protocol: Protocol::All, ports: None, peer: Peer::Cidr(Ipv4Net::default()) }],
            Some(rules) => self.sg_rules(rules, &format!("{field}.egress"), groups),
        };
        SecurityGroup { name, description, ingress, egress }
    }

    fn sg_rules(&mut self, raw: &[Spanned<RawSgRule>], field: &str, groups: &BTreeSet<String>) -> Vec<SgRule> {
        // Each accepted rule with the index it was written at, to name the first copy of a duplicate.
        let mut rules: Vec<(SgRule, usize)> = Vec::new();
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
                (Some(_), Some(_)) => {
                    self.err(
                        span.clone(),
                        rfield.clone(),
                        "the rule sets both `cidr` and `security_group`; a rule has one peer, so keep exactly one",
                    );
                    None
                }
                (None, None) => {
                    self.err(
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
                self.err(
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

    fn network_acl(
        &mut self,
        name: Spanned<String>,
        raw: RawNetworkAcl,
        tiers: &mut BTreeMap<Tier, String>,
    ) -> NetworkAcl {
        let field = format!("network_acls.{}", key_segment(name.get_ref()));
        self.ident(&name, &field, false);
        let tier = self.tier(&raw.tier, &format!("{field}.tier"), tiers, &field, "network ACL");
        let ingress = self.nacl_rules(&raw.ingress, &format!("{field}.ingress"));
        let egress = self.nacl_rules(&raw.egress, &format!("{field}.egress"));
        NetworkAcl { name: name.into_inner(), tier: tier.unwrap_or(Tier::Public), ingress, egress }
    }

    /// One direction's entries; rule numbers are unique within a direction (ingress 100 and egress 100 coexist).
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
            } else if let Some(prev) = numbers.get(&n) {
                self.err(
                    rule.rule.span(),
                    format!("{rfield}.rule"),
                    format!("rule number {n} is already used by {prev}; numbers must be unique per direction"),
                );
                None
            } else {
                numbers.insert(n, rfield.clone());
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

/// Reads `ports`: an integer (`443`), or a string holding one (`"443"`) or an inclusive range (`"1024-65535"`).
/// The error says what is wrong with it; the caller adds what would be right.
fn port_range(value: &toml::Value) -> Result<PortRange, String> {
    let port = |n: i64| u16::try_from(n).map_err(|_| format!("port {n} is out of range"));
    let number = |s: &str| -> Result<u16, String> {
        let n = s.trim().parse::<i64>().map_err(|_| format!("{value} is not a port or port range"))?;
        port(n)
    };
    match value {
        toml::Value::Integer(n) => port(*n).map(|p| PortRange { from: p, to: p }),
        toml::Value::String(s) => match s.split_once('-') {
            Some((a, b)) => {
                let (from, to) = (number(a)?, number(b)?);
                if from > to {
                    return Err(format!("{value} runs backwards ({from} > {to})"));
                }
                Ok(PortRange { from, to })
            }
            None => number(s).map(|p| PortRange { from: p, to: p }),
        },
        other => Err(format!("{other} is not a port or port range")),
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    // Spans come from the parser and land on character boundaries; stepping back to one anyway means a stray
    // offset can only blur a position, never panic while reporting an error.
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

fn spec_tag_ignored(pattern: &str, key: &str) -> bool {
    super::tag_ignored(&[pattern.to_string()], key)
}
