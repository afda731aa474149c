//! `hosted_zone.main`: the public Route 53 hosted zone the stack creates and owns (`[dns] create_zone = true`, the
//! default). Its outputs are what a registrar and the records need: `zone_id`, `name_servers`, `name`.
//!
//! Route 53 cannot tag in CreateHostedZone, so the tags follow in ChangeTagsForResource right after. A crash between
//! the two must not leave an orphan: the create's CallerReference is the stack's create token, and the read also
//! recognises the stack's zone by it. The same reference makes a repeated create safe on AWS: a second
//! CreateHostedZone with it answers HostedZoneAlreadyExists instead of making a second zone, and the engine then
//! finds the first one.

use async_trait::async_trait;
use aws_sdk_route53::types::{HostedZoneConfig, Tag, TagResourceType};
use serde::Deserialize;
use serde_json::{Value, json};

use super::route53::{self, Zone};
use super::tags::{self, Tags};
use super::{Address, Attr, Created, Desired, GLOBAL, Kind, Live, Op, Progress, ReadCtx, Scope, Timeouts};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::Stack;

pub struct HostedZone;

pub fn address() -> Address {
    Address::new("hosted_zone", "main")
}

#[derive(Deserialize)]
struct Attrs {
    name: String,
    tags: Tags,
}

/// Whether a zone of the account is this stack's `hosted_zone`: its tags say so, or (tags not written yet: the
/// create was interrupted) its caller reference is the one the stack's create uses.
pub(super) fn owned(zone: &Zone, stack: &str) -> Option<Address> {
    if zone.private {
        return None;
    }
    if tags::owned_by(&zone.tags, stack) {
        return Some(tags::owned_address(
            zone.tags.get(tags::TAG_ADDRESS).map(String::as_str),
            "hosted_zone",
            &zone.id,
        ));
    }
    let address = address();
    (zone.caller_reference == super::create_token(stack, &address, None)).then_some(address)
}

fn outputs(id: &str, name: &str, name_servers: Vec<String>) -> super::Attrs {
    super::attrs(&json!({ "zone_id": id, "name_servers": name_servers, "name": name }))
}

#[async_trait]
impl Kind for HostedZone {
    fn name(&self) -> &'static str {
        "hosted_zone"
    }

    fn service(&self) -> &'static str {
        "route53"
    }

    fn scope(&self) -> Scope {
        Scope::Global
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[Attr::new("name").forces_replacement(), Attr::new("tags")];
        SCHEMA
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let Some(dns) = stack.dns.as_ref().filter(|d| d.create_zone) else { return Vec::new() };
        let address = address();
        let attrs = json!({ "name": dns.zone, "tags": tags::desired(stack, &address) });
        vec![Desired::new(GLOBAL, address, &attrs)]
    }

    /// A zone change is INSYNC within a minute or two on AWS.
    fn timeouts(&self) -> Timeouts {
        Timeouts::minutes(10, 10, 10)
    }

    fn is_gone(&self, error: &CloudError) -> bool {
        error.is_not_found() || error.code() == "NoSuchHostedZone"
    }

    async fn read(&self, ctx: &ReadCtx<'_>, _region: &str) -> Result<Vec<Live>, CloudError> {
        let zones = route53::zones(ctx).await?;
        let stack = ctx.cloud.stack();
        let mine: Vec<(&Zone, Address)> = zones
            .iter()
            .filter_map(|z| owned(z, stack).map(|a| (z, a)))
            .filter(|(_, a)| ctx.only.is_none_or(|o| o == a))
            .collect();
        // The delegation set is only in GetHostedZone: one call per zone the stack owns (one, normally).
        let servers =
            futures::future::try_join_all(mine.iter().map(|(z, _)| route53::name_servers(ctx, &z.id))).await?;
        Ok(mine
            .into_iter()
            .zip(servers)
            .map(|((z, address), servers)| {
                let attrs = super::attrs(&json!({ "name": z.name, "tags": z.tags }));
                let mut live = Live::new(address, GLOBAL, z.id.clone(), attrs);
                live.outputs = outputs(&z.id, &z.name, servers);
                live
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let r53 = route53::client(cloud)?;
        let out = r53
            .create_hosted_zone()
            .name(&want.name)
            // Unique per create and repeated by a retry of the same create: AWS then answers
            // HostedZoneAlreadyExists rather than making a second zone (and the read recognises it).
            .caller_reference(op.client_token(128))
            .hosted_zone_config(
                HostedZoneConfig::builder()
                    .private_zone(false)
                    .comment(format!("webscale stack {} ({})", cloud.stack(), op.address))
                    .build(),
            )
            .send()
            .await
            .call("CreateHostedZone")?;
        let zone = out.hosted_zone().ok_or_else(|| CloudError::internal("CreateHostedZone returned no zone"))?;
        let id = route53::bare_id(zone.id());
        route53::started(cloud, op.address, &id, out.change_info());
        // Tags cannot go in the create call: written at once; until then the caller reference marks the zone.
        cloud.settled(|| add_tags(cloud, &id, &want.tags)).await?;
        let servers = out.delegation_set().map(|d| d.name_servers().to_vec()).unwrap_or_default();
        Ok(Created { id: id.clone(), outputs: outputs(&id, &route53::normal_name(zone.name()), servers) })
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let have: Attrs = op.live()?;
        if op.changed("tags") {
            let id = op.id()?;
            let stale: Vec<String> = have.tags.keys().filter(|k| !want.tags.contains_key(*k)).cloned().collect();
            for keys in stale.chunks(10) {
                route53::client(cloud)?
                    .change_tags_for_resource()
                    .resource_type(TagResourceType::Hostedzone)
                    .resource_id(id)
                    .set_remove_tag_keys(Some(keys.to_vec()))
                    .send()
                    .await
                    .call("ChangeTagsForResource")?;
            }
            let changed: Tags = want.tags.into_iter().filter(|(k, v)| have.tags.get(k) != Some(v)).collect();
            add_tags(cloud, id, &changed).await?;
        }
        Ok(())
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let id = op.id()?;
        let out = route53::client(cloud)?.delete_hosted_zone().id(id).send().await.call("DeleteHostedZone");
        match out {
            Ok(out) => {
                route53::started(cloud, op.address, id, out.change_info());
                Ok(())
            }
            Err(mut e) if e.code() == "HostedZoneNotEmpty" => {
                e.message.push_str(&format!(
                    " {} ({id}) still holds records the stack does not own: delete them (or move them to another zone), then run again.",
                    op.address
                ));
                Err(e)
            }
            Err(e) => Err(e),
        }
    }

    async fn wait(
        &self,
        cloud: &Cloud,
        op: &Op<'_>,
        id: &str,
        _phase: crate::apply::Phase,
        progress: &Progress,
    ) -> Result<(), CloudError> {
        route53::wait_insync(cloud, op.address, id, progress).await
    }

    /// Route 53 deletes only an empty zone (SOA and NS aside): the records the stack owns go first (they depend on
    /// the zone); anything else in it blocks the delete, found here before anything starts.
    async fn strangers(
        &self,
        ctx: &ReadCtx<'_>,
        live: &Live,
        _owned: &std::collections::HashSet<String>,
    ) -> Result<Vec<String>, CloudError> {
        let name = live.attrs.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        let records = route53::records(ctx, &live.id).await?;
        Ok(foreign_records(&records, &name, ctx.cloud.stack()))
    }
}

/// The records of a zone named `zone` that are neither the zone's own (SOA and NS at its apex) nor the stack's
/// (an ownership TXT record naming the stack, and the alias records it covers).
pub fn foreign_records(records: &[aws_sdk_route53::types::ResourceRecordSet], zone: &str, stack: &str) -> Vec<String> {
    let ours: Vec<(String, Vec<String>)> = records
        .iter()
        .filter_map(|r| {
            let owner = route53::owner_of(r).filter(|o| o.stack == stack)?;
            let name = route53::normal_name(r.name());
            let fqdn = name.strip_prefix(&format!("{}.", route53::OWNER_LABEL))?.to_string();
            Some((fqdn, owner.types))
        })
        .collect();
    records
        .iter()
        .filter(|r| {
            let name = route53::normal_name(r.name());
            let kind = r.r#type().as_str();
            let apex_own = name == zone && matches!(kind, "SOA" | "NS");
            let owner_txt = route53::owner_of(r).is_some_and(|o| o.stack == stack);
            let covered = ours.iter().any(|(f, types)| *f == name && types.iter().any(|t| t == kind));
            !(apex_own || owner_txt || covered)
        })
        .map(|r| format!("record {}", route53::describe(r)))
        .collect()
}

async fn add_tags(cloud: &Cloud, id: &str, tags: &Tags) -> Result<(), CloudError> {
    let all: Vec<Tag> = tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect();
    // ChangeTagsForResource takes at most 10 tags a call.
    for batch in all.chunks(10) {
        route53::client(cloud)?
            .change_tags_for_resource()
            .resource_type(TagResourceType::Hostedzone)
            .resource_id(id)
            .set_add_tags(Some(batch.to_vec()))
            .send()
            .await
            .call("ChangeTagsForResource")?;
    }
    Ok(())
}
