//! `elastic_ip.nat_a`, ...: the public addresses of the NAT gateways (`[network] nat`), one per gateway.
//!
//! A public NAT gateway needs an Elastic IP of its own (AllocateAddress in the VPC domain); the gateway holds it
//! while it exists, and the address outlives the gateway until it is released. Deleting the gateway does not
//! release it (AWS keeps billing it), so the address is a resource of the stack like any other.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{DomainType, ResourceType};
use serde::Deserialize;
use serde_json::json;

use super::ec2_tags::{self, desired_tags, owned_filters, tag_spec};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::Stack;

pub struct ElasticIp;

/// The address of the NAT gateway of zone `zone`.
pub fn address(zone: &str) -> Address {
    Address::new("elastic_ip", &format!("nat_{zone}"))
}

#[derive(Deserialize)]
struct Attrs {
    /// Always `vpc`: EC2-Classic addresses no longer exist, but AllocateAddress still takes the domain.
    domain: String,
    tags: BTreeMap<String, String>,
}

#[async_trait]
impl Kind for ElasticIp {
    fn name(&self) -> &'static str {
        "elastic_ip"
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        super::nat_gateway::zones(stack)
            .map(|zone| {
                let address = address(&zone.name);
                let attrs = json!({ "domain": "vpc", "tags": desired_tags(stack, &address) });
                Desired::in_home_region(stack, address, &attrs)
            })
            .collect()
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[Attr::new("domain").forces_replacement(), Attr::new("tags")];
        SCHEMA
    }

    /// One DescribeAddresses, filtered by the stack tag. The call has no pagination: it answers every match at
    /// once (an account holds a handful of addresses; the default quota is 5 per region).
    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let out = ctx
            .cloud
            .ec2(region)?
            .describe_addresses()
            .set_filters(Some(owned_filters(ctx)))
            .send()
            .await
            .call("DescribeAddresses")?;
        Ok(out
            .addresses()
            .iter()
            .filter_map(|a| {
                let domain = a.domain().map(|d| d.as_str()).unwrap_or("vpc");
                let attrs = || super::attrs(&json!({ "domain": domain }));
                let mut live = ec2_tags::live(self.name(), region, a.allocation_id(), a.tags(), attrs)?;
                if let Some(ip) = a.public_ip() {
                    live.outputs.insert("public_ip".into(), json!(ip));
                }
                Some(live)
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let out = cloud
            .ec2(op.region)?
            .allocate_address()
            .domain(DomainType::from(want.domain.as_str()))
            .tag_specifications(tag_spec(ResourceType::ElasticIp, &want.tags))
            // AllocateAddress takes no client token: never repeated blindly (see `aws::ec2_once`); the engine looks
            // for the tagged address before it allocates again.
            .customize()
            .config_override(crate::aws::ec2_once())
            .send()
            .await
            .call("AllocateAddress")?;
        let id =
            out.allocation_id().ok_or_else(|| CloudError::internal("AllocateAddress returned no allocation id"))?;
        let mut created = Created::from(id.to_string());
        if let Some(ip) = out.public_ip() {
            created.outputs.insert("public_ip".into(), json!(ip));
        }
        Ok(created)
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let have: Attrs = op.live()?;
        if op.changed("tags") {
            ec2_tags::sync_tags(cloud, op.region, op.id()?, &want.tags, &have.tags).await?;
        }
        Ok(())
    }

    /// The NAT gateway that held the address is deleted first (it refers to the address) and waited for until
    /// `deleted`. Even then AWS may refuse the release for a few seconds: `AuthFailure` ("You do not have
    /// permission"), `InvalidIPAddress.InUse`, or `InvalidNetworkInterfaceID.NotFound` naming the gateway's
    /// vanished interface. Those are retried within the consistency window.
    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let id = op.id()?;
        let ec2 = cloud.ec2(op.region)?;
        let released = crate::aws::retrying(cloud.retry.consistency, cloud.retry.interval, still_held, || async {
            ec2.release_address().allocation_id(id).send().await.call("ReleaseAddress").map(|_| ())
        })
        .await;
        match released {
            Err(e) if is_released(&e) => Ok(()),
            other => other,
        }
    }

    /// Only the address itself missing means it is gone: the release's `InvalidNetworkInterfaceID.NotFound` is
    /// about the interface of a gateway still letting go of it.
    fn is_gone(&self, error: &CloudError) -> bool {
        is_released(error)
    }

    async fn adopt(
        &self,
        cloud: &Cloud,
        region: &str,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        ec2_tags::adopt(cloud, region, "Elastic IP", "eipalloc", id, tags, |ec2| async move {
            let out = ec2.describe_addresses().allocation_ids(id).send().await.call("DescribeAddresses")?;
            Ok(out.addresses().first().map(|a| a.tags().to_vec()))
        })
        .await
    }
}

/// The allocation no longer exists.
fn is_released(e: &CloudError) -> bool {
    matches!(e.code(), "InvalidAllocationID.NotFound" | "InvalidAddress.NotFound")
}

/// A release refused while the NAT gateway that held the address is still letting go of it.
fn still_held(e: &CloudError) -> bool {
    matches!(e.code(), "AuthFailure" | "InvalidIPAddress.InUse" | "InvalidNetworkInterfaceID.NotFound")
}
