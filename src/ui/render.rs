//! Drawing a plan for a person: Terraform's symbols, one block per resource, attribute-level before/after, the
//! reason for every replacement and deletion, and a summary line.

use serde_json::Value;

use crate::plan::{Action, AttrChange, Change, Plan};
use crate::resources::{as_cloud_id, as_reference};

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
    let changes: Vec<&Change> = plan.changes.iter().filter(|c| c.action != Action::NoOp).collect();
    if changes.is_empty() {
        return format!(
            "No changes. Live AWS matches the spec: stack {} in {} ({} resource{}).",
            plan.stack,
            plan.region,
            s.unchanged,
            if s.unchanged == 1 { "" } else { "s" }
        );
    }
    let mut out = format!("Stack {} in {}: webscale will perform these actions:\n", plan.stack, plan.region);
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
        Action::Replace(_) => "must be replaced".to_string(),
        Action::Delete => "will be destroyed".to_string(),
        Action::NoOp => String::new(),
    };
    head.push_str(&format!(" {what}"));
    if let Some(reason) = &c.reason {
        head.push_str(&format!(": {reason}"));
    }
    let mut out = head + "\n";
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
    match (&a.before, &a.after) {
        (None, Some(after)) => multiline(&paint.action(Action::Create, "+"), &pad, after),
        (Some(before), None) => multiline(&paint.action(Action::Delete, "-"), &pad, before),
        (Some(Value::Array(before)), Some(Value::Array(after))) if a.note.is_none() => {
            // Sets: show what goes and what comes, not two long lists.
            let mut out = format!("      {} {}:{tail}\n", paint.action(Action::Update, "~"), a.name);
            for b in before.iter().filter(|b| !after.contains(b)) {
                out.push_str(&format!("          {} {}\n", paint.action(Action::Delete, "-"), value_text(b)));
            }
            for n in after.iter().filter(|n| !before.contains(n)) {
                out.push_str(&format!("          {} {}\n", paint.action(Action::Create, "+"), value_text(n)));
            }
            out
        }
        (Some(b @ Value::Object(before)), Some(n @ Value::Object(after)))
            if a.note.is_none() && !is_handle(b) && !is_handle(n) =>
        {
            let mut out = format!("      {} {}:{tail}\n", paint.action(Action::Update, "~"), a.name);
            for (k, v) in before.iter().filter(|(k, _)| !after.contains_key(*k)) {
                out.push_str(&format!("          {} {k} = {}\n", paint.action(Action::Delete, "-"), value_text(v)));
            }
            for (k, v) in after {
                match before.get(k) {
                    None => out.push_str(&format!(
                        "          {} {k} = {}\n",
                        paint.action(Action::Create, "+"),
                        value_text(v)
                    )),
                    Some(old) if old != v => out.push_str(&format!(
                        "          {} {k} = {} -> {}\n",
                        paint.action(Action::Update, "~"),
                        value_text(old),
                        value_text(v)
                    )),
                    Some(_) => {}
                }
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

/// A whole value on creation or deletion: lists one element per line.
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
        _ => format!("      {symbol} {name} = {}\n", value_text(v)),
    }
}

/// A value on one line: references as bare addresses, objects as `{key = value, ...}`.
pub fn value_text(v: &Value) -> String {
    if let Some(a) = as_reference(v) {
        return a.to_string();
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
            map.iter().map(|(k, v)| format!("{k} = {}", value_text(v))).collect::<Vec<_>>().join(", ")
        ),
        other => other.to_string(),
    }
}

/// A reference or id: drawn as one value, never as an object.
fn is_handle(v: &Value) -> bool {
    as_reference(v).is_some() || as_cloud_id(v).is_some()
}
