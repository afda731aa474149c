//! What the ELBv2 kinds (load balancers, target groups, listeners) share:
//! - ownership tags in ELBv2's `Tag` list, given in the create call (`super::tags` says why);
//! - reading what a stack owns: ELBv2's describes cannot filter by tag, so a kind lists everything in the region
//!   (400 a page) and asks DescribeTags for 20 ARNs a call, keeping what carries the stack tag. A fixed number of
//!   calls however many resources the stack has (beyond pages and batches); load balancers are read once per plan
//!   for both kinds that need them;
//! - names AWS keeps unique per region (load balancers, target groups), with a suffix from the create's token so
//!   a create-first replacement can exist beside the resource it replaces;
//! - SDK waiters that report AWS's status while they wait (`waiting`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;

use aws_sdk_elasticloadbalancingv2::Client;
use aws_sdk_elasticloadbalancingv2::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_elasticloadbalancingv2::operation::describe_tags::DescribeTagsOutput;
use aws_sdk_elasticloadbalancingv2::types::{LoadBalancer, Tag};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::context::FinalizerInterceptorContextRef;
use futures::future::try_join_all;

use super::tags::{self, Tags};
use super::{Address, Progress, ReadCtx};
use crate::aws::{CallExt, Cloud, CloudError};

/// DescribeTags takes at most this many ARNs a call.
pub const TAGS_PER_CALL: usize = 20;
/// The largest page DescribeLoadBalancers / DescribeTargetGroups give.
pub const PAGE: i32 = 400;
/// Load balancer and target group names: at most 32 characters.
const NAME_MAX: usize = 32;

pub fn client<'a>(cloud: &'a Cloud, region: &str) -> Result<&'a Client, CloudError> {
    Ok(&cloud.clients(region)?.elbv2)
}

/// For ELBv2 creates: no automatic retries. AWS answers a repeated CreateLoadBalancer / CreateTargetGroup /
/// CreateListener with the same name and settings with what the first call made, but the emulator (moto) makes a
/// second one, and a throttled or lost call is better finished by the engine, which looks for the resource by its
/// tags before it creates again (see `aws::ec2_once`). The name stays deterministic, so a repeat the look misses
/// still meets the first resource on AWS.
pub fn once() -> aws_sdk_elasticloadbalancingv2::config::Builder {
    aws_sdk_elasticloadbalancingv2::config::Builder::default()
        .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
}

/// The tag set in ELBv2's form, for a create call or AddTags.
pub fn tag_list(tags: &Tags) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// A name AWS keeps unique per region and account (load balancers, target groups): the stack and the address's
/// name for people, then 8 characters of the create's token. A replacement has a token of its own, so its name
/// differs from the resource it replaces (both exist for a while); a repeat of the same create has the same name, so
/// it meets what the first call made (same settings: AWS answers with it; other settings: a Duplicate*Name error,
/// which the engine finishes as "already exists"). At most 32 characters of letters, digits and single hyphens,
/// neither starting nor ending with one, never starting with `internal-` (AWS refuses those for load balancers).
pub fn unique_name(stack: &str, address: &Address, token: &str) -> String {
    let suffix: String = token.trim_start_matches("ws-").chars().filter(char::is_ascii_alphanumeric).take(8).collect();
    let mut prefix = String::new();
    for c in format!("{stack}-{}", address.name()).chars() {
        let c = if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' };
        if c == '-' && (prefix.is_empty() || prefix.ends_with('-')) {
            continue;
        }
        prefix.push(c);
    }
    if prefix.starts_with("internal-") {
        prefix.replace_range(..9, "int-");
    }
    prefix.truncate(NAME_MAX - 1 - suffix.len());
    let prefix = prefix.trim_end_matches('-');
    if prefix.is_empty() { format!("ws-{suffix}") } else { format!("{prefix}-{suffix}") }
}

/// One ELBv2 resource the stack owns, with its tags (`aws:` ones left out) and the address they record.
#[derive(Debug, Clone)]
pub struct Owned<T> {
    pub item: T,
    pub arn: String,
    pub address: Address,
    pub tags: Tags,
}

/// The tags of `arns`: DescribeTags, 20 ARNs a call, the calls in parallel within the read limit.
pub async fn tags_of(ctx: &ReadCtx<'_>, region: &str, arns: &[String]) -> Result<HashMap<String, Tags>, CloudError> {
    let elb = client(ctx.cloud, region)?;
    let batches = arns.chunks(TAGS_PER_CALL).map(|batch| async move {
        let call = elb.describe_tags().set_resource_arns(Some(batch.to_vec()));
        ctx.limited(call.send()).await.call("DescribeTags")
    });
    let mut out = HashMap::new();
    for answer in try_join_all(batches).await? {
        collect_tags(&answer, &mut out);
    }
    Ok(out)
}

/// One DescribeTags answer into `out`, ARN -> tags.
fn collect_tags(answer: &DescribeTagsOutput, out: &mut HashMap<String, Tags>) {
    for d in answer.tag_descriptions() {
        let Some(arn) = d.resource_arn() else { continue };
        let pairs = d.tags().iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or_default())));
        out.insert(arn.to_string(), tags::live(pairs));
    }
}

/// The ARNs of the stack's target groups in `region`, outside a plan (an instance waiting to be healthy in them):
/// DescribeTargetGroups (all pages) and DescribeTags, 20 ARNs a call. Empty where the endpoint does not serve
/// ELBv2.
pub async fn stack_target_groups(cloud: &Cloud, region: &str) -> Result<Vec<String>, CloudError> {
    let elb = client(cloud, region)?;
    let groups = match elb
        .describe_target_groups()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .call("DescribeTargetGroups")
    {
        Err(e) if e.is_unserved() => {
            tracing::debug!(error = %e, "no ELBv2 here: no target health to wait for");
            return Ok(Vec::new());
        }
        other => other?,
    };
    let arns: Vec<String> = groups.iter().filter_map(|g| g.target_group_arn()).map(str::to_string).collect();
    let mut tags = HashMap::new();
    for batch in arns.chunks(TAGS_PER_CALL) {
        let answer = elb.describe_tags().set_resource_arns(Some(batch.to_vec())).send().await.call("DescribeTags")?;
        collect_tags(&answer, &mut tags);
    }
    Ok(arns.into_iter().filter(|arn| tags.get(arn).is_some_and(|t| tags::owned_by(t, cloud.stack()))).collect())
}

/// Those of `items` the stack owns (they carry its stack tag), each with its address (`kind`'s).
pub async fn owned<T>(
    ctx: &ReadCtx<'_>,
    region: &str,
    kind: &str,
    items: Vec<T>,
    arn: impl Fn(&T) -> Option<&str>,
) -> Result<Vec<Owned<T>>, CloudError> {
    let arns: Vec<String> = items.iter().filter_map(|i| arn(i).map(str::to_string)).collect();
    let mut tags = tags_of(ctx, region, &arns).await?;
    let stack = ctx.cloud.stack();
    Ok(items
        .into_iter()
        .filter_map(|item| {
            let arn = arn(&item)?.to_string();
            let tags = tags.remove(&arn).filter(|t| tags::owned_by(t, stack))?;
            let address = tags::owned_address(tags.get(tags::TAG_ADDRESS).map(String::as_str), kind, &arn);
            Some(Owned { item, arn, address, tags })
        })
        .collect())
}

/// Every load balancer the stack owns in `region`: DescribeLoadBalancers (every page) and DescribeTags, once per
/// plan for the load balancers and their listeners.
pub async fn load_balancers(ctx: &ReadCtx<'_>, region: &str) -> Result<Arc<Vec<Owned<LoadBalancer>>>, CloudError> {
    ctx.shared(&format!("DescribeLoadBalancers/{region}"), || async {
        let all = client(ctx.cloud, region)?
            .describe_load_balancers()
            .page_size(PAGE)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .call("DescribeLoadBalancers")?;
        owned(ctx, region, "load_balancer", all, |lb| lb.load_balancer_arn()).await
    })
    .await
}

/// Makes the tags on `arn` equal `want` (both without `aws:` tags and the keys other tools own).
pub async fn sync_tags(cloud: &Cloud, region: &str, arn: &str, want: &Tags, have: &Tags) -> Result<(), CloudError> {
    let elb = client(cloud, region)?;
    let stale: Vec<String> = have.keys().filter(|k| !want.contains_key(*k)).cloned().collect();
    if !stale.is_empty() {
        elb.remove_tags().resource_arns(arn).set_tag_keys(Some(stale)).send().await.call("RemoveTags")?;
    }
    let missing: Tags =
        want.iter().filter(|(k, v)| have.get(*k) != Some(v)).map(|(k, v)| (k.clone(), v.clone())).collect();
    if !missing.is_empty() {
        elb.add_tags().resource_arns(arn).set_tags(Some(tag_list(&missing))).send().await.call("AddTags")?;
    }
    Ok(())
}

/// What a waiter's poll says: AWS's status, or a state that will never turn into the one waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Status(String),
    Failed(String),
}

/// Runs an SDK waiter (`wait`, given a client to build it on) and reports what each of its polls answered through
/// `progress` (`provisioning`, `2 initial`), which the SDK's waiters cannot do themselves: the client the waiter is
/// built on shows every `O` answer to `look`. A `Seen::Failed` ends the wait at once with that message (a load
/// balancer in state `failed` would otherwise be polled until the timeout).
pub async fn waiting<O, T, F, Fut>(
    elb: &Client,
    progress: &Progress,
    look: fn(&O) -> Option<Seen>,
    wait: F,
) -> Result<T, CloudError>
where
    O: Send + Sync + std::fmt::Debug + 'static,
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    let (tx, mut rx) = tokio::sync::watch::channel(None);
    let tapped = Client::from_conf(elb.config().to_builder().interceptor(Tap { look, seen: tx }).build());
    let work = wait(tapped);
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => {
                if let Some(Seen::Status(s)) = rx.borrow().clone() {
                    progress.set(s);
                }
                return done;
            }
            Ok(()) = rx.changed() => match rx.borrow_and_update().clone() {
                Some(Seen::Status(s)) => progress.set(s),
                Some(Seen::Failed(why)) => return Err(CloudError::internal(why)),
                None => {}
            },
        }
    }
}

/// The interceptor behind [`waiting`].
struct Tap<O> {
    look: fn(&O) -> Option<Seen>,
    seen: tokio::sync::watch::Sender<Option<Seen>>,
}

impl<O> std::fmt::Debug for Tap<O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tap")
    }
}

impl<O: Send + Sync + std::fmt::Debug + 'static> Intercept for Tap<O> {
    fn name(&self) -> &'static str {
        "webscale-wait-status"
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(Ok(out)) = context.output_or_error()
            && let Some(out) = out.downcast_ref::<O>()
            && let Some(seen) = (self.look)(out)
        {
            self.seen.send_replace(Some(seen));
        }
        Ok(())
    }
}

/// `3 healthy, 1 initial`: how many targets are in each state.
pub fn count_states<'a>(states: impl IntoIterator<Item = &'a str>) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    states.into_iter().for_each(|s| *counts.entry(s).or_default() += 1);
    counts.iter().map(|(s, n)| format!("{n} {s}")).collect::<Vec<_>>().join(", ")
}

/// A set of ids as a sorted list (attribute values compare as sets anyway; sorted reads better in plans).
pub fn sorted(ids: impl IntoIterator<Item = String>) -> Vec<String> {
    ids.into_iter().collect::<BTreeSet<_>>().into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_fit_aws_rules_and_differ_per_replacement() {
        let web = Address::new("load_balancer", "web");
        let first = unique_name("shop", &web, "ws-0123456789abcdef");
        assert_eq!(first, "shop-web-01234567");
        assert_ne!(first, unique_name("shop", &web, "ws-fedcba9876543210"), "a replacement gets a name of its own");
        let long = unique_name("a-very-long-stack-name-of-32-chr", &web, "ws-0123456789abcdef");
        assert!(long.len() <= 32 && long.ends_with("-01234567"), "{long}");
        assert!(!long.contains("--") && !long.starts_with('-'), "{long}");
        let odd = unique_name("internal--x", &Address::new("target_group", "web_app"), "ws-abc");
        assert_eq!(odd, "int-x-web-app-abc");
        for name in [first, long, odd] {
            assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{name}");
        }
    }

    #[test]
    fn target_states_are_counted() {
        assert_eq!(count_states(["initial", "healthy", "initial"]), "1 healthy, 2 initial");
        assert_eq!(count_states([]), "");
    }
}
