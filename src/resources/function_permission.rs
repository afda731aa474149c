//! `function_permission.events`: the statement in the function's resource policy that lets the stack's topic
//! invoke it (Lambda DG: an SNS subscription to a function needs both the subscription and this permission).
//! Principal `sns.amazonaws.com`, action `lambda:InvokeFunction`, and only on behalf of the topic (`SourceArn`, an
//! ArnLike condition): no other topic, of this account or another, may invoke the function through it.
//!
//! A statement takes no tags; its statement id is derived from the address (`webscale-events`, [`statement_id`]),
//! and statements whose id starts `webscale-` in a function the stack owns are the stack's. Every attribute forces
//! a replacement (Lambda has no call that changes a statement); the id is `FUNCTION/STATEMENT_ID`.
//!
//! Read: GetPolicy once per function the stack owns (one), found through the function listing `function` already
//! made for the plan: no call per foreign function. A function without a policy answers ResourceNotFoundException.
//! A repeated AddPermission (its answer lost) meets ResourceConflictException for the same statement id: done, if
//! the statement there says what this one would.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::function;
use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx, cloud_id, output_reference, reference};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::Stack;

pub struct FunctionPermission;

pub fn address() -> Address {
    Address::new("function_permission", "events")
}

/// What every statement id of the stack starts with.
pub const PREFIX: &str = "webscale-";

/// The statement id of the permission at `address`: `webscale-NAME`.
pub fn statement_id(address: &Address) -> String {
    format!("{PREFIX}{}", address.name())
}

#[derive(Deserialize, Debug, PartialEq)]
struct Attrs {
    function: String,
    principal: String,
    action: String,
    source_arn: String,
}

/// One statement of a function's policy, in this kind's attributes: `(statement id, attributes)`.
fn statements(policy: &str) -> Vec<(String, Value)> {
    let Ok(doc) = serde_json::from_str::<Value>(policy) else { return Vec::new() };
    let list = match doc.get("Statement") {
        Some(Value::Array(items)) => items.clone(),
        Some(one) => vec![one.clone()],
        None => Vec::new(),
    };
    let one = |v: Option<&Value>| -> Value {
        match v {
            Some(Value::Array(items)) if items.len() == 1 => items[0].clone(),
            Some(v) => v.clone(),
            None => Value::Null,
        }
    };
    list.iter()
        .filter_map(|s| {
            let sid = s.get("Sid")?.as_str()?.to_string();
            let principal = match s.get("Principal") {
                Some(Value::Object(p)) => one(p.get("Service").or_else(|| p.get("AWS"))),
                other => one(other),
            };
            let source = s
                .get("Condition")
                .and_then(|c| c.get("ArnLike").or_else(|| c.get("ArnEquals")))
                .and_then(|c| c.get("AWS:SourceArn"));
            Some((sid, json!({ "principal": principal, "action": one(s.get("Action")), "source_arn": one(source) })))
        })
        .collect()
}

/// The function's statements; none when it has no policy at all.
async fn policy(lambda: &aws_sdk_lambda::Client, function: &str) -> Result<Vec<(String, Value)>, CloudError> {
    match lambda.get_policy().function_name(function).send().await.call("GetPolicy") {
        Ok(out) => Ok(statements(out.policy().unwrap_or_default())),
        Err(e) if e.is_not_found() => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// `FUNCTION/STATEMENT_ID`, taken apart.
fn split(id: &str) -> Result<(&str, &str), CloudError> {
    id.split_once('/')
        .ok_or_else(|| CloudError::internal(format!("function permission id {id:?} is not FUNCTION/STATEMENT")))
}

async fn add(cloud: &Cloud, op: &Op<'_>, want: &Attrs) -> Result<(), CloudError> {
    let lambda = function::client(cloud, op.region)?;
    let sid = statement_id(op.address);
    let added = lambda
        .add_permission()
        .function_name(&want.function)
        .statement_id(&sid)
        .principal(&want.principal)
        .action(&want.action)
        .source_arn(&want.source_arn)
        .send()
        .await
        .call("AddPermission");
    match added {
        // Our own earlier call (its answer lost) made the statement already: done if it says the same.
        Err(e) if e.code() == "ResourceConflictException" => {
            let found = policy(lambda, &want.function).await?;
            let same = json!({ "principal": want.principal, "action": want.action, "source_arn": want.source_arn });
            match found.iter().find(|(s, _)| *s == sid) {
                Some((_, v)) if *v == same => Ok(()),
                Some(_) => Err(CloudError {
                    message: format!(
                        "{}: the function's policy already has a statement {sid} that grants something else: remove it (aws lambda remove-permission --function-name {} --statement-id {sid}), then run again",
                        op.address, want.function
                    ),
                    ..e
                }),
                None => Err(e),
            }
        }
        other => other.map(|_| ()),
    }
}

#[async_trait]
impl Kind for FunctionPermission {
    fn name(&self) -> &'static str {
        "function_permission"
    }

    fn service(&self) -> &'static str {
        "lambda"
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            Attr::new("function").forces_replacement(),
            Attr::new("principal").forces_replacement(),
            Attr::new("action").forces_replacement(),
            Attr::new("source_arn").forces_replacement(),
        ];
        SCHEMA
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        if stack.logging.is_none() {
            return Vec::new();
        }
        let attrs = json!({
            "function": reference(&function::address()),
            "principal": "sns.amazonaws.com",
            "action": "lambda:InvokeFunction",
            "source_arn": output_reference(&Address::new("topic", "events"), "arn"),
        });
        vec![Desired::in_home_region(stack, address(), &attrs)]
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let stack = ctx.cloud.stack();
        let functions = function::listing(ctx, region).await?;
        let lambda = function::client(ctx.cloud, region)?;
        let names: Vec<&str> = functions
            .iter()
            .filter(|f| function::owned(f, stack).is_some())
            .filter_map(|f| f.function_name())
            .collect();
        let reads = names.into_iter().map(|name| async move {
            let found = ctx.limited(policy(lambda, name)).await?;
            Ok::<_, CloudError>(
                found
                    .into_iter()
                    .filter_map(|(sid, attrs)| {
                        let logical = sid.strip_prefix(PREFIX).filter(|n| !n.is_empty())?;
                        let address = Address::new(self.name(), logical);
                        let Value::Object(mut attrs) = attrs else { return None };
                        attrs.insert("function".into(), cloud_id(name));
                        Some(Live::new(address, region, format!("{name}/{sid}"), attrs))
                    })
                    .collect::<Vec<_>>(),
            )
        });
        let found = futures::future::try_join_all(reads).await?;
        Ok(found.into_iter().flatten().filter(|l| ctx.only.is_none_or(|o| *o == l.address)).collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        // A function created a moment ago may not be visible to AddPermission yet.
        cloud.settled(|| add(cloud, op, &want)).await?;
        Ok(Created::from(format!("{}/{}", want.function, statement_id(op.address))))
    }

    /// Every attribute forces a replacement; an update comes only from a create that found its statement already
    /// there (a repeat): it is put back as the spec says.
    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let live: Option<Attrs> = op.live().ok();
        if live.as_ref() == Some(&want) {
            return Ok(());
        }
        self.delete(cloud, op).await?;
        add(cloud, op, &want).await
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let (name, sid) = split(op.id()?)?;
        let lambda = function::client(cloud, op.region)?;
        super::gone_ok(
            lambda.remove_permission().function_name(name).statement_id(sid).send().await.call("RemovePermission"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_statement_reads_as_the_permissions_attributes() {
        let policy = r#"{"Version":"2012-10-17","Id":"default","Statement":[
            {"Sid":"webscale-events","Effect":"Allow","Principal":{"Service":"sns.amazonaws.com"},
             "Action":"lambda:InvokeFunction","Resource":"arn:aws:lambda:us-east-1:1:function:shop-events",
             "Condition":{"ArnLike":{"AWS:SourceArn":"arn:aws:sns:us-east-1:1:shop-events"}}},
            {"Sid":"by-hand","Effect":"Allow","Principal":"*","Action":["lambda:InvokeFunction"]}]}"#;
        let found = statements(policy);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].0, statement_id(&address()));
        assert_eq!(
            found[0].1,
            json!({"principal": "sns.amazonaws.com", "action": "lambda:InvokeFunction",
                   "source_arn": "arn:aws:sns:us-east-1:1:shop-events"})
        );
        assert_eq!(found[1].1["action"], json!("lambda:InvokeFunction"), "a one-element list reads as its element");
        assert_eq!(found[1].1["source_arn"], Value::Null);
        assert!(statements("not json").is_empty());
    }
}
