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
use crate::graph::{Graph, Outcome, Slot};
use crate::plan::{Action, Plan, PlanError};
use crate::resources::{
    self, Address, Attrs, Created, Key, Kind, Kinds, Op, Progress, ReadCtx, ReplaceOrder, find, plain_ids, rewrite,
};
use crate::spec::Stack;

/// What one operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Create,
    Update,
    Delete,
    /// Wait for a resource AWS is still bringing up or changing (found so by the plan) before its dependents.
    Wait,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Create => "create",
            Phase::Update => "update",
            Phase::Delete => "delete",
            Phase::Wait => "wait",
        }
    }

    pub fn verb(self) -> (&'static str, &'static str) {
        match self {
            Phase::Create => ("Creating", "Created"),
            Phase::Update => ("Updating", "Updated"),
            Phase::Delete => ("Destroying", "Destroyed"),
            Phase::Wait => ("Waiting for", "Ready"),
        }
    }
}

/// Receives progress as it happens; the terminal and JSON views implement it (the engine never prints).
pub trait Hook: Send + Sync {
    fn started(&self, address: &Address, phase: Phase);
    /// `status`: what AWS last reported while waiting (`backing-up`), if anything.
    fn still_running(&self, address: &Address, phase: Phase, elapsed: Duration, status: Option<&str>);
    fn finished(&self, address: &Address, phase: Phase, elapsed: Duration, result: Result<Option<&str>, &CloudError>);
}

#[derive(Debug, Clone)]
pub struct Options {
    /// At most this many operations talking to AWS at once (Terraform's default is 10 too). Waiting for AWS to
    /// finish does not count: a database coming up for 20 minutes holds no slot.
    pub parallelism: usize,
    /// How often a long operation reports that it is still running.
    pub heartbeat: Duration,
    /// Set (by Ctrl-C) to start no further operations and stop waiting; calls already made finish, so nothing is
    /// cut off mid-call.
    pub stop: Arc<AtomicBool>,
    /// `--skip-final-snapshot`: deletes of data-holding resources keep no final backup.
    pub skip_final_snapshot: bool,
    /// `--wait`: wait until slow propagation finishes (CloudFront deployments) instead of reporting it as still in
    /// progress ([`Report::notes`]); the spec can ask the same per resource ([`resources::Desired::wait`]).
    pub wait: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            parallelism: 10,
            heartbeat: Duration::from_secs(10),
            stop: Arc::default(),
            skip_final_snapshot: false,
            wait: false,
        }
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
    /// The id of every resource of the stack's home region and of the global kinds that exists after the run
    /// (created ones included), by address.
    pub ids: std::collections::BTreeMap<Address, String>,
    /// The same for every region, the home region and `global` included: the same address may live in two.
    pub ids_by_region: std::collections::BTreeMap<String, std::collections::BTreeMap<Address, String>>,
    /// What the operator should know about work AWS is still doing after the run (a CloudFront distribution still
    /// deploying because apply did not wait for it), in the order the operations ended.
    pub notes: Vec<Note>,
}

/// A kind's note for the operator about one resource ([`Progress::note`]).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Note {
    pub address: Address,
    pub text: String,
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
fn operations(kinds: Kinds, plan: &Plan) -> Result<(Vec<Node>, Graph), PlanError> {
    let mut nodes = Vec::new();
    // Per change: the node that makes it exist as desired (create/update/wait), and the one that deletes it.
    let mut forward: HashMap<Key, usize> = HashMap::new();
    let mut delete: HashMap<Key, usize> = HashMap::new();
    let push = |nodes: &mut Vec<Node>, change, phase| {
        nodes.push(Node { change, phase });
        nodes.len() - 1
    };
    // The action planned for each resource; a second claimant being deleted never shadows the one kept.
    let mut action: HashMap<Key, Action> = HashMap::new();
    for c in &plan.changes {
        if c.action != Action::Delete || !action.contains_key(&c.key()) {
            action.insert(c.key(), c.action);
        }
    }
    let mut pairs = Vec::new();
    for (i, c) in plan.changes.iter().enumerate() {
        // A resource still coming up is waited for before it is changed or anything depending on it starts.
        let wait = c.pending.is_some().then(|| push(&mut nodes, i, Phase::Wait));
        if let Some(w) = wait {
            forward.insert(c.key(), w);
        }
        match c.action {
            Action::NoOp => {}
            Action::Create => {
                forward.insert(c.key(), push(&mut nodes, i, Phase::Create));
            }
            Action::Update => {
                let u = push(&mut nodes, i, Phase::Update);
                if let Some(w) = wait {
                    pairs.push((w, u));
                }
                forward.insert(c.key(), u);
            }
            Action::Delete => {
                let d = push(&mut nodes, i, Phase::Delete);
                // A second claimant of a kept address is deleted on its own; the address means the kept one.
                if action.get(&c.key()) == Some(&Action::Delete) {
                    delete.insert(c.key(), d);
                }
            }
            Action::Replace(order) => {
                let d = push(&mut nodes, i, Phase::Delete);
                let f = push(&mut nodes, i, Phase::Create);
                delete.insert(c.key(), d);
                forward.insert(c.key(), f);
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
        // Rule 1, and the dependencies that no attribute names.
        if let (Some(&then), Some(d)) = (forward.get(&c.key()), &c.desired) {
            let mut refs = Vec::new();
            d.attrs.values().for_each(|v| resources::targets(kinds, &c.region, &plan.region, v, &mut refs));
            refs.extend(d.depends_on.iter().map(|a| (c.region.clone(), a.clone())));
            for r in refs.iter().filter(|r| **r != c.key()) {
                if let Some(&first) = forward.get(r) {
                    graph.edge(first, then);
                }
            }
        }
        // Rule 2.
        let live_refs = &c.live_refs;
        for r in live_refs.iter().filter(|r| **r != c.key()) {
            let Some(&then) = delete.get(r) else { continue };
            if let Some(&first) = delete.get(&c.key()) {
                graph.edge(first, then);
            }
            let target = action.get(r).copied();
            let let_go_first =
                matches!(target, Some(Action::Delete) | Some(Action::Replace(ReplaceOrder::CreateFirst)));
            if let_go_first
                && c.action == Action::Update
                && let Some(&first) = forward.get(&c.key())
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
pub fn check(kinds: Kinds, plan: &Plan) -> Result<(), PlanError> {
    operations(kinds, plan).map(|_| ())
}

/// What apply knows of a resource that exists: its id and outputs. Creates add theirs; later operations resolve
/// references (to ids and to outputs) from here.
#[derive(Debug, Clone, Default)]
struct Known {
    id: String,
    outputs: Attrs,
}

type State = Mutex<HashMap<Key, Known>>;

/// Carries out `plan` over the registry's kinds.
pub async fn apply(
    cloud: &Cloud,
    stack: &Stack,
    plan: &Plan,
    options: &Options,
    hook: &dyn Hook,
) -> Result<Report, PlanError> {
    apply_with(resources::REGISTRY, cloud, stack, plan, options, hook).await
}

/// Carries out `plan` over `kinds`. Failures do not stop independent work; the report says what was done,
/// failed, skipped.
pub async fn apply_with(
    kinds: Kinds<'_>,
    cloud: &Cloud,
    stack: &Stack,
    plan: &Plan,
    options: &Options,
    hook: &dyn Hook,
) -> Result<Report, PlanError> {
    let (nodes, graph) = operations(kinds, plan)?;
    let state: State = Mutex::new(
        plan.changes
            .iter()
            // Replacements get their new id when created; deleted resources are never referenced.
            .filter(|c| !c.action.is_replace() && c.action != Action::Delete)
            .filter_map(|c| {
                let live = c.live.as_ref()?;
                Some((c.key(), Known { id: live.id.clone(), outputs: live.outputs.clone() }))
            })
            .collect(),
    );
    let ctx = Ctx { kinds, cloud, stack, plan, options, state: &state };
    let notes: Mutex<Vec<Note>> = Mutex::default();
    let outcomes = graph
        .walk(options.parallelism, |n, slot| {
            let node = nodes[n];
            let (ctx, notes) = (&ctx, &notes);
            async move {
                let change = &plan.changes[node.change];
                if options.stop.load(Ordering::SeqCst) {
                    return (n, Err(CloudError::internal("not started: interrupted")));
                }
                let started = Instant::now();
                hook.started(&change.address, node.phase);
                let progress = Progress::default();
                let work = run(ctx, node, slot, &progress);
                let result = heartbeat(work, options.heartbeat, |elapsed| {
                    hook.still_running(&change.address, node.phase, elapsed, progress.get().as_deref())
                })
                .await;
                hook.finished(&change.address, node.phase, started.elapsed(), result.as_ref().map(|id| id.as_deref()));
                let left = progress.notes().into_iter().map(|text| Note { address: change.address.clone(), text });
                notes.lock().unwrap_or_else(|e| e.into_inner()).extend(left);
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
    let mut ids_by_region: std::collections::BTreeMap<String, std::collections::BTreeMap<Address, String>> =
        Default::default();
    for ((region, address), known) in state.into_inner().unwrap_or_else(|e| e.into_inner()) {
        ids_by_region.entry(region).or_default().insert(address, known.id);
    }
    let ids = [plan.region.as_str(), resources::GLOBAL]
        .iter()
        .filter_map(|r| ids_by_region.get(*r))
        .flat_map(|m| m.iter().map(|(a, id)| (a.clone(), id.clone())))
        .collect();
    let notes = notes.into_inner().unwrap_or_else(|e| e.into_inner());
    Ok(Report { operations, ids, ids_by_region, notes })
}

/// What every operation of one apply shares.
struct Ctx<'a> {
    kinds: Kinds<'a>,
    cloud: &'a Cloud,
    stack: &'a Stack,
    plan: &'a Plan,
    options: &'a Options,
    state: &'a State,
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

/// One operation; returns the new id for creates. The AWS calls hold the slot; waiting for AWS to finish does
/// not.
async fn run(ctx: &Ctx<'_>, node: Node, mut slot: Slot, progress: &Progress) -> Result<Option<String>, CloudError> {
    let (cloud, plan) = (ctx.cloud, ctx.plan);
    let change = &plan.changes[node.change];
    let k = find(ctx.kinds, change.address.kind())
        .ok_or_else(|| CloudError::internal(format!("no resource kind for {}", change.address)))?;
    let mut desired = match (&change.desired, node.phase) {
        (Some(d), Phase::Create | Phase::Update) => {
            let state = ctx.state.lock().unwrap_or_else(|e| e.into_inner());
            Some(resolve_desired(ctx.kinds, &plan.region, &d.region, &d.attrs, &state)?)
        }
        _ => None,
    };
    let schema = k.schema();
    let digests = match &change.desired {
        Some(d) => d
            .attrs
            .iter()
            .filter(|(name, _)| resources::schema_rules(schema, name).write_only)
            .map(|(name, v)| (name.clone(), crate::plan::diff::secret_digest(&plan.stack, d, v.clone())))
            .collect(),
        None => Default::default(),
    };
    let live = change.live.as_ref().map(|l| resolve_live(&l.attrs));
    let mut changed = change.changed();
    // What this apply makes of the spec, recorded among the resource's tags (`plan::drift`), so the next plan can
    // tell a change made outside webscale from a spec edit. An update always rewrites it, hence "tags" changes.
    if let (Some(d), Some(want)) = (desired.as_mut(), change.want.as_ref())
        && let Some(Value::Object(tags)) = d.get_mut("tags")
    {
        tags.insert(
            crate::plan::drift::TAG_APPLIED.to_string(),
            Value::String(crate::plan::drift::record(schema, want)),
        );
        if node.phase == Phase::Update && !changed.iter().any(|c| c == "tags") {
            changed.push("tags".to_string());
        }
    }
    // The resource being replaced, if any: a create must never take it for its own.
    let replacing = change.id.as_deref().filter(|_| change.action.is_replace());
    let op = Op {
        address: &change.address,
        region: &change.region,
        id: change.id.as_deref(),
        desired,
        live,
        changed: &changed,
        token: resources::create_token(&plan.stack, &change.address, replacing),
        digests,
        skip_final_snapshot: ctx.options.skip_final_snapshot,
        wait: ctx.options.wait || change.desired.as_ref().is_some_and(|d| d.wait),
        stack: Some(ctx.stack),
        progress: Some(progress),
    };
    let timeouts = change.desired.as_ref().and_then(|d| d.timeouts).unwrap_or_else(|| k.timeouts());
    let policy = cloud.retry;
    match node.phase {
        Phase::Create => {
            let created = create(ctx, k, &op, replacing).await?;
            let id = created.id.clone();
            ctx.state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(change.key(), Known { id: id.clone(), outputs: created.outputs });
            slot.release();
            let op = Op { id: Some(&id), ..op };
            wait(ctx, k, &op, Phase::Create, timeouts.create, progress).await?;
            Ok(Some(id))
        }
        Phase::Update => {
            retrying(policy.consistency, policy.interval, CloudError::is_not_found, || k.update(cloud, &op)).await?;
            slot.release();
            wait(ctx, k, &op, Phase::Update, timeouts.update, progress).await?;
            Ok(None)
        }
        Phase::Wait => {
            slot.release();
            progress.set(change.pending.clone().unwrap_or_default());
            wait(ctx, k, &op, Phase::Create, timeouts.create, progress).await?;
            Ok(None)
        }
        Phase::Delete => {
            let deleted = retrying(policy.dependency, policy.interval, CloudError::is_dependency_violation, || async {
                match k.delete(cloud, &op).await {
                    Err(e) if k.is_gone(&e) => Ok(false),
                    other => other.map(|_| true),
                }
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
                Err(e) => Err(e),
                Ok(false) => Ok(None),
                Ok(true) => {
                    slot.release();
                    match wait(ctx, k, &op, Phase::Delete, timeouts.delete, progress).await {
                        Err(e) if k.is_gone(&e) => Ok(None),
                        other => other.map(|_| None),
                    }
                }
            }
        }
    }
}

/// Waits for AWS to finish `phase`, bounded by `limit` and by Ctrl-C. Either way out, AWS carries on: the error
/// says so, and that a re-run resumes (it finds the resource and waits for it).
async fn wait(
    ctx: &Ctx<'_>,
    k: &dyn Kind,
    op: &Op<'_>,
    phase: Phase,
    limit: Duration,
    progress: &Progress,
) -> Result<(), CloudError> {
    let id = op.id()?;
    let waiting = k.wait(ctx.cloud, op, id, phase, progress);
    let stop = &ctx.options.stop;
    let interrupted = async {
        while !stop.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let last = || progress.get().map(|s| format!(" (last status: {s})")).unwrap_or_default();
    let doing = match phase {
        Phase::Delete => "going away",
        _ => "coming up",
    };
    tokio::select! {
        done = waiting => done,
        _ = tokio::time::sleep(limit) => Err(CloudError {
            operation: "webscale".into(),
            code: Some("WaitTimeout".into()),
            message: format!(
                "gave up waiting for {} after {}{}; AWS keeps working on it: run the same command again to resume waiting",
                op.address, human(limit), last()
            ),
        }),
        _ = interrupted => Err(CloudError {
            operation: "webscale".into(),
            code: Some("Interrupted".into()),
            message: format!(
                "stopped waiting (interrupted){}; {} keeps {doing} on AWS's side: run the same command again to resume",
                last(), op.address
            ),
        }),
    }
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 60, s % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
    }
}

/// A create, safe to repeat. Conditions that clear by themselves are retried: AWS not yet seeing a resource
/// created a moment ago, throttling, an answer that never arrived (the call may have been carried out), and "already
/// exists" from a repeat that met what the first call made (unique names). Before
/// creating again, look: a create that got halfway (the resource exists, a later step failed) or whose answer was
/// lost is finished as an update of every attribute, so a retry never makes a duplicate. Only a resource other than
/// the one being replaced counts: in a create-first replacement the old one has the same address.
async fn create(ctx: &Ctx<'_>, k: &dyn Kind, op: &Op<'_>, replacing: Option<&str>) -> Result<Created, CloudError> {
    let policy = ctx.cloud.retry;
    let transient: fn(&CloudError) -> bool =
        |e| e.is_not_found() || e.is_throttling() || e.is_ambiguous() || e.is_already_exists();
    let attempt = std::sync::atomic::AtomicUsize::new(0);
    retrying(policy.consistency, policy.interval, transient, || async {
        if attempt.fetch_add(1, Ordering::SeqCst) == 0 {
            return k.create(ctx.cloud, op).await;
        }
        let read = ReadCtx::new(ctx.cloud, ctx.stack);
        let found = crate::plan::read::read_one(k, &read, op.region, op.address).await?;
        let Some(live) = found.into_iter().find(|l| Some(l.id.as_str()) != replacing) else {
            return k.create(ctx.cloud, op).await;
        };
        let changed: Vec<String> = op.desired.iter().flat_map(|d| d.keys().cloned()).collect();
        let finish = Op {
            address: op.address,
            region: op.region,
            id: Some(&live.id),
            desired: op.desired.clone(),
            live: Some(resolve_live(&live.attrs)),
            changed: &changed,
            token: op.token.clone(),
            digests: op.digests.clone(),
            skip_final_snapshot: op.skip_final_snapshot,
            wait: op.wait,
            stack: op.stack,
            progress: op.progress,
        };
        k.update(ctx.cloud, &finish).await?;
        Ok(Created { id: live.id, outputs: live.outputs })
    })
    .await
}

/// Desired references become the ids (or outputs) they point to now, after the creates they wait for have run.
fn resolve_desired(
    kinds: Kinds,
    home: &str,
    region: &str,
    attrs: &Attrs,
    state: &HashMap<Key, Known>,
) -> Result<Attrs, CloudError> {
    let mut missing = None;
    let resolved = attrs
        .iter()
        .map(|(k, v)| {
            let v = rewrite(v, &mut |x| {
                let r = resources::as_ref(x)?;
                let key = resources::target(kinds, region, home, &r);
                let value = state.get(&key).and_then(|known| match &r.output {
                    None => Some(Value::String(known.id.clone())),
                    Some(o) => known.outputs.get(o).cloned(),
                });
                if value.is_none() {
                    missing = Some(format!("{}{}", r.address, r.output.map(|o| format!(".{o}")).unwrap_or_default()));
                }
                Some(value.unwrap_or(Value::Null))
            });
            (k.clone(), v)
        })
        .collect();
    match missing {
        Some(what) => Err(CloudError::internal(format!("{what} is not known yet (it was not created)"))),
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
