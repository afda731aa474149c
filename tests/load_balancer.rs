//! The load balancer tier: `load_balancer.web`, `target_group.web`, `listener.*`.
//!
//! - Emulator (moto; skipped on LocalStack's free edition, which does not serve ELBv2): the reference stack applied
//!   by the real binary, then checked through an ELBv2 client of the test's own: the ALB internet-facing in the
//!   public subnets with the load balancer's group, listener -> target group -> every instance, the health check
//!   as declared, tags; an in-place health-check change; a port change that brings up a new target group before the
//!   old one goes; destroy.
//! - Mocked SDK (aws-smithy-mocks), for what the emulator does not do: an ALB `provisioning` for minutes (moto is
//!   `active` at once), a wait that runs out, targets `initial` before `healthy` (moto: healthy at once), and the
//!   read budget.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::Region;
use aws_sdk_ec2::config::Credentials;
use aws_sdk_elasticloadbalancingv2 as elbv2;
use aws_sdk_elasticloadbalancingv2::Client as Elb;
use aws_sdk_elasticloadbalancingv2::operation as op;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, AvailabilityZone, IpAddressType, Listener as AwsListener, LoadBalancer as AwsLb,
    LoadBalancerSchemeEnum, LoadBalancerState, LoadBalancerStateEnum, ProtocolEnum, Tag, TagDescription,
    TargetDescription, TargetGroup as AwsTg, TargetGroupAttribute, TargetHealth, TargetHealthDescription,
    TargetHealthStateEnum,
};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_types::retry::RetryConfig;
use serde_json::{Value, json};
use webscale::apply::{self, Hook, Options, Phase, Result_};
use webscale::aws::{Clients, Cloud, CloudError};
use webscale::plan::{self, Action as PlanAction, Mode};
use webscale::resources::listener::Listener;
use webscale::resources::load_balancer::LoadBalancer;
use webscale::resources::target_group::TargetGroup;
use webscale::resources::{Address, Attr, Created, Desired, Kind, Live, Op, Progress, ReadCtx, ReplaceOrder, Timeouts};
use webscale::spec::{self, RegionChoice, Stack};

use crate::mocked::{fast, unused_clients};
use crate::support::{self, TestStack};

const REGION: &str = "us-east-1";
const STACK: &str = "mocked";
const LB_ARN: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/mocked-web-1/50dc6c495c0c9188";

// =====================================================================================================================
// Emulator
// =====================================================================================================================

/// An ELBv2 client of the test's own.
async fn elb() -> Elb {
    Elb::new(&support::sdk_config().await)
}

/// Whether the emulator serves ELBv2; prints why not (LocalStack's free edition) and returns false.
async fn served(elb: &Elb) -> bool {
    match elb.describe_load_balancers().send().await {
        Ok(_) => true,
        Err(e) => {
            use aws_smithy_types::error::metadata::ProvideErrorMetadata;
            let answer = format!("{} {}", e.code().unwrap_or_default(), e.message().unwrap_or_default());
            assert!(support::skip_unserved("ELBv2", &answer), "DescribeLoadBalancers failed: {e:?}");
            false
        }
    }
}

/// `arn -> tags` of the given resources.
async fn tags(elb: &Elb, arns: Vec<String>) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for batch in arns.chunks(20) {
        let answer = elb.describe_tags().set_resource_arns(Some(batch.to_vec())).send().await.unwrap();
        for d in answer.tag_descriptions() {
            let t = d.tags().iter().map(|t| (t.key().unwrap().to_string(), t.value().unwrap_or("").to_string()));
            out.insert(d.resource_arn().unwrap().to_string(), t.collect());
        }
    }
    out
}

/// The stack's load balancers and target groups, as the test's own client finds them by the stack tag.
async fn owned(elb: &Elb, stack: &str) -> (Vec<AwsLb>, Vec<AwsTg>) {
    let lbs = elb.describe_load_balancers().send().await.unwrap().load_balancers().to_vec();
    let tgs = elb.describe_target_groups().send().await.unwrap().target_groups().to_vec();
    let arns = lbs.iter().filter_map(|l| l.load_balancer_arn()).chain(tgs.iter().filter_map(|t| t.target_group_arn()));
    let tags = tags(elb, arns.map(str::to_string).collect()).await;
    let ours = |arn: Option<&str>| {
        tags.get(arn.unwrap()).and_then(|t| t.get("webscale:stack")).map(String::as_str) == Some(stack)
    };
    (
        lbs.into_iter().filter(|l| ours(l.load_balancer_arn())).collect(),
        tgs.into_iter().filter(|t| ours(t.target_group_arn())).collect(),
    )
}

/// Ids of the stack's EC2 resources of one describe, by `webscale:address`.
async fn subnets(ec2: &aws_sdk_ec2::Client, stack: &str) -> BTreeMap<String, String> {
    let out = ec2.describe_subnets().filters(support::owned(stack)).send().await.unwrap();
    out.subnets()
        .iter()
        .map(|s| (support::tag(s.tags(), "webscale:address").unwrap().to_string(), s.subnet_id().unwrap().to_string()))
        .collect()
}

/// The stack's instances that are not terminated.
async fn instances(ec2: &aws_sdk_ec2::Client, stack: &str) -> Vec<String> {
    let out = ec2.describe_instances().filters(support::owned(stack)).send().await.unwrap();
    let mut ids: Vec<String> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| {
            !matches!(i.state().and_then(|s| s.name()).map(|n| n.as_str()), Some("terminated" | "shutting-down"))
        })
        .map(|i| i.instance_id().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

async fn registered(elb: &Elb, tg: &str) -> Vec<String> {
    let out = elb.describe_target_health().target_group_arn(tg).send().await.unwrap();
    let mut ids: Vec<String> = out
        .target_health_descriptions()
        .iter()
        .filter(|d| d.target_health().and_then(|h| h.state()) != Some(&TargetHealthStateEnum::Draining))
        .map(|d| d.target().unwrap().id().unwrap().to_string())
        .collect();
    ids.sort();
    ids
}

/// The changes of a plan that do something: address -> action (with the replace order).
fn actions(plan: &Value) -> BTreeMap<String, String> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "no_op")
        .map(|c| {
            let action = match c["replace_order"].as_str() {
                Some(order) => format!("replace {order}"),
                None => c["action"].as_str().unwrap().to_string(),
            };
            (c["address"].as_str().unwrap().to_string(), action)
        })
        .collect()
}

/// The reference stack on the emulator, checked through the SDK: the web tier behind the load balancer, changed in
/// place and by replacement, then destroyed.
#[tokio::test]
async fn load_balancer_forwards_to_every_instance_and_changes_without_losing_its_targets() {
    let elb = elb().await;
    if !served(&elb).await {
        return;
    }
    let ec2 = support::ec2().await;
    let mut stack = TestStack::new("lb");
    stack.apply();

    // The load balancer: internet-facing, an ALB, in the public subnets, with the lb group, tagged.
    let (lbs, tgs) = owned(&elb, &stack.name).await;
    assert_eq!(lbs.len(), 1, "one load balancer: {lbs:#?}");
    assert_eq!(tgs.len(), 1, "one target group: {tgs:#?}");
    let (lb, tg) = (&lbs[0], &tgs[0]);
    let (lb_arn, tg_arn) = (lb.load_balancer_arn().unwrap(), tg.target_group_arn().unwrap());
    assert_eq!(lb.scheme(), Some(&LoadBalancerSchemeEnum::InternetFacing));
    assert_eq!(lb.r#type().map(|t| t.as_str()), Some("application"));
    let subnet_ids = subnets(&ec2, &stack.name).await;
    let mut in_subnets: Vec<&str> = lb.availability_zones().iter().filter_map(|z| z.subnet_id()).collect();
    in_subnets.sort();
    let mut public: Vec<&str> =
        subnet_ids.iter().filter(|(a, _)| a.starts_with("subnet.public_")).map(|(_, id)| id.as_str()).collect();
    public.sort();
    assert_eq!(in_subnets, public, "the public subnet of every zone");
    let lb_group = support::group_id(&ec2, &stack.name, "lb").await;
    assert_eq!(lb.security_groups(), [lb_group], "the load balancer's security group");

    // Listener :80 -> the target group -> every instance.
    let listeners = elb.describe_listeners().load_balancer_arn(lb_arn).send().await.unwrap().listeners().to_vec();
    assert_eq!(listeners.len(), 1, "HTTP only without a certificate: {listeners:#?}");
    let http = &listeners[0];
    assert_eq!((http.port(), http.protocol()), (Some(80), Some(&ProtocolEnum::Http)));
    let action = &http.default_actions()[0];
    assert_eq!(action.r#type(), Some(&ActionTypeEnum::Forward));
    assert_eq!(action.target_group_arn(), Some(tg_arn), "forwards to the stack's target group");
    let instance_ids = instances(&ec2, &stack.name).await;
    assert_eq!(instance_ids.len(), 2, "the template's two web instances");
    assert_eq!(registered(&elb, tg_arn).await, instance_ids, "every instance is a target");

    // The health check and deregistration delay as declared.
    assert_eq!((tg.protocol(), tg.port()), (Some(&ProtocolEnum::Http), Some(80)));
    assert_eq!(tg.health_check_path(), Some("/health"));
    assert_eq!(tg.health_check_interval_seconds(), Some(15));
    assert_eq!((tg.healthy_threshold_count(), tg.unhealthy_threshold_count()), (Some(2), Some(2)));
    assert_eq!(tg.matcher().and_then(|m| m.http_code()), Some("200"));
    let attributes = elb.describe_target_group_attributes().target_group_arn(tg_arn).send().await.unwrap();
    let delay = attributes.attributes().iter().find(|a| a.key() == Some("deregistration_delay.timeout_seconds"));
    assert_eq!(delay.and_then(|a| a.value()), Some("30"));

    // Tags on all three, given in their create calls.
    let all_tags = tags(&elb, vec![lb_arn.into(), tg_arn.into(), http.listener_arn().unwrap().into()]).await;
    for (arn, address) in
        [(lb_arn, "load_balancer.web"), (tg_arn, "target_group.web"), (http.listener_arn().unwrap(), "listener.http")]
    {
        let t = &all_tags[arn];
        assert_eq!(t.get("webscale:stack"), Some(&stack.name), "{address}");
        assert_eq!(t.get("webscale:address").map(String::as_str), Some(address));
        assert_eq!(t.get("environment").map(String::as_str), Some("demo"), "{address}: the stack's tags");
        assert!(t.contains_key("Name"), "{address}");
    }

    // Nothing left to do.
    let again = stack.plan();
    assert!(actions(&again).is_empty(), "second plan is empty: {:#?}", actions(&again));

    // Health check path: in place.
    stack.edit("path = \"/health\"", "path = \"/healthz\"");
    let planned = stack.plan();
    assert_eq!(actions(&planned), BTreeMap::from([("target_group.web".into(), "update".into())]));
    stack.apply();
    let (_, tgs) = owned(&elb, &stack.name).await;
    assert_eq!(tgs.len(), 1);
    assert_eq!(tgs[0].target_group_arn(), Some(tg_arn), "the same group");
    assert_eq!(tgs[0].health_check_path(), Some("/healthz"));
    assert!(actions(&stack.plan()).is_empty(), "converged");

    // Target port: a new group, created and filled before the listener moves to it and the old one goes.
    stack.edit("deregistration_delay = 30", "deregistration_delay = 30\ntarget_port = 8080");
    let planned = stack.plan();
    assert_eq!(
        actions(&planned),
        BTreeMap::from([
            ("listener.http".into(), "update".into()),
            ("target_group.web".into(), "replace create_first".into()),
        ])
    );
    let applied = stack.run(&["apply", "--json", "--auto-approve"]).success();
    let events: Vec<(String, String, String)> = applied
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["type"] == "finished")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("address"), s("operation"), e["error"].as_str().map_or("ok".into(), str::to_string))
        })
        .collect();
    let at = |address: &str, operation: &str| {
        events
            .iter()
            .position(|(a, o, _)| a == address && o == operation)
            .unwrap_or_else(|| panic!("no {operation} of {address}: {events:#?}"))
    };
    assert!(at("target_group.web", "create") < at("listener.http", "update"), "filled before switched: {events:#?}");
    assert!(at("listener.http", "update") < at("target_group.web", "delete"), "switched before deleted: {events:#?}");
    let (_, tgs) = owned(&elb, &stack.name).await;
    assert_eq!(tgs.len(), 1, "the old group is gone: {tgs:#?}");
    let new = tgs[0].target_group_arn().unwrap();
    assert_ne!(new, tg_arn);
    assert_eq!(tgs[0].port(), Some(8080));
    assert_eq!(registered(&elb, new).await, instance_ids, "the new group holds every instance");
    let listeners = elb.describe_listeners().load_balancer_arn(lb_arn).send().await.unwrap().listeners().to_vec();
    assert_eq!(listeners[0].default_actions()[0].target_group_arn(), Some(new), "the listener forwards to it");
    assert!(actions(&stack.plan()).is_empty(), "converged");

    stack.destroy();
    let (lbs, tgs) = owned(&elb, &stack.name).await;
    assert!(lbs.is_empty() && tgs.is_empty(), "nothing of the stack's left: {lbs:#?} {tgs:#?}");
}

// =====================================================================================================================
// Mocked SDK
// =====================================================================================================================

/// An ELBv2 client answered by `rules` only.
fn mocked_elb(rules: &[&Rule]) -> Elb {
    let interceptor =
        rules.iter().fold(MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny), |i, r| i.with_rule(r));
    Elb::from_conf(
        elbv2::Config::builder()
            .behavior_version_latest()
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build(),
    )
}

fn cloud_with(elb: Elb) -> Cloud {
    Cloud::from_clients(STACK, REGION, Clients { elbv2: elb, ..unused_clients() }, fast())
}

fn stack() -> Stack {
    let text = r#"
[stack]
name = "mocked"
region = "us-east-1"

[network]
cidr = "10.0.0.0/16"

[network.zones.a]
availability_zone = "us-east-1a"
public_subnet = "10.0.0.0/24"
private_subnet = "10.0.10.0/24"

[network.zones.b]
availability_zone = "us-east-1b"
public_subnet = "10.0.1.0/24"
private_subnet = "10.0.11.0/24"
"#;
    spec::parse(Path::new("mocked.toml"), text, &RegionChoice::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn ownership(address: &str) -> Vec<Tag> {
    vec![
        Tag::builder().key("webscale:stack").value(STACK).build(),
        Tag::builder().key("webscale:address").value(address).build(),
    ]
}

fn balancer(arn: &str, state: LoadBalancerStateEnum) -> AwsLb {
    AwsLb::builder()
        .load_balancer_arn(arn)
        .dns_name("mocked-web-1.us-east-1.elb.amazonaws.com")
        .canonical_hosted_zone_id("Z35SXDOTRQ7X7K")
        .vpc_id("vpc-1")
        .scheme(LoadBalancerSchemeEnum::InternetFacing)
        .ip_address_type(IpAddressType::Ipv4)
        .availability_zones(AvailabilityZone::builder().zone_name("us-east-1a").subnet_id("subnet-a").build())
        .security_groups("sg-lb")
        .state(LoadBalancerState::builder().code(state).build())
        .build()
}

fn balancers(state: LoadBalancerStateEnum) -> op::describe_load_balancers::DescribeLoadBalancersOutput {
    op::describe_load_balancers::DescribeLoadBalancersOutput::builder().load_balancers(balancer(LB_ARN, state)).build()
}

/// DescribeTags answering every ARN asked: the stack's ownership tags for those `ours` says, nothing for others.
fn describe_tags(ours: fn(&str) -> Option<&'static str>) -> Rule {
    mock!(Elb::describe_tags).then_compute_output(move |input| {
        assert!(
            input.resource_arns().len() <= 20,
            "DescribeTags takes at most 20 ARNs: {}",
            input.resource_arns().len()
        );
        let descriptions = input.resource_arns().iter().map(|arn| {
            let tags = ours(arn).map(ownership).unwrap_or_default();
            TagDescription::builder().resource_arn(arn).set_tags(Some(tags)).build()
        });
        op::describe_tags::DescribeTagsOutput::builder().set_tag_descriptions(Some(descriptions.collect())).build()
    })
}

fn health(targets: &[(&str, TargetHealthStateEnum)]) -> op::describe_target_health::DescribeTargetHealthOutput {
    let descriptions = targets.iter().map(|(id, state)| {
        TargetHealthDescription::builder()
            .target(TargetDescription::builder().id(*id).port(80).build())
            .target_health(TargetHealth::builder().state(state.clone()).build())
            .build()
    });
    op::describe_target_health::DescribeTargetHealthOutput::builder()
        .set_target_health_descriptions(Some(descriptions.collect()))
        .build()
}

fn an_op<'a>(address: &'a Address, desired: Option<Value>, live: Option<Value>, changed: &'a [String]) -> Op<'a> {
    Op {
        address,
        region: REGION,
        id: None,
        desired: desired.and_then(|v| v.as_object().cloned()),
        live: live.and_then(|v| v.as_object().cloned()),
        changed,
        token: "ws-0123456789abcdef".into(),
        digests: Default::default(),
        skip_final_snapshot: false,
        wait: false,
        stack: None,
        progress: None,
    }
}

/// On AWS a new load balancer is `provisioning` for minutes: the wait after the create polls (the SDK's waiter)
/// until it is `active`, and its progress shows the state meanwhile.
#[tokio::test(start_paused = true)]
async fn the_load_balancer_wait_polls_until_active_and_shows_the_state() {
    let describe = mock!(Elb::describe_load_balancers)
        .sequence()
        .output(|| balancers(LoadBalancerStateEnum::Provisioning))
        .times(3)
        .output(|| balancers(LoadBalancerStateEnum::Active))
        .build();
    let cloud = cloud_with(mocked_elb(&[&describe]));
    let address = Address::new("load_balancer", "web");
    let op = an_op(&address, None, None, &[]);
    let progress = Progress::default();
    let done = AtomicBool::new(false);
    let shown = Mutex::new(Vec::<String>::new());
    let waiting = async {
        let r = LoadBalancer.wait(&cloud, &op, LB_ARN, Phase::Create, &progress).await;
        done.store(true, Ordering::SeqCst);
        r
    };
    let watching = async {
        while !done.load(Ordering::SeqCst) {
            if let Some(s) = progress.get() {
                let mut shown = shown.lock().unwrap();
                if shown.last() != Some(&s) {
                    shown.push(s);
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    };
    let (result, ()) = tokio::join!(waiting, watching);
    result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(describe.num_calls(), 4, "three polls find it provisioning, the fourth active");
    assert_eq!(shown.lock().unwrap().first().map(String::as_str), Some("provisioning"), "progress shows the state");
    assert_eq!(progress.get().as_deref(), Some("active"));
}

/// `load_balancer` as the engine sees it, with the desired attributes a test gives (the real ones refer to the
/// network tier, which these tests leave out); everything else is the real kind.
struct Declared(Vec<Desired>);

#[async_trait]
impl Kind for Declared {
    fn name(&self) -> &'static str {
        LoadBalancer.name()
    }
    fn service(&self) -> &'static str {
        LoadBalancer.service()
    }
    fn schema(&self) -> &'static [Attr] {
        LoadBalancer.schema()
    }
    fn desired(&self, _: &Stack) -> Vec<Desired> {
        self.0.clone()
    }
    fn replace_order(&self) -> ReplaceOrder {
        LoadBalancer.replace_order()
    }
    fn timeouts(&self) -> Timeouts {
        LoadBalancer.timeouts()
    }
    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        LoadBalancer.read(ctx, region).await
    }
    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        LoadBalancer.create(cloud, op).await
    }
    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        LoadBalancer.update(cloud, op).await
    }
    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        LoadBalancer.delete(cloud, op).await
    }
    async fn wait(&self, cloud: &Cloud, op: &Op<'_>, id: &str, phase: Phase, p: &Progress) -> Result<(), CloudError> {
        LoadBalancer.wait(cloud, op, id, phase, p).await
    }
}

/// Statuses the apply reported while running, per address.
#[derive(Default)]
struct Statuses(Mutex<Vec<(String, Option<String>)>>);

impl Hook for Statuses {
    fn started(&self, _: &Address, _: Phase) {}
    fn still_running(&self, address: &Address, _: Phase, _: Duration, status: Option<&str>) {
        self.0.lock().unwrap().push((address.to_string(), status.map(str::to_string)));
    }
    fn finished(&self, _: &Address, _: Phase, _: Duration, _: Result<Option<&str>, &CloudError>) {}
}

/// A load balancer that never leaves `provisioning`: the plan finds it pending, apply waits for it (the heartbeat
/// shows `provisioning`) and gives up after the kind's 10 minutes, naming it, its last state and that a re-run
/// resumes.
#[tokio::test(start_paused = true)]
async fn a_load_balancer_wait_that_runs_out_names_it_its_state_and_that_a_rerun_resumes() {
    let describe = mock!(Elb::describe_load_balancers).then_output(|| balancers(LoadBalancerStateEnum::Provisioning));
    let tags = describe_tags(|arn| (arn == LB_ARN).then_some("load_balancer.web"));
    let cloud = cloud_with(mocked_elb(&[&describe, &tags]));
    let address = Address::new("load_balancer", "web");
    let same_as_live = json!({
        "vpc": { "id": "vpc-1" },
        "scheme": "internet-facing",
        "subnets": [{ "id": "subnet-a" }],
        "security_groups": [{ "id": "sg-lb" }],
        "ip_address_type": "ipv4",
        "tags": { "webscale:stack": STACK, "webscale:address": "load_balancer.web" },
    });
    let kind = Declared(vec![Desired::new(REGION, address.clone(), &same_as_live)]);
    let kinds: &[&dyn Kind] = &[&kind];
    let plan = plan::build_with(kinds, &cloud, &stack(), Mode::Apply).await.unwrap_or_else(|e| panic!("{e}"));
    let change = plan.changes.iter().find(|c| c.address == address).expect("the load balancer is planned");
    assert_eq!((change.action, change.pending.as_deref()), (PlanAction::NoOp, Some("provisioning")));

    let hook = Statuses::default();
    let options = Options { heartbeat: Duration::from_secs(30), ..Options::default() };
    let report = apply::apply_with(kinds, &cloud, &stack(), &plan, &options, &hook).await.unwrap();
    let op = report.operations.iter().find(|o| o.address == address).expect("a wait operation");
    assert_eq!(op.phase, Phase::Wait);
    let Result_::Failed { error } = &op.result else { panic!("the wait runs out: {:?}", op.result) };
    for words in [
        "gave up waiting for load_balancer.web after 10m",
        "(last status: provisioning)",
        "run the same command again to resume",
    ] {
        assert!(error.contains(words), "{words:?} in {error}");
    }
    let statuses = hook.0.lock().unwrap().clone();
    assert!(
        statuses.iter().any(|(a, s)| a == "load_balancer.web" && s.as_deref() == Some("provisioning")),
        "the heartbeat shows AWS's state: {statuses:?}"
    );
    assert!(describe.num_calls() > 3, "the waiter kept polling: {}", describe.num_calls());
}

/// A load balancer AWS reports `failed` never becomes active: the wait stops at the first poll that says so, with
/// AWS's reason and what to do.
#[tokio::test(start_paused = true)]
async fn a_failed_load_balancer_ends_the_wait_at_once() {
    let describe = mock!(Elb::describe_load_balancers).then_output(|| balancers(LoadBalancerStateEnum::Failed));
    let cloud = cloud_with(mocked_elb(&[&describe]));
    let address = Address::new("load_balancer", "web");
    let op = an_op(&address, None, None, &[]);
    let error = LoadBalancer.wait(&cloud, &op, LB_ARN, Phase::Create, &Progress::default()).await.unwrap_err();
    assert!(error.message.contains("load_balancer.web: AWS reports the load balancer failed"), "{error}");
    assert!(error.message.contains("webscale apply --replace load_balancer.web"), "{error}");
    assert_eq!(describe.num_calls(), 1);
}

const TG_ARN: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/mocked-web-0123/73e2d6bc24d8a067";

fn group_attrs(targets: &[&str]) -> Value {
    json!({
        "vpc": "vpc-1",
        "protocol": "HTTP",
        "port": 80,
        "health_check": {
            "path": "/health", "interval": 15, "timeout": 5, "healthy_threshold": 2, "unhealthy_threshold": 2,
            "matcher": "200",
        },
        "deregistration_delay": 30,
        "targets": targets,
        "tags": { "webscale:stack": STACK, "webscale:address": "target_group.web" },
    })
}

/// An instance replaced create-first: the target group's update registers the new instance, waits until AWS
/// reports it `healthy` (it is `initial` for two polls first), and only then deregisters the old one and waits for
/// it to drain. At no point is the load balancer left without a healthy target.
#[tokio::test(start_paused = true)]
async fn new_targets_are_healthy_before_the_old_ones_are_deregistered() {
    let log: Arc<Mutex<Vec<String>>> = Arc::default();
    let note = |log: &Arc<Mutex<Vec<String>>>, s: String| log.lock().unwrap().push(s);
    let (l1, l2, l3) = (log.clone(), log.clone(), log.clone());
    let register = mock!(Elb::register_targets).then_compute_output(move |input| {
        let ids: Vec<&str> = input.targets().iter().filter_map(|t| t.id()).collect();
        note(&l1, format!("RegisterTargets {}", ids.join(",")));
        op::register_targets::RegisterTargetsOutput::builder().build()
    });
    let deregister = mock!(Elb::deregister_targets).then_compute_output(move |input| {
        let ids: Vec<&str> = input.targets().iter().filter_map(|t| t.id()).collect();
        note(&l2, format!("DeregisterTargets {}", ids.join(",")));
        op::deregister_targets::DeregisterTargetsOutput::builder().build()
    });
    // The new instance: initial twice, then healthy; the old one, once deregistered: draining, then unused.
    let polls: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let describe = mock!(Elb::describe_target_health).then_compute_output(move |input| {
        use TargetHealthStateEnum::*;
        let asked: Vec<&str> = input.targets().iter().filter_map(|t| t.id()).collect();
        let deregistered = l3.lock().unwrap().iter().any(|l| l.starts_with("DeregisterTargets"));
        let mut polls = polls.lock().unwrap();
        let answer: Vec<(&str, TargetHealthStateEnum)> = match asked.as_slice() {
            [] if deregistered => vec![("i-new", Healthy), ("i-old", Draining)],
            [] => vec![("i-new", Initial), ("i-old", Healthy)],
            ["i-new"] => {
                let n = polls.entry("i-new".into()).and_modify(|n| *n += 1).or_insert(1);
                vec![("i-new", if *n <= 2 { Initial } else { Healthy })]
            }
            ["i-old"] => {
                let n = polls.entry("i-old".into()).and_modify(|n| *n += 1).or_insert(1);
                vec![("i-old", if *n <= 1 { Draining } else { Unused })]
            }
            other => panic!("unexpected DescribeTargetHealth for {other:?}"),
        };
        let text: Vec<String> = answer.iter().map(|(id, s)| format!("{id}={}", s.as_str())).collect();
        note(&l3, format!("DescribeTargetHealth {}", text.join(",")));
        health(&answer)
    });
    let cloud = cloud_with(mocked_elb(&[&register, &deregister, &describe]));
    let address = Address::new("target_group", "web");
    let changed = ["targets".to_string()];
    let op = Op {
        id: Some(TG_ARN),
        ..an_op(&address, Some(group_attrs(&["i-new"])), Some(group_attrs(&["i-old"])), &changed)
    };

    TargetGroup.update(&cloud, &op).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(*log.lock().unwrap(), ["RegisterTargets i-new"], "the update registers the new target only");
    let progress = Progress::default();
    TargetGroup.wait(&cloud, &op, TG_ARN, Phase::Update, &progress).await.unwrap_or_else(|e| panic!("{e}"));

    let log = log.lock().unwrap().clone();
    let at = |line: &str| log.iter().position(|l| l == line).unwrap_or_else(|| panic!("no {line:?} in {log:#?}"));
    let healthy = at("DescribeTargetHealth i-new=healthy");
    assert!(at("RegisterTargets i-new") < healthy);
    assert_eq!(log.iter().filter(|l| *l == "DescribeTargetHealth i-new=initial").count(), 2, "{log:#?}");
    let deregistered = at("DeregisterTargets i-old");
    assert!(healthy < deregistered, "the old target leaves only once the new one is healthy: {log:#?}");
    assert!(deregistered < at("DescribeTargetHealth i-old=unused"), "then it drains: {log:#?}");
    assert_eq!(log.last().map(String::as_str), Some("DescribeTargetHealth i-old=unused"), "{log:#?}");
    assert_eq!(progress.get().as_deref(), Some("1 unused"));
}

/// Reading the tier costs a fixed number of calls however many target groups, targets and listeners there are
/// (beyond pages and DescribeTags' 20 ARNs a call): one DescribeLoadBalancers shared by the load balancer and
/// listener kinds, one DescribeTargetGroups, DescribeTags per 20 ARNs, and per owned resource one call each:
/// DescribeTargetHealth and DescribeTargetGroupAttributes per target group (never per target), DescribeListeners per
/// load balancer. Here: 1 load balancer (and one of another stack), 3 target groups among 23, 5 targets each, 2
/// listeners.
#[tokio::test]
async fn a_plan_reads_the_load_balancer_tier_with_a_fixed_number_of_calls() {
    use aws_sdk_elasticloadbalancingv2::types::Matcher;
    const OTHER_LB: &str = "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/other/1";
    let lbs = mock!(Elb::describe_load_balancers).then_output(|| {
        op::describe_load_balancers::DescribeLoadBalancersOutput::builder()
            .load_balancers(balancer(LB_ARN, LoadBalancerStateEnum::Active))
            .load_balancers(balancer(OTHER_LB, LoadBalancerStateEnum::Active))
            .build()
    });
    let tg_arn = |i: usize| format!("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/g{i}/{i}");
    let tgs = mock!(Elb::describe_target_groups).then_output(move || {
        let groups = (0..23).map(|i| {
            AwsTg::builder()
                .target_group_arn(tg_arn(i))
                .vpc_id("vpc-1")
                .protocol(ProtocolEnum::Http)
                .port(80)
                .health_check_path("/health")
                .matcher(Matcher::builder().http_code("200").build())
                .build()
        });
        op::describe_target_groups::DescribeTargetGroupsOutput::builder()
            .set_target_groups(Some(groups.collect()))
            .build()
    });
    // Ours: the load balancer, target groups g0..g2, both listeners.
    let tags = describe_tags(|arn| {
        if arn == LB_ARN {
            Some("load_balancer.web")
        } else if arn.ends_with("/g0/0") {
            Some("target_group.web")
        } else if arn.ends_with("/g1/1") || arn.ends_with("/g2/2") {
            Some("target_group.old")
        } else if arn.ends_with("/l80") {
            Some("listener.http")
        } else if arn.ends_with("/l443") {
            Some("listener.https")
        } else {
            None
        }
    });
    let targets = mock!(Elb::describe_target_health).then_output(|| {
        use TargetHealthStateEnum::Healthy;
        health(&[("i-1", Healthy), ("i-2", Healthy), ("i-3", Healthy), ("i-4", Healthy), ("i-5", Healthy)])
    });
    let attributes = mock!(Elb::describe_target_group_attributes).then_output(|| {
        op::describe_target_group_attributes::DescribeTargetGroupAttributesOutput::builder()
            .attributes(TargetGroupAttribute::builder().key("deregistration_delay.timeout_seconds").value("30").build())
            .build()
    });
    let listeners = mock!(Elb::describe_listeners).then_compute_output(|input| {
        assert_eq!(input.load_balancer_arn(), Some(LB_ARN), "only the stack's load balancer is asked");
        let listener = |port: i32| {
            AwsListener::builder()
                .listener_arn(format!("{LB_ARN}/l{port}"))
                .load_balancer_arn(LB_ARN)
                .port(port)
                .default_actions(Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn("tg").build())
                .build()
        };
        op::describe_listeners::DescribeListenersOutput::builder()
            .listeners(listener(80))
            .listeners(listener(443))
            .build()
    });
    let rules = [&lbs, &tgs, &tags, &targets, &attributes, &listeners];
    let cloud = cloud_with(mocked_elb(&rules));
    let stack = stack();
    let ctx = ReadCtx::new(&cloud, &stack);
    let (lb, tg, l) =
        tokio::join!(LoadBalancer.read(&ctx, REGION), TargetGroup.read(&ctx, REGION), Listener.read(&ctx, REGION));
    let (lb, tg, l) = (lb.unwrap(), tg.unwrap(), l.unwrap());

    let addresses = |live: &[Live]| live.iter().map(|l| l.address.to_string()).collect::<Vec<_>>();
    assert_eq!(addresses(&lb), ["load_balancer.web"]);
    assert_eq!(lb[0].outputs["dns_name"], "mocked-web-1.us-east-1.elb.amazonaws.com");
    assert_eq!(lb[0].outputs["canonical_hosted_zone_id"], "Z35SXDOTRQ7X7K");
    assert_eq!(addresses(&tg), ["target_group.web", "target_group.old", "target_group.old"]);
    assert_eq!(tg[0].attrs["targets"].as_array().map(Vec::len), Some(5), "{:?}", tg[0].attrs);
    assert_eq!(addresses(&l), ["listener.http", "listener.https"]);

    let calls: Vec<(&str, usize)> = vec![
        ("DescribeLoadBalancers", lbs.num_calls()),
        ("DescribeTargetGroups", tgs.num_calls()),
        // Load balancers (2 ARNs), target groups (23: two calls), listeners (2).
        ("DescribeTags", tags.num_calls()),
        ("DescribeTargetHealth", targets.num_calls()),
        ("DescribeTargetGroupAttributes", attributes.num_calls()),
        ("DescribeListeners", listeners.num_calls()),
    ];
    assert_eq!(
        calls,
        [
            ("DescribeLoadBalancers", 1),
            ("DescribeTargetGroups", 1),
            ("DescribeTags", 4),
            ("DescribeTargetHealth", 3),
            ("DescribeTargetGroupAttributes", 3),
            ("DescribeListeners", 1),
        ]
    );
}

/// An endpoint that does not serve ELBv2 (LocalStack's free edition) while the spec declares no load balancer: the
/// plan warns and goes on.
#[tokio::test]
async fn a_stack_without_a_load_balancer_plans_where_elbv2_is_not_served() {
    let cloud = Cloud::from_clients(STACK, REGION, unused_clients(), fast());
    let kinds: &[&dyn Kind] = &[&LoadBalancer, &TargetGroup, &Listener];
    let plan = plan::build_with(kinds, &cloud, &stack(), Mode::Apply).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(plan.changes.is_empty());
    let mut warned: Vec<&str> = plan
        .warnings
        .iter()
        .filter_map(|w| w.split_once(" in us-east-1 not checked (elasticloadbalancing says").map(|(what, _)| what))
        .collect();
    warned.sort();
    assert_eq!(warned, ["listeners", "load balancers", "target groups"], "{:#?}", plan.warnings);
}

/// A create whose first answer was lost and that was sent again (by hand here; webscale itself never repeats it
/// blindly): on AWS the name, derived from the create's token, is taken, so the repeat meets
/// `DuplicateLoadBalancerName`. The engine takes that as "already exists", finds the load balancer by its tags,
/// finishes it and waits for it: one CreateLoadBalancer, the first load balancer's ARN and outputs, nothing else
/// created.
#[tokio::test(start_paused = true)]
async fn a_duplicate_load_balancer_name_is_finished_as_the_load_balancer_already_made() {
    use elbv2::error::ErrorMetadata;
    let create = mock!(Elb::create_load_balancer).then_error(|| {
        op::create_load_balancer::CreateLoadBalancerError::generic(
            ErrorMetadata::builder()
                .code("DuplicateLoadBalancerName")
                .message("A load balancer with the same name 'mocked-web-01234567' exists, but with different settings")
                .build(),
        )
    });
    // The plan finds nothing; after the refused create the engine's look finds the first call's load balancer,
    // still provisioning, and waits until it is active.
    let describe = mock!(Elb::describe_load_balancers)
        .sequence()
        .output(|| op::describe_load_balancers::DescribeLoadBalancersOutput::builder().build())
        .output(|| balancers(LoadBalancerStateEnum::Provisioning))
        .output(|| balancers(LoadBalancerStateEnum::Provisioning))
        .output(|| balancers(LoadBalancerStateEnum::Active))
        .build();
    let tags = describe_tags(|arn| (arn == LB_ARN).then_some("load_balancer.web"));
    // Finishing it as an update writes webscale's record of what it applied among its tags.
    let add_tags = mock!(Elb::add_tags).then_output(|| op::add_tags::AddTagsOutput::builder().build());
    let cloud = cloud_with(mocked_elb(&[&create, &describe, &tags, &add_tags]));
    let address = Address::new("load_balancer", "web");
    // Plain ids where the real kind refers to the network tier, which this test leaves out.
    let desired = json!({
        "vpc": "vpc-1",
        "scheme": "internet-facing",
        "subnets": ["subnet-a"],
        "security_groups": ["sg-lb"],
        "ip_address_type": "ipv4",
        "tags": { "webscale:stack": STACK, "webscale:address": "load_balancer.web" },
    });
    let kind = Declared(vec![Desired::new(REGION, address.clone(), &desired)]);
    let kinds: &[&dyn Kind] = &[&kind];
    let plan = plan::build_with(kinds, &cloud, &stack(), Mode::Apply).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.changes.iter().map(|c| c.action).collect::<Vec<_>>(), [PlanAction::Create]);

    let report =
        apply::apply_with(kinds, &cloud, &stack(), &plan, &Options::default(), &Statuses::default()).await.unwrap();
    assert!(!report.failed(), "{:#?}", report.operations);
    assert_eq!(report.ids.get(&address).map(String::as_str), Some(LB_ARN), "the first call's load balancer");
    assert_eq!(create.num_calls(), 1, "created once, never again");
    assert_eq!(describe.num_calls(), 4, "plan, the engine's look, then the wait until active");
    assert_eq!(add_tags.num_calls(), 1, "the record of what was applied");
}
