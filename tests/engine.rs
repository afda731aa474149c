//! The engine as the new tiers (load balancers, Route 53, RDS, CloudFront, Lambda) use it, over kinds defined here
//! instead of AWS: a regional `widget` (a load balancer or database: it has a DNS name output, a password, a
//! write-only secret, ordered and unordered lists, and may take minutes to come up), and global `zone` / `record`
//! kinds (Route 53) plus a global `distribution` (CloudFront) whose service the endpoint may not serve.
//!
//! All kinds keep their resources in one in-memory [`World`] and log every call they get ([`Call`]), so tests
//! check what a user would see: what exists afterwards, what each kind was asked to do and with which values, the
//! plan as data and as text, and what the apply hook reported. Plans are made with `plan::build_with` (reads
//! through the kinds' own `read`, as the CLI does) and carried out with `apply::apply_with`.
//!
//! Tests with long waits run on tokio's virtual clock (`start_paused`): a 30-minute wait takes no real time, and
//! the hook stamps events with that clock.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::time::Instant;
use webscale::apply::{self, Hook, Options, Phase, Report, Result_};
use webscale::aws::{Cloud, CloudError};

// The same never-called clients and quick retries as the mocked tests.
use crate::mocked::{fast, unused_clients};
use webscale::plan::{self, Action, Change, Mode, Plan};
use webscale::resources::{
    Address, Attr, Attrs, Created, Desired, GLOBAL, Kind, Kinds, Live, Op, Progress, ReadCtx, Scope, Timeouts,
    cloud_id, output_reference, reference, reference_in,
};
use webscale::spec::{self, RegionChoice, Stack};

const HOME: &str = "us-east-1";
const EU: &str = "eu-west-1";
const ACCOUNT: &str = "123456789012";

/// The stack file: the kinds here ignore it (their desired resources are set by each test), but plan and apply
/// take a checked stack.
const SPEC: &str = r#"[stack]
name = "engine"
region = "us-east-1"

[network]
cidr = "10.0.0.0/16"

[network.zones.a]
availability_zone = "us-east-1a"
public_subnet = "10.0.0.0/24"
private_subnet = "10.0.10.0/24"

[network.zones.b]
availability_zone = "us-east-1b"
public_subnet = "10.0.1.0/24"
private_subnet = "10.0.11.0/24"
"#;

// =====================================================================================================================
// Tests
// =====================================================================================================================

/// Route 53 is one service for the whole account: a stack in two regions reads its zones once per plan, not once
/// per region, and finds its zone as one resource, never as a leftover to delete in the other region.
#[tokio::test]
async fn global_kind_is_read_once_per_plan_and_not_deleted_in_a_second_region() {
    let world = World::new();
    let (widget, zone) = (Fake::widget(&world), Fake::zone(&world));
    let kinds: &[&dyn Kind] = &[&widget, &zone];
    let cloud = two_regions();
    world.want(vec![
        Desired::new(GLOBAL, addr("zone.main"), &json!({ "name": "example.com" })),
        Desired::new(HOME, addr("widget.web"), &json!({ "size": 1 })),
        Desired::new(EU, addr("widget.web"), &json!({ "size": 1 })),
    ]);

    let first = plan_of(kinds, &cloud).await;
    assert_eq!(world.reads("zone"), [GLOBAL], "the zones are read once, in the global pseudo-region");
    assert_eq!(world.reads("widget"), [EU, HOME], "a regional kind is read in each region");
    let mut planned = actions(&first);
    planned.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    assert_eq!(
        planned,
        [
            (EU.to_string(), "widget.web".to_string(), Action::Create),
            (GLOBAL.to_string(), "zone.main".to_string(), Action::Create),
            (HOME.to_string(), "widget.web".to_string(), Action::Create),
        ]
    );
    let (report, _) = run(kinds, &cloud, &first, &options()).await;
    assert_all_done(&report);
    let zones = world.recs("zone");
    assert_eq!(zones.len(), 1, "one zone exists: {zones:?}");
    assert_eq!(zones[0].region, GLOBAL);

    world.clear_calls();
    let second = plan_of(kinds, &cloud).await;
    assert_eq!(world.reads("zone"), [GLOBAL], "still one read of the global kind on the next plan");
    assert!(!second.has_changes(), "nothing to do: {:?}", actions(&second));
    let seen: Vec<(&str, Action, Option<&str>)> = second
        .changes
        .iter()
        .filter(|c| c.address.kind() == "zone")
        .map(|c| (c.region.as_str(), c.action, c.id.as_deref()))
        .collect();
    assert_eq!(seen, [(GLOBAL, Action::NoOp, Some(zones[0].id.as_str()))], "the zone appears once, unchanged");
    assert_eq!(second.summary.destroy, 0);
    assert_eq!(second.summary.unchanged, 3);
    let text = webscale::ui::plan_text(&second, false);
    assert!(text.starts_with("No changes.") && text.contains("(3 resources)"), "{text}");

    // Destroying deletes the zone once, not once per region.
    let destroy = plan::build_with(kinds, &cloud, &stack(), Mode::Destroy).await.unwrap_or_else(|e| panic!("{e}"));
    let zone_deletes: Vec<&str> = destroy
        .changes
        .iter()
        .filter(|c| c.address.kind() == "zone" && c.action == Action::Delete)
        .map(|c| c.region.as_str())
        .collect();
    assert_eq!(zone_deletes, [GLOBAL]);
}

/// A tier declared in two regions (geo routing) uses one address twice: both copies are created, each region
/// finds its own copy on the next plan, and a reference resolves to the copy in the referring resource's region
/// (or in the region it names).
#[tokio::test]
async fn same_address_in_two_regions_is_two_resources_and_references_stay_in_their_region() {
    let world = World::new();
    let widget = Fake::widget(&world);
    let kinds: &[&dyn Kind] = &[&widget];
    let cloud = two_regions();
    world.want(vec![
        Desired::new(HOME, addr("widget.web"), &json!({ "size": 1 })),
        Desired::new(EU, addr("widget.web"), &json!({ "size": 2 })),
        Desired::new(EU, addr("widget.app"), &json!({ "size": 1, "peer": reference(&addr("widget.web")) })),
        Desired::new(HOME, addr("widget.cross"), &json!({ "size": 1, "peer": reference_in(&addr("widget.web"), EU) })),
    ]);

    let first = plan_of(kinds, &cloud).await;
    assert_eq!(first.summary.add, 4, "{:?}", actions(&first));
    let (report, _) = run(kinds, &cloud, &first, &options()).await;
    assert_all_done(&report);

    let home_web = world.rec(HOME, "widget.web");
    let eu_web = world.rec(EU, "widget.web");
    assert_ne!(home_web.id, eu_web.id, "two resources");
    assert_eq!((home_web.attrs["size"].clone(), eu_web.attrs["size"].clone()), (json!(1), json!(2)));
    // The report names both: by region, and the home region's under the plain address (as before regions).
    assert_eq!(report.ids_by_region[HOME][&addr("widget.web")], home_web.id);
    assert_eq!(report.ids_by_region[EU][&addr("widget.web")], eu_web.id);
    assert_eq!(report.ids[&addr("widget.web")], home_web.id);
    assert_eq!(world.recs("widget").len(), 4);
    // The reference inside eu-west-1 reached the kind as eu-west-1's id.
    let app = world.created(EU, "widget.app");
    assert_eq!(app["peer"], json!(eu_web.id), "widget.app (eu-west-1) refers to eu-west-1's widget.web");
    let cross = world.created(HOME, "widget.cross");
    assert_eq!(cross["peer"], json!(eu_web.id), "an explicit region is honoured");
    assert_eq!(world.count("widget", "create"), 4, "each resource created once");

    let second = plan_of(kinds, &cloud).await;
    assert!(!second.has_changes(), "each copy is found in its own region: {:?}", actions(&second));
    assert_eq!(change(&second, HOME, "widget.web").id.as_deref(), Some(home_web.id.as_str()));
    assert_eq!(change(&second, EU, "widget.web").id.as_deref(), Some(eu_web.id.as_str()));
    assert_eq!(second.summary.unchanged, 4);
}

/// A DNS record pointing at a load balancer created in the same run: the plan says the target is known after
/// apply, apply hands the record the real DNS name, and afterwards nothing differs; an in-place change of the load
/// balancer keeps its name and leaves the record alone, a replacement gives it a new one.
#[tokio::test]
async fn output_reference_is_known_after_apply_and_then_compared_with_the_live_value() {
    let world = World::new();
    let (widget, zone, record) = (Fake::widget(&world), Fake::zone(&world), Fake::record(&world));
    let kinds: &[&dyn Kind] = &[&widget, &zone, &record];
    let cloud = cloud();
    let lb = addr("widget.lb");
    let www = |lb_attrs: Value| {
        vec![
            Desired::new(HOME, addr("widget.lb"), &lb_attrs),
            Desired::new(GLOBAL, addr("zone.main"), &json!({ "name": "example.com" })),
            Desired::new(
                GLOBAL,
                addr("record.www"),
                &json!({ "zone": reference(&addr("zone.main")), "target": output_reference(&lb, "dns_name"),
                         "ttl": 60 }),
            ),
        ]
    };
    world.want(www(json!({ "name": "web", "size": 1 })));

    let first = plan_of(kinds, &cloud).await;
    let rec = change(&first, GLOBAL, "record.www");
    assert_eq!(rec.action, Action::Create);
    let target = attr(rec, "target");
    assert!(target.known_after_apply, "{target:?}");
    assert_eq!(target.after, Some(json!({ "unknown": "widget.lb.dns_name" })));
    assert!(!attr(rec, "ttl").known_after_apply);
    let text = webscale::ui::plan_text(&first, false);
    assert!(text.contains("+ target = (known after apply)"), "{text}");
    let as_json: Value = serde_json::to_value(&first).unwrap();
    assert_eq!(as_json["format_version"], json!(2));
    let target_json = json_attr(&as_json, "record.www", "target");
    assert_eq!(target_json["known_after_apply"], json!(true), "{target_json}");

    let (report, _) = run(kinds, &cloud, &first, &options()).await;
    assert_all_done(&report);
    let made = world.rec(HOME, "widget.lb");
    let dns = made.outputs["dns_name"].clone();
    assert_eq!(dns, json!(format!("{}.elb.example.net", made.id)));
    let sent = world.created(GLOBAL, "record.www");
    assert_eq!(sent["target"], dns, "the record was created with the load balancer's real DNS name");
    assert_eq!(sent["zone"], json!(world.rec(GLOBAL, "zone.main").id));

    let second = plan_of(kinds, &cloud).await;
    assert!(!second.has_changes(), "the live name matches the live output: {:?}", actions(&second));
    assert_eq!(webscale::ui::plan_text(&second, false).lines().count(), 1, "\"No changes.\" only");

    // In place: the load balancer keeps its name, the record is not touched.
    world.want(www(json!({ "name": "web", "size": 2 })));
    let third = plan_of(kinds, &cloud).await;
    assert_eq!(actions(&third), [(HOME.to_string(), "widget.lb".to_string(), Action::Update)]);
    assert_eq!(change(&third, GLOBAL, "record.www").action, Action::NoOp);
    world.clear_calls();
    let (report, _) = run(kinds, &cloud, &third, &options()).await;
    assert_all_done(&report);
    assert_eq!(world.rec(HOME, "widget.lb").attrs["size"], json!(2));
    assert_eq!(world.count("record", "create") + world.count("record", "update"), 0, "the record is left alone");
    assert!(!plan_of(kinds, &cloud).await.has_changes());

    // Replaced: a new load balancer, a new name, which the record follows.
    world.want(www(json!({ "name": "web2", "size": 2 })));
    let fourth = plan_of(kinds, &cloud).await;
    assert!(change(&fourth, HOME, "widget.lb").action.is_replace());
    let rec = change(&fourth, GLOBAL, "record.www");
    assert_eq!(rec.action, Action::Update);
    let target = attr(rec, "target");
    assert!(target.known_after_apply);
    assert_eq!(target.before, Some(dns.clone()));
    assert!(webscale::ui::plan_text(&fourth, false).contains("(known after apply)"));
    let (report, _) = run(kinds, &cloud, &fourth, &options()).await;
    assert_all_done(&report);
    let new = world.rec(HOME, "widget.lb");
    assert_ne!(new.id, made.id);
    assert_eq!(world.rec(GLOBAL, "record.www").attrs["target"], new.outputs["dns_name"]);
    assert!(!plan_of(kinds, &cloud).await.has_changes());
}

/// A database taking 30 minutes to come up holds no apply slot: with `parallelism: 1` everything independent of
/// it is done within the first minute, and the progress lines carry what AWS says ("backing-up").
#[tokio::test(start_paused = true)]
async fn a_long_wait_does_not_block_independent_work() {
    let world = World::new();
    let widget = Fake::widget(&world).with_timeouts(Timeouts::minutes(60, 60, 60));
    let kinds: &[&dyn Kind] = &[&widget];
    let cloud = cloud();
    world.want(vec![
        Desired::new(HOME, addr("widget.db"), &json!({ "size": 1 })),
        Desired::new(HOME, addr("widget.a"), &json!({ "size": 1 })),
        Desired::new(HOME, addr("widget.b"), &json!({ "size": 1 })),
        Desired::new(HOME, addr("widget.c"), &json!({ "size": 1 })),
    ]);
    world.slow("widget.db", Duration::from_secs(30 * 60), "backing-up");

    let plan = plan_of(kinds, &cloud).await;
    let t0 = Instant::now();
    let options = Options { parallelism: 1, heartbeat: Duration::from_secs(60), ..Options::default() };
    let (report, events) = run_for(Duration::from_secs(3 * 3600), kinds, &cloud, &plan, &options).await;

    assert_all_done(&report);
    let first = events.all().into_iter().next().expect("events");
    assert_eq!((first.address.as_str(), first.phase), ("widget.db", Phase::Create), "the database went first");
    let db_done = events.finished_at("widget.db", Phase::Create);
    assert!(db_done - t0 >= Duration::from_secs(30 * 60), "the database took its 30 minutes: {:?}", db_done - t0);
    for other in ["widget.a", "widget.b", "widget.c"] {
        let done = events.finished_at(other, Phase::Create);
        assert!(done - t0 < Duration::from_secs(60), "{other} finished after {:?}, not held up", done - t0);
        assert!(done < db_done);
    }
    let statuses = events.statuses("widget.db");
    assert!(statuses.iter().any(|s| s.as_deref() == Some("backing-up")), "heartbeat statuses: {statuses:?}");
    assert!(events.statuses("widget.a").is_empty(), "nothing long to report for a quick create");
    let db = world.rec(HOME, "widget.db");
    assert_eq!(db.pending, None, "up");
    assert_eq!(world.recs("widget").len(), 4);
}

/// A wait that outlasts its timeout (the spec's override, else the kind's default) fails naming the resource,
/// AWS's last status and that a re-run resumes; what depends on it is skipped, not attempted. The re-run does
/// resume: it waits for the resource and creates the dependents.
#[tokio::test(start_paused = true)]
async fn a_wait_beyond_its_timeout_fails_saying_a_rerun_resumes() {
    let world = World::new();
    let widget = Fake::widget(&world).with_timeouts(Timeouts::minutes(20, 20, 20));
    let kinds: &[&dyn Kind] = &[&widget];
    let cloud = cloud();
    let mut db = Desired::new(HOME, addr("widget.db"), &json!({ "size": 1 }));
    db.timeouts = Some(Timeouts::minutes(5, 5, 5));
    world.want(vec![
        db,
        Desired::new(HOME, addr("widget.cache"), &json!({ "size": 1 })),
        Desired::new(HOME, addr("widget.app"), &json!({ "size": 1, "peer": reference(&addr("widget.db")) })),
        Desired::new(HOME, addr("widget.web"), &json!({ "size": 1, "peer": reference(&addr("widget.cache")) })),
    ]);
    world.slow("widget.db", Duration::from_secs(30 * 60), "backing-up");
    world.slow("widget.cache", Duration::from_secs(30 * 60), "modifying");

    let plan = plan_of(kinds, &cloud).await;
    let t0 = Instant::now();
    let (report, events) = run_for(Duration::from_secs(3 * 3600), kinds, &cloud, &plan, &options()).await;

    let error = failure(&report, "widget.db", Phase::Create);
    for part in
        ["gave up waiting for widget.db after 5m", "(last status: backing-up)", "run the same command again to resume"]
    {
        assert!(error.contains(part), "missing {part:?} in: {error}");
    }
    let error = failure(&report, "widget.cache", Phase::Create);
    assert!(error.contains("gave up waiting for widget.cache after 20m (last status: modifying)"), "{error}");
    let db_failed = events.finished_at("widget.db", Phase::Create) - t0;
    assert!(db_failed >= Duration::from_secs(5 * 60) && db_failed < Duration::from_secs(6 * 60), "{db_failed:?}");
    let cache_failed = events.finished_at("widget.cache", Phase::Create) - t0;
    assert!(cache_failed >= Duration::from_secs(20 * 60) && cache_failed < Duration::from_secs(21 * 60));
    assert_eq!(outcome(&report, "widget.app", Phase::Create), &skipped("widget.db (create) failed"));
    assert_eq!(outcome(&report, "widget.web", Phase::Create), &skipped("widget.cache (create) failed"));
    assert_eq!(world.count("widget", "create"), 2, "the dependents were never attempted");
    assert!(!events.started("widget.app", Phase::Create) && !events.started("widget.web", Phase::Create));
    assert_eq!(world.rec(HOME, "widget.db").pending.as_deref(), Some("creating"), "AWS keeps working on it");

    // AWS finishes in the meantime; the same command again waits for both and creates the rest.
    world.fast();
    let again = plan_of(kinds, &cloud).await;
    assert_eq!(change(&again, HOME, "widget.db").pending.as_deref(), Some("creating"));
    assert_eq!(again.summary.add, 2);
    let (report, events) = run_for(Duration::from_secs(3 * 3600), kinds, &cloud, &again, &options()).await;
    assert_all_done(&report);
    assert!(events.finished_at("widget.db", Phase::Wait) <= events.started_at("widget.app", Phase::Create));
    assert_eq!(world.recs("widget").len(), 4, "nothing made twice");
    assert_eq!(world.created(HOME, "widget.app")["peer"], json!(world.rec(HOME, "widget.db").id));
    assert!(!plan_of(kinds, &cloud).await.has_changes());
}

/// Ctrl-C during a 30-minute wait stops waiting at once: the error says it was interrupted and that the resource
/// keeps coming up on AWS's side; nothing that depends on it starts.
#[tokio::test(start_paused = true)]
async fn ctrl_c_stops_a_wait_and_says_the_resource_keeps_coming_up() {
    let world = World::new();
    let widget = Fake::widget(&world).with_timeouts(Timeouts::minutes(60, 60, 60));
    let kinds: &[&dyn Kind] = &[&widget];
    let cloud = cloud();
    world.want(vec![
        Desired::new(HOME, addr("widget.db"), &json!({ "size": 1 })),
        Desired::new(HOME, addr("widget.app"), &json!({ "size": 1, "peer": reference(&addr("widget.db")) })),
    ]);
    world.slow("widget.db", Duration::from_secs(30 * 60), "backing-up");

    let plan = plan_of(kinds, &cloud).await;
    let options = options();
    let stop = options.stop.clone();
    let t0 = Instant::now();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(120)).await;
        stop.store(true, Ordering::SeqCst);
    });
    let (report, events) = run_for(Duration::from_secs(3 * 3600), kinds, &cloud, &plan, &options).await;

    let error = failure(&report, "widget.db", Phase::Create);
    for part in [
        "interrupted",
        "(last status: backing-up)",
        "widget.db keeps coming up on AWS's side",
        "run the same command again to resume",
    ] {
        assert!(error.contains(part), "missing {part:?} in: {error}");
    }
    let stopped = events.finished_at("widget.db", Phase::Create) - t0;
    assert!(stopped >= Duration::from_secs(120) && stopped < Duration::from_secs(130), "stopped after {stopped:?}");
    assert_eq!(outcome(&report, "widget.app", Phase::Create), &skipped("widget.db (create) failed"));
    assert!(!events.started("widget.app", Phase::Create));
    assert_eq!(world.count("widget", "create"), 1);
    assert_eq!(world.rec(HOME, "widget.db").pending.as_deref(), Some("creating"), "still coming up");
}

/// A password never leaves the process: not in the plan text, not in the JSON plan, not in what apply reports.
/// Yet changing it shows as a change (the digests differ), and leaving it alone shows nothing.
#[tokio::test]
async fn sensitive_value_appears_nowhere_but_its_changes_show() {
    const SECRET: &str = "hunter2-SECRET";
    const NEW: &str = "hunter3-SECRET";
    let world = World::new();
    let widget = Fake::widget(&world);
    let kinds: &[&dyn Kind] = &[&widget];
    let cloud = cloud();
    let want = |password: &str| {
        vec![
            Desired::new(HOME, addr("widget.db"), &json!({ "size": 1, "password": password })),
            Desired::new(HOME, addr("widget.replica"), &json!({ "size": 1, "password": SECRET })),
        ]
    };
    world.want(want(SECRET));

    let first = plan_of(kinds, &cloud).await;
    assert_hidden(&first, &["hunter2", "hunter3"]);
    let text = webscale::ui::plan_text(&first, false);
    assert!(text.contains("+ password = (sensitive value)"), "{text}");
    let db_digest = attr(change(&first, HOME, "widget.db"), "password").after.clone().unwrap();
    let replica_digest = attr(change(&first, HOME, "widget.replica"), "password").after.clone().unwrap();
    assert!(db_digest["sensitive"].as_str().is_some_and(|d| d.starts_with("sha256:")), "{db_digest}");
    assert_ne!(db_digest, replica_digest, "equal secrets of two resources do not look alike");

    let (report, events) = run(kinds, &cloud, &first, &options()).await;
    assert_all_done(&report);
    assert_not_in(&format!("{:?}", events.all()), &["hunter2"], "apply events");
    assert_not_in(&serde_json::to_string(&report).unwrap(), &["hunter2"], "apply report");
    assert_eq!(world.rec(HOME, "widget.db").attrs["password"], json!(SECRET), "the kind got the real value");

    let second = plan_of(kinds, &cloud).await;
    assert!(!second.has_changes(), "an unchanged password is no change: {:?}", actions(&second));
    assert_hidden(&second, &["hunter2"]);

    world.want(want(NEW));
    let third = plan_of(kinds, &cloud).await;
    assert_eq!(actions(&third), [(HOME.to_string(), "widget.db".to_string(), Action::Update)]);
    let db = change(&third, HOME, "widget.db");
    assert_eq!(db.changed(), ["password"]);
    let password = attr(db, "password");
    assert_eq!(password.before.as_ref(), Some(&db_digest), "before: the digest of the value set");
    let after = password.after.as_ref().unwrap();
    assert!(after["sensitive"].is_string() && *after != db_digest, "{password:?}");
    assert_hidden(&third, &["hunter2", "hunter3"]);
    let text = webscale::ui::plan_text(&third, false);
    assert!(text.contains("~ password = (sensitive value) -> (sensitive value)"), "{text}");

    let (report, events) = run(kinds, &cloud, &third, &options()).await;
    assert_all_done(&report);
    assert_not_in(&format!("{:?}", events.all()), &["hunter2", "hunter3"], "apply events");
    assert_not_in(&serde_json::to_string(&report).unwrap(), &["hunter2", "hunter3"], "apply report");
    assert_eq!(world.rec(HOME, "widget.db").attrs["password"], json!(NEW));
    assert!(!plan_of(kinds, &cloud).await.has_changes());
}

/// A value AWS never gives back (a Lambda environment secret): the kind keeps the digest the engine hands it, so
/// an unchanged value plans nothing while a new value is an update, and the value itself is never shown.
#[tokio::test]
async fn write_only_value_is_compared_by_the_digest_kept_on_the_resource() {
    const FIRST: &str = "s3cr3t-WRITE-ONLY";
    const SECOND: &str = "n3w-s3cr3t-WRITE-ONLY";
    let world = World::new();
    let widget = Fake::widget(&world);
    let kinds: &[&dyn Kind] = &[&widget];
    let cloud = cloud();
    world.want(vec![Desired::new(HOME, addr("widget.fn"), &json!({ "size": 1, "secret": FIRST }))]);

    let first = plan_of(kinds, &cloud).await;
    assert_hidden(&first, &["s3cr3t"]);
    let shown = attr(change(&first, HOME, "widget.fn"), "secret").after.clone().unwrap();
    let (report, _) = run(kinds, &cloud, &first, &options()).await;
    assert_all_done(&report);
    let create = world.last("widget", "create");
    assert_eq!(create.desired.as_ref().unwrap()["secret"], json!(FIRST), "the kind gets the value to set it");
    let digest = create.digests.get("secret").cloned().expect("a digest for the write-only attribute");
    assert_eq!(shown, json!({ "sensitive": digest }), "the plan shows the digest the kind is given");
    assert_eq!(world.rec(HOME, "widget.fn").attrs["secret"], json!(digest), "only the digest is kept");

    let second = plan_of(kinds, &cloud).await;
    assert!(!second.has_changes(), "unchanged: {:?}", actions(&second));

    world.want(vec![Desired::new(HOME, addr("widget.fn"), &json!({ "size": 1, "secret": SECOND }))]);
    let third = plan_of(kinds, &cloud).await;
    assert_eq!(actions(&third), [(HOME.to_string(), "widget.fn".to_string(), Action::Update)]);
    let secret = attr(change(&third, HOME, "widget.fn"), "secret");
    assert_eq!(secret.before, Some(json!({ "sensitive": digest })));
    assert!(secret.after.as_ref().is_some_and(|a| a["sensitive"].is_string() && a["sensitive"] != json!(digest)));
    assert_hidden(&third, &["s3cr3t"]);

    let (report, _) = run(kinds, &cloud, &third, &options()).await;
    assert_all_done(&report);
    let update = world.last("widget", "update");
    assert_eq!(update.changed, ["secret"]);
    assert_eq!(update.desired.as_ref().unwrap()["secret"], json!(SECOND));
    let new_digest = update.digests["secret"].clone();
    assert_eq!(secret.after, Some(json!({ "sensitive": new_digest })));
    assert_eq!(world.rec(HOME, "widget.fn").attrs["secret"], json!(new_digest));
    assert!(!plan_of(kinds, &cloud).await.has_changes());
}

/// Listener rules (or cache behaviours) apply in order: reordering them is a change. Every other list is a set
/// AWS may return in any order: reordering it is not.
#[tokio::test]
async fn reordering_an_ordered_list_is_a_change_and_a_set_is_not() {
    let world = World::new();
    let widget = Fake::widget(&world);
    let kinds: &[&dyn Kind] = &[&widget];
    let cloud = cloud();
    let want = |rules: Value, ports: Value| {
        vec![Desired::new(HOME, addr("widget.lb"), &json!({ "size": 1, "rules": rules, "ports": ports }))]
    };
    world.want(want(json!(["forward-api", "forward-web", "deny-all"]), json!([80, 443])));
    let first = plan_of(kinds, &cloud).await;
    let (report, _) = run(kinds, &cloud, &first, &options()).await;
    assert_all_done(&report);
    assert!(!plan_of(kinds, &cloud).await.has_changes());

    world.want(want(json!(["forward-api", "forward-web", "deny-all"]), json!([443, 80])));
    let set = plan_of(kinds, &cloud).await;
    assert!(!set.has_changes(), "a set in another order is the same set: {:?}", actions(&set));

    world.want(want(json!(["forward-web", "forward-api", "deny-all"]), json!([443, 80])));
    let reordered = plan_of(kinds, &cloud).await;
    assert_eq!(actions(&reordered), [(HOME.to_string(), "widget.lb".to_string(), Action::Update)]);
    let lb = change(&reordered, HOME, "widget.lb");
    assert_eq!(lb.changed(), ["rules"]);
    let rules = attr(lb, "rules");
    let text = webscale::ui::plan_text(&reordered, false);
    assert!(
        text.contains(
            r#"order: ["forward-api", "forward-web", "deny-all"] -> ["forward-web", "forward-api", "deny-all"]"#
        ),
        "a reviewer sees the new order:\n{text}"
    );
    assert_eq!(rules.before, Some(json!(["forward-api", "forward-web", "deny-all"])));
    assert_eq!(rules.after, Some(json!(["forward-web", "forward-api", "deny-all"])));

    let (report, _) = run(kinds, &cloud, &reordered, &options()).await;
    assert_all_done(&report);
    assert_eq!(world.last("widget", "update").changed, ["rules"]);
    assert_eq!(world.rec(HOME, "widget.lb").attrs["rules"], json!(["forward-web", "forward-api", "deny-all"]));
    assert!(!plan_of(kinds, &cloud).await.has_changes());
}

/// A resource a previous run left coming up ("creating") is shown in the plan and waited for before anything
/// that depends on it is created.
#[tokio::test(start_paused = true)]
async fn a_resource_still_coming_up_is_waited_for_before_its_dependents() {
    let world = World::new();
    let widget = Fake::widget(&world);
    let kinds: &[&dyn Kind] = &[&widget];
    let cloud = cloud();
    world.seed(Rec {
        kind: "widget",
        region: HOME.into(),
        id: "w-db".into(),
        address: addr("widget.db"),
        attrs: obj(json!({ "size": 1 })),
        outputs: obj(json!({ "dns_name": "w-db.elb.example.net" })),
        pending: Some("creating".into()),
    });
    world.slow("widget.db", Duration::from_secs(4 * 60), "creating");
    world.want(vec![
        Desired::new(HOME, addr("widget.db"), &json!({ "size": 1 })),
        Desired::new(HOME, addr("widget.app"), &json!({ "size": 1, "peer": reference(&addr("widget.db")) })),
    ]);

    let plan = plan_of(kinds, &cloud).await;
    assert!(plan.has_changes());
    let db = change(&plan, HOME, "widget.db");
    assert_eq!((db.action, db.pending.as_deref()), (Action::NoOp, Some("creating")));
    let text = webscale::ui::plan_text(&plan, false);
    assert!(text.contains("widget.db (w-db) (is creating on AWS: apply waits for it first)"), "{text}");
    let as_json = serde_json::to_value(&plan).unwrap();
    let db_json = as_json["changes"].as_array().unwrap().iter().find(|c| c["address"] == "widget.db").unwrap();
    assert_eq!(db_json["pending"], json!("creating"));

    let (report, events) = run_for(Duration::from_secs(3600), kinds, &cloud, &plan, &options()).await;
    assert_all_done(&report);
    let waited = events.finished_at("widget.db", Phase::Wait);
    assert!(waited <= events.started_at("widget.app", Phase::Create), "{:#?}", events.all());
    assert!(events.index("widget.db", Phase::Wait, "finished") < events.index("widget.app", Phase::Create, "started"));
    let waits: Vec<Option<Phase>> = world
        .calls()
        .into_iter()
        .filter(|c| c.op == "wait" && c.id.as_deref() == Some("w-db"))
        .map(|c| c.phase)
        .collect();
    assert_eq!(waits, [Some(Phase::Create)], "the kind was asked to wait until it is available");
    assert_eq!(world.rec(HOME, "widget.db").pending, None);
    assert_eq!(world.created(HOME, "widget.app")["peer"], json!("w-db"));
    assert_eq!(world.count("widget", "create"), 1, "the pending one is not created again");
    assert!(!plan_of(kinds, &cloud).await.has_changes());
}

/// `depends_on` orders resources no attribute links (switch a listener only once the targets are healthy): the
/// dependency is up before the dependent starts, and the JSON plan says so.
#[tokio::test(start_paused = true)]
async fn depends_on_orders_resources_without_a_reference() {
    let world = World::new();
    let widget = Fake::widget(&world).with_timeouts(Timeouts::minutes(60, 60, 60));
    let kinds: &[&dyn Kind] = &[&widget];
    let cloud = cloud();
    let mut listener = Desired::new(HOME, addr("widget.listener"), &json!({ "size": 1 }));
    listener.depends_on = vec![addr("widget.targets")];
    world.want(vec![listener, Desired::new(HOME, addr("widget.targets"), &json!({ "size": 1 }))]);
    world.slow("widget.targets", Duration::from_secs(5 * 60), "initial");

    let plan = plan_of(kinds, &cloud).await;
    let as_json = serde_json::to_value(&plan).unwrap();
    let listener = as_json["changes"].as_array().unwrap().iter().find(|c| c["address"] == "widget.listener").unwrap();
    assert_eq!(listener["depends_on"], json!(["widget.targets"]));
    let text = webscale::ui::plan_text(&plan, false);
    assert!(text.contains("# waits for widget.targets (depends_on)"), "{text}");

    let t0 = Instant::now();
    let (report, events) = run_for(Duration::from_secs(3600), kinds, &cloud, &plan, &options()).await;
    assert_all_done(&report);
    let ready = events.finished_at("widget.targets", Phase::Create);
    let started = events.started_at("widget.listener", Phase::Create);
    assert!(ready - t0 >= Duration::from_secs(5 * 60));
    assert!(started >= ready, "the listener started {:?} before its targets were up", ready - started);
    assert!(
        events.index("widget.targets", Phase::Create, "finished")
            < events.index("widget.listener", Phase::Create, "started")
    );
    assert_eq!(world.recs("widget").len(), 2);
}

/// LocalStack's free edition serves no CloudFront: while the spec declares no distribution the plan goes ahead
/// with a warning naming what was not checked; once the spec declares one, the plan fails naming it.
#[tokio::test]
async fn a_kind_the_endpoint_does_not_serve_is_a_warning_until_the_spec_uses_it() {
    let world = World::new();
    let (widget, distribution) = (Fake::widget(&world), Fake::distribution(&world));
    let kinds: &[&dyn Kind] = &[&widget, &distribution];
    let cloud = two_regions();
    world.fail_reads(
        "distribution",
        CloudError {
            operation: "ListDistributions".into(),
            code: Some("InternalFailure".into()),
            message: "API for service 'cloudfront' not yet implemented or pro feature - not included in your current \
                      license plan"
                .into(),
        },
    );
    world.want(vec![Desired::new(HOME, addr("widget.web"), &json!({ "size": 1 }))]);

    let plan = plan_of(kinds, &cloud).await;
    assert_eq!(plan.warnings.len(), 1, "one warning for the one (global) kind: {:?}", plan.warnings);
    let warning = &plan.warnings[0];
    for part in ["distributions", "cloudfront", "InternalFailure", "not checked"] {
        assert!(warning.contains(part), "missing {part:?} in: {warning}");
    }
    assert_eq!(actions(&plan), [(HOME.to_string(), "widget.web".to_string(), Action::Create)]);
    let as_json = serde_json::to_value(&plan).unwrap();
    assert_eq!(as_json["warnings"], json!([warning]));

    world.want(vec![
        Desired::new(HOME, addr("widget.web"), &json!({ "size": 1 })),
        Desired::new(GLOBAL, addr("distribution.cdn"), &json!({ "origin": "example.com" })),
    ]);
    let err = plan::build_with(kinds, &cloud, &stack(), Mode::Apply).await.expect_err("the plan cannot be made");
    let text = err.to_string();
    for part in ["Cannot plan distributions", "cloudfront", "not included in your current license plan"] {
        assert!(text.contains(part), "missing {part:?} in: {text}");
    }
    assert!(matches!(err, webscale::Error::Read(_)), "{err:?}");
}

/// A create whose answer was lost (the call went through, the connection did not) is finished, not repeated:
/// the engine looks for that one address, finds the resource and completes it, and dependents get its id.
#[tokio::test]
async fn a_create_whose_answer_was_lost_is_finished_not_repeated() {
    let world = World::new();
    let widget = Fake::widget(&world);
    let kinds: &[&dyn Kind] = &[&widget];
    let cloud = cloud();
    world.want(vec![
        Desired::new(HOME, addr("widget.web"), &json!({ "size": 3 })),
        Desired::new(HOME, addr("widget.app"), &json!({ "size": 1, "peer": reference(&addr("widget.web")) })),
    ]);
    world.lose_answer("widget.web");

    let plan = plan_of(kinds, &cloud).await;
    world.clear_calls();
    let (report, events) = run(kinds, &cloud, &plan, &options()).await;

    assert_all_done(&report);
    let webs: Vec<Rec> = world.recs("widget").into_iter().filter(|r| r.address.as_str() == "widget.web").collect();
    assert_eq!(webs.len(), 1, "one widget.web: {webs:?}");
    let web = &webs[0];
    assert_eq!(
        world.calls().iter().filter(|c| c.op == "create" && c.address.as_ref() == Some(&web.address)).count(),
        1,
        "CreateWidget was not called again"
    );
    let narrowed: Vec<Call> = world.calls().into_iter().filter(|c| c.op == "read").collect();
    assert_eq!(narrowed.len(), 1, "one look for the resource: {narrowed:#?}");
    assert_eq!(narrowed[0].only, Some(addr("widget.web")), "the look asks for that one address");
    assert_eq!(narrowed[0].region, HOME);
    let finish = world.last("widget", "update");
    assert_eq!(finish.id.as_deref(), Some(web.id.as_str()), "the resource found is finished");
    assert_eq!(finish.desired.as_ref().unwrap()["size"], json!(3));
    assert_eq!(events.finished_id("widget.web", Phase::Create).as_deref(), Some(web.id.as_str()));
    assert_eq!(report.ids.get(&addr("widget.web")), Some(&web.id));
    assert_eq!(world.created(HOME, "widget.app")["peer"], json!(web.id), "the dependent refers to the one made");
    assert!(!plan_of(kinds, &cloud).await.has_changes());
}

/// Zones and records both need the list of hosted zones: one plan asks AWS once (the read context's cache),
/// however many kinds ask; the next plan asks again (the cache lives for one plan, never serving stale state).
#[tokio::test]
async fn kinds_sharing_a_response_make_one_call_per_plan() {
    let world = World::new();
    let (zone, record) = (Fake::zone(&world), Fake::record(&world));
    let kinds: &[&dyn Kind] = &[&zone, &record];
    let cloud = cloud();
    world.seed(Rec {
        kind: "zone",
        region: GLOBAL.into(),
        id: "Z0MAIN".into(),
        address: addr("zone.main"),
        attrs: obj(json!({ "name": "example.com" })),
        outputs: Attrs::new(),
        pending: None,
    });
    world.seed(Rec {
        kind: "record",
        region: GLOBAL.into(),
        id: "Z0MAIN/www".into(),
        address: addr("record.www"),
        attrs: obj(json!({ "zone": "Z0MAIN", "target": "lb.example.net", "ttl": 60 })),
        outputs: Attrs::new(),
        pending: None,
    });
    world.want(vec![
        Desired::new(GLOBAL, addr("zone.main"), &json!({ "name": "example.com" })),
        Desired::new(
            GLOBAL,
            addr("record.www"),
            &json!({ "zone": reference(&addr("zone.main")), "target": "lb.example.net", "ttl": 60 }),
        ),
    ]);

    let first = plan_of(kinds, &cloud).await;
    assert_eq!(world.count("route53", "ListHostedZones"), 1, "one call for both kinds: {:#?}", world.calls());
    assert_eq!((world.count("zone", "read"), world.count("record", "read")), (1, 1), "both kinds did read");
    assert!(!first.has_changes(), "both found what they share: {:?}", actions(&first));
    assert_eq!(change(&first, GLOBAL, "zone.main").id.as_deref(), Some("Z0MAIN"));
    assert_eq!(change(&first, GLOBAL, "record.www").id.as_deref(), Some("Z0MAIN/www"));

    plan_of(kinds, &cloud).await;
    assert_eq!(world.count("route53", "ListHostedZones"), 2, "a new plan reads afresh");
}

// =====================================================================================================================
// The kinds and their world
// =====================================================================================================================

static WIDGET: &[Attr] = &[
    Attr::new("name").forces_replacement(),
    Attr::new("size"),
    Attr::new("peer"),
    Attr::new("password").sensitive(),
    Attr::new("secret").write_only(),
    Attr::new("rules").ordered(),
    Attr::new("ports"),
];
static ZONE: &[Attr] = &[Attr::new("name").forces_replacement()];
static RECORD: &[Attr] = &[Attr::new("zone").forces_replacement(), Attr::new("target"), Attr::new("ttl")];
static DISTRIBUTION: &[Attr] = &[Attr::new("origin")];

/// One resource in the world.
#[derive(Debug, Clone)]
struct Rec {
    kind: &'static str,
    region: String,
    id: String,
    address: Address,
    /// As the kind was given them: references as plain ids, write-only values as their digests.
    attrs: Attrs,
    outputs: Attrs,
    pending: Option<String>,
}

/// One call a kind got.
#[derive(Debug, Clone)]
struct Call {
    kind: &'static str,
    op: &'static str,
    region: String,
    address: Option<Address>,
    id: Option<String>,
    /// For reads: the one address asked for.
    only: Option<Address>,
    desired: Option<Attrs>,
    changed: Vec<String>,
    digests: BTreeMap<String, String>,
    phase: Option<Phase>,
}

impl Call {
    fn new(kind: &'static str, op: &'static str, region: &str) -> Call {
        Call {
            kind,
            op,
            region: region.to_string(),
            address: None,
            id: None,
            only: None,
            desired: None,
            changed: Vec::new(),
            digests: BTreeMap::new(),
            phase: None,
        }
    }

    fn on(kind: &'static str, what: &'static str, op: &Op<'_>) -> Call {
        Call {
            address: Some(op.address.clone()),
            id: op.id.map(str::to_string),
            desired: op.desired.clone(),
            changed: op.changed.to_vec(),
            digests: op.digests.clone(),
            ..Call::new(kind, what, op.region)
        }
    }
}

#[derive(Default)]
struct State {
    recs: Vec<Rec>,
    calls: Vec<Call>,
    desired: Vec<Desired>,
    next: usize,
    /// By address: how long AWS takes to bring it up, and the status it reports meanwhile.
    slow: BTreeMap<String, (Duration, &'static str)>,
    read_errors: BTreeMap<&'static str, CloudError>,
    /// Addresses whose next create is carried out but answered with a lost connection.
    lose_answer: Vec<String>,
}

/// The cloud the test kinds live in.
#[derive(Default)]
struct World(Mutex<State>);

impl World {
    fn new() -> Arc<World> {
        Arc::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn want(&self, desired: Vec<Desired>) {
        self.with(|s| s.desired = desired);
    }

    fn seed(&self, rec: Rec) {
        self.with(|s| s.recs.push(rec));
    }

    fn slow(&self, address: &str, takes: Duration, status: &'static str) {
        self.with(|s| s.slow.insert(address.to_string(), (takes, status)));
    }

    /// AWS has finished whatever it was doing: waits return at once.
    fn fast(&self) {
        self.with(|s| s.slow.clear());
    }

    fn fail_reads(&self, kind: &'static str, error: CloudError) {
        self.with(|s| s.read_errors.insert(kind, error));
    }

    fn lose_answer(&self, address: &str) {
        self.with(|s| s.lose_answer.push(address.to_string()));
    }

    fn log(&self, call: Call) {
        self.with(|s| s.calls.push(call));
    }

    fn calls(&self) -> Vec<Call> {
        self.with(|s| s.calls.clone())
    }

    fn clear_calls(&self) {
        self.with(|s| s.calls.clear());
    }

    fn count(&self, kind: &str, op: &str) -> usize {
        self.calls().iter().filter(|c| c.kind == kind && c.op == op).count()
    }

    /// The regions `kind` was read in, sorted.
    fn reads(&self, kind: &str) -> Vec<String> {
        let mut out: Vec<String> =
            self.calls().into_iter().filter(|c| c.kind == kind && c.op == "read").map(|c| c.region).collect();
        out.sort();
        out
    }

    fn last(&self, kind: &str, op: &str) -> Call {
        self.calls()
            .into_iter()
            .rev()
            .find(|c| c.kind == kind && c.op == op)
            .unwrap_or_else(|| panic!("no {op} of a {kind}: {:#?}", self.calls()))
    }

    /// The desired attributes the kind was last given to create `address` in `region`.
    fn created(&self, region: &str, address: &str) -> Attrs {
        self.calls()
            .into_iter()
            .rev()
            .find(|c| {
                c.op == "create" && c.region == region && c.address.as_ref().is_some_and(|a| a.as_str() == address)
            })
            .and_then(|c| c.desired)
            .unwrap_or_else(|| panic!("{address} ({region}) was not created: {:#?}", self.calls()))
    }

    fn recs(&self, kind: &str) -> Vec<Rec> {
        self.with(|s| s.recs.iter().filter(|r| r.kind == kind).cloned().collect())
    }

    /// The one resource at `address` in `region`.
    fn rec(&self, region: &str, address: &str) -> Rec {
        let found: Vec<Rec> = self
            .with(|s| s.recs.iter().filter(|r| r.region == region && r.address.as_str() == address).cloned().collect());
        assert_eq!(found.len(), 1, "{address} in {region}: {found:#?}");
        found.into_iter().next().unwrap()
    }
}

/// A resource kind backed by the world. One type, configured per kind.
struct Fake {
    name: &'static str,
    prefix: &'static str,
    scope: Scope,
    service: &'static str,
    schema: &'static [Attr],
    /// Attributes holding references: read back as `{"id": ...}`, as real kinds report them.
    refs: &'static [&'static str],
    /// The output the kind's resources have (a DNS name).
    output: Option<&'static str>,
    /// Reads start from the list of hosted zones, through the read context's shared cache.
    lists_zones: bool,
    timeouts: Timeouts,
    world: Arc<World>,
}

impl Fake {
    fn widget(world: &Arc<World>) -> Fake {
        Fake {
            name: "widget",
            prefix: "w",
            scope: Scope::Regional,
            service: "widgets",
            schema: WIDGET,
            refs: &["peer"],
            output: Some("dns_name"),
            lists_zones: false,
            timeouts: Timeouts::minutes(10, 10, 20),
            world: world.clone(),
        }
    }

    fn zone(world: &Arc<World>) -> Fake {
        Fake {
            name: "zone",
            prefix: "Z",
            scope: Scope::Global,
            service: "route53",
            schema: ZONE,
            refs: &[],
            output: None,
            lists_zones: true,
            ..Fake::widget(world)
        }
    }

    fn record(world: &Arc<World>) -> Fake {
        Fake { name: "record", prefix: "R", schema: RECORD, refs: &["zone"], ..Fake::zone(world) }
    }

    fn distribution(world: &Arc<World>) -> Fake {
        Fake {
            name: "distribution",
            prefix: "E",
            service: "cloudfront",
            schema: DISTRIBUTION,
            lists_zones: false,
            ..Fake::zone(world)
        }
    }

    fn with_timeouts(self, timeouts: Timeouts) -> Fake {
        Fake { timeouts, ..self }
    }

    /// What the kind keeps of the desired attributes: write-only values as the digest the engine hands over.
    fn kept(&self, desired: &Attrs, op: &Op<'_>, names: &[String]) -> Attrs {
        names
            .iter()
            .filter_map(|n| {
                let rule = webscale::resources::schema_rules(self.schema, n);
                let v = if rule.write_only { json!(op.digests.get(n)?) } else { desired.get(n)?.clone() };
                Some((n.clone(), v))
            })
            .collect()
    }

    fn live(&self, r: &Rec) -> Live {
        let attrs = r
            .attrs
            .iter()
            .map(|(k, v)| match v {
                Value::String(id) if self.refs.contains(&k.as_str()) => (k.clone(), cloud_id(id.clone())),
                other => (k.clone(), other.clone()),
            })
            .collect();
        Live {
            outputs: r.outputs.clone(),
            pending: r.pending.clone(),
            ..Live::new(r.address.clone(), &r.region, &r.id, attrs)
        }
    }

    fn error(&self, op: &str, code: &str, message: String) -> CloudError {
        let mut name = self.name.to_string();
        name[..1].make_ascii_uppercase();
        CloudError { operation: format!("{op}{name}"), code: Some(code.into()), message }
    }
}

#[async_trait]
impl Kind for Fake {
    fn name(&self) -> &'static str {
        self.name
    }

    fn service(&self) -> &'static str {
        self.service
    }

    fn scope(&self) -> Scope {
        self.scope
    }

    fn schema(&self) -> &'static [Attr] {
        self.schema
    }

    fn desired(&self, _stack: &Stack) -> Vec<Desired> {
        self.world.with(|s| s.desired.iter().filter(|d| d.address.kind() == self.name).cloned().collect())
    }

    fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        self.world.log(Call { only: ctx.only.cloned(), ..Call::new(self.name, "read", region) });
        if let Some(e) = self.world.with(|s| s.read_errors.get(self.name).cloned()) {
            return Err(e);
        }
        let mut zones = None;
        if self.lists_zones {
            let world = self.world.clone();
            let listed = ctx
                .shared("route53:ListHostedZones", || async move {
                    // Slow enough that both kinds ask while the first call is in flight.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    world.log(Call::new("route53", "ListHostedZones", GLOBAL));
                    Ok(world.recs("zone").into_iter().map(|z| z.id).collect::<Vec<String>>())
                })
                .await?;
            zones = Some(listed);
        }
        let found = self.world.with(|s| {
            s.recs
                .iter()
                .filter(|r| r.kind == self.name && r.region == region)
                .filter(|r| ctx.only.is_none_or(|a| *a == r.address))
                .filter(|r| match (&zones, self.name) {
                    (Some(z), "zone") => z.contains(&r.id),
                    (Some(z), "record") => r.attrs["zone"].as_str().is_some_and(|id| z.iter().any(|i| i == id)),
                    _ => true,
                })
                .map(|r| self.live(r))
                .collect()
        });
        Ok(found)
    }

    async fn create(&self, _cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        self.world.log(Call::on(self.name, "create", op));
        let desired = op.desired.clone().unwrap_or_default();
        let names: Vec<String> = desired.keys().cloned().collect();
        let attrs = self.kept(&desired, op, &names);
        let (id, lost, slow) = self.world.with(|s| {
            s.next += 1;
            let id = format!("{}-{}", self.prefix, s.next);
            let lost = s.lose_answer.iter().position(|a| a == op.address.as_str()).map(|i| s.lose_answer.remove(i));
            (id, lost.is_some(), s.slow.contains_key(op.address.as_str()))
        });
        let outputs: Attrs = self
            .output
            .map(|o| Attrs::from_iter([(o.to_string(), json!(format!("{id}.elb.example.net")))]))
            .unwrap_or_default();
        self.world.seed(Rec {
            kind: self.name,
            region: op.region.to_string(),
            id: id.clone(),
            address: op.address.clone(),
            attrs,
            outputs: outputs.clone(),
            pending: slow.then(|| "creating".to_string()),
        });
        if lost {
            return Err(CloudError {
                operation: "CreateWidget".into(),
                code: None,
                message: "dispatch failure: connection reset before the answer arrived".into(),
            });
        }
        Ok(Created { id, outputs })
    }

    async fn update(&self, _cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        self.world.log(Call::on(self.name, "update", op));
        let id = op.id()?.to_string();
        let desired = op.desired.clone().unwrap_or_default();
        let kept = self.kept(&desired, op, op.changed);
        self.world.with(|s| {
            let rec = s.recs.iter_mut().find(|r| r.kind == self.name && r.id == id);
            let Some(rec) = rec else { return Err(self.error("Update", "WidgetNotFound", format!("{id} not found"))) };
            for name in op.changed {
                match kept.get(name) {
                    Some(v) => rec.attrs.insert(name.clone(), v.clone()),
                    None => rec.attrs.remove(name),
                };
            }
            Ok(())
        })
    }

    async fn delete(&self, _cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        self.world.log(Call::on(self.name, "delete", op));
        let id = op.id()?.to_string();
        self.world.with(|s| {
            let before = s.recs.len();
            s.recs.retain(|r| !(r.kind == self.name && r.id == id));
            if s.recs.len() == before {
                return Err(self.error("Delete", "WidgetNotFound", format!("{id} not found")));
            }
            Ok(())
        })
    }

    async fn wait(
        &self,
        _cloud: &Cloud,
        op: &Op<'_>,
        id: &str,
        phase: Phase,
        progress: &Progress,
    ) -> Result<(), CloudError> {
        self.world.log(Call { id: Some(id.to_string()), phase: Some(phase), ..Call::on(self.name, "wait", op) });
        if phase == Phase::Delete {
            return Ok(());
        }
        if let Some((takes, status)) = self.world.with(|s| s.slow.get(op.address.as_str()).copied()) {
            progress.set(status);
            tokio::time::sleep(takes).await;
        }
        self.world.with(|s| {
            for r in s.recs.iter_mut().filter(|r| r.kind == self.name && r.id == id) {
                r.pending = None;
            }
        });
        Ok(())
    }
}

// =====================================================================================================================
// What the engine reported
// =====================================================================================================================

#[derive(Debug, Clone)]
enum What {
    Started,
    Running(Option<String>),
    Finished(Result<Option<String>, String>),
}

/// One thing the apply hook was told, stamped with tokio's (possibly virtual) clock.
#[derive(Debug, Clone)]
struct Event {
    address: String,
    phase: Phase,
    what: What,
    at: Instant,
}

#[derive(Default)]
struct Events(Mutex<Vec<Event>>);

impl Events {
    fn push(&self, address: &Address, phase: Phase, what: What) {
        let e = Event { address: address.to_string(), phase, what, at: Instant::now() };
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(e);
    }

    fn all(&self) -> Vec<Event> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn find(&self, address: &str, phase: Phase, which: &str) -> Option<(usize, Event)> {
        self.all().into_iter().enumerate().find(|(_, e)| {
            e.address == address
                && e.phase == phase
                && matches!(
                    (&e.what, which),
                    (What::Started, "started") | (What::Finished(_), "finished") | (What::Running(_), "running")
                )
        })
    }

    fn index(&self, address: &str, phase: Phase, which: &str) -> usize {
        self.find(address, phase, which)
            .unwrap_or_else(|| panic!("no {address} {phase:?} {which}: {:#?}", self.all()))
            .0
    }

    fn started(&self, address: &str, phase: Phase) -> bool {
        self.find(address, phase, "started").is_some()
    }

    fn started_at(&self, address: &str, phase: Phase) -> Instant {
        self.all()[self.index(address, phase, "started")].at
    }

    fn finished_at(&self, address: &str, phase: Phase) -> Instant {
        self.all()[self.index(address, phase, "finished")].at
    }

    fn finished_id(&self, address: &str, phase: Phase) -> Option<String> {
        match self.all()[self.index(address, phase, "finished")].what.clone() {
            What::Finished(Ok(id)) => id,
            other => panic!("{address} {phase:?}: {other:?}"),
        }
    }

    /// The statuses the heartbeat reported for `address`.
    fn statuses(&self, address: &str) -> Vec<Option<String>> {
        self.all()
            .into_iter()
            .filter(|e| e.address == address)
            .filter_map(|e| match e.what {
                What::Running(s) => Some(s),
                _ => None,
            })
            .collect()
    }
}

impl Hook for Events {
    fn started(&self, address: &Address, phase: Phase) {
        self.push(address, phase, What::Started);
    }

    fn still_running(&self, address: &Address, phase: Phase, _elapsed: Duration, status: Option<&str>) {
        self.push(address, phase, What::Running(status.map(str::to_string)));
    }

    fn finished(&self, address: &Address, phase: Phase, _elapsed: Duration, result: Result<Option<&str>, &CloudError>) {
        let result = result.map(|id| id.map(str::to_string)).map_err(|e| e.to_string());
        self.push(address, phase, What::Finished(result));
    }
}

// =====================================================================================================================
// Helpers
// =====================================================================================================================

fn addr(s: &str) -> Address {
    Address::parse(s).unwrap_or_else(|| panic!("bad address {s}"))
}

fn obj(v: Value) -> Attrs {
    v.as_object().cloned().unwrap_or_default()
}

fn stack() -> Stack {
    spec::parse(Path::new("engine.toml"), SPEC, &RegionChoice::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// The stack's home region (and the global pseudo-region every cloud has).
fn cloud() -> Cloud {
    let mut cloud = Cloud::from_clients("engine", HOME, unused_clients(), fast());
    cloud.account = Some(ACCOUNT.into());
    cloud
}

/// Home plus eu-west-1.
fn two_regions() -> Cloud {
    cloud().with_region(EU, unused_clients())
}

fn options() -> Options {
    Options { parallelism: 10, heartbeat: Duration::from_secs(60), ..Options::default() }
}

async fn plan_of(kinds: Kinds<'_>, cloud: &Cloud) -> Plan {
    let plan = plan::build_with(kinds, cloud, &stack(), Mode::Apply).await.unwrap_or_else(|e| panic!("plan: {e}"));
    assert_eq!(plan.account.as_deref(), Some(ACCOUNT));
    plan
}

/// Applies `plan`, bounded so an engine that hangs fails the test instead.
async fn run(kinds: Kinds<'_>, cloud: &Cloud, plan: &Plan, options: &Options) -> (Report, Events) {
    run_for(Duration::from_secs(20), kinds, cloud, plan, options).await
}

async fn run_for(limit: Duration, kinds: Kinds<'_>, cloud: &Cloud, plan: &Plan, options: &Options) -> (Report, Events) {
    let events = Events::default();
    let stack = stack();
    let report = tokio::time::timeout(limit, apply::apply_with(kinds, cloud, &stack, plan, options, &events))
        .await
        .unwrap_or_else(|_| panic!("apply did not finish within {limit:?}: {:#?}", events.all()))
        .unwrap_or_else(|e| panic!("{e}"));
    (report, events)
}

/// (region, address, action) of every change that does something.
fn actions(plan: &Plan) -> Vec<(String, String, Action)> {
    plan.changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .map(|c| (c.region.clone(), c.address.to_string(), c.action))
        .collect()
}

fn change<'p>(plan: &'p Plan, region: &str, address: &str) -> &'p Change {
    let found: Vec<&Change> =
        plan.changes.iter().filter(|c| c.region == region && c.address.as_str() == address).collect();
    assert_eq!(found.len(), 1, "{address} in {region}: {:?}", actions(plan));
    found[0]
}

fn attr<'c>(change: &'c Change, name: &str) -> &'c plan::AttrChange {
    change
        .attributes
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no {name} in {}: {:?}", change.address, change.attributes))
}

fn json_attr(plan: &Value, address: &str, name: &str) -> Value {
    let change = plan["changes"].as_array().unwrap().iter().find(|c| c["address"] == address).unwrap();
    change["attributes"].as_array().unwrap().iter().find(|a| a["name"] == name).cloned().unwrap()
}

/// None of `secrets` in the plan's text (with or without colour) or JSON.
fn assert_hidden(plan: &Plan, secrets: &[&str]) {
    assert_not_in(&webscale::ui::plan_text(plan, false), secrets, "plan text");
    assert_not_in(&webscale::ui::plan_text(plan, true), secrets, "coloured plan text");
    assert_not_in(&serde_json::to_string(plan).unwrap(), secrets, "JSON plan");
    assert_not_in(&serde_json::to_string_pretty(plan).unwrap(), secrets, "pretty JSON plan");
}

fn assert_not_in(text: &str, secrets: &[&str], what: &str) {
    for s in secrets {
        assert!(!text.contains(s), "{what} shows {s:?}:\n{text}");
    }
}

fn outcome<'r>(report: &'r Report, address: &str, phase: Phase) -> &'r Result_ {
    &report
        .operations
        .iter()
        .find(|o| o.address.as_str() == address && o.phase == phase)
        .unwrap_or_else(|| panic!("no {} of {address} in the report: {report:#?}", phase.name()))
        .result
}

fn failure(report: &Report, address: &str, phase: Phase) -> String {
    match outcome(report, address, phase) {
        Result_::Failed { error } => error.clone(),
        other => panic!("{address} {}: expected a failure, got {other:?}", phase.name()),
    }
}

fn skipped(because: &str) -> Result_ {
    Result_::Skipped { because: because.to_string() }
}

fn assert_all_done(report: &Report) {
    let bad: Vec<_> = report.operations.iter().filter(|o| o.result != Result_::Done).collect();
    assert!(bad.is_empty(), "every operation should succeed: {bad:#?}");
}
