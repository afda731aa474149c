//! The DNS tier: `hosted_zone.main` (a zone the stack owns), `dns_zone.main` (an existing zone adopted by name, a
//! lookup), `dns_record.apex` / `dns_record.www` (alias records to the load balancer, each with its ownership TXT
//! record).
//!
//! - Emulator: the real binary, results checked through Route 53 and ELBv2 clients of the test's own. The record
//!   tests need the load balancer, so they are skipped (reason printed) where ELBv2 is not served.
//! - Mocked SDK (aws-smithy-mocks), for what the emulator does not do: a change PENDING for minutes (moto is INSYNC
//!   at once), a wait that runs out, a CreateHostedZone whose answer is lost and whose repeat AWS answers
//!   HostedZoneAlreadyExists (moto makes a second zone), a CREATE that AWS refuses because the record exists (moto
//!   accepts it), and the read budget.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::Region;
use aws_sdk_ec2::config::Credentials;
use aws_sdk_route53::Client as R53;
use aws_sdk_route53::error::ErrorMetadata;
use aws_sdk_route53::operation as op;
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ChangeInfo, ChangeStatus, DelegationSet, HostedZone as AwsZone,
    HostedZoneConfig, ResourceRecord, ResourceRecordSet, ResourceTagSet, RrType, Tag,
};
use aws_smithy_mocks::{MockResponse, MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_types::DateTime;
use aws_smithy_types::retry::RetryConfig;
use serde_json::{Value, json};
use webscale::apply::{self, Hook, Options, Phase, Result_};
use webscale::aws::{Clients, Cloud, CloudError};
use webscale::plan::{self, Action, Mode, Plan};
use webscale::resources::dns_record::DnsRecord;
use webscale::resources::dns_zone::DnsZone;
use webscale::resources::hosted_zone::HostedZone;
use webscale::resources::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx, create_token};
use webscale::spec::{self, RegionChoice, Stack};

use crate::mocked::{fast, unused_clients};
use crate::support::{self, Engine, TestStack};

// =====================================================================================================================
// Emulator
// =====================================================================================================================

/// The reference template without the web tier and the load balancer, with `dns` as its `[dns]` table: the zone
/// tests need no ELBv2.
fn network_and(dns: &str) -> String {
    let text = support::reference_text();
    let head = text.split("# Web servers").next().expect("the template has a web tier");
    format!("{head}\n{dns}\n")
}

/// The reference template (load balancer included) with `dns` as its `[dns]` table.
fn reference_with(dns: &str) -> String {
    let text = support::reference_text();
    let (head, _) = text.split_once("[dns]").expect("the template has [dns]");
    format!("{head}{dns}\n")
}

async fn r53() -> R53 {
    R53::new(&support::sdk_config().await)
}

/// Whether the record tests must be skipped: they need the load balancer, which LocalStack's free edition does not
/// serve (prints the reason).
async fn no_load_balancers() -> bool {
    if support::engine() != Engine::LocalStack {
        return false;
    }
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&support::sdk_config().await);
    let answer = match elb.describe_load_balancers().send().await {
        Ok(_) => return false,
        Err(e) => format!("{}", aws_smithy_types::error::display::DisplayErrorContext(e)),
    };
    support::skip_unserved("ELBv2 (the records alias the load balancer)", &answer)
}

/// The hosted zone the stack `stack` owns, found by its tags through our own client.
async fn zone_of(r53: &R53, stack: &str) -> Option<(AwsZone, Vec<Tag>)> {
    let zones: Vec<AwsZone> =
        r53.list_hosted_zones().into_paginator().items().send().collect::<Result<_, _>>().await.unwrap();
    for z in zones {
        let id = z.id().trim_start_matches("/hostedzone/").to_string();
        let tags = r53
            .list_tags_for_resource()
            .resource_type(aws_sdk_route53::types::TagResourceType::Hostedzone)
            .resource_id(&id)
            .send()
            .await
            .unwrap();
        let tags = tags.resource_tag_set().map(|s| s.tags().to_vec()).unwrap_or_default();
        if tags.iter().any(|t| t.key() == Some("webscale:stack") && t.value() == Some(stack)) {
            return Some((z, tags));
        }
    }
    None
}

fn bare(id: &str) -> String {
    id.trim_start_matches("/hostedzone/").to_string()
}

fn tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

async fn records(r53: &R53, zone: &str) -> Vec<ResourceRecordSet> {
    r53.list_resource_record_sets().hosted_zone_id(zone).send().await.unwrap().resource_record_sets().to_vec()
}

fn find<'a>(records: &'a [ResourceRecordSet], name: &str, kind: RrType) -> Option<&'a ResourceRecordSet> {
    records.iter().find(|r| r.name().trim_end_matches('.') == name && r.r#type() == &kind)
}

/// A zone made by hand (what `create_zone = false` adopts), unique to the test.
async fn hand_made_zone(r53: &R53, name: &str) -> String {
    let out = r53
        .create_hosted_zone()
        .name(name)
        .caller_reference(format!("hand-{name}"))
        .hosted_zone_config(HostedZoneConfig::builder().private_zone(false).build())
        .send()
        .await
        .unwrap();
    bare(out.hosted_zone().unwrap().id())
}

fn plain(name: &str, kind: RrType, value: &str) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(name)
        .r#type(kind)
        .ttl(300)
        .resource_records(ResourceRecord::builder().value(value).build().unwrap())
        .build()
        .unwrap()
}

async fn change(r53: &R53, zone: &str, action: ChangeAction, set: ResourceRecordSet) {
    let change = Change::builder().action(action).resource_record_set(set).build().unwrap();
    r53.change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(ChangeBatch::builder().changes(change).build().unwrap())
        .send()
        .await
        .unwrap();
}

/// The changes of a plan that do something.
fn changes(plan: &Value) -> Vec<String> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "no_op")
        .map(|c| format!("{} {}", c["action"].as_str().unwrap(), c["address"].as_str().unwrap()))
        .collect()
}

/// The stack's own zone: created public, tagged (ownership pair, Name, stack tags), its name servers given by
/// `webscale output`; a second plan is empty. A record made by hand in it blocks the destroy (Route 53 deletes only
/// empty zones, and webscale never deletes a record it does not own), naming the record, and survives; once it is
/// gone, destroy removes the zone.
#[tokio::test]
async fn an_owned_zone_is_created_tagged_with_its_name_servers_and_destroyed() {
    let stack =
        TestStack::new("dns_zone").with_spec(&network_and("[dns]\nzone = \"webscale.example.com\"\nrecords = []"));
    stack.apply();
    let r53 = r53().await;

    let (zone, tags) = zone_of(&r53, &stack.name).await.expect("the stack's zone exists, tagged");
    let id = bare(zone.id());
    assert_eq!(zone.name(), "webscale.example.com.");
    assert!(!zone.config().is_some_and(|c| c.private_zone()), "a public zone");
    assert_eq!(tag(&tags, "webscale:address"), Some("hosted_zone.main"));
    assert_eq!(tag(&tags, "Name"), Some(format!("{}-hosted-zone-main", stack.name).as_str()));
    assert_eq!(tag(&tags, "environment"), Some("demo"), "the stack's tags too");
    assert_eq!(zone.caller_reference(), create_token(&stack.name, &Address::new("hosted_zone", "main"), None));
    let servers = r53.get_hosted_zone().id(&id).send().await.unwrap();
    let servers = servers.delegation_set().unwrap().name_servers().to_vec();
    assert!(!servers.is_empty());
    let output = stack.run(&["output", "--json"]).success();
    let output: Value = serde_json::from_str(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", output.stdout));
    assert_eq!(output["hosted_zone_id"], json!(id), "{output}");
    assert_eq!(output["name_servers"], json!(servers), "{output}");
    let again = changes(&stack.plan());
    assert!(again.is_empty(), "a second plan is empty: {again:?}");

    change(&r53, &id, ChangeAction::Create, plain("keep.webscale.example.com", RrType::Txt, "\"by hand\"")).await;
    assert!(changes(&stack.plan()).is_empty(), "a record webscale does not own is not planned");
    let refused = stack.run(&["destroy", "--auto-approve"]);
    assert_ne!(refused.code, 0, "{refused}");
    let said = format!("{}{}", refused.stdout, refused.stderr);
    assert!(said.contains("hosted_zone.main") && said.contains("keep.webscale.example.com"), "{said}");
    assert!(said.contains("does not own"), "{said}");
    let left = records(&r53, &id).await;
    assert!(find(&left, "keep.webscale.example.com", RrType::Txt).is_some(), "the record survives");

    change(&r53, &id, ChangeAction::Delete, plain("keep.webscale.example.com", RrType::Txt, "\"by hand\"")).await;
    stack.destroy();
    assert!(zone_of(&r53, &stack.name).await.is_none(), "destroy removes the zone");
    assert!(r53.get_hosted_zone().id(&id).send().await.is_err(), "gone, not only untagged");
}

/// Adopting a zone that does not exist fails the plan, naming the lookup and the zone.
#[tokio::test]
async fn adopting_a_zone_that_does_not_exist_fails_the_plan() {
    let stack = TestStack::new("dns_missing");
    let zone = format!("{}.example.org", stack.name);
    let stack = stack.with_spec(&network_and(&format!("[dns]\nzone = \"{zone}\"\ncreate_zone = false\nrecords = []")));
    let run = stack.run(&["plan"]);
    assert_ne!(run.code, 0, "{run}");
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(said.contains("dns_zone.main") && said.contains(&zone), "{said}");
}

/// The load balancer of the stack, through our own ELBv2 client: (DNS name, canonical hosted zone id).
async fn load_balancer_of(stack: &str) -> (String, String) {
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&support::sdk_config().await);
    let lbs = elb.describe_load_balancers().send().await.unwrap();
    for lb in lbs.load_balancers() {
        let arn = lb.load_balancer_arn().unwrap();
        let tags = elb.describe_tags().resource_arns(arn).send().await.unwrap();
        let mine = tags
            .tag_descriptions()
            .iter()
            .flat_map(|d| d.tags())
            .any(|t| t.key() == Some("webscale:stack") && t.value() == Some(stack));
        if mine {
            return (lb.dns_name().unwrap().to_string(), lb.canonical_hosted_zone_id().unwrap().to_string());
        }
    }
    panic!("stack {stack} has no load balancer");
}

/// Checks the alias A record at `name` and its ownership record.
fn assert_alias(records: &[ResourceRecordSet], name: &str, lb: &(String, String), stack: &str, address: &str) {
    let a = find(records, name, RrType::A).unwrap_or_else(|| panic!("no A record at {name}: {records:#?}"));
    let target = a.alias_target().unwrap_or_else(|| panic!("{name} is not an alias: {a:?}"));
    assert_eq!(target.dns_name().trim_end_matches('.').to_ascii_lowercase(), lb.0.to_ascii_lowercase());
    assert_eq!(target.hosted_zone_id(), lb.1, "the load balancer's canonical hosted zone id");
    assert!(target.evaluate_target_health());
    let owner = format!("_webscale.{name}");
    let txt = find(records, &owner, RrType::Txt).unwrap_or_else(|| panic!("no ownership record {owner}"));
    let value = txt.resource_records()[0].value();
    assert_eq!(
        value,
        format!("\"heritage=webscale,webscale/stack={stack},webscale/address={address},webscale/types=A\"")
    );
    assert!(find(records, name, RrType::Aaaa).is_none(), "no AAAA: the load balancer is not dualstack");
}

/// The reference stack: alias A records for the apex and www, to the load balancer's DNS name and canonical zone
/// id, each with its ownership TXT record; a second plan is empty; a record in the zone that webscale does not own
/// is left alone by apply.
#[tokio::test]
async fn records_alias_the_load_balancer_and_carry_their_ownership_record() {
    if no_load_balancers().await {
        return;
    }
    let stack = TestStack::new("dns_records");
    stack.apply();
    let r53 = r53().await;
    let (zone, _) = zone_of(&r53, &stack.name).await.expect("the stack's zone");
    let id = bare(zone.id());
    let lb = load_balancer_of(&stack.name).await;
    let found = records(&r53, &id).await;
    assert_alias(&found, "webscale.example.com", &lb, &stack.name, "dns_record.apex");
    assert_alias(&found, "www.webscale.example.com", &lb, &stack.name, "dns_record.www");
    let again = changes(&stack.plan());
    assert!(again.is_empty(), "a second plan is empty: {again:?}");

    change(&r53, &id, ChangeAction::Create, plain("mail.webscale.example.com", RrType::A, "192.0.2.10")).await;
    stack.apply();
    let after = records(&r53, &id).await;
    let mail = find(&after, "mail.webscale.example.com", RrType::A).expect("the hand-made record survives apply");
    assert_eq!(mail.resource_records()[0].value(), "192.0.2.10");
    change(&r53, &id, ChangeAction::Delete, plain("mail.webscale.example.com", RrType::A, "192.0.2.10")).await;
    stack.destroy();
    assert!(zone_of(&r53, &stack.name).await.is_none(), "destroy removes the records, then the zone");
}

/// `create_zone = false`: a zone made by hand is adopted (a lookup, not counted), the records are written in it;
/// destroy removes only those records and their ownership records: the zone and a record made by hand in it stay.
#[tokio::test]
async fn an_adopted_zone_gets_the_records_and_destroy_leaves_it_and_its_other_records() {
    if no_load_balancers().await {
        return;
    }
    let stack = TestStack::new("dns_adopt");
    let name = format!("{}.example.org", stack.name);
    let r53 = r53().await;
    let id = hand_made_zone(&r53, &name).await;
    let mail = format!("mail.{name}");
    change(&r53, &id, ChangeAction::Create, plain(&mail, RrType::A, "192.0.2.10")).await;
    let stack = stack.with_spec(&reference_with(&format!("[dns]\nzone = \"{name}\"\ncreate_zone = false\n")));

    let plan = stack.plan();
    let lookup = plan["changes"].as_array().unwrap().iter().find(|c| c["address"] == "dns_zone.main").cloned();
    let lookup = lookup.unwrap_or_else(|| panic!("the plan shows the adopted zone: {plan}"));
    assert_eq!((lookup["lookup"].clone(), lookup["id"].clone()), (json!(true), json!(id)));
    assert!(!changes(&plan).iter().any(|c| c.contains("zone")), "the zone is neither created nor changed: {plan}");
    stack.apply();
    let lb = load_balancer_of(&stack.name).await;
    let found = records(&r53, &id).await;
    assert_alias(&found, &name, &lb, &stack.name, "dns_record.apex");
    assert_alias(&found, &format!("www.{name}"), &lb, &stack.name, "dns_record.www");
    assert!(zone_of(&r53, &stack.name).await.is_none(), "the adopted zone is not tagged as the stack's");
    let again = changes(&stack.plan());
    assert!(again.is_empty(), "a second plan is empty: {again:?}");

    stack.destroy();
    let left = records(&r53, &id).await;
    let names: Vec<String> = left.iter().map(|r| format!("{} {}", r.r#type().as_str(), r.name())).collect();
    assert!(find(&left, &mail, RrType::A).is_some(), "the hand-made record survives destroy: {names:?}");
    assert!(!names.iter().any(|n| n.contains("_webscale") || n.starts_with("A www")), "ours are gone: {names:?}");
    assert!(find(&left, &name, RrType::A).is_none(), "the apex alias is gone: {names:?}");
    assert!(r53.get_hosted_zone().id(&id).send().await.is_ok(), "the adopted zone survives destroy");
    change(&r53, &id, ChangeAction::Delete, plain(&mail, RrType::A, "192.0.2.10")).await;
    r53.delete_hosted_zone().id(&id).send().await.unwrap();
}

/// A record at `www` that webscale does not own: the plan shows it (`blocked_by`), and apply stops before changing
/// anything, naming the record, which stays as it was (no ownership record added either); destroy leaves it too.
#[tokio::test]
async fn an_unowned_record_at_www_makes_apply_refuse_naming_it() {
    if no_load_balancers().await {
        return;
    }
    let stack = TestStack::new("dns_taken");
    let name = format!("{}.example.org", stack.name);
    let r53 = r53().await;
    let id = hand_made_zone(&r53, &name).await;
    let www = format!("www.{name}");
    change(&r53, &id, ChangeAction::Create, plain(&www, RrType::A, "192.0.2.20")).await;
    let stack = stack.with_spec(&reference_with(&format!("[dns]\nzone = \"{name}\"\ncreate_zone = false\n")));

    let plan = stack.plan();
    let planned = plan["changes"].as_array().unwrap().iter().find(|c| c["address"] == "dns_record.www").cloned();
    let planned = planned.unwrap_or_else(|| panic!("dns_record.www is planned: {plan}"));
    assert_eq!(planned["blocked_by"], json!([format!("record A {www} (192.0.2.20)")]), "the plan names it");
    let run = stack.run(&["apply", "--auto-approve"]);
    assert_ne!(run.code, 0, "{run}");
    let said = format!("{}{}", run.stdout, run.stderr);
    assert!(said.contains("dns_record.www") && said.contains(&format!("A {www} (192.0.2.20)")), "{said}");
    assert!(said.contains("does not own") && said.contains("Nothing was changed"), "{said}");
    let found = records(&r53, &id).await;
    assert!(find(&found, &name, RrType::A).is_none(), "apply stopped before writing anything: {found:#?}");
    let a = find(&found, &www, RrType::A).expect("still there");
    assert!(a.alias_target().is_none() && a.resource_records()[0].value() == "192.0.2.20", "unchanged: {a:?}");
    assert!(find(&found, &format!("_webscale.{www}"), RrType::Txt).is_none(), "not claimed");

    stack.destroy();
    let found = records(&r53, &id).await;
    assert!(find(&found, &www, RrType::A).is_some(), "destroy leaves it");
    change(&r53, &id, ChangeAction::Delete, plain(&www, RrType::A, "192.0.2.20")).await;
    r53.delete_hosted_zone().id(&id).send().await.unwrap();
}

// =====================================================================================================================
// Mocked SDK
// =====================================================================================================================

const STACK: &str = "dnsmock";
const REGION: &str = "us-east-1";

/// A stack with a zone of its own and, when `records`, a load balancer and both alias records.
fn spec(records: bool) -> Stack {
    let mut text = String::from(
        r#"
[stack]
name = "dnsmock"
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

[security_groups.lb]
description = "Load balancer"
ingress = [{ protocol = "tcp", ports = 80, cidr = "0.0.0.0/0" }]
"#,
    );
    if records {
        text.push_str(
            r#"
[security_groups.web]
description = "Web"

[web]
count = 1
instance_type = "t3.micro"
ami = "ami-0123456789abcdef0"
user_data = "user-data.sh"
security_group = "web"

[load_balancer]
security_group = "lb"

[dns]
zone = "example.com"
records = ["apex", "www"]
"#,
        );
    } else {
        text.push_str("\n[dns]\nzone = \"example.com\"\nrecords = []\n");
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("user-data.sh"), "#!/bin/sh\n").unwrap();
    let path = dir.path().join("dns.toml");
    spec::parse(Path::new(&path), &text, &RegionChoice::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// A cloud whose Route 53 answers from `rules` (every other service is unused).
fn cloud(rules: &[&Rule]) -> Cloud {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    let route53 = R53::from_conf(
        aws_sdk_route53::Config::builder()
            .behavior_version_latest()
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build(),
    );
    Cloud::from_clients(STACK, REGION, Clients { route53, ..unused_clients() }, fast())
}

fn zone(id: &str, name: &str, caller_reference: &str) -> AwsZone {
    AwsZone::builder()
        .id(format!("/hostedzone/{id}"))
        .name(format!("{name}."))
        .caller_reference(caller_reference)
        .config(HostedZoneConfig::builder().private_zone(false).build())
        .build()
        .unwrap()
}

fn change_info(id: &str, status: ChangeStatus) -> ChangeInfo {
    ChangeInfo::builder()
        .id(format!("/change/{id}"))
        .status(status)
        .submitted_at(DateTime::from_secs(0))
        .build()
        .unwrap()
}

fn listing(zones: Vec<AwsZone>) -> op::list_hosted_zones::ListHostedZonesOutput {
    op::list_hosted_zones::ListHostedZonesOutput::builder()
        .set_hosted_zones(Some(zones))
        .marker("")
        .is_truncated(false)
        .max_items(100)
        .build()
        .unwrap()
}

fn no_tags() -> Rule {
    mock!(R53::list_tags_for_resources).then_compute_output(|req| {
        let sets = req.resource_ids().iter().map(|id| ResourceTagSet::builder().resource_id(id).build()).collect();
        op::list_tags_for_resources::ListTagsForResourcesOutput::builder()
            .set_resource_tag_sets(Some(sets))
            .build()
            .unwrap()
    })
}

fn name_servers() -> Rule {
    mock!(R53::get_hosted_zone).then_output(|| {
        op::get_hosted_zone::GetHostedZoneOutput::builder()
            .hosted_zone(zone("ZNEW", "example.com", "x"))
            .delegation_set(DelegationSet::builder().name_servers("ns-1.awsdns-01.org").build().unwrap())
            .build()
    })
}

fn created_zone() -> op::create_hosted_zone::CreateHostedZoneOutput {
    let token = create_token(STACK, &Address::new("hosted_zone", "main"), None);
    op::create_hosted_zone::CreateHostedZoneOutput::builder()
        .hosted_zone(zone("ZNEW", "example.com", &token))
        .change_info(change_info("C1", ChangeStatus::Pending))
        .delegation_set(DelegationSet::builder().name_servers("ns-1.awsdns-01.org").build().unwrap())
        .location("https://route53.amazonaws.com/2013-04-01/hostedzone/ZNEW")
        .build()
        .unwrap()
}

fn get_change(status: ChangeStatus) -> op::get_change::GetChangeOutput {
    op::get_change::GetChangeOutput::builder().change_info(change_info("C1", status)).build()
}

/// What the engine reported while it ran.
#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl Hook for Events {
    fn started(&self, _: &Address, _: Phase) {}

    fn still_running(&self, address: &Address, phase: Phase, _: Duration, status: Option<&str>) {
        self.0.lock().unwrap().push(format!("{address} {} {}", phase.name(), status.unwrap_or("-")));
    }

    fn finished(&self, address: &Address, phase: Phase, _: Duration, result: Result<Option<&str>, &CloudError>) {
        let how = result.map_or_else(|e| format!("failed: {e}"), |_| "done".to_string());
        self.0.lock().unwrap().push(format!("{address} {} {how}", phase.name()));
    }
}

async fn plan_of(kinds: &[&dyn Kind], cloud: &Cloud, stack: &Stack) -> Plan {
    plan::build_with(kinds, cloud, stack, Mode::Apply).await.unwrap_or_else(|e| panic!("{e}"))
}

async fn apply_plan(kinds: &[&dyn Kind], cloud: &Cloud, stack: &Stack, plan: &Plan) -> (apply::Report, Vec<String>) {
    let events = Events::default();
    let options = Options { heartbeat: Duration::from_secs(10), ..Options::default() };
    let report =
        apply::apply_with(kinds, cloud, stack, plan, &options, &events).await.unwrap_or_else(|e| panic!("{e}"));
    let events = events.0.lock().unwrap().clone();
    (report, events)
}

fn result<'a>(report: &'a apply::Report, address: &str, phase: Phase) -> &'a Result_ {
    &report.operations.iter().find(|o| o.address.as_str() == address && o.phase == phase).unwrap().result
}

/// A new zone's change stays PENDING for minutes on AWS (moto: INSYNC at once). The create waits for INSYNC
/// through GetChange, and the progress heartbeat shows the change and its status meanwhile.
#[tokio::test(start_paused = true)]
async fn a_zone_create_waits_for_its_change_to_be_insync_showing_its_status() {
    let list = mock!(R53::list_hosted_zones).then_output(|| listing(vec![]));
    let tags = no_tags();
    let create = mock!(R53::create_hosted_zone).then_output(created_zone);
    let tag = mock!(R53::change_tags_for_resource)
        .then_output(|| op::change_tags_for_resource::ChangeTagsForResourceOutput::builder().build());
    let polls = mock!(R53::get_change)
        .sequence()
        .output(|| get_change(ChangeStatus::Pending))
        .times(4)
        .output(|| get_change(ChangeStatus::Insync))
        .build();
    let cloud = cloud(&[&list, &tags, &create, &tag, &polls]);
    let stack = spec(false);
    let kinds: &[&dyn Kind] = &[&HostedZone];

    let plan = plan_of(kinds, &cloud, &stack).await;
    assert_eq!(plan.changes[0].action, Action::Create);
    let (report, events) = apply_plan(kinds, &cloud, &stack, &plan).await;

    assert_eq!(result(&report, "hosted_zone.main", Phase::Create), &Result_::Done, "{events:?}");
    assert_eq!(polls.num_calls(), 5, "PENDING four times, then INSYNC");
    assert!(events.contains(&"hosted_zone.main create change C1 PENDING".to_string()), "{events:?}");
    assert_eq!(report.ids.get(&Address::new("hosted_zone", "main")).map(String::as_str), Some("ZNEW"));
    assert_eq!(tag.num_calls(), 1, "tagged right after the create");
}

/// A change that never gets INSYNC: the engine gives up after the kind's timeout, naming the resource and the
/// change, and says a re-run resumes.
#[tokio::test(start_paused = true)]
async fn a_change_that_stays_pending_times_out_naming_it_and_saying_a_rerun_resumes() {
    let list = mock!(R53::list_hosted_zones).then_output(|| listing(vec![]));
    let tags = no_tags();
    let create = mock!(R53::create_hosted_zone).then_output(created_zone);
    let tag = mock!(R53::change_tags_for_resource)
        .then_output(|| op::change_tags_for_resource::ChangeTagsForResourceOutput::builder().build());
    let polls = mock!(R53::get_change).then_output(|| get_change(ChangeStatus::Pending));
    let cloud = cloud(&[&list, &tags, &create, &tag, &polls]);
    let stack = spec(false);
    let kinds: &[&dyn Kind] = &[&HostedZone];

    let plan = plan_of(kinds, &cloud, &stack).await;
    let (report, _) = apply_plan(kinds, &cloud, &stack, &plan).await;

    let Result_::Failed { error } = result(&report, "hosted_zone.main", Phase::Create) else {
        panic!("the wait should time out: {report:#?}")
    };
    for part in ["gave up waiting for hosted_zone.main", "10m", "change C1 PENDING", "run the same command again"] {
        assert!(error.contains(part), "missing {part:?} in: {error}");
    }
    assert!(polls.num_calls() > 2, "polled until the timeout");
}

/// The CreateHostedZone answer is lost (the zone was made). The engine looks (the listing does not show it yet:
/// eventual consistency) and creates again with the same CallerReference; AWS answers HostedZoneAlreadyExists
/// instead of making a second zone; the engine looks again, recognises the untagged zone by its caller reference,
/// and finishes it (tags). One zone, never two.
#[tokio::test]
async fn a_zone_create_whose_answer_was_lost_finds_the_one_zone() {
    let token = create_token(STACK, &Address::new("hosted_zone", "main"), None);
    let made = token.clone();
    let list = mock!(R53::list_hosted_zones)
        .sequence()
        .output(|| listing(vec![zone("ZOTHER", "example.com", "someone-else")]))
        .times(2)
        .output(move || {
            listing(vec![zone("ZOTHER", "example.com", "someone-else"), zone("ZNEW", "example.com", &made)])
        })
        .repeatedly()
        .build();
    let tags = no_tags();
    let references = Arc::new(Mutex::new(Vec::new()));
    let seen = references.clone();
    let create = mock!(R53::create_hosted_zone)
        .match_requests(move |req| {
            seen.lock().unwrap().push(req.caller_reference().unwrap_or_default().to_string());
            true
        })
        .sequence()
        .error(|| {
            op::create_hosted_zone::CreateHostedZoneError::generic(
                ErrorMetadata::builder().message("connection reset before the answer arrived").build(),
            )
        })
        .error(|| {
            op::create_hosted_zone::CreateHostedZoneError::generic(
                ErrorMetadata::builder()
                    .code("HostedZoneAlreadyExists")
                    .message("A hosted zone has already been created with the specified caller reference.")
                    .build(),
            )
        })
        .build();
    let tagged = Arc::new(Mutex::new(Vec::new()));
    let on = tagged.clone();
    let tag = mock!(R53::change_tags_for_resource).then_compute_output(move |req| {
        on.lock().unwrap().push(req.resource_id().unwrap_or_default().to_string());
        op::change_tags_for_resource::ChangeTagsForResourceOutput::builder().build()
    });
    let servers = name_servers();
    let cloud = cloud(&[&list, &tags, &create, &tag, &servers]);
    let stack = spec(false);
    let kinds: &[&dyn Kind] = &[&HostedZone];

    let plan = plan_of(kinds, &cloud, &stack).await;
    assert_eq!(plan.changes[0].action, Action::Create, "a zone of the same name that is not the stack's is not taken");
    let (report, events) = apply_plan(kinds, &cloud, &stack, &plan).await;

    assert_eq!(result(&report, "hosted_zone.main", Phase::Create), &Result_::Done, "{events:?}");
    assert_eq!(*references.lock().unwrap(), [token.clone(), token], "the repeat carries the same CallerReference");
    assert_eq!(report.ids.get(&Address::new("hosted_zone", "main")).map(String::as_str), Some("ZNEW"), "the one zone");
    assert!(!tagged.lock().unwrap().is_empty(), "the found zone is finished (tagged)");
    assert!(tagged.lock().unwrap().iter().all(|z| z == "ZNEW"), "only that zone: {:?}", tagged.lock().unwrap());
}

/// A stand-in for the load balancer kind: it exists, with the outputs the records alias.
struct FakeLoadBalancer;

const LB_DNS: &str = "dnsmock-web-123.us-east-1.elb.amazonaws.com";
const LB_ZONE: &str = "Z35SXDOTRQ7X7K";

#[async_trait]
impl Kind for FakeLoadBalancer {
    fn name(&self) -> &'static str {
        "load_balancer"
    }

    fn schema(&self) -> &'static [Attr] {
        &[]
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        vec![Desired::in_home_region(stack, Address::new("load_balancer", "web"), &json!({}))]
    }

    async fn read(&self, _: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let mut live = Live::new(Address::new("load_balancer", "web"), region, "arn:lb", Default::default());
        live.outputs = json!({ "dns_name": LB_DNS, "canonical_hosted_zone_id": LB_ZONE }).as_object().unwrap().clone();
        Ok(vec![live])
    }

    async fn create(&self, _: &Cloud, _: &Op<'_>) -> Result<Created, CloudError> {
        Err(CloudError::internal("not in this test"))
    }

    async fn update(&self, _: &Cloud, _: &Op<'_>) -> Result<(), CloudError> {
        Err(CloudError::internal("not in this test"))
    }

    async fn delete(&self, _: &Cloud, _: &Op<'_>) -> Result<(), CloudError> {
        Err(CloudError::internal("not in this test"))
    }
}

fn alias(name: &str) -> ResourceRecordSet {
    ResourceRecordSet::builder()
        .name(format!("{name}."))
        .r#type(RrType::A)
        .alias_target(
            AliasTarget::builder()
                .hosted_zone_id(LB_ZONE)
                .dns_name(format!("{LB_DNS}."))
                .evaluate_target_health(true)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn owner(name: &str, address: &str) -> ResourceRecordSet {
    let value = format!("\"heritage=webscale,webscale/stack={STACK},webscale/address={address},webscale/types=A\"");
    plain(&format!("_webscale.{name}."), RrType::Txt, &value)
}

/// The read budget: 25 zones in the account (one the stack's, paged 20 + 5), the stack's two alias records with
/// their ownership records and three records of someone else's in its zone. A plan costs two ListHostedZones
/// (pages), three ListTagsForResources (10 zones a call), one GetHostedZone (the stack's zone only) and one
/// ListResourceRecordSets (the one zone the stack uses), however many records there are; and plans nothing.
#[tokio::test]
async fn a_plan_reads_zones_and_records_in_a_fixed_number_of_calls() {
    let token = create_token(STACK, &Address::new("hosted_zone", "main"), None);
    let zones: Vec<AwsZone> = (0..25)
        .map(|i| match i {
            7 => zone("ZMINE", "example.com", &token),
            i => zone(&format!("Z{i:02}"), &format!("other-{i}.example.net"), &format!("ref-{i}")),
        })
        .collect();
    let (first, second) = (zones[..20].to_vec(), zones[20..].to_vec());
    let list = mock!(R53::list_hosted_zones).then_compute_output(move |req| {
        let (page, truncated) = match req.marker() {
            None => (first.clone(), true),
            Some(_) => (second.clone(), false),
        };
        op::list_hosted_zones::ListHostedZonesOutput::builder()
            .set_hosted_zones(Some(page))
            .marker(req.marker().unwrap_or_default())
            .is_truncated(truncated)
            .set_next_marker(truncated.then(|| "Z20".to_string()))
            .max_items(20)
            .build()
            .unwrap()
    });
    let tags = mock!(R53::list_tags_for_resources).then_compute_output(|req| {
        assert!(req.resource_ids().len() <= 10, "at most 10 zones a call");
        let sets = req
            .resource_ids()
            .iter()
            .map(|id| {
                let set = ResourceTagSet::builder().resource_id(id);
                if id != "ZMINE" {
                    return set.build();
                }
                let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build();
                set.tags(tag("webscale:stack", STACK))
                    .tags(tag("webscale:address", "hosted_zone.main"))
                    .tags(tag("Name", "dnsmock-hosted-zone-main"))
                    .build()
            })
            .collect();
        op::list_tags_for_resources::ListTagsForResourcesOutput::builder()
            .set_resource_tag_sets(Some(sets))
            .build()
            .unwrap()
    });
    let servers = name_servers();
    let record_sets = mock!(R53::list_resource_record_sets).then_compute_output(|req| {
        assert_eq!(req.hosted_zone_id(), Some("ZMINE"), "only the stack's zone is read");
        let sets = vec![
            plain("example.com.", RrType::Soa, "ns-1.awsdns-01.org. hostmaster. 1 7200 900 1209600 86400"),
            plain("example.com.", RrType::Ns, "ns-1.awsdns-01.org."),
            alias("example.com"),
            plain("example.com.", RrType::Mx, "10 mail.example.com."),
            plain("example.com.", RrType::Txt, "\"v=spf1 -all\""),
            owner("example.com", "dns_record.apex"),
            plain("mail.example.com.", RrType::A, "192.0.2.10"),
            alias("www.example.com"),
            owner("www.example.com", "dns_record.www"),
        ];
        op::list_resource_record_sets::ListResourceRecordSetsOutput::builder()
            .set_resource_record_sets(Some(sets))
            .is_truncated(false)
            .max_items(300)
            .build()
            .unwrap()
    });
    let cloud = cloud(&[&list, &tags, &servers, &record_sets]);
    let stack = spec(true);
    let kinds: &[&dyn Kind] = &[&FakeLoadBalancer, &HostedZone, &DnsZone, &DnsRecord];

    let plan = plan_of(kinds, &cloud, &stack).await;

    let busy: Vec<String> =
        plan.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| c.address.to_string()).collect();
    assert!(busy.is_empty(), "the account holds what the spec asks for: {busy:?}\n{plan:#?}");
    let addresses: Vec<&str> = plan.changes.iter().map(|c| c.address.as_str()).collect();
    for a in ["hosted_zone.main", "dns_record.apex", "dns_record.www"] {
        assert!(addresses.contains(&a), "{a} read: {addresses:?}");
    }
    assert_eq!(list.num_calls(), 2, "ListHostedZones: two pages");
    assert_eq!(tags.num_calls(), 3, "ListTagsForResources: 25 zones, 10 a call");
    assert_eq!(servers.num_calls(), 1, "GetHostedZone: the stack's zone only");
    assert_eq!(record_sets.num_calls(), 1, "ListResourceRecordSets: one zone, one page");
}

/// A record created by someone else between the plan and the apply: AWS refuses the CREATE (moto would accept
/// it). The error says the record exists and is not the stack's; nothing is overwritten (no UPSERT is ever sent
/// for a record the stack does not own).
#[tokio::test]
async fn a_create_refused_because_the_record_exists_says_it_is_not_the_stacks() {
    let op = Op {
        address: &Address::new("dns_record", "www"),
        region: webscale::resources::GLOBAL,
        id: None,
        desired: json!({
            "zone": "ZMINE",
            "name": "www.example.com",
            "types": ["A"],
            "alias_dns_name": LB_DNS,
            "alias_zone_id": LB_ZONE,
            "evaluate_target_health": true,
        })
        .as_object()
        .cloned(),
        live: None,
        changed: &[],
        token: "ws-test".into(),
        digests: Default::default(),
        skip_final_snapshot: false,
        wait: false,
        stack: None,
        progress: None,
    };
    let empty = mock!(R53::list_resource_record_sets).then_output(|| {
        op::list_resource_record_sets::ListResourceRecordSetsOutput::builder()
            .set_resource_record_sets(Some(vec![]))
            .is_truncated(false)
            .max_items(300)
            .build()
            .unwrap()
    });
    let actions = Arc::new(Mutex::new(Vec::new()));
    let sent = actions.clone();
    let refuse = mock!(R53::change_resource_record_sets).then_compute_response(move |req| {
        let batch = req.change_batch().unwrap();
        sent.lock().unwrap().extend(batch.changes().iter().map(|c| c.action().as_str().to_string()));
        MockResponse::Error(op::change_resource_record_sets::ChangeResourceRecordSetsError::generic(
            ErrorMetadata::builder()
                .code("InvalidChangeBatch")
                .message(
                    "[Tried to create resource record set [name='www.example.com.', type='A'] but it already exists]",
                )
                .build(),
        ))
    });
    let cloud = cloud(&[&empty, &refuse]);

    let error = DnsRecord.create(&cloud, &op).await.expect_err("AWS refuses");
    assert_eq!(error.code(), "InvalidChangeBatch");
    assert!(error.message.contains("dns_record.www") && error.message.contains("not the stack's"), "{error}");
    assert_eq!(*actions.lock().unwrap(), ["CREATE", "CREATE"], "the record and its ownership record, CREATE only");
}
