//! The stack spec: a TOML file becomes a checked [`Stack`] in two steps, the way ripgrep turns raw flags into
//! validated ones. Serde types mirror the file (strict about unknown keys, spans kept); checks then give each
//! value its meaning and collect every problem at once, each pointing at file, line, column and field. Everything
//! after this module may assume a `Stack` is internally consistent (CIDRs nest, names resolve, rule numbers are
//! unique).
//!
//! Layout: one file per top-level table ("tier" of the spec), holding that table's serde types, its checked
//! types and its checks, behind one `check` function:
//!
//! - `stack.rs`: `[stack]` (name, region, tags, ignore_tags);
//! - `network.rs`: `[network]` (VPC, zones and their subnets, route tables);
//! - `security_groups.rs`: `[security_groups.NAME]`;
//! - `network_acls.rs`: `[network_acls.NAME]`;
//! - `web.rs`: `[web]` (the web instances);
//! - `load_balancer.rs`: `[load_balancer]` (ALB, target group, listeners, health check);
//! - `dns.rs`: `[dns]` (hosted zone, alias records);
//! - `database.rs`: `[database]` (RDS primary and read replicas);
//! - `static_assets.rs`: `[static_assets]` (bucket, CloudFront, the folder kept in sync).
//!
//! `validate.rs` holds the machinery they share: [`parse`], the diagnostics collector, field paths, line/column,
//! and the checks several tiers use (CIDRs, names, tier claims, protocols and ports). Types more than one tier
//! uses ([`Tier`], [`Protocol`], [`PortRange`]) live here.
//!
//! Adding a tier (a load balancer, a database, ...) is one new file here with its `check` and its `shape` (which
//! of its keys hold tables, so every unknown key is reported at once), plus one field in [`Stack`], and in
//! `validate.rs` one field in `RawSpec`, one line in `spec_shape` and one call in `check`.

mod database;
mod dns;
mod load_balancer;
pub mod logging;
mod network;
mod network_acls;
mod security_groups;
mod stack;
mod static_assets;
mod validate;
mod web;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub use database::{Database, Engine, Password, Secret};
pub use dns::{Dns, RecordName};
pub use load_balancer::{HealthCheck, LoadBalancer};
pub use logging::{Logging, SecretVar};
pub use network::{Nat, Network, Route, RouteTable, RouteTarget, Zone};
pub use network_acls::{NaclRule, NetworkAcl};
pub use security_groups::{Peer, SecurityGroup, SgRule};
pub use stack::RegionChoice;
pub use static_assets::{AssetFile, RESERVED_PREFIX, StaticAssets, content_type};
pub use validate::parse;
pub use web::{Ami, Web};

/// A checked stack.
#[derive(Debug, Clone)]
pub struct Stack {
    pub name: String,
    pub region: String,
    /// Extra tags put on every resource besides the ownership tags.
    pub tags: BTreeMap<String, String>,
    /// Tag keys (or `prefix*` patterns) left to other tools: ignored in diffs, never removed.
    pub ignore_tags: Vec<String>,
    pub network: Network,
    pub security_groups: Vec<SecurityGroup>,
    pub network_acls: Vec<NetworkAcl>,
    /// `[web]`: the web instances, if declared.
    pub web: Option<Web>,
    /// `[load_balancer]`: in front of the web instances.
    pub load_balancer: Option<LoadBalancer>,
    /// `[dns]`: the hosted zone and its alias records.
    pub dns: Option<Dns>,
    /// `[database]`: the RDS primary and its read replicas.
    pub database: Option<Database>,
    /// `[static_assets]`: the bucket, its CloudFront distribution and the folder synced into it.
    pub static_assets: Option<StaticAssets>,
    /// `[logging]`: the SNS topic, the Node.js function it invokes, their log groups and the function's role.
    pub logging: Option<Logging>,
    /// The AWS account the stack is planned in, when known: names derived from it (the assets bucket's) need it.
    /// Set by the plan (see `crate::plan::build_selected`), never by the file.
    pub account: Option<String>,
}

impl Stack {
    /// The secrets the spec takes from the environment that are unset (or not valid), as the problem each is.
    pub fn unset_secrets(&self) -> impl Iterator<Item = &Diagnostic> {
        let passwords = self.database.iter().filter_map(|db| db.password.as_ref()).map(|p| &p.value);
        let variables = self.logging.iter().flat_map(|l| l.secret_environment.iter()).map(|v| &v.value);
        passwords.chain(variables).filter_map(|v| v.as_ref().err())
    }

    /// Secrets the spec takes from the environment that are missing (an unset variable), for the commands that
    /// send them to AWS: plan, apply and import; validate only notes them, and destroy, show and output need none.
    pub fn require_secrets(&self) -> Result<(), SpecError> {
        let missing: Vec<Diagnostic> = self.unset_secrets().cloned().collect();
        if missing.is_empty() { Ok(()) } else { Err(SpecError::Invalid(missing)) }
    }
}

/// Which subnets of every zone a route table or network ACL applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Tier {
    Public,
    Private,
}

impl Tier {
    pub const ALL: [Tier; 2] = [Tier::Public, Tier::Private];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Public => "public",
            Tier::Private => "private",
        }
    }

    /// The logical name of this tier's subnet in `zone`, e.g. `public_a`.
    pub fn subnet_name(self, zone: &str) -> String {
        format!("{}_{zone}", self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    All,
    Tcp,
    Udp,
    Icmp,
}

impl Protocol {
    pub const NAMES: &'static str = "\"tcp\", \"udp\", \"icmp\" or \"all\"";

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::All => "all",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }

    /// The IANA number AWS uses in network ACL entries (and accepts in security group rules).
    pub fn number(self) -> &'static str {
        match self {
            Protocol::All => "-1",
            Protocol::Tcp => "6",
            Protocol::Udp => "17",
            Protocol::Icmp => "1",
        }
    }

    /// Reads either spelling AWS returns: a name (`tcp`) or a number (`6`).
    pub fn from_aws(s: &str) -> Option<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "-1" | "all" => Some(Protocol::All),
            "6" | "tcp" => Some(Protocol::Tcp),
            "17" | "udp" => Some(Protocol::Udp),
            "1" | "icmp" => Some(Protocol::Icmp),
            _ => None,
        }
    }

    /// Whether rules of this protocol carry a port range.
    pub fn has_ports(self) -> bool {
        matches!(self, Protocol::Tcp | Protocol::Udp)
    }
}

/// An inclusive port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortRange {
    pub from: u16,
    pub to: u16,
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.from == self.to { write!(f, "{}", self.from) } else { write!(f, "{}-{}", self.from, self.to) }
    }
}

/// One problem in a stack file, located precisely enough for an editor to jump to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the offending field, e.g. `network.zones.b.public_subnet`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}: {}", self.file.display(), self.line, self.column, self.field, self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("cannot read stack file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}", render_diagnostics(.0))]
    Invalid(Vec<Diagnostic>),
}

fn render_diagnostics(diags: &[Diagnostic]) -> String {
    let mut out = format!("{} problem{} in the stack file:", diags.len(), if diags.len() == 1 { "" } else { "s" });
    for d in diags {
        out.push_str("\n  ");
        out.push_str(&d.to_string());
    }
    out
}

/// Reads and checks a stack file.
pub fn load(path: &Path, region: &RegionChoice) -> Result<Stack, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read { path: path.to_path_buf(), source })?;
    parse(path, &text, region)
}

#[cfg(test)]
mod tests;

/// Whether `key` matches one of `patterns` (exact keys, or prefixes written `prefix*`).
pub fn tag_ignored(patterns: &[String], key: &str) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => key == p,
    })
}
