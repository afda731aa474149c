//! `route_table.NAME`: a route table for one tier, its routes, and its association with that tier's subnets.
//!
//! Associations are attributes of the table rather than resources of their own: they carry no tags, and a subnet
//! has exactly one, so the table that claims a tier owns them.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, ResourceType};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ec2_tags::{self, desired_tags, id_ref, owned_filter, tag_spec};
use super::{Address, Desired, Kind, Live, Op, reference};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{RouteTarget, Stack};

pub struct RouteTable;

#[derive(Deserialize)]
struct Attrs {
    #[allow(dead_code)] // Read for completeness; the VPC is fixed at creation.
    vpc: String,
    routes: Vec<RouteAttrs>,
    subnets: Vec<String>,
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize, PartialEq)]
struct RouteAttrs {
    destination: String,
    target: String,
}

#[async_trait]
impl Kind for RouteTable {
    fn name(&self) -> &'static str {
        "route_table"
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        stack
            .network
            .route_tables
            .iter()
            .map(|rt| {
                let address = Address::new(self.name(), &rt.name);
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
                let subnets: Vec<Value> =
                    stack.network.zones.iter().map(|z| reference(&super::subnet::address(rt.tier, &z.name))).collect();
                let attrs = json!({
                    "vpc": reference(&super::vpc::address()),
                    "routes": routes,
                    "subnets": subnets,
                    "tags": desired_tags(stack, &address),
                });
                Desired::in_home_region(stack, address, &attrs)
            })
            .collect()
    }

    fn replace_on(&self) -> &'static [&'static str] {
        &["vpc"]
    }

    async fn read(&self, cloud: &Cloud, region: &str) -> Result<Vec<Live>, CloudError> {
        let tables: Vec<_> = cloud
            .ec2(region)?
            .describe_route_tables()
            .filters(owned_filter(cloud))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<_, _>>()
            .await
            .call("DescribeRouteTables")?;
        Ok(tables
            .iter()
            .filter_map(|t| {
                let routes: Vec<Value> = t
                    .routes()
                    .iter()
                    // The VPC's local route is AWS's, not ours; propagated routes belong to the VPN gateway.
                    .filter(|r| r.gateway_id() != Some("local"))
                    .filter(|r| r.origin().is_none_or(|o| o.as_str() == "CreateRoute"))
                    .filter_map(|r| {
                        let target = r
                            .gateway_id()
                            .or(r.nat_gateway_id())
                            .or(r.transit_gateway_id())
                            .or(r.vpc_peering_connection_id())
                            .or(r.network_interface_id())?;
                        Some(json!({ "destination": r.destination_cidr_block()?, "target": id_ref(Some(target)) }))
                    })
                    .collect();
                let subnets: Vec<Value> =
                    t.associations().iter().filter_map(|a| a.subnet_id()).map(|s| id_ref(Some(s))).collect();
                let attrs =
                    || super::attrs(&json!({ "vpc": id_ref(t.vpc_id()), "routes": routes, "subnets": subnets }));
                ec2_tags::live(self.name(), region, t.route_table_id(), t.tags(), attrs)
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<String, CloudError> {
        let want: Attrs = op.desired()?;
        let out = cloud
            .ec2(op.region)?
            .create_route_table()
            .vpc_id(&want.vpc)
            .tag_specifications(tag_spec(ResourceType::RouteTable, &want.tags))
            .send()
            .await
            .call("CreateRouteTable")?;
        let id = out
            .route_table()
            .and_then(|t| t.route_table_id())
            .ok_or_else(|| CloudError::internal("CreateRouteTable returned no id"))?;
        sync_routes(cloud, op.region, id, &want.routes, &[]).await?;
        sync_subnets(cloud, op.region, id, &want.subnets, &[]).await?;
        Ok(id.to_string())
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
}

async fn sync_routes(
    cloud: &Cloud,
    region: &str,
    table: &str,
    want: &[RouteAttrs],
    have: &[RouteAttrs],
) -> Result<(), CloudError> {
    let ec2 = cloud.ec2(region)?;
    for old in have.iter().filter(|h| !want.iter().any(|w| w.destination == h.destination)) {
        let result = ec2
            .delete_route()
            .route_table_id(table)
            .destination_cidr_block(&old.destination)
            .send()
            .await
            .call("DeleteRoute");
        super::gone_ok(result)?;
    }
    for new in want.iter().filter(|w| !have.contains(w)) {
        let retarget = have.iter().any(|h| h.destination == new.destination);
        // Only internet gateways are route targets so far; `gateway_id` also covers virtual private gateways.
        if retarget {
            ec2.replace_route()
                .route_table_id(table)
                .destination_cidr_block(&new.destination)
                .gateway_id(&new.target)
                .send()
                .await
                .call("ReplaceRoute")?;
        } else {
            ec2.create_route()
                .route_table_id(table)
                .destination_cidr_block(&new.destination)
                .gateway_id(&new.target)
                .send()
                .await
                .call("CreateRoute")?;
        }
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
