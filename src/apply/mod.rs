//! Carrying out a plan: every change becomes one or two operations (create, update, delete; a replacement is a
//! create and a delete in the kind's order), ordered in a graph derived from references, walked in parallel.
//!
//! Ordering rules (an edge means "first ... then"):
//! 1. What a resource references is created or updated before the resource is (subnet after its VPC).
//! 2. What a live resource references is deleted only after that resource is deleted, or, when the referenced
//!    one is going away for good (or being replaced create-first), after the referencing one is updated to let
//!    go of it (rules that name a group are revoked before the group is deleted). This is destroy order: the
//!    create edges inverted.
//! 3. A replacement's halves run in the kind's order.
//!
//! Nothing is remembered between runs: an interrupted apply leaves tagged resources that the next plan finds and
//! finishes, so retrying is always safe.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::aws::{Cloud, CloudError, retrying};
use crate::graph::{Graph, Outcome};
use crate::plan::{Action, Plan, PlanError};
use crate::resources::{Address, Attrs, Op, ReplaceOrder, as_reference, kind, plain_ids, references, rewrite};

/// What one operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Create,
    Update,
    Delete,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Create => "create",
            Phase::Update => "update",
            Phase::Delete => "delete",
        }
    }

    pub fn verb(self) -> (&'static str, &'static str) {
        match self {
            Phase::Create => ("Creating", "Created"),
            Phase::Update => ("Updating", "Updated"),
            Phase::Delete => ("Destroying", "Destroyed"),
        }
    }
}

/// Receives progress as it happens; the terminal and JSON views implement it (the engine never prints).
pub trait Hook: Send + Sync {
    fn started(&self, address: &Address, phase: Phase);
    fn still_running(&self, address: &Address, phase: Phase, elapsed: Duration);
    fn finished(&self, address: &Address, phase: Phase, elapsed: Duration, result: Result<Option<&str>, &CloudError>);
}

#[derive(Debug, Clone)]
pub struct Options {
    /// At most this many operations at once (Terraform's default is 10 too).
    pub parallelism: usize,
    /// How often a long operation reports that it is still running.
    pub heartbeat: Duration,
    /// Set (by Ctrl-C) to start no further operations; those running finish, so nothing is cut off mid-call.
    pub stop: Arc<AtomicBool>,
}

impl Default for Options {
    fn default() -> Self {
        Options { parallelism: 10, heartbeat: Duration::from_secs(10), stop: Arc::default() }
    }
}

/// How one operation ended.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Result_ {
    Done,
    Failed {
        error: String,
    },
    /// Not attempted because an operation it depends on failed.
    Skipped {
        because: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    pub address: Address,
    pub phase: Phase,
    #[serde(flatten)]
    pub result: Result_,
}

/// Everything an apply did, in the order operations were planned.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub operations: Vec<OpReport>,
    /// The id of every resource that exists after the run (created ones included), by address.
    pub ids: std::collections::BTreeMap<Address, String>,
}

impl Report {
    pub fn failed(&self) -> bool {
        self.operations.iter().any(|o| !matches!(o.result, Result_::Done))
    }

    pub fn count(&self, phase: Phase) -> usize {
        self.operations.iter().filter(|o| o.phase == phase && o.result == Result_::Done).count()
    }
}

#[derive(Debug, Clone, Copy)]
struct Node {
    change: usize,
    phase: Phase,
}

/// The operations of a plan and their order.
fn operations(plan: &Plan) -> Result<(Vec<Node>, Graph), PlanError> {
    let mut nodes = Vec::new();
    // Per change: the node that makes it exist as desired (create/update), and the one that deletes it.
    let mut forward: HashMap<&Address, usize> = HashMap::new();
    let mut delete: HashMap<&Address, usize> = HashMap::new();
    let push = |nodes: &mut Vec<Node>, change, phase| {
        nodes.push(Node { change, phase });
        nodes.len() - 1
    };
    // The action planned for each address; a second claimant being deleted never shadows the one kept.
    let mut action: HashMap<&Address, Action> = HashMap::new();
    for c in &plan.changes {
        if c.action != Action::Delete || !action.contains_key(&c.address) {
            action.insert(&c.address, c.action);
        }
    }
    let mut pairs = Vec::new();
    for (i, c) in plan.changes.iter().enumerate() {
        match c.action {
            Action::NoOp => {}
            Action::Create => {
                forward.insert(&c.address, push(&mut nodes, i, Phase::Create));
            }
            Action::Update => {
                forward.insert(&c.address, push(&mut nodes, i, Phase::Update));
            }
            Action::Delete => {
                let d = push(&mut nodes, i, Phase::Delete);
                // A second claimant of a kept address is deleted on its own; the address means the kept one.
                if action.get(&c.address) == Some(&Action::Delete) {
                    delete.insert(&c.address, d);
                }
            }
            Action::Replace(order) => {
                let d = push(&mut nodes, i, Phase::Delete);
                let f = push(&mut nodes, i, Phase::Create);
                delete.insert(&c.address, d);
                forward.insert(&c.address, f);
                pairs.push(match order {
                    ReplaceOrder::DeleteFirst => (d, f),
                    ReplaceOrder::CreateFirst => (f, d),
                });
            }
        }
    }
    let mut graph = Graph::new(nodes.len());
    for (a, b) in pairs {
        graph.edge(a, b);
    }
    for c in &plan.changes {
        // Rule 1.
        if let (Some(&then), Some(d)) = (forward.get(&c.address), &c.desired) {
            let mut refs = Vec::new();
            d.attrs.values().for_each(|v| references(v, &mut refs));
            for r in refs.iter().filter(|r| **r != c.address) {
                if let Some(&first) = forward.get(r) {
                    graph.edge(first, then);
                }
            }
        }
        // Rule 2.
        for r in c.live_refs.iter().filter(|r| **r != c.address) {
            let Some(&then) = delete.get(r) else { continue };
            if let Some(&first) = delete.get(&c.address) {
                graph.edge(first, then);
            }
            let target = action.get(r).copied();
            let let_go_first =
                matches!(target, Some(Action::Delete) | Some(Action::Replace(ReplaceOrder::CreateFirst)));
            if let_go_first
                && c.action == Action::Update
                && let Some(&first) = forward.get(&c.address)
            {
                graph.edge(first, then);
            }
        }
    }
    if let Err(cycle) = graph.order() {
        let names = cycle
            .0
            .iter()
            .map(|&n| format!("{} ({})", plan.changes[nodes[n].change].address, nodes[n].phase.name()))
            .collect();
        return Err(PlanError::Cycle(names));
    }
    Ok((nodes, graph))
}

/// Checks that `plan` can be carried out (its operations have an order), so a plan never promises what apply
/// would refuse after approval.
pub fn check(plan: &Plan) -> Result<(), PlanError> {
    operations(plan).map(|_| ())
}

/// Carries out `plan`. Failures do not stop independent work; the report says what was done, failed, skipped.
pub async fn apply(cloud: &Cloud, plan: &Plan, options: &Options, hook: &dyn Hook) -> Result<Report, PlanError> {
    let (nodes, graph) = operations(plan)?;
    // Address -> current id; creates add the new ids that later operations resolve references to.
    let ids: Mutex<HashMap<Address, String>> = Mutex::new(
        plan.changes
            .iter()
            // Replacements get their new id when created; deleted resources are never referenced.
            .filter(|c| !c.action.is_replace() && c.action != Action::Delete)
            .filter_map(|c| Some((c.address.clone(), c.id.clone()?)))
            .collect(),
    );
    let outcomes = graph
        .walk(options.parallelism, |n| {
            let node = nodes[n];
            let ids = &ids;
            async move {
                let change = &plan.changes[node.change];
                if options.stop.load(Ordering::SeqCst) {
                    return (n, Err(CloudError::internal("not started: interrupted")));
                }
                let started = Instant::now();
                hook.started(&change.address, node.phase);
                let work = run(cloud, plan, node, ids);
                let result = heartbeat(work, options.heartbeat, |elapsed| {
                    hook.still_running(&change.address, node.phase, elapsed)
                })
                .await;
                hook.finished(&change.address, node.phase, started.elapsed(), result.as_ref().map(|id| id.as_deref()));
                (n, result.map(|_| ()))
            }
        })
        .await;
    let operations: Vec<OpReport> = outcomes
        .into_iter()
        .enumerate()
        .map(|(n, outcome)| {
            let node = nodes[n];
            let result = match outcome {
                Outcome::Done => Result_::Done,
                Outcome::Failed(e) => Result_::Failed { error: e.to_string() },
                Outcome::Skipped { because } => {
                    let root = nodes[because];
                    Result_::Skipped {
                        because: format!("{} ({}) failed", plan.changes[root.change].address, root.phase.name()),
                    }
                }
            };
            OpReport { address: plan.changes[node.change].address.clone(), phase: node.phase, result }
        })
        .collect();
    let ids = ids.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().collect();
    Ok(Report { operations, ids })
}

/// Runs `work`, calling `tick` every `every` while it is still going.
async fn heartbeat<T>(work: impl Future<Output = T>, every: Duration, tick: impl Fn(Duration)) -> T {
    let started = Instant::now();
    tokio::pin!(work);
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = interval.tick() => tick(started.elapsed()),
        }
    }
}

/// One operation; returns the new id for creates.
async fn run(
    cloud: &Cloud,
    plan: &Plan,
    node: Node,
    ids: &Mutex<HashMap<Address, String>>,
) -> Result<Option<String>, CloudError> {
    let change = &plan.changes[node.change];
    let k = kind(change.address.kind())
        .ok_or_else(|| CloudError::internal(format!("no resource kind for {}", change.address)))?;
    let desired = match (&change.desired, node.phase) {
        (Some(d), Phase::Create | Phase::Update) => {
            Some(resolve_desired(&d.attrs, &ids.lock().unwrap_or_else(|e| e.into_inner()))?)
        }
        _ => None,
    };
    let live = change.live.as_ref().map(|l| resolve_live(&l.attrs));
    let changed = change.changed();
    let op = Op {
        address: &change.address,
        region: &change.region,
        id: change.id.as_deref(),
        desired,
        live,
        changed: &changed,
    };
    let policy = cloud.retry;
    match node.phase {
        Phase::Create => {
            let attempt = std::sync::atomic::AtomicUsize::new(0);
            let id = retrying(policy.consistency, policy.interval, CloudError::is_not_found, || {
                let retry = attempt.fetch_add(1, Ordering::SeqCst) > 0;
                create_or_finish(cloud, k, &op, retry)
            })
            .await?;
            ids.lock().unwrap_or_else(|e| e.into_inner()).insert(change.address.clone(), id.clone());
            Ok(Some(id))
        }
        Phase::Update => {
            retrying(policy.consistency, policy.interval, CloudError::is_not_found, || k.update(cloud, &op)).await?;
            Ok(None)
        }
        Phase::Delete => {
            let deleted = retrying(policy.dependency, policy.interval, CloudError::is_dependency_violation, || {
                k.delete(cloud, &op)
            })
            .await;
            match deleted {
                Err(mut e) if e.is_dependency_violation() => {
                    if let Some(what) = k.blockers(cloud, &op).await {
                        e.message
                            .push_str(&format!(" Still in use by: {what}. Delete or detach those, then run again."));
                    }
                    Err(e)
                }
                other => other.map(|_| None),
            }
        }
    }
}

/// A create that is retried (AWS not yet seeing a resource created a moment ago) may have got halfway the first
/// time: the resource exists, a later step failed. Look before creating again, and finish the one that exists
/// as an update of every attribute, so a retry never makes a duplicate.
async fn create_or_finish(
    cloud: &Cloud,
    k: &dyn crate::resources::Kind,
    op: &Op<'_>,
    retry: bool,
) -> Result<String, CloudError> {
    if !retry {
        return k.create(cloud, op).await;
    }
    let existing = k.read(cloud, op.region).await?.into_iter().find(|l| &l.address == op.address);
    let Some(mut live) = existing else { return k.create(cloud, op).await };
    crate::plan::read::forget_ignored_tags(cloud, &mut live);
    let changed: Vec<String> = op.desired.iter().flat_map(|d| d.keys().cloned()).collect();
    let finish = Op {
        address: op.address,
        region: op.region,
        id: Some(&live.id),
        desired: op.desired.clone(),
        live: Some(resolve_live(&live.attrs)),
        changed: &changed,
    };
    k.update(cloud, &finish).await?;
    Ok(live.id)
}

/// Desired references become the ids they point to now (after their creates have run).
fn resolve_desired(attrs: &Attrs, ids: &HashMap<Address, String>) -> Result<Attrs, CloudError> {
    let mut missing = None;
    let resolved = attrs
        .iter()
        .map(|(k, v)| {
            let v = rewrite(v, &mut |x| {
                let a = as_reference(x)?;
                match ids.get(&a) {
                    Some(id) => Some(Value::String(id.clone())),
                    None => {
                        missing = Some(a);
                        Some(Value::Null)
                    }
                }
            });
            (k.clone(), v)
        })
        .collect();
    match missing {
        Some(a) => Err(CloudError::internal(format!("{a} has no id yet (it was not created)"))),
        None => Ok(resolved),
    }
}

/// Live ids as plain strings.
fn resolve_live(attrs: &Attrs) -> Attrs {
    attrs.iter().map(|(k, v)| (k.clone(), plain_ids(v))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[tokio::test]
    async fn heartbeat_reports_while_work_runs_and_returns_its_result() {
        let ticks = AtomicUsize::new(0);
        let work = async {
            tokio::time::sleep(Duration::from_millis(60)).await;
            42
        };
        let out = heartbeat(work, Duration::from_millis(10), |_| {
            ticks.fetch_add(1, Ordering::SeqCst);
        })
        .await;
        assert_eq!(out, 42);
        assert!(ticks.load(Ordering::SeqCst) >= 1, "a long operation says it is still running");
    }

    #[tokio::test]
    async fn retrying_stops_at_the_first_lasting_error_and_gives_transient_ones_time() {
        let calls = AtomicUsize::new(0);
        let transient =
            |code: &str| CloudError { operation: "Op".into(), code: Some(code.into()), message: String::new() };
        // Clears after two tries.
        let r: Result<u8, _> =
            retrying(Duration::from_secs(5), Duration::from_millis(1), CloudError::is_not_found, || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move { if n < 2 { Err(transient("InvalidVpcID.NotFound")) } else { Ok(7) } }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        // A lasting error is returned at once.
        calls.store(0, Ordering::SeqCst);
        let r: Result<u8, _> =
            retrying(Duration::from_secs(5), Duration::from_millis(1), CloudError::is_not_found, || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Err(transient("UnauthorizedOperation")) }
            })
            .await;
        assert_eq!(r.unwrap_err().code(), "UnauthorizedOperation");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        // A transient error that outlasts the limit is returned, not retried forever.
        let started = Instant::now();
        let r: Result<u8, _> =
            retrying(Duration::from_millis(30), Duration::from_millis(5), CloudError::is_not_found, || async {
                Err(transient("InvalidVpcID.NotFound"))
            })
            .await;
        assert!(r.is_err());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
