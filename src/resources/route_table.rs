//! `route_table.NAME`: a route table for one tier, its routes, and its association with that tier's subnets.
//!
//! Associations are attributes of the table rather than resources of their own: they carry no tags, and a subnet
//! has exactly one, so the table that claims a tier owns them.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, ResourceType, Route};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ec2_tags::{self, describe_owned, desired_tags, id_ref, tag_spec};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx, reference};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{Nat, RouteTarget, Stack, Tier};

pub struct RouteTable;

#[derive(Deserialize)]
struct Attrs {
    vpc: String,
    routes: Vec<RouteAttrs>,
    subnets: Vec<String>,
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, PartialEq)]
struct RouteAttrs {
    /// An IPv4 CIDR, an IPv6 CIDR or a prefix list id (`pl-...`): see [`Destination`].
    destination: String,
    /// The target's id; `None` only for a live route whose target AWS no longer reports.
    #[serde(default)]
    target: Option<String>,
}

/// The three kinds of route destination, each named by its own field in CreateRoute/ReplaceRoute/DeleteRoute.
#[derive(Debug, PartialEq)]
enum Destination<'a> {
    Ipv4(&'a str),
    Ipv6(&'a str),
    PrefixList(&'a str),
}

impl<'a> Destination<'a> {
    fn of(destination: &'a str) -> Destination<'a> {
        if destination.starts_with("pl-") {
            Destination::PrefixList(destination)
        } else if destination.contains(':') {
            Destination::Ipv6(destination)
        } else {
            Destination::Ipv4(destination)
        }
    }

    fn ipv4(&self) -> Option<String> {
        matches!(self, Destination::Ipv4(_)).then(|| self.as_str().to_string())
    }

    fn ipv6(&self) -> Option<String> {
        matches!(self, Destination::Ipv6(_)).then(|| self.as_str().to_string())
    }

    fn prefix_list(&self) -> Option<String> {
        matches!(self, Destination::PrefixList(_)).then(|| self.as_str().to_string())
    }

    fn as_str(&self) -> &'a str {
        match self {
            Destination::Ipv4(d) | Destination::Ipv6(d) | Destination::PrefixList(d) => d,
        }
    }
}

/// One live route as `{"destination": ..., "target": ...}`, the shape desired routes have; `None` for the routes
/// that are not the stack's to manage: the VPC's `local` routes (IPv4 and IPv6), propagated routes, and the
/// routes a gateway VPC endpoint keeps in the tables it is associated with.
///
/// Every other route is reported, whatever its destination or target, so that one added out of band shows as
/// drift and is removed: a route this read skipped would be invisible to the plan and live on for ever.
fn live_route(r: &Route) -> Option<Value> {
    // The VPC's local routes are AWS's, not ours; propagated routes belong to the VPN gateway (or route server).
    if r.gateway_id() == Some("local") || r.origin().is_some_and(|o| o.as_str() != "CreateRoute") {
        return None;
    }
    // A gateway endpoint (S3, DynamoDB) routes its service's prefix list to itself. The endpoint owns that route:
    // DeleteRoute refuses it, and it goes when the endpoint is disassociated from the table.
    if r.destination_prefix_list_id().is_some() && r.gateway_id().is_some_and(|g| g.starts_with("vpce-")) {
        return None;
    }
    let destination = r.destination_cidr_block().or(r.destination_ipv6_cidr_block()).or(r.destination_prefix_list_id());
    // An instance target also reports the instance's network interface: name the instance.
    let target = r
        .gateway_id()
        .or(r.nat_gateway_id())
        .or(r.transit_gateway_id())
        .or(r.vpc_peering_connection_id())
        .or(r.egress_only_internet_gateway_id())
        .or(r.carrier_gateway_id())
        .or(r.local_gateway_id())
        .or(r.instance_id())
        .or(r.network_interface_id())
        .or(r.core_network_arn())
        .or(r.odb_network_arn());
    // A target id the stack owns becomes a reference in the planner (`id_ref`); a route with no target AWS
    // reports still shows (with a null target) rather than vanishing from the plan.
    Some(json!({ "destination": destination?, "target": id_ref(target) }))
}

#[async_trait]
impl Kind for RouteTable {
    fn name(&self) -> &'static str {
        "route_table"
    }

    /// One table per `[network.route_tables]` entry, holding its tier's subnets. With NAT gateways (`[network]
    /// nat`) the private tier's tables also send their default route to one: `single` keeps one private table
    /// routing to the one gateway; `per_zone` needs a table per zone (`route_table.private_a`, ...), each holding
    /// that zone's private subnet and routing to that zone's gateway, since a table has one route per destination.
    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let mut out = Vec::new();
        for rt in &stack.network.route_tables {
            let routes: Vec<Value> = rt
                .routes
                .iter()
                .map(|r| {
                    let target = match r.target {
                        RouteTarget::InternetGateway => super::internet_gateway::address(),
                    };
                    json!({ "destination": r.destination.to_string(), "target": reference(&target) })
                })
                .collect();
            let egress = |zone: &str| {
                let nat = (rt.tier == Tier::Private).then(|| super::nat_gateway::serving(stack, zone)).flatten();
                // The spec refuses a private table with a default route of its own when nat is on.
                nat.map(|gateway| json!({ "destination": "0.0.0.0/0", "target": reference(&gateway) }))
            };
            if rt.tier == Tier::Private && stack.network.nat == Nat::PerZone {
                for zone in &stack.network.zones {
                    let address = Address::new(self.name(), &format!("{}_{}", rt.name, zone.name));
                    let routes = routes.iter().cloned().chain(egress(&zone.name)).collect();
                    let subnets = vec![reference(&super::subnet::address(rt.tier, &zone.name))];
                    out.push(table(stack, address, routes, subnets));
                }
            } else {
                let address = Address::new(self.name(), &rt.name);
                let first = stack.network.zones.first().map(|z| z.name.as_str()).unwrap_or_default();
                let routes = routes.iter().cloned().chain(egress(first)).collect();
                let subnets =
                    stack.network.zones.iter().map(|z| reference(&super::subnet::address(rt.tier, &z.name))).collect();
                out.push(table(stack, address, routes, subnets));
            }
        }
        out
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] =
            &[Attr::new("vpc").forces_replacement(), Attr::new("routes"), Attr::new("subnets"), Attr::new("tags")];
        SCHEMA
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let tables = describe_owned!(ctx, region, describe_route_tables, "DescribeRouteTables")?;
        Ok(tables
            .iter()
            .filter_map(|t| {
                let routes: Vec<Value> = t.routes().iter().filter_map(live_route).collect();
                let subnets: Vec<Value> =
                    t.associations().iter().filter_map(|a| a.subnet_id()).map(|s| id_ref(Some(s))).collect();
                let attrs =
                    || super::attrs(&json!({ "vpc": id_ref(t.vpc_id()), "routes": routes, "subnets": subnets }));
                ec2_tags::live(self.name(), region, t.route_table_id(), t.tags(), attrs)
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let out = cloud
            .ec2(op.region)?
            .create_route_table()
            // Idempotent: a repeat of this create (an answer lost, the SDK retrying) returns the first table.
            .client_token(op.client_token(64))
            .vpc_id(&want.vpc)
            .tag_specifications(tag_spec(ResourceType::RouteTable, &want.tags))
            // Not repeated blindly either (see `aws::ec2_once`): the emulator ignores client tokens, and the
            // engine's look-before-create-again works everywhere.
            .customize()
            .config_override(crate::aws::ec2_once())
            .send()
            .await
            .call("CreateRouteTable")?;
        let id = out
            .route_table()
            .and_then(|t| t.route_table_id())
            .ok_or_else(|| CloudError::internal("CreateRouteTable returned no id"))?;
        // The table exists: retry what AWS does not see yet (a gateway or subnet made a moment ago), never the
        // create. Both steps are safe to repeat.
        cloud
            .settled(|| async {
                sync_routes(cloud, op.region, id, &want.routes, &[]).await?;
                sync_subnets(cloud, op.region, id, &want.subnets, &[]).await
            })
            .await?;
        Ok(Created::from(id.to_string()))
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let have: Attrs = op.live()?;
        let id = op.id()?;
        if op.changed("routes") {
            sync_routes(cloud, op.region, id, &want.routes, &have.routes).await?;
        }
        if op.changed("subnets") {
            sync_subnets(cloud, op.region, id, &want.subnets, &have.subnets).await?;
        }
        if op.changed("tags") {
            ec2_tags::sync_tags(cloud, op.region, id, &want.tags, &have.tags).await?;
        }
        Ok(())
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let id = op.id()?;
        // AWS refuses to delete a table that still has subnets associated.
        sync_subnets(cloud, op.region, id, &[], &op.live::<Attrs>()?.subnets).await?;
        let result = cloud.ec2(op.region)?.delete_route_table().route_table_id(id).send().await;
        super::gone_ok(result.call("DeleteRouteTable"))
    }
    async fn adopt(
        &self,
        cloud: &Cloud,
        region: &str,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        ec2_tags::adopt(cloud, region, "route table", "rtb", id, tags, |ec2| async move {
            let out = ec2.describe_route_tables().route_table_ids(id).send().await.call("DescribeRouteTables")?;
            Ok(out.route_tables().first().map(|r| r.tags().to_vec()))
        })
        .await
    }
}

fn table(stack: &Stack, address: Address, routes: Vec<Value>, subnets: Vec<Value>) -> Desired {
    let attrs = json!({
        "vpc": reference(&super::vpc::address()),
        "routes": routes,
        "subnets": subnets,
        "tags": desired_tags(stack, &address),
    });
    Desired::in_home_region(stack, address, &attrs)
}

/// The request field a route target's id goes in: NAT gateways (`nat-...`) have their own, NatGatewayId; internet
/// gateways go in GatewayId. AWS takes a NAT gateway in GatewayId too, but reports it back under NatGatewayId.
fn nat_gateway_id(target: &str) -> Option<String> {
    target.starts_with("nat-").then(|| target.to_string())
}

fn gateway_id(target: &str) -> Option<String> {
    (!target.starts_with("nat-")).then(|| target.to_string())
}

/// Makes the table's routes `want`. New and retargeted routes go in before stale ones come out, so traffic moving
/// from one destination to another always has a route.
async fn sync_routes(
    cloud: &Cloud,
    region: &str,
    table: &str,
    want: &[RouteAttrs],
    have: &[RouteAttrs],
) -> Result<(), CloudError> {
    let ec2 = cloud.ec2(region)?;
    for new in want.iter().filter(|w| !have.contains(w)) {
        let destination = Destination::of(&new.destination);
        // Internet and NAT gateways are the route targets so far (see `gateway_id`).
        let target = new
            .target
            .as_deref()
            .ok_or_else(|| CloudError::internal(format!("route to {}: no target", new.destination)))?;
        if have.iter().any(|h| h.destination == new.destination) {
            ec2.replace_route()
                .route_table_id(table)
                .set_destination_cidr_block(destination.ipv4())
                .set_destination_ipv6_cidr_block(destination.ipv6())
                .set_destination_prefix_list_id(destination.prefix_list())
                .set_gateway_id(gateway_id(target))
                .set_nat_gateway_id(nat_gateway_id(target))
                .send()
                .await
                .call("ReplaceRoute")?;
        } else {
            let created = ec2
                .create_route()
                .route_table_id(table)
                .set_destination_cidr_block(destination.ipv4())
                .set_destination_ipv6_cidr_block(destination.ipv6())
                .set_destination_prefix_list_id(destination.prefix_list())
                .set_gateway_id(gateway_id(target))
                .set_nat_gateway_id(nat_gateway_id(target))
                .send()
                .await
                .call("CreateRoute");
            match created {
                // A retried create (AWS did not see the gateway yet) finds the routes it already made.
                Err(e) if e.code() == "RouteAlreadyExists" => {}
                other => other.map(|_| ())?,
            }
        }
    }
    for old in have.iter().filter(|h| !want.iter().any(|w| w.destination == h.destination)) {
        let destination = Destination::of(&old.destination);
        let result = ec2
            .delete_route()
            .route_table_id(table)
            .set_destination_cidr_block(destination.ipv4())
            .set_destination_ipv6_cidr_block(destination.ipv6())
            .set_destination_prefix_list_id(destination.prefix_list())
            .send()
            .await
            .call("DeleteRoute");
        super::gone_ok(result)?;
    }
    Ok(())
}

/// Associates `want` subnets with the table and releases the others from `have`.
async fn sync_subnets(
    cloud: &Cloud,
    region: &str,
    table: &str,
    want: &[String],
    have: &[String],
) -> Result<(), CloudError> {
    let want: BTreeSet<&String> = want.iter().collect();
    let have: BTreeSet<&String> = have.iter().collect();
    if want == have {
        return Ok(());
    }
    let ec2 = cloud.ec2(region)?;
    // Association ids are not part of the diff: look them up when they are needed.
    let current = ec2
        .describe_route_tables()
        .filters(
            Filter::builder()
                .name("association.subnet-id")
                .set_values(Some(want.union(&have).map(|s| s.to_string()).collect()))
                .build(),
        )
        .send()
        .await
        .call("DescribeRouteTables")?;
    let association = |subnet: &str| {
        current.route_tables().iter().find_map(|t| {
            t.associations().iter().find(|a| a.subnet_id() == Some(subnet)).map(|a| {
                (t.route_table_id() == Some(table), a.route_table_association_id().unwrap_or_default().to_string())
            })
        })
    };
    for subnet in have.difference(&want) {
        if let Some((true, assoc)) = association(subnet) {
            let result = ec2.disassociate_route_table().association_id(assoc).send().await;
            super::gone_ok(result.call("DisassociateRouteTable"))?;
        }
    }
    for subnet in want.difference(&have) {
        match association(subnet) {
            Some((true, _)) => {}
            // The subnet is explicitly associated with another table (e.g. a tier moved): take it over.
            Some((false, assoc)) => {
                ec2.replace_route_table_association()
                    .association_id(assoc)
                    .route_table_id(table)
                    .send()
                    .await
                    .call("ReplaceRouteTableAssociation")?;
            }
            None => {
                ec2.associate_route_table()
                    .route_table_id(table)
                    .subnet_id(subnet.as_str())
                    .send()
                    .await
                    .call("AssociateRouteTable")?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use aws_sdk_ec2::types::{Route, RouteOrigin};
    use serde_json::{Value, json};

    use super::{Destination, RouteTable, live_route};
    use crate::resources::Kind;

    /// The reference stack's route tables with `nat = "<nat>"`: address -> (routes, subnets).
    fn tables(nat: &str) -> Vec<(String, Value, Value)> {
        let file = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/webscale.toml"));
        let text = std::fs::read_to_string(file).expect("reference template");
        let text = text.replacen("nat = \"single\"", &format!("nat = \"{nat}\""), 1);
        let stack = crate::spec::parse(Path::new("templates/webscale.toml"), &text, &Default::default())
            .unwrap_or_else(|e| panic!("{e}"));
        RouteTable
            .desired(&stack)
            .into_iter()
            .map(|d| (d.address.to_string(), d.attrs["routes"].clone(), d.attrs["subnets"].clone()))
            .collect()
    }

    fn refs(addresses: &[&str]) -> Value {
        Value::Array(addresses.iter().map(|a| json!({ "ref": a })).collect())
    }

    fn default_route(to: &str) -> Value {
        json!([{ "destination": "0.0.0.0/0", "target": { "ref": to } }])
    }

    /// Without NAT the tables are what they were before NAT existed: a stack applied then plans no changes.
    #[test]
    fn without_nat_the_private_table_has_no_route_and_both_subnets() {
        let private = tables("none").into_iter().find(|t| t.0 == "route_table.private").expect("one private table");
        assert_eq!(private.1, json!([]));
        assert_eq!(private.2, refs(&["subnet.private_a", "subnet.private_b"]));
        assert_eq!(tables("none").len(), 2);
    }

    #[test]
    fn one_nat_gateway_serves_the_one_private_table() {
        let t = tables("single");
        let addresses: Vec<&str> = t.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(addresses, ["route_table.private", "route_table.public"]);
        assert_eq!(t[0].1, default_route("nat_gateway.a"), "the first zone's gateway");
        assert_eq!(t[0].2, refs(&["subnet.private_a", "subnet.private_b"]));
        assert_eq!(t[1].1, default_route("internet_gateway.main"), "public: unchanged");
    }

    /// A table has one route per destination, so each zone's private subnet needs a table of its own to reach its
    /// own zone's gateway.
    #[test]
    fn per_zone_nat_splits_the_private_table_by_zone() {
        let t = tables("per_zone");
        let addresses: Vec<&str> = t.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(addresses, ["route_table.private_a", "route_table.private_b", "route_table.public"]);
        assert_eq!((&t[0].1, &t[0].2), (&default_route("nat_gateway.a"), &refs(&["subnet.private_a"])));
        assert_eq!((&t[1].1, &t[1].2), (&default_route("nat_gateway.b"), &refs(&["subnet.private_b"])));
        assert_eq!(t[2].2, refs(&["subnet.public_a", "subnet.public_b"]));
    }

    fn created() -> aws_sdk_ec2::types::builders::RouteBuilder {
        Route::builder().origin(RouteOrigin::CreateRoute)
    }

    #[test]
    fn every_created_route_is_read_whatever_its_destination_or_target() {
        let cases = [
            (
                created().destination_cidr_block("0.0.0.0/0").gateway_id("igw-1").build(),
                "0.0.0.0/0",
                json!({"id": "igw-1"}),
            ),
            (created().destination_ipv6_cidr_block("::/0").gateway_id("igw-1").build(), "::/0", json!({"id": "igw-1"})),
            (
                created().destination_ipv6_cidr_block("::/0").egress_only_internet_gateway_id("eigw-1").build(),
                "::/0",
                json!({"id": "eigw-1"}),
            ),
            (
                created().destination_prefix_list_id("pl-1").transit_gateway_id("tgw-1").build(),
                "pl-1",
                json!({"id": "tgw-1"}),
            ),
            (
                created().destination_cidr_block("10.1.0.0/16").carrier_gateway_id("cagw-1").build(),
                "10.1.0.0/16",
                json!({"id": "cagw-1"}),
            ),
            (
                created().destination_cidr_block("10.2.0.0/16").local_gateway_id("lgw-1").build(),
                "10.2.0.0/16",
                json!({"id": "lgw-1"}),
            ),
            // An instance target also reports its interface: the instance is named.
            (
                created()
                    .destination_cidr_block("10.3.0.0/16")
                    .instance_id("i-1")
                    .network_interface_id("eni-1")
                    .build(),
                "10.3.0.0/16",
                json!({"id": "i-1"}),
            ),
            (
                created()
                    .destination_cidr_block("10.4.0.0/16")
                    .core_network_arn("arn:aws:networkmanager::1:core-network/c")
                    .build(),
                "10.4.0.0/16",
                json!({"id": "arn:aws:networkmanager::1:core-network/c"}),
            ),
            // A route whose target AWS no longer names still shows, so it can be removed.
            (created().destination_cidr_block("10.5.0.0/16").build(), "10.5.0.0/16", json!(null)),
            // Routes from older API versions carry no origin.
            (
                Route::builder().destination_cidr_block("10.6.0.0/16").gateway_id("igw-1").build(),
                "10.6.0.0/16",
                json!({"id": "igw-1"}),
            ),
        ];
        for (route, destination, target) in cases {
            assert_eq!(live_route(&route), Some(json!({"destination": destination, "target": target})), "{route:?}");
        }
    }

    #[test]
    fn local_propagated_and_endpoint_routes_are_not_the_stacks() {
        let ignored = [
            Route::builder()
                .destination_cidr_block("10.0.0.0/16")
                .gateway_id("local")
                .origin(RouteOrigin::CreateRouteTable)
                .build(),
            Route::builder()
                .destination_ipv6_cidr_block("2600:1f18::/56")
                .gateway_id("local")
                .origin(RouteOrigin::CreateRouteTable)
                .build(),
            Route::builder()
                .destination_cidr_block("192.168.0.0/16")
                .gateway_id("vgw-1")
                .origin(RouteOrigin::EnableVgwRoutePropagation)
                .build(),
            created().destination_prefix_list_id("pl-63a5400a").gateway_id("vpce-1").build(),
        ];
        for route in ignored {
            assert_eq!(live_route(&route), None, "{route:?}");
        }
    }

    /// AWS accepts a NAT gateway in GatewayId but reports it under NatGatewayId: sent there, it reads back alike.
    #[test]
    fn a_target_is_sent_in_the_field_of_its_kind() {
        assert_eq!((super::gateway_id("igw-1"), super::nat_gateway_id("igw-1")), (Some("igw-1".into()), None));
        assert_eq!((super::gateway_id("nat-1"), super::nat_gateway_id("nat-1")), (None, Some("nat-1".into())));
    }

    #[test]
    fn a_destination_is_sent_in_the_field_of_its_kind() {
        assert_eq!(Destination::of("0.0.0.0/0"), Destination::Ipv4("0.0.0.0/0"));
        assert_eq!(Destination::of("::/0"), Destination::Ipv6("::/0"));
        assert_eq!(Destination::of("2600:1f18:abcd::/64"), Destination::Ipv6("2600:1f18:abcd::/64"));
        assert_eq!(Destination::of("pl-63a5400a"), Destination::PrefixList("pl-63a5400a"));
        let v6 = Destination::of("::/0");
        assert_eq!((v6.ipv4(), v6.ipv6(), v6.prefix_list()), (None, Some("::/0".to_string()), None));
        let pl = Destination::of("pl-1");
        assert_eq!((pl.ipv4(), pl.ipv6(), pl.prefix_list()), (None, None, Some("pl-1".to_string())));
        let v4 = Destination::of("10.0.0.0/8");
        assert_eq!((v4.ipv4(), v4.ipv6(), v4.prefix_list()), (Some("10.0.0.0/8".to_string()), None, None));
    }
}
