//! `instance.web_1` .. `instance.web_N`: the web servers, `[web] count` of them, instance `i` in the private subnet
//! of zone `(i - 1) mod zones` (zones in name order), so they spread evenly and adding one never moves another.
//!
//! What a change does, as the plan says it:
//! - `ami`, `user_data`, `subnet`, `root_volume`: a new instance (create first: the new one is running, and
//!   registered and healthy in the target group, which the engine updates between the two halves, before the old
//!   one is terminated).
//! - `instance_type`: in place, one instance of the stack at a time: stop, modify, start, running and healthy in
//!   the stack's target groups again before the next instance stops ([`roll`]), so the load balancer always keeps
//!   healthy targets.
//! - `security_groups`, `metadata_http_tokens`, `tags`: in place, no restart.
//!
//! User data cannot be read back cheaply (one DescribeInstanceAttribute per instance): it is write-only. The create
//! keeps the salted digest the engine hands it on the instance as the `webscale:user-data` tag, and the read
//! reports that tag, so an unchanged file is no change and the text never shows in a plan.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    AttributeValue, BlockDeviceMapping, EbsBlockDevice, Filter, HttpTokensState, InstanceMetadataEndpointState,
    InstanceMetadataOptionsRequest, InstanceNetworkInterfaceSpecification, InstanceStateName, InstanceType,
    ResourceType, VolumeType,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::ec2_tags::{self, desired_tags, id_ref, owned_filters, tag_spec};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, Progress, ReadCtx, ReplaceOrder, Timeouts};
use super::{output_reference, reference};
use crate::apply::Phase;
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{Ami, Stack, Tier};

pub struct Instance;

/// `instance.web_I`, I from 1.
pub fn address(i: u32) -> Address {
    Address::new("instance", &format!("web_{i}"))
}

/// The tag that keeps the digest of the user data the instance was launched with (see the module comment).
pub const USER_DATA_TAG: &str = "webscale:user-data";

/// The states of an instance that still counts. One `shutting-down` or `terminated` is gone: an old instance of a
/// create-first replacement, or one terminated by hand (then the plan launches a new one).
const LIVE_STATES: [&str; 4] = ["pending", "running", "stopping", "stopped"];

/// IMDSv2 only: a request to the metadata service needs a session token, which a forged request (SSRF through
/// the web app) cannot get.
const IMDS_V2: &str = "required";

#[derive(Deserialize)]
struct Attrs {
    ami: String,
    instance_type: String,
    subnet: String,
    security_groups: Vec<String>,
    /// Desired: the text. Live: the digest kept on the instance, if any.
    user_data: Option<String>,
    metadata_http_tokens: Option<String>,
    root_volume: Option<RootVolume>,
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize, PartialEq, Debug)]
struct RootVolume {
    /// GiB.
    size: i32,
    #[serde(rename = "type")]
    volume_type: String,
    encrypted: bool,
}

#[async_trait]
impl Kind for Instance {
    fn name(&self) -> &'static str {
        "instance"
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            Attr::new("ami").forces_replacement(),
            Attr::new("instance_type"),
            Attr::new("subnet").forces_replacement(),
            Attr::new("security_groups"),
            Attr::new("user_data").write_only().forces_replacement(),
            Attr::new("metadata_http_tokens"),
            Attr::new("root_volume").forces_replacement(),
            Attr::new("tags"),
        ];
        SCHEMA
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let Some(web) = &stack.web else { return Vec::new() };
        let mut zones: Vec<&str> = stack.network.zones.iter().map(|z| z.name.as_str()).collect();
        zones.sort();
        if zones.is_empty() {
            return Vec::new();
        }
        let ami = match &web.ami {
            Ami::Id(id) => Value::String(id.clone()),
            Ami::Parameter(_) => output_reference(&super::ami::address(), "image_id"),
        };
        (1..=web.count)
            .map(|i| {
                let address = address(i);
                let zone = zones[(i as usize - 1) % zones.len()];
                let attrs = json!({
                    "ami": ami,
                    "instance_type": web.instance_type,
                    "subnet": reference(&super::subnet::address(Tier::Private, zone)),
                    "security_groups": [reference(&super::security_group::address(&web.security_group))],
                    "user_data": web.user_data,
                    "metadata_http_tokens": IMDS_V2,
                    "root_volume": { "size": web.root_volume_size, "type": "gp3", "encrypted": true },
                    "tags": desired_tags(stack, &address),
                });
                Desired::in_home_region(stack, address, &attrs)
            })
            .collect()
    }

    /// A new AMI or user data: the new instance serves before the old one goes.
    fn replace_order(&self) -> ReplaceOrder {
        ReplaceOrder::CreateFirst
    }

    /// An update's wait covers a whole one-at-a-time roll turn, queueing behind the stack's other instances
    /// included: each takes a few minutes on AWS (stop, start, health checks).
    fn timeouts(&self) -> Timeouts {
        Timeouts::minutes(10, 30, 20)
    }

    /// One tag-filtered DescribeInstances (all pages) and, when there is any instance, one tag-filtered
    /// DescribeVolumes for the root volumes: two calls however many instances.
    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let ec2 = ctx.cloud.ec2(region)?;
        let mut filters = owned_filters(ctx);
        filters.push(Filter::builder().name("instance-state-name").set_values(Some(states())).build());
        let reservations = ec2
            .describe_instances()
            .set_filters(Some(filters))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .call("DescribeInstances")?;
        let instances: Vec<&aws_sdk_ec2::types::Instance> = reservations.iter().flat_map(|r| r.instances()).collect();
        if instances.is_empty() {
            return Ok(Vec::new());
        }
        // Root volumes carry the instance's tags (set in RunInstances).
        let volumes = ec2_tags::describe_owned!(ctx, region, describe_volumes, "DescribeVolumes")?;
        let by_id: HashMap<&str, &aws_sdk_ec2::types::Volume> =
            volumes.iter().filter_map(|v| Some((v.volume_id()?, v))).collect();
        Ok(instances.into_iter().filter_map(|i| live(self.name(), region, i, &by_id)).collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let ec2 = cloud.ec2(op.region)?;
        let root_device = root_device_name(ec2, &want.ami).await?;
        let mut instance_tags = want.tags.clone();
        if let Some(digest) = op.digests.get("user_data") {
            instance_tags.insert(USER_DATA_TAG.into(), digest.clone());
        }
        let volume = want.root_volume.as_ref().ok_or_else(|| missing(op, "root_volume"))?;
        // The token makes a repeat of this launch (an answer lost, a crash and re-run) return the first instance
        // instead of starting a second. Within its window AWS also answers an old launch of the same address
        // (web_3 removed, then added again): that instance is gone, so the launch goes again under a token of its
        // own, derived from the gone one (a repeat of that launch derives the same).
        let mut token = op.client_token(64);
        for _ in 0..4 {
            let mut call = ec2
                .run_instances()
                .image_id(&want.ami)
                .instance_type(InstanceType::from(want.instance_type.as_str()))
                .min_count(1)
                .max_count(1)
                // The primary interface spelled out: no public address (a private subnet gives none anyway, but
                // this holds whatever the subnet says), and it goes with the instance (so a terminated instance
                // never leaves an interface behind in the stack's subnet; moto keeps it otherwise).
                .network_interfaces(
                    InstanceNetworkInterfaceSpecification::builder()
                        .device_index(0)
                        .subnet_id(&want.subnet)
                        .set_groups(Some(want.security_groups.clone()))
                        .associate_public_ip_address(false)
                        .delete_on_termination(true)
                        .build(),
                )
                .metadata_options(
                    InstanceMetadataOptionsRequest::builder()
                        .http_tokens(HttpTokensState::from(want.metadata_http_tokens.as_deref().unwrap_or(IMDS_V2)))
                        .http_endpoint(InstanceMetadataEndpointState::Enabled)
                        .build(),
                )
                .block_device_mappings(
                    BlockDeviceMapping::builder()
                        .device_name(&root_device)
                        .ebs(
                            EbsBlockDevice::builder()
                                .volume_size(volume.size)
                                .volume_type(VolumeType::from(volume.volume_type.as_str()))
                                .encrypted(volume.encrypted)
                                .delete_on_termination(true)
                                .build(),
                        )
                        .build(),
                )
                // Both tagged in this call: an instance (or a volume) is never untagged, even if we crash next.
                .tag_specifications(tag_spec(ResourceType::Instance, &instance_tags))
                .tag_specifications(tag_spec(ResourceType::Volume, &want.tags))
                .client_token(&token);
            if let Some(text) = want.user_data.as_deref().filter(|t| !t.is_empty()) {
                call = call.user_data(aws_smithy_types::base64::encode(text));
            }
            // Never repeated by the SDK (see `aws::ec2_once`); the engine repeats it, with the same token.
            let result = call.customize().config_override(crate::aws::ec2_once()).send().await.call("RunInstances");
            let out = match result {
                Err(e) if e.code() == "IdempotentParameterMismatch" => {
                    // An old launch of this address under other parameters: a token for these parameters.
                    token =
                        derived_token(&token, &super::digest(&Value::Object(op.desired.clone().unwrap_or_default())));
                    continue;
                }
                other => other?,
            };
            let instance =
                out.instances().first().ok_or_else(|| CloudError::internal("RunInstances returned no instance"))?;
            let id = instance.instance_id().ok_or_else(|| CloudError::internal("RunInstances returned no id"))?;
            if matches!(state_of(instance), Some(InstanceStateName::ShuttingDown | InstanceStateName::Terminated)) {
                tracing::debug!(%id, "the client token answered a terminated launch; launching under a new token");
                token = derived_token(&token, id);
                continue;
            }
            let mut created = Created::from(id.to_string());
            created.outputs = outputs(instance);
            return Ok(created);
        }
        Err(CloudError::internal(format!(
            "{}: RunInstances kept answering with earlier launches of this address; run the same command again",
            op.address
        )))
    }

    /// Everything in place but the instance type, which needs a stop and belongs to the one-at-a-time roll in
    /// [`Kind::wait`]. Also finishes a create whose answer was lost (every attribute listed as changed): only
    /// what really differs is acted on.
    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let have: Attrs = op.live()?;
        let id = op.id()?;
        let ec2 = cloud.ec2(op.region)?;
        for (name, differs) in [("ami", want.ami != have.ami), ("subnet", want.subnet != have.subnet)] {
            if differs {
                return Err(CloudError::internal(format!(
                    "{}: {name} cannot change in place; run `webscale apply --replace {}`",
                    op.address, op.address
                )));
            }
        }
        let mut groups_want = want.security_groups.clone();
        let mut groups_have = have.security_groups.clone();
        groups_want.sort();
        groups_have.sort();
        if groups_want != groups_have {
            // The groups live on the primary network interface (where the read finds them): set them there.
            // ModifyInstanceAttribute would do the same on AWS, but the emulator then leaves the interface's
            // groups as they were, and the plan would never settle.
            let described = ec2.describe_instances().instance_ids(id).send().await.call("DescribeInstances")?;
            let eni = described
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .flat_map(|i| i.network_interfaces())
                .find(|n| n.attachment().and_then(|a| a.device_index()) == Some(0))
                .and_then(|n| n.network_interface_id())
                .map(str::to_string);
            if let Some(eni) = eni {
                ec2.modify_network_interface_attribute()
                    .network_interface_id(eni)
                    .set_groups(Some(want.security_groups.clone()))
                    .send()
                    .await
                    .call("ModifyNetworkInterfaceAttribute")?;
            }
            // The same change through the instance: a no-op on AWS after the one above, but LocalStack keeps the
            // instance's view apart from the interface's.
            ec2.modify_instance_attribute()
                .instance_id(id)
                .set_groups(Some(want.security_groups.clone()))
                .send()
                .await
                .call("ModifyInstanceAttribute")?;
        }
        if want.metadata_http_tokens != have.metadata_http_tokens {
            ec2.modify_instance_metadata_options()
                .instance_id(id)
                .http_tokens(HttpTokensState::from(want.metadata_http_tokens.as_deref().unwrap_or(IMDS_V2)))
                .http_endpoint(InstanceMetadataEndpointState::Enabled)
                .send()
                .await
                .call("ModifyInstanceMetadataOptions")?;
        }
        let want_digest = op.digests.get("user_data");
        if want_digest.is_some() && have.user_data.as_ref() != want_digest {
            adopt_user_data(cloud, op, id, want.user_data.as_deref().unwrap_or_default(), want_digest).await?;
        }
        if want.tags != have.tags {
            ec2_tags::sync_tags(cloud, op.region, id, &want.tags, &have.tags).await?;
        }
        // The root volume follows the instance's tags; one read without them is tagged again (its size and
        // encryption are then compared by the next plan).
        if (want.tags != have.tags || have.root_volume.is_none())
            && let Some((volume, tags)) = root_volume(ec2, id).await?
        {
            ec2_tags::sync_tags(cloud, op.region, &volume, &want.tags, &tags).await?;
        }
        Ok(())
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let result = cloud.ec2(op.region)?.terminate_instances().instance_ids(op.id()?).send().await;
        super::gone_ok(result.call("TerminateInstances"))
    }

    /// Create: running (an instance found stopped, from an interrupted type change, is started). Update: the
    /// instance type roll. Delete: terminated. AWS's state is the progress.
    async fn wait(
        &self,
        cloud: &Cloud,
        op: &Op<'_>,
        id: &str,
        phase: Phase,
        progress: &Progress,
    ) -> Result<(), CloudError> {
        match phase {
            Phase::Create | Phase::Wait => until_running(cloud, op.region, id, progress).await,
            Phase::Update => {
                let want: Attrs = op.desired()?;
                let have: Attrs = op.live()?;
                if want.instance_type == have.instance_type {
                    return Ok(());
                }
                roll(cloud, op, id, &want.instance_type, progress).await
            }
            Phase::Delete => until_terminated(cloud, op.region, id, progress).await,
        }
    }

    async fn adopt(
        &self,
        cloud: &Cloud,
        region: &str,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        ec2_tags::adopt(cloud, region, "instance", "i", id, tags, |ec2| async move {
            let out = ec2.describe_instances().instance_ids(id).send().await.call("DescribeInstances")?;
            Ok(out.reservations().iter().flat_map(|r| r.instances()).next().map(|i| i.tags().to_vec()))
        })
        .await
    }
}

fn states() -> Vec<String> {
    LIVE_STATES.iter().map(|s| s.to_string()).collect()
}

fn missing(op: &Op<'_>, what: &str) -> CloudError {
    CloudError::internal(format!("{}: no {what} in the desired attributes", op.address))
}

fn state_of(i: &aws_sdk_ec2::types::Instance) -> Option<InstanceStateName> {
    i.state().and_then(|s| s.name()).cloned()
}

fn outputs(i: &aws_sdk_ec2::types::Instance) -> super::Attrs {
    super::attrs(&json!({ "private_ip": i.private_ip_address() }))
}

/// A client token for a later launch of the same address: `base` and `salt` digested, at most 64 characters.
fn derived_token(base: &str, salt: &str) -> String {
    let d = super::digest(&json!([base, salt]));
    format!("ws-{}", d.trim_start_matches("sha256:")).chars().take(64).collect()
}

/// One described instance as live state.
fn live(
    kind: &str,
    region: &str,
    i: &aws_sdk_ec2::types::Instance,
    volumes: &HashMap<&str, &aws_sdk_ec2::types::Volume>,
) -> Option<Live> {
    let tag = |key: &str| i.tags().iter().find(|t| t.key() == Some(key)).and_then(|t| t.value());
    let root = i
        .block_device_mappings()
        .iter()
        .find(|m| m.device_name().is_some() && m.device_name() == i.root_device_name())
        .and_then(|m| m.ebs()?.volume_id())
        .and_then(|v| volumes.get(v));
    let attrs = || {
        super::attrs(&json!({
            "ami": i.image_id(),
            "instance_type": i.instance_type().map(|t| t.as_str()),
            "subnet": id_ref(i.subnet_id()),
            "security_groups": groups(i).into_iter().map(|g| id_ref(Some(g))).collect::<Vec<_>>(),
            "user_data": tag(USER_DATA_TAG),
            "metadata_http_tokens": i.metadata_options().and_then(|m| m.http_tokens()).map(|t| t.as_str()),
            "root_volume": root.map(|v| json!({
                "size": v.size(),
                "type": v.volume_type().map(|t| t.as_str()),
                "encrypted": v.encrypted().unwrap_or(false),
            })),
        }))
    };
    let mut live = ec2_tags::live(kind, region, i.instance_id(), i.tags(), attrs)?;
    // The digest is the user data's attribute, not a tag the spec sets.
    if let Some(Value::Object(tags)) = live.attrs.get_mut("tags") {
        tags.remove(USER_DATA_TAG);
    }
    live.outputs = outputs(i);
    live.pending = match state_of(i) {
        Some(InstanceStateName::Pending) => Some("pending".into()),
        Some(InstanceStateName::Stopping) => Some("stopping".into()),
        Some(InstanceStateName::Stopped) => Some("stopped".into()),
        _ => None,
    };
    Some(live)
}

/// The instance's security groups: those of its primary interface, where they live (AWS reports them on the
/// instance too; moto only for instances launched without an interface specification).
fn groups(i: &aws_sdk_ec2::types::Instance) -> Vec<&str> {
    let primary = i.network_interfaces().iter().find(|n| n.attachment().and_then(|a| a.device_index()) == Some(0));
    match primary {
        Some(n) if !n.groups().is_empty() => n.groups().iter().filter_map(|g| g.group_id()).collect(),
        _ => i.security_groups().iter().filter_map(|g| g.group_id()).collect(),
    }
}

/// The root device of `ami` (`/dev/xvda` on Amazon Linux): the block device mapping that sets the root volume's
/// size and encryption must name it, or it adds a second volume instead.
async fn root_device_name(ec2: &aws_sdk_ec2::Client, ami: &str) -> Result<String, CloudError> {
    let out = match ec2.describe_images().image_ids(ami).send().await.call("DescribeImages") {
        Err(e) if e.is_not_found() || e.code().ends_with(".Malformed") => None,
        other => Some(other?),
    };
    out.as_ref().and_then(|o| o.images().first()).and_then(|i| i.root_device_name()).map(str::to_string).ok_or_else(
        || {
            CloudError::internal(format!(
                "AMI {ami} does not exist in this region or is not shared with this account; check [web] ami"
            ))
        },
    )
}

/// The root volume of instance `id` and its tags (an update's own call, never part of a plan's read).
async fn root_volume(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
) -> Result<Option<(String, BTreeMap<String, String>)>, CloudError> {
    let out = ec2.describe_instances().instance_ids(id).send().await.call("DescribeInstances")?;
    let Some(i) = out.reservations().iter().flat_map(|r| r.instances()).next() else { return Ok(None) };
    let Some(volume) = i
        .block_device_mappings()
        .iter()
        .find(|m| m.device_name() == i.root_device_name())
        .and_then(|m| m.ebs()?.volume_id())
    else {
        return Ok(None);
    };
    let out = ec2.describe_volumes().volume_ids(volume).send().await.call("DescribeVolumes")?;
    let tags = out.volumes().first().map(|v| ec2_tags::live_tags(v.tags())).unwrap_or_default();
    Ok(Some((volume.to_string(), tags)))
}

/// An instance without the user data digest (adopted, or the tag removed by hand): its user data is read once,
/// and if it is the spec's the digest is written; otherwise only a new instance can carry the spec's.
async fn adopt_user_data(
    cloud: &Cloud,
    op: &Op<'_>,
    id: &str,
    text: &str,
    digest: Option<&String>,
) -> Result<(), CloudError> {
    let ec2 = cloud.ec2(op.region)?;
    let out = ec2
        .describe_instance_attribute()
        .instance_id(id)
        .attribute(aws_sdk_ec2::types::InstanceAttributeName::UserData)
        .send()
        .await
        .call("DescribeInstanceAttribute")?;
    let live = out.user_data().and_then(|v| v.value()).unwrap_or_default();
    let want = if text.is_empty() { String::new() } else { aws_smithy_types::base64::encode(text) };
    if live != want {
        return Err(CloudError::internal(format!(
            "{} runs other user data than {} gives; a new instance is needed: run `webscale apply --replace {}`",
            op.address, "the spec's [web] user_data file", op.address
        )));
    }
    let Some(digest) = digest else { return Ok(()) };
    let tag = aws_sdk_ec2::types::Tag::builder().key(USER_DATA_TAG).value(digest).build();
    ec2.create_tags().resources(id).tags(tag).send().await.call("CreateTags")?;
    Ok(())
}

/// The state of instance `id`, `None` once AWS no longer knows it.
async fn describe_state(
    ec2: &aws_sdk_ec2::Client,
    id: &str,
) -> Result<Option<(InstanceStateName, Option<String>)>, CloudError> {
    let out = match ec2.describe_instances().instance_ids(id).send().await.call("DescribeInstances") {
        Err(e) if e.is_not_found() => return Ok(None),
        other => other?,
    };
    Ok(out.reservations().iter().flat_map(|r| r.instances()).next().and_then(|i| {
        let reason = i.state_reason().and_then(|r| r.message()).map(str::to_string);
        Some((state_of(i)?, reason))
    }))
}

/// Pauses between polls: from the retry policy's first pause, doubling up to 15 s (EC2's waiters poll every 15 s).
struct Pause(Duration);

impl Pause {
    fn new(cloud: &Cloud) -> Pause {
        Pause(cloud.retry.interval)
    }

    async fn sleep(&mut self) {
        tokio::time::sleep(self.0).await;
        self.0 = (self.0 * 2).min(Duration::from_secs(15));
    }
}

/// Polls until `id` is running (what EC2's InstanceRunning waiter does, reporting each state on the way). A
/// stopped instance (an interrupted type change) is started; one shutting down or terminated will never run.
/// Not found right after the launch is AWS not seeing it yet.
async fn until_running(cloud: &Cloud, region: &str, id: &str, progress: &Progress) -> Result<(), CloudError> {
    let ec2 = cloud.ec2(region)?;
    let mut pause = Pause::new(cloud);
    loop {
        match describe_state(ec2, id).await? {
            Some((InstanceStateName::Running, _)) => {
                progress.set("running");
                return Ok(());
            }
            Some((InstanceStateName::Stopped, _)) => {
                progress.set("stopped: starting");
                ec2.start_instances().instance_ids(id).send().await.call("StartInstances")?;
            }
            Some((state @ (InstanceStateName::ShuttingDown | InstanceStateName::Terminated), reason)) => {
                return Err(CloudError {
                    operation: "webscale".into(),
                    code: Some("InstanceTerminated".into()),
                    message: format!(
                        "instance {id} is {} and will never run{}",
                        state.as_str(),
                        reason.map(|r| format!(" ({r})")).unwrap_or_default()
                    ),
                });
            }
            Some((state, _)) => progress.set(state.as_str()),
            None => progress.set("pending (not visible yet)"),
        }
        pause.sleep().await;
    }
}

async fn until_state(
    cloud: &Cloud,
    region: &str,
    id: &str,
    want: InstanceStateName,
    progress: &Progress,
) -> Result<(), CloudError> {
    let ec2 = cloud.ec2(region)?;
    let mut pause = Pause::new(cloud);
    loop {
        match describe_state(ec2, id).await? {
            Some((state, _)) if state == want => {
                progress.set(state.as_str());
                return Ok(());
            }
            Some((InstanceStateName::Terminated, _)) | None => {
                return Err(CloudError::internal(format!("instance {id} was terminated while webscale changed it")));
            }
            Some((state, _)) => progress.set(state.as_str()),
        }
        pause.sleep().await;
    }
}

async fn until_terminated(cloud: &Cloud, region: &str, id: &str, progress: &Progress) -> Result<(), CloudError> {
    let ec2 = cloud.ec2(region)?;
    let mut pause = Pause::new(cloud);
    loop {
        match describe_state(ec2, id).await? {
            Some((InstanceStateName::Terminated, _)) | None => {
                progress.set("terminated");
                return Ok(());
            }
            Some((state, _)) => progress.set(state.as_str()),
        }
        pause.sleep().await;
    }
}

/// One stack's instances in one region take their in-place type changes in turn.
#[derive(Default)]
struct Lane {
    turn: tokio::sync::Mutex<()>,
    /// Turns that failed (or were given up) so far, and the last one's address: a turn queued before a failure
    /// does not start (the failed instance may be down: stopping another could leave no healthy target).
    failures: AtomicUsize,
    last_failure: Mutex<Option<String>>,
}

/// region -> its lane, for the run (the cloud is the stack's).
type Lanes = Mutex<HashMap<String, Arc<Lane>>>;

fn lane(cloud: &Cloud, region: &str) -> Arc<Lane> {
    let lanes = cloud.shared::<Lanes>("instance type lanes");
    let mut lanes = lanes.lock().unwrap_or_else(|e| e.into_inner());
    lanes.entry(region.to_string()).or_default().clone()
}

/// Marks the turn failed unless it completed: an error, and also the engine giving up on the wait (timeout,
/// Ctrl-C), which drops the turn midway.
struct Turn<'a> {
    lane: &'a Lane,
    address: &'a Address,
    done: bool,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if !self.done {
            *self.lane.last_failure.lock().unwrap_or_else(|e| e.into_inner()) = Some(self.address.to_string());
            self.lane.failures.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The in-place instance type change, one instance of the stack at a time: stop, wait stopped, modify, start,
/// wait running, wait healthy in every target group of the stack that holds it; only then does the next
/// instance's turn begin, so the load balancer never loses more than one target to the change.
async fn roll(
    cloud: &Cloud,
    op: &Op<'_>,
    id: &str,
    instance_type: &str,
    progress: &Progress,
) -> Result<(), CloudError> {
    let lane = lane(cloud, op.region);
    let failures = lane.failures.load(Ordering::SeqCst);
    progress.set("waiting for its turn (one instance at a time)");
    let _turn = lane.turn.lock().await;
    if lane.failures.load(Ordering::SeqCst) != failures {
        let which = lane.last_failure.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default();
        return Err(CloudError::internal(format!(
            "not started: {which} did not come back healthy from its instance type change, and stopping {} too \
             could leave the load balancer without a healthy target; see to {which}, then run the same command again",
            op.address
        )));
    }
    let mut turn = Turn { lane: &lane, address: op.address, done: false };
    let ec2 = cloud.ec2(op.region)?;
    progress.set("stopping");
    ec2.stop_instances().instance_ids(id).send().await.call("StopInstances")?;
    until_state(cloud, op.region, id, InstanceStateName::Stopped, progress).await?;
    progress.set(format!("stopped: changing the type to {instance_type}"));
    ec2.modify_instance_attribute()
        .instance_id(id)
        .instance_type(AttributeValue::builder().value(instance_type).build())
        .send()
        .await
        .call("ModifyInstanceAttribute")?;
    progress.set("starting");
    ec2.start_instances().instance_ids(id).send().await.call("StartInstances")?;
    until_state(cloud, op.region, id, InstanceStateName::Running, progress).await?;
    until_healthy(cloud, op.region, id, progress).await?;
    turn.done = true;
    Ok(())
}

/// Polls until `id` is healthy in every target group of the stack that sends it traffic. A group that does not
/// hold it, or is not used by a load balancer, or has health checks off, does not count; a target still `unused`
/// because the instance was stopped a moment ago (`Target.InvalidState`) is waited for. Throttling and lost
/// answers are polled through.
async fn until_healthy(cloud: &Cloud, region: &str, id: &str, progress: &Progress) -> Result<(), CloudError> {
    use aws_sdk_elasticloadbalancingv2::types::{TargetHealthReasonEnum as Reason, TargetHealthStateEnum as State};
    let groups = super::elb_tags::stack_target_groups(cloud, region).await?;
    if groups.is_empty() {
        return Ok(());
    }
    let elbv2 = &cloud.clients(region)?.elbv2;
    let mut pause = Pause::new(cloud);
    loop {
        let mut waiting: Vec<String> = Vec::new();
        for arn in &groups {
            let out = match elbv2.describe_target_health().target_group_arn(arn).send().await {
                Ok(out) => out,
                Err(e) => {
                    let e = Err::<(), _>(e).call("DescribeTargetHealth").unwrap_err();
                    if e.is_not_found() {
                        continue;
                    }
                    if !(e.is_throttling() || e.is_ambiguous()) {
                        return Err(e);
                    }
                    waiting.push(format!("unknown ({})", e.code_or_message()));
                    continue;
                }
            };
            for d in out.target_health_descriptions() {
                if d.target().and_then(|t| t.id()) != Some(id) {
                    continue;
                }
                let health = d.target_health();
                let state = health.and_then(|h| h.state()).cloned().unwrap_or(State::Initial);
                let reason = health.and_then(|h| h.reason());
                let counts = match state {
                    State::Healthy | State::Draining | State::Unavailable => false,
                    State::Unused => !matches!(reason, Some(Reason::NotRegistered | Reason::NotInUse)),
                    _ => true,
                };
                if counts {
                    waiting.push(state.as_str().to_string());
                }
            }
        }
        if waiting.is_empty() {
            progress.set("running and healthy");
            return Ok(());
        }
        progress.set(format!("running; target health: {}", waiting.join(", ")));
        pause.sleep().await;
    }
}
