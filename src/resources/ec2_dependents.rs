//! What keeps an EC2 resource from being deleted. Two moments:
//! - at plan time, [`strangers_in_vpc`] / [`strangers_in`] find what the stack does not own inside what it would
//!   delete (a subnet or instance added by hand to the stack's VPC), so a destroy stops before deleting anything it
//!   cannot finish, instead of retrying `DependencyViolation` for 15 minutes;
//! - after a delete has waited out its retries, [`network_interfaces`] names the interfaces still inside (a load
//!   balancer's or Lambda's, which drain by themselves).

use std::collections::HashSet;

use aws_sdk_ec2::types::{Filter, NetworkInterface, Tag};

use super::{ReadCtx, TAG_STACK};
use crate::aws::{CallExt, Cloud, CloudError};

fn by(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// Whether tags mark a resource as this stack's.
fn ours(tags: &[Tag], stack: &str) -> bool {
    tags.iter().any(|t| t.key() == Some(TAG_STACK) && t.value() == Some(stack))
}

fn named(id: &str, what: &str, tags: &[Tag]) -> String {
    match tags.iter().find(|t| t.key() == Some("Name")).and_then(|t| t.value()) {
        Some(name) => format!("{what} {id} ({name})"),
        None => format!("{what} {id}"),
    }
}

/// An interface that blocks for good: not one AWS manages for a service (those drain once their owner goes), and
/// not attached to an instance the stack owns (those go with the instance).
fn stuck(n: &NetworkInterface, owned: &HashSet<String>) -> bool {
    let instance = n.attachment().and_then(|a| a.instance_id());
    !n.requester_managed().unwrap_or(false) && !instance.is_some_and(|i| owned.contains(i))
}

fn interface_text(n: &NetworkInterface) -> String {
    let id = n.network_interface_id().unwrap_or("?");
    match n.attachment().and_then(|a| a.instance_id()) {
        Some(i) => format!("network interface {id} (instance {i})"),
        None => format!("network interface {id}"),
    }
}

/// Everything in VPC `vpc` the stack does not own and that AWS would not let the VPC go with: subnets, security
/// groups (not the default one), internet gateways attached, route tables (not the main one), network ACLs (not the
/// default one), network interfaces. Six describe calls, made only for a VPC being deleted.
pub async fn strangers_in_vpc(
    ctx: &ReadCtx<'_>,
    region: &str,
    vpc: &str,
    owned: &HashSet<String>,
) -> Result<Vec<String>, CloudError> {
    let ec2 = ctx.cloud.ec2(region)?;
    let stack = ctx.cloud.stack();
    let (subnets, groups, gateways, tables, acls, interfaces) = futures::try_join!(
        async { ec2.describe_subnets().filters(by("vpc-id", vpc)).send().await.call("DescribeSubnets") },
        async { ec2.describe_security_groups().filters(by("vpc-id", vpc)).send().await.call("DescribeSecurityGroups") },
        async {
            let call = ec2.describe_internet_gateways().filters(by("attachment.vpc-id", vpc));
            call.send().await.call("DescribeInternetGateways")
        },
        async { ec2.describe_route_tables().filters(by("vpc-id", vpc)).send().await.call("DescribeRouteTables") },
        async { ec2.describe_network_acls().filters(by("vpc-id", vpc)).send().await.call("DescribeNetworkAcls") },
        async {
            let call = ec2.describe_network_interfaces().filters(by("vpc-id", vpc));
            call.send().await.call("DescribeNetworkInterfaces")
        },
    )?;
    let nat = nat_interfaces(ctx, region, "vpc-id", vpc).await?;
    let mut out = Vec::new();
    for s in subnets.subnets().iter().filter(|s| !ours(s.tags(), stack)) {
        out.push(named(s.subnet_id().unwrap_or("?"), "subnet", s.tags()));
    }
    for g in groups.security_groups().iter().filter(|g| g.group_name() != Some("default") && !ours(g.tags(), stack)) {
        out.push(named(g.group_id().unwrap_or("?"), "security group", g.tags()));
    }
    for g in gateways.internet_gateways().iter().filter(|g| !ours(g.tags(), stack)) {
        out.push(named(g.internet_gateway_id().unwrap_or("?"), "internet gateway", g.tags()));
    }
    let main = |t: &aws_sdk_ec2::types::RouteTable| t.associations().iter().any(|a| a.main() == Some(true));
    for t in tables.route_tables().iter().filter(|t| !main(t) && !ours(t.tags(), stack)) {
        out.push(named(t.route_table_id().unwrap_or("?"), "route table", t.tags()));
    }
    for a in acls.network_acls().iter().filter(|a| a.is_default() != Some(true) && !ours(a.tags(), stack)) {
        out.push(named(a.network_acl_id().unwrap_or("?"), "network ACL", a.tags()));
    }
    let strange = |n: &&NetworkInterface| stuck(n, owned) && !n.network_interface_id().is_some_and(|i| nat.contains(i));
    out.extend(interfaces.network_interfaces().iter().filter(strange).map(interface_text));
    Ok(out)
}

/// The network interfaces matching `filter` (`subnet-id`, `group-id`) = `id` that the stack does not own and
/// that will not drain by themselves. One describe call, made only for a resource being deleted.
pub async fn strangers_in(
    ctx: &ReadCtx<'_>,
    region: &str,
    filter: &str,
    id: &str,
    owned: &HashSet<String>,
) -> Result<Vec<String>, CloudError> {
    let ec2 = ctx.cloud.ec2(region)?;
    let out =
        ec2.describe_network_interfaces().filters(by(filter, id)).send().await.call("DescribeNetworkInterfaces")?;
    let nat = nat_interfaces(ctx, region, filter, id).await?;
    let strange = |n: &&NetworkInterface| stuck(n, owned) && !n.network_interface_id().is_some_and(|i| nat.contains(i));
    Ok(out.network_interfaces().iter().filter(strange).map(interface_text).collect())
}

/// The interfaces that the stack's NAT gateways (in any state) hold where `filter` (`subnet-id`, `vpc-id`) = `id`:
/// they go with their gateway, as an owned instance's go with the instance. AWS marks them requester-managed,
/// which [`stuck`] already lets through; the emulator (moto) does not, and keeps them after the gateway is
/// deleted. One describe call (the stack tag checked here: moto ignores tag filters on it).
async fn nat_interfaces(
    ctx: &ReadCtx<'_>,
    region: &str,
    filter: &str,
    id: &str,
) -> Result<HashSet<String>, CloudError> {
    let ec2 = ctx.cloud.ec2(region)?;
    let out = ec2.describe_nat_gateways().filter(by(filter, id)).send().await.call("DescribeNatGateways")?;
    Ok(out
        .nat_gateways()
        .iter()
        .filter(|g| ours(g.tags(), ctx.cloud.stack()))
        .flat_map(|g| g.nat_gateway_addresses())
        .filter_map(|a| a.network_interface_id())
        .map(str::to_string)
        .collect())
}

/// The network interfaces matching `filter` (`vpc-id`, `subnet-id`, `group-id`) = `id`, described for a person;
/// `None` when there are none or they cannot be listed.
pub async fn network_interfaces(cloud: &Cloud, region: &str, filter: &str, id: &str) -> Option<String> {
    let out = cloud.ec2(region).ok()?.describe_network_interfaces().filters(by(filter, id)).send().await.ok()?;
    let enis: Vec<String> = out
        .network_interfaces()
        .iter()
        .map(|n| {
            let id = n.network_interface_id().unwrap_or("?");
            let owner = n
                .attachment()
                .and_then(|a| a.instance_id())
                .map(|i| format!("instance {i}"))
                .or_else(|| n.requester_id().map(|r| format!("requested by {r}")))
                .unwrap_or_else(|| "unattached".to_string());
            match n.description().filter(|d| !d.is_empty()) {
                Some(d) => format!("{id} ({owner}: {d})"),
                None => format!("{id} ({owner})"),
            }
        })
        .collect();
    (!enis.is_empty()).then(|| enis.join(", "))
}
