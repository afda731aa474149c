//! Text -> checked [`Stack`], minus the tier-specific checks. [`parse`] deserializes the file into [`RawSpec`]
//! and hands each top-level table to its tier module; this file holds what every tier shares: the diagnostics
//! collector ([`Checker`]), serde errors turned into field paths, line/column, and checks more than one tier needs
//! (CIDR blocks, logical names, tier claims, protocols and ports).
//!
//! Every check records a [`Diagnostic`] and carries on, so one run of `webscale validate` lists every problem in
//! the file rather than the first.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

use ipnet::Ipv4Net;
use serde::Deserialize;
use serde_path_to_error::Segment;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::network::{self, RawNetwork};
use super::network_acls::{self, RawNetworkAcl};
use super::security_groups::{self, RawSecurityGroup};
use super::stack::{self, RawStack, RegionChoice};
use super::{Diagnostic, PortRange, Protocol, SpecError, Stack, Tier};

/// The file's top-level tables, one per tier. Strict about unknown keys, so a typo is an error, not a silently
/// ignored setting.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    /// Spanned so a problem with the stack as a whole (no region at all) can point at `[stack]`.
    stack: Spanned<RawStack>,
    network: Spanned<RawNetwork>,
    #[serde(default)]
    security_groups: BTreeMap<Spanned<String>, Spanned<RawSecurityGroup>>,
    #[serde(default)]
    network_acls: BTreeMap<Spanned<String>, Spanned<RawNetworkAcl>>,
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
    let stack = check(&mut cx, raw, region);
    if cx.diags.is_empty() {
        Ok(stack)
    } else {
        // Checks run tier by tier (network before security groups, whatever the file's order), but a reader goes
        // top to bottom.
        // The sort is stable, so two problems at one spot keep the order they were found in.
        cx.diags.sort_by_key(|d| (d.line, d.column));
        Err(SpecError::Invalid(cx.diags))
    }
}

/// Checks each tier's table. `[stack]` goes first because later tiers use its region and name; the order of the
/// calls is also the order of two problems found at one spot.
fn check(cx: &mut Checker, raw: RawSpec, region: &RegionChoice) -> Stack {
    let head = stack::check(cx, raw.stack, region);
    let network = network::check(cx, raw.network, head.region.as_deref());
    let security_groups = security_groups::check(cx, raw.security_groups, &head.name);
    let network_acls = network_acls::check(cx, raw.network_acls);
    Stack {
        name: head.name,
        region: head.region.unwrap_or_default(),
        tags: head.tags,
        ignore_tags: head.ignore_tags,
        network,
        security_groups,
        network_acls,
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
pub(super) fn key_segment(key: &str) -> Cow<'_, str> {
    if !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        Cow::Borrowed(key)
    } else {
        Cow::Owned(format!("{key:?}"))
    }
}

/// A map's entries in the order they appear in the file. The maps iterate by name, but when two entries clash
/// ("already used by ...") the diagnostic belongs on the later one, the one a reader meets second.
pub(super) fn in_file_order<V>(map: BTreeMap<Spanned<String>, V>) -> Vec<(Spanned<String>, V)> {
    let mut entries: Vec<_> = map.into_iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

/// The article for a protocol name in prose: "a tcp rule", "an all rule".
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
}

/// Collects the diagnostics of one file. Tier checks take it as `cx`, report through [`Checker::err`], and use
/// its shared checks so the same mistake reads the same in every table.
pub(super) struct Checker<'a> {
    file: &'a Path,
    text: &'a str,
    diags: Vec<Diagnostic>,
}

impl Checker<'_> {
    pub(super) fn err(&mut self, span: Range<usize>, field: impl Into<String>, message: impl Into<String>) {
        let (line, column) = line_col(self.text, span.start);
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        });
    }

    /// Any IPv4 CIDR, host bits zero.
    pub(super) fn cidr(&mut self, value: &Spanned<String>, field: &str) -> Option<Ipv4Net> {
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

    /// Logical names become part of addresses (`subnet.public_a`) and AWS names, so keep them plain.
    pub(super) fn ident(&mut self, name: &Spanned<String>, field: &str, allow_hyphen: bool) {
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
    pub(super) fn tier(
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

    pub(super) fn protocol(&mut self, value: &Spanned<String>, field: &str) -> Option<Protocol> {
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
    pub(super) fn ports(
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
