//! The stack file exactly as written: serde types that mirror the TOML, strict about unknown keys, and
//! carrying source spans on every value a later semantic check may need to point at.
//!
//! Nothing here interprets values: `validate.rs` turns this into the checked [`super::Stack`].

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    /// Spanned so a problem with the stack as a whole (no region at all) can point at `[stack]`.
    pub stack: Spanned<RawStack>,
    pub network: Spanned<RawNetwork>,
    #[serde(default)]
    pub security_groups: BTreeMap<Spanned<String>, Spanned<RawSecurityGroup>>,
    #[serde(default)]
    pub network_acls: BTreeMap<Spanned<String>, Spanned<RawNetworkAcl>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStack {
    pub name: Spanned<String>,
    /// Optional: without it the stack follows AWS_REGION / the profile's region.
    pub region: Option<Spanned<String>>,
    #[serde(default)]
    pub tags: BTreeMap<Spanned<String>, Spanned<String>>,
    /// Tag keys other tools manage (`"CreatedBy"`, or a prefix `"cost:*"`): never diffed, never removed.
    #[serde(default)]
    pub ignore_tags: Vec<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    pub cidr: Spanned<String>,
    #[serde(default = "yes")]
    pub internet_gateway: bool,
    #[serde(default = "yes")]
    pub dns_hostnames: bool,
    pub zones: Spanned<BTreeMap<Spanned<String>, Spanned<RawZone>>>,
    #[serde(default)]
    pub route_tables: BTreeMap<Spanned<String>, Spanned<RawRouteTable>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawZone {
    pub availability_zone: Spanned<String>,
    pub public_subnet: Spanned<String>,
    pub private_subnet: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRouteTable {
    pub tier: Spanned<String>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub destination: Spanned<String>,
    pub target: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSecurityGroup {
    pub description: Option<Spanned<String>>,
    #[serde(default)]
    pub ingress: Vec<Spanned<RawSgRule>>,
    /// `None` keeps AWS's default allow-all egress; `Some([])` removes it.
    pub egress: Option<Vec<Spanned<RawSgRule>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSgRule {
    pub protocol: Spanned<String>,
    /// An integer (`80`) or an inclusive range string (`"1024-65535"`); absent for `all` and `icmp`.
    pub ports: Option<Spanned<toml::Value>>,
    pub cidr: Option<Spanned<String>>,
    pub security_group: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetworkAcl {
    pub tier: Spanned<String>,
    #[serde(default)]
    pub ingress: Vec<Spanned<RawNaclRule>>,
    #[serde(default)]
    pub egress: Vec<Spanned<RawNaclRule>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNaclRule {
    pub rule: Spanned<i64>,
    pub protocol: Spanned<String>,
    pub ports: Option<Spanned<toml::Value>>,
    pub cidr: Spanned<String>,
    pub action: Spanned<String>,
}
