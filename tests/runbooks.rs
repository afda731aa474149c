//! The ops runbooks (`docs/runbooks/*.md`) are run as written: every ```console block's `$ command` lines are
//! executed by trycmd against the emulator and their output compared with what the page shows (`[..]` and `...`
//! stand for ids and long stretches), so a runbook that stops working fails CI.
//!
//! The runbooks are written for an operator in a folder holding the stack file (`webscale.toml`, a copy of
//! `templates/webscale.toml`, and its `web/` folder). The test gives each page such a folder: it copies the page
//! into a scratch directory next to a `PAGE.in/` folder, which trycmd runs the page's commands in. The pages run
//! one after another on one stack (a roll needs the first deployment), the reference stack's own name, which no
//! other test uses; it is destroyed before (a leftover of an earlier run) and after. As for an operator, the
//! folder carries over: the first page gets a fresh copy of the templates, every later page a copy of the folder
//! as the page before left it (its edits to `webscale.toml` included), so that the file matches the live stack.

use std::path::Path;

use crate::support::{self, Engine, copy_dir, repo, webscale};

/// In the order an operator meets them: each page starts where the one before left the stack and its file. The
/// tear-down destroys the stack, so it comes last.
const RUNBOOKS: &[&str] =
    &["first-deployment", "trace-an-event", "roll-web-ami", "scale-read-replicas", "tear-down-keep-database"];

#[test]
fn runbooks_run_as_written() {
    if support::engine() == Engine::LocalStack {
        // The runbooks bring up the load balancer, which the free LocalStack edition does not serve.
        println!("SKIPPED: the runbooks need ELBv2, which LocalStack's free edition does not serve");
        return;
    }
    let scratch = tempfile::tempdir().expect("scratch dir");
    let stack_file = |page: &str| scratch.path().join(format!("{page}.in/webscale.toml"));
    let folder = |page: &str| scratch.path().join(format!("{page}.in"));
    copy_dir(&repo().join("templates"), &folder(RUNBOOKS[0]));
    for page in RUNBOOKS {
        std::fs::copy(repo().join(format!("docs/runbooks/{page}.md")), scratch.path().join(format!("{page}.md")))
            .expect("copy the runbook");
    }
    // The reference stack's database is deletion-protected: the cleanup says that losing it is fine.
    let destroy = || {
        let file = stack_file(RUNBOOKS[0]);
        webscale(&[
            "destroy",
            "--auto-approve",
            "--allow-data-loss",
            "db_instance.primary",
            "--skip-final-snapshot",
            "-f",
            file.to_str().unwrap(),
        ])
    };
    destroy().success();
    // The tear-down page keeps a final snapshot. Its name carries the instance's resource id, unique on AWS but the
    // same for every instance on moto: one left by an earlier run would make the page's destroy fail.
    delete_snapshots(&final_snapshots());
    let _cleanup = Defer(|| {
        let _ = destroy();
        delete_snapshots(&final_snapshots());
    });
    for (n, page) in RUNBOOKS.iter().enumerate() {
        if n > 0 {
            copy_dir(&folder(RUNBOOKS[n - 1]), &folder(page));
        }
        trycmd::TestCases::new()
            .register_bin("webscale", Path::new(env!("CARGO_BIN_EXE_webscale")))
            .register_bin("sed", which("sed"))
            .env("AWS_ENDPOINT_URL", support::endpoint())
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", support::REGION)
            .env("NO_COLOR", "1")
            .env("WEBSCALE_DB_PASSWORD", support::TEST_DB_PASSWORD)
            .case(scratch.path().join(format!("{page}.md")))
            .run();
    }
    // What the tear-down page says it kept, checked through the SDK rather than webscale's own words.
    let kept = final_snapshots();
    assert_eq!(kept.len(), 1, "the tear-down keeps one final snapshot of the primary: {kept:?}");
}

/// The primary's identifier, and the start of its final snapshots' names (`db_instance::final_snapshot`).
const PRIMARY: &str = "webscale-primary";

/// The final snapshots of the reference stack's primary, by name.
fn final_snapshots() -> Vec<String> {
    block_on(async {
        let rds = aws_sdk_rds::Client::new(&support::sdk_config().await);
        let snapshots: Vec<aws_sdk_rds::types::DbSnapshot> = rds
            .describe_db_snapshots()
            .db_instance_identifier(PRIMARY)
            .snapshot_type("manual")
            .into_paginator()
            .items()
            .send()
            .collect::<Result<Vec<_>, _>>()
            .await
            .expect("DescribeDBSnapshots");
        snapshots
            .iter()
            .filter_map(|s| s.db_snapshot_identifier())
            .filter(|id| id.starts_with(&format!("{PRIMARY}-final-")))
            .map(str::to_string)
            .collect()
    })
}

fn delete_snapshots(names: &[String]) {
    block_on(async {
        let rds = aws_sdk_rds::Client::new(&support::sdk_config().await);
        for name in names {
            rds.delete_db_snapshot().db_snapshot_identifier(name).send().await.expect("DeleteDBSnapshot");
        }
    })
}

fn block_on<T>(work: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(work)
}

/// Runs its closure when dropped, also when a page failed.
struct Defer<F: FnMut()>(F);

impl<F: FnMut()> Drop for Defer<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// A program's path (runbooks edit the stack file with sed, as an operator would).
fn which(program: &str) -> std::path::PathBuf {
    ["/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{program} not found in /usr/bin or /bin"))
}
