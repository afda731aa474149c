//! NAT gateways (`[network] nat`): egress for the private subnets.
//!
//! - Against the emulator: the network tier with `nat = "single"`, then `"per_zone"`, then destroyed, each step
//!   checked through our own EC2 client.
//! - With canned SDK responses (aws-smithy-mocks), what the emulator does not do: a gateway `pending` for minutes
//!   (moto makes it `available` at once), one that ends `failed`, the client token that makes a repeated create
//!   safe (moto ignores it), the read budget, and an Elastic IP that AWS refuses to release for a moment after its
//!   gateway is gone.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::Region;
use aws_sdk_ec2::Client as Ec2;
use aws_sdk_ec2::config::Credentials;
use aws_sdk_ec2::error::ErrorMetadata;
use aws_sdk_ec2::operation as op;
use aws_sdk_ec2::types::{DomainType, NatGateway, NatGatewayAddress, NatGatewayState, ResourceType, Tag};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_types::retry::RetryConfig;
use serde_json::json;
use webscale::apply::Phase;
use webscale::aws::{Clients, Cloud};
use webscale::resources::elastic_ip::ElasticIp;
use webscale::resources::nat_gateway::NatGateway as NatKind;
use webscale::resources::{Address, Kind, Op, Progress, ReadCtx};

use crate::mocked::{fast, unused_clients};
use crate::support::{TestStack, ec2, owned, tag};

// =====================================================================================================================
// Against the emulator
// =====================================================================================================================

/// The reference template's network tier alone: the tables of the other tiers (web, load balancer, DNS, database)
/// left out.
fn network_only() -> String {
    let text = std::fs::read_to_string(crate::support::repo().join("templates/webscale.toml")).unwrap();
    let mut out = String::new();
    let mut skipping = false;
    for line in text.lines() {
        if line.starts_with('[') {
            let table = line.trim_start_matches('[').split([']', '.']).next().unwrap_or_default();
            skipping = matches!(table, "web" | "load_balancer" | "dns" | "database" | "static_assets" | "logging");
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    assert!(out.contains("nat = \"single\""), "the reference stack uses one NAT gateway");
    out
}

/// The stack's live NAT gateways as our own client sees them: tagged with the stack and neither deleting nor
/// deleted (AWS lists deleted ones for about an hour). The tag is checked here too: moto ignores tag filters on
/// DescribeNatGateways.
async fn gateways(ec2: &Ec2, stack: &str) -> Vec<NatGateway> {
    let out = ec2.describe_nat_gateways().filter(owned(stack)).send().await.unwrap();
    out.nat_gateways()
        .iter()
        .filter(|g| tag(g.tags(), "webscale:stack") == Some(stack))
        .filter(|g| !matches!(g.state(), Some(NatGatewayState::Deleting | NatGatewayState::Deleted)))
        .cloned()
        .collect()
}

/// Subnet id by address (`subnet.private_a`).
async fn subnets(ec2: &Ec2, stack: &str) -> BTreeMap<String, String> {
    let out = ec2.describe_subnets().filters(owned(stack)).send().await.unwrap();
    out.subnets()
        .iter()
        .map(|s| (tag(s.tags(), "webscale:address").unwrap().to_string(), s.subnet_id().unwrap().to_string()))
        .collect()
}

/// Where the route table of `subnet` sends 0.0.0.0/0: the NAT gateway id, if that is where.
async fn default_route_of(ec2: &Ec2, subnet: &str) -> Option<String> {
    let by_subnet = aws_sdk_ec2::types::Filter::builder().name("association.subnet-id").values(subnet).build();
    let out = ec2.describe_route_tables().filters(by_subnet).send().await.unwrap();
    assert_eq!(out.route_tables().len(), 1, "{subnet} is explicitly associated with one table");
    out.route_tables()[0]
        .routes()
        .iter()
        .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
        .map(|r| r.nat_gateway_id().unwrap_or_else(|| panic!("{subnet}'s default route is not to a NAT: {r:?}")))
        .map(str::to_string)
}

/// Checks the full tag set a resource got in its create call.
fn assert_tagged(tags: &[Tag], stack: &str, address: &str) {
    assert_eq!(tag(tags, "webscale:stack"), Some(stack), "{address}");
    assert_eq!(tag(tags, "webscale:address"), Some(address));
    assert_eq!(tag(tags, "environment"), Some("demo"), "{address}: the stack's extra tags");
    let name = format!("{stack}-{}", address.replace(['_', '.'], "-"));
    assert_eq!(tag(tags, "Name"), Some(name.as_str()), "{address}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nat_single_then_per_zone_routes_every_private_subnet_through_a_gateway_and_destroy_releases_all() {
    let mut stack = TestStack::new("nat").with_spec(&network_only());
    let ec2 = ec2().await;

    // One gateway, in the first zone's public subnet, with its own Elastic IP.
    stack.apply();
    let ids = subnets(&ec2, &stack.name).await;
    let live = gateways(&ec2, &stack.name).await;
    assert_eq!(live.len(), 1, "nat = \"single\" makes one gateway: {live:#?}");
    let gateway = &live[0];
    let nat_a = gateway.nat_gateway_id().unwrap().to_string();
    assert_eq!(gateway.state(), Some(&NatGatewayState::Available));
    assert_eq!(gateway.subnet_id(), Some(ids["subnet.public_a"].as_str()), "in the first zone's public subnet");
    assert_tagged(gateway.tags(), &stack.name, "nat_gateway.a");
    let addresses = ec2.describe_addresses().filters(owned(&stack.name)).send().await.unwrap();
    assert_eq!(addresses.addresses().len(), 1);
    let eip = &addresses.addresses()[0];
    assert_eq!(eip.domain(), Some(&DomainType::Vpc));
    assert_tagged(eip.tags(), &stack.name, "elastic_ip.nat_a");
    let held: Vec<Option<&str>> = gateway.nat_gateway_addresses().iter().map(|a| a.allocation_id()).collect();
    assert_eq!(held, [eip.allocation_id()], "the gateway holds the stack's Elastic IP");
    // Every private subnet routes 0.0.0.0/0 to it; the public ones still go to the internet gateway.
    for zone in ["a", "b"] {
        let private = &ids[&format!("subnet.private_{zone}")];
        assert_eq!(default_route_of(&ec2, private).await.as_deref(), Some(nat_a.as_str()), "private_{zone}");
    }
    let public = ec2
        .describe_route_tables()
        .filters(
            aws_sdk_ec2::types::Filter::builder().name("association.subnet-id").values(&ids["subnet.public_a"]).build(),
        )
        .send()
        .await
        .unwrap();
    let igw_route = public.route_tables()[0].routes().iter().find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"));
    assert!(igw_route.and_then(|r| r.gateway_id()).is_some_and(|g| g.starts_with("igw-")), "{igw_route:?}");

    let again = stack.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "plan after apply must be empty:\n{again}");

    // One gateway per zone: each zone's private subnet routes to its own zone's gateway.
    stack.edit("nat = \"single\"", "nat = \"per_zone\"");
    let plan = stack.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan}");
    for planned in ["elastic_ip.nat_b", "nat_gateway.b", "route_table.private_a", "route_table.private_b"] {
        assert!(plan.stdout.contains(&format!("+ {planned} will be created")), "{planned}:\n{plan}");
    }
    assert!(plan.stdout.contains("- route_table.private "), "the shared private table goes:\n{plan}");
    stack.apply();
    let ids = subnets(&ec2, &stack.name).await;
    let live = gateways(&ec2, &stack.name).await;
    assert_eq!(live.len(), 2, "one gateway per zone: {live:#?}");
    let mut by_zone = BTreeMap::new();
    for g in &live {
        let address = tag(g.tags(), "webscale:address").unwrap();
        let zone = address.strip_prefix("nat_gateway.").unwrap();
        assert_eq!(g.subnet_id(), Some(ids[&format!("subnet.public_{zone}")].as_str()), "{address}");
        assert_tagged(g.tags(), &stack.name, address);
        by_zone.insert(zone.to_string(), g.nat_gateway_id().unwrap().to_string());
    }
    assert_eq!(by_zone["a"], nat_a, "zone a keeps its gateway");
    for zone in ["a", "b"] {
        let private = &ids[&format!("subnet.private_{zone}")];
        assert_eq!(default_route_of(&ec2, private).await, Some(by_zone[zone].clone()), "private_{zone}");
    }
    let addresses = ec2.describe_addresses().filters(owned(&stack.name)).send().await.unwrap();
    let eips: BTreeSet<&str> =
        addresses.addresses().iter().map(|a| tag(a.tags(), "webscale:address").unwrap()).collect();
    assert_eq!(eips, BTreeSet::from(["elastic_ip.nat_a", "elastic_ip.nat_b"]));
    let tables = ec2.describe_route_tables().filters(owned(&stack.name)).send().await.unwrap();
    let tables: BTreeSet<&str> =
        tables.route_tables().iter().map(|t| tag(t.tags(), "webscale:address").unwrap()).collect();
    assert_eq!(
        tables,
        BTreeSet::from(["route_table.private_a", "route_table.private_b", "route_table.public"]),
        "one private table per zone"
    );
    let again = stack.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "plan after the switch must be empty:\n{again}");

    // Destroy: no gateway and no address of the stack is left.
    stack.destroy();
    assert!(gateways(&ec2, &stack.name).await.is_empty(), "every NAT gateway deleted");
    let addresses = ec2.describe_addresses().filters(owned(&stack.name)).send().await.unwrap();
    assert!(addresses.addresses().is_empty(), "every Elastic IP released: {:?}", addresses.addresses());
    let vpcs = ec2.describe_vpcs().filters(owned(&stack.name)).send().await.unwrap();
    assert!(vpcs.vpcs().is_empty(), "the VPC is gone too");
}

// =====================================================================================================================
// Canned SDK responses
// =====================================================================================================================

const REGION: &str = "us-east-1";

fn client(rules: &[&Rule]) -> Ec2 {
    let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
    for rule in rules {
        interceptor = interceptor.with_rule(rule);
    }
    Ec2::from_conf(
        aws_sdk_ec2::Config::builder()
            .behavior_version_latest()
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build(),
    )
}

fn cloud(ec2: Ec2) -> Cloud {
    Cloud::from_clients("mocked", REGION, Clients { ec2, ..unused_clients() }, fast())
}

fn tags_of(stack: &str, address: &str) -> Vec<Tag> {
    [("webscale:stack", stack), ("webscale:address", address)]
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .to_vec()
}

/// A gateway of stack `mocked` as DescribeNatGateways reports it.
fn gateway_of(id: &str, state: &str) -> aws_sdk_ec2::types::builders::NatGatewayBuilder {
    NatGateway::builder()
        .nat_gateway_id(id)
        .subnet_id("subnet-public-a")
        .state(NatGatewayState::from(state))
        .nat_gateway_addresses(NatGatewayAddress::builder().allocation_id("eipalloc-a").is_primary(true).build())
        .set_tags(Some(tags_of("mocked", "nat_gateway.a")))
}

fn gateway(id: &str, state: &str) -> NatGateway {
    gateway_of(id, state).build()
}

fn described(gateways: Vec<NatGateway>) -> op::describe_nat_gateways::DescribeNatGatewaysOutput {
    op::describe_nat_gateways::DescribeNatGatewaysOutput::builder().set_nat_gateways(Some(gateways)).build()
}

/// An operation on `nat_gateway.a` (id `nat-1` once it exists), with `token` as the engine's create token.
fn nat_op<'a>(address: &'a Address, id: Option<&'a str>, token: &str) -> Op<'a> {
    let desired = json!({
        "subnet": "subnet-public-a",
        "elastic_ip": "eipalloc-a",
        "tags": { "webscale:stack": "mocked", "webscale:address": "nat_gateway.a" },
    });
    Op {
        address,
        region: REGION,
        id,
        desired: desired.as_object().cloned(),
        live: None,
        changed: &[],
        token: token.to_string(),
        digests: Default::default(),
        skip_final_snapshot: false,
        wait: false,
        stack: None,
        progress: None,
    }
}

/// On AWS a gateway stays `pending` for minutes. The wait keeps polling through the SDK's waiter until it is
/// `available`, and the progress line shows AWS's state meanwhile. Virtual time: minutes pass in no time.
#[tokio::test(start_paused = true)]
async fn a_gateway_pending_for_minutes_is_waited_for_and_its_state_shown_as_progress() {
    let describe = mock!(Ec2::describe_nat_gateways)
        .sequence()
        .output(|| described(vec![gateway("nat-1", "pending")]))
        .times(12)
        .output(|| described(vec![gateway("nat-1", "available")]))
        .repeatedly()
        .build();
    let cloud = cloud(client(&[&describe]));
    let address = Address::new("nat_gateway", "a");
    let op = nat_op(&address, Some("nat-1"), "ws-token");
    let progress = Progress::default();

    // Samples the progress line as the engine's heartbeat would, every 10 s, until the wait ends.
    let done = std::sync::atomic::AtomicBool::new(false);
    let seen = Mutex::new(Vec::<Option<String>>::new());
    let started = tokio::time::Instant::now();
    let wait = async {
        let result = NatKind.wait(&cloud, &op, "nat-1", Phase::Create, &progress).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        result
    };
    let sample = async {
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            seen.lock().unwrap().push(progress.get());
            tokio::time::sleep(Duration::from_secs(10)).await;
        }
    };
    let (result, ()) = tokio::join!(wait, sample);

    result.unwrap_or_else(|e| panic!("{e}"));
    assert!(describe.num_calls() >= 13, "polled until available: {} calls", describe.num_calls());
    // The SDK waiter's delays are jittered: a dozen of them take minutes, never seconds.
    assert!(started.elapsed() >= Duration::from_secs(2 * 60), "the waiter spaces its polls: {:?}", started.elapsed());
    let seen = seen.into_inner().unwrap();
    assert!(seen.iter().filter(|s| s.as_deref() == Some("pending")).count() >= 3, "progress showed pending: {seen:?}");
    assert_eq!(progress.get().as_deref(), Some("available"));
}

/// A gateway that AWS could not bring up (no internet gateway attached, say) ends `failed` with a reason. The
/// wait stops there with an error that names the gateway, keeps AWS's reason and says how to recover.
#[tokio::test(start_paused = true)]
async fn a_failed_gateway_ends_the_wait_with_an_error_naming_it_and_aws_reason() {
    let failed = || {
        let g = gateway_of("nat-1", "failed")
            .failure_code("Gateway.NotAttached")
            .failure_message("Network vpc-1 has no Internet gateway attached")
            .build();
        described(vec![g])
    };
    let describe = mock!(Ec2::describe_nat_gateways)
        .sequence()
        .output(|| described(vec![gateway("nat-1", "pending")]))
        .times(3)
        .output(failed)
        .repeatedly()
        .build();
    let cloud = cloud(client(&[&describe]));
    let address = Address::new("nat_gateway", "a");
    let op = nat_op(&address, Some("nat-1"), "ws-token");
    let progress = Progress::default();

    let error = NatKind.wait(&cloud, &op, "nat-1", Phase::Create, &progress).await.expect_err("a failed gateway");

    assert_eq!(error.code(), "NatGatewayFailed", "{error}");
    let text = error.to_string();
    for part in ["nat_gateway.a", "nat-1", "Gateway.NotAttached", "has no Internet gateway attached", "--replace"] {
        assert!(text.contains(part), "the error says {part:?}: {text}");
    }
    assert!(!error.is_not_found(), "never taken for a gateway already gone");
    assert_eq!(progress.get().as_deref(), Some("failed"));
}

/// The create passes the engine's token as ClientToken (at most 64 characters), so a repeated CreateNatGateway
/// returns the first gateway instead of making (and billing) a second one. The subnet, the address and the tags
/// go in the same call.
#[tokio::test]
async fn create_passes_the_client_token_subnet_address_and_tags() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let log = sent.clone();
    let create = mock!(Ec2::create_nat_gateway)
        .match_requests(move |req| {
            log.lock().unwrap().push(req.clone());
            true
        })
        .then_output(|| {
            op::create_nat_gateway::CreateNatGatewayOutput::builder().nat_gateway(gateway("nat-1", "pending")).build()
        });
    let describe = mock!(Ec2::describe_nat_gateways).then_output(|| described(vec![gateway("nat-1", "pending")]));
    let cloud = cloud(client(&[&create, &describe]));
    let address = Address::new("nat_gateway", "a");
    let token = webscale::resources::create_token("mocked", &address, None);
    let op = nat_op(&address, None, &token);

    let created = NatKind.create(&cloud, &op).await.unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(created.id, "nat-1");
    let sent = sent.lock().unwrap();
    assert_eq!(sent.len(), 1, "one CreateNatGateway");
    let req = &sent[0];
    let expected: String = token.chars().take(64).collect();
    assert_eq!(req.client_token(), Some(expected.as_str()), "the engine's token, cut to EC2's 64 characters");
    assert_eq!(req.subnet_id(), Some("subnet-public-a"));
    assert_eq!(req.allocation_id(), Some("eipalloc-a"));
    let spec = &req.tag_specifications()[0];
    assert_eq!(spec.resource_type(), Some(&ResourceType::Natgateway));
    assert_eq!(tag(spec.tags(), "webscale:address"), Some("nat_gateway.a"), "tagged in the create call");
}

/// A token AWS already spent on a gateway that has since been deleted answers with that dead gateway. The create
/// asks again with a token derived from the dead one (so that create is idempotent too) and returns the new one.
#[tokio::test]
async fn a_token_spent_on_a_deleted_gateway_gets_a_fresh_one() {
    let tokens = Arc::new(Mutex::new(Vec::new()));
    let log = tokens.clone();
    let create = mock!(Ec2::create_nat_gateway)
        .match_requests(move |req| {
            log.lock().unwrap().push(req.client_token().unwrap_or_default().to_string());
            true
        })
        .sequence()
        .output(|| {
            op::create_nat_gateway::CreateNatGatewayOutput::builder().nat_gateway(gateway("nat-old", "deleted")).build()
        })
        .output(|| {
            op::create_nat_gateway::CreateNatGatewayOutput::builder().nat_gateway(gateway("nat-new", "pending")).build()
        })
        .build();
    let describe = mock!(Ec2::describe_nat_gateways).then_output(|| described(vec![gateway("nat-new", "pending")]));
    let cloud = cloud(client(&[&create, &describe]));
    let address = Address::new("nat_gateway", "a");
    let token = webscale::resources::create_token("mocked", &address, None);
    let op = nat_op(&address, None, &token);

    let created = NatKind.create(&cloud, &op).await.unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(created.id, "nat-new");
    let tokens = tokens.lock().unwrap();
    let first: String = token.chars().take(64).collect();
    let second = format!("{}-nat-old", token.chars().take(40).collect::<String>());
    assert_eq!(*tokens, [first, second]);
    assert!(tokens.iter().all(|t| t.len() <= 64));
}

/// The read costs one DescribeNatGateways per page and one DescribeAddresses, however many gateways; it leaves
/// out gateways that are going or gone, and (moto ignores the tag filter) other stacks' gateways. A gateway still
/// coming up is reported as pending, so what routes through it waits.
#[tokio::test]
async fn reads_cost_one_call_per_page_and_skip_deleted_and_foreign_gateways() {
    let page = |token: Option<&str>, items: Vec<NatGateway>| {
        op::describe_nat_gateways::DescribeNatGatewaysOutput::builder()
            .set_nat_gateways(Some(items))
            .set_next_token(token.map(str::to_string))
            .build()
    };
    let tagged = |id: &str, state: &str, stack: &str, address: &str| {
        gateway_of(id, state).set_tags(Some(tags_of(stack, address))).build()
    };
    let first = mock!(Ec2::describe_nat_gateways).match_requests(|r| r.next_token().is_none()).then_output(move || {
        page(
            Some("page-2"),
            vec![
                tagged("nat-a", "available", "mocked", "nat_gateway.a"),
                tagged("nat-gone", "deleted", "mocked", "nat_gateway.b"),
            ],
        )
    });
    let second =
        mock!(Ec2::describe_nat_gateways).match_requests(|r| r.next_token() == Some("page-2")).then_output(move || {
            page(
                None,
                vec![
                    tagged("nat-b", "pending", "mocked", "nat_gateway.b"),
                    tagged("nat-other", "available", "someone-else", "nat_gateway.a"),
                ],
            )
        });
    let addresses = mock!(Ec2::describe_addresses).then_output(|| {
        let eip = |id: &str, address: &str| {
            aws_sdk_ec2::types::Address::builder()
                .allocation_id(id)
                .domain(DomainType::Vpc)
                .public_ip("198.51.100.7")
                .set_tags(Some(tags_of("mocked", address)))
                .build()
        };
        op::describe_addresses::DescribeAddressesOutput::builder()
            .addresses(eip("eipalloc-a", "elastic_ip.nat_a"))
            .addresses(eip("eipalloc-b", "elastic_ip.nat_b"))
            .build()
    });
    let cloud = cloud(client(&[&first, &second, &addresses]));
    let stack = webscale::spec::parse(
        std::path::Path::new("mocked.toml"),
        &network_only().replacen("name = \"webscale\"", "name = \"mocked\"", 1),
        &webscale::spec::RegionChoice::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ctx = ReadCtx::new(&cloud, &stack);

    let nats = NatKind.read(&ctx, REGION).await.unwrap_or_else(|e| panic!("{e}"));
    let eips = ElasticIp.read(&ctx, REGION).await.unwrap_or_else(|e| panic!("{e}"));

    let got: Vec<(&str, &str, Option<&str>)> =
        nats.iter().map(|l| (l.address.as_str(), l.id.as_str(), l.pending.as_deref())).collect();
    assert_eq!(got, [("nat_gateway.a", "nat-a", None), ("nat_gateway.b", "nat-b", Some("pending"))]);
    assert_eq!(nats[0].attrs["elastic_ip"], json!({"id": "eipalloc-a"}));
    assert_eq!(nats[0].attrs["subnet"], json!({"id": "subnet-public-a"}));
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1), "one call per page");
    assert_eq!(eips.len(), 2);
    assert_eq!(eips[0].attrs["domain"], json!("vpc"));
    assert_eq!(eips[0].outputs["public_ip"], json!("198.51.100.7"));
    assert_eq!(addresses.num_calls(), 1, "one DescribeAddresses");
}

/// Right after its gateway is deleted, AWS may still refuse to release the address (`AuthFailure`, or
/// `InvalidNetworkInterfaceID.NotFound` about the gateway's vanished interface). The release is retried; and that
/// NotFound is not taken for the address being gone already.
#[tokio::test]
async fn releasing_an_address_its_gateway_just_let_go_of_is_retried() {
    let release = mock!(Ec2::release_address)
        .sequence()
        .error(|| {
            op::release_address::ReleaseAddressError::generic(
                ErrorMetadata::builder()
                    .code("AuthFailure")
                    .message("You do not have permission to access the specified resource.")
                    .build(),
            )
        })
        .error(|| {
            op::release_address::ReleaseAddressError::generic(
                ErrorMetadata::builder()
                    .code("InvalidNetworkInterfaceID.NotFound")
                    .message("The networkInterface ID 'eni-1' does not exist")
                    .build(),
            )
        })
        .output(|| op::release_address::ReleaseAddressOutput::builder().build())
        .build();
    let cloud = cloud(client(&[&release]));
    let address = Address::new("elastic_ip", "nat_a");
    let op = Op {
        address: &address,
        region: REGION,
        id: Some("eipalloc-a"),
        desired: None,
        live: None,
        changed: &[],
        token: String::new(),
        digests: Default::default(),
        skip_final_snapshot: false,
        wait: false,
        stack: None,
        progress: None,
    };

    ElasticIp.delete(&cloud, &op).await.unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(release.num_calls(), 3, "two refusals, then released");
    let interface_gone = webscale::aws::CloudError {
        operation: "ReleaseAddress".into(),
        code: Some("InvalidNetworkInterfaceID.NotFound".into()),
        message: String::new(),
    };
    assert!(!ElasticIp.is_gone(&interface_gone), "the address itself still exists");
}
