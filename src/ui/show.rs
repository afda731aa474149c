//! `webscale show`: what the stack owns, as an aligned table or a JSON array.

use super::Ui;
use crate::plan::inventory::{Inventory, Owned};

impl Ui {
    /// The stack's live resources: `--json` prints an array of `{address, region, id, state, in_spec}` (and
    /// `stray` where true); otherwise a table, marking what the spec no longer declares and stray resources.
    pub fn show(&self, inventory: &Inventory) {
        if self.json {
            self.out(&serde_json::to_string_pretty(&inventory.resources).unwrap_or_default());
        } else {
            self.out(&show_text(inventory));
        }
    }
}

/// The table of `show`.
pub fn show_text(inventory: &Inventory) -> String {
    let place = match &inventory.account {
        Some(account) => format!("{} (account {account})", inventory.region),
        None => inventory.region.clone(),
    };
    let rows = &inventory.resources;
    let mut out = if rows.is_empty() {
        format!("Stack {} owns nothing in {place}.", inventory.stack)
    } else {
        let n = rows.len();
        format!("Stack {} in {place}: {n} resource{}.\n", inventory.stack, if n == 1 { "" } else { "s" })
    };
    if !rows.is_empty() {
        let head = ["ADDRESS", "REGION", "ID", "STATE"];
        let cells = |o: &Owned| [o.address.to_string(), o.region.clone(), o.id.clone(), o.state.clone()];
        let mut width = head.map(str::len);
        for o in rows {
            for (w, c) in width.iter_mut().zip(cells(o)) {
                *w = (*w).max(c.len());
            }
        }
        let line = |c: [String; 4], note: &str| {
            let text = format!(
                "\n  {:w0$}  {:w1$}  {:w2$}  {:w3$}{note}",
                c[0],
                c[1],
                c[2],
                c[3],
                w0 = width[0],
                w1 = width[1],
                w2 = width[2],
                w3 = width[3]
            );
            text.trim_end().to_string()
        };
        out.push_str(&line(head.map(str::to_string), ""));
        for o in rows {
            let note = if o.stray {
                format!(
                    "  # stray: carries the stack tag but no valid {} tag; the next apply deletes it",
                    crate::resources::TAG_ADDRESS
                )
            } else if !o.in_spec {
                "  # no longer in the spec: the next apply deletes it".to_string()
            } else {
                String::new()
            };
            out.push_str(&line(cells(o), &note));
        }
    }
    if inventory.missing > 0 {
        let m = inventory.missing;
        out.push_str(&format!(
            "\n\n{m} resource{} the spec declares {} not exist yet: `webscale plan` shows what apply would create.",
            if m == 1 { "" } else { "s" },
            if m == 1 { "does" } else { "do" }
        ));
    }
    out
}
