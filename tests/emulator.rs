//! The network tier end to end against the emulator: the real binary, checked through our own SDK client.

use std::collections::BTreeSet;

use aws_sdk_ec2::types::Filter;
use serde_json::Value;

use crate::support::{TestStack, ec2, group_id, open_ssh, owned, reference_resources, tag, webscale};

/// Planned actions by address, from `plan --json`.
fn actions(plan: &Value) -> Vec<(String, String)> {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "no_op")
        .map(|c| (c["address"].as_str().unwrap().to_string(), c["action"].as_str().unwrap().to_string()))
        .collect()
}

fn change<'a>(plan: &'a Value, address: &str) -> &'a Value {
    plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["address"] == address)
        .unwrap_or_else(|| panic!("no change for {address} in plan"))
}

/// Everything the stack owns, by kind, as our own client sees it.
async fn owned_counts(stack: &str) -> [usize; 6] {
    let ec2 = ec2().await;
    let f = || owned(stack);
    [
        ec2.describe_vpcs().filters(f()).send().await.unwrap().vpcs().len(),
        ec2.describe_subnets().filters(f()).send().await.unwrap().subnets().len(),
        ec2.describe_internet_gateways().filters(f()).send().await.unwrap().internet_gateways().len(),
        ec2.describe_route_tables().filters(f()).send().await.unwrap().route_tables().len(),
        ec2.describe_security_groups().filters(f()).send().await.unwrap().security_groups().len(),
        ec2.describe_network_acls().filters(f()).send().await.unwrap().network_acls().len(),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_builds_the_network_tier_plan_is_then_empty_and_destroy_removes_only_the_stack() {
    let stack = TestStack::new("lifecycle");
    let ec2 = ec2().await;
    // Someone else's VPC in the same account: destroy must not touch it.
    let decoy = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
    let decoy_id = decoy.vpc().unwrap().vpc_id().unwrap().to_string();

    let validate = stack.run(&["validate"]).success();
    assert!(validate.stdout.contains("is valid"), "{validate}");
    let pending = stack.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(pending.code, 2, "changes pending must exit 2:\n{pending}");
    let n = reference_resources();
    assert!(
        pending.stdout.contains(&format!("Plan: {n} to add, 0 to change, 0 to replace, 0 to destroy.")),
        "{pending}"
    );

    let applied = stack.apply();
    assert!(applied.stdout.contains(&format!("Apply complete! Resources: {n} added")), "{applied}");

    // VPC
    let vpcs = ec2.describe_vpcs().filters(owned(&stack.name)).send().await.unwrap();
    assert_eq!(vpcs.vpcs().len(), 1);
    let vpc = &vpcs.vpcs()[0];
    let vpc_id = vpc.vpc_id().unwrap();
    assert_eq!(vpc.cidr_block(), Some("10.0.0.0/16"));
    assert_eq!(tag(vpc.tags(), "webscale:address"), Some("vpc.main"));
    assert_eq!(tag(vpc.tags(), "environment"), Some("demo"));
    assert_eq!(tag(vpc.tags(), "Name"), Some(format!("{}-vpc-main", stack.name).as_str()));
    let dns = ec2
        .describe_vpc_attribute()
        .vpc_id(vpc_id)
        .attribute(aws_sdk_ec2::types::VpcAttributeName::EnableDnsHostnames)
        .send()
        .await
        .unwrap();
    assert_eq!(dns.enable_dns_hostnames().and_then(|a| a.value()), Some(true));

    // Subnets: two zones, one public and one private each.
    let subnets = ec2.describe_subnets().filters(owned(&stack.name)).send().await.unwrap();
    let mut got: Vec<(String, String, String, bool)> = subnets
        .subnets()
        .iter()
        .map(|s| {
            assert_eq!(s.vpc_id(), Some(vpc_id));
            (
                tag(s.tags(), "webscale:address").unwrap().to_string(),
                s.cidr_block().unwrap().to_string(),
                s.availability_zone().unwrap().to_string(),
                s.map_public_ip_on_launch().unwrap_or(false),
            )
        })
        .collect();
    got.sort();
    let want = [
        ("subnet.private_a", "10.0.10.0/24", "us-east-1a", false),
        ("subnet.private_b", "10.0.11.0/24", "us-east-1b", false),
        ("subnet.public_a", "10.0.0.0/24", "us-east-1a", true),
        ("subnet.public_b", "10.0.1.0/24", "us-east-1b", true),
    ]
    .map(|(a, c, z, p)| (a.to_string(), c.to_string(), z.to_string(), p));
    assert_eq!(got, want);
    let subnet_id = |address: &str| {
        subnets
            .subnets()
            .iter()
            .find(|s| tag(s.tags(), "webscale:address") == Some(address))
            .and_then(|s| s.subnet_id())
            .unwrap()
            .to_string()
    };
    let public: BTreeSet<String> = [subnet_id("subnet.public_a"), subnet_id("subnet.public_b")].into();
    let private: BTreeSet<String> = [subnet_id("subnet.private_a"), subnet_id("subnet.private_b")].into();

    // Internet gateway, attached.
    let igws = ec2.describe_internet_gateways().filters(owned(&stack.name)).send().await.unwrap();
    assert_eq!(igws.internet_gateways().len(), 1);
    let igw = &igws.internet_gateways()[0];
    assert_eq!(igw.attachments().first().and_then(|a| a.vpc_id()), Some(vpc_id));
    let igw_id = igw.internet_gateway_id().unwrap();

    // Route tables: public routes to the internet gateway; each table holds its tier's subnets.
    let tables = ec2.describe_route_tables().filters(owned(&stack.name)).send().await.unwrap();
    assert_eq!(tables.route_tables().len(), 2);
    for t in tables.route_tables() {
        let address = tag(t.tags(), "webscale:address").unwrap();
        let associated: BTreeSet<String> =
            t.associations().iter().filter_map(|a| a.subnet_id()).map(str::to_string).collect();
        let routes: Vec<(Option<&str>, Option<&str>)> = t
            .routes()
            .iter()
            .filter(|r| r.gateway_id() != Some("local"))
            .map(|r| (r.destination_cidr_block(), r.gateway_id().or(r.nat_gateway_id())))
            .collect();
        match address {
            "route_table.public" => {
                assert_eq!(associated, public);
                assert_eq!(routes, vec![(Some("0.0.0.0/0"), Some(igw_id))]);
            }
            "route_table.private" => {
                // Egress only, through the stack's one NAT gateway (`nat = "single"`), never the internet gateway.
                assert_eq!(associated, private);
                let nat = ec2.describe_nat_gateways().filter(owned(&stack.name)).send().await.unwrap();
                let nat: Vec<&str> = nat
                    .nat_gateways()
                    .iter()
                    .filter(|g| g.state().is_some_and(|s| s.as_str() == "available"))
                    .filter(|g| tag(g.tags(), "webscale:stack") == Some(stack.name.as_str()))
                    .filter_map(|g| g.nat_gateway_id())
                    .collect();
                assert_eq!(nat.len(), 1, "one NAT gateway: {nat:?}");
                assert_eq!(routes, vec![(Some("0.0.0.0/0"), Some(nat[0]))]);
            }
            other => panic!("unexpected route table {other}"),
        }
    }

    // Security groups: internet -> lb -> web -> db.
    let groups = ec2.describe_security_groups().filters(owned(&stack.name)).send().await.unwrap();
    assert_eq!(groups.security_groups().len(), 3);
    let group = |name: &str| {
        groups
            .security_groups()
            .iter()
            .find(|g| tag(g.tags(), "webscale:address") == Some(&format!("security_group.{name}")))
            .unwrap_or_else(|| panic!("no group {name}"))
    };
    let (lb, web, db) = (group("lb"), group("web"), group("db"));
    let rules = |perms: &[aws_sdk_ec2::types::IpPermission]| -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for p in perms {
            let ports = format!("{}:{:?}-{:?}", p.ip_protocol().unwrap(), p.from_port(), p.to_port());
            for r in p.ip_ranges() {
                out.insert(format!("{ports} {}", r.cidr_ip().unwrap()));
            }
            for g in p.user_id_group_pairs() {
                out.insert(format!("{ports} {}", g.group_id().unwrap()));
            }
        }
        out
    };
    let s = |items: &[&str]| items.iter().map(|i| i.to_string()).collect::<BTreeSet<_>>();
    let (lb_id, web_id) = (lb.group_id().unwrap(), web.group_id().unwrap());
    assert_eq!(
        rules(lb.ip_permissions()),
        s(&["tcp:Some(443)-Some(443) 0.0.0.0/0", "tcp:Some(80)-Some(80) 0.0.0.0/0"])
    );
    assert_eq!(rules(lb.ip_permissions_egress()), s(&[&format!("tcp:Some(80)-Some(80) {web_id}")]));
    assert_eq!(rules(web.ip_permissions()), s(&[&format!("tcp:Some(80)-Some(80) {lb_id}")]));
    assert_eq!(rules(web.ip_permissions_egress()).len(), 1, "web keeps the default allow-all egress");
    assert_eq!(rules(db.ip_permissions()), s(&[&format!("tcp:Some(5432)-Some(5432) {web_id}")]));
    assert!(rules(db.ip_permissions_egress()).is_empty(), "db egress = [] removes the default rule");

    // Network ACLs: numbered rules (AWS's own 32767 aside) and the tier's subnets.
    let acls = ec2.describe_network_acls().filters(owned(&stack.name)).send().await.unwrap();
    assert_eq!(acls.network_acls().len(), 2);
    for acl in acls.network_acls() {
        let address = tag(acl.tags(), "webscale:address").unwrap();
        let associated: BTreeSet<String> =
            acl.associations().iter().filter_map(|a| a.subnet_id()).map(str::to_string).collect();
        let entries: BTreeSet<String> = acl
            .entries()
            .iter()
            .filter(|e| e.rule_number() != Some(32767))
            .map(|e| {
                format!(
                    "{} {} {} {} {:?} {}",
                    if e.egress() == Some(true) { "out" } else { "in" },
                    e.rule_number().unwrap(),
                    e.protocol().unwrap(),
                    e.cidr_block().unwrap(),
                    e.port_range().map(|p| (p.from().unwrap(), p.to().unwrap())),
                    e.rule_action().unwrap().as_str()
                )
            })
            .collect();
        match address {
            "network_acl.public" => {
                assert_eq!(associated, public);
                assert_eq!(
                    entries,
                    s(&[
                        "in 100 6 0.0.0.0/0 Some((80, 80)) allow",
                        "in 110 6 0.0.0.0/0 Some((443, 443)) allow",
                        "in 120 6 0.0.0.0/0 Some((1024, 65535)) allow",
                        "out 100 -1 0.0.0.0/0 None allow",
                    ])
                );
            }
            "network_acl.private" => {
                assert_eq!(associated, private);
                assert!(entries.contains("in 100 -1 10.0.0.0/16 None allow"), "{entries:?}");
                assert_eq!(entries.len(), 3, "{entries:?}");
            }
            other => panic!("unexpected network ACL {other}"),
        }
    }

    // Every resource carries the full tag set from its create call: ownership, the console Name, the stack's
    // extra tags. Checked on all of them, not only the VPC.
    let mut tagged: Vec<(&str, &[aws_sdk_ec2::types::Tag])> = vec![("vpc", vpc.tags()), ("igw", igw.tags())];
    tagged.extend(subnets.subnets().iter().map(|x| ("subnet", x.tags())));
    tagged.extend(tables.route_tables().iter().map(|x| ("route table", x.tags())));
    tagged.extend(groups.security_groups().iter().map(|x| ("group", x.tags())));
    tagged.extend(acls.network_acls().iter().map(|x| ("acl", x.tags())));
    let mut addresses = BTreeSet::new();
    for (what, tags) in tagged {
        let address = tag(tags, "webscale:address").unwrap_or_else(|| panic!("a {what} without an address tag"));
        assert_eq!(tag(tags, "webscale:stack"), Some(stack.name.as_str()), "{address}");
        assert_eq!(tag(tags, "environment"), Some("demo"), "{address}");
        let name = format!("{}-{}", stack.name, address.replace(['_', '.'], "-"));
        assert_eq!(tag(tags, "Name"), Some(name.as_str()), "{address}");
        assert!(addresses.insert(address.to_string()), "two resources claim {address}");
    }
    assert_eq!(addresses.len(), 13, "every resource with an id was checked: {addresses:?}");

    // Nothing left to do: the plan right after an apply is empty.
    let again = stack.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "plan after apply must be empty:\n{again}");
    assert!(again.stdout.contains("No changes."), "{again}");

    let destroyed = stack.destroy();
    assert!(destroyed.stdout.contains(&format!("{n} destroyed")), "{destroyed}");
    assert_eq!(owned_counts(&stack.name).await, [0; 6], "destroy must leave nothing tagged with the stack");
    let decoy_left = ec2.describe_vpcs().vpc_ids(&decoy_id).send().await.unwrap();
    assert_eq!(decoy_left.vpcs().len(), 1, "a VPC without the stack tag must survive destroy");
    ec2.delete_vpc().vpc_id(&decoy_id).send().await.unwrap();
    // Destroying an already destroyed stack is a no-op, not an error.
    let twice = stack.run(&["destroy", "--auto-approve"]).success();
    assert!(
        twice.stdout.contains(&format!("Nothing to destroy: stack {} owns nothing in us-east-1.", stack.name)),
        "{twice}"
    );
    assert!(!twice.stdout.contains("No changes"), "not the words of an apply:\n{twice}");
}

#[tokio::test(flavor = "multi_thread")]
async fn out_of_band_changes_show_as_drift_and_apply_corrects_them() {
    let stack = TestStack::new("drift");
    stack.apply();
    let ec2 = ec2().await;
    let web = group_id(&ec2, &stack.name, "web").await;
    // A rule added in the console, and a tag removed.
    open_ssh(&ec2, &web).await;
    let subnets = ec2.describe_subnets().filters(owned(&stack.name)).send().await.unwrap();
    let subnet =
        subnets.subnets().iter().find(|s| tag(s.tags(), "webscale:address") == Some("subnet.private_b")).unwrap();
    ec2.delete_tags()
        .resources(subnet.subnet_id().unwrap())
        .tags(aws_sdk_ec2::types::Tag::builder().key("environment").build())
        .send()
        .await
        .unwrap();
    // A NACL rule added by hand.
    let acls = ec2.describe_network_acls().filters(owned(&stack.name)).send().await.unwrap();
    let public_acl =
        acls.network_acls().iter().find(|a| tag(a.tags(), "webscale:address") == Some("network_acl.public")).unwrap();
    ec2.create_network_acl_entry()
        .network_acl_id(public_acl.network_acl_id().unwrap())
        .rule_number(200)
        .protocol("6")
        .rule_action(aws_sdk_ec2::types::RuleAction::Allow)
        .egress(false)
        .cidr_block("0.0.0.0/0")
        .port_range(aws_sdk_ec2::types::PortRange::builder().from(22).to(22).build())
        .send()
        .await
        .unwrap();

    let plan = stack.plan();
    let mut got = actions(&plan);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("network_acl.public".to_string(), "update".to_string()),
            ("security_group_rules.web".to_string(), "update".to_string()),
            ("subnet.private_b".to_string(), "update".to_string()),
        ]
    );
    let rules = change(&plan, "security_group_rules.web");
    let ingress = rules["attributes"].as_array().unwrap().iter().find(|a| a["name"] == "ingress").unwrap();
    assert!(ingress["before"].to_string().contains("22"), "the stray rule shows in `before`: {ingress}");
    assert!(!ingress["after"].to_string().contains("22"), "and not in `after`: {ingress}");
    let human = stack.run(&["plan"]).success();
    assert!(
        human.stdout.contains("- {protocol = \"tcp\", from_port = 22, to_port = 22, cidr = \"0.0.0.0/0\"}"),
        "{human}"
    );
    assert!(human.stdout.contains("+ environment = \"demo\""), "{human}");

    stack.apply();
    assert_eq!(stack.run(&["plan", "--detailed-exitcode"]).code, 0, "apply must correct all drift");
    let web_now = ec2.describe_security_groups().group_ids(&web).send().await.unwrap();
    assert!(
        web_now.security_groups()[0].ip_permissions().iter().all(|p| p.from_port() != Some(22)),
        "the stray SSH rule must be revoked"
    );
    stack.destroy();
}

#[tokio::test(flavor = "multi_thread")]
async fn spec_changes_update_in_place_or_replace_with_the_reason() {
    let mut stack = TestStack::network("change");
    stack.apply();
    // Close HTTPS, move a subnet (CIDR is immutable: replace), drop the private NACL.
    stack.edit("  { protocol = \"tcp\", ports = 443, cidr = \"0.0.0.0/0\" },\n", "");
    stack.edit("public_subnet = \"10.0.1.0/24\"", "public_subnet = \"10.0.2.0/24\"");
    let text = std::fs::read_to_string(&stack.spec).unwrap();
    let cut = text.find("[network_acls.private]").unwrap();
    stack.write(&text[..cut]);

    let plan = stack.plan();
    let mut got = actions(&plan);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("network_acl.private".to_string(), "delete".to_string()),
            ("network_acl.public".to_string(), "update".to_string()),
            ("route_table.public".to_string(), "update".to_string()),
            ("security_group_rules.lb".to_string(), "update".to_string()),
            ("subnet.public_b".to_string(), "replace".to_string()),
        ]
    );
    let subnet = change(&plan, "subnet.public_b");
    assert_eq!(subnet["reason"], "cidr_block forces replacement");
    assert_eq!(subnet["action"], "replace");
    assert_eq!(subnet["replace_order"], "delete_first");
    let human = stack.run(&["plan"]).success();
    assert!(human.stdout.contains("-/+ subnet.public_b"), "{human}");
    assert!(human.stdout.contains("must be replaced, destroy before create: cidr_block forces replacement"), "{human}");
    assert!(human.stdout.contains("Plan: 0 to add, 3 to change, 1 to replace, 1 to destroy."), "{human}");

    let applied = stack.apply();
    assert!(applied.stdout.contains("0 added, 3 changed, 1 replaced, 1 destroyed"), "{applied}");
    assert_eq!(stack.run(&["plan", "--detailed-exitcode"]).code, 0, "plan after apply must be empty");
    let ec2 = ec2().await;
    let moved = ec2
        .describe_subnets()
        .filters(owned(&stack.name))
        .filters(Filter::builder().name("cidr-block").values("10.0.2.0/24").build())
        .send()
        .await
        .unwrap();
    assert_eq!(moved.subnets().len(), 1, "the replacement subnet exists");
    let new_id = moved.subnets()[0].subnet_id().unwrap();
    let tables = ec2.describe_route_tables().filters(owned(&stack.name)).send().await.unwrap();
    let public =
        tables.route_tables().iter().find(|t| tag(t.tags(), "webscale:address") == Some("route_table.public")).unwrap();
    assert!(
        public.associations().iter().any(|a| a.subnet_id() == Some(new_id)),
        "the route table follows its subnet to the replacement"
    );
    assert_eq!(owned_counts(&stack.name).await[5], 1, "the dropped NACL is gone");
    stack.destroy();
    assert_eq!(owned_counts(&stack.name).await, [0; 6]);
}

/// Makes the next apply fail half way, as AWS can at any create: builds the stack's VPC alone (`--target`), then
/// puts a subnet of its own (no stack tags) where `subnet.public_b` goes, so that create meets
/// `InvalidSubnet.Conflict`. (A zone the region does not have no longer serves: the plan refuses it up front.)
/// Returns the subnet's id, for the test to delete it by hand.
async fn squat_public_b(stack: &TestStack) -> String {
    stack.run(&["apply", "--auto-approve", "--target", "vpc.main"]).success();
    let ec2 = ec2().await;
    let vpcs = ec2.describe_vpcs().filters(owned(&stack.name)).send().await.expect("DescribeVpcs");
    let vpc = vpcs.vpcs().first().and_then(|v| v.vpc_id()).expect("the stack's VPC").to_string();
    let made = ec2
        .create_subnet()
        .vpc_id(vpc)
        .cidr_block("10.0.1.0/25")
        .availability_zone("us-east-1b")
        .send()
        .await
        .expect("CreateSubnet");
    made.subnet().and_then(|s| s.subnet_id()).expect("a subnet id").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_apply_skips_dependents_keeps_going_elsewhere_and_a_rerun_finishes() {
    let stack = TestStack::network("failure");
    // A subnet made by hand where zone b's public subnet goes: its create fails, everything that needs it is skipped.
    let squatter = squat_public_b(&stack).await;
    let failed = stack.run(&["apply", "--auto-approve"]);
    assert_eq!(failed.code, 1, "a failed apply exits 1:\n{failed}");
    assert!(failed.stderr.contains("Apply failed"), "{failed}");
    assert!(failed.stderr.contains("failed   subnet.public_b (create)"), "{failed}");
    assert!(failed.stderr.contains("skipped  route_table.public (create)"), "{failed}");
    assert!(failed.stderr.contains("Run the same command again"), "{failed}");
    // Independent branches carried on.
    assert!(failed.stdout.contains("security_group_rules.db: Created"), "{failed}");
    assert!(failed.stdout.contains("subnet.public_a: Created"), "{failed}");

    ec2().await.delete_subnet().subnet_id(&squatter).send().await.expect("DeleteSubnet");
    let plan = stack.plan();
    // Only what failed or was skipped is left: the subnet and what needs it. Zone b's private subnet, zone a's NAT
    // gateway and its address were built.
    let left: BTreeSet<&str> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] == "create")
        .filter_map(|c| c["address"].as_str())
        .collect();
    assert!(left.contains("subnet.public_b") && left.contains("route_table.public"), "{left:?}");
    assert!(!left.contains("subnet.private_b") && !left.contains("subnet.public_a"), "{left:?}");
    assert_eq!(plan["summary"]["add"], 3, "{}: {left:?}", plan["summary"]);
    assert_eq!(plan["summary"]["unchanged"], 15);
    stack.apply();
    assert_eq!(stack.run(&["plan", "--detailed-exitcode"]).code, 0);
    assert_eq!(owned_counts(&stack.name).await, [1, 4, 1, 2, 3, 2], "nothing was created twice");
    stack.destroy();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_apply_is_found_and_finished_without_duplicates() {
    let stack = TestStack::network("resume");
    // What a crash right after the first creates leaves: a tagged VPC, a tagged but unattached gateway.
    let ec2 = ec2().await;
    let tags = |address: &str, kind: aws_sdk_ec2::types::ResourceType| {
        aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(kind)
            .tags(aws_sdk_ec2::types::Tag::builder().key("webscale:stack").value(&stack.name).build())
            .tags(aws_sdk_ec2::types::Tag::builder().key("webscale:address").value(address).build())
            .build()
    };
    ec2.create_vpc()
        .cidr_block("10.0.0.0/16")
        .tag_specifications(tags("vpc.main", aws_sdk_ec2::types::ResourceType::Vpc))
        .send()
        .await
        .unwrap();
    ec2.create_internet_gateway()
        .tag_specifications(tags("internet_gateway.main", aws_sdk_ec2::types::ResourceType::InternetGateway))
        .send()
        .await
        .unwrap();

    let plan = stack.plan();
    let vpc = change(&plan, "vpc.main");
    assert_eq!(vpc["action"], "update", "the VPC is found, not created again: {vpc}");
    let igw = change(&plan, "internet_gateway.main");
    assert_eq!(igw["action"], "update", "{igw}");
    assert!(igw["attributes"].to_string().contains("vpc"), "the gateway still needs attaching: {igw}");
    // Everything else of the network tier, its NAT gateway and address included.
    assert_eq!(plan["summary"]["add"], 16);

    stack.apply();
    assert_eq!(stack.run(&["plan", "--detailed-exitcode"]).code, 0);
    assert_eq!(owned_counts(&stack.name).await, [1, 4, 1, 2, 3, 2], "nothing was created twice");
    stack.destroy();
}

#[test]
fn apply_without_a_terminal_refuses_unless_auto_approved() {
    let stack = TestStack::new("approve");
    let refused = stack.run(&["apply"]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(refused.stderr.contains("--auto-approve"), "the error says how to proceed:\n{refused}");
    let n = reference_resources();
    assert!(refused.stdout.contains(&format!("Plan: {n} to add")), "the plan is shown first:\n{refused}");
    let still = stack.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(still.code, 2, "nothing was applied");
}

#[test]
fn a_bad_spec_fails_before_any_aws_call_naming_file_line_and_field() {
    let mut stack = TestStack::new("badspec");
    stack.edit("public_subnet = \"10.0.1.0/24\"", "public_subnet = \"10.1.0.0/24\"");
    stack.edit("ports = 5432, security_group = \"web\"", "ports = 5432, security_group = \"app\"");
    let text = std::fs::read_to_string(&stack.spec).unwrap();
    let line = text.lines().position(|l| l.contains("10.1.0.0/24")).unwrap() + 1;
    let column = text.lines().nth(line - 1).unwrap().find('"').unwrap() + 1;
    for cmd in ["validate", "plan", "apply"] {
        let run = stack.run(&[cmd]);
        assert_eq!(run.code, 1, "{run}");
        let spec = stack.spec.display().to_string();
        assert!(run.stderr.contains("2 problems"), "{run}");
        assert!(
            run.stderr.contains(&format!(
                "{spec}:{line}:{column}: network.zones.b.public_subnet: 10.1.0.0/24 is outside the VPC CIDR"
            )),
            "{run}"
        );
        assert!(
            run.stderr.contains("security_groups.db.ingress[0].security_group: no security group named \"app\""),
            "{run}"
        );
        assert!(!run.stderr.contains("panicked"), "{run}");
    }
    // A file that does not exist.
    let missing = webscale(&["validate", "-f", "/nonexistent/webscale.toml"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("cannot read stack file /nonexistent/webscale.toml"), "{missing}");
}

/// Drift the spec cannot even express: an IPv6 default route to the stack's internet gateway and an IPv6 NACL entry,
/// both added out of band. Each shows in the plan as drift to remove (the route's target in the spec's terms), apply
/// removes them, and the next plan is empty; the VPC's own local IPv6 route is AWS's and never shows.
#[tokio::test(flavor = "multi_thread")]
async fn out_of_band_ipv6_routes_and_acl_entries_show_as_drift_and_apply_removes_them() {
    let stack = TestStack::new("ipv6");
    stack.apply();
    let ec2 = ec2().await;
    let vpcs = ec2.describe_vpcs().filters(owned(&stack.name)).send().await.unwrap();
    let vpc_id = vpcs.vpcs()[0].vpc_id().unwrap();
    // AWS routes IPv6 only in a VPC that has an IPv6 block (which adds a local IPv6 route to every table).
    ec2.associate_vpc_cidr_block().vpc_id(vpc_id).amazon_provided_ipv6_cidr_block(true).send().await.unwrap();
    let igws = ec2.describe_internet_gateways().filters(owned(&stack.name)).send().await.unwrap();
    let igw_id = igws.internet_gateways()[0].internet_gateway_id().unwrap();
    let tables = ec2.describe_route_tables().filters(owned(&stack.name)).send().await.unwrap();
    let public_table = tables
        .route_tables()
        .iter()
        .find(|t| tag(t.tags(), "webscale:address") == Some("route_table.public"))
        .and_then(|t| t.route_table_id())
        .unwrap();
    ec2.create_route()
        .route_table_id(public_table)
        .destination_ipv6_cidr_block("::/0")
        .gateway_id(igw_id)
        .send()
        .await
        .unwrap();
    let acls = ec2.describe_network_acls().filters(owned(&stack.name)).send().await.unwrap();
    let public_acl = acls
        .network_acls()
        .iter()
        .find(|a| tag(a.tags(), "webscale:address") == Some("network_acl.public"))
        .and_then(|a| a.network_acl_id())
        .unwrap();
    ec2.create_network_acl_entry()
        .network_acl_id(public_acl)
        .rule_number(210)
        .protocol("6")
        .rule_action(aws_sdk_ec2::types::RuleAction::Allow)
        .egress(false)
        .ipv6_cidr_block("::/0")
        .port_range(aws_sdk_ec2::types::PortRange::builder().from(22).to(22).build())
        .send()
        .await
        .unwrap();

    let plan = stack.plan();
    let mut got = actions(&plan);
    got.sort();
    assert_eq!(
        got,
        vec![
            ("network_acl.public".to_string(), "update".to_string()),
            ("route_table.public".to_string(), "update".to_string()),
        ]
    );
    let attribute = |address: &str, name: &str| -> (String, String) {
        let attrs = change(&plan, address)["attributes"].as_array().unwrap();
        let a = attrs.iter().find(|a| a["name"] == name).unwrap_or_else(|| panic!("{address}: no {name} change"));
        (a["before"].to_string(), a["after"].to_string())
    };
    let (before, after) = attribute("route_table.public", "routes");
    assert!(
        before.contains("::/0") && !after.contains("::/0"),
        "the IPv6 route is drift to remove: {before} -> {after}"
    );
    let (before, after) = attribute("network_acl.public", "ingress");
    assert!(
        before.contains(r#""ipv6_cidr":"::/0""#) && !after.contains("::/0"),
        "the IPv6 entry is drift to remove: {before} -> {after}"
    );
    let human = stack.run(&["plan"]).success();
    assert!(human.stdout.contains(r#"- {destination = "::/0", target = internet_gateway.main}"#), "{human}");
    assert!(
        human.stdout.contains(
            r#"- {rule = 210, protocol = "tcp", from_port = 22, to_port = 22, ipv6_cidr = "::/0", action = "allow"}"#
        ),
        "{human}"
    );
    assert!(!human.stdout.contains(r#"cidr = """#), "no entry reads as an empty IPv4 block: {human}");

    stack.apply();
    let again = stack.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "apply must remove the IPv6 drift:\n{again}");
    let tables = ec2.describe_route_tables().route_table_ids(public_table).send().await.unwrap();
    let routes = tables.route_tables()[0].routes();
    assert!(
        routes.iter().all(|r| r.destination_ipv6_cidr_block() != Some("::/0")),
        "the IPv6 default route is deleted: {routes:?}"
    );
    assert!(
        routes.iter().any(|r| r.destination_cidr_block() == Some("0.0.0.0/0")),
        "the spec's IPv4 route stays: {routes:?}"
    );
    let acls = ec2.describe_network_acls().network_acl_ids(public_acl).send().await.unwrap();
    let entries = acls.network_acls()[0].entries();
    assert!(entries.iter().all(|e| e.rule_number() != Some(210)), "the IPv6 entry is deleted: {entries:?}");
    assert!(entries.iter().any(|e| e.rule_number() == Some(100) && e.egress() == Some(false)), "{entries:?}");
    stack.destroy();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_saved_plan_applies_as_reviewed_and_is_refused_once_stale() {
    let stack = TestStack::new("saved");
    let saved = stack.dir.path().join("reviewed.plan.json");
    let saved = saved.to_str().unwrap();
    let planned = stack.run(&["plan", "--out", saved]).success();
    let hint = format!("webscale apply -f {} --plan {saved}", stack.spec.display());
    assert!(planned.stderr.contains(&hint), "says how to apply it, as a command that works:\n{planned}");
    // Applying the reviewed plan needs no other approval, even without a terminal.
    let applied = stack.run(&["apply", "--plan", saved]).success();
    assert!(applied.stdout.contains(&format!("{} added", reference_resources())), "{applied}");

    // Review a change, then someone edits the rules in the console before the apply.
    let mut stack = stack;
    stack.edit("ports = 443, cidr = \"0.0.0.0/0\"", "ports = 8443, cidr = \"0.0.0.0/0\"");
    stack.run(&["plan", "--out", saved]).success();
    let ec2 = ec2().await;
    let lb = group_id(&ec2, &stack.name, "lb").await;
    open_ssh(&ec2, &lb).await;
    let refused = stack.run(&["apply", "--plan", saved]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(
        refused.stderr.contains("no longer matches: security_group_rules.lb would change differently now"),
        "{refused}"
    );
    let lb_now = ec2.describe_security_groups().group_ids(&lb).send().await.unwrap();
    assert!(
        lb_now.security_groups()[0].ip_permissions().iter().any(|p| p.from_port() == Some(443)),
        "nothing was applied from the stale plan"
    );
    // A plan saved for another stack is refused too.
    let other = TestStack::new("saved-other");
    let wrong = other.run(&["apply", "--plan", saved]);
    assert_eq!(wrong.code, 1, "{wrong}");
    assert!(wrong.stderr.contains("it was made for stack"), "{wrong}");
    stack.destroy();
}

/// What a pipeline reads from `apply --json` / `destroy --json`: one JSON document per line, the plan first and a
/// result line last, even when operations fail; without --auto-approve nothing is changed and the reason is on
/// stderr (a prompt cannot be answered inside a JSON stream).
#[tokio::test(flavor = "multi_thread")]
async fn the_json_stream_always_ends_with_a_result_line_and_never_prompts() {
    let stack = TestStack::new("json-stream");
    let lines = |run: &crate::support::Run| -> Vec<Value> {
        run.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{run}")))
            .collect()
    };

    let refused = stack.run(&["apply", "--json"]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(refused.stderr.contains("needs --auto-approve"), "{refused}");
    assert_eq!(owned_counts(&stack.name).await, [0; 6], "nothing changed without approval");

    let squatter = squat_public_b(&stack).await;
    let failed = stack.run(&["apply", "--json", "--auto-approve"]);
    assert_eq!(failed.code, 1, "{failed}");
    let events = lines(&failed);
    assert_eq!(events.first().map(|e| e["type"].clone()), Some(Value::from("plan")), "{failed}");
    let result = events.last().unwrap();
    assert_eq!(result["type"], "result", "{failed}");
    assert_eq!(result["ok"], false);
    let failures: Vec<&Value> =
        result["operations"].as_array().unwrap().iter().filter(|o| o["status"] == "failed").collect();
    assert!(failures.iter().any(|o| o["address"] == "subnet.public_b" && o["phase"] == "create"), "{result}");
    assert!(result["ids"]["vpc.main"].as_str().is_some_and(|id| id.starts_with("vpc-")), "{result}");
    assert!(events.iter().any(|e| e["type"] == "finished" && e.get("error").is_some()), "{failed}");
    ec2().await.delete_subnet().subnet_id(&squatter).send().await.expect("DeleteSubnet");

    let destroyed = stack.run(&["destroy", "--json", "--auto-approve"]);
    assert_eq!(destroyed.code, 0, "{destroyed}");
    let result = lines(&destroyed).pop().unwrap();
    assert_eq!((result["type"].as_str(), result["ok"].as_bool()), (Some("result"), Some(true)), "{destroyed}");
    assert!(result["summary"]["destroyed"].as_u64().unwrap() > 0, "{result}");
    assert_eq!(owned_counts(&stack.name).await, [0; 6]);
}

/// The holes a saved plan must not have: a missing file is an error even when nothing would change; a plan whose
/// changes were already applied is stale; a destroy can be reviewed too (`plan --destroy --out`), and the two kinds
/// of saved plan are never mixed up. Every hint is a command that works as printed.
#[tokio::test(flavor = "multi_thread")]
async fn saved_plans_are_always_checked_and_destroys_can_be_saved_too() {
    let stack = TestStack::new("saved-holes");
    let missing = stack.run(&["apply", "--plan", "/nonexistent/reviewed.json"]);
    assert_eq!(missing.code, 1, "{missing}");
    assert!(missing.stderr.contains("cannot read the saved plan /nonexistent/reviewed.json"), "{missing}");
    assert_eq!(owned_counts(&stack.name).await, [0; 6]);

    let saved = stack.dir.path().join("create.json");
    let saved = saved.to_str().unwrap();
    stack.run(&["plan", "--out", saved]).success();
    stack.run(&["apply", "--plan", saved]).success();
    let again = stack.run(&["apply", "--plan", saved]);
    assert_eq!(again.code, 1, "applying a reviewed plan twice is refused:\n{again}");
    assert!(again.stderr.contains("its changes were already applied"), "{again}");

    let teardown = stack.dir.path().join("destroy.json");
    let teardown = teardown.to_str().unwrap();
    let planned = stack.run(&["plan", "--destroy", "--out", teardown]).success();
    let hint = format!("webscale destroy -f {} --plan {teardown}", stack.spec.display());
    assert!(planned.stderr.contains(&hint), "{planned}");
    assert!(
        planned.stdout.contains(&format!("0 to add, 0 to change, 0 to replace, {} to destroy", reference_resources()))
    );
    let mixed = stack.run(&["apply", "--plan", teardown]);
    assert_eq!(mixed.code, 1, "{mixed}");
    assert!(mixed.stderr.contains("is a destroy plan"), "{mixed}");
    let wrong = stack.run(&["destroy", "--plan", saved]);
    assert_eq!(wrong.code, 1, "{wrong}");
    assert!(wrong.stderr.contains("is not a destroy plan"), "{wrong}");
    assert_eq!(owned_counts(&stack.name).await, [1, 4, 1, 2, 3, 2], "nothing was deleted by refused commands");
    // The hint, run as printed (through the test's environment), destroys exactly what was reviewed.
    let args: Vec<&str> = hint.split(' ').skip(1).collect();
    let destroyed = crate::support::webscale(&args).success();
    assert!(destroyed.stdout.contains(&format!("{} destroyed", reference_resources())), "{destroyed}");
    assert_eq!(owned_counts(&stack.name).await, [0; 6]);
}

/// A subnet someone added by hand to the stack's VPC would keep the VPC from being deleted. The destroy finds it
/// at plan time, names it, and stops before deleting anything (not after 15 minutes of DependencyViolation, with
/// half the stack gone); once it is removed, the same command finishes.
#[tokio::test(flavor = "multi_thread")]
async fn destroy_stops_before_deleting_anything_when_the_vpc_holds_what_the_stack_does_not_own() {
    let stack = TestStack::new("stranger");
    stack.apply();
    let ec2 = ec2().await;
    let vpc = ec2.describe_vpcs().filters(crate::support::owned(&stack.name)).send().await.unwrap();
    let vpc_id = vpc.vpcs()[0].vpc_id().unwrap().to_string();
    let hand = ec2.create_subnet().vpc_id(&vpc_id).cidr_block("10.0.99.0/24").send().await.unwrap();
    let hand_id = hand.subnet().unwrap().subnet_id().unwrap().to_string();

    let plan = stack.run(&["plan", "--destroy"]).success();
    assert!(plan.stdout.contains(&format!("# blocked by subnet {hand_id}, which the stack does not own")), "{plan}");
    let started = std::time::Instant::now();
    let refused = stack.run(&["destroy", "--auto-approve"]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "refused at once, not after retrying");
    assert!(refused.stderr.contains("destroy cannot complete"), "{refused}");
    assert!(refused.stderr.contains(&format!("vpc.main ({vpc_id}) holds subnet {hand_id}")), "{refused}");
    assert!(refused.stderr.contains("Nothing was changed"), "{refused}");
    assert_eq!(owned_counts(&stack.name).await, [1, 4, 1, 2, 3, 2], "nothing was deleted");

    ec2.delete_subnet().subnet_id(&hand_id).send().await.unwrap();
    stack.destroy();
    assert_eq!(owned_counts(&stack.name).await, [0; 6]);
}

/// One JSON vocabulary (format 2): every line of the `apply --json` stream parses and carries `format_version` 2;
/// durations are whole milliseconds; the result line speaks the plan's words (`add`, ...) next to format 1's
/// (`added`, ...) with the same numbers, and names each operation's step as the events do (`operation` == `phase`).
#[tokio::test(flavor = "multi_thread")]
async fn json_vocab_one_vocabulary_across_plan_events_and_result() {
    let stack = TestStack::new("json-vocab");
    let applied = stack.run(&["apply", "--json", "--auto-approve"]).success();
    let events: Vec<Value> = applied
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}\n{applied}")))
        .collect();
    assert!(!events.is_empty(), "{applied}");
    for e in &events {
        assert_eq!(e["format_version"], 2, "every line carries format_version 2: {e}");
    }
    assert_eq!(events[0]["type"], "plan", "{applied}");
    assert_eq!(events[0]["plan"]["format_version"], 2);
    let finished: Vec<&Value> = events.iter().filter(|e| e["type"] == "finished").collect();
    assert!(!finished.is_empty(), "{applied}");
    for e in &finished {
        assert!(e["elapsed_ms"].is_u64(), "elapsed_ms is a whole number of milliseconds: {e}");
        let s = e["elapsed_s"].as_f64().unwrap_or_else(|| panic!("elapsed_s is still a number: {e}"));
        assert_eq!((s * 1000.0).round() as u64, e["elapsed_ms"].as_u64().unwrap(), "the same figure: {e}");
        assert!(e["operation"].is_string(), "{e}");
    }

    let result = events.last().unwrap();
    assert_eq!((result["type"].as_str(), result["ok"].as_bool()), (Some("result"), Some(true)), "{applied}");
    let summary = &result["summary"];
    for (plan_word, past) in
        [("add", "added"), ("change", "changed"), ("replace", "replaced"), ("destroy", "destroyed")]
    {
        assert!(summary[plan_word].is_u64(), "{summary}");
        assert_eq!(summary[plan_word], summary[past], "{summary}");
    }
    assert_eq!(summary["add"], reference_resources(), "{summary}");
    assert_eq!(summary["add"], events[0]["plan"]["summary"]["add"], "the result counts as the plan did");
    let operations = result["operations"].as_array().unwrap();
    assert!(!operations.is_empty(), "{result}");
    for o in operations {
        assert!(o["operation"].is_string(), "{o}");
        assert_eq!(o["operation"], o["phase"], "{o}");
    }

    let destroyed = stack.run(&["destroy", "--json", "--auto-approve"]).success();
    let result: Value = serde_json::from_str(destroyed.stdout.lines().last().unwrap()).unwrap();
    assert_eq!((result["format_version"].as_u64(), result["ok"].as_bool()), (Some(2), Some(true)), "{destroyed}");
    assert_eq!(result["summary"]["destroy"], result["summary"]["destroyed"], "{result}");
    assert_eq!(result["summary"]["destroyed"], reference_resources(), "{result}");
    assert_eq!(owned_counts(&stack.name).await, [0; 6]);
}

/// A zone the region does not have (a spec taken to another region, a letter the region lacks) is found before
/// anything is created: the plan says it under the subnets, naming the zones the region has; apply refuses and
/// leaves nothing behind, as the SDK sees it.
#[tokio::test(flavor = "multi_thread")]
async fn a_zone_the_region_does_not_have_is_named_with_the_ones_it_has_before_anything_is_created() {
    let mut stack = TestStack::network("no-such-zone");
    stack.edit("availability_zone = \"b\"", "availability_zone = \"z\"");
    let ec2 = ec2().await;
    let zones = ec2.describe_availability_zones().send().await.expect("DescribeAvailabilityZones");
    let names: Vec<&str> = zones.availability_zones().iter().filter_map(|z| z.zone_name()).collect();
    assert!(names.contains(&"us-east-1a") && !names.contains(&"us-east-1z"), "{names:?}");

    let plan = stack.run(&["plan"]).success();
    for subnet in ["subnet.public_b", "subnet.private_b"] {
        let block = plan.stdout.split(&format!("  + {subnet} will be created")).nth(1).unwrap_or_default();
        let block = block.split("\n\n").next().unwrap_or_default();
        assert!(
            block.contains("# cannot be created: availability zone us-east-1z does not exist in us-east-1, whose zones are us-east-1a, ")
                && block.contains("set availability_zone in [network.zones.b] to one of them, or to its letter alone (\"a\", "),
            "{subnet}: {plan}"
        );
    }
    assert!(!plan.stdout.contains("subnet.public_a will be created\n        # cannot"), "zone a exists: {plan}");
    let json = stack.plan();
    let problems = json["changes"].as_array().unwrap().iter().filter(|c| c["problems"].is_array()).count();
    assert_eq!(problems, 2, "JSON carries the problems of both subnets in zone b");

    let apply = stack.run(&["apply", "--auto-approve"]);
    assert_eq!(apply.code, 1, "{apply}");
    assert!(
        apply.stderr.contains("AWS would refuse to create") && apply.stderr.contains("Nothing was changed"),
        "{apply}"
    );
    assert_eq!(owned_counts(&stack.name).await, [0; 6], "nothing was created");
}
