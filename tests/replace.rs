//! Replacing the VPC itself (its CIDR cannot change in place) replaces everything in it, in an order real AWS
//! accepts: every dependent is deleted before the old VPC, created after the new one.

use crate::support::{TestStack, ec2, owned, tag};

#[tokio::test(flavor = "multi_thread")]
async fn a_new_vpc_cidr_replaces_the_whole_network_in_an_order_aws_accepts() {
    let mut stack = TestStack::new("vpccidr");
    stack.apply();
    let ec2 = ec2().await;
    let old = ec2.describe_vpcs().filters(owned(&stack.name)).send().await.unwrap();
    let old_id = old.vpcs()[0].vpc_id().unwrap().to_string();

    let text = std::fs::read_to_string(&stack.spec).unwrap().replace("\"10.0.", "\"10.1.");
    stack.write(&text);
    let plan = stack.run(&["plan"]).success();
    assert!(plan.stdout.contains("-/+ vpc.main"), "{plan}");
    assert!(plan.stdout.contains("Plan: 0 to add, 0 to change, 16 to replace, 0 to destroy."), "{plan}");
    // Groups are normally replaced create-first; inside a VPC that goes first they cannot be.
    assert!(plan.stdout.contains("-/+ security_group.web"), "{plan}");
    assert!(plan.stdout.contains("-/+ internet_gateway.main"), "{plan}");

    let applied = stack.apply();
    assert!(applied.stdout.contains("16 replaced"), "{applied}");
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
