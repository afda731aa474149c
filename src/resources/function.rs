//! `function.events`: the logging pipeline's Node.js Lambda function. It receives the events published to
//! `topic.events` and writes each as one JSON line to its log group, `log_group.events`, which webscale creates
//! BEFORE the function (`depends_on`): Lambda would otherwise make `/aws/lambda/FUNCTION` itself on the first
//! invoke, a group the stack does not own and a later apply would fail to create ("already exists").
//!
//! The code is the spec's reproducible zip of the handler folder (`[logging] handler`), sent in the create call and
//! in UpdateFunctionCode; `code_sha256` (base64 SHA-256 of that zip) is compared with the live CodeSha256, so an
//! unchanged handler plans nothing and an edited one plans a code update alone. Environment variables: the spec's
//! plain ones are shown in plans; the secret ones (`secret_environment`, values from webscale's own environment)
//! are sensitive, shown as digests only. A variable someone added by hand reads as part of `secret_environment`
//! (never shown) and is removed by the next apply.
//!
//! Ownership: the Description carries the ownership pair ([`marker`], ListFunctions returns no tags); the tags are
//! set in the create call as well. Read: ListFunctions, one call per 50 functions, shared with
//! `function_permission` (`listing`); every attribute comes from that listing, no per-function call. (AWS's
//! ListFunctions leaves out State and LastUpdateStatus: a function still Pending reads as settled there, and an
//! update meeting it retries Lambda's ResourceConflictException until it is.)
//!
//! AWS rules the emulator does not show (tests/mocked/lambda.rs):
//! - a role created a moment ago is not yet assumable by Lambda: CreateFunction answers
//!   InvalidParameterValueException "The role defined for the function cannot be assumed by Lambda", retried for up
//!   to 5 minutes (the Terraform AWS provider's propagation window) and nothing else is;
//! - a create repeated after its answer was lost meets ResourceConflictException: a function of that name carrying
//!   the stack's marker is the first call's;
//! - a new function is Pending, then Active (or Failed, with a reason); an update is InProgress, then Successful
//!   (or Failed); a second update while one is in progress is refused with ResourceConflictException, so a code
//!   change and a configuration change go one after the other.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_lambda::client::Waiters;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{Environment, FunctionCode, FunctionConfiguration, LastUpdateStatus, Runtime, State};
use aws_smithy_runtime_api::client::waiters::error::WaiterError;
use serde::Deserialize;
use serde_json::json;

use super::origin_access_control::{marker, owned_by_marker};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, Progress, ReadCtx, Timeouts, output_reference};
use crate::apply::Phase;
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{Logging, Stack};

pub struct Function;

pub fn address() -> Address {
    Address::new("function", "events")
}

/// How long a fresh role may stay unassumable by Lambda (tfaws `lambdaPropagationTimeout`).
pub const ROLE_PROPAGATION: Duration = Duration::from_secs(5 * 60);
/// How long an update waits for Lambda to finish the one before it.
pub const UPDATE_IN_PROGRESS: Duration = Duration::from_secs(5 * 60);
/// First pause between attempts; doubles up to [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_secs(2);
const MAX_PAUSE: Duration = Duration::from_secs(15);
/// What the SDK waiter is given as its limit: the engine bounds every wait by the kind's timeouts and by Ctrl-C.
const UNBOUNDED: Duration = Duration::from_secs(24 * 3600);

/// The attributes that UpdateFunctionConfiguration changes (all but the name and the code).
const CONFIGURATION: [&str; 7] =
    ["runtime", "handler", "memory_mb", "timeout_seconds", "role", "environment", "secret_environment"];

#[derive(Deserialize)]
struct Attrs {
    name: String,
    runtime: String,
    handler: String,
    memory_mb: i32,
    timeout_seconds: i32,
    role: String,
    environment: BTreeMap<String, String>,
    secret_environment: BTreeMap<String, String>,
}

impl Attrs {
    /// Every variable, plain and secret: Lambda keeps one map.
    fn variables(&self) -> HashMap<String, String> {
        self.environment.iter().chain(&self.secret_environment).map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

pub(super) fn client<'a>(cloud: &'a Cloud, region: &str) -> Result<&'a aws_sdk_lambda::Client, CloudError> {
    Ok(&cloud.clients(region)?.lambda)
}

/// Every function of the region, listed once per plan (50 a page, Lambda's maximum) and shared with
/// `function_permission`, which asks only the stack's functions for their policies.
pub(super) async fn listing(ctx: &ReadCtx<'_>, region: &str) -> Result<Arc<Vec<FunctionConfiguration>>, CloudError> {
    ctx.shared(&format!("lambda:functions:{region}"), || async {
        client(ctx.cloud, region)?
            .list_functions()
            .max_items(50)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .call("ListFunctions")
    })
    .await
}

/// The address a function has when its description carries the stack's marker.
pub(super) fn owned(f: &FunctionConfiguration, stack: &str) -> Option<Address> {
    owned_by_marker(f.description().unwrap_or_default(), stack, "function", f.function_name().unwrap_or_default())
}

/// The retries Lambda's own rules call for, in tokio's time (tests run 5 minutes of it in no time): `again` says
/// which errors clear by themselves; any other error, or the limit, ends it.
async fn retrying<T, F, Fut>(limit: Duration, again: fn(&CloudError) -> bool, mut f: F) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CloudError>>,
{
    let started = tokio::time::Instant::now();
    let mut pause = FIRST_PAUSE;
    loop {
        match f().await {
            Err(e) if again(&e) && started.elapsed() + pause <= limit => {
                tracing::debug!(error = %e, ?pause, "Lambda is not ready yet, retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_PAUSE);
            }
            other => return other,
        }
    }
}

/// A role created a moment ago, not yet visible to Lambda (IAM is eventually consistent).
pub fn role_not_assumable(e: &CloudError) -> bool {
    e.code() == "InvalidParameterValueException" && e.message.contains("cannot be assumed")
}

/// Lambda refuses a change while the previous one is in progress (or the function is still Pending).
fn busy(e: &CloudError) -> bool {
    e.code() == "ResourceConflictException"
}

fn outputs(f: &FunctionConfiguration) -> super::Attrs {
    super::attrs(&json!({ "arn": f.function_arn(), "name": f.function_name() }))
}

/// The zip to send: the spec's package of the handler folder.
fn package<'a>(op: &Op<'a>) -> Result<&'a [u8], CloudError> {
    match op.stack.and_then(|s| s.logging.as_ref()) {
        Some(l) if !l.package.is_empty() => Ok(&l.package),
        _ => Err(CloudError::internal(format!(
            "{}: the handler's package is missing (no [logging] handler folder was read): check [logging] handler and run again",
            op.address
        ))),
    }
}

/// What AWS says is happening to the function, when it is not settled: "Pending", "InProgress".
fn pending(f: &FunctionConfiguration) -> Option<String> {
    if f.state() == Some(&State::Pending) {
        return Some("Pending".into());
    }
    (f.last_update_status() == Some(&LastUpdateStatus::InProgress)).then(|| "update InProgress".into())
}

#[async_trait]
impl Kind for Function {
    fn name(&self) -> &'static str {
        "function"
    }

    fn service(&self) -> &'static str {
        "lambda"
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            Attr::new("name").forces_replacement(),
            Attr::new("runtime"),
            Attr::new("handler"),
            Attr::new("memory_mb"),
            Attr::new("timeout_seconds"),
            Attr::new("role"),
            Attr::new("environment"),
            Attr::new("secret_environment").sensitive(),
            Attr::new("code_sha256"),
        ];
        SCHEMA
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let Some(l) = &stack.logging else { return Vec::new() };
        // A secret whose value is missing is left out here: plan and apply refuse earlier (require_secrets).
        let secrets: BTreeMap<&str, &str> = l
            .secret_environment
            .iter()
            .filter_map(|v| v.value.as_ref().ok().map(|s| (v.name.as_str(), s.expose())))
            .collect();
        let attrs = json!({
            "name": Logging::function_name(&stack.name),
            "runtime": l.runtime,
            "handler": l.handler,
            "memory_mb": l.memory_mb,
            "timeout_seconds": l.timeout_seconds,
            "role": output_reference(&super::role::address(), "arn"),
            "environment": l.environment,
            "secret_environment": secrets,
            "code_sha256": l.code_sha256,
        });
        let mut d = Desired::in_home_region(stack, address(), &attrs);
        // The function's log group exists first, so Lambda never makes one of its own (issue 10, point 5).
        d.depends_on = vec![Address::new("log_group", "events")];
        vec![d]
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts::minutes(10, 10, 5)
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let stack = ctx.cloud.stack();
        // Names the spec gives as plain variables are shown; every other live variable counts as secret.
        let plain: Vec<&String> = ctx.stack.logging.iter().flat_map(|l| l.environment.keys()).collect();
        Ok(listing(ctx, region)
            .await?
            .iter()
            .filter_map(|f| {
                let address = owned(f, stack)?;
                if ctx.only.is_some_and(|a| *a != address) {
                    return None;
                }
                let name = f.function_name()?;
                let variables = f.environment().and_then(|e| e.variables()).cloned().unwrap_or_default();
                let (shown, secret): (BTreeMap<String, String>, BTreeMap<String, String>) =
                    variables.into_iter().partition(|(k, _)| plain.contains(&k));
                let attrs = super::attrs(&json!({
                    "name": name,
                    "runtime": f.runtime().map(Runtime::as_str),
                    "handler": f.handler(),
                    "memory_mb": f.memory_size(),
                    "timeout_seconds": f.timeout(),
                    "role": f.role(),
                    "environment": shown,
                    "secret_environment": secret,
                    "code_sha256": f.code_sha256(),
                }));
                let mut live = Live::new(address, region, name, attrs);
                live.outputs = outputs(f);
                live.pending = pending(f);
                Some(live)
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let zip = package(op)?;
        let lambda = client(cloud, op.region)?;
        let description = marker(cloud.stack(), op.address);
        let tags: HashMap<String, String> = super::role::create_tags(cloud, op).into_iter().collect();
        let call = || async {
            lambda
                .create_function()
                .function_name(&want.name)
                .runtime(Runtime::from(want.runtime.as_str()))
                .handler(&want.handler)
                .role(&want.role)
                .memory_size(want.memory_mb)
                .timeout(want.timeout_seconds)
                .environment(Environment::builder().set_variables(Some(want.variables())).build())
                .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
                // The marker and the tags go in with the create: from its first moment the function is the stack's.
                .description(&description)
                .set_tags(Some(tags.clone()))
                .publish(false)
                .send()
                .await
                .call("CreateFunction")
        };
        match retrying(ROLE_PROPAGATION, role_not_assumable, call).await {
            Ok(f) => Ok(Created {
                id: f.function_name().unwrap_or(&want.name).to_string(),
                outputs: super::attrs(&json!({ "arn": f.function_arn(), "name": f.function_name() })),
            }),
            // A repeat of our own create (its answer was lost): the function is there, with our marker.
            Err(e) if e.code() == "ResourceConflictException" => {
                let got = lambda.get_function().function_name(&want.name).send().await.call("GetFunction")?;
                match got.configuration().filter(|f| owned(f, cloud.stack()).as_ref() == Some(op.address)) {
                    Some(f) => Ok(Created { id: want.name.clone(), outputs: outputs(f) }),
                    None => Err(CloudError {
                        operation: "CreateFunction".into(),
                        code: Some("FunctionNotOwned".into()),
                        message: format!(
                            "{}: Lambda function {} exists but is not stack {}'s (its description does not carry the stack's marker): delete or rename it, then run again",
                            op.address,
                            want.name,
                            cloud.stack()
                        ),
                    }),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The code and the configuration are two calls, and Lambda takes one update at a time: after a code update,
    /// the configuration waits until Lambda reports the code update Successful.
    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let lambda = client(cloud, op.region)?;
        let name = op.id()?;
        let configure = CONFIGURATION.iter().any(|a| op.changed(a));
        if op.changed("code_sha256") {
            let zip = package(op)?;
            retrying(UPDATE_IN_PROGRESS, busy, || async {
                lambda
                    .update_function_code()
                    .function_name(name)
                    .zip_file(Blob::new(zip))
                    .publish(false)
                    .send()
                    .await
                    .call("UpdateFunctionCode")
            })
            .await?;
            if configure {
                let progress = Progress::default();
                tokio::time::timeout(UPDATE_IN_PROGRESS, until_updated(lambda, op.address, name, &progress))
                    .await
                    .map_err(|_| {
                    CloudError::internal(format!(
                        "{}: Lambda did not finish the code update within {} minutes; run the apply again",
                        op.address,
                        UPDATE_IN_PROGRESS.as_secs() / 60
                    ))
                })??;
            }
        }
        if configure {
            // A role replaced a moment ago may not be assumable yet, like at create.
            let again: fn(&CloudError) -> bool = |e| busy(e) || role_not_assumable(e);
            retrying(UPDATE_IN_PROGRESS.max(ROLE_PROPAGATION), again, || async {
                lambda
                    .update_function_configuration()
                    .function_name(name)
                    .runtime(Runtime::from(want.runtime.as_str()))
                    .handler(&want.handler)
                    .role(&want.role)
                    .memory_size(want.memory_mb)
                    .timeout(want.timeout_seconds)
                    // The whole map: a variable added by hand goes.
                    .environment(Environment::builder().set_variables(Some(want.variables())).build())
                    .description(marker(cloud.stack(), op.address))
                    .send()
                    .await
                    .call("UpdateFunctionConfiguration")
            })
            .await?;
        }
        Ok(())
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let lambda = client(cloud, op.region)?;
        super::gone_ok(lambda.delete_function().function_name(op.id()?).send().await.call("DeleteFunction"))
    }

    async fn wait(
        &self,
        cloud: &Cloud,
        op: &Op<'_>,
        id: &str,
        phase: Phase,
        progress: &Progress,
    ) -> Result<(), CloudError> {
        let lambda = client(cloud, op.region)?;
        match phase {
            Phase::Create | Phase::Wait => {
                until_active(lambda, op.address, id, progress).await?;
                until_updated(lambda, op.address, id, progress).await
            }
            Phase::Update => until_updated(lambda, op.address, id, progress).await,
            Phase::Delete => Ok(()),
        }
    }
}

fn failed(address: &Address, id: &str, what: &str, reason: Option<&str>) -> CloudError {
    CloudError {
        operation: "wait for the function".into(),
        code: Some("FunctionFailed".into()),
        message: format!(
            "{address} ({id}): {what} failed: {}; fix the cause (the function's handler, role or settings), then run the apply again",
            reason.unwrap_or("Lambda gave no reason")
        ),
    }
}

/// Until State is Active (the SDK waiter FunctionActiveV2 polls GetFunction); Failed ends it with Lambda's reason.
async fn until_active(
    lambda: &aws_sdk_lambda::Client,
    address: &Address,
    id: &str,
    progress: &Progress,
) -> Result<(), CloudError> {
    progress.set("Pending");
    loop {
        match lambda.wait_until_function_active_v2().function_name(id).wait(UNBOUNDED).await {
            Ok(_) => {
                progress.set("Active");
                return Ok(());
            }
            Err(WaiterError::FailureState(f)) => {
                let reason = f.final_poll().as_result().ok().and_then(|o| o.configuration()?.state_reason());
                return Err(failed(address, id, "its creation", reason));
            }
            Err(e) => {
                let e = waiter_error(e, "wait for the function to become active");
                // Right after the create, GetFunction may not see the function yet (Lambda's reads are eventually
                // consistent), and the waiter has no case for "not found": look again, within the engine's bound.
                if !e.is_not_found() {
                    return Err(e);
                }
                tokio::time::sleep(FIRST_PAUSE).await;
            }
        }
    }
}

/// Until LastUpdateStatus is Successful (the SDK waiter FunctionUpdatedV2); Failed ends it with Lambda's reason.
async fn until_updated(
    lambda: &aws_sdk_lambda::Client,
    address: &Address,
    id: &str,
    progress: &Progress,
) -> Result<(), CloudError> {
    loop {
        match lambda.wait_until_function_updated_v2().function_name(id).wait(UNBOUNDED).await {
            Ok(_) => {
                progress.set("Successful");
                return Ok(());
            }
            Err(WaiterError::FailureState(f)) => {
                let reason =
                    f.final_poll().as_result().ok().and_then(|o| o.configuration()?.last_update_status_reason());
                return Err(failed(address, id, "its last update", reason));
            }
            Err(e) => {
                let e = waiter_error(e, "wait for the function's update");
                if !e.is_not_found() {
                    return Err(e);
                }
                tokio::time::sleep(FIRST_PAUSE).await;
            }
        }
    }
}

/// A waiter's error (not a failure state) as the engine's error, its AWS code kept.
fn waiter_error<E>(e: E, operation: &str) -> CloudError
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + 'static,
{
    Err::<(), E>(e).call(operation).err().unwrap_or_else(|| CloudError::internal(operation.to_string()))
}
