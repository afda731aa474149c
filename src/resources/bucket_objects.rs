//! `bucket_objects.assets`: the files of the `[static_assets]` folder, kept in sync in the assets bucket.
//!
//! Compared without downloading anything: S3's ETag of a single-part upload without KMS is the MD5 of the body,
//! and the spec's scan of the folder computes the same MD5 per file. So `files` (object key -> MD5) reads back from
//! one ListObjectsV2 listing per bucket (1000 keys a page) and never from GetObject/HeadObject; the plan lists the
//! files that will be added, changed and removed, one line each. A multipart ETag (`...-N`) never equals an MD5: such
//! a file plans as changed and is uploaded again, single-part.
//!
//! The headers a file was uploaded with (Content-Type, Cache-Control) are not in a listing. The rules they come from
//! (`headers`: the spec's two Cache-Control values and the version of the content-type table) are recorded instead
//! as an empty marker object whose key carries their digest (`.webscale/headers-HEX`, under
//! [`RESERVED_PREFIX`], never a file of the folder). The read reports the spec's rules when their marker is there,
//! else `null`, which plans every file to be uploaded again. A sync that may leave the bucket half-done takes the
//! marker away first and writes it back last, so whatever interrupts it (a crash, a refused invalidation) shows on
//! the next plan and is completed then, rather than silently leaving mixed headers or a stale CDN cache.
//!
//! After a sync that changed or removed files that were already live, one CloudFront invalidation names exactly
//! those paths (`/*` beyond CloudFront's 3000 paths a request). New files need none: nothing cached them.
//!
//! The bucket owns the id: this resource's id is the bucket's name.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use async_trait::async_trait;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::bucket::{self, OwnedBucket};
use super::{Address, Attr, Created, Desired, GLOBAL, Kind, Live, Op, ReadCtx, cloud_id, reference};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{AssetFile, RESERVED_PREFIX, Stack, StaticAssets};

pub struct BucketObjects;

pub fn address() -> Address {
    Address::new("bucket_objects", "assets")
}

/// The distribution invalidated after a sync (the CloudFront kind's address).
fn distribution() -> Address {
    Address::new("distribution", "assets")
}

/// The version of `spec::content_type`'s answers. Bump it when an extension gets another Content-Type (a new
/// `mime_guess` table, a charset rule): the header rules then differ from the recorded ones and every file is
/// uploaded again with the new type.
pub const CONTENT_TYPES: u64 = 1;

/// Keys of the header-rule markers: `.webscale/headers-HEX`.
const MARKER_PREFIX: &str = ".webscale/headers-";
/// ListObjectsV2's and DeleteObjects' most keys a call.
const PAGE: usize = 1000;
/// CloudFront's most paths in one invalidation request; beyond it, the whole distribution (`/*`, one path).
pub const MAX_INVALIDATION_PATHS: usize = 3000;
/// Uploads at once: enough to fill a link with small files, few enough not to be throttled.
const PARALLEL_UPLOADS: usize = 8;
/// S3's largest single-part upload (5 GiB): a bigger file would need a multipart upload, whose ETag is not an MD5.
const MAX_SINGLE_PART: u64 = 5 * 1024 * 1024 * 1024;

/// The header rules as the spec gives them: what every file's headers are computed from.
pub fn headers(assets: &StaticAssets) -> Value {
    json!({
        "cache_control": assets.cache_control,
        "html_cache_control": assets.html_cache_control,
        "content_types": CONTENT_TYPES,
    })
}

/// The marker object recording that every file was uploaded under `headers`.
pub fn marker_key(headers: &Value) -> String {
    let digest = super::digest(&sorted(headers));
    format!("{MARKER_PREFIX}{}", digest.trim_start_matches("sha256:"))
}

/// `v` with every object's keys in order: `digest` keeps them as written (serde_json's preserve_order), and the
/// marker must not depend on how the rules were spelled.
fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by_key(|(k, _)| *k);
            Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// The spec's scan of the folder (where each file is on disk, its content type and cache header): attributes carry
/// only key -> MD5, what a listing reads back.
fn folder<'a>(op: &Op<'a>) -> Result<&'a StaticAssets, CloudError> {
    op.stack.and_then(|s| s.static_assets.as_ref()).ok_or_else(|| {
        CloudError::internal(format!("{}: the [static_assets] folder was not given to the sync", op.address))
    })
}

#[derive(Deserialize)]
struct Want {
    bucket: String,
    files: BTreeMap<String, String>,
    headers: Value,
    /// The distribution's id, resolved; `None` without a CDN.
    distribution: Option<String>,
}

#[derive(Deserialize, Default)]
struct Have {
    #[serde(default)]
    files: BTreeMap<String, String>,
    #[serde(default)]
    headers: Value,
}

/// What one sync does, worked out from the planned and the live files alone.
#[derive(Debug, PartialEq, Eq)]
struct Steps<'a> {
    /// Keys to upload: added and changed files (every file when the header rules change).
    upload: Vec<&'a str>,
    /// Keys live but no longer in the folder.
    remove: Vec<&'a str>,
    /// Keys that were live and are overwritten or removed: what CloudFront may hold an old copy of.
    stale: Vec<&'a str>,
}

fn steps<'a>(want: &'a BTreeMap<String, String>, have: &'a BTreeMap<String, String>, every: bool) -> Steps<'a> {
    let upload: Vec<&str> =
        want.iter().filter(|(k, md5)| every || have.get(*k) != Some(*md5)).map(|(k, _)| k.as_str()).collect();
    let remove: Vec<&str> = have.keys().filter(|k| !want.contains_key(*k)).map(String::as_str).collect();
    let mut stale: Vec<&str> =
        upload.iter().copied().filter(|k| have.contains_key(*k)).chain(remove.iter().copied()).collect();
    stale.sort_unstable();
    Steps { upload, remove, stale }
}

/// The paths to invalidate after `stale` keys changed: `/KEY` each (URL-encoded where CloudFront requires), `/`
/// as well when the default root object is among them (the site's root serves it under that path too); the whole
/// distribution (`/*`) when there are more than CloudFront takes in one request.
pub fn invalidation_paths<S: AsRef<str>>(stale: &[S], root_object: &str) -> Vec<String> {
    let mut paths: BTreeSet<String> = stale.iter().map(|k| format!("/{}", encode_path(k.as_ref()))).collect();
    if stale.iter().any(|k| k.as_ref() == root_object) {
        paths.insert("/".to_string());
    }
    if paths.len() > MAX_INVALIDATION_PATHS {
        return vec!["/*".to_string()];
    }
    paths.into_iter().collect()
}

/// CloudFront matches an invalidation path against the URL-encoded request path: non-ASCII and RFC 1738's unsafe
/// characters are %-encoded, nothing else (encoding more would miss the cached copy). `*` and `?` too: unencoded,
/// they would be a wildcard or a query.
fn encode_path(key: &str) -> String {
    let keep = |b: u8| b.is_ascii_alphanumeric() || b"-._/!$&'()+,;=:@".contains(&b);
    key.bytes().map(|b| if keep(b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

/// The invalidation's CallerReference: what it covers (paths and the new ETags) and when the sync started. A repeat
/// of the same request (the SDK's retry of a lost answer) makes no second invalidation; a later sync to the same
/// content (a rollback, then the release again) is a new invalidation, as the edge may hold the rolled-back copy.
pub fn caller_reference(paths: &[String], etags: &BTreeMap<&str, Option<&str>>, started: u64) -> String {
    let digest = super::digest(&json!([paths, etags]));
    format!("ws-{}-{started}", &digest.trim_start_matches("sha256:")[..32])
}

fn hex_to_base64(hex: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> =
        (0..hex.len()).step_by(2).map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok())).collect();
    bytes.filter(|b| b.len() == 16).map(aws_smithy_types::base64::encode)
}

#[async_trait]
impl Kind for BucketObjects {
    fn name(&self) -> &'static str {
        "bucket_objects"
    }

    fn service(&self) -> &'static str {
        "s3"
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            // A new bucket starts empty: every file is uploaded to it.
            Attr::new("bucket").forces_replacement(),
            Attr::new("files"),
            Attr::new("headers"),
            Attr::new("distribution"),
        ];
        SCHEMA
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let Some(assets) = stack.static_assets.as_ref() else { return Vec::new() };
        let files: Map<String, Value> =
            assets.files.iter().map(|f| (f.key.clone(), Value::String(f.md5.clone()))).collect();
        let attrs = json!({
            "bucket": reference(&bucket::address()),
            "files": files,
            "headers": headers(assets),
            "distribution": if assets.cdn { reference(&distribution()) } else { Value::Null },
        });
        vec![Desired::in_home_region(stack, address(), &attrs)]
    }

    /// The bucket's contents: the id is the bucket's, which it must not claim.
    fn owns_id(&self) -> bool {
        false
    }

    fn is_gone(&self, error: &CloudError) -> bool {
        error.is_not_found() || error.code() == "NoSuchBucket"
    }

    /// One listing per bucket of the stack in `region` (one bucket: the stack has one), 1000 keys a page.
    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let owned = bucket::owned(ctx).await?;
        let s3 = &ctx.cloud.clients(region)?.s3;
        let spec = ctx.stack.static_assets.as_ref();
        let want_headers = spec.map(headers);
        // Where invalidations go is the spec's choice, not something the bucket records: read as the spec says.
        let distribution = match spec {
            Some(a) if a.cdn => reference(&distribution()),
            _ => Value::Null,
        };
        let mine: Vec<(&OwnedBucket, Address)> = owned
            .iter()
            .filter(|b| b.region == region)
            .map(|b| (b, Address::new("bucket_objects", b.address.name())))
            .filter(|(_, a)| ctx.only.is_none_or(|o| o == a))
            .collect();
        let reads = mine.into_iter().map(|(b, address)| {
            let (want_headers, distribution) = (&want_headers, &distribution);
            async move {
                let Some(objects) = ctx.limited(list(s3, &b.name, None)).await? else { return Ok(None) };
                let mut files = Map::new();
                let mut markers = BTreeSet::new();
                for (key, etag) in objects {
                    if key.starts_with(MARKER_PREFIX) {
                        markers.insert(key);
                    } else if !key.starts_with(RESERVED_PREFIX) {
                        files.insert(key, Value::String(etag));
                    }
                }
                let headers = match want_headers {
                    Some(h) if markers.contains(&marker_key(h)) => h.clone(),
                    _ => Value::Null,
                };
                let attrs = super::attrs(&json!({
                    "bucket": cloud_id(&b.name),
                    "files": files,
                    "headers": headers,
                    "distribution": distribution,
                }));
                Ok::<_, CloudError>(Some(Live::new(address, region, b.name.clone(), attrs)))
            }
        });
        let found = futures::future::try_join_all(reads).await?;
        Ok(found.into_iter().flatten().collect())
    }

    /// Uploads every file, then records the header rules.
    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Want = op.desired()?;
        sync(cloud, op, &want, &Have::default(), true).await?;
        Ok(Created::from(want.bucket.clone()))
    }

    /// Uploads what was added or changed (everything when the header rules changed), deletes what was removed,
    /// then invalidates what CloudFront may hold an old copy of.
    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Want = op.desired()?;
        let have: Have = op.live()?;
        sync(cloud, op, &want, &have, op.changed("headers")).await
    }

    /// A change of the header rules re-uploads files whose content did not change: the plan says why.
    fn update_note(&self, desired: &super::Attrs, changed: &[String]) -> Option<String> {
        if !changed.iter().any(|c| c == "headers") {
            return None;
        }
        let n = desired.get("files").and_then(Value::as_object).map_or(0, |f| f.len());
        Some(format!(
            "every file ({n}) is uploaded again: the header rules differ from those recorded in the bucket (changed in the spec, or an earlier sync did not finish)"
        ))
    }

    /// Deletes the files listed (and the marker); the bucket's own delete empties whatever else is left.
    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let have: Have = op.live()?;
        let s3 = &cloud.clients(op.region)?.s3;
        let mut keys: Vec<String> = have.files.into_keys().collect();
        if !have.headers.is_null() {
            keys.push(marker_key(&have.headers));
        }
        match delete_keys(s3, op.id()?, &keys).await {
            Err(e) if e.code() == "NoSuchBucket" => Ok(()),
            other => other,
        }
    }
}

/// One sync of the bucket to the folder; `every`: upload every file (a new bucket, or new header rules).
async fn sync(cloud: &Cloud, op: &Op<'_>, want: &Want, have: &Have, every: bool) -> Result<(), CloudError> {
    let started = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let local = folder(op)?;
    let s3 = &cloud.clients(op.region)?.s3;
    let bucket = want.bucket.as_str();
    let steps = steps(&want.files, &have.files, every);
    let invalidate = want.distribution.as_deref().filter(|_| !steps.stale.is_empty());
    let marker = marker_key(&want.headers);
    // Until the marker is back, the next plan sees this sync as not done and completes it.
    if every {
        // Markers of other rules (or of a sync to these rules that was interrupted): none may outlive this one.
        let old: Vec<String> = list(s3, bucket, Some(MARKER_PREFIX)).await?.unwrap_or_default().into_keys().collect();
        delete_keys(s3, bucket, &old).await?;
    } else if invalidate.is_some() {
        s3.delete_object().bucket(bucket).key(&marker).send().await.call("DeleteObject")?;
    }

    let by_key: HashMap<&str, &AssetFile> = local.files.iter().map(|f| (f.key.as_str(), f)).collect();
    let mut uploads = Vec::with_capacity(steps.upload.len());
    for key in &steps.upload {
        let file = by_key.get(key).copied().ok_or_else(|| {
            CloudError::internal(format!(
                "{}: {key} is in the plan but no longer in {}: run the command again",
                op.address, local.folder_written
            ))
        })?;
        uploads.push((file, want.files[*key].as_str()));
    }
    // Pages last: a new page may name new assets, which are then in place when it is served.
    let (pages, assets): (Vec<_>, Vec<_>) =
        uploads.into_iter().partition(|(f, _)| f.content_type.starts_with("text/html"));
    let total_bytes: u64 = pages.iter().chain(&assets).map(|(f, _)| f.size).sum();
    let total = pages.len() + assets.len();
    let mut done = (0usize, 0u64);
    for batch in [assets, pages] {
        // The calls are made up front (a future does nothing until polled): a closure held inside the stream
        // would trip the compiler's check that the trait's future is `Send` for every lifetime.
        let calls: Vec<_> = batch.into_iter().map(|(file, md5)| put(s3, bucket, file, md5)).collect();
        let mut puts = futures::stream::iter(calls).buffer_unordered(PARALLEL_UPLOADS);
        while let Some(size) = puts.try_next().await? {
            done = (done.0 + 1, done.1 + size);
            let line = progress_line(done.0, total, done.1, total_bytes);
            if let Some(progress) = op.progress {
                progress.set(line.clone());
            }
            if done.0.is_multiple_of(PARALLEL_UPLOADS) || done.0 == total {
                tracing::info!(bucket, "{line}");
            }
        }
    }
    let removed: Vec<String> = steps.remove.iter().map(|k| k.to_string()).collect();
    delete_keys(s3, bucket, &removed).await?;
    if !removed.is_empty() {
        let n = removed.len();
        tracing::info!(
            bucket,
            "deleted {n} file{} no longer in {}",
            if n == 1 { "" } else { "s" },
            local.folder_written
        );
    }

    if let Some(distribution) = invalidate {
        let paths = invalidation_paths(&steps.stale, &local.default_root_object);
        let etags: BTreeMap<&str, Option<&str>> =
            steps.stale.iter().map(|k| (*k, want.files.get(*k).map(String::as_str))).collect();
        invalidate_paths(cloud, distribution, &paths, &caller_reference(&paths, &etags, started)).await?;
        let what = if paths.len() <= 10 { paths.join(" ") } else { format!("{} paths", paths.len()) };
        tracing::info!(distribution, "invalidated {what}");
    }
    if every || invalidate.is_some() {
        s3.put_object()
            .bucket(bucket)
            .key(&marker)
            .body(ByteStream::from_static(b""))
            .send()
            .await
            .call("PutObject")?;
    }
    Ok(())
}

/// `[########------------] uploaded 40 of 100 files (1.2 of 3.0 MB)`: what the heartbeat line shows while a large
/// folder uploads (text, so it reads the same in a terminal, a CI log and the JSON `running` events).
pub fn progress_line(files: usize, total: usize, bytes: u64, total_bytes: u64) -> String {
    const WIDTH: usize = 20;
    let filled = if total_bytes > 0 {
        (bytes.min(total_bytes) as f64 / total_bytes as f64 * WIDTH as f64).round() as usize
    } else {
        // Only empty files: count them instead (none at all: done).
        (files.min(total) * WIDTH).checked_div(total).unwrap_or(WIDTH)
    };
    format!(
        "[{}{}] uploaded {files} of {total} files ({} of {})",
        "#".repeat(filled),
        "-".repeat(WIDTH - filled),
        bytes_text(bytes),
        bytes_text(total_bytes)
    )
}

fn bytes_text(bytes: u64) -> String {
    match bytes {
        0..1_000_000 => format!("{:.1} kB", bytes as f64 / 1_000.0),
        _ => format!("{:.1} MB", bytes as f64 / 1_000_000.0),
    }
}

/// Every object under `prefix` (all, without one) as key -> ETag without its quotes; `None` when the bucket is gone.
async fn list(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: Option<&str>,
) -> Result<Option<BTreeMap<String, String>>, CloudError> {
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .set_prefix(prefix.map(str::to_string))
        .max_keys(PAGE as i32)
        .into_paginator()
        .send();
    let mut objects = BTreeMap::new();
    while let Some(page) = pages.next().await {
        let page = match page.call("ListObjectsV2") {
            Err(e) if e.code() == "NoSuchBucket" => return Ok(None),
            other => other?,
        };
        for o in page.contents() {
            if let Some(key) = o.key() {
                objects.insert(key.to_string(), o.e_tag().unwrap_or_default().trim_matches('"').to_string());
            }
        }
    }
    Ok(Some(objects))
}

/// One file, with its headers and the planned MD5 as Content-MD5: S3 refuses a body that does not match it (a file
/// corrupted in transit, or edited since the plan). Returns its size.
async fn put(s3: &aws_sdk_s3::Client, bucket: &str, file: &AssetFile, md5: &str) -> Result<u64, CloudError> {
    let local = |message: String| CloudError { operation: "PutObject".into(), code: None, message };
    if file.size > MAX_SINGLE_PART {
        return Err(local(format!(
            "{}: {} bytes is more than S3 takes in one upload (5 GiB): keep such files out of the folder",
            file.path.display(),
            file.size
        )));
    }
    let content_md5 = hex_to_base64(md5).ok_or_else(|| local(format!("{}: {md5:?} is not an MD5", file.key)))?;
    let body = ByteStream::from_path(&file.path)
        .await
        .map_err(|e| local(format!("cannot read {}: {e}", file.path.display())))?;
    let sent = s3
        .put_object()
        .bucket(bucket)
        .key(&file.key)
        .body(body)
        .content_type(&file.content_type)
        .cache_control(&file.cache_control)
        .content_md5(content_md5)
        .send()
        .await
        .call("PutObject");
    match sent {
        Err(mut e) if e.code() == "BadDigest" => {
            e.message = format!("{} changed since the plan was made: run the command again", file.path.display());
            Err(e)
        }
        Err(e) => Err(e),
        Ok(_) => {
            tracing::debug!(bucket, key = %file.key, "uploaded");
            Ok(file.size)
        }
    }
}

/// Deletes `keys`, 1000 a call; a key already gone counts as deleted.
async fn delete_keys(s3: &aws_sdk_s3::Client, bucket: &str, keys: &[String]) -> Result<(), CloudError> {
    for batch in keys.chunks(PAGE) {
        let ids = batch
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CloudError::internal(e.to_string()))?;
        let delete = Delete::builder()
            .set_objects(Some(ids))
            .quiet(true)
            .build()
            .map_err(|e| CloudError::internal(e.to_string()))?;
        let out = s3.delete_objects().bucket(bucket).delete(delete).send().await.call("DeleteObjects")?;
        if let Some(err) = out.errors().first() {
            return Err(CloudError {
                operation: "DeleteObjects".into(),
                code: err.code().map(str::to_string),
                message: format!("{}: {}", err.key().unwrap_or("?"), err.message().unwrap_or("")),
            });
        }
    }
    Ok(())
}

async fn invalidate_paths(
    cloud: &Cloud,
    distribution: &str,
    paths: &[String],
    reference: &str,
) -> Result<(), CloudError> {
    use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
    let cloudfront = &cloud.clients(GLOBAL)?.cloudfront;
    let items = Paths::builder()
        .quantity(paths.len() as i32)
        .set_items(Some(paths.to_vec()))
        .build()
        .map_err(|e| CloudError::internal(e.to_string()))?;
    let batch = InvalidationBatch::builder()
        .paths(items)
        .caller_reference(reference)
        .build()
        .map_err(|e| CloudError::internal(e.to_string()))?;
    let sent = cloudfront
        .create_invalidation()
        .distribution_id(distribution)
        .invalidation_batch(batch)
        .send()
        .await
        .call("CreateInvalidation");
    match sent {
        Err(mut e) if e.code() == "TooManyInvalidationsInProgress" => {
            e.message = format!(
                "CloudFront has too many invalidations in progress on distribution {distribution}: the files are uploaded; run apply again in a few minutes and it invalidates them"
            );
            Err(e)
        }
        other => other.map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_marker_key_follows_the_header_rules_and_stays_in_the_reserved_prefix() {
        let rules = |cache: &str, html: &str, types: u64| json!({"cache_control": cache, "html_cache_control": html, "content_types": types});
        let base = marker_key(&rules("public, max-age=86400", "no-cache", 1));
        assert!(base.starts_with(RESERVED_PREFIX) && base.starts_with(MARKER_PREFIX), "{base}");
        assert_eq!(base.len(), MARKER_PREFIX.len() + 64, "a full SHA-256: {base}");
        assert!(base[MARKER_PREFIX.len()..].chars().all(|c| c.is_ascii_hexdigit()), "{base}");
        assert_eq!(base, marker_key(&rules("public, max-age=86400", "no-cache", 1)), "stable");
        // Key order in the object does not matter: the digest is of the canonical form.
        let reordered: Value = serde_json::from_str(
            r#"{"content_types": 1, "html_cache_control": "no-cache", "cache_control": "public, max-age=86400"}"#,
        )
        .unwrap();
        assert_eq!(base, marker_key(&reordered));
        assert_ne!(base, marker_key(&rules("public, max-age=3600", "no-cache", 1)), "cache_control");
        assert_ne!(base, marker_key(&rules("public, max-age=86400", "no-store", 1)), "html_cache_control");
        assert_ne!(base, marker_key(&rules("public, max-age=86400", "no-cache", 2)), "the content-type table");
    }

    #[test]
    fn the_invalidation_names_each_path_and_the_root_when_the_root_object_changed() {
        assert_eq!(invalidation_paths(&["css/site.css", "a.js"], "index.html"), ["/a.js", "/css/site.css"]);
        assert_eq!(invalidation_paths(&["index.html", "a.js"], "index.html"), ["/", "/a.js", "/index.html"]);
        assert_eq!(
            invalidation_paths(&["docs/index.html"], "index.html"),
            ["/docs/index.html"],
            "only the site's root"
        );
        assert_eq!(invalidation_paths(&["home.html"], "home.html"), ["/", "/home.html"]);
        assert_eq!(
            invalidation_paths(&["my file~1.txt", "é.css", "a*b?.js"], "index.html"),
            ["/%C3%A9.css", "/a%2Ab%3F.js", "/my%20file%7E1.txt"],
            "unsafe and non-ASCII characters encoded, wildcards and queries too"
        );
        assert_eq!(invalidation_paths(&["a(1)+b@c=d,e;f:g$h&i!j'k.txt"], "x"), ["/a(1)+b@c=d,e;f:g$h&i!j'k.txt"]);
        assert!(invalidation_paths::<&str>(&[], "index.html").is_empty());
    }

    #[test]
    fn more_paths_than_cloudfront_takes_invalidate_everything() {
        let keys: Vec<String> = (0..MAX_INVALIDATION_PATHS).map(|i| format!("f{i}.css")).collect();
        assert_eq!(invalidation_paths(&keys, "index.html").len(), MAX_INVALIDATION_PATHS, "3000 fit");
        let mut more = keys.clone();
        more.push("index.html".into());
        // 3001 keys, plus `/`.
        assert_eq!(invalidation_paths(&more, "index.html"), ["/*"]);
        let mut root = keys[..MAX_INVALIDATION_PATHS - 1].to_vec();
        root.push("index.html".into());
        assert_eq!(invalidation_paths(&root, "index.html"), ["/*"], "3000 keys and `/` are 3001 paths");
    }

    #[test]
    fn a_sync_uploads_what_differs_removes_what_is_gone_and_invalidates_only_what_was_live() {
        let want = map(&[("a.css", "1"), ("b.js", "2"), ("new.png", "3")]);
        let have = map(&[("a.css", "1"), ("b.js", "0"), ("old.txt", "9"), ("multi", "abc-2")]);
        let s = steps(&want, &have, false);
        assert_eq!(
            s,
            Steps {
                upload: vec!["b.js", "new.png"],
                remove: vec!["multi", "old.txt"],
                stale: vec!["b.js", "multi", "old.txt"]
            }
        );
        let all = steps(&want, &have, true);
        assert_eq!(all.upload, ["a.css", "b.js", "new.png"], "new header rules: every file");
        assert_eq!(all.stale, ["a.css", "b.js", "multi", "old.txt"]);
        let same = steps(&want, &want, false);
        assert!(same.upload.is_empty() && same.remove.is_empty() && same.stale.is_empty());
        let empty = BTreeMap::new();
        let fresh = steps(&want, &empty, true);
        assert_eq!((fresh.upload.len(), fresh.stale.len()), (3, 0), "a new bucket: nothing was cached");
    }

    #[test]
    fn the_caller_reference_repeats_for_the_same_request_only() {
        let paths = vec!["/a.css".to_string()];
        let new: BTreeMap<&str, Option<&str>> = [("a.css", Some("1"))].into();
        let r = caller_reference(&paths, &new, 100);
        assert_eq!(r, caller_reference(&paths, &new, 100));
        assert!(r.len() <= 128 && r.starts_with("ws-"), "{r}");
        assert_ne!(r, caller_reference(&paths, &new, 200), "the same content again later: a new invalidation");
        let other: BTreeMap<&str, Option<&str>> = [("a.css", Some("2"))].into();
        assert_ne!(r, caller_reference(&paths, &other, 100));
    }

    #[test]
    fn the_progress_line_fills_with_the_bytes_uploaded() {
        assert_eq!(
            progress_line(0, 4, 0, 2_000_000),
            "[--------------------] uploaded 0 of 4 files (0.0 kB of 2.0 MB)"
        );
        assert_eq!(
            progress_line(2, 4, 1_000_000, 2_000_000),
            "[##########----------] uploaded 2 of 4 files (1.0 MB of 2.0 MB)"
        );
        assert_eq!(
            progress_line(4, 4, 2_000_000, 2_000_000),
            "[####################] uploaded 4 of 4 files (2.0 MB of 2.0 MB)"
        );
        assert!(progress_line(1, 2, 0, 0).starts_with("[##########----------]"), "empty files count by number");
    }

    #[test]
    fn content_md5_is_the_base64_of_the_md5_bytes() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e; its Content-MD5 is 1B2M2Y8AsgTpgAmY7PhCfg==.
        assert_eq!(hex_to_base64("d41d8cd98f00b204e9800998ecf8427e").as_deref(), Some("1B2M2Y8AsgTpgAmY7PhCfg=="));
        assert_eq!(hex_to_base64("abc-2"), None);
        assert_eq!(hex_to_base64("zz1d8cd98f00b204e9800998ecf8427e"), None);
    }

    /// The plan says which files change, one line each: added, changed (old -> new MD5) and removed; the header
    /// rules not recorded (an interrupted sync) show as such.
    #[test]
    fn the_plan_lists_each_file_that_changes_on_a_line_of_its_own() {
        use crate::plan::diff::tests::{change, live_attrs, mirror_in_order, reference_desired};
        let desired = reference_desired();
        let mut live = mirror_in_order(&desired);
        let attrs = live_attrs(&mut live, "bucket_objects.assets");
        let files = attrs.get_mut("files").and_then(Value::as_object_mut).expect("files");
        files.insert("css/site.css".into(), json!("00000000000000000000000000000000"));
        files.remove("js/site.js");
        files.insert("old.txt".into(), json!("11111111111111111111111111111111"));
        let plan = crate::plan::diff::diff("webscale", "us-east-1", desired.clone(), live).expect("a plan");
        let c = change(&plan, "bucket_objects.assets");
        assert_eq!(c.action, crate::plan::Action::Update);
        assert_eq!(c.changed(), ["files"], "only the files");
        let text = crate::ui::plan_text(&plan, false);
        let block: Vec<&str> = text
            .lines()
            .skip_while(|l| !l.contains("bucket_objects.assets"))
            .take_while(|l| !l.is_empty())
            .skip(1)
            .collect();
        let new_css = desired.iter().find(|d| d.address == address()).unwrap().attrs["files"]["css/site.css"].clone();
        let new_js = desired.iter().find(|d| d.address == address()).unwrap().attrs["files"]["js/site.js"].clone();
        assert_eq!(
            block,
            [
                "      ~ files:".to_string(),
                "          - \"old.txt\"      = \"11111111111111111111111111111111\"".to_string(),
                format!("          ~ \"css/site.css\" = \"00000000000000000000000000000000\" -> {new_css}"),
                format!("          + \"js/site.js\"   = {new_js}"),
            ],
            "{text}"
        );
    }

    #[test]
    fn new_header_rules_say_why_every_file_is_uploaded_again() {
        let desired = super::super::attrs(&json!({"files": {"a.css": "1", "index.html": "2"}}));
        let note = BucketObjects.update_note(&desired, &["headers".to_string()]).expect("a note");
        assert!(note.starts_with("every file (2) is uploaded again"), "{note}");
        assert_eq!(BucketObjects.update_note(&desired, &["files".to_string()]), None, "the files' lines say it all");
    }

    /// The reference stack: one `bucket_objects.assets` with the template site's files, the distribution to
    /// invalidate, and the header rules.
    #[test]
    fn the_reference_stack_syncs_the_template_site() {
        let desired = crate::plan::diff::tests::reference_desired();
        let d = desired.iter().find(|d| d.address == address()).expect("bucket_objects.assets");
        let files = d.attrs["files"].as_object().expect("an object");
        let keys: Vec<&str> = files.keys().map(String::as_str).collect();
        assert!(keys.contains(&"index.html") && keys.contains(&"css/site.css"), "{keys:?}");
        assert!(files.values().all(|v| v.as_str().is_some_and(|m| m.len() == 32)), "MD5 hex per file");
        assert_eq!(d.attrs["bucket"], reference(&bucket::address()));
        assert_eq!(d.attrs["distribution"], reference(&distribution()));
        assert_eq!(d.attrs["headers"]["content_types"], json!(CONTENT_TYPES));
    }
}
