//! `certificate.assets`: the ACM certificate the CloudFront distribution presents for its aliases
//! (`[static_assets] aliases`). A lookup: found at every plan, never created, changed or deleted (issuing one needs
//! the domain's owner to prove it, which is not a step to automate behind an apply). CloudFront takes certificates
//! only from ACM in us-east-1, whatever the stack's region: the lookup asks there.
//!
//! The certificate found is an issued one covering every alias (by its domain name or a subject alternative name, a
//! wildcard covering one label), the one expiring last when several do. Finding none fails the plan with the names
//! to request a certificate for. One ListCertificates per page (1000 a page), however many certificates there are.

use async_trait::async_trait;
use aws_sdk_acm::types::{CertificateStatus, CertificateSummary, Filters, KeyAlgorithm};
use serde_json::{Value, json};

use super::{Address, Attr, Created, Desired, GLOBAL, Kind, Live, Op, ReadCtx, Scope};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::Stack;

pub struct Certificate;

pub fn address() -> Address {
    Address::new("certificate", "assets")
}

/// The names the certificate must cover, when the spec gives aliases.
fn wanted(stack: &Stack) -> Option<&[String]> {
    let assets = stack.static_assets.as_ref().filter(|a| a.cdn && !a.aliases.is_empty())?;
    Some(&assets.aliases)
}

/// Whether certificate name `pattern` (`*.example.com` or a plain name) covers `name`.
pub fn covers(pattern: &str, name: &str) -> bool {
    let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
    match pattern.strip_prefix("*.") {
        Some(parent) => name.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => pattern == name,
    }
}

/// The names a certificate of the listing answers to.
fn names(c: &CertificateSummary) -> Vec<&str> {
    c.domain_name().into_iter().chain(c.subject_alternative_name_summaries().iter().map(String::as_str)).collect()
}

fn never(what: &str) -> CloudError {
    CloudError::internal(format!("{} is a lookup: webscale never {what}s a certificate", address()))
}

#[async_trait]
impl Kind for Certificate {
    fn name(&self) -> &'static str {
        "certificate"
    }

    fn service(&self) -> &'static str {
        "acm"
    }

    fn scope(&self) -> Scope {
        Scope::Global
    }

    fn is_lookup(&self) -> bool {
        true
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[Attr::new("domains")];
        SCHEMA
    }

    /// What to look for; finding nothing fails the plan with `certificate.assets: found nothing for domains = [...]`.
    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let Some(aliases) = wanted(stack) else { return Vec::new() };
        vec![Desired::new(GLOBAL, address(), &json!({ "domains": aliases }))]
    }

    async fn read(&self, ctx: &ReadCtx<'_>, _region: &str) -> Result<Vec<Live>, CloudError> {
        let Some(aliases) = wanted(ctx.stack) else { return Ok(Vec::new()) };
        let acm = &ctx.cloud.clients(GLOBAL)?.acm;
        // By default ACM lists RSA 2048 certificates only; CloudFront also takes the larger RSA keys and P-256.
        let key_types =
            [KeyAlgorithm::Rsa2048, KeyAlgorithm::Rsa3072, KeyAlgorithm::Rsa4096, KeyAlgorithm::EcPrime256v1];
        let issued = acm
            .list_certificates()
            .certificate_statuses(CertificateStatus::Issued)
            .includes(Filters::builder().set_key_types(Some(key_types.to_vec())).build())
            .max_items(1000)
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .call("ListCertificates")?;
        let fits = |c: &&CertificateSummary| aliases.iter().all(|a| names(c).iter().any(|n| covers(n, a)));
        // Several fit (a renewal imported beside the old one): the one valid longest.
        let best = issued.iter().filter(fits).max_by_key(|c| c.not_after().map(|t| t.secs()).unwrap_or(0));
        let Some(found) = best.and_then(|c| c.certificate_arn().map(|arn| (c, arn))) else { return Ok(Vec::new()) };
        let (cert, arn) = found;
        let domains: Vec<Value> = aliases.iter().map(|a| Value::String(a.clone())).collect();
        let mut live = Live::new(address(), GLOBAL, arn, super::attrs(&json!({ "domains": domains })));
        live.outputs = super::attrs(&json!({ "arn": arn, "domain_name": cert.domain_name() }));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wildcard_covers_one_label_and_a_plain_name_itself() {
        assert!(covers("*.example.com", "static.example.com"));
        assert!(!covers("*.example.com", "example.com"), "a wildcard does not cover the apex");
        assert!(!covers("*.example.com", "a.static.example.com"), "nor two labels");
        assert!(covers("static.example.com", "static.example.com"));
        assert!(covers("Static.Example.com.", "static.example.com"));
        assert!(!covers("www.example.com", "static.example.com"));
    }
}
