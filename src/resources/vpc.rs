//! `vpc.main`: the stack's one VPC.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcAttributeName};
use serde::Deserialize;
use serde_json::json;

use super::ec2_tags::{self, describe_owned, desired_tags, tag_spec};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::Stack;

pub struct Vpc;

/// The one VPC's address; other kinds reference it.
pub fn address() -> Address {
    Address::new("vpc", "main")
}

#[derive(Deserialize)]
struct Attrs {
    cidr_block: String,
    dns_hostnames: bool,
    tags: BTreeMap<String, String>,
}

#[async_trait]
impl Kind for Vpc {
    fn name(&self) -> &'static str {
        "vpc"
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let address = address();
        let attrs = json!({
            "cidr_block": stack.network.cidr.to_string(),
            "dns_hostnames": stack.network.dns_hostnames,
            "tags": desired_tags(stack, &address),
        });
        vec![Desired::in_home_region(stack, address, &attrs)]
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] =
            &[Attr::new("cidr_block").forces_replacement(), Attr::new("dns_hostnames"), Attr::new("tags")];
        SCHEMA
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let cloud = ctx.cloud;
        let ec2 = cloud.ec2(region)?;
        let vpcs = describe_owned!(ctx, region, describe_vpcs, "DescribeVpcs")?;
        let mut out = Vec::new();
        for vpc in vpcs {
            let Some(id) = vpc.vpc_id() else { continue };
            // DNS hostnames is not part of DescribeVpcs: one extra call per VPC (a stack has one).
            let dns = ec2
                .describe_vpc_attribute()
                .vpc_id(id)
                .attribute(VpcAttributeName::EnableDnsHostnames)
                .send()
                .await
                .call("DescribeVpcAttribute")?
                .enable_dns_hostnames()
                .and_then(|a| a.value())
                .unwrap_or(false);
            let attrs = || super::attrs(&json!({ "cidr_block": vpc.cidr_block(), "dns_hostnames": dns }));
            out.extend(ec2_tags::live(self.name(), region, Some(id), vpc.tags(), attrs));
        }
        Ok(out)
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let ec2 = cloud.ec2(op.region)?;
        let vpc = ec2
            .create_vpc()
            .cidr_block(&want.cidr_block)
            .tag_specifications(tag_spec(ResourceType::Vpc, &want.tags))
            // No token to make a repeat safe: never repeated blindly (see `aws::ec2_once`).
            .customize()
            .config_override(crate::aws::ec2_once())
            .send()
            .await
            .call("CreateVpc")?;
        let id = vpc.vpc().and_then(|v| v.vpc_id()).ok_or_else(|| CloudError::internal("CreateVpc returned no id"))?;
        // From here on the VPC exists: retry what AWS does not see yet, never the create.
        cloud
            .settled(|| async {
                ec2.wait_until_vpc_available()
                    .vpc_ids(id)
                    .wait(Duration::from_secs(300))
                    .await
                    .call("wait for the VPC to become available")?;
                if want.dns_hostnames {
                    set_dns_hostnames(cloud, op.region, id, true).await?;
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
        if op.changed("dns_hostnames") {
            set_dns_hostnames(cloud, op.region, id, want.dns_hostnames).await?;
        }
        if op.changed("tags") {
            ec2_tags::sync_tags(cloud, op.region, id, &want.tags, &have.tags).await?;
        }
        Ok(())
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let result = cloud.ec2(op.region)?.delete_vpc().vpc_id(op.id()?).send().await.call("DeleteVpc");
        super::gone_ok(result)
    }

    async fn strangers(
        &self,
        ctx: &ReadCtx<'_>,
        live: &Live,
        owned: &std::collections::HashSet<String>,
    ) -> Result<Vec<String>, CloudError> {
        super::ec2_dependents::strangers_in_vpc(ctx, &live.region, &live.id, owned).await
    }

    async fn blockers(&self, cloud: &Cloud, op: &Op<'_>) -> Option<String> {
        super::ec2_dependents::network_interfaces(cloud, op.region, "vpc-id", op.id.unwrap_or_default()).await
    }
    async fn adopt(
        &self,
        cloud: &Cloud,
        region: &str,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        ec2_tags::adopt(cloud, region, "VPC", "vpc", id, tags, |ec2| async move {
            let out = ec2.describe_vpcs().vpc_ids(id).send().await.call("DescribeVpcs")?;
            Ok(out.vpcs().first().map(|r| r.tags().to_vec()))
        })
        .await
    }
}

async fn set_dns_hostnames(cloud: &Cloud, region: &str, id: &str, on: bool) -> Result<(), CloudError> {
    cloud
        .ec2(region)?
        .modify_vpc_attribute()
        .vpc_id(id)
        .enable_dns_hostnames(AttributeBooleanValue::builder().value(on).build())
        .send()
        .await
        .call("ModifyVpcAttribute")?;
    Ok(())
}
