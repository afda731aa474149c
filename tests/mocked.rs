//! Rules real AWS enforces and the emulator (moto) does not, checked against canned SDK responses.
//!
//! moto lets a security group be deleted while another group's rule still names it, and keeps a network ACL's
//! association after its subnet is gone; code that only works there is not done. So these tests put the EC2 client
//! on `aws-smithy-mocks` and answer every call from [`World`]: a few dozen lines of EC2 as real AWS behaves, state
//! included (a delete really removes, a rule really references), so the engine is checked end to end: the live
//! state is read through the kinds' own `read` (`plan::build`, as the CLI does), planned, and applied.
//!
//! What the fake enforces, as AWS does (each handler says so where it does it):
//! - DeleteSecurityGroup: `DependencyViolation` while any other group's rule references the group (and while ENIs
//!   drain, when a test asks for it); `InvalidGroup.NotFound` once it is gone.
//! - Authorize/Revoke: one request is all or nothing. Revoking a rule that is not there fails the whole request
//!   with `InvalidPermission.NotFound` and revokes nothing (documented for non-default VPCs); authorizing a rule
//!   that exists fails it with `InvalidPermission.Duplicate` and adds nothing.
//! - DeleteNetworkAcl: `DependencyViolation` while a subnet is still associated with the ACL.
//! - DeleteSubnet: also removes the subnet's ACL association (a subnet always has exactly one; it goes with it).
//! - DeleteVpc: `DependencyViolation` while subnets, security groups or non-default ACLs remain.
//! - CreateSubnet: the new subnet starts associated with the VPC's default ACL.
//!
//! Every call is logged ([`Call`]) so a test can assert order. An operation the fake does not model makes the mock
//! interceptor panic, which fails the test loudly rather than letting it pass on a guess.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_ec2::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_ec2::error::{ErrorMetadata, ProvideErrorMetadata};
use aws_sdk_ec2::operation as op;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, Filter, IpPermission, IpRange, NetworkAcl, NetworkAclAssociation, NetworkAclEntry,
    PortRange, RuleAction, SecurityGroup, Subnet, SubnetState, Tag, UserIdGroupPair, Vpc, VpcAttributeName, VpcState,
};
use aws_smithy_mocks::{MockResponse, MockResponseInterceptor, RuleMode, create_mock_http_client, mock};
use aws_smithy_types::retry::RetryConfig;
use serde_json::Value;
use webscale::apply::{self, Hook, Options, Phase, Report, Result_};
use webscale::aws::{Clients, Cloud, CloudError, RetryPolicy};
use webscale::plan::{self, Action, Mode, Plan};
use webscale::resources::{Address, Desired, as_reference};
use webscale::spec::{self, Protocol, RegionChoice, Stack};

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
    aws.with(|w| assert_eq!(w.groups.keys().collect::<Vec<_>>(), ["sg-web"], "only the stuck group is left"));
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
    aws.with(|w| w.groups.clear());
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
    let aws = Fake::provisioned(&with_deny_at(90, "0.0.0.0/0"));
    let cloud = aws.cloud(fast());

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
        let mut entries: Vec<(bool, i32, String, bool)> =
            w.acls["acl-private"].entries.iter().map(|e| (e.egress, e.number, e.cidr.clone(), e.allow)).collect();
        entries.sort();
        assert_eq!(
            entries,
            [
                (false, 80, "10.0.5.0/24".to_string(), false),
                (false, 100, "10.0.0.0/16".to_string(), true),
                (true, 100, "10.0.0.0/8".to_string(), true),
            ]
        );
    });
    assert!(!apply_plan(&cloud, &stack(&with_deny_at(80, "10.0.0.0/8"))).await.has_changes(), "nothing left to do");
}

// =====================================================================================================================
// Harness: the stack, the cloud, planning and applying
// =====================================================================================================================

/// Retry pauses of milliseconds, so a test that waits on DependencyViolation takes a fraction of a second.
/// Reading live state costs one tag-filtered describe per kind (plus the VPC's DNS attribute, which DescribeVpcs
/// does not carry), however many resources there are: the read budget that keeps plans fast on big stacks. Kinds
/// that need the same response (groups and their rule sets) share one call.
#[tokio::test]
async fn a_plan_reads_each_kind_with_one_describe_call() {
    let aws = Fake::provisioned(SPEC);
    let cloud = aws.cloud(fast());
    let plan = apply_plan(&cloud, &stack(SPEC)).await;
    assert!(!plan.has_changes(), "the fake holds exactly what the spec asks for");
    let mut ops = aws.with(|w| w.ops.clone());
    ops.sort();
    assert_eq!(
        ops,
        vec![
            "describe_internet_gateways",
            "describe_network_acls",
            "describe_route_tables",
            // One for the groups and their rule sets (two kinds, one shared response).
            "describe_security_groups",
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
    };
    let created = InternetGateway.create(&cloud, &op).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created.id, "igw-new");
    assert_eq!(create.num_calls(), 1, "the gateway is created once");
    assert_eq!(attach.num_calls(), 3, "the attach waits for AWS to see the VPC");
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        consistency: Duration::from_millis(300),
        dependency: Duration::from_millis(300),
        interval: Duration::from_millis(2),
    }
}

fn stack(text: &str) -> Stack {
    spec::parse(Path::new("mocked.toml"), text, &RegionChoice::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// What `webscale destroy` plans: live state read through every kind, diffed against nothing.
async fn destroy_plan(cloud: &Cloud) -> Plan {
    plan::build(cloud, &stack(SPEC), Mode::Destroy).await.unwrap_or_else(|e| panic!("{e}"))
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

// =====================================================================================================================
// The fake: EC2 state, and the client that answers from it
// =====================================================================================================================

/// One call the code made, as the fake saw it.
#[derive(Debug, Clone)]
struct Call {
    op: &'static str,
    /// What it acted on: a group, ACL, VPC or subnet id (for ReplaceNetworkAclAssociation, the subnet moved).
    on: String,
    /// Other ids the request named: groups its rules reference; the ACL a subnet is moved to.
    refs: Vec<String>,
    /// The AWS error code it was answered with.
    error: Option<String>,
    /// For network ACL entry calls: (egress, rule number).
    entry: Option<(bool, i32)>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Peer {
    Cidr(String),
    Group(String),
}

/// An inclusive port range, absent where the protocol has none.
type Ports = Option<(i32, i32)>;

/// One security group rule, one source: how AWS matches rules in Authorize and Revoke.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rule {
    /// As AWS reports it: `tcp`, `udp`, `icmp`, `-1`.
    protocol: String,
    /// None for `-1` (every port).
    ports: Ports,
    peer: Peer,
}

impl Rule {
    fn tcp(port: i32, peer: Peer) -> Rule {
        Rule { protocol: "tcp".into(), ports: Some((port, port)), peer }
    }
}

#[derive(Debug, Clone)]
struct Group {
    vpc: String,
    description: String,
    tags: BTreeMap<String, String>,
    ingress: Vec<Rule>,
    egress: Vec<Rule>,
}

#[derive(Debug, Clone)]
struct SubnetRec {
    vpc: String,
    cidr: String,
    zone: String,
    public: bool,
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct Entry {
    number: i32,
    egress: bool,
    /// The IANA number, as AWS reports it (`-1`, `6`).
    protocol: String,
    ports: Option<(i32, i32)>,
    cidr: String,
    allow: bool,
}

#[derive(Debug, Clone)]
struct Acl {
    vpc: String,
    default: bool,
    tags: BTreeMap<String, String>,
    entries: Vec<Entry>,
    /// Association id -> subnet id.
    associations: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
struct VpcRec {
    cidr: String,
    dns_hostnames: bool,
    tags: BTreeMap<String, String>,
}

/// EC2 in one region, as far as these tests need it.
#[derive(Debug, Default)]
struct World {
    vpcs: BTreeMap<String, VpcRec>,
    subnets: BTreeMap<String, SubnetRec>,
    groups: BTreeMap<String, Group>,
    acls: BTreeMap<String, Acl>,
    /// Group id -> how many more deletes are refused because ENIs are still draining.
    draining: HashMap<String, usize>,
    log: Vec<Call>,
    /// Every operation called, in order (successful reads are not in `log`).
    ops: Vec<&'static str>,
    next_id: usize,
}

/// The fake EC2 shared by the client's mock rules and the test.
#[derive(Clone, Default)]
struct Fake(Arc<Mutex<World>>);

impl Fake {
    /// EC2 as a successful `webscale apply` of `spec` left it. Ids are readable: `vpc-main`, `sg-web`,
    /// `subnet-private-a`, `acl-private`; the VPC's default ACL is `acl-default`.
    fn provisioned(spec: &str) -> Fake {
        let fake = Fake::default();
        fake.with(|w| w.provision(&webscale::resources::desired(&stack(spec))));
        fake
    }

    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.world())
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap()
    }

    fn calls(&self) -> Vec<Call> {
        self.world().log.clone()
    }

    fn count(&self, op: &str, on: &str) -> usize {
        self.world().log.iter().filter(|c| c.op == op && c.on == on).count()
    }

    /// The error codes `op` on `on` was answered with, in order.
    fn errors(&self, op: &str, on: &str) -> Vec<String> {
        self.world().log.iter().filter(|c| c.op == op && c.on == on).filter_map(|c| c.error.clone()).collect()
    }

    /// Where in the log `op` on `on` first succeeded.
    fn first_success(&self, op: &str, on: &str) -> Option<usize> {
        self.world().log.iter().position(|c| c.op == op && c.on == on && c.error.is_none())
    }

    /// A cloud whose EC2 client answers from this fake; every other client must never be called.
    fn cloud(&self, retry: RetryPolicy) -> Cloud {
        let clients = Clients { ec2: self.ec2_client(), ..unused_clients() };
        Cloud::from_clients("mocked", REGION, clients, retry)
    }

    /// An EC2 client whose every call is answered by the fake: one mock rule per operation.
    fn ec2_client(&self) -> aws_sdk_ec2::Client {
        use aws_sdk_ec2::Client as Ec2;
        macro_rules! serve {
            ($op:ident) => {{
                let fake = self.clone();
                mock!(Ec2::$op).then_compute_response(move |req| {
                    let mut world = fake.world();
                    world.ops.push(stringify!($op));
                    world.$op(req)
                })
            }};
        }
        let rules = [
            serve!(describe_vpcs),
            serve!(describe_vpc_attribute),
            serve!(describe_internet_gateways),
            serve!(describe_subnets),
            serve!(describe_route_tables),
            serve!(describe_security_groups),
            serve!(describe_network_acls),
            serve!(create_subnet),
            serve!(delete_subnet),
            serve!(delete_vpc),
            serve!(delete_security_group),
            serve!(authorize_security_group_ingress),
            serve!(authorize_security_group_egress),
            serve!(revoke_security_group_ingress),
            serve!(revoke_security_group_egress),
            serve!(replace_network_acl_association),
            serve!(delete_network_acl),
            serve!(describe_network_interfaces),
            serve!(create_network_acl_entry),
            serve!(replace_network_acl_entry),
            serve!(delete_network_acl_entry),
        ];
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for rule in &rules {
            interceptor = interceptor.with_rule(rule);
        }
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version_latest()
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            // One logged call per call the code makes: the SDK's own retries would hide attempts.
            .retry_config(RetryConfig::disabled())
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build();
        aws_sdk_ec2::Client::from_conf(config)
    }
}

/// The clients the network tier never uses: pointed at a closed loopback port, no retries, and an HTTP client
/// that never leaves the process, so a stray call fails at once instead of reaching anything.
fn unused_clients() -> Clients {
    let config = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url("http://127.0.0.1:9")
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new("test", "test", None, None, "test")))
        .retry_config(RetryConfig::disabled())
        .http_client(create_mock_http_client())
        .build();
    Clients::new(&config, REGION)
}

// ---- building the world -----------------------------------------------------------------------------------------

/// The readable id the fake gives the resource at `address`: `security_group.web` -> `sg-web`.
fn id_of(address: &Address) -> String {
    let prefix = match address.kind() {
        "security_group" | "security_group_rules" => "sg",
        "network_acl" => "acl",
        other => other,
    };
    format!("{prefix}-{}", address.name().replace('_', "-"))
}

fn ref_id(v: &Value) -> String {
    id_of(&as_reference(v).unwrap_or_else(|| panic!("expected a reference, got {v}")))
}

fn str_of(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("expected a string, got {v}")).to_string()
}

fn tags_of(d: &Desired) -> BTreeMap<String, String> {
    serde_json::from_value(d.attrs["tags"].clone()).expect("tags")
}

fn ports_of(v: &Value) -> Option<(i32, i32)> {
    Some((v.get("from_port")?.as_i64()? as i32, v.get("to_port")?.as_i64()? as i32))
}

impl World {
    /// Creates what the desired resources describe, as a finished apply leaves it.
    fn provision(&mut self, desired: &[Desired]) {
        let of = |kind: &'static str| desired.iter().filter(move |d| d.address.kind() == kind);
        for d in of("vpc") {
            let vpc = id_of(&d.address);
            let a = &d.attrs;
            self.vpcs.insert(
                vpc.clone(),
                VpcRec { cidr: str_of(&a["cidr_block"]), dns_hostnames: a["dns_hostnames"] == true, tags: tags_of(d) },
            );
            // Every VPC comes with a default ACL that allows everything; AWS does not tag it.
            let allow_all = |egress| Entry {
                number: 100,
                egress,
                protocol: "-1".into(),
                ports: None,
                cidr: "0.0.0.0/0".into(),
                allow: true,
            };
            let acl = Acl {
                vpc,
                default: true,
                tags: BTreeMap::new(),
                entries: vec![allow_all(false), allow_all(true)],
                associations: BTreeMap::new(),
            };
            self.acls.insert("acl-default".into(), acl);
        }
        for d in of("subnet") {
            let a = &d.attrs;
            let id = id_of(&d.address);
            let subnet = SubnetRec {
                vpc: ref_id(&a["vpc"]),
                cidr: str_of(&a["cidr_block"]),
                zone: str_of(&a["availability_zone"]),
                public: a["map_public_ip_on_launch"] == true,
                tags: tags_of(d),
            };
            self.add_subnet(id, subnet);
        }
        for d in of("security_group") {
            let group = Group {
                vpc: ref_id(&d.attrs["vpc"]),
                description: str_of(&d.attrs["description"]),
                tags: tags_of(d),
                ingress: vec![],
                egress: vec![],
            };
            self.groups.insert(id_of(&d.address), group);
        }
        for d in of("security_group_rules") {
            let rules = |dir: &str| -> Vec<Rule> {
                let list = d.attrs[dir].as_array().expect("rule list");
                list.iter()
                    .map(|r| Rule {
                        protocol: aws_protocol(&str_of(&r["protocol"])),
                        ports: ports_of(r),
                        peer: match r.get("cidr") {
                            Some(c) => Peer::Cidr(str_of(c)),
                            None => Peer::Group(ref_id(&r["security_group"])),
                        },
                    })
                    .collect()
            };
            let group = self.group(&ref_id(&d.attrs["group"]));
            group.ingress = rules("ingress");
            group.egress = rules("egress");
        }
        for d in of("network_acl") {
            let a = &d.attrs;
            let entries = |egress: bool| -> Vec<Entry> {
                let list = a[if egress { "egress" } else { "ingress" }].as_array().expect("entry list");
                list.iter()
                    .map(|e| Entry {
                        number: e["rule"].as_i64().expect("rule number") as i32,
                        egress,
                        protocol: Protocol::from_aws(&str_of(&e["protocol"])).expect("protocol").number().into(),
                        ports: ports_of(e),
                        cidr: str_of(&e["cidr"]),
                        allow: e["action"] == "allow",
                    })
                    .collect()
            };
            let id = id_of(&d.address);
            let acl = Acl {
                vpc: ref_id(&a["vpc"]),
                default: false,
                tags: tags_of(d),
                entries: entries(false).into_iter().chain(entries(true)).collect(),
                associations: BTreeMap::new(),
            };
            self.acls.insert(id.clone(), acl);
            for subnet in a["subnets"].as_array().expect("subnets").iter().map(ref_id) {
                let association = self.association_of(&subnet).expect("every subnet has an ACL").0;
                self.move_association(&association, &id);
            }
        }
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    fn group(&mut self, id: &str) -> &mut Group {
        self.groups.get_mut(id).unwrap_or_else(|| panic!("no group {id}"))
    }

    /// A new subnet starts on its VPC's default ACL.
    fn add_subnet(&mut self, id: String, subnet: SubnetRec) {
        let default = self.default_acl(&subnet.vpc).expect("the VPC has a default ACL");
        let association = self.new_id("aclassoc");
        self.acls.get_mut(&default).unwrap().associations.insert(association, id.clone());
        self.subnets.insert(id, subnet);
    }

    /// Deleting a subnet on real AWS deletes its ACL association with it.
    fn remove_subnet(&mut self, id: &str) {
        self.subnets.remove(id);
        for acl in self.acls.values_mut() {
            acl.associations.retain(|_, subnet| subnet != id);
        }
    }

    fn default_acl(&self, vpc: &str) -> Option<String> {
        self.acls.iter().find(|(_, a)| a.vpc == vpc && a.default).map(|(id, _)| id.clone())
    }

    /// (association id, ACL id) of a subnet's one association.
    fn association_of(&self, subnet: &str) -> Option<(String, String)> {
        self.acls.iter().find_map(|(acl, a)| {
            a.associations.iter().find(|(_, s)| *s == subnet).map(|(assoc, _)| (assoc.clone(), acl.clone()))
        })
    }

    fn acl_of(&self, subnet: &str) -> Option<String> {
        self.association_of(subnet).map(|(_, acl)| acl)
    }

    fn subnets_of(&self, acl: &str) -> Vec<String> {
        let mut out: Vec<String> = self.acls[acl].associations.values().cloned().collect();
        out.sort();
        out
    }

    fn subnet_with_cidr(&self, cidr: &str) -> Option<String> {
        self.subnets.iter().find(|(_, s)| s.cidr == cidr).map(|(id, _)| id.clone())
    }

    /// Moves an association to `acl`; AWS gives the association a new id.
    fn move_association(&mut self, association: &str, acl: &str) -> String {
        let subnet = self.acls.values_mut().find_map(|a| a.associations.remove(association)).expect("association");
        let new = self.new_id("aclassoc");
        self.acls.get_mut(acl).expect("target ACL").associations.insert(new.clone(), subnet);
        new
    }

    /// Groups other than `id` whose rules name `id`.
    fn referencing(&self, id: &str) -> Vec<String> {
        let names = |r: &Rule| r.peer == Peer::Group(id.to_string());
        self.groups
            .iter()
            .filter(|(other, g)| *other != id && g.ingress.iter().chain(&g.egress).any(names))
            .map(|(other, _)| other.clone())
            .collect()
    }

    fn record<O, E: ProvideErrorMetadata>(
        &mut self,
        op: &'static str,
        on: &str,
        refs: Vec<String>,
        response: MockResponse<O, E>,
    ) -> MockResponse<O, E> {
        let error = match &response {
            MockResponse::Error(e) => Some(e.code().unwrap_or("(no code)").to_string()),
            _ => None,
        };
        self.log.push(Call { op, on: on.to_string(), refs, error, entry: None });
        response
    }
}

// ---- answering calls --------------------------------------------------------------------------------------------

/// An AWS error response with `code`, for any operation (`generic` is every EC2 operation error's constructor).
fn fail<O, E>(generic: fn(ErrorMetadata) -> E, code: &str, message: impl Into<String>) -> MockResponse<O, E> {
    MockResponse::Error(generic(ErrorMetadata::builder().code(code).message(message).build()))
}

fn tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// Whether a resource passes a describe's filters (the ones the code uses: `tag:KEY` and `vpc-id`).
fn passes(filters: &[Filter], tags: &BTreeMap<String, String>, vpc: &str) -> bool {
    filters.iter().all(|f| {
        let name = f.name().unwrap_or_default();
        let value = if let Some(key) = name.strip_prefix("tag:") {
            tags.get(key).map(String::as_str)
        } else if name == "vpc-id" {
            Some(vpc)
        } else {
            panic!("the fake EC2 does not model the describe filter {name:?}")
        };
        value.is_some_and(|v| f.values().iter().any(|want| want == v))
    })
}

/// AWS reports protocols by name, `-1` for all; requests may use either spelling.
fn aws_protocol(p: &str) -> String {
    match Protocol::from_aws(p) {
        Some(Protocol::All) => "-1".into(),
        Some(other) => other.as_str().into(),
        None => p.to_string(),
    }
}

/// The rules a request's permissions name, one per source.
fn rules_in(perms: &[IpPermission]) -> Vec<Rule> {
    let mut out = Vec::new();
    for p in perms {
        assert!(
            p.ipv6_ranges().is_empty() && p.prefix_list_ids().is_empty(),
            "the fake EC2 models IPv4 and group sources only: {p:?}"
        );
        let protocol = aws_protocol(p.ip_protocol().unwrap_or("-1"));
        let ports = match (protocol.as_str(), p.from_port(), p.to_port()) {
            ("-1", _, _) => None,
            (_, Some(from), Some(to)) => Some((from, to)),
            _ => panic!("AWS requires ports for {protocol}: {p:?}"),
        };
        let rule = |peer| Rule { protocol: protocol.clone(), ports, peer };
        out.extend(p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).map(|c| rule(Peer::Cidr(c.into()))));
        out.extend(p.user_id_group_pairs().iter().filter_map(|g| g.group_id()).map(|g| rule(Peer::Group(g.into()))));
    }
    out
}

/// Rules as DescribeSecurityGroups reports them: sources that share protocol and ports in one permission.
fn permissions(rules: &[Rule]) -> Vec<IpPermission> {
    let mut blocks: BTreeMap<(&str, Ports), Vec<&Peer>> = BTreeMap::new();
    for r in rules {
        blocks.entry((r.protocol.as_str(), r.ports)).or_default().push(&r.peer);
    }
    blocks
        .into_iter()
        .map(|((protocol, ports), peers)| {
            let mut p = IpPermission::builder().ip_protocol(protocol);
            if let Some((from, to)) = ports {
                p = p.from_port(from).to_port(to);
            }
            for peer in peers {
                p = match peer {
                    Peer::Cidr(c) => p.ip_ranges(IpRange::builder().cidr_ip(c).build()),
                    Peer::Group(g) => p.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build()),
                };
            }
            p.build()
        })
        .collect()
}

fn group_refs(rules: &[Rule]) -> Vec<String> {
    let set: BTreeSet<String> = rules
        .iter()
        .filter_map(|r| match &r.peer {
            Peer::Group(g) => Some(g.clone()),
            Peer::Cidr(_) => None,
        })
        .collect();
    set.into_iter().collect()
}

#[derive(Clone, Copy)]
enum Dir {
    Ingress,
    Egress,
}

/// The shared part of Authorize/Revoke Ingress/Egress: AWS applies a request's rules all or none.
fn change_rules(
    w: &mut World,
    group: Option<&str>,
    perms: &[IpPermission],
    dir: Dir,
    grant: bool,
) -> Result<(), (&'static str, String)> {
    let group = group.unwrap_or_default();
    let requested = rules_in(perms);
    let Some(g) = w.groups.get(group) else {
        return Err(("InvalidGroup.NotFound", format!("The security group '{group}' does not exist")));
    };
    if grant {
        for r in &requested {
            if let Peer::Group(other) = &r.peer
                && !w.groups.contains_key(other)
            {
                return Err(("InvalidGroup.NotFound", format!("The security group '{other}' does not exist")));
            }
        }
    }
    let have = match dir {
        Dir::Ingress => &g.ingress,
        Dir::Egress => &g.egress,
    };
    if grant {
        // One rule already there fails the request; none of its rules is added.
        if let Some(dup) = requested.iter().find(|r| have.contains(r)) {
            return Err(("InvalidPermission.Duplicate", format!("the specified rule {dup:?} already exists")));
        }
    } else if let Some(missing) = requested.iter().find(|r| !have.contains(r)) {
        // Non-default VPC: one unknown rule fails the request and no rule is revoked (EC2 API reference).
        return Err((
            "InvalidPermission.NotFound",
            format!("The specified rule {missing:?} does not exist in this security group"),
        ));
    }
    let g = w.group(group);
    let list = match dir {
        Dir::Ingress => &mut g.ingress,
        Dir::Egress => &mut g.egress,
    };
    if grant {
        list.extend(requested);
    } else {
        list.retain(|r| !requested.contains(r));
    }
    Ok(())
}

/// An entry call's ACL, direction and number; AWS requires all three.
fn entry_key(acl: Option<&str>, egress: Option<bool>, number: Option<i32>) -> (String, bool, i32) {
    (
        acl.expect("AWS requires NetworkAclId").to_string(),
        egress.expect("AWS requires Egress"),
        number.expect("AWS requires RuleNumber"),
    )
}

/// The entry a Create/ReplaceNetworkAclEntry request describes, as the fake stores it.
fn entry_of(
    number: i32,
    egress: bool,
    protocol: Option<&str>,
    ports: Option<&PortRange>,
    cidr: Option<&str>,
    ipv6_cidr: Option<&str>,
    action: Option<&RuleAction>,
) -> Entry {
    assert!(ipv6_cidr.is_none(), "the fake EC2 models IPv4 entries only");
    let protocol = protocol.expect("AWS requires Protocol").to_string();
    let ports = ports.map(|p| (p.from().expect("port range from"), p.to().expect("port range to")));
    assert!(
        ports.is_some() || !matches!(protocol.as_str(), "6" | "17"),
        "AWS requires a port range for protocol {protocol}"
    );
    Entry {
        number,
        egress,
        protocol,
        ports,
        cidr: cidr.expect("AWS requires CidrBlock or Ipv6CidrBlock").to_string(),
        allow: action.expect("AWS requires RuleAction") == &RuleAction::Allow,
    }
}

/// One method per EC2 operation, named like the client's, so `serve!` can wire them up.
impl World {
    /// A draining group still has a load balancer's network interface in it (another stack's, say).
    fn describe_network_interfaces(
        &mut self,
        req: &op::describe_network_interfaces::DescribeNetworkInterfacesInput,
    ) -> MockResponse<
        op::describe_network_interfaces::DescribeNetworkInterfacesOutput,
        op::describe_network_interfaces::DescribeNetworkInterfacesError,
    > {
        let groups: Vec<String> =
            req.filters().iter().filter(|f| f.name() == Some("group-id")).flat_map(|f| f.values().to_vec()).collect();
        let enis = groups
            .iter()
            .filter(|g| self.draining.get(*g).is_some_and(|n| *n > 0))
            .map(|g| {
                aws_sdk_ec2::types::NetworkInterface::builder()
                    .network_interface_id(format!("eni-draining-{g}"))
                    .requester_id("amazon-elb")
                    .description("ELB app/other/123")
                    .build()
            })
            .collect();
        MockResponse::Output(
            op::describe_network_interfaces::DescribeNetworkInterfacesOutput::builder()
                .set_network_interfaces(Some(enis))
                .build(),
        )
    }

    fn describe_vpcs(
        &mut self,
        req: &op::describe_vpcs::DescribeVpcsInput,
    ) -> MockResponse<op::describe_vpcs::DescribeVpcsOutput, op::describe_vpcs::DescribeVpcsError> {
        let vpcs = self
            .vpcs
            .iter()
            .filter(|(id, v)| passes(req.filters(), &v.tags, id))
            .filter(|(id, _)| req.vpc_ids().is_empty() || req.vpc_ids().contains(id))
            .map(|(id, v)| {
                Vpc::builder()
                    .vpc_id(id)
                    .cidr_block(&v.cidr)
                    .state(VpcState::Available)
                    .set_tags(Some(tags(&v.tags)))
                    .build()
            })
            .collect();
        let out = op::describe_vpcs::DescribeVpcsOutput::builder().set_vpcs(Some(vpcs)).build();
        self.record("DescribeVpcs", "", vec![], MockResponse::Output(out))
    }

    fn describe_vpc_attribute(
        &mut self,
        req: &op::describe_vpc_attribute::DescribeVpcAttributeInput,
    ) -> MockResponse<
        op::describe_vpc_attribute::DescribeVpcAttributeOutput,
        op::describe_vpc_attribute::DescribeVpcAttributeError,
    > {
        use op::describe_vpc_attribute::{DescribeVpcAttributeError as E, DescribeVpcAttributeOutput as O};
        let id = req.vpc_id().unwrap_or_default();
        assert_eq!(req.attribute(), Some(&VpcAttributeName::EnableDnsHostnames), "the fake models DNS hostnames only");
        let response = match self.vpcs.get(id) {
            None => fail(E::generic, "InvalidVpcID.NotFound", format!("The vpc ID '{id}' does not exist")),
            Some(v) => MockResponse::Output(
                O::builder()
                    .vpc_id(id)
                    .enable_dns_hostnames(AttributeBooleanValue::builder().value(v.dns_hostnames).build())
                    .build(),
            ),
        };
        self.record("DescribeVpcAttribute", id, vec![], response)
    }

    /// The tests' stacks have no gateway.
    fn describe_internet_gateways(
        &mut self,
        _: &op::describe_internet_gateways::DescribeInternetGatewaysInput,
    ) -> MockResponse<
        op::describe_internet_gateways::DescribeInternetGatewaysOutput,
        op::describe_internet_gateways::DescribeInternetGatewaysError,
    > {
        let out = op::describe_internet_gateways::DescribeInternetGatewaysOutput::builder().build();
        self.record("DescribeInternetGateways", "", vec![], MockResponse::Output(out))
    }

    /// Nor route tables of their own.
    fn describe_route_tables(
        &mut self,
        _: &op::describe_route_tables::DescribeRouteTablesInput,
    ) -> MockResponse<
        op::describe_route_tables::DescribeRouteTablesOutput,
        op::describe_route_tables::DescribeRouteTablesError,
    > {
        let out = op::describe_route_tables::DescribeRouteTablesOutput::builder().build();
        self.record("DescribeRouteTables", "", vec![], MockResponse::Output(out))
    }

    fn describe_subnets(
        &mut self,
        req: &op::describe_subnets::DescribeSubnetsInput,
    ) -> MockResponse<op::describe_subnets::DescribeSubnetsOutput, op::describe_subnets::DescribeSubnetsError> {
        use op::describe_subnets::{DescribeSubnetsError as E, DescribeSubnetsOutput as O};
        if let Some(missing) = req.subnet_ids().iter().find(|id| !self.subnets.contains_key(*id)) {
            let response =
                fail(E::generic, "InvalidSubnetID.NotFound", format!("The subnet ID '{missing}' does not exist"));
            return self.record("DescribeSubnets", missing, vec![], response);
        }
        let subnets = self
            .subnets
            .iter()
            .filter(|(id, s)| {
                passes(req.filters(), &s.tags, &s.vpc) && (req.subnet_ids().is_empty() || req.subnet_ids().contains(id))
            })
            .map(|(id, s)| {
                Subnet::builder()
                    .subnet_id(id)
                    .vpc_id(&s.vpc)
                    .cidr_block(&s.cidr)
                    .availability_zone(&s.zone)
                    .map_public_ip_on_launch(s.public)
                    .state(SubnetState::Available)
                    .set_tags(Some(tags(&s.tags)))
                    .build()
            })
            .collect();
        self.record(
            "DescribeSubnets",
            "",
            vec![],
            MockResponse::Output(O::builder().set_subnets(Some(subnets)).build()),
        )
    }

    fn describe_security_groups(
        &mut self,
        req: &op::describe_security_groups::DescribeSecurityGroupsInput,
    ) -> MockResponse<
        op::describe_security_groups::DescribeSecurityGroupsOutput,
        op::describe_security_groups::DescribeSecurityGroupsError,
    > {
        use op::describe_security_groups::{DescribeSecurityGroupsError as E, DescribeSecurityGroupsOutput as O};
        if let Some(missing) = req.group_ids().iter().find(|id| !self.groups.contains_key(*id)) {
            let response =
                fail(E::generic, "InvalidGroup.NotFound", format!("The security group '{missing}' does not exist"));
            return self.record("DescribeSecurityGroups", missing, vec![], response);
        }
        let groups = self
            .groups
            .iter()
            .filter(|(id, g)| {
                passes(req.filters(), &g.tags, &g.vpc) && (req.group_ids().is_empty() || req.group_ids().contains(id))
            })
            .map(|(id, g)| {
                SecurityGroup::builder()
                    .group_id(id)
                    .group_name(format!("mocked-{id}"))
                    .description(&g.description)
                    .vpc_id(&g.vpc)
                    .set_ip_permissions(Some(permissions(&g.ingress)))
                    .set_ip_permissions_egress(Some(permissions(&g.egress)))
                    .set_tags(Some(tags(&g.tags)))
                    .build()
            })
            .collect();
        let out = O::builder().set_security_groups(Some(groups)).build();
        self.record("DescribeSecurityGroups", "", vec![], MockResponse::Output(out))
    }

    fn describe_network_acls(
        &mut self,
        req: &op::describe_network_acls::DescribeNetworkAclsInput,
    ) -> MockResponse<
        op::describe_network_acls::DescribeNetworkAclsOutput,
        op::describe_network_acls::DescribeNetworkAclsError,
    > {
        assert!(req.network_acl_ids().is_empty(), "the fake models describing by filter only");
        let acls = self
            .acls
            .iter()
            .filter(|(_, a)| passes(req.filters(), &a.tags, &a.vpc))
            .map(|(id, a)| {
                // Every ACL ends with AWS's own deny-all, rule 32767, in each direction.
                let deny_all = |egress| Entry {
                    number: 32767,
                    egress,
                    protocol: "-1".into(),
                    ports: None,
                    cidr: "0.0.0.0/0".into(),
                    allow: false,
                };
                let entries = a.entries.iter().cloned().chain([deny_all(false), deny_all(true)]).map(|e| {
                    NetworkAclEntry::builder()
                        .rule_number(e.number)
                        .egress(e.egress)
                        .protocol(e.protocol)
                        .cidr_block(e.cidr)
                        .rule_action(if e.allow { RuleAction::Allow } else { RuleAction::Deny })
                        .set_port_range(e.ports.map(|(from, to)| PortRange::builder().from(from).to(to).build()))
                        .build()
                });
                let associations = a.associations.iter().map(|(assoc, subnet)| {
                    NetworkAclAssociation::builder()
                        .network_acl_association_id(assoc)
                        .network_acl_id(id)
                        .subnet_id(subnet)
                        .build()
                });
                NetworkAcl::builder()
                    .network_acl_id(id)
                    .vpc_id(&a.vpc)
                    .is_default(a.default)
                    .set_entries(Some(entries.collect()))
                    .set_associations(Some(associations.collect()))
                    .set_tags(Some(tags(&a.tags)))
                    .build()
            })
            .collect();
        let out = op::describe_network_acls::DescribeNetworkAclsOutput::builder().set_network_acls(Some(acls)).build();
        self.record("DescribeNetworkAcls", "", vec![], MockResponse::Output(out))
    }

    fn create_subnet(
        &mut self,
        req: &op::create_subnet::CreateSubnetInput,
    ) -> MockResponse<op::create_subnet::CreateSubnetOutput, op::create_subnet::CreateSubnetError> {
        let vpc = req.vpc_id().unwrap_or_default().to_string();
        let tags: BTreeMap<String, String> = req
            .tag_specifications()
            .iter()
            .flat_map(|s| s.tags())
            .filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string())))
            .collect();
        let record = SubnetRec {
            vpc: vpc.clone(),
            cidr: req.cidr_block().unwrap_or_default().into(),
            zone: req.availability_zone().unwrap_or_default().into(),
            public: false,
            tags,
        };
        let id = self.new_id("subnet-new");
        let subnet = Subnet::builder()
            .subnet_id(&id)
            .vpc_id(&vpc)
            .cidr_block(&record.cidr)
            .availability_zone(&record.zone)
            .state(SubnetState::Pending)
            .build();
        self.add_subnet(id.clone(), record);
        let out = op::create_subnet::CreateSubnetOutput::builder().subnet(subnet).build();
        self.record("CreateSubnet", &id, vec![], MockResponse::Output(out))
    }

    fn delete_subnet(
        &mut self,
        req: &op::delete_subnet::DeleteSubnetInput,
    ) -> MockResponse<op::delete_subnet::DeleteSubnetOutput, op::delete_subnet::DeleteSubnetError> {
        use op::delete_subnet::{DeleteSubnetError as E, DeleteSubnetOutput as O};
        let id = req.subnet_id().unwrap_or_default();
        let response = if self.subnets.contains_key(id) {
            self.remove_subnet(id);
            MockResponse::Output(O::builder().build())
        } else {
            fail(E::generic, "InvalidSubnetID.NotFound", format!("The subnet ID '{id}' does not exist"))
        };
        self.record("DeleteSubnet", id, vec![], response)
    }

    fn delete_vpc(
        &mut self,
        req: &op::delete_vpc::DeleteVpcInput,
    ) -> MockResponse<op::delete_vpc::DeleteVpcOutput, op::delete_vpc::DeleteVpcError> {
        use op::delete_vpc::{DeleteVpcError as E, DeleteVpcOutput as O};
        let id = req.vpc_id().unwrap_or_default();
        let in_use = self.subnets.values().any(|s| s.vpc == id)
            || self.groups.values().any(|g| g.vpc == id)
            || self.acls.values().any(|a| a.vpc == id && !a.default);
        let response = if !self.vpcs.contains_key(id) {
            fail(E::generic, "InvalidVpcID.NotFound", format!("The vpc ID '{id}' does not exist"))
        } else if in_use {
            fail(E::generic, "DependencyViolation", format!("The vpc '{id}' has dependencies and cannot be deleted."))
        } else {
            // The default ACL (and default group) go with the VPC.
            self.vpcs.remove(id);
            self.acls.retain(|_, a| a.vpc != id);
            MockResponse::Output(O::builder().build())
        };
        self.record("DeleteVpc", id, vec![], response)
    }

    fn delete_security_group(
        &mut self,
        req: &op::delete_security_group::DeleteSecurityGroupInput,
    ) -> MockResponse<
        op::delete_security_group::DeleteSecurityGroupOutput,
        op::delete_security_group::DeleteSecurityGroupError,
    > {
        use op::delete_security_group::{DeleteSecurityGroupError as E, DeleteSecurityGroupOutput as O};
        let id = req.group_id().unwrap_or_default().to_string();
        let draining = self.draining.get_mut(&id).filter(|n| **n > 0);
        let response = if !self.groups.contains_key(&id) {
            fail(E::generic, "InvalidGroup.NotFound", format!("The security group '{id}' does not exist"))
        } else if let Some(n) = draining {
            *n -= 1;
            fail(E::generic, "DependencyViolation", format!("resource {id} has a dependent object"))
        } else if !self.referencing(&id).is_empty() {
            // Real AWS: a group named by another group's rule cannot be deleted (moto deletes it anyway).
            fail(E::generic, "DependencyViolation", format!("resource {id} has a dependent object"))
        } else {
            self.groups.remove(&id);
            MockResponse::Output(O::builder().build())
        };
        self.record("DeleteSecurityGroup", &id, vec![], response)
    }

    fn authorize_security_group_ingress(
        &mut self,
        req: &op::authorize_security_group_ingress::AuthorizeSecurityGroupIngressInput,
    ) -> MockResponse<
        op::authorize_security_group_ingress::AuthorizeSecurityGroupIngressOutput,
        op::authorize_security_group_ingress::AuthorizeSecurityGroupIngressError,
    > {
        use op::authorize_security_group_ingress::{
            AuthorizeSecurityGroupIngressError as E, AuthorizeSecurityGroupIngressOutput as O,
        };
        let response = match change_rules(self, req.group_id(), req.ip_permissions(), Dir::Ingress, true) {
            Ok(()) => MockResponse::Output(O::builder().r#return(true).build()),
            Err((code, message)) => fail(E::generic, code, message),
        };
        let refs = group_refs(&rules_in(req.ip_permissions()));
        self.record("AuthorizeSecurityGroupIngress", req.group_id().unwrap_or_default(), refs, response)
    }

    fn authorize_security_group_egress(
        &mut self,
        req: &op::authorize_security_group_egress::AuthorizeSecurityGroupEgressInput,
    ) -> MockResponse<
        op::authorize_security_group_egress::AuthorizeSecurityGroupEgressOutput,
        op::authorize_security_group_egress::AuthorizeSecurityGroupEgressError,
    > {
        use op::authorize_security_group_egress::{
            AuthorizeSecurityGroupEgressError as E, AuthorizeSecurityGroupEgressOutput as O,
        };
        let response = match change_rules(self, req.group_id(), req.ip_permissions(), Dir::Egress, true) {
            Ok(()) => MockResponse::Output(O::builder().r#return(true).build()),
            Err((code, message)) => fail(E::generic, code, message),
        };
        let refs = group_refs(&rules_in(req.ip_permissions()));
        self.record("AuthorizeSecurityGroupEgress", req.group_id().unwrap_or_default(), refs, response)
    }

    fn revoke_security_group_ingress(
        &mut self,
        req: &op::revoke_security_group_ingress::RevokeSecurityGroupIngressInput,
    ) -> MockResponse<
        op::revoke_security_group_ingress::RevokeSecurityGroupIngressOutput,
        op::revoke_security_group_ingress::RevokeSecurityGroupIngressError,
    > {
        use op::revoke_security_group_ingress::{
            RevokeSecurityGroupIngressError as E, RevokeSecurityGroupIngressOutput as O,
        };
        let response = match change_rules(self, req.group_id(), req.ip_permissions(), Dir::Ingress, false) {
            Ok(()) => MockResponse::Output(O::builder().r#return(true).build()),
            Err((code, message)) => fail(E::generic, code, message),
        };
        let refs = group_refs(&rules_in(req.ip_permissions()));
        self.record("RevokeSecurityGroupIngress", req.group_id().unwrap_or_default(), refs, response)
    }

    fn revoke_security_group_egress(
        &mut self,
        req: &op::revoke_security_group_egress::RevokeSecurityGroupEgressInput,
    ) -> MockResponse<
        op::revoke_security_group_egress::RevokeSecurityGroupEgressOutput,
        op::revoke_security_group_egress::RevokeSecurityGroupEgressError,
    > {
        use op::revoke_security_group_egress::{
            RevokeSecurityGroupEgressError as E, RevokeSecurityGroupEgressOutput as O,
        };
        let response = match change_rules(self, req.group_id(), req.ip_permissions(), Dir::Egress, false) {
            Ok(()) => MockResponse::Output(O::builder().r#return(true).build()),
            Err((code, message)) => fail(E::generic, code, message),
        };
        let refs = group_refs(&rules_in(req.ip_permissions()));
        self.record("RevokeSecurityGroupEgress", req.group_id().unwrap_or_default(), refs, response)
    }

    fn replace_network_acl_association(
        &mut self,
        req: &op::replace_network_acl_association::ReplaceNetworkAclAssociationInput,
    ) -> MockResponse<
        op::replace_network_acl_association::ReplaceNetworkAclAssociationOutput,
        op::replace_network_acl_association::ReplaceNetworkAclAssociationError,
    > {
        use op::replace_network_acl_association::{
            ReplaceNetworkAclAssociationError as E, ReplaceNetworkAclAssociationOutput as O,
        };
        let association = req.association_id().unwrap_or_default();
        let target = req.network_acl_id().unwrap_or_default().to_string();
        let subnet = self.acls.values().find_map(|a| a.associations.get(association).cloned());
        let response = match &subnet {
            None => fail(
                E::generic,
                "InvalidAssociationID.NotFound",
                format!("The association ID '{association}' does not exist"),
            ),
            Some(_) if !self.acls.contains_key(&target) => {
                fail(E::generic, "InvalidNetworkAclID.NotFound", format!("The networkAcl ID '{target}' does not exist"))
            }
            Some(_) => {
                let new = self.move_association(association, &target);
                MockResponse::Output(O::builder().new_association_id(new).build())
            }
        };
        let on = subnet.unwrap_or_else(|| format!("(unknown association {association})"));
        self.record("ReplaceNetworkAclAssociation", &on, vec![target], response)
    }

    fn delete_network_acl(
        &mut self,
        req: &op::delete_network_acl::DeleteNetworkAclInput,
    ) -> MockResponse<op::delete_network_acl::DeleteNetworkAclOutput, op::delete_network_acl::DeleteNetworkAclError>
    {
        use op::delete_network_acl::{DeleteNetworkAclError as E, DeleteNetworkAclOutput as O};
        let id = req.network_acl_id().unwrap_or_default().to_string();
        let response = match self.acls.get(&id) {
            None => {
                fail(E::generic, "InvalidNetworkAclID.NotFound", format!("The networkAcl ID '{id}' does not exist"))
            }
            Some(a) if a.default => {
                fail(E::generic, "InvalidParameterValue", format!("cannot delete default network ACL {id}"))
            }
            // Real AWS: an ACL with subnets cannot be deleted (moto keeps stale associations and fails differently).
            Some(a) if !a.associations.is_empty() => fail(
                E::generic,
                "DependencyViolation",
                format!("The networkAcl '{id}' has dependencies and cannot be deleted."),
            ),
            Some(_) => {
                self.acls.remove(&id);
                MockResponse::Output(O::builder().build())
            }
        };
        self.record("DeleteNetworkAcl", &id, vec![], response)
    }

    fn create_network_acl_entry(
        &mut self,
        req: &op::create_network_acl_entry::CreateNetworkAclEntryInput,
    ) -> MockResponse<
        op::create_network_acl_entry::CreateNetworkAclEntryOutput,
        op::create_network_acl_entry::CreateNetworkAclEntryError,
    > {
        use op::create_network_acl_entry::{CreateNetworkAclEntryError as E, CreateNetworkAclEntryOutput as O};
        let (id, egress, number) = entry_key(req.network_acl_id(), req.egress(), req.rule_number());
        let entry = entry_of(
            number,
            egress,
            req.protocol(),
            req.port_range(),
            req.cidr_block(),
            req.ipv6_cidr_block(),
            req.rule_action(),
        );
        let response = match self.acls.get_mut(&id) {
            None => {
                fail(E::generic, "InvalidNetworkAclID.NotFound", format!("The networkAcl ID '{id}' does not exist"))
            }
            // Real AWS: a number is unique per direction; creating it twice fails (replace is the way to change it).
            Some(a) if a.entries.iter().any(|e| e.egress == egress && e.number == number) => fail(
                E::generic,
                "NetworkAclEntryAlreadyExists",
                format!("The network acl entry identified by {number} already exists."),
            ),
            Some(a) => {
                a.entries.push(entry);
                MockResponse::Output(O::builder().build())
            }
        };
        self.record_entry("CreateNetworkAclEntry", &id, (egress, number), response)
    }

    fn replace_network_acl_entry(
        &mut self,
        req: &op::replace_network_acl_entry::ReplaceNetworkAclEntryInput,
    ) -> MockResponse<
        op::replace_network_acl_entry::ReplaceNetworkAclEntryOutput,
        op::replace_network_acl_entry::ReplaceNetworkAclEntryError,
    > {
        use op::replace_network_acl_entry::{ReplaceNetworkAclEntryError as E, ReplaceNetworkAclEntryOutput as O};
        let (id, egress, number) = entry_key(req.network_acl_id(), req.egress(), req.rule_number());
        let entry = entry_of(
            number,
            egress,
            req.protocol(),
            req.port_range(),
            req.cidr_block(),
            req.ipv6_cidr_block(),
            req.rule_action(),
        );
        let existing =
            self.acls.get_mut(&id).map(|a| a.entries.iter_mut().find(|e| e.egress == egress && e.number == number));
        let response = match existing {
            None => {
                fail(E::generic, "InvalidNetworkAclID.NotFound", format!("The networkAcl ID '{id}' does not exist"))
            }
            Some(None) => fail(
                E::generic,
                "InvalidNetworkAclEntry.NotFound",
                format!("The network acl entry identified by {number} does not exist."),
            ),
            Some(Some(e)) => {
                *e = entry;
                MockResponse::Output(O::builder().build())
            }
        };
        self.record_entry("ReplaceNetworkAclEntry", &id, (egress, number), response)
    }

    fn delete_network_acl_entry(
        &mut self,
        req: &op::delete_network_acl_entry::DeleteNetworkAclEntryInput,
    ) -> MockResponse<
        op::delete_network_acl_entry::DeleteNetworkAclEntryOutput,
        op::delete_network_acl_entry::DeleteNetworkAclEntryError,
    > {
        use op::delete_network_acl_entry::{DeleteNetworkAclEntryError as E, DeleteNetworkAclEntryOutput as O};
        let (id, egress, number) = entry_key(req.network_acl_id(), req.egress(), req.rule_number());
        let response = match self.acls.get_mut(&id) {
            None => {
                fail(E::generic, "InvalidNetworkAclID.NotFound", format!("The networkAcl ID '{id}' does not exist"))
            }
            Some(a) if !a.entries.iter().any(|e| e.egress == egress && e.number == number) => fail(
                E::generic,
                "InvalidNetworkAclEntry.NotFound",
                format!("The network acl entry identified by {number} does not exist."),
            ),
            Some(a) => {
                a.entries.retain(|e| !(e.egress == egress && e.number == number));
                MockResponse::Output(O::builder().build())
            }
        };
        self.record_entry("DeleteNetworkAclEntry", &id, (egress, number), response)
    }

    /// `record` for the entry calls, which also note the entry's direction and number.
    fn record_entry<O, E: ProvideErrorMetadata>(
        &mut self,
        op: &'static str,
        acl: &str,
        entry: (bool, i32),
        response: MockResponse<O, E>,
    ) -> MockResponse<O, E> {
        let response = self.record(op, acl, vec![], response);
        if let Some(call) = self.log.last_mut() {
            call.entry = Some(entry);
        }
        response
    }
}
