//! The `[network]` table: the VPC's address range and switches, its availability zones with one public and one
//! private subnet each, and the route tables attached to those subnets by tier.

use std::collections::{BTreeMap, BTreeSet};

use ipnet::Ipv4Net;
use serde::Deserialize;
use toml::Spanned;

use super::Tier;
use super::validate::{Checker, Shape, in_file_order, key_segment};

#[derive(Debug, Clone)]
pub struct Network {
    pub cidr: Ipv4Net,
    pub internet_gateway: bool,
    pub dns_hostnames: bool,
    /// Internet egress for the private subnets.
    pub nat: Nat,
    /// Sorted by name; at least two, in distinct availability zones.
    pub zones: Vec<Zone>,
    pub route_tables: Vec<RouteTable>,
}

/// NAT gateways for the private subnets' egress (`[network] nat`): none, one shared by every zone (cheaper, but
/// a zone outage cuts the others' egress), or one per zone (each zone's private subnets use their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    None,
    Single,
    PerZone,
}

impl Nat {
    pub fn as_str(self) -> &'static str {
        match self {
            Nat::None => "none",
            Nat::Single => "single",
            Nat::PerZone => "per_zone",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Zone {
    pub name: String,
    pub availability_zone: String,
    pub public_subnet: Ipv4Net,
    pub private_subnet: Ipv4Net,
}

#[derive(Debug, Clone)]
pub struct RouteTable {
    pub name: String,
    pub tier: Tier,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub destination: Ipv4Net,
    pub target: RouteTarget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteTarget {
    InternetGateway,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    cidr: Spanned<String>,
    #[serde(default = "yes")]
    internet_gateway: bool,
    #[serde(default = "yes")]
    dns_hostnames: bool,
    nat: Option<Spanned<String>>,
    zones: Spanned<BTreeMap<Spanned<String>, Spanned<RawZone>>>,
    #[serde(default)]
    route_tables: BTreeMap<Spanned<String>, Spanned<RawRouteTable>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    availability_zone: Spanned<String>,
    public_subnet: Spanned<String>,
    private_subnet: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRouteTable {
    tier: Spanned<String>,
    #[serde(default)]
    routes: Vec<Spanned<RawRoute>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    destination: Spanned<String>,
    target: Spanned<String>,
}

/// `[network]`'s keys and the tables under it, for finding every unknown key at once.
pub(super) fn shape() -> Shape {
    let route_table = Shape::table::<RawRouteTable>(vec![("routes", Shape::each(Shape::table::<RawRoute>(vec![])))]);
    Shape::table::<RawNetwork>(vec![
        ("zones", Shape::named(Shape::table::<RawZone>(vec![]))),
        ("route_tables", Shape::named(route_table)),
    ])
}

/// `region` is `None` when `[stack]` has no usable region (already reported); zones are then taken as written.
pub(super) fn check(cx: &mut Checker, raw: Spanned<RawNetwork>, region: Option<&str>) -> Network {
    let raw = raw.into_inner();
    let cidr = block(cx, &raw.cidr, "network.cidr");
    let zones = zones(cx, raw.zones, cidr, region);
    let route_tables = route_tables(cx, raw.route_tables, cidr, raw.internet_gateway);
    let nat = nat(cx, raw.nat.as_ref(), raw.internet_gateway, &route_tables);
    Network {
        cidr: cidr.unwrap_or_default(),
        internet_gateway: raw.internet_gateway,
        dns_hostnames: raw.dns_hostnames,
        nat,
        zones,
        route_tables,
    }
}

/// `nat`: NAT gateways sit in the public subnets and reach the internet through the gateway; the private route
/// table gets their default route, so it must not declare one of its own.
fn nat(cx: &mut Checker, raw: Option<&Spanned<String>>, internet_gateway: bool, tables: &[RouteTable]) -> Nat {
    let Some(raw) = raw else { return Nat::None };
    let nat = match raw.get_ref().as_str() {
        "none" => Nat::None,
        "single" => Nat::Single,
        "per_zone" => Nat::PerZone,
        other => {
            cx.err(
                raw.span(),
                "network.nat",
                format!("unknown NAT setting {other:?}; valid: \"none\", \"single\" (one gateway), \"per_zone\" (one per zone)"),
            );
            return Nat::None;
        }
    };
    if nat == Nat::None {
        return nat;
    }
    if !internet_gateway {
        cx.err(
            raw.span(),
            "network.nat",
            "NAT gateways reach the internet through the internet gateway, but network.internet_gateway is false: set it to true or nat = \"none\"",
        );
    }
    let default_route = Ipv4Net::default();
    if let Some(t) =
        tables.iter().find(|t| t.tier == Tier::Private && t.routes.iter().any(|r| r.destination == default_route))
    {
        cx.err(
            raw.span(),
            "network.nat",
            format!(
                "the NAT gateways take the private subnets' default route (0.0.0.0/0), but network.route_tables.{} routes it elsewhere: remove that route or set nat = \"none\"",
                t.name
            ),
        );
    }
    if !tables.iter().any(|t| t.tier == Tier::Private) {
        cx.err(
            raw.span(),
            "network.nat",
            "NAT gateways route the private subnets' egress, but no route table claims tier \"private\": add [network.route_tables.private] with tier = \"private\"",
        );
    }
    nat
}

/// A CIDR block as AWS accepts it for a VPC or subnet: network address only, prefix /16 to /28.
fn block(cx: &mut Checker, value: &Spanned<String>, field: &str) -> Option<Ipv4Net> {
    let net = cx.cidr(value, field)?;
    if !(16..=28).contains(&net.prefix_len()) {
        cx.err(value.span(), field, format!("{net} has a /{} prefix; AWS allows /16 to /28 here", net.prefix_len()));
        return None;
    }
    Some(net)
}

/// `vpc` is `None` when `network.cidr` is invalid (already reported), which skips the must-lie-inside check.
fn zones(
    cx: &mut Checker,
    raw: Spanned<BTreeMap<Spanned<String>, Spanned<RawZone>>>,
    vpc: Option<Ipv4Net>,
    region: Option<&str>,
) -> Vec<Zone> {
    let zones_span = raw.span();
    let raw = raw.into_inner();
    if raw.len() < 2 {
        cx.err(
            zones_span,
            "network.zones",
            format!(
                "{} availability zone{} defined; a highly available stack needs at least two (add another [network.zones.NAME] table)",
                raw.len(),
                if raw.len() == 1 { " is" } else { "s are" }
            ),
        );
    }
    let mut zones = Vec::new();
    let mut seen_az: BTreeMap<String, String> = BTreeMap::new();
    // Every subnet checked so far, for the overlap check: (field, block).
    let mut subnets: Vec<(String, Ipv4Net)> = Vec::new();
    for (zname, zone) in in_file_order(raw) {
        let zfield = format!("network.zones.{}", key_segment(zname.get_ref()));
        cx.ident(&zname, &zfield, false);
        let zone = zone.into_inner();
        let az = availability_zone(cx, &zone.availability_zone, &format!("{zfield}.availability_zone"), region);
        // A zone already reported as outside the region is not also reported as a duplicate.
        if let Some(az) = &az
            && let Some(other) = seen_az.insert(az.clone(), zfield.clone())
        {
            cx.err(
                zone.availability_zone.span(),
                format!("{zfield}.availability_zone"),
                format!("{az} is already used by {other}; each zone must be a different availability zone"),
            );
        }
        let public_subnet = subnet(cx, &zone.public_subnet, format!("{zfield}.public_subnet"), vpc, &mut subnets);
        let private_subnet = subnet(cx, &zone.private_subnet, format!("{zfield}.private_subnet"), vpc, &mut subnets);
        let availability_zone = az.unwrap_or_else(|| zone.availability_zone.into_inner());
        zones.push(Zone { name: zname.into_inner(), availability_zone, public_subnet, private_subnet });
    }
    zones.sort_by(|a, b| a.name.cmp(&b.name));
    zones
}

/// The full availability zone name. A bare letter ("a") means that zone of the stack's region, which keeps a
/// spec portable across `--region`. Without a usable region (already reported) the spelling is taken as is.
/// `None` when the zone is not one of the region's (reported here).
fn availability_zone(cx: &mut Checker, value: &Spanned<String>, field: &str, region: Option<&str>) -> Option<String> {
    let written = value.get_ref();
    let Some(region) = region else { return Some(written.clone()) };
    let az = if written.chars().count() == 1 { format!("{region}{written}") } else { written.clone() };
    // A regular zone is the region name plus one letter (us-east-1a ... us-east-1f).
    let is_zone = az.strip_prefix(region).is_some_and(|s| s.len() == 1 && s.chars().all(|c| c.is_ascii_lowercase()));
    if !is_zone {
        // Suggest the same zone letter in this region ("us-east-1b" under --region us-west-2 -> "us-west-2b"),
        // and the letter alone, which keeps the file portable.
        let letter = written.chars().last().filter(|c| c.is_ascii_lowercase()).unwrap_or('a');
        cx.err(
            value.span(),
            field,
            format!(
                "{written:?} is not an availability zone of region {region}: write \"{region}{letter}\" or just \"{letter}\" (that zone of the stack's region)"
            ),
        );
        return None;
    }
    Some(az)
}

/// One subnet's block: valid, inside the VPC, and clear of every subnet in `earlier` (to which it is added). An
/// invalid block (reported) becomes a 0.0.0.0/0 placeholder; the stack is rejected anyway.
fn subnet(
    cx: &mut Checker,
    value: &Spanned<String>,
    field: String,
    vpc: Option<Ipv4Net>,
    earlier: &mut Vec<(String, Ipv4Net)>,
) -> Ipv4Net {
    let Some(net) = block(cx, value, &field) else { return Ipv4Net::default() };
    if let Some(vpc) = vpc
        && !vpc.contains(&net)
    {
        cx.err(
            value.span(),
            &field,
            format!("{net} is outside the VPC CIDR {vpc} (network.cidr); subnets must lie inside it"),
        );
    }
    if let Some((other, on)) = earlier.iter().find(|(_, o)| o.contains(&net) || net.contains(o)) {
        cx.err(
            value.span(),
            &field,
            format!("{net} overlaps {other} ({on}); every subnet needs its own address range"),
        );
    }
    earlier.push((field, net));
    net
}

/// Each tier may be claimed by one route table; a table whose tier is invalid or taken is dropped (reported).
fn route_tables(
    cx: &mut Checker,
    raw: BTreeMap<Spanned<String>, Spanned<RawRouteTable>>,
    vpc: Option<Ipv4Net>,
    internet_gateway: bool,
) -> Vec<RouteTable> {
    let mut route_tables = Vec::new();
    let mut tiers = BTreeMap::new();
    for (name, rt) in in_file_order(raw) {
        let field = format!("network.route_tables.{}", key_segment(name.get_ref()));
        cx.ident(&name, &field, false);
        let rt = rt.into_inner();
        let tier = cx.tier(&rt.tier, &format!("{field}.tier"), &mut tiers, &field, "route table");
        let routes = routes(cx, &rt.routes, &field, vpc, internet_gateway);
        if let Some(tier) = tier {
            route_tables.push(RouteTable { name: name.into_inner(), tier, routes });
        }
    }
    route_tables.sort_by(|a, b| a.name.cmp(&b.name));
    route_tables
}

/// One table's routes: a known target, a destination outside the VPC (AWS routes that locally), each destination
/// once.
fn routes(
    cx: &mut Checker,
    raw: &[Spanned<RawRoute>],
    table_field: &str,
    vpc: Option<Ipv4Net>,
    internet_gateway: bool,
) -> Vec<Route> {
    let mut routes = Vec::new();
    let mut dests = BTreeSet::new();
    for (i, route) in raw.iter().enumerate() {
        let rfield = format!("{table_field}.routes[{i}]");
        let route = route.get_ref();
        let target = match route.target.get_ref().as_str() {
            "internet_gateway" => {
                if !internet_gateway {
                    cx.err(
                        route.target.span(),
                        format!("{rfield}.target"),
                        "targets the internet gateway, but network.internet_gateway is false: set it to true or remove this route",
                    );
                }
                Some(RouteTarget::InternetGateway)
            }
            other => {
                cx.err(
                    route.target.span(),
                    format!("{rfield}.target"),
                    format!("unknown route target {other:?}; valid targets: \"internet_gateway\""),
                );
                None
            }
        };
        let dest_field = format!("{rfield}.destination");
        let Some(dest) = cx.cidr(&route.destination, &dest_field) else { continue };
        // 0.0.0.0/0 contains every VPC CIDR but is the default route, not a clash with the local one.
        if let Some(vpc) = vpc
            && (vpc.contains(&dest) || dest.contains(&vpc))
            && dest.prefix_len() > 0
        {
            cx.err(
                route.destination.span(),
                &dest_field,
                format!(
                    "{dest} overlaps the VPC CIDR {vpc}, which AWS routes locally; route only destinations outside {vpc}"
                ),
            );
        }
        if !dests.insert(dest) {
            cx.err(
                route.destination.span(),
                &dest_field,
                format!("a route to {dest} is already defined in this table; each destination can have one route"),
            );
        }
        if let Some(target) = target {
            routes.push(Route { destination: dest, target });
        }
    }
    routes
}
