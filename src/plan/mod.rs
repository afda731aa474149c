//! The plan: what would change, as plain data. `read` gathers live state, `diff` compares it with the desired
//! resources. Drawing a plan lives in `ui`; carrying it out in `apply`.

pub mod diff;
pub mod drift;
pub mod inventory;
pub mod outputs;
pub mod read;
pub mod select;

use serde::Serialize;
use serde_json::Value;

use crate::resources::{Address, Desired, Key, Kinds, Live, ReplaceOrder};

pub use diff::{PlanError, diff, diff_with};
pub use select::Selection;

/// The JSON plan's `format_version`. 2: values known only after apply are `{"unknown": "ADDRESS.OUTPUT"}` with
/// `known_after_apply: true` on their attribute; secrets are `{"sensitive": "sha256:..."}`; changes may carry
/// `depends_on` and `pending`; the plan may carry `warnings`. Everything of version 1 reads the same.
pub const FORMAT_VERSION: u32 = 2;

/// What happens to one resource. In JSON: `"action": "replace"` plus `"replace_order": "delete_first"` on
/// replacements, so a pipeline can always compare `action` with a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    NoOp,
    Create,
    Update,
    Replace(ReplaceOrder),
    Delete,
}

impl Serialize for Action {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("action", self.name())?;
        if let Action::Replace(order) = self {
            map.serialize_entry("replace_order", order)?;
        }
        map.end()
    }
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::NoOp => "no_op",
            Action::Create => "create",
            Action::Update => "update",
            Action::Replace(_) => "replace",
            Action::Delete => "delete",
        }
    }

    /// Terraform's plan symbols: `-/+` replaces delete-first, `+/-` create-first.
    pub fn symbol(self) -> &'static str {
        match self {
            Action::NoOp => " ",
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace(ReplaceOrder::DeleteFirst) => "-/+",
            Action::Replace(ReplaceOrder::CreateFirst) => "+/-",
            Action::Delete => "-",
        }
    }

    pub fn is_replace(self) -> bool {
        matches!(self, Action::Replace(_))
    }
}

/// One attribute's before and after.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AttrChange {
    pub name: String,
    /// Absent when the resource does not exist yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<Value>,
    /// Absent when the resource is being deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub forces_replacement: bool,
    /// Why a value that reads the same still changes (a referenced resource is replaced, so its id will).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// `after` holds values that exist only once apply has created what they come from (`{"unknown": ...}`).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub known_after_apply: bool,
    /// The spec's value is what webscale last applied, yet live differs: someone changed it outside webscale, and
    /// this change undoes that ([`drift`]). Absent where webscale cannot tell.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub changed_outside: bool,
}

/// The planned change of one resource.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub address: Address,
    #[serde(flatten)]
    pub action: Action,
    pub region: String,
    /// The live id, where the resource exists.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why: which attribute forces a replacement, why something is deleted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Create: every desired attribute; delete: every live one; update and replace: those that differ.
    pub attributes: Vec<AttrChange>,
    /// Resources this one waits for although no attribute refers to them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Address>,
    /// What the stack does not own that keeps this delete from completing, or that sits where this create would
    /// write (found at plan time): apply and destroy refuse to start while any change has some.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked_by: Vec<String>,
    /// Why AWS would refuse this create, found at plan time from what only live AWS knows (an availability zone the
    /// region does not have), each said with what would be valid: apply refuses to start while any change has some.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// This delete or replacement destroys data (a database): apply and destroy refuse it unless the address is
    /// named with `--allow-data-loss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_loss: Option<crate::resources::DataLoss>,
    /// Something the stack uses but does not own, found at plan time (never changed; not counted in the summary).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub lookup: bool,
    /// AWS is still bringing the resource up or changing it (its status): apply waits for it before anything
    /// that depends on it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    #[serde(skip)]
    pub desired: Option<Desired>,
    /// The desired attributes as this plan compared them (references by address, outputs resolved where known, sets
    /// in a fixed order): what an apply records as applied (`drift`).
    #[serde(skip)]
    pub want: Option<crate::resources::Attrs>,
    #[serde(skip)]
    pub live: Option<Live>,
    /// Resources the live resource references (they must outlive its deletion or update).
    #[serde(skip)]
    pub live_refs: Vec<Key>,
}

impl Change {
    /// The resource's identity: region and address.
    pub fn key(&self) -> Key {
        (self.region.clone(), self.address.clone())
    }

    /// Names of the attributes that differ.
    pub fn changed(&self) -> Vec<String> {
        self.attributes.iter().map(|a| a.name.clone()).collect()
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub replace: usize,
    pub destroy: usize,
    pub unchanged: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// Bumped when the JSON form changes incompatibly; pipelines can check it.
    pub format_version: u32,
    pub stack: String,
    pub region: String,
    /// The AWS account the plan was made against, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// What the plan could not check, and other things an operator should know before approving.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Every resource of the stack, in dependency order; no-ops included (the human view hides them).
    pub changes: Vec<Change>,
    pub summary: Summary,
}

impl Plan {
    /// Something to do: a change, or a resource still coming up that apply must wait for.
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::NoOp || c.pending.is_some())
    }

    pub fn summarize(changes: &[Change]) -> Summary {
        let mut s = Summary::default();
        for c in changes.iter().filter(|c| !c.lookup) {
            match c.action {
                Action::NoOp => s.unchanged += 1,
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Replace(_) => s.replace += 1,
                Action::Delete => s.destroy += 1,
            }
        }
        s
    }
}

/// Whether the spec's resources are wanted (apply) or nothing is (destroy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    Destroy,
}

/// Desired resources + live state -> plan, over the registry's kinds. Destroy is the same diff against an empty
/// desired set, which is why it deletes exactly what the stack owns, in reverse dependency order.
pub async fn build(cloud: &crate::aws::Cloud, stack: &crate::spec::Stack, mode: Mode) -> Result<Plan, crate::Error> {
    build_with(crate::resources::REGISTRY, cloud, stack, mode).await
}

/// The same over `kinds`. Asks STS who we are alongside the reads (not before them: a plan costs as few sequential
/// round trips as the APIs allow); when that fails, its clear message wins over whatever the reads say.
pub async fn build_with(
    kinds: Kinds<'_>,
    cloud: &crate::aws::Cloud,
    stack: &crate::spec::Stack,
    mode: Mode,
) -> Result<Plan, crate::Error> {
    build_selected(kinds, cloud, stack, mode, &Selection::default()).await
}

/// The same, with `--target` and `--replace` ([`select`]): the named addresses are checked against the spec and
/// live state, forced replacements are planned as replacements, and a targeted plan keeps only its targets and
/// what they need (with a warning that it is partial).
pub async fn build_selected(
    kinds: Kinds<'_>,
    cloud: &crate::aws::Cloud,
    stack: &crate::spec::Stack,
    mode: Mode,
    selection: &Selection,
) -> Result<Plan, crate::Error> {
    let who = || async {
        match &cloud.account {
            Some(a) => Ok(Some(a.clone())),
            None => cloud.whoami().await.map_err(|source| crate::Error::Connect { endpoint: cloud.endpoint(), source }),
        }
    };
    // A name derived from the account (the assets bucket's, when the spec names none) must be known before the
    // desired resources are: only then is STS asked first, one round trip more.
    let with_account;
    // The topic's policy names the account too.
    let needs_account = stack.static_assets.as_ref().is_some_and(|a| a.bucket.is_none()) || stack.logging.is_some();
    let stack = if stack.account.is_none() && needs_account {
        with_account = crate::spec::Stack { account: who().await?, ..stack.clone() };
        &with_account
    } else {
        stack
    };
    let all = crate::resources::desired_of(kinds, stack);
    let ctx = crate::resources::ReadCtx::new(cloud, stack);
    let whoami = who();
    let reads = async { read::read_live(kinds, &ctx, &all).await.map_err(crate::Error::Read) };
    // Regions the spec does not name where the stack still has resources (a region dropped from the spec, or a
    // different AWS_REGION in CI): looked for alongside the reads, so it costs no extra round trip.
    let elsewhere = async { Ok(cloud.stack_elsewhere().await) };
    let (account, (live, mut warnings), elsewhere) = futures::future::try_join3(whoami, reads, elsewhere).await?;
    select::check(kinds, selection, &all, &live)?;
    let desired = match mode {
        Mode::Apply => all,
        Mode::Destroy => Vec::new(),
    };
    let mut plan = diff::diff_replacing(kinds, &stack.name, &stack.region, desired, live, &selection.forced())?;
    plan.account = account;
    // Whether the stack has anything here at all: the whole plan's answer, not the targeted part's.
    let here = {
        let s = &plan.summary;
        s.change + s.replace + s.destroy + s.unchanged > 0
    };
    select::restrict(kinds, &mut plan, &selection.targets);
    blocked(kinds, &ctx, &mut plan).await.map_err(crate::Error::Read)?;
    mark_data_loss(kinds, &mut plan);
    drift::mark(kinds, &mut plan);
    if !elsewhere.is_empty() {
        warnings.push(if here {
            format!(
                "stack {} also has resources in {}, which this plan does not cover: they are left as they are. To remove them, run destroy with --region.",
                plan.stack,
                elsewhere.join(", ")
            )
        } else {
            format!(
                "stack {} has nothing in {} but exists in {}. If that is the stack you mean, use --region (or AWS_REGION, or [stack] region).",
                plan.stack,
                plan.region,
                elsewhere.join(", ")
            )
        });
    }
    if !selection.targets.is_empty() {
        warnings.push(select::partial_warning(&selection.targets, mode == Mode::Destroy));
    }
    plan.warnings = warnings;
    crate::apply::check(kinds, &plan)?;
    if mode == Mode::Destroy {
        for c in &mut plan.changes {
            c.reason = Some("the stack is being destroyed".to_string());
        }
    }
    Ok(plan)
}

/// Marks the deletes and replacements that destroy data, and says when in-place updates take effect, as each
/// kind tells ([`crate::resources::Kind::data_loss`], [`crate::resources::Kind::update_note`]).
fn mark_data_loss(kinds: Kinds<'_>, plan: &mut Plan) {
    for c in &mut plan.changes {
        let Some(kind) = crate::resources::find(kinds, c.address.kind()) else { continue };
        match c.action {
            Action::Delete | Action::Replace(_) => c.data_loss = c.live.as_ref().and_then(|l| kind.data_loss(l)),
            Action::Update if c.reason.is_none() => {
                let changed = c.changed();
                c.reason = c.desired.as_ref().and_then(|d| kind.update_note(&d.attrs, &changed));
            }
            _ => {}
        }
    }
}

/// Asks every resource the plan deletes what the stack does not own inside it (a subnet added by hand to its
/// VPC), and every resource it creates what the stack does not own in its place (a record made by hand). Only deletes
/// and creates ask, so a plan that changes nothing makes no extra call.
async fn blocked(
    kinds: Kinds<'_>,
    ctx: &crate::resources::ReadCtx<'_>,
    plan: &mut Plan,
) -> Result<(), crate::aws::CloudError> {
    let owned: std::collections::HashSet<String> =
        plan.changes.iter().filter_map(|c| c.live.as_ref()).map(|l| l.id.clone()).collect();
    let owned = &owned;
    let asks = plan.changes.iter().enumerate().filter_map(|(i, c)| {
        let deleting = matches!(c.action, Action::Delete | Action::Replace(_));
        let creating = matches!(c.action, Action::Create | Action::Replace(_));
        let kind = crate::resources::find(kinds, c.address.kind())?;
        let live = c.live.as_ref().filter(|_| deleting && kind.owns_id());
        // Creates ask too: what the stack does not own where the new resource would go (a record made by hand).
        let new = c.desired.as_ref().filter(|_| creating);
        if live.is_none() && new.is_none() {
            return None;
        }
        Some(async move {
            let mut found = Vec::new();
            let mut problems = Vec::new();
            if let Some(live) = live {
                found.extend(kind.strangers(ctx, live, owned).await?);
            }
            if let Some(new) = new {
                found.extend(kind.occupied(ctx, new).await?);
                problems.extend(kind.unavailable(ctx, new).await?);
            }
            Ok::<_, crate::aws::CloudError>((i, found, problems))
        })
    });
    for (i, strangers, problems) in futures::future::try_join_all(asks).await? {
        plan.changes[i].blocked_by = strangers;
        plan.changes[i].problems = problems;
    }
    Ok(())
}
