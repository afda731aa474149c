//! The stack lock against the emulator: two applies of one stack at once build it once; a lock left by a killed
//! run is called stale and broken with `webscale unlock`; a live holder's lock is not broken without `--force`.

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use webscale::lock::{parameter_name, rfc3339, this_host};

use crate::support::{REGION, Run, TestStack, ec2, endpoint, owned};

/// An SSM client of our own, built like `support::ec2`.
async fn ssm() -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&crate::support::sdk_config().await)
}

/// The lock parameter's value, if the stack is locked.
async fn lock_value(ssm: &aws_sdk_ssm::Client, stack: &str) -> Option<String> {
    match ssm.get_parameter().name(parameter_name(stack)).send().await {
        Ok(out) => Some(out.parameter().and_then(|p| p.value()).unwrap_or_default().to_string()),
        Err(e) if e.as_service_error().is_some_and(|e| e.is_parameter_not_found()) => None,
        Err(e) => panic!("GetParameter: {e:?}"),
    }
}

/// Locks the stack the way a run on this host with `pid` would have (value and ownership tag), started 10 minutes ago.
async fn lock_as(ssm: &aws_sdk_ssm::Client, stack: &str, pid: u32) {
    let started = rfc3339(SystemTime::now() - Duration::from_secs(600));
    let value = serde_json::json!({
        "host": this_host(), "pid": pid, "user": "ci", "command": "apply", "started": started, "token": "someone-else",
    });
    ssm.put_parameter()
        .name(parameter_name(stack))
        .value(value.to_string())
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(false)
        .tags(aws_sdk_ssm::types::Tag::builder().key("webscale:stack").value(stack).build().unwrap())
        .send()
        .await
        .unwrap();
}

async fn vpcs(stack: &str) -> usize {
    ec2().await.describe_vpcs().filters(owned(stack)).send().await.unwrap().vpcs().len()
}

/// A pid no process on this host has.
fn dead_pid() -> u32 {
    (4_000_000..).find(|p| !std::path::Path::new(&format!("/proc/{p}")).exists()).unwrap()
}

/// `webscale apply --auto-approve` started (not waited for), with the environment `support::webscale` gives.
fn spawn_apply(stack: &TestStack) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_webscale"))
        .args(["apply", "--auto-approve", "-f", stack.spec.to_str().unwrap()])
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", REGION)
        .env_remove("AWS_PROFILE")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start webscale")
}

fn finish(child: std::process::Child) -> Run {
    let out = child.wait_with_output().expect("wait for webscale");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_applies_at_once_build_the_stack_once_and_the_second_names_the_holder() {
    let stack = TestStack::new("lock_race");
    let ssm = ssm().await;
    let (a, b) = (spawn_apply(&stack), spawn_apply(&stack));
    let pids = [a.id(), b.id()];
    let runs = [finish(a), finish(b)];
    let codes: Vec<i32> = runs.iter().map(|r| r.code).collect();
    assert!(codes == [0, 1] || codes == [1, 0], "exactly one apply must succeed:\n{}\n\n{}", runs[0], runs[1]);
    let (winner, loser) = if codes[0] == 0 { (0, 1) } else { (1, 0) };
    let refused = &runs[loser];
    assert!(refused.stderr.contains(&format!("stack {} is locked by an apply", stack.name)), "{refused}");
    assert!(refused.stderr.contains(&format!("on host {} (pid {}), since ", this_host(), pids[winner])), "{refused}");
    assert!(refused.stderr.contains("nothing was changed"), "{refused}");
    assert!(refused.stdout.is_empty(), "refused before planning, so nothing on stdout:\n{refused}");
    assert_eq!(vpcs(&stack.name).await, 1, "one stack, one VPC:\n{}\n\n{}", runs[0], runs[1]);
    assert_eq!(lock_value(&ssm, &stack.name).await, None, "the winner gave the lock back");

    // The stack is whole: a second apply (now unlocked) has nothing to do.
    let again = stack.apply();
    assert!(again.stdout.contains("No changes"), "{again}");
    stack.destroy();
    assert_eq!(vpcs(&stack.name).await, 0);
    assert_eq!(lock_value(&ssm, &stack.name).await, None, "destroy gave the lock back");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lock_left_by_a_killed_run_is_called_stale_and_unlock_breaks_it() {
    let stack = TestStack::new("lock_stale");
    let ssm = ssm().await;
    let pid = dead_pid();
    lock_as(&ssm, &stack.name, pid).await;

    let refused = stack.run(&["apply", "--auto-approve"]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(refused.stderr.contains(&format!("on host {} (pid {pid}), since ", this_host())), "{refused}");
    assert!(refused.stderr.contains("(10m ago)"), "{refused}");
    assert!(refused.stderr.contains(&format!("The lock is stale: pid {pid} is not running on this host")), "{refused}");
    let unlock = format!("`webscale unlock -f {}`", stack.spec.display());
    assert!(refused.stderr.contains(&unlock), "the refusal says how to break it:\n{refused}");
    assert_eq!(vpcs(&stack.name).await, 0, "refused before any change");
    assert!(lock_value(&ssm, &stack.name).await.unwrap().contains("someone-else"), "a refusal leaves the lock alone");

    let broken = stack.run(&["unlock"]).success();
    assert!(broken.stdout.contains("is locked by an apply by ci on host"), "unlock shows the holder:\n{broken}");
    assert!(broken.stdout.contains("stale"), "{broken}");
    assert!(broken.stdout.contains(&format!("Broke the lock of stack {}.", stack.name)), "{broken}");
    assert_eq!(lock_value(&ssm, &stack.name).await, None);
    let nothing = stack.run(&["unlock"]).success();
    assert!(nothing.stdout.contains("is not locked"), "{nothing}");

    stack.apply();
    assert_eq!(vpcs(&stack.name).await, 1);
    assert_eq!(lock_value(&ssm, &stack.name).await, None);
    stack.destroy();
    assert_eq!(vpcs(&stack.name).await, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn unlock_refuses_while_the_holder_runs_unless_forced() {
    let stack = TestStack::new("lock_alive");
    let ssm = ssm().await;
    let pid = std::process::id();
    lock_as(&ssm, &stack.name, pid).await;

    // A JSON consumer: the refusal is on stderr, stdout stays empty, exit 1.
    let refused = stack.run(&["apply", "--auto-approve", "--json"]);
    assert_eq!(refused.code, 1, "{refused}");
    assert!(refused.stdout.is_empty(), "{refused}");
    assert!(refused.stderr.contains(&format!("That run is still going (pid {pid} on this host)")), "{refused}");
    assert!(!refused.stderr.contains("stale:"), "{refused}");
    let destroy = stack.run(&["destroy", "--auto-approve"]);
    assert_eq!(destroy.code, 1, "destroy takes the same lock:\n{destroy}");

    let kept = stack.run(&["unlock"]);
    assert_eq!(kept.code, 1, "{kept}");
    assert!(kept.stdout.contains(&format!("(still running: pid {pid} on this host)")), "{kept}");
    assert!(kept.stderr.contains("not breaking the lock") && kept.stderr.contains("--force"), "{kept}");
    assert!(lock_value(&ssm, &stack.name).await.is_some(), "the lock stays");

    let forced = stack.run(&["unlock", "--force"]).success();
    assert!(forced.stdout.contains(&format!("Broke the lock of stack {}.", stack.name)), "{forced}");
    assert_eq!(lock_value(&ssm, &stack.name).await, None);
    assert_eq!(vpcs(&stack.name).await, 0, "nothing was built while locked");
}
