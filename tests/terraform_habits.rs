//! What Terraform users reach for: `show` (what the stack owns), `--target` (a partial plan), `--replace` (a
//! replacement nothing forces) and `import` (adopting a resource made by hand). The real binary against the
//! emulator, each test with its own stack, every result checked through our own SDK client.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{TestStack, ec2, group_id, owned, tag};

/// Every resource the stack owns, by address, with its id, as our own client sees it (a group's rule set carries
/// the group's id).
async fn sdk_view(ec2: &aws_sdk_ec2::Client, stack: &str) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    let mut add = |tags: &[aws_sdk_ec2::types::Tag], id: Option<&str>| {
        let address = tag(tags, "webscale:address").expect("an address tag").to_string();
        if let Some(name) = address.strip_prefix("security_group.") {
            ids.insert(format!("security_group_rules.{name}"), id.unwrap().to_string());
        }
        ids.insert(address, id.unwrap().to_string());
    };
    let vpcs = ec2.describe_vpcs().filters(owned(stack)).send().await.unwrap();
    vpcs.vpcs().iter().for_each(|v| add(v.tags(), v.vpc_id()));
    let subnets = ec2.describe_subnets().filters(owned(stack)).send().await.unwrap();
    subnets.subnets().iter().for_each(|s| add(s.tags(), s.subnet_id()));
    let igws = ec2.describe_internet_gateways().filters(owned(stack)).send().await.unwrap();
    igws.internet_gateways().iter().for_each(|g| add(g.tags(), g.internet_gateway_id()));
    let tables = ec2.describe_route_tables().filters(owned(stack)).send().await.unwrap();
    tables.route_tables().iter().for_each(|t| add(t.tags(), t.route_table_id()));
    let groups = ec2.describe_security_groups().filters(owned(stack)).send().await.unwrap();
    groups.security_groups().iter().for_each(|g| add(g.tags(), g.group_id()));
    let nats = ec2.describe_nat_gateways().filter(owned(stack)).send().await.unwrap();
    // moto ignores the tag filter of DescribeNatGateways: keep the stack's own.
    nats.nat_gateways()
        .iter()
        .filter(|g| tag(g.tags(), "webscale:stack") == Some(stack))
        .filter(|g| g.state().is_some_and(|s| s.as_str() != "deleted"))
        .for_each(|g| add(g.tags(), g.nat_gateway_id()));
    let eips = ec2.describe_addresses().filters(owned(stack)).send().await.unwrap();
    eips.addresses().iter().for_each(|a| add(a.tags(), a.allocation_id()));
    let acls = ec2.describe_network_acls().filters(owned(stack)).send().await.unwrap();
    acls.network_acls().iter().for_each(|a| add(a.tags(), a.network_acl_id()));
    ids
}

fn show_json(stack: &TestStack) -> Vec<Value> {
    let run = stack.run(&["show", "--json"]).success();
    let v: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("show --json is not JSON ({e}):\n{run}"));
    v.as_array().unwrap_or_else(|| panic!("show --json is not an array:\n{run}")).clone()
}

fn entry<'a>(shown: &'a [Value], address: &str) -> &'a Value {
    shown.iter().find(|r| r["address"] == address).unwrap_or_else(|| panic!("show lists no {address}: {shown:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn show_lists_every_resource_with_the_ids_the_sdk_sees_and_marks_what_the_spec_no_longer_declares() {
    let mut stack = TestStack::network("show");
    let nothing = stack.run(&["show"]).success();
    assert!(nothing.stdout.contains(&format!("Stack {} owns nothing in us-east-1", stack.name)), "{nothing}");
    assert!(nothing.stdout.contains("do not exist yet"), "{nothing}");
    assert_eq!(show_json(&stack), Vec::<Value>::new());

    stack.apply();
    let ec2 = ec2().await;
    let sdk = sdk_view(&ec2, &stack.name).await;
    assert_eq!(sdk.len(), crate::support::declared(&stack), "{sdk:?}");

    let shown = show_json(&stack);
    let listed: BTreeMap<String, String> = shown
        .iter()
        .map(|r| (r["address"].as_str().unwrap().to_string(), r["id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(listed, sdk, "show lists exactly what the SDK sees, with the same ids");
    for r in &shown {
        assert_eq!(r["region"], "us-east-1", "{r}");
        assert_eq!(r["state"], "ready", "{r}");
        assert_eq!(r["in_spec"], true, "{r}");
        assert!(r.get("stray").is_none(), "{r}");
    }
    // Dependency order: the VPC first.
    assert_eq!(shown[0]["address"], "vpc.main");

    let table = stack.run(&["show"]).success();
    let vpc = &sdk["vpc.main"];
    assert!(table.stdout.contains(&format!("Stack {} in us-east-1", stack.name)), "{table}");
    let header = table.stdout.lines().find(|l| l.contains("ADDRESS")).unwrap_or_else(|| panic!("no header:\n{table}"));
    let row = table.stdout.lines().find(|l| l.contains(vpc.as_str())).unwrap_or_else(|| panic!("no {vpc}:\n{table}"));
    assert!(row.trim_start().starts_with("vpc.main"), "{table}");
    // Aligned: every column starts where its heading does.
    assert_eq!(header.find("ID"), row.find(vpc.as_str()), "{table}");
    assert_eq!(header.find("STATE"), row.find("ready"), "{table}");

    // A subnet with the stack tag but no address tag (made by hand), and a network ACL the spec drops.
    let hand = ec2
        .create_subnet()
        .vpc_id(vpc)
        .cidr_block("10.0.99.0/24")
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Subnet)
                .tags(aws_sdk_ec2::types::Tag::builder().key("webscale:stack").value(&stack.name).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let hand = hand.subnet().unwrap().subnet_id().unwrap().to_string();
    let text = std::fs::read_to_string(&stack.spec).unwrap();
    let cut = text.find("[network_acls.private]").expect("the template has a private ACL");
    stack.write(&text[..cut]);

    let shown = show_json(&stack);
    assert_eq!(shown.len(), sdk.len() + 1, "{shown:?}");
    let acl = entry(&shown, "network_acl.private");
    assert_eq!((&acl["id"], &acl["in_spec"]), (&Value::from(sdk["network_acl.private"].clone()), &Value::Bool(false)));
    let stray = shown.iter().find(|r| r["id"] == hand.as_str()).unwrap_or_else(|| panic!("no {hand}: {shown:?}"));
    assert_eq!((&stray["in_spec"], &stray["stray"]), (&Value::Bool(false), &Value::Bool(true)), "{stray}");
    assert!(stray["address"].as_str().unwrap().starts_with("subnet.stray_"), "{stray}");
    let table = stack.run(&["show"]).success();
    let line = |needle: &str| table.stdout.lines().find(|l| l.contains(needle)).unwrap_or_default().to_string();
    assert!(line("network_acl.private").contains("# no longer in the spec"), "{table}");
    assert!(line(&hand).contains("# stray"), "{table}");

    stack.destroy();
    assert!(sdk_view(&ec2, &stack.name).await.is_empty(), "destroy removes the stray and the dropped ACL too");
}

#[tokio::test(flavor = "multi_thread")]
async fn target_plans_and_applies_only_the_subnet_and_its_vpc_and_says_the_plan_is_partial() {
    let stack = TestStack::new("target");
    let ec2 = ec2().await;

    let plan = stack.run(&["plan", "--target", "subnet.public_a"]).success();
    assert!(plan.stderr.contains("resource targeting is in effect: the plan is partial"), "{plan}");
    assert!(plan.stdout.contains("+ vpc.main") && plan.stdout.contains("+ subnet.public_a"), "{plan}");
    assert!(plan.stdout.contains("Plan: 2 to add, 0 to change, 0 to replace, 0 to destroy."), "{plan}");
    for other in ["subnet.public_b", "internet_gateway.main", "security_group.web", "route_table.public"] {
        assert!(!plan.stdout.contains(other), "{other} is not targeted:\n{plan}");
    }
    let json = stack.run(&["plan", "--json", "--target", "subnet.public_a"]).success();
    let json: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["summary"]["add"], 2, "{json}");
    assert_eq!(json["summary"]["unchanged"], 0, "{json}");
    assert_eq!(json["changes"].as_array().unwrap().len(), 2, "{json}");
    assert!(json["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("partial")), "{json}");

    // A misspelt target is an error naming what was meant; nothing is planned.
    let typo = stack.run(&["plan", "--target", "subnet.publc_a"]);
    assert_eq!(typo.code, 1, "{typo}");
    assert!(typo.stderr.contains("--target subnet.publc_a: no such resource"), "{typo}");
    assert!(typo.stderr.contains("did you mean") && typo.stderr.contains("subnet.public_a"), "{typo}");

    let applied = stack.run(&["apply", "--auto-approve", "--target", "subnet.public_a"]).success();
    assert!(applied.stderr.contains("partial"), "{applied}");
    assert!(applied.stdout.contains("2 added"), "{applied}");
    let vpcs = ec2.describe_vpcs().filters(owned(&stack.name)).send().await.unwrap();
    assert_eq!(vpcs.vpcs().len(), 1);
    let vpc = vpcs.vpcs()[0].vpc_id().unwrap();
    let subnets = ec2.describe_subnets().filters(owned(&stack.name)).send().await.unwrap();
    let subnets: Vec<_> = subnets.subnets().iter().map(|s| (tag(s.tags(), "webscale:address"), s.vpc_id())).collect();
    assert_eq!(subnets, vec![(Some("subnet.public_a"), Some(vpc))]);
    let view = sdk_view(&ec2, &stack.name).await;
    assert_eq!(view.keys().collect::<Vec<_>>(), vec!["subnet.public_a", "vpc.main"], "nothing else was created");

    // The full plan now has the rest to add; a targeted destroy takes the subnet (and nothing refers to it yet).
    let n = crate::support::reference_resources();
    let full = stack.run(&["plan"]).success();
    assert!(full.stdout.contains(&format!("Plan: {} to add, 0 to change", n - 2)), "{full}");
    let gone = stack.run(&["destroy", "--auto-approve", "--target", "subnet.public_a"]).success();
    assert!(gone.stdout.contains("1 destroyed"), "{gone}");
    let view = sdk_view(&ec2, &stack.name).await;
    assert_eq!(view.keys().collect::<Vec<_>>(), vec!["vpc.main"], "only the target was destroyed");
    let again = stack.run(&["destroy", "--auto-approve", "--target", "subnet.public_a"]).success();
    assert!(again.stdout.contains("Nothing to destroy"), "{again}");
    stack.destroy();
    assert!(sdk_view(&ec2, &stack.name).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn replace_recreates_the_web_group_create_first_and_its_rules_follow() {
    let stack = TestStack::new("forcereplace");
    stack.apply();
    let ec2 = ec2().await;
    let old = group_id(&ec2, &stack.name, "web").await;

    let unknown = stack.run(&["plan", "--replace", "security_group.webb"]);
    assert_eq!(unknown.code, 1, "{unknown}");
    assert!(unknown.stderr.contains("--replace security_group.webb: no such resource"), "{unknown}");
    assert!(unknown.stderr.contains("security_group.web"), "{unknown}");
    let on_destroy = stack.run(&["destroy", "--auto-approve", "--replace", "security_group.web"]);
    assert_eq!(on_destroy.code, 1, "{on_destroy}");
    assert!(on_destroy.stderr.contains("a destroy replaces nothing"), "{on_destroy}");

    let plan = stack.run(&["plan", "--replace", "security_group.web"]).success();
    assert!(plan.stdout.contains("+/- security_group.web"), "create-first:\n{plan}");
    assert!(plan.stdout.contains("replacement requested with --replace"), "{plan}");
    // The rule sets naming the group, and the two web instances in it, follow in place.
    assert!(plan.stdout.contains("Plan: 0 to add, 4 to change, 2 to replace, 0 to destroy."), "{plan}");
    let json = stack.run(&["plan", "--json", "--replace", "security_group.web"]).success();
    let json: Value = serde_json::from_str(&json.stdout).unwrap();
    let web = json["changes"].as_array().unwrap().iter().find(|c| c["address"] == "security_group.web").unwrap();
    assert_eq!((&web["action"], &web["replace_order"]), (&Value::from("replace"), &Value::from("create_first")));
    assert_eq!(web["reason"], "replacement requested with --replace");

    let applied = stack.run(&["apply", "--auto-approve", "--replace", "security_group.web"]).success();
    let at = |needle: &str| applied.stdout.find(needle).unwrap_or_else(|| panic!("no {needle:?} in:\n{applied}"));
    assert!(at("security_group.web: Created") < at("security_group.web: Destroyed"), "{applied}");
    assert!(at("security_group_rules.db: Updated") < at("security_group.web: Destroyed"), "{applied}");

    let new = group_id(&ec2, &stack.name, "web").await;
    assert_ne!(new, old);
    let groups = ec2.describe_security_groups().filters(owned(&stack.name)).send().await.unwrap();
    let group = |name: &str| {
        groups
            .security_groups()
            .iter()
            .find(|g| tag(g.tags(), "webscale:address") == Some(&format!("security_group.{name}")))
            .unwrap()
    };
    let named = |perms: &[aws_sdk_ec2::types::IpPermission]| -> Vec<String> {
        perms.iter().flat_map(|p| p.user_id_group_pairs()).filter_map(|g| g.group_id()).map(str::to_string).collect()
    };
    assert_eq!(named(group("db").ip_permissions()), vec![new.clone()], "db's ingress names the new group");
    assert_eq!(named(group("lb").ip_permissions_egress()), vec![new.clone()], "lb's egress names the new group");
    assert_eq!(named(group("web").ip_permissions()), vec![group("lb").group_id().unwrap().to_string()]);
    let web_groups =
        groups.security_groups().iter().filter(|g| tag(g.tags(), "webscale:address") == Some("security_group.web"));
    assert_eq!(web_groups.count(), 1, "the old group is deleted");
    assert_eq!(stack.run(&["plan", "--detailed-exitcode"]).code, 0, "nothing left to do");
    stack.destroy();
}

/// A VPC made by hand (the spec's CIDR), untagged, and a subnet in it.
async fn hand_made(ec2: &aws_sdk_ec2::Client, cidr: &str) -> (String, String) {
    let vpc = ec2.create_vpc().cidr_block(cidr).send().await.unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let subnet =
        ec2.create_subnet().vpc_id(&vpc).cidr_block(cidr.replace(".0.0/16", ".200.0/24")).send().await.unwrap();
    (vpc, subnet.subnet().unwrap().subnet_id().unwrap().to_string())
}

async fn delete_hand_made(ec2: &aws_sdk_ec2::Client, (vpc, subnet): &(String, String)) {
    let _ = ec2.delete_subnet().subnet_id(subnet).send().await;
    let _ = ec2.delete_vpc().vpc_id(vpc).send().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn import_adopts_a_hand_made_vpc_then_apply_builds_the_rest_inside_it_and_destroy_deletes_it() {
    let stack = TestStack::new("import");
    let ec2 = ec2().await;
    let vpc = ec2.create_vpc().cidr_block("10.0.0.0/16").send().await.unwrap();
    let vpc = vpc.vpc().unwrap().vpc_id().unwrap().to_string();

    let imported = stack.run(&["import", "vpc.main", &vpc]).success();
    assert!(imported.stdout.contains(&format!("Imported {vpc} as vpc.main")), "{imported}");
    // What the next apply changes on it: the spec's tags (and DNS hostnames), in place.
    assert!(imported.stdout.contains(&format!("~ vpc.main ({vpc}) will be updated in place")), "{imported}");
    assert!(imported.stdout.contains("tags"), "{imported}");
    assert!(!imported.stdout.contains("subnet."), "only the imported resource is shown:\n{imported}");
    let described = ec2.describe_vpcs().vpc_ids(&vpc).send().await.unwrap();
    let tags = described.vpcs()[0].tags();
    assert_eq!(
        (tag(tags, "webscale:stack"), tag(tags, "webscale:address")),
        (Some(stack.name.as_str()), Some("vpc.main"))
    );

    // Importing it again, or another VPC at the same address, is refused: something live already claims it.
    let again = stack.run(&["import", "vpc.main", &vpc]);
    assert_eq!(again.code, 1, "{again}");
    assert!(again.stderr.contains(&format!("{vpc} already is vpc.main of stack {}", stack.name)), "{again}");
    let (other, other_subnet) = hand_made(&ec2, "10.0.0.0/16").await;
    let twice = stack.run(&["import", "vpc.main", &other]);
    assert_eq!(twice.code, 1, "{twice}");
    assert!(twice.stderr.contains(&format!("vpc.main already exists ({vpc}")), "{twice}");
    delete_hand_made(&ec2, &(other, other_subnet)).await;

    stack.apply();
    let vpcs = ec2.describe_vpcs().filters(owned(&stack.name)).send().await.unwrap();
    let ids: Vec<_> = vpcs.vpcs().iter().filter_map(|v| v.vpc_id()).collect();
    assert_eq!(ids, vec![vpc.as_str()], "no second VPC: the imported one is the stack's");
    let subnets = ec2.describe_subnets().filters(owned(&stack.name)).send().await.unwrap();
    assert_eq!(subnets.subnets().len(), 4);
    assert!(subnets.subnets().iter().all(|s| s.vpc_id() == Some(vpc.as_str())), "every subnet is in the imported VPC");
    let groups = ec2.describe_security_groups().filters(owned(&stack.name)).send().await.unwrap();
    assert!(groups.security_groups().iter().all(|g| g.vpc_id() == Some(vpc.as_str())));
    assert_eq!(stack.run(&["plan", "--detailed-exitcode"]).code, 0, "nothing left to do");

    stack.destroy();
    let gone = ec2.describe_vpcs().vpc_ids(&vpc).send().await;
    assert!(gone.map(|v| v.vpcs().is_empty()).unwrap_or(true), "destroy deletes the imported VPC");
}

#[tokio::test(flavor = "multi_thread")]
async fn import_refuses_a_wrong_kind_id_an_unknown_id_an_undeclared_address_and_a_rule_set() {
    let stack = TestStack::new("importno");
    let ec2 = ec2().await;
    let made = hand_made(&ec2, "10.0.0.0/16").await;
    let (vpc, subnet) = &made;

    let wrong = stack.run(&["import", "vpc.main", subnet]);
    assert_eq!(wrong.code, 1, "{wrong}");
    assert!(wrong.stderr.contains(&format!("{subnet} is not a VPC id: VPC ids start with vpc-")), "{wrong}");
    let wrong = stack.run(&["import", "subnet.public_a", vpc]);
    assert_eq!(wrong.code, 1, "{wrong}");
    assert!(wrong.stderr.contains(&format!("{vpc} is not a subnet id")), "{wrong}");

    let missing = stack.run(&["import", "vpc.main", "vpc-0123456789abcdef0"]);
    assert_eq!(missing.code, 1, "{missing}");
    assert!(missing.stderr.contains("there is no VPC vpc-0123456789abcdef0 in us-east-1"), "{missing}");

    let undeclared = stack.run(&["import", "vpc.mian", vpc]);
    assert_eq!(undeclared.code, 1, "{undeclared}");
    assert!(undeclared.stderr.contains("vpc.mian is not declared"), "{undeclared}");
    assert!(undeclared.stderr.contains("did you mean vpc.main?"), "{undeclared}");

    let rules = stack.run(&["import", "security_group_rules.web", "sg-0123456789abcdef0"]);
    assert_eq!(rules.code, 1, "{rules}");
    assert!(rules.stderr.contains("cannot be imported on its own"), "{rules}");
    assert!(rules.stderr.contains("security_group.NAME"), "{rules}");

    // Nothing was tagged.
    let described = ec2.describe_subnets().subnet_ids(subnet).send().await.unwrap();
    assert_eq!(tag(described.subnets()[0].tags(), "webscale:stack"), None);
    let described = ec2.describe_vpcs().vpc_ids(vpc).send().await.unwrap();
    assert_eq!(tag(described.vpcs()[0].tags(), "webscale:stack"), None);
    assert!(sdk_view(&ec2, &stack.name).await.is_empty());
    delete_hand_made(&ec2, &made).await;
}
