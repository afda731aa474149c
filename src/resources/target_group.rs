//! `target_group.web`: where the load balancer sends requests: HTTP on `[load_balancer] target_port` to every web
//! instance (`targets`), with the health check and deregistration delay of the spec.
//!
//! Changing targets never leaves the load balancer without a healthy one: new targets are registered (update) and
//! waited for until healthy ([`Kind::wait`]), and only then are the ones no longer wanted deregistered (and waited
//! for until they have drained). An instance replaced create-first (new one launched, this group updated, old one
//! terminated) is therefore healthy behind the load balancer before the old one leaves it. Health-check and
//! deregistration settings change in place; port, protocol and VPC cannot: a new group (its name carries a suffix
//! of its own) is created and filled, the listener switched to it, then the old one deleted.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::client::Waiters;
use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthOutput;
use aws_sdk_elasticloadbalancingv2::types::{
    Matcher, ProtocolEnum, TargetDescription, TargetGroupAttribute, TargetHealthDescription, TargetHealthReasonEnum,
    TargetHealthStateEnum, TargetTypeEnum,
};
use futures::future::try_join_all;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::elb_tags::{self, PAGE, Seen, sorted, tag_list, unique_name};
use super::tags::{Tags, desired as desired_tags};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, Progress, ReadCtx, ReplaceOrder, Timeouts, cloud_id};
use crate::apply::Phase;
use crate::aws::{CallExt, Cloud, CloudError, retrying};
use crate::spec::Stack;

pub struct TargetGroup;

/// The web tier's target group.
pub fn address() -> Address {
    Address::new("target_group", "web")
}

/// The target group attribute holding the deregistration delay.
const DEREGISTRATION_DELAY: &str = "deregistration_delay.timeout_seconds";
/// Waiters get this long; the engine's timeouts (and Ctrl-C) end a wait well before.
const WAITER_MAX: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct HealthCheck {
    path: String,
    interval: i32,
    timeout: i32,
    healthy_threshold: i32,
    unhealthy_threshold: i32,
    matcher: String,
}

#[derive(Deserialize)]
struct Attrs {
    vpc: String,
    protocol: String,
    port: i32,
    health_check: HealthCheck,
    deregistration_delay: i64,
    targets: Vec<String>,
    tags: Tags,
}

#[async_trait]
impl Kind for TargetGroup {
    fn name(&self) -> &'static str {
        "target_group"
    }

    fn service(&self) -> &'static str {
        "elasticloadbalancing"
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let (Some(lb), Some(web)) = (&stack.load_balancer, &stack.web) else { return Vec::new() };
        let address = address();
        let hc = &lb.health_check;
        let targets: Vec<Value> =
            (1..=web.count).map(|i| super::reference(&Address::new("instance", &format!("web_{i}")))).collect();
        let attrs = json!({
            "vpc": super::reference(&super::vpc::address()),
            "protocol": "HTTP",
            "port": lb.target_port,
            "health_check": {
                "path": hc.path,
                "interval": hc.interval,
                "timeout": hc.timeout,
                "healthy_threshold": hc.healthy_threshold,
                "unhealthy_threshold": hc.unhealthy_threshold,
                "matcher": hc.matcher,
            },
            "deregistration_delay": lb.deregistration_delay,
            "targets": targets,
            "tags": desired_tags(stack, &address),
        });
        let mut desired = Desired::in_home_region(stack, address, &attrs);
        // An update waits for new targets to turn healthy and then for removed ones to drain, which takes the
        // deregistration delay on top.
        let mut timeouts = self.timeouts();
        timeouts.update += Duration::from_secs(u64::from(lb.deregistration_delay));
        desired.timeouts = Some(timeouts);
        vec![desired]
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            Attr::new("vpc").forces_replacement(),
            Attr::new("protocol").forces_replacement(),
            Attr::new("port").forces_replacement(),
            Attr::new("health_check"),
            Attr::new("deregistration_delay"),
            Attr::new("targets"),
            Attr::new("tags"),
        ];
        SCHEMA
    }

    /// The listener forwards to the group: the new one is created and filled, the listener switched, then the old
    /// one deleted (AWS refuses to delete a group a listener still uses). Names carry a unique suffix.
    fn replace_order(&self) -> ReplaceOrder {
        ReplaceOrder::CreateFirst
    }

    /// New instances boot and pass `healthy_threshold` checks within minutes.
    fn timeouts(&self) -> Timeouts {
        Timeouts::minutes(10, 10, 5)
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let elb = elb_tags::client(ctx.cloud, region)?;
        let all = elb
            .describe_target_groups()
            .page_size(PAGE)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .call("DescribeTargetGroups")?;
        let owned = elb_tags::owned(ctx, region, self.name(), all, |tg| tg.target_group_arn()).await?;
        // Per owned group, not per target: its targets' health and its attributes, two calls.
        let details = owned.iter().map(|o| async move {
            let health = ctx.limited(elb.describe_target_health().target_group_arn(&o.arn).send());
            let attributes = ctx.limited(elb.describe_target_group_attributes().target_group_arn(&o.arn).send());
            let (health, attributes) = futures::join!(health, attributes);
            let health = health.call("DescribeTargetHealth")?;
            let attributes = attributes.call("DescribeTargetGroupAttributes")?;
            Ok::<_, CloudError>((health, attributes))
        });
        let details = try_join_all(details).await?;
        Ok(owned
            .iter()
            .zip(details)
            .map(|(o, (health, attributes))| {
                let tg = &o.item;
                let delay = attributes
                    .attributes()
                    .iter()
                    .find(|a| a.key() == Some(DEREGISTRATION_DELAY))
                    .and_then(|a| a.value())
                    .and_then(|v| v.parse::<i64>().ok());
                let registered = registered(health.target_health_descriptions());
                let initial = states(health.target_health_descriptions(), |s| *s == TargetHealthStateEnum::Initial);
                let attrs = json!({
                    "vpc": tg.vpc_id().map(cloud_id),
                    "protocol": tg.protocol().map(|p| p.as_str()),
                    "port": tg.port(),
                    "health_check": {
                        "path": tg.health_check_path(),
                        "interval": tg.health_check_interval_seconds(),
                        "timeout": tg.health_check_timeout_seconds(),
                        "healthy_threshold": tg.healthy_threshold_count(),
                        "unhealthy_threshold": tg.unhealthy_threshold_count(),
                        "matcher": tg.matcher().and_then(|m| m.http_code()),
                    },
                    "deregistration_delay": delay,
                    "targets": registered.into_iter().map(cloud_id).collect::<Vec<_>>(),
                    "tags": o.tags,
                });
                let mut live = Live::new(o.address.clone(), region, &o.arn, super::attrs(&attrs));
                // Targets still in their first health checks: what forwards to this group waits for them.
                if !initial.is_empty() {
                    live.pending = Some(format!("{} target(s) initial", initial.len()));
                }
                live
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let elb = elb_tags::client(cloud, op.region)?;
        let hc = &want.health_check;
        // Never repeated blindly (`elb_tags::once`): after a lost answer the engine looks for the group by its tags
        // first. A repeat meets the same name: AWS answers with the group the first call made (same settings) or
        // DuplicateTargetGroupName, which the engine finishes as "already exists".
        let out = elb
            .create_target_group()
            .name(unique_name(cloud.stack(), op.address, &op.token))
            .protocol(ProtocolEnum::from(want.protocol.as_str()))
            .port(want.port)
            .vpc_id(&want.vpc)
            .target_type(TargetTypeEnum::Instance)
            .health_check_enabled(true)
            .health_check_path(&hc.path)
            .health_check_interval_seconds(hc.interval)
            .health_check_timeout_seconds(hc.timeout)
            .healthy_threshold_count(hc.healthy_threshold)
            .unhealthy_threshold_count(hc.unhealthy_threshold)
            .matcher(Matcher::builder().http_code(&hc.matcher).build())
            .set_tags(Some(tag_list(&want.tags)))
            .customize()
            .config_override(elb_tags::once())
            .send()
            .await
            .call("CreateTargetGroup")?;
        let arn = out
            .target_groups()
            .first()
            .and_then(|tg| tg.target_group_arn())
            .ok_or_else(|| CloudError::internal("CreateTargetGroup returned no target group ARN"))?;
        // The group exists (and is found by its tags if what follows is cut short; a re-run finishes it as an
        // update): from here on, retry what AWS does not see yet, never the create.
        cloud.settled(|| set_deregistration_delay(cloud, op.region, arn, want.deregistration_delay)).await?;
        register(cloud, op.region, arn, &want.targets).await?;
        Ok(Created::from(arn.to_string()))
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let have: Attrs = op.live()?;
        let arn = op.id()?;
        // A create finished after a lost answer hands in every attribute as changed: compare, so only what
        // differs is called.
        if want.health_check != have.health_check {
            let hc = &want.health_check;
            elb_tags::client(cloud, op.region)?
                .modify_target_group()
                .target_group_arn(arn)
                .health_check_path(&hc.path)
                .health_check_interval_seconds(hc.interval)
                .health_check_timeout_seconds(hc.timeout)
                .healthy_threshold_count(hc.healthy_threshold)
                .unhealthy_threshold_count(hc.unhealthy_threshold)
                .matcher(Matcher::builder().http_code(&hc.matcher).build())
                .send()
                .await
                .call("ModifyTargetGroup")?;
        }
        if want.deregistration_delay != have.deregistration_delay {
            set_deregistration_delay(cloud, op.region, arn, want.deregistration_delay).await?;
        }
        if want.tags != have.tags {
            elb_tags::sync_tags(cloud, op.region, arn, &want.tags, &have.tags).await?;
        }
        // New targets only: the ones no longer wanted leave in `wait`, once the new ones are healthy.
        let have_targets: BTreeSet<&String> = have.targets.iter().collect();
        let new: Vec<String> = want.targets.iter().filter(|t| !have_targets.contains(t)).cloned().collect();
        register(cloud, op.region, arn, &new).await
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        // A listener still forwarding here makes AWS answer ResourceInUse: the engine deletes or repoints the
        // listener first, and retries while AWS catches up.
        let result = elb_tags::client(cloud, op.region)?.delete_target_group().target_group_arn(op.id()?).send().await;
        super::gone_ok(result.call("DeleteTargetGroup"))
    }

    /// After a create or update: every wanted target healthy, then the targets no longer wanted deregistered and
    /// drained. For a group a plan found with targets still in their first checks (no desired state in hand):
    /// those targets healthy.
    async fn wait(
        &self,
        cloud: &Cloud,
        op: &Op<'_>,
        id: &str,
        phase: Phase,
        progress: &Progress,
    ) -> Result<(), CloudError> {
        let wanted: Option<Vec<String>> = match (phase, &op.desired) {
            (Phase::Delete, _) => return Ok(()),
            (Phase::Update, _) if !op.changed("targets") => return Ok(()),
            (_, Some(_)) => Some(op.desired::<Attrs>()?.targets),
            (_, None) => None,
        };
        let elb = elb_tags::client(cloud, op.region)?;
        let health = elb.describe_target_health().target_group_arn(id).send().await.call("DescribeTargetHealth")?;
        let healthy_first = match &wanted {
            Some(w) => w.clone(),
            None => states(health.target_health_descriptions(), |s| *s == TargetHealthStateEnum::Initial),
        };
        if !healthy_first.is_empty() {
            let targets: Vec<TargetDescription> = descriptions(&healthy_first);
            elb_tags::waiting(elb, progress, target_states, |elb| async move {
                let waiter = elb.wait_until_target_in_service().target_group_arn(id).set_targets(Some(targets));
                waiter.wait(WAITER_MAX).await.call("wait for the targets to become healthy")
            })
            .await?;
        }
        let Some(wanted) = wanted else { return Ok(()) };
        let stale: Vec<String> =
            registered(health.target_health_descriptions()).into_iter().filter(|t| !wanted.contains(t)).collect();
        if stale.is_empty() {
            return Ok(());
        }
        let call = elb.deregister_targets().target_group_arn(id).set_targets(Some(descriptions(&stale)));
        call.send().await.call("DeregisterTargets")?;
        let targets = descriptions(&stale);
        elb_tags::waiting(elb, progress, target_states, |elb| async move {
            let waiter = elb.wait_until_target_deregistered().target_group_arn(id).set_targets(Some(targets));
            waiter.wait(WAITER_MAX).await.call("wait for the removed targets to drain")
        })
        .await?;
        Ok(())
    }
}

fn descriptions(ids: &[String]) -> Vec<TargetDescription> {
    ids.iter().map(|id| TargetDescription::builder().id(id).build()).collect()
}

/// The targets registered to the group: every one AWS reports, but those already leaving (`draining`) or not
/// registered at all (`unused` with reason `Target.NotRegistered`, for a target asked about by id). A stopped
/// instance is `unused` too, but still registered.
fn registered(health: &[TargetHealthDescription]) -> Vec<String> {
    sorted(health.iter().filter_map(|d| {
        let h = d.target_health()?;
        let leaving = match h.state()? {
            TargetHealthStateEnum::Draining => true,
            TargetHealthStateEnum::Unused => h.reason() == Some(&TargetHealthReasonEnum::NotRegistered),
            _ => false,
        };
        if leaving { None } else { d.target()?.id().map(str::to_string) }
    }))
}

/// The targets whose state satisfies `keep`, sorted.
fn states(health: &[TargetHealthDescription], keep: impl Fn(&TargetHealthStateEnum) -> bool) -> Vec<String> {
    sorted(health.iter().filter_map(|d| {
        let state = d.target_health()?.state()?;
        keep(state).then(|| d.target()?.id().map(str::to_string)).flatten()
    }))
}

/// What a target health poll shows while waiting: `1 healthy, 1 initial`.
fn target_states(out: &DescribeTargetHealthOutput) -> Option<Seen> {
    let states = out.target_health_descriptions().iter().filter_map(|d| d.target_health()?.state()).map(|s| s.as_str());
    Some(Seen::Status(elb_tags::count_states(states)))
}

async fn set_deregistration_delay(cloud: &Cloud, region: &str, arn: &str, seconds: i64) -> Result<(), CloudError> {
    let attribute = TargetGroupAttribute::builder().key(DEREGISTRATION_DELAY).value(seconds.to_string()).build();
    elb_tags::client(cloud, region)?
        .modify_target_group_attributes()
        .target_group_arn(arn)
        .attributes(attribute)
        .send()
        .await
        .call("ModifyTargetGroupAttributes")?;
    Ok(())
}

/// Registers `targets` (none: nothing to call). An instance launched a moment ago may not be visible to ELB yet
/// (`InvalidTarget`): retried within the consistency window; registering again is harmless.
async fn register(cloud: &Cloud, region: &str, arn: &str, targets: &[String]) -> Result<(), CloudError> {
    if targets.is_empty() {
        return Ok(());
    }
    let elb = elb_tags::client(cloud, region)?;
    let not_yet: fn(&CloudError) -> bool = |e| e.is_not_found() || e.code() == "InvalidTarget";
    retrying(cloud.retry.consistency, cloud.retry.interval, not_yet, || async {
        let call = elb.register_targets().target_group_arn(arn).set_targets(Some(descriptions(targets)));
        call.send().await.call("RegisterTargets").map(|_| ())
    })
    .await
}
