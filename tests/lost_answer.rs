//! Lost answers: AWS carried a create out but its answer never arrived (timeout, connection reset), so the SDK
//! sent the call again. Every create must be safe to repeat: one apply through a proxy that loses the first
//! answer of every create still leaves exactly one resource per address, checked through our own SDK client
//! talking to the emulator directly.

use std::collections::{BTreeMap, BTreeSet};

use crate::proxy::{Exchange, Proxy, Rule};
use crate::support::{Run, TestStack, ec2, endpoint, owned, tag};

/// The kinds the reference stack creates: address prefix and the create whose answer the proxy loses.
const KINDS: [(&str, &str); 6] = [
    ("vpc", "CreateVpc"),
    ("internet_gateway", "CreateInternetGateway"),
    ("subnet", "CreateSubnet"),
    ("route_table", "CreateRouteTable"),
    ("security_group", "CreateSecurityGroup"),
    ("network_acl", "CreateNetworkAcl"),
];

/// Most applies through the proxy: each failed one must have lost an answer the ones before did not (an action's
/// first request only), so this bounds the run without cutting it short.
const MAX_APPLIES: usize = 6;

const ADDRESS: &str = "webscale:address";

/// Ids of the stack's resources by `webscale:address` (a resource without one under `KIND.<no address tag>`), as
/// our own client sees them, straight from the emulator.
async fn census(stack: &str) -> BTreeMap<String, Vec<String>> {
    let ec2 = ec2().await;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut add = |kind: &str, tags: &[aws_sdk_ec2::types::Tag], id: Option<&str>| {
        let address = tag(tags, ADDRESS).map_or_else(|| format!("{kind}.<no address tag>"), str::to_string);
        out.entry(address).or_default().push(id.unwrap_or("<no id>").to_string());
    };
    let vpcs = ec2.describe_vpcs().filters(owned(stack)).send().await.expect("DescribeVpcs");
    for r in vpcs.vpcs() {
        add("vpc", r.tags(), r.vpc_id());
    }
    let igws = ec2.describe_internet_gateways().filters(owned(stack)).send().await.expect("DescribeInternetGateways");
    for r in igws.internet_gateways() {
        add("internet_gateway", r.tags(), r.internet_gateway_id());
    }
    let subnets = ec2.describe_subnets().filters(owned(stack)).send().await.expect("DescribeSubnets");
    for r in subnets.subnets() {
        add("subnet", r.tags(), r.subnet_id());
    }
    let tables = ec2.describe_route_tables().filters(owned(stack)).send().await.expect("DescribeRouteTables");
    for r in tables.route_tables() {
        add("route_table", r.tags(), r.route_table_id());
    }
    let groups = ec2.describe_security_groups().filters(owned(stack)).send().await.expect("DescribeSecurityGroups");
    for r in groups.security_groups() {
        add("security_group", r.tags(), r.group_id());
    }
    let acls = ec2.describe_network_acls().filters(owned(stack)).send().await.expect("DescribeNetworkAcls");
    for r in acls.network_acls() {
        add("network_acl", r.tags(), r.network_acl_id());
    }
    for ids in out.values_mut() {
        ids.sort();
    }
    out
}

/// Deletes through our own client whatever carries the stack tag (duplicates webscale does not know of, after
/// a failed run), in rounds so that what blocks a deletion in one round is gone by the next. Best effort.
async fn sweep(stack: &str) {
    let ec2 = ec2().await;
    for _ in 0..5 {
        if census(stack).await.is_empty() {
            return;
        }
        if let Ok(groups) = ec2.describe_security_groups().filters(owned(stack)).send().await {
            for g in groups.security_groups() {
                let id = g.group_id().unwrap_or_default();
                if !g.ip_permissions().is_empty() {
                    let _ = ec2
                        .revoke_security_group_ingress()
                        .group_id(id)
                        .set_ip_permissions(Some(g.ip_permissions().to_vec()))
                        .send()
                        .await;
                }
                if !g.ip_permissions_egress().is_empty() {
                    let _ = ec2
                        .revoke_security_group_egress()
                        .group_id(id)
                        .set_ip_permissions(Some(g.ip_permissions_egress().to_vec()))
                        .send()
                        .await;
                }
            }
            for g in groups.security_groups() {
                let _ = ec2.delete_security_group().group_id(g.group_id().unwrap_or_default()).send().await;
            }
        }
        if let Ok(tables) = ec2.describe_route_tables().filters(owned(stack)).send().await {
            for t in tables.route_tables() {
                for a in t.associations().iter().filter(|a| a.main() != Some(true)) {
                    if let Some(id) = a.route_table_association_id() {
                        let _ = ec2.disassociate_route_table().association_id(id).send().await;
                    }
                }
                let _ = ec2.delete_route_table().route_table_id(t.route_table_id().unwrap_or_default()).send().await;
            }
        }
        if let Ok(subnets) = ec2.describe_subnets().filters(owned(stack)).send().await {
            for s in subnets.subnets() {
                let _ = ec2.delete_subnet().subnet_id(s.subnet_id().unwrap_or_default()).send().await;
            }
        }
        if let Ok(acls) = ec2.describe_network_acls().filters(owned(stack)).send().await {
            for a in acls.network_acls() {
                let _ = ec2.delete_network_acl().network_acl_id(a.network_acl_id().unwrap_or_default()).send().await;
            }
        }
        if let Ok(igws) = ec2.describe_internet_gateways().filters(owned(stack)).send().await {
            for g in igws.internet_gateways() {
                let id = g.internet_gateway_id().unwrap_or_default();
                for a in g.attachments() {
                    if let Some(vpc) = a.vpc_id() {
                        let _ = ec2.detach_internet_gateway().internet_gateway_id(id).vpc_id(vpc).send().await;
                    }
                }
                let _ = ec2.delete_internet_gateway().internet_gateway_id(id).send().await;
            }
        }
        if let Ok(vpcs) = ec2.describe_vpcs().filters(owned(stack)).send().await {
            for v in vpcs.vpcs() {
                let _ = ec2.delete_vpc().vpc_id(v.vpc_id().unwrap_or_default()).send().await;
            }
        }
    }
}

/// Sweeps the stack when the test ends, however it ends (TestStack's own cleanup only knows one resource per
/// address).
struct Sweep(String);

impl Drop for Sweep {
    fn drop(&mut self) {
        if let Ok(rt) = tokio::runtime::Runtime::new() {
            rt.block_on(sweep(&self.0));
        }
    }
}

/// Per action: requests relayed, answers lost (with the status the emulator had answered them with).
fn traffic(log: &[Exchange]) -> String {
    let mut by: BTreeMap<&str, (usize, Vec<String>)> = BTreeMap::new();
    for e in log {
        let entry = by.entry(e.action.as_str()).or_default();
        entry.0 += 1;
        if e.dropped {
            entry.1.push(e.status.map_or_else(|| "no answer".to_string(), |s| s.to_string()));
        }
    }
    by.iter()
        .map(|(action, (n, lost))| {
            if lost.is_empty() {
                format!("  {action}: {n}\n")
            } else {
                format!("  {action}: {n}, answer lost of {} (emulator had answered {})\n", lost.len(), lost.join(", "))
            }
        })
        .collect()
}

fn summary(runs: &[Run]) -> String {
    runs.iter()
        .enumerate()
        .map(|(i, r)| {
            let last: Vec<&str> = r.stderr.lines().rev().take(8).collect::<Vec<_>>().into_iter().rev().collect();
            format!("  apply {} through the proxy: exit {}\n    {}\n", i + 1, r.code, last.join("\n    "))
        })
        .collect()
}

#[test]
fn one_apply_with_lost_create_answers_leaves_one_resource_per_address() {
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let stack = TestStack::new("lost-answer");
    let _sweep = Sweep(stack.name.clone());

    // What the stack will have: every address the plan (read straight from the emulator) creates.
    let plan = stack.plan();
    let kinds: BTreeSet<&str> = KINDS.iter().map(|(k, _)| *k).collect();
    let planned: BTreeSet<String> = plan["changes"]
        .as_array()
        .expect("plan --json has changes")
        .iter()
        .filter(|c| c["action"] == "create")
        .filter_map(|c| c["address"].as_str())
        .filter(|a| a.split_once('.').is_some_and(|(k, _)| kinds.contains(k)))
        .map(str::to_string)
        .collect();
    for (kind, _) in KINDS {
        assert!(planned.iter().any(|a| a.starts_with(&format!("{kind}."))), "the plan creates no {kind}: {plan:#}");
    }

    // Apply through the proxy. After EVERY apply the emulator must hold one resource per address: a later apply
    // that tidies duplicates up does not make the one that made them right. An apply a lost answer made fail is
    // run again (a retry of the whole apply is what webscale promises is safe), through the same proxy, so that
    // creates first reached only then lose their answer too.
    let proxy = Proxy::start(&endpoint(), Rule::first_create());
    let url = proxy.url();
    let mut runs: Vec<Run> = Vec::new();
    let found = loop {
        let lost_before = proxy.log().iter().filter(|e| e.dropped).count();
        let run = stack.run(&["--endpoint-url", &url, "apply", "--auto-approve"]);
        println!("apply {} through the fault proxy ({url}):\n{run}\n", runs.len() + 1);
        let failed = run.code != 0;
        runs.push(run);
        let log = proxy.log();
        let lost_now = log.iter().filter(|e| e.dropped).count() - lost_before;
        assert!(!log.is_empty(), "no request reached the fault proxy: --endpoint-url was not used\n{}", summary(&runs));

        // One resource per address, as the emulator itself has them.
        let found = rt.block_on(census(&stack.name));
        let duplicated: Vec<String> = found
            .iter()
            .filter(|(_, ids)| ids.len() > 1)
            .map(|(address, ids)| format!("{address}: {} ({})", ids.len(), ids.join(", ")))
            .collect();
        assert!(
            duplicated.is_empty(),
            "after apply {} through the fault proxy, a repeated create had made a second resource: {} address(es) \
             with more than one resource:\n  {}\ntraffic through the proxy (requests per action):\n{}{}",
            runs.len(),
            duplicated.len(),
            duplicated.join("\n  "),
            traffic(&log),
            summary(&runs)
        );
        if !failed || lost_now == 0 || runs.len() == MAX_APPLIES {
            break found;
        }
    };
    let log = proxy.log();
    drop(proxy);
    let traffic = traffic(&log);
    println!("traffic through the fault proxy (requests per action):\n{traffic}");

    // The harness did its part: every kind's create lost an answer after the emulator had carried it out.
    let not_lost: Vec<&str> = KINDS
        .iter()
        .map(|(_, action)| *action)
        .filter(|action| {
            !log.iter().any(|e| e.action == *action && e.dropped && e.status.is_some_and(|s| (200..300).contains(&s)))
        })
        .collect();
    assert!(
        not_lost.is_empty(),
        "the proxy lost no carried-out answer of {not_lost:?}, so the test would prove nothing for them\n\
         traffic:\n{traffic}{}",
        summary(&runs)
    );

    // Complete: the last apply succeeded, every planned address exists, nothing else does, and a plan is empty.
    let last = runs.last().unwrap();
    assert_eq!(last.code, 0, "no apply through the proxy succeeded\n{}", summary(&runs));
    let have: BTreeSet<String> = found.keys().cloned().collect();
    let missing: Vec<&String> = planned.difference(&have).collect();
    let extra: Vec<&String> = have.difference(&planned).collect();
    assert!(missing.is_empty() && extra.is_empty(), "missing {missing:?}, unexpected {extra:?}\nfound: {found:#?}");
    let after = stack.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(after.code, 0, "the stack is not complete after the apply:\n{after}");

    stack.destroy();
    let left = rt.block_on(census(&stack.name));
    assert!(left.is_empty(), "destroy left {left:#?}");
}
