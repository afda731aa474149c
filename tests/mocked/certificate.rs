//! `certificate.assets`, the ACM lookup behind the static assets' aliases, against mocked ACM answers: what it
//! picks (an issued certificate covering every alias, a wildcard covering one label, the one valid longest), where it
//! asks (ACM of us-east-1: the global clients), and what it costs (one ListCertificates per page, however many
//! certificates the account has).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_acm::Client as Acm;
use aws_sdk_acm::config::{Credentials, Region};
use aws_sdk_acm::operation::list_certificates::ListCertificatesOutput;
use aws_sdk_acm::primitives::DateTime;
use aws_sdk_acm::types::{CertificateStatus, CertificateSummary};
use aws_smithy_mocks::{MockResponseInterceptor, RuleMode, create_mock_http_client, mock};
use webscale::aws::{Clients, Cloud};
use webscale::resources::certificate::Certificate;
use webscale::resources::{GLOBAL, Kind, ReadCtx};
use webscale::spec::{RegionChoice, Stack};

use super::{REGION, fast, unused_clients};

fn summary(arn: &str, domain: &str, sans: &[&str], not_after: i64) -> CertificateSummary {
    CertificateSummary::builder()
        .certificate_arn(arn)
        .domain_name(domain)
        .set_subject_alternative_name_summaries(Some(sans.iter().map(|s| s.to_string()).collect()))
        .status(CertificateStatus::Issued)
        .not_after(DateTime::from_secs(not_after))
        .build()
}

/// The reference stack with its own zone and `aliases` in `[static_assets]`.
fn stack(aliases: &[&str]) -> Stack {
    let path = crate::support::repo().join("templates/webscale.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let list = aliases.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>().join(", ");
    let text = text.replacen("[static_assets]\n", &format!("[static_assets]\naliases = [{list}]\n"), 1);
    webscale::spec::parse(&path, &text, &RegionChoice::default()).unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn the_lookup_takes_the_issued_certificate_covering_every_alias_in_one_call_per_page() {
    let calls = Arc::new(AtomicUsize::new(0));
    // 1001 certificates of other names on the first page, then the candidates.
    let counted = calls.clone();
    let list = mock!(Acm::list_certificates).then_compute_output(move |input| {
        counted.fetch_add(1, Ordering::SeqCst);
        let statuses = input.certificate_statuses().to_vec();
        assert_eq!(statuses, [CertificateStatus::Issued], "only issued certificates");
        match input.next_token() {
            None => ListCertificatesOutput::builder()
                .set_certificate_summary_list(Some(
                    (0..1001)
                        .map(|i| summary(&format!("arn:other-{i}"), &format!("x{i}.example.org"), &[], 1))
                        .collect(),
                ))
                .next_token("page-2")
                .build(),
            Some(_) => ListCertificatesOutput::builder()
                // Covers only one of the two aliases.
                .certificate_summary_list(summary("arn:partial", "static.webscale.example.com", &[], 9_000))
                // A wildcard covering both, twice: the one valid longer wins.
                .certificate_summary_list(summary(
                    "arn:old",
                    "webscale.example.com",
                    &["*.webscale.example.com"],
                    5_000,
                ))
                .certificate_summary_list(summary("arn:new", "*.webscale.example.com", &[], 8_000))
                .build(),
        }
    });
    let interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny).with_rule(&list);
    let acm = Acm::from_conf(
        aws_sdk_acm::Config::builder()
            .behavior_version_latest()
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build(),
    );
    let cloud = Cloud::from_clients("mocked", REGION, Clients { acm, ..unused_clients() }, fast());
    let stack = stack(&["static.webscale.example.com", "media.webscale.example.com"]);
    let found = Certificate.read(&ReadCtx::new(&cloud, &stack), GLOBAL).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].outputs["arn"], "arn:new", "the covering certificate valid longest");
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one ListCertificates per page");

    // Nothing covers the apex (a wildcard does not): found nothing, which fails the plan with the names.
    calls.store(0, Ordering::SeqCst);
    let apex = self::stack(&["webscale.example.com", "media.webscale.example.com"]);
    let found = Certificate.read(&ReadCtx::new(&cloud, &apex), GLOBAL).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.iter().map(|l| l.outputs["arn"].clone()).collect::<Vec<_>>(), ["arn:old"], "its SAN covers both");
    let none = self::stack(&["a.b.webscale.example.com"]);
    let found = Certificate.read(&ReadCtx::new(&cloud, &none), GLOBAL).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(found.is_empty(), "a wildcard covers one label only: {found:?}");
}
