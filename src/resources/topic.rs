//! `topic.events`: the SNS topic events are published to (`[logging]`); it delivers them to the pipeline's function
//! (`subscription.events`). Named `STACK-events`, tagged in CreateTopic, with a policy that admits only the stack's
//! own account as publisher and CloudWatch alarms of that account.
//!
//! Read: ListTopics names every topic of the region (100 a page) and nothing else; topics cannot be filtered by
//! tag. Only those named like the stack's (`STACK-...`) are asked for their tags (ListTagsForResource), and only the
//! stack's for their policy (GetTopicAttributes): a fixed number of calls however many topics the account has. The
//! listing is shared with `subscription` (subscriptions are read through their topic) and `occupied`.
//!
//! The policy compares as a document, not as text: the live one is parsed, and both sides are brought to one form
//! (a one-element list and its single value are the same grant; AWS may store either), so a policy AWS rewrote
//! without changing its meaning plans nothing.

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_sns::types::Tag;
use serde::Deserialize;
use serde_json::{Value, json};

use super::tags::{self, TAG_ADDRESS, TAG_STACK, Tags};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{Logging, Stack};

pub struct Topic;

pub fn address() -> Address {
    Address::new("topic", "events")
}

#[derive(Deserialize)]
struct Attrs {
    name: String,
    policy: Value,
    tags: Tags,
}

/// `arn:aws:sns:REGION:ACCOUNT:NAME`.
pub fn arn(region: &str, account: &str, name: &str) -> String {
    format!("arn:aws:sns:{region}:{account}:{name}")
}

/// The topic's policy: the stack's account (its IAM principals, as IAM lets them) may publish, subscribe and look;
/// CloudWatch may publish only for alarms of that same account. Nothing for anyone else.
pub fn document(region: &str, account: &str, name: &str) -> Value {
    let topic = arn(region, account, name);
    normal(json!({
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "StackPublishers",
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:aws:iam::{account}:root") },
                "Action": ["sns:Publish", "sns:Subscribe", "sns:GetTopicAttributes", "sns:ListSubscriptionsByTopic"],
                "Resource": topic,
            },
            {
                "Sid": "CloudWatchAlarms",
                "Effect": "Allow",
                "Principal": { "Service": "cloudwatch.amazonaws.com" },
                "Action": ["sns:Publish"],
                "Resource": topic,
                "Condition": {
                    "ArnLike": { "aws:SourceArn": format!("arn:aws:cloudwatch:{region}:{account}:alarm:*") },
                    "StringEquals": { "aws:SourceAccount": account },
                },
            },
        ],
    }))
}

/// One form for equal policies. IAM's grammar makes a single value and a one-element list the same grant
/// (`"Action": "x"` and `"Action": ["x"]`), and AWS may give back either, whichever was sent: every field that may be
/// a list (statements; actions, resources, principals and condition values) is brought to the list form, on both
/// sides of the comparison. The order within a list is no difference to the plan (lists are sets).
pub fn normal(v: Value) -> Value {
    let Value::Object(mut doc) = v else { return v };
    if let Some(s) = doc.get_mut("Statement") {
        let statements = match s.take() {
            Value::Array(items) => items,
            one => vec![one],
        };
        *s = Value::Array(statements.into_iter().map(statement).collect());
    }
    Value::Object(doc)
}

fn statement(v: Value) -> Value {
    let Value::Object(mut s) = v else { return v };
    for key in ["Action", "NotAction", "Resource", "NotResource"] {
        if let Some(x) = s.get_mut(key) {
            *x = listed(x.take());
        }
    }
    // `"Principal": "*"` stays as it is; `{"AWS": "arn"}` lists each kind's principals.
    for key in ["Principal", "NotPrincipal"] {
        if let Some(Value::Object(kinds)) = s.get_mut(key) {
            kinds.values_mut().for_each(|x| *x = listed(x.take()));
        }
    }
    if let Some(Value::Object(operators)) = s.get_mut("Condition") {
        for keys in operators.values_mut() {
            if let Value::Object(keys) = keys {
                keys.values_mut().for_each(|x| *x = listed(x.take()));
            }
        }
    }
    Value::Object(s)
}

/// A list as it is; anything else as a list of one.
fn listed(v: Value) -> Value {
    match v {
        Value::Array(_) => v,
        one => Value::Array(vec![one]),
    }
}

/// A topic of the region named like the stack's, with its tags.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub arn: String,
    pub name: String,
    pub tags: Tags,
}

impl Candidate {
    /// Where the topic belongs in the stack, if it is the stack's.
    pub fn address(&self, stack: &str) -> Option<Address> {
        tags::owned_by(&self.tags, stack)
            .then(|| tags::owned_address(self.tags.get(TAG_ADDRESS).map(String::as_str), "topic", &self.arn))
    }
}

/// The topics of `region` named `STACK-...`, with their tags: one ListTopics per page, one ListTagsForResource per
/// topic so named. Read once per plan, for `topic`, `subscription` and `occupied`.
pub async fn candidates(ctx: &ReadCtx<'_>, region: &str) -> Result<Arc<Vec<Candidate>>, CloudError> {
    ctx.shared(&format!("sns:topics:{region}"), || async {
        let sns = &ctx.cloud.clients(region)?.sns;
        let prefix = format!("{}-", ctx.cloud.stack());
        let listed = sns
            .list_topics()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .call("ListTopics")?;
        let named: Vec<(String, String)> = listed
            .iter()
            .filter_map(|t| t.topic_arn())
            .map(|arn| (arn.to_string(), arn.rsplit(':').next().unwrap_or_default().to_string()))
            .filter(|(_, name)| name.starts_with(&prefix))
            .collect();
        let tagged = named.into_iter().map(|(arn, name)| async move {
            let tags = match ctx.limited(sns.list_tags_for_resource().resource_arn(&arn).send()).await {
                Ok(out) => tags::live(out.tags().iter().map(|t| (t.key(), t.value()))),
                // Deleted since it was listed.
                Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_not_found_exception()) => {
                    return Ok(None);
                }
                Err(e) => return Err(Err::<(), _>(e).call("ListTagsForResource").unwrap_err()),
            };
            Ok::<_, CloudError>(Some(Candidate { arn, name, tags }))
        });
        Ok(futures::future::try_join_all(tagged).await?.into_iter().flatten().collect())
    })
    .await
}

fn outputs(arn: &str, name: &str) -> super::Attrs {
    super::attrs(&json!({ "arn": arn, "name": name }))
}

fn sns<'a>(cloud: &'a Cloud, region: &str) -> Result<&'a aws_sdk_sns::Client, CloudError> {
    Ok(&cloud.clients(region)?.sns)
}

fn tag_list(tags: &Tags) -> Vec<Tag> {
    tags.iter().filter_map(|(k, v)| Tag::builder().key(k).value(v).build().ok()).collect()
}

#[async_trait]
impl Kind for Topic {
    fn name(&self) -> &'static str {
        "topic"
    }

    fn service(&self) -> &'static str {
        "sns"
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[Attr::new("name").forces_replacement(), Attr::new("policy"), Attr::new("tags")];
        SCHEMA
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        if stack.logging.is_none() {
            return Vec::new();
        }
        let address = address();
        let name = Logging::function_name(&stack.name);
        let account = stack.account.as_deref().unwrap_or("ACCOUNT");
        let attrs = json!({
            "name": name,
            "policy": document(&stack.region, account, &name),
            "tags": tags::desired(stack, &address),
        });
        vec![Desired::in_home_region(stack, address, &attrs)]
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let found = candidates(ctx, region).await?;
        let stack = ctx.cloud.stack();
        let sns = sns(ctx.cloud, region)?;
        let mine =
            found.iter().filter_map(|c| Some((c, c.address(stack)?))).filter(|(_, a)| ctx.only.is_none_or(|o| o == a));
        let reads = mine.map(|(c, address)| async move {
            let got = ctx.limited(sns.get_topic_attributes().topic_arn(&c.arn).send()).await;
            let attributes = match got {
                Ok(out) => out.attributes().cloned().unwrap_or_default(),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found_exception()) => return Ok(None),
                Err(e) => return Err(Err::<(), _>(e).call("GetTopicAttributes").unwrap_err()),
            };
            let text = attributes.get("Policy").cloned().unwrap_or_default();
            // A policy that is not JSON cannot be the stack's document: shown as a string, it plans a rewrite.
            let policy = serde_json::from_str::<Value>(&text).map(normal).unwrap_or(Value::String(text));
            let attrs = super::attrs(&json!({ "name": c.name, "policy": policy, "tags": c.tags }));
            let mut live = Live::new(address, region, c.arn.clone(), attrs);
            live.outputs = outputs(&c.arn, &c.name);
            Ok::<_, CloudError>(Some(live))
        });
        Ok(futures::future::try_join_all(reads).await?.into_iter().flatten().collect())
    }

    /// CreateTopic is idempotent by name: a repeat (its answer lost) returns the same ARN. A topic of that name with
    /// other tags makes AWS answer InvalidParameter: it is another stack's or tool's, never taken over.
    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let sns = sns(cloud, op.region)?;
        let created = sns
            .create_topic()
            .name(&want.name)
            .set_tags(Some(tag_list(&want.tags)))
            .attributes("Policy", want.policy.to_string())
            .send()
            .await
            .call("CreateTopic");
        let out = match created {
            Ok(out) => out,
            Err(mut e) if e.code() == "InvalidParameter" && e.message.contains("already exists") => {
                e.message = format!(
                    "{}: the SNS topic name {} is taken by a topic of another stack or tool (it is not stack {}'s); delete that topic or rename the stack",
                    e.message,
                    want.name,
                    cloud.stack()
                );
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        let arn = out
            .topic_arn()
            .ok_or_else(|| CloudError::internal(format!("CreateTopic returned no ARN for {}", want.name)))?
            .to_string();
        Ok(Created { id: arn.clone(), outputs: outputs(&arn, &want.name) })
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let sns = sns(cloud, op.region)?;
        let arn = op.id()?;
        if op.changed("policy") {
            sns.set_topic_attributes()
                .topic_arn(arn)
                .attribute_name("Policy")
                .attribute_value(want.policy.to_string())
                .send()
                .await
                .call("SetTopicAttributes")?;
        }
        if op.changed("tags") {
            let have: Tags = op
                .live
                .as_ref()
                .and_then(|l| l.get("tags"))
                .cloned()
                .map_or_else(Tags::new, |t| serde_json::from_value(t).unwrap_or_default());
            let stale: Vec<String> = have.keys().filter(|k| !want.tags.contains_key(*k)).cloned().collect();
            if !stale.is_empty() {
                sns.untag_resource().resource_arn(arn).set_tag_keys(Some(stale)).send().await.call("UntagResource")?;
            }
            let missing: Tags = want
                .tags
                .iter()
                .filter(|(k, v)| have.get(*k) != Some(v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !missing.is_empty() {
                sns.tag_resource()
                    .resource_arn(arn)
                    .set_tags(Some(tag_list(&missing)))
                    .send()
                    .await
                    .call("TagResource")?;
            }
        }
        Ok(())
    }

    /// Deleting a topic deletes its subscriptions with it.
    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let sns = sns(cloud, op.region)?;
        super::gone_ok(sns.delete_topic().topic_arn(op.id()?).send().await.call("DeleteTopic"))
    }

    /// Before a create: a topic of that name the stack does not own (CreateTopic would fail on its tags, or on an
    /// emulator quietly hand back the other topic). From the listing the read made: no extra call.
    async fn occupied(&self, ctx: &ReadCtx<'_>, desired: &Desired) -> Result<Vec<String>, CloudError> {
        let Some(name) = desired.attrs.get("name").and_then(|v| v.as_str()) else { return Ok(Vec::new()) };
        let found = candidates(ctx, &desired.region).await?;
        let stack = ctx.cloud.stack();
        Ok(found
            .iter()
            .filter(|c| c.name == name && !tags::owned_by(&c.tags, stack))
            // A noun phrase: the plan shows "blocked by ..., which the stack does not own".
            .map(|c| match c.tags.get(TAG_STACK) {
                Some(other) => format!("SNS topic {} of stack {other} (delete it there, or rename this stack)", c.arn),
                None => format!("SNS topic {} (made outside webscale: delete it, or rename this stack)", c.arn),
            })
            .collect())
    }

    /// Before the topic is deleted (destroy, or a replacement): a subscription someone added by hand (an operator's
    /// email, a queue) would go with it, silently, as SNS deletes a topic's subscriptions with it. The stack deletes
    /// nothing it does not own, so it is named and the delete waits until it is removed or moved. From the listing
    /// the subscriptions' read made: no extra call. One still pending confirmation is not counted: nobody can
    /// remove it (SNS drops it after three days, or with its topic), and nothing is delivered through it yet.
    async fn strangers(
        &self,
        ctx: &ReadCtx<'_>,
        live: &Live,
        owned: &std::collections::HashSet<String>,
    ) -> Result<Vec<String>, CloudError> {
        let listed = super::subscription::of_topic(ctx, &live.region, &live.id).await?;
        Ok(listed
            .iter()
            .filter_map(|s| Some((s.subscription_arn()?, s)))
            .filter(|(arn, _)| !owned.contains(*arn) && !super::subscription::is_pending(arn))
            // A noun phrase: the plan shows "blocked by ..., which the stack does not own".
            .map(|(arn, s)| {
                format!(
                    "subscription {arn} ({} to {}; SNS deletes a topic's subscriptions with it)",
                    s.protocol().unwrap_or("unknown protocol"),
                    s.endpoint().unwrap_or("an unknown endpoint"),
                )
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_admits_the_stacks_account_and_its_alarms_only() {
        let doc = document("us-east-1", "123456789012", "shop-events");
        let statements = doc["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 2);
        let topic = json!(["arn:aws:sns:us-east-1:123456789012:shop-events"]);
        assert!(statements.iter().all(|s| s["Resource"] == topic && s["Effect"] == "Allow"));
        assert_eq!(statements[0]["Principal"], json!({"AWS": ["arn:aws:iam::123456789012:root"]}));
        assert_eq!(statements[1]["Principal"], json!({"Service": ["cloudwatch.amazonaws.com"]}));
        assert_eq!(statements[1]["Action"], json!(["sns:Publish"]));
        assert_eq!(statements[1]["Condition"]["StringEquals"]["aws:SourceAccount"], json!(["123456789012"]));
        assert_eq!(
            statements[1]["Condition"]["ArnLike"]["aws:SourceArn"],
            json!(["arn:aws:cloudwatch:us-east-1:123456789012:alarm:*"])
        );
    }

    #[test]
    fn a_one_element_list_and_its_value_are_the_same_policy() {
        let listed = json!({"Statement": [{"Sid": "s", "Action": ["sns:Publish"], "Principal": {"AWS": ["a"]},
            "Resource": ["r"], "Condition": {"StringEquals": {"k": ["v"]}}}]});
        let plain = json!({"Statement": {"Sid": "s", "Action": "sns:Publish", "Principal": {"AWS": "a"},
            "Resource": "r", "Condition": {"StringEquals": {"k": "v"}}}});
        assert_eq!(normal(plain), listed);
        assert_eq!(normal(listed.clone()), listed, "the list form is its own normal form");
        let anyone = json!({"Statement": [{"Principal": "*", "Sid": "x"}]});
        assert_eq!(normal(anyone.clone()), anyone, "only lists are listed: \"*\" and Sid stay");
    }
}
