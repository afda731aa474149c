//! Drift, told apart: which differences undo a change made outside webscale, and which come from the spec.
//!
//! Every create and update writes, among the resource's tags, `webscale:applied`: a short digest of each attribute
//! as the spec had it at that apply (kubectl keeps its last-applied configuration the same way). At the next plan, an
//! attribute whose spec value still digests the same as what was applied, yet differs live, was changed outside
//! webscale (by hand, by another tool); one whose spec value changed comes from the spec. Kinds without tags
//! (records, rule sets) and resources applied before this existed carry no record: their changes are not told apart.
//!
//! The record: `v1:SCHEMA:DIGESTS`, where SCHEMA is 4 hex characters of the kind's attribute names (a schema that
//! changed since makes the record unusable rather than misread) and DIGESTS is 6 hex characters per attribute, in
//! schema order, write-only attributes left out (their digests are kept elsewhere). At most 25 attributes fit in a
//! tag value's 256 characters.

use serde_json::{Value, json};

use super::{Action, Plan};
use crate::resources::{Attr, Attrs, Kinds, digest};

/// The tag holding the record (never diffed: reads move it out of the `tags` attribute).
pub const TAG_APPLIED: &str = "webscale:applied";

const WIDTH: usize = 6;

/// The attributes a record covers, in schema order.
fn covered(schema: &[Attr]) -> impl Iterator<Item = &Attr> {
    schema.iter().filter(|a| !a.write_only)
}

fn short(v: &Value, n: usize) -> String {
    digest(v).trim_start_matches("sha256:").chars().take(n).collect()
}

fn schema_id(schema: &[Attr]) -> String {
    let names: Vec<&str> = covered(schema).map(|a| a.name).collect();
    short(&json!(names), 4)
}

/// The digest of one desired attribute, in the plan's terms (references by address, never ids; the values of
/// lookups and outputs resolved, so a new AMI behind the same parameter is a spec change, not drift).
fn attr_digest(name: &str, v: &Value) -> String {
    short(&json!([name, v]), WIDTH)
}

/// The record of `desired` (the spec's attributes as a plan compares them: [`super::Change::want`]), for the
/// `webscale:applied` tag. `tags` is digested without the record itself.
pub fn record(schema: &[Attr], desired: &Attrs) -> String {
    let mut out = format!("v1:{}:", schema_id(schema));
    for a in covered(schema) {
        let v = desired.get(a.name).cloned().unwrap_or(Value::Null);
        out.push_str(&attr_digest(a.name, &without_record(a.name, v)));
    }
    out
}

fn without_record(name: &str, mut v: Value) -> Value {
    if name == "tags"
        && let Value::Object(tags) = &mut v
    {
        tags.remove(TAG_APPLIED);
    }
    v
}

/// The digest of `name` in a record, if the record is readable for this schema.
fn recorded<'a>(schema: &[Attr], record: &'a str, name: &str) -> Option<&'a str> {
    let rest = record.strip_prefix("v1:")?;
    let (id, digests) = rest.split_once(':')?;
    if id != schema_id(schema) {
        return None;
    }
    let i = covered(schema).position(|a| a.name == name)?;
    digests.get(i * WIDTH..(i + 1) * WIDTH)
}

/// Moves the record out of a live resource's `tags` (it is webscale's bookkeeping, not a tag the spec sets).
pub fn take_record(attrs: &mut Attrs) -> Option<String> {
    match attrs.get_mut("tags") {
        Some(Value::Object(tags)) => tags.remove(TAG_APPLIED).and_then(|v| v.as_str().map(str::to_string)),
        _ => None,
    }
}

/// Marks the attribute changes of every update and replacement that only undo a change made outside webscale: the
/// spec's value is what was last applied, yet live differs. Changes that follow a replaced resource (their `note`
/// says so) are the plan's own doing, never drift.
pub fn mark(kinds: Kinds<'_>, plan: &mut Plan) {
    for c in &mut plan.changes {
        if !matches!(c.action, Action::Update | Action::Replace(_)) {
            continue;
        }
        let (Some(want), Some(record)) = (&c.want, c.live.as_ref().and_then(|l| l.applied.as_deref())) else {
            continue;
        };
        let Some(kind) = crate::resources::find(kinds, c.address.kind()) else { continue };
        let schema = kind.schema();
        for a in &mut c.attributes {
            if a.note.is_some() || crate::resources::schema_rules(schema, &a.name).write_only {
                continue;
            }
            let Some(applied) = recorded(schema, record, &a.name) else { continue };
            let spec = want.get(&a.name).cloned().unwrap_or(Value::Null);
            a.changed_outside = attr_digest(&a.name, &without_record(&a.name, spec)) == applied;
        }
        if c.action == Action::Update && c.reason.is_none() && c.attributes.iter().all(|a| a.changed_outside) {
            c.reason = Some("changed outside webscale since its last apply: this undoes it".to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &[Attr] = &[Attr::new("cidr"), Attr::new("secret").write_only(), Attr::new("tags")];

    fn attrs(v: Value) -> Attrs {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn a_record_tells_each_attribute_apart_and_fits_a_tag() {
        let desired = attrs(json!({"cidr": "10.0.0.0/16", "secret": "x", "tags": {"Name": "a"}}));
        let r = record(SCHEMA, &desired);
        assert_eq!(r.len(), "v1:".len() + 4 + 1 + 2 * WIDTH, "write-only attributes are left out: {r}");
        let cidr = recorded(SCHEMA, &r, "cidr").unwrap();
        assert_eq!(cidr, attr_digest("cidr", &json!("10.0.0.0/16")));
        assert_eq!(recorded(SCHEMA, &r, "secret"), None);
        // The record itself, inside the tags, does not change the tags' digest.
        let with = attrs(json!({"cidr": "10.0.0.0/16", "tags": {"Name": "a", TAG_APPLIED: r.clone()}}));
        assert_eq!(record(SCHEMA, &with), r);
        // Another schema cannot read it.
        assert_eq!(recorded(&[Attr::new("other"), Attr::new("tags")], &r, "tags"), None);
        // The largest schema fits a tag value (256 characters).
        let many: Vec<Attr> = (0..25).map(|_| Attr::new("x")).collect();
        assert!(record(&many, &Attrs::new()).len() <= 256);
    }

    #[test]
    fn take_record_moves_it_out_of_the_tags() {
        let mut live = attrs(json!({"tags": {"Name": "a", TAG_APPLIED: "v1:abcd:123456"}}));
        assert_eq!(take_record(&mut live).as_deref(), Some("v1:abcd:123456"));
        assert_eq!(live["tags"], json!({"Name": "a"}));
        assert_eq!(take_record(&mut live), None);
    }
}
