//! `webscale output`: the stack's outputs as aligned lines for a person, or one JSON object for a script.

use super::Ui;
use crate::plan::outputs::Outputs;

impl Ui {
    pub fn outputs(&self, stack: &str, outputs: &Outputs) {
        if self.json {
            self.out(&serde_json::to_string_pretty(outputs).unwrap_or_default());
        } else {
            self.out(&outputs_text(stack, outputs));
        }
    }
}

/// The text of `output`: one `name  value` line per output that has a value, then what to do next.
pub fn outputs_text(stack: &str, o: &Outputs) -> String {
    let mut rows: Vec<(&str, String)> = Vec::new();
    if let Some(url) = &o.site_url {
        rows.push(("site_url", url.clone()));
    }
    if let Some(dns) = &o.load_balancer_dns_name {
        rows.push(("load_balancer_dns_name", dns.clone()));
    }
    if let Some(zone) = &o.hosted_zone_id {
        rows.push(("hosted_zone_id", zone.clone()));
    }
    if !o.name_servers.is_empty() {
        rows.push(("name_servers", o.name_servers.join(" ")));
    }
    if !o.instances.is_empty() {
        rows.push(("instance_ids", o.instances.iter().map(|i| i.id.as_str()).collect::<Vec<_>>().join(" ")));
    }
    if let Some(db) = &o.database {
        if let Some(writer) = &db.writer_endpoint {
            rows.push(("database_writer", writer.clone()));
        }
        if !db.reader_endpoints.is_empty() {
            rows.push(("database_readers", db.reader_endpoints.join(" ")));
        }
        if let Some(port) = db.port {
            rows.push(("database_port", port.to_string()));
        }
        if let Some(arn) = &db.secret_arn {
            rows.push(("database_secret_arn", arn.clone()));
        }
        if let Some(state) = db.state.as_deref().filter(|s| *s != "ready") {
            rows.push(("database_state", state.to_string()));
        }
    }
    if let Some(assets) = &o.static_assets {
        if let Some(url) = &assets.url {
            rows.push(("assets_url", url.clone()));
        }
        if let Some(id) = &assets.distribution_id {
            rows.push(("assets_distribution_id", id.clone()));
        }
        if let Some(bucket) = &assets.bucket {
            rows.push(("assets_bucket", bucket.clone()));
        }
        if let Some(status) = assets.status.as_deref().filter(|s| *s != "Deployed") {
            rows.push(("assets_status", format!("{status} (CloudFront is still deploying; it serves once Deployed)")));
        }
    }
    if let Some(logging) = &o.logging {
        if let Some(arn) = &logging.topic_arn {
            rows.push(("events_topic_arn", arn.clone()));
        }
        if let Some(name) = &logging.function_name {
            rows.push(("events_function", name.clone()));
        }
        if let Some(group) = &logging.log_group {
            rows.push(("events_log_group", group.clone()));
        }
        if let Some(group) = &logging.app_log_group {
            rows.push(("app_log_group", group.clone()));
        }
    }
    if rows.is_empty() && o.missing == 0 {
        return format!(
            "Stack {stack} has no outputs: it declares no web tier, load balancer, DNS, database, static assets or logging."
        );
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut out = format!("Stack {stack} outputs:");
    for (k, v) in &rows {
        out.push_str(&format!("\n  {k:width$}  {v}"));
    }
    if !o.name_servers.is_empty() {
        out.push_str("\n\nThe zone answers once the domain's registrar (or parent zone) lists these name servers.");
    }
    if o.database.as_ref().is_some_and(|d| d.secret_arn.is_some()) {
        out.push_str(
            "\n\nThe database password is in the secret above: `aws secretsmanager get-secret-value --secret-id ARN` (webscale never reads it).",
        );
    }
    if o.missing > 0 {
        let m = o.missing;
        out.push_str(&format!(
            "\n\n{m} resource{} the spec declares {} not exist yet: run `webscale apply` for the missing outputs.",
            if m == 1 { "" } else { "s" },
            if m == 1 { "does" } else { "do" }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::outputs::Instance;

    fn outputs() -> Outputs {
        Outputs {
            site_url: Some("http://shop.example.com/".into()),
            load_balancer_dns_name: Some("shop-web-1.us-east-1.elb.amazonaws.com".into()),
            hosted_zone_id: Some("Z123".into()),
            name_servers: vec!["ns-1.awsdns-01.org".into(), "ns-2.awsdns-02.com".into()],
            instances: vec![Instance {
                address: "instance.web_1".into(),
                id: "i-1".into(),
                private_ip: Some("10.0.10.5".into()),
                state: "ready".into(),
            }],
            missing: 0,
            database: None,
            static_assets: None,
            logging: None,
        }
    }

    #[test]
    fn text_aligns_every_output_and_says_what_the_name_servers_are_for() {
        let text = outputs_text("shop", &outputs());
        assert_eq!(
            text,
            "Stack shop outputs:\n  site_url                http://shop.example.com/\n  load_balancer_dns_name  shop-web-1.us-east-1.elb.amazonaws.com\n  hosted_zone_id          Z123\n  name_servers            ns-1.awsdns-01.org ns-2.awsdns-02.com\n  instance_ids            i-1\n\nThe zone answers once the domain's registrar (or parent zone) lists these name servers."
        );
    }

    #[test]
    fn missing_resources_are_named_and_an_empty_stack_says_why_there_is_nothing() {
        let none = Outputs {
            site_url: None,
            load_balancer_dns_name: None,
            hosted_zone_id: None,
            name_servers: vec![],
            instances: vec![],
            missing: 0,
            database: None,
            static_assets: None,
            logging: None,
        };
        assert!(outputs_text("net", &none).contains("declares no web tier"));
        let text = outputs_text("shop", &Outputs { missing: 3, ..none.clone() });
        assert!(text.contains("3 resources the spec declares do not exist yet"), "{text}");
    }

    #[test]
    fn static_assets_show_their_url_and_say_while_cloudfront_is_still_deploying() {
        let assets = crate::plan::outputs::StaticAssets {
            bucket: Some("shop-assets-123456789012".into()),
            distribution_id: Some("E2ABC".into()),
            domain_name: Some("d1.cloudfront.net".into()),
            url: Some("https://d1.cloudfront.net/".into()),
            status: Some("InProgress".into()),
        };
        let o = Outputs { static_assets: Some(assets.clone()), ..outputs() };
        let text = outputs_text("shop", &o);
        assert!(text.contains("assets_url              https://d1.cloudfront.net/"), "{text}");
        assert!(text.contains("assets_bucket           shop-assets-123456789012"), "{text}");
        assert!(text.contains("assets_status           InProgress (CloudFront is still deploying"), "{text}");
        let deployed = Outputs {
            static_assets: Some(crate::plan::outputs::StaticAssets { status: Some("Deployed".into()), ..assets }),
            ..outputs()
        };
        assert!(!outputs_text("shop", &deployed).contains("assets_status"), "nothing to say once deployed");
    }
}
