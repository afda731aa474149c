//! What counts as the stack's: the stack tag. A resource that carries it but lost its address tag is still the
//! stack's, so the plan says so and deletes it rather than letting it silently block the VPC's deletion.

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};

use crate::support::{TestStack, ec2, owned};

#[tokio::test(flavor = "multi_thread")]
async fn a_resource_with_the_stack_tag_but_no_address_is_planned_for_deletion_and_destroy_completes() {
    let stack = TestStack::new("stray");
    stack.apply();
    let ec2 = ec2().await;
    let vpc = ec2.describe_vpcs().filters(owned(&stack.name)).send().await.unwrap();
    let vpc_id = vpc.vpcs()[0].vpc_id().unwrap();
    let stray = ec2
        .create_route_table()
        .vpc_id(vpc_id)
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::RouteTable)
                .tags(Tag::builder().key("webscale:stack").value(&stack.name).build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    let stray_id = stray.route_table().unwrap().route_table_id().unwrap().to_string();

    let plan = stack.plan();
    let changes: Vec<&serde_json::Value> =
        plan["changes"].as_array().unwrap().iter().filter(|c| c["action"] != "no_op").collect();
    assert_eq!(changes.len(), 1, "{plan:#}");
    assert_eq!(changes[0]["action"], "delete");
    assert_eq!(changes[0]["id"], stray_id.as_str());
    assert!(changes[0]["reason"].as_str().unwrap().contains("no valid webscale:address tag"), "{:#}", changes[0]);

    stack.destroy();
    let left = ec2.describe_route_tables().filters(owned(&stack.name)).send().await.unwrap();
    assert!(left.route_tables().is_empty(), "destroy removes the stray table too");
    assert!(ec2.describe_vpcs().filters(owned(&stack.name)).send().await.unwrap().vpcs().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_left_to_other_tools_are_neither_diffed_nor_removed() {
    let mut stack = TestStack::new("ignoretags");
    stack.apply();
    let ec2 = ec2().await;
    let vpc = ec2.describe_vpcs().filters(owned(&stack.name)).send().await.unwrap();
    let vpc_id = vpc.vpcs()[0].vpc_id().unwrap().to_string();
    // An auto-tagger adds its tags.
    ec2.create_tags()
        .resources(&vpc_id)
        .tags(Tag::builder().key("CreatedBy").value("arn:aws:iam::123:user/alice").build())
        .tags(Tag::builder().key("cost:center").value("42").build())
        .send()
        .await
        .unwrap();
    let drift = stack.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(drift.code, 2, "by default the stack owns the whole tag set:\n{drift}");
    assert!(drift.stdout.contains("- CreatedBy"), "{drift}");

    stack.edit("region = \"us-east-1\"\n", "region = \"us-east-1\"\nignore_tags = [\"CreatedBy\", \"cost:*\"]\n");
    let quiet = stack.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(quiet.code, 0, "ignored tags are not drift:\n{quiet}");
    // A real change elsewhere on the same resource leaves the ignored tags alone.
    stack.edit("environment = \"demo\"", "environment = \"prod\"");
    stack.apply();
    let tags = ec2.describe_vpcs().vpc_ids(&vpc_id).send().await.unwrap().vpcs()[0].tags().to_vec();
    let has = |k: &str, v: &str| tags.iter().any(|t| t.key() == Some(k) && t.value() == Some(v));
    assert!(has("CreatedBy", "arn:aws:iam::123:user/alice") && has("cost:center", "42"), "{tags:?}");
    assert!(has("environment", "prod"), "{tags:?}");
    stack.destroy();
}

#[test]
fn a_plan_in_the_wrong_region_warns_that_the_stack_lives_elsewhere() {
    let stack = TestStack::network("region");
    // The reference template names its zones by letter: the same file plans in any region.
    let text = std::fs::read_to_string(&stack.spec).unwrap();
    assert!(text.contains("availability_zone = \"a\""), "the template is portable");
    stack.apply();
    let elsewhere = stack.run(&["plan", "--region", "us-west-2"]).success();
    let n = crate::support::declared(&stack);
    assert!(elsewhere.stdout.contains(&format!("Plan: {n} to add")), "{elsewhere}");
    // The regions named: us-east-1 (LocalStack also names the regions it aliases to it), never us-west-2.
    let warning = |run: &crate::support::Run| {
        // Other warnings may come first (LocalStack: services it does not serve).
        let w = run
            .stderr
            .lines()
            .find(|l| l.starts_with("warning:") && l.contains(" but exists in "))
            .unwrap_or_default()
            .to_string();
        let (head, regions) = w.split_once(" but exists in ").unwrap_or_default();
        let regions = regions.split(". ").next().unwrap_or_default().to_string();
        (head.to_string(), regions)
    };
    let (head, regions) = warning(&elsewhere);
    assert_eq!(head, format!("warning: stack {} has nothing in us-west-2", stack.name), "{elsewhere}");
    assert!(regions.split(", ").any(|r| r == "us-east-1"), "{elsewhere}");
    assert!(!regions.split(", ").any(|r| r == "us-west-2"), "{elsewhere}");
    // A destroy that finds nothing because the stack lives elsewhere is a mix-up: exit 1, nothing changed.
    let nothing = stack.run(&["destroy", "--auto-approve", "--region", "us-west-2"]);
    assert_eq!(nothing.code, 1, "{nothing}");
    assert!(nothing.stderr.contains("nothing to destroy in us-west-2"), "{nothing}");
    assert!(warning(&nothing).1.split(", ").any(|r| r == "us-east-1"), "{nothing}");
    // In its own region there is nothing to warn about.
    let home = stack.run(&["plan"]).success();
    assert!(!home.stderr.contains("exists in"), "{home}");
    stack.destroy();
}
