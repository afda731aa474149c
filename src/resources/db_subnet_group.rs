//! `db_subnet_group.main`: the private subnets of every zone, as RDS wants them for the database (`[database]`).
//! RDS needs subnets in at least two zones, which the spec already requires of the network.
//!
//! Read: DescribeDBSubnetGroups cannot filter by tag and does not return tags, so the read lists the region's groups
//! (100 a page), keeps those named like this stack's (`STACK-...`), and asks ListTagsForResource for each of those
//! only: the stack tag decides. A fixed number of calls however many groups the account has: one per page, plus one
//! per group of the stack (one).

use async_trait::async_trait;
use aws_sdk_rds::types::DbSubnetGroup as Group;
use serde::Deserialize;
use serde_json::json;

use super::rds_tags::{live_tags, sync_tags, tag_list};
use super::tags::{self, TAG_ADDRESS, TAG_STACK, Tags};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx, cloud_id, reference};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{Stack, Tier};

pub struct DbSubnetGroup;

pub fn address() -> Address {
    Address::new("db_subnet_group", "main")
}

/// The group's name: AWS keeps it unique per region and account, and stores it in lower case.
pub fn name(stack: &str, address: &Address) -> String {
    format!("{stack}-{}", address.name()).to_ascii_lowercase()
}

#[derive(Deserialize)]
struct Attrs {
    #[allow(dead_code)]
    vpc: String,
    description: String,
    subnets: Vec<String>,
    tags: Tags,
}

#[async_trait]
impl Kind for DbSubnetGroup {
    fn name(&self) -> &'static str {
        "db_subnet_group"
    }

    fn service(&self) -> &'static str {
        "rds"
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        if stack.database.is_none() {
            return Vec::new();
        }
        let address = address();
        let subnets: Vec<_> =
            stack.network.zones.iter().map(|z| reference(&super::subnet::address(Tier::Private, &z.name))).collect();
        let attrs = json!({
            "vpc": reference(&super::vpc::address()),
            "description": format!("{}: the database's private subnets", stack.name),
            "subnets": subnets,
            "tags": tags::desired(stack, &address),
        });
        vec![Desired::in_home_region(stack, address, &attrs)]
    }

    /// Subnets and description change in place (ModifyDBSubnetGroup); the name is the identity. A group cannot move
    /// to another VPC while a database is in it: a new VPC means a new group, and a new database.
    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] =
            &[Attr::new("vpc").forces_replacement(), Attr::new("description"), Attr::new("subnets"), Attr::new("tags")];
        SCHEMA
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let rds = &ctx.cloud.clients(region)?.rds;
        let groups: Vec<Group> = rds
            .describe_db_subnet_groups()
            .max_records(100)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .call("DescribeDBSubnetGroups")?;
        let prefix = format!("{}-", ctx.cloud.stack()).to_ascii_lowercase();
        let candidates: Vec<&Group> = groups
            .iter()
            .filter(|g| g.db_subnet_group_name().is_some_and(|n| n.starts_with(&prefix)))
            .filter(|g| g.db_subnet_group_arn().is_some())
            .collect();
        let tagged = futures::future::try_join_all(candidates.iter().map(|g| async move {
            let arn = g.db_subnet_group_arn().unwrap_or_default();
            let out = ctx
                .limited(rds.list_tags_for_resource().resource_name(arn).send())
                .await
                .call("ListTagsForResource")?;
            Ok::<_, CloudError>((*g, live_tags(out.tag_list())))
        }))
        .await?;
        Ok(tagged
            .into_iter()
            .filter(|(_, tags)| tags::owned_by(tags, ctx.cloud.stack()))
            .filter(|(_, tags)| ctx.only.is_none_or(|a| tags.get(TAG_ADDRESS) == Some(&a.to_string())))
            .filter_map(|(g, tags)| {
                let name = g.db_subnet_group_name()?;
                let address = tags::owned_address(tags.get(TAG_ADDRESS).map(String::as_str), self.name(), name);
                let mut subnets: Vec<_> =
                    g.subnets().iter().filter_map(|s| s.subnet_identifier()).map(|s| s.to_string()).collect();
                subnets.sort();
                let attrs = super::attrs(&json!({
                    "vpc": g.vpc_id().map(cloud_id),
                    "description": g.db_subnet_group_description().unwrap_or_default(),
                    "subnets": subnets.into_iter().map(cloud_id).collect::<Vec<_>>(),
                    "tags": tags,
                }));
                let mut live = Live::new(address, region, name, attrs);
                live.outputs.insert("arn".into(), json!(g.db_subnet_group_arn()));
                debug_assert!(live.attrs["tags"].get(TAG_STACK).is_some());
                Some(live)
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let stack = want.tags.get(TAG_STACK).cloned().unwrap_or_default();
        let name = name(&stack, op.address);
        let out = cloud
            .clients(op.region)?
            .rds
            .create_db_subnet_group()
            .db_subnet_group_name(&name)
            .db_subnet_group_description(&want.description)
            .set_subnet_ids(Some(want.subnets.clone()))
            .set_tags(Some(tag_list(&want.tags)))
            .send()
            .await
            .call("CreateDBSubnetGroup")?;
        let group = out.db_subnet_group();
        let mut created = Created::from(group.and_then(|g| g.db_subnet_group_name()).unwrap_or(&name).to_string());
        created.outputs.insert("arn".into(), json!(group.and_then(|g| g.db_subnet_group_arn())));
        Ok(created)
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let have: Attrs = op.live()?;
        let rds = &cloud.clients(op.region)?.rds;
        let id = op.id()?;
        if op.changed("subnets") || op.changed("description") {
            let out = rds
                .modify_db_subnet_group()
                .db_subnet_group_name(id)
                .db_subnet_group_description(&want.description)
                .set_subnet_ids(Some(want.subnets.clone()))
                .send()
                .await
                .call("ModifyDBSubnetGroup")?;
            if op.changed("tags") {
                let arn = out.db_subnet_group().and_then(|g| g.db_subnet_group_arn()).unwrap_or_default().to_string();
                return sync_tags(cloud, op.region, &arn, &want.tags, &have.tags).await;
            }
        }
        if op.changed("tags") {
            let arn = arn_of(rds, id).await?;
            sync_tags(cloud, op.region, &arn, &want.tags, &have.tags).await?;
        }
        Ok(())
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let result = cloud.clients(op.region)?.rds.delete_db_subnet_group().db_subnet_group_name(op.id()?).send().await;
        // A group still used by a database that is being deleted: InvalidDBSubnetGroupStateFault, which the engine
        // retries like a dependency (the database's delete wait normally comes first).
        match result.call("DeleteDBSubnetGroup") {
            Err(e) if e.code() == "InvalidDBSubnetGroupStateFault" => {
                Err(CloudError { code: Some("DependencyViolation".into()), ..e })
            }
            Err(e) if self.is_gone(&e) => Ok(()),
            other => other.map(|_| ()),
        }
    }

    fn is_gone(&self, error: &CloudError) -> bool {
        error.is_not_found() || error.code() == "DBSubnetGroupNotFoundFault"
    }

    /// Databases the stack does not own in the group (made by hand, or by another tool): RDS refuses to delete a
    /// group in use, and their network interfaces keep the subnets and security group too. Said at plan time, so a
    /// destroy stops before deleting anything. One DescribeDBInstances (and pages), asked only for a group being deleted, and
    /// answered from the plan's own listing of the instances.
    async fn strangers(
        &self,
        ctx: &ReadCtx<'_>,
        live: &Live,
        owned: &std::collections::HashSet<String>,
    ) -> Result<Vec<String>, CloudError> {
        // The instances the plan's read of `db_instance` already listed: no second listing.
        let all = super::rds_tags::instances(ctx, &live.region).await?;
        Ok(all
            .iter()
            .filter(|i| i.db_subnet_group().and_then(|g| g.db_subnet_group_name()) == Some(live.id.as_str()))
            .filter_map(|i| i.db_instance_identifier())
            .filter(|id| !owned.contains(*id))
            .map(|id| format!("database {id}"))
            .collect())
    }
}

async fn arn_of(rds: &aws_sdk_rds::Client, name: &str) -> Result<String, CloudError> {
    let out = rds.describe_db_subnet_groups().db_subnet_group_name(name).send().await.call("DescribeDBSubnetGroups")?;
    out.db_subnet_groups()
        .first()
        .and_then(|g| g.db_subnet_group_arn())
        .map(str::to_string)
        .ok_or_else(|| CloudError::internal(format!("DB subnet group {name} has no ARN")))
}
