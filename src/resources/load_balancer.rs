//! `load_balancer.web`: the internet-facing Application Load Balancer of `[load_balancer]`, in the public subnet of
//! every zone, in the load balancer's security group. Its DNS name and canonical hosted zone id are outputs (Route
//! 53 alias records point at them). Its listeners are `listener.*`, its targets `target_group.web`.
//!
//! AWS takes minutes to bring a load balancer up (`provisioning` -> `active`): the create returns at once and
//! [`Kind::wait`] waits, showing the state; a plan that finds it still provisioning has the engine wait for it
//! before its listeners.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::client::Waiters;
use aws_sdk_elasticloadbalancingv2::operation::describe_load_balancers::DescribeLoadBalancersOutput;
use aws_sdk_elasticloadbalancingv2::types::{
    IpAddressType, LoadBalancerSchemeEnum, LoadBalancerStateEnum, LoadBalancerTypeEnum,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::elb_tags::{self, Seen, tag_list, unique_name};
use super::tags::{Tags, desired as desired_tags};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, Progress, ReadCtx, ReplaceOrder, Timeouts, cloud_id};
use crate::apply::Phase;
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{Stack, Tier};

pub struct LoadBalancer;

/// The stack's one load balancer.
pub fn address() -> Address {
    Address::new("load_balancer", "web")
}

/// Outputs: what Route 53 alias records need.
pub const DNS_NAME: &str = "dns_name";
pub const CANONICAL_HOSTED_ZONE_ID: &str = "canonical_hosted_zone_id";

/// Waiters get this long; the engine's timeouts (and Ctrl-C) end a wait well before.
const WAITER_MAX: Duration = Duration::from_secs(24 * 3600);

#[derive(Deserialize)]
struct Attrs {
    #[allow(dead_code)] // Read and compared; AWS takes the VPC from the subnets.
    vpc: String,
    scheme: String,
    subnets: Vec<String>,
    security_groups: Vec<String>,
    ip_address_type: String,
    tags: Tags,
}

#[async_trait]
impl Kind for LoadBalancer {
    fn name(&self) -> &'static str {
        "load_balancer"
    }

    fn service(&self) -> &'static str {
        "elasticloadbalancing"
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let Some(lb) = &stack.load_balancer else { return Vec::new() };
        let address = address();
        let subnets: Vec<Value> = stack
            .network
            .zones
            .iter()
            .map(|z| super::reference(&super::subnet::address(Tier::Public, &z.name)))
            .collect();
        let attrs = json!({
            "vpc": super::reference(&super::vpc::address()),
            "scheme": "internet-facing",
            "subnets": subnets,
            "security_groups": [super::reference(&super::security_group::address(&lb.security_group))],
            "ip_address_type": if lb.dualstack { "dualstack" } else { "ipv4" },
            "tags": desired_tags(stack, &address),
        });
        vec![Desired::in_home_region(stack, address, &attrs)]
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            // A load balancer lives in one VPC (AWS takes it from the subnets): a new VPC needs a new one.
            Attr::new("vpc").forces_replacement(),
            // An internal load balancer is another resource: AWS cannot change the scheme.
            Attr::new("scheme").forces_replacement(),
            Attr::new("subnets"),
            Attr::new("security_groups"),
            Attr::new("ip_address_type"),
            Attr::new("tags"),
        ];
        SCHEMA
    }

    /// Names carry a unique suffix, so the new load balancer comes up beside the old one; alias records and
    /// listeners move to it before the old one goes.
    fn replace_order(&self) -> ReplaceOrder {
        ReplaceOrder::CreateFirst
    }

    /// AWS documents up to 10 minutes to become active; deleting takes a minute or two.
    fn timeouts(&self) -> Timeouts {
        Timeouts::minutes(10, 10, 10)
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let owned = elb_tags::load_balancers(ctx, region).await?;
        Ok(owned
            .iter()
            .map(|o| {
                let lb = &o.item;
                let subnets: Vec<Value> =
                    lb.availability_zones().iter().filter_map(|z| z.subnet_id()).map(cloud_id).collect();
                let groups: Vec<Value> = lb.security_groups().iter().map(cloud_id).collect();
                let attrs = json!({
                    "vpc": lb.vpc_id().map(cloud_id),
                    "scheme": lb.scheme().map(|s| s.as_str()),
                    "subnets": subnets,
                    "security_groups": groups,
                    "ip_address_type": lb.ip_address_type().map(|t| t.as_str()),
                    "tags": o.tags,
                });
                let mut live = Live::new(o.address.clone(), region, &o.arn, super::attrs(&attrs));
                live.outputs = outputs(lb.dns_name(), lb.canonical_hosted_zone_id());
                live.pending = match lb.state().and_then(|s| s.code()) {
                    Some(LoadBalancerStateEnum::Active | LoadBalancerStateEnum::ActiveImpaired) | None => None,
                    Some(other) => Some(other.as_str().to_string()),
                };
                live
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        // Never repeated blindly (`elb_tags::once`): after a lost answer the engine looks for the load balancer by its
        // tags before creating again. A repeat it misses meets the same name: AWS answers with the load balancer the
        // first call made (same settings) or DuplicateLoadBalancerName, which the engine finishes as "already
        // exists".
        let out = elb_tags::client(cloud, op.region)?
            .create_load_balancer()
            .name(unique_name(cloud.stack(), op.address, &op.token))
            .r#type(LoadBalancerTypeEnum::Application)
            .scheme(LoadBalancerSchemeEnum::from(want.scheme.as_str()))
            .ip_address_type(IpAddressType::from(want.ip_address_type.as_str()))
            .set_subnets(Some(want.subnets))
            .set_security_groups(Some(want.security_groups))
            .set_tags(Some(tag_list(&want.tags)))
            .customize()
            .config_override(elb_tags::once())
            .send()
            .await
            .call("CreateLoadBalancer")?;
        let lb = out.load_balancers().first();
        let arn = lb
            .and_then(|lb| lb.load_balancer_arn())
            .ok_or_else(|| CloudError::internal("CreateLoadBalancer returned no load balancer ARN"))?;
        let outputs = outputs(lb.and_then(|l| l.dns_name()), lb.and_then(|l| l.canonical_hosted_zone_id()));
        Ok(Created { id: arn.to_string(), outputs })
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let have: Attrs = op.live()?;
        let elb = elb_tags::client(cloud, op.region)?;
        let arn = op.id()?;
        let set = |v: &[String]| v.iter().cloned().collect::<BTreeSet<_>>();
        // A create finished after a lost answer hands in every attribute as changed: compare, so only what
        // differs is called.
        if set(&want.subnets) != set(&have.subnets) {
            let call = elb.set_subnets().load_balancer_arn(arn).set_subnets(Some(want.subnets.clone()));
            call.send().await.call("SetSubnets")?;
        }
        if set(&want.security_groups) != set(&have.security_groups) {
            let call = elb.set_security_groups().load_balancer_arn(arn);
            call.set_security_groups(Some(want.security_groups.clone())).send().await.call("SetSecurityGroups")?;
        }
        if want.ip_address_type != have.ip_address_type {
            let call = elb.set_ip_address_type().load_balancer_arn(arn);
            let call = call.ip_address_type(IpAddressType::from(want.ip_address_type.as_str()));
            call.send().await.call("SetIpAddressType")?;
        }
        if want.tags != have.tags {
            elb_tags::sync_tags(cloud, op.region, arn, &want.tags, &have.tags).await?;
        }
        Ok(())
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        // Its listeners go with it. Its network interfaces drain for a few minutes more: the deletes of the
        // security group and subnets retry DependencyViolation meanwhile.
        let result =
            elb_tags::client(cloud, op.region)?.delete_load_balancer().load_balancer_arn(op.id()?).send().await;
        super::gone_ok(result.call("DeleteLoadBalancer"))
    }

    async fn wait(
        &self,
        cloud: &Cloud,
        op: &Op<'_>,
        id: &str,
        phase: Phase,
        progress: &Progress,
    ) -> Result<(), CloudError> {
        let elb = elb_tags::client(cloud, op.region)?;
        match phase {
            Phase::Create | Phase::Wait => {
                let failed = |out: &DescribeLoadBalancersOutput| {
                    let lb = out.load_balancers().first()?;
                    let state = lb.state()?;
                    Some(match state.code()? {
                        LoadBalancerStateEnum::Failed => Seen::Failed(format!(
                            "AWS reports the load balancer failed{}; replace it: webscale apply --replace {}",
                            state.reason().map(|r| format!(" ({r})")).unwrap_or_default(),
                            address()
                        )),
                        code => Seen::Status(code.as_str().to_string()),
                    })
                };
                elb_tags::waiting(elb, progress, failed, |elb| async move {
                    let waiter = elb.wait_until_load_balancer_available().load_balancer_arns(id);
                    waiter.wait(WAITER_MAX).await.call("wait for the load balancer to become active")
                })
                .await
                .map_err(|e| named(op.address, e))?;
            }
            Phase::Delete => {
                let state = |out: &DescribeLoadBalancersOutput| {
                    let code = out.load_balancers().first()?.state()?.code()?;
                    Some(Seen::Status(code.as_str().to_string()))
                };
                elb_tags::waiting(elb, progress, state, |elb| async move {
                    let waiter = elb.wait_until_load_balancers_deleted().load_balancer_arns(id);
                    waiter.wait(WAITER_MAX).await.call("wait for the load balancer to be deleted")
                })
                .await?;
            }
            Phase::Update => {}
        }
        Ok(())
    }
}

fn outputs(dns_name: Option<&str>, zone: Option<&str>) -> super::Attrs {
    super::attrs(&json!({ DNS_NAME: dns_name, CANONICAL_HOSTED_ZONE_ID: zone }))
}

/// A failed wait says which resource it was about.
fn named(address: &Address, e: CloudError) -> CloudError {
    if e.operation == "webscale" {
        return CloudError { message: format!("{address}: {}", e.message), ..e };
    }
    e
}
