//! `network_acl.NAME`: a network ACL for one tier, its numbered rules, and its association with that tier's
//! subnets.
//!
//! A subnet always has exactly one network ACL: associating means *replacing* the subnet's current association,
//! and releasing a subnet means handing it back to the VPC's default ACL. Real AWS refuses to delete an ACL that
//! still has subnets, so delete releases them first (the emulator is more lenient; a mocked test covers this).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_ec2::types::{Filter, IcmpTypeCode, NetworkAclEntry, PortRange, ResourceType, RuleAction};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::ec2_tags::{self, describe_owned, desired_tags, id_ref, tag_spec};
use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx, reference};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{NaclRule, Protocol, Stack};

pub struct NetworkAcl;

#[derive(Deserialize)]
struct Attrs {
    vpc: String,
    ingress: Vec<Entry>,
    egress: Vec<Entry>,
    subnets: Vec<String>,
    tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
struct Entry {
    rule: i32,
    protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to_port: Option<i32>,
    /// An IPv4 block. The spec only has these; a live IPv6 entry has `ipv6_cidr` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cidr: Option<String>,
    /// An IPv6 block, which only an entry added out of band has: it shows as drift and is deleted by number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipv6_cidr: Option<String>,
    action: String,
}

fn desired_entry(rule: &NaclRule) -> Value {
    let mut v = json!({ "rule": rule.number, "protocol": rule.protocol.as_str() });
    if let Some(p) = rule.ports {
        v["from_port"] = json!(p.from);
        v["to_port"] = json!(p.to);
    }
    v["cidr"] = json!(rule.cidr.to_string());
    v["action"] = json!(if rule.allow { "allow" } else { "deny" });
    v
}

/// A live entry in the desired entries' shape. An IPv4 entry has `cidr`, an IPv6 one `ipv6_cidr` (AWS sets exactly
/// one of the two), so an IPv6 entry added out of band never passes for an IPv4 one.
fn live_entry(e: &NetworkAclEntry) -> Value {
    let raw = e.protocol().unwrap_or("-1");
    let protocol = Protocol::from_aws(raw);
    let mut v = json!({
        "rule": e.rule_number(),
        "protocol": protocol.map_or(raw, |p| p.as_str()),
    });
    if protocol.is_some_and(Protocol::has_ports)
        && let Some(p) = e.port_range()
    {
        v["from_port"] = json!(p.from());
        v["to_port"] = json!(p.to());
    }
    match (e.cidr_block(), e.ipv6_cidr_block()) {
        (None, Some(v6)) => v["ipv6_cidr"] = json!(v6),
        (v4, _) => v["cidr"] = json!(v4.unwrap_or_default()),
    }
    v["action"] = json!(e.rule_action().map(|a| a.as_str()).unwrap_or_default());
    v
}

#[async_trait]
impl Kind for NetworkAcl {
    fn name(&self) -> &'static str {
        "network_acl"
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        stack
            .network_acls
            .iter()
            .map(|acl| {
                let address = Address::new(self.name(), &acl.name);
                let subnets: Vec<Value> =
                    stack.network.zones.iter().map(|z| reference(&super::subnet::address(acl.tier, &z.name))).collect();
                let attrs = json!({
                    "vpc": reference(&super::vpc::address()),
                    "ingress": acl.ingress.iter().map(desired_entry).collect::<Vec<_>>(),
                    "egress": acl.egress.iter().map(desired_entry).collect::<Vec<_>>(),
                    "subnets": subnets,
                    "tags": desired_tags(stack, &address),
                });
                Desired::in_home_region(stack, address, &attrs)
            })
            .collect()
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[
            Attr::new("vpc").forces_replacement(),
            Attr::new("ingress"),
            Attr::new("egress"),
            Attr::new("subnets"),
            Attr::new("tags"),
        ];
        SCHEMA
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let acls = describe_owned!(ctx, region, describe_network_acls, "DescribeNetworkAcls")?;
        Ok(acls
            .iter()
            .filter_map(|acl| {
                let entries = |egress: bool| -> Vec<Value> {
                    acl.entries()
                        .iter()
                        // Rules 32767 (and 32768 for IPv6) are the deny-alls AWS adds to every ACL; they cannot change.
                        .filter(|e| e.egress() == Some(egress) && e.rule_number().is_some_and(|n| n < 32767))
                        .map(live_entry)
                        .collect()
                };
                let subnets: Vec<Value> =
                    acl.associations().iter().filter_map(|a| a.subnet_id()).map(|s| id_ref(Some(s))).collect();
                let attrs = || {
                    super::attrs(&json!({
                        "vpc": id_ref(acl.vpc_id()),
                        "ingress": entries(false),
                        "egress": entries(true),
                        "subnets": subnets,
                    }))
                };
                ec2_tags::live(self.name(), region, acl.network_acl_id(), acl.tags(), attrs)
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let out = cloud
            .ec2(op.region)?
            .create_network_acl()
            // Idempotent: a repeat of this create (an answer lost, the SDK retrying) returns the first table.
            .client_token(op.client_token(64))
            .vpc_id(&want.vpc)
            .tag_specifications(tag_spec(ResourceType::NetworkAcl, &want.tags))
            // Not repeated blindly either (see `aws::ec2_once`): the emulator ignores client tokens, and the
            // engine's look-before-create-again works everywhere.
            .customize()
            .config_override(crate::aws::ec2_once())
            .send()
            .await
            .call("CreateNetworkAcl")?;
        let id = out
            .network_acl()
            .and_then(|a| a.network_acl_id())
            .ok_or_else(|| CloudError::internal("CreateNetworkAcl returned no id"))?;
        // The ACL exists: retry what AWS does not see yet (subnets made a moment ago), never the create. Every
        // step is safe to repeat.
        cloud
            .settled(|| async {
                sync_entries(cloud, op.region, id, false, &want.ingress, &[]).await?;
                sync_entries(cloud, op.region, id, true, &want.egress, &[]).await?;
                sync_subnets(cloud, op.region, id, &want.vpc, &want.subnets, &[]).await
            })
            .await?;
        Ok(Created::from(id.to_string()))
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let want: Attrs = op.desired()?;
        let have: Attrs = op.live()?;
        let id = op.id()?;
        if op.changed("ingress") {
            sync_entries(cloud, op.region, id, false, &want.ingress, &have.ingress).await?;
        }
        if op.changed("egress") {
            sync_entries(cloud, op.region, id, true, &want.egress, &have.egress).await?;
        }
        if op.changed("subnets") {
            sync_subnets(cloud, op.region, id, &want.vpc, &want.subnets, &have.subnets).await?;
        }
        if op.changed("tags") {
            ec2_tags::sync_tags(cloud, op.region, id, &want.tags, &have.tags).await?;
        }
        Ok(())
    }

    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let have: Attrs = op.live()?;
        let id = op.id()?;
        sync_subnets(cloud, op.region, id, &have.vpc, &[], &have.subnets).await?;
        let result = cloud.ec2(op.region)?.delete_network_acl().network_acl_id(id).send().await;
        super::gone_ok(result.call("DeleteNetworkAcl"))
    }
    async fn adopt(
        &self,
        cloud: &Cloud,
        region: &str,
        id: &str,
        tags: &BTreeMap<String, String>,
    ) -> Result<(), CloudError> {
        ec2_tags::adopt(cloud, region, "network ACL", "acl", id, tags, |ec2| async move {
            let out = ec2.describe_network_acls().network_acl_ids(id).send().await.call("DescribeNetworkAcls")?;
            Ok(out.network_acls().first().map(|r| r.tags().to_vec()))
        })
        .await
    }
}

/// Makes one direction's entries `want`. New and changed entries go in first (a changed entry keeps its number and
/// is replaced in place), stale numbers come out last: moving a `deny` from rule 90 to 80 never opens a window in
/// which neither denies.
async fn sync_entries(
    cloud: &Cloud,
    region: &str,
    acl: &str,
    egress: bool,
    want: &[Entry],
    have: &[Entry],
) -> Result<(), CloudError> {
    let ec2 = cloud.ec2(region)?;
    for new in want.iter().filter(|w| !have.contains(w)) {
        let protocol = Protocol::from_aws(&new.protocol).map_or(new.protocol.as_str(), |p| p.number());
        let action = if new.action == "allow" { RuleAction::Allow } else { RuleAction::Deny };
        let ports = match (new.from_port, new.to_port) {
            (Some(from), Some(to)) => Some(PortRange::builder().from(from).to(to).build()),
            _ => None,
        };
        // AWS requires a type/code for ICMP entries; the spec's icmp means every type and code.
        let icmp = (protocol == "1").then(|| IcmpTypeCode::builder().r#type(-1).code(-1).build());
        // Both operations take the same entry: only the builder differs.
        macro_rules! entry {
            ($op:ident, $name:literal) => {
                ec2.$op()
                    .network_acl_id(acl)
                    .rule_number(new.rule)
                    .egress(egress)
                    .protocol(protocol)
                    .rule_action(action)
                    .set_cidr_block(new.cidr.clone())
                    .set_ipv6_cidr_block(new.ipv6_cidr.clone())
                    .set_port_range(ports)
                    .set_icmp_type_code(icmp)
                    .send()
                    .await
                    .call($name)
                    .map(|_| ())
            };
        }
        let result = if have.iter().any(|h| h.rule == new.rule) {
            entry!(replace_network_acl_entry, "ReplaceNetworkAclEntry")
        } else {
            entry!(create_network_acl_entry, "CreateNetworkAclEntry")
        };
        match result {
            // A retried create finds the entries it already made.
            Err(e) if e.code() == "NetworkAclEntryAlreadyExists" => {}
            other => other?,
        }
    }
    for old in have.iter().filter(|h| !want.iter().any(|w| w.rule == h.rule)) {
        let result = ec2
            .delete_network_acl_entry()
            .network_acl_id(acl)
            .rule_number(old.rule)
            .egress(egress)
            .send()
            .await
            .call("DeleteNetworkAclEntry");
        super::gone_ok(result)?;
    }
    Ok(())
}

/// Moves the `want` subnets onto this ACL and hands those only in `have` back to the VPC's default ACL.
async fn sync_subnets(
    cloud: &Cloud,
    region: &str,
    acl: &str,
    vpc: &str,
    want: &[String],
    have: &[String],
) -> Result<(), CloudError> {
    let want: BTreeSet<&String> = want.iter().collect();
    let have: BTreeSet<&String> = have.iter().collect();
    let moves: Vec<(&String, bool)> =
        want.difference(&have).map(|s| (*s, true)).chain(have.difference(&want).map(|s| (*s, false))).collect();
    if moves.is_empty() {
        return Ok(());
    }
    let ec2 = cloud.ec2(region)?;
    // Association ids are not part of the diff: look up the subnets' current ones, and the default ACL.
    let current = ec2
        .describe_network_acls()
        .filters(Filter::builder().name("vpc-id").values(vpc).build())
        .send()
        .await
        .call("DescribeNetworkAcls")?;
    let default_acl =
        current.network_acls().iter().find(|a| a.is_default() == Some(true)).and_then(|a| a.network_acl_id());
    for (subnet, onto_ours) in moves {
        let association = current.network_acls().iter().find_map(|a| {
            a.associations()
                .iter()
                .find(|s| s.subnet_id() == Some(subnet.as_str()))
                .map(|s| (a.network_acl_id(), s.network_acl_association_id()))
        });
        let Some((current_acl, Some(association))) = association else {
            // The subnet is gone (deleted with its association): nothing to move.
            continue;
        };
        let target = if onto_ours {
            acl
        } else {
            match default_acl {
                // Only release subnets that are still ours to release.
                Some(default) if current_acl == Some(acl) => default,
                _ => continue,
            }
        };
        if current_acl == Some(target) {
            continue;
        }
        ec2.replace_network_acl_association()
            .association_id(association)
            .network_acl_id(target)
            .send()
            .await
            .call("ReplaceNetworkAclAssociation")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{NetworkAclEntry, PortRange, RuleAction};
    use serde_json::json;

    use super::{Entry, live_entry};

    #[test]
    fn an_ipv6_entry_reads_as_ipv6_cidr_and_never_as_an_empty_cidr() {
        let v6 = NetworkAclEntry::builder()
            .rule_number(210)
            .egress(false)
            .protocol("6")
            .port_range(PortRange::builder().from(22).to(22).build())
            .ipv6_cidr_block("::/0")
            .rule_action(RuleAction::Allow)
            .build();
        let read = live_entry(&v6);
        assert_eq!(
            read,
            json!({"rule": 210, "protocol": "tcp", "from_port": 22, "to_port": 22, "ipv6_cidr": "::/0", "action": "allow"})
        );
        // What the kind acts on: no IPv4 block, so a replace or create would send the IPv6 one.
        let entry: Entry = serde_json::from_value(read).unwrap();
        assert_eq!((entry.cidr, entry.ipv6_cidr.as_deref()), (None, Some("::/0")));
    }

    #[test]
    fn an_ipv4_entry_reads_as_the_spec_writes_it() {
        let v4 = NetworkAclEntry::builder()
            .rule_number(100)
            .egress(true)
            .protocol("-1")
            .cidr_block("0.0.0.0/0")
            .rule_action(RuleAction::Deny)
            .build();
        assert_eq!(live_entry(&v4), json!({"rule": 100, "protocol": "all", "cidr": "0.0.0.0/0", "action": "deny"}));
    }
}
