//! Per-attribute rules: one list per kind ([`super::Kind::schema`]) says, for each attribute, whether a change
//! forces a replacement, whether the value is secret, whether it can be read back at all, and whether a list is
//! ordered. The diff applies the rules; kinds only declare them.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// One attribute of a kind and its rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr {
    pub name: &'static str,
    /// Cannot change in place: a change means replacement.
    pub forces_replacement: bool,
    /// Never shown: plans, JSON, saved plans and logs carry a digest instead (database passwords, Lambda
    /// environment values).
    pub sensitive: bool,
    /// Cannot be read back from AWS: the kind keeps a digest of the value on the resource and reads that, so an
    /// unchanged value is not a change on every plan. Implies sensitive.
    pub write_only: bool,
    /// A list whose order matters (CloudFront cache behaviours, listener rule priorities). Every other list is a
    /// set: AWS reorders rules at will.
    pub ordered: bool,
}

impl Attr {
    /// Changes in place; lists are sets.
    pub const fn new(name: &'static str) -> Attr {
        Attr { name, forces_replacement: false, sensitive: false, write_only: false, ordered: false }
    }

    pub const fn forces_replacement(self) -> Attr {
        Attr { forces_replacement: true, ..self }
    }

    pub const fn sensitive(self) -> Attr {
        Attr { sensitive: true, ..self }
    }

    pub const fn write_only(self) -> Attr {
        Attr { write_only: true, sensitive: true, ..self }
    }

    pub const fn ordered(self) -> Attr {
        Attr { ordered: true, ..self }
    }
}

/// The rules of `name` in `schema`; an attribute a schema does not list gets the plain rules (the registry test
/// makes sure every attribute is listed).
pub fn rules(schema: &[Attr], name: &str) -> Attr {
    schema.iter().copied().find(|a| a.name == name).unwrap_or(Attr::new("?"))
}

/// `sha256:HEX` of a JSON value: lists in a canonical order (sets), object keys in the order the value has them, so
/// values built the same way digest alike (a value whose key order may vary must be sorted by its maker: the asset
/// sync's header rules are). Not sorted here: every digest already kept on a resource would change. Kept on a resource
/// for write-only values and shown in place of secrets: never reversible, and salted by the caller where the value
/// may be guessable (the diff mixes in stack and address).
pub fn digest(v: &Value) -> String {
    let text = crate::plan::diff::canonical(v).to_string();
    let hash = Sha256::digest(text.as_bytes());
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}
