//! The Route 53 plumbing the DNS kinds share (`hosted_zone`, `dns_zone`, `dns_record`): the account's hosted
//! zones and their tags, read once per plan; a zone's records, read once per plan; the ownership TXT records that
//! mark the records the stack owns (records cannot be tagged); change batches and the wait for INSYNC.
//!
//! Route 53 is global: every call goes to the clients of [`super::GLOBAL`] (us-east-1).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_route53::client::Waiters;
use aws_sdk_route53::types::{ResourceRecordSet, RrType, TagResourceType};

use super::tags::Tags;
use super::{Address, GLOBAL, Progress, ReadCtx};
use crate::aws::{CallExt, Cloud, CloudError};

/// ListTagsForResources takes at most 10 zones a call (API).
const TAG_BATCH: usize = 10;

/// The Route 53 client (global endpoint).
pub fn client(cloud: &Cloud) -> Result<&aws_sdk_route53::Client, CloudError> {
    Ok(&cloud.clients(GLOBAL)?.route53)
}

/// A hosted zone of the account, as the shared listing reports it.
#[derive(Debug, Clone)]
pub struct Zone {
    /// Without the `/hostedzone/` prefix the API puts on it (`Z0123ABC`).
    pub id: String,
    /// Lowercase, without the trailing dot.
    pub name: String,
    pub private: bool,
    pub caller_reference: String,
    pub tags: Tags,
}

/// `/hostedzone/Z0123` -> `Z0123`.
pub fn bare_id(id: &str) -> String {
    id.trim_start_matches("/hostedzone/").to_string()
}

/// `/change/C0123` -> `C0123`.
pub fn bare_change(id: &str) -> String {
    id.trim_start_matches("/change/").to_string()
}

/// A domain name as compared everywhere here: lowercase, no trailing dot. Route 53 answers `www.example.com.`;
/// it also escapes some characters as `\NNN` octal, which the names webscale writes never contain.
pub fn normal_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Every hosted zone of the account with its tags: ListHostedZones (all pages) and ListTagsForResources for 10 zones
/// a call. Shared by the zone kinds and the record kind: asked once per plan. A zone carries no tag filter, so the
/// account's zones are all listed; the stack's are then picked by tag (or, for a zone whose create was interrupted
/// before its tags were written, by the caller reference its create used).
pub async fn zones(ctx: &ReadCtx<'_>) -> Result<Arc<Vec<Zone>>, CloudError> {
    ctx.shared("route53:zones", || async {
        let r53 = client(ctx.cloud)?;
        let listed = r53
            .list_hosted_zones()
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .call("ListHostedZones")?;
        let mut zones: Vec<Zone> = listed
            .iter()
            .map(|z| Zone {
                id: bare_id(z.id()),
                name: normal_name(z.name()),
                private: z.config().is_some_and(|c| c.private_zone()),
                caller_reference: z.caller_reference().to_string(),
                tags: Tags::new(),
            })
            .collect();
        let batches = zones.chunks(TAG_BATCH).map(|batch| {
            let ids: Vec<String> = batch.iter().map(|z| z.id.clone()).collect();
            async move {
                r53.list_tags_for_resources()
                    .resource_type(TagResourceType::Hostedzone)
                    .set_resource_ids(Some(ids))
                    .send()
                    .await
                    .call("ListTagsForResources")
            }
        });
        let mut tags: HashMap<String, Tags> = HashMap::new();
        for out in futures::future::try_join_all(batches).await? {
            for set in out.resource_tag_sets() {
                let pairs = set.tags().iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or_default())));
                tags.insert(bare_id(set.resource_id().unwrap_or_default()), super::tags::live(pairs));
            }
        }
        for z in &mut zones {
            z.tags = tags.remove(&z.id).unwrap_or_default();
        }
        Ok(zones)
    })
    .await
}

/// The delegation set of one zone (GetHostedZone): the name servers a registrar must point at.
pub async fn name_servers(ctx: &ReadCtx<'_>, id: &str) -> Result<Vec<String>, CloudError> {
    let out = ctx.limited(client(ctx.cloud)?.get_hosted_zone().id(id).send()).await.call("GetHostedZone")?;
    Ok(out.delegation_set().map(|d| d.name_servers().to_vec()).unwrap_or_default())
}

/// Every record set of a zone, read once per plan (shared by the record kind and the zone's delete check).
pub async fn records(ctx: &ReadCtx<'_>, zone: &str) -> Result<Arc<Vec<ResourceRecordSet>>, CloudError> {
    ctx.shared(&format!("route53:records:{zone}"), || list_records(ctx.cloud, zone, None)).await
}

/// The record sets of `zone`, all pages; from `start` on, and only those named `start`, when given (Route 53 lists
/// in name order, so a name's records come together and the listing stops after them).
pub async fn list_records(
    cloud: &Cloud,
    zone: &str,
    start: Option<&str>,
) -> Result<Vec<ResourceRecordSet>, CloudError> {
    let r53 = client(cloud)?;
    let mut out = Vec::new();
    let mut next: Option<(String, Option<RrType>, Option<String>)> = start.map(|s| (s.to_string(), None, None));
    loop {
        let mut call = r53.list_resource_record_sets().hosted_zone_id(zone);
        if let Some((name, kind, identifier)) = &next {
            call = call
                .start_record_name(name)
                .set_start_record_type(kind.clone())
                .set_start_record_identifier(identifier.clone());
        }
        let page = call.send().await.call("ListResourceRecordSets")?;
        let mut past = false;
        for r in page.resource_record_sets() {
            if let Some(s) = start
                && normal_name(r.name()) != normal_name(s)
            {
                past = true;
                break;
            }
            out.push(r.clone());
        }
        match page.next_record_name() {
            Some(name) if page.is_truncated() && !past => {
                next = Some((
                    name.to_string(),
                    page.next_record_type().cloned(),
                    page.next_record_identifier().map(str::to_string),
                ))
            }
            _ => return Ok(out),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// Ownership TXT records
// ---------------------------------------------------------------------------------------------------------------------

/// The label in front of a record's name that holds its ownership TXT record: `_webscale.www.example.com` for
/// `www.example.com`. A name of its own, never the record's: the apex usually has TXT records of its owner's (SPF,
/// site verification), and a TXT set is one per name, so sharing it would mean rewriting theirs. The leading
/// underscore keeps it out of any hostname anyone would use (RFC 8552 reserves underscored labels for such
/// metadata).
pub const OWNER_LABEL: &str = "_webscale";

/// Record types an alias record of the stack may have.
pub const ALIAS_TYPES: [&str; 2] = ["A", "AAAA"];

pub fn owner_name(fqdn: &str) -> String {
    format!("{OWNER_LABEL}.{fqdn}")
}

/// What an ownership TXT record says: external-dns's format (`heritage=...,KEY=VALUE,...`), with the stack, the
/// address, and the record types it covers (so an AAAA someone added by hand beside the stack's A is not taken for
/// the stack's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub stack: String,
    pub address: Option<Address>,
    pub types: Vec<String>,
}

impl Owner {
    /// The TXT value, quoted as Route 53 wants it.
    pub fn txt(&self) -> String {
        let address = self.address.as_ref().map(Address::as_str).unwrap_or_default();
        format!(
            "\"heritage=webscale,webscale/stack={},webscale/address={address},webscale/types={}\"",
            self.stack,
            self.types.join("+")
        )
    }

    /// Reads a TXT value; `None` unless it is a webscale ownership record.
    pub fn parse(value: &str) -> Option<Owner> {
        // Route 53 returns the value quoted; a long value may come as several quoted strings.
        let text: String = value.split('"').enumerate().filter(|(i, _)| i % 2 == 1).map(|(_, s)| s).collect();
        let text = if text.is_empty() { value.to_string() } else { text };
        let pairs: HashMap<&str, &str> = text.split(',').filter_map(|p| p.split_once('=')).collect();
        if pairs.get("heritage") != Some(&"webscale") {
            return None;
        }
        Some(Owner {
            stack: pairs.get("webscale/stack")?.to_string(),
            address: pairs.get("webscale/address").and_then(|a| Address::parse(a)),
            types: pairs
                .get("webscale/types")
                .map(|t| t.split('+').filter(|s| !s.is_empty()).map(str::to_string).collect())
                .unwrap_or_else(|| vec!["A".to_string()]),
        })
    }
}

/// The webscale owner a TXT record set names, if it is one.
pub fn owner_of(set: &ResourceRecordSet) -> Option<Owner> {
    if set.r#type() != &RrType::Txt {
        return None;
    }
    set.resource_records().iter().find_map(|r| Owner::parse(r.value()))
}

/// A record set for people: `A www.example.com (alias to lb-1.elb.amazonaws.com)`, `TXT x.example.com ("v=1")`.
pub fn describe(set: &ResourceRecordSet) -> String {
    let what = match set.alias_target() {
        Some(a) => format!("alias to {}", normal_name(a.dns_name())),
        None => set.resource_records().iter().map(|r| r.value()).collect::<Vec<_>>().join(", "),
    };
    format!("{} {} ({what})", set.r#type().as_str(), normal_name(set.name()))
}

// ---------------------------------------------------------------------------------------------------------------------
// Changes and their wait for INSYNC
// ---------------------------------------------------------------------------------------------------------------------

/// (address, id) -> the Route 53 change the last operation on it started.
type Changes = Mutex<HashMap<String, String>>;

fn changes(cloud: &Cloud) -> Arc<Changes> {
    cloud.shared::<Changes>("route53 changes")
}

fn change_key(address: &Address, id: &str) -> String {
    format!("{address}\u{0}{id}")
}

/// Remembers the change an operation on (`address`, `id`) started, for [`wait_insync`]: `Kind::wait` is handed the
/// resource's id, not what the create/update/delete returned.
pub fn started(cloud: &Cloud, address: &Address, id: &str, change: Option<&aws_sdk_route53::types::ChangeInfo>) {
    let Some(change) = change else { return };
    changes(cloud).lock().unwrap_or_else(|e| e.into_inner()).insert(change_key(address, id), change.id().to_string());
}

/// Waits until the change last started on (`address`, `id`) is INSYNC (every Route 53 name server has it; ~1-2
/// minutes on AWS), showing `change C0123 PENDING` meanwhile. The engine bounds the wait by the kind's timeouts;
/// the waiter polls GetChange (every 30 s and more, the SDK's backoff). Nothing to wait for when no change was
/// started.
pub async fn wait_insync(cloud: &Cloud, address: &Address, id: &str, progress: &Progress) -> Result<(), CloudError> {
    let change = changes(cloud).lock().unwrap_or_else(|e| e.into_inner()).remove(&change_key(address, id));
    let Some(change) = change else { return Ok(()) };
    let r53 = client(cloud)?;
    let name = bare_change(&change);
    let first = r53.get_change().id(&change).send().await.call("GetChange")?;
    let status = first.change_info().map(|c| c.status().as_str().to_string()).unwrap_or_default();
    progress.set(format!("change {name} {status}"));
    if status == "INSYNC" {
        return Ok(());
    }
    // The engine's timeout is the real bound; this one only keeps the waiter from giving up first.
    r53.wait_until_resource_record_sets_changed()
        .id(&change)
        .wait(Duration::from_secs(24 * 3600))
        .await
        .call(&format!("wait for Route 53 change {name} to be INSYNC"))?;
    progress.set(format!("change {name} INSYNC"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_txt_round_trips_and_ignores_other_tools() {
        let owner = Owner {
            stack: "shop".into(),
            address: Some(Address::new("dns_record", "www")),
            types: vec!["A".into(), "AAAA".into()],
        };
        let txt = owner.txt();
        assert_eq!(
            txt,
            "\"heritage=webscale,webscale/stack=shop,webscale/address=dns_record.www,webscale/types=A+AAAA\""
        );
        assert_eq!(Owner::parse(&txt), Some(owner));
        assert_eq!(Owner::parse("\"heritage=external-dns,external-dns/owner=default\""), None);
        assert_eq!(Owner::parse("\"v=spf1 -all\""), None);
        // A long value split by Route 53 into several strings reads the same.
        let split = "\"heritage=webscale,webscale/stack=shop,\" \"webscale/address=dns_record.apex\"";
        let parsed = Owner::parse(split).unwrap();
        assert_eq!(parsed.address, Some(Address::new("dns_record", "apex")));
        assert_eq!(parsed.types, ["A"], "no types key: the A record only");
    }

    #[test]
    fn names_compare_without_case_or_trailing_dot() {
        assert_eq!(normal_name("WWW.Example.com."), "www.example.com");
        assert_eq!(bare_id("/hostedzone/Z123"), "Z123");
        assert_eq!(owner_name("example.com"), "_webscale.example.com");
    }
}
