//! `distribution.assets`: the CloudFront distribution in front of the assets bucket (`[static_assets]`, unless
//! `cdn = false`). One origin, the bucket, reached through `origin_access_control.assets`; one default cache
//! behaviour: HTTPS (plain HTTP redirected), compression, AWS's managed CachingOptimized policy.
//!
//! Ownership: tags, written in the create call (CreateDistributionWithTags), decide. The Comment carries the
//! ownership pair as well (`webscale:stack=STACK webscale:address=ADDRESS`): ListDistributions returns it, so the
//! read asks for tags only of the distributions whose comment names the stack, not of every distribution of the
//! account. A repeated create is safe: its CallerReference is the create's token, and CloudFront answers a second
//! CreateDistribution with the same one with `DistributionAlreadyExists` instead of making another distribution; the
//! engine then finds the first one by its tags.
//!
//! CloudFront's rules, which the emulator does not enforce (covered by tests/mocked/cloudfront.rs):
//! - every change sends the ETag of the configuration it is based on (IfMatch); the configuration sent replaces the
//!   whole of it, so an update reads it (GetDistributionConfig), changes only the fields webscale manages and sends
//!   back the rest as AWS returned it. Someone else's change in between (PreconditionFailed): read again, once;
//! - only a disabled, deployed distribution can be deleted, with the ETag of its disabled configuration: the delete
//!   disables it, the delete's wait waits for `Deployed` (no apply slot held) and then deletes.
//!
//! Deployments take 5-20 minutes on AWS. A distribution deploying (`InProgress`) is not drift and not `pending`:
//! nothing of the stack has to wait for it (the bucket policy needs only its ARN). Apply does not wait for it either,
//! unless `--wait` or `[static_assets] wait = true`: it leaves a note saying the distribution is still deploying, and
//! the status is the `status` output.
//!
//! Read: ListDistributions (one call per page), then per distribution whose comment names the stack one
//! ListTagsForResource, and per distribution the stack owns one GetDistributionConfig (the default root object is
//! not in the listing): a fixed number of calls however many distributions the account has.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_cloudfront::types::{
    Aliases, DefaultCacheBehavior, DistributionConfig, DistributionConfigWithTags, DistributionSummary, HttpVersion,
    MinimumProtocolVersion, Origin, Origins, PriceClass, S3OriginConfig, SslSupportMethod, Tag, TagKeys,
    Tags as CfTags, ViewerCertificate, ViewerProtocolPolicy,
};
use serde::Deserialize;
use serde_json::json;

use super::origin_access_control::{self as oac, client, marker, parse_marker};
use super::tags::{self, TAG_ADDRESS, TAG_STACK, Tags};
use super::{
    Address, Attr, Attrs as AttrMap, Created, Desired, GLOBAL, Kind, Live, Op, Progress, ReadCtx, Scope, Timeouts,
    bucket, cloud_id, output_reference, reference,
};
use crate::apply::Phase;
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::Stack;

pub struct Distribution;

pub fn address() -> Address {
    Address::new("distribution", "assets")
}

/// AWS's managed cache policy "CachingOptimized": long TTLs, gzip and brotli, no cookies, headers or query strings
/// in the cache key. Its id is the same in every account.
pub const CACHING_OPTIMIZED: &str = "658327ea-f89d-4fab-a63d-7e88639e58f6";

/// The origin's id inside the distribution: the bucket's address.
const ORIGIN_ID: &str = "bucket.assets";

const DEPLOYED: &str = "Deployed";

/// How often a wait looks at the distribution: the SDK's DistributionDeployed waiter polls every 60 s at first
/// (then backs off to 35 minutes between polls, saying nothing meanwhile); one look a minute keeps the progress
/// line current at the same cost.
const POLL: Duration = Duration::from_secs(60);
/// After an answer saying the distribution changed since it was looked at: a short pause before the next look.
const RELOOK: Duration = Duration::from_secs(5);

#[derive(Deserialize)]
struct Attrs {
    origin_domain: String,
    origin_access_control: String,
    enabled: bool,
    default_root_object: String,
    price_class: String,
    viewer_protocol_policy: String,
    compress: bool,
    cache_policy: String,
    http_version: String,
    ipv6: bool,
    comment: String,
    aliases: Vec<String>,
    /// The ACM certificate's ARN (us-east-1) for the aliases; `None`: CloudFront's own (`*.cloudfront.net`).
    certificate: Option<String>,
    tags: Tags,
}

/// Every distribution of the account (summaries), listed once per plan for every kind that needs it.
pub(super) async fn all(ctx: &ReadCtx<'_>) -> Result<Arc<Vec<DistributionSummary>>, CloudError> {
    ctx.shared("cloudfront:distributions", || async {
        client(ctx.cloud)?
            .list_distributions()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .call("ListDistributions")
    })
    .await
}

fn built<T>(what: &str, r: Result<T, aws_smithy_types::error::operation::BuildError>) -> Result<T, CloudError> {
    r.map_err(|e| CloudError::internal(format!("{what}: {e}")))
}

/// Brings the fields webscale manages to `want`, leaving every other field of `config` as it is (what AWS returned,
/// on an update): the origin webscale put there (added if missing, other origins kept), the default cache behaviour's
/// protocol policy, compression and cache policy, and the distribution-wide settings of the spec.
fn manage(config: &mut DistributionConfig, want: &Attrs) -> Result<(), CloudError> {
    config.comment = want.comment.clone();
    config.enabled = want.enabled;
    config.default_root_object = Some(want.default_root_object.clone());
    config.price_class = Some(PriceClass::from(want.price_class.as_str()));
    config.http_version = Some(HttpVersion::from(want.http_version.as_str()));
    config.is_ipv6_enabled = Some(want.ipv6);
    config.aliases = Some(built(
        "aliases",
        Aliases::builder().quantity(want.aliases.len() as i32).set_items(Some(want.aliases.clone())).build(),
    )?);
    config.viewer_certificate = Some(match &want.certificate {
        // SNI: every browser of the last decade; a dedicated IP per edge costs $600 a month.
        Some(arn) => ViewerCertificate::builder()
            .acm_certificate_arn(arn)
            .ssl_support_method(SslSupportMethod::SniOnly)
            .minimum_protocol_version(MinimumProtocolVersion::TlSv122021)
            .build(),
        None => ViewerCertificate::builder().cloud_front_default_certificate(true).build(),
    });

    let none = built("origins", Origins::builder().quantity(0).set_items(Some(Vec::new())).build())?;
    let origins = config.origins.get_or_insert(none);
    if !origins.items.iter().any(|o| o.id == ORIGIN_ID) {
        origins.items.push(built("origin", Origin::builder().id(ORIGIN_ID).domain_name(&want.origin_domain).build())?);
    }
    origins.quantity = origins.items.len() as i32;
    for origin in origins.items.iter_mut().filter(|o| o.id == ORIGIN_ID) {
        origin.domain_name = want.origin_domain.clone();
        origin.origin_access_control_id = Some(want.origin_access_control.clone());
        // Through an OAC, not a legacy origin access identity (CloudFront wants the identity empty then).
        let s3 = origin.s3_origin_config.get_or_insert_with(|| S3OriginConfig::builder().build());
        s3.origin_access_identity = String::new();
        origin.custom_origin_config = None;
    }

    let behaviour = match config.default_cache_behavior.take() {
        Some(b) => b,
        None => built(
            "default cache behaviour",
            DefaultCacheBehavior::builder()
                .target_origin_id(ORIGIN_ID)
                .viewer_protocol_policy(ViewerProtocolPolicy::from(want.viewer_protocol_policy.as_str()))
                .build(),
        )?,
    };
    let mut behaviour = behaviour;
    behaviour.target_origin_id = ORIGIN_ID.to_string();
    behaviour.viewer_protocol_policy = ViewerProtocolPolicy::from(want.viewer_protocol_policy.as_str());
    behaviour.compress = Some(want.compress);
    behaviour.cache_policy_id = Some(want.cache_policy.clone());
    // A cache policy excludes the legacy cache settings: CloudFront refuses both at once. (The SDK marks them
    // deprecated, which is the point: they are cleared, never set.)
    #[allow(deprecated)]
    clear_legacy(&mut behaviour);
    config.default_cache_behavior = Some(behaviour);
    Ok(())
}

#[allow(deprecated)]
fn clear_legacy(behaviour: &mut DefaultCacheBehavior) {
    behaviour.forwarded_values = None;
    behaviour.min_ttl = None;
    behaviour.default_ttl = None;
    behaviour.max_ttl = None;
}

/// A new distribution's configuration: the managed fields (the certificate among them).
fn new_config(want: &Attrs, caller_reference: String) -> Result<DistributionConfig, CloudError> {
    let mut config = built(
        "distribution config",
        DistributionConfig::builder()
            .caller_reference(caller_reference)
            .comment(&want.comment)
            .enabled(want.enabled)
            .viewer_certificate(ViewerCertificate::builder().cloud_front_default_certificate(true).build())
            .build(),
    )?;
    manage(&mut config, want)?;
    Ok(config)
}

fn cf_tags(tags: &Tags) -> Result<CfTags, CloudError> {
    let items = tags
        .iter()
        .map(|(k, v)| built("tag", Tag::builder().key(k).value(v).build()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CfTags::builder().set_items(Some(items)).build())
}

/// The origin the default cache behaviour serves from (what the distribution serves), else the first one.
fn served_origin(config: &DistributionConfig) -> Option<&Origin> {
    let origins = config.origins.as_ref()?;
    let target = config.default_cache_behavior.as_ref().map(|b| b.target_origin_id.as_str());
    origins.items.iter().find(|o| Some(o.id.as_str()) == target).or(origins.items.first())
}

/// The tag recording the OAC webscale last put on the origin, for endpoints that do not report it (see
/// [`live_attrs`]); never part of the `tags` attribute.
const OAC_TAG: &str = "webscale:origin-access-control";

/// The tags a create or update writes: the spec's, and the OAC the origin is given ([`OAC_TAG`]).
fn written_tags(want: &Attrs) -> Tags {
    let mut tags = want.tags.clone();
    tags.insert(OAC_TAG.to_string(), want.origin_access_control.clone());
    tags
}

/// A live configuration in the attributes' terms. CloudFront reports an origin's OAC always, as an empty
/// `OriginAccessControlId` when it has none (which reads as none: drift, if the spec wants one). An endpoint that
/// leaves the element out entirely does not know OACs (moto drops it): there the OAC recorded at the last apply
/// ([`OAC_TAG`]) stands in, rather than a change planned on every run that no apply can make.
fn live_attrs(config: &DistributionConfig, mut tags: Tags) -> AttrMap {
    let origin = served_origin(config);
    let behaviour = config.default_cache_behavior.as_ref();
    let recorded = tags.remove(OAC_TAG);
    let oac_id = match origin.map(|o| o.origin_access_control_id.as_deref()) {
        Some(Some(id)) => Some(id.to_string()),
        Some(None) => recorded,
        None => None,
    }
    .filter(|id| !id.is_empty());
    super::attrs(&json!({
        "origin_domain": origin.map(|o| o.domain_name.as_str()),
        "origin_access_control": oac_id.map(cloud_id),
        "enabled": config.enabled,
        "default_root_object": config.default_root_object.as_deref().unwrap_or_default(),
        "price_class": config.price_class.as_ref().map_or("PriceClass_All", |p| p.as_str()),
        "viewer_protocol_policy": behaviour.map(|b| b.viewer_protocol_policy.as_str()),
        "compress": behaviour.and_then(|b| b.compress).unwrap_or(false),
        "cache_policy": behaviour.and_then(|b| b.cache_policy_id.as_deref()),
        "http_version": config.http_version.as_ref().map_or("http2", |h| h.as_str()),
        "ipv6": config.is_ipv6_enabled.unwrap_or(false),
        "comment": config.comment,
        "aliases": config.aliases.as_ref().map(|a| a.items.clone()).unwrap_or_default(),
        // An empty ARN (moto, with CloudFront's own certificate) is no certificate.
        "certificate": config.viewer_certificate.as_ref().and_then(|v| v.acm_certificate_arn.as_deref()).filter(|a| !a.is_empty()),
        "tags": tags,
    }))
}

fn outputs(id: &str, arn: &str, domain_name: &str, status: &str) -> AttrMap {
    super::attrs(&json!({ "id": id, "arn": arn, "domain_name": domain_name, "status": status }))
}

/// Someone changed the distribution between our read of its ETag and our change.
fn stale(e: &CloudError) -> bool {
    e.code() == "PreconditionFailed"
}

fn gone(e: &CloudError) -> bool {
    e.is_not_found() || e.code() == "NoSuchDistribution"
}

/// The configuration now and the ETag a change of it must send.
async fn config_of(cf: &aws_sdk_cloudfront::Client, id: &str) -> Result<(DistributionConfig, String), CloudError> {
    let out = cf.get_distribution_config().id(id).send().await.call("GetDistributionConfig")?;
    let etag = out
        .e_tag()
        .map(str::to_string)
        .ok_or_else(|| CloudError::internal("GetDistributionConfig returned no ETag"))?;
    let config = out
        .distribution_config
        .ok_or_else(|| CloudError::internal("GetDistributionConfig returned no configuration"))?;
    Ok((config, etag))
}

/// Reads the configuration, edits it, and sends it back with the ETag it came with (nothing is sent when the edit
/// changes nothing). When someone else changed it in between (PreconditionFailed), reads it again and tries once
/// more. Returns the distribution's ARN when a change was sent.
async fn change(
    cf: &aws_sdk_cloudfront::Client,
    id: &str,
    edit: impl Fn(&mut DistributionConfig) -> Result<(), CloudError>,
) -> Result<Option<String>, CloudError> {
    let mut retried = false;
    loop {
        let (config, etag) = config_of(cf, id).await?;
        let mut changed = config.clone();
        edit(&mut changed)?;
        if changed == config {
            return Ok(None);
        }
        let sent = cf
            .update_distribution()
            .id(id)
            .if_match(etag)
            .distribution_config(changed)
            .send()
            .await
            .call("UpdateDistribution");
        match sent {
            Err(e) if stale(&e) && !retried => retried = true,
            Err(e) => return Err(e),
            Ok(out) => return Ok(out.distribution().map(|d| d.arn().to_string())),
        }
    }
}

/// Turns the distribution off (CloudFront deletes only a disabled one).
async fn disable(cf: &aws_sdk_cloudfront::Client, id: &str) -> Result<(), CloudError> {
    change(cf, id, |c| {
        c.enabled = false;
        Ok(())
    })
    .await
    .map(|_| ())
}

/// Looks until CloudFront says `Deployed`, reporting its status.
async fn until_deployed(cf: &aws_sdk_cloudfront::Client, id: &str, progress: &Progress) -> Result<(), CloudError> {
    loop {
        let out = cf.get_distribution().id(id).send().await.call("GetDistribution")?;
        let status = out.distribution().map_or("InProgress", |d| d.status());
        progress.set(status);
        if status == DEPLOYED {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The second half of a delete: wait until the disabled configuration is deployed, then delete with its ETag (the
/// one GetDistribution returns now, not the one the disable was sent with). Whatever happened in between is looked
/// at again rather than assumed: re-enabled by someone (DistributionNotDisabled) -> disable again; changed
/// (PreconditionFailed) -> read the new ETag; already gone -> done.
async fn delete_when_deployed(
    cf: &aws_sdk_cloudfront::Client,
    id: &str,
    progress: &Progress,
) -> Result<(), CloudError> {
    loop {
        let out = match cf.get_distribution().id(id).send().await.call("GetDistribution") {
            Err(e) if gone(&e) => return Ok(()),
            other => other?,
        };
        let Some(d) = out.distribution() else { return Ok(()) };
        if d.distribution_config().is_some_and(|c| c.enabled) {
            progress.set("disabling");
            disable(cf, id).await?;
            tokio::time::sleep(POLL).await;
            continue;
        }
        progress.set(d.status());
        if d.status() != DEPLOYED {
            tokio::time::sleep(POLL).await;
            continue;
        }
        let etag = out.e_tag().unwrap_or_default().to_string();
        match cf.delete_distribution().id(id).if_match(etag).send().await.call("DeleteDistribution") {
            Ok(_) => {
                progress.set("deleted");
                return Ok(());
            }
            Err(e) if gone(&e) => return Ok(()),
            // Changed since the look (or CloudFront's view of it lags behind): look again, not at once.
            Err(e) if e.code() == "DistributionNotDisabled" || stale(&e) => {
                tracing::debug!(error = %e, "distribution changed since it was looked at; looking again");
                tokio::time::sleep(if stale(&e) { RELOOK } else { POLL }).await;
            }
            Err(e) => return Err(e),
        }
    }
}

#[async_trait]
impl Kind for Distribution {
    fn name(&self) -> &'static str {
        "distribution"
    }

    fn service(&self) -> &'static str {
        "cloudfront"
    }

    fn scope(&self) -> Scope {
        Scope::Global
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            Attr::new("origin_domain"),
            Attr::new("origin_access_control"),
            Attr::new("enabled"),
            Attr::new("default_root_object"),
            Attr::new("price_class"),
            Attr::new("viewer_protocol_policy"),
            Attr::new("compress"),
            Attr::new("cache_policy"),
            Attr::new("http_version"),
            Attr::new("ipv6"),
            Attr::new("comment"),
            Attr::new("aliases"),
            Attr::new("certificate"),
            Attr::new("tags"),
        ];
        SCHEMA
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let Some(assets) = stack.static_assets.as_ref().filter(|a| a.cdn) else { return Vec::new() };
        let address = address();
        let attrs = json!({
            "origin_domain": output_reference(&bucket::address(), "regional_domain_name"),
            "origin_access_control": reference(&oac::address()),
            "enabled": true,
            "default_root_object": assets.default_root_object,
            "price_class": assets.price_class,
            "viewer_protocol_policy": "redirect-to-https",
            "compress": true,
            "cache_policy": CACHING_OPTIMIZED,
            "http_version": "http2and3",
            "ipv6": true,
            "comment": marker(&stack.name, &address),
            "aliases": assets.aliases,
            "certificate": if assets.aliases.is_empty() {
                serde_json::Value::Null
            } else {
                output_reference(&super::certificate::address(), "arn")
            },
            "tags": tags::desired(stack, &address),
        });
        let mut desired = Desired::new(GLOBAL, address, &attrs);
        desired.wait = assets.wait;
        vec![desired]
    }

    /// A deployment takes 5-20 minutes, a disable before a delete as long again.
    fn timeouts(&self) -> Timeouts {
        Timeouts::minutes(40, 40, 60)
    }

    fn is_gone(&self, error: &CloudError) -> bool {
        gone(error)
    }

    async fn read(&self, ctx: &ReadCtx<'_>, _region: &str) -> Result<Vec<Live>, CloudError> {
        let stack = ctx.cloud.stack();
        let cf = client(ctx.cloud)?;
        let listed = all(ctx).await?;
        // The comment narrows the account's distributions to the stack's candidates; their tags decide.
        let candidates = listed.iter().filter(|d| parse_marker(d.comment()).is_some_and(|(s, _)| s == stack));
        let reads = candidates.map(|d| async move {
            let out =
                ctx.limited(cf.list_tags_for_resource().resource(d.arn()).send()).await.call("ListTagsForResource")?;
            let pairs = out.tags().map(|t| t.items()).unwrap_or_default();
            let tags = tags::live(pairs.iter().map(|t| (t.key(), t.value().unwrap_or_default())));
            if !tags::owned_by(&tags, stack) {
                return Ok(None);
            }
            let address = tags::owned_address(tags.get(TAG_ADDRESS).map(String::as_str), self.name(), d.id());
            if ctx.only.is_some_and(|a| *a != address) {
                return Ok(None);
            }
            let (config, _) = ctx.limited(config_of(cf, d.id())).await?;
            let mut live = Live::new(address, GLOBAL, d.id(), live_attrs(&config, tags));
            // Deploying is reported, never `pending`: nothing has to wait for it, and it is no drift.
            live.outputs = outputs(d.id(), d.arn(), d.domain_name(), d.status());
            Ok::<_, CloudError>(Some(live))
        });
        Ok(futures::future::try_join_all(reads).await?.into_iter().flatten().collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let cf = client(cloud)?;
        // The create's token: a repeat of this create answers DistributionAlreadyExists rather than making a second
        // distribution (the engine then finds the first by its tags, which this same call wrote).
        let config = new_config(&want, op.client_token(128))?;
        let with_tags = DistributionConfigWithTags::builder()
            .distribution_config(config)
            .tags(cf_tags(&written_tags(&want))?)
            .build();
        let out = cf
            .create_distribution_with_tags()
            .distribution_config_with_tags(with_tags)
            .send()
            .await
            .call("CreateDistributionWithTags")?;
        let d = out
            .distribution()
            .ok_or_else(|| CloudError::internal("CreateDistributionWithTags returned no distribution"))?;
        Ok(Created { id: d.id().to_string(), outputs: outputs(d.id(), d.arn(), d.domain_name(), d.status()) })
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let cf = client(cloud)?;
        let id = op.id()?;
        let arn = change(cf, id, |c| manage(c, &want)).await?;
        if op.changed("tags") {
            let arn = match arn {
                Some(arn) => arn,
                None => {
                    let out = cf.get_distribution().id(id).send().await.call("GetDistribution")?;
                    out.distribution().map(|d| d.arn().to_string()).unwrap_or_default()
                }
            };
            let have: Tags = op
                .live
                .as_ref()
                .and_then(|l| l.get("tags"))
                .and_then(|t| serde_json::from_value(t.clone()).ok())
                .unwrap_or_default();
            // The ownership pair is never removed: without it the distribution would be nobody's.
            let stale: Vec<String> = have
                .keys()
                .filter(|k| !want.tags.contains_key(*k) && *k != TAG_STACK && *k != TAG_ADDRESS)
                .cloned()
                .collect();
            if !stale.is_empty() {
                cf.untag_resource()
                    .resource(&arn)
                    .tag_keys(TagKeys::builder().set_items(Some(stale)).build())
                    .send()
                    .await
                    .call("UntagResource")?;
            }
            let changed: Tags = written_tags(&want).into_iter().filter(|(k, v)| have.get(k) != Some(v)).collect();
            if !changed.is_empty() {
                cf.tag_resource().resource(&arn).tags(cf_tags(&changed)?).send().await.call("TagResource")?;
            }
        }
        Ok(())
    }

    /// The first half of a delete: disable (CloudFront deletes only a disabled distribution). The rest, waiting
    /// until that is deployed and deleting, is the delete's wait, which holds no apply slot.
    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        disable(client(cloud)?, op.id()?).await
    }

    async fn wait(
        &self,
        cloud: &Cloud,
        op: &Op<'_>,
        id: &str,
        phase: Phase,
        progress: &Progress,
    ) -> Result<(), CloudError> {
        let cf = client(cloud)?;
        if phase == Phase::Delete {
            return delete_when_deployed(cf, id, progress).await;
        }
        if op.wait {
            return until_deployed(cf, id, progress).await;
        }
        // Not waiting: one look, so the note is only left when CloudFront is really still deploying. A failed look
        // fails nothing (the change itself was made): the note is left, as the deployment is the likely state.
        let status = match cf.get_distribution().id(id).send().await.call("GetDistribution") {
            Ok(out) => out.distribution().map(|d| d.status().to_string()),
            Err(e) => {
                tracing::debug!(error = %e, "cannot look at the distribution's status");
                None
            }
        };
        if status.as_deref() != Some(DEPLOYED) {
            progress.set(status.as_deref().unwrap_or("InProgress"));
            progress.note(format!(
                "CloudFront is still deploying distribution {id} (5-20 minutes on AWS); it serves the new configuration once its status is {DEPLOYED} (`aws cloudfront wait distribution-deployed --id {id}`). `webscale apply --wait` waits for it."
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn want() -> Attrs {
        Attrs {
            origin_domain: "b.s3.eu-west-1.amazonaws.com".into(),
            origin_access_control: "E2OAC".into(),
            enabled: true,
            default_root_object: "index.html".into(),
            price_class: "PriceClass_100".into(),
            viewer_protocol_policy: "redirect-to-https".into(),
            compress: true,
            cache_policy: CACHING_OPTIMIZED.into(),
            http_version: "http2and3".into(),
            ipv6: true,
            comment: marker("shop", &address()),
            aliases: Vec::new(),
            certificate: None,
            tags: Tags::from([("webscale:stack".to_string(), "shop".to_string())]),
        }
    }

    /// A new configuration reads back as exactly what was asked for: the plan after a create sees no change.
    #[test]
    fn a_new_configuration_reads_back_as_the_desired_attributes() {
        let w = want();
        let config = new_config(&w, "ws-1".into()).unwrap();
        let live = live_attrs(&config, w.tags.clone());
        let mut expected = super::super::attrs(&json!({
            "origin_domain": w.origin_domain,
            "origin_access_control": cloud_id("E2OAC"),
            "enabled": true,
            "default_root_object": "index.html",
            "price_class": "PriceClass_100",
            "viewer_protocol_policy": "redirect-to-https",
            "compress": true,
            "cache_policy": CACHING_OPTIMIZED,
            "http_version": "http2and3",
            "ipv6": true,
            "comment": "webscale:stack=shop webscale:address=distribution.assets",
            "aliases": [],
            "certificate": null,
        }));
        expected.insert("tags".into(), json!(w.tags));
        assert_eq!(live, expected);
        // With aliases: the ACM certificate, by SNI, TLS 1.2 at least; and it reads back the same.
        let aliased = Attrs {
            aliases: vec!["static.shop.example.com".into()],
            certificate: Some("arn:aws:acm:us-east-1:1:certificate/c".into()),
            ..want()
        };
        let config = new_config(&aliased, "ws-2".into()).unwrap();
        let cert = config.viewer_certificate.as_ref().unwrap();
        assert_eq!(cert.acm_certificate_arn.as_deref(), Some("arn:aws:acm:us-east-1:1:certificate/c"));
        assert_eq!(cert.ssl_support_method, Some(SslSupportMethod::SniOnly));
        assert_ne!(cert.cloud_front_default_certificate, Some(true), "not CloudFront's own certificate");
        let live = live_attrs(&config, w.tags.clone());
        assert_eq!(live["aliases"], json!(["static.shop.example.com"]));
        assert_eq!(live["certificate"], json!("arn:aws:acm:us-east-1:1:certificate/c"));
        let origin = &config.origins.as_ref().unwrap().items[0];
        assert_eq!(
            origin.s3_origin_config.as_ref().map(|s| s.origin_access_identity.as_str()),
            Some(""),
            "OAC, no OAI"
        );
    }

    /// An update leaves what webscale does not manage as AWS returned it: a second origin, a logging setting, a
    /// behaviour's methods; and it clears only the legacy cache settings the cache policy excludes.
    #[test]
    #[allow(deprecated)]
    fn managing_a_configuration_keeps_what_webscale_does_not_manage() {
        let w = want();
        let mut config = new_config(&w, "ws-1".into()).unwrap();
        let other = Origin::builder().id("logs").domain_name("logs.example.com").build().unwrap();
        let origins = config.origins.as_mut().unwrap();
        origins.items.push(other.clone());
        origins.quantity = 2;
        config.web_acl_id = Some("acl-1".into());
        config.enabled = false;
        config.default_cache_behavior.as_mut().unwrap().compress = Some(false);
        config.default_cache_behavior.as_mut().unwrap().default_ttl = Some(5);
        let before = config.clone();
        manage(&mut config, &w).unwrap();
        assert_eq!(config.web_acl_id.as_deref(), Some("acl-1"));
        assert_eq!(config.origins.as_ref().unwrap().items[1], other);
        assert_eq!(config.origins.as_ref().unwrap().quantity, 2);
        assert!(config.enabled);
        assert_eq!(config.default_cache_behavior.as_ref().unwrap().compress, Some(true));
        assert_eq!(config.default_cache_behavior.as_ref().unwrap().default_ttl, None);
        assert_eq!(config.caller_reference, before.caller_reference);
        // Managing twice changes nothing more: an update with nothing to change sends nothing.
        let once = config.clone();
        manage(&mut config, &w).unwrap();
        assert_eq!(config, once);
    }

    /// CloudFront reports an origin without an OAC as an empty OriginAccessControlId: that is no OAC (a change
    /// made by hand shows as drift), whatever was recorded. Only an endpoint that leaves the element out (moto) reads
    /// the OAC recorded at the last apply. The record is never part of the `tags` attribute.
    #[test]
    fn the_recorded_oac_stands_in_only_where_the_endpoint_does_not_report_one() {
        let w = want();
        let recorded = written_tags(&w);
        assert_eq!(recorded.get(OAC_TAG).map(String::as_str), Some("E2OAC"));
        let mut config = new_config(&w, "ws-1".into()).unwrap();
        let origin = |c: &mut DistributionConfig| c.origins.as_mut().unwrap().items[0].origin_access_control_id.take();

        let reported = live_attrs(&config, recorded.clone());
        assert_eq!(reported["origin_access_control"], cloud_id("E2OAC"));
        assert_eq!(reported["tags"], json!(w.tags), "the record is not a tag the spec manages");

        origin(&mut config);
        let unreported = live_attrs(&config, recorded.clone());
        assert_eq!(unreported["origin_access_control"], cloud_id("E2OAC"), "left out: the record stands in");

        config.origins.as_mut().unwrap().items[0].origin_access_control_id = Some(String::new());
        let removed = live_attrs(&config, recorded);
        assert_eq!(removed["origin_access_control"], Value::Null, "reported empty: none, whatever was recorded");
    }

    #[test]
    fn the_comment_fits_cloudfronts_limit_for_the_longest_stack_name() {
        let longest = "a".repeat(32);
        assert!(marker(&longest, &address()).len() <= 128);
        assert!(oac::name(&longest).len() <= 64);
    }
}
