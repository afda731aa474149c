//! `webscale output`: what a user needs once the stack is up (where the site answers, the load balancer's DNS
//! name, the name servers to give the domain's registrar, the instance ids), taken from live AWS through the same
//! reads as `show`. Nothing is stored between runs, so these are always the current values.

use serde::Serialize;
use serde_json::Value;

use super::inventory::Inventory;
use crate::spec::Stack;

/// The stack's outputs. A value is `None` (JSON `null`) when the stack does not declare the resource behind it,
/// or it does not exist yet; `missing` then says how many declared resources are still to be created.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Outputs {
    /// Where a browser reaches the site: the zone's apex (or www) name when DNS is declared, else the load
    /// balancer's own name; https when a certificate is given.
    pub site_url: Option<String>,
    pub load_balancer_dns_name: Option<String>,
    /// The hosted zone (owned or adopted) and its name servers, which the domain's registrar must list.
    pub hosted_zone_id: Option<String>,
    pub name_servers: Vec<String>,
    /// The web instances, in address order.
    pub instances: Vec<Instance>,
    /// `[database]`: where the application connects. Never the password: with RDS managing it, `secret_arn` names
    /// the Secrets Manager secret holding it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<Database>,
    /// `[static_assets]`: the bucket and, with CloudFront, where the assets are served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub static_assets: Option<StaticAssets>,
    /// `[logging]`: where to publish events and where they are logged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// Declared resources that do not exist yet (`webscale apply` creates them).
    pub missing: usize,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Instance {
    pub address: String,
    pub id: String,
    pub private_ip: Option<String>,
    /// `ready`, or AWS's state while it is still changing (`pending`).
    pub state: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Database {
    /// The primary's endpoint: reads and writes.
    pub writer_endpoint: Option<String>,
    /// The read replicas' endpoints, replica_1 first: reads only.
    pub reader_endpoints: Vec<String>,
    pub port: Option<u64>,
    /// The Secrets Manager secret holding the master user's password (when RDS manages it).
    pub secret_arn: Option<String>,
    /// `ready`, or RDS's status while it is still changing (`backing-up`).
    pub state: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StaticAssets {
    pub bucket: Option<String>,
    pub distribution_id: Option<String>,
    /// CloudFront's name for the distribution (`d111111abcdef8.cloudfront.net`).
    pub domain_name: Option<String>,
    /// `https://DOMAIN/`: where a browser fetches the assets.
    pub url: Option<String>,
    /// CloudFront's `Deployed`, or `InProgress` while the edge locations are still being updated (5-20 minutes).
    pub status: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Logging {
    /// The SNS topic events are published to (`webscale publish`, or any publisher of the account).
    pub topic_arn: Option<String>,
    /// The Node.js function the topic invokes.
    pub function_name: Option<String>,
    /// Where the function writes each event (`webscale logs`).
    pub log_group: Option<String>,
    /// The web tier's application log group (`webscale logs --group app`).
    pub app_log_group: Option<String>,
}

impl Outputs {
    pub fn of(stack: &Stack, inventory: &Inventory) -> Outputs {
        // What the spec declares, and the lookups it uses (an adopted zone); never a leftover the next apply deletes.
        let all = || inventory.resources.iter().filter(|o| o.in_spec).chain(&inventory.lookups);
        let output = |kind: &str, key: &str| -> Option<Value> {
            all().filter(|o| o.address.kind() == kind).find_map(|o| o.outputs.get(key).cloned())
        };
        let text = |kind: &str, key: &str| output(kind, key).and_then(|v| v.as_str().map(str::to_string));
        let load_balancer_dns_name = text("load_balancer", "dns_name");
        let zone = |key: &str| text("hosted_zone", key).or_else(|| text("dns_zone", key));
        let hosted_zone_id = zone("zone_id");
        let name_servers = output("hosted_zone", "name_servers")
            .or_else(|| output("dns_zone", "name_servers"))
            .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
            .unwrap_or_default();
        let scheme = match stack.load_balancer.as_ref().and_then(|lb| lb.certificate_arn.as_ref()) {
            Some(_) => "https",
            None => "http",
        };
        // The zone's own name only once a record there points at the load balancer.
        let named = stack.dns.as_ref().and_then(|dns| {
            let record = dns.records.first()?;
            let exists = inventory.resources.iter().any(|o| o.in_spec && o.address.kind() == "dns_record");
            exists.then(|| record.fqdn(&dns.zone))
        });
        let site_url = named.or_else(|| load_balancer_dns_name.clone()).map(|host| format!("{scheme}://{host}/"));
        let mut instances: Vec<Instance> = inventory
            .resources
            .iter()
            .filter(|o| o.in_spec && o.address.kind() == "instance")
            .map(|o| Instance {
                address: o.address.to_string(),
                id: o.id.clone(),
                private_ip: o.outputs.get("private_ip").and_then(Value::as_str).map(str::to_string),
                state: o.state.clone(),
            })
            .collect();
        // web_2 before web_10.
        instances.sort_by_key(|i| {
            let n = i.address.rsplit('_').next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(u64::MAX);
            (n, i.address.clone())
        });
        let databases = || inventory.resources.iter().filter(|o| o.in_spec && o.address.kind() == "db_instance");
        let db_text =
            |o: &super::inventory::Owned, key: &str| o.outputs.get(key).and_then(Value::as_str).map(str::to_string);
        let database = stack.database.as_ref().map(|_| {
            let primary = databases().find(|o| o.address.name() == "primary");
            let mut replicas: Vec<_> = databases().filter(|o| o.address.name() != "primary").collect();
            replicas.sort_by_key(|o| o.address.name().rsplit('_').next().and_then(|n| n.parse::<u64>().ok()));
            Database {
                writer_endpoint: primary.and_then(|p| db_text(p, "endpoint")),
                reader_endpoints: replicas.iter().filter_map(|r| db_text(r, "endpoint")).collect(),
                port: primary.and_then(|p| p.outputs.get("port")).and_then(Value::as_u64),
                secret_arn: primary.and_then(|p| db_text(p, "secret_arn")),
                state: primary.map(|p| p.state.clone()),
            }
        });
        let static_assets = stack.static_assets.as_ref().map(|_| {
            let domain_name = text("distribution", "domain_name");
            StaticAssets {
                bucket: text("bucket", "name"),
                distribution_id: text("distribution", "id"),
                url: domain_name.as_ref().map(|d| format!("https://{d}/")),
                domain_name,
                status: text("distribution", "status"),
            }
        });
        let log_group = |name: &str| {
            all().find(|o| o.address.kind() == "log_group" && o.address.name() == name).map(|o| o.id.clone())
        };
        let logging = stack.logging.as_ref().map(|_| Logging {
            topic_arn: text("topic", "arn"),
            function_name: text("function", "name"),
            log_group: log_group(crate::spec::logging::PIPELINE),
            app_log_group: log_group(crate::spec::logging::APP),
        });
        Outputs {
            database,
            static_assets,
            logging,
            site_url,
            load_balancer_dns_name,
            hosted_zone_id,
            name_servers,
            instances,
            missing: inventory.missing,
        }
    }
}
