//! Text -> checked [`Stack`], minus the tier-specific checks. [`parse`] reports every unknown key, deserializes
//! the rest of the file into [`RawSpec`] and hands each top-level table to its tier module; this file holds what
//! every tier shares: the diagnostics collector ([`Checker`]), the unknown-key pass ([`Shape`]), serde errors
//! turned into field paths, line/column, and checks more than one tier needs (CIDR blocks, logical names, tier
//! claims, protocols and ports).
//!
//! Every check records a [`Diagnostic`] and carries on, so one run of `webscale validate` lists every problem in
//! the file rather than the first.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::path::Path;

use ipnet::Ipv4Net;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned};
use serde_path_to_error::Segment;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::database::{self, RawDatabase};
use super::dns::{self, RawDns};
use super::load_balancer::{self, RawLoadBalancer};
use super::logging::{self, RawLogging};
use super::network::{self, RawNetwork};
use super::network_acls::{self, RawNetworkAcl};
use super::security_groups::{self, RawSecurityGroup};
use super::stack::{self, RawStack, RegionChoice};
use super::static_assets::{self, RawStaticAssets};
use super::web::{self, RawWeb};
use super::{Diagnostic, PortRange, Protocol, SpecError, Stack, Tier};

/// The file's top-level tables, one per tier. Strict about unknown keys, so a typo is an error, not a silently
/// ignored setting. [`unknown_keys`] reports (and removes) every unknown key it can find before this type sees the
/// file, so the strictness here is only the backstop for a table no [`Shape`] describes.
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
    web: Option<Spanned<RawWeb>>,
    load_balancer: Option<Spanned<RawLoadBalancer>>,
    dns: Option<Spanned<RawDns>>,
    database: Option<Spanned<RawDatabase>>,
    static_assets: Option<Spanned<RawStaticAssets>>,
    logging: Option<Spanned<RawLogging>>,
}

/// The shape of the whole file: [`RawSpec`] and each tier's tables under it.
pub(super) fn spec_shape() -> Shape {
    Shape::table::<RawSpec>(vec![
        ("stack", stack::shape()),
        ("network", network::shape()),
        ("security_groups", Shape::named(security_groups::shape())),
        ("network_acls", Shape::named(network_acls::shape())),
        ("web", web::shape()),
        ("load_balancer", load_balancer::shape()),
        ("dns", dns::shape()),
        ("database", database::shape()),
        ("static_assets", static_assets::shape()),
        ("logging", logging::shape()),
    ])
}

/// Parses and checks the text of a stack file; `path` is only used to name the file in diagnostics.
///
/// Three passes, each reporting what it finds: unknown keys (all of them, see [`unknown_keys`]), then the shape
/// serde checks (types, required fields: the first problem only, as serde stops there), then the tiers' checks.
/// The checks need every required key: when one is missing (misspelt, say), they do not run, and the report is
/// the unknown keys and serde's first problem (unless that is the misspelt key, see [`unknown_keys`]).
pub fn parse(path: &Path, text: &str, region: &RegionChoice) -> Result<Stack, SpecError> {
    let mut cx = Checker { file: path, text, diags: Vec::new() };
    let mut root = match DeTable::parse(text) {
        Err(e) => {
            cx.err(e.span().unwrap_or(0..0), "(syntax)", e.message().trim());
            return Err(SpecError::Invalid(cx.diags));
        }
        Ok(root) => Spanned::new(root.span(), DeValue::Table(root.into_inner())),
    };
    let mut misspelt = BTreeSet::new();
    unknown_keys(&mut cx, &mut root, &spec_shape(), "", &mut misspelt);
    let span = root.span();
    let DeValue::Table(root) = root.into_inner() else { unreachable!("a document is a table") };
    let raw = match serde_path_to_error::deserialize::<_, RawSpec>(toml::Deserializer::from(Spanned::new(span, root))) {
        Ok(raw) => Some(raw),
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
            None
        }
    };
    let stack = raw.map(|raw| check(&mut cx, raw, region));
    // "missing field `public_subnet`" next to "unknown field `public_subnets`" says the same thing twice.
    cx.diags.retain(|d| !misspelt.contains(&d.field));
    match stack {
        Some(stack) if cx.diags.is_empty() => Ok(stack),
        _ => {
            // Checks run tier by tier (network before security groups, whatever the file's order), after the
            // unknown keys of every tier, but a reader goes top to bottom.
            // The sort is stable, so two problems at one spot keep the order they were found in.
            cx.diags.sort_by_key(|d| (d.line, d.column));
            Err(SpecError::Invalid(cx.diags))
        }
    }
}

/// Which keys a value of the file may hold, and what lies under them: enough to find every unknown key in one
/// pass over the document, before serde (which stops at the first) reads it.
///
/// A table's keys come from its serde type itself ([`keys_of`]), so they cannot drift from what serde accepts;
/// only which keys hold further tables is written out, by each tier's `shape`. A table missing from a shape is
/// still checked, by the strict serde pass, just one unknown key at a time.
#[derive(Debug)]
pub(super) enum Shape {
    /// A table with a fixed set of keys (a serde struct), and the shape under each key that holds more tables.
    /// The other keys hold plain values: strings, numbers, lists of strings, or tables whose keys the user picks
    /// and whose values are plain (`tags`); nothing under them is checked here.
    Table { keys: &'static [&'static str], nested: Vec<(&'static str, Shape)> },
    /// A table of entries the user names (zones, groups), each of one shape.
    Named(Box<Shape>),
    /// An array (of rules), each element of one shape.
    Each(Box<Shape>),
}

impl Shape {
    /// The serde struct `T`, with the shapes of its keys that hold tables (any other key holds a plain value).
    pub(super) fn table<T: DeserializeOwned>(nested: Vec<(&'static str, Shape)>) -> Shape {
        Shape::Table { keys: keys_of::<T>(), nested }
    }

    pub(super) fn named(entry: Shape) -> Shape {
        Shape::Named(Box::new(entry))
    }

    pub(super) fn each(item: Shape) -> Shape {
        Shape::Each(Box::new(item))
    }
}

/// The keys serde accepts in the struct `T`: the list a derived `Deserialize` hands to `deserialize_struct`,
/// the same one its own "unknown field" error quotes. Asked of a deserializer that records it and stops.
///
/// Panics if `T` is not a plain derived struct (a map, a `Spanned` wrapper, a struct with `#[serde(flatten)]`).
fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    #[derive(Debug)]
    struct Stop(Option<&'static [&'static str]>);

    impl fmt::Display for Stop {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("not a struct")
        }
    }

    impl std::error::Error for Stop {}

    impl de::Error for Stop {
        fn custom<M: fmt::Display>(_: M) -> Self {
            Stop(None)
        }
    }

    struct Probe;

    impl<'de> de::Deserializer<'de> for Probe {
        type Error = Stop;

        fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop(None))
        }

        fn deserialize_struct<V: de::Visitor<'de>>(
            self,
            name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            // `Spanned<T>` is a struct to serde too, with its own private fields.
            Err(Stop(Some(fields).filter(|_| !name.starts_with("$__serde_spanned"))))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
            unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
        }
    }

    match T::deserialize(Probe) {
        Err(Stop(Some(fields))) => fields,
        _ => panic!("{} is not a struct serde reads key by key", std::any::type_name::<T>()),
    }
}

/// Reports every key under `value` that its shape does not have, each at the key, with its field path and the
/// keys its table does take (in serde's own words, as the strict pass would say it); and removes them, so the
/// serde pass that follows gets past them and the checks after it still run. A value of the wrong type is left
/// for serde to report.
///
/// A key the table lacks that an unknown key looks like ([`looks_like`]) goes into `misspelt`, by field path: a
/// later complaint that it is missing (serde's "missing field", or a check's "a tcp rule needs ports") would only
/// repeat the problem, and is dropped. A key unlike every unknown one is still reported missing.
fn unknown_keys(
    cx: &mut Checker,
    value: &mut Spanned<DeValue>,
    shape: &Shape,
    field: &str,
    misspelt: &mut BTreeSet<String>,
) {
    let path = |key: &str| {
        let mut path = field.to_string();
        push_key(&mut path, key);
        path
    };
    match (shape, value.get_mut()) {
        (Shape::Table { keys, nested }, DeValue::Table(table)) => {
            let mut unknown = Vec::new();
            for (key, value) in table.iter_mut() {
                let name: &str = key.get_ref();
                if !keys.contains(&name) {
                    let message = <toml::de::Error as de::Error>::unknown_field(name, keys);
                    cx.err(key.span(), path(name), message.message().trim());
                    unknown.push(name.to_string());
                } else if let Some((_, shape)) = nested.iter().find(|(k, _)| *k == name) {
                    unknown_keys(cx, value, shape, &path(name), misspelt);
                }
            }
            for name in &unknown {
                table.remove(name.as_str());
            }
            let absent = keys.iter().filter(|k| table.get(**k).is_none());
            misspelt.extend(absent.filter(|k| unknown.iter().any(|u| looks_like(u, k))).map(|k| path(k)));
        }
        (Shape::Named(shape), DeValue::Table(table)) => {
            for (key, value) in table.iter_mut() {
                unknown_keys(cx, value, shape, &path(key.get_ref()), misspelt);
            }
        }
        (Shape::Each(shape), DeValue::Array(items)) => {
            for (i, item) in items.iter_mut().enumerate() {
                unknown_keys(cx, item, shape, &format!("{field}[{i}]"), misspelt);
            }
        }
        _ => {}
    }
}

/// Whether the unknown key `unknown` could be `known` misspelt: it holds it (`public_subnets`, `cidr_block`), or
/// it is at most two typos from it (`prots`, `regoin`, `netwrk`).
fn looks_like(unknown: &str, known: &str) -> bool {
    unknown.contains(known) || typos(unknown, known) <= 2
}

/// The fewest typos (a character added, dropped or changed, or two neighbours swapped) that turn `a` into `b`: the
/// optimal string alignment distance.
fn typos(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    // d[i][j]: typos between the first i characters of a and the first j of b.
    let mut d: Vec<Vec<usize>> = (0..=a.len()).map(|i| (0..=b.len()).map(|j| i.max(j)).collect()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let change = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + change);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// Checks each tier's table. `[stack]` goes first because later tiers use its region and name; the order of the
/// calls is also the order of two problems found at one spot.
fn check(cx: &mut Checker, raw: RawSpec, region: &RegionChoice) -> Stack {
    let head = stack::check(cx, raw.stack, region);
    let network = network::check(cx, raw.network, head.region.as_deref());
    let security_groups = security_groups::check(cx, raw.security_groups, &head.name);
    let network_acls = network_acls::check(cx, raw.network_acls);
    let groups: Vec<String> = security_groups.iter().map(|g| g.name.clone()).collect();
    let file = cx.file;
    let web = raw.web.map(|w| web::check(cx, w, &groups, file));
    let load_balancer = raw.load_balancer.map(|lb| {
        let span = lb.span();
        let lb = load_balancer::check(cx, lb, &groups);
        if web.is_none() {
            cx.err(
                span,
                "load_balancer",
                "a load balancer spreads traffic over the web instances, but the file has no [web]: add one",
            );
        }
        lb
    });
    let dns = raw.dns.map(|d| dns::check(cx, d, load_balancer.is_some()));
    let zones: Vec<String> = network.zones.iter().map(|z| z.name.clone()).collect();
    let web_group = web.as_ref().map(|w| w.security_group.as_str());
    let database = raw.database.map(|d| database::check(cx, d, &security_groups, web_group, &zones));
    let zone = dns.as_ref().map(|d| d.zone.as_str());
    let static_assets = raw.static_assets.map(|a| static_assets::check(cx, a, file, zone));
    let logging = raw.logging.map(|l| logging::check(cx, l, file));
    Stack {
        name: head.name,
        region: head.region.unwrap_or_default(),
        tags: head.tags,
        ignore_tags: head.ignore_tags,
        network,
        security_groups,
        network_acls,
        web,
        load_balancer,
        dns,
        database,
        static_assets,
        logging,
        account: None,
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
    /// A problem at `span`, not reported now: for checks that only some commands need (a secret from the
    /// environment, required by plan and apply but not by destroy).
    pub(super) fn diagnostic(
        &self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        let (line, column) = line_col(self.text, span.start);
        Diagnostic { file: self.file.to_path_buf(), line, column, field: field.into(), message: message.into() }
    }

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
