//! `bucket.assets` and `bucket_policy.assets` against a mocked S3: what a plan's read costs however many buckets the
//! account has, and the rules of a bucket's create that the emulator does not show (bucket names are global: a
//! repeat of our own create answers BucketAlreadyOwnedByYou, another account's name BucketAlreadyExists; the tags
//! come first after the create, so an interruption leaves a bucket the next read still finds).

use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::ErrorMetadata;
use aws_sdk_s3::operation::create_bucket::CreateBucketError;
use aws_sdk_s3::operation::get_bucket_encryption::GetBucketEncryptionOutput;
use aws_sdk_s3::operation::get_bucket_ownership_controls::GetBucketOwnershipControlsOutput;
use aws_sdk_s3::operation::get_bucket_policy::GetBucketPolicyOutput;
use aws_sdk_s3::operation::get_bucket_tagging::GetBucketTaggingOutput;
use aws_sdk_s3::operation::get_bucket_versioning::GetBucketVersioningOutput;
use aws_sdk_s3::operation::get_public_access_block::GetPublicAccessBlockOutput;
use aws_sdk_s3::operation::list_buckets::ListBucketsOutput;
use aws_sdk_s3::operation::put_bucket_encryption::PutBucketEncryptionOutput;
use aws_sdk_s3::operation::put_bucket_ownership_controls::PutBucketOwnershipControlsOutput;
use aws_sdk_s3::operation::put_bucket_tagging::PutBucketTaggingOutput;
use aws_sdk_s3::operation::put_public_access_block::PutPublicAccessBlockOutput;
use aws_sdk_s3::types::{
    Bucket as S3Bucket, ObjectOwnership, OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration,
    ServerSideEncryption, ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag,
};
use aws_smithy_mocks::{MockResponse, MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_types::retry::RetryConfig;
use serde_json::json;
use webscale::aws::{Clients, Cloud};
use webscale::resources::bucket::Bucket;
use webscale::resources::bucket_policy::BucketPolicy;
use webscale::resources::{Address, Kind, Op, ReadCtx};
use webscale::spec::{RegionChoice, Stack};

use super::{REGION, fast, unused_clients};

const ACCOUNT: &str = "123456789012";
const OURS: &str = "mocked-assets-123456789012";

/// The reference stack as stack `mocked`, its account known (the bucket's name is derived from it).
fn stack() -> Stack {
    let path = crate::support::repo().join("templates/webscale.toml");
    let text = std::fs::read_to_string(&path).unwrap().replacen("name = \"webscale\"", "name = \"mocked\"", 1);
    let mut stack = webscale::spec::parse(&path, &text, &RegionChoice::default()).unwrap_or_else(|e| panic!("{e}"));
    stack.account = Some(ACCOUNT.to_string());
    stack
}

/// Every S3 call made, by operation name, in order.
type Calls = Arc<Mutex<Vec<String>>>;

fn cloud(rules: &[&Rule]) -> Cloud {
    let interceptor =
        rules.iter().fold(MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny), |i, r| i.with_rule(r));
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build(),
    );
    Cloud::from_clients("mocked", REGION, Clients { s3, ..unused_clients() }, fast())
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().unwrap()
}

#[tokio::test]
async fn a_read_costs_the_same_calls_whatever_the_number_of_buckets_in_the_account() {
    let calls: Calls = Arc::default();
    let log = |name: &'static str| {
        let calls = calls.clone();
        move || calls.lock().unwrap().push(name.to_string())
    };
    let (l1, l2, l3, l4, l5, l6, l7) = (
        log("ListBuckets"),
        log("GetBucketTagging"),
        log("GetBucketVersioning"),
        log("GetBucketEncryption"),
        log("GetPublicAccessBlock"),
        log("GetBucketOwnershipControls"),
        log("GetBucketPolicy"),
    );
    // 150 buckets of the account that are not the stack's, and the stack's.
    let list = mock!(aws_sdk_s3::Client::list_buckets).then_compute_output(move |_| {
        l1();
        let mut out = ListBucketsOutput::builder();
        for i in 0..150 {
            out = out.buckets(S3Bucket::builder().name(format!("someone-else-{i}")).bucket_region(REGION).build());
        }
        out.buckets(S3Bucket::builder().name(OURS).bucket_region(REGION).build()).build()
    });
    let tagging = mock!(aws_sdk_s3::Client::get_bucket_tagging).then_compute_output(move |input| {
        l2();
        assert_eq!(input.bucket(), Some(OURS), "tags asked only of a bucket named like the stack's");
        GetBucketTaggingOutput::builder()
            .tag_set(tag("webscale:stack", "mocked"))
            .tag_set(tag("webscale:address", "bucket.assets"))
            .build()
            .unwrap()
    });
    let versioning = mock!(aws_sdk_s3::Client::get_bucket_versioning).then_compute_output(move |_| {
        l3();
        GetBucketVersioningOutput::builder().build()
    });
    let encryption = mock!(aws_sdk_s3::Client::get_bucket_encryption).then_compute_output(move |_| {
        l4();
        let default =
            ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256).build().unwrap();
        let rule = ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(default).build();
        GetBucketEncryptionOutput::builder()
            .server_side_encryption_configuration(
                ServerSideEncryptionConfiguration::builder().rules(rule).build().unwrap(),
            )
            .build()
    });
    let block = mock!(aws_sdk_s3::Client::get_public_access_block).then_compute_output(move |_| {
        l5();
        let all = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(true)
            .restrict_public_buckets(true)
            .build();
        GetPublicAccessBlockOutput::builder().public_access_block_configuration(all).build()
    });
    let ownership = mock!(aws_sdk_s3::Client::get_bucket_ownership_controls).then_compute_output(move |_| {
        l6();
        let rule =
            OwnershipControlsRule::builder().object_ownership(ObjectOwnership::BucketOwnerEnforced).build().unwrap();
        GetBucketOwnershipControlsOutput::builder()
            .ownership_controls(OwnershipControls::builder().rules(rule).build().unwrap())
            .build()
    });
    let policy = mock!(aws_sdk_s3::Client::get_bucket_policy).then_compute_output(move |_| {
        l7();
        GetBucketPolicyOutput::builder().policy(r#"{"Version":"2012-10-17","Statement":[]}"#).build()
    });
    let cloud = cloud(&[&list, &tagging, &versioning, &encryption, &block, &ownership, &policy]);
    let stack = stack();
    let ctx = ReadCtx::new(&cloud, &stack);
    let (buckets, policies) = futures::future::try_join(Bucket.read(&ctx, REGION), BucketPolicy.read(&ctx, REGION))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(buckets.len(), 1, "only the stack's bucket");
    let b = &buckets[0];
    assert_eq!((b.address.as_str(), b.id.as_str()), ("bucket.assets", OURS));
    assert_eq!(b.attrs["public_access_block"], json!(true));
    assert_eq!(b.attrs["encryption"], json!("AES256"));
    assert_eq!(b.attrs["object_ownership"], json!("BucketOwnerEnforced"));
    assert_eq!(b.attrs["versioning"], json!(false));
    assert_eq!(b.outputs["regional_domain_name"], json!(format!("{OURS}.s3.{REGION}.amazonaws.com")));
    assert_eq!(policies.len(), 1);
    let mut made = calls.lock().unwrap().clone();
    made.sort();
    assert_eq!(
        made,
        [
            "GetBucketEncryption",
            "GetBucketOwnershipControls",
            "GetBucketPolicy",
            "GetBucketTagging",
            "GetBucketVersioning",
            "GetPublicAccessBlock",
            "ListBuckets",
        ],
        "the bucket listing is shared by the bucket and its policy; the rest is per bucket of the stack (one)"
    );
}

fn op<'a>(address: &'a Address, desired: serde_json::Value) -> Op<'a> {
    Op {
        address,
        region: REGION,
        id: None,
        desired: Some(webscale::resources::attrs(&desired)),
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

/// The settings calls after a create, answered and logged.
fn settings(calls: &Calls) -> Vec<Rule> {
    let log = |name: &'static str| {
        let calls = calls.clone();
        move || calls.lock().unwrap().push(name.to_string())
    };
    let (t, p, e, o) = (
        log("PutBucketTagging"),
        log("PutPublicAccessBlock"),
        log("PutBucketEncryption"),
        log("PutBucketOwnershipControls"),
    );
    vec![
        mock!(aws_sdk_s3::Client::put_bucket_tagging).then_compute_output(move |input| {
            t();
            let tags = input.tagging().map(|t| t.tag_set().to_vec()).unwrap_or_default();
            assert!(tags.iter().any(|t| t.key() == "webscale:stack" && t.value() == "mocked"), "{tags:?}");
            PutBucketTaggingOutput::builder().build()
        }),
        mock!(aws_sdk_s3::Client::put_public_access_block).then_compute_output(move |_| {
            p();
            PutPublicAccessBlockOutput::builder().build()
        }),
        mock!(aws_sdk_s3::Client::put_bucket_encryption).then_compute_output(move |_| {
            e();
            PutBucketEncryptionOutput::builder().build()
        }),
        mock!(aws_sdk_s3::Client::put_bucket_ownership_controls).then_compute_output(move |_| {
            o();
            PutBucketOwnershipControlsOutput::builder().build()
        }),
        mock!(aws_sdk_s3::Client::get_bucket_versioning).then_output(|| GetBucketVersioningOutput::builder().build()),
    ]
}

#[tokio::test]
async fn a_repeated_create_meets_our_own_bucket_and_finishes_it_tags_first() {
    let calls: Calls = Arc::default();
    let c = calls.clone();
    let create = mock!(aws_sdk_s3::Client::create_bucket).then_compute_response(move |input| {
        c.lock().unwrap().push("CreateBucket".into());
        assert_eq!(input.object_ownership(), Some(&ObjectOwnership::BucketOwnerEnforced), "ACLs off from the start");
        assert!(input.create_bucket_configuration().is_none(), "us-east-1 takes no location constraint");
        // The first call's answer was lost: S3 now says the bucket is ours already.
        MockResponse::Error(CreateBucketError::generic(
            ErrorMetadata::builder().code("BucketAlreadyOwnedByYou").message("yours already").build(),
        ))
    });
    let rest = settings(&calls);
    let mut rules: Vec<&Rule> = rest.iter().collect();
    rules.push(&create);
    let cloud = cloud(&rules);
    let desired = Bucket.desired(&stack()).remove(0);
    let address = desired.address.clone();
    let created = Bucket
        .create(&cloud, &op(&address, serde_json::Value::Object(desired.attrs)))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(created.id, OURS);
    let made = calls.lock().unwrap().clone();
    assert_eq!(made[..2], ["CreateBucket", "PutBucketTagging"], "tags right after the create: {made:?}");
    assert!(made.contains(&"PutPublicAccessBlock".to_string()) && made.contains(&"PutBucketEncryption".to_string()));
}

#[tokio::test]
async fn a_name_another_account_holds_is_said_so() {
    let create = mock!(aws_sdk_s3::Client::create_bucket).then_error(|| {
        CreateBucketError::generic(ErrorMetadata::builder().code("BucketAlreadyExists").message("taken").build())
    });
    let cloud = cloud(&[&create]);
    let desired = Bucket.desired(&stack()).remove(0);
    let address = desired.address.clone();
    let err = Bucket
        .create(&cloud, &op(&address, serde_json::Value::Object(desired.attrs)))
        .await
        .expect_err("another account's bucket");
    assert_eq!(err.code(), "BucketAlreadyExists");
    assert!(err.to_string().contains("taken by another AWS account"), "{err}");
    assert!(err.to_string().contains("[static_assets] bucket"), "says what to do: {err}");
}
