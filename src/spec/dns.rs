//! The `[dns]` table: a Route 53 hosted zone (created by the stack, or an existing one adopted by name) and alias
//! records pointing at the load balancer, for the zone's apex and/or `www`.

use serde::Deserialize;
use toml::Spanned;

use super::validate::{Checker, Shape};

#[derive(Debug, Clone)]
pub struct Dns {
    /// The zone's domain name, lowercase, without the trailing dot.
    pub zone: String,
    /// `true`: the stack creates and owns the zone. `false`: an existing public zone of that name is adopted
    /// (never changed or deleted; only the records webscale writes in it are the stack's).
    pub create_zone: bool,
    /// Which names get alias records, in the spec's order, each once.
    pub records: Vec<RecordName>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordName {
    /// The zone's own name (`example.com`).
    Apex,
    /// `www.example.com`.
    Www,
}

impl RecordName {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordName::Apex => "apex",
            RecordName::Www => "www",
        }
    }

    /// The record's full name in `zone`.
    pub fn fqdn(self, zone: &str) -> String {
        match self {
            RecordName::Apex => zone.to_string(),
            RecordName::Www => format!("www.{zone}"),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDns {
    zone: Spanned<String>,
    #[serde(default = "yes")]
    create_zone: bool,
    records: Option<Spanned<Vec<Spanned<String>>>>,
}

fn yes() -> bool {
    true
}

pub(super) fn shape() -> Shape {
    Shape::table::<RawDns>(vec![])
}

/// `has_load_balancer`: records alias the load balancer, so they need `[load_balancer]`.
pub(super) fn check(cx: &mut Checker, raw: Spanned<RawDns>, has_load_balancer: bool) -> Dns {
    let table = raw.span();
    let raw = raw.into_inner();
    let zone = raw.zone.get_ref().trim_end_matches('.').to_ascii_lowercase();
    if !is_domain(&zone) {
        cx.err(
            raw.zone.span(),
            "dns.zone",
            format!(
                "{:?} is not a domain name such as \"example.com\" (labels of letters, digits and hyphens, 253 characters at most)",
                raw.zone.get_ref()
            ),
        );
    }
    let mut records = Vec::new();
    match &raw.records {
        None => records = vec![RecordName::Apex, RecordName::Www],
        Some(list) => {
            for (i, r) in list.get_ref().iter().enumerate() {
                let field = format!("dns.records[{i}]");
                let name = match r.get_ref().as_str() {
                    "apex" => RecordName::Apex,
                    "www" => RecordName::Www,
                    other => {
                        cx.err(r.span(), field, format!("unknown record {other:?}; valid: \"apex\", \"www\""));
                        continue;
                    }
                };
                if records.contains(&name) {
                    cx.err(r.span(), field, format!("{:?} is listed twice", name.as_str()));
                    continue;
                }
                records.push(name);
            }
        }
    }
    if !records.is_empty() && !has_load_balancer {
        let span = raw.records.as_ref().map_or(table, |r| r.span());
        cx.err(
            span,
            "dns.records",
            "alias records point at the load balancer, but the file has no [load_balancer]: add one, or set `records = []`",
        );
    }
    Dns { zone, create_zone: raw.create_zone, records }
}

fn is_domain(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && l.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}
