//! Desired vs live -> changes. Pure: no AWS calls, so every rule here is unit-tested on plain values.
//!
//! Normalisation happens here, once, for every kind:
//! - live ids the stack owns become references (`{"id": "vpc-0abc"}` -> `{"ref": "vpc.main"}`), so both sides
//!   speak in addresses;
//! - lists are sets: both sides are sorted before comparing, so AWS's rule ordering never shows as a change.
//!
//! Kinds normalise what only they know (dropping AWS's default entries, spelling protocols one way).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde_json::Value;

use super::{Action, AttrChange, Change, Plan};
use crate::graph::Graph;
use serde_json::json;

use crate::resources::schema_rules as rules;
use crate::resources::{
    self, Address, Attr, Attrs, Desired, Key, Kinds, Live, Ref, as_cloud_id, as_ref, find, reference_in, rewrite,
};

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("dependency cycle between {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    #[error("{from} refers to {to}, which the stack does not define")]
    DanglingReference { from: Address, to: Address },
    #[error("no resource kind named {0:?}")]
    UnknownKind(String),
    #[error("{address}: found nothing for {what}")]
    LookupFailed { address: Address, what: String },
    /// `--target` / `--replace` named something that is neither in the spec nor live (`close`: likely meant).
    #[error("{flag} {address}: {}", super::select::unknown_text(.address, .close))]
    UnknownAddress { flag: &'static str, address: String, close: Vec<String> },
    /// `--replace` named a resource that cannot be replaced (a lookup: the stack does not own it).
    #[error("{flag} {address}: {why}")]
    NotSelectable { flag: &'static str, address: String, why: String },
}

/// Compares what the spec asks for with what exists, over the registry's kinds.
pub fn diff(stack: &str, home: &str, desired: Vec<Desired>, live: Vec<Live>) -> Result<Plan, PlanError> {
    diff_with(resources::REGISTRY, stack, home, desired, live)
}

/// Compares what the spec asks for with what exists, over `kinds`. A resource is identified by its region and
/// address (the same address may live in two regions); `home` is the stack's own region.
pub fn diff_with(
    kinds: Kinds,
    stack: &str,
    home: &str,
    desired: Vec<Desired>,
    live: Vec<Live>,
) -> Result<Plan, PlanError> {
    diff_replacing(kinds, stack, home, desired, live, &HashSet::new())
}

/// The reason of a replacement asked for on the command line.
pub const REPLACE_REQUESTED: &str = "replacement requested with --replace";

/// The same, and every existing resource at an address in `forced` is replaced although nothing forces it
/// (`--replace`), in its kind's order; what refers to it follows as with any replacement.
pub fn diff_replacing(
    kinds: Kinds,
    stack: &str,
    home: &str,
    desired: Vec<Desired>,
    live: Vec<Live>,
    forced: &HashSet<Address>,
) -> Result<Plan, PlanError> {
    let kind_of = |a: &Address| find(kinds, a.kind()).ok_or_else(|| PlanError::UnknownKind(a.kind().to_string()));
    for d in &desired {
        kind_of(&d.address)?;
    }
    let order = desired_order(kinds, home, &desired)?;
    let refs = Refs { kinds, home };

    // One live resource per (region, address). Several claim one after an interrupted create-first replacement
    // (the new one is up, the old one not deleted yet) or when someone copied tags: the claimant closest to the
    // spec is kept (the new one, in the first case), the others are deleted. Claimants are compared in
    // dependency order, so whatever they reference is settled first (a rule set follows the group kept).
    let owns_id = |a: &Address| find(kinds, a.kind()).is_some_and(|k| k.owns_id());
    let mut claims: BTreeMap<Key, Vec<Live>> = BTreeMap::new();
    for l in live {
        claims.entry(l.key()).or_default().push(l);
    }
    let mut ids: HashMap<String, Key> = claims
        .values()
        .filter(|c| c.len() == 1)
        .flatten()
        .filter(|l| owns_id(&l.address))
        .map(|l| (l.id.clone(), l.key()))
        .collect();
    let mut by_key: BTreeMap<Key, Live> = BTreeMap::new();
    // Each extra claimant with the id of the one kept instead.
    let mut extras: Vec<(Live, String)> = Vec::new();
    let mut settle: Vec<(Vec<Live>, Option<&Desired>)> =
        order.iter().filter_map(|&i| claims.remove(&desired[i].key()).map(|c| (c, Some(&desired[i])))).collect();
    // No longer in the spec, so nothing to compare with: the first one read stands for the address.
    settle.extend(claims.into_values().map(|c| (c, None)));
    for (mut claimants, d) in settle {
        let best = match d {
            Some(d) if claimants.len() > 1 => {
                let schema = kind_of(&d.address)?.schema();
                (0..claimants.len()).min_by_key(|&j| distance(&refs, schema, d, &claimants[j], &ids)).unwrap_or(0)
            }
            _ => 0,
        };
        let kept = claimants.remove(best);
        if !claimants.is_empty() && owns_id(&kept.address) {
            ids.insert(kept.id.clone(), kept.key());
        }
        extras.extend(claimants.into_iter().map(|l| (l, kept.id.clone())));
        by_key.insert(kept.key(), kept);
    }
    let ids = ids;
    let normal = |l: &Live, schema: &[Attr]| -> Attrs {
        l.attrs
            .iter()
            .map(|(k, v)| (k.clone(), canonical_attr(&refs.live_to_refs(v, &l.region, &ids), rules(schema, k))))
            .collect()
    };

    let mut changes: Vec<Change> = Vec::new();
    let mut planned: HashMap<Key, Action> = HashMap::new();
    // The outputs of every resource that exists and keeps its identity, for output references to compare with.
    let known: HashMap<Key, Attrs> = by_key.iter().map(|(k, l)| (k.clone(), l.outputs.clone())).collect();
    for i in order {
        let d = &desired[i];
        let k = kind_of(&d.address)?;
        let schema = k.schema();
        let key = d.key();
        // Desired values in the terms live ones are compared in: references in their shortest form, outputs
        // filled in where they are known.
        let want: Attrs = d
            .attrs
            .iter()
            .map(|(name, v)| {
                let v = refs.resolve_outputs(&refs.shortest(v, &d.region), &d.region, &planned, &known);
                let v = if rules(schema, name).write_only { Value::String(secret_digest(stack, d, v)) } else { v };
                (name.clone(), v)
            })
            .collect();
        if k.is_lookup() {
            let Some(l) = by_key.remove(&key) else {
                let what = d.attrs.iter().map(|(n, v)| format!("{n} = {v}")).collect::<Vec<_>>().join(", ");
                return Err(PlanError::LookupFailed { address: d.address.clone(), what });
            };
            planned.insert(key, Action::NoOp);
            changes.push(Change {
                address: d.address.clone(),
                action: Action::NoOp,
                region: d.region.clone(),
                id: Some(l.id.clone()),
                reason: None,
                attributes: Vec::new(),
                depends_on: Vec::new(),
                lookup: true,
                blocked_by: Vec::new(),
                problems: Vec::new(),
                data_loss: None,
                pending: None,
                desired: Some(d.clone()),
                want: None,
                live: Some(l),
                live_refs: Vec::new(),
            });
            continue;
        }
        // The spec's values as this plan compares them, for the record of what an apply made of them (`drift`).
        let compared: Attrs =
            want.iter().map(|(name, v)| (name.clone(), canonical_attr(v, rules(schema, name)))).collect();
        let Some(l) = by_key.remove(&key) else {
            let attributes = want
                .iter()
                .map(|(name, v)| AttrChange::new(name, None, Some(v.clone()), false, None))
                .map(|a| a.masked(stack, d, schema))
                .collect();
            planned.insert(key, Action::Create);
            changes.push(Change {
                address: d.address.clone(),
                action: Action::Create,
                region: d.region.clone(),
                id: None,
                reason: None,
                attributes,
                depends_on: d.depends_on.clone(),
                lookup: false,
                blocked_by: Vec::new(),
                problems: Vec::new(),
                data_loss: None,
                pending: None,
                desired: Some(d.clone()),
                want: Some(compared),
                live: None,
                live_refs: Vec::new(),
            });
            continue;
        };
        let have = normal(&l, schema);
        let mut attributes = Vec::new();
        for (name, want) in &want {
            let rule = rules(schema, name);
            let want_c = canonical_attr(want, rule);
            let before = have.get(name).cloned().unwrap_or(Value::Null);
            // Immutable once set; an attribute that was never set (a create interrupted before it attached the
            // gateway) is set in place.
            let forces = rule.forces_replacement && !before.is_null();
            if before != want_c {
                attributes.push(AttrChange::new(name, Some(before), Some(want.clone()), forces, None));
                continue;
            }
            // Equal by address, but a referenced resource is being replaced: its id, and so this value, changes.
            let mut targets = Vec::new();
            refs.targets(want, &d.region, &mut targets);
            let mut replaced: Vec<&Address> =
                targets.iter().filter(|t| planned.get(*t).is_some_and(|a| a.is_replace())).map(|(_, a)| a).collect();
            replaced.sort();
            replaced.dedup();
            // Name every replaced resource: a route table whose two subnets are both replaced says so.
            let names: Vec<&str> = replaced.iter().map(|r| r.as_str()).collect();
            if let Some((last, rest)) = names.split_last() {
                let note = if rest.is_empty() {
                    format!("{last} is replaced")
                } else {
                    format!("{} and {last} are replaced", rest.join(", "))
                };
                attributes.push(AttrChange::new(name, Some(before), Some(want.clone()), forces, Some(note)));
            }
        }
        let forcing: Vec<&str> = attributes.iter().filter(|a| a.forces_replacement).map(|a| a.name.as_str()).collect();
        let (action, reason) = if !forcing.is_empty() {
            let why = attributes.iter().find_map(|a| a.note.clone().filter(|_| a.forces_replacement));
            let verb = if forcing.len() == 1 { "forces" } else { "force" };
            let mut reason = format!("{} {verb} replacement", forcing.join(", "));
            if let Some(why) = why {
                reason.push_str(&format!(" ({why})"));
            }
            // Create-first needs the old resource to outlive the new one. If what forces the replacement is
            // itself replaced delete-first (a new VPC), the old one cannot outlive it: go delete-first as well.
            let mut forcing_refs = Vec::new();
            attributes.iter().filter(|a| a.forces_replacement).filter_map(|a| a.after.as_ref()).for_each(|v| {
                refs.targets(v, &d.region, &mut forcing_refs);
            });
            let deleted_first = forcing_refs
                .iter()
                .any(|r| planned.get(r) == Some(&Action::Replace(resources::ReplaceOrder::DeleteFirst)));
            let order = if deleted_first { resources::ReplaceOrder::DeleteFirst } else { k.replace_order() };
            (Action::Replace(order), Some(reason))
        } else if forced.contains(&d.address) {
            (Action::Replace(k.replace_order()), Some(REPLACE_REQUESTED.to_string()))
        } else if !attributes.is_empty() {
            (Action::Update, None)
        } else {
            (Action::NoOp, None)
        };
        planned.insert(key, action);
        let mut live_refs = Vec::new();
        have.values().for_each(|v| refs.targets(v, &l.region, &mut live_refs));
        let attributes = attributes.into_iter().map(|a| a.masked(stack, d, schema)).collect();
        changes.push(Change {
            address: d.address.clone(),
            action,
            region: d.region.clone(),
            id: Some(l.id.clone()),
            reason,
            attributes,
            depends_on: d.depends_on.clone(),
            lookup: false,
            blocked_by: Vec::new(),
            problems: Vec::new(),
            data_loss: None,
            // A resource being replaced is not waited for: its successor is.
            pending: l.pending.clone().filter(|_| !action.is_replace()),
            desired: Some(d.clone()),
            want: Some(compared),
            live: Some(l),
            live_refs,
        });
    }

    // What is left is owned by the stack but no longer asked for (lookups are not owned: never deleted).
    let is_lookup = |l: &Live| find(kinds, l.address.kind()).is_some_and(|k| k.is_lookup());
    let stale = by_key.into_values().filter(|l| !is_lookup(l)).map(|l| {
        let reason = if l.address.name().starts_with(resources::STRAY) {
            format!("carries the stack tag but no valid {} tag (made by hand?)", resources::TAG_ADDRESS)
        } else {
            "owned by the stack but no longer in the spec".to_string()
        };
        (l, reason)
    });
    let dupes = extras.into_iter().filter(|(l, _)| !is_lookup(l)).map(|(l, kept)| {
        let why = format!("a second resource claims {}; only one is kept: {kept}", l.address);
        (l, why)
    });
    for (l, reason) in stale.chain(dupes) {
        let schema = find(kinds, l.address.kind()).map_or(&[][..], |k| k.schema());
        let have = normal(&l, schema);
        let mut live_refs = Vec::new();
        have.values().for_each(|v| refs.targets(v, &l.region, &mut live_refs));
        let gone = Desired::new(&l.region, l.address.clone(), &json!({}));
        let attributes = have
            .into_iter()
            .map(|(name, v)| AttrChange::new(&name, Some(v), None, false, None).masked(stack, &gone, schema))
            .collect();
        changes.push(Change {
            address: l.address.clone(),
            action: Action::Delete,
            region: l.region.clone(),
            id: Some(l.id.clone()),
            reason: Some(reason),
            attributes,
            depends_on: Vec::new(),
            lookup: false,
            blocked_by: Vec::new(),
            problems: Vec::new(),
            data_loss: None,
            pending: None,
            desired: None,
            want: None,
            live: Some(l),
            live_refs,
        });
    }

    let summary = Plan::summarize(&changes);
    Ok(Plan {
        format_version: super::FORMAT_VERSION,
        stack: stack.to_string(),
        region: home.to_string(),
        account: None,
        warnings: Vec::new(),
        changes,
        summary,
    })
}

/// The digest a write-only or sensitive value is shown and compared as: salted with stack and address, so equal
/// secrets of two resources do not look alike and a guessable one cannot be looked up.
pub fn secret_digest(stack: &str, d: &Desired, v: Value) -> String {
    resources::digest(&json!([stack, d.address.as_str(), v]))
}

impl AttrChange {
    fn new(name: &str, before: Option<Value>, after: Option<Value>, forces: bool, note: Option<String>) -> AttrChange {
        let known_after_apply = after.as_ref().is_some_and(contains_unknown);
        AttrChange {
            name: name.to_string(),
            before,
            after,
            forces_replacement: forces,
            note,
            known_after_apply,
            changed_outside: false,
        }
    }

    /// Secrets leave the plan as digests: the values never reach output, JSON or a saved plan.
    fn masked(mut self, stack: &str, d: &Desired, schema: &[Attr]) -> AttrChange {
        let rule = rules(schema, &self.name);
        if rule.sensitive {
            let mask = |v: Value| {
                // A write-only value is already a digest (desired side) or the one kept on the resource (live).
                let digest = match v {
                    Value::String(s) if rule.write_only => s,
                    Value::Null => return Value::Null,
                    other => secret_digest(stack, d, other),
                };
                json!({ "sensitive": digest })
            };
            self.before = self.before.map(mask);
            self.after = self.after.map(mask);
        }
        self
    }
}

fn contains_unknown(v: &Value) -> bool {
    match v {
        _ if resources::is_unknown(v) => true,
        Value::Array(items) => items.iter().any(contains_unknown),
        Value::Object(map) => map.values().any(contains_unknown),
        _ => false,
    }
}

/// How references are read and written, for one set of kinds and home region.
struct Refs<'a> {
    kinds: Kinds<'a>,
    home: &'a str,
}

impl Refs<'_> {
    /// The (region, address) a reference written in a resource of `region` points at.
    fn target(&self, region: &str, r: &Ref) -> Key {
        resources::target(self.kinds, region, self.home, r)
    }

    /// Every (region, address) referenced inside `v`.
    fn targets(&self, v: &Value, region: &str, out: &mut Vec<Key>) {
        resources::targets(self.kinds, region, self.home, v, out)
    }

    /// A reference's region is written only where it is not the one the reference would resolve to anyway, so
    /// desired and live forms of the same reference compare equal.
    fn shortest(&self, v: &Value, region: &str) -> Value {
        rewrite(v, &mut |x| {
            let r = as_ref(x)?;
            let explicit = r.region.as_ref()?;
            let implicit = self.target(region, &Ref { region: None, ..r.clone() });
            (&implicit.0 == explicit).then(|| {
                let mut obj = x.as_object().cloned().unwrap_or_default();
                obj.remove("region");
                Value::Object(obj)
            })
        })
    }

    /// Live ids the stack owns become references to their addresses; foreign ids stay as they are.
    fn live_to_refs(&self, v: &Value, region: &str, ids: &HashMap<String, Key>) -> Value {
        rewrite(v, &mut |x| {
            let (r, address) = ids.get(as_cloud_id(x)?)?;
            let implicit = self.target(region, &Ref { address: address.clone(), region: None, output: None });
            Some(if &implicit.0 == r { resources::reference(address) } else { reference_in(address, r) })
        })
    }

    /// Output references become the output's value where the resource exists and keeps its identity, and
    /// `{"unknown": ...}` where it is still to be created (or replaced): known after apply.
    fn resolve_outputs(
        &self,
        v: &Value,
        region: &str,
        planned: &HashMap<Key, Action>,
        known: &HashMap<Key, Attrs>,
    ) -> Value {
        rewrite(v, &mut |x| {
            let r = as_ref(x)?;
            let output = r.output.as_ref()?;
            let key = self.target(region, &r);
            let exists = planned.get(&key).is_some_and(|a| matches!(a, Action::NoOp | Action::Update));
            let value = known.get(&key).and_then(|o| o.get(output)).filter(|_| exists);
            Some(value.cloned().unwrap_or_else(|| resources::unknown(&r)))
        })
    }
}

/// How far a live claimant of an address is from what the spec asks for there: the differing attributes that
/// force a replacement, then all differing attributes.
fn distance(refs: &Refs, schema: &[Attr], d: &Desired, l: &Live, ids: &HashMap<String, Key>) -> (usize, usize) {
    let mut out = (0, 0);
    for (name, want) in &d.attrs {
        let rule = rules(schema, name);
        let have =
            l.attrs.get(name).map_or(Value::Null, |v| canonical_attr(&refs.live_to_refs(v, &l.region, ids), rule));
        if have != canonical_attr(&refs.shortest(want, &d.region), rule) {
            out.0 += usize::from(rule.forces_replacement);
            out.1 += 1;
        }
    }
    out
}

/// Desired resources in dependency order (references and `depends_on` first).
fn desired_order(kinds: Kinds, home: &str, desired: &[Desired]) -> Result<Vec<usize>, PlanError> {
    let refs = Refs { kinds, home };
    let index: HashMap<Key, usize> = desired.iter().enumerate().map(|(i, d)| (d.key(), i)).collect();
    let mut graph = Graph::new(desired.len());
    for (i, d) in desired.iter().enumerate() {
        let mut targets = Vec::new();
        d.attrs.values().for_each(|v| refs.targets(v, &d.region, &mut targets));
        targets.extend(d.depends_on.iter().map(|a| (d.region.clone(), a.clone())));
        for t in targets {
            let Some(&j) = index.get(&t) else {
                return Err(PlanError::DanglingReference { from: d.address.clone(), to: t.1 });
            };
            if j != i {
                graph.edge(j, i);
            }
        }
    }
    graph.order().map_err(|c| PlanError::Cycle(c.0.iter().map(|&i| desired[i].address.to_string()).collect()))
}

/// One attribute's value in comparable form: lists are sets unless the schema says the order matters.
fn canonical_attr(v: &Value, rule: Attr) -> Value {
    match v {
        Value::Array(items) if rule.ordered => Value::Array(items.iter().map(canonical).collect()),
        other => canonical(other),
    }
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
        // Zero-padded, so ports and rule numbers sort as numbers (80 before 443) where a plan lists them.
        Value::Number(n) if n.is_u64() => format!("{:020}", n.as_u64().unwrap_or_default()),
        other => other.to_string(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! The diff on real desired resources (the reference template) against hand-made live state. `mirror` builds
    //! the live state AWS would report for a stack that exactly matches the spec, written the way live reads
    //! write it (ids instead of references, lists and object keys in another order); each test then bends one
    //! thing out of shape.

    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::plan::{Change, Summary};
    use crate::resources::{Attrs, ReplaceOrder, cloud_id};
    use crate::spec::RegionChoice;

    /// The desired resources of `templates/webscale.toml`.
    pub(crate) fn reference_desired() -> Vec<Desired> {
        let file = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/templates/webscale.toml"));
        let text = std::fs::read_to_string(file).expect("reference template");
        let stack = crate::spec::parse(Path::new("templates/webscale.toml"), &text, &RegionChoice::default())
            .expect("the reference template parses");
        resources::desired(&stack)
    }

    /// A fixed, readable fake cloud id per address (the rule set of a group carries the group's id).
    pub(crate) fn fake_id(desired: &[Desired], address: &Address) -> String {
        if address.kind() == "security_group_rules" {
            return fake_id(desired, &Address::new("security_group", address.name()));
        }
        // EC2's prefixes where a test reads better with them; any other kind gets its name.
        let prefix = match address.kind() {
            "internet_gateway" => "igw",
            "route_table" => "rtb",
            "security_group" => "sg",
            "network_acl" => "acl",
            other => other,
        };
        let i = desired.iter().position(|d| &d.address == address).expect("a desired address");
        format!("{prefix}-0a1b2c{i:02}")
    }

    /// Reverses every list and every object's key order: what a live read may well return.
    fn scramble(v: &Value) -> Value {
        match v {
            Value::Array(items) => Value::Array(items.iter().rev().map(scramble).collect()),
            Value::Object(map) => Value::Object(map.iter().rev().map(|(k, v)| (k.clone(), scramble(v))).collect()),
            other => other.clone(),
        }
    }

    /// What live reads would return for a stack that matches `desired` exactly, every list and key order
    /// turned around.
    pub(crate) fn mirror(desired: &[Desired]) -> Vec<Live> {
        mirror_with(desired, true)
    }

    /// The same, keys and lists in the spec's order (what reads mostly return: drawn plans look like real ones).
    pub(crate) fn mirror_in_order(desired: &[Desired]) -> Vec<Live> {
        mirror_with(desired, false)
    }

    fn mirror_with(desired: &[Desired], scrambled: bool) -> Vec<Live> {
        // An output reference reads as a fake value of that output (`ami.web`'s `image_id`), which the referenced
        // resource reports among its outputs.
        let fake_output = |r: &Ref| format!("{}-{}", fake_id(desired, &r.address), r.output.as_deref().unwrap_or(""));
        let mut outputs: HashMap<Address, Attrs> = HashMap::new();
        for v in desired.iter().flat_map(|d| d.attrs.values()) {
            rewrite(v, &mut |x| {
                let r = as_ref(x).filter(|r| r.output.is_some())?;
                let value = Value::String(fake_output(&r));
                outputs.entry(r.address.clone()).or_default().insert(r.output.clone().unwrap_or_default(), value);
                Some(x.clone())
            });
        }
        desired
            .iter()
            .map(|d| {
                let schema = resources::kind(d.address.kind()).map_or(&[][..], |k| k.schema());
                let attrs = d
                    .attrs
                    .iter()
                    .map(|(k, v)| {
                        let ids = rewrite(v, &mut |x| {
                            let r = as_ref(x)?;
                            Some(match r.output {
                                Some(_) => Value::String(fake_output(&r)),
                                None => cloud_id(fake_id(desired, &r.address)),
                            })
                        });
                        // A write-only value reads back as the digest the kind keeps on the resource.
                        let ids = if rules(schema, k).write_only {
                            Value::String(secret_digest("webscale", d, ids))
                        } else {
                            ids
                        };
                        (k.clone(), if scrambled { scramble(&ids) } else { ids })
                    })
                    .collect::<Attrs>();
                let attrs = if scrambled { attrs.into_iter().rev().collect() } else { attrs };
                let mut live = Live::new(d.address.clone(), &d.region, fake_id(desired, &d.address), attrs);
                live.outputs = outputs.get(&d.address).cloned().unwrap_or_default();
                live
            })
            .collect()
    }

    pub(crate) fn live_attrs<'a>(live: &'a mut [Live], address: &str) -> &'a mut Attrs {
        let found = live.iter_mut().find(|l| l.address.as_str() == address);
        &mut found.unwrap_or_else(|| panic!("no live {address}")).attrs
    }

    pub(crate) fn change<'a>(plan: &'a Plan, address: &str) -> &'a Change {
        plan.changes.iter().find(|c| c.address.as_str() == address).unwrap_or_else(|| panic!("no change for {address}"))
    }

    fn attr<'a>(c: &'a Change, name: &str) -> &'a AttrChange {
        c.attributes.iter().find(|a| a.name == name).unwrap_or_else(|| panic!("{}: no change of {name}", c.address))
    }

    fn plan(desired: Vec<Desired>, live: Vec<Live>) -> Plan {
        diff("webscale", "us-east-1", desired, live).expect("a plan")
    }

    /// A lookup (`ami.web`): found at plan time, never the stack's, so never counted in a plan's summary.
    fn is_lookup(a: &Address) -> bool {
        resources::kind(a.kind()).is_some_and(|k| k.is_lookup())
    }

    /// The live state of a stack not built yet: only what it looks up (the AMI) exists.
    pub(crate) fn fresh(desired: &[Desired]) -> Vec<Live> {
        mirror(desired).into_iter().filter(|l| is_lookup(&l.address)).collect()
    }

    /// How many of `desired` the stack owns (lookups left out).
    fn owned(desired: &[Desired]) -> usize {
        desired.iter().filter(|d| !is_lookup(&d.address)).count()
    }

    /// The plan's changes of resources the stack owns.
    fn owned_changes(p: &Plan) -> usize {
        p.changes.iter().filter(|c| !c.lookup).count()
    }

    fn actions(plan: &Plan) -> Vec<(String, Action)> {
        plan.changes.iter().filter(|c| c.action != Action::NoOp).map(|c| (c.address.to_string(), c.action)).collect()
    }

    fn addr(s: &str) -> Address {
        Address::parse(s).unwrap()
    }

    fn key(s: &str) -> Key {
        ("us-east-1".to_string(), addr(s))
    }

    #[test]
    fn no_live_state_creates_everything_in_dependency_order() {
        let desired = reference_desired();
        let n = owned(&desired);
        // Nothing of the stack exists; what it looks up (the AMI) does.
        let p = plan(desired.clone(), fresh(&desired));

        assert_eq!(owned_changes(&p), n);
        assert!(
            p.changes
                .iter()
                .filter(|c| !c.lookup)
                .all(|c| c.action == Action::Create && c.id.is_none() && c.reason.is_none())
        );
        assert!(p.has_changes());
        assert_eq!(p.summary, Summary { add: n, ..Summary::default() });

        // Every reference points at something earlier in the plan.
        let pos = |a: &str| p.changes.iter().position(|c| c.address.as_str() == a).unwrap_or_else(|| panic!("{a}"));
        for (i, c) in p.changes.iter().enumerate() {
            let mut refs = Vec::new();
            c.desired.as_ref().unwrap().attrs.values().for_each(|v| resources::references(v, &mut refs));
            for r in refs {
                assert!(pos(r.as_str()) < i, "{} is planned before {r}, which it references", c.address);
            }
        }
        // The orders a reader expects, spelled out.
        assert_eq!(pos("vpc.main"), 0);
        for subnet in ["subnet.public_a", "subnet.private_a", "subnet.public_b", "subnet.private_b"] {
            assert!(pos("vpc.main") < pos(subnet));
            assert!(pos(subnet) < pos("route_table.public") && pos(subnet) < pos("route_table.private"));
            assert!(pos(subnet) < pos("network_acl.public") && pos(subnet) < pos("network_acl.private"));
        }
        assert!(pos("internet_gateway.main") < pos("route_table.public"));
        for group in ["lb", "web", "db"] {
            for rules in ["lb", "web", "db"] {
                assert!(pos(&format!("security_group.{group}")) < pos(&format!("security_group_rules.{rules}")));
            }
        }

        // A create shows every desired attribute as it will be, nothing before.
        let vpc = change(&p, "vpc.main");
        assert_eq!(vpc.changed(), vec!["cidr_block", "dns_hostnames", "tags"]);
        assert!(vpc.attributes.iter().all(|a| a.before.is_none() && a.after.is_some() && !a.forces_replacement));
        assert_eq!(attr(vpc, "cidr_block").after, Some(json!("10.0.0.0/16")));
    }

    #[test]
    fn mirror_really_scrambles_order() {
        // The premise of the no-op test: the live side differs in order and form, not in content.
        let desired = reference_desired();
        let live = mirror(&desired);
        let rules = live.iter().find(|l| l.address.as_str() == "security_group_rules.lb").unwrap();
        let d = desired.iter().find(|d| d.address.as_str() == "security_group_rules.lb").unwrap();
        assert_ne!(rules.attrs["ingress"], d.attrs["ingress"]);
        assert_eq!(rules.attrs["ingress"][0]["from_port"], json!(443));
        let keys: Vec<&String> = rules.attrs["ingress"][0].as_object().unwrap().keys().collect();
        assert_eq!(keys.first().map(|k| k.as_str()), Some("cidr"), "object keys reversed");
        let web = fake_id(&desired, &addr("security_group.web"));
        assert_eq!(rules.attrs["egress"][0]["security_group"], json!({ "id": web }));
        let subnet = live.iter().find(|l| l.address.as_str() == "subnet.public_a").unwrap();
        assert_eq!(subnet.attrs["vpc"], json!({"id": "vpc-0a1b2c00"}));
    }

    #[test]
    fn live_matching_the_spec_is_all_noop() {
        let desired = reference_desired();
        let n = owned(&desired);
        let p = plan(desired.clone(), mirror(&desired));
        assert_eq!(actions(&p), vec![], "nothing to do");
        assert!(!p.has_changes());
        assert_eq!(p.summary, Summary { unchanged: n, ..Summary::default() });
        assert!(p.changes.iter().all(|c| c.attributes.is_empty() && c.reason.is_none()));
        // No-ops still carry the live id and what the live resource references (apply orders deletes by them).
        let rules = change(&p, "security_group_rules.lb");
        assert_eq!(rules.id, Some(fake_id(&desired, &addr("security_group.lb"))), "the group's id");
        let mut refs: Vec<&str> = rules.live_refs.iter().map(|(_, a)| a.as_str()).collect();
        refs.sort();
        assert_eq!(refs, vec!["security_group.lb", "security_group.web"]);
    }

    #[test]
    fn subnet_cidr_change_replaces_it_and_repoints_its_dependents() {
        let desired = reference_desired();
        let mut live = mirror(&desired);
        live_attrs(&mut live, "subnet.public_a").insert("cidr_block".into(), json!("10.0.99.0/24"));
        let p = plan(desired, live);

        let subnet = change(&p, "subnet.public_a");
        assert_eq!(subnet.action, Action::Replace(ReplaceOrder::DeleteFirst));
        assert_eq!(subnet.action.symbol(), "-/+");
        assert_eq!(subnet.reason.as_deref(), Some("cidr_block forces replacement"));
        let cidr = attr(subnet, "cidr_block");
        assert_eq!(cidr.before, Some(json!("10.0.99.0/24")));
        assert_eq!(cidr.after, Some(json!("10.0.0.0/24")));
        assert!(cidr.forces_replacement);
        assert_eq!(subnet.changed(), vec!["cidr_block"], "only the CIDR differs");

        // Whatever is associated with that subnet must be re-associated with the new one: updated in place.
        for dependent in ["route_table.public", "network_acl.public"] {
            let c = change(&p, dependent);
            assert_eq!(c.action, Action::Update, "{dependent}");
            assert_eq!(c.changed(), vec!["subnets"], "{dependent}");
            let subnets = attr(c, "subnets");
            assert_eq!(subnets.note.as_deref(), Some("subnet.public_a is replaced"));
            assert!(!subnets.forces_replacement);
            assert_eq!(c.reason, None);
        }
        assert_eq!(
            actions(&p),
            vec![
                ("subnet.public_a".to_string(), Action::Replace(ReplaceOrder::DeleteFirst)),
                // The NAT gateway sits in that subnet, and the private tier routes through it.
                ("nat_gateway.a".to_string(), Action::Replace(ReplaceOrder::DeleteFirst)),
                ("route_table.public".to_string(), Action::Update),
                ("network_acl.public".to_string(), Action::Update),
                // The load balancer is moved to the new subnet (SetSubnets).
                ("load_balancer.web".to_string(), Action::Update),
                ("route_table.private".to_string(), Action::Update),
            ],
            "the rest of the private tier and the other zone are untouched"
        );
        assert_eq!(
            p.summary,
            Summary { change: 4, replace: 2, unchanged: owned_changes(&p) - 6, ..Summary::default() }
        );
    }

    #[test]
    fn vpc_cidr_change_replaces_everything_inside_it() {
        let desired = reference_desired();
        let mut live = mirror(&desired);
        live_attrs(&mut live, "vpc.main").insert("cidr_block".into(), json!("10.1.0.0/16"));
        let p = plan(desired, live);

        let vpc = change(&p, "vpc.main");
        assert_eq!(vpc.action, Action::Replace(ReplaceOrder::DeleteFirst));
        assert_eq!(vpc.reason.as_deref(), Some("cidr_block forces replacement"));

        for c in &p.changes {
            let Some(d) = &c.desired else { panic!("{} has no desired side", c.address) };
            let k = resources::kind(c.address.kind()).unwrap();
            if d.attrs.contains_key("vpc") && rules(k.schema(), "vpc").forces_replacement {
                assert!(c.action.is_replace(), "{} sits in the VPC: {:?}", c.address, c.action);
                assert_eq!(c.reason.as_deref(), Some("vpc forces replacement (vpc.main is replaced)"), "{}", c.address);
                let v = attr(c, "vpc");
                assert!(v.forces_replacement && v.note.as_deref() == Some("vpc.main is replaced"));
                assert_eq!(v.before, v.after.clone().map(|a| canonical(&a)), "the same VPC by name");
            }
        }
        // The gateway goes with its VPC (AWS will not delete a VPC with a gateway attached).
        let igw = change(&p, "internet_gateway.main");
        assert_eq!(igw.action, Action::Replace(ReplaceOrder::DeleteFirst));
        assert_eq!(attr(igw, "vpc").note.as_deref(), Some("vpc.main is replaced"));
        // Groups are normally replaced create-first, but the old ones cannot outlive the old VPC: delete-first,
        // and their rule sets follow.
        assert_eq!(change(&p, "security_group.db").action, Action::Replace(ReplaceOrder::DeleteFirst));
        let rules = change(&p, "security_group_rules.web");
        assert_eq!(rules.action, Action::Replace(ReplaceOrder::DeleteFirst));
        assert_eq!(rules.reason.as_deref(), Some("group forces replacement (security_group.web is replaced)"));
        // The load balancer lives in the VPC: replaced, and its listener with it.
        assert_eq!(change(&p, "load_balancer.web").action, Action::Replace(ReplaceOrder::DeleteFirst));
        assert_eq!(change(&p, "listener.http").action, Action::Replace(ReplaceOrder::DeleteFirst));
        // Everything but what belongs to no VPC: the NAT gateway's Elastic IP, the hosted zone, the static assets,
        // the logging pipeline (and the AMI looked up, which is not the stack's); the alias records are repointed to
        // the new load balancer in place.
        assert_eq!(p.summary.add + p.summary.destroy, 0);
        let updated: Vec<&str> =
            p.changes.iter().filter(|c| c.action == Action::Update).map(|c| c.address.as_str()).collect();
        assert!(updated.iter().all(|a| a.starts_with("dns_record.")), "{updated:?}");
        let unchanged: Vec<&str> =
            p.changes.iter().filter(|c| c.action == Action::NoOp && !c.lookup).map(|c| c.address.as_str()).collect();
        let outside_the_vpc = ["elastic_ip.nat_a", "hosted_zone.main", "log_group.app"];
        assert!(
            unchanged.iter().all(|a| outside_the_vpc.contains(a) || a.ends_with(".assets") || a.ends_with(".events")),
            "{unchanged:?}"
        );
        assert_eq!(change(&p, "elastic_ip.nat_a").action, Action::NoOp);
        assert_eq!(p.summary.replace, owned_changes(&p) - unchanged.len() - updated.len());
        // And the plan can be carried out: its operations have an order.
        crate::apply::check(resources::REGISTRY, &p).expect("a VPC replacement must not be a dependency cycle");
    }

    #[test]
    fn security_group_description_change_replaces_create_first() {
        let desired = reference_desired();
        let mut live = mirror(&desired);
        live_attrs(&mut live, "security_group.web").insert("description".into(), json!("Web servers"));
        let p = plan(desired, live);

        let group = change(&p, "security_group.web");
        assert_eq!(group.action, Action::Replace(ReplaceOrder::CreateFirst));
        assert_eq!(group.action.symbol(), "+/-");
        assert_eq!(group.reason.as_deref(), Some("description forces replacement"));
        let d = attr(group, "description");
        assert_eq!(d.before, Some(json!("Web servers")));
        assert_eq!(d.after, Some(json!("Web servers: HTTP from the load balancer only")));

        // Its own rule set moves to the new group; the rule sets that name it get the new id.
        assert_eq!(change(&p, "security_group_rules.web").action, Action::Replace(ReplaceOrder::CreateFirst));
        let lb = change(&p, "security_group_rules.lb");
        assert_eq!(lb.action, Action::Update);
        assert_eq!(lb.changed(), vec!["egress"]);
        assert_eq!(attr(lb, "egress").note.as_deref(), Some("security_group.web is replaced"));
        let db = change(&p, "security_group_rules.db");
        assert_eq!(db.action, Action::Update);
        assert_eq!(db.changed(), vec!["ingress"]);
        // The web instances move to the new group in place.
        for instance in ["instance.web_1", "instance.web_2"] {
            let c = change(&p, instance);
            assert_eq!((c.action, c.changed()), (Action::Update, vec!["security_groups".to_string()]), "{instance}");
            assert_eq!(attr(c, "security_groups").note.as_deref(), Some("security_group.web is replaced"));
        }
        assert_eq!(
            p.summary,
            Summary { change: 4, replace: 2, unchanged: owned_changes(&p) - 6, ..Summary::default() }
        );
    }

    #[test]
    fn rule_added_out_of_band_is_an_update_showing_before_and_after() {
        let desired = reference_desired();
        let mut live = mirror(&desired);
        let ssh = json!({"to_port": 22, "cidr": "0.0.0.0/0", "protocol": "tcp", "from_port": 22});
        live_attrs(&mut live, "security_group_rules.web")["ingress"].as_array_mut().unwrap().push(ssh.clone());
        let p = plan(desired, live);

        assert_eq!(actions(&p), vec![("security_group_rules.web".to_string(), Action::Update)]);
        let rules = change(&p, "security_group_rules.web");
        assert_eq!(rules.changed(), vec!["ingress"]);
        let ingress = attr(rules, "ingress");
        let from_lb = json!({"protocol": "tcp", "from_port": 80, "to_port": 80,
                             "security_group": {"ref": "security_group.lb"}});
        let before = ingress.before.as_ref().unwrap().as_array().unwrap();
        assert_eq!(before.len(), 2);
        assert!(before.contains(&ssh) && before.contains(&from_lb), "before: {before:?}");
        assert_eq!(ingress.after, Some(json!([from_lb])));
        assert!(!ingress.forces_replacement && ingress.note.is_none());
        assert_eq!(p.summary.change, 1);
    }

    #[test]
    fn tag_removed_out_of_band_is_an_update_of_tags() {
        let desired = reference_desired();
        let mut live = mirror(&desired);
        live_attrs(&mut live, "subnet.private_b")["tags"].as_object_mut().unwrap().remove("environment");
        let p = plan(desired, live);

        assert_eq!(actions(&p), vec![("subnet.private_b".to_string(), Action::Update)]);
        let subnet = change(&p, "subnet.private_b");
        assert_eq!(subnet.changed(), vec!["tags"]);
        let tags = attr(subnet, "tags");
        assert_eq!(tags.before.as_ref().unwrap().get("environment"), None);
        assert_eq!(tags.after.as_ref().unwrap()["environment"], json!("demo"));
        assert!(!tags.forces_replacement);
    }

    #[test]
    fn owned_resource_gone_from_the_spec_is_deleted_with_a_reason() {
        let desired = reference_desired();
        let mut live = mirror(&desired);
        live.push(Live::new(
            addr("security_group.cache"),
            "us-east-1",
            "sg-0ca4e",
            json!({"vpc": {"id": "vpc-0a1b2c00"}, "description": "Cache",
                          "tags": {"webscale:stack": "webscale", "webscale:address": "security_group.cache"}})
            .as_object()
            .unwrap()
            .clone(),
        ));
        let p = plan(desired, live);

        assert_eq!(actions(&p), vec![("security_group.cache".to_string(), Action::Delete)]);
        let cache = change(&p, "security_group.cache");
        assert_eq!(cache.reason.as_deref(), Some("owned by the stack but no longer in the spec"));
        assert_eq!(cache.id.as_deref(), Some("sg-0ca4e"));
        assert!(cache.desired.is_none());
        assert!(cache.attributes.iter().all(|a| a.before.is_some() && a.after.is_none()));
        // Shown in the spec's terms, and remembered as depending on the VPC (deleted before it, if ever).
        assert_eq!(attr(cache, "vpc").before, Some(json!({"ref": "vpc.main"})));
        assert_eq!(cache.live_refs, vec![key("vpc.main")]);
        assert_eq!(p.summary.destroy, 1);
    }

    #[test]
    fn destroy_deletes_everything_the_stack_owns() {
        let desired = reference_desired();
        let live = mirror(&desired);
        let n = owned(&desired);
        let p = plan(vec![], live);
        assert_eq!(p.summary, Summary { destroy: n, ..Summary::default() });
        assert!(p.changes.iter().all(|c| c.action == Action::Delete && c.reason.is_some() && c.id.is_some()));
        let subnet = change(&p, "subnet.public_a");
        assert_eq!(subnet.live_refs, vec![key("vpc.main")]);
    }

    #[test]
    fn two_live_resources_claiming_one_address_keep_one() {
        let desired = reference_desired();
        let mut live = mirror(&desired);
        let mut copy = live.iter().find(|l| l.address.as_str() == "subnet.public_a").unwrap().clone();
        copy.id = "subnet-0d0b1e".into();
        live.push(copy);
        let p = plan(desired, live);

        let claims: Vec<&Change> = p.changes.iter().filter(|c| c.address.as_str() == "subnet.public_a").collect();
        assert_eq!(claims.len(), 2);
        assert_eq!((claims[0].action, claims[0].id.as_deref()), (Action::NoOp, Some("subnet-0a1b2c02")));
        assert_eq!((claims[1].action, claims[1].id.as_deref()), (Action::Delete, Some("subnet-0d0b1e")));
        assert_eq!(
            claims[1].reason.as_deref(),
            Some("a second resource claims subnet.public_a; only one is kept: subnet-0a1b2c02"),
            "equally good claimants: the first one read is kept"
        );
        assert_eq!(actions(&p), vec![("subnet.public_a".to_string(), Action::Delete)]);
        assert_eq!(p.summary.destroy, 1);
        assert_eq!(p.summary.unchanged, owned_changes(&p) - 1);
    }

    #[test]
    fn claimant_closest_to_the_spec_is_kept() {
        // A subnet copied by hand, tags and all, but in the wrong zone: the real one is kept whichever comes first.
        let desired = reference_desired();
        let mut live = mirror(&desired);
        let mut copy = live.iter().find(|l| l.address.as_str() == "subnet.public_a").unwrap().clone();
        copy.id = "subnet-0c0b1e".into();
        copy.attrs.insert("availability_zone".into(), json!("us-east-1c"));
        live.insert(0, copy);
        let p = plan(desired, live);

        assert_eq!(actions(&p), vec![("subnet.public_a".to_string(), Action::Delete)]);
        let deleted = p.changes.iter().find(|c| c.action == Action::Delete).unwrap();
        assert_eq!(deleted.id.as_deref(), Some("subnet-0c0b1e"));
    }

    #[test]
    fn interrupted_create_first_replacement_keeps_the_new_group() {
        // `security_group.web` was being replaced: the new group exists (right description, AWS's default egress
        // only), the old one still has its rules and the other groups' rules still point at it.
        let desired = reference_desired();
        let mut live = mirror(&desired);
        let old_id = fake_id(&desired, &addr("security_group.web"));
        live_attrs(&mut live, "security_group.web").insert("description".into(), json!("Web servers"));
        let mut group = live.iter().find(|l| l.address.as_str() == "security_group.web").unwrap().clone();
        group.id = "sg-0e3e3e".into();
        group.attrs.insert("description".into(), json!("Web servers: HTTP from the load balancer only"));
        let mut rules = live.iter().find(|l| l.address.as_str() == "security_group_rules.web").unwrap().clone();
        rules.id = "sg-0e3e3e".into();
        rules.attrs.insert("group".into(), json!({"id": "sg-0e3e3e"}));
        rules.attrs.insert("ingress".into(), json!([]));
        live.push(group);
        live.push(rules);
        let p = plan(desired, live);

        let web: Vec<(Action, Option<&str>)> = p
            .changes
            .iter()
            .filter(|c| c.address.as_str() == "security_group.web")
            .map(|c| (c.action, c.id.as_deref()))
            .collect();
        assert_eq!(web, vec![(Action::NoOp, Some("sg-0e3e3e")), (Action::Delete, Some(old_id.as_str()))]);
        let old = p.changes.iter().find(|c| c.action == Action::Delete && c.address.as_str() == "security_group.web");
        assert_eq!(
            old.unwrap().reason.as_deref(),
            Some("a second resource claims security_group.web; only one is kept: sg-0e3e3e")
        );
        // The rule set of the new group is finished; the old group's rules are revoked.
        let rule_sets: Vec<(Action, Option<&str>)> = p
            .changes
            .iter()
            .filter(|c| c.address.as_str() == "security_group_rules.web")
            .map(|c| (c.action, c.id.as_deref()))
            .collect();
        assert_eq!(rule_sets, vec![(Action::Update, Some("sg-0e3e3e")), (Action::Delete, Some(old_id.as_str()))]);
        // Rules that still name the old group are repointed: the old id is no longer the stack's group.
        let lb = change(&p, "security_group_rules.lb");
        assert_eq!(lb.action, Action::Update);
        let egress = attr(lb, "egress");
        assert_eq!(egress.before.as_ref().unwrap()[0]["security_group"], json!({ "id": old_id }));
        assert_eq!(change(&p, "security_group_rules.db").action, Action::Update);
        // So are the web instances.
        assert_eq!(change(&p, "instance.web_1").action, Action::Update);
        assert_eq!(change(&p, "instance.web_2").action, Action::Update);
        assert_eq!(
            p.summary,
            Summary { change: 5, destroy: 2, unchanged: owned_changes(&p) - 7, ..Summary::default() }
        );
    }

    #[test]
    fn foreign_id_stays_raw_and_shows_as_a_difference() {
        let desired = reference_desired();
        let mut live = mirror(&desired);
        live_attrs(&mut live, "subnet.private_a").insert("vpc".into(), json!({"id": "vpc-0f0e1a"}));
        let p = plan(desired, live);

        let subnet = change(&p, "subnet.private_a");
        assert_eq!(subnet.action, Action::Replace(ReplaceOrder::DeleteFirst));
        assert_eq!(subnet.reason.as_deref(), Some("vpc forces replacement"));
        let v = attr(subnet, "vpc");
        assert_eq!(v.before, Some(json!({"id": "vpc-0f0e1a"})), "a VPC the stack does not own keeps its id");
        assert_eq!(v.after, Some(json!({"ref": "vpc.main"})));
        assert!(subnet.live_refs.is_empty(), "no owned resource is referenced by the live subnet");
    }

    #[test]
    fn rule_sets_sharing_a_group_id_do_not_capture_references_to_the_group() {
        let desired = reference_desired();
        let live = mirror(&desired);
        let web = fake_id(&desired, &addr("security_group.web"));
        assert_eq!(web, fake_id(&desired, &addr("security_group_rules.web")), "the rule set reports its group's id");
        // Rule sets first, in case the index were built in read order.
        let (rules, rest): (Vec<Live>, Vec<Live>) =
            live.into_iter().partition(|l| l.address.kind() == "security_group_rules");
        let p = plan(desired, rules.into_iter().chain(rest).collect());

        assert!(!p.has_changes(), "{:?}", actions(&p));
        let lb = change(&p, "security_group_rules.lb");
        assert!(lb.live_refs.contains(&key("security_group.web")));
        assert!(!lb.live_refs.iter().any(|(_, r)| r.kind() == "security_group_rules"), "{:?}", lb.live_refs);
    }

    #[test]
    fn summary_counts_each_kind_of_action() {
        let desired = reference_desired();
        let mut live = mirror(&desired);
        live.retain(|l| l.address.as_str() != "network_acl.private"); // create
        live_attrs(&mut live, "vpc.main").insert("dns_hostnames".into(), json!(false)); // update
        // replace x2 (the group and its rules), and the databases in it move to the new group in place (x3)
        live_attrs(&mut live, "security_group.db").insert("description".into(), json!("old"));
        live.push(Live::new(addr("subnet.public_c"), "us-east-1", "subnet-0c", Attrs::new())); // delete
        let n = owned(&desired);
        let p = plan(desired, live);
        assert_eq!(p.summary, Summary { add: 1, change: 4, replace: 2, destroy: 1, unchanged: n - 7 });
        assert_eq!(p.summary, Plan::summarize(&p.changes));
        assert_eq!(change(&p, "vpc.main").changed(), vec!["dns_hostnames"]);
    }

    #[test]
    fn note_names_every_replaced_resource_a_value_refers_to() {
        let desired = reference_desired();
        let mut live = mirror(&desired);
        live_attrs(&mut live, "subnet.public_a").insert("cidr_block".into(), json!("10.0.98.0/24"));
        live_attrs(&mut live, "subnet.public_b").insert("availability_zone".into(), json!("us-east-1c"));
        let p = plan(desired, live);

        assert_eq!(change(&p, "subnet.public_b").reason.as_deref(), Some("availability_zone forces replacement"));
        for dependent in ["route_table.public", "network_acl.public"] {
            let c = change(&p, dependent);
            assert_eq!(c.action, Action::Update);
            assert_eq!(attr(c, "subnets").note.as_deref(), Some("subnet.public_a and subnet.public_b are replaced"));
        }
    }

    #[test]
    fn several_forcing_attributes_are_all_named() {
        let desired = reference_desired();
        let mut live = mirror(&desired);
        live_attrs(&mut live, "vpc.main").insert("cidr_block".into(), json!("10.1.0.0/16"));
        live_attrs(&mut live, "subnet.private_a").insert("cidr_block".into(), json!("10.1.10.0/24"));
        let p = plan(desired, live);

        let subnet = change(&p, "subnet.private_a");
        assert_eq!(subnet.reason.as_deref(), Some("vpc, cidr_block force replacement (vpc.main is replaced)"));
        assert_eq!(subnet.changed(), vec!["vpc", "cidr_block"]);
    }

    fn hand(address: &str, attrs: Value) -> Desired {
        Desired::new("us-east-1", addr(address), &attrs)
    }

    #[test]
    fn reference_to_an_undefined_resource_is_an_error() {
        let desired = vec![
            hand("vpc.main", json!({"cidr_block": "10.0.0.0/16"})),
            hand("subnet.a", json!({"vpc": {"ref": "vpc.other"}, "cidr_block": "10.0.0.0/24"})),
        ];
        let err = diff("s", "us-east-1", desired, vec![]).unwrap_err();
        let PlanError::DanglingReference { from, to } = &err else { panic!("{err:?}") };
        assert_eq!((from.as_str(), to.as_str()), ("subnet.a", "vpc.other"));
        assert_eq!(err.to_string(), "subnet.a refers to vpc.other, which the stack does not define");
    }

    #[test]
    fn reference_nested_in_a_list_is_checked_too() {
        let route = json!({"destination": "0.0.0.0/0", "target": {"ref": "internet_gateway.main"}});
        let desired = vec![hand("route_table.a", json!({ "routes": [route] }))];
        let err = diff("s", "us-east-1", desired, vec![]).unwrap_err();
        assert!(matches!(err, PlanError::DanglingReference { .. }), "{err:?}");
    }

    #[test]
    fn dependency_cycle_is_an_error_naming_its_members() {
        let desired = vec![
            hand("vpc.main", json!({})),
            hand("security_group.a", json!({"vpc": {"ref": "vpc.main"}, "peer": {"ref": "security_group.b"}})),
            hand("security_group.b", json!({"vpc": {"ref": "vpc.main"}, "peer": {"ref": "security_group.a"}})),
        ];
        let err = diff("s", "us-east-1", desired, vec![]).unwrap_err();
        let PlanError::Cycle(members) = &err else { panic!("{err:?}") };
        let mut sorted = members.clone();
        sorted.sort();
        assert_eq!(sorted, vec!["security_group.a", "security_group.b"]);
        assert!(err.to_string().starts_with("dependency cycle between security_group."), "{err}");
    }

    #[test]
    fn unknown_kind_is_an_error() {
        let err = diff("s", "us-east-1", vec![hand("queue.jobs", json!({}))], vec![]).unwrap_err();
        assert!(matches!(&err, PlanError::UnknownKind(k) if k == "queue"), "{err:?}");
    }

    #[test]
    fn canonical_ignores_list_order_and_key_order_but_not_content() {
        let a = json!([{"b": 1, "a": [2, 1]}, "x"]);
        let b = json!(["x", {"a": [1, 2], "b": 1}]);
        assert_eq!(canonical(&a), canonical(&b));
        assert_ne!(canonical(&a), canonical(&json!(["x", {"a": [1, 3], "b": 1}])));
        assert_ne!(canonical(&json!([1, 1, 2])), canonical(&json!([1, 2])), "a list is not deduplicated");
    }

    #[test]
    fn canonical_sorts_numbers_as_numbers() {
        // Plans list live rules in canonical order: port 80 reads before 443 and 1024, rule 100 before 120.
        assert_eq!(canonical(&json!([1024, 443, 80, -1])), json!([-1, 80, 443, 1024]));
        let rules = json!([{"rule": 120, "from_port": 1024}, {"rule": 100, "from_port": 80},
                           {"rule": 110, "from_port": 443}]);
        let rules: Vec<Value> = canonical(&rules).as_array().unwrap().iter().map(|r| r["rule"].clone()).collect();
        assert_eq!(rules, vec![json!(100), json!(110), json!(120)]);
    }

    /// A lookup kind (an AMI id from an SSM parameter path), for the diff only: its AWS methods are never called.
    struct AmiLookup;

    #[async_trait::async_trait]
    impl resources::Kind for AmiLookup {
        fn name(&self) -> &'static str {
            "ami"
        }
        fn schema(&self) -> &'static [Attr] {
            &[]
        }
        fn is_lookup(&self) -> bool {
            true
        }
        fn desired(&self, _: &crate::spec::Stack) -> Vec<Desired> {
            Vec::new()
        }
        async fn read(&self, _: &resources::ReadCtx<'_>, _: &str) -> Result<Vec<Live>, crate::aws::CloudError> {
            unreachable!("the diff never reads")
        }
        async fn create(
            &self,
            _: &crate::aws::Cloud,
            _: &resources::Op<'_>,
        ) -> Result<resources::Created, crate::aws::CloudError> {
            unreachable!("a lookup is never created")
        }
        async fn update(&self, _: &crate::aws::Cloud, _: &resources::Op<'_>) -> Result<(), crate::aws::CloudError> {
            unreachable!("a lookup is never updated")
        }
        async fn delete(&self, _: &crate::aws::Cloud, _: &resources::Op<'_>) -> Result<(), crate::aws::CloudError> {
            unreachable!("a lookup is never deleted")
        }
    }

    fn with_lookup() -> Vec<&'static dyn resources::Kind> {
        let mut kinds: Vec<&'static dyn resources::Kind> = resources::REGISTRY.to_vec();
        kinds.push(&AmiLookup);
        kinds
    }

    fn found(address: &str, id: &str, outputs: Value) -> Live {
        let mut l = Live::new(addr(address), "us-east-1", id, Attrs::new());
        l.outputs = outputs.as_object().unwrap().clone();
        l
    }

    #[test]
    fn a_lookup_is_found_never_changed_and_its_outputs_compare_as_known_values() {
        let kinds = with_lookup();
        let param = json!({"parameter": "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64"});
        let uses = json!({"cidr_block": {"ref": "ami.web", "output": "image_id"}});
        let desired = vec![hand("ami.web", param), hand("vpc.main", uses)];
        let ami = found("ami.web", "ami-0abc", json!({"image_id": "ami-0abc"}));
        let live_vpc = Live::new(
            addr("vpc.main"),
            "us-east-1",
            "vpc-1",
            json!({"cidr_block": "ami-0abc"}).as_object().unwrap().clone(),
        );
        let p = diff_with(&kinds, "s", "us-east-1", desired.clone(), vec![ami.clone(), live_vpc]).unwrap();
        assert!(!p.has_changes(), "{:?}", actions(&p));
        let lookup = change(&p, "ami.web");
        assert!(lookup.lookup && lookup.action == Action::NoOp);
        assert_eq!(p.summary.unchanged, 1, "a lookup is not a resource of the stack");
        crate::apply::check(&kinds, &p).expect("orderable");

        // A newer image: the user of the output changes; the lookup itself never does.
        let newer = found("ami.web", "ami-0def", json!({"image_id": "ami-0def"}));
        let live_vpc = Live::new(
            addr("vpc.main"),
            "us-east-1",
            "vpc-1",
            json!({"cidr_block": "ami-0abc"}).as_object().unwrap().clone(),
        );
        let p = diff_with(&kinds, "s", "us-east-1", desired, vec![newer, live_vpc]).unwrap();
        assert_eq!(actions(&p), vec![("vpc.main".to_string(), Action::Replace(ReplaceOrder::DeleteFirst))]);
        assert_eq!(attr(change(&p, "vpc.main"), "cidr_block").after, Some(json!("ami-0def")));
    }

    #[test]
    fn a_lookup_that_finds_nothing_fails_the_plan_and_one_no_longer_used_is_not_deleted() {
        let kinds = with_lookup();
        let desired = vec![hand("ami.web", json!({"parameter": "/no/such/parameter"}))];
        let err = diff_with(&kinds, "s", "us-east-1", desired, vec![]).unwrap_err();
        assert_eq!(err.to_string(), "ami.web: found nothing for parameter = \"/no/such/parameter\"");

        let leftover = found("ami.old", "ami-0abc", json!({"image_id": "ami-0abc"}));
        let p = diff_with(&kinds, "s", "us-east-1", vec![], vec![leftover]).unwrap();
        assert!(p.changes.is_empty(), "a lookup is never deleted: {:?}", actions(&p));
    }
}
