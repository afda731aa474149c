//! The `[load_balancer]` table: an internet-facing Application Load Balancer in the public subnets, a target group
//! holding every web instance, with its health check, and an HTTP listener (plus HTTPS, redirecting HTTP to it,
//! when a certificate is given).

use serde::Deserialize;
use toml::Spanned;

use super::validate::{Checker, Shape};

#[derive(Debug, Clone)]
pub struct LoadBalancer {
    /// The name of the `[security_groups.NAME]` the load balancer is in.
    pub security_group: String,
    /// An ACM certificate: adds an HTTPS listener, and HTTP then redirects to it.
    pub certificate_arn: Option<String>,
    /// IPv4 and IPv6 (then Route 53 gets AAAA aliases too); needs IPv6 in the VPC on AWS.
    pub dualstack: bool,
    /// The port the instances serve HTTP on.
    pub target_port: u16,
    pub health_check: HealthCheck,
    /// Seconds a deregistered target keeps its in-flight requests.
    pub deregistration_delay: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: u32,
    pub timeout: u32,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// HTTP codes that count as healthy: "200", "200,302", "200-299".
    pub matcher: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawLoadBalancer {
    #[serde(default = "lb_group")]
    security_group: Spanned<String>,
    certificate_arn: Option<Spanned<String>>,
    #[serde(default)]
    dualstack: bool,
    #[serde(default = "port_80")]
    target_port: Spanned<i64>,
    #[serde(default)]
    health_check: Option<Spanned<RawHealthCheck>>,
    #[serde(default = "thirty")]
    deregistration_delay: Spanned<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHealthCheck {
    path: Option<Spanned<String>>,
    interval: Option<Spanned<i64>>,
    timeout: Option<Spanned<i64>>,
    healthy_threshold: Option<Spanned<i64>>,
    unhealthy_threshold: Option<Spanned<i64>>,
    matcher: Option<Spanned<String>>,
}

fn lb_group() -> Spanned<String> {
    Spanned::new(0..0, "lb".into())
}

fn port_80() -> Spanned<i64> {
    Spanned::new(0..0, 80)
}

fn thirty() -> Spanned<i64> {
    Spanned::new(0..0, 30)
}

pub(super) fn shape() -> Shape {
    Shape::table::<RawLoadBalancer>(vec![("health_check", Shape::table::<RawHealthCheck>(vec![]))])
}

pub(super) fn check(cx: &mut Checker, raw: Spanned<RawLoadBalancer>, groups: &[String]) -> LoadBalancer {
    let table = raw.span();
    let raw = raw.into_inner();
    let security_group = raw.security_group.get_ref().clone();
    if !groups.contains(&security_group) {
        let span = if raw.security_group.span() == (0..0) { table.clone() } else { raw.security_group.span() };
        cx.err(span, "load_balancer.security_group", super::web::unknown_group(&security_group, groups));
    }
    let certificate_arn = raw.certificate_arn.as_ref().map(|arn| {
        let s = arn.get_ref();
        let ok = s.starts_with("arn:aws") && s.split(':').nth(2) == Some("acm") && s.contains(":certificate/");
        if !ok {
            cx.err(
                arn.span(),
                "load_balancer.certificate_arn",
                format!("{s:?} is not an ACM certificate ARN (\"arn:aws:acm:REGION:ACCOUNT:certificate/ID\")"),
            );
        }
        s.clone()
    });
    let target_port = number(cx, &raw.target_port, "load_balancer.target_port", 1, 65535, "a port from 1 to 65535")
        .unwrap_or(80) as u16;
    let deregistration_delay =
        number(cx, &raw.deregistration_delay, "load_balancer.deregistration_delay", 0, 3600, "0 to 3600 seconds")
            .unwrap_or(30);
    let health_check = health_check(cx, raw.health_check.map(Spanned::into_inner).unwrap_or_default());
    LoadBalancer {
        security_group,
        certificate_arn,
        dualstack: raw.dualstack,
        target_port,
        health_check,
        deregistration_delay,
    }
}

fn health_check(cx: &mut Checker, raw: RawHealthCheck) -> HealthCheck {
    let f = |name: &str| format!("load_balancer.health_check.{name}");
    let int = |cx: &mut Checker, v: &Option<Spanned<i64>>, name: &str, default: u32, lo: i64, hi: i64| match v {
        None => default,
        Some(v) => number(cx, v, &f(name), lo, hi, &format!("{lo} to {hi}")).unwrap_or(default),
    };
    let interval = int(cx, &raw.interval, "interval", 15, 5, 300);
    let timeout = int(cx, &raw.timeout, "timeout", 5, 2, 120);
    let healthy_threshold = int(cx, &raw.healthy_threshold, "healthy_threshold", 2, 2, 10);
    let unhealthy_threshold = int(cx, &raw.unhealthy_threshold, "unhealthy_threshold", 2, 2, 10);
    if let Some(t) = &raw.timeout
        && timeout >= interval
    {
        cx.err(
            t.span(),
            f("timeout"),
            format!("a timeout of {timeout} s must be shorter than the interval ({interval} s)"),
        );
    }
    let path = match &raw.path {
        None => "/health".to_string(),
        Some(p) => {
            let s = p.get_ref();
            if !s.starts_with('/') || s.len() > 1024 || s.contains(char::is_whitespace) {
                cx.err(p.span(), f("path"), format!("{s:?} is not a URL path such as \"/health\""));
            }
            s.clone()
        }
    };
    let matcher = match &raw.matcher {
        None => "200".to_string(),
        Some(m) => {
            let s = m.get_ref();
            let code = |c: &str| c.parse::<u16>().is_ok_and(|n| (200..=499).contains(&n));
            let ok = s.split(',').all(|part| match part.split_once('-') {
                Some((a, b)) => code(a) && code(b) && a < b,
                None => code(part),
            });
            if !ok {
                cx.err(
                    m.span(),
                    f("matcher"),
                    format!("{s:?} is not a list of HTTP codes from 200 to 499: \"200\", \"200,302\" or \"200-299\""),
                );
            }
            s.clone()
        }
    };
    HealthCheck { path, interval, timeout, healthy_threshold, unhealthy_threshold, matcher }
}

/// An integer in `lo..=hi`; `None` (reported) otherwise.
fn number(cx: &mut Checker, v: &Spanned<i64>, field: &str, lo: i64, hi: i64, valid: &str) -> Option<u32> {
    let n = *v.get_ref();
    if (lo..=hi).contains(&n) {
        return Some(n as u32);
    }
    cx.err(v.span(), field, format!("{n} is out of range: use {valid}"));
    None
}
