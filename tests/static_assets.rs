//! Static assets (`bucket.assets`, `bucket_policy.assets`, `origin_access_control.assets`, `distribution.assets`,
//! `bucket_objects.assets`) against the emulator.
//!
//! The real binary applies the stack; S3 and CloudFront clients of the test's own check what a user would: the bucket
//! private (every public access block on, encrypted, ACLs disabled), its policy admitting only this distribution,
//! the distribution reading the bucket through the origin access control over HTTPS; every file of the folder
//! uploaded with its content type and cache header; then a second apply that uploads nothing, one changed file
//! that is the only upload and the only path invalidated, one deleted file that is the only delete; and a destroy
//! that leaves no bucket (objects included) and no distribution.
//!
//! On LocalStack's free edition, which serves S3 but not CloudFront, the same run goes without the CDN
//! (`cdn = false`), and the CloudFront checks are skipped with the reason printed. CloudFront's own rules (ETags,
//! disable before delete, deployments that take minutes) are tested with mocked SDK responses
//! (`tests/mocked/cloudfront.rs`): moto accepts any ETag and deletes enabled distributions.

use std::collections::BTreeMap;

use aws_sdk_s3::error::ProvideErrorMetadata;
use serde_json::Value;

use crate::support::{self, Engine, TestStack, full_reference_text};

/// The reference template's network and its `[static_assets]`, nothing else: the assets need no instances.
fn assets_spec() -> String {
    let text = full_reference_text();
    let (network, _) = text.split_once("[web]").expect("the template has [web]");
    let (_, assets) = text.split_once("[static_assets]").expect("the template has [static_assets]");
    // Up to the next table's comment (or the end).
    let assets = assets.split("\n\n").next().unwrap_or(assets);
    format!("{network}[static_assets]{assets}\n")
}

/// Whether CloudFront is part of the run (not on LocalStack's free edition, which does not serve it).
fn with_cdn() -> bool {
    if support::engine() == Engine::LocalStack {
        println!(
            "SKIPPED (CloudFront checks): LocalStack's free edition does not serve CloudFront; the bucket and the sync run with cdn = false"
        );
        return false;
    }
    true
}

async fn s3() -> aws_sdk_s3::Client {
    let config = support::sdk_config().await;
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build())
}

async fn cloudfront() -> aws_sdk_cloudfront::Client {
    aws_sdk_cloudfront::Client::new(&support::sdk_config().await)
}

/// The bucket's objects, key -> (ETag, last modified), as our own client lists them.
async fn objects(s3: &aws_sdk_s3::Client, bucket: &str) -> BTreeMap<String, (String, String)> {
    s3.list_objects_v2()
        .bucket(bucket)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .expect("ListObjectsV2")
        .iter()
        .flat_map(|page| page.contents().to_vec())
        .map(|o| {
            let modified = o.last_modified().map(|t| t.to_string()).unwrap_or_default();
            (o.key().unwrap_or_default().to_string(), (o.e_tag().unwrap_or_default().to_string(), modified))
        })
        .collect()
}

/// The site's files: every object but webscale's own records (under `.webscale/`).
fn site(objects: &BTreeMap<String, (String, String)>) -> Vec<&str> {
    objects.keys().map(String::as_str).filter(|k| !k.starts_with(".webscale/")).collect()
}

/// `webscale output --json`'s static assets.
fn outputs(stack: &TestStack) -> Value {
    let run = stack.run(&["output", "--json"]).success();
    let all: Value = serde_json::from_str(&run.stdout).expect("output --json is JSON");
    all["static_assets"].clone()
}

/// The paths of every invalidation of the distribution, one list per invalidation.
async fn invalidations(cf: &aws_sdk_cloudfront::Client, id: &str) -> Vec<Vec<String>> {
    let list = cf.list_invalidations().distribution_id(id).send().await.expect("ListInvalidations");
    let mut out = Vec::new();
    for summary in list.invalidation_list().map(|l| l.items()).unwrap_or_default() {
        let one = cf.get_invalidation().distribution_id(id).id(summary.id()).send().await.expect("GetInvalidation");
        let mut paths: Vec<String> = one
            .invalidation()
            .and_then(|i| i.invalidation_batch())
            .and_then(|b| b.paths())
            .map(|p| p.items().to_vec())
            .unwrap_or_default();
        paths.sort();
        out.push(paths);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn assets_are_private_served_only_through_cloudfront_and_synced_file_by_file() {
    // On LocalStack the spec is already without CloudFront (`full_reference_text`).
    let cdn = with_cdn();
    let stack = TestStack::new("assets").with_spec(&assets_spec());
    let apply = stack.apply();
    assert!(apply.stdout.contains("Apply complete"), "{apply}");
    let out = outputs(&stack);
    let bucket = out["bucket"].as_str().unwrap_or_else(|| panic!("no bucket in the outputs: {out}")).to_string();
    let sts = aws_sdk_sts::Client::new(&support::sdk_config().await);
    let me = sts.get_caller_identity().send().await.expect("GetCallerIdentity");
    let account = me.account().expect("an account");
    assert_eq!(bucket, format!("{}-assets-{account}", stack.name), "the derived name: stack and account");

    // The bucket: private, encrypted, ACLs off, tagged.
    let s3 = s3().await;
    let block = s3.get_public_access_block().bucket(&bucket).send().await.expect("GetPublicAccessBlock");
    let c = block.public_access_block_configuration().expect("a public access block");
    assert_eq!(
        (c.block_public_acls(), c.ignore_public_acls(), c.block_public_policy(), c.restrict_public_buckets()),
        (Some(true), Some(true), Some(true), Some(true)),
        "every public access block on"
    );
    let enc = s3.get_bucket_encryption().bucket(&bucket).send().await.expect("GetBucketEncryption");
    let algorithm = enc
        .server_side_encryption_configuration()
        .and_then(|c| c.rules().first())
        .and_then(|r| r.apply_server_side_encryption_by_default())
        .map(|d| d.sse_algorithm().as_str().to_string());
    assert_eq!(algorithm.as_deref(), Some("AES256"));
    let own = s3.get_bucket_ownership_controls().bucket(&bucket).send().await.expect("GetBucketOwnershipControls");
    let ownership = own.ownership_controls().and_then(|c| c.rules().first()).map(|r| r.object_ownership().as_str());
    assert_eq!(ownership, Some("BucketOwnerEnforced"), "ACLs disabled");
    let tags = s3.get_bucket_tagging().bucket(&bucket).send().await.expect("GetBucketTagging");
    let tag = |k: &str| tags.tag_set().iter().find(|t| t.key() == k).map(|t| t.value().to_string());
    assert_eq!(tag("webscale:stack").as_deref(), Some(stack.name.as_str()));
    assert_eq!(tag("webscale:address").as_deref(), Some("bucket.assets"));

    // Every file of the folder, with its content type and cache header.
    let before = objects(&s3, &bucket).await;
    assert_eq!(site(&before), ["404.html", "css/site.css", "index.html", "js/site.js"]);
    let head = |key: &'static str| {
        let s3 = s3.clone();
        let bucket = bucket.clone();
        async move { s3.head_object().bucket(bucket).key(key).send().await.expect("HeadObject") }
    };
    let index = head("index.html").await;
    assert_eq!(index.content_type(), Some("text/html; charset=utf-8"));
    assert_eq!(index.cache_control(), Some("public, max-age=0, must-revalidate"), "HTML revalidates");
    let css = head("css/site.css").await;
    assert_eq!(css.content_type(), Some("text/css; charset=utf-8"));
    assert_eq!(css.cache_control(), Some("public, max-age=86400"));

    let mut distribution_id = None;
    if cdn {
        // The distribution reads the bucket through the origin access control, over HTTPS only.
        let id = out["distribution_id"].as_str().expect("a distribution id").to_string();
        let cf = cloudfront().await;
        let got = cf.get_distribution().id(&id).send().await.expect("GetDistribution");
        let d = got.distribution().expect("the distribution");
        let config = d.distribution_config().expect("its config");
        let origins = config.origins().map(|o| o.items()).unwrap_or_default();
        assert_eq!(origins.len(), 1, "one origin");
        assert_eq!(origins[0].domain_name(), format!("{bucket}.s3.{}.amazonaws.com", support::REGION));
        let oac = match origins[0].origin_access_control_id().filter(|id| !id.is_empty()) {
            Some(id) => id.to_string(),
            // moto keeps no OriginAccessControlId on origins (AWS does): there the tag webscale writes with every
            // change of the distribution says which OAC it gave the origin.
            None => {
                let tags = cf.list_tags_for_resource().resource(d.arn()).send().await.expect("ListTagsForResource");
                let items = tags.tags().map(|t| t.items()).unwrap_or_default();
                let recorded = items.iter().find(|t| t.key() == "webscale:origin-access-control");
                recorded.and_then(|t| t.value()).expect("the origin signs through an OAC").to_string()
            }
        };
        let oac = cf.get_origin_access_control().id(&oac).send().await.expect("GetOriginAccessControl");
        let oac = oac.origin_access_control().and_then(|o| o.origin_access_control_config()).expect("OAC config");
        assert_eq!(oac.signing_behavior().as_str(), "always");
        assert_eq!(oac.signing_protocol().as_str(), "sigv4");
        assert_eq!(oac.origin_access_control_origin_type().as_str(), "s3");
        let behavior = config.default_cache_behavior().expect("a default behaviour");
        assert_eq!(behavior.viewer_protocol_policy().as_str(), "redirect-to-https");
        assert_eq!(config.default_root_object(), Some("index.html"));
        assert_eq!(out["domain_name"].as_str(), Some(d.domain_name()));

        // The bucket policy lets exactly this distribution read, and nobody else.
        let policy = s3.get_bucket_policy().bucket(&bucket).send().await.expect("GetBucketPolicy");
        let policy: Value = serde_json::from_str(policy.policy().unwrap_or_default()).expect("policy JSON");
        let allows: Vec<&Value> =
            policy["Statement"].as_array().unwrap().iter().filter(|s| s["Effect"] == "Allow").collect();
        assert_eq!(allows.len(), 1, "one grant: {policy}");
        assert_eq!(allows[0]["Principal"]["Service"], "cloudfront.amazonaws.com");
        assert_eq!(allows[0]["Action"], "s3:GetObject");
        assert_eq!(allows[0]["Condition"]["StringEquals"]["AWS:SourceArn"], d.arn(), "only this distribution");
        distribution_id = Some(id);
    }

    // Nothing to do: a second plan is empty, and a second apply uploads nothing.
    let plan = stack.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "a plan after the apply has changes:\n{plan}");
    stack.apply();
    assert_eq!(objects(&s3, &bucket).await, before, "a second apply rewrote objects");

    // One changed file: the plan names it alone; the apply uploads it alone and invalidates exactly its path.
    let css_file = stack.dir.path().join("site/css/site.css");
    std::fs::write(&css_file, "body { color: rebeccapurple; }\n").expect("edit the stylesheet");
    let plan = stack.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 2, "{plan}");
    assert!(plan.stdout.contains("css/site.css"), "the plan names the changed file:\n{plan}");
    for other in ["index.html", "js/site.js", "404.html"] {
        assert!(!plan.stdout.contains(other), "the plan names {other}, which did not change:\n{plan}");
    }
    stack.apply();
    let after = objects(&s3, &bucket).await;
    let rewritten: Vec<&str> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(v) && !k.starts_with(".webscale/"))
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(rewritten, ["css/site.css"], "only the changed file was uploaded");
    if let Some(id) = &distribution_id {
        let cf = cloudfront().await;
        assert_eq!(invalidations(&cf, id).await, [vec!["/css/site.css".to_string()]], "one invalidation naming it");
    }

    // One deleted file: deleted alone.
    std::fs::remove_file(stack.dir.path().join("site/js/site.js")).expect("delete the script");
    stack.apply();
    let last = objects(&s3, &bucket).await;
    assert_eq!(site(&last), ["404.html", "css/site.css", "index.html"], "the deleted file is gone, the rest stays");
    for key in site(&last) {
        assert_eq!(last.get(key), after.get(key), "{key} was rewritten by a delete");
    }
    if let Some(id) = &distribution_id {
        let cf = cloudfront().await;
        let all = invalidations(&cf, id).await;
        assert!(all.contains(&vec!["/js/site.js".to_string()]), "an invalidation naming the deleted file: {all:?}");
    }
    let plan = stack.run(&["plan", "--detailed-exitcode"]);
    assert_eq!(plan.code, 0, "converged:\n{plan}");

    // Destroy: no bucket (objects included), no distribution, no origin access control.
    stack.destroy();
    let gone = s3.head_bucket().bucket(&bucket).send().await;
    assert!(gone.is_err(), "the bucket is still there after destroy");
    if let Some(id) = &distribution_id {
        let cf = cloudfront().await;
        let err = cf.get_distribution().id(id).send().await.expect_err("the distribution is still there");
        assert_eq!(err.code(), Some("NoSuchDistribution"));
        let oacs = cf.list_origin_access_controls().send().await.expect("ListOriginAccessControls");
        let left: Vec<String> = oacs
            .origin_access_control_list()
            .map(|l| l.items())
            .unwrap_or_default()
            .iter()
            .filter(|o| o.name().starts_with(&stack.name))
            .map(|o| o.name().to_string())
            .collect();
        assert!(left.is_empty(), "origin access controls left: {left:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bucket_name_already_in_the_account_is_named_before_anything_is_created() {
    let stack = TestStack::new("assets-taken");
    let taken = format!("{}-hand-made", stack.name);
    let s3 = s3().await;
    s3.create_bucket().bucket(&taken).send().await.expect("CreateBucket");
    // (On LocalStack the spec is already without CloudFront: `full_reference_text`.)
    let spec = assets_spec().replacen("[static_assets]\n", &format!("[static_assets]\nbucket = \"{taken}\"\n"), 1);
    let stack = stack.with_spec(&spec);
    let run = stack.run(&["apply", "--auto-approve"]);
    let _ = s3.delete_bucket().bucket(&taken).send().await;
    let cleanup = stack.run(&["destroy", "--auto-approve"]);
    assert_ne!(run.code, 0, "apply took over a bucket the stack does not own:\n{run}");
    assert!(run.stderr.contains(&taken) && run.stderr.contains("webscale import bucket.assets"), "{run}");
    assert!(!run.stdout.contains("Creating"), "nothing starts while the name is taken:\n{run}");
    cleanup.success();
}

/// A self-signed certificate for `names` (the first is the subject), as PEM (certificate, key), made with openssl.
fn self_signed(names: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let san = names.iter().map(|n| format!("DNS:{n}")).collect::<Vec<_>>().join(",");
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj"])
        .arg(format!("/CN={}", names[0]))
        .args(["-addext", &format!("subjectAltName={san}"), "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    (std::fs::read(cert).unwrap(), std::fs::read(key).unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn aliases_present_the_certificate_found_in_acm_and_get_alias_records_in_the_zone() {
    if !with_cdn() {
        return;
    }
    let stack = TestStack::new("assets-alias");
    let zone = format!("{}.example.com", stack.name);
    let alias = format!("static.{zone}");
    // The network, a zone of the stack's own (no records of the load balancer: the stack has none), the assets.
    let spec = assets_spec().replacen(
        "[static_assets]\n",
        &format!("[dns]\nzone = \"{zone}\"\nrecords = []\n\n[static_assets]\naliases = [\"{alias}\"]\n"),
        1,
    );
    let stack = stack.with_spec(&spec);

    // No certificate for the alias yet: the plan says what to look for, and nothing is created.
    let plan = stack.run(&["plan"]);
    assert_ne!(plan.code, 0, "{plan}");
    assert!(plan.stderr.contains("certificate.assets: found nothing") && plan.stderr.contains(&alias), "{plan}");

    // One issued certificate covering it (a wildcard), imported into ACM in us-east-1 as an operator would request
    // one; and another for a different name, which must not be picked.
    let config = support::sdk_config().await;
    let acm = aws_sdk_acm::Client::new(&config);
    let import = |names: Vec<String>| {
        let acm = acm.clone();
        async move {
            let refs: Vec<&str> = names.iter().map(String::as_str).collect();
            let (cert, key) = self_signed(&refs);
            let out = acm
                .import_certificate()
                .certificate(aws_sdk_acm::primitives::Blob::new(cert))
                .private_key(aws_sdk_acm::primitives::Blob::new(key))
                .send()
                .await
                .expect("ImportCertificate");
            out.certificate_arn().expect("an ARN").to_string()
        }
    };
    let wanted = import(vec![format!("*.{zone}")]).await;
    let other = import(vec![format!("other.{zone}")]).await;
    let cleanup = || async {
        for arn in [&wanted, &other] {
            let _ = acm.delete_certificate().certificate_arn(arn).send().await;
        }
    };

    let apply = stack.run(&["apply", "--auto-approve"]);
    if apply.code != 0 {
        cleanup().await;
        panic!("{apply}");
    }
    let out = outputs(&stack);
    let id = out["distribution_id"].as_str().expect("a distribution").to_string();
    let cf = cloudfront().await;
    let got = cf.get_distribution_config().id(&id).send().await.expect("GetDistributionConfig");
    let dc = got.distribution_config().expect("config");
    let aliases = dc.aliases().map(|a| a.items().to_vec()).unwrap_or_default();
    let cert = dc.viewer_certificate().and_then(|v| v.acm_certificate_arn()).map(str::to_string);
    let domain = out["domain_name"].as_str().expect("a domain name").to_string();

    // The alias records, through our own Route 53 client: A and AAAA at the alias, to the distribution.
    let r53 = aws_sdk_route53::Client::new(&config);
    let zones = r53.list_hosted_zones_by_name().dns_name(&zone).send().await.expect("ListHostedZonesByName");
    let zone_id =
        zones.hosted_zones().iter().find(|z| z.name() == format!("{zone}.")).expect("the zone").id().to_string();
    let records =
        r53.list_resource_record_sets().hosted_zone_id(&zone_id).send().await.expect("ListResourceRecordSets");
    let at_alias: Vec<(String, String, String)> = records
        .resource_record_sets()
        .iter()
        .filter(|r| r.name() == format!("{alias}."))
        .filter_map(|r| {
            let t = r.alias_target()?;
            Some((r.r#type().as_str().to_string(), t.dns_name().to_string(), t.hosted_zone_id().to_string()))
        })
        .collect();
    let plan = stack.run(&["plan", "--detailed-exitcode"]);
    let destroy = stack.run(&["destroy", "--auto-approve"]);
    let left = aws_sdk_acm::Client::new(&config).describe_certificate().certificate_arn(&wanted).send().await;
    cleanup().await;

    assert_eq!(aliases, std::slice::from_ref(&alias), "the distribution answers to the alias");
    assert_eq!(cert.as_deref(), Some(wanted.as_str()), "with the certificate that covers it, not the other one");
    let mut types: Vec<&str> = at_alias.iter().map(|(t, _, _)| t.as_str()).collect();
    types.sort();
    assert_eq!(types, ["A", "AAAA"], "{at_alias:?}");
    for (_, name, zone_id) in &at_alias {
        assert_eq!(name.trim_end_matches('.').to_ascii_lowercase(), domain.to_ascii_lowercase(), "to the distribution");
        assert_eq!(zone_id, "Z2FDTNDATAQYW2", "CloudFront's alias zone");
    }
    assert_eq!(plan.code, 0, "converged:\n{plan}");
    assert_eq!(destroy.code, 0, "{destroy}");
    assert!(left.is_ok(), "destroy deleted the certificate, which the stack only looks up");
}
