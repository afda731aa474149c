//! `role.events`: the IAM role the logging pipeline's function runs as. It trusts Lambda alone (sts:AssumeRole
//! for the `lambda.amazonaws.com` service principal) and carries AWS's basic execution policy, which lets the
//! function write to its CloudWatch log group and nothing more.
//!
//! Ownership without a scan of the account's roles: the role lives under the stack's own IAM path
//! (`/webscale/STACK/`, [`Logging::role_path`]), so ListRoles with that PathPrefix returns the stack's roles and
//! nothing else, and its Description carries the ownership pair ([`marker`]), written in the create call with the
//! tags (IAM roles are not in the resource-groups tagging API, and ListRoles returns no tags). Read: one ListRoles
//! per page under the path, then ListAttachedRolePolicies for each role found there (one).
//!
//! Role names are unique in the account whatever the path. CreateRole takes no client token: a repeat whose answer
//! was lost meets EntityAlreadyExists, and a role of that name carrying the stack's marker is the first call's,
//! finished instead of failed. A role of that name that is not the stack's is reported at plan time
//! ([`Kind::occupied`]), before anything is created.
//!
//! IAM answers the trust policy URL-encoded; it is decoded, parsed and compared as a document (one-element lists
//! read as their element, as IAM treats them), never as text.

use async_trait::async_trait;
use aws_sdk_iam::types::{Role as IamRole, Tag};
use serde::Deserialize;
use serde_json::{Value, json};

use super::origin_access_control::{marker, owned_by_marker};
use super::tags::{self, TAG_ADDRESS, TAG_STACK, Tags};
use super::{Address, Attr, Created, Desired, GLOBAL, Kind, Live, Op, ReadCtx, Scope, Timeouts};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{Logging, Stack};

pub struct Role;

pub fn address() -> Address {
    Address::new("role", "events")
}

/// AWS's managed policy for a function's own logs (CreateLogStream, PutLogEvents).
pub const BASIC_EXECUTION: &str = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";

/// The trust policy: Lambda, and only Lambda, may assume the role.
pub fn trust_policy() -> Value {
    json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": "lambda.amazonaws.com" },
            "Action": "sts:AssumeRole",
        }],
    })
}

#[derive(Deserialize)]
struct Attrs {
    name: String,
    path: String,
    assume_role_policy: Value,
    managed_policies: Vec<String>,
}

fn client(cloud: &Cloud) -> Result<&aws_sdk_iam::Client, CloudError> {
    Ok(&cloud.clients(GLOBAL)?.iam)
}

/// The tags a create sets: the spec's whole set when the engine hands the spec over, else the ownership pair.
pub(super) fn create_tags(cloud: &Cloud, op: &Op<'_>) -> Tags {
    match op.stack {
        Some(stack) => tags::desired(stack, op.address),
        None => Tags::from([
            (TAG_STACK.to_string(), cloud.stack().to_string()),
            (TAG_ADDRESS.to_string(), op.address.to_string()),
        ]),
    }
}

/// A policy document as IAM returns it (URL-encoded JSON), parsed; `None` when it is not JSON at all.
pub fn parse_document(text: &str) -> Option<Value> {
    serde_json::from_str(text).ok().or_else(|| serde_json::from_str(&url_decode(text)).ok()).map(|v| normalized(&v))
}

/// A document in the form compared: `Statement` always a list; inside a statement, one-element lists read as their
/// element (IAM treats `"Action": ["x"]` and `"Action": "x"` alike) and an empty `Sid` as none.
pub fn normalized(doc: &Value) -> Value {
    fn singletons(v: &Value) -> Value {
        match v {
            Value::Array(items) if items.len() == 1 => singletons(&items[0]),
            Value::Array(items) => Value::Array(items.iter().map(singletons).collect()),
            Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), singletons(v))).collect()),
            other => other.clone(),
        }
    }
    let Value::Object(map) = doc else { return doc.clone() };
    let mut out = map.clone();
    if let Some(statements) = map.get("Statement") {
        let list = match statements {
            Value::Array(items) => items.clone(),
            one => vec![one.clone()],
        };
        let list = list
            .iter()
            .map(|s| {
                let mut s = singletons(s);
                if let Value::Object(m) = &mut s
                    && m.get("Sid").is_some_and(|sid| sid == "")
                {
                    m.remove("Sid");
                }
                s
            })
            .collect();
        out.insert("Statement".into(), Value::Array(list));
    }
    Value::Object(out)
}

/// `%XX` sequences decoded (IAM encodes policy documents as in RFC 3986); anything else kept as it is.
fn url_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `role` is the stack's: under the stack's path, with the stack's marker. The address it has, if so.
fn owned(role: &IamRole, stack: &str) -> Option<Address> {
    if role.path() != Logging::role_path(stack) {
        return None;
    }
    owned_by_marker(role.description().unwrap_or_default(), stack, "role", role.role_name())
}

fn not_ours(name: &str, stack: &str) -> String {
    format!(
        "IAM role {name} exists but is not stack {stack}'s (its description does not carry the stack's marker, or it lies outside the path {}): delete or rename that role, then run again",
        Logging::role_path(stack)
    )
}

/// The managed policies attached to `name`, every page.
async fn attached(iam: &aws_sdk_iam::Client, name: &str) -> Result<Vec<String>, CloudError> {
    let pages = iam
        .list_attached_role_policies()
        .role_name(name)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .call("ListAttachedRolePolicies")?;
    Ok(pages.iter().filter_map(|p| p.policy_arn()).map(str::to_string).collect())
}

fn outputs(role: &IamRole) -> super::Attrs {
    super::attrs(&json!({ "arn": role.arn(), "name": role.role_name() }))
}

/// Attaches what `want` lists and `have` lacks, then detaches what `have` has and `want` does not.
async fn sync_policies(cloud: &Cloud, name: &str, want: &[String], have: &[String]) -> Result<(), CloudError> {
    let iam = client(cloud)?;
    for arn in want.iter().filter(|a| !have.contains(a)) {
        // A role created a moment ago may not be visible to the attach yet (IAM is eventually consistent).
        cloud
            .settled(|| async {
                iam.attach_role_policy().role_name(name).policy_arn(arn).send().await.call("AttachRolePolicy")
            })
            .await?;
    }
    for arn in have.iter().filter(|a| !want.contains(a)) {
        match iam.detach_role_policy().role_name(name).policy_arn(arn).send().await.call("DetachRolePolicy") {
            Err(e) if !e.is_not_found() => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

#[async_trait]
impl Kind for Role {
    fn name(&self) -> &'static str {
        "role"
    }

    fn service(&self) -> &'static str {
        "iam"
    }

    fn scope(&self) -> Scope {
        Scope::Global
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            Attr::new("name").forces_replacement(),
            Attr::new("path").forces_replacement(),
            Attr::new("assume_role_policy"),
            Attr::new("managed_policies"),
        ];
        SCHEMA
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        if stack.logging.is_none() {
            return Vec::new();
        }
        let attrs = json!({
            "name": Logging::function_name(&stack.name),
            "path": Logging::role_path(&stack.name),
            "assume_role_policy": trust_policy(),
            "managed_policies": [BASIC_EXECUTION],
        });
        vec![Desired::new(GLOBAL, address(), &attrs)]
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts::minutes(5, 5, 5)
    }

    /// ListRoles under the stack's path (every page), then the attached policies of each role found there.
    async fn read(&self, ctx: &ReadCtx<'_>, _region: &str) -> Result<Vec<Live>, CloudError> {
        let stack = ctx.cloud.stack();
        let iam = client(ctx.cloud)?;
        let roles = iam
            .list_roles()
            .path_prefix(Logging::role_path(stack))
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .call("ListRoles")?;
        let mine: Vec<(Address, &IamRole)> = roles
            .iter()
            .filter_map(|r| owned(r, stack).map(|a| (a, r)))
            .filter(|(a, _)| ctx.only.is_none_or(|o| o == a))
            .collect();
        let reads = mine.into_iter().map(|(address, role)| async move {
            let policies = ctx.limited(attached(iam, role.role_name())).await?;
            let policy = role.assume_role_policy_document().map(|d| parse_document(d).unwrap_or(json!(d)));
            let attrs = super::attrs(&json!({
                "name": role.role_name(),
                "path": role.path(),
                "assume_role_policy": policy,
                "managed_policies": policies,
            }));
            let mut live = Live::new(address, GLOBAL, role.role_name(), attrs);
            live.outputs = outputs(role);
            Ok::<_, CloudError>(live)
        });
        futures::future::try_join_all(reads).await
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let iam = client(cloud)?;
        let stack = cloud.stack();
        let tags = create_tags(cloud, op)
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CloudError::internal(format!("{}: tags: {e}", op.address)))?;
        // The marker and the tags go in with the create: from its first moment the role is findable as the stack's.
        let made = iam
            .create_role()
            .role_name(&want.name)
            .path(&want.path)
            .description(marker(stack, op.address))
            .assume_role_policy_document(want.assume_role_policy.to_string())
            .set_tags(Some(tags))
            .send()
            .await
            .call("CreateRole");
        let role = match made {
            Ok(out) => out.role.ok_or_else(|| CloudError::internal("CreateRole returned no role"))?,
            // A repeat of our own create (its answer was lost): the role is there with our marker; finish it.
            Err(e) if e.code() == "EntityAlreadyExists" => {
                let existing = iam.get_role().role_name(&want.name).send().await.call("GetRole")?.role;
                match existing.filter(|r| owned(r, stack).as_ref() == Some(op.address)) {
                    Some(role) => role,
                    None => {
                        return Err(CloudError {
                            operation: "CreateRole".into(),
                            code: Some("RoleNotOwned".into()),
                            message: format!("{}: {}", op.address, not_ours(&want.name, stack)),
                        });
                    }
                }
            }
            Err(e) => return Err(e),
        };
        let have = attached(iam, role.role_name()).await.unwrap_or_default();
        sync_policies(cloud, role.role_name(), &want.managed_policies, &have).await?;
        Ok(Created { id: role.role_name().to_string(), outputs: outputs(&role) })
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let iam = client(cloud)?;
        let name = op.id()?;
        if op.changed("assume_role_policy") {
            iam.update_assume_role_policy()
                .role_name(name)
                .policy_document(want.assume_role_policy.to_string())
                .send()
                .await
                .call("UpdateAssumeRolePolicy")?;
        }
        if op.changed("managed_policies") {
            let have: Vec<String> = op
                .live
                .as_ref()
                .and_then(|l| l.get("managed_policies"))
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            sync_policies(cloud, name, &want.managed_policies, &have).await?;
        }
        Ok(())
    }

    /// IAM refuses to delete a role that still has policies: every attached one is detached and every inline one
    /// deleted first (someone may have added either by hand), then the role goes.
    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let iam = client(cloud)?;
        let name = op.id()?;
        let have = match attached(iam, name).await {
            Err(e) if e.is_not_found() => return Ok(()),
            other => other?,
        };
        sync_policies(cloud, name, &[], &have).await?;
        let inline = iam
            .list_role_policies()
            .role_name(name)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .call("ListRolePolicies");
        let inline = match inline {
            Err(e) if e.is_not_found() => return Ok(()),
            other => other?,
        };
        for policy in inline {
            super::gone_ok(
                iam.delete_role_policy().role_name(name).policy_name(policy).send().await.call("DeleteRolePolicy"),
            )?;
        }
        super::gone_ok(iam.delete_role().role_name(name).send().await.call("DeleteRole"))
    }

    /// Before a create: a role of the same name (unique in the account, whatever the path) that is not the
    /// stack's. One GetRole; NoSuchEntity means the name is free.
    async fn occupied(&self, ctx: &ReadCtx<'_>, desired: &Desired) -> Result<Vec<String>, CloudError> {
        let Some(name) = desired.attrs.get("name").and_then(Value::as_str) else { return Ok(Vec::new()) };
        let stack = ctx.cloud.stack();
        let found = client(ctx.cloud)?.get_role().role_name(name).send().await.call("GetRole");
        match found {
            Err(e) if e.is_not_found() => Ok(Vec::new()),
            Err(e) => Err(e),
            // A noun phrase: the plan shows "blocked by ..., which the stack does not own".
            Ok(out) => match out.role {
                Some(r) if owned(&r, stack).is_none() => {
                    let other = super::origin_access_control::parse_marker(r.description().unwrap_or_default());
                    Ok(vec![match other {
                        Some((other, _)) if other != stack => {
                            format!("IAM role {name} of stack {other} (delete it there, or rename this stack)")
                        }
                        _ => format!(
                            "IAM role {name} at path {} (made outside webscale: delete or rename it, or rename this stack)",
                            r.path()
                        ),
                    }])
                }
                _ => Ok(Vec::new()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trust_policy_reads_back_alike_whether_iam_encodes_it_or_lists_it_differently() {
        let want = normalized(&trust_policy());
        assert_eq!(want, trust_policy(), "the desired document is already in the compared form");
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%5B%22lambda.amazonaws.com%22%5D%7D%2C%22Action%22%3A%5B%22sts%3AAssumeRole%22%5D%7D%5D%7D";
        assert_eq!(parse_document(encoded), Some(want.clone()), "URL-encoded, one-element lists");
        let single = r#"{"Version":"2012-10-17","Statement":{"Sid":"","Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}}"#;
        assert_eq!(parse_document(single), Some(want.clone()), "one statement as an object, an empty Sid");
        let wider = encoded.replace("lambda.amazonaws.com", "ec2.amazonaws.com");
        assert_ne!(parse_document(&wider), Some(want), "another service trusted is a change");
        assert_eq!(parse_document("not json"), None);
    }

    #[test]
    fn a_role_is_the_stacks_only_under_its_path_with_its_marker() {
        let role = |path: &str, description: Option<&str>| {
            IamRole::builder()
                .path(path)
                .role_name("shop-events")
                .role_id("AROA1")
                .arn("arn:aws:iam::123456789012:role/webscale/shop/shop-events")
                .create_date(aws_smithy_types::DateTime::from_secs(0))
                .set_description(description.map(str::to_string))
                .build()
                .unwrap()
        };
        let ours = marker("shop", &address());
        assert_eq!(owned(&role("/webscale/shop/", Some(&ours)), "shop"), Some(address()));
        assert_eq!(owned(&role("/", Some(&ours)), "shop"), None, "outside the stack's path");
        assert_eq!(owned(&role("/webscale/shop/", None), "shop"), None, "no marker");
        assert_eq!(owned(&role("/webscale/shop/", Some(&marker("shop2", &address()))), "shop"), None);
    }
}
