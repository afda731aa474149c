//! The tag plumbing every EC2 kind shares: ownership tags (`super::tags`) in EC2's form, TagSpecifications in
//! the create call, the tag-filtered describe, tag sync.

use std::collections::BTreeMap;
use std::future::Future;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use super::{Address, Live, cloud_id};
use crate::aws::{CallExt, Cloud, CloudError};

pub use super::tags::{TAG_ADDRESS, TAG_STACK, desired as desired_tags};

/// Everything of one EC2 kind the stack owns in a region: one tag-filtered describe, all pages; narrowed to one
/// address when the read context asks for one (a retried create looking for its resource).
/// `describe_owned!(ctx, region, describe_vpcs, "DescribeVpcs")` -> `Result<Vec<Vpc>, CloudError>`.
macro_rules! describe_owned {
    ($ctx:expr, $region:expr, $op:ident, $name:literal) => {
        $ctx.cloud
            .ec2($region)?
            .$op()
            .set_filters(Some($crate::resources::ec2_tags::owned_filters($ctx)))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .call($name)
    };
}
pub(crate) use describe_owned;

/// The describe filters that select what a stack owns (at one address, if the context says so).
pub fn owned_filters(ctx: &super::ReadCtx<'_>) -> Vec<Filter> {
    let mut filters = vec![Filter::builder().name(format!("tag:{TAG_STACK}")).values(ctx.cloud.stack()).build()];
    if let Some(address) = ctx.only {
        filters.push(Filter::builder().name(format!("tag:{TAG_ADDRESS}")).values(address.as_str()).build());
    }
    filters
}

pub fn tag_spec(kind: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()))
        .build()
}

/// Live tags as a map; `aws:` tags belong to AWS and are never diffed.
pub fn live_tags(tags: &[Tag]) -> BTreeMap<String, String> {
    super::tags::live(tags.iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or_default()))))
}

/// The address recorded on an EC2 resource the stack owns (see [`super::tags::owned_address`]).
pub fn owned_address(tags: &[Tag], kind: &str, id: &str) -> Address {
    let address = tags.iter().find(|t| t.key() == Some(TAG_ADDRESS)).and_then(|t| t.value());
    super::tags::owned_address(address, kind, id)
}

/// Wraps a described EC2 resource (found by the stack-tag filter) as live state.
pub fn live(
    kind: &str,
    region: &str,
    id: Option<&str>,
    tags: &[Tag],
    attrs: impl FnOnce() -> super::Attrs,
) -> Option<Live> {
    let id = id?.to_string();
    let address = owned_address(tags, kind, &id);
    let mut attrs = attrs();
    attrs.insert("tags".into(), serde_json::to_value(live_tags(tags)).unwrap_or_default());
    Some(Live::new(address, region, id, attrs))
}

/// Makes the tags on `id` equal `desired` (both maps exclude `aws:` tags).
pub async fn sync_tags(
    cloud: &Cloud,
    region: &str,
    id: &str,
    desired: &BTreeMap<String, String>,
    live: &BTreeMap<String, String>,
) -> Result<(), CloudError> {
    let ec2 = cloud.ec2(region)?;
    let stale: Vec<Tag> =
        live.keys().filter(|k| !desired.contains_key(*k)).map(|k| Tag::builder().key(k).build()).collect();
    if !stale.is_empty() {
        ec2.delete_tags().resources(id).set_tags(Some(stale)).send().await.call("DeleteTags")?;
    }
    let missing: Vec<Tag> = desired
        .iter()
        .filter(|(k, v)| live.get(*k) != Some(v))
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect();
    if !missing.is_empty() {
        ec2.create_tags().resources(id).set_tags(Some(missing)).send().await.call("CreateTags")?;
    }
    Ok(())
}

/// A live reference to a VPC (or any id) as the planner expects it.
pub fn id_ref(id: Option<&str>) -> serde_json::Value {
    id.map(cloud_id).unwrap_or(serde_json::Value::Null)
}

/// `import` of an EC2 resource, for every EC2 kind: `id` must carry the kind's prefix (`vpc-`; `what` names the
/// kind for people, "VPC"), `describe` (a describe by id, answering the resource's tags, or `None` when it
/// found nothing) must find it, and no stack may own it yet; then it gets `tags` (CreateTags).
pub async fn adopt<F, Fut>(
    cloud: &Cloud,
    region: &str,
    what: &str,
    prefix: &str,
    id: &str,
    tags: &BTreeMap<String, String>,
    describe: F,
) -> Result<(), CloudError>
where
    F: FnOnce(aws_sdk_ec2::Client) -> Fut,
    Fut: Future<Output = Result<Option<Vec<Tag>>, CloudError>>,
{
    let article = if what.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
    if !id.starts_with(&format!("{prefix}-")) {
        return Err(CloudError::internal(format!("{id} is not {article} {what} id: {what} ids start with {prefix}-")));
    }
    let ec2 = cloud.ec2(region)?;
    let found = match describe(ec2.clone()).await {
        Err(e) if e.is_not_found() || e.code().ends_with(".Malformed") => None,
        other => other?,
    };
    let Some(live) = found else {
        return Err(CloudError::internal(format!("there is no {what} {id} in {region}")));
    };
    let tag = |key: &str| live.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value());
    if let Some(owner) = tag(TAG_STACK) {
        let at = tag(TAG_ADDRESS).map(|a| format!(" as {a}")).unwrap_or_default();
        return Err(CloudError::internal(format!(
            "{id} already belongs to stack {owner}{at} (it carries the {TAG_STACK} tag): nothing to import"
        )));
    }
    let tags = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
    ec2.create_tags().resources(id).set_tags(Some(tags)).send().await.call("CreateTags")?;
    Ok(())
}
