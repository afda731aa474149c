//! `bucket_policy.assets`: the assets bucket's policy. It lets exactly one reader in: the stack's CloudFront
//! distribution, named by its ARN (known only once the distribution exists, hence a resource of its own, applied
//! after it), signing through the origin access control.
//!
//! A bucket has one policy: it is the stack's when the bucket is. Read with GetBucketPolicy, one call per bucket of
//! the stack (one), found through the shared listing of `bucket::owned`.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::bucket::{self, OwnedBucket};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx, cloud_id, output_reference, reference};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::Stack;

pub struct BucketPolicy;

pub fn address() -> Address {
    Address::new("bucket_policy", "assets")
}

#[derive(Deserialize)]
struct Attrs {
    bucket: String,
    policy: Value,
}

/// The policy document: CloudFront's service principal may read objects only on behalf of `distribution_arn`
/// (AWS's recommended form for an origin access control). Nothing else: the bucket's owner reaches it through IAM,
/// and the public access blocks keep any grant to everyone out. (No deny of plain HTTP: the emulators the tests run
/// against are reached over http, and every call webscale makes to AWS is HTTPS anyway.)
pub fn document(bucket: &str, distribution_arn: Value) -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CloudFrontReadsThroughOriginAccessControl",
                "Effect": "Allow",
                "Principal": { "Service": "cloudfront.amazonaws.com" },
                "Action": "s3:GetObject",
                "Resource": format!("arn:aws:s3:::{bucket}/*"),
                "Condition": { "StringEquals": { "AWS:SourceArn": distribution_arn } }
            }
        ]
    })
}

#[async_trait]
impl Kind for BucketPolicy {
    fn name(&self) -> &'static str {
        "bucket_policy"
    }

    fn service(&self) -> &'static str {
        "s3"
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[Attr::new("bucket").forces_replacement(), Attr::new("policy")];
        SCHEMA
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let Some(name) = bucket::desired_name(stack) else { return Vec::new() };
        if !stack.static_assets.as_ref().is_some_and(|a| a.cdn) {
            return Vec::new();
        }
        let distribution = Address::new("distribution", "assets");
        let attrs = json!({
            "bucket": reference(&bucket::address()),
            "policy": document(&name, output_reference(&distribution, "arn")),
        });
        vec![Desired::in_home_region(stack, address(), &attrs)]
    }

    /// A bucket's policy: its id is the bucket's, which it must not claim.
    fn owns_id(&self) -> bool {
        false
    }

    fn is_gone(&self, error: &CloudError) -> bool {
        error.is_not_found() || matches!(error.code(), "NoSuchBucket" | "NoSuchBucketPolicy")
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let owned = bucket::owned(ctx).await?;
        let s3 = &ctx.cloud.clients(region)?.s3;
        let mine: Vec<&OwnedBucket> = owned.iter().filter(|b| b.region == region).collect();
        let reads = mine.into_iter().map(|b| async move {
            let got = ctx.limited(s3.get_bucket_policy().bucket(&b.name).send()).await.call("GetBucketPolicy");
            let text = match got {
                Ok(out) => out.policy().unwrap_or_default().to_string(),
                Err(e) if e.code() == "NoSuchBucketPolicy" => return Ok(None),
                Err(e) => return Err(e),
            };
            // A policy that is not JSON cannot be the stack's document: shown as a string, it plans a rewrite.
            let policy = serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text));
            let address = Address::new("bucket_policy", b.address.name());
            let attrs = super::attrs(&json!({ "bucket": cloud_id(&b.name), "policy": policy }));
            Ok::<_, CloudError>(Some(Live::new(address, region, b.name.clone(), attrs)))
        });
        let found = futures::future::try_join_all(reads).await?;
        Ok(found.into_iter().flatten().filter(|l| ctx.only.is_none_or(|o| *o == l.address)).collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        // A policy naming a distribution created a moment ago may be refused until S3 sees the principal.
        cloud.settled(|| put(cloud, op.region, &want)).await?;
        Ok(Created::from(want.bucket.clone()))
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        put(cloud, op.region, &want).await
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let s3 = &cloud.clients(op.region)?.s3;
        s3.delete_bucket_policy().bucket(op.id()?).send().await.call("DeleteBucketPolicy")?;
        Ok(())
    }
}

async fn put(cloud: &Cloud, region: &str, want: &Attrs) -> Result<(), CloudError> {
    let s3 = &cloud.clients(region)?.s3;
    s3.put_bucket_policy().bucket(&want.bucket).policy(want.policy.to_string()).send().await.call("PutBucketPolicy")?;
    Ok(())
}
