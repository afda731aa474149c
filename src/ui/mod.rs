//! All output, in one place: plans drawn for people or as JSON, apply progress, summaries, prompts. The engine
//! computes and reports through [`crate::apply::Hook`]; only this module writes to the terminal.

mod events;
mod output;
mod render;
mod show;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde_json::{Value, json};

use crate::apply::{Hook, Phase, Report, Result_};
use crate::aws::CloudError;
use crate::plan::{Action, FORMAT_VERSION, Plan};
use crate::resources::Address;

pub use render::{plan_text, value_text};

/// How to print: for a person (optionally in colour) or for a machine (JSON).
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    pub json: bool,
    pub color: bool,
}

impl Ui {
    pub fn new(json: bool, no_color: bool) -> Ui {
        let color = !json && !no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
        Ui { json, color }
    }

    /// Normal output: stdout.
    /// After a run that deleted a database: the final snapshot each delete kept, which outlives the stack (JSON
    /// readers have it in the plan's `data_loss.final_snapshot`).
    pub fn final_snapshots(&self, plan: &crate::plan::Plan, report: &crate::apply::Report) {
        if self.json {
            return;
        }
        for c in &plan.changes {
            let Some(name) = c.data_loss.as_ref().and_then(|l| l.final_snapshot.as_deref()) else { continue };
            let deleted = report.operations.iter().any(|o| {
                o.address == c.address
                    && o.phase == crate::apply::Phase::Delete
                    && o.result == crate::apply::Result_::Done
            });
            if deleted {
                self.out(&format!(
                    "Final snapshot of {} kept: {name}. It outlives the stack (and is billed) until deleted; restore it with `aws rds restore-db-instance-from-db-snapshot --db-snapshot-identifier {name} ...`.",
                    c.address
                ));
            }
        }
    }

    pub fn out(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }

    /// Diagnostics: stderr, so `--json` stdout stays parseable.
    pub fn err(&self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }

    pub fn error(&self, error: &dyn std::fmt::Display) {
        let prefix = if self.color { "\x1b[1;31merror\x1b[0m" } else { "error" };
        self.err(&format!("{prefix}: {error}"));
    }

    pub fn warn(&self, message: &str) {
        let prefix = if self.color { "\x1b[1;33mwarning\x1b[0m" } else { "warning" };
        self.err(&format!("{prefix}: {message}"));
    }

    /// What the plan could not check or found elsewhere: on stderr, before the plan (JSON carries them too).
    pub fn warnings(&self, plan: &Plan) {
        for w in &plan.warnings {
            self.warn(w);
        }
    }

    pub fn plan(&self, plan: &Plan) {
        if self.json {
            self.out(&serde_json::to_string_pretty(plan).unwrap_or_default());
        } else {
            self.out(&plan_text(plan, self.color));
        }
    }

    /// For apply/destroy --json: one line per event, so a pipeline can follow along. The only place the stream is
    /// printed; its lines are built by the `*_line` functions below.
    fn event(&self, value: Value) {
        self.out(&value.to_string());
    }

    pub fn plan_event(&self, plan: &Plan) {
        if self.json {
            self.event(plan_line(plan));
        } else {
            self.out(&plan_text(plan, self.color));
        }
    }

    /// Asks for "yes" on the terminal. Callers check that there is a terminal first.
    pub fn confirm(&self, question: &str) -> bool {
        let mut out = std::io::stdout().lock();
        let _ = write!(out, "{question}\n  Only 'yes' will be accepted to approve.\n\n  Enter a value: ");
        let _ = out.flush();
        drop(out);
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).is_ok() && answer.trim() == "yes"
    }

    /// A destroy that finds nothing the stack owns.
    pub fn nothing_to_destroy(&self, plan: &Plan) {
        if self.json {
            self.report(plan, &Report::default(), "destroy");
        } else {
            self.out(&format!("\nNothing to destroy: stack {} owns nothing in {}.", plan.stack, plan.region));
        }
    }

    /// The closing lines of an apply or destroy; says what was done, what failed and why.
    pub fn report(&self, plan: &Plan, report: &Report, verb: &str) {
        if self.json {
            self.event(result_line(plan, report));
            return;
        }
        let Done { added, changed, replaced, destroyed } = done(plan, report);
        let counts = format!("{added} added, {changed} changed, {replaced} replaced, {destroyed} destroyed");
        if !report.failed() {
            self.out(&format!("\n{} complete! Resources: {counts}.", capitalize(verb)));
            // What an operator copies next: the ids, by the names used in the spec (parts of another resource,
            // such as a group's rule set, share its id and are left out).
            let ids: Vec<_> = report
                .ids
                .iter()
                .filter(|(a, _)| crate::resources::kind(a.kind()).is_some_and(|k| k.owns_id()))
                .collect();
            if !ids.is_empty() {
                let width = ids.iter().map(|(a, _)| a.as_str().len()).max().unwrap_or(0);
                let mut text = format!("\nStack {} ({}):", plan.stack, plan.region);
                for (address, id) in ids {
                    text.push_str(&format!("\n  {:width$}  {id}", address.as_str()));
                }
                self.out(&text);
            }
            self.notes(report);
            return;
        }
        let failed: Vec<_> = report.operations.iter().filter(|o| matches!(o.result, Result_::Failed { .. })).collect();
        let skipped: Vec<_> =
            report.operations.iter().filter(|o| matches!(o.result, Result_::Skipped { .. })).collect();
        let mut text = format!(
            "\n{} failed: {} operation{} failed, {} skipped. Done so far: {counts}.",
            capitalize(verb),
            failed.len(),
            if failed.len() == 1 { "" } else { "s" },
            skipped.len()
        );
        for o in failed.iter().chain(&skipped) {
            let line = match &o.result {
                Result_::Failed { error } => format!("\n  failed   {} ({}): {error}", o.address, o.phase.name()),
                Result_::Skipped { because } => format!("\n  skipped  {} ({}): {because}", o.address, o.phase.name()),
                Result_::Done => continue,
            };
            text.push_str(&line);
        }
        text.push_str("\nRun the same command again to finish: everything done so far is found, nothing is repeated.");
        self.err(&text);
        self.notes(report);
    }

    /// After the summary: what AWS is still doing that the operator should know about (JSON: `notes` on `result`).
    fn notes(&self, report: &Report) {
        if report.notes.is_empty() {
            return;
        }
        self.out(&notes_text(report));
    }
}

/// What an apply or destroy did, counted as the plan counts: a replacement once both its halves are done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Done {
    added: usize,
    changed: usize,
    replaced: usize,
    destroyed: usize,
}

fn done(plan: &Plan, report: &Report) -> Done {
    let ok = |address: &Address, phase: Phase| {
        report.operations.iter().any(|o| &o.address == address && o.phase == phase && o.result == Result_::Done)
    };
    let mut d = Done::default();
    for c in &plan.changes {
        match c.action {
            Action::Create if ok(&c.address, Phase::Create) => d.added += 1,
            Action::Update if ok(&c.address, Phase::Update) => d.changed += 1,
            Action::Delete if ok(&c.address, Phase::Delete) => d.destroyed += 1,
            Action::Replace(_) if ok(&c.address, Phase::Create) && ok(&c.address, Phase::Delete) => d.replaced += 1,
            _ => {}
        }
    }
    d
}

// The lines of `apply --json` / `destroy --json`, one JSON document each (README "JSON reference"). Every line
// carries the plan's `format_version`, so a pipeline can check the stream as it checks the plan.

/// A line of the stream: its type and the format version; the caller adds the rest.
fn line(kind: &str) -> Value {
    json!({ "type": kind, "format_version": FORMAT_VERSION })
}

/// An operation's line: `started`, `running` or `finished`.
fn operation_line(kind: &str, address: &Address, phase: Phase) -> Value {
    let mut e = line(kind);
    e["address"] = json!(address);
    e["operation"] = json!(phase);
    e
}

/// Durations as whole milliseconds (`elapsed_ms`, rounded to the nearest) and as seconds with three decimals
/// (`elapsed_s`, the same figure; kept from format 1).
fn with_elapsed(mut e: Value, elapsed: Duration) -> Value {
    let ms = u64::try_from(elapsed.as_nanos().saturating_add(500_000) / 1_000_000).unwrap_or(u64::MAX);
    e["elapsed_ms"] = json!(ms);
    e["elapsed_s"] = json!(ms as f64 / 1000.0);
    e
}

fn plan_line(plan: &Plan) -> Value {
    let mut e = line("plan");
    e["plan"] = json!(plan);
    e
}

fn started_line(address: &Address, phase: Phase) -> Value {
    operation_line("started", address, phase)
}

fn running_line(address: &Address, phase: Phase, elapsed: Duration, status: Option<&str>) -> Value {
    let mut e = with_elapsed(operation_line("running", address, phase), elapsed);
    if let Some(s) = status {
        e["status"] = json!(s);
    }
    e
}

fn finished_line(
    address: &Address,
    phase: Phase,
    elapsed: Duration,
    result: Result<Option<&str>, &dyn std::fmt::Display>,
) -> Value {
    let mut e = with_elapsed(operation_line("finished", address, phase), elapsed);
    match result {
        Ok(id) => e["id"] = json!(id),
        Err(err) => e["error"] = json!(err.to_string()),
    }
    e
}

/// The last line. `summary` in both words: the plan's (`add`, ...) and format 1's (`added`, ...), the same numbers;
/// each operation names its step as the events do (`operation`) and as format 1 did (`phase`).
fn result_line(plan: &Plan, report: &Report) -> Value {
    let d = done(plan, report);
    let operations: Vec<Value> = report
        .operations
        .iter()
        .map(|o| {
            // `operation` right after `phase`, so the two read side by side.
            let mut v = serde_json::Map::new();
            if let Value::Object(fields) = json!(o) {
                for (key, value) in fields {
                    let phase = key == "phase";
                    v.insert(key, value);
                    if phase {
                        v.insert("operation".into(), json!(o.phase));
                    }
                }
            }
            Value::Object(v)
        })
        .collect();
    let mut e = line("result");
    e["ok"] = json!(!report.failed());
    e["summary"] = json!({
        "add": d.added,
        "change": d.changed,
        "replace": d.replaced,
        "destroy": d.destroyed,
        "added": d.added,
        "changed": d.changed,
        "replaced": d.replaced,
        "destroyed": d.destroyed,
    });
    e["operations"] = json!(operations);
    e["ids"] = json!(report.ids);
    e["ids_by_region"] = json!(report.ids_by_region);
    e["notes"] = json!(report.notes);
    e
}

fn notes_text(report: &Report) -> String {
    let mut text = String::from("\nNote:");
    for n in &report.notes {
        text.push_str(&format!("\n  {}: {}", n.address, n.text));
    }
    text
}

/// `42s elapsed` under a minute (as before), `4m10s elapsed` after.
fn elapsed_text(d: Duration) -> String {
    let s = d.as_secs();
    if s < 60 { format!("{s}s elapsed") } else { format!("{}m{:02}s elapsed", s / 60, s % 60) }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

impl Hook for Ui {
    fn started(&self, address: &Address, phase: Phase) {
        if self.json {
            self.event(started_line(address, phase));
        } else {
            self.out(&format!("{address}: {}...", phase.verb().0));
        }
    }

    fn still_running(&self, address: &Address, phase: Phase, elapsed: Duration, status: Option<&str>) {
        if self.json {
            self.event(running_line(address, phase, elapsed, status));
        } else {
            // "Still creating... [4m10s elapsed, backing-up]": what AWS says, where it says anything.
            let status = status.map(|s| format!(", {s}")).unwrap_or_default();
            self.out(&format!(
                "{address}: Still {}... [{}{status}]",
                phase.verb().0.to_lowercase(),
                elapsed_text(elapsed)
            ));
        }
    }

    fn finished(&self, address: &Address, phase: Phase, elapsed: Duration, result: Result<Option<&str>, &CloudError>) {
        let secs = elapsed.as_secs_f32();
        if self.json {
            self.event(finished_line(address, phase, elapsed, result.map_err(|e| e as &dyn std::fmt::Display)));
            return;
        }
        match result {
            Ok(id) => {
                let id = id.map(|i| format!(" [id={i}]")).unwrap_or_default();
                self.out(&format!("{address}: {} after {secs:.1}s{id}", phase.verb().1));
            }
            Err(err) => self.err(&format!("{address}: {} failed after {secs:.1}s: {err}", phase.verb().0)),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The shapes of the `--json` stream, built without AWS: plans from the real diff over the reference template.

    use std::collections::BTreeMap;

    use super::*;
    use crate::apply::OpReport;
    use crate::plan::diff;
    use crate::plan::diff::tests::{fresh, mirror_in_order, reference_desired};

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    #[test]
    fn operation_events_carry_the_format_version_and_whole_milliseconds() {
        let a = addr("vpc.main");
        assert_eq!(
            started_line(&a, Phase::Create),
            json!({ "type": "started", "format_version": 2, "address": "vpc.main", "operation": "create" })
        );

        // The duration the issue saw: 0.004175124224275351 s is now 4 ms and 0.004 s.
        let running = running_line(&a, Phase::Wait, Duration::from_nanos(4_175_124), Some("backing-up"));
        assert_eq!(
            running,
            json!({
                "type": "running", "format_version": 2, "address": "vpc.main", "operation": "wait",
                "elapsed_ms": 4, "elapsed_s": 0.004, "status": "backing-up",
            })
        );
        assert!(running["elapsed_ms"].is_u64());
        assert_eq!(running.to_string().matches("0.004").count(), 1, "three decimals, not f32 noise: {running}");
        assert!(running_line(&a, Phase::Create, Duration::from_secs(3), None).get("status").is_none());

        // Rounded to the nearest millisecond; elapsed_s is the same figure.
        let done = finished_line(&a, Phase::Create, Duration::from_micros(2_999_600), Ok(Some("vpc-1")));
        assert_eq!(
            done,
            json!({
                "type": "finished", "format_version": 2, "address": "vpc.main", "operation": "create",
                "elapsed_ms": 3000, "elapsed_s": 3.0, "id": "vpc-1",
            })
        );
        let no_id = finished_line(&a, Phase::Delete, Duration::from_millis(1500), Ok(None));
        assert_eq!(
            (no_id["id"].clone(), no_id["elapsed_ms"].clone(), no_id["elapsed_s"].clone()),
            (Value::Null, json!(1500), json!(1.5))
        );
        let failed = finished_line(&a, Phase::Update, Duration::from_millis(20), Err(&"InvalidParameterValue: no"));
        assert_eq!(failed["error"], "InvalidParameterValue: no");
        assert!(failed.get("id").is_none());
    }

    /// The plan of a stack not built yet: every resource to create (the AMI it looks up left out).
    fn fresh_plan() -> Plan {
        let desired = reference_desired();
        let mut plan = diff("webscale", "us-east-1", desired.clone(), fresh(&desired)).unwrap();
        plan.changes.retain(|c| !c.lookup);
        plan
    }

    #[test]
    fn the_plan_line_carries_the_format_version_outside_and_inside() {
        let plan = fresh_plan();
        let e = plan_line(&plan);
        assert_eq!((e["type"].as_str(), e["format_version"].as_u64()), (Some("plan"), Some(2)));
        assert_eq!(e["plan"]["format_version"], FORMAT_VERSION);
        assert_eq!(e["plan"]["summary"]["add"], plan.changes.len());
    }

    #[test]
    fn the_result_line_speaks_both_vocabularies_with_the_same_numbers() {
        let plan = fresh_plan();
        let mut report = Report::default();
        for (i, c) in plan.changes.iter().enumerate() {
            let result = match i {
                0 => Result_::Failed { error: "boom".into() },
                1 => Result_::Skipped { because: format!("{} failed", plan.changes[0].address) },
                _ => Result_::Done,
            };
            report.operations.push(OpReport { address: c.address.clone(), phase: Phase::Create, result });
        }
        report.ids.insert(plan.changes[2].address.clone(), "id-2".into());
        report.ids_by_region = BTreeMap::from([(
            "us-east-1".to_string(),
            BTreeMap::from([(plan.changes[2].address.clone(), "id-2".into())]),
        )]);

        let r = result_line(&plan, &report);
        let n = plan.changes.len() - 2;
        assert_eq!(
            (r["type"].as_str(), r["format_version"].as_u64(), r["ok"].as_bool()),
            (Some("result"), Some(2), Some(false))
        );
        assert_eq!(
            r["summary"],
            json!({
                "add": n, "change": 0, "replace": 0, "destroy": 0,
                "added": n, "changed": 0, "replaced": 0, "destroyed": 0,
            })
        );
        let ops = r["operations"].as_array().unwrap();
        assert_eq!(ops.len(), plan.changes.len());
        for o in ops {
            assert_eq!(o["operation"], o["phase"], "{o}");
            assert_eq!(o["operation"], "create");
        }
        assert_eq!(ops[0]["status"], "failed");
        assert_eq!(ops[0]["error"], "boom");
        let keys: Vec<&str> = ops[0].as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["address", "phase", "operation", "status", "error"], "the two words side by side");
        assert_eq!(ops[1]["status"], "skipped");
        assert!(ops[1]["because"].is_string());
        assert_eq!(ops[2]["status"], "done");
        assert_eq!(r["ids"][plan.changes[2].address.as_str()], "id-2");
        assert_eq!(r["ids_by_region"]["us-east-1"][plan.changes[2].address.as_str()], "id-2");
    }

    #[test]
    fn notes_ride_on_the_result_line_and_follow_the_summary_in_text() {
        let plan = fresh_plan();
        let mut report = Report::default();
        assert_eq!(result_line(&plan, &report)["notes"], json!([]), "always present, empty when there is nothing");
        let address = Address::new("distribution", "assets");
        report.notes.push(crate::apply::Note { address: address.clone(), text: "still deploying".into() });
        let r = result_line(&plan, &report);
        assert_eq!(r["notes"], json!([{ "address": "distribution.assets", "text": "still deploying" }]));
        assert_eq!(notes_text(&report), "\nNote:\n  distribution.assets: still deploying");
    }

    #[test]
    fn a_destroy_result_counts_destroy_and_destroyed_alike() {
        let desired = reference_desired();
        let plan = diff("webscale", "us-east-1", vec![], mirror_in_order(&desired)).unwrap();
        let report = Report {
            operations: plan
                .changes
                .iter()
                .map(|c| OpReport { address: c.address.clone(), phase: Phase::Delete, result: Result_::Done })
                .collect(),
            ..Report::default()
        };
        let r = result_line(&plan, &report);
        assert_eq!(r["ok"], true);
        assert_eq!(r["summary"]["destroy"], plan.summary.destroy);
        assert_eq!(r["summary"]["destroyed"], plan.summary.destroy);
        assert!(plan.summary.destroy > 0);
        assert!(
            r["operations"].as_array().unwrap().iter().all(|o| o["operation"] == "delete" && o["phase"] == "delete")
        );

        // Nothing to destroy: the same shape, all zeros.
        let empty = result_line(&plan, &Report::default());
        assert_eq!(empty["summary"]["destroy"], 0);
        assert_eq!(empty["summary"]["destroyed"], 0);
        assert_eq!(empty["operations"], json!([]));
    }
}
