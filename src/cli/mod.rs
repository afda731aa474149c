//! The command line: clap definitions and thin commands that hand off to the pipeline.
//!
//! Exit codes, relied on by CI pipelines: 0 success; 1 error (bad spec, AWS failure, refused, failed apply);
//! 2 only with `plan --detailed-exitcode`, when changes are pending.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::aws::{self, Cloud, Settings};
use crate::plan::{self, Plan};
use crate::spec::{self, RegionChoice, Stack};
use crate::ui::Ui;
use crate::{Error, apply, resources};

#[derive(Debug, Parser)]
#[command(
    name = "webscale",
    version,
    about = "Plan, apply and destroy the classic scalable AWS web architecture from one TOML file"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// AWS region; overrides the stack file's [stack] region and AWS_REGION.
    #[arg(long, global = true, help_heading = "Global options")]
    pub region: Option<String>,
    /// Named profile from ~/.aws/config (default: AWS_PROFILE, else "default").
    #[arg(long, global = true, help_heading = "Global options")]
    pub profile: Option<String>,
    /// Send every AWS call to this endpoint (e.g. a local emulator); default: AWS_ENDPOINT_URL.
    #[arg(long, global = true, help_heading = "Global options")]
    pub endpoint_url: Option<String>,
    /// No ANSI colours (also: NO_COLOR, or output that is not a terminal).
    #[arg(long, global = true, help_heading = "Global options")]
    pub no_color: bool,
    /// More log detail on stderr (-v info, -vv debug); RUST_LOG takes precedence.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a stack file without calling AWS: every problem, with file, line and column.
    Validate(FileArgs),
    /// Show what apply would change, attribute by attribute, against live AWS.
    Plan(PlanArgs),
    /// Make live AWS match the stack file.
    Apply(ApplyArgs),
    /// Delete everything the stack owns (found by its tags), and nothing else.
    Destroy(ApplyArgs),
    /// Show who holds the stack's lock and break it (a run that was killed leaves its lock behind).
    Unlock(UnlockArgs),
    /// List every resource the stack owns in live AWS (address, region, id, state), without planning.
    Show(ShowArgs),
    /// Print what the stack offers once applied: site URL, load balancer DNS name, name servers, instance ids,
    /// database endpoints.
    Output(OutputArgs),
    /// Adopt an existing resource (made by hand) as ADDRESS of the stack: give it the stack's ownership tags.
    Import(ImportArgs),
    /// Publish a test event to the logging pipeline's SNS topic ([logging]).
    Publish(PublishArgs),
    /// Print the logging pipeline's log events (the function's log group, or the web tier's with --group app).
    Logs(LogsArgs),
}

#[derive(Debug, Args)]
pub struct FileArgs {
    /// The stack file.
    #[arg(short = 'f', long = "file", default_value = "webscale.toml")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// Exit 0 when there is nothing to do, 2 when there are changes, 1 on error.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Also save the plan (as JSON) to this file, for `apply --plan FILE` after review.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Plan the destroy instead (with --out: for `destroy --plan FILE`).
    #[arg(long)]
    pub destroy: bool,
    #[command(flatten)]
    pub select: SelectArgs,
}

/// `--target` and `--replace`, as Terraform has them.
#[derive(Debug, Clone, Default, Args)]
pub struct SelectArgs {
    /// Plan only this resource and what it needs (repeatable). The plan is partial: for exceptional cases.
    #[arg(long = "target", value_name = "ADDRESS")]
    pub target: Vec<String>,
    /// Replace this resource although nothing forces it (repeatable; not with destroy).
    #[arg(long = "replace", value_name = "ADDRESS")]
    pub replace: Vec<String>,
}

impl SelectArgs {
    pub fn selection(&self) -> plan::Selection {
        plan::Selection { targets: self.target.clone(), replace: self.replace.clone() }
    }

    fn is_empty(&self) -> bool {
        self.target.is_empty() && self.replace.is_empty()
    }
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Do not ask for confirmation (required without a terminal, e.g. in CI).
    #[arg(long)]
    pub auto_approve: bool,
    /// At most this many AWS operations at once.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
    /// Progress and result as JSON lines.
    #[arg(long)]
    pub json: bool,
    /// Apply exactly this saved plan (`plan --out FILE`), which counts as approval. Refused if live AWS or the
    /// spec changed since, so what runs is what was reviewed.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Wait until slow propagation finishes (CloudFront deployments, 5-20 min on AWS) instead of reporting it as
    /// still in progress. A destroy always waits: CloudFront deletes a distribution only once it is deployed.
    #[arg(long)]
    pub wait: bool,
}

/// Deletes that lose data (a database) are refused unless asked for by name.
#[derive(Debug, Args, Default)]
pub struct DataArgs {
    /// Allow this delete or replacement to destroy the data it holds (a database), turning its deletion
    /// protection off first (repeatable). Without it, apply and destroy refuse before changing anything.
    #[arg(long = "allow-data-loss", value_name = "ADDRESS")]
    pub allow_data_loss: Vec<String>,
    /// Delete databases without taking a final snapshot (by default one is kept, named in the plan).
    #[arg(long)]
    pub skip_final_snapshot: bool,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Break the lock even while its holder still runs on this host.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Print the resources as a JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Print the outputs as one JSON object (`site_url`, `load_balancer_dns_name`, `hosted_zone_id`,
    /// `name_servers`, `instances`, `database`, `missing`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// The event's message (the handler logs it).
    pub message: String,
    /// The event's subject.
    #[arg(long)]
    pub subject: Option<String>,
    /// Print `{"topic_arn": ..., "message_id": ...}`.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// Which log group: `events` (the function's, where each published event is logged) or `app` (the web tier's).
    #[arg(long, default_value = "events")]
    pub group: String,
    /// How far back to start: 30s, 10m, 2h, 1d.
    #[arg(long, default_value = "10m", value_parser = crate::events::parse_since)]
    pub since: std::time::Duration,
    /// Keep printing new events as they arrive (every 2 seconds), until Ctrl-C.
    #[arg(long)]
    pub follow: bool,
    /// One JSON object per event (`timestamp` in ms, `log_group`, `log_stream`, `message`), one per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(flatten)]
    pub file: FileArgs,
    /// The address the stack file declares for it (e.g. vpc.main).
    pub address: String,
    /// The id of the existing resource (e.g. vpc-0abc1234).
    pub id: String,
}

impl Cli {
    pub fn ui(&self) -> Ui {
        let json = match &self.command {
            Command::Plan(a) => a.json,
            Command::Apply(a) | Command::Destroy(a) => a.json,
            Command::Show(a) => a.json,
            Command::Output(a) => a.json,
            Command::Publish(a) => a.json,
            Command::Logs(a) => a.json,
            Command::Validate(_) | Command::Unlock(_) | Command::Import(_) => false,
        };
        Ui::new(json, self.global.no_color)
    }
}

pub async fn run(cli: Cli, ui: Ui) -> Result<ExitCode, Error> {
    let settings = Settings {
        region: cli.global.region.clone(),
        profile: cli.global.profile.clone(),
        endpoint_url: cli.global.endpoint_url.clone(),
    };
    check_endpoint(&settings)?;
    match cli.command {
        Command::Validate(args) => {
            let stack = load(&settings, &args.file).await?;
            // What the stack owns, as plans count it: a lookup (the AMI behind an SSM parameter) is not its own.
            let n = resources::desired(&stack)
                .iter()
                .filter(|d| resources::kind(d.address.kind()).is_none_or(|k| !k.is_lookup()))
                .count();
            ui.out(&format!(
                "{} is valid: stack {} in {}, {n} resources.",
                args.file.display(),
                stack.name,
                stack.region
            ));
            // The file is fine without its secrets (a CI lint step has none); say what plan and apply will ask for.
            for p in stack.unset_secrets() {
                ui.err(&format!("note: plan and apply will need this: {p}"));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan(args) => {
            if args.destroy {
                refuse_replace_on_destroy(&args.select)?;
            }
            let (stack, cloud) = connect(&settings, &args.file.file).await?;
            if !args.destroy {
                stack.require_secrets()?;
            }
            let mode = if args.destroy { plan::Mode::Destroy } else { plan::Mode::Apply };
            let plan =
                plan::build_selected(resources::REGISTRY, &cloud, &stack, mode, &args.select.selection()).await?;
            ui.warnings(&plan);
            ui.plan(&plan);
            if let Some(out) = &args.out {
                let mut json = serde_json::to_value(&plan).unwrap_or_default();
                // A destroy plan says so: `destroy --plan` takes only these, `apply --plan` never.
                if args.destroy {
                    json["destroy"] = serde_json::Value::Bool(true);
                }
                // A targeted plan, or one with forced replacements, is re-made the same way by `apply --plan`.
                if !args.select.target.is_empty() {
                    json["targets"] = serde_json::json!(args.select.target);
                }
                if !args.select.replace.is_empty() {
                    json["replace"] = serde_json::json!(args.select.replace);
                }
                let text = serde_json::to_string_pretty(&json).unwrap_or_default();
                std::fs::write(out, text + "\n")
                    .map_err(|e| Error::Refused(format!("cannot write the plan to {}: {e}", out.display())))?;
                let verb = if args.destroy { "destroy" } else { "apply" };
                ui.err(&format!(
                    "Saved the plan to {}; carry it out with: webscale {verb} -f {} --plan {0}",
                    out.display(),
                    args.file.file.display()
                ));
            }
            Ok(if args.detailed_exitcode && plan.has_changes() { ExitCode::from(2) } else { ExitCode::SUCCESS })
        }
        Command::Apply(args) => execute(&settings, &args, plan::Mode::Apply, ui).await,
        Command::Destroy(args) => execute(&settings, &args, plan::Mode::Destroy, ui).await,
        Command::Unlock(args) => {
            let (stack, cloud) = connect(&settings, &args.file.file).await?;
            crate::lock::unlock(&cloud, &stack, args.force, &ui).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Show(args) => {
            let (stack, cloud) = connect(&settings, &args.file.file).await?;
            let inventory = plan::inventory::inventory(resources::REGISTRY, &cloud, &stack).await?;
            for w in &inventory.warnings {
                ui.warn(w);
            }
            ui.show(&inventory);
            Ok(ExitCode::SUCCESS)
        }
        Command::Publish(args) => {
            let (stack, cloud) = connect(&settings, &args.file.file).await?;
            let published = crate::events::publish(&cloud, &stack, &args.message, args.subject.as_deref()).await?;
            ui.published(&published);
            Ok(ExitCode::SUCCESS)
        }
        Command::Logs(args) => {
            let (stack, cloud) = connect(&settings, &args.file.file).await?;
            let group = crate::events::log_group(&stack, &args.group)?;
            let now_ms =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
            let start = now_ms - args.since.as_millis() as i64;
            let follow = args.follow.then_some(std::time::Duration::from_secs(2));
            let mut printed = 0usize;
            let mut sink = |e: &crate::events::LogEvent| {
                printed += 1;
                ui.log_event(e);
            };
            tokio::select! {
                r = crate::events::logs(&cloud, &stack, &group, start, follow, &mut sink) => r?,
                _ = tokio::signal::ctrl_c() => {}
            }
            if printed == 0 {
                ui.err(&format!("No events in {group} since {} ago.", crate::events::since_text(args.since)));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Output(args) => {
            let (stack, cloud) = connect(&settings, &args.file.file).await?;
            let inventory = plan::inventory::inventory(resources::REGISTRY, &cloud, &stack).await?;
            for w in &inventory.warnings {
                ui.warn(w);
            }
            ui.outputs(&stack.name, &plan::outputs::Outputs::of(&stack, &inventory));
            Ok(ExitCode::SUCCESS)
        }
        Command::Import(args) => import(&settings, &args, ui).await,
    }
}

/// A destroy replaces nothing: `--replace` there is a mistake, said before any AWS call.
fn refuse_replace_on_destroy(select: &SelectArgs) -> Result<(), Error> {
    match select.replace.first() {
        Some(a) => {
            Err(Error::Refused(format!("--replace {a}: a destroy replaces nothing (use it with plan or apply)")))
        }
        None => Ok(()),
    }
}

/// `webscale import`: checks that the address is declared and that nothing live claims it, then has the kind
/// check the id (exists, right kind, nobody's yet) and tag it, under the stack lock (an apply creating the same
/// address at the same time would make two). Then shows what the next plan would change on it.
async fn import(settings: &Settings, args: &ImportArgs, ui: Ui) -> Result<ExitCode, Error> {
    let (stack, mut cloud) = connect(settings, &args.file.file).await?;
    stack.require_secrets()?;
    let file = args.file.file.display();
    let id = args.id.as_str();
    let all = resources::desired(&stack);
    let Some(wanted) = all.iter().find(|d| d.address.as_str() == args.address) else {
        let known: Vec<&str> = all.iter().map(|d| d.address.as_str()).collect();
        let hint = match plan::select::close_matches(&args.address, &known).as_slice() {
            [] => String::new(),
            [one] => format!("; did you mean {one}?"),
            many => format!("; did you mean one of {}?", many.join(", ")),
        };
        return Err(Error::Refused(format!(
            "cannot import {id}: {} is not declared in {file} (import adopts a resource the spec declares){hint}",
            args.address
        )));
    };
    let (address, region) = (wanted.address.clone(), wanted.region.clone());
    let kind = resources::kind(address.kind())
        .ok_or_else(|| Error::Refused(format!("cannot import {id}: no resource kind named {}", address.kind())))?;
    cloud.account = cloud.whoami().await.map_err(|source| Error::Connect { endpoint: cloud.endpoint(), source })?;
    let lock = crate::lock::acquire(&cloud, &stack, "import", &args.file.file).await?;
    let adopted: Result<(), Error> = async {
        // A kind that manages part of another resource (a group's rules) has nothing of its own to claim: its
        // `adopt` says what to import instead.
        if kind.owns_id() {
            let ctx = resources::ReadCtx::new(&cloud, &stack);
            let claimed = plan::read::read_one(kind, &ctx, &region, &address).await.map_err(Error::Read)?;
            if claimed.iter().any(|l| l.id == id) {
                return Err(Error::Refused(format!("{id} already is {address} of stack {}: nothing to import", stack.name)));
            }
            if let Some(l) = claimed.first() {
                return Err(Error::Refused(format!(
                    "cannot import {id}: {address} already exists ({}, tagged for stack {}). Nothing was changed; to adopt {id} instead, delete {} or remove its {} tag first.",
                    l.id,
                    stack.name,
                    l.id,
                    resources::TAG_STACK
                )));
            }
        }
        let tags = std::collections::BTreeMap::from([
            (resources::TAG_STACK.to_string(), stack.name.clone()),
            (resources::TAG_ADDRESS.to_string(), address.to_string()),
        ]);
        kind.adopt(&cloud, &region, id, &tags).await.map_err(|e| {
            if e.operation == "webscale" {
                Error::Refused(format!("cannot import {id} as {address}: {}. Nothing was changed.", e.message))
            } else {
                Error::Refused(format!("import of {id} as {address} failed: {e}"))
            }
        })
    }
    .await;
    lock.release(&ui).await;
    adopted?;
    ui.out(&format!("Imported {id} as {address} (stack {}, {region}).", stack.name));

    // What the next plan would change on it: the spec's tags and settings it does not have yet.
    let plan = plan::build(&cloud, &stack, plan::Mode::Apply).await?;
    ui.warnings(&plan);
    let mine: Vec<plan::Change> =
        plan.changes.iter().filter(|c| c.address == address && c.region == region).cloned().collect();
    match mine.first() {
        Some(c) if c.action == plan::Action::NoOp && c.pending.is_none() => {
            ui.out("It matches the spec: the next apply changes nothing on it.");
        }
        Some(c) => {
            if c.action.is_replace() {
                ui.warn(&format!(
                    "the next apply replaces {address} ({}): {id} would be deleted. Fix the spec to match it, or import another resource.",
                    c.reason.as_deref().unwrap_or("the spec differs")
                ));
            }
            let summary = Plan::summarize(&mine);
            let part = Plan { changes: mine, summary, warnings: Vec::new(), ..plan.clone() };
            ui.out("\nWhat the next apply would change on it:\n");
            ui.plan(&part);
        }
        None => ui.out("The next plan does not show it."),
    }
    Ok(ExitCode::SUCCESS)
}

async fn load(settings: &Settings, file: &std::path::Path) -> Result<Stack, Error> {
    let choice = RegionChoice { forced: settings.region.clone(), ambient: aws::ambient_region(settings).await };
    Ok(spec::load(file, &choice)?)
}

async fn connect(settings: &Settings, file: &std::path::Path) -> Result<(Stack, Cloud), Error> {
    let stack = load(settings, file).await?;
    let config = aws::load_config(settings, &stack.region).await;
    // Clients for every region a resource lives in (the stack's own, and any a kind places elsewhere).
    let mut regions = vec![stack.region.clone()];
    for d in resources::desired(&stack) {
        if !regions.contains(&d.region) {
            regions.push(d.region);
        }
    }
    // Who we are is asked alongside the reads (plan::build), not before them.
    let mut cloud = Cloud::new(&stack.name, &config, &regions);
    cloud.ignore_tags = stack.ignore_tags.clone();
    Ok((stack, cloud))
}

async fn execute(settings: &Settings, args: &ApplyArgs, mode: plan::Mode, ui: Ui) -> Result<ExitCode, Error> {
    let verb = match mode {
        plan::Mode::Apply => "apply",
        plan::Mode::Destroy => "destroy",
    };
    if mode == plan::Mode::Destroy {
        refuse_replace_on_destroy(&args.select)?;
    }
    // A saved plan is read and checked first, always: a missing or unreadable file is an error even when there
    // turns out to be nothing to do.
    let saved = args.plan.as_deref().map(read_saved).transpose()?;
    // A saved plan carries the --target/--replace it was made with, and is re-made the same way.
    let selection = match &saved {
        Some((path, saved)) => {
            if !args.select.is_empty() {
                return Err(Error::Refused(format!(
                    "--target and --replace do not go with --plan: {} carries the selection it was made with",
                    path.display()
                )));
            }
            let list = |key: &str| -> Vec<String> {
                saved[key]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                    .unwrap_or_default()
            };
            plan::Selection { targets: list("targets"), replace: list("replace") }
        }
        None => args.select.selection(),
    };
    let (stack, mut cloud) = connect(settings, &args.file.file).await?;
    // A destroy sends no secret: it works without the password's variable.
    if mode == plan::Mode::Apply {
        stack.require_secrets()?;
    }
    // Who we are, first: a wrong endpoint or missing credentials gets its one clear message before the lock's first
    // call, and the plan reuses the answer.
    cloud.account = cloud.whoami().await.map_err(|source| Error::Connect { endpoint: cloud.endpoint(), source })?;
    let options = apply::Options {
        parallelism: args.parallelism.into(),
        skip_final_snapshot: args.data.skip_final_snapshot,
        wait: args.wait,
        ..Default::default()
    };
    let applying = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let held = std::sync::Arc::new(std::sync::OnceLock::<crate::lock::Lock>::new());
    // Ctrl-C before any change (planning, at the prompt): give the lock back and stop. During the apply, the first
    // Ctrl-C starts nothing new, lets running calls finish and reports (the lock is given back after the report);
    // the second stops at once and leaves the lock, as calls already sent may still land. Either way the next run
    // finds whatever was created (ownership tags are set in the create calls). Installed before the lock is taken:
    // a Ctrl-C that killed the process outright then would leave the lock behind.
    {
        let (stop, applying, held) = (options.stop.clone(), applying.clone(), held.clone());
        let unlock = format!("webscale unlock -f {}", args.file.file.display());
        let mut first = Box::pin(tokio::signal::ctrl_c());
        // Its first poll installs the handler (from then on Ctrl-C no longer kills the process); a Ctrl-C that came
        // before it has already ended the process.
        let early = futures::FutureExt::now_or_never(first.as_mut());
        tokio::spawn(async move {
            use std::sync::atomic::Ordering::SeqCst;
            let interrupted = match early {
                Some(r) => r,
                None => first.await,
            };
            if interrupted.is_err() {
                return;
            }
            // Set first: an apply that starts after this look starts no operation.
            stop.store(true, SeqCst);
            if !applying.load(SeqCst) {
                let Some(lock) = held.get() else {
                    // The lock is being taken: the command gives it back and stops as soon as it has it (below).
                    if tokio::signal::ctrl_c().await.is_ok() {
                        std::process::exit(130);
                    }
                    return;
                };
                lock.release(&ui).await;
                ui.err(&format!("Interrupted: {verb} cancelled; nothing was changed."));
                std::process::exit(130);
            }
            ui.err("Interrupted: finishing the operations already running, starting no new ones. Ctrl-C again to stop at once.");
            if tokio::signal::ctrl_c().await.is_ok() {
                ui.err(&format!(
                    "Stopped at once. The stack lock stays, as calls already sent may still land: break it with `{unlock}`, then run the same command again."
                ));
                std::process::exit(130);
            }
        });
    }
    // One apply or destroy of a stack at a time: two at once would both plan "create" and both create. The lock is
    // taken before live state is read, so what is planned (and approved) is what runs, and it is given back however
    // this ends, except by a hard kill (then the next run says the lock is stale and how to break it).
    let lock = crate::lock::acquire(&cloud, &stack, verb, &args.file.file).await?;
    let _ = held.set(lock.clone());
    if options.stop.load(std::sync::atomic::Ordering::SeqCst) {
        lock.release(&ui).await;
        ui.err(&format!("Interrupted: {verb} cancelled; nothing was changed."));
        std::process::exit(130);
    }
    let result: Result<ExitCode, Error> = async {
        let plan: Plan = plan::build_selected(resources::REGISTRY, &cloud, &stack, mode, &selection).await?;
        ui.warnings(&plan);
        if let Some((path, saved)) = &saved {
            let is_destroy = saved.get("destroy") == Some(&serde_json::Value::Bool(true));
            let file = args.file.file.display();
            match mode {
                plan::Mode::Destroy if !is_destroy => {
                    return Err(Error::Refused(format!(
                        "{} is not a destroy plan: make one with `webscale plan --destroy -f {file} --out {0}`",
                        path.display()
                    )));
                }
                plan::Mode::Apply if is_destroy => {
                    return Err(Error::Refused(format!(
                        "{} is a destroy plan: carry it out with `webscale destroy -f {file} --plan {0}`",
                        path.display()
                    )));
                }
                _ => {}
            }
        }
        refuse_if_blocked(&plan, verb)?;
        refuse_data_loss(&plan, &args.data, verb, &args.file.file, args.auto_approve)?;
        let reviewed = match &saved {
            Some((path, saved)) => {
                check_saved(path, saved, &plan)?;
                true
            }
            None => false,
        };
        let nothing_to_destroy = mode == plan::Mode::Destroy && !plan.has_changes();
        // "No changes. Live AWS matches the spec" would be wrong words for a destroy that finds nothing.
        if !nothing_to_destroy || ui.json {
            ui.plan_event(&plan);
        }
        if !plan.has_changes() {
            if mode == plan::Mode::Destroy {
                // Nothing here. If the stack lives in another region (the plan warned), this is a mix-up, not success.
                if plan.warnings.iter().any(|w| w.contains(" but exists in ")) {
                    return Err(Error::Refused(format!(
                        "nothing to destroy in {}: stack {} lives in another region (see the warning above); nothing was changed",
                        plan.region, stack.name
                    )));
                }
                if selection.targets.is_empty() || ui.json {
                    ui.nothing_to_destroy(&plan);
                } else {
                    ui.out(&format!(
                        "\nNothing to destroy: stack {} has no {} in {}.",
                        stack.name,
                        selection.targets.join(" or "),
                        plan.region
                    ));
                }
                return Ok(ExitCode::SUCCESS);
            }
            ui.report(&plan, &apply::Report::default(), verb);
            return Ok(ExitCode::SUCCESS);
        }
        if !args.auto_approve && !reviewed {
            if args.json {
                return Err(Error::Refused(format!(
                    "{verb} --json needs --auto-approve: a prompt cannot be answered inside a JSON stream"
                )));
            }
            if !std::io::stdin().is_terminal() {
                return Err(Error::Refused(format!(
                    "{verb} needs approval and there is no terminal to ask on: review the plan, then pass --auto-approve"
                )));
            }
            let question = match mode {
                plan::Mode::Apply => format!("\nDo you want to apply these changes to stack {}?", stack.name),
                plan::Mode::Destroy => format!(
                    "\nDo you really want to destroy stack {}? This deletes the {} resources listed above, in {}. There is no undo.",
                    stack.name, plan.summary.destroy, plan.region
                ),
            };
            // Off the async workers: a Ctrl-C at the prompt is handled (and the lock given back) at once.
            if !tokio::task::spawn_blocking(move || ui.confirm(&question)).await.unwrap_or(false) {
                return Err(Error::Refused(format!("{verb} cancelled; nothing was changed")));
            }
        }
        applying.store(true, std::sync::atomic::Ordering::SeqCst);
        let report = apply::apply(&cloud, &stack, &plan, &options, &ui).await?;
        ui.report(&plan, &report, verb);
        if !args.data.skip_final_snapshot {
            ui.final_snapshots(&plan, &report);
        }
        if report.failed() { Err(Error::Incomplete(verb)) } else { Ok(ExitCode::SUCCESS) }
    }
    .await;
    lock.release(&ui).await;
    result
}

/// An endpoint without a scheme (`127.0.0.1:4566`) makes the SDK fail with its internal request dump: say it in a
/// sentence instead, for the flag and the environment variables alike.
fn check_endpoint(settings: &Settings) -> Result<(), Error> {
    let given = [
        ("--endpoint-url", settings.endpoint_url.clone()),
        ("AWS_ENDPOINT_URL", std::env::var("AWS_ENDPOINT_URL").ok()),
    ];
    for (name, url) in given {
        let Some(url) = url.filter(|u| !u.is_empty()) else { continue };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(Error::Refused(format!(
                "{name} {url:?} has no scheme: use http://{url} (a local emulator) or https://{url}"
            )));
        }
        // The flag wins over the environment: only check what will be used.
        if name == "--endpoint-url" {
            break;
        }
    }
    Ok(())
}

/// A delete that cannot complete (something the stack does not own is inside) is refused before anything starts:
/// waiting 15 minutes on `DependencyViolation` helps nobody, and a half-done destroy helps less. So is a create
/// where something the stack does not own already sits (a DNS record made by hand): webscale never takes it over.
fn refuse_if_blocked(plan: &Plan, verb: &str) -> Result<(), Error> {
    let problems: Vec<String> =
        plan.changes.iter().flat_map(|c| c.problems.iter().map(move |p| format!("\n  {}: {p}", c.address))).collect();
    if !problems.is_empty() {
        return Err(Error::Refused(format!(
            "{verb} cannot complete: AWS would refuse to create{}\nCorrect the stack file, then run the same command again. Nothing was changed.",
            problems.concat()
        )));
    }
    let blocked: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| !c.blocked_by.is_empty())
        .map(|c| match c.id.as_deref() {
            None => format!("\n  {} would be written over {}", c.address, c.blocked_by.join(", ")),
            Some(id) => format!("\n  {} ({id}) holds {}", c.address, c.blocked_by.join(", ")),
        })
        .collect();
    if blocked.is_empty() {
        return Ok(());
    }
    Err(Error::Refused(format!(
        "{verb} cannot complete: it would delete or write over resources the stack does not own:{}\nDelete those (or move them out), then run the same command again. Nothing was changed.",
        blocked.concat()
    )))
}

/// A delete or replacement that destroys data is refused before anything starts unless its address was named with
/// `--allow-data-loss`; deletion protection alone (a database kept by `destroy`) gets the same answer.
fn refuse_data_loss(
    plan: &Plan,
    data: &DataArgs,
    verb: &str,
    file: &std::path::Path,
    approve: bool,
) -> Result<(), Error> {
    let refused: Vec<&plan::Change> = plan
        .changes
        .iter()
        .filter(|c| c.data_loss.is_some() && !data.allow_data_loss.iter().any(|a| a == c.address.as_str()))
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    let lines: String = refused
        .iter()
        .map(|c| {
            let loss = c.data_loss.as_ref().expect("filtered on data_loss");
            let how = if c.action.is_replace() { "replacing it deletes" } else { "deleting it deletes" };
            let protected = if loss.deletion_protection { " (deletion protection is on)" } else { "" };
            format!("\n  {}: {how} {}{protected}", c.address, loss.what)
        })
        .collect();
    let flags: String = refused.iter().map(|c| format!(" --allow-data-loss {}", c.address)).collect();
    let names: Vec<String> = refused.iter().filter_map(|c| c.data_loss.as_ref()?.final_snapshot.clone()).collect();
    let snapshot = match (data.skip_final_snapshot, names.is_empty()) {
        (true, _) => "No final snapshot is taken (--skip-final-snapshot).".to_string(),
        (false, true) => "A final snapshot is taken first.".to_string(),
        (false, false) => format!("A final snapshot is taken first: {}.", names.join(", ")),
    };
    let keep = if verb == "destroy" {
        "To keep the data, leave the stack standing (`--target` destroys parts of it)."
    } else {
        "To keep the data, change the spec so the plan no longer replaces or deletes it."
    };
    let approve = if approve { " --auto-approve" } else { "" };
    let skip = if data.skip_final_snapshot { " --skip-final-snapshot" } else { "" };
    Err(Error::Refused(format!(
        "{verb} refused: it would delete data that no spec can bring back:{lines}\nNothing was changed. If that is intended, run `webscale {verb} -f {}{approve}{flags}{skip}`: deletion protection is turned off first. {snapshot} {keep}",
        file.display()
    )))
}

/// Reads a plan saved by `plan --out`.
fn read_saved(path: &std::path::Path) -> Result<(&std::path::Path, serde_json::Value), Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Refused(format!("cannot read the saved plan {}: {e}", path.display())))?;
    let saved = serde_json::from_str(&text)
        .map_err(|e| Error::Refused(format!("{} is not a plan saved by `webscale plan --out`: {e}", path.display())))?;
    Ok((path, saved))
}

/// A saved plan may be applied only while it is still exactly what a fresh plan says: same stack, region, account
/// and changes down to every attribute. Anything else means live AWS or the spec moved since the review.
fn check_saved(path: &std::path::Path, saved: &serde_json::Value, fresh: &Plan) -> Result<(), Error> {
    let stale = |why: String| {
        Error::Refused(format!(
            "the saved plan {} no longer matches: {why}. Nothing was changed; run `webscale plan --out` again and review it.",
            path.display()
        ))
    };
    let saved_changes = saved["changes"]
        .as_array()
        .is_some_and(|cs| cs.iter().any(|c| c["action"] != "no_op" || c.get("pending").is_some()));
    if saved_changes && !fresh.has_changes() {
        return Err(stale("its changes were already applied".to_string()));
    }
    let fresh = serde_json::to_value(fresh).unwrap_or_default();
    for key in ["format_version", "stack", "region", "account"] {
        if saved[key] != fresh[key] {
            return Err(stale(format!("it was made for {key} {}, this run is {}", saved[key], fresh[key])));
        }
    }
    let by_address = |plan: &serde_json::Value| -> std::collections::BTreeMap<String, serde_json::Value> {
        plan["changes"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        // The same address may live in two regions: name the region where it is not the home one.
                        let address = c["address"].as_str().unwrap_or_default();
                        let key = match c["region"].as_str() {
                            Some(r) if r != plan["region"].as_str().unwrap_or_default() => format!("{address} ({r})"),
                            _ => address.to_string(),
                        };
                        (key, c.clone())
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let (saved, fresh) = (by_address(saved), by_address(&fresh));
    let differ: Vec<&String> = saved
        .keys()
        .chain(fresh.keys().filter(|a| !saved.contains_key(*a)))
        .filter(|a| saved.get(*a) != fresh.get(*a))
        .collect();
    if !differ.is_empty() {
        let names: Vec<&str> = differ.iter().take(5).map(|a| a.as_str()).collect();
        let more = if differ.len() > 5 { format!(" and {} more", differ.len() - 5) } else { String::new() };
        return Err(stale(format!("{}{more} would change differently now", names.join(", "))));
    }
    Ok(())
}
