//! `listener.http` and `listener.https`: what the load balancer does with a request. Without a certificate, HTTP on
//! port 80 forwards to `target_group.web`. With `[load_balancer] certificate_arn`, HTTPS on 443 (with that
//! certificate) forwards, and HTTP redirects to it; the HTTPS listener comes first, so HTTP never redirects to a
//! port that does not answer yet.
//!
//! A listener switched to another target group (the group was replaced) is changed in place (ModifyListener), before
//! the old group is deleted.

use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, Certificate, Listener as AwsListener, ProtocolEnum, RedirectActionConfig,
    RedirectActionStatusCodeEnum,
};
use futures::future::try_join_all;
use serde::Deserialize;
use serde_json::{Value, json};

use super::elb_tags::{self, tag_list};
use super::tags::{Tags, desired as desired_tags};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx, ReplaceOrder, Timeouts, cloud_id, reference};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::Stack;

pub struct Listener;

pub fn http() -> Address {
    Address::new("listener", "http")
}

pub fn https() -> Address {
    Address::new("listener", "https")
}

#[derive(Deserialize)]
struct Attrs {
    load_balancer: String,
    port: i32,
    protocol: String,
    certificates: Vec<String>,
    action: DefaultAction,
    tags: Tags,
}

/// What the listener does with every request (its default action).
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum DefaultAction {
    Forward { target_group: String },
    Redirect { protocol: String, port: String, status_code: String },
}

/// Live attributes an update needs (the live action may be one webscale does not write).
#[derive(Deserialize)]
struct LiveTags {
    tags: Tags,
}

#[async_trait]
impl Kind for Listener {
    fn name(&self) -> &'static str {
        "listener"
    }

    fn service(&self) -> &'static str {
        "elasticloadbalancing"
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let Some(lb) = &stack.load_balancer else { return Vec::new() };
        let load_balancer = reference(&super::load_balancer::address());
        let forward = json!({ "type": "forward", "target_group": reference(&super::target_group::address()) });
        let listener = |address: Address, port: u16, protocol: &str, certificates: Vec<&String>, action: &Value| {
            let attrs = json!({
                "load_balancer": load_balancer,
                "port": port,
                "protocol": protocol,
                "certificates": certificates,
                "action": action,
                "tags": desired_tags(stack, &address),
            });
            Desired::in_home_region(stack, address, &attrs)
        };
        match &lb.certificate_arn {
            None => vec![listener(http(), 80, "HTTP", vec![], &forward)],
            Some(certificate) => {
                let redirect =
                    json!({ "type": "redirect", "protocol": "HTTPS", "port": "443", "status_code": "HTTP_301" });
                let mut plain = listener(http(), 80, "HTTP", vec![], &redirect);
                // Redirect only once HTTPS answers.
                plain.depends_on.push(https());
                vec![listener(https(), 443, "HTTPS", vec![certificate], &forward), plain]
            }
        }
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            Attr::new("load_balancer").forces_replacement(),
            Attr::new("port"),
            Attr::new("protocol"),
            Attr::new("certificates"),
            Attr::new("action"),
            Attr::new("tags"),
        ];
        SCHEMA
    }

    /// Replaced only with its load balancer: the new listener goes on the new load balancer before the old one
    /// (and its listeners) go.
    fn replace_order(&self) -> ReplaceOrder {
        ReplaceOrder::CreateFirst
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts::minutes(5, 5, 5)
    }

    /// Through the stack's load balancers: one DescribeListeners per load balancer, then their tags, 20 a call.
    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let elb = elb_tags::client(ctx.cloud, region)?;
        let balancers = elb_tags::load_balancers(ctx, region).await?;
        let per_balancer = balancers.iter().map(|lb| async move {
            let pages = elb.describe_listeners().load_balancer_arn(&lb.arn).into_paginator().items().send();
            ctx.limited(pages.collect::<Result<Vec<_>, _>>()).await.call("DescribeListeners")
        });
        let all: Vec<AwsListener> = try_join_all(per_balancer).await?.into_iter().flatten().collect();
        let owned = elb_tags::owned(ctx, region, self.name(), all, |l| l.listener_arn()).await?;
        Ok(owned
            .into_iter()
            .map(|o| {
                let l = &o.item;
                let certificates: Vec<&str> = l.certificates().iter().filter_map(|c| c.certificate_arn()).collect();
                let attrs = json!({
                    "load_balancer": l.load_balancer_arn().map(cloud_id),
                    "port": l.port(),
                    "protocol": l.protocol().map(|p| p.as_str()),
                    "certificates": certificates,
                    "action": l.default_actions().first().map(live_action),
                    "tags": o.tags,
                });
                Live::new(o.address.clone(), region, &o.arn, super::attrs(&attrs))
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        // Never repeated blindly (`elb_tags::once`): after a lost answer the engine looks for the listener by its tags
        // first. A repeat on AWS is answered with the listener the first call made (same settings) or meets
        // DuplicateListener (the port is taken), which the engine finishes as "already exists".
        let out = elb_tags::client(cloud, op.region)?
            .create_listener()
            .load_balancer_arn(&want.load_balancer)
            .port(want.port)
            .protocol(ProtocolEnum::from(want.protocol.as_str()))
            .set_certificates(certificates(&want.certificates))
            .default_actions(aws_action(&want.action))
            .set_tags(Some(tag_list(&want.tags)))
            .customize()
            .config_override(elb_tags::once())
            .send()
            .await
            .call("CreateListener")
            .map_err(|e| certificate_missing(op, &want.certificates, e))?;
        let arn = out
            .listeners()
            .first()
            .and_then(|l| l.listener_arn())
            .ok_or_else(|| CloudError::internal("CreateListener returned no listener ARN"))?;
        Ok(Created::from(arn.to_string()))
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let have: LiveTags = op.live()?;
        let arn = op.id()?;
        if ["port", "protocol", "certificates", "action"].iter().any(|a| op.changed(a)) {
            elb_tags::client(cloud, op.region)?
                .modify_listener()
                .listener_arn(arn)
                .port(want.port)
                .protocol(ProtocolEnum::from(want.protocol.as_str()))
                .set_certificates(certificates(&want.certificates))
                .default_actions(aws_action(&want.action))
                .send()
                .await
                .call("ModifyListener")
                .map_err(|e| certificate_missing(op, &want.certificates, e))?;
        }
        if want.tags != have.tags {
            elb_tags::sync_tags(cloud, op.region, arn, &want.tags, &have.tags).await?;
        }
        Ok(())
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let result = elb_tags::client(cloud, op.region)?.delete_listener().listener_arn(op.id()?).send().await;
        super::gone_ok(result.call("DeleteListener"))
    }
}

/// AWS's `CertificateNotFound` reads like a resource not visible yet, which the engine would retry for minutes; a
/// certificate that is not there does not appear by waiting. Said plainly instead, and not retried.
fn certificate_missing(op: &Op<'_>, arns: &[String], e: CloudError) -> CloudError {
    if e.code() != "CertificateNotFound" {
        return e;
    }
    CloudError::internal(format!(
        "{}: {} ({}: {}). The load balancer takes an ACM certificate of its own region ({}): check \
         [load_balancer] certificate_arn, then run the same command again",
        op.address,
        match arns {
            [one] => format!("certificate {one} was not found"),
            _ => "the certificate was not found".to_string(),
        },
        e.operation,
        e.message,
        op.region
    ))
}

fn certificates(arns: &[String]) -> Option<Vec<Certificate>> {
    let unique: BTreeSet<&String> = arns.iter().collect();
    (!unique.is_empty())
        .then(|| unique.into_iter().map(|a| Certificate::builder().certificate_arn(a).build()).collect())
}

fn aws_action(action: &DefaultAction) -> Action {
    match action {
        DefaultAction::Forward { target_group } => {
            Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(target_group).build()
        }
        DefaultAction::Redirect { protocol, port, status_code } => Action::builder()
            .r#type(ActionTypeEnum::Redirect)
            .redirect_config(
                RedirectActionConfig::builder()
                    .protocol(protocol)
                    .port(port)
                    .status_code(RedirectActionStatusCodeEnum::from(status_code.as_str()))
                    .build(),
            )
            .build(),
    }
}

/// A live default action in the terms of the desired one. Anything else (fixed responses, weighted forwards made by
/// hand) reads as its type alone, which differs from what the spec asks and is put back.
fn live_action(a: &Action) -> Value {
    let kind = a.r#type().map(|t| t.as_str()).unwrap_or("unknown");
    match a.r#type() {
        Some(ActionTypeEnum::Forward) => {
            let groups: Vec<&str> = match a.target_group_arn() {
                Some(arn) => vec![arn],
                None => a
                    .forward_config()
                    .map(|f| f.target_groups().iter().filter_map(|g| g.target_group_arn()).collect())
                    .unwrap_or_default(),
            };
            match groups.as_slice() {
                [one] => json!({ "type": "forward", "target_group": cloud_id(*one) }),
                _ => {
                    json!({ "type": "forward", "target_groups": groups.iter().map(|g| cloud_id(*g)).collect::<Vec<_>>() })
                }
            }
        }
        Some(ActionTypeEnum::Redirect) => {
            let r = a.redirect_config();
            json!({
                "type": "redirect",
                "protocol": r.and_then(|r| r.protocol()),
                "port": r.and_then(|r| r.port()),
                "status_code": r.and_then(|r| r.status_code()).map(|s| s.as_str()),
            })
        }
        _ => json!({ "type": kind }),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn stack(certificate: Option<&str>) -> Stack {
        let file = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/webscale.toml"));
        let mut text = std::fs::read_to_string(file).expect("reference template");
        if let Some(arn) = certificate {
            text = text.replacen("[load_balancer]\n", &format!("[load_balancer]\ncertificate_arn = \"{arn}\"\n"), 1);
        }
        crate::spec::parse(file, &text, &Default::default()).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn without_a_certificate_http_forwards_to_the_target_group() {
        let desired = Listener.desired(&stack(None));
        assert_eq!(desired.len(), 1);
        assert_eq!(desired[0].address, http());
        assert_eq!(
            desired[0].attrs["action"],
            json!({ "type": "forward", "target_group": { "ref": "target_group.web" } })
        );
        assert_eq!(desired[0].attrs["certificates"], json!([]));
    }

    #[test]
    fn with_a_certificate_https_forwards_and_http_redirects_to_it_once_it_exists() {
        let arn = "arn:aws:acm:us-east-1:123456789012:certificate/0b6f3a2e-1111-2222-3333-444455556666";
        let desired = Listener.desired(&stack(Some(arn)));
        let by = |a: &Address| desired.iter().find(|d| &d.address == a).unwrap_or_else(|| panic!("no {a}"));
        let (secure, plain) = (by(&https()), by(&http()));
        assert_eq!((&secure.attrs["port"], &secure.attrs["protocol"]), (&json!(443), &json!("HTTPS")));
        assert_eq!(secure.attrs["certificates"], json!([arn]));
        assert_eq!(secure.attrs["action"]["type"], "forward");
        assert_eq!(
            plain.attrs["action"],
            json!({ "type": "redirect", "protocol": "HTTPS", "port": "443", "status_code": "HTTP_301" })
        );
        assert_eq!(plain.depends_on, [https()], "HTTP redirects only once HTTPS answers");
    }

    #[test]
    fn a_missing_certificate_is_said_plainly_and_not_retried() {
        let address = https();
        let op = Op {
            address: &address,
            region: "eu-west-1",
            id: None,
            desired: None,
            live: None,
            changed: &[],
            token: String::new(),
            digests: Default::default(),
            skip_final_snapshot: false,
            wait: false,
            stack: None,
            progress: None,
        };
        let aws = CloudError {
            operation: "CreateListener".into(),
            code: Some("CertificateNotFound".into()),
            message: "Certificate 'arn:x' not found".into(),
        };
        let e = certificate_missing(&op, &["arn:x".to_string()], aws);
        assert!(!e.is_not_found() && !e.is_ambiguous(), "the engine does not retry it: {e:?}");
        assert!(e.message.contains("listener.https: certificate arn:x was not found"), "{e}");
        assert!(e.message.contains("its own region (eu-west-1)"), "{e}");
        let other =
            CloudError { operation: "CreateListener".into(), code: Some("Throttling".into()), message: String::new() };
        assert_eq!(certificate_missing(&op, &[], other).code(), "Throttling", "other errors pass through");
    }
}
