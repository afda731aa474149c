//! CloudFront (`origin_access_control.assets`, `distribution.assets`) against a fake CloudFront on
//! `aws-smithy-mocks` that enforces the rules real CloudFront does and moto does not (moto accepts any IfMatch,
//! never changes an ETag, deletes enabled distributions, and deploys at once):
//! - every change names the ETag of the configuration it is based on, else `PreconditionFailed`; each change makes
//!   a new ETag;
//! - a change deploys for [`DEPLOY`] of virtual time (`InProgress`, then `Deployed`);
//! - only a disabled, deployed distribution can be deleted (`DistributionNotDisabled`), an OAC only when no
//!   distribution uses it (`OriginAccessControlInUse`);
//! - a CallerReference seen before answers `DistributionAlreadyExists`; OAC names are unique;
//! - ListDistributions pages 100 at a time (MaxItems), ListOriginAccessControls likewise.
//!
//! The kinds are driven directly (`create`, `update`, `delete`, `wait`, `read`) and through the engine
//! (`plan::build_with` + `apply::apply_with`, as the CLI does) over the two CloudFront kinds; the distribution's
//! origin (the bucket's output) is a fixed name there, the rest is the real kind. Waits run in tokio's paused time.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_cloudfront::Client as CloudFront;
use aws_sdk_cloudfront::config::{Credentials, Region};
use aws_sdk_cloudfront::error::ErrorMetadata;
use aws_sdk_cloudfront::operation::create_distribution_with_tags::{
    CreateDistributionWithTagsError, CreateDistributionWithTagsOutput,
};
use aws_sdk_cloudfront::operation::create_origin_access_control::{
    CreateOriginAccessControlError, CreateOriginAccessControlOutput,
};
use aws_sdk_cloudfront::operation::delete_distribution::{DeleteDistributionError, DeleteDistributionOutput};
use aws_sdk_cloudfront::operation::delete_origin_access_control::{
    DeleteOriginAccessControlError, DeleteOriginAccessControlOutput,
};
use aws_sdk_cloudfront::operation::get_distribution::{GetDistributionError, GetDistributionOutput};
use aws_sdk_cloudfront::operation::get_distribution_config::{GetDistributionConfigError, GetDistributionConfigOutput};
use aws_sdk_cloudfront::operation::get_origin_access_control::{
    GetOriginAccessControlError, GetOriginAccessControlOutput,
};
use aws_sdk_cloudfront::operation::list_distributions::ListDistributionsOutput;
use aws_sdk_cloudfront::operation::list_origin_access_controls::ListOriginAccessControlsOutput;
use aws_sdk_cloudfront::operation::list_tags_for_resource::{ListTagsForResourceError, ListTagsForResourceOutput};
use aws_sdk_cloudfront::operation::tag_resource::TagResourceOutput;
use aws_sdk_cloudfront::operation::untag_resource::UntagResourceOutput;
use aws_sdk_cloudfront::operation::update_distribution::{UpdateDistributionError, UpdateDistributionOutput};
use aws_sdk_cloudfront::operation::update_origin_access_control::{
    UpdateOriginAccessControlError, UpdateOriginAccessControlOutput,
};
use aws_sdk_cloudfront::types::{
    DefaultCacheBehavior, Distribution as CfDistribution, DistributionConfig, DistributionList, DistributionSummary,
    HttpVersion, OriginAccessControl as CfOac, OriginAccessControlConfig, OriginAccessControlList,
    OriginAccessControlOriginTypes, OriginAccessControlSigningBehaviors, OriginAccessControlSigningProtocols,
    OriginAccessControlSummary, Origins, PriceClass, Tag, Tags as CfTags, ViewerProtocolPolicy,
};
use aws_smithy_mocks::{MockResponse, MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_types::DateTime;
use aws_smithy_types::retry::RetryConfig;
use serde_json::{Value, json};
use tokio::time::Instant;
use webscale::apply::{self, Hook, Note, Options, Phase, Report, Result_};
use webscale::aws::{Clients, Cloud, CloudError, RetryPolicy};
use webscale::plan::{self, Action, Mode, Plan};
use webscale::resources::distribution::{self, Distribution};
use webscale::resources::origin_access_control::{self as oac, OriginAccessControl};
use webscale::resources::{Address, Attrs, Desired, Kind, Live, Op, Progress, ReadCtx, Timeouts};
use webscale::spec::{self, RegionChoice, Stack};

use super::{REGION, unused_clients};

const STACK: &str = "mocked";
/// How long CloudFront takes to deploy a change here (5-20 minutes on AWS).
const DEPLOY: Duration = Duration::from_secs(7 * 60);
const ORIGIN: &str = "mocked-assets-123456789012.s3.us-east-1.amazonaws.com";

/// A stack with static assets behind CloudFront: the template's example site, the stack's defaults.
fn spec(extra: &str) -> String {
    format!(
        r#"
[stack]
name = "{STACK}"
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

[static_assets]
folder = "site"
{extra}
"#
    )
}

/// Parsed as if it sat beside the template, so `folder = "site"` is templates/site.
fn stack(extra: &str) -> Stack {
    let file = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/mocked.toml"));
    spec::parse(file, &spec(extra), &RegionChoice::default()).unwrap_or_else(|e| panic!("{e}"))
}

// =====================================================================================================================
// Updates send the ETag they are based on
// =====================================================================================================================

/// (a) CloudFront refuses a change that does not name the current ETag. The update reads the configuration and sends
/// exactly the ETag that read returned, once; and it sends back what webscale does not manage as AWS returned it
/// (here a web ACL someone attached): UpdateDistribution replaces the whole configuration.
#[tokio::test(start_paused = true)]
async fn an_update_sends_the_etag_its_read_returned() {
    let cf = Fake::new();
    let id = cf.existing(STACK, "distribution.assets", true, |c| c.web_acl_id = Some("acl-by-hand".into()));
    let etag = cf.etag(&id);
    let cloud = cf.cloud();

    let mut want = resolved(&stack(""));
    want.insert("price_class".into(), json!("PriceClass_All"));
    let changed = ["price_class".to_string()];
    let address = distribution::address();
    let op = Op { desired: Some(want), live: Some(cf.live_attrs(&id)), changed: &changed, ..op(&address, Some(&id)) };
    Distribution.update(&cloud, &op).await.unwrap_or_else(|e| panic!("update: {e}"));

    let updates = cf.calls("UpdateDistribution");
    assert_eq!(updates, [format!("{id} IfMatch={etag}")], "one update, with the ETag GetDistributionConfig returned");
    let now = cf.config(&id);
    assert_eq!(now.price_class, Some(PriceClass::PriceClassAll));
    assert_eq!(now.web_acl_id.as_deref(), Some("acl-by-hand"), "what webscale does not manage is sent back as it was");
    assert_ne!(cf.etag(&id), etag, "the change made a new ETag");
}

/// (b) Someone changes the distribution between our read and our update: CloudFront answers PreconditionFailed. The
/// update reads again and sends the new ETag, and what the other change did (outside what webscale manages) stays.
#[tokio::test(start_paused = true)]
async fn a_precondition_failure_reads_again_and_sends_the_new_etag() {
    let cf = Fake::new();
    let id = cf.existing(STACK, "distribution.assets", true, |_| {});
    let first = cf.etag(&id);
    // Right after our first read, someone else attaches a web ACL (a change with its own new ETag).
    cf.meddle_after_first_read(&id, |c| c.web_acl_id = Some("acl-by-someone".into()));
    let cloud = cf.cloud();

    let mut want = resolved(&stack(""));
    want.insert("default_root_object".into(), json!("404.html"));
    let changed = ["default_root_object".to_string()];
    let address = distribution::address();
    let op = Op { desired: Some(want), live: Some(cf.live_attrs(&id)), changed: &changed, ..op(&address, Some(&id)) };
    Distribution.update(&cloud, &op).await.unwrap_or_else(|e| panic!("update: {e}"));

    let second = cf.etag_history(&id)[1].clone();
    assert_ne!(first, second);
    assert_eq!(
        cf.calls("UpdateDistribution"),
        [format!("{id} IfMatch={first} refused: PreconditionFailed"), format!("{id} IfMatch={second}")],
        "the stale ETag is refused, then the one read again is sent"
    );
    assert_eq!(cf.calls("GetDistributionConfig").len(), 2, "read again once");
    let now = cf.config(&id);
    assert_eq!(now.default_root_object.as_deref(), Some("404.html"));
    assert_eq!(now.web_acl_id.as_deref(), Some("acl-by-someone"), "the other change is not undone");
}

// =====================================================================================================================
// Deletes: disable, wait until deployed, delete with the new ETag
// =====================================================================================================================

/// (c) CloudFront deletes only a disabled distribution whose disabling is deployed, and only with the ETag of that
/// disabled configuration. The delete disables (UpdateDistribution, Enabled=false, IfMatch), the delete's wait looks
/// until `Deployed` (minutes of virtual time, a look a minute, the status on the progress line) and then deletes
/// with the ETag GetDistribution gives now, not the one the disable was based on.
#[tokio::test(start_paused = true)]
async fn deleting_an_enabled_distribution_disables_waits_until_deployed_then_deletes_with_the_new_etag() {
    let cf = Fake::new();
    let id = cf.existing(STACK, "distribution.assets", true, |_| {});
    let enabled_etag = cf.etag(&id);
    let cloud = cf.cloud();
    let address = distribution::address();
    let op = op(&address, Some(&id));
    let start = Instant::now();

    Distribution.delete(&cloud, &op).await.unwrap_or_else(|e| panic!("delete: {e}"));
    assert_eq!(cf.calls("UpdateDistribution"), [format!("{id} IfMatch={enabled_etag} Enabled=false")]);
    assert!(cf.calls("DeleteDistribution").is_empty(), "nothing deleted before the disabling is deployed");
    let disabled_etag = cf.etag(&id);

    let (cloud_ref, op_ref, id_ref) = (&cloud, &op, id.as_str());
    let (result, shown) =
        watched(|p| async move { Distribution.wait(cloud_ref, op_ref, id_ref, Phase::Delete, &p).await }).await;
    result.unwrap_or_else(|e| panic!("delete wait: {e}"));

    assert!(start.elapsed() >= DEPLOY, "deleted only once deployed, after {:?}", start.elapsed());
    assert_eq!(
        cf.calls("DeleteDistribution"),
        [format!("{id} IfMatch={disabled_etag}")],
        "one delete, with the disabled configuration's ETag (not {enabled_etag})"
    );
    assert!(cf.ids().is_empty(), "the distribution is gone");
    assert_eq!(shown, ["InProgress", "deleted"], "the progress line follows CloudFront's status");
    let polls = cf.calls("GetDistribution").len();
    assert!((7..=10).contains(&polls), "7 minutes of deploying: about a look a minute, got {polls}");
}

/// Someone enables the distribution again while its delete waits: CloudFront answers DistributionNotDisabled. The
/// wait disables it again and carries on, instead of failing or deleting it enabled. An already gone one is done.
#[tokio::test(start_paused = true)]
async fn a_distribution_enabled_again_meanwhile_is_disabled_again_before_the_delete() {
    let cf = Fake::new();
    let id = cf.existing(STACK, "distribution.assets", true, |_| {});
    let cloud = cf.cloud();
    let address = distribution::address();
    let op = op(&address, Some(&id));
    Distribution.delete(&cloud, &op).await.unwrap_or_else(|e| panic!("delete: {e}"));
    // Two minutes later, by hand, back on.
    tokio::time::sleep(Duration::from_secs(120)).await;
    cf.edit(&id, |c| c.enabled = true);

    let progress = Progress::default();
    Distribution.wait(&cloud, &op, &id, Phase::Delete, &progress).await.unwrap_or_else(|e| panic!("wait: {e}"));
    assert!(cf.ids().is_empty());
    let disables: Vec<String> =
        cf.calls("UpdateDistribution").into_iter().filter(|c| c.ends_with("Enabled=false")).collect();
    assert_eq!(disables.len(), 2, "disabled again: {disables:?}");
    assert!(cf.calls("DeleteDistribution").iter().all(|c| !c.contains("refused")), "never deleted while enabled");

    // A repeat of the whole delete finds nothing: done, not an error.
    let gone = Distribution.delete(&cloud, &op).await.expect_err("nothing left to disable");
    assert!(Distribution.is_gone(&gone), "{gone}");
    Distribution.wait(&cloud, &op, &id, Phase::Delete, &progress).await.unwrap_or_else(|e| panic!("wait: {e}"));
}

// =====================================================================================================================
// Creates: tagged in the call, not waited for unless asked
// =====================================================================================================================

/// (d) A create starts a deployment of 5-20 minutes. Apply does not wait for it: the create's wait looks once (no
/// polling), leaves a note for the operator naming the distribution, and returns at once. Asked to wait (`--wait`,
/// or `[static_assets] wait = true`, both arrive as `op.wait`), it looks until `Deployed` and leaves no note.
#[tokio::test(start_paused = true)]
async fn a_create_is_not_waited_for_unless_asked_and_leaves_a_note() {
    for wait in [false, true] {
        let cf = Fake::new();
        let cloud = cf.cloud();
        let address = distribution::address();
        let want = resolved(&stack(""));
        let op = Op { desired: Some(want.clone()), wait, ..op(&address, None) };
        let created = Distribution.create(&cloud, &op).await.unwrap_or_else(|e| panic!("create: {e}"));
        let id = created.id.clone();
        assert_eq!(created.outputs["status"], "InProgress");
        assert!(created.outputs["arn"].as_str().is_some_and(|a| a.ends_with(&format!("distribution/{id}"))));
        assert_eq!(cf.tags(&id)["webscale:stack"], STACK, "tagged in the create call");
        assert_eq!(cf.tags(&id)["webscale:address"], "distribution.assets");
        assert_eq!(cf.calls("CreateDistributionWithTags").len(), 1);

        let start = Instant::now();
        let op = Op { id: Some(&id), ..op };
        let (cloud_ref, op_ref, id_ref) = (&cloud, &op, id.as_str());
        let (result, shown) = watched(|p| async move {
            Distribution.wait(cloud_ref, op_ref, id_ref, Phase::Create, &p).await.map(|_| p.notes())
        })
        .await;
        let notes = result.unwrap_or_else(|e| panic!("wait: {e}"));
        let looks = cf.calls("GetDistribution").len();
        if wait {
            assert!(start.elapsed() >= DEPLOY, "waited until deployed");
            assert_eq!(shown.last().map(String::as_str), Some("Deployed"));
            assert!(notes.is_empty(), "nothing to tell: {notes:?}");
            assert!(looks >= 7, "a look a minute: {looks}");
        } else {
            assert_eq!(start.elapsed(), Duration::ZERO, "returned at once");
            assert_eq!(looks, 1, "one look, no polling");
            assert_eq!(notes.len(), 1, "{notes:?}");
            assert!(
                notes[0].contains(&id) && notes[0].contains("--wait") && notes[0].contains("still deploying"),
                "{}",
                notes[0]
            );
        }
    }
}

/// Through the engine, as `webscale apply` runs it: the OAC and the distribution are created, apply returns without
/// waiting for the deployment, and its report carries the note. The next plan, with the distribution still
/// `InProgress`, says no changes: deploying is neither drift nor pending (its status is an output). `--wait`
/// (Options::wait) and the spec's `wait = true` each make the same apply wait until `Deployed`, with no note.
#[tokio::test(start_paused = true)]
async fn apply_reports_the_deployment_as_a_note_and_the_next_plan_has_no_changes() {
    for (extra, wait_option, waits) in [("", false, false), ("", true, true), ("wait = true", false, true)] {
        let cf = Fake::new();
        let cloud = cf.cloud();
        let stack = stack(extra);
        let kinds: &[&dyn Kind] = &[&OriginAccessControl, &Cdn];
        let first = plan_of(kinds, &cloud, &stack, Mode::Apply).await;
        assert_eq!(
            actions(&first),
            [("origin_access_control.assets", Action::Create), ("distribution.assets", Action::Create)]
        );

        let start = Instant::now();
        let options = Options { wait: wait_option, heartbeat: Duration::from_secs(30), ..Options::default() };
        let report = run(kinds, &cloud, &stack, &first, &options).await;
        assert!(!report.failed(), "{:?}", report.operations);
        let id = cf.ids().pop().expect("one distribution");
        assert_eq!(cf.ids().len(), 1);
        let origin = cf.config(&id).origins.unwrap().items[0].clone();
        assert_eq!(origin.origin_access_control_id, Some(cf.oac_ids()[0].clone()), "served through the stack's OAC");
        if waits {
            assert!(start.elapsed() >= DEPLOY, "{extra:?} --wait={wait_option}: waited");
            assert!(report.notes.is_empty(), "{:?}", report.notes);
        } else {
            assert!(start.elapsed() < Duration::from_secs(60), "did not wait: {:?}", start.elapsed());
            assert_eq!(report.notes.len(), 1, "{:?}", report.notes);
            let Note { address, text } = &report.notes[0];
            assert_eq!(address, &distribution::address());
            assert!(text.contains(&id), "{text}");
        }

        let second = plan_of(kinds, &cloud, &stack, Mode::Apply).await;
        assert!(!second.has_changes(), "no changes after apply: {:#?}", second.changes);
        let change = second.changes.iter().find(|c| c.address == distribution::address()).expect("planned");
        assert_eq!(change.pending, None, "deploying is not pending: nothing waits for it");
        let status = &change.live.as_ref().expect("found").outputs["status"];
        assert_eq!(status, if waits { "Deployed" } else { "InProgress" });
    }
}

/// A destroy through the engine follows CloudFront's order: disable the distribution, wait for the deployment,
/// delete it with the new ETag, then delete the OAC (which CloudFront refuses while a distribution uses it).
#[tokio::test(start_paused = true)]
async fn destroy_disables_waits_deletes_the_distribution_then_the_oac() {
    let cf = Fake::new();
    let cloud = cf.cloud();
    let stack = stack("");
    let kinds: &[&dyn Kind] = &[&OriginAccessControl, &Cdn];
    let built = plan_of(kinds, &cloud, &stack, Mode::Apply).await;
    let report = run(kinds, &cloud, &stack, &built, &Options::default()).await;
    assert!(!report.failed(), "{:?}", report.operations);
    cf.clear_calls();

    let start = Instant::now();
    let destroy = plan_of(kinds, &cloud, &stack, Mode::Destroy).await;
    assert_eq!(destroy.summary.destroy, 2);
    let report = run(kinds, &cloud, &stack, &destroy, &Options::default()).await;
    assert!(!report.failed(), "{:?}", report.operations);
    assert!(start.elapsed() >= DEPLOY, "the disabling deployed first");
    assert!(cf.ids().is_empty() && cf.oac_ids().is_empty(), "nothing left");
    assert!(cf.refused().is_empty(), "CloudFront refused nothing: {:?}", cf.refused());
    let order = cf.writes();
    assert_eq!(
        order.iter().map(|w| w.split(' ').next().unwrap_or_default()).collect::<Vec<_>>(),
        ["UpdateDistribution", "DeleteDistribution", "DeleteOriginAccessControl"],
        "{order:?}"
    );
}

/// (e) The create's answer is lost after CloudFront made the distribution, and the listing does not show it yet
/// (eventual consistency): the engine's retry creates again with the same CallerReference, CloudFront answers
/// DistributionAlreadyExists instead of making a second one, and the engine's next look finds the first. One
/// distribution, the stack's.
#[tokio::test(start_paused = true)]
async fn a_repeated_create_meets_distribution_already_exists_and_ends_with_one_distribution() {
    let cf = Fake::new();
    cf.lose_next_create_answer();
    cf.list_after(Duration::from_secs(20));
    let mut cloud = cf.cloud();
    cloud.retry = RetryPolicy { consistency: Duration::from_secs(120), ..RetryPolicy::default() };
    let stack = stack("");
    let kinds: &[&dyn Kind] = &[&OriginAccessControl, &Cdn];
    let plan = plan_of(kinds, &cloud, &stack, Mode::Apply).await;
    let report = run(kinds, &cloud, &stack, &plan, &Options::default()).await;

    assert!(!report.failed(), "{:?}", report.operations);
    let creates = cf.calls("CreateDistributionWithTags");
    assert!(creates.len() >= 2, "created again after the lost answer: {creates:?}");
    assert!(creates[1..].iter().all(|c| c.ends_with("refused: DistributionAlreadyExists")), "{creates:?}");
    assert!(creates.iter().all(|c| c.starts_with("CallerReference=ws-")), "{creates:?}");
    assert!(creates.windows(2).all(|w| w[0].split(' ').next() == w[1].split(' ').next()), "one CallerReference");
    assert_eq!(cf.ids().len(), 1, "one distribution");
    assert_eq!(report.ids.get(&distribution::address()), cf.ids().first(), "the report names that one");
    let second = plan_of(kinds, &cloud, &stack, Mode::Apply).await;
    assert!(!second.has_changes(), "{:#?}", second.changes);
}

// =====================================================================================================================
// Read budget and ownership
// =====================================================================================================================

/// (f) The account has 150 distributions of others (two ListDistributions pages) and one of the stack. The read
/// costs 2 ListDistributions, 1 ListTagsForResource (only the comment's candidate) and 1 GetDistributionConfig (only
/// the stack's), however many distributions there are. The OAC read costs one ListOriginAccessControls per page.
#[tokio::test(start_paused = true)]
async fn reading_costs_a_fixed_number_of_calls_however_many_distributions_the_account_has() {
    let cf = Fake::new();
    for n in 0..150 {
        let comment = match n % 3 {
            0 => "made by hand".to_string(),
            1 => format!("webscale:stack=other-{n} webscale:address=distribution.assets"),
            _ => String::new(),
        };
        cf.foreign(&comment);
    }
    let id = cf.existing(STACK, "distribution.assets", true, |_| {});
    for n in 0..120 {
        cf.foreign_oac(
            &format!("oac-{n}"),
            &format!("webscale:stack=other-{n} webscale:address=origin_access_control.assets"),
        );
    }
    let oac_id = cf.oac(&oac::name(STACK), &oac::marker(STACK, &oac::address()));
    let cloud = cf.cloud();
    let stack = stack("");
    cf.clear_calls();

    let ctx = ReadCtx::new(&cloud, &stack);
    let live = Distribution.read(&ctx, webscale::resources::GLOBAL).await.unwrap_or_else(|e| panic!("read: {e}"));
    assert_eq!(
        live.iter().map(|l| (l.address.to_string(), l.id.clone())).collect::<Vec<_>>(),
        [("distribution.assets".to_string(), id.clone())]
    );
    assert_eq!(
        (
            cf.calls("ListDistributions").len(),
            cf.calls("ListTagsForResource").len(),
            cf.calls("GetDistributionConfig").len()
        ),
        (2, 1, 1),
        "2 pages, tags of the one candidate, the configuration of the one owned"
    );
    assert_eq!(live[0].attrs["default_root_object"], "index.html", "from GetDistributionConfig");

    let oacs =
        OriginAccessControl.read(&ctx, webscale::resources::GLOBAL).await.unwrap_or_else(|e| panic!("read: {e}"));
    assert_eq!(
        oacs.iter().map(|l| (l.address.to_string(), l.id.clone())).collect::<Vec<_>>(),
        [("origin_access_control.assets".to_string(), oac_id)]
    );
    assert_eq!(cf.calls("ListOriginAccessControls").len(), 2, "121 OACs: two pages of 100");
}

/// A comment is only a hint: a distribution whose comment names the stack but whose tags name another (copied by
/// hand, or an imposter) is not the stack's; tags decide.
#[tokio::test(start_paused = true)]
async fn a_comment_naming_the_stack_does_not_make_a_distribution_the_stacks() {
    let cf = Fake::new();
    let theirs = cf.existing("other", "distribution.assets", true, |c| {
        c.comment = oac::marker(STACK, &distribution::address());
    });
    let cloud = cf.cloud();
    let stack = stack("");
    let live = Distribution.read(&ReadCtx::new(&cloud, &stack), webscale::resources::GLOBAL).await.unwrap();
    assert!(live.is_empty(), "{theirs} is another stack's: {live:?}");
    assert_eq!(cf.calls("ListTagsForResource").len(), 1, "its tags were asked, as its comment named the stack");
}

// =====================================================================================================================
// The fake CloudFront
// =====================================================================================================================

struct Dist {
    id: String,
    config: DistributionConfig,
    tags: BTreeMap<String, String>,
    etags: Vec<String>,
    deployed_at: Instant,
    listed_from: Instant,
}

impl Dist {
    fn etag(&self) -> String {
        self.etags.last().cloned().unwrap_or_default()
    }

    fn status(&self) -> &'static str {
        if Instant::now() >= self.deployed_at { "Deployed" } else { "InProgress" }
    }

    fn arn(&self) -> String {
        arn(&self.id)
    }

    fn distribution(&self) -> CfDistribution {
        CfDistribution::builder()
            .id(&self.id)
            .arn(self.arn())
            .status(self.status())
            .last_modified_time(DateTime::from_secs(0))
            .in_progress_invalidation_batches(0)
            .domain_name(format!("{}.cloudfront.net", self.id.to_lowercase()))
            .distribution_config(self.config.clone())
            .build()
            .expect("a distribution")
    }

    fn summary(&self) -> DistributionSummary {
        let c = &self.config;
        DistributionSummary::builder()
            .id(&self.id)
            .arn(self.arn())
            .status(self.status())
            .last_modified_time(DateTime::from_secs(0))
            .domain_name(format!("{}.cloudfront.net", self.id.to_lowercase()))
            .comment(&c.comment)
            .enabled(c.enabled)
            .price_class(c.price_class.clone().unwrap_or(PriceClass::PriceClassAll))
            .http_version(c.http_version.clone().unwrap_or(HttpVersion::Http2))
            .is_ipv6_enabled(c.is_ipv6_enabled.unwrap_or(false))
            .web_acl_id(c.web_acl_id.clone().unwrap_or_default())
            .staging(false)
            .set_origins(c.origins.clone())
            .set_default_cache_behavior(c.default_cache_behavior.clone())
            .build()
            .expect("a summary")
    }

    /// A change: a new ETag, and a new deployment.
    fn changed(&mut self, n: usize) {
        self.etags.push(format!("E{n:04}"));
        self.deployed_at = Instant::now() + DEPLOY;
    }
}

struct Oac {
    id: String,
    config: OriginAccessControlConfig,
    etag: String,
}

#[derive(Default)]
struct State {
    dists: Vec<Dist>,
    oacs: Vec<Oac>,
    callers: Vec<String>,
    n: usize,
    /// Every call, as "Operation detail".
    calls: Vec<String>,
    lose_next_create: bool,
    list_lag: Duration,
    /// Applied to a distribution right after the first GetDistributionConfig answer (someone else's change).
    meddle: Option<(String, Edit)>,
}

/// Someone else's change of a distribution's configuration.
type Edit = Box<dyn FnOnce(&mut DistributionConfig) + Send>;

impl State {
    fn next(&mut self) -> usize {
        self.n += 1;
        self.n
    }

    fn dist(&mut self, id: &str) -> Option<&mut Dist> {
        self.dists.iter_mut().find(|d| d.id == id)
    }

    fn log(&mut self, call: String) {
        self.calls.push(call);
    }
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<State>>);

impl Fake {
    fn new() -> Fake {
        Fake::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    /// A distribution as webscale makes it, tagged for `stack`, edited by `edit`; returns its id.
    fn existing(
        &self,
        stack: &str,
        address: &str,
        deployed: bool,
        edit: impl FnOnce(&mut DistributionConfig),
    ) -> String {
        let mut want = resolved(&self::stack(""));
        want.insert("comment".into(), json!(oac::marker(stack, &Address::parse(address).unwrap())));
        let mut config = config_of(&want);
        edit(&mut config);
        let mut s = self.state();
        let n = s.next();
        let id = format!("EDIST{n:04}");
        let tags = BTreeMap::from([
            ("webscale:stack".to_string(), stack.to_string()),
            ("webscale:address".to_string(), address.to_string()),
        ]);
        let at = if deployed { Instant::now() } else { Instant::now() + DEPLOY };
        s.dists.push(Dist {
            id: id.clone(),
            config,
            tags,
            etags: vec![format!("E{n:04}")],
            deployed_at: at,
            listed_from: Instant::now(),
        });
        id
    }

    /// A distribution of someone else's, with this comment and no webscale tags.
    fn foreign(&self, comment: &str) {
        let id = self.existing("someone", "distribution.theirs", true, |c| c.comment = comment.to_string());
        let mut s = self.state();
        s.dist(&id).unwrap().tags.clear();
    }

    fn foreign_oac(&self, name: &str, description: &str) {
        self.oac(name, description);
    }

    fn oac(&self, name: &str, description: &str) -> String {
        let mut s = self.state();
        let n = s.next();
        let id = format!("EOAC{n:04}");
        s.oacs.push(Oac { id: id.clone(), config: oac_config(name, description), etag: format!("E{n:04}") });
        id
    }

    fn edit(&self, id: &str, f: impl FnOnce(&mut DistributionConfig)) {
        let mut s = self.state();
        let n = s.next();
        let d = s.dist(id).unwrap();
        f(&mut d.config);
        d.changed(n);
    }

    fn meddle_after_first_read(&self, id: &str, f: impl FnOnce(&mut DistributionConfig) + Send + 'static) {
        self.state().meddle = Some((id.to_string(), Box::new(f)));
    }

    fn lose_next_create_answer(&self) {
        self.state().lose_next_create = true;
    }

    /// New distributions show in ListDistributions only this long after their creation.
    fn list_after(&self, lag: Duration) {
        self.state().list_lag = lag;
    }

    fn etag(&self, id: &str) -> String {
        self.state().dist(id).unwrap().etag()
    }

    fn etag_history(&self, id: &str) -> Vec<String> {
        self.state().dist(id).unwrap().etags.clone()
    }

    fn config(&self, id: &str) -> DistributionConfig {
        self.state().dist(id).unwrap().config.clone()
    }

    fn tags(&self, id: &str) -> BTreeMap<String, String> {
        self.state().dist(id).unwrap().tags.clone()
    }

    /// The live attributes webscale's read reports for `id`, resolved as apply hands them to a kind.
    fn live_attrs(&self, id: &str) -> Attrs {
        let mut attrs = resolved(&stack(""));
        let tags: Value = json!(self.tags(id));
        attrs.insert("tags".into(), tags);
        attrs
    }

    fn ids(&self) -> Vec<String> {
        self.state().dists.iter().filter(|d| d.tags.contains_key("webscale:stack")).map(|d| d.id.clone()).collect()
    }

    fn oac_ids(&self) -> Vec<String> {
        self.state().oacs.iter().map(|o| o.id.clone()).collect()
    }

    /// The calls of one operation, details only.
    fn calls(&self, operation: &str) -> Vec<String> {
        let prefix = format!("{operation} ");
        self.state().calls.iter().filter_map(|c| c.strip_prefix(&prefix).map(str::to_string)).collect()
    }

    /// Every call CloudFront refused.
    fn refused(&self) -> Vec<String> {
        self.state().calls.iter().filter(|c| c.contains("refused")).cloned().collect()
    }

    /// The calls that change something, in order.
    fn writes(&self) -> Vec<String> {
        let reads = ["List", "Get"];
        self.state().calls.iter().filter(|c| !reads.iter().any(|r| c.starts_with(r))).cloned().collect()
    }

    fn clear_calls(&self) {
        self.state().calls.clear();
    }

    /// A cloud whose CloudFront client is this fake (any call it does not know panics), every other service unused.
    fn cloud(&self) -> Cloud {
        let rules = self.rules();
        let interceptor =
            rules.iter().fold(MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny), |i, r| i.with_rule(r));
        let cloudfront = CloudFront::from_conf(
            aws_sdk_cloudfront::Config::builder()
                .behavior_version_latest()
                .region(Region::new(REGION))
                .credentials_provider(Credentials::new("test", "test", None, None, "test"))
                .retry_config(RetryConfig::disabled())
                .http_client(create_mock_http_client())
                .interceptor(interceptor)
                .build(),
        );
        Cloud::from_clients(STACK, REGION, Clients { cloudfront, ..unused_clients() }, super::fast())
    }

    fn rules(&self) -> Vec<Rule> {
        let f = self.clone();
        let list = mock!(CloudFront::list_distributions).then_compute_output(move |input| {
            let mut s = f.state();
            let page = input.marker().map(|m| m.parse::<usize>().expect("a marker the fake gave")).unwrap_or(0);
            s.log(format!("ListDistributions from={page}"));
            let lag = s.list_lag;
            let all: Vec<DistributionSummary> =
                s.dists.iter().filter(|d| Instant::now() >= d.listed_from + lag).map(Dist::summary).collect();
            let size = input.max_items().unwrap_or(100) as usize;
            let to = (page + size).min(all.len());
            let list = DistributionList::builder()
                .marker(page.to_string())
                .set_next_marker((to < all.len()).then(|| to.to_string()))
                .max_items(size as i32)
                .is_truncated(to < all.len())
                .quantity((to - page) as i32)
                .set_items(Some(all[page..to].to_vec()))
                .build()
                .expect("a list");
            ListDistributionsOutput::builder().distribution_list(list).build()
        });
        let f = self.clone();
        let tags = mock!(CloudFront::list_tags_for_resource).then_compute_response(move |input| {
            let mut s = f.state();
            let arn = input.resource().unwrap_or_default().to_string();
            s.log(format!("ListTagsForResource {arn}"));
            match s.dists.iter().find(|d| d.arn() == arn) {
                None => MockResponse::Error(ListTagsForResourceError::generic(meta("NoSuchResource", &arn))),
                Some(d) => MockResponse::Output(ListTagsForResourceOutput::builder().tags(cf_tags(&d.tags)).build()),
            }
        });
        let f = self.clone();
        let get_config = mock!(CloudFront::get_distribution_config).then_compute_response(move |input| {
            let mut s = f.state();
            let id = input.id().unwrap_or_default().to_string();
            s.log(format!("GetDistributionConfig {id}"));
            let Some(d) = s.dist(&id) else {
                return MockResponse::Error(GetDistributionConfigError::generic(meta("NoSuchDistribution", &id)));
            };
            let out =
                GetDistributionConfigOutput::builder().distribution_config(d.config.clone()).e_tag(d.etag()).build();
            if s.meddle.as_ref().is_some_and(|(m, _)| *m == id) {
                let (_, change) = s.meddle.take().expect("checked");
                let n = s.next();
                let d = s.dist(&id).expect("checked");
                change(&mut d.config);
                d.changed(n);
            }
            MockResponse::Output(out)
        });
        let f = self.clone();
        let get = mock!(CloudFront::get_distribution).then_compute_response(move |input| {
            let mut s = f.state();
            let id = input.id().unwrap_or_default().to_string();
            s.log(format!("GetDistribution {id}"));
            match s.dist(&id) {
                None => MockResponse::Error(GetDistributionError::generic(meta("NoSuchDistribution", &id))),
                Some(d) => MockResponse::Output(
                    GetDistributionOutput::builder().distribution(d.distribution()).e_tag(d.etag()).build(),
                ),
            }
        });
        let f = self.clone();
        let update = mock!(CloudFront::update_distribution).then_compute_response(move |input| {
            let mut s = f.state();
            let id = input.id().unwrap_or_default().to_string();
            let if_match = input.if_match().unwrap_or_default().to_string();
            let config = input.distribution_config().cloned().expect("a configuration");
            let disabling = s.dist(&id).is_some_and(|d| d.config.enabled && !config.enabled);
            let detail = format!("{id} IfMatch={if_match}{}", if disabling { " Enabled=false" } else { "" });
            let n = s.next();
            let answer = match s.dist(&id) {
                None => Err("NoSuchDistribution"),
                Some(d) if d.etag() != if_match => Err("PreconditionFailed"),
                Some(d) if d.config.caller_reference != config.caller_reference => Err("InvalidArgument"),
                Some(d) => {
                    d.config = config;
                    d.changed(n);
                    Ok(UpdateDistributionOutput::builder().distribution(d.distribution()).e_tag(d.etag()).build())
                }
            };
            match answer {
                Ok(out) => {
                    s.log(format!("UpdateDistribution {detail}"));
                    MockResponse::Output(out)
                }
                Err(code) => {
                    s.log(format!("UpdateDistribution {detail} refused: {code}"));
                    MockResponse::Error(UpdateDistributionError::generic(meta(code, &id)))
                }
            }
        });
        let f = self.clone();
        let delete = mock!(CloudFront::delete_distribution).then_compute_response(move |input| {
            let mut s = f.state();
            let id = input.id().unwrap_or_default().to_string();
            let if_match = input.if_match().unwrap_or_default().to_string();
            let answer = match s.dist(&id) {
                None => Err("NoSuchDistribution"),
                Some(d) if d.etag() != if_match => Err("PreconditionFailed"),
                Some(d) if d.config.enabled || d.status() != "Deployed" => Err("DistributionNotDisabled"),
                Some(_) => Ok(()),
            };
            match answer {
                Ok(()) => {
                    s.dists.retain(|d| d.id != id);
                    s.log(format!("DeleteDistribution {id} IfMatch={if_match}"));
                    MockResponse::Output(DeleteDistributionOutput::builder().build())
                }
                Err(code) => {
                    s.log(format!("DeleteDistribution {id} IfMatch={if_match} refused: {code}"));
                    MockResponse::Error(DeleteDistributionError::generic(meta(code, &id)))
                }
            }
        });
        let f = self.clone();
        let create = mock!(CloudFront::create_distribution_with_tags).then_compute_response(move |input| {
            let mut s = f.state();
            let with_tags = input.distribution_config_with_tags().expect("config with tags");
            let config = with_tags.distribution_config().cloned().expect("a configuration");
            let reference = config.caller_reference.clone();
            if s.callers.contains(&reference) {
                s.log(format!("CreateDistributionWithTags CallerReference={reference} refused: DistributionAlreadyExists"));
                return MockResponse::Error(CreateDistributionWithTagsError::generic(meta(
                    "DistributionAlreadyExists",
                    "The caller reference that you are using to create a distribution is associated with another distribution.",
                )));
            }
            s.callers.push(reference.clone());
            s.log(format!("CreateDistributionWithTags CallerReference={reference}"));
            let tags: BTreeMap<String, String> = with_tags
                .tags()
                .map(|t| t.items().iter().map(|t| (t.key().to_string(), t.value().unwrap_or_default().to_string())).collect())
                .unwrap_or_default();
            let n = s.next();
            let id = format!("EDIST{n:04}");
            let now = Instant::now();
            let d = Dist { id, config, tags, etags: vec![format!("E{n:04}")], deployed_at: now + DEPLOY, listed_from: now };
            let out = CreateDistributionWithTagsOutput::builder().distribution(d.distribution()).e_tag(d.etag()).build();
            s.dists.push(d);
            if std::mem::take(&mut s.lose_next_create) {
                // Carried out, but the answer never arrives.
                return MockResponse::Error(CreateDistributionWithTagsError::generic(meta("ServiceUnavailable", "lost")));
            }
            MockResponse::Output(out)
        });
        let f = self.clone();
        let tag = mock!(CloudFront::tag_resource).then_compute_output(move |input| {
            let mut s = f.state();
            let arn = input.resource().unwrap_or_default().to_string();
            let new: Vec<(String, String)> = input
                .tags()
                .map(|t| {
                    t.items().iter().map(|t| (t.key().to_string(), t.value().unwrap_or_default().to_string())).collect()
                })
                .unwrap_or_default();
            s.log(format!("TagResource {arn}"));
            if let Some(d) = s.dists.iter_mut().find(|d| d.arn() == arn) {
                d.tags.extend(new);
            }
            TagResourceOutput::builder().build()
        });
        let f = self.clone();
        let untag = mock!(CloudFront::untag_resource).then_compute_output(move |input| {
            let mut s = f.state();
            let arn = input.resource().unwrap_or_default().to_string();
            let keys: Vec<String> = input.tag_keys().map(|k| k.items().to_vec()).unwrap_or_default();
            s.log(format!("UntagResource {arn} {keys:?}"));
            if let Some(d) = s.dists.iter_mut().find(|d| d.arn() == arn) {
                d.tags.retain(|k, _| !keys.contains(k));
            }
            UntagResourceOutput::builder().build()
        });
        // Origin access controls.
        let f = self.clone();
        let list_oacs = mock!(CloudFront::list_origin_access_controls).then_compute_output(move |input| {
            let mut s = f.state();
            let page = input.marker().map(|m| m.parse::<usize>().expect("a marker the fake gave")).unwrap_or(0);
            s.log(format!("ListOriginAccessControls from={page}"));
            let all: Vec<OriginAccessControlSummary> = s
                .oacs
                .iter()
                .map(|o| {
                    OriginAccessControlSummary::builder()
                        .id(&o.id)
                        .name(&o.config.name)
                        .description(o.config.description.clone().unwrap_or_default())
                        .signing_protocol(o.config.signing_protocol.clone())
                        .signing_behavior(o.config.signing_behavior.clone())
                        .origin_access_control_origin_type(o.config.origin_access_control_origin_type.clone())
                        .build()
                        .expect("a summary")
                })
                .collect();
            let size = input.max_items().unwrap_or(100).min(100) as usize;
            let to = (page + size).min(all.len());
            let list = OriginAccessControlList::builder()
                .marker(page.to_string())
                .set_next_marker((to < all.len()).then(|| to.to_string()))
                .max_items(size as i32)
                .is_truncated(to < all.len())
                .quantity((to - page) as i32)
                .set_items(Some(all[page..to].to_vec()))
                .build()
                .expect("a list");
            ListOriginAccessControlsOutput::builder().origin_access_control_list(list).build()
        });
        let f = self.clone();
        let create_oac = mock!(CloudFront::create_origin_access_control).then_compute_response(move |input| {
            let mut s = f.state();
            let config = input.origin_access_control_config().cloned().expect("a configuration");
            if s.oacs.iter().any(|o| o.config.name == config.name) {
                s.log(format!("CreateOriginAccessControl {} refused: OriginAccessControlAlreadyExists", config.name));
                return MockResponse::Error(CreateOriginAccessControlError::generic(meta(
                    "OriginAccessControlAlreadyExists",
                    &config.name,
                )));
            }
            let n = s.next();
            let id = format!("EOAC{n:04}");
            s.log(format!("CreateOriginAccessControl {}", config.name));
            let out = CfOac::builder().id(&id).origin_access_control_config(config.clone()).build().expect("an OAC");
            s.oacs.push(Oac { id, config, etag: format!("E{n:04}") });
            MockResponse::Output(
                CreateOriginAccessControlOutput::builder().origin_access_control(out).e_tag(format!("E{n:04}")).build(),
            )
        });
        let f = self.clone();
        let get_oac = mock!(CloudFront::get_origin_access_control).then_compute_response(move |input| {
            let mut s = f.state();
            let id = input.id().unwrap_or_default().to_string();
            s.log(format!("GetOriginAccessControl {id}"));
            match s.oacs.iter().find(|o| o.id == id) {
                None => {
                    MockResponse::Error(GetOriginAccessControlError::generic(meta("NoSuchOriginAccessControl", &id)))
                }
                Some(o) => {
                    let oac = CfOac::builder()
                        .id(&o.id)
                        .origin_access_control_config(o.config.clone())
                        .build()
                        .expect("an OAC");
                    MockResponse::Output(
                        GetOriginAccessControlOutput::builder().origin_access_control(oac).e_tag(&o.etag).build(),
                    )
                }
            }
        });
        let f = self.clone();
        let update_oac = mock!(CloudFront::update_origin_access_control).then_compute_response(move |input| {
            let mut s = f.state();
            let id = input.id().unwrap_or_default().to_string();
            let if_match = input.if_match().unwrap_or_default().to_string();
            let n = s.next();
            let Some(o) = s.oacs.iter_mut().find(|o| o.id == id) else {
                return MockResponse::Error(UpdateOriginAccessControlError::generic(meta(
                    "NoSuchOriginAccessControl",
                    &id,
                )));
            };
            if o.etag != if_match {
                s.log(format!("UpdateOriginAccessControl {id} IfMatch={if_match} refused: PreconditionFailed"));
                return MockResponse::Error(UpdateOriginAccessControlError::generic(meta("PreconditionFailed", &id)));
            }
            o.config = input.origin_access_control_config().cloned().expect("a configuration");
            o.etag = format!("E{n:04}");
            let etag = o.etag.clone();
            s.log(format!("UpdateOriginAccessControl {id} IfMatch={if_match}"));
            MockResponse::Output(UpdateOriginAccessControlOutput::builder().e_tag(etag).build())
        });
        let f = self.clone();
        let delete_oac = mock!(CloudFront::delete_origin_access_control).then_compute_response(move |input| {
            let mut s = f.state();
            let id = input.id().unwrap_or_default().to_string();
            let if_match = input.if_match().unwrap_or_default().to_string();
            let in_use = s.dists.iter().any(|d| {
                d.config
                    .origins
                    .as_ref()
                    .is_some_and(|o| o.items.iter().any(|o| o.origin_access_control_id.as_deref() == Some(&id)))
            });
            let answer = match s.oacs.iter().find(|o| o.id == id) {
                None => Err("NoSuchOriginAccessControl"),
                Some(o) if o.etag != if_match => Err("PreconditionFailed"),
                Some(_) if in_use => Err("OriginAccessControlInUse"),
                Some(_) => Ok(()),
            };
            match answer {
                Ok(()) => {
                    s.oacs.retain(|o| o.id != id);
                    s.log(format!("DeleteOriginAccessControl {id} IfMatch={if_match}"));
                    MockResponse::Output(DeleteOriginAccessControlOutput::builder().build())
                }
                Err(code) => {
                    s.log(format!("DeleteOriginAccessControl {id} IfMatch={if_match} refused: {code}"));
                    MockResponse::Error(DeleteOriginAccessControlError::generic(meta(code, &id)))
                }
            }
        });
        vec![
            list, tags, get_config, get, update, delete, create, tag, untag, list_oacs, create_oac, get_oac,
            update_oac, delete_oac,
        ]
    }
}

fn arn(id: &str) -> String {
    format!("arn:aws:cloudfront::123456789012:distribution/{id}")
}

fn meta(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

fn cf_tags(tags: &BTreeMap<String, String>) -> CfTags {
    let items = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build().expect("a tag")).collect();
    CfTags::builder().set_items(Some(items)).build()
}

fn oac_config(name: &str, description: &str) -> OriginAccessControlConfig {
    OriginAccessControlConfig::builder()
        .name(name)
        .description(description)
        .origin_access_control_origin_type(OriginAccessControlOriginTypes::S3)
        .signing_behavior(OriginAccessControlSigningBehaviors::Always)
        .signing_protocol(OriginAccessControlSigningProtocols::Sigv4)
        .build()
        .expect("an OAC config")
}

/// A configuration as webscale makes one from `want` (written out here, not by the kind): one S3 origin through an
/// OAC, the default behaviour on it.
fn config_of(want: &Attrs) -> DistributionConfig {
    let s = |k: &str| want[k].as_str().unwrap_or_default().to_string();
    let origin = aws_sdk_cloudfront::types::Origin::builder()
        .id("bucket.assets")
        .domain_name(s("origin_domain"))
        .origin_access_control_id(s("origin_access_control"))
        .s3_origin_config(aws_sdk_cloudfront::types::S3OriginConfig::builder().origin_access_identity("").build())
        .build()
        .expect("an origin");
    DistributionConfig::builder()
        .caller_reference("ws-by-the-test")
        .comment(s("comment"))
        .enabled(true)
        .default_root_object(s("default_root_object"))
        .price_class(PriceClass::from(s("price_class").as_str()))
        .http_version(HttpVersion::from(s("http_version").as_str()))
        .is_ipv6_enabled(true)
        .origins(Origins::builder().quantity(1).items(origin).build().expect("origins"))
        .default_cache_behavior(
            DefaultCacheBehavior::builder()
                .target_origin_id("bucket.assets")
                .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
                .compress(true)
                .cache_policy_id(distribution::CACHING_OPTIMIZED)
                .build()
                .expect("a behaviour"),
        )
        .build()
        .expect("a config")
}

/// The distribution's desired attributes as apply hands them to the kind: references resolved (the bucket's domain
/// name, the OAC's id).
fn resolved(stack: &Stack) -> Attrs {
    let mut attrs = Distribution.desired(stack).remove(0).attrs;
    attrs.insert("origin_domain".into(), json!(ORIGIN));
    attrs.insert("origin_access_control".into(), json!("EOAC-TEST"));
    attrs
}

/// An operation on `address` (`id` once it exists); callers set what else they need.
fn op<'a>(address: &'a Address, id: Option<&'a str>) -> Op<'a> {
    Op {
        address,
        region: webscale::resources::GLOBAL,
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

/// Runs `wait` with a progress line looked at every 10 s of virtual time, as the engine's heartbeat does; returns
/// its result and the distinct statuses shown, in order, ending with the last.
async fn watched<T, F, Fut>(wait: F) -> (Result<T, CloudError>, Vec<String>)
where
    F: FnOnce(Arc<Progress>) -> Fut,
    Fut: std::future::Future<Output = Result<T, CloudError>>,
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
                tokio::time::sleep(Duration::from_secs(10)).await;
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

/// The real distribution kind, its origin (the bucket's output, a kind not run here) given as a fixed name.
struct Cdn;

#[async_trait]
impl Kind for Cdn {
    fn name(&self) -> &'static str {
        Distribution.name()
    }
    fn service(&self) -> &'static str {
        Distribution.service()
    }
    fn scope(&self) -> webscale::resources::Scope {
        Distribution.scope()
    }
    fn schema(&self) -> &'static [webscale::resources::Attr] {
        Distribution.schema()
    }
    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let mut all = Distribution.desired(stack);
        for d in &mut all {
            d.attrs.insert("origin_domain".into(), json!(ORIGIN));
        }
        all
    }
    fn timeouts(&self) -> Timeouts {
        Distribution.timeouts()
    }
    fn is_gone(&self, error: &CloudError) -> bool {
        Distribution.is_gone(error)
    }
    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        Distribution.read(ctx, region).await
    }
    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<webscale::resources::Created, CloudError> {
        Distribution.create(cloud, op).await
    }
    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        Distribution.update(cloud, op).await
    }
    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        Distribution.delete(cloud, op).await
    }
    async fn wait(
        &self,
        cloud: &Cloud,
        op: &Op<'_>,
        id: &str,
        phase: Phase,
        progress: &Progress,
    ) -> Result<(), CloudError> {
        Distribution.wait(cloud, op, id, phase, progress).await
    }
}

async fn plan_of(kinds: &[&dyn Kind], cloud: &Cloud, stack: &Stack, mode: Mode) -> Plan {
    plan::build_with(kinds, cloud, stack, mode).await.unwrap_or_else(|e| panic!("plan: {e}"))
}

fn actions(plan: &Plan) -> Vec<(&str, Action)> {
    plan.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| (c.address.as_str(), c.action)).collect()
}

struct Quiet;

impl Hook for Quiet {
    fn started(&self, _: &Address, _: Phase) {}
    fn still_running(&self, _: &Address, _: Phase, _: Duration, _: Option<&str>) {}
    fn finished(&self, _: &Address, _: Phase, _: Duration, _: Result<Option<&str>, &CloudError>) {}
}

/// Applies `plan`, bounded in virtual time so an engine that waits forever fails the test instead of hanging it.
async fn run(kinds: &[&dyn Kind], cloud: &Cloud, stack: &Stack, plan: &Plan, options: &Options) -> Report {
    let report = tokio::time::timeout(
        Duration::from_secs(3 * 3600),
        apply::apply_with(kinds, cloud, stack, plan, options, &Quiet),
    )
    .await
    .expect("apply finished")
    .unwrap_or_else(|e| panic!("{e}"));
    let failed: Vec<_> = report.operations.iter().filter(|o| o.result != Result_::Done).collect();
    if !failed.is_empty() {
        eprintln!("failed operations: {failed:?}");
    }
    report
}
