//! What keeps an EC2 resource from being deleted. When a delete has waited out its retries on
//! `DependencyViolation`, naming the network interfaces still inside turns "has dependencies" into something an
//! operator can act on (an instance launched by hand, a load balancer or Lambda of another stack).

use aws_sdk_ec2::types::Filter;

use crate::aws::Cloud;

/// The network interfaces matching `filter` (`vpc-id`, `subnet-id`, `group-id`) = `id`, described for a person;
/// `None` when there are none or they cannot be listed.
pub async fn network_interfaces(cloud: &Cloud, region: &str, filter: &str, id: &str) -> Option<String> {
    let out = cloud
        .ec2(region)
        .ok()?
        .describe_network_interfaces()
        .filters(Filter::builder().name(filter).values(id).build())
        .send()
        .await
        .ok()?;
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
