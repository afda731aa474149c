//! `log_group.events` and `log_group.app`: the CloudWatch Logs groups of the logging pipeline (`[logging]`). The
//! function's, `/aws/lambda/STACK-events`, is where Lambda writes; the web tier's application group,
//! `/webscale/STACK/app`, is where its servers may ship their logs. Each keeps events for the spec's retention.
//!
//! Why the stack owns the function's group: Lambda creates `/aws/lambda/FUNCTION` by itself on the function's first
//! invocation, with no retention (events kept forever) and no tags. Created by webscale before the function, it has
//! the spec's retention, and destroy removes it; a group Lambda made for an earlier function of the same name is not
//! the stack's, and the plan says so before apply (`occupied`) instead of failing on "already exists".
//!
//! Read: DescribeLogGroups cannot filter by tag, but it can by name prefix, and every name the stack gives a group
//! starts with one of two prefixes derived from the stack's name (`/aws/lambda/STACK-`, `/webscale/STACK/`). One
//! paginated call per prefix lists the candidates; ListTagsForResource is asked of those only (never of the
//! account's other groups), and the stack tag decides. Shared by the read and the plan-time `occupied` check.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::tags::{self, TAG_ADDRESS, TAG_STACK, Tags};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{Logging, Stack};

pub struct LogGroup;

/// `log_group.events`: the function's group.
pub fn events_address() -> Address {
    Address::new("log_group", "events")
}

/// `log_group.app`: the web tier's application group.
pub fn app_address() -> Address {
    Address::new("log_group", "app")
}

#[derive(Deserialize)]
struct Attrs {
    name: String,
    retention_days: i32,
    tags: Tags,
}

/// The name prefixes every group of the stack starts with, whatever the spec says now (a destroy, or a spec
/// without `[logging]`, must still find what an earlier apply made).
fn prefixes(stack: &str) -> [String; 2] {
    [format!("/aws/lambda/{stack}-"), format!("/webscale/{stack}/")]
}

/// A group under the stack's prefixes, with its tags: the stack's, or another's of a similar name.
#[derive(Debug, Clone)]
pub struct Group {
    pub name: String,
    /// The group's ARN without the `:*` DescribeLogGroups' `arn` ends with: what the tagging calls take.
    pub arn: String,
    pub retention_days: Option<i32>,
    pub tags: Tags,
}

/// The ARN of a described group, without the trailing `:*` (AWS reports both forms; the tagging API takes this one).
fn arn_of(g: &aws_sdk_cloudwatchlogs::types::LogGroup) -> Option<String> {
    g.log_group_arn().map(str::to_string).or_else(|| g.arn().map(|a| a.trim_end_matches(":*").to_string()))
}

fn outputs(g: &Group) -> super::Attrs {
    super::attrs(&json!({ "arn": g.arn, "name": g.name }))
}

fn logs<'a>(cloud: &'a Cloud, region: &str) -> Result<&'a aws_sdk_cloudwatchlogs::Client, CloudError> {
    Ok(&cloud.clients(region)?.logs)
}

/// Every group in `region` under the stack's name prefixes, with its tags: one DescribeLogGroups per prefix (50
/// a page), then one ListTagsForResource per group found. Read once per plan, for the read and `occupied`.
pub async fn groups(ctx: &ReadCtx<'_>, region: &str) -> Result<Arc<Vec<Group>>, CloudError> {
    ctx.shared(&format!("logs:groups:{region}"), || async {
        let logs = logs(ctx.cloud, region)?;
        let listings = prefixes(ctx.cloud.stack()).map(|prefix| async move {
            logs.describe_log_groups()
                .log_group_name_prefix(prefix)
                .into_paginator()
                .items()
                .send()
                .collect::<Result<Vec<_>, _>>()
                .await
                .call("DescribeLogGroups")
        });
        let listed: Vec<_> = futures::future::try_join_all(listings).await?.into_iter().flatten().collect();
        let tagged = listed.iter().filter_map(|g| Some((g.log_group_name()?.to_string(), arn_of(g)?, g))).map(
            |(name, arn, g)| async move {
                let tags = match ctx.limited(logs.list_tags_for_resource().resource_arn(&arn).send()).await {
                    Ok(out) => tags::live(out.tags().into_iter().flatten().map(|(k, v)| (k.as_str(), v.as_str()))),
                    // Deleted since it was listed: nothing to read.
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
                        return Ok(None);
                    }
                    Err(e) => return Err(Err::<(), _>(e).call("ListTagsForResource").unwrap_err()),
                };
                Ok::<_, CloudError>(Some(Group { name, arn, retention_days: g.retention_in_days(), tags }))
            },
        );
        Ok(futures::future::try_join_all(tagged).await?.into_iter().flatten().collect())
    })
    .await
}

/// The group named exactly `name`, if it exists (DescribeLogGroups matches prefixes: `/a/b` also lists `/a/bc`).
async fn find(logs: &aws_sdk_cloudwatchlogs::Client, name: &str) -> Result<Option<(String, Option<i32>)>, CloudError> {
    let listed = logs
        .describe_log_groups()
        .log_group_name_prefix(name)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .call("DescribeLogGroups")?;
    Ok(listed.iter().find(|g| g.log_group_name() == Some(name)).and_then(|g| Some((arn_of(g)?, g.retention_in_days()))))
}

async fn group_tags(logs: &aws_sdk_cloudwatchlogs::Client, arn: &str) -> Result<Tags, CloudError> {
    let out = logs.list_tags_for_resource().resource_arn(arn).send().await.call("ListTagsForResource")?;
    Ok(tags::live(out.tags().into_iter().flatten().map(|(k, v)| (k.as_str(), v.as_str()))))
}

async fn put_retention(logs: &aws_sdk_cloudwatchlogs::Client, name: &str, days: i32) -> Result<(), CloudError> {
    logs.put_retention_policy().log_group_name(name).retention_in_days(days).send().await.call("PutRetentionPolicy")?;
    Ok(())
}

/// Makes the tags on `arn` equal `want` (`have`: the live tags, ignored keys already left out).
async fn sync_tags(
    logs: &aws_sdk_cloudwatchlogs::Client,
    arn: &str,
    want: &Tags,
    have: &Tags,
) -> Result<(), CloudError> {
    let stale: Vec<String> = have.keys().filter(|k| !want.contains_key(*k)).cloned().collect();
    if !stale.is_empty() {
        logs.untag_resource().resource_arn(arn).set_tag_keys(Some(stale)).send().await.call("UntagResource")?;
    }
    let missing: HashMap<String, String> =
        want.iter().filter(|(k, v)| have.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    if !missing.is_empty() {
        logs.tag_resource().resource_arn(arn).set_tags(Some(missing)).send().await.call("TagResource")?;
    }
    Ok(())
}

#[async_trait]
impl Kind for LogGroup {
    fn name(&self) -> &'static str {
        "log_group"
    }

    fn service(&self) -> &'static str {
        "logs"
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] =
            &[Attr::new("name").forces_replacement(), Attr::new("retention_days"), Attr::new("tags")];
        SCHEMA
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let Some(logging) = &stack.logging else { return Vec::new() };
        [
            (events_address(), Logging::function_log_group(&stack.name), logging.retention_days),
            (app_address(), Logging::app_log_group(&stack.name), logging.app_retention_days),
        ]
        .into_iter()
        .map(|(address, name, days)| {
            let attrs = json!({ "name": name, "retention_days": days, "tags": tags::desired(stack, &address) });
            Desired::in_home_region(stack, address, &attrs)
        })
        .collect()
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let groups = groups(ctx, region).await?;
        let stack = ctx.cloud.stack();
        Ok(groups
            .iter()
            .filter(|g| tags::owned_by(&g.tags, stack))
            .map(|g| {
                let address = tags::owned_address(g.tags.get(TAG_ADDRESS).map(String::as_str), "log_group", &g.name);
                let attrs = super::attrs(&json!({
                    "name": g.name,
                    // A group without a retention policy keeps its events forever: null, which differs from any
                    // number the spec can ask for.
                    "retention_days": g.retention_days,
                    "tags": g.tags,
                }));
                let mut live = Live::new(address, region, g.name.clone(), attrs);
                live.outputs = outputs(g);
                live
            })
            .filter(|l| ctx.only.is_none_or(|o| *o == l.address))
            .collect())
    }

    /// CreateLogGroup (tags in the call), then the retention. CreateLogGroup has no client token: a repeat (its
    /// answer was lost) meets ResourceAlreadyExistsException. A group carrying the stack's tag is that first
    /// create's: the retention finishes it. Any other group of that name is not the stack's and is never taken over.
    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let logs = logs(cloud, op.region)?;
        let created = logs
            .create_log_group()
            .log_group_name(&want.name)
            .set_tags(Some(want.tags.clone().into_iter().collect()))
            .send()
            .await
            .call("CreateLogGroup");
        match created {
            Ok(_) => {}
            Err(e) if e.code() == "ResourceAlreadyExistsException" => {
                let (arn, _) = find(logs, &want.name).await?.ok_or_else(|| e.clone())?;
                let have = group_tags(logs, &arn).await?;
                if !tags::owned_by(&have, cloud.stack()) {
                    let owner = have.get(TAG_STACK).map_or_else(
                        || format!("is not stack {}'s (Lambda creates /aws/lambda/FUNCTION on a function's first invocation: a leftover of an earlier function of that name?)", cloud.stack()),
                        |s| format!("belongs to stack {s}"),
                    );
                    return Err(CloudError {
                        message: format!(
                            "log group {} already exists and {owner}. Adopt it with `webscale import {} {}`, or delete it, then apply again",
                            want.name, op.address, want.name
                        ),
                        ..e
                    });
                }
            }
            Err(e) => return Err(e),
        }
        // Right after the create, the group may not be visible to the next call yet.
        cloud.settled(|| put_retention(logs, &want.name, want.retention_days)).await?;
        let (arn, _) = cloud
            .settled(|| async {
                find(logs, &want.name).await?.ok_or_else(|| CloudError {
                    operation: "DescribeLogGroups".into(),
                    code: Some("ResourceNotFoundException".into()),
                    message: format!("log group {} not visible yet", want.name),
                })
            })
            .await?;
        let group = Group { name: want.name.clone(), arn, retention_days: Some(want.retention_days), tags: want.tags };
        Ok(Created { id: want.name.clone(), outputs: outputs(&group) })
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let logs = logs(cloud, op.region)?;
        let name = op.id()?;
        if op.changed("retention_days") {
            put_retention(logs, name, want.retention_days).await?;
        }
        if op.changed("tags") {
            let have: Tags = op
                .live
                .as_ref()
                .and_then(|l| l.get("tags"))
                .cloned()
                .map_or_else(Tags::new, |t| serde_json::from_value(t).unwrap_or_default());
            let (arn, _) = find(logs, name).await?.ok_or_else(|| CloudError {
                operation: "DescribeLogGroups".into(),
                code: Some("ResourceNotFoundException".into()),
                message: format!("log group {name} does not exist"),
            })?;
            sync_tags(logs, &arn, &want.tags, &have).await?;
        }
        Ok(())
    }

    /// Deleting a group deletes its events: they are the pipeline's own log, which the spec's retention was going
    /// to expire anyway.
    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let logs = logs(cloud, op.region)?;
        super::gone_ok(logs.delete_log_group().log_group_name(op.id()?).send().await.call("DeleteLogGroup"))
    }

    /// Before a create: a group of that name the stack does not own (the classic: `/aws/lambda/FUNCTION`, made by
    /// Lambda when an earlier function of that name was invoked). From the listing the read made: no extra call.
    async fn occupied(&self, ctx: &ReadCtx<'_>, desired: &Desired) -> Result<Vec<String>, CloudError> {
        let Some(name) = desired.attrs.get("name").and_then(|v| v.as_str()) else { return Ok(Vec::new()) };
        let groups = groups(ctx, &desired.region).await?;
        let stack = ctx.cloud.stack();
        Ok(groups
            .iter()
            .filter(|g| g.name == name && !tags::owned_by(&g.tags, stack))
            .map(|g| {
                // A noun phrase: the plan shows "blocked by ..., which the stack does not own".
                let import = format!("adopt it with `webscale import {} {name}`, or delete it", desired.address);
                match g.tags.get(TAG_STACK) {
                    Some(other) => format!("log group {name} of stack {other} (delete it there, or rename this stack)"),
                    None if name.starts_with("/aws/lambda/") => format!(
                        "log group {name} (Lambda makes /aws/lambda/FUNCTION on a function's first invocation: likely left by an earlier function of that name; {import})"
                    ),
                    None => format!("log group {name} ({import})"),
                }
            })
            .collect())
    }

    /// `webscale import log_group.events NAME`: the group must exist and belong to no stack; it gets the ownership
    /// tags (the next apply sets the rest, and the retention).
    async fn adopt(&self, cloud: &Cloud, region: &str, id: &str, tags: &Tags) -> Result<(), CloudError> {
        let logs = logs(cloud, region)?;
        let Some((arn, _)) = find(logs, id).await? else {
            return Err(CloudError::internal(format!("there is no log group named {id} in {region}")));
        };
        let have = group_tags(logs, &arn).await?;
        if let Some(owner) = have.get(TAG_STACK).filter(|s| Some(*s) != tags.get(TAG_STACK)) {
            return Err(CloudError::internal(format!("log group {id} belongs to stack {owner}: not imported")));
        }
        logs.tag_resource()
            .resource_arn(&arn)
            .set_tags(Some(tags.clone().into_iter().collect()))
            .send()
            .await
            .call("TagResource")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_the_stack_gives_a_group_is_under_one_of_its_prefixes() {
        let p = prefixes("shop");
        for name in [Logging::function_log_group("shop"), Logging::app_log_group("shop")] {
            assert!(p.iter().any(|p| name.starts_with(p.as_str())), "{name} under {p:?}");
        }
        assert!(!p.iter().any(|p| "/aws/lambda/shopping-events".starts_with(p.as_str())));
    }
}
