//! `dns_record.apex`, `dns_record.www`: alias records in the stack's hosted zone (or the adopted one) pointing at the
//! load balancer: an A record, and an AAAA record too when the load balancer is dualstack.
//!
//! Route 53 records cannot be tagged. Each record the stack owns has a companion TXT ownership record, written in
//! the same change batch (all or nothing, so never one without the other), at `_webscale.NAME` (see
//! [`route53::OWNER_LABEL`]), as external-dns does: `"heritage=webscale,webscale/stack=S,webscale/address=A,
//! webscale/types=A+AAAA"`. Only records such a TXT record covers are the stack's. webscale never changes or
//! deletes any other record: new records are written with CREATE (which fails rather than overwrite), UPSERT only
//! touches records the stack owns, and a record the spec wants that exists unowned stops the create with a message
//! naming it.

use async_trait::async_trait;
use aws_sdk_route53::types::{
    AliasTarget, Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
};
use serde::Deserialize;
use serde_json::json;

use super::load_balancer;
use super::route53::{self, ALIAS_TYPES, Owner};
use super::{
    Address, Attr, Created, Desired, GLOBAL, Kind, Live, Op, Progress, ReadCtx, Scope, Timeouts, cloud_id,
    output_reference, reference,
};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{RecordName, Stack};

pub struct DnsRecord;

pub fn address(record: RecordName) -> Address {
    Address::new("dns_record", record.as_str())
}

/// The hosted zone every CloudFront distribution's alias target lives in (the same in every account: Route 53
/// API reference, AliasTarget).
pub const CLOUDFRONT_ZONE_ID: &str = "Z2FDTNDATAQYW2";

/// TTL of the ownership TXT records (alias records have none: they follow the load balancer's).
const OWNER_TTL: i64 = 300;

#[derive(Deserialize)]
struct Attrs {
    zone: String,
    name: String,
    types: Vec<String>,
    alias_dns_name: String,
    alias_zone_id: String,
    evaluate_target_health: bool,
}

#[derive(Deserialize)]
struct Where {
    zone: String,
    name: String,
}

#[async_trait]
impl Kind for DnsRecord {
    fn name(&self) -> &'static str {
        "dns_record"
    }

    fn service(&self) -> &'static str {
        "route53"
    }

    fn scope(&self) -> Scope {
        Scope::Global
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            // Another zone or name is another record: the old one is deleted, a new one written.
            Attr::new("zone").forces_replacement(),
            Attr::new("name").forces_replacement(),
            Attr::new("types"),
            Attr::new("alias_dns_name"),
            Attr::new("alias_zone_id"),
            Attr::new("evaluate_target_health"),
        ];
        SCHEMA
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        let Some(dns) = &stack.dns else { return Vec::new() };
        let zone = if dns.create_zone { super::hosted_zone::address() } else { super::dns_zone::address() };
        let mut out = Vec::new();
        if let Some(lb) = &stack.load_balancer {
            let types: &[&str] = if lb.dualstack { &ALIAS_TYPES } else { &ALIAS_TYPES[..1] };
            out.extend(dns.records.iter().map(|&r| {
                let attrs = json!({
                    "zone": reference(&zone),
                    "name": r.fqdn(&dns.zone),
                    "types": types,
                    "alias_dns_name": output_reference(&load_balancer::address(), load_balancer::DNS_NAME),
                    "alias_zone_id": output_reference(&load_balancer::address(), load_balancer::CANONICAL_HOSTED_ZONE_ID),
                    // Route 53 answers only while the load balancer has a healthy target somewhere.
                    "evaluate_target_health": true,
                });
                Desired::new(GLOBAL, address(r), &attrs)
            }));
        }
        // The static assets' aliases point at the CloudFront distribution (IPv4 and IPv6: it serves both).
        if let Some(assets) = stack.static_assets.as_ref().filter(|a| a.cdn) {
            out.extend(assets.aliases.iter().map(|alias| {
                let attrs = json!({
                    "zone": reference(&zone),
                    "name": alias,
                    "types": ALIAS_TYPES,
                    "alias_dns_name": output_reference(&super::distribution::address(), "domain_name"),
                    "alias_zone_id": CLOUDFRONT_ZONE_ID,
                    // Route 53 refuses target health for CloudFront aliases.
                    "evaluate_target_health": false,
                });
                let name = format!("assets_{}", crate::spec::StaticAssets::alias_label(alias, &dns.zone));
                Desired::new(GLOBAL, Address::new("dns_record", &name), &attrs)
            }));
        }
        out
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts::minutes(10, 10, 10)
    }

    fn is_gone(&self, error: &CloudError) -> bool {
        error.is_not_found()
            || error.code() == "NoSuchHostedZone"
            || (error.code() == "InvalidChangeBatch" && error.message.contains("not found"))
    }

    /// One ListResourceRecordSets (all pages) per zone the stack uses: the zones it owns, and the public zones of
    /// the spec's zone name (an adopted zone, or one adopted before `create_zone` was switched on). Shared with the
    /// zone's delete check.
    async fn read(&self, ctx: &ReadCtx<'_>, _region: &str) -> Result<Vec<Live>, CloudError> {
        let zones = route53::zones(ctx).await?;
        let stack = ctx.cloud.stack();
        let spec_zone = ctx.stack.dns.as_ref().map(|d| d.zone.as_str());
        let used: Vec<&route53::Zone> = zones
            .iter()
            .filter(|z| {
                super::hosted_zone::owned(z, stack).is_some() || (!z.private && Some(z.name.as_str()) == spec_zone)
            })
            .collect();
        // A zone listed a moment ago may be gone by now (another stack's zone of the same name, deleted by its own
        // destroy): it holds nothing of ours any more.
        let listings = futures::future::try_join_all(used.iter().map(|z| async {
            match route53::records(ctx, &z.id).await {
                Err(e) if e.code() == "NoSuchHostedZone" => Ok(Default::default()),
                other => other,
            }
        }))
        .await?;
        let mut out = Vec::new();
        for (zone, records) in used.iter().zip(listings) {
            for live in owned_records(&zone.id, &records, stack) {
                if ctx.only.is_none_or(|a| *a == live.address) {
                    out.push(live);
                }
            }
        }
        Ok(out)
    }

    /// At plan time, from the listing the read made (no call of its own): a record the stack does not own where
    /// this one would be written. The plan shows it, and apply stops before changing anything.
    async fn occupied(&self, ctx: &ReadCtx<'_>, desired: &Desired) -> Result<Vec<String>, CloudError> {
        let Some(zone) = desired.attrs.get("zone").and_then(super::as_reference) else { return Ok(Vec::new()) };
        let name = desired.attrs.get("name").and_then(|v| v.as_str()).unwrap_or_default();
        let types: Vec<String> = desired
            .attrs
            .get("types")
            .and_then(|v| v.as_array())
            .map(|t| t.iter().filter_map(|t| t.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let stack = ctx.cloud.stack();
        let spec_zone = ctx.stack.dns.as_ref().map(|d| d.zone.as_str());
        let zones = route53::zones(ctx).await?;
        let found = zones.iter().find(|z| match zone.kind() {
            "hosted_zone" => super::hosted_zone::owned(z, stack).as_ref() == Some(&zone),
            _ => !z.private && Some(z.name.as_str()) == spec_zone,
        });
        // A zone still to be created holds nothing.
        let Some(found) = found else { return Ok(Vec::new()) };
        let records = route53::records(ctx, &found.id).await?;
        let owner_name = route53::owner_name(name);
        let at = |n: &str| -> Vec<ResourceRecordSet> {
            records.iter().filter(|r| route53::normal_name(r.name()) == n).cloned().collect()
        };
        Ok(in_the_way(&types, &at(name), &at(&owner_name), stack).into_iter().map(|r| format!("record {r}")).collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let id = record_id(&want.zone, &want.name);
        write(cloud, op, &want, &id).await?;
        Ok(Created::from(id))
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        write(cloud, op, &want, op.id()?).await
    }

    /// Deletes the stack's records at the name and their ownership record in one batch, with the values they have
    /// now (DELETE must name them exactly), read afresh. Nothing of the stack's there: already gone.
    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let at: Where = op.live()?;
        let (here, owner) = at_name(cloud, &at.zone, &at.name).await?;
        let Some((txt, owner)) = owner.into_iter().find_map(|r| route53::owner_of(&r).map(|o| (r, o))) else {
            return Ok(());
        };
        if owner.stack != cloud.stack() {
            return Ok(());
        }
        let mut changes: Vec<Change> = here
            .into_iter()
            .filter(|r| owner.types.iter().any(|t| t == r.r#type().as_str()))
            .map(|r| change(ChangeAction::Delete, r))
            .collect::<Result<_, _>>()?;
        changes.push(change(ChangeAction::Delete, txt)?);
        let out = send(cloud, op, &at.zone, changes).await?;
        route53::started(cloud, op.address, op.id()?, out.as_ref());
        Ok(())
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
}

/// A record's id: its zone and name (`Z0123/www.example.com`); Route 53 records have none of their own.
fn record_id(zone: &str, name: &str) -> String {
    format!("{zone}/{name}")
}

/// The records of one zone's listing that the stack owns, as live resources: one per ownership TXT record naming
/// the stack, with the alias records it covers.
fn owned_records(zone: &str, records: &[ResourceRecordSet], stack: &str) -> Vec<Live> {
    let mut out = Vec::new();
    for txt in records {
        let Some(owner) = route53::owner_of(txt).filter(|o| o.stack == stack) else { continue };
        let owner_name = route53::normal_name(txt.name());
        let Some(fqdn) = owner_name.strip_prefix(&format!("{}.", route53::OWNER_LABEL)) else { continue };
        let id = record_id(zone, fqdn);
        let address = owner
            .address
            .clone()
            .filter(|a| a.kind() == "dns_record")
            .unwrap_or_else(|| super::stray("dns_record", &id));
        let aliases: Vec<&ResourceRecordSet> = records
            .iter()
            .filter(|r| route53::normal_name(r.name()) == fqdn)
            .filter(|r| owner.types.iter().any(|t| t == r.r#type().as_str()))
            .collect();
        let mut types: Vec<&str> = aliases.iter().map(|r| r.r#type().as_str()).collect();
        types.sort();
        // The A record's target speaks for both (webscale writes them alike).
        let target =
            aliases.iter().find(|r| r.r#type() == &RrType::A).or(aliases.first()).and_then(|r| r.alias_target());
        let attrs = json!({
            "zone": cloud_id(zone),
            "name": fqdn,
            "types": types,
            "alias_dns_name": target.map(|t| route53::normal_name(t.dns_name())),
            "alias_zone_id": target.map(|t| t.hosted_zone_id()),
            "evaluate_target_health": target.map(|t| t.evaluate_target_health()),
        });
        out.push(Live::new(address, GLOBAL, id, super::attrs(&attrs)));
    }
    out
}

/// What is at `name` now (read afresh, not from the plan): the record sets named `name`, and those at its
/// ownership name.
async fn at_name(
    cloud: &Cloud,
    zone: &str,
    name: &str,
) -> Result<(Vec<ResourceRecordSet>, Vec<ResourceRecordSet>), CloudError> {
    let owner_name = route53::owner_name(name);
    let (here, owner) = futures::future::try_join(
        route53::list_records(cloud, zone, Some(name)),
        route53::list_records(cloud, zone, Some(&owner_name)),
    )
    .await?;
    Ok((here, owner))
}

/// Brings the records at `want.name` to what the spec asks, in one batch with their ownership record: CREATE for
/// what does not exist, UPSERT only for what the stack owns, DELETE (exact values) for the stack's records no longer
/// wanted. Refuses, changing nothing, when the name holds a record the stack does not own that it would need to
/// write.
async fn write(cloud: &Cloud, op: &Op<'_>, want: &Attrs, id: &str) -> Result<(), CloudError> {
    let (here, at_owner) = at_name(cloud, &want.zone, &want.name).await?;
    let stack = cloud.stack();
    let ours = at_owner.iter().find_map(|r| route53::owner_of(r).filter(|o| o.stack == stack).map(|o| (r, o)));
    let owned: Vec<String> = ours.as_ref().map(|(_, o)| o.types.clone()).unwrap_or_default();
    let foreign = in_the_way(&want.types, &here, &at_owner, stack);
    let mut changes = Vec::new();
    for r in &here {
        let kind = r.r#type().as_str();
        if owned.iter().any(|t| t == kind) && !want.types.iter().any(|t| t == kind) {
            changes.push(change(ChangeAction::Delete, r.clone())?);
        }
    }
    if !foreign.is_empty() {
        return Err(not_ours(op.address, &want.name, stack, &foreign));
    }
    for t in &want.types {
        let exists = here.iter().any(|r| r.r#type().as_str() == t);
        let action = if exists { ChangeAction::Upsert } else { ChangeAction::Create };
        changes.push(change(action, alias(want, t)?)?);
    }
    let owner = Owner { stack: stack.to_string(), address: Some(op.address.clone()), types: want.types.clone() };
    let txt = ResourceRecordSet::builder()
        .name(route53::owner_name(&want.name))
        .r#type(RrType::Txt)
        .ttl(OWNER_TTL)
        .resource_records(ResourceRecord::builder().value(owner.txt()).build().map_err(built)?)
        .build()
        .map_err(built)?;
    let txt_action = match &ours {
        Some((current, _)) if current.resource_records() == txt.resource_records() && current.ttl() == txt.ttl() => {
            None
        }
        Some(_) => Some(ChangeAction::Upsert),
        None => Some(ChangeAction::Create),
    };
    if let Some(action) = txt_action {
        changes.push(change(action, txt)?);
    }
    let out = send(cloud, op, &want.zone, changes).await?;
    route53::started(cloud, op.address, id, out.as_ref());
    Ok(())
}

/// What the stack does not own that writing alias records of `types` at a name would overwrite: a record of one of
/// those types (or a CNAME, which cannot share its name with anything) that no ownership record of the stack covers,
/// and, unless the stack's own ownership record is there, whatever sits at the ownership name (another stack's).
/// `here`: the record sets named so; `at_owner`: those at its ownership name.
fn in_the_way(
    types: &[String],
    here: &[ResourceRecordSet],
    at_owner: &[ResourceRecordSet],
    stack: &str,
) -> Vec<String> {
    let ours = at_owner.iter().find_map(|r| route53::owner_of(r).filter(|o| o.stack == stack));
    let owned: Vec<String> = ours.as_ref().map(|o| o.types.clone()).unwrap_or_default();
    let mut foreign: Vec<String> = Vec::new();
    if ours.is_none() {
        foreign.extend(at_owner.iter().map(|r| match route53::owner_of(r) {
            Some(o) => format!("{} (owned by stack {})", route53::describe(r), o.stack),
            None => route53::describe(r),
        }));
    }
    for r in here {
        let kind = r.r#type().as_str();
        let wanted = types.iter().any(|t| t == kind);
        if (wanted || kind == "CNAME") && !owned.iter().any(|t| t == kind) {
            foreign.push(route53::describe(r));
        }
    }
    foreign
}

fn alias(want: &Attrs, kind: &str) -> Result<ResourceRecordSet, CloudError> {
    let target = AliasTarget::builder()
        .hosted_zone_id(&want.alias_zone_id)
        .dns_name(&want.alias_dns_name)
        .evaluate_target_health(want.evaluate_target_health)
        .build()
        .map_err(built)?;
    ResourceRecordSet::builder().name(&want.name).r#type(RrType::from(kind)).alias_target(target).build().map_err(built)
}

fn change(action: ChangeAction, set: ResourceRecordSet) -> Result<Change, CloudError> {
    Change::builder().action(action).resource_record_set(set).build().map_err(built)
}

fn built(e: aws_smithy_types::error::operation::BuildError) -> CloudError {
    CloudError::internal(format!("building a Route 53 change: {e}"))
}

/// The refusal: which records are in the way, and what to do.
fn not_ours(address: &Address, name: &str, stack: &str, records: &[String]) -> CloudError {
    CloudError {
        operation: "webscale".into(),
        code: Some("RecordNotOwned".into()),
        message: format!(
            "{address}: {name} already has {}, which stack {stack} does not own (no ownership record {} naming it). webscale never changes or deletes a record it does not own: delete it yourself, or leave this name out of [dns] records, then run again. Nothing was written.",
            records.join(" and "),
            route53::owner_name(name),
        ),
    }
}

/// Sends one change batch (all or nothing). A record created meanwhile by someone else makes AWS refuse the CREATE:
/// said in the same words as the refusal before the call.
async fn send(
    cloud: &Cloud,
    op: &Op<'_>,
    zone: &str,
    changes: Vec<Change>,
) -> Result<Option<aws_sdk_route53::types::ChangeInfo>, CloudError> {
    if changes.is_empty() {
        return Ok(None);
    }
    let batch = ChangeBatch::builder()
        .comment(format!("webscale stack {}: {}", cloud.stack(), op.address))
        .set_changes(Some(changes))
        .build()
        .map_err(built)?;
    let out = route53::client(cloud)?
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(batch)
        .send()
        .await
        .call("ChangeResourceRecordSets");
    match out {
        Ok(out) => Ok(out.change_info().cloned()),
        Err(mut e)
            if e.code() == "InvalidChangeBatch"
                && (e.message.contains("already exists") || e.message.contains("conflicting")) =>
        {
            e.message.push_str(&format!(
                " ({}: the record exists and is not the stack's; webscale never changes a record it does not own: delete it yourself, or leave this name out of [dns] records, then run again)",
                op.address
            ));
            Err(e)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn alias_set(name: &str, kind: RrType, target: &str) -> ResourceRecordSet {
        ResourceRecordSet::builder()
            .name(name)
            .r#type(kind)
            .alias_target(
                AliasTarget::builder()
                    .hosted_zone_id("ZLB")
                    .dns_name(target)
                    .evaluate_target_health(true)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    fn txt(name: &str, value: &str) -> ResourceRecordSet {
        ResourceRecordSet::builder()
            .name(name)
            .r#type(RrType::Txt)
            .ttl(300)
            .resource_records(ResourceRecord::builder().value(value).build().unwrap())
            .build()
            .unwrap()
    }

    /// Only records an ownership TXT record of this stack covers are the stack's: not another stack's, not an AAAA
    /// added beside the stack's A, not a record with no ownership record at all.
    #[test]
    fn the_stack_owns_exactly_what_its_ownership_records_cover() {
        let mine =
            Owner { stack: "shop".into(), address: Some(Address::new("dns_record", "www")), types: vec!["A".into()] };
        let theirs =
            Owner { stack: "other".into(), address: Some(Address::new("dns_record", "apex")), types: vec!["A".into()] };
        let records = vec![
            alias_set("example.com.", RrType::A, "other-lb.elb.amazonaws.com."),
            txt("_webscale.example.com.", &theirs.txt()),
            alias_set("www.example.com.", RrType::A, "Web-LB.us-east-1.elb.amazonaws.com."),
            alias_set("www.example.com.", RrType::Aaaa, "someone-elses.example.net."),
            txt("_webscale.www.example.com.", &mine.txt()),
            alias_set("shop.example.com.", RrType::A, "unowned.example.net."),
        ];
        let live = owned_records("Z1", &records, "shop");
        assert_eq!(live.len(), 1, "{live:#?}");
        let www = &live[0];
        assert_eq!(www.address, Address::new("dns_record", "www"));
        assert_eq!(www.id, "Z1/www.example.com");
        assert_eq!(www.attrs["zone"], json!({"id": "Z1"}));
        assert_eq!(www.attrs["types"], json!(["A"]), "the hand-made AAAA is not the stack's");
        assert_eq!(www.attrs["alias_dns_name"], json!("web-lb.us-east-1.elb.amazonaws.com"));
        assert_eq!(www.attrs["alias_zone_id"], json!("ZLB"));
        assert_eq!(www.attrs["evaluate_target_health"], json!(true));
    }

    #[test]
    fn an_ownership_record_without_its_alias_reads_as_a_record_to_complete() {
        let mine =
            Owner { stack: "shop".into(), address: Some(Address::new("dns_record", "apex")), types: vec!["A".into()] };
        let live = owned_records("Z1", &[txt("_webscale.example.com.", &mine.txt())], "shop");
        assert_eq!(live[0].attrs["types"], json!([]));
        assert_eq!(live[0].attrs["alias_dns_name"], Value::Null);
    }

    /// The reference stack: apex and www, each an alias A record to the load balancer's outputs in the stack's own
    /// zone; a dualstack load balancer adds AAAA; an adopted zone is referred to through its lookup.
    #[test]
    fn records_alias_the_load_balancer_with_aaaa_when_dualstack() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/webscale.toml");
        let text = std::fs::read_to_string(file).unwrap();
        let parse = |t: &str| crate::spec::parse(std::path::Path::new(file), t, &Default::default()).unwrap();
        let plain = DnsRecord.desired(&parse(&text));
        let names: Vec<&str> = plain.iter().map(|d| d.address.as_str()).collect();
        assert_eq!(names, ["dns_record.apex", "dns_record.www"]);
        let www = &plain[1].attrs;
        assert_eq!(www["name"], json!("www.webscale.example.com"));
        assert_eq!(www["zone"], json!({"ref": "hosted_zone.main"}));
        assert_eq!(www["types"], json!(["A"]));
        assert_eq!(www["alias_dns_name"], json!({"ref": "load_balancer.web", "output": "dns_name"}));
        assert_eq!(www["alias_zone_id"], json!({"ref": "load_balancer.web", "output": "canonical_hosted_zone_id"}));
        assert_eq!(plain[0].region, GLOBAL);

        let dual =
            DnsRecord.desired(&parse(&text.replacen("[load_balancer]\n", "[load_balancer]\ndualstack = true\n", 1)));
        assert_eq!(dual[0].attrs["types"], json!(["A", "AAAA"]));
        let adopted = DnsRecord.desired(&parse(&text.replacen("[dns]\n", "[dns]\ncreate_zone = false\n", 1)));
        assert_eq!(adopted[0].attrs["zone"], json!({"ref": "dns_zone.main"}));
    }

    #[test]
    fn the_refusal_names_the_record_and_what_to_do() {
        let e = not_ours(
            &Address::new("dns_record", "www"),
            "www.example.com",
            "shop",
            &["A www.example.com (192.0.2.1)".to_string()],
        );
        assert_eq!(e.code(), "RecordNotOwned");
        assert!(e.message.contains("A www.example.com (192.0.2.1)"), "{e}");
        assert!(e.message.contains("does not own") && e.message.contains("_webscale.www.example.com"), "{e}");
    }
}
