//! The asset sync (`bucket_objects.assets`) against a mocked S3 and CloudFront: what it reads, what it writes, and in
//! which order. The kind is called directly (`read`, `create`, `update`) with the S3 and CloudFront clients on
//! `aws-smithy-mocks`; the mocks keep a small bucket ([`Bucket`]) whose ETags are the MD5 of what was uploaded, as S3's
//! are for a single-part upload, and log every call.
//!
//! What real AWS does and the emulator does not check: the read budget (one listing, 1000 keys a page, never a
//! download), Content-MD5 on every upload, exactly one invalidation naming exactly what was live and changed, and a
//! sync whose invalidation CloudFront refuses being completed by the next run instead of leaving a stale cache.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use aws_sdk_cloudfront::operation::create_invalidation::{CreateInvalidationError, CreateInvalidationOutput};
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::ErrorMetadata;
use aws_sdk_s3::operation::delete_object::DeleteObjectOutput;
use aws_sdk_s3::operation::delete_objects::DeleteObjectsOutput;
use aws_sdk_s3::operation::get_bucket_tagging::GetBucketTaggingOutput;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::head_object::HeadObjectOutput;
use aws_sdk_s3::operation::list_buckets::ListBucketsOutput;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::operation::put_object::{PutObjectError, PutObjectOutput};
use aws_sdk_s3::types::{Bucket as S3Bucket, Object, Tag};
use aws_smithy_mocks::{MockResponse, MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_types::retry::RetryConfig;
use md5::{Digest, Md5};
use serde_json::{Value, json};
use webscale::aws::{Clients, Cloud};
use webscale::resources::bucket_objects::BucketObjects;
use webscale::resources::{Address, Attrs, Kind, Live, Op, ReadCtx};
use webscale::spec::{RegionChoice, Stack};

use super::{REGION, fast, unused_clients};

const BUCKET: &str = "mocked-site-assets";
const DISTRIBUTION: &str = "E2MOCKED";
const CACHE: &str = "public, max-age=86400";
const HTML_CACHE: &str = "public, max-age=0, must-revalidate";

/// The example site: two pages, a stylesheet, a script and an image.
const SITE: &[(&str, &[u8])] = &[
    ("404.html", b"<!doctype html><title>Not found</title>"),
    ("css/site.css", b"body { margin: 0 }"),
    ("img/logo.png", b"\x89PNG\r\n\x1a\n not really"),
    ("index.html", b"<!doctype html><title>Home</title><link rel=stylesheet href=/css/site.css>"),
    ("js/site.js", b"console.log('hi');"),
];

/// A stack named `name` (each test its own: the folder a stack's sync reads is kept per stack) whose static assets
/// are the files of `dir/site`, served through CloudFront.
fn spec(name: &str, cache_control: &str) -> String {
    format!(
        r#"
[stack]
name = "{name}"
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
bucket = "{BUCKET}"
cache_control = "{cache_control}"
"#
    )
}

/// A folder with the example site, and the stack that syncs it.
struct Site {
    dir: tempfile::TempDir,
    name: &'static str,
    cache_control: String,
}

impl Site {
    fn new(name: &'static str) -> Site {
        let dir = tempfile::tempdir().expect("a temporary folder");
        for (key, body) in SITE {
            let path = dir.path().join("site").join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, body).unwrap();
        }
        Site { dir, name, cache_control: CACHE.to_string() }
    }

    fn write(&self, key: &str, body: &[u8]) {
        std::fs::write(self.dir.path().join("site").join(key), body).unwrap();
    }

    fn remove(&self, key: &str) {
        std::fs::remove_file(self.dir.path().join("site").join(key)).unwrap();
    }

    /// The stack as loaded now (the folder is scanned at load, as `webscale` does at every run).
    fn stack(&self) -> Stack {
        let file = self.dir.path().join("webscale.toml");
        let text = spec(self.name, &self.cache_control);
        std::fs::write(&file, &text).unwrap();
        webscale::spec::parse(&file, &text, &RegionChoice::default()).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// What the mocked services were asked, in order.
#[derive(Debug, Clone, PartialEq)]
enum Call {
    ListBuckets,
    GetBucketTagging,
    List {
        prefix: Option<String>,
        after: Option<String>,
    },
    Put {
        key: String,
        content_type: Option<String>,
        cache_control: Option<String>,
        content_md5: Option<String>,
    },
    DeleteObjects(Vec<String>),
    DeleteObject(String),
    /// GetObject or HeadObject: a download the sync must never make.
    Download(String),
    Invalidate {
        distribution: String,
        paths: Vec<String>,
        reference: String,
    },
}

/// A bucket as S3 keeps it (key -> ETag, the MD5 of the body), and every call made.
#[derive(Default)]
struct State {
    objects: BTreeMap<String, String>,
    calls: Vec<Call>,
    /// CloudFront answers TooManyInvalidationsInProgress.
    refuse_invalidations: bool,
}

#[derive(Clone, Default)]
struct Bucket(Arc<Mutex<State>>);

impl Bucket {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    fn forget_calls(&self) {
        self.state().calls.clear();
    }

    fn objects(&self) -> BTreeMap<String, String> {
        self.state().objects.clone()
    }

    fn record(&self, call: Call) {
        self.state().calls.push(call);
    }

    /// A cloud whose S3 and CloudFront answer from this bucket, for stack `stack`.
    fn cloud(&self, stack: &str) -> Cloud {
        let b = self.clone();
        let list_buckets = mock!(aws_sdk_s3::Client::list_buckets).then_compute_output(move |_| {
            b.record(Call::ListBuckets);
            ListBucketsOutput::builder().buckets(S3Bucket::builder().name(BUCKET).bucket_region(REGION).build()).build()
        });
        let (b, owner) = (self.clone(), stack.to_string());
        let tagging = mock!(aws_sdk_s3::Client::get_bucket_tagging).then_compute_output(move |_| {
            b.record(Call::GetBucketTagging);
            let tag = |k: &str, v: &str| Tag::builder().key(k).value(v).build().unwrap();
            GetBucketTaggingOutput::builder()
                .tag_set(tag("webscale:stack", &owner))
                .tag_set(tag("webscale:address", "bucket.assets"))
                .build()
                .unwrap()
        });
        let b = self.clone();
        let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_compute_output(move |input| {
            let (prefix, after) = (input.prefix().map(str::to_string), input.continuation_token().map(str::to_string));
            b.record(Call::List { prefix: prefix.clone(), after: after.clone() });
            // S3 never returns more than 1000 keys a page, whatever max-keys asks for.
            let page = input.max_keys().unwrap_or(1000).min(1000) as usize;
            let state = b.state();
            let keys: Vec<(&String, &String)> = state
                .objects
                .iter()
                .filter(|(k, _)| prefix.as_deref().is_none_or(|p| k.starts_with(p)))
                .filter(|(k, _)| after.as_deref().is_none_or(|a| k.as_str() > a))
                .collect();
            let shown = &keys[..keys.len().min(page)];
            let mut out = ListObjectsV2Output::builder().is_truncated(keys.len() > page).key_count(shown.len() as i32);
            for (k, etag) in shown {
                out = out.contents(Object::builder().key(*k).e_tag(format!("\"{etag}\"")).size(1).build());
            }
            if keys.len() > page {
                out = out.next_continuation_token(shown.last().map(|(k, _)| k.to_string()).unwrap_or_default());
            }
            out.build()
        });
        let b = self.clone();
        let put = mock!(aws_sdk_s3::Client::put_object).then_compute_output(move |input| {
            let key = input.key().unwrap_or_default().to_string();
            b.record(Call::Put {
                key: key.clone(),
                content_type: input.content_type().map(str::to_string),
                cache_control: input.cache_control().map(str::to_string),
                content_md5: input.content_md5().map(str::to_string),
            });
            // The body is not seen here: the ETag is what Content-MD5 says (S3 checks they agree), or the empty
            // body's MD5 for an upload without one (the markers are empty).
            let etag = input.content_md5().map_or_else(|| hex(&Md5::digest(b"")), from_base64);
            b.state().objects.insert(key, etag.clone());
            PutObjectOutput::builder().e_tag(format!("\"{etag}\"")).build()
        });
        let b = self.clone();
        let delete_many = mock!(aws_sdk_s3::Client::delete_objects).then_compute_output(move |input| {
            let keys: Vec<String> =
                input.delete().map(|d| d.objects().iter().map(|o| o.key().to_string()).collect()).unwrap_or_default();
            assert!(keys.len() <= 1000, "DeleteObjects takes at most 1000 keys, got {}", keys.len());
            b.record(Call::DeleteObjects(keys.clone()));
            let mut state = b.state();
            keys.iter().for_each(|k| {
                state.objects.remove(k);
            });
            DeleteObjectsOutput::builder().build()
        });
        let b = self.clone();
        let delete_one = mock!(aws_sdk_s3::Client::delete_object).then_compute_output(move |input| {
            let key = input.key().unwrap_or_default().to_string();
            b.record(Call::DeleteObject(key.clone()));
            b.state().objects.remove(&key);
            DeleteObjectOutput::builder().build()
        });
        let b = self.clone();
        let get = mock!(aws_sdk_s3::Client::get_object).then_compute_output(move |input| {
            b.record(Call::Download(input.key().unwrap_or_default().to_string()));
            GetObjectOutput::builder().build()
        });
        let b = self.clone();
        let head = mock!(aws_sdk_s3::Client::head_object).then_compute_output(move |input| {
            b.record(Call::Download(input.key().unwrap_or_default().to_string()));
            HeadObjectOutput::builder().build()
        });
        let b = self.clone();
        let invalidate = mock!(aws_sdk_cloudfront::Client::create_invalidation).then_compute_response(move |input| {
            let batch = input.invalidation_batch();
            let paths: Vec<String> = batch.and_then(|b| b.paths()).map(|p| p.items().to_vec()).unwrap_or_default();
            let quantity = batch.and_then(|b| b.paths()).map(|p| p.quantity()).unwrap_or_default();
            assert_eq!(quantity as usize, paths.len(), "Quantity is the number of paths");
            b.record(Call::Invalidate {
                distribution: input.distribution_id().unwrap_or_default().to_string(),
                paths,
                reference: batch.map(|b| b.caller_reference().to_string()).unwrap_or_default(),
            });
            if b.state().refuse_invalidations {
                let meta = ErrorMetadata::builder()
                    .code("TooManyInvalidationsInProgress")
                    .message("Processing your request will cause you to exceed the maximum number of in-progress wildcard invalidations.")
                    .build();
                return MockResponse::Error(CreateInvalidationError::generic(meta));
            }
            MockResponse::Output(CreateInvalidationOutput::builder().build())
        });
        let s3_rules = [&list_buckets, &tagging, &list, &put, &delete_many, &delete_one, &get, &head];
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version_latest()
                .region(Region::new(REGION))
                .credentials_provider(Credentials::new("test", "test", None, None, "test"))
                .retry_config(RetryConfig::disabled())
                .http_client(create_mock_http_client())
                .interceptor(interceptor(&s3_rules))
                .build(),
        );
        let cloudfront = aws_sdk_cloudfront::Client::from_conf(
            aws_sdk_cloudfront::Config::builder()
                .behavior_version_latest()
                .region(aws_sdk_cloudfront::config::Region::new(REGION))
                .credentials_provider(aws_sdk_cloudfront::config::Credentials::new("test", "test", None, None, "test"))
                .retry_config(RetryConfig::disabled())
                .http_client(create_mock_http_client())
                .interceptor(interceptor(&[&invalidate]))
                .build(),
        );
        Cloud::from_clients(stack, REGION, Clients { s3, cloudfront, ..unused_clients() }, fast())
    }
}

fn interceptor(rules: &[&Rule]) -> MockResponseInterceptor {
    rules.iter().fold(MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny), |i, r| i.with_rule(r))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_base64(text: &str) -> String {
    hex(&aws_smithy_types::base64::decode(text).expect("Content-MD5 is base64"))
}

/// Content-MD5 of a body, as S3 checks it: the base64 of the MD5's 16 bytes.
fn content_md5(body: &[u8]) -> String {
    aws_smithy_types::base64::encode(Md5::digest(body))
}

fn address() -> Address {
    webscale::resources::bucket_objects::address()
}

async fn read(cloud: &Cloud, stack: &Stack) -> Vec<Live> {
    BucketObjects.read(&ReadCtx::new(cloud, stack), REGION).await.unwrap_or_else(|e| panic!("read: {e}"))
}

/// The spec's attributes as apply hands them to the kind: references resolved to the bucket's name and the
/// distribution's id.
fn desired(stack: &Stack) -> Attrs {
    let mut d = BucketObjects.desired(stack);
    assert_eq!(d.len(), 1, "one bucket_objects per stack with [static_assets]");
    let mut attrs = d.remove(0).attrs;
    attrs.insert("bucket".into(), json!(BUCKET));
    attrs.insert("distribution".into(), json!(DISTRIBUTION));
    attrs
}

fn op<'a>(
    stack: &'a Stack,
    address: &'a Address,
    desired: Attrs,
    live: Option<Attrs>,
    changed: &'a [String],
) -> Op<'a> {
    Op {
        address,
        region: REGION,
        id: live.as_ref().map(|_| BUCKET),
        desired: Some(desired),
        live,
        changed,
        token: "ws-test".into(),
        digests: Default::default(),
        skip_final_snapshot: false,
        wait: false,
        stack: Some(stack),
        progress: None,
    }
}

/// The attributes that differ between the spec and the read, as the plan finds them (`bucket` and
/// `distribution` are references on one side and ids on the other: the same here).
fn changed(desired: &Attrs, live: &Live) -> Vec<String> {
    ["files", "headers"].iter().filter(|a| desired.get(**a) != live.attrs.get(**a)).map(|a| a.to_string()).collect()
}

/// The site synced into the bucket by a first apply (a create), its calls forgotten.
async fn synced(site: &Site, bucket: &Bucket, cloud: &Cloud) {
    let stack = site.stack();
    let a = address();
    BucketObjects
        .create(cloud, &op(&stack, &a, desired(&stack), None, &[]))
        .await
        .unwrap_or_else(|e| panic!("create: {e}"));
    bucket.forget_calls();
}

/// One run: read, then update what the plan would change; returns the attributes that changed.
async fn sync(site: &Site, cloud: &Cloud) -> Result<Vec<String>, webscale::aws::CloudError> {
    let stack = site.stack();
    let live = read(cloud, &stack).await;
    let live = live.iter().find(|l| l.address == address()).expect("the bucket's objects are read");
    let want = desired(&stack);
    let changed = changed(&want, live);
    if changed.is_empty() {
        return Ok(changed);
    }
    let a = address();
    BucketObjects.update(cloud, &op(&stack, &a, want, Some(live.attrs.clone()), &changed)).await?;
    Ok(changed)
}

fn puts(calls: &[Call]) -> Vec<&str> {
    calls
        .iter()
        .filter_map(|c| match c {
            Call::Put { key, .. } if !key.starts_with(".webscale/") => Some(key.as_str()),
            _ => None,
        })
        .collect()
}

fn invalidations(calls: &[Call]) -> Vec<&Call> {
    calls.iter().filter(|c| matches!(c, Call::Invalidate { .. })).collect()
}

fn is_marker(key: &str) -> bool {
    key.starts_with(".webscale/headers-")
}

/// Writes to the bucket or the distribution.
fn writes(calls: &[Call]) -> Vec<&Call> {
    calls
        .iter()
        .filter(|c| {
            matches!(c, Call::Put { .. } | Call::DeleteObjects(_) | Call::DeleteObject(_) | Call::Invalidate { .. })
        })
        .collect()
}

// =====================================================================================================================
// Tests
// =====================================================================================================================

/// (a) The read budget: a bucket of 2500 objects is listed in exactly 3 pages of at most 1000 keys, besides the
/// bucket listing's fixed calls, and no object is downloaded. Keys under `.webscale/` are never files; a multipart
/// ETag reads as it is (it differs from any MD5, so the file plans as changed).
#[tokio::test]
async fn a_bucket_of_2500_objects_is_read_in_3_listings_and_nothing_is_downloaded() {
    let site = Site::new("assets-budget");
    let bucket = Bucket::default();
    {
        let mut state = bucket.state();
        for i in 0..2500 {
            state.objects.insert(format!("img/{i:04}.png"), format!("{i:032x}"));
        }
        state.objects.insert("big.zip".into(), "0123456789abcdef0123456789abcdef-3".into());
        state.objects.insert(".webscale/headers-0000".into(), "d41d8cd98f00b204e9800998ecf8427e".into());
    }
    let cloud = bucket.cloud(site.name);
    let stack = site.stack();

    let live = read(&cloud, &stack).await;

    let calls = bucket.calls();
    let lists: Vec<&Call> = calls.iter().filter(|c| matches!(c, Call::List { .. })).collect();
    assert_eq!(lists.len(), 3, "2502 keys: 3 pages of at most 1000; calls: {lists:?}");
    assert!(
        lists.iter().all(|c| matches!(c, Call::List { prefix: None, .. })),
        "one listing of the whole bucket: {lists:?}"
    );
    assert_eq!(
        calls.iter().filter(|c| matches!(c, Call::ListBuckets | Call::GetBucketTagging)).count(),
        2,
        "the bucket listing's own calls: ListBuckets and the one candidate's tags; {calls:?}"
    );
    assert_eq!(calls.len(), 5, "nothing else: {calls:?}");
    assert!(!calls.iter().any(|c| matches!(c, Call::Download(_))), "no GetObject or HeadObject");

    assert_eq!(live.len(), 1);
    let files = live[0].attrs["files"].as_object().expect("files is an object");
    assert_eq!(files.len(), 2501, "every object but webscale's own marker");
    assert!(!files.keys().any(|k| k.starts_with(".webscale/")));
    assert_eq!(files["img/0042.png"], json!(format!("{:032x}", 42)), "the ETag without its quotes");
    assert_eq!(files["big.zip"], json!("0123456789abcdef0123456789abcdef-3"));
    assert_eq!(live[0].attrs["headers"], Value::Null, "a marker of other header rules is not the spec's");
    assert_eq!(live[0].id, BUCKET);
}

/// A first sync uploads every file with its Content-Type, Cache-Control (short for pages) and Content-MD5, and
/// writes the marker of the header rules last; the next read then finds exactly the spec.
#[tokio::test]
async fn a_first_sync_uploads_every_file_with_its_headers_and_the_marker_last() {
    let site = Site::new("assets-first");
    let bucket = Bucket::default();
    let cloud = bucket.cloud(site.name);
    let stack = site.stack();
    let a = address();

    let created = BucketObjects.create(&cloud, &op(&stack, &a, desired(&stack), None, &[])).await.expect("create");

    assert_eq!(created.id, BUCKET, "the id is the bucket's");
    let calls = bucket.calls();
    let expected: BTreeMap<&str, (&str, &str)> = [
        ("404.html", ("text/html; charset=utf-8", HTML_CACHE)),
        ("css/site.css", ("text/css; charset=utf-8", CACHE)),
        ("img/logo.png", ("image/png", CACHE)),
        ("index.html", ("text/html; charset=utf-8", HTML_CACHE)),
        ("js/site.js", ("text/javascript; charset=utf-8", CACHE)),
    ]
    .into();
    let mut uploaded = BTreeMap::new();
    for c in &calls {
        if let Call::Put { key, content_type, cache_control, content_md5 } = c
            && !is_marker(key)
        {
            uploaded.insert(key.as_str(), (content_type.clone(), cache_control.clone(), content_md5.clone()));
        }
    }
    for (key, body) in SITE {
        let (content_type, cache) = expected[key];
        assert_eq!(
            uploaded.get(key),
            Some(&(Some(content_type.to_string()), Some(cache.to_string()), Some(content_md5(body)))),
            "{key}"
        );
    }
    assert_eq!(puts(&calls).len(), SITE.len(), "each file once: {calls:?}");
    assert!(
        matches!(calls.last(), Some(Call::Put { key, .. }) if is_marker(key)),
        "the marker is written last: {calls:?}"
    );
    assert!(invalidations(&calls).is_empty(), "nothing was live, nothing to invalidate");
    let pages_last = puts(&calls).iter().skip_while(|k| !k.ends_with(".html")).all(|k| k.ends_with(".html"));
    assert!(pages_last, "pages after the assets they name: {:?}", puts(&calls));

    bucket.forget_calls();
    assert_eq!(sync(&site, &cloud).await.expect("sync"), Vec::<String>::new(), "the read finds the spec");
}

/// (b) One changed file: exactly one upload (with its content type, cache header and Content-MD5) and one
/// invalidation naming exactly its path. The marker is taken away before and written back after the
/// invalidation (so a refused invalidation shows on the next plan).
#[tokio::test]
async fn one_changed_file_is_one_upload_and_one_invalidation_naming_it() {
    let site = Site::new("assets-changed");
    let bucket = Bucket::default();
    let cloud = bucket.cloud(site.name);
    synced(&site, &bucket, &cloud).await;
    let body = b"body { margin: 0; color: #123 }";
    site.write("css/site.css", body);

    let changed = sync(&site, &cloud).await.expect("sync");

    assert_eq!(changed, ["files"]);
    let calls = bucket.calls();
    let uploads: Vec<&Call> = calls.iter().filter(|c| matches!(c, Call::Put { key, .. } if !is_marker(key))).collect();
    assert_eq!(
        uploads,
        [&Call::Put {
            key: "css/site.css".into(),
            content_type: Some("text/css; charset=utf-8".into()),
            cache_control: Some(CACHE.into()),
            content_md5: Some(content_md5(body)),
        }],
        "{calls:?}"
    );
    let inv = invalidations(&calls);
    assert!(
        matches!(inv.as_slice(), [Call::Invalidate { distribution, paths, .. }] if distribution == DISTRIBUTION && paths == &["/css/site.css"]),
        "{calls:?}"
    );
    assert!(!calls.iter().any(|c| matches!(c, Call::DeleteObjects(_))), "nothing removed: {calls:?}");
    let upload = calls.iter().position(|c| matches!(c, Call::Put { key, .. } if key == "css/site.css"));
    let invalidation = calls.iter().position(|c| matches!(c, Call::Invalidate { .. }));
    let unmarked = calls.iter().position(|c| matches!(c, Call::DeleteObject(k) if is_marker(k)));
    let marked = calls.iter().rposition(|c| matches!(c, Call::Put { key, .. } if is_marker(key)));
    assert!(
        unmarked < upload && upload < invalidation && invalidation < marked,
        "unmark, upload, invalidate, mark: {calls:?}"
    );
    assert!(!calls.iter().any(|c| matches!(c, Call::Download(_))));
    assert_eq!(sync(&site, &cloud).await.expect("sync"), Vec::<String>::new(), "done: the next plan has nothing");
}

/// (c) One removed file: one DeleteObjects naming it, an invalidation naming it, no upload.
#[tokio::test]
async fn one_removed_file_is_one_delete_and_one_invalidation_and_no_upload() {
    let site = Site::new("assets-removed");
    let bucket = Bucket::default();
    let cloud = bucket.cloud(site.name);
    synced(&site, &bucket, &cloud).await;
    site.remove("js/site.js");

    let changed = sync(&site, &cloud).await.expect("sync");

    assert_eq!(changed, ["files"]);
    let calls = bucket.calls();
    assert!(puts(&calls).is_empty(), "no file uploaded: {calls:?}");
    let deletes: Vec<&Call> = calls.iter().filter(|c| matches!(c, Call::DeleteObjects(_))).collect();
    assert_eq!(deletes, [&Call::DeleteObjects(vec!["js/site.js".into()])], "{calls:?}");
    assert!(
        matches!(invalidations(&calls).as_slice(), [Call::Invalidate { paths, .. }] if paths == &["/js/site.js"]),
        "{calls:?}"
    );
    assert!(!bucket.objects().contains_key("js/site.js"));
    assert_eq!(sync(&site, &cloud).await.expect("sync"), Vec::<String>::new());
}

/// (d) New header rules: every file is uploaded again with them, the old marker goes first and the new one is
/// written last; CloudFront's copies carry the old headers, so the whole site is invalidated.
#[tokio::test]
async fn changed_header_rules_upload_every_file_again_and_rewrite_the_marker_last() {
    let mut site = Site::new("assets-headers");
    let bucket = Bucket::default();
    let cloud = bucket.cloud(site.name);
    synced(&site, &bucket, &cloud).await;
    let old_marker: Vec<String> = bucket.objects().into_keys().filter(|k| is_marker(k)).collect();
    assert_eq!(old_marker.len(), 1, "the first sync left one marker");
    site.cache_control = "public, max-age=3600".into();

    let changed = sync(&site, &cloud).await.expect("sync");

    assert_eq!(changed, ["headers"], "the files are the same; the rules they were uploaded with are not");
    let calls = bucket.calls();
    let mut uploaded = puts(&calls);
    uploaded.sort();
    assert_eq!(uploaded, SITE.iter().map(|(k, _)| *k).collect::<Vec<_>>(), "every file again: {calls:?}");
    for c in &calls {
        if let Call::Put { key, cache_control, .. } = c
            && (key.ends_with(".css") || key.ends_with(".js") || key.ends_with(".png"))
        {
            assert_eq!(cache_control.as_deref(), Some("public, max-age=3600"), "{key}");
        }
    }
    let old_gone = calls.iter().position(|c| matches!(c, Call::DeleteObjects(keys) if keys == &old_marker));
    let first_upload = calls.iter().position(|c| matches!(c, Call::Put { key, .. } if !is_marker(key)));
    assert!(old_gone.is_some() && old_gone < first_upload, "the old marker goes before any upload: {calls:?}");
    assert!(
        matches!(calls.last(), Some(Call::Put { key, .. }) if is_marker(key) && !old_marker.contains(key)),
        "new marker last: {calls:?}"
    );
    let inv = invalidations(&calls);
    assert!(
        matches!(inv.as_slice(), [Call::Invalidate { paths, .. }] if paths.len() == SITE.len() + 1 && paths.contains(&"/".to_string())),
        "every live file (and the root, which serves index.html) once: {calls:?}"
    );
    let markers: Vec<String> = bucket.objects().into_keys().filter(|k| is_marker(k)).collect();
    assert_eq!(markers.len(), 1, "one marker, the new rules': {markers:?}");
    assert_eq!(sync(&site, &cloud).await.expect("sync"), Vec::<String>::new());
}

/// (e) Nothing changed: the read finds the spec (so the plan has nothing to do), and an update of nothing but the
/// distribution (a new one: its cache is empty) writes nothing either.
#[tokio::test]
async fn an_unchanged_folder_writes_nothing() {
    let site = Site::new("assets-unchanged");
    let bucket = Bucket::default();
    let cloud = bucket.cloud(site.name);
    synced(&site, &bucket, &cloud).await;
    let before = bucket.objects();

    assert_eq!(sync(&site, &cloud).await.expect("sync"), Vec::<String>::new());
    let stack = site.stack();
    let live = read(&cloud, &stack).await.remove(0);
    let a = address();
    let changed = vec!["distribution".to_string()];
    BucketObjects.update(&cloud, &op(&stack, &a, desired(&stack), Some(live.attrs), &changed)).await.expect("update");

    let calls = bucket.calls();
    assert!(writes(&calls).is_empty(), "no upload, delete or invalidation: {calls:?}");
    assert_eq!(bucket.objects(), before);
}

/// CloudFront refuses the invalidation (too many in progress, a limit real AWS has): the update fails saying what to
/// do, and the files it uploaded do not hide the stale cache: the marker is gone, so the next read reports the
/// header rules as not applied and the next run uploads and invalidates again.
#[tokio::test]
async fn a_refused_invalidation_is_completed_by_the_next_run() {
    let site = Site::new("assets-refused");
    let bucket = Bucket::default();
    let cloud = bucket.cloud(site.name);
    synced(&site, &bucket, &cloud).await;
    site.write("index.html", b"<!doctype html><title>Home, again</title>");
    bucket.state().refuse_invalidations = true;

    let err = sync(&site, &cloud).await.expect_err("CloudFront refused");

    assert_eq!(err.code(), "TooManyInvalidationsInProgress");
    assert!(err.to_string().contains("run apply again"), "{err}");
    assert!(!bucket.objects().keys().any(|k| is_marker(k)), "the sync is not recorded as done");
    bucket.state().refuse_invalidations = false;
    bucket.forget_calls();

    let changed = sync(&site, &cloud).await.expect("the next run");

    assert_eq!(changed, ["headers"], "the next plan sees the unfinished sync");
    let calls = bucket.calls();
    assert!(
        matches!(invalidations(&calls).as_slice(), [Call::Invalidate { paths, .. }] if paths.contains(&"/index.html".to_string()) && paths.contains(&"/".to_string())),
        "{calls:?}"
    );
    assert_eq!(sync(&site, &cloud).await.expect("sync"), Vec::<String>::new());
}

/// A file edited between the plan and the upload: S3 refuses the body (its MD5 is not the planned Content-MD5),
/// and the error says to run again rather than S3's "BadDigest".
#[tokio::test]
async fn a_file_edited_after_the_plan_is_refused_by_s3_with_a_clear_message() {
    let site = Site::new("assets-edited");
    let stack = site.stack();
    let put = mock!(aws_sdk_s3::Client::put_object).then_error(|| {
        PutObjectError::generic(
            ErrorMetadata::builder()
                .code("BadDigest")
                .message("The Content-MD5 you specified did not match what we received.")
                .build(),
        )
    });
    // A new bucket: no marker of earlier header rules to clear.
    let list = mock!(aws_sdk_s3::Client::list_objects_v2).then_output(|| ListObjectsV2Output::builder().build());
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder()
            .behavior_version_latest()
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .http_client(create_mock_http_client())
            .interceptor(interceptor(&[&put, &list]))
            .build(),
    );
    let cloud = Cloud::from_clients(site.name, REGION, Clients { s3, ..unused_clients() }, fast());
    let a = address();
    let mut want = desired(&stack);
    want.insert("files".into(), json!({ "index.html": want["files"]["index.html"] }));

    let err = BucketObjects.create(&cloud, &op(&stack, &a, want, None, &[])).await.expect_err("S3 refused the body");

    assert_eq!(err.code(), "BadDigest");
    let text = err.to_string();
    assert!(
        text.contains(&Path::new("site").join("index.html").display().to_string())
            && text.contains("run the command again"),
        "{text}"
    );
}
