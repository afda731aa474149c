//! Desired vs live -> changes. Pure: no AWS calls, so every rule here is unit-tested on plain values.
//!
//! Normalisation happens here, once, for every kind:
//! - live ids the stack owns become references (`{"id": "vpc-0abc"}` -> `{"ref": "vpc.main"}`), so both sides
//!   speak in addresses;
//! - lists are sets: both sides are sorted before comparing, so AWS's rule ordering never shows as a change.
//!
//! Kinds normalise what only they know (dropping AWS's default entries, spelling protocols one way).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::{Action, AttrChange, Change, Plan};
use crate::graph::Graph;
use crate::resources::{self, Address, Desired, Live, as_cloud_id, kind, references, rewrite};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("dependency cycle between {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("{from} refers to {to}, which the stack does not define")]
    DanglingReference { from: Address, to: Address },
    #[error("no resource kind named {0:?}")]
    UnknownKind(String),
}

/// Compares what the spec asks for with what exists.
pub fn diff(stack: &str, region: &str, desired: Vec<Desired>, live: Vec<Live>) -> Result<Plan, PlanError> {
    let order = desired_order(&desired)?;

    // One live resource per address; extra claimants of an address (possible only if someone copied tags)
    // are deleted.
    let mut by_address: BTreeMap<Address, Live> = BTreeMap::new();
    let mut extras: Vec<Live> = Vec::new();
    for l in live {
        if by_address.contains_key(&l.address) {
            extras.push(l);
        } else {
            by_address.insert(l.address.clone(), l);
        }
    }
    let ids: HashMap<String, Address> = by_address
        .values()
        .filter(|l| kind(l.address.kind()).is_some_and(|k| k.owns_id()))
        .map(|l| (l.id.clone(), l.address.clone()))
        .collect();
    let normal = |l: &Live| -> resources::Attrs {
        l.attrs.iter().map(|(k, v)| (k.clone(), canonical(&to_refs(v, &ids)))).collect()
    };

    let mut changes: Vec<Change> = Vec::new();
    let mut planned: HashMap<Address, Action> = HashMap::new();
    for i in order {
        let d = &desired[i];
        let k = kind(d.address.kind()).ok_or_else(|| PlanError::UnknownKind(d.address.kind().to_string()))?;
        let Some(l) = by_address.remove(&d.address) else {
            let attributes = d
                .attrs
                .iter()
                .map(|(name, v)| AttrChange {
                    name: name.clone(),
                    before: None,
                    after: Some(v.clone()),
                    forces_replacement: false,
                    note: None,
                })
                .collect();
            planned.insert(d.address.clone(), Action::Create);
            changes.push(Change {
                address: d.address.clone(),
                action: Action::Create,
                region: d.region.clone(),
                id: None,
                reason: None,
                attributes,
                desired: Some(d.clone()),
                live: None,
                live_refs: Vec::new(),
            });
            continue;
        };
        let have = normal(&l);
        let mut attributes = Vec::new();
        for (name, want) in &d.attrs {
            let want_c = canonical(want);
            let before = have.get(name).cloned().unwrap_or(Value::Null);
            let forces = k.replace_on().contains(&name.as_str());
            if before != want_c {
                attributes.push(AttrChange {
                    name: name.clone(),
                    before: Some(before),
                    after: Some(want.clone()),
                    forces_replacement: forces,
                    note: None,
                });
                continue;
            }
            // Equal by address, but a referenced resource is being replaced: its id, and so this value, changes.
            let mut refs = Vec::new();
            references(want, &mut refs);
            if let Some(replaced) = refs.iter().find(|r| planned.get(*r).is_some_and(|a| a.is_replace())) {
                attributes.push(AttrChange {
                    name: name.clone(),
                    before: Some(before),
                    after: Some(want.clone()),
                    forces_replacement: forces,
                    note: Some(format!("{replaced} is replaced")),
                });
            }
        }
        let forcing: Vec<&str> =
            attributes.iter().filter(|a| a.forces_replacement).map(|a| a.name.as_str()).collect();
        let (action, reason) = if !forcing.is_empty() {
            let why = attributes.iter().find_map(|a| a.note.clone().filter(|_| a.forces_replacement));
            let mut reason = format!("{} forces replacement", forcing.join(", "));
            if let Some(why) = why {
                reason.push_str(&format!(" ({why})"));
            }
            (Action::Replace(k.replace_order()), Some(reason))
        } else if !attributes.is_empty() {
            (Action::Update, None)
        } else {
            (Action::NoOp, None)
        };
        planned.insert(d.address.clone(), action);
        let mut live_refs = Vec::new();
        have.values().for_each(|v| references(v, &mut live_refs));
        changes.push(Change {
            address: d.address.clone(),
            action,
            region: d.region.clone(),
            id: Some(l.id.clone()),
            reason,
            attributes,
            desired: Some(d.clone()),
            live: Some(l),
            live_refs,
        });
    }

    // What is left is owned by the stack but no longer asked for.
    let stale = by_address.into_values().map(|l| (l, "owned by the stack but no longer in the spec".to_string()));
    let dupes = extras.into_iter().map(|l| {
        let why = format!("a second resource claims {}; only one is kept", l.address);
        (l, why)
    });
    for (l, reason) in stale.chain(dupes) {
        let have = normal(&l);
        let mut live_refs = Vec::new();
        have.values().for_each(|v| references(v, &mut live_refs));
        let attributes = have
            .into_iter()
            .map(|(name, v)| AttrChange { name, before: Some(v), after: None, forces_replacement: false, note: None })
            .collect();
        changes.push(Change {
            address: l.address.clone(),
            action: Action::Delete,
            region: l.region.clone(),
            id: Some(l.id.clone()),
            reason: Some(reason),
            attributes,
            desired: None,
            live: Some(l),
            live_refs,
        });
    }

    let summary = Plan::summarize(&changes);
    Ok(Plan { stack: stack.to_string(), region: region.to_string(), changes, summary })
}

/// Desired resources in dependency order (references first).
fn desired_order(desired: &[Desired]) -> Result<Vec<usize>, PlanError> {
    let index: HashMap<&Address, usize> = desired.iter().enumerate().map(|(i, d)| (&d.address, i)).collect();
    let mut graph = Graph::new(desired.len());
    for (i, d) in desired.iter().enumerate() {
        let mut refs = Vec::new();
        d.attrs.values().for_each(|v| references(v, &mut refs));
        for r in refs {
            let Some(&j) = index.get(&r) else {
                return Err(PlanError::DanglingReference { from: d.address.clone(), to: r });
            };
            if j != i {
                graph.edge(j, i);
            }
        }
    }
    graph
        .order()
        .map_err(|c| PlanError::Cycle(c.0.iter().map(|&i| desired[i].address.to_string()).collect()))
}

/// Live ids the stack owns become references to their addresses; foreign ids stay as they are.
fn to_refs(v: &Value, ids: &HashMap<String, Address>) -> Value {
    rewrite(v, &mut |x| as_cloud_id(x).and_then(|id| ids.get(id)).map(resources::reference))
}

/// Lists are sets: sort every array (recursively) so order never counts as a difference.
pub fn canonical(v: &Value) -> Value {
    match v {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(canonical).collect();
            items.sort_by_cached_key(sort_key);
            Value::Array(items)
        }
        Value::Object(map) => Value::Object(map.iter().map(|(k, i)| (k.clone(), canonical(i))).collect()),
        other => other.clone(),
    }
}

/// A text key that ignores object key order (two equal objects always sort together).
fn sort_key(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut entries: Vec<(&String, String)> = map.iter().map(|(k, v)| (k, sort_key(v))).collect();
            entries.sort();
            let inner: Vec<String> = entries.into_iter().map(|(k, v)| format!("{k:?}:{v}")).collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(items) => format!("[{}]", items.iter().map(sort_key).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}
