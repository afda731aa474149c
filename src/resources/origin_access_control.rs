//! `origin_access_control.assets`: the CloudFront origin access control (OAC) through which the stack's
//! distribution signs its requests to the assets bucket (SigV4, always), so the bucket stays private and its policy
//! admits CloudFront only on behalf of that one distribution (`bucket_policy.assets`).
//!
//! Ownership: an OAC takes no tags at all (CloudFront tags only distributions), so the ownership pair goes in its
//! Description instead, written in the create call: `webscale:stack=STACK webscale:address=ADDRESS` ([`marker`]).
//! A description naming another stack, or none, is not ours. The name (`STACK-assets`) is unique in the account:
//! CreateOriginAccessControl has no client token, and a repeat whose answer was lost meets
//! `OriginAccessControlAlreadyExists`, which the engine finishes by finding the first one through its description.
//!
//! Read: ListOriginAccessControls, one call per page (100 a page), shared with the plan-time checks
//! ([`Kind::occupied`]: the name taken by an OAC that is not the stack's). Updates and deletes send the ETag
//! GetOriginAccessControl returns (CloudFront refuses a change without it). A distribution using the OAC keeps it
//! from being deleted; the engine deletes the stack's distribution first (it references the OAC), and a
//! distribution of someone else's using it is found at plan time ([`Kind::strangers`]).

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_cloudfront::types::{
    OriginAccessControlConfig, OriginAccessControlOriginTypes, OriginAccessControlSigningBehaviors,
    OriginAccessControlSigningProtocols, OriginAccessControlSummary,
};
use serde::Deserialize;
use serde_json::json;

use super::tags::{self, TAG_ADDRESS, TAG_STACK};
use super::{Address, Attr, Created, Desired, GLOBAL, Kind, Live, Op, ReadCtx, ReplaceOrder, Scope, Timeouts};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::Stack;

pub struct OriginAccessControl;

pub fn address() -> Address {
    Address::new("origin_access_control", "assets")
}

/// The OAC's name: unique in the account, at most 64 characters (stack names have at most 32).
pub fn name(stack: &str) -> String {
    format!("{stack}-assets")
}

/// The ownership pair, for CloudFront fields that stand in for tags (an OAC's Description, a distribution's
/// Comment): `webscale:stack=STACK webscale:address=ADDRESS`.
pub fn marker(stack: &str, address: &Address) -> String {
    format!("{TAG_STACK}={stack} {TAG_ADDRESS}={address}")
}

/// What a [`marker`] says: the stack, and the address if it names one (`None` for text that is no marker at all).
/// Other words around the pair are allowed (someone may have added a note), the pair itself must be intact.
pub fn parse_marker(text: &str) -> Option<(String, Option<String>)> {
    let value = |key: &str| {
        text.split_whitespace().find_map(|w| w.strip_prefix(key)?.strip_prefix('=')).filter(|v| !v.is_empty())
    };
    let stack = value(TAG_STACK)?;
    Some((stack.to_string(), value(TAG_ADDRESS).map(str::to_string)))
}

/// The address a marker gives a resource of `kind` when it names `stack`; `None` when it is another stack's (or
/// no marker). A marker without a usable address still makes the resource the stack's, under a stray address.
pub fn owned_by_marker(text: &str, stack: &str, kind: &str, id: &str) -> Option<Address> {
    let (owner, address) = parse_marker(text)?;
    (owner == stack).then(|| tags::owned_address(address.as_deref(), kind, id))
}

#[derive(Deserialize)]
struct Attrs {
    name: String,
    origin_type: String,
    signing_behavior: String,
    signing_protocol: String,
}

pub(super) fn client(cloud: &Cloud) -> Result<&aws_sdk_cloudfront::Client, CloudError> {
    Ok(&cloud.clients(GLOBAL)?.cloudfront)
}

/// Every OAC of the account, listed once per plan.
async fn all(ctx: &ReadCtx<'_>) -> Result<Arc<Vec<OriginAccessControlSummary>>, CloudError> {
    ctx.shared("cloudfront:origin-access-controls", || async {
        client(ctx.cloud)?
            .list_origin_access_controls()
            .max_items(100)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .call("ListOriginAccessControls")
    })
    .await
}

fn config(want: &Attrs, description: &str) -> Result<OriginAccessControlConfig, CloudError> {
    OriginAccessControlConfig::builder()
        .name(&want.name)
        .description(description)
        .origin_access_control_origin_type(OriginAccessControlOriginTypes::from(want.origin_type.as_str()))
        .signing_behavior(OriginAccessControlSigningBehaviors::from(want.signing_behavior.as_str()))
        .signing_protocol(OriginAccessControlSigningProtocols::from(want.signing_protocol.as_str()))
        .build()
        .map_err(|e| CloudError::internal(format!("origin access control config: {e}")))
}

/// The ETag CloudFront wants back in the next change (`IfMatch`).
async fn etag(cf: &aws_sdk_cloudfront::Client, id: &str) -> Result<String, CloudError> {
    let out = cf.get_origin_access_control().id(id).send().await.call("GetOriginAccessControl")?;
    out.e_tag().map(str::to_string).ok_or_else(|| CloudError::internal("GetOriginAccessControl returned no ETag"))
}

/// Someone changed the OAC between our read of its ETag and our change: CloudFront says `PreconditionFailed`.
fn stale(e: &CloudError) -> bool {
    e.code() == "PreconditionFailed"
}

#[async_trait]
impl Kind for OriginAccessControl {
    fn name(&self) -> &'static str {
        "origin_access_control"
    }

    fn service(&self) -> &'static str {
        "cloudfront"
    }

    fn scope(&self) -> Scope {
        Scope::Global
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            Attr::new("name").forces_replacement(),
            Attr::new("origin_type"),
            Attr::new("signing_behavior"),
            Attr::new("signing_protocol"),
        ];
        SCHEMA
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        if !stack.static_assets.as_ref().is_some_and(|a| a.cdn) {
            return Vec::new();
        }
        let attrs = json!({
            "name": name(&stack.name),
            "origin_type": "s3",
            "signing_behavior": "always",
            "signing_protocol": "sigv4",
        });
        vec![Desired::new(GLOBAL, address(), &attrs)]
    }

    /// A new OAC (a new name) comes up first, the distribution moves to it, then the old one goes: CloudFront
    /// refuses to delete an OAC a distribution still uses.
    fn replace_order(&self) -> ReplaceOrder {
        ReplaceOrder::CreateFirst
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts::minutes(5, 5, 5)
    }

    fn is_gone(&self, error: &CloudError) -> bool {
        error.is_not_found() || error.code() == "NoSuchOriginAccessControl"
    }

    async fn read(&self, ctx: &ReadCtx<'_>, _region: &str) -> Result<Vec<Live>, CloudError> {
        let stack = ctx.cloud.stack();
        Ok(all(ctx)
            .await?
            .iter()
            .filter_map(|o| {
                let address = owned_by_marker(o.description(), stack, self.name(), o.id())?;
                if ctx.only.is_some_and(|a| *a != address) {
                    return None;
                }
                let attrs = super::attrs(&json!({
                    "name": o.name(),
                    "origin_type": o.origin_access_control_origin_type().as_str(),
                    "signing_behavior": o.signing_behavior().as_str(),
                    "signing_protocol": o.signing_protocol().as_str(),
                }));
                Some(Live::new(address, GLOBAL, o.id(), attrs))
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let cf = client(cloud)?;
        // The ownership pair goes in with the create: from its first moment the OAC is findable as the stack's.
        let description = marker(cloud.stack(), op.address);
        let out = cf
            .create_origin_access_control()
            .origin_access_control_config(config(&want, &description)?)
            .send()
            .await
            .call("CreateOriginAccessControl")?;
        let id = out
            .origin_access_control()
            .map(|o| o.id().to_string())
            .ok_or_else(|| CloudError::internal("CreateOriginAccessControl returned no origin access control"))?;
        Ok(Created::from(id))
    }

    /// Sends the whole configuration (CloudFront replaces it) with the ETag just read; if someone changed the OAC
    /// in between (PreconditionFailed), reads the new ETag and tries once more.
    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let cf = client(cloud)?;
        let id = op.id()?;
        let config = config(&want, &marker(cloud.stack(), op.address))?;
        let mut retried = false;
        loop {
            let tag = etag(cf, id).await?;
            let sent = cf
                .update_origin_access_control()
                .id(id)
                .if_match(tag)
                .origin_access_control_config(config.clone())
                .send()
                .await
                .call("UpdateOriginAccessControl");
            match sent {
                Err(e) if stale(&e) && !retried => retried = true,
                other => return other.map(|_| ()),
            }
        }
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let cf = client(cloud)?;
        let id = op.id()?;
        let mut retried = false;
        loop {
            let tag = etag(cf, id).await?;
            match cf.delete_origin_access_control().id(id).if_match(tag).send().await.call("DeleteOriginAccessControl")
            {
                Err(e) if stale(&e) && !retried => retried = true,
                Err(mut e) if e.code() == "OriginAccessControlInUse" => {
                    e.message.push_str(&format!(
                        " {} ({id}) is still used by a CloudFront distribution: point that distribution elsewhere (or delete it), then run again.",
                        op.address
                    ));
                    return Err(e);
                }
                other => return other.map(|_| ()),
            }
        }
    }

    /// Before a create: an OAC of the same name (names are unique in the account) that is not the stack's.
    async fn occupied(&self, ctx: &ReadCtx<'_>, desired: &Desired) -> Result<Vec<String>, CloudError> {
        let Some(want) = desired.attrs.get("name").and_then(|v| v.as_str()) else { return Ok(Vec::new()) };
        let stack = ctx.cloud.stack();
        Ok(all(ctx)
            .await?
            .iter()
            .filter(|o| o.name() == want && owned_by_marker(o.description(), stack, self.name(), o.id()).is_none())
            .map(|o| {
                format!(
                    "CloudFront origin access control {want} ({}) exists but is not stack {stack}'s (its description does not name the stack): delete or rename it",
                    o.id()
                )
            })
            .collect())
    }

    /// Before a delete: distributions the stack does not own that still use the OAC (CloudFront would refuse the
    /// delete with OriginAccessControlInUse).
    async fn strangers(
        &self,
        ctx: &ReadCtx<'_>,
        live: &Live,
        owned: &std::collections::HashSet<String>,
    ) -> Result<Vec<String>, CloudError> {
        let distributions = super::distribution::all(ctx).await?;
        Ok(distributions
            .iter()
            .filter(|d| !owned.contains(d.id()))
            .filter(|d| {
                d.origins().is_some_and(|o| o.items().iter().any(|o| o.origin_access_control_id() == Some(&live.id)))
            })
            .map(|d| {
                format!(
                    "CloudFront distribution {} ({}) uses it as an origin's access control",
                    d.id(),
                    d.domain_name()
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_names_its_stack_and_address_and_nothing_else_counts() {
        let a = address();
        let text = marker("shop", &a);
        assert_eq!(text, "webscale:stack=shop webscale:address=origin_access_control.assets");
        assert_eq!(parse_marker(&text), Some(("shop".into(), Some(a.to_string()))));
        assert_eq!(owned_by_marker(&text, "shop", "origin_access_control", "E1"), Some(a.clone()));
        assert_eq!(owned_by_marker(&text, "shop-2", "origin_access_control", "E1"), None, "another stack's");
        assert_eq!(owned_by_marker("my bucket's OAC", "shop", "origin_access_control", "E1"), None, "no marker");
        assert_eq!(owned_by_marker("webscale:stack= x", "shop", "origin_access_control", "E1"), None);
        // A note added around the pair keeps it ours; a pair without its address still is, under a stray address.
        assert_eq!(owned_by_marker(&format!("assets: {text}"), "shop", "origin_access_control", "E1"), Some(a));
        let stray = owned_by_marker("webscale:stack=shop", "shop", "origin_access_control", "E1").unwrap();
        assert!(stray.name().starts_with(super::super::STRAY), "{stray}");
        let other_kind = owned_by_marker(
            "webscale:stack=shop webscale:address=distribution.assets",
            "shop",
            "origin_access_control",
            "E1",
        );
        assert!(other_kind.is_some_and(|s| s.name().starts_with(super::super::STRAY)), "not an address of this kind");
    }
}
