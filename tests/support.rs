//! Shared by the emulator tests: the emulator's address and engine, a per-test stack made from the reference
//! template, running the real `webscale` binary, and an SDK client for checking results independently.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

pub const REGION: &str = "us-east-1";

pub fn endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| "http://127.0.0.1:4566".to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Moto,
    LocalStack,
}

/// One GET against the emulator; the status code, or None when nothing answers.
fn probe(path: &str) -> Option<u16> {
    let url = endpoint();
    let host = url.trim_start_matches("http://").trim_end_matches('/');
    let mut s = TcpStream::connect(host).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// Which emulator answers. Tests fail (never silently pass) when none does, and when `WEBSCALE_EMULATOR` (set by
/// `.ci/run`'s LocalStack phase) names another one than answers: a phase must test what it says it tests.
pub fn engine() -> Engine {
    let found = if probe("/moto-api/") == Some(200) {
        Engine::Moto
    } else if probe("/_localstack/health") == Some(200) {
        Engine::LocalStack
    } else {
        panic!("no AWS emulator answers on {}: start one with `localstack/up`", endpoint());
    };
    if let Ok(want) = std::env::var("WEBSCALE_EMULATOR") {
        let want = match want.as_str() {
            "localstack" => Engine::LocalStack,
            "moto" => Engine::Moto,
            other => panic!("WEBSCALE_EMULATOR={other}: expected moto or localstack"),
        };
        assert_eq!(found, want, "WEBSCALE_EMULATOR says {want:?} but {found:?} answers on {}", endpoint());
    }
    found
}

/// Whether a test must be skipped because the emulator does not serve `service`, judged from what it answered to
/// a first call of that service (LocalStack's free edition: "... not included in your current license plan"):
/// prints `SKIPPED: ...` with the reason and returns true. Only LocalStack is ever skipped; moto serves everything.
#[allow(dead_code)] // Used by the tiers that need services LocalStack's free edition lacks.
pub fn skip_unserved(service: &str, answer: &str) -> bool {
    let unserved = answer.contains("not included in your") || answer.contains("not yet implemented");
    if unserved && engine() == Engine::LocalStack {
        println!("SKIPPED: the emulator does not serve {service}: {answer}");
        return true;
    }
    false
}

/// How many resources the reference template declares (what it looks up left out): tests say "N to add" with
/// this, so a tier added to the template does not touch them.
pub fn reference_resources() -> usize {
    let path = repo().join("templates/webscale.toml");
    let stack =
        webscale::spec::parse(&path, &reference_text(), &webscale::spec::RegionChoice::default()).expect("it parses");
    // Lookups (the AMI behind an SSM parameter) are found, never the stack's: plans do not count them.
    let lookup =
        |d: &&webscale::resources::Desired| webscale::resources::kind(d.address.kind()).is_some_and(|k| k.is_lookup());
    webscale::resources::desired(&stack).iter().filter(|d| !lookup(d)).count()
}

/// How many resources `templates/webscale.toml` itself declares (lookups left out), whatever the emulator.
pub fn template_resources() -> usize {
    let path = repo().join("templates/webscale.toml");
    let text = std::fs::read_to_string(&path).expect("reference template");
    let spec = webscale::spec::parse(&path, &text, &webscale::spec::RegionChoice::default()).expect("it parses");
    webscale::resources::desired(&spec)
        .iter()
        .filter(|d| !webscale::resources::kind(d.address.kind()).is_some_and(|k| k.is_lookup()))
        .count()
}

/// How many resources the stack's spec declares (lookups left out, as plans count them).
pub fn declared(stack: &TestStack) -> usize {
    let text = std::fs::read_to_string(&stack.spec).expect("the stack's spec");
    let spec = webscale::spec::parse(&stack.spec, &text, &webscale::spec::RegionChoice::default()).expect("it parses");
    webscale::resources::desired(&spec)
        .iter()
        .filter(|d| !webscale::resources::kind(d.address.kind()).is_some_and(|k| k.is_lookup()))
        .count()
}

/// The reference template as the emulator tests apply it: without `[database]`, which has tests of its own
/// (tests/database.rs, with `full_reference_text`); everywhere else a database would only add its waits, and a destroy
/// that needs --allow-data-loss. LocalStack's free edition does not serve ELBv2, so there it also loses
/// `[load_balancer]` and the alias records that point at it (the zone stays: Route 53 is served); the tiers that need
/// them are tested on moto, and skipped on LocalStack with the reason printed.
pub fn reference_text() -> String {
    let text = without_table(&without_table(&without_database(&template_text()), "static_assets"), "logging");
    if engine() != Engine::LocalStack {
        return text;
    }
    without_load_balancer(&text)
}

/// The reference template as it is, database, static assets and logging included (on LocalStack, without what its
/// free edition does not serve: the load balancer and the records pointing at it, RDS, CloudFront, and Lambda
/// functions, which need Docker there to become Active).
pub fn full_reference_text() -> String {
    let text = template_text();
    if engine() != Engine::LocalStack {
        return text;
    }
    without_table(&without_cdn(&without_load_balancer(&without_database(&text))), "logging")
}

/// The reference template with the logging pipeline but neither the database nor the static assets (the tests of
/// the logging tier: tests/logging.rs).
pub fn logging_reference_text() -> String {
    let text = without_table(&without_database(&template_text()), "static_assets");
    if engine() != Engine::LocalStack {
        return text;
    }
    without_load_balancer(&text)
}

fn template_text() -> String {
    std::fs::read_to_string(repo().join("templates/webscale.toml")).expect("reference template")
}

/// The template without its last table, `[database]`, and the comment above it.
fn without_database(text: &str) -> String {
    let (head, database) = text.split_once("\n[database]").expect("the template has [database]");
    assert!(!database.contains("\n["), "[database] is no longer the template's last table: update support.rs");
    head.trim_end().rsplit_once("\n\n").map_or(head, |(head, _comment)| head).to_string() + "\n"
}

/// The template without the table `[NAME]` (one with no blank line inside) and the comment above it.
pub fn without_table(text: &str, name: &str) -> String {
    let (head, rest) =
        text.split_once(&format!("\n[{name}]\n")).unwrap_or_else(|| panic!("the template has no [{name}]"));
    let head = head.trim_end().rsplit_once("\n\n").map_or(head, |(head, _comment)| head).to_string();
    // What follows the table: the next table's comment and the table, if any.
    match rest.split_once("\n\n") {
        Some((_, next)) => format!("{head}\n\n{next}"),
        None => head + "\n",
    }
}

/// The static assets without CloudFront: the bucket and its objects alone.
pub fn without_cdn(text: &str) -> String {
    let out = text.replacen("[static_assets]\n", "[static_assets]\ncdn = false\n", 1);
    assert_ne!(out, text, "the template has no [static_assets]: update support.rs");
    out
}

fn without_load_balancer(text: &str) -> String {
    let (head, rest) = text.split_once("[load_balancer]").expect("the template has [load_balancer]");
    let (_, dns) = rest.split_once("[dns]").expect("the template has [dns] after [load_balancer]");
    let dns = dns.replacen("records = [\"apex\", \"www\"]", "records = []", 1);
    assert!(dns.contains("records = []"), "the template's [dns] records changed: update support.rs");
    format!("{head}# [load_balancer] left out: not served by LocalStack's free edition\n\n[dns]{dns}")
}

/// A stack of one test: its own name (so tests run in parallel), its own spec file.
pub struct TestStack {
    pub name: String,
    pub dir: tempfile::TempDir,
    pub spec: PathBuf,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl TestStack {
    /// The reference template under a unique stack name.
    pub fn new(test: &str) -> TestStack {
        let text = reference_text();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("t-{test}-{}-{n}", std::process::id()).replace('_', "-");
        let stack = TestStack { name, dir: tempfile::tempdir().expect("temp dir"), spec: PathBuf::new() };
        stack.with_spec(&text)
    }

    /// The reference template's network tier only (everything before `[web]`), under a unique stack name: for
    /// tests of the network kinds and the engine, which need neither instances nor a load balancer.
    pub fn network(test: &str) -> TestStack {
        let stack = TestStack::new(test);
        let text = reference_text();
        let (network, _) = text.split_once("[web]").expect("the template has [web]");
        stack.with_spec(network)
    }

    /// Replaces the spec text (the stack name is kept).
    pub fn with_spec(mut self, text: &str) -> TestStack {
        self.write(text);
        self
    }

    pub fn write(&mut self, text: &str) {
        let text = text.replacen("name = \"webscale\"", &format!("name = \"{}\"", self.name), 1);
        assert!(text.contains(&self.name), "the spec must carry name = \"webscale\" in [stack]");
        self.spec = self.dir.path().join("webscale.toml");
        std::fs::write(&self.spec, text).expect("write spec");
        // The user data file the template names, relative to the stack file.
        let web = self.dir.path().join("web");
        std::fs::create_dir_all(&web).expect("web dir");
        std::fs::copy(repo().join("templates/web/user-data.sh"), web.join("user-data.sh")).expect("copy user data");
        // The static assets' folder, copied once: a test then edits its copy as an operator edits theirs.
        let site = self.dir.path().join("site");
        if !site.exists() {
            copy_dir(&repo().join("templates/site"), &site);
        }
        // The logging pipeline's handler folder, likewise.
        let handler = self.dir.path().join("handler");
        if !handler.exists() {
            copy_dir(&repo().join("templates/handler"), &handler);
        }
    }

    pub fn edit(&mut self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.spec).unwrap();
        assert!(text.contains(from), "spec has no {from:?}");
        std::fs::write(&self.spec, text.replacen(from, to, 1)).unwrap();
    }

    /// Runs `webscale ARGS -f SPEC`.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-f", self.spec.to_str().unwrap()]);
        webscale(&all)
    }

    pub fn apply(&self) -> Run {
        self.run(&["apply", "--auto-approve"]).success()
    }

    pub fn destroy(&self) -> Run {
        self.run(&["destroy", "--auto-approve"]).success()
    }

    /// The plan as JSON.
    pub fn plan(&self) -> serde_json::Value {
        let run = self.run(&["plan", "--json"]).success();
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("plan --json is not JSON ({e}):\n{}", run.stdout))
    }
}

/// Best-effort cleanup so a failed test does not leave its stack behind for the next run.
impl Drop for TestStack {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = webscale(&["destroy", "--auto-approve", "-f", self.spec.to_str().unwrap()]);
        }
    }
}

pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn success(self) -> Run {
        assert_eq!(self.code, 0, "webscale failed:\n{self}");
        self
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}\n--- stdout\n{}\n--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

/// The master password the reference stack's `password_env` names, given to every webscale the tests run.
pub const TEST_DB_PASSWORD: &str = "test-Only-Passw0rd-7c1e";

/// Runs the real binary the way a CI pipeline would: environment credentials, no terminal, no colour.
pub fn webscale(args: &[&str]) -> Run {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_webscale"))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint())
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", REGION)
        .env_remove("AWS_PROFILE")
        .env("NO_COLOR", "1")
        .env("WEBSCALE_DB_PASSWORD", TEST_DB_PASSWORD)
        .stdin(Stdio::null())
        .output()
        .expect("run webscale");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The SDK config of our own clients: the emulator, dummy credentials, the test region.
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(webscale::aws::http_client())
        .endpoint_url(endpoint())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_ec2::config::Credentials::new("test", "test", None, None, "tests"))
        .load()
        .await
}

/// An EC2 client of our own, to check what webscale did without trusting webscale's reads.
pub async fn ec2() -> aws_sdk_ec2::Client {
    aws_sdk_ec2::Client::new(&sdk_config().await)
}

/// The `tag:webscale:stack` filter.
pub fn owned(stack: &str) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder().name("tag:webscale:stack").values(stack).build()
}

pub fn tag<'a>(tags: &'a [aws_sdk_ec2::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

/// The id of the stack's security group `name`, as our own client sees it.
pub async fn group_id(ec2: &aws_sdk_ec2::Client, stack: &str, name: &str) -> String {
    let address = format!("security_group.{name}");
    let groups = ec2.describe_security_groups().filters(owned(stack)).send().await.unwrap();
    groups
        .security_groups()
        .iter()
        .find(|g| tag(g.tags(), "webscale:address") == Some(address.as_str()))
        .and_then(|g| g.group_id())
        .unwrap_or_else(|| panic!("stack {stack} has no {address}"))
        .to_string()
}

/// What an operator does in the console: opens SSH to the world on a group.
pub async fn open_ssh(ec2: &aws_sdk_ec2::Client, group: &str) {
    ec2.authorize_security_group_ingress()
        .group_id(group)
        .ip_permissions(
            aws_sdk_ec2::types::IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(aws_sdk_ec2::types::IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// Copies the folder `from` to `to`, recursively.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create folder");
    for entry in std::fs::read_dir(from).expect("read folder") {
        let entry = entry.expect("folder entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}
