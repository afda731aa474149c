//! `ami.web`: the machine image the web instances launch from, when `[web] ami` is an SSM parameter path (AWS
//! publishes the current Amazon Linux image id under `/aws/service/ami-amazon-linux-latest/`). A lookup: read at
//! every plan (one GetParameter), never created, changed or deleted; its output `image_id` is what
//! `instance.web_N` refers to, so a new release published under the path plans a create-first roll of the
//! instances. When `ami` is an id there is nothing to look up: the instances carry the id itself.

use async_trait::async_trait;
use serde_json::json;

use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{Ami as Source, Stack};

pub struct Ami;

pub fn address() -> Address {
    Address::new("ami", "web")
}

/// The parameter path the spec names, if it names one.
fn parameter(stack: &Stack) -> Option<&str> {
    match &stack.web.as_ref()?.ami {
        Source::Parameter(path) => Some(path),
        Source::Id(_) => None,
    }
}

fn never(what: &str) -> CloudError {
    CloudError::internal(format!("{} is a lookup: webscale never {what}s a machine image", address()))
}

#[async_trait]
impl Kind for Ami {
    fn name(&self) -> &'static str {
        "ami"
    }

    fn service(&self) -> &'static str {
        "ssm"
    }

    fn is_lookup(&self) -> bool {
        true
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[Attr::new("parameter")];
        SCHEMA
    }

    /// What to look for; finding nothing fails the plan with `ami.web: found nothing for parameter = "/..."`.
    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let Some(path) = parameter(stack) else { return Vec::new() };
        vec![Desired::in_home_region(stack, address(), &json!({ "parameter": path }))]
    }

    /// One GetParameter, in the stack's home region only (where the instances are). A missing parameter is "found
    /// nothing" (the plan names the path); a value that is not an image id is an error naming both.
    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let Some(path) = parameter(ctx.stack) else { return Ok(Vec::new()) };
        if region != ctx.stack.region {
            return Ok(Vec::new());
        }
        let ssm = &ctx.cloud.clients(region)?.ssm;
        let answer = match ssm.get_parameter().name(path).send().await.call("GetParameter") {
            Err(e) if e.code() == "ParameterNotFound" => return Ok(Vec::new()),
            other => other?,
        };
        let Some(image) = answer.parameter().and_then(|p| p.value()) else { return Ok(Vec::new()) };
        if !image.starts_with("ami-") {
            return Err(CloudError::internal(format!(
                "{}: the SSM parameter {path} holds {image:?}, not an AMI id (\"ami-...\"); name a parameter that \
                 holds an image id, or give [web] ami as an id",
                address()
            )));
        }
        let mut live = Live::new(address(), region, image, super::attrs(&json!({ "parameter": path })));
        live.outputs = super::attrs(&json!({ "image_id": image }));
        Ok(vec![live])
    }

    async fn create(&self, _cloud: &Cloud, _op: &Op<'_>) -> Result<Created, CloudError> {
        Err(never("create"))
    }

    async fn update(&self, _cloud: &Cloud, _op: &Op<'_>) -> Result<(), CloudError> {
        Err(never("change"))
    }

    async fn delete(&self, _cloud: &Cloud, _op: &Op<'_>) -> Result<(), CloudError> {
        Err(never("delete"))
    }
}
