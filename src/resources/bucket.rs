//! `bucket.assets`: the private S3 bucket the static assets live in (`[static_assets]`).
//!
//! Private by construction: every public access block on, default encryption (SSE-S3), object ownership enforced
//! (ACLs disabled, which CloudFront's origin access control expects), versioning as the spec says. Its only reader
//! is the stack's CloudFront distribution, through `bucket_policy.assets`.
//!
//! Names are global across all AWS accounts: the spec may give one, else it is `STACK-assets-ACCOUNT`. A name taken
//! by another account is found at plan time (HeadBucket answers 403), before anything is created.
//!
//! Ownership: S3 takes no tags in CreateBucket, so they follow in PutBucketTagging at once. A crash between the two
//! must not leave an orphan: a bucket of the account with the stack's derived name and no tags at all is the
//! stack's (nobody else picks `STACK-assets-ACCOUNT`), and the next apply finishes it as an update.
//!
//! Read: ListBuckets (1000 a page) names every bucket of the account; only those the stack could own (the spec's
//! name, names starting `STACK-assets-`) are asked for their tags and settings: a fixed number of calls however
//! many buckets the account has.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_s3::types::{
    BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete, ObjectIdentifier,
    ObjectOwnership, OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
};
use serde::Deserialize;
use serde_json::json;

use super::tags::{self, TAG_ADDRESS, Tags};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::Stack;

pub struct Bucket;

pub fn address() -> Address {
    Address::new("bucket", "assets")
}

/// SSE-S3: S3's own keys. Unlike SSE-KMS it keeps the ETag the MD5 of the content, which is how the asset sync
/// compares files without downloading them.
const ENCRYPTION: &str = "AES256";
const OWNERSHIP: &str = "BucketOwnerEnforced";

#[derive(Deserialize)]
struct Attrs {
    name: String,
    versioning: bool,
    tags: Tags,
}

/// A bucket the stack owns, as the shared listing found it.
#[derive(Debug, Clone)]
pub struct OwnedBucket {
    pub name: String,
    pub region: String,
    pub address: Address,
    /// Its tags (the `webscale:applied` record included); empty for a bucket claimed by its derived name.
    pub tags: Tags,
}

/// The bucket's name as the spec asks for it (the account, when the spec leaves the name to webscale, comes from
/// `stack.account`).
pub fn desired_name(stack: &Stack) -> Option<String> {
    let assets = stack.static_assets.as_ref()?;
    Some(assets.bucket_name(&stack.name, stack.account.as_deref()))
}

/// The prefix of every name webscale derives for this stack.
fn derived_prefix(stack: &str) -> String {
    format!("{stack}-assets-")
}

/// `NAME.s3.REGION.amazonaws.com`: the origin CloudFront signs requests to.
pub fn regional_domain_name(name: &str, region: &str) -> String {
    format!("{name}.s3.{region}.amazonaws.com")
}

fn outputs(name: &str, region: &str) -> super::Attrs {
    super::attrs(&json!({
        "name": name,
        "arn": format!("arn:aws:s3:::{name}"),
        "regional_domain_name": regional_domain_name(name, region),
    }))
}

/// Every bucket of the account the stack owns (in any region), listed once per plan for every kind that lives in
/// a bucket (the bucket itself, its policy, its objects).
pub async fn owned(ctx: &ReadCtx<'_>) -> Result<Arc<Vec<OwnedBucket>>, CloudError> {
    ctx.shared("s3:owned-buckets", || async {
        let home = ctx.cloud.home_region();
        let s3 = &ctx.cloud.clients(home)?.s3;
        let stack = ctx.cloud.stack();
        let wanted = desired_name(ctx.stack);
        let prefix = derived_prefix(stack);
        // The wanted name when webscale derived it (none the spec gives is claimed without the stack's tags).
        let derived = wanted.clone().filter(|_| ctx.stack.static_assets.as_ref().is_some_and(|a| a.bucket.is_none()));
        let listed = s3
            .list_buckets()
            .max_buckets(1000)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .call("ListBuckets")?;
        let candidates: Vec<(String, Option<String>)> = listed
            .iter()
            .filter_map(|b| Some((b.name()?.to_string(), b.bucket_region().map(str::to_string))))
            .filter(|(name, _)| Some(name) == wanted.as_ref() || name.starts_with(&prefix))
            .collect();
        let derived = derived.as_deref();
        let found = futures::future::try_join_all(candidates.into_iter().map(|(name, region)| {
            async move {
                let tags = ctx.limited(bucket_tags(s3, &name)).await?;
                let owned_by_tag = tags::owned_by(&tags, stack);
                // An interrupted create: the derived name, no tags yet.
                let unfinished = tags.is_empty() && derived == Some(name.as_str());
                if !owned_by_tag && !unfinished {
                    return Ok(None);
                }
                let region = match region {
                    Some(r) => r,
                    None => ctx.limited(location(s3, &name)).await?,
                };
                let address = if owned_by_tag {
                    tags::owned_address(tags.get(TAG_ADDRESS).map(String::as_str), "bucket", &name)
                } else {
                    address()
                };
                Ok::<_, CloudError>(Some(OwnedBucket { name, region, address, tags }))
            }
        }))
        .await?;
        Ok(found.into_iter().flatten().collect())
    })
    .await
}

/// A bucket's tags; none at all is S3's `NoSuchTagSet`.
async fn bucket_tags(s3: &aws_sdk_s3::Client, name: &str) -> Result<Tags, CloudError> {
    match s3.get_bucket_tagging().bucket(name).send().await.call("GetBucketTagging") {
        Ok(out) => Ok(out.tag_set().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect()),
        Err(e) if e.code() == "NoSuchTagSet" => Ok(Tags::new()),
        Err(e) => Err(e),
    }
}

/// A bucket's region, for emulators whose ListBuckets leaves it out (S3 says `null` for us-east-1).
async fn location(s3: &aws_sdk_s3::Client, name: &str) -> Result<String, CloudError> {
    let out = s3.get_bucket_location().bucket(name).send().await.call("GetBucketLocation")?;
    Ok(out
        .location_constraint()
        .map(|c| c.as_str().to_string())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "us-east-1".into()))
}

/// The client of the region the bucket lives in.
fn s3<'a>(cloud: &'a Cloud, region: &str) -> Result<&'a aws_sdk_s3::Client, CloudError> {
    Ok(&cloud.clients(region)?.s3)
}

#[async_trait]
impl Kind for Bucket {
    fn name(&self) -> &'static str {
        "bucket"
    }

    fn service(&self) -> &'static str {
        "s3"
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            Attr::new("name").forces_replacement(),
            Attr::new("versioning"),
            Attr::new("encryption"),
            Attr::new("public_access_block"),
            Attr::new("object_ownership"),
            Attr::new("tags"),
        ];
        SCHEMA
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let (Some(assets), Some(name)) = (stack.static_assets.as_ref(), desired_name(stack)) else { return Vec::new() };
        let address = address();
        let attrs = json!({
            "name": name,
            "versioning": assets.versioning,
            "encryption": ENCRYPTION,
            "public_access_block": true,
            "object_ownership": OWNERSHIP,
            "tags": tags::desired(stack, &address),
        });
        vec![Desired::in_home_region(stack, address, &attrs)]
    }

    fn is_gone(&self, error: &CloudError) -> bool {
        error.is_not_found() || error.code() == "NoSuchBucket"
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let owned = owned(ctx).await?;
        let mine: Vec<&OwnedBucket> =
            owned.iter().filter(|b| b.region == region).filter(|b| ctx.only.is_none_or(|o| *o == b.address)).collect();
        let s3 = s3(ctx.cloud, region)?;
        let reads = mine.into_iter().map(|b| async move {
            let (versioning, encryption, block, ownership) = futures::future::try_join4(
                ctx.limited(async {
                    Ok::<_, CloudError>(versioning(s3, &b.name).await? == Some(BucketVersioningStatus::Enabled))
                }),
                ctx.limited(encryption(s3, &b.name)),
                ctx.limited(public_access_block(s3, &b.name)),
                ctx.limited(ownership(s3, &b.name)),
            )
            .await?;
            let attrs = super::attrs(&json!({
                "name": b.name,
                "versioning": versioning,
                "encryption": encryption,
                "public_access_block": block,
                "object_ownership": ownership,
                "tags": tags::live(b.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            }));
            let mut live = Live::new(b.address.clone(), region, b.name.clone(), attrs);
            live.outputs = outputs(&b.name, region);
            Ok::<_, CloudError>(live)
        });
        futures::future::try_join_all(reads).await
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let s3 = s3(cloud, op.region)?;
        let mut create = s3.create_bucket().bucket(&want.name).object_ownership(ObjectOwnership::BucketOwnerEnforced);
        // us-east-1 is S3's default location and refuses to be named as a constraint.
        if op.region != "us-east-1" {
            create = create.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(op.region))
                    .build(),
            );
        }
        match create.send().await.call("CreateBucket") {
            Ok(_) => {}
            // A repeat of this create (its answer was lost): the bucket is ours; the settings below finish it.
            Err(e) if e.code() == "BucketAlreadyOwnedByYou" => {}
            Err(mut e) if e.code() == "BucketAlreadyExists" => {
                e.message = format!(
                    "the bucket name {} is taken by another AWS account (bucket names are global): set [static_assets] bucket to a name of your own",
                    want.name
                );
                return Err(e);
            }
            Err(e) => return Err(e),
        }
        // Tags first: from here on the bucket is the stack's whatever fails next.
        cloud.settled(|| put_tags(s3, &want.name, &want.tags)).await?;
        cloud.settled(|| make_private(s3, &want.name)).await?;
        // A new bucket is unversioned: only turning versioning on is a call.
        if want.versioning {
            put_versioning(s3, &want.name, true).await?;
        }
        Ok(Created { id: want.name.clone(), outputs: outputs(&want.name, op.region) })
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let s3 = s3(cloud, op.region)?;
        let name = op.id()?;
        if op.changed("tags") {
            put_tags(s3, name, &want.tags).await?;
        }
        if op.changed("encryption") || op.changed("public_access_block") || op.changed("object_ownership") {
            make_private(s3, name).await?;
        }
        if op.changed("versioning") {
            put_versioning(s3, name, want.versioning).await?;
        }
        Ok(())
    }

    /// Empties the bucket (every version and delete marker, 1000 a call), then deletes it: S3 deletes only an
    /// empty bucket. What is in it is a copy of the local folder, so nothing is lost that the spec cannot restore.
    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let s3 = s3(cloud, op.region)?;
        let name = op.id()?;
        empty(s3, name).await?;
        s3.delete_bucket().bucket(name).send().await.call("DeleteBucket")?;
        Ok(())
    }

    /// Before a create: a bucket of that name that the stack does not own. Another account's (HeadBucket: 403)
    /// cannot be had at all; one of this account not tagged for the stack is adopted only by `webscale import`.
    async fn occupied(&self, ctx: &ReadCtx<'_>, desired: &Desired) -> Result<Vec<String>, CloudError> {
        let Some(name) = desired.attrs.get("name").and_then(|v| v.as_str()) else { return Ok(Vec::new()) };
        let s3 = s3(ctx.cloud, &desired.region)?;
        match s3.head_bucket().bucket(name).send().await {
            Ok(_) => Ok(vec![format!(
                "S3 bucket {name} exists in this account but is not stack {}'s: adopt it with `webscale import {} {name}`, or set [static_assets] bucket to another name",
                ctx.cloud.stack(),
                desired.address
            )]),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                match status {
                    Some(404) => Ok(Vec::new()),
                    Some(403) => Ok(vec![format!(
                        "the S3 bucket name {name} is taken by another AWS account (bucket names are global): set [static_assets] bucket to a name of your own"
                    )]),
                    _ => Err(Err::<(), _>(e).call("HeadBucket").unwrap_err()),
                }
            }
        }
    }

    async fn adopt(&self, cloud: &Cloud, region: &str, id: &str, tags: &Tags) -> Result<(), CloudError> {
        let s3 = s3(cloud, region)?;
        let mut have = bucket_tags(s3, id).await?;
        if let Some(owner) = have.get(tags::TAG_STACK).filter(|s| Some(*s) != tags.get(tags::TAG_STACK)) {
            return Err(CloudError::internal(format!("bucket {id} belongs to stack {owner}: not imported")));
        }
        have.extend(tags.clone());
        put_tags(s3, id, &have).await
    }
}

/// The bucket's versioning status; `None` for a bucket never versioned. moto answers such a bucket with an empty
/// `GetBucketVersioningResponse` element instead of S3's empty `VersioningConfiguration`, which the SDK cannot parse:
/// that answer means the same.
async fn versioning(s3: &aws_sdk_s3::Client, name: &str) -> Result<Option<BucketVersioningStatus>, CloudError> {
    match s3.get_bucket_versioning().bucket(name).send().await.call("GetBucketVersioning") {
        Ok(out) => Ok(out.status().cloned()),
        Err(e) if e.code.is_none() && e.message.contains("GetBucketVersioningResponse") => Ok(None),
        Err(e) => Err(e),
    }
}

async fn encryption(s3: &aws_sdk_s3::Client, name: &str) -> Result<String, CloudError> {
    match s3.get_bucket_encryption().bucket(name).send().await.call("GetBucketEncryption") {
        Ok(out) => Ok(out
            .server_side_encryption_configuration()
            .and_then(|c| c.rules().first())
            .and_then(|r| r.apply_server_side_encryption_by_default())
            .map(|d| d.sse_algorithm().as_str().to_string())
            .unwrap_or_default()),
        Err(e) if e.code() == "ServerSideEncryptionConfigurationNotFoundError" => Ok(String::new()),
        Err(e) => Err(e),
    }
}

/// Whether all four public access blocks are on.
async fn public_access_block(s3: &aws_sdk_s3::Client, name: &str) -> Result<bool, CloudError> {
    match s3.get_public_access_block().bucket(name).send().await.call("GetPublicAccessBlock") {
        Ok(out) => Ok(out.public_access_block_configuration().is_some_and(|c| {
            [c.block_public_acls(), c.ignore_public_acls(), c.block_public_policy(), c.restrict_public_buckets()]
                .iter()
                .all(|b| *b == Some(true))
        })),
        Err(e) if e.code() == "NoSuchPublicAccessBlockConfiguration" => Ok(false),
        Err(e) => Err(e),
    }
}

async fn ownership(s3: &aws_sdk_s3::Client, name: &str) -> Result<String, CloudError> {
    match s3.get_bucket_ownership_controls().bucket(name).send().await.call("GetBucketOwnershipControls") {
        Ok(out) => Ok(out
            .ownership_controls()
            .and_then(|c| c.rules().first())
            .map(|r| r.object_ownership().as_str().to_string())
            .unwrap_or_default()),
        Err(e) if e.code() == "OwnershipControlsNotFoundError" => Ok(String::new()),
        Err(e) => Err(e),
    }
}

async fn put_tags(s3: &aws_sdk_s3::Client, name: &str, want: &Tags) -> Result<(), CloudError> {
    let set: Vec<Tag> = want.iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect();
    let tagging = Tagging::builder().set_tag_set(Some(set)).build().map_err(|e| CloudError::internal(e.to_string()))?;
    s3.put_bucket_tagging().bucket(name).tagging(tagging).send().await.call("PutBucketTagging")?;
    Ok(())
}

/// Every public access block on, SSE-S3 by default, ACLs disabled.
async fn make_private(s3: &aws_sdk_s3::Client, name: &str) -> Result<(), CloudError> {
    s3.put_public_access_block()
        .bucket(name)
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_acls(true)
                .ignore_public_acls(true)
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .call("PutPublicAccessBlock")?;
    let default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::Aes256)
        .build()
        .map_err(|e| CloudError::internal(e.to_string()))?;
    let config = ServerSideEncryptionConfiguration::builder()
        .rules(ServerSideEncryptionRule::builder().apply_server_side_encryption_by_default(default).build())
        .build()
        .map_err(|e| CloudError::internal(e.to_string()))?;
    s3.put_bucket_encryption()
        .bucket(name)
        .server_side_encryption_configuration(config)
        .send()
        .await
        .call("PutBucketEncryption")?;
    let controls = OwnershipControls::builder()
        .rules(
            OwnershipControlsRule::builder()
                .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                .build()
                .map_err(|e| CloudError::internal(e.to_string()))?,
        )
        .build()
        .map_err(|e| CloudError::internal(e.to_string()))?;
    s3.put_bucket_ownership_controls()
        .bucket(name)
        .ownership_controls(controls)
        .send()
        .await
        .call("PutBucketOwnershipControls")?;
    Ok(())
}

/// Versioning cannot be turned off once on, only suspended (old versions stay).
async fn put_versioning(s3: &aws_sdk_s3::Client, name: &str, on: bool) -> Result<(), CloudError> {
    let status = if on { BucketVersioningStatus::Enabled } else { BucketVersioningStatus::Suspended };
    // Never enabled: nothing to suspend (a fresh bucket reads as unversioned already).
    if !on && versioning(s3, name).await?.is_none() {
        return Ok(());
    }
    s3.put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(aws_sdk_s3::types::VersioningConfiguration::builder().status(status).build())
        .send()
        .await
        .call("PutBucketVersioning")?;
    Ok(())
}

/// Deletes every object version and delete marker, 1000 a call. ListObjectVersions has no SDK paginator: its
/// pages continue from a key marker and a version marker.
async fn empty(s3: &aws_sdk_s3::Client, name: &str) -> Result<(), CloudError> {
    let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(name)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .call("ListObjectVersions");
        let page = match page {
            Err(e) if e.code() == "NoSuchBucket" => return Ok(()),
            other => other?,
        };
        let ids: Vec<ObjectIdentifier> = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(page.delete_markers().iter().map(|m| (m.key(), m.version_id())))
            .filter_map(|(key, version)| {
                ObjectIdentifier::builder()
                    .set_key(key.map(str::to_string))
                    .set_version_id(version.map(str::to_string))
                    .build()
                    .ok()
            })
            .collect();
        for batch in ids.chunks(1000) {
            let delete = Delete::builder()
                .set_objects(Some(batch.to_vec()))
                .quiet(true)
                .build()
                .map_err(|e| CloudError::internal(e.to_string()))?;
            let out = s3.delete_objects().bucket(name).delete(delete).send().await.call("DeleteObjects")?;
            if let Some(err) = out.errors().first() {
                return Err(CloudError {
                    operation: "DeleteObjects".into(),
                    code: err.code().map(str::to_string),
                    message: format!("{}: {}", err.key().unwrap_or("?"), err.message().unwrap_or("")),
                });
            }
        }
        if page.is_truncated() != Some(true) {
            return Ok(());
        }
        key_marker = page.next_key_marker().map(str::to_string);
        version_marker = page.next_version_id_marker().map(str::to_string);
    }
}
