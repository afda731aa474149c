//! `security_group.NAME`: the group itself. Its rules are `security_group_rules.NAME`, a separate node, because
//! groups reference each other (load balancer -> web -> database, and often back): with rules inside the group,
//! two groups that reference each other would be a cycle; split, every group can exist before any rule does, and
//! on destroy every rule that references a group is revoked before that group is deleted (AWS refuses otherwise).

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::ResourceType;
use serde::Deserialize;
use serde_json::json;

use super::ec2_tags::{self, describe_owned, desired_tags, id_ref, tag_spec};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx, ReplaceOrder, reference};
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

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] =
            &[Attr::new("vpc").forces_replacement(), Attr::new("description").forces_replacement(), Attr::new("tags")];
        SCHEMA
    }

    /// Instances and rules point at a group: bring the new one up and repoint them before the old one goes.
    /// Possible because group names carry a unique suffix.
    fn replace_order(&self) -> ReplaceOrder {
        ReplaceOrder::CreateFirst
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        Ok(read_groups(ctx, region)
            .await?
            .iter()
            .filter_map(|g| {
                let attrs = || super::attrs(&json!({ "vpc": id_ref(g.vpc_id()), "description": g.description() }));
                ec2_tags::live(self.name(), region, g.group_id(), g.tags(), attrs)
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        // Group names are unique per VPC and immutable. The suffix comes from the create's token: a replacement
        // gets a name of its own (so it can exist beside the old group), and a repeat of this create (an answer
        // lost, the SDK retrying) meets the group it made, `InvalidGroup.Duplicate`, which the engine finishes.
        let stack = want.tags.get(super::TAG_STACK).map(String::as_str).unwrap_or("webscale");
        let suffix: String = op.token.trim_start_matches("ws-").chars().take(8).collect();
        let group_name = format!("{stack}-{}-{suffix}", op.address.name());
        let out = cloud
            .ec2(op.region)?
            .create_security_group()
            .group_name(group_name)
            .description(&want.description)
            .vpc_id(&want.vpc)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, &want.tags))
            // Not repeated blindly either (see `aws::ec2_once`): the emulator ignores client tokens, and the
            // engine's look-before-create-again works everywhere.
            .customize()
            .config_override(crate::aws::ec2_once())
            .send()
            .await
            .call("CreateSecurityGroup")?;
        let id = out.group_id().ok_or_else(|| CloudError::internal("CreateSecurityGroup returned no id"))?;
        Ok(Created::from(id.to_string()))
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

    async fn strangers(
        &self,
        ctx: &ReadCtx<'_>,
        live: &Live,
        owned: &std::collections::HashSet<String>,
    ) -> Result<Vec<String>, CloudError> {
        super::ec2_dependents::strangers_in(ctx, &live.region, "group-id", &live.id, owned).await
    }

    async fn blockers(&self, cloud: &Cloud, op: &Op<'_>) -> Option<String> {
        super::ec2_dependents::network_interfaces(cloud, op.region, "group-id", op.id.unwrap_or_default()).await
    }
    async fn adopt(
        &self,
        cloud: &Cloud,
        region: &str,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        ec2_tags::adopt(cloud, region, "security group", "sg", id, tags, |ec2| async move {
            let out = ec2.describe_security_groups().group_ids(id).send().await.call("DescribeSecurityGroups")?;
            Ok(out.security_groups().first().map(|r| r.tags().to_vec()))
        })
        .await
    }
}

/// Every group the stack owns in `region`, rules included: one DescribeSecurityGroups per plan, shared with
/// `security_group_rules` through the read cache.
pub(super) async fn read_groups(
    ctx: &ReadCtx<'_>,
    region: &str,
) -> Result<std::sync::Arc<Vec<aws_sdk_ec2::types::SecurityGroup>>, CloudError> {
    ctx.shared(&format!("DescribeSecurityGroups/{region}"), || async {
        describe_owned!(ctx, region, describe_security_groups, "DescribeSecurityGroups")
    })
    .await
}
