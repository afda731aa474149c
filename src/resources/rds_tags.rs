//! What the RDS kinds (DB subnet groups, DB instances) share:
//! - ownership tags in RDS's `Tag` list, given in the create call (`super::tags` says why), and kept in step with
//!   AddTagsToResource / RemoveTagsFromResource;
//! - the region's DB instances, listed once per plan (one DescribeDBInstances per 100, tags inline) for every kind
//!   that needs them: the instances' own read, and the subnet group's look for databases it does not own.

use std::sync::Arc;

use aws_sdk_rds::types::{DbInstance, Tag};

use super::ReadCtx;
use super::tags::{self, Tags};
use crate::aws::{CallExt, Cloud, CloudError};

/// RDS's `Tag` list, for create calls and AddTagsToResource.
pub fn tag_list(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// Live tags in the common form (`aws:` tags left out).
pub fn live_tags(tags: &[Tag]) -> Tags {
    tags::live(tags.iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or_default()))))
}

/// Makes the tags on `arn` equal `want`.
pub async fn sync_tags(cloud: &Cloud, region: &str, arn: &str, want: &Tags, have: &Tags) -> Result<(), CloudError> {
    let rds = &cloud.clients(region)?.rds;
    let stale: Vec<String> = have.keys().filter(|k| !want.contains_key(*k)).cloned().collect();
    if !stale.is_empty() {
        rds.remove_tags_from_resource()
            .resource_name(arn)
            .set_tag_keys(Some(stale))
            .send()
            .await
            .call("RemoveTagsFromResource")?;
    }
    let missing: Tags =
        want.iter().filter(|(k, v)| have.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    if !missing.is_empty() {
        rds.add_tags_to_resource()
            .resource_name(arn)
            .set_tags(Some(tag_list(&missing)))
            .send()
            .await
            .call("AddTagsToResource")?;
    }
    Ok(())
}

/// Every DB instance in `region`, read once per plan however many kinds ask.
pub async fn instances(ctx: &ReadCtx<'_>, region: &str) -> Result<Arc<Vec<DbInstance>>, CloudError> {
    ctx.shared(&format!("rds:instances:{region}"), || async {
        ctx.cloud
            .clients(region)?
            .rds
            .describe_db_instances()
            .max_records(100)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .call("DescribeDBInstances")
    })
    .await
}
