//! The data tier (`db_subnet_group.main`, `db_instance.primary`, `db_instance.replica_N`) against the emulator.
//!
//! The real binary applies the stack; an RDS and an EC2 client of the test's own check what a user would: a primary
//! and its replicas in the stack's DB subnet group over the private subnets, not public, encrypted, the replicas
//! pointing at the primary, the database group admitting only the web group; then the changes the issue names
//! (replicas 2 -> 3 -> 1, a class change in place, an engine change refused without `--allow-data-loss`, destroy
//! refused without it and keeping a final snapshot with it), and the master password: kept by RDS (the outputs
//! name its secret), then from `password_env`, which appears in no output, saved plan or `-vv` log.
//!
//! moto only (it makes every instance `available` at once and applies changes at once): LocalStack's free edition
//! does not serve RDS, so these tests are skipped there with the reason printed. The ordering rules of real RDS
//! (creating -> backing-up -> available, a replica's source with backups) are tested with mocked SDK responses.

use std::collections::BTreeMap;
use std::ops::{Deref, DerefMut};
use std::process::{Command, Stdio};

use aws_sdk_rds::error::ProvideErrorMetadata;
use aws_sdk_rds::types::DbInstance;
use serde_json::Value;

use crate::support::{self, Engine, Run, TestStack, ec2, owned, tag};

const PRIMARY: &str = "db_instance.primary";
const REPLICA_1: &str = "db_instance.replica_1";
const REPLICA_2: &str = "db_instance.replica_2";
const REPLICA_3: &str = "db_instance.replica_3";

/// What a test's cleanup runs: the primary is deletion-protected, so a plain destroy is refused.
const CLEANUP: [&str; 5] = ["destroy", "--auto-approve", "--allow-data-loss", PRIMARY, "--skip-final-snapshot"];

/// The variable the reference stack's `password_env` names, and that line of it.
const PASSWORD_ENV: &str = "WEBSCALE_DB_PASSWORD";
const PASSWORD_LINE: &str = "password_env = \"WEBSCALE_DB_PASSWORD\"";

/// Whether to skip: LocalStack's free edition does not serve RDS (prints why).
fn skip() -> bool {
    if support::engine() == Engine::LocalStack {
        println!("SKIPPED: RDS (the data tier) is not served by LocalStack's free edition; tested on moto");
        return true;
    }
    false
}

/// A test's stack with a database: runs webscale with the master password of its own in `PASSWORD_ENV`, for the
/// child process only (tests run in parallel in one process, so none may set a variable on it), and on a failure
/// destroys the stack with `--allow-data-loss` (TestStack's own cleanup would be refused by the primary's deletion
/// protection).
struct DbStack {
    stack: TestStack,
    password: String,
}

impl DbStack {
    fn new(test: &str, spec: &str) -> DbStack {
        DbStack { stack: TestStack::new(test).with_spec(spec), password: password("Sup3r") }
    }

    /// Runs `webscale ARGS -f SPEC` as `support::webscale` does, with the stack's own password in `PASSWORD_ENV`.
    fn run(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-f", self.stack.spec.to_str().unwrap()]);
        let mut command = Command::new(env!("CARGO_BIN_EXE_webscale"));
        command
            .args(&all)
            .env("AWS_ENDPOINT_URL", support::endpoint())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", support::REGION)
            .env_remove("AWS_PROFILE")
            // -vv must log what -vv logs, whatever the developer's shell says.
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null());
        command.env(PASSWORD_ENV, &self.password);
        let out = command.output().expect("run webscale");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn apply(&self) -> Run {
        self.run(&["apply", "--auto-approve"]).success()
    }

    /// The plan as JSON.
    fn plan(&self) -> Value {
        let run = self.run(&["plan", "--json"]).success();
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("plan --json is not JSON ({e}):\n{}", run.stdout))
    }

    /// `plan --detailed-exitcode` says there is nothing to do.
    fn assert_converged(&self) {
        let run = self.run(&["plan", "--detailed-exitcode"]);
        assert_eq!(run.code, 0, "a plan after the apply has changes:\n{run}");
    }
}

impl Deref for DbStack {
    type Target = TestStack;
    fn deref(&self) -> &TestStack {
        &self.stack
    }
}

impl DerefMut for DbStack {
    fn deref_mut(&mut self) -> &mut TestStack {
        &mut self.stack
    }
}

impl Drop for DbStack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.run(&CLEANUP);
        }
    }
}

/// An RDS client of the test's own.
async fn rds() -> aws_sdk_rds::Client {
    aws_sdk_rds::Client::new(&support::sdk_config().await)
}

/// Planned actions by address (`replace` spelled with its order), from `plan --json`, no-ops left out.
fn actions(plan: &Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["action"] != "no_op")
        .map(|c| {
            let action = match c["replace_order"].as_str() {
                Some(order) => format!("replace ({order})"),
                None => c["action"].as_str().unwrap().to_string(),
            };
            (c["address"].as_str().unwrap().to_string(), action)
        })
        .collect();
    out.sort();
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

fn change<'a>(plan: &'a Value, address: &str) -> &'a Value {
    plan["changes"].as_array().unwrap().iter().find(|c| c["address"] == address).unwrap()
}

/// The names of the attributes a planned change touches.
fn changed(plan: &Value, address: &str) -> Vec<String> {
    change(plan, address)["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

fn rds_tag<'a>(tags: &'a [aws_sdk_rds::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

/// Whether an instance is the stack's, by its identifier or by its tag (either is enough to count as left behind).
fn of_stack(i: &DbInstance, stack: &str) -> bool {
    i.db_instance_identifier().is_some_and(|id| id.starts_with(&format!("{stack}-")))
        || rds_tag(i.tag_list(), "webscale:stack") == Some(stack)
}

/// Every DB instance in the region, as our own client sees them.
async fn all_instances(rds: &aws_sdk_rds::Client) -> Vec<DbInstance> {
    rds.describe_db_instances()
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("DescribeDBInstances")
}

/// The stack's DB instances by address (their `webscale:address` tag), each with the identifier webscale names it
/// by (`<stack>-primary`, `<stack>-replica-N`).
async fn instances(rds: &aws_sdk_rds::Client, stack: &str) -> BTreeMap<String, DbInstance> {
    let mut by_address = BTreeMap::new();
    for i in all_instances(rds).await.into_iter().filter(|i| of_stack(i, stack)) {
        let id = i.db_instance_identifier().unwrap().to_string();
        assert_eq!(rds_tag(i.tag_list(), "webscale:stack"), Some(stack), "{id}: the stack tag");
        let address = rds_tag(i.tag_list(), "webscale:address").unwrap_or_else(|| panic!("{id}: no address tag"));
        let name = address.trim_start_matches("db_instance.").replace('_', "-");
        assert_eq!(id, format!("{stack}-{name}"), "the identifier of {address}");
        assert!(by_address.insert(address.to_string(), i.clone()).is_none(), "two instances claim {address}");
    }
    by_address
}

fn addresses(live: &BTreeMap<String, DbInstance>) -> Vec<&str> {
    live.keys().map(String::as_str).collect()
}

/// Each instance's identity: its DbiResourceId (AWS's id of one instance's lifetime: a new instance of the same
/// name has another) and its creation time, since moto gives every instance the same DbiResourceId.
fn identities(live: &BTreeMap<String, DbInstance>) -> BTreeMap<String, (String, String)> {
    live.iter()
        .map(|(a, i)| {
            let resource_id = i.dbi_resource_id().expect("a DbiResourceId").to_string();
            let created = i.instance_create_time().expect("a creation time").to_string();
            (a.clone(), (resource_id, created))
        })
        .collect()
}

/// The class an instance has or will have: with apply_immediately = false AWS holds a class change as pending
/// until the maintenance window (moto applies it at once).
fn class(i: &DbInstance) -> Option<&str> {
    i.pending_modified_values().and_then(|p| p.db_instance_class()).or(i.db_instance_class())
}

/// The manual snapshots (final snapshots are manual) of the stack's instances.
async fn snapshots(rds: &aws_sdk_rds::Client, stack: &str) -> Vec<aws_sdk_rds::types::DbSnapshot> {
    let all: Vec<aws_sdk_rds::types::DbSnapshot> = rds
        .describe_db_snapshots()
        .snapshot_type("manual")
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("DescribeDBSnapshots");
    let prefix = format!("{stack}-");
    all.into_iter()
        .filter(|s| {
            s.db_instance_identifier().is_some_and(|i| i.starts_with(&prefix))
                || s.db_snapshot_identifier().is_some_and(|i| i.starts_with(&prefix))
        })
        .collect()
}

/// The id of the stack's EC2 resource at `address`, among `(address tag, id)` pairs.
fn by_address(found: Vec<(Option<String>, Option<String>)>, address: &str) -> String {
    found
        .into_iter()
        .find(|(a, _)| a.as_deref() == Some(address))
        .and_then(|(_, id)| id)
        .unwrap_or_else(|| panic!("the stack has no {address}"))
}

async fn subnet_id(ec2: &aws_sdk_ec2::Client, stack: &str, address: &str) -> String {
    let out = ec2.describe_subnets().filters(owned(stack)).send().await.unwrap();
    let found = out
        .subnets()
        .iter()
        .map(|s| (tag(s.tags(), "webscale:address").map(str::to_string), s.subnet_id().map(str::to_string)))
        .collect();
    by_address(found, address)
}

async fn vpc_id(ec2: &aws_sdk_ec2::Client, stack: &str) -> String {
    let out = ec2.describe_vpcs().filters(owned(stack)).send().await.unwrap();
    let found = out
        .vpcs()
        .iter()
        .map(|v| (tag(v.tags(), "webscale:address").map(str::to_string), v.vpc_id().map(str::to_string)));
    by_address(found.collect(), "vpc.main")
}

/// The names of every key in a JSON value, at any depth.
fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                keys(v, out);
            }
        }
        Value::Array(list) => list.iter().for_each(|v| keys(v, out)),
        _ => {}
    }
}

// =====================================================================================================================
// The reference stack's database, and every change the issue names, on one stack
// =====================================================================================================================

/// The full reference stack (network, web, load balancer, DNS and database) applied once, then each change the
/// issue names in turn: replicas 2 -> 3 -> 1, a class change, an engine change, destroy.
#[tokio::test(flavor = "multi_thread")]
async fn the_reference_database_is_private_encrypted_replicated_and_no_change_loses_its_data_unasked() {
    if skip() {
        return;
    }
    let mut db = DbStack::new("db-ref", &support::full_reference_text());
    let stack = db.name.clone();
    let rds = rds().await;
    let ec2 = ec2().await;

    // ---- The stack as the reference template declares it.
    let applied = db.apply();
    assert!(applied.stdout.contains(REPLICA_2), "{applied}");
    let live = instances(&rds, &stack).await;
    assert_eq!(addresses(&live), [PRIMARY, REPLICA_1, REPLICA_2], "a primary and two replicas");
    let primary_id = format!("{stack}-primary");

    // The DB subnet group: the stack's private subnets, in the stack's VPC.
    let group_name = format!("{stack}-main");
    let groups = rds.describe_db_subnet_groups().db_subnet_group_name(&group_name).send().await.unwrap();
    let [group] = groups.db_subnet_groups() else { panic!("one subnet group {group_name}: {groups:?}") };
    let mut in_group: Vec<&str> = group.subnets().iter().filter_map(|s| s.subnet_identifier()).collect();
    in_group.sort();
    let mut private =
        vec![subnet_id(&ec2, &stack, "subnet.private_a").await, subnet_id(&ec2, &stack, "subnet.private_b").await];
    private.sort();
    assert_eq!(in_group, private, "the subnet group holds the private subnets, and only them");
    assert_eq!(group.vpc_id(), Some(vpc_id(&ec2, &stack).await.as_str()));

    // Every instance: in that group and the database security group, not public, encrypted, tagged.
    let db_group = support::group_id(&ec2, &stack, "db").await;
    let web_group = support::group_id(&ec2, &stack, "web").await;
    for (address, i) in &live {
        let subnet_group = i.db_subnet_group().and_then(|g| g.db_subnet_group_name());
        assert_eq!(subnet_group, Some(group_name.as_str()), "{address}");
        let groups: Vec<&str> = i.vpc_security_groups().iter().filter_map(|g| g.vpc_security_group_id()).collect();
        assert_eq!(groups, [db_group.as_str()], "{address}: in the database group only");
        assert_eq!(i.publicly_accessible(), Some(false), "{address}: never public");
        assert_eq!(i.storage_encrypted(), Some(true), "{address}: encrypted at rest");
        assert_eq!(i.db_instance_class(), Some("db.t4g.micro"), "{address}");
        assert_eq!(rds_tag(i.tag_list(), "environment"), Some("demo"), "{address}: the stack's tags");
        assert_eq!(i.db_instance_status(), Some("available"), "{address}");
    }

    // The primary: the spec's engine, its password the one password_env gives (not kept by RDS), protected.
    let primary = &live[PRIMARY];
    assert_eq!(primary.engine(), Some("postgres"));
    assert_eq!(primary.read_replica_source_db_instance_identifier(), None);
    assert!(primary.master_user_secret().is_none(), "{primary:?}");
    assert_eq!(primary.deletion_protection(), Some(true));
    assert_eq!(primary.backup_retention_period(), Some(7));
    assert_eq!(primary.db_name(), Some("app"));
    let mut replicas: Vec<&str> = primary.read_replica_db_instance_identifiers().iter().map(String::as_str).collect();
    replicas.sort();
    assert_eq!(replicas, [format!("{stack}-replica-1"), format!("{stack}-replica-2")]);

    // The replicas: of the primary, spread over the zones.
    for (address, zone) in [(REPLICA_1, "us-east-1a"), (REPLICA_2, "us-east-1b")] {
        let replica = &live[address];
        assert_eq!(replica.read_replica_source_db_instance_identifier(), Some(primary_id.as_str()), "{address}");
        assert_eq!(replica.availability_zone(), Some(zone), "{address}");
    }

    // The database group admits the web group on 5432, and nothing else (no address, no other group).
    let described = ec2.describe_security_groups().group_ids(&db_group).send().await.unwrap();
    let [sg] = described.security_groups() else { panic!("one group {db_group}") };
    let [rule] = sg.ip_permissions() else { panic!("one ingress permission on the db group: {sg:?}") };
    assert_eq!((rule.ip_protocol(), rule.from_port(), rule.to_port()), (Some("tcp"), Some(5432), Some(5432)));
    assert!(
        rule.ip_ranges().is_empty() && rule.ipv6_ranges().is_empty() && rule.prefix_list_ids().is_empty(),
        "{rule:?}"
    );
    let peers: Vec<&str> = rule.user_id_group_pairs().iter().filter_map(|p| p.group_id()).collect();
    assert_eq!(peers, [web_group.as_str()]);
    let group_filter = aws_sdk_ec2::types::Filter::builder().name("group-id").values(&db_group).build();
    let rules = ec2.describe_security_group_rules().filters(group_filter).send().await.unwrap();
    let ingress: Vec<_> = rules.security_group_rules().iter().filter(|r| r.is_egress() == Some(false)).collect();
    let [rule] = ingress.as_slice() else { panic!("one ingress rule on the db group: {ingress:?}") };
    assert_eq!((rule.cidr_ipv4(), rule.cidr_ipv6(), rule.prefix_list_id()), (None, None, None), "no address: {rule:?}");
    assert_eq!(rule.referenced_group_info().and_then(|g| g.group_id()), Some(web_group.as_str()));
    assert_eq!((rule.from_port(), rule.to_port()), (Some(5432), Some(5432)));

    // A second plan has nothing to do.
    db.assert_converged();

    // The outputs: where to connect; never the password (and no secret: RDS does not keep it).
    let output = db.run(&["output", "--json"]).success();
    let outputs: Value = serde_json::from_str(&output.stdout).expect("output --json is JSON");
    let endpoint = |a: &str| live[a].endpoint().and_then(|e| e.address()).map(str::to_string);
    let database = &outputs["database"];
    assert_eq!(database["writer_endpoint"].as_str().map(str::to_string), endpoint(PRIMARY), "{output}");
    let readers: Vec<Option<String>> =
        database["reader_endpoints"].as_array().unwrap().iter().map(|e| e.as_str().map(str::to_string)).collect();
    assert_eq!(readers, [endpoint(REPLICA_1), endpoint(REPLICA_2)], "{output}");
    assert_eq!(database["port"], 5432, "{output}");
    assert!(database["secret_arn"].is_null(), "{output}");
    let mut names = Vec::new();
    keys(&outputs, &mut names);
    assert!(!names.iter().any(|k| k.to_ascii_lowercase().contains("password")), "no password in outputs: {output}");

    // ---- replicas 2 -> 3: one more replica, nothing else touched.
    let before = identities(&live);
    db.edit("replicas = 2", "replicas = 3");
    assert_eq!(actions(&db.plan()), pairs(&[(REPLICA_3, "create")]));
    db.apply();
    let live = instances(&rds, &stack).await;
    assert_eq!(addresses(&live), [PRIMARY, REPLICA_1, REPLICA_2, REPLICA_3]);
    let replica = &live[REPLICA_3];
    assert_eq!(replica.read_replica_source_db_instance_identifier(), Some(primary_id.as_str()));
    assert_eq!(replica.availability_zone(), Some("us-east-1a"), "the zones in turn");
    let mut after = identities(&live);
    after.remove(REPLICA_3);
    assert_eq!(after, before, "the primary and the other replicas are the same instances");

    // ---- replicas 3 -> 1: replica_2 and replica_3 go, without data loss or snapshots; the rest stays.
    let before = identities(&live);
    db.edit("replicas = 3", "replicas = 1");
    let plan = db.plan();
    assert_eq!(actions(&plan), pairs(&[(REPLICA_2, "delete"), (REPLICA_3, "delete")]));
    for address in [REPLICA_2, REPLICA_3] {
        assert!(change(&plan, address)["data_loss"].is_null(), "a replica holds no data of its own: {plan:#}");
    }
    db.apply();
    let live = instances(&rds, &stack).await;
    assert_eq!(addresses(&live), [PRIMARY, REPLICA_1]);
    assert_eq!(identities(&live), before.into_iter().filter(|(a, _)| a == PRIMARY || a == REPLICA_1).collect());
    assert!(snapshots(&rds, &stack).await.is_empty(), "deleting a replica takes no snapshot");
    db.assert_converged();

    // ---- A class change: in place, and the plan says it waits for the maintenance window.
    let before = identities(&live);
    db.edit("instance_class = \"db.t4g.micro\"", "instance_class = \"db.t4g.small\"");
    let plan = db.plan();
    assert_eq!(actions(&plan), pairs(&[(PRIMARY, "update"), (REPLICA_1, "update")]));
    for address in [PRIMARY, REPLICA_1] {
        assert_eq!(changed(&plan, address), ["instance_class"], "{address}");
        let reason = change(&plan, address)["reason"].as_str().unwrap_or_default();
        assert!(reason.contains("maintenance window"), "{address}: {reason:?}");
    }
    db.apply();
    let live = instances(&rds, &stack).await;
    assert_eq!(identities(&live), before, "the same instances");
    for (address, i) in &live {
        assert_eq!(class(i), Some("db.t4g.small"), "{address}");
    }
    db.assert_converged();

    // ---- An engine change replaces the primary (and so its replica): refused without the flag, nothing changed.
    db.edit("engine = \"postgres\"", "engine = \"mysql\"\nport = 5432");
    db.edit("engine_version = \"16\"", "engine_version = \"8.0\"");
    let plan = db.plan();
    assert_eq!(actions(&plan), pairs(&[(PRIMARY, "replace (delete_first)"), (REPLICA_1, "replace (delete_first)")]));
    let loss = &change(&plan, PRIMARY)["data_loss"];
    assert_eq!(loss["deletion_protection"], true, "{loss}");
    assert!(loss["what"].as_str().unwrap().contains(&primary_id), "{loss}");
    let promised = loss["final_snapshot"].as_str().expect("the final snapshot's name").to_string();
    assert!(promised.starts_with(&format!("{primary_id}-final-")), "{promised}");
    assert!(change(&plan, REPLICA_1)["data_loss"].is_null(), "{plan:#}");
    let refused = db.run(&["apply", "--auto-approve"]);
    assert_ne!(refused.code, 0, "an engine change without --allow-data-loss is refused:\n{refused}");
    assert!(refused.stderr.contains("--allow-data-loss db_instance.primary"), "says how to allow it:\n{refused}");
    assert!(refused.stderr.contains(&promised), "names the final snapshot it would keep:\n{refused}");
    let now = instances(&rds, &stack).await;
    assert_eq!(identities(&now), identities(&live), "nothing replaced");
    assert_eq!(now[PRIMARY].engine(), Some("postgres"));
    assert_eq!(now[PRIMARY].deletion_protection(), Some(true), "protection still on");

    // With the flag (and no final snapshot): a new primary of the new engine, and a new replica of it.
    db.run(&["apply", "--auto-approve", "--allow-data-loss", PRIMARY, "--skip-final-snapshot"]).success();
    let replaced = instances(&rds, &stack).await;
    assert_eq!(addresses(&replaced), [PRIMARY, REPLICA_1]);
    for address in [PRIMARY, REPLICA_1] {
        assert_ne!(identities(&replaced)[address], identities(&live)[address], "{address}: a new instance");
    }
    assert_eq!(replaced[PRIMARY].engine(), Some("mysql"));
    assert_eq!(replaced[PRIMARY].deletion_protection(), Some(true));
    assert_eq!(replaced[REPLICA_1].read_replica_source_db_instance_identifier(), Some(primary_id.as_str()));
    assert!(snapshots(&rds, &stack).await.is_empty(), "--skip-final-snapshot keeps none");
    db.assert_converged();

    // ---- destroy without the flag: refused, says how, and the database (and everything else) stays.
    let live = replaced;
    let refused = db.run(&["destroy", "--auto-approve"]);
    assert_ne!(refused.code, 0, "a destroy of a protected database without --allow-data-loss:\n{refused}");
    assert!(refused.stderr.contains("--allow-data-loss db_instance.primary"), "says how to remove it:\n{refused}");
    let now = instances(&rds, &stack).await;
    assert_eq!(identities(&now), identities(&live), "the database stays");
    vpc_id(&ec2, &stack).await;

    // With the flag: nothing of the stack's database remains but the final snapshot the output names.
    let destroyed = db.run(&["destroy", "--auto-approve", "--allow-data-loss", PRIMARY]).success();
    assert!(all_instances(&rds).await.iter().all(|i| !of_stack(i, &stack)), "no instance of the stack remains");
    let gone = rds.describe_db_subnet_groups().db_subnet_group_name(&group_name).send().await;
    let error = gone.expect_err("the subnet group is deleted");
    assert_eq!(error.code(), Some("DBSubnetGroupNotFoundFault"), "{error:?}");
    let kept = snapshots(&rds, &stack).await;
    let [snapshot] = kept.as_slice() else { panic!("one final snapshot: {kept:?}") };
    let name = snapshot.db_snapshot_identifier().unwrap();
    assert!(refused.stderr.contains(name), "the refusal named the final snapshot it would keep:\n{refused}");
    assert!(name.starts_with(&format!("{primary_id}-final-")), "{name}");
    assert_eq!(snapshot.db_instance_identifier(), Some(primary_id.as_str()));
    assert!(destroyed.stdout.contains(name), "destroy names the snapshot it kept:\n{destroyed}");
    // The emulator is shared: leave nothing behind.
    rds.delete_db_snapshot().db_snapshot_identifier(name).send().await.unwrap();
}

// =====================================================================================================================
// A password from the environment never shows
// =====================================================================================================================

/// The network tier and the database only (no web tier, load balancer, DNS or NAT gateway; one replica): the
/// password's paths are the database's.
fn database_only() -> String {
    let text = support::full_reference_text();
    let (network, _) = text.split_once("[web]").expect("the template has [web]");
    let (_, database) = text.split_once("\n[database]").expect("the template has [database]");
    let spec = format!("{network}\n[database]{database}");
    assert!(spec.contains("nat = \"single\""), "the template's NAT changed: update database_only");
    assert!(spec.contains("replicas = 2"), "the template's replicas changed: update database_only");
    assert!(spec.contains(PASSWORD_LINE), "the template's password_env changed: update PASSWORD_LINE");
    spec.replacen("nat = \"single\"", "nat = \"none\"", 1).replacen("replicas = 2", "replicas = 1", 1)
}

/// A password RDS accepts and no output would contain by chance: letters, digits and hyphens only, so a log of
/// a URL-encoded request body would show it as is.
fn password(what: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("{what}-S3cret-Pw-{}-{nanos}", std::process::id())
}

/// The managed password first (RDS keeps it in Secrets Manager; the outputs give the secret), then a switch to
/// `password_env` (which read replicas need), then a new password: neither password ever shows.
#[tokio::test(flavor = "multi_thread")]
async fn a_password_from_the_environment_appears_in_no_output_plan_or_log() {
    if skip() {
        return;
    }
    let spec = database_only();
    let managed = spec.replacen(PASSWORD_LINE, "", 1).replacen("replicas = 1", "replicas = 0", 1);
    let mut db = DbStack::new("db-pw", &managed);
    let first = db.password.clone();
    let second = password("N3w");
    let stack = db.name.clone();
    let rds = rds().await;
    let saved = db.dir.path().join("plan.json");
    let saved = saved.to_str().unwrap();
    let mut seen: Vec<(String, Run)> = Vec::new();
    let mut step = |db: &DbStack, args: &[&str]| -> Run {
        let run = db.run(args);
        seen.push((args.join(" "), Run { code: run.code, stdout: run.stdout.clone(), stderr: run.stderr.clone() }));
        run
    };

    // ---- Without password_env: RDS keeps the password, the outputs name its secret.
    step(&db, &["apply", "--auto-approve"]).success();
    let live = instances(&rds, &stack).await;
    assert_eq!(addresses(&live), [PRIMARY]);
    let secret = live[PRIMARY].master_user_secret().and_then(|s| s.secret_arn()).expect("a password kept by RDS");
    let output = step(&db, &["output", "--json"]).success();
    let outputs: Value = serde_json::from_str(&output.stdout).unwrap();
    assert_eq!(outputs["database"]["secret_arn"].as_str(), Some(secret), "{output}");
    let mut names = Vec::new();
    keys(&outputs, &mut names);
    assert!(!names.iter().any(|k| k.to_ascii_lowercase().contains("password")), "no password in outputs: {output}");

    // ---- password_env (and a replica, which needs it): the primary switches to the password from the variable.
    db.write(&spec);
    step(&db, &["validate"]).success();
    let plan = step(&db, &["plan", "--json"]).success();
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(actions(&plan), pairs(&[(PRIMARY, "update"), (REPLICA_1, "create")]));
    let attribute = |plan: &Value, name: &str| -> Value {
        let attrs = change(plan, PRIMARY)["attributes"].as_array().unwrap().clone();
        attrs.into_iter().find(|a| a["name"] == name).unwrap_or_else(|| panic!("no {name} in {plan:#}"))
    };
    let manage = attribute(&plan, "manage_password");
    assert_eq!((&manage["before"], &manage["after"]), (&Value::Bool(true), &Value::Bool(false)), "{manage}");
    assert!(attribute(&plan, "password")["after"]["sensitive"].is_string(), "a digest in its place");
    // Saved, and shown as text.
    step(&db, &["plan", "--out", saved]).success();
    let saved_text = std::fs::read_to_string(saved).expect("the saved plan");
    step(&db, &["apply", "--plan", saved, "-vv"]).success();
    let output = step(&db, &["output", "--json"]).success();
    let outputs: Value = serde_json::from_str(&output.stdout).unwrap();
    assert!(outputs["database"]["secret_arn"].is_null(), "no secret when the password is the spec's: {output}");
    step(&db, &["show"]).success();
    let again = step(&db, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.code, 0, "the same password plans no change:\n{again}");

    // RDS no longer keeps a password in Secrets Manager, and AWS's description of the instance does not hold it.
    let live = instances(&rds, &stack).await;
    assert_eq!(addresses(&live), [PRIMARY, REPLICA_1]);
    let primary = &live[PRIMARY];
    assert!(primary.master_user_secret().is_none(), "RDS does not manage this password: {primary:?}");
    assert!(!format!("{primary:?}").contains(&first), "nor is it in what AWS says of the instance");

    // ---- A new password: an update of that attribute alone, and no value shows either.
    db.password = second.clone();
    let changes = step(&db, &["plan", "--detailed-exitcode"]);
    assert_eq!(changes.code, 2, "a new password is a change:\n{changes}");
    let plan = step(&db, &["plan", "--json"]).success();
    let plan: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(actions(&plan), pairs(&[(PRIMARY, "update")]));
    assert_eq!(changed(&plan, PRIMARY), ["password"]);
    let digests = attribute(&plan, "password");
    assert_ne!(digests["before"], digests["after"], "{digests}");
    step(&db, &["apply", "--auto-approve", "--json", "-vv"]).success();
    let again = step(&db, &["plan", "--detailed-exitcode", "-vv"]);
    assert_eq!(again.code, 0, "converged on the new password:\n{again}");

    // ---- The --skip-final-snapshot destroy: nothing remains, not even a snapshot.
    step(&db, &CLEANUP).success();
    assert!(all_instances(&rds).await.iter().all(|i| !of_stack(i, &stack)), "no instance of the stack remains");
    assert!(snapshots(&rds, &stack).await.is_empty(), "--skip-final-snapshot keeps none");

    for secret in [&first, &second] {
        assert!(!saved_text.contains(secret.as_str()), "the saved plan holds the password");
        for (args, run) in &seen {
            assert!(!run.stdout.contains(secret.as_str()), "`webscale {args}` prints the password on stdout");
            assert!(!run.stderr.contains(secret.as_str()), "`webscale {args}` prints the password on stderr");
        }
    }
    let verbose = seen.iter().find(|(args, _)| args.contains("-vv")).map(|(_, run)| run.stderr.len());
    assert!(verbose.unwrap_or_default() > 10_000, "-vv logs the calls (so the check above means something)");
}

// =====================================================================================================================
// A database the stack does not own in its subnet group
// =====================================================================================================================

/// A database made by hand in the stack's DB subnet group would keep the group (and its subnets and security group)
/// from being deleted: the destroy is refused before anything is deleted, naming it; once it is gone, the destroy
/// goes through.
#[tokio::test(flavor = "multi_thread")]
async fn a_database_the_stack_does_not_own_in_its_subnet_group_stops_the_destroy_before_anything_goes() {
    if skip() {
        return;
    }
    let spec = database_only().replacen("replicas = 1", "replicas = 0", 1);
    let db = DbStack::new("db-stranger", &spec);
    db.apply();
    let rds = rds().await;
    let group = format!("{}-main", db.name);
    let stranger = format!("byhand-{}", db.name);
    rds.create_db_instance()
        .db_instance_identifier(&stranger)
        .engine("postgres")
        .db_instance_class("db.t4g.micro")
        .allocated_storage(20)
        .master_username("someone")
        .master_user_password("by-hand-Passw0rd")
        .db_subnet_group_name(&group)
        .send()
        .await
        .expect("a database made by hand in the stack's subnet group");

    let refused = db.run(&CLEANUP);
    assert_ne!(refused.code, 0, "the destroy cannot complete:\n{refused}");
    assert!(refused.stderr.contains(&format!("database {stranger}")), "names what is in the way:\n{refused}");
    let left = instances(&rds, &db.name).await;
    assert_eq!(addresses(&left), [PRIMARY], "nothing was deleted");

    rds.delete_db_instance().db_instance_identifier(&stranger).skip_final_snapshot(true).send().await.unwrap();
    db.run(&CLEANUP).success();
    assert!(instances(&rds, &db.name).await.is_empty(), "the stack's database is gone");
}
