//! The command line as CI scripts see it, before any AWS call.

use crate::support::webscale;

#[test]
fn a_usage_error_exits_1_never_2_which_means_changes_pending() {
    let typo = webscale(&["plan", "--detailed-exitcod", "-f", "templates/webscale.toml"]);
    assert_eq!(typo.code, 1, "{typo}");
    assert!(typo.stderr.contains("--detailed-exitcode"), "clap suggests the right flag:\n{typo}");
    // Refused by its own range check, before anything else: with the check gone, 0 would get as far as reading
    // the (valid) spec and asking AWS.
    let zero = webscale(&["apply", "--parallelism", "0", "-f", "templates/webscale.toml"]);
    assert_eq!(zero.code, 1, "{zero}");
    assert!(zero.stderr.contains("--parallelism") && zero.stderr.contains("0 is not in 1..=256"), "{zero}");
    let help = webscale(&["--help"]);
    assert_eq!(help.code, 0, "{help}");
    assert!(help.stdout.contains("validate") && help.stdout.contains("destroy"), "{help}");
}

#[test]
fn validate_needs_no_aws_at_all() {
    // An endpoint nothing listens on: validate must not notice.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_webscale"))
        .args(["validate", "-f", "templates/webscale.toml"])
        .current_dir(crate::support::repo())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let n = crate::support::template_resources();
    let said = format!("is valid: stack webscale in us-east-1, {n} resources");
    assert!(String::from_utf8_lossy(&out.stdout).contains(&said));
}

/// An endpoint without a scheme is a plain sentence saying what to write, not the SDK's request dump.
#[test]
fn an_endpoint_without_a_scheme_is_named_with_the_fix() {
    let out = webscale(&["plan", "-f", "templates/webscale.toml", "--endpoint-url", "127.0.0.1:4566"]);
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("--endpoint-url \"127.0.0.1:4566\" has no scheme: use http://127.0.0.1:4566"), "{out}");
    assert!(out.stderr.lines().count() <= 2, "one plain sentence:\n{out}");
}

/// `--help` of a command lists its own options apart from the global ones (region, profile, endpoint, colour,
/// verbosity), as the AWS CLI and Terraform users expect.
#[test]
fn help_lists_global_options_apart_from_the_commands_own() {
    let help = webscale(&["apply", "--help"]);
    assert_eq!(help.code, 0, "{help}");
    let (own, global) = help.stdout.split_once("Global options:").unwrap_or_else(|| panic!("{help}"));
    assert!(own.contains("--auto-approve") && own.contains("--parallelism"), "{help}");
    for flag in ["--region", "--profile", "--endpoint-url", "--no-color", "--verbose"] {
        assert!(global.contains(flag) && !own.contains(flag), "{flag} is a global option:\n{help}");
    }
}

/// The logging pipeline's Node.js handler has tests of its own (`tests/handler/`, `node --test`): run here too, so
/// `cargo test` covers it wherever Node.js is installed (`.ci/run` also runs them on their own, and requires Node.js).
#[test]
fn the_handler_logs_each_sns_record_as_one_json_line_under_node_test() {
    let out = match std::process::Command::new("node")
        .arg("--test")
        .arg("tests/handler/")
        .current_dir(crate::support::repo())
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("SKIPPED: no `node` on PATH to run tests/handler/ (Node.js 20 or later)");
            return;
        }
        Err(e) => panic!("running node: {e}"),
    };
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "node --test tests/handler/ failed:\n{text}");
    assert!(text.contains("# pass 2") && text.contains("# fail 0"), "both handler tests ran:\n{text}");
}
