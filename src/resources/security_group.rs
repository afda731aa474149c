//! `security_group.NAME`: the group itself. Its rules are `security_group_rules.NAME`, a separate node, because
//! groups reference each other (load balancer -> web -> database, and often back): with rules inside the group,
//! two groups that reference each other would be a cycle; split, every group can exist before any rule does, and
//! on destroy every rule that references a group is revoked before that group is deleted (AWS refuses otherwise).

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use aws_sdk_ec2::types::ResourceType;
use serde::Deserialize;
use serde_json::json;

use super::ec2_tags::{self, describe_owned, desired_tags, id_ref, tag_spec};
use super::{Address, Desired, Kind, Live, Op, ReplaceOrder, reference};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::Stack;

pub struct SecurityGroup;

pub fn address(name: &str) -> Address {
    Address::new("security_group", name)
}

#[derive(Deserialize)]
struct Attrs {
    vpc: String,
    description: String,
    tags: BTreeMap<String, String>,
}

#[async_trait]
impl Kind for SecurityGroup {
    fn name(&self) -> &'static str {
        "security_group"
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        stack
            .security_groups
            .iter()
            .map(|g| {
                let address = address(&g.name);
                let attrs = json!({
                    "vpc": reference(&super::vpc::address()),
                    "description": g.description,
                    "tags": desired_tags(stack, &address),
                });
                Desired::in_home_region(stack, address, &attrs)
            })
            .collect()
    }

    fn replace_on(&self) -> &'static [&'static str] {
        &["vpc", "description"]
    }

    /// Instances and rules point at a group: bring the new one up and repoint them before the old one goes.
    /// Possible because group names carry a unique suffix.
    fn replace_order(&self) -> ReplaceOrder {
        ReplaceOrder::CreateFirst
    }

    async fn read(&self, cloud: &Cloud, region: &str) -> Result<Vec<Live>, CloudError> {
        Ok(read_groups(cloud, region)
            .await?
            .iter()
            .filter_map(|g| {
                let attrs = || super::attrs(&json!({ "vpc": id_ref(g.vpc_id()), "description": g.description() }));
                ec2_tags::live(self.name(), region, g.group_id(), g.tags(), attrs)
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<String, CloudError> {
        let want: Attrs = op.desired()?;
        // Group names are unique per VPC and immutable: a suffix lets a replacement exist beside the old group.
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        let stack = want.tags.get(super::TAG_STACK).map(String::as_str).unwrap_or("webscale");
        let group_name = format!("{stack}-{}-{nanos:08x}", op.address.name());
        let out = cloud
            .ec2(op.region)?
            .create_security_group()
            .group_name(group_name)
            .description(&want.description)
            .vpc_id(&want.vpc)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, &want.tags))
            .send()
            .await
            .call("CreateSecurityGroup")?;
        out.group_id().map(str::to_string).ok_or_else(|| CloudError::internal("CreateSecurityGroup returned no id"))
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let have: Attrs = op.live()?;
        if op.changed("tags") {
            ec2_tags::sync_tags(cloud, op.region, op.id()?, &want.tags, &have.tags).await?;
        }
        Ok(())
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let result = cloud.ec2(op.region)?.delete_security_group().group_id(op.id()?).send().await;
        super::gone_ok(result.call("DeleteSecurityGroup"))
    }

    async fn blockers(&self, cloud: &Cloud, op: &Op<'_>) -> Option<String> {
        super::ec2_enis::network_interfaces(cloud, op.region, "group-id", op.id.unwrap_or_default()).await
    }
}

/// Every group the stack owns in `region`, rules included (shared with `security_group_rules`).
pub(super) async fn read_groups(
    cloud: &Cloud,
    region: &str,
) -> Result<Vec<aws_sdk_ec2::types::SecurityGroup>, CloudError> {
    describe_owned!(cloud, region, describe_security_groups, "DescribeSecurityGroups")
}
