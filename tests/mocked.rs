//! Rules real AWS enforces and the emulator (moto) does not, checked against canned SDK responses.
//!
//! moto lets a security group be deleted while another group's rule still names it, and keeps a network ACL's
//! association after its subnet is gone; code that only works there is not done. So these tests put the EC2 client
//! on `aws-smithy-mocks` and answer every call from a fake EC2 ([`fake`]: what it enforces is listed there), state
//! included (a delete really removes, a rule really references), so the engine is checked end to end: the live
//! state is read through the kinds' own `read` (`plan::build`, as the CLI does), planned, and applied.
//!
//! The world a test starts from is written out by hand from the spec ([`worlds`]), never computed by the code
//! under test. Modules: security groups and network ACLs here; `replacement`: a create-first replacement whose
//! create AWS answers badly; `gateways`: internet gateways and route tables.

mod assets;
mod bucket;
mod certificate;
mod cloudfront;
mod fake;
mod gateways;
mod lambda;
mod logging;
mod rds;
mod replacement;
mod worlds;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_ec2::error::ErrorMetadata;
use aws_sdk_ec2::operation as op;
use aws_smithy_mocks::{MockResponseInterceptor, RuleMode, create_mock_http_client, mock};
use aws_smithy_types::retry::RetryConfig;
use webscale::apply::{self, Hook, Options, Phase, Report, Result_};
use webscale::aws::{Clients, Cloud, CloudError, RetryPolicy};
use webscale::plan::{self, Action, Mode, Plan};
use webscale::resources::Address;
use webscale::spec::{self, RegionChoice, Stack};

use fake::{Call, Entry, Fake, Peer, Rule};

const REGION: &str = "us-east-1";

/// The stack every test starts from. Two groups that reference each other (web may reach db, db accepts web),
/// four subnets, and a network ACL on the private tier.
const SPEC: &str = r#"
[stack]
name = "mocked"
region = "us-east-1"

[network]
cidr = "10.0.0.0/16"
internet_gateway = false

[network.zones.a]
availability_zone = "us-east-1a"
public_subnet = "10.0.0.0/24"
private_subnet = "10.0.10.0/24"

[network.zones.b]
availability_zone = "us-east-1b"
public_subnet = "10.0.1.0/24"
private_subnet = "10.0.11.0/24"

[security_groups.web]
description = "Web servers"
ingress = [{ protocol = "tcp", ports = 80, cidr = "0.0.0.0/0" }]
egress = [
  { protocol = "tcp", ports = 5432, security_group = "db" },
  { protocol = "tcp", ports = 443, cidr = "0.0.0.0/0" },
]

[security_groups.db]
description = "Database"
ingress = [
  { protocol = "tcp", ports = 5432, security_group = "web" },
  { protocol = "tcp", ports = 22, cidr = "10.0.0.0/16" },
]
egress = []

[network_acls.private]
tier = "private"
ingress = [{ rule = 100, protocol = "all", cidr = "10.0.0.0/16", action = "allow" }]
egress = [{ rule = 100, protocol = "all", cidr = "0.0.0.0/0", action = "allow" }]
"#;

/// SPEC with the internet gateway on, and the public subnets on a route table whose default route goes to it.
fn public_spec() -> String {
    SPEC.replace("internet_gateway = false", "internet_gateway = true")
        + r#"
[network.route_tables.public]
tier = "public"
routes = [{ destination = "0.0.0.0/0", target = "internet_gateway" }]
"#
}

// =====================================================================================================================
// Tests
// =====================================================================================================================

/// Destroy: every rule that names a group is revoked before that group is deleted (AWS refuses the delete
/// otherwise), even though web and db reference each other; everything ends deleted, each delete accepted first time.
#[tokio::test]
async fn destroy_revokes_rules_naming_a_group_before_deleting_it() {
    let aws = Fake::provisioned(SPEC);
    let cloud = aws.cloud(fast());

    let plan = destroy_plan(&cloud).await;
    assert_eq!(
        deletes(&plan),
        [
            "network_acl.private",
            "security_group.db",
            "security_group.web",
            "security_group_rules.db",
            "security_group_rules.web",
            "subnet.private_a",
            "subnet.private_b",
            "subnet.public_a",
            "subnet.public_b",
            "vpc.main",
        ],
        "the destroy plan covers what the kinds read"
    );
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    let calls = aws.calls();
    let revokes: Vec<&Call> = calls.iter().filter(|c| c.op.starts_with("RevokeSecurityGroup")).collect();
    assert!(
        revokes.iter().any(|r| r.on == "sg-db" && r.refs == ["sg-web"]),
        "db's ingress from web is revoked: {revokes:#?}"
    );
    assert!(
        revokes.iter().any(|r| r.on == "sg-web" && r.refs == ["sg-db"]),
        "web's egress to db is revoked: {revokes:#?}"
    );
    for group in ["sg-web", "sg-db"] {
        let deleted = aws.first_success("DeleteSecurityGroup", group).unwrap_or_else(|| panic!("{group} deleted"));
        for (i, revoke) in calls.iter().enumerate().filter(|(_, c)| c.op.starts_with("RevokeSecurityGroup")) {
            if revoke.refs.iter().any(|r| r == group) {
                assert!(i < deleted, "{} on {} (naming {group}) ran after {group} was deleted", revoke.op, revoke.on);
            }
        }
        assert_eq!(aws.count("DeleteSecurityGroup", group), 1, "{group}: deleted at the first attempt");
    }
    assert_no_errors(&aws);
    aws.with(|w| {
        assert!(w.groups.is_empty(), "no group left: {:?}", w.groups.keys());
        assert!(w.vpcs.is_empty(), "VPC deleted");
    });
}

/// ENIs left by a load balancer or Lambda take minutes to go; until then AWS answers DependencyViolation. The
/// delete is retried and succeeds on the third attempt.
#[tokio::test]
async fn destroy_retries_a_group_delete_while_its_network_interfaces_drain() {
    let aws = Fake::provisioned(SPEC);
    aws.with(|w| w.draining.insert("sg-web".into(), 2));
    let cloud = aws.cloud(fast());

    let plan = destroy_plan(&cloud).await;
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    assert_eq!(aws.count("DeleteSecurityGroup", "sg-web"), 3, "two DependencyViolation answers, then deleted");
    assert_eq!(aws.errors("DeleteSecurityGroup", "sg-web"), ["DependencyViolation", "DependencyViolation"]);
    aws.with(|w| {
        assert!(w.groups.is_empty(), "both groups deleted");
        assert!(w.vpcs.is_empty(), "VPC deleted after its groups");
    });
}

/// When the ENIs do not drain within `RetryPolicy.dependency`, the group's delete fails with AWS's code in the
/// message, the VPC (which cannot go while the group exists) is skipped and never attempted, and independent
/// work still finishes.
#[tokio::test]
async fn destroy_gives_up_on_a_stuck_group_and_skips_the_vpc() {
    let aws = Fake::provisioned(SPEC);
    aws.with(|w| w.draining.insert("sg-web".into(), usize::MAX));
    let cloud = aws.cloud(RetryPolicy { dependency: Duration::from_millis(200), ..fast() });

    let plan = destroy_plan(&cloud).await;
    let (report, events) = run(&cloud, &plan).await;

    assert!(report.failed());
    match outcome(&report, "security_group.web", Phase::Delete) {
        Result_::Failed { error } => {
            assert!(error.contains("DeleteSecurityGroup"), "names the call: {error}");
            assert!(error.contains("DependencyViolation"), "keeps AWS's error code: {error}");
            assert!(
                error.contains("Still in use by: eni-draining-sg-web (requested by amazon-elb: ELB app/other/123)"),
                "says what holds the group, so the operator can act: {error}"
            );
        }
        other => panic!("security_group.web delete should fail, got {other:?}"),
    }
    match outcome(&report, "vpc.main", Phase::Delete) {
        Result_::Skipped { because } => assert_eq!(because, "security_group.web (delete) failed"),
        other => panic!("vpc.main delete should be skipped, got {other:?}"),
    }
    assert_eq!(aws.count("DeleteVpc", "vpc-main"), 0, "the VPC delete is not attempted");
    assert!(!events.saw("vpc.main delete started"), "nor reported as started: {:?}", events.all());
    assert!(aws.count("DeleteSecurityGroup", "sg-web") >= 2, "retried before giving up");
    // Independent branches carry on.
    for address in ["security_group.db", "network_acl.private", "subnet.private_a", "subnet.public_b"] {
        assert_eq!(outcome(&report, address, Phase::Delete), &Result_::Done, "{address}");
    }
    aws.with(|w| {
        let left: Vec<&String> = w.groups.keys().collect();
        assert_eq!(left, ["sg-default", "sg-web"], "only the stuck group is left (and the VPC's default group)");
    });
}

/// Real AWS refuses to delete a network ACL that still has subnets (moto does not). The ACL's subnets go back to the
/// VPC's default ACL first, then the ACL is deleted at the first attempt.
#[tokio::test]
async fn destroy_hands_subnets_back_to_the_default_acl_before_deleting_the_acl() {
    let aws = Fake::provisioned(SPEC);
    let cloud = aws.cloud(fast());

    let plan = destroy_plan(&cloud).await;
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    let deleted = aws.first_success("DeleteNetworkAcl", "acl-private").expect("the ACL is deleted");
    for subnet in ["subnet-private-a", "subnet-private-b"] {
        let moved = aws
            .calls()
            .iter()
            .position(|c| c.op == "ReplaceNetworkAclAssociation" && c.on == subnet && c.error.is_none())
            .unwrap_or_else(|| panic!("{subnet} is handed back"));
        assert_eq!(aws.calls()[moved].refs, ["acl-default"], "{subnet} goes to the VPC's default ACL");
        assert!(moved < deleted, "{subnet} is handed back before DeleteNetworkAcl");
    }
    assert_eq!(aws.count("DeleteNetworkAcl", "acl-private"), 1, "accepted at the first attempt");
    assert_eq!(aws.count("ReplaceNetworkAclAssociation", "subnet-public-a"), 0, "other subnets are left alone");
    assert_no_errors(&aws);
}

/// The same rule on apply, when the ACL is dropped from the spec: its subnets stay and end on the default ACL
/// (a subnet always has one).
#[tokio::test]
async fn removing_an_acl_from_the_spec_leaves_its_subnets_on_the_default_acl() {
    let aws = Fake::provisioned(SPEC);
    let cloud = aws.cloud(fast());
    let without_acl = SPEC.split("[network_acls.private]").next().unwrap();

    let plan = apply_plan(&cloud, &stack(without_acl)).await;
    assert_eq!(changed(&plan), [("network_acl.private".to_string(), Action::Delete)]);
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    aws.with(|w| {
        assert!(!w.acls.contains_key("acl-private"), "ACL deleted");
        for subnet in ["subnet-private-a", "subnet-private-b"] {
            assert_eq!(w.acl_of(subnet).as_deref(), Some("acl-default"), "{subnet} is on the default ACL");
        }
    });
    assert_no_errors(&aws);
}

/// On real AWS a deleted subnet's ACL association is gone with it. Here the subnet disappears between the read and
/// the apply (someone deleted it while the plan waited for approval): the ACL delete must not try to move it, and
/// the subnet's own delete finds it gone, which counts as deleted.
#[tokio::test]
async fn acl_delete_ignores_a_subnet_that_is_already_gone() {
    let aws = Fake::provisioned(SPEC);
    let cloud = aws.cloud(fast());

    let plan = destroy_plan(&cloud).await;
    aws.with(|w| w.remove_subnet("subnet-private-b"));
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    let moves: Vec<String> =
        aws.calls().into_iter().filter(|c| c.op == "ReplaceNetworkAclAssociation").map(|c| c.on).collect();
    assert_eq!(moves, ["subnet-private-a"], "only the subnet that still exists is moved");
    assert_eq!(aws.count("DeleteNetworkAcl", "acl-private"), 1);
    assert_eq!(aws.errors("DeleteSubnet", "subnet-private-b"), ["InvalidSubnetID.NotFound"]);
    assert_eq!(outcome(&report, "subnet.private_b", Phase::Delete), &Result_::Done, "gone counts as deleted");
}

/// The engine's own way into that state: changing a subnet's CIDR replaces it delete-first, so when the ACL is
/// updated the old subnet (and, on real AWS, its association) no longer exists. The update moves the new subnet
/// onto the ACL and leaves the old one alone.
#[tokio::test]
async fn acl_update_after_a_subnet_replacement_moves_only_the_new_subnet() {
    let aws = Fake::provisioned(SPEC);
    let cloud = aws.cloud(fast());
    let new_cidr = SPEC.replace(r#"private_subnet = "10.0.10.0/24""#, r#"private_subnet = "10.0.20.0/24""#);

    let plan = apply_plan(&cloud, &stack(&new_cidr)).await;
    assert_eq!(
        changed(&plan),
        [
            ("subnet.private_a".to_string(), Action::Replace(webscale::resources::ReplaceOrder::DeleteFirst)),
            ("network_acl.private".to_string(), Action::Update),
        ]
    );
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    let new_subnet = aws.with(|w| w.subnet_with_cidr("10.0.20.0/24")).expect("the new subnet exists");
    let moves: Vec<Call> = aws.calls().into_iter().filter(|c| c.op == "ReplaceNetworkAclAssociation").collect();
    assert_eq!(moves.len(), 1, "one move: {moves:#?}");
    assert_eq!(moves[0].on, new_subnet, "the new subnet is moved");
    assert_eq!(moves[0].refs, ["acl-private"], "onto the ACL");
    aws.with(|w| {
        assert_eq!(w.subnets_of("acl-private"), [new_subnet.clone(), "subnet-private-b".to_string()]);
        assert!(!w.subnets.contains_key("subnet-private-a"), "the old subnet is deleted");
    });
    assert_no_errors(&aws);
}

/// A rule that appeared between the read and the apply (a concurrent run, or an earlier request that timed out on
/// our side after AWS applied it): AuthorizeSecurityGroupIngress answers InvalidPermission.Duplicate, which means
/// the goal is reached.
#[tokio::test]
async fn authorizing_a_rule_that_already_exists_counts_as_done() {
    let aws = Fake::provisioned(SPEC);
    let cloud = aws.cloud(fast());
    let https = SPEC.replace(
        r#"ingress = [{ protocol = "tcp", ports = 80, cidr = "0.0.0.0/0" }]"#,
        r#"ingress = [
  { protocol = "tcp", ports = 80, cidr = "0.0.0.0/0" },
  { protocol = "tcp", ports = 443, cidr = "0.0.0.0/0" },
]"#,
    );

    let plan = apply_plan(&cloud, &stack(&https)).await;
    assert_eq!(changed(&plan), [("security_group_rules.web".to_string(), Action::Update)]);
    aws.with(|w| w.group("sg-web").ingress.push(Rule::tcp(443, Peer::Cidr("0.0.0.0/0".into()))));
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    assert_eq!(aws.errors("AuthorizeSecurityGroupIngress", "sg-web"), ["InvalidPermission.Duplicate"]);
    aws.with(|w| assert_eq!(w.group("sg-web").ingress.iter().filter(|r| r.ports == Some((443, 443))).count(), 1));
}

/// The same, with a second missing rule in the same request. AWS rejects the whole request on the duplicate and
/// adds neither rule, so "Duplicate means done" holds only for the rule that exists: the other must still be added.
#[tokio::test]
async fn a_duplicate_in_a_batch_does_not_drop_the_other_new_rules() {
    let aws = Fake::provisioned(SPEC);
    let cloud = aws.cloud(fast());
    let two_more = SPEC.replace(
        r#"ingress = [{ protocol = "tcp", ports = 80, cidr = "0.0.0.0/0" }]"#,
        r#"ingress = [
  { protocol = "tcp", ports = 80, cidr = "0.0.0.0/0" },
  { protocol = "tcp", ports = 443, cidr = "0.0.0.0/0" },
  { protocol = "tcp", ports = 8443, cidr = "0.0.0.0/0" },
]"#,
    );

    let plan = apply_plan(&cloud, &stack(&two_more)).await;
    aws.with(|w| w.group("sg-web").ingress.push(Rule::tcp(443, Peer::Cidr("0.0.0.0/0".into()))));
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    aws.with(|w| {
        let ports: BTreeSet<i32> = w.group("sg-web").ingress.iter().filter_map(|r| r.ports.map(|p| p.0)).collect();
        assert_eq!(ports, BTreeSet::from([80, 443, 8443]), "every desired rule is in place");
    });
}

/// Two destroys racing (a CI job retried while the first still runs): the other one revoked every rule and deleted
/// both groups after this one read them. Revoking on a deleted group and deleting it again answer
/// InvalidGroup.NotFound, which counts as deleted; the destroy completes.
#[tokio::test]
async fn deleting_a_group_that_is_already_gone_counts_as_deleted() {
    let aws = Fake::provisioned(SPEC);
    let cloud = aws.cloud(fast());

    let plan = destroy_plan(&cloud).await;
    aws.with(|w| w.groups.retain(|_, g| g.name == "default"));
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    for group in ["sg-web", "sg-db"] {
        assert_eq!(aws.errors("DeleteSecurityGroup", group), ["InvalidGroup.NotFound"], "{group}");
    }
    assert!(
        aws.calls()
            .iter()
            .any(|c| c.op.starts_with("RevokeSecurityGroup") && c.error.as_deref() == Some("InvalidGroup.NotFound"))
    );
    aws.with(|w| assert!(w.vpcs.is_empty(), "the VPC still goes"));
}

/// The spec drops group web, and with it db's rules (access from web, and SSH, which a teammate already removed in
/// the console while the plan waited for approval). db's two stale rules go in one revoke; AWS fails the whole
/// request with InvalidPermission.NotFound for the SSH rule and revokes nothing. db's rule naming web must still be
/// revoked, or web can never be deleted.
#[tokio::test]
async fn a_rule_already_revoked_does_not_keep_the_others_in_place() {
    let aws = Fake::provisioned(SPEC);
    let cloud = aws.cloud(RetryPolicy { dependency: Duration::from_millis(100), ..fast() });
    let (before_web, rest) = SPEC.split_once("[security_groups.web]").unwrap();
    let from_db = rest.split_once("[security_groups.db]").unwrap().1;
    let db_closed = format!("{before_web}[security_groups.db]{from_db}").replace(
        r#"ingress = [
  { protocol = "tcp", ports = 5432, security_group = "web" },
  { protocol = "tcp", ports = 22, cidr = "10.0.0.0/16" },
]"#,
        "ingress = []",
    );

    let plan = apply_plan(&cloud, &stack(&db_closed)).await;
    assert_eq!(
        changed(&plan),
        [
            ("security_group_rules.db".to_string(), Action::Update),
            ("security_group.web".to_string(), Action::Delete),
            ("security_group_rules.web".to_string(), Action::Delete),
        ]
    );
    aws.with(|w| w.group("sg-db").ingress.retain(|r| r.ports != Some((22, 22))));
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    aws.with(|w| {
        assert!(w.group("sg-db").ingress.is_empty(), "db accepts nothing: {:?}", w.group("sg-db").ingress);
        assert!(!w.groups.contains_key("sg-web"), "web is deleted");
    });
}

/// Moving a `deny` from rule 90 to 80 (say, to put it ahead of a new allow at 85): the entry at 80 is created before
/// the one at 90 is deleted. Deleting first would leave a moment in which nothing denies and the allow at 100
/// lets the traffic in. A changed entry at an unchanged number is replaced in place, so numbers never collide.
#[tokio::test]
async fn a_moved_acl_entry_is_created_at_its_new_number_before_the_old_one_is_deleted() {
    let with_deny_at = |number: i32, egress_cidr: &str| {
        SPEC.replace(
            r#"ingress = [{ rule = 100, protocol = "all", cidr = "10.0.0.0/16", action = "allow" }]"#,
            &format!(
                r#"ingress = [
  {{ rule = {number}, protocol = "tcp", ports = 22, cidr = "10.0.5.0/24", action = "deny" }},
  {{ rule = 100, protocol = "all", cidr = "10.0.0.0/16", action = "allow" }},
]"#
            ),
        )
        .replace(
            r#"egress = [{ rule = 100, protocol = "all", cidr = "0.0.0.0/0", action = "allow" }]"#,
            &format!(r#"egress = [{{ rule = 100, protocol = "all", cidr = "{egress_cidr}", action = "allow" }}]"#),
        )
    };
    // SPEC's world, plus the deny at 90 (a protocol number, as AWS reports ACL entries).
    let aws = Fake::provisioned(SPEC);
    aws.with(|w| {
        let deny = Entry {
            number: 90,
            egress: false,
            protocol: "6".into(),
            ports: Some((22, 22)),
            cidr: "10.0.5.0/24".into(),
            allow: false,
        };
        w.acls.get_mut("acl-private").unwrap().entries.push(deny);
    });
    let cloud = aws.cloud(fast());
    let before = apply_plan(&cloud, &stack(&with_deny_at(90, "0.0.0.0/0"))).await;
    assert!(!before.has_changes(), "the world is what the spec with the deny at 90 asks for");

    let plan = apply_plan(&cloud, &stack(&with_deny_at(80, "10.0.0.0/8"))).await;
    assert_eq!(changed(&plan), [("network_acl.private".to_string(), Action::Update)]);
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    let calls = aws.calls();
    let at = |op: &str, entry: (bool, i32)| {
        calls
            .iter()
            .position(|c| c.op == op && c.on == "acl-private" && c.entry == Some(entry))
            .unwrap_or_else(|| panic!("no {op} of {entry:?}: {calls:#?}"))
    };
    assert!(
        at("CreateNetworkAclEntry", (false, 80)) < at("DeleteNetworkAclEntry", (false, 90)),
        "the deny is in place at 80 before it leaves 90: {calls:#?}"
    );
    at("ReplaceNetworkAclEntry", (true, 100));
    let entry_calls: Vec<(&str, Option<(bool, i32)>)> =
        calls.iter().filter(|c| c.entry.is_some()).map(|c| (c.op, c.entry)).collect();
    assert_eq!(entry_calls.len(), 3, "one call per changed entry, nothing for the unchanged allow: {entry_calls:?}");
    assert_no_errors(&aws);
    aws.with(|w| {
        // As AWS holds them: protocol numbers (6 is tcp, -1 every protocol), ports only for tcp.
        type Row = (bool, i32, String, Option<(i32, i32)>, String, bool);
        let mut entries: Vec<Row> = w.acls["acl-private"]
            .entries
            .iter()
            .map(|e| (e.egress, e.number, e.protocol.clone(), e.ports, e.cidr.clone(), e.allow))
            .collect();
        entries.sort();
        let row = |egress, number, protocol: &str, ports, cidr: &str, allow| {
            (egress, number, protocol.to_string(), ports, cidr.to_string(), allow)
        };
        assert_eq!(
            entries,
            [
                row(false, 80, "6", Some((22, 22)), "10.0.5.0/24", false),
                row(false, 100, "-1", None, "10.0.0.0/16", true),
                row(true, 100, "-1", None, "10.0.0.0/8", true),
            ]
        );
    });
    assert!(!apply_plan(&cloud, &stack(&with_deny_at(80, "10.0.0.0/8"))).await.has_changes(), "nothing left to do");
}

// =====================================================================================================================
// Harness: the stack, the cloud, planning and applying
// =====================================================================================================================

/// Reading live state costs one tag-filtered describe per kind and page (plus the VPC's DNS attribute, which
/// DescribeVpcs does not carry), however many resources there are: the read budget that keeps plans fast on big
/// stacks. Kinds that need the same response (groups and their rule sets) share one call. The fake pages every
/// listing at [`fake::PAGE`] (2) items, so a kind with N resources costs ceil(N/2) calls, at least one: the four
/// subnets take two pages, everything else fits one (an empty listing is one call too). The plan being empty also
/// proves every page was read: a subnet on a page left unread would be planned as a create.
#[tokio::test]
async fn a_plan_reads_each_kind_with_one_describe_call_per_page() {
    let aws = Fake::provisioned(SPEC);
    let cloud = aws.cloud(fast());
    let plan = apply_plan(&cloud, &stack(SPEC)).await;
    assert!(!plan.has_changes(), "the fake holds exactly what the spec asks for: {:#?}", changed(&plan));
    let mut ops = aws.with(|w| w.ops.clone());
    ops.sort();
    assert_eq!(
        ops,
        vec![
            // No Elastic IP (nat = "none"): one call; DescribeAddresses has no pages.
            "describe_addresses",
            // No web instance: one (empty) page, and no DescribeVolumes (asked only for instances found).
            "describe_instances",
            // No gateway: one (empty) page.
            "describe_internet_gateways",
            // No NAT gateway: one (empty) page.
            "describe_nat_gateways",
            // acl-private (the default ACL carries no tags).
            "describe_network_acls",
            // No route table of the stack's (the main one carries no tags).
            "describe_route_tables",
            // web and db, with their rule sets: one page for two kinds (one shared response).
            "describe_security_groups",
            // Four subnets: two pages.
            "describe_subnets",
            "describe_subnets",
            "describe_vpc_attribute",
            "describe_vpcs",
        ]
    );
}

/// Ctrl-C before anything started: no operation runs, each is reported as not started, and the report fails
/// (exit 1), so a pipeline never mistakes an interrupted apply for a finished one.
#[tokio::test]
async fn an_interrupted_apply_starts_nothing_new_and_says_so() {
    let aws = Fake::provisioned(SPEC);
    let cloud = aws.cloud(fast());
    let plan = destroy_plan(&cloud).await;
    let options = Options::default();
    options.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let report = apply::apply(&cloud, &stack(SPEC), &plan, &options, &Events::default()).await.unwrap();
    assert!(report.failed());
    assert!(
        report
            .operations
            .iter()
            .all(|o| matches!(&o.result, Result_::Failed { error } if error.contains("interrupted"))
                || matches!(o.result, Result_::Skipped { .. })),
        "{:#?}",
        report.operations
    );
    let writes: Vec<_> = aws.with(|w| w.ops.clone()).into_iter().filter(|op| !op.starts_with("describe")).collect();
    assert!(writes.is_empty(), "nothing may change after an interrupt: {writes:?}");
}

/// Right after a create, AWS may not see the new VPC yet (`InvalidVpcID.NotFound` on the attach). The attach is
/// retried against the gateway already made: one CreateInternetGateway, never a second gateway.
#[tokio::test]
async fn a_step_after_a_create_is_retried_without_creating_twice() {
    use aws_sdk_ec2::Client as Ec2;
    use webscale::resources::{Kind, Op, internet_gateway::InternetGateway};
    let create = mock!(Ec2::create_internet_gateway).then_output(|| {
        op::create_internet_gateway::CreateInternetGatewayOutput::builder()
            .internet_gateway(aws_sdk_ec2::types::InternetGateway::builder().internet_gateway_id("igw-new").build())
            .build()
    });
    let attach = mock!(Ec2::attach_internet_gateway)
        .sequence()
        .error(|| {
            op::attach_internet_gateway::AttachInternetGatewayError::generic(
                ErrorMetadata::builder()
                    .code("InvalidVpcID.NotFound")
                    .message("The vpc ID 'vpc-new' does not exist")
                    .build(),
            )
        })
        .times(2)
        .output(|| op::attach_internet_gateway::AttachInternetGatewayOutput::builder().build())
        .build();
    let interceptor =
        MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny).with_rule(&create).with_rule(&attach);
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::Config::builder()
            .behavior_version_latest()
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build(),
    );
    let cloud = Cloud::from_clients("mocked", REGION, Clients { ec2, ..unused_clients() }, fast());
    let address = Address::new("internet_gateway", "main");
    let desired = serde_json::json!({ "vpc": "vpc-new", "tags": { "webscale:stack": "mocked" } });
    let op = Op {
        address: &address,
        region: REGION,
        id: None,
        desired: desired.as_object().cloned(),
        live: None,
        changed: &[],
        token: "ws-test".into(),
        digests: Default::default(),
        skip_final_snapshot: false,
        wait: false,
        stack: None,
        progress: None,
    };
    let created = InternetGateway.create(&cloud, &op).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created.id, "igw-new");
    assert_eq!(create.num_calls(), 1, "the gateway is created once");
    assert_eq!(attach.num_calls(), 3, "the attach waits for AWS to see the VPC");
}

/// Retry pauses of milliseconds, so a test that waits on DependencyViolation takes a fraction of a second.
pub(crate) fn fast() -> RetryPolicy {
    RetryPolicy {
        consistency: Duration::from_millis(300),
        dependency: Duration::from_millis(300),
        interval: Duration::from_millis(2),
    }
}

fn stack(text: &str) -> Stack {
    spec::parse(Path::new("mocked.toml"), text, &RegionChoice::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// What `webscale destroy` plans: live state read through every kind, diffed against nothing. The worlds hold
/// nothing the stack does not own inside what it deletes, so nothing blocks the destroy.
async fn destroy_plan(cloud: &Cloud) -> Plan {
    let plan = plan::build(cloud, &stack(SPEC), Mode::Destroy).await.unwrap_or_else(|e| panic!("{e}"));
    let blocked: Vec<_> = plan.changes.iter().filter(|c| !c.blocked_by.is_empty()).collect();
    assert!(blocked.is_empty(), "nothing foreign blocks the destroy: {blocked:#?}");
    plan
}

/// What `webscale apply` plans for `stack`.
async fn apply_plan(cloud: &Cloud, stack: &Stack) -> Plan {
    plan::build(cloud, stack, Mode::Apply).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Applies `plan`, bounded in time so an engine that retries forever fails the test instead of hanging it.
async fn run(cloud: &Cloud, plan: &Plan) -> (Report, Events) {
    let events = Events::default();
    let options = Options { parallelism: 10, heartbeat: Duration::from_secs(3600), ..Options::default() };
    let stack = stack(SPEC);
    let report = tokio::time::timeout(Duration::from_secs(20), apply::apply(cloud, &stack, plan, &options, &events))
        .await
        .expect("apply finished within 20 s")
        .unwrap_or_else(|e| panic!("{e}"));
    (report, events)
}

fn deletes(plan: &Plan) -> Vec<String> {
    let mut out: Vec<String> =
        plan.changes.iter().filter(|c| c.action == Action::Delete).map(|c| c.address.to_string()).collect();
    out.sort();
    out
}

fn changed(plan: &Plan) -> Vec<(String, Action)> {
    plan.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| (c.address.to_string(), c.action)).collect()
}

fn outcome<'a>(report: &'a Report, address: &str, phase: Phase) -> &'a Result_ {
    &report
        .operations
        .iter()
        .find(|o| o.address.as_str() == address && o.phase == phase)
        .unwrap_or_else(|| panic!("no {} of {address} in the report: {report:#?}", phase.name()))
        .result
}

fn assert_all_done(report: &Report) {
    let bad: Vec<_> = report.operations.iter().filter(|o| o.result != Result_::Done).collect();
    assert!(bad.is_empty(), "every operation should succeed: {bad:#?}");
}

/// No call was refused: nothing was attempted in an order real AWS rejects.
fn assert_no_errors(aws: &Fake) {
    let refused: Vec<Call> = aws.calls().into_iter().filter(|c| c.error.is_some()).collect();
    assert!(refused.is_empty(), "calls AWS refused: {refused:#?}");
}

/// A hook that keeps what the engine reported, as "ADDRESS PHASE started|done|failed: ...".
#[derive(Default)]
struct Events(Mutex<Vec<String>>);

impl Events {
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    fn saw(&self, event: &str) -> bool {
        self.all().iter().any(|e| e == event)
    }
}

impl Hook for Events {
    fn started(&self, address: &Address, phase: Phase) {
        self.0.lock().unwrap().push(format!("{address} {} started", phase.name()));
    }

    fn still_running(&self, _: &Address, _: Phase, _: Duration, _: Option<&str>) {}

    fn finished(&self, address: &Address, phase: Phase, _: Duration, result: Result<Option<&str>, &CloudError>) {
        let how = match result {
            Ok(_) => "done".to_string(),
            Err(e) => format!("failed: {e}"),
        };
        self.0.lock().unwrap().push(format!("{address} {} {how}", phase.name()));
    }
}

/// The clients the network tier never uses: pointed at a closed loopback port, no retries, and an HTTP client
/// that never leaves the process, so a stray call fails at once instead of reaching anything.
pub(crate) fn unused_clients() -> Clients {
    let config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new("test", "test", None, None, "test")))
        .retry_config(RetryConfig::disabled())
        .http_client(unserved())
        .build();
    Clients::new(&config, REGION)
}

/// An HTTP client that answers every call the way an endpoint without the service does (501 NotImplemented, in
/// the XML body the query and REST-XML services read, S3's own, and the header the JSON ones read): a plan then reads kinds
/// of those services as unserved, which is only a warning while the spec declares none of them. Never leaves the
/// process.
fn unserved() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_runtime_api::client::http::{
        HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
    };
    use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
    #[derive(Debug)]
    struct Unserved;
    impl HttpConnector for Unserved {
        fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
            // S3 reads its errors unwrapped (`<Error>` at the root); every other XML service inside `<ErrorResponse>`.
            let s3 = request.headers().get("x-amz-user-agent").is_some_and(|ua| ua.contains("api/s3"));
            // The JSON protocols (Lambda's REST-JSON, CloudWatch Logs' awsJson) parse the body as JSON.
            let json = request.headers().get("x-amz-user-agent").is_some_and(|ua| ua.contains("api/lambda"))
                || request.headers().get("content-type").is_some_and(|c| c.starts_with("application/x-amz-json"));
            let body = if json {
                r#"{"__type":"NotImplemented","message":"not served in this test"}"#
            } else if s3 {
                "<Error><Code>NotImplemented</Code><Message>not served in this test</Message></Error>"
            } else {
                "<ErrorResponse><Error><Type>Sender</Type><Code>NotImplemented</Code>\
                 <Message>not served in this test</Message></Error><RequestId>0</RequestId></ErrorResponse>"
            };
            let mut response = aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(501).expect("a valid status"),
                aws_smithy_types::body::SdkBody::from(body),
            );
            response.headers_mut().insert("content-type", "text/xml");
            response.headers_mut().insert("x-amzn-errortype", "NotImplemented");
            HttpConnectorFuture::ready(Ok(response))
        }
    }
    http_client_fn(|_, _| SharedHttpConnector::new(Unserved))
}
