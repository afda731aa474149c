//! `subscription.events`: the topic delivers every event to the pipeline's function (`[logging]`). Lambda also needs
//! a permission that lets the topic invoke it (`function_permission.events`); this is the topic's half.
//!
//! Subscriptions take no tags: they are read through their parent. ListSubscriptionsByTopic is asked once per topic
//! the stack owns (found through the topic listing `topic::candidates` shares, so ListTopics runs once per plan); a
//! subscription there that delivers to a Lambda function named `STACK-...` is the stack's, at the address
//! `subscription.<the topic's logical name>`. Nothing of a topic the stack does not own is ever looked at.
//!
//! Everything about a subscription is fixed at Subscribe (topic, protocol, endpoint): any change replaces it.

use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::topic;
use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx, cloud_id, output_reference, reference};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::Stack;

pub struct Subscription;

pub fn address() -> Address {
    Address::new("subscription", "events")
}

const PROTOCOL: &str = "lambda";

/// What SNS lists in place of an ARN while a subscription waits for its endpoint to confirm it (never for long with
/// Lambda, which confirms at once). It cannot be unsubscribed: SNS drops unconfirmed subscriptions by itself after
/// three days, and with their topic.
const PENDING: &str = "PendingConfirmation";

#[derive(Deserialize)]
struct Attrs {
    topic: String,
    protocol: String,
    endpoint: String,
}

/// Every subscription of the topic `arn` (the stack's and any made by hand): one ListSubscriptionsByTopic per page,
/// read once per plan, for `subscription`'s read and for the topic's `strangers`. A topic gone since it was listed
/// has none.
pub async fn of_topic(
    ctx: &ReadCtx<'_>,
    region: &str,
    arn: &str,
) -> Result<Arc<Vec<aws_sdk_sns::types::Subscription>>, CloudError> {
    ctx.shared(&format!("sns:subscriptions:{arn}"), || async {
        let sns = &ctx.cloud.clients(region)?.sns;
        let listed = ctx
            .limited(
                sns.list_subscriptions_by_topic()
                    .topic_arn(arn)
                    .into_paginator()
                    .items()
                    .send()
                    .collect::<Result<Vec<_>, _>>(),
            )
            .await;
        match listed {
            Ok(l) => Ok(l),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found_exception()) => Ok(Vec::new()),
            Err(e) => Err(Err::<(), _>(e).call("ListSubscriptionsByTopic").unwrap_err()),
        }
    })
    .await
}

/// Whether SNS lists `arn` in place of a subscription's ARN: it waits for its endpoint to confirm it.
pub fn is_pending(arn: &str) -> bool {
    arn == PENDING
}

/// The function name in a Lambda ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]`).
fn function_name(arn: &str) -> Option<&str> {
    let mut parts = arn.split(':');
    (parts.nth(5)? == "function").then_some(())?;
    parts.next()
}

#[async_trait]
impl Kind for Subscription {
    fn name(&self) -> &'static str {
        "subscription"
    }

    fn service(&self) -> &'static str {
        "sns"
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            Attr::new("topic").forces_replacement(),
            Attr::new("protocol").forces_replacement(),
            Attr::new("endpoint").forces_replacement(),
        ];
        SCHEMA
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        if stack.logging.is_none() {
            return Vec::new();
        }
        let attrs = json!({
            "topic": reference(&topic::address()),
            "protocol": PROTOCOL,
            "endpoint": output_reference(&Address::new("function", "events"), "arn"),
        });
        vec![Desired::in_home_region(stack, address(), &attrs)]
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let topics = topic::candidates(ctx, region).await?;
        let stack = ctx.cloud.stack();
        let functions = format!("{stack}-");
        let owned = topics
            .iter()
            .filter_map(|t| Some((t, Address::new("subscription", t.address(stack)?.name()))))
            .filter(|(_, a)| ctx.only.is_none_or(|o| o == a));
        let reads = owned.map(|(t, address)| {
            let functions = functions.as_str();
            async move {
                let listed = of_topic(ctx, region, &t.arn).await?;
                let mine = listed
                    .iter()
                    .filter(|s| s.protocol() == Some(PROTOCOL))
                    .filter(|s| s.endpoint().and_then(function_name).is_some_and(|f| f.starts_with(functions)))
                    .filter_map(|s| {
                        let id = s.subscription_arn()?.to_string();
                        let attrs = super::attrs(&json!({
                            "topic": cloud_id(&t.arn),
                            "protocol": PROTOCOL,
                            "endpoint": s.endpoint(),
                        }));
                        let mut live = Live::new(address.clone(), region, id.clone(), attrs);
                        if is_pending(&id) {
                            live.pending = Some("pending confirmation".to_string());
                        }
                        Some(live)
                    })
                    .collect::<Vec<_>>();
                Ok::<_, CloudError>(mine)
            }
        });
        Ok(futures::future::try_join_all(reads).await?.into_iter().flatten().collect())
    }

    /// Subscribe is idempotent on AWS for the same topic, protocol and endpoint: a repeat returns the same ARN.
    /// ReturnSubscriptionArn: the real ARN at once, even were it still to be confirmed.
    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let sns = &cloud.clients(op.region)?.sns;
        // A topic created a moment ago may not be visible yet.
        let out = cloud
            .settled(|| async {
                sns.subscribe()
                    .topic_arn(&want.topic)
                    .protocol(&want.protocol)
                    .endpoint(&want.endpoint)
                    .return_subscription_arn(true)
                    .send()
                    .await
                    .call("Subscribe")
            })
            .await?;
        let arn = out
            .subscription_arn()
            .ok_or_else(|| CloudError::internal(format!("Subscribe returned no ARN for {}", op.address)))?;
        Ok(Created::from(arn.to_string()))
    }

    async fn update(&self, _cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        // Every attribute forces a replacement: the engine never asks for an update.
        Err(CloudError::internal(format!("{}: a subscription cannot change in place", op.address)))
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let id = op.id()?;
        if !id.starts_with("arn:") {
            if let Some(progress) = op.progress {
                progress.note(format!(
                    "{} is still pending confirmation, which SNS does not let anyone unsubscribe: SNS removes it after three days, or with its topic",
                    op.address
                ));
            }
            return Ok(());
        }
        let sns = &cloud.clients(op.region)?.sns;
        super::gone_ok(sns.unsubscribe().subscription_arn(id).send().await.call("Unsubscribe"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_name_comes_out_of_its_arn_with_or_without_a_qualifier() {
        assert_eq!(function_name("arn:aws:lambda:us-east-1:123456789012:function:shop-events"), Some("shop-events"));
        assert_eq!(function_name("arn:aws:lambda:us-east-1:123456789012:function:shop-events:1"), Some("shop-events"));
        assert_eq!(function_name("arn:aws:sqs:us-east-1:123456789012:shop-events"), None);
        assert_eq!(function_name("not an arn"), None);
    }
}
