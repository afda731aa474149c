//! The data tier (`db_instance`, `db_subnet_group`) against canned RDS answers: the rules real RDS enforces and moto
//! does not (moto makes an instance `available` at once, accepts a replica of a primary without backups and ignores
//! ApplyImmediately). The kinds are called directly (`create`, `wait`, `delete`, `update`, `read`) with the RDS
//! client on `aws-smithy-mocks`; every call the test did not expect panics (the interceptor's `must_match`).
//!
//! Waits run in tokio's paused time: the SDK waiters' 30-second polls and the kind's 60-second status looks cost
//! nothing, and a status answer can depend on how much virtual time has passed since the create ([`over_time`]), as
//! it does on AWS, instead of on how many calls the code happened to make.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_rds::Client as Rds;
use aws_sdk_rds::config::{Credentials, Region};
use aws_sdk_rds::error::ErrorMetadata;
use aws_sdk_rds::operation::add_tags_to_resource::{AddTagsToResourceInput, AddTagsToResourceOutput};
use aws_sdk_rds::operation::create_db_instance_read_replica::{
    CreateDbInstanceReadReplicaInput, CreateDbInstanceReadReplicaOutput,
};
use aws_sdk_rds::operation::delete_db_instance::{
    DeleteDBInstanceError, DeleteDbInstanceInput, DeleteDbInstanceOutput,
};
use aws_sdk_rds::operation::describe_db_instances::{DescribeDBInstancesError, DescribeDbInstancesOutput};
use aws_sdk_rds::operation::describe_db_subnet_groups::DescribeDbSubnetGroupsOutput;
use aws_sdk_rds::operation::list_tags_for_resource::ListTagsForResourceOutput;
use aws_sdk_rds::operation::modify_db_instance::{ModifyDbInstanceInput, ModifyDbInstanceOutput};
use aws_sdk_rds::operation::remove_tags_from_resource::{RemoveTagsFromResourceInput, RemoveTagsFromResourceOutput};
use aws_sdk_rds::types::builders::DbInstanceBuilder;
use aws_sdk_rds::types::error::{DbInstanceNotFoundFault, InvalidDbInstanceStateFault};
use aws_sdk_rds::types::{
    DbInstance as Instance, DbSubnetGroup, Endpoint, PendingModifiedValues, Tag, VpcSecurityGroupMembership,
};
use aws_smithy_mocks::{MockResponse, MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_types::retry::RetryConfig;
use serde_json::{Value, json};
use tokio::time::Instant;
use webscale::apply::Phase;
use webscale::aws::{Clients, Cloud, CloudError};
use webscale::resources::db_instance::{self, DbInstance};
use webscale::resources::db_subnet_group::DbSubnetGroup as SubnetGroupKind;
use webscale::resources::{Address, Kind, Live, Op, Progress, ReadCtx};
use webscale::spec::Stack;

use super::{REGION, fast, stack, unused_clients};

const PRIMARY: &str = "mocked-primary";
const REPLICA: &str = "mocked-replica-1";
/// The primary's DbiResourceId: what its final snapshot is named after.
const RESOURCE_ID: &str = "db-ABCDEFGHIJKLMNOP";
const ACCOUNT: &str = "123456789012";

/// A stack with the data tier: the web and db groups (db admits only web, as the spec requires) and `replicas`
/// read replicas of a postgres 16 primary that may grow from 20 to 100 GiB.
fn spec(replicas: u32) -> String {
    format!(
        r#"
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
ingress = [{{ protocol = "tcp", ports = 80, cidr = "0.0.0.0/0" }}]
egress = [{{ protocol = "tcp", ports = 5432, security_group = "db" }}]

[security_groups.db]
description = "Database"
ingress = [{{ protocol = "tcp", ports = 5432, security_group = "web" }}]
egress = []

[database]
engine = "postgres"
engine_version = "16"
instance_class = "db.t4g.small"
storage_gb = 20
max_storage_gb = 100
backup_retention_days = 7
replicas = {replicas}
security_group = "db"
database_name = "app"
# Replicas need a password of the operator's: AWS makes none of a primary whose password RDS manages.
password_env = "MOCKED_DB_PASSWORD"
"#
    )
}

// =====================================================================================================================
// 1, 6: the create wait
// =====================================================================================================================

/// On AWS a new primary is `creating` for minutes, then `backing-up` (its first snapshot), then `available`. The
/// wait returns only once RDS says `available`, polls through the SDK waiter (not in a tight loop), and the progress
/// line the operator sees follows RDS's status.
#[tokio::test(start_paused = true)]
async fn the_create_wait_follows_creating_then_backing_up_until_available() {
    let answers = Log::default();
    let describe = over_time(
        PRIMARY,
        vec![
            (mins(4), Some(primary("creating").build())),
            (mins(6), Some(primary("backing-up").build())),
            (mins(0), Some(primary("available").build())),
        ],
        &answers,
    );
    let cloud = cloud_of(&[&describe]);
    let address = db_instance::primary();
    let start = Instant::now();

    let (result, shown) = watched(|progress| async move {
        DbInstance.wait(&cloud, &op(&address, Some(PRIMARY)), PRIMARY, Phase::Create, &progress).await
    })
    .await;

    result.unwrap_or_else(|e| panic!("the wait should succeed: {e}"));
    assert!(start.elapsed() >= mins(10), "returned only once available, after {:?}", start.elapsed());
    assert_eq!(answers.all().last().map(|a| a.ends_with("available")), Some(true), "{:?}", answers.all());
    assert_eq!(
        shown,
        ["creating", "backing-up", "available"],
        "the progress line follows RDS's status, in order; answers given: {:?}",
        answers.all()
    );
    // The kind looks once a minute to refresh the progress line, then restarts the SDK waiter, whose first poll
    // falls at the same instant. The waiter's next delays are random whole seconds from 30 s up (smithy's jittered
    // backoff), so a minute holds its polls at 0 and 30 s, and sometimes one more at exactly 60 s, beside the next
    // look: 3 calls a minute, 4 when the jitter draws 30 s twice. Never more, never a tight loop.
    let polls = describe.num_calls();
    assert!(
        (10..=41).contains(&polls),
        "10 minutes of waiting: at least one look a minute, at most 4 calls a minute; got {polls} DescribeDBInstances: {:?}",
        answers.all()
    );
}

/// Right after CreateDBInstance, DescribeDBInstances may not know the instance yet (eventual consistency; the wait's
/// own comment says so). The wait must keep waiting through DBInstanceNotFound instead of failing: the SDK's
/// DBInstanceAvailable waiter has no acceptor for that error and gives up at its first poll.
#[tokio::test(start_paused = true)]
async fn the_create_wait_survives_an_instance_not_visible_yet() {
    let answers = Log::default();
    let describe = over_time(
        PRIMARY,
        vec![
            (secs(20), None),
            (mins(3), Some(primary("creating").build())),
            (mins(0), Some(primary("available").build())),
        ],
        &answers,
    );
    let cloud = cloud_of(&[&describe]);
    let address = db_instance::primary();

    let (result, shown) = watched(|progress| async move {
        DbInstance.wait(&cloud, &op(&address, Some(PRIMARY)), PRIMARY, Phase::Create, &progress).await
    })
    .await;

    result.unwrap_or_else(|e| {
        panic!("the wait should survive DBInstanceNotFound right after the create: {e}; answers: {:?}", answers.all())
    });
    assert_eq!(shown.last().map(String::as_str), Some("available"));
}

/// An instance RDS could not create (`failed`) or cannot run as configured (`incompatible-parameters`) will never
/// become available: the wait ends as soon as it sees the status, with an error naming the address, the instance
/// and the status, instead of waiting out the 60-minute create timeout.
#[tokio::test(start_paused = true)]
async fn a_failed_instance_ends_the_create_wait_at_once_with_its_status() {
    for (status, after) in
        [("failed", mins(3)), ("incompatible-parameters", mins(0)), ("incompatible-parameters", mins(2))]
    {
        let answers = Log::default();
        let describe = over_time(
            PRIMARY,
            vec![(after, Some(primary("creating").build())), (mins(0), Some(primary(status).build()))],
            &answers,
        );
        let cloud = cloud_of(&[&describe]);
        let address = db_instance::primary();
        let start = Instant::now();

        let progress = Progress::default();
        let err = DbInstance
            .wait(&cloud, &op(&address, Some(PRIMARY)), PRIMARY, Phase::Create, &progress)
            .await
            .expect_err("a failed instance cannot be waited for");

        let took = start.elapsed();
        assert!(took <= after + mins(2), "{status}: ended {took:?} after the start, the status came at {after:?}");
        assert!(err.message.contains("db_instance.primary"), "{status}: names the address: {err}");
        assert!(err.message.contains(PRIMARY), "{status}: names the instance: {err}");
        assert!(err.message.contains(&format!("is {status}")), "{status}: names the status: {err}");
        assert!(!err.to_string().to_lowercase().contains("timed out"), "{status}: not a timeout: {err}");
        assert_eq!(progress.get().as_deref(), Some(status), "the progress line shows it too");
    }
}

/// A change applied now (apply_immediately = true) shows in PendingModifiedValues, often while RDS still says
/// `available`, then as `modifying`: the update's wait ends only once nothing is pending, so what depends on the
/// change (and the next plan) sees it made. Left to the maintenance window, the same pending change is not waited
/// for (it may be days away).
#[tokio::test(start_paused = true)]
async fn an_immediate_change_is_waited_for_until_nothing_is_pending() {
    let pending = || {
        primary("available")
            .pending_modified_values(PendingModifiedValues::builder().db_instance_class("db.t4g.medium").build())
    };
    for immediately in [true, false] {
        let answers = Log::default();
        let describe = over_time(
            PRIMARY,
            vec![
                (mins(2), Some(pending().build())),
                (mins(3), Some(primary("modifying").build())),
                (mins(0), Some(primary("available").db_instance_class("db.t4g.medium").build())),
            ],
            &answers,
        );
        let cloud = cloud_of(&[&describe]);
        let address = db_instance::primary();
        let desired = primary_attrs(|a| {
            a["instance_class"] = json!("db.t4g.medium");
            a["apply_immediately"] = json!(immediately);
        });
        let start = Instant::now();

        let (result, shown) = watched(|progress| async move {
            let op = Op { desired: desired.as_object().cloned(), ..op(&address, Some(PRIMARY)) };
            DbInstance.wait(&cloud, &op, PRIMARY, Phase::Update, &progress).await
        })
        .await;

        result.unwrap_or_else(|e| panic!("immediately={immediately}: {e}; answers: {:?}", answers.all()));
        if immediately {
            assert!(start.elapsed() >= mins(5), "waited until nothing was pending: {:?}", answers.all());
            assert!(shown.contains(&"modifying".to_string()), "the progress line showed it: {shown:?}");
            assert_eq!(shown.last().map(String::as_str), Some("available"));
        } else {
            assert!(start.elapsed() < mins(1), "a deferred change is not waited for: {:?}", answers.all());
        }
    }
}

// =====================================================================================================================
// 2: replicas
// =====================================================================================================================

/// RDS accepts a read replica only of an available source with backups; right after its create a primary is still
/// `backing-up`. The replica's create waits for the source and calls CreateDBInstanceReadReplica only once the
/// source was seen available, once, with the ownership tags in the create call.
#[tokio::test(start_paused = true)]
async fn a_replica_is_created_only_once_its_source_is_available() {
    let answers = Log::default();
    let describe = over_time(
        PRIMARY,
        vec![(mins(3), Some(primary("backing-up").build())), (mins(0), Some(primary("available").build()))],
        &answers,
    );
    let seen_available = Arc::new(AtomicBool::new(false));
    let requests: Calls<CreateDbInstanceReadReplicaInput> = Calls::default();
    let create = {
        let (answers, seen, requests) = (answers.clone(), seen_available.clone(), requests.clone());
        mock!(Rds::create_db_instance_read_replica).then_compute_output(move |input| {
            seen.store(answers.all().iter().any(|a| a.ends_with(" available")), Ordering::SeqCst);
            requests.push(input.clone());
            CreateDbInstanceReadReplicaOutput::builder().db_instance(replica_of(1, "creating").build()).build()
        })
    };
    let cloud = cloud_of(&[&describe, &create]);
    let address = db_instance::replica(1);
    let start = Instant::now();

    let created = DbInstance
        .create(&cloud, &Op { desired: Some(replica_desired()), ..op(&address, None) })
        .await
        .unwrap_or_else(|e| panic!("the replica's create should succeed: {e}"));

    assert_eq!(created.id, REPLICA);
    assert_eq!(create.num_calls(), 1, "one CreateDBInstanceReadReplica");
    assert!(seen_available.load(Ordering::SeqCst), "the source was seen available first: {:?}", answers.all());
    assert!(start.elapsed() >= mins(3), "it waited out the source's backing-up");
    let request = requests.only();
    assert_eq!(request.source_db_instance_identifier(), Some(PRIMARY));
    assert_eq!(request.db_instance_identifier(), Some(REPLICA));
    assert_eq!(request.availability_zone(), Some("us-east-1a"));
    assert_eq!(request.publicly_accessible(), Some(false));
    assert_eq!(request.vpc_security_group_ids(), ["sg-db"]);
    let tags: Vec<(&str, &str)> =
        request.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())).collect();
    assert!(tags.contains(&("webscale:stack", "mocked")), "owned from the create call on: {tags:?}");
    assert!(tags.contains(&("webscale:address", "db_instance.replica_1")), "{tags:?}");
}

/// RDS refuses a replica of a primary that keeps no backups (BackupRetentionPeriod 0; moto does not). The create
/// says so in the spec's terms (backup_retention_days) and never calls CreateDBInstanceReadReplica.
#[tokio::test(start_paused = true)]
async fn a_replica_of_a_primary_without_backups_is_refused_with_the_setting_to_change() {
    let answers = Log::default();
    let describe =
        over_time(PRIMARY, vec![(mins(0), Some(primary("available").backup_retention_period(0).build()))], &answers);
    let create = mock!(Rds::create_db_instance_read_replica)
        .then_output(|| CreateDbInstanceReadReplicaOutput::builder().build());
    let cloud = cloud_of(&[&describe, &create]);
    let address = db_instance::replica(1);

    let err = DbInstance
        .create(&cloud, &Op { desired: Some(replica_desired()), ..op(&address, None) })
        .await
        .expect_err("no replica of a primary without backups");

    assert!(err.message.contains("backup_retention_days"), "names the setting: {err}");
    assert!(err.message.contains("db_instance.replica_1"), "names the replica: {err}");
    assert!(err.message.contains(PRIMARY), "names the primary: {err}");
    assert_eq!(create.num_calls(), 0, "CreateDBInstanceReadReplica is never called");
}

// =====================================================================================================================
// 3, 4, 5: deletes
// =====================================================================================================================

/// The primary with deletion protection on (the default): protection is turned off first (DeleteDBInstance is
/// refused otherwise), then the delete keeps a final snapshot named as the plan named it (`data_loss`, from the
/// same read). With `--skip-final-snapshot`: SkipFinalSnapshot and no identifier (RDS refuses both together).
#[tokio::test]
async fn deleting_the_protected_primary_turns_protection_off_then_keeps_the_final_snapshot_the_plan_named() {
    for skip in [false, true] {
        let world = World::new(vec![primary("available").build()]);
        let cloud = world.cloud();
        let stack = stack(&spec(1));
        let live = read(&cloud, &stack).await;
        let planned = DbInstance
            .data_loss(one(&live, "db_instance.primary"))
            .expect("the primary's delete loses data")
            .final_snapshot
            .expect("the plan names the final snapshot");
        assert_eq!(planned, db_instance::final_snapshot(PRIMARY, RESOURCE_ID));
        let address = db_instance::primary();

        DbInstance
            .delete(&cloud, &Op { skip_final_snapshot: skip, ..op(&address, Some(PRIMARY)) })
            .await
            .unwrap_or_else(|e| panic!("skip={skip}: the delete should succeed: {e}"));

        assert_eq!(world.writes(), ["ModifyDBInstance", "DeleteDBInstance"], "skip={skip}: protection off first");
        let modify = world.modifies.only();
        assert_eq!(modify.db_instance_identifier(), Some(PRIMARY));
        assert_eq!(modify.deletion_protection(), Some(false));
        assert_eq!(modify.apply_immediately(), Some(true), "not left for the maintenance window");
        assert_eq!(modify.db_instance_class(), None, "nothing else changes: {modify:?}");
        let delete = world.deletes.only();
        assert_eq!(delete.db_instance_identifier(), Some(PRIMARY));
        if skip {
            assert_eq!(delete.skip_final_snapshot(), Some(true), "--skip-final-snapshot");
            assert_eq!(delete.final_db_snapshot_identifier(), None, "RDS refuses an identifier with skip");
        } else {
            assert_eq!(delete.skip_final_snapshot(), Some(false));
            assert_eq!(delete.final_db_snapshot_identifier(), Some(planned.as_str()), "the snapshot the plan promised");
        }
    }
}

/// A replica holds no data of its own and RDS refuses a final snapshot of one: its delete skips the snapshot with
/// no identifier, even without `--skip-final-snapshot`, and (protection off) makes no ModifyDBInstance.
#[tokio::test]
async fn deleting_a_replica_never_asks_for_a_snapshot() {
    let world = World::new(vec![primary("available").build(), replica_of(1, "available").build()]);
    let cloud = world.cloud();
    let live = read(&cloud, &stack(&spec(1))).await;
    assert!(DbInstance.data_loss(one(&live, "db_instance.replica_1")).is_none(), "the plan warns of no data loss");
    let address = db_instance::replica(1);

    DbInstance
        .delete(&cloud, &op(&address, Some(REPLICA)))
        .await
        .unwrap_or_else(|e| panic!("the replica's delete should succeed: {e}"));

    assert_eq!(world.writes(), ["DeleteDBInstance"]);
    let delete = world.deletes.only();
    assert_eq!(delete.db_instance_identifier(), Some(REPLICA));
    assert_eq!(delete.skip_final_snapshot(), Some(true));
    assert_eq!(delete.final_db_snapshot_identifier(), None);
}

/// RDS deletes an instance that is `failed`, `incompatible-restore` or `incompatible-network` only with
/// SkipFinalSnapshot (DeleteDBInstance API reference); such an instance has no data a snapshot could keep. The
/// failed create's own advice (`webscale apply --replace ... --allow-data-loss ...`) must therefore work without
/// `--skip-final-snapshot`: the delete skips the snapshot, with no identifier.
#[tokio::test]
async fn deleting_a_failed_primary_skips_the_snapshot_rds_would_refuse() {
    for status in ["failed", "incompatible-restore", "incompatible-network"] {
        let world = World::new(vec![primary(status).build()]);
        let address = db_instance::primary();

        DbInstance
            .delete(&world.cloud(), &op(&address, Some(PRIMARY)))
            .await
            .unwrap_or_else(|e| panic!("{status}: the delete should succeed: {e}"));

        let delete = world.deletes.only();
        assert_eq!(delete.skip_final_snapshot(), Some(true), "{status}: RDS refuses a final snapshot");
        assert_eq!(delete.final_db_snapshot_identifier(), None, "{status}");
    }
}

/// A delete repeated after its answer was lost (or raced by another run) finds the work done: the instance
/// already `deleting` (no second DeleteDBInstance), DeleteDBInstance answering InvalidDBInstanceState "already being
/// deleted", or the instance gone (DBInstanceNotFound from either call). Each counts as deleted. Another
/// InvalidDBInstanceState (a final snapshot of an instance still `creating`) is not: it stays an error.
#[tokio::test]
async fn a_repeated_delete_counts_what_is_already_under_way_as_done() {
    let address = db_instance::primary();
    let unprotected = || primary("available").deletion_protection(false).build();

    // Already deleting: nothing to send.
    let world = World::new(vec![primary("deleting").build()]);
    DbInstance.delete(&world.cloud(), &op(&address, Some(PRIMARY))).await.unwrap_or_else(|e| panic!("deleting: {e}"));
    assert_eq!(world.writes(), Vec::<String>::new(), "no ModifyDBInstance or DeleteDBInstance on an instance deleting");

    // Gone before the delete's describe.
    let world = World::new(vec![]);
    DbInstance.delete(&world.cloud(), &op(&address, Some(PRIMARY))).await.unwrap_or_else(|e| panic!("gone: {e}"));
    assert_eq!(world.writes(), Vec::<String>::new());

    // The describe still saw it available; the delete answers that it is under way, or gone.
    let under_way = || {
        InvalidDbInstanceStateFault::builder()
            .meta(meta("InvalidDBInstanceState", "Instance mocked-primary is already being deleted."))
            .build()
    };
    let gone = || {
        DbInstanceNotFoundFault::builder()
            .meta(meta("DBInstanceNotFound", "DBInstance mocked-primary not found."))
            .build()
    };
    let answers: [(&str, DeleteAnswer); 2] = [
        ("already being deleted", Box::new(move || DeleteDBInstanceError::InvalidDbInstanceStateFault(under_way()))),
        ("not found", Box::new(move || DeleteDBInstanceError::DbInstanceNotFoundFault(gone()))),
    ];
    for (what, answer) in answers {
        let world = World::new(vec![unprotected()]).failing_delete(answer);
        DbInstance
            .delete(&world.cloud(), &op(&address, Some(PRIMARY)))
            .await
            .unwrap_or_else(|e| panic!("{what}: counts as deleted, got {e}"));
        assert_eq!(world.writes(), ["DeleteDBInstance"], "{what}: tried once");
    }

    // Any other state error is a real refusal.
    let world = World::new(vec![unprotected()]).failing_delete(Box::new(|| {
        DeleteDBInstanceError::InvalidDbInstanceStateFault(
            InvalidDbInstanceStateFault::builder()
                .meta(meta(
                    "InvalidDBInstanceState",
                    "Instance mocked-primary is currently creating - a final snapshot cannot be taken.",
                ))
                .build(),
        )
    }));
    let err = DbInstance.delete(&world.cloud(), &op(&address, Some(PRIMARY))).await.expect_err("a refusal is an error");
    assert_eq!(err.code(), "InvalidDBInstanceState", "{err}");
}

/// A delete takes minutes on AWS: `deleting` until DescribeDBInstances answers DBInstanceNotFound, which is the
/// end of the wait (the DBInstanceDeleted waiter's success), not an error.
#[tokio::test(start_paused = true)]
async fn the_delete_wait_ends_when_the_instance_is_not_found() {
    let answers = Log::default();
    let describe = over_time(PRIMARY, vec![(mins(5), Some(primary("deleting").build())), (mins(0), None)], &answers);
    let cloud = cloud_of(&[&describe]);
    let address = db_instance::primary();
    let start = Instant::now();

    let (result, shown) = watched(|progress| async move {
        DbInstance.wait(&cloud, &op(&address, Some(PRIMARY)), PRIMARY, Phase::Delete, &progress).await
    })
    .await;

    result.unwrap_or_else(|e| panic!("the delete wait should succeed: {e}; answers: {:?}", answers.all()));
    assert!(start.elapsed() >= mins(5), "returned only once not found, after {:?}", start.elapsed());
    assert_eq!(shown, ["deleting", "deleted"]);
    assert!(describe.num_calls() <= 20, "polled, not looped: {} calls", describe.num_calls());
}

// =====================================================================================================================
// 7: reads
// =====================================================================================================================

/// With apply_immediately = false a class change waits for the maintenance window in PendingModifiedValues: the
/// read reports the pending class, so the plan after that apply is empty instead of asking again. The same read
/// keeps the spec's major version ("16") when RDS reports a minor ("16.4"), and the spec's storage when autoscaling
/// grew it within the ceiling (25 of at most 100 GiB). Every attribute the primary and the replica read back equals
/// the desired one (references and the write-only password aside): nothing to plan.
#[tokio::test]
async fn a_pending_change_reads_as_made_and_what_aws_chose_reads_as_the_spec() {
    let pending = || PendingModifiedValues::builder().db_instance_class("db.t4g.small").build();
    let world = World::new(vec![
        primary("available")
            .db_instance_class("db.t4g.micro")
            .pending_modified_values(pending())
            .engine_version("16.4")
            .allocated_storage(25)
            .build(),
        replica_of(1, "available").db_instance_class("db.t4g.micro").pending_modified_values(pending()).build(),
    ]);
    let cloud = world.cloud();
    let stack = stack(&spec(1));
    let live = read(&cloud, &stack).await;

    let primary = one(&live, "db_instance.primary");
    assert_eq!(primary.attrs["instance_class"], "db.t4g.small", "the pending class");
    assert_eq!(primary.attrs["engine_version"], "16", "the spec's major version");
    assert_eq!(primary.attrs["storage_gb"], 20, "storage grown by autoscaling is not drift");
    assert_eq!(primary.attrs["max_storage_gb"], 100);
    assert_eq!(one(&live, "db_instance.replica_1").attrs["instance_class"], "db.t4g.small");
    for desired in DbInstance.desired(&stack) {
        let live = one(&live, desired.address.as_str());
        let differ: Vec<(&String, &Value, Option<&Value>)> = desired
            .attrs
            .iter()
            .filter(|(k, _)| !["subnet_group", "security_groups", "source", "password"].contains(&k.as_str()))
            .filter(|(k, v)| live.attrs.get(*k) != Some(*v))
            .map(|(k, v)| (k, v, live.attrs.get(k)))
            .collect();
        assert!(differ.is_empty(), "{}: (attribute, desired, live) that differ: {differ:#?}", desired.address);
    }
}

/// The normalisations above go no further than the spec allows: a full version in the spec is compared as is, a
/// major upgrade made by hand is drift, and storage above the spec without autoscaling (no ceiling) is drift.
#[tokio::test]
async fn what_the_spec_fixes_is_not_normalised_away() {
    let world = World::new(vec![
        primary("available").engine_version("17.2").allocated_storage(25).max_allocated_storage(25).build(),
    ]);
    let cloud = world.cloud();
    let text = spec(0).replace("max_storage_gb = 100\n", "");
    let live = read(&cloud, &stack(&text)).await;
    let primary = one(&live, "db_instance.primary");
    assert_eq!(primary.attrs["engine_version"], "17.2", "another major version is drift");
    assert_eq!(primary.attrs["storage_gb"], 25, "no autoscaling in the spec: 25 GiB is drift");
    assert_eq!(primary.attrs["max_storage_gb"], Value::Null, "a ceiling equal to the allocation is no autoscaling");

    let world = World::new(vec![primary_with_version("16.4")]);
    let live =
        read(&world.cloud(), &stack(&spec(0).replace(r#"engine_version = "16""#, r#"engine_version = "16.3""#))).await;
    assert_eq!(one(&live, "db_instance.primary").attrs["engine_version"], "16.4", "a full version is compared as is");
}

fn primary_with_version(version: &str) -> Instance {
    primary("available").engine_version(version).build()
}

// =====================================================================================================================
// 8: the read budget
// =====================================================================================================================

/// A plan's RDS reads cost the same whatever the number of replicas: one DescribeDBInstances per page of 100 (tags
/// come inline), one DescribeDBSubnetGroups per page of 100, and ListTagsForResource only for the subnet groups
/// named like the stack's (one), never per instance. The region also holds 150 instances and 129 subnet groups of
/// other stacks or of nobody, so both listings take two pages, and the stack's replicas sit on the second page:
/// finding them all proves every page is read.
#[tokio::test]
async fn reading_the_data_tier_costs_the_same_calls_for_one_replica_as_for_five() {
    let mut budgets = Vec::new();
    for replicas in [1, 5] {
        let mut instances = vec![primary("available").build()];
        for n in 0..140 {
            instances.push(foreign(&format!("other-db-{n}"), Some("other")));
        }
        for n in 0..10 {
            instances.push(foreign(&format!("legacy-db-{n}"), None));
        }
        for n in 1..=replicas {
            instances.push(replica_of(n, "available").build());
        }
        let mut groups = vec![subnet_group("mocked-main")];
        groups.push(subnet_group("other-main"));
        groups.push(subnet_group("mockedx-main"));
        for n in 0..127 {
            groups.push(subnet_group(&format!("legacy-{n}")));
        }
        let world = World::new(instances).with_groups(groups);
        let cloud = world.cloud();
        let stack = stack(&spec(replicas));
        let ctx = ReadCtx::new(&cloud, &stack);

        let instances = DbInstance.read(&ctx, REGION).await.unwrap_or_else(|e| panic!("read: {e}"));
        let groups = SubnetGroupKind.read(&ctx, REGION).await.unwrap_or_else(|e| panic!("read: {e}"));

        let mut addresses: Vec<String> = instances.iter().map(|l| l.address.to_string()).collect();
        addresses.sort();
        let mut want = vec!["db_instance.primary".to_string()];
        want.extend((1..=replicas).map(|n| format!("db_instance.replica_{n}")));
        assert_eq!(addresses, want, "{replicas} replicas: exactly the stack's instances, from both pages");
        let groups: Vec<&str> = groups.iter().map(|l| l.id.as_str()).collect();
        assert_eq!(groups, ["mocked-main"], "exactly the stack's subnet group");
        assert_eq!(world.page_sizes(), [Some(100); 4], "the largest page RDS allows, for both listings");
        assert_eq!(
            world.tagged(),
            [arn("subgrp", "mocked-main")],
            "tags asked only of the group named like the stack's"
        );
        let budget = world.read_calls();
        assert_eq!(
            budget,
            [("DescribeDBInstances", 2), ("DescribeDBSubnetGroups", 2), ("ListTagsForResource", 1)],
            "{replicas} replicas"
        );
        budgets.push(budget);
    }
    assert_eq!(budgets[0], budgets[1], "5 replicas cost what 1 does");
}

// =====================================================================================================================
// 9: update
// =====================================================================================================================

/// ModifyDBInstance carries only what differs (an unchanged engine version or storage sent again would start
/// needless work, and a version sent at all may start an upgrade), with ApplyImmediately as the spec says.
#[tokio::test]
async fn an_update_sends_only_what_differs_with_apply_immediately_as_the_spec_says() {
    // A class change, left to the maintenance window.
    let world = World::new(vec![primary("available").build()]);
    let live = primary_attrs(|a| a["instance_class"] = json!("db.t4g.micro"));
    let desired = primary_attrs(|_| {});
    update(&world, desired, live).await;
    let modify = world.modifies.only();
    assert_eq!(modify.db_instance_identifier(), Some(PRIMARY));
    assert_eq!(modify.db_instance_class(), Some("db.t4g.small"));
    assert_eq!(modify.apply_immediately(), Some(false), "apply_immediately = false");
    assert_eq!(sent(&modify), ["DBInstanceClass"], "only the class: {modify:?}");
    assert_eq!(world.writes(), ["ModifyDBInstance"], "no tag calls: the tags did not change");

    // Storage and backups, now.
    let world = World::new(vec![primary("available").build()]);
    let live = primary_attrs(|a| a["apply_immediately"] = json!(true));
    let desired = primary_attrs(|a| {
        a["storage_gb"] = json!(30);
        a["backup_retention_days"] = json!(14);
        a["apply_immediately"] = json!(true);
    });
    update(&world, desired, live).await;
    let modify = world.modifies.only();
    assert_eq!(modify.allocated_storage(), Some(30));
    assert_eq!(modify.backup_retention_period(), Some(14));
    assert_eq!(modify.apply_immediately(), Some(true));
    assert_eq!(sent(&modify), ["AllocatedStorage", "BackupRetentionPeriod"], "{modify:?}");

    // A replica's class: none of the primary's settings go with it.
    let world = World::new(vec![replica_of(1, "available").build()]);
    let mut live = replica_desired();
    live["instance_class"] = json!("db.t4g.micro");
    update_at(&world, &db_instance::replica(1), REPLICA, Value::Object(replica_desired()), Value::Object(live)).await;
    let modify = world.modifies.only();
    assert_eq!(modify.db_instance_identifier(), Some(REPLICA));
    assert_eq!(sent(&modify), ["DBInstanceClass"], "{modify:?}");
}

/// Only the tags differ: no ModifyDBInstance at all (it would still be an API call that can fail or queue behind a
/// maintenance), only the tag calls, on the instance's ARN: the stale key removed, the new one added.
#[tokio::test]
async fn a_tag_change_alone_makes_no_modify_call() {
    let world = World::new(vec![primary("available").build()]);
    let live = primary_attrs(|a| a["tags"]["owner"] = json!("someone"));
    let desired = primary_attrs(|a| a["tags"]["team"] = json!("data"));
    update(&world, desired, live).await;

    assert_eq!(world.modifies.all().len(), 0, "no ModifyDBInstance");
    let writes = world.writes();
    assert_eq!(writes, ["RemoveTagsFromResource", "AddTagsToResource"], "only tag calls");
    let removed = world.untags.only();
    assert_eq!(removed.resource_name(), Some(arn("db", PRIMARY).as_str()));
    assert_eq!(removed.tag_keys(), ["owner"]);
    let added = world.tags.only();
    assert_eq!(added.resource_name(), Some(arn("db", PRIMARY).as_str()));
    let pairs: Vec<(&str, &str)> =
        added.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())).collect();
    assert_eq!(pairs, [("team", "data")], "only the missing tag");
}

/// The primary's attributes as the engine hands them to `update` (references resolved), equal to the spec's, then
/// changed by `edit`.
fn primary_attrs(edit: impl FnOnce(&mut Value)) -> Value {
    let mut attrs = json!({
        "engine": "postgres",
        "engine_version": "16",
        "instance_class": "db.t4g.small",
        "storage_type": "gp3",
        "storage_gb": 20,
        "max_storage_gb": 100,
        "multi_az": false,
        "backup_retention_days": 7,
        "backup_window": null,
        "maintenance_window": null,
        "encrypted": true,
        "deletion_protection": true,
        "publicly_accessible": false,
        "apply_immediately": false,
        "subnet_group": "mocked-main",
        "security_groups": ["sg-db"],
        "username": "webscale",
        "database_name": "app",
        "port": 5432,
        "parameter_group": null,
        "manage_password": false,
        "password": null,
        "tags": owned_tag_map("db_instance.primary"),
    });
    edit(&mut attrs);
    attrs
}

async fn update(world: &World, desired: Value, live: Value) {
    update_at(world, &db_instance::primary(), PRIMARY, desired, live).await;
}

/// Runs `update` as the engine does: `changed` lists the attributes that differ.
async fn update_at(world: &World, address: &Address, id: &str, desired: Value, live: Value) {
    let (Value::Object(desired), Value::Object(live)) = (desired, live) else { panic!("attributes are objects") };
    let changed: Vec<String> =
        desired.iter().filter(|(k, v)| live.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
    let op = Op { desired: Some(desired), live: Some(live), changed: &changed, ..op(address, Some(id)) };
    DbInstance.update(&world.cloud(), &op).await.unwrap_or_else(|e| panic!("{address} update ({changed:?}): {e}"));
}

/// The ModifyDBInstance parameters set, besides the identifier and ApplyImmediately, in the API's names.
fn sent(m: &ModifyDbInstanceInput) -> Vec<&'static str> {
    let fields = [
        ("DBInstanceClass", m.db_instance_class().is_some()),
        ("VpcSecurityGroupIds", m.vpc_security_group_ids.is_some()),
        ("PubliclyAccessible", m.publicly_accessible().is_some()),
        ("DeletionProtection", m.deletion_protection().is_some()),
        ("AllocatedStorage", m.allocated_storage().is_some()),
        ("MaxAllocatedStorage", m.max_allocated_storage().is_some()),
        ("StorageType", m.storage_type().is_some()),
        ("MultiAZ", m.multi_az().is_some()),
        ("BackupRetentionPeriod", m.backup_retention_period().is_some()),
        ("PreferredBackupWindow", m.preferred_backup_window().is_some()),
        ("PreferredMaintenanceWindow", m.preferred_maintenance_window().is_some()),
        ("EngineVersion", m.engine_version().is_some()),
        ("AllowMajorVersionUpgrade", m.allow_major_version_upgrade().is_some()),
        ("DBPortNumber", m.db_port_number().is_some()),
        ("DBParameterGroupName", m.db_parameter_group_name().is_some()),
        ("ManageMasterUserPassword", m.manage_master_user_password().is_some()),
        ("MasterUserPassword", m.master_user_password().is_some()),
    ];
    fields.into_iter().filter(|(_, set)| *set).map(|(name, _)| name).collect()
}

// =====================================================================================================================
// Harness
// =====================================================================================================================

fn mins(n: u64) -> Duration {
    Duration::from_secs(60 * n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn arn(kind: &str, name: &str) -> String {
    format!("arn:aws:rds:{REGION}:{ACCOUNT}:{kind}:{name}")
}

fn meta(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

fn tag(key: &str, value: &str) -> Tag {
    Tag::builder().key(key).value(value).build()
}

/// The tags webscale puts on `address` (Name, stack, address), as the spec has no stack tags.
fn owned_tag_map(address: &str) -> Value {
    json!({
        "Name": format!("mocked-{}", address.replace(['_', '.'], "-")),
        "webscale:address": address,
        "webscale:stack": "mocked",
    })
}

fn owned_tags(address: &str) -> Vec<Tag> {
    let Value::Object(map) = owned_tag_map(address) else { unreachable!() };
    let mut tags: Vec<Tag> = map.iter().map(|(k, v)| tag(k, v.as_str().unwrap_or_default())).collect();
    tags.push(tag("aws:cloudformation:stack-name", "never-diffed"));
    tags
}

/// The primary as RDS describes it once created from [`spec`]: everything as the spec asks, protection on.
fn primary(status: &str) -> DbInstanceBuilder {
    Instance::builder()
        .db_instance_identifier(PRIMARY)
        .db_instance_arn(arn("db", PRIMARY))
        .dbi_resource_id(RESOURCE_ID)
        .db_instance_status(status)
        .engine("postgres")
        .engine_version("16.4")
        .db_instance_class("db.t4g.small")
        .storage_type("gp3")
        .allocated_storage(20)
        .max_allocated_storage(100)
        .multi_az(false)
        .backup_retention_period(7)
        .preferred_backup_window("03:12-03:42")
        .preferred_maintenance_window("sun:05:00-sun:05:30")
        .storage_encrypted(true)
        .deletion_protection(true)
        .publicly_accessible(false)
        .availability_zone("us-east-1b")
        .master_username("webscale")
        .db_name("app")
        .db_subnet_group(DbSubnetGroup::builder().db_subnet_group_name("mocked-main").vpc_id("vpc-main").build())
        .vpc_security_groups(
            VpcSecurityGroupMembership::builder().vpc_security_group_id("sg-db").status("active").build(),
        )
        .endpoint(Endpoint::builder().address("mocked-primary.abc.us-east-1.rds.amazonaws.com").port(5432).build())
        .db_instance_port(0)
        .set_tag_list(Some(owned_tags("db_instance.primary")))
}

/// Replica `n` of the primary, in zone a.
fn replica_of(n: u32, status: &str) -> DbInstanceBuilder {
    let id = format!("mocked-replica-{n}");
    Instance::builder()
        .db_instance_identifier(&id)
        .db_instance_arn(arn("db", &id))
        .dbi_resource_id(format!("db-REPLICA{n}"))
        .db_instance_status(status)
        .read_replica_source_db_instance_identifier(PRIMARY)
        .engine("postgres")
        .engine_version("16.4")
        .db_instance_class("db.t4g.small")
        .availability_zone("us-east-1a")
        .deletion_protection(false)
        .publicly_accessible(false)
        .vpc_security_groups(
            VpcSecurityGroupMembership::builder().vpc_security_group_id("sg-db").status("active").build(),
        )
        .set_tag_list(Some(owned_tags(&format!("db_instance.replica_{n}"))))
}

/// An instance of another stack (`stack`) or of nobody.
fn foreign(id: &str, stack: Option<&str>) -> Instance {
    let tags = match stack {
        Some(s) => vec![tag("webscale:stack", s), tag("webscale:address", "db_instance.primary")],
        None => vec![tag("team", "legacy")],
    };
    Instance::builder()
        .db_instance_identifier(id)
        .db_instance_arn(arn("db", id))
        .db_instance_status("available")
        .engine("mysql")
        .set_tag_list(Some(tags))
        .build()
}

fn subnet_group(name: &str) -> DbSubnetGroup {
    DbSubnetGroup::builder()
        .db_subnet_group_name(name)
        .db_subnet_group_arn(arn("subgrp", name))
        .db_subnet_group_description("a group")
        .vpc_id("vpc-main")
        .build()
}

/// Replica 1's attributes as the engine hands them to `create` (the primary's id resolved).
fn replica_desired() -> serde_json::Map<String, Value> {
    let Value::Object(map) = json!({
        "source": PRIMARY,
        "availability_zone": "us-east-1a",
        "instance_class": "db.t4g.small",
        "security_groups": ["sg-db"],
        "publicly_accessible": false,
        "deletion_protection": false,
        "apply_immediately": false,
        "tags": owned_tag_map("db_instance.replica_1"),
    }) else {
        unreachable!()
    };
    map
}

/// An operation on `address` (`id` once it exists); callers set what else they need.
fn op<'a>(address: &'a Address, id: Option<&'a str>) -> Op<'a> {
    Op {
        address,
        region: REGION,
        id,
        desired: None,
        live: None,
        changed: &[],
        token: "ws-test".into(),
        digests: Default::default(),
        skip_final_snapshot: false,
        wait: false,
        stack: None,
        progress: None,
    }
}

/// A cloud whose RDS client answers from `rules` (any unexpected call panics), every other service unused.
fn cloud_of(rules: &[&Rule]) -> Cloud {
    let interceptor =
        rules.iter().fold(MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny), |i, r| i.with_rule(r));
    let rds = Rds::from_conf(
        aws_sdk_rds::Config::builder()
            .behavior_version_latest()
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build(),
    );
    Cloud::from_clients("mocked", REGION, Clients { rds, ..unused_clients() }, fast())
}

async fn read(cloud: &Cloud, stack: &Stack) -> Vec<Live> {
    DbInstance.read(&ReadCtx::new(cloud, stack), REGION).await.unwrap_or_else(|e| panic!("read: {e}"))
}

fn one<'a>(live: &'a [Live], address: &str) -> &'a Live {
    let found: Vec<&Live> = live.iter().filter(|l| l.address.as_str() == address).collect();
    assert_eq!(found.len(), 1, "one {address} in {:?}", live.iter().map(|l| l.address.to_string()).collect::<Vec<_>>());
    found[0]
}

/// Answers given, as text ("120s backing-up").
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Requests received by one operation.
struct Calls<T>(Arc<Mutex<Vec<T>>>);

impl<T> Default for Calls<T> {
    fn default() -> Self {
        Calls(Arc::default())
    }
}

impl<T> Clone for Calls<T> {
    fn clone(&self) -> Self {
        Calls(self.0.clone())
    }
}

impl<T: Clone + std::fmt::Debug> Calls<T> {
    fn push(&self, request: T) {
        self.0.lock().unwrap().push(request);
    }

    fn all(&self) -> Vec<T> {
        self.0.lock().unwrap().clone()
    }

    fn only(&self) -> T {
        let all = self.all();
        assert_eq!(all.len(), 1, "exactly one request: {all:#?}");
        all.into_iter().next().unwrap()
    }
}

/// DescribeDBInstances of `id` answering, as virtual time passes from now, each step's instance for the step's
/// duration (the last step's for ever); `None` answers DBInstanceNotFound, as RDS does for an instance it does not
/// know. Each answer goes to `answers` as "SECONDSs STATUS".
fn over_time(id: &'static str, steps: Vec<(Duration, Option<Instance>)>, answers: &Log) -> Rule {
    let start = Instant::now();
    let answers = answers.clone();
    mock!(Rds::describe_db_instances)
        .match_requests(move |i| i.db_instance_identifier() == Some(id))
        .then_compute_response(move |_| {
            let now = start.elapsed();
            let mut end = Duration::ZERO;
            let step = steps
                .iter()
                .enumerate()
                .find(|(n, (length, _))| {
                    end += *length;
                    *n == steps.len() - 1 || now < end
                })
                .map(|(_, (_, answer))| answer)
                .expect("at least one step");
            let status = step.as_ref().map_or("not-found", |i| i.db_instance_status().unwrap_or_default());
            answers.push(format!("{}s {status}", now.as_secs()));
            match step {
                Some(i) => MockResponse::Output(DescribeDbInstancesOutput::builder().db_instances(i.clone()).build()),
                None => MockResponse::Error(not_found(id)),
            }
        })
}

fn not_found(id: &str) -> DescribeDBInstancesError {
    let message = format!("DBInstance {id} not found.");
    DescribeDBInstancesError::DbInstanceNotFoundFault(
        DbInstanceNotFoundFault::builder().message(&message).meta(meta("DBInstanceNotFound", &message)).build(),
    )
}

/// Runs `wait` with a progress line that is looked at every 10 s of virtual time, as the engine's heartbeat does;
/// returns its result and the distinct statuses shown, in order, ending with the last.
async fn watched<F, Fut>(wait: F) -> (Result<(), CloudError>, Vec<String>)
where
    F: FnOnce(Arc<Progress>) -> Fut,
    Fut: std::future::Future<Output = Result<(), CloudError>>,
{
    let progress = Arc::new(Progress::default());
    let shown = Arc::new(Mutex::new(Vec::<String>::new()));
    let note = |shown: &Mutex<Vec<String>>, progress: &Progress| {
        if let Some(status) = progress.get() {
            let mut shown = shown.lock().unwrap();
            if shown.last() != Some(&status) {
                shown.push(status);
            }
        }
    };
    let sampler = tokio::spawn({
        let (progress, shown) = (progress.clone(), shown.clone());
        async move {
            loop {
                tokio::time::sleep(secs(10)).await;
                note(&shown, &progress);
            }
        }
    });
    let result = wait(progress.clone()).await;
    sampler.abort();
    note(&shown, &progress);
    let shown = shown.lock().unwrap().clone();
    (result, shown)
}

/// What DeleteDBInstance answers instead of accepting the delete.
type DeleteAnswer = Box<dyn Fn() -> DeleteDBInstanceError + Send + Sync>;

/// An RDS region holding `instances` (and subnet groups): answers the listings page by page, a describe by
/// identifier, and records every write and the read calls' costs.
struct World {
    instances: Arc<Vec<Instance>>,
    groups: Arc<Vec<DbSubnetGroup>>,
    delete_error: Option<Arc<dyn Fn() -> DeleteDBInstanceError + Send + Sync>>,
    writes: Log,
    page_sizes: Calls<Option<i32>>,
    tagged: Calls<String>,
    modifies: Calls<ModifyDbInstanceInput>,
    deletes: Calls<DeleteDbInstanceInput>,
    tags: Calls<AddTagsToResourceInput>,
    untags: Calls<RemoveTagsFromResourceInput>,
    rules: Mutex<Vec<Rule>>,
}

impl World {
    fn new(instances: Vec<Instance>) -> World {
        World {
            instances: Arc::new(instances),
            groups: Arc::default(),
            delete_error: None,
            writes: Log::default(),
            page_sizes: Calls::default(),
            tagged: Calls::default(),
            modifies: Calls::default(),
            deletes: Calls::default(),
            tags: Calls::default(),
            untags: Calls::default(),
            rules: Mutex::default(),
        }
    }

    fn with_groups(mut self, groups: Vec<DbSubnetGroup>) -> World {
        self.groups = Arc::new(groups);
        self
    }

    /// DeleteDBInstance answers this error.
    fn failing_delete(mut self, error: DeleteAnswer) -> World {
        self.delete_error = Some(Arc::from(error));
        self
    }

    /// The write calls made, in order.
    fn writes(&self) -> Vec<String> {
        self.writes.all()
    }

    /// MaxRecords of every listing page asked for.
    fn page_sizes(&self) -> Vec<Option<i32>> {
        self.page_sizes.all()
    }

    /// The ARNs ListTagsForResource was asked about.
    fn tagged(&self) -> Vec<String> {
        self.tagged.all()
    }

    /// Calls per read operation.
    fn read_calls(&self) -> Vec<(&'static str, usize)> {
        let rules = self.rules.lock().unwrap();
        vec![
            ("DescribeDBInstances", rules[0].num_calls()),
            ("DescribeDBSubnetGroups", rules[1].num_calls()),
            ("ListTagsForResource", rules[2].num_calls()),
        ]
    }

    /// A cloud answering from this world (each call to `cloud` adds its own rules; the counts are of the last).
    fn cloud(&self) -> Cloud {
        let instances = self.instances.clone();
        let (page_sizes, instance_pages) = (self.page_sizes.clone(), self.page_sizes.clone());
        let describe = mock!(Rds::describe_db_instances).then_compute_response(move |input| {
            match input.db_instance_identifier() {
                Some(id) => match instances.iter().find(|i| i.db_instance_identifier() == Some(id)) {
                    Some(i) => {
                        MockResponse::Output(DescribeDbInstancesOutput::builder().db_instances(i.clone()).build())
                    }
                    None => MockResponse::Error(not_found(id)),
                },
                None => {
                    instance_pages.push(input.max_records());
                    let (page, marker) = page(&instances, input.marker(), input.max_records());
                    MockResponse::Output(
                        DescribeDbInstancesOutput::builder().set_db_instances(Some(page)).set_marker(marker).build(),
                    )
                }
            }
        });
        let groups = self.groups.clone();
        let list_groups = mock!(Rds::describe_db_subnet_groups).then_compute_output(move |input| {
            page_sizes.push(input.max_records());
            let (page, marker) = page(&groups, input.marker(), input.max_records());
            DescribeDbSubnetGroupsOutput::builder().set_db_subnet_groups(Some(page)).set_marker(marker).build()
        });
        let tagged = self.tagged.clone();
        let list_tags = mock!(Rds::list_tags_for_resource).then_compute_output(move |input| {
            let name = input.resource_name().unwrap_or_default().to_string();
            tagged.push(name.clone());
            let tags = match name.rsplit(':').next() {
                Some("mocked-main") => owned_tags("db_subnet_group.main"),
                Some(other) => vec![tag("webscale:stack", other.trim_end_matches("-main"))],
                None => Vec::new(),
            };
            ListTagsForResourceOutput::builder().set_tag_list(Some(tags)).build()
        });
        let (writes, modifies) = (self.writes.clone(), self.modifies.clone());
        let modify = mock!(Rds::modify_db_instance).then_compute_output(move |input| {
            writes.push("ModifyDBInstance");
            modifies.push(input.clone());
            let id = input.db_instance_identifier().unwrap_or_default();
            ModifyDbInstanceOutput::builder()
                .db_instance(Instance::builder().db_instance_identifier(id).db_instance_arn(arn("db", id)).build())
                .build()
        });
        let (writes, deletes, error) = (self.writes.clone(), self.deletes.clone(), self.delete_error.clone());
        let delete = mock!(Rds::delete_db_instance).then_compute_response(move |input| {
            writes.push("DeleteDBInstance");
            deletes.push(input.clone());
            match &error {
                Some(e) => MockResponse::Error(e()),
                None => MockResponse::Output(DeleteDbInstanceOutput::builder().build()),
            }
        });
        let (writes, tags) = (self.writes.clone(), self.tags.clone());
        let add_tags = mock!(Rds::add_tags_to_resource).then_compute_output(move |input| {
            writes.push("AddTagsToResource");
            tags.push(input.clone());
            AddTagsToResourceOutput::builder().build()
        });
        let (writes, untags) = (self.writes.clone(), self.untags.clone());
        let remove_tags = mock!(Rds::remove_tags_from_resource).then_compute_output(move |input| {
            writes.push("RemoveTagsFromResource");
            untags.push(input.clone());
            RemoveTagsFromResourceOutput::builder().build()
        });
        let rules = vec![describe, list_groups, list_tags, modify, delete, add_tags, remove_tags];
        let cloud = cloud_of(&rules.iter().collect::<Vec<_>>());
        *self.rules.lock().unwrap() = rules;
        cloud
    }
}

/// One page of `items` as RDS pages them: MaxRecords (default 100) from the marker on, and the next marker.
fn page<T: Clone>(items: &[T], marker: Option<&str>, max: Option<i32>) -> (Vec<T>, Option<String>) {
    let from: usize = marker.map(|m| m.parse().expect("a marker this world gave")).unwrap_or(0);
    let size = max.unwrap_or(100) as usize;
    let to = (from + size).min(items.len());
    (items[from..to].to_vec(), (to < items.len()).then(|| to.to_string()))
}
