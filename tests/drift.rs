//! Drift, told apart (`webscale::plan::drift`): a change made outside webscale shows as such in the plan (text and
//! JSON), a spec edit does not, and a plan after apply stays empty although every resource carries the record of what
//! was applied.

use aws_sdk_ec2::types::{AttributeBooleanValue, Tag};
use serde_json::Value;

use crate::support::{TestStack, ec2, owned, tag};

/// The attribute changes of `address` in a JSON plan.
fn attributes<'a>(plan: &'a Value, address: &str) -> &'a Vec<Value> {
    let change = plan["changes"].as_array().unwrap().iter().find(|c| c["address"] == address);
    change.unwrap_or_else(|| panic!("no {address} in {plan}"))["attributes"].as_array().unwrap()
}

fn attribute<'a>(plan: &'a Value, address: &str, name: &str) -> &'a Value {
    let found = attributes(plan, address).iter().find(|a| a["name"] == name);
    found.unwrap_or_else(|| panic!("no {name} on {address} in {plan}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_change_made_by_hand_is_told_apart_from_a_spec_edit() {
    let mut stack = TestStack::network("drift");
    stack.apply();
    let ec2 = ec2().await;
    let vpc = ec2.describe_vpcs().filters(owned(&stack.name)).send().await.unwrap().vpcs()[0].clone();
    let vpc_id = vpc.vpc_id().unwrap().to_string();
    assert!(
        tag(vpc.tags(), webscale::plan::drift::TAG_APPLIED).is_some_and(|r| r.starts_with("v1:")),
        "the create call records what was applied: {:?}",
        vpc.tags()
    );
    let quiet = stack.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(quiet.code, 0, "the record is bookkeeping, never a change:\n{quiet}");

    // By hand: a tag added, DNS hostnames turned off.
    ec2.create_tags().resources(&vpc_id).tags(Tag::builder().key("owner").value("bob").build()).send().await.unwrap();
    ec2.modify_vpc_attribute()
        .vpc_id(&vpc_id)
        .enable_dns_hostnames(AttributeBooleanValue::builder().value(false).build())
        .send()
        .await
        .unwrap();
    let plan = stack.plan();
    for name in ["tags", "dns_hostnames"] {
        assert_eq!(attribute(&plan, "vpc.main", name)["changed_outside"], true, "{name}: {plan}");
    }
    let text = stack.run(&["plan"]).success().stdout;
    assert!(text.contains("changed outside webscale since its last apply"), "the change says why:\n{text}");
    assert!(text.contains("# changed outside webscale"), "each attribute says so:\n{text}");

    // A spec edit of the same resource: the hand-made tag is still drift, the new spec tag is not.
    stack.edit("environment = \"demo\"", "environment = \"staging\"");
    stack.edit("dns_hostnames = true", "dns_hostnames = false");
    let plan = stack.plan();
    assert!(attribute(&plan, "vpc.main", "tags").get("changed_outside").is_none(), "the spec changed the tags: {plan}");
    assert!(
        attributes(&plan, "vpc.main").iter().all(|a| a["name"] != "dns_hostnames"),
        "the spec now agrees with the hand-made change: {plan}"
    );
    let subnet = attribute(&plan, "subnet.public_a", "tags");
    assert!(subnet.get("changed_outside").is_none(), "a spec edit is not drift: {plan}");

    // Applied, the record follows the spec: a plan is empty again, and drift made after it is told apart again.
    stack.apply();
    let quiet = stack.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(quiet.code, 0, "{quiet}");
    ec2.create_tags().resources(&vpc_id).tags(Tag::builder().key("owner").value("eve").build()).send().await.unwrap();
    let plan = stack.plan();
    assert_eq!(attribute(&plan, "vpc.main", "tags")["changed_outside"], true, "{plan}");
    stack.destroy();
}
