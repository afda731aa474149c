//! Ownership tags and the tag plumbing every EC2 kind shares.
//!
//! Every resource gets `webscale:stack` (which stack owns it) and `webscale:address` (which spec entry it is) in
//! its create call (TagSpecifications), never in a later call: a crash between the two would leave an orphan that
//! no read can find.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

use super::{Address, Live, cloud_id};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::Stack;

pub const TAG_STACK: &str = "webscale:stack";
pub const TAG_ADDRESS: &str = "webscale:address";

/// The full tag set a resource should carry: the stack's extra tags, a readable Name, the ownership pair.
pub fn desired_tags(stack: &Stack, address: &Address) -> BTreeMap<String, String> {
    let mut tags = stack.tags.clone();
    // For people in the console: stack, kind, name (`shop-route-table-public`), never two alike.
    tags.insert("Name".into(), format!("{}-{}", stack.name, address.as_str().replace(['_', '.'], "-")));
    tags.insert(TAG_STACK.into(), stack.name.clone());
    tags.insert(TAG_ADDRESS.into(), address.to_string());
    tags
}

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
    tags.iter()
        .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
        .filter(|(k, _)| !k.starts_with("aws:"))
        .collect()
}

/// The address recorded on a resource the stack owns (it carries the stack tag: the describe filtered on it).
/// When the address tag is missing or hand-edited into nonsense the resource is still the stack's: it gets a
/// stray address, so the plan deletes it instead of it silently blocking the deletes of its VPC.
pub fn owned_address(tags: &[Tag], kind: &str, id: &str) -> Address {
    tags.iter()
        .find(|t| t.key() == Some(TAG_ADDRESS))
        .and_then(|t| t.value())
        .and_then(Address::parse)
        .filter(|a| a.kind() == kind)
        .unwrap_or_else(|| super::stray(kind, id))
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
