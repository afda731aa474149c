//! `subnet.public_a`, `subnet.private_a`, ...: one public and one private subnet per zone of the spec.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType};
use serde::Deserialize;
use serde_json::json;

use super::ec2_tags::{self, describe_owned, desired_tags, id_ref, tag_spec};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx, reference};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{Stack, Tier};

pub struct Subnet;

pub fn address(tier: Tier, zone: &str) -> Address {
    Address::new("subnet", &tier.subnet_name(zone))
}

#[derive(Deserialize)]
struct Attrs {
    vpc: String,
    cidr_block: String,
    availability_zone: String,
    map_public_ip_on_launch: bool,
    tags: BTreeMap<String, String>,
}

#[async_trait]
impl Kind for Subnet {
    fn name(&self) -> &'static str {
        "subnet"
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let mut out = Vec::new();
        for zone in &stack.network.zones {
            for tier in Tier::ALL {
                let address = address(tier, &zone.name);
                let cidr = match tier {
                    Tier::Public => zone.public_subnet,
                    Tier::Private => zone.private_subnet,
                };
                let attrs = json!({
                    "vpc": reference(&super::vpc::address()),
                    "cidr_block": cidr.to_string(),
                    "availability_zone": zone.availability_zone,
                    // Instances in public subnets get a public address; private ones never do.
                    "map_public_ip_on_launch": tier == Tier::Public,
                    "tags": desired_tags(stack, &address),
                });
                out.push(Desired::in_home_region(stack, address, &attrs));
            }
        }
        out
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            Attr::new("vpc").forces_replacement(),
            Attr::new("cidr_block").forces_replacement(),
            Attr::new("availability_zone").forces_replacement(),
            Attr::new("map_public_ip_on_launch"),
            Attr::new("tags"),
        ];
        SCHEMA
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let subnets = describe_owned!(ctx, region, describe_subnets, "DescribeSubnets")?;
        Ok(subnets
            .iter()
            .filter_map(|s| {
                let attrs = || {
                    super::attrs(&json!({
                        "vpc": id_ref(s.vpc_id()),
                        "cidr_block": s.cidr_block(),
                        "availability_zone": s.availability_zone(),
                        "map_public_ip_on_launch": s.map_public_ip_on_launch().unwrap_or(false),
                    }))
                };
                ec2_tags::live(self.name(), region, s.subnet_id(), s.tags(), attrs)
            })
            .collect())
    }

    /// A zone the region does not have (a spec moved to another region with `--region`, a zone letter the region
    /// lacks): found before anything is created, from one DescribeAvailabilityZones per region, asked only when the
    /// plan creates a subnet. The message names the zones the region has.
    async fn unavailable(&self, ctx: &ReadCtx<'_>, desired: &Desired) -> Result<Vec<String>, CloudError> {
        let Some(az) = desired.attrs.get("availability_zone").and_then(|v| v.as_str()) else { return Ok(Vec::new()) };
        let region = desired.region.clone();
        let zones = ctx
            .shared(&format!("ec2:availability-zones:{region}"), || async {
                let ec2 = ctx.cloud.ec2(&region)?;
                let out = ec2.describe_availability_zones().send().await.call("DescribeAvailabilityZones")?;
                let mut names: Vec<String> =
                    out.availability_zones().iter().filter_map(|z| z.zone_name()).map(str::to_string).collect();
                names.sort();
                Ok(names)
            })
            .await?;
        if zones.is_empty() || zones.iter().any(|z| z == az) {
            return Ok(Vec::new());
        }
        let table = ctx.stack.network.zones.iter().find(|z| z.availability_zone == az).map(|z| z.name.as_str());
        let table = table.map_or_else(|| "[network.zones]".to_string(), |t| format!("[network.zones.{t}]"));
        let letters: Vec<&str> = zones.iter().filter_map(|z| z.strip_prefix(region.as_str())).collect();
        Ok(vec![format!(
            "availability zone {az} does not exist in {region}, whose zones are {}: set availability_zone in {table} to one of them, or to its letter alone ({})",
            zones.join(", "),
            letters.iter().map(|l| format!("\"{l}\"")).collect::<Vec<_>>().join(", ")
        )])
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let ec2 = cloud.ec2(op.region)?;
        let out = ec2
            .create_subnet()
            .vpc_id(&want.vpc)
            .cidr_block(&want.cidr_block)
            .availability_zone(&want.availability_zone)
            .tag_specifications(tag_spec(ResourceType::Subnet, &want.tags))
            // No token to make a repeat safe: never repeated blindly (see `aws::ec2_once`).
            .customize()
            .config_override(crate::aws::ec2_once())
            .send()
            .await
            .call("CreateSubnet")?;
        let id = out
            .subnet()
            .and_then(|s| s.subnet_id())
            .ok_or_else(|| CloudError::internal("CreateSubnet returned no id"))?;
        // From here on the subnet exists: retry what AWS does not see yet, never the create.
        cloud
            .settled(|| async {
                ec2.wait_until_subnet_available()
                    .subnet_ids(id)
                    .wait(Duration::from_secs(300))
                    .await
                    .call("wait for the subnet to become available")?;
                if want.map_public_ip_on_launch {
                    set_map_public_ip(cloud, op.region, id, true).await?;
                }
                Ok(())
            })
            .await?;
        Ok(Created::from(id.to_string()))
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let have: Attrs = op.live()?;
        let id = op.id()?;
        if op.changed("map_public_ip_on_launch") {
            set_map_public_ip(cloud, op.region, id, want.map_public_ip_on_launch).await?;
        }
        if op.changed("tags") {
            ec2_tags::sync_tags(cloud, op.region, id, &want.tags, &have.tags).await?;
        }
        Ok(())
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let result = cloud.ec2(op.region)?.delete_subnet().subnet_id(op.id()?).send().await;
        super::gone_ok(result.call("DeleteSubnet"))
    }

    async fn strangers(
        &self,
        ctx: &ReadCtx<'_>,
        live: &Live,
        owned: &std::collections::HashSet<String>,
    ) -> Result<Vec<String>, CloudError> {
        super::ec2_dependents::strangers_in(ctx, &live.region, "subnet-id", &live.id, owned).await
    }

    async fn blockers(&self, cloud: &Cloud, op: &Op<'_>) -> Option<String> {
        super::ec2_dependents::network_interfaces(cloud, op.region, "subnet-id", op.id.unwrap_or_default()).await
    }
    async fn adopt(
        &self,
        cloud: &Cloud,
        region: &str,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        ec2_tags::adopt(cloud, region, "subnet", "subnet", id, tags, |ec2| async move {
            let out = ec2.describe_subnets().subnet_ids(id).send().await.call("DescribeSubnets")?;
            Ok(out.subnets().first().map(|r| r.tags().to_vec()))
        })
        .await
    }
}

async fn set_map_public_ip(cloud: &Cloud, region: &str, id: &str, on: bool) -> Result<(), CloudError> {
    cloud
        .ec2(region)?
        .modify_subnet_attribute()
        .subnet_id(id)
        .map_public_ip_on_launch(AttributeBooleanValue::builder().value(on).build())
        .send()
        .await
        .call("ModifySubnetAttribute")?;
    Ok(())
}
