//! `dns_zone.main`: an existing public hosted zone adopted by name (`[dns] create_zone = false`). A lookup: found at
//! plan time, never created, changed or deleted; only the records webscale writes in it are the stack's. Finding
//! none fails the plan. Outputs as `hosted_zone`'s: `zone_id`, `name_servers`, `name`.

use async_trait::async_trait;
use serde_json::json;

use super::route53;
use super::{Address, Attr, Created, Desired, GLOBAL, Kind, Live, Op, ReadCtx, Scope};
use crate::aws::{Cloud, CloudError};
use crate::spec::Stack;

pub struct DnsZone;

pub fn address() -> Address {
    Address::new("dns_zone", "main")
}

/// The zone name the spec adopts, if it adopts one.
fn adopted(stack: &Stack) -> Option<&str> {
    stack.dns.as_ref().filter(|d| !d.create_zone).map(|d| d.zone.as_str())
}

fn never(what: &str) -> CloudError {
    CloudError::internal(format!("{} is a lookup: webscale never {what}s an adopted hosted zone", address()))
}

#[async_trait]
impl Kind for DnsZone {
    fn name(&self) -> &'static str {
        "dns_zone"
    }

    fn service(&self) -> &'static str {
        "route53"
    }

    fn scope(&self) -> Scope {
        Scope::Global
    }

    fn is_lookup(&self) -> bool {
        true
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[Attr::new("public_zone_name")];
        SCHEMA
    }

    /// What to look for; the plan's error when nothing is found reads `dns_zone.main: found nothing for
    /// public_zone_name = "example.com"`.
    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let Some(zone) = adopted(stack) else { return Vec::new() };
        vec![Desired::new(GLOBAL, address(), &json!({ "public_zone_name": zone }))]
    }

    /// The public zone of the spec's name, from the account's zone listing every plan reads anyway (no call of
    /// its own besides GetHostedZone for the name servers). Two public zones of one name cannot be told apart:
    /// the plan stops and names both.
    async fn read(&self, ctx: &ReadCtx<'_>, _region: &str) -> Result<Vec<Live>, CloudError> {
        let Some(name) = adopted(ctx.stack) else { return Ok(Vec::new()) };
        let zones = route53::zones(ctx).await?;
        let found: Vec<&route53::Zone> = zones.iter().filter(|z| !z.private && z.name == name).collect();
        let zone = match found.as_slice() {
            [] => return Ok(Vec::new()),
            [one] => *one,
            many => {
                let ids: Vec<&str> = many.iter().map(|z| z.id.as_str()).collect();
                return Err(CloudError::internal(format!(
                    "{}: {} public hosted zones are named {name} ({}); webscale cannot tell which one to adopt. Delete the extra ones (or set create_zone = true to use a zone of the stack's own).",
                    address(),
                    ids.len(),
                    ids.join(", ")
                )));
            }
        };
        let servers = route53::name_servers(ctx, &zone.id).await?;
        let mut live =
            Live::new(address(), GLOBAL, zone.id.clone(), super::attrs(&json!({ "public_zone_name": name })));
        live.outputs = super::attrs(&json!({ "zone_id": zone.id, "name_servers": servers, "name": zone.name }));
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
