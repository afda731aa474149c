//! `nat_gateway.a`, ...: internet egress for the private subnets (`[network] nat`). A public NAT gateway sits in a
//! zone's public subnet with an Elastic IP (`elastic_ip.nat_<zone>`); the private route tables send their default
//! route to it (`route_table`). `single` makes one, in the first zone by name, shared by every zone; `per_zone`
//! one in each zone, so a zone outage cuts no other zone's egress.
//!
//! AWS takes minutes to bring a gateway up (`pending` -> `available`, or `failed` with a reason) and to take it
//! down (`deleting` -> `deleted`, after which its address can be released): [`Kind::wait`] follows both with the
//! SDK's waiters and reports the state as progress. A deleted gateway stays listed for about an hour; it is not
//! the stack's any more, so reads leave `deleting` and `deleted` ones out.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::client::Waiters;
use aws_sdk_ec2::types::{ConnectivityType, NatGateway as Gateway, NatGatewayState, ResourceType};
use aws_smithy_runtime_api::client::waiters::error::WaiterError;
use serde::Deserialize;
use serde_json::json;

use super::ec2_tags::{self, TAG_ADDRESS, TAG_STACK, desired_tags, id_ref, owned_filters, tag_spec};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, Progress, ReadCtx, Timeouts, reference};
use crate::apply::Phase;
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{Nat, Stack, Tier, Zone};

pub struct NatGateway;

/// The gateway of zone `zone`.
pub fn address(zone: &str) -> Address {
    Address::new("nat_gateway", zone)
}

/// The zones that get a gateway: none, the first by name (zones are sorted), or all of them.
pub fn zones(stack: &Stack) -> impl Iterator<Item = &Zone> {
    let n = match stack.network.nat {
        Nat::None => 0,
        Nat::Single => 1,
        Nat::PerZone => usize::MAX,
    };
    stack.network.zones.iter().take(n)
}

/// The gateway the private subnets of `zone` send their internet traffic to, if any.
pub fn serving(stack: &Stack, zone: &str) -> Option<Address> {
    match stack.network.nat {
        Nat::None => None,
        Nat::Single => stack.network.zones.first().map(|z| address(&z.name)),
        Nat::PerZone => Some(address(zone)),
    }
}

#[derive(Deserialize)]
struct Attrs {
    subnet: String,
    elastic_ip: String,
    tags: BTreeMap<String, String>,
}

/// How often a long wait refreshes the state it reports (the waiter itself polls from every 15 s up to every 2
/// minutes).
const STATUS_EVERY: Duration = Duration::from_secs(60);
/// What the SDK waiter is given as its limit: the engine bounds every wait by the kind's timeouts and by Ctrl-C.
const UNBOUNDED: Duration = Duration::from_secs(24 * 3600);

#[async_trait]
impl Kind for NatGateway {
    fn name(&self) -> &'static str {
        "nat_gateway"
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        zones(stack)
            .map(|zone| {
                let address = address(&zone.name);
                let attrs = json!({
                    "subnet": reference(&super::subnet::address(Tier::Public, &zone.name)),
                    "elastic_ip": reference(&super::elastic_ip::address(&zone.name)),
                    "tags": desired_tags(stack, &address),
                });
                let mut d = Desired::in_home_region(stack, address, &attrs);
                // A public gateway reaches the internet through the VPC's internet gateway: created without one
                // attached, it goes straight to `failed` (Gateway.NotAttached). The spec requires the gateway when
                // nat is on; no attribute names it, hence the explicit dependency.
                if stack.network.internet_gateway {
                    d.depends_on.push(super::internet_gateway::address());
                }
                d
            })
            .collect()
    }

    /// A gateway's subnet and primary address are fixed at creation.
    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            Attr::new("subnet").forces_replacement(),
            Attr::new("elastic_ip").forces_replacement(),
            Attr::new("tags"),
        ];
        SCHEMA
    }

    /// AWS usually brings a gateway up in 1 to 5 minutes, but documents (and users report) well over 10; deletes
    /// take a minute or two, sometimes far longer.
    fn timeouts(&self) -> Timeouts {
        Timeouts::minutes(20, 10, 30)
    }

    /// One tag-filtered DescribeNatGateways (all pages) per region.
    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let gateways: Vec<Gateway> = ctx
            .cloud
            .ec2(region)?
            .describe_nat_gateways()
            .set_filter(Some(owned_filters(ctx)))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .call("DescribeNatGateways")?;
        Ok(gateways
            .iter()
            // The filter again, on our side: moto ignores tag filters on this call and lists every stack's
            // gateways, which would otherwise be taken for this stack's.
            .filter(|g| carries(g.tags(), TAG_STACK, ctx.cloud.stack()))
            .filter(|g| ctx.only.is_none_or(|a| carries(g.tags(), TAG_ADDRESS, a.as_str())))
            // Going or gone: no longer a gateway of the stack (a new one at the same address may be needed).
            .filter(|g| !is_gone_state(g.state()))
            .filter_map(|g| {
                let primary = g
                    .nat_gateway_addresses()
                    .iter()
                    .find(|a| a.is_primary() == Some(true))
                    .or_else(|| g.nat_gateway_addresses().first())
                    .and_then(|a| a.allocation_id());
                let attrs = || super::attrs(&json!({ "subnet": id_ref(g.subnet_id()), "elastic_ip": id_ref(primary) }));
                let mut live = ec2_tags::live(self.name(), region, g.nat_gateway_id(), g.tags(), attrs)?;
                // Still coming up: what routes through it waits. A failed one is waited for too, and that wait
                // reports AWS's reason (it never becomes available; the user replaces it once the cause is fixed).
                live.pending = match g.state() {
                    Some(NatGatewayState::Pending) => Some("pending".into()),
                    Some(NatGatewayState::Failed) => Some("failed".into()),
                    _ => None,
                };
                Some(live)
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let ec2 = cloud.ec2(op.region)?;
        // Idempotent: a repeat with the same token (an answer lost, the engine retrying) returns the first gateway
        // instead of making a second one, which would cost another ~$33 a month.
        let mut token = op.client_token(64);
        for _ in 0..3 {
            let out = ec2
                .create_nat_gateway()
                .client_token(&token)
                .subnet_id(&want.subnet)
                .allocation_id(&want.elastic_ip)
                .connectivity_type(ConnectivityType::Public)
                .tag_specifications(tag_spec(ResourceType::Natgateway, &want.tags))
                // Not repeated blindly by the SDK either (see `aws::ec2_once`): the emulator ignores client tokens.
                .customize()
                .config_override(crate::aws::ec2_once())
                .send()
                .await
                .call("CreateNatGateway")?;
            let gateway =
                out.nat_gateway().ok_or_else(|| CloudError::internal("CreateNatGateway returned no gateway"))?;
            let id = gateway
                .nat_gateway_id()
                .ok_or_else(|| CloudError::internal("CreateNatGateway returned no gateway id"))?
                .to_string();
            // A token AWS already spent on a gateway that has since been deleted (an earlier create of this address
            // whose gateway failed and was cleaned up) answers with that dead gateway: ask again with a token of
            // its own, derived from the dead one so that a repeat of this create is idempotent too.
            let state = match gateway.state() {
                Some(s) if is_gone_state(Some(s)) => Some(s.clone()),
                _ => state_of(ec2, &id).await.ok().flatten().and_then(|g| g.state().cloned()),
            };
            if !is_gone_state(state.as_ref()) {
                return Ok(Created::from(id));
            }
            token = format!("{}-{id}", op.client_token(40)).chars().take(64).collect();
        }
        Err(CloudError::internal(format!(
            "{}: AWS keeps answering CreateNatGateway with deleted gateways; try again later",
            op.address
        )))
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let have: Attrs = op.live()?;
        if op.changed("tags") {
            ec2_tags::sync_tags(cloud, op.region, op.id()?, &want.tags, &have.tags).await?;
        }
        Ok(())
    }

    /// Starts the delete; [`Kind::wait`] then waits for `deleted`, before which the Elastic IP cannot be released
    /// and the public subnet still holds the gateway's network interface.
    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let result = cloud.ec2(op.region)?.delete_nat_gateway().nat_gateway_id(op.id()?).send().await;
        super::gone_ok(result.call("DeleteNatGateway"))
    }

    async fn wait(
        &self,
        cloud: &Cloud,
        op: &Op<'_>,
        id: &str,
        phase: Phase,
        progress: &Progress,
    ) -> Result<(), CloudError> {
        let ec2 = cloud.ec2(op.region)?;
        match phase {
            Phase::Create | Phase::Wait => until_available(ec2, op.address, id, progress).await,
            Phase::Delete => until_deleted(ec2, id, progress).await,
            // Only tags change in place: nothing to wait for.
            Phase::Update => Ok(()),
        }
    }

    async fn adopt(
        &self,
        cloud: &Cloud,
        region: &str,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        ec2_tags::adopt(cloud, region, "NAT gateway", "nat", id, tags, |ec2| async move {
            let found = state_of(&ec2, id).await?;
            Ok(found.filter(|g| !is_gone_state(g.state())).map(|g| g.tags().to_vec()))
        })
        .await
    }
}

fn carries(tags: &[aws_sdk_ec2::types::Tag], key: &str, value: &str) -> bool {
    tags.iter().any(|t| t.key() == Some(key) && t.value() == Some(value))
}

fn is_gone_state(state: Option<&NatGatewayState>) -> bool {
    matches!(state, Some(NatGatewayState::Deleting | NatGatewayState::Deleted))
}

/// The gateway as AWS describes it now; `None` when AWS does not know it (yet: right after the create, reads may
/// not see it; or any more).
async fn state_of(ec2: &aws_sdk_ec2::Client, id: &str) -> Result<Option<Gateway>, CloudError> {
    match ec2.describe_nat_gateways().nat_gateway_ids(id).send().await.call("DescribeNatGateways") {
        Ok(out) => Ok(out.nat_gateways().iter().find(|g| g.nat_gateway_id() == Some(id)).cloned()),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Where a gateway coming up stands: `None` while it is still pending, else how the wait ends.
fn coming_up(address: &Address, gateway: &Gateway) -> Option<Result<(), CloudError>> {
    let id = gateway.nat_gateway_id().unwrap_or("?");
    match gateway.state() {
        Some(NatGatewayState::Available) => Some(Ok(())),
        Some(NatGatewayState::Failed) => {
            let reason = match (gateway.failure_code(), gateway.failure_message()) {
                (Some(code), Some(message)) => format!("{code}: {message}"),
                (code, message) => code.or(message).unwrap_or("AWS gave no reason").to_string(),
            };
            // Not AWS's failure code as ours: `InvalidAllocationID.NotFound` would read as "already gone".
            Some(Err(CloudError {
                operation: "CreateNatGateway".into(),
                code: Some("NatGatewayFailed".into()),
                message: format!(
                    "{address} ({id}) failed: {reason}. Fix the cause, then make a new one with \
                     `webscale apply --replace {address}` (AWS deletes a failed gateway by itself after about an hour)"
                ),
            }))
        }
        Some(s) if is_gone_state(Some(s)) => Some(Err(CloudError {
            operation: "CreateNatGateway".into(),
            code: Some("NatGatewayDeleted".into()),
            message: format!(
                "{address} ({id}) is {} instead of coming up (deleted by someone else?): run the apply again to \
                 create a new one",
                s.as_str()
            ),
        })),
        _ => None,
    }
}

/// Waits for `available` with the SDK's waiter (which fails on `failed`, `deleting` and `deleted`), looking at
/// the gateway itself every [`STATUS_EVERY`] for the progress line and, when it ends badly, for AWS's reason.
async fn until_available(
    ec2: &aws_sdk_ec2::Client,
    address: &Address,
    id: &str,
    progress: &Progress,
) -> Result<(), CloudError> {
    loop {
        match state_of(ec2, id).await? {
            // Not visible yet right after the create: the waiter retries NatGatewayNotFound.
            None => progress.set("pending"),
            Some(g) => match coming_up(address, &g) {
                Some(done) => {
                    progress.set(g.state().map_or("unknown", |s| s.as_str()));
                    return done;
                }
                None => progress.set(g.state().map_or("unknown", |s| s.as_str())),
            },
        }
        let waiter = ec2.wait_until_nat_gateway_available().nat_gateway_ids(id).wait(UNBOUNDED);
        match tokio::time::timeout(STATUS_EVERY, waiter).await {
            // Still pending: look again (and report it).
            Err(_) => continue,
            Ok(Ok(_)) => {
                progress.set("available");
                return Ok(());
            }
            Ok(Err(WaiterError::FailureState(f))) => {
                let last = f.final_poll().as_result().ok().and_then(|o| o.nat_gateways().first().cloned());
                if let Some(done) = last.as_ref().and_then(|g| coming_up(address, g)) {
                    progress.set(last.as_ref().and_then(|g| g.state()).map_or("unknown", |s| s.as_str()));
                    return done;
                }
                // The final answer did not say why: the next look does.
            }
            Ok(Err(e)) => return Err(e).call("wait for the NAT gateway to become available"),
        }
    }
}

/// Waits for `deleted` with the SDK's waiter (which also counts NatGatewayNotFound as deleted). A `failed`
/// gateway counts as gone too: it holds no address, and AWS removes it by itself.
async fn until_deleted(ec2: &aws_sdk_ec2::Client, id: &str, progress: &Progress) -> Result<(), CloudError> {
    loop {
        match state_of(ec2, id).await? {
            None => return Ok(()),
            Some(g) => match g.state() {
                Some(NatGatewayState::Deleted | NatGatewayState::Failed) => {
                    progress.set(g.state().map_or("deleted", |s| s.as_str()));
                    return Ok(());
                }
                state => progress.set(state.map_or("unknown", |s| s.as_str())),
            },
        }
        let waiter = ec2.wait_until_nat_gateway_deleted().nat_gateway_ids(id).wait(UNBOUNDED);
        match tokio::time::timeout(STATUS_EVERY, waiter).await {
            Err(_) => continue,
            Ok(Ok(_)) => {
                progress.set("deleted");
                return Ok(());
            }
            Ok(Err(e)) => return Err(e).call("wait for the NAT gateway to be deleted"),
        }
    }
}
