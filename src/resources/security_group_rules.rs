//! `security_group_rules.NAME`: the complete ingress and egress rule sets of `security_group.NAME`.
//!
//! Why a separate node: see `security_group.rs`. The rule sets are owned as a whole: a rule added in the console
//! shows up as drift and the next apply revokes it; AWS's default allow-all egress is just a rule like any other
//! (the spec expands an omitted `egress` to exactly that rule, so a fresh group shows no diff).

use async_trait::async_trait;
use aws_sdk_ec2::types::{IpPermission, IpRange, Ipv6Range, PrefixListId, UserIdGroupPair};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Address, Attr, Created, Desired, Kind, Live, Op, ReadCtx, ReplaceOrder, cloud_id, reference};
use crate::aws::{CallExt, Cloud, CloudError};
use crate::spec::{Peer, Protocol, SgRule, Stack};

pub struct SecurityGroupRules;

#[derive(Deserialize)]
struct Attrs {
    ingress: Vec<Rule>,
    egress: Vec<Rule>,
}

/// One flattened rule: AWS groups several sources under one permission; we diff them one by one.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
struct Rule {
    protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ipv6_cidr: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    security_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix_list: Option<String>,
}

fn desired_rule(rule: &SgRule) -> Value {
    let mut v = json!({ "protocol": rule.protocol.as_str() });
    if let Some(p) = rule.ports {
        v["from_port"] = json!(p.from);
        v["to_port"] = json!(p.to);
    }
    match &rule.peer {
        Peer::Cidr(c) => v["cidr"] = json!(c.to_string()),
        Peer::Group(g) => v["security_group"] = reference(&super::security_group::address(g)),
    }
    v
}

/// AWS's permission blocks, flattened into one rule per source, in the same shape as desired rules.
fn live_rules(perms: &[IpPermission]) -> Vec<Value> {
    let mut out = Vec::new();
    for p in perms {
        let raw = p.ip_protocol().unwrap_or("-1");
        let protocol = Protocol::from_aws(raw);
        let mut base = json!({ "protocol": protocol.map_or(raw, |p| p.as_str()) });
        // AWS reports -1/-1 (or nothing) for "every port/type"; the spec leaves ports out for those.
        let ports = (p.from_port(), p.to_port());
        if !matches!(ports, (None, None) | (Some(-1), Some(-1))) && protocol != Some(Protocol::All) {
            base["from_port"] = json!(ports.0);
            base["to_port"] = json!(ports.1);
        }
        let with = |key: &str, value: Value| {
            let mut r = base.clone();
            r[key] = value;
            r
        };
        out.extend(p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).map(|c| with("cidr", json!(c))));
        out.extend(p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6()).map(|c| with("ipv6_cidr", json!(c))));
        out.extend(
            p.user_id_group_pairs().iter().filter_map(|g| g.group_id()).map(|g| with("security_group", cloud_id(g))),
        );
        out.extend(
            p.prefix_list_ids().iter().filter_map(|l| l.prefix_list_id()).map(|l| with("prefix_list", json!(l))),
        );
    }
    out
}

fn permission(rule: &Rule) -> IpPermission {
    let protocol = Protocol::from_aws(&rule.protocol).map_or(rule.protocol.as_str(), |p| match p {
        Protocol::All => "-1",
        other => other.as_str(),
    });
    let mut p = IpPermission::builder().ip_protocol(protocol);
    match (rule.from_port, rule.to_port) {
        (Some(from), Some(to)) => p = p.from_port(from).to_port(to),
        // ICMP without ports means every type and code.
        _ if protocol == "icmp" => p = p.from_port(-1).to_port(-1),
        _ => {}
    }
    if let Some(c) = &rule.cidr {
        p = p.ip_ranges(IpRange::builder().cidr_ip(c).build());
    }
    if let Some(c) = &rule.ipv6_cidr {
        p = p.ipv6_ranges(Ipv6Range::builder().cidr_ipv6(c).build());
    }
    if let Some(g) = &rule.security_group {
        p = p.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build());
    }
    if let Some(l) = &rule.prefix_list {
        p = p.prefix_list_ids(PrefixListId::builder().prefix_list_id(l).build());
    }
    p.build()
}

#[derive(Clone, Copy)]
enum Direction {
    Ingress,
    Egress,
}

/// Grants or revokes `rules` in one call where possible.
async fn change(
    cloud: &Cloud,
    region: &str,
    group: &str,
    dir: Direction,
    grant: bool,
    rules: &[&Rule],
) -> Result<(), CloudError> {
    if rules.is_empty() {
        return Ok(());
    }
    // Granting what is already there, or revoking what is already gone, reaches the goal (a re-run after an
    // interrupted apply, or a console edit between plan and apply, sees exactly this).
    let benign = |e: &CloudError| e.code() == "InvalidPermission.Duplicate" || e.code() == "InvalidPermission.NotFound";
    match send(cloud, region, group, dir, grant, rules).await {
        // AWS fails such a batch as a whole and applies none of it: redo it rule by rule.
        Err(e) if benign(&e) && rules.len() > 1 => {
            for rule in rules {
                match send(cloud, region, group, dir, grant, &[rule]).await {
                    Err(e) if benign(&e) => {}
                    other => other?,
                }
            }
            Ok(())
        }
        Err(e) if benign(&e) => Ok(()),
        other => other,
    }
}

async fn send(
    cloud: &Cloud,
    region: &str,
    group: &str,
    dir: Direction,
    grant: bool,
    rules: &[&Rule],
) -> Result<(), CloudError> {
    let ec2 = cloud.ec2(region)?;
    let perms: Vec<IpPermission> = rules.iter().map(|r| permission(r)).collect();
    // Four operations with the same shape: only the builder differs.
    macro_rules! send {
        ($op:ident, $name:literal) => {
            ec2.$op().group_id(group).set_ip_permissions(Some(perms)).send().await.call($name).map(|_| ())
        };
    }
    match (dir, grant) {
        (Direction::Ingress, true) => send!(authorize_security_group_ingress, "AuthorizeSecurityGroupIngress"),
        (Direction::Egress, true) => send!(authorize_security_group_egress, "AuthorizeSecurityGroupEgress"),
        (Direction::Ingress, false) => send!(revoke_security_group_ingress, "RevokeSecurityGroupIngress"),
        (Direction::Egress, false) => send!(revoke_security_group_egress, "RevokeSecurityGroupEgress"),
    }
}

/// Makes the group's rules equal `want`, given that it has `have`.
async fn reconcile(cloud: &Cloud, region: &str, group: &str, want: &Attrs, have: &Attrs) -> Result<(), CloudError> {
    for (dir, want, have) in
        [(Direction::Ingress, &want.ingress, &have.ingress), (Direction::Egress, &want.egress, &have.egress)]
    {
        let stale: Vec<&Rule> = have.iter().filter(|r| !want.contains(r)).collect();
        let missing: Vec<&Rule> = want.iter().filter(|r| !have.contains(r)).collect();
        // Grant first: repointing "80 from the old lb" to "80 from the new lb" must never drop traffic between.
        change(cloud, region, group, dir, true, &missing).await?;
        change(cloud, region, group, dir, false, &stale).await?;
    }
    Ok(())
}

#[async_trait]
impl Kind for SecurityGroupRules {
    fn name(&self) -> &'static str {
        "security_group_rules"
    }

    fn desired(&self, stack: &Stack) -> Vec<Desired> {
        stack
            .security_groups
            .iter()
            .map(|g| {
                let attrs = json!({
                    "group": reference(&super::security_group::address(&g.name)),
                    "ingress": g.ingress.iter().map(desired_rule).collect::<Vec<_>>(),
                    "egress": g.egress.iter().map(desired_rule).collect::<Vec<_>>(),
                });
                Desired::in_home_region(stack, Address::new(self.name(), &g.name), &attrs)
            })
            .collect()
    }

    fn schema(&self) -> &'static [Attr] {
        const SCHEMA: &[Attr] = &[Attr::new("group").forces_replacement(), Attr::new("ingress"), Attr::new("egress")];
        SCHEMA
    }

    fn replace_order(&self) -> ReplaceOrder {
        ReplaceOrder::CreateFirst
    }

    /// Its id is the group's.
    fn owns_id(&self) -> bool {
        false
    }

    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError> {
        let groups = super::security_group::read_groups(ctx, region).await?;
        Ok(groups
            .iter()
            .filter_map(|g| {
                let id = g.group_id()?;
                let group = super::ec2_tags::owned_address(g.tags(), "security_group", id);
                let attrs = json!({
                    "group": cloud_id(id),
                    "ingress": live_rules(g.ip_permissions()),
                    "egress": live_rules(g.ip_permissions_egress()),
                });
                Some(Live::new(Address::new(self.name(), group.name()), region, id, super::attrs(&attrs)))
            })
            .collect())
    }

    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError> {
        let want: Attrs = op.desired()?;
        let group = op
            .desired
            .as_ref()
            .and_then(|a| a.get("group"))
            .and_then(Value::as_str)
            .ok_or_else(|| CloudError::internal(format!("{}: no group to put rules in", op.address)))?
            .to_string();
        // A new group starts with AWS's default egress rule, a re-run after a crash with some rules already in:
        // reconcile against what the group has now, not against nothing.
        // A group created a moment ago may not be visible yet: retry while AWS says it does not exist.
        cloud
            .settled(|| async {
                let groups = cloud.ec2(op.region)?.describe_security_groups().group_ids(&group).send().await;
                let groups = groups.call("DescribeSecurityGroups")?;
                let g = groups.security_groups().first();
                let have = Attrs {
                    ingress: decode(live_rules(g.map(|g| g.ip_permissions()).unwrap_or_default())),
                    egress: decode(live_rules(g.map(|g| g.ip_permissions_egress()).unwrap_or_default())),
                };
                reconcile(cloud, op.region, &group, &want, &have).await
            })
            .await?;
        Ok(Created::from(group))
    }

    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        reconcile(cloud, op.region, op.id()?, &op.desired()?, &op.live()?).await
    }

    /// Revokes every rule, so that no rule keeps another group alive; the group itself goes separately.
    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError> {
        let empty = Attrs { ingress: vec![], egress: vec![] };
        super::gone_ok(reconcile(cloud, op.region, op.id()?, &empty, &op.live()?).await)
    }
    /// Rules are not a resource of their own in AWS: they follow their group. Importing the group brings them in.
    async fn adopt(
        &self,
        _cloud: &Cloud,
        _region: &str,
        _id: &str,
        _tags: &super::tags::Tags,
    ) -> Result<(), CloudError> {
        Err(CloudError::internal(format!(
            "{} cannot be imported on its own: a group's rules follow the group. Import security_group.NAME (the group's id); the next apply brings its rules in line with the spec",
            self.name()
        )))
    }
}

/// Live rules carry group ids as `{"id": ...}`; in an op they are plain strings. Rules that do not parse (a
/// protocol shape AWS added later) are kept out rather than failing the whole apply.
fn decode(rules: Vec<Value>) -> Vec<Rule> {
    rules.iter().filter_map(|r| serde_json::from_value(super::plain_ids(r)).ok()).collect()
}
