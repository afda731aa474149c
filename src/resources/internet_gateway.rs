//! `internet_gateway.main`: the VPC's door to the internet, attached to `vpc.main`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::ResourceType;
use serde::Deserialize;
use serde_json::json;

use super::ec2_tags::{self, describe_owned, desired_tags, id_ref, tag_spec};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx, reference};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::Stack;

pub struct InternetGateway;

pub fn address() -> Address {
    Address::new("internet_gateway", "main")
}

#[derive(Deserialize)]
struct Attrs {
    /// The attached VPC; an interrupted create leaves it detached, which the next apply fixes as an update.
    vpc: Option<String>,
    tags: BTreeMap<String, String>,
}

#[async_trait]
impl Kind for InternetGateway {
    fn name(&self) -> &'static str {
        "internet_gateway"
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        if !stack.network.internet_gateway {
            return vec![];
        }
        let address = address();
        let attrs = json!({ "vpc": reference(&super::vpc::address()), "tags": desired_tags(stack, &address) });
        vec![Desired::in_home_region(stack, address, &attrs)]
    }

    /// Moving an attached gateway to a new VPC in place would keep the old VPC alive (AWS refuses to delete a VPC
    /// with a gateway attached) until after the new one exists: replace it with the VPC instead.
    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[Attr::new("vpc").forces_replacement(), Attr::new("tags")];
        SCHEMA
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let igws = describe_owned!(ctx, region, describe_internet_gateways, "DescribeInternetGateways")?;
        Ok(igws
            .iter()
            .filter_map(|igw| {
                let vpc = igw.attachments().iter().find_map(|a| a.vpc_id());
                let attrs = || super::attrs(&json!({ "vpc": id_ref(vpc) }));
                ec2_tags::live(self.name(), region, igw.internet_gateway_id(), igw.tags(), attrs)
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let ec2 = cloud.ec2(op.region)?;
        let out = ec2
            .create_internet_gateway()
            .tag_specifications(tag_spec(ResourceType::InternetGateway, &want.tags))
            // No token to make a repeat safe: never repeated blindly (see `aws::ec2_once`).
            .customize()
            .config_override(crate::aws::ec2_once())
            .send()
            .await
            .call("CreateInternetGateway")?;
        let id = out
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .ok_or_else(|| CloudError::internal("CreateInternetGateway returned no id"))?;
        if let Some(vpc) = &want.vpc {
            // The gateway exists: retry the attach while AWS does not see it yet, never the create.
            cloud.settled(|| attach(cloud, op.region, id, vpc)).await?;
        }
        Ok(Created::from(id.to_string()))
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let have: Attrs = op.live()?;
        let id = op.id()?;
        // Only ever from detached (a create interrupted before the attach): moving to another VPC is a replacement.
        if op.changed("vpc")
            && let Some(vpc) = &want.vpc
        {
            attach(cloud, op.region, id, vpc).await?;
        }
        if op.changed("tags") {
            ec2_tags::sync_tags(cloud, op.region, id, &want.tags, &have.tags).await?;
        }
        Ok(())
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let have: Attrs = op.live()?;
        let id = op.id()?;
        if let Some(vpc) = &have.vpc {
            detach(cloud, op.region, id, vpc).await?;
        }
        let result = cloud.ec2(op.region)?.delete_internet_gateway().internet_gateway_id(id).send().await;
        super::gone_ok(result.call("DeleteInternetGateway"))
    }
    async fn adopt(
        &self,
        cloud: &Cloud,
        region: &str,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        ec2_tags::adopt(cloud, region, "internet gateway", "igw", id, tags, |ec2| async move {
            let out = ec2
                .describe_internet_gateways()
                .internet_gateway_ids(id)
                .send()
                .await
                .call("DescribeInternetGateways")?;
            Ok(out.internet_gateways().first().map(|r| r.tags().to_vec()))
        })
        .await
    }
}

async fn attach(cloud: &Cloud, region: &str, igw: &str, vpc: &str) -> Result<(), CloudError> {
    cloud
        .ec2(region)?
        .attach_internet_gateway()
        .internet_gateway_id(igw)
        .vpc_id(vpc)
        .send()
        .await
        .call("AttachInternetGateway")?;
    Ok(())
}

async fn detach(cloud: &Cloud, region: &str, igw: &str, vpc: &str) -> Result<(), CloudError> {
    let result = cloud
        .ec2(region)?
        .detach_internet_gateway()
        .internet_gateway_id(igw)
        .vpc_id(vpc)
        .send()
        .await
        .call("DetachInternetGateway");
    match result {
        // Already detached (Gateway.NotAttached) or gone: the goal is reached.
        Err(e) if e.code() == "Gateway.NotAttached" || e.is_not_found() => Ok(()),
        other => other.map(|_| ()),
    }
}
