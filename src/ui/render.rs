//! Drawing a plan for a person: Terraform's symbols, one block per resource, attribute-level before/after, the
//! reason for every replacement and deletion, and a summary line.

use serde_json::Value;

use crate::plan::{Action, AttrChange, Change, Plan};
use crate::resources::{ReplaceOrder, as_cloud_id, as_ref, as_reference, is_sensitive, is_unknown};

struct Paint {
    on: bool,
}

impl Paint {
    fn action(&self, a: Action, text: &str) -> String {
        let code = match a {
            Action::Create => "32",
            Action::Update => "33",
            Action::Replace(_) | Action::Delete => "31",
            Action::NoOp => return text.to_string(),
        };
        self.code(code, text)
    }

    fn code(&self, code: &str, text: &str) -> String {
        if self.on { format!("\x1b[{code}m{text}\x1b[0m") } else { text.to_string() }
    }

    fn bold(&self, text: &str) -> String {
        self.code("1", text)
    }
}

pub fn plan_text(plan: &Plan, color: bool) -> String {
    let paint = Paint { on: color };
    let s = &plan.summary;
    let changes: Vec<&Change> =
        plan.changes.iter().filter(|c| c.action != Action::NoOp || c.pending.is_some()).collect();
    // Which account is about to change is the first thing an operator should see.
    let place = match &plan.account {
        Some(account) => format!("{} (account {account})", plan.region),
        None => plan.region.clone(),
    };
    if changes.is_empty() {
        return format!(
            "No changes. Live AWS matches the spec: stack {} in {place} ({} resource{}).",
            plan.stack,
            s.unchanged,
            if s.unchanged == 1 { "" } else { "s" }
        );
    }
    let mut out = format!("Stack {} in {place}: webscale will perform these actions:\n", plan.stack);
    for c in changes {
        out.push('\n');
        out.push_str(&change_text(c, &paint));
    }
    out.push_str(&format!(
        "\n{} {} to add, {} to change, {} to replace, {} to destroy.",
        paint.bold("Plan:"),
        s.add,
        s.change,
        s.replace,
        s.destroy
    ));
    if s.unchanged > 0 {
        out.push_str(&format!(" {} unchanged.", s.unchanged));
    }
    out
}

fn change_text(c: &Change, paint: &Paint) -> String {
    let symbol = paint.action(c.action, c.action.symbol());
    let mut head = format!("  {symbol} {}", paint.bold(c.address.as_str()));
    if let Some(id) = &c.id {
        head.push_str(&format!(" ({id})"));
    }
    let what = match c.action {
        Action::Create => "will be created".to_string(),
        Action::Update => "will be updated in place".to_string(),
        // The order is what an operator weighs: a gap in service (destroy first) or two for a while (create first).
        Action::Replace(ReplaceOrder::CreateFirst) => "must be replaced, create before destroy".to_string(),
        Action::Replace(ReplaceOrder::DeleteFirst) => "must be replaced, destroy before create".to_string(),
        Action::Delete => "will be destroyed".to_string(),
        Action::NoOp => String::new(),
    };
    if !what.is_empty() {
        head.push_str(&format!(" {what}"));
    }
    if let Some(reason) = &c.reason {
        head.push_str(&format!(": {reason}"));
    }
    if let Some(status) = &c.pending {
        let verb = if c.action == Action::NoOp { "is" } else { "is still" };
        head.push_str(&format!(" ({verb} {status} on AWS: apply waits for it first)"));
    }
    let mut out = head + "\n";
    for b in &c.blocked_by {
        out.push_str(&format!("        # blocked by {b}, which the stack does not own\n"));
    }
    for p in &c.problems {
        out.push_str(&format!("        # cannot be created: {p}\n"));
    }
    if let Some(loss) = &c.data_loss {
        out.push_str(&format!("        # DESTROYS DATA: {}\n", loss.what));
        if let Some(snapshot) = &loss.final_snapshot {
            out.push_str(&format!("        # a final snapshot {snapshot} is kept (unless --skip-final-snapshot)\n"));
        }
        let protection = if loss.deletion_protection { "; its deletion protection is turned off first" } else { "" };
        out.push_str(&format!("        # refused unless --allow-data-loss {}{protection}\n", c.address));
    }
    if !c.depends_on.is_empty() {
        let names: Vec<&str> = c.depends_on.iter().map(|a| a.as_str()).collect();
        out.push_str(&format!("        # waits for {} (depends_on)\n", names.join(", ")));
    }
    let width = c.attributes.iter().map(|a| a.name.len()).max().unwrap_or(0);
    for a in &c.attributes {
        out.push_str(&attr_text(a, width, paint));
    }
    out
}

fn attr_text(a: &AttrChange, width: usize, paint: &Paint) -> String {
    let pad = format!("{:width$}", a.name);
    let tail = match (&a.note, a.forces_replacement) {
        (Some(note), true) => format!("  # forces replacement: {note}"),
        (Some(note), false) => format!("  # {note}"),
        (None, true) => "  # forces replacement".to_string(),
        (None, false) => String::new(),
    };
    // The spec did not change this since the last apply: live was changed by someone else, and this undoes it.
    let tail = if a.changed_outside { format!("{tail}  # changed outside webscale") } else { tail };
    match (&a.before, &a.after) {
        (None, Some(after)) => multiline(&paint.action(Action::Create, "+"), &pad, after),
        // Reads the same as before; the note says why it changes anyway (a referenced resource gets a new id).
        (Some(_), Some(after)) if a.note.is_some() => {
            format!("      {} {pad} = {}{tail}\n", paint.action(Action::Update, "~"), value_text(after))
        }
        (Some(before), None) => multiline(&paint.action(Action::Delete, "-"), &pad, before),
        (Some(Value::Array(before)), Some(Value::Array(after))) => {
            // Sets: show what goes and what comes, not two long lists.
            let mut out = format!("      {} {}:{tail}\n", paint.action(Action::Update, "~"), a.name);
            // Same elements, another order: an ordered list (listener rules, cache behaviours) changed order.
            let reordered = before.len() == after.len()
                && before.iter().all(|b| after.contains(b))
                && after.iter().all(|n| before.contains(n));
            if reordered {
                let list = |items: &Vec<Value>| items.iter().map(value_text).collect::<Vec<_>>().join(", ");
                out.push_str(&format!("          order: [{}] -> [{}]\n", list(before), list(after)));
                return out;
            }
            for b in before.iter().filter(|b| !after.contains(b)) {
                out.push_str(&format!("          {} {}\n", paint.action(Action::Delete, "-"), value_text(b)));
            }
            for n in after.iter().filter(|n| !before.contains(n)) {
                out.push_str(&format!("          {} {}\n", paint.action(Action::Create, "+"), value_text(n)));
            }
            out
        }
        (Some(b @ Value::Object(before)), Some(n @ Value::Object(after))) if !is_handle(b) && !is_handle(n) => {
            // Maps: only the keys that go, come or change, aligned.
            let gone = before.iter().filter(|(k, _)| !after.contains_key(*k));
            let changed = after.iter().filter(|(k, v)| before.get(*k) != Some(*v));
            let width = gone.clone().chain(changed.clone()).map(|(k, _)| key_text(k).len()).max().unwrap_or(0);
            let mut out = format!("      {} {}:{tail}\n", paint.action(Action::Update, "~"), a.name);
            for (k, v) in gone {
                let (symbol, k) = (paint.action(Action::Delete, "-"), key_text(k));
                out.push_str(&format!("          {symbol} {k:width$} = {}\n", value_text(v)));
            }
            for (k, v) in changed {
                let line = match before.get(k) {
                    None => format!("{} {:width$} = {}", paint.action(Action::Create, "+"), key_text(k), value_text(v)),
                    Some(old) => format!(
                        "{} {:width$} = {} -> {}",
                        paint.action(Action::Update, "~"),
                        key_text(k),
                        value_text(old),
                        value_text(v)
                    ),
                };
                out.push_str(&format!("          {line}\n"));
            }
            out
        }
        (Some(before), Some(after)) => format!(
            "      {} {pad} = {} -> {}{tail}\n",
            paint.action(Action::Update, "~"),
            value_text(before),
            value_text(after)
        ),
        (None, None) => String::new(),
    }
}

/// A whole value on creation or deletion: lists one element per line, maps of more than two keys (tags) one key
/// per line with the values aligned.
fn multiline(symbol: &str, name: &str, v: &Value) -> String {
    match v {
        Value::Array(items) if !items.is_empty() => {
            let mut out = format!("      {symbol} {name} = [\n");
            for i in items {
                out.push_str(&format!("            {},\n", value_text(i)));
            }
            out.push_str("        ]\n");
            out
        }
        Value::Object(map) if map.len() > 2 && !is_handle(v) => {
            let width = map.keys().map(|k| key_text(k).len()).max().unwrap_or(0);
            let mut out = format!("      {symbol} {name} = {{\n");
            for (k, i) in map {
                out.push_str(&format!("            {:width$} = {}\n", key_text(k), value_text(i)));
            }
            out.push_str("        }\n");
            out
        }
        _ => format!("      {symbol} {name} = {}\n", value_text(v)),
    }
}

/// A map key as written in a plan: bare when it is a plain name, quoted otherwise (`"webscale:stack"`).
fn key_text(k: &str) -> String {
    let plain = k.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if plain { k.to_string() } else { format!("{k:?}") }
}

/// A value on one line: references as bare addresses, objects as `{key = value, ...}`.
pub fn value_text(v: &Value) -> String {
    if is_unknown(v) {
        return "(known after apply)".to_string();
    }
    if is_sensitive(v) {
        return "(sensitive value)".to_string();
    }
    if let Some(r) = as_ref(v) {
        let mut text = r.address.to_string();
        if let Some(o) = r.output {
            text.push_str(&format!(".{o}"));
        }
        if let Some(region) = r.region {
            text.push_str(&format!(" ({region})"));
        }
        return text;
    }
    if let Some(id) = as_cloud_id(v) {
        return id.to_string();
    }
    match v {
        Value::Null => "(none)".to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Array(items) => format!("[{}]", items.iter().map(value_text).collect::<Vec<_>>().join(", ")),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter().map(|(k, v)| format!("{} = {}", key_text(k), value_text(v))).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// A reference or id: drawn as one value, never as an object.
fn is_handle(v: &Value) -> bool {
    as_reference(v).is_some() || as_cloud_id(v).is_some() || is_unknown(v) || is_sensitive(v)
}

#[cfg(test)]
mod tests {
    //! What an operator reads. Plans come from the real diff over the reference template (`plan::diff::tests`
    //! builds matching live state with fixed fake ids, so snapshots are stable); each snapshot is one situation.

    use serde_json::json;

    use super::*;
    use crate::plan::diff::tests::{fresh, live_attrs, mirror_in_order, reference_desired};
    use crate::plan::{Plan, diff};
    use crate::resources::{Address, Live};

    fn plan(live: impl FnOnce(&mut Vec<Live>)) -> Plan {
        let desired = reference_desired();
        let mut state = mirror_in_order(&desired);
        live(&mut state);
        diff("webscale", "us-east-1", desired, state).expect("a plan")
    }

    fn text(plan: &Plan) -> String {
        let out = plan_text(plan, false);
        assert!(!out.contains('\x1b'), "colour off means no escape codes:\n{out}");
        out
    }

    #[test]
    fn create_everything() {
        let p = diff("webscale", "us-east-1", reference_desired(), fresh(&reference_desired())).unwrap();
        insta::assert_snapshot!(text(&p));
    }

    #[test]
    fn update_rules_tags_and_a_flag() {
        let p = plan(|live| {
            let lb = live_attrs(live, "security_group_rules.lb");
            let ingress = lb["ingress"].as_array_mut().unwrap();
            ingress.retain(|r| r["from_port"] != json!(443));
            ingress.push(json!({"protocol": "tcp", "from_port": 8080, "to_port": 8080, "cidr": "0.0.0.0/0"}));
            let tags = live_attrs(live, "subnet.public_a")["tags"].as_object_mut().unwrap();
            tags.insert("environment".into(), json!("staging"));
            tags.insert("owner".into(), json!("alice"));
            live_attrs(live, "vpc.main").insert("dns_hostnames".into(), json!(false));
        });
        insta::assert_snapshot!(text(&p));
    }

    #[test]
    fn replace_with_reason_and_dependents() {
        let p = plan(|live| {
            live_attrs(live, "subnet.public_a").insert("cidr_block".into(), json!("10.0.99.0/24"));
        });
        insta::assert_snapshot!(text(&p));
    }

    #[test]
    fn replace_create_first() {
        let p = plan(|live| {
            live_attrs(live, "security_group.web").insert("description".into(), json!("Web servers"));
        });
        insta::assert_snapshot!(text(&p));
    }

    #[test]
    fn vpc_replacement_cascades() {
        let p = plan(|live| {
            live_attrs(live, "vpc.main").insert("cidr_block".into(), json!("10.1.0.0/16"));
        });
        insta::assert_snapshot!(text(&p));
    }

    #[test]
    fn delete_stale_and_duplicate() {
        let p = plan(|live| {
            let attrs = json!({"vpc": {"id": "vpc-0a1b2c00"}, "description": "Cache",
                               "tags": {"Name": "webscale-cache", "webscale:address": "security_group.cache",
                                        "webscale:stack": "webscale"}});
            let address = Address::parse("security_group.cache").unwrap();
            live.push(Live::new(address, "us-east-1", "sg-0ca4e", attrs.as_object().unwrap().clone()));
            let mut copy = live.iter().find(|l| l.address.as_str() == "internet_gateway.main").unwrap().clone();
            copy.id = "igw-0d0b1e".into();
            copy.attrs.insert("vpc".into(), serde_json::Value::Null);
            live.push(copy);
        });
        insta::assert_snapshot!(text(&p));
    }

    #[test]
    fn destroy_everything() {
        let live = mirror_in_order(&reference_desired());
        let p = diff("webscale", "us-east-1", vec![], live).unwrap();
        insta::assert_snapshot!(text(&p));
    }

    #[test]
    fn foreign_id_is_shown_raw_beside_the_address_it_should_be() {
        let p = plan(|live| {
            live_attrs(live, "subnet.private_a").insert("vpc".into(), json!({"id": "vpc-0f0e1a"}));
        });
        let out = text(&p);
        assert!(out.contains(
            "  -/+ subnet.private_a (subnet-0a1b2c03) must be replaced, destroy before create: vpc forces replacement\n"
        ));
        assert!(out.contains("      ~ vpc = vpc-0f0e1a -> vpc.main  # forces replacement\n"), "{out}");
    }

    #[test]
    fn small_maps_stay_inline_and_odd_keys_are_quoted() {
        assert_eq!(key_text("Name"), "Name");
        assert_eq!(key_text("cost-center"), "cost-center");
        assert_eq!(key_text("webscale:stack"), "\"webscale:stack\"");
        assert_eq!(key_text("9lives"), "\"9lives\"");
        assert_eq!(key_text(""), "\"\"");
        assert_eq!(value_text(&json!({"Name": "x", "a b": 1})), "{Name = \"x\", \"a b\" = 1}");
        let two = json!({"Name": "x", "env": "demo"});
        assert_eq!(multiline("+", "tags", &two), "      + tags = {Name = \"x\", env = \"demo\"}\n");
        assert_eq!(multiline("+", "vpc", &json!({"ref": "vpc.main"})), "      + vpc = vpc.main\n");
        assert_eq!(multiline("-", "routes", &json!([])), "      - routes = []\n");
        assert_eq!(value_text(&json!(null)), "(none)");
    }

    /// Drops ANSI escape sequences (`ESC [ ... m`).
    fn strip_ansi(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                chars.by_ref().find(|&c| c == 'm');
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn colour_only_adds_escape_codes() {
        let p = plan(|live| {
            live_attrs(live, "security_group.web").insert("description".into(), json!("Web servers"));
            live_attrs(live, "subnet.public_a").insert("cidr_block".into(), json!("10.0.99.0/24"));
            live.retain(|l| l.address.as_str() != "network_acl.private");
            live_attrs(live, "vpc.main")["tags"].as_object_mut().unwrap().insert("owner".into(), json!("alice"));
        });
        let coloured = plan_text(&p, true);
        assert_eq!(strip_ansi(&coloured), text(&p), "the same text underneath");
        for painted in [
            "\x1b[31m+/-\x1b[0m \x1b[1msecurity_group.web\x1b[0m",
            "\x1b[31m-/+\x1b[0m \x1b[1msubnet.public_a\x1b[0m",
            "\x1b[33m~\x1b[0m \x1b[1mroute_table.public\x1b[0m",
            "\x1b[32m+\x1b[0m \x1b[1mnetwork_acl.private\x1b[0m",
            "\x1b[31m-\x1b[0m owner",
            "\x1b[1mPlan:\x1b[0m 1 to add, 9 to change, 4 to replace, 0 to destroy. 28 unchanged.",
        ] {
            assert!(coloured.contains(painted), "missing {painted:?} in:\n{coloured}");
        }
        let none = plan(|_| {});
        assert_eq!(plan_text(&none, true), plan_text(&none, false), "nothing to colour when nothing changes");
    }

    #[test]
    fn summary_line_format_is_stable() {
        let p = plan(|live| {
            live.retain(|l| l.address.as_str() != "security_group_rules.db");
        });
        let out = text(&p);
        assert!(out.starts_with("Stack webscale in us-east-1: webscale will perform these actions:\n\n"), "{out}");
        assert!(out.ends_with("\nPlan: 1 to add, 0 to change, 0 to replace, 0 to destroy. 41 unchanged."), "{out}");
    }

    #[test]
    fn no_changes() {
        let p = plan(|_| {});
        assert_eq!(text(&p), "No changes. Live AWS matches the spec: stack webscale in us-east-1 (42 resources).");
    }
}
