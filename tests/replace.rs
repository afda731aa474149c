//! Replacing the VPC itself (its CIDR cannot change in place) replaces everything in it, in an order real AWS
//! accepts: every dependent is deleted before the old VPC, created after the new one.

use crate::support::{TestStack, ec2, owned, tag};

#[tokio::test(flavor = "multi_thread")]
async fn a_new_vpc_cidr_replaces_the_whole_network_in_an_order_aws_accepts() {
    // Without NAT: moto keeps a deleted NAT gateway's Elastic IP associated, so the replacement gateway could not
    // take it (AWS releases the association once the gateway is deleted, which the delete waits for).
    let mut stack = TestStack::network("vpccidr");
    stack.edit("nat = \"single\"", "nat = \"none\"");
    stack.apply();
    let ec2 = ec2().await;
    let old = ec2.describe_vpcs().filters(owned(&stack.name)).send().await.unwrap();
    let old_id = old.vpcs()[0].vpc_id().unwrap().to_string();

    let text = std::fs::read_to_string(&stack.spec).unwrap().replace("\"10.0.", "\"10.1.");
    stack.write(&text);
    let plan = stack.run(&["plan"]).success();
    assert!(plan.stdout.contains("-/+ vpc.main"), "{plan}");
    let n = crate::support::declared(&stack);
    assert!(plan.stdout.contains(&format!("Plan: 0 to add, 0 to change, {n} to replace, 0 to destroy.")), "{plan}");
    // Groups are normally replaced create-first; inside a VPC that goes first they cannot be.
    assert!(plan.stdout.contains("-/+ security_group.web"), "{plan}");
    assert!(plan.stdout.contains("-/+ internet_gateway.main"), "{plan}");

    let applied = stack.apply();
    assert!(applied.stdout.contains(&format!("{n} replaced")), "{applied}");
    assert_eq!(stack.run(&["plan", "--detailed-exitcode"]).code, 0, "plan after the replacement must be empty");
    let now = ec2.describe_vpcs().filters(owned(&stack.name)).send().await.unwrap();
    assert_eq!(now.vpcs().len(), 1, "exactly one VPC: the old one is gone");
    assert_eq!(now.vpcs()[0].cidr_block(), Some("10.1.0.0/16"));
    assert_ne!(now.vpcs()[0].vpc_id(), Some(old_id.as_str()));
    let igw = ec2.describe_internet_gateways().filters(owned(&stack.name)).send().await.unwrap();
    assert_eq!(igw.internet_gateways().len(), 1);
    assert_eq!(igw.internet_gateways()[0].attachments()[0].vpc_id(), now.vpcs()[0].vpc_id());
    let subnets = ec2.describe_subnets().filters(owned(&stack.name)).send().await.unwrap();
    assert!(subnets.subnets().iter().all(|s| s.vpc_id() == now.vpcs()[0].vpc_id()));
    assert!(subnets.subnets().iter().all(|s| tag(s.tags(), "webscale:stack") == Some(stack.name.as_str())));
    stack.destroy();
}

/// A security group's description cannot change in place: the group is replaced create-first, so the rules of
/// the other groups are repointed to the new group before the old one is deleted, and traffic always has a group
/// to match. Checked through our own client: the new group has web's rules, the load balancer's egress and the
/// database's ingress name it, and the old group is gone.
#[tokio::test(flavor = "multi_thread")]
async fn a_create_first_replacement_moves_every_rule_to_the_new_group_before_the_old_one_goes() {
    let mut stack = TestStack::new("sgreplace");
    stack.apply();
    let ec2 = ec2().await;
    let old = crate::support::group_id(&ec2, &stack.name, "web").await;

    stack.edit("Web servers: HTTP from the load balancer only", "Web servers (v2): HTTP from the load balancer");
    let plan = stack.run(&["plan"]).success();
    assert!(plan.stdout.contains("+/- security_group.web"), "create-first replacement:\n{plan}");
    let applied = stack.apply();
    // Order: the new group exists before the old one is deleted.
    let at = |needle: &str| applied.stdout.find(needle).unwrap_or_else(|| panic!("no {needle:?} in:\n{applied}"));
    assert!(at("security_group.web: Created") < at("security_group.web: Destroyed"), "{applied}");
    assert!(at("security_group_rules.lb: Updated") < at("security_group.web: Destroyed"), "{applied}");

    let groups = ec2.describe_security_groups().filters(owned(&stack.name)).send().await.unwrap();
    let web: Vec<_> = groups
        .security_groups()
        .iter()
        .filter(|g| tag(g.tags(), "webscale:address") == Some("security_group.web"))
        .collect();
    assert_eq!(web.len(), 1, "exactly one web group: the old one is deleted");
    let new = web[0].group_id().unwrap();
    assert_ne!(new, old);
    assert_eq!(web[0].description(), Some("Web servers (v2): HTTP from the load balancer"));
    assert_eq!(web[0].tags().iter().filter(|t| t.key() == Some("webscale:stack")).count(), 1);
    let names = |perms: &[aws_sdk_ec2::types::IpPermission]| -> Vec<String> {
        perms.iter().flat_map(|p| p.user_id_group_pairs()).filter_map(|g| g.group_id()).map(str::to_string).collect()
    };
    let group = |name: &str| {
        groups
            .security_groups()
            .iter()
            .find(|g| tag(g.tags(), "webscale:address") == Some(&format!("security_group.{name}")))
            .unwrap()
    };
    assert_eq!(names(group("lb").ip_permissions_egress()), vec![new.to_string()], "lb egress names the new group");
    assert_eq!(names(group("db").ip_permissions()), vec![new.to_string()], "db ingress names the new group");
    assert_eq!(names(web[0].ip_permissions()), vec![group("lb").group_id().unwrap().to_string()], "web's own rules");
    let gone = ec2.describe_security_groups().group_ids(&old).send().await;
    assert!(gone.map(|g| g.security_groups().is_empty()).unwrap_or(true), "the old group {old} is deleted");
    assert_eq!(stack.run(&["plan", "--detailed-exitcode"]).code, 0, "nothing left to do");
    stack.destroy();
}
