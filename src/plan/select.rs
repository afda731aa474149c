//! Part of a plan, as Terraform's `-target` and `-replace` select it.
//!
//! - `--target ADDRESS` keeps that resource and what it needs: for a create or update, what its desired
//!   attributes refer to (transitively), so apply knows every id it uses; for a delete or replacement, also what
//!   refers to it and changes because of it (transitively), since that must let go of it first. Everything else is
//!   left out of the plan, not shown as unchanged, and not counted.
//! - `--replace ADDRESS` makes the diff replace an existing resource although nothing forces it
//!   ([`super::diff::diff_replacing`]); what refers to it follows as with any replacement.
//!
//! Both are checked against the spec and live state first: a misspelt address is an error naming close matches,
//! never a plan that quietly selects nothing.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

use super::{Action, Plan, PlanError};
use crate::resources::{self, Address, Desired, Key, Kinds, Live};

/// What `--target` and `--replace` named (as typed: checked by [`check`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    pub targets: Vec<String>,
    pub replace: Vec<String>,
}

impl Selection {
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty() && self.replace.is_empty()
    }

    /// The addresses to replace, for the diff.
    pub fn forced(&self) -> HashSet<Address> {
        self.replace.iter().filter_map(|a| Address::parse(a)).collect()
    }
}

/// Every named address must be declared in the spec or exist live (in any region the plan reads); a replacement
/// must be of something the stack owns.
pub fn check(kinds: Kinds, selection: &Selection, desired: &[Desired], live: &[Live]) -> Result<(), PlanError> {
    let known: Vec<&str> = {
        let mut all: Vec<&str> =
            desired.iter().map(|d| d.address.as_str()).chain(live.iter().map(|l| l.address.as_str())).collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    let named =
        selection.targets.iter().map(|a| ("--target", a)).chain(selection.replace.iter().map(|a| ("--replace", a)));
    for (flag, address) in named {
        if !known.contains(&address.as_str()) {
            return Err(PlanError::UnknownAddress {
                flag,
                address: address.clone(),
                close: close_matches(address, &known),
            });
        }
        let lookup =
            Address::parse(address).and_then(|a| resources::find(kinds, a.kind())).is_some_and(|k| k.is_lookup());
        if flag == "--replace" && lookup {
            return Err(PlanError::NotSelectable {
                flag,
                address: address.clone(),
                why: "it is looked up, not owned by the stack: there is nothing to replace".to_string(),
            });
        }
    }
    Ok(())
}

/// The text of [`PlanError::UnknownAddress`] after the flag and address.
pub fn unknown_text(address: &str, close: &[String]) -> String {
    let mut text = "no such resource in the spec or in live state".to_string();
    if Address::parse(address).is_none() {
        text.push_str(" (addresses are KIND.NAME, e.g. subnet.public_a)");
    }
    match close {
        [] => {}
        [one] => text.push_str(&format!("; did you mean {one}?")),
        many => text.push_str(&format!("; did you mean one of {}?", many.join(", "))),
    }
    text
}

/// Known addresses that look like `wanted`: a small edit away, or the same kind or name when only one half was
/// given (`vpc`, `public_a`). At most five, closest first.
pub fn close_matches(wanted: &str, known: &[&str]) -> Vec<String> {
    let limit = (wanted.chars().count() / 4).max(2);
    let mut scored: Vec<(usize, &str)> = known
        .iter()
        .filter_map(|k| {
            let d = distance(wanted, k);
            let half = Address::parse(k).is_some_and(|a| a.kind() == wanted || a.name() == wanted);
            (d <= limit || half).then_some((if half { 0 } else { d }, *k))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, k)| k.to_string()).collect()
}

/// Levenshtein distance, by characters.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Keeps the changes of `targets` and what they need (see the module's doc); recounts the summary. Nothing to do
/// when `targets` is empty.
pub fn restrict(kinds: Kinds, plan: &mut Plan, targets: &[String]) {
    if targets.is_empty() {
        return;
    }
    let home = plan.region.clone();
    let changes = &plan.changes;
    // What each change's desired resource refers to (and waits for).
    let needs: Vec<Vec<Key>> = changes
        .iter()
        .map(|c| {
            let mut out = Vec::new();
            if let Some(d) = &c.desired {
                d.attrs.values().for_each(|v| referenced(kinds, &home, &d.region, v, &mut out));
                out.extend(d.depends_on.iter().map(|a| (d.region.clone(), a.clone())));
            }
            out
        })
        .collect();
    // The changes that make each (region, address) exist (a second claimant being deleted is not one of them).
    let mut makes: HashMap<&Key, Vec<usize>> = HashMap::new();
    // The changes that refer to each one, now or after apply, and change.
    let mut users: HashMap<&Key, Vec<usize>> = HashMap::new();
    let keys: Vec<Key> = changes.iter().map(|c| c.key()).collect();
    for (i, c) in changes.iter().enumerate() {
        if c.action != Action::Delete {
            makes.entry(&keys[i]).or_default().push(i);
        }
        if c.action != Action::NoOp {
            for k in c.live_refs.iter().chain(&needs[i]).filter(|k| **k != keys[i]) {
                users.entry(k).or_default().push(i);
            }
        }
    }
    let mut keep = vec![false; changes.len()];
    let mut work: Vec<usize> =
        (0..changes.len()).filter(|&i| targets.iter().any(|t| t == changes[i].address.as_str())).collect();
    while let Some(i) = work.pop() {
        if std::mem::replace(&mut keep[i], true) {
            continue;
        }
        for k in &needs[i] {
            work.extend(makes.get(k).into_iter().flatten());
        }
        if matches!(changes[i].action, Action::Delete | Action::Replace(_)) {
            work.extend(users.get(&keys[i]).into_iter().flatten());
        }
    }
    let mut keep = keep.into_iter();
    plan.changes.retain(|_| keep.next().unwrap_or(false));
    plan.summary = Plan::summarize(&plan.changes);
}

/// The warning of a targeted plan, as Terraform gives it. `destroying`: what the targets take along is what
/// depends on them, not what they depend on.
pub fn partial_warning(targets: &[String], destroying: bool) -> String {
    let (it, they) =
        if destroying { ("what depends on it", "what depends on them") } else { ("what it needs", "what they need") };
    format!(
        "resource targeting is in effect: the plan is partial. It covers only {} and {}, so it may not show every \
         change the spec asks for. Use --target for exceptional cases (recovering from a mistake, working around a \
         limitation), then run a full plan.",
        targets.join(", "),
        if targets.len() == 1 { it } else { they }
    )
}

/// Every (region, address) a desired value refers to.
fn referenced(kinds: Kinds, home: &str, region: &str, v: &Value, out: &mut Vec<Key>) {
    if let Some(r) = resources::as_ref(v) {
        out.push(resources::target(kinds, region, home, &r));
        return;
    }
    match v {
        Value::Array(items) => items.iter().for_each(|i| referenced(kinds, home, region, i, out)),
        Value::Object(map) => map.values().for_each(|i| referenced(kinds, home, region, i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use serde_json::json;

    use super::*;
    use crate::plan::diff::tests::{fresh, mirror, reference_desired};
    use crate::plan::diff::{REPLACE_REQUESTED, diff, diff_replacing};
    use crate::resources::{REGISTRY, ReplaceOrder};

    fn addresses(plan: &Plan) -> Vec<&str> {
        let mut a: Vec<&str> = plan.changes.iter().map(|c| c.address.as_str()).collect();
        a.sort_unstable();
        a
    }

    #[test]
    fn a_target_on_a_fresh_stack_brings_what_it_refers_to_and_nothing_else() {
        let mut plan = diff("s", "us-east-1", reference_desired(), fresh(&reference_desired())).unwrap();
        restrict(REGISTRY, &mut plan, &["subnet.public_a".to_string()]);
        assert_eq!(addresses(&plan), vec!["subnet.public_a", "vpc.main"]);
        assert_eq!(plan.summary.add, 2);
        crate::apply::check(REGISTRY, &plan).expect("orderable");

        // A route table needs the gateway, the VPC and the subnets it is associated with.
        let mut plan = diff("s", "us-east-1", reference_desired(), fresh(&reference_desired())).unwrap();
        restrict(REGISTRY, &mut plan, &["route_table.public".to_string()]);
        assert_eq!(
            addresses(&plan),
            vec!["internet_gateway.main", "route_table.public", "subnet.public_a", "subnet.public_b", "vpc.main"]
        );
    }

    #[test]
    fn a_targeted_destroy_takes_along_what_refers_to_the_target() {
        let desired = reference_desired();
        let mut plan = diff("s", "us-east-1", vec![], mirror(&desired)).unwrap();
        restrict(REGISTRY, &mut plan, &["subnet.public_a".to_string()]);
        // The NAT gateway in it goes too, and so does the private route table that routes through the gateway; the
        // load balancer in it, and its listener.
        assert_eq!(
            addresses(&plan),
            vec![
                "listener.http",
                "load_balancer.web",
                "nat_gateway.a",
                "network_acl.public",
                "route_table.private",
                "route_table.public",
                "subnet.public_a"
            ]
        );
        assert_eq!(plan.summary.destroy, 7);

        // Rules naming the web group are revoked first (rule sets refer to it), and so is its own rule set; the
        // instances in the group go first too, and with them the target group holding them and its listener.
        let mut plan = diff("s", "us-east-1", vec![], mirror(&desired)).unwrap();
        restrict(REGISTRY, &mut plan, &["security_group.web".to_string()]);
        assert_eq!(
            addresses(&plan),
            vec![
                "instance.web_1",
                "instance.web_2",
                "listener.http",
                "security_group.web",
                "security_group_rules.db",
                "security_group_rules.lb",
                "security_group_rules.web",
                "target_group.web"
            ]
        );
    }

    #[test]
    fn a_forced_replacement_is_planned_in_the_kinds_order_and_what_refers_to_it_follows() {
        let desired = reference_desired();
        let live = mirror(&desired);
        let forced = HashSet::from([Address::parse("security_group.web").unwrap()]);
        // The stack the template names: write-only values (user data) are digested with it.
        let plan = diff_replacing(REGISTRY, "webscale", "us-east-1", desired, live, &forced).unwrap();
        let web = plan.changes.iter().find(|c| c.address.as_str() == "security_group.web").unwrap();
        assert_eq!(web.action, Action::Replace(ReplaceOrder::CreateFirst));
        assert_eq!(web.reason.as_deref(), Some(REPLACE_REQUESTED));
        for (address, action) in [
            ("security_group_rules.web", Action::Replace(ReplaceOrder::CreateFirst)),
            ("security_group_rules.lb", Action::Update),
            ("security_group_rules.db", Action::Update),
            ("instance.web_1", Action::Update),
            ("instance.web_2", Action::Update),
        ] {
            let c = plan.changes.iter().find(|c| c.address.as_str() == address).unwrap();
            assert_eq!(c.action, action, "{address}");
        }
        assert_eq!(plan.summary.replace, 2);
        assert_eq!(plan.summary.change, 4);
        crate::apply::check(REGISTRY, &plan).expect("orderable");
    }

    #[test]
    fn unknown_addresses_are_errors_naming_close_matches() {
        let desired = reference_desired();
        let check_one = |flag: &str, a: &str| {
            let s = if flag == "--target" {
                Selection { targets: vec![a.to_string()], ..Selection::default() }
            } else {
                Selection { replace: vec![a.to_string()], ..Selection::default() }
            };
            check(REGISTRY, &s, &desired, &[]).map_err(|e| e.to_string())
        };
        assert_eq!(check_one("--target", "subnet.public_a"), Ok(()));
        assert_eq!(
            check_one("--target", "subnet.publc_a").unwrap_err(),
            "--target subnet.publc_a: no such resource in the spec or in live state; did you mean one of \
             subnet.public_a, subnet.public_b?"
        );
        assert_eq!(
            check_one("--replace", "vpc").unwrap_err(),
            "--replace vpc: no such resource in the spec or in live state (addresses are KIND.NAME, e.g. \
             subnet.public_a); did you mean vpc.main?"
        );
        assert_eq!(
            check_one("--target", "queue.jobs").unwrap_err(),
            "--target queue.jobs: no such resource in the spec or in live state"
        );
        // Live only (no longer in the spec): still a valid target.
        let stale = Live::new(
            Address::parse("subnet.public_c").unwrap(),
            "us-east-1",
            "subnet-1",
            json!({}).as_object().unwrap().clone(),
        );
        let s = Selection { targets: vec!["subnet.public_c".into()], ..Selection::default() };
        assert!(check(REGISTRY, &s, &desired, &[stale]).is_ok());
    }
}
