//! All output, in one place: plans drawn for people or as JSON, apply progress, summaries, prompts. The engine
//! computes and reports through [`crate::apply::Hook`]; only this module writes to the terminal.

mod render;

use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde_json::json;

use crate::apply::{Hook, Phase, Report, Result_};
use crate::aws::CloudError;
use crate::plan::{Action, Plan};
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

    /// For apply/destroy --json: one line per event, so a pipeline can follow along.
    fn event(&self, value: serde_json::Value) {
        self.out(&value.to_string());
    }

    pub fn plan_event(&self, plan: &Plan) {
        if self.json {
            self.event(json!({ "type": "plan", "plan": plan }));
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
        let done = |address: &Address, phase: Phase| {
            report.operations.iter().any(|o| &o.address == address && o.phase == phase && o.result == Result_::Done)
        };
        let (mut added, mut changed, mut replaced, mut destroyed) = (0, 0, 0, 0);
        for c in &plan.changes {
            match c.action {
                Action::Create if done(&c.address, Phase::Create) => added += 1,
                Action::Update if done(&c.address, Phase::Update) => changed += 1,
                Action::Delete if done(&c.address, Phase::Delete) => destroyed += 1,
                Action::Replace(_) if done(&c.address, Phase::Create) && done(&c.address, Phase::Delete) => {
                    replaced += 1
                }
                _ => {}
            }
        }
        let counts = format!("{added} added, {changed} changed, {replaced} replaced, {destroyed} destroyed");
        if self.json {
            self.event(json!({
                "type": "result",
                "ok": !report.failed(),
                "summary": { "added": added, "changed": changed, "replaced": replaced, "destroyed": destroyed },
                "operations": report.operations,
                "ids": report.ids,
                "ids_by_region": report.ids_by_region,
            }));
            return;
        }
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
    }
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
            self.event(json!({ "type": "started", "address": address, "operation": phase }));
        } else {
            self.out(&format!("{address}: {}...", phase.verb().0));
        }
    }

    fn still_running(&self, address: &Address, phase: Phase, elapsed: Duration, status: Option<&str>) {
        if self.json {
            let mut e =
                json!({ "type": "running", "address": address, "operation": phase, "elapsed_s": elapsed.as_secs_f32() });
            if let Some(s) = status {
                e["status"] = json!(s);
            }
            self.event(e);
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
            let mut e = json!({ "type": "finished", "address": address, "operation": phase, "elapsed_s": secs });
            match result {
                Ok(id) => e["id"] = json!(id),
                Err(err) => e["error"] = json!(err.to_string()),
            }
            self.event(e);
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
