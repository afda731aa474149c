//! The plan: what would change, as plain data. `read` gathers live state, `diff` compares it with the desired
//! resources. Drawing a plan lives in `ui`; carrying it out in `apply`.

pub mod diff;
pub mod read;

use serde::Serialize;
use serde_json::Value;

use crate::resources::{Address, Desired, Live, ReplaceOrder};

pub use diff::{PlanError, diff};

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
    #[serde(skip)]
    pub desired: Option<Desired>,
    #[serde(skip)]
    pub live: Option<Live>,
    /// Resources the live resource references (they must outlive its deletion or update).
    #[serde(skip)]
    pub live_refs: Vec<Address>,
}

impl Change {
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
    /// Every resource of the stack, in dependency order; no-ops included (the human view hides them).
    pub changes: Vec<Change>,
    pub summary: Summary,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::NoOp)
    }

    pub fn summarize(changes: &[Change]) -> Summary {
        let mut s = Summary::default();
        for c in changes {
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

/// Desired resources + live state -> plan. Destroy is the same diff against an empty desired set, which is why it
/// deletes exactly what the stack owns, in reverse dependency order.
pub async fn build(cloud: &crate::aws::Cloud, stack: &crate::spec::Stack, mode: Mode) -> Result<Plan, crate::Error> {
    let desired = match mode {
        Mode::Apply => crate::resources::desired(stack),
        Mode::Destroy => Vec::new(),
    };
    let live = read::read_live(cloud).await.map_err(crate::Error::Read)?;
    let mut plan = diff(&stack.name, &stack.region, desired, live)?;
    plan.account = cloud.account.clone();
    crate::apply::check(&plan)?;
    if mode == Mode::Destroy {
        for c in &mut plan.changes {
            c.reason = Some("the stack is being destroyed".to_string());
        }
    }
    Ok(plan)
}
