//! Resource kinds: one file per kind, each behind the one [`Kind`] trait, all listed once in [`REGISTRY`].
//!
//! The core (plan, apply) never names a concrete kind. It sees resources as an [`Address`] plus a map of
//! attributes (JSON values), which is what lets it diff, order and render any kind the same way:
//! - a reference to another resource of the stack is written `{"ref": "vpc.main"}` in desired attributes;
//! - a kind's live read writes the cloud id instead, `{"id": "vpc-0abc"}`; the planner maps ids it knows back to
//!   addresses, so desired and live compare in the same terms and a plan reads in the spec's names;
//! - before calling a kind to act, the engine resolves both forms to plain id strings, so kinds deserialize their
//!   attributes into typed structs and never deal with addresses.

mod ec2_enis;
mod ec2_tags;
pub mod internet_gateway;
pub mod network_acl;
pub mod route_table;
pub mod security_group;
pub mod security_group_rules;
pub mod subnet;
pub mod vpc;

use std::fmt;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::aws::{Cloud, CloudError};
use crate::spec::Stack;

pub use ec2_tags::{TAG_ADDRESS, TAG_STACK};

/// Every kind webscale manages. Adding a kind: one file in this folder, one line here.
pub static REGISTRY: &[&dyn Kind] = &[
    &vpc::Vpc,
    &internet_gateway::InternetGateway,
    &subnet::Subnet,
    &route_table::RouteTable,
    &security_group::SecurityGroup,
    &security_group_rules::SecurityGroupRules,
    &network_acl::NetworkAcl,
];

/// Finds a kind by the name used in addresses.
pub fn kind(name: &str) -> Option<&'static dyn Kind> {
    REGISTRY.iter().copied().find(|k| k.name() == name)
}

/// A resource's logical address, `KIND.NAME` (e.g. `security_group.web`): stable across replacements, stored on
/// the resource itself as the `webscale:address` tag.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Address(String);

impl Address {
    pub fn new(kind: &str, name: &str) -> Address {
        Address(format!("{kind}.{name}"))
    }

    /// Parses `KIND.NAME`; `None` for anything else (e.g. a hand-edited ownership tag).
    pub fn parse(s: &str) -> Option<Address> {
        let (kind, name) = s.split_once('.')?;
        (!kind.is_empty() && !name.is_empty()).then(|| Address(s.to_string()))
    }

    pub fn kind(&self) -> &str {
        self.0.split_once('.').map_or(&self.0, |(k, _)| k)
    }

    pub fn name(&self) -> &str {
        self.0.split_once('.').map_or("", |(_, n)| n)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Attrs = Map<String, Value>;

/// Name prefix of the address given to a resource that carries the stack tag but no usable address tag.
pub const STRAY: &str = "stray_";

/// The address of such a resource: unique (from its id) and never one the spec can define.
pub fn stray(kind: &str, id: &str) -> Address {
    Address::new(kind, &format!("{STRAY}{}", id.replace(['-', '.', ':', '/'], "_")))
}

/// A reference to another resource of the stack, as written in desired attributes.
pub fn reference(to: &Address) -> Value {
    json!({ "ref": to.as_str() })
}

/// A cloud id as a kind's live read reports it, to be mapped back to an address where the stack owns it.
pub fn cloud_id(id: impl Into<String>) -> Value {
    json!({ "id": id.into() })
}

/// The address a value refers to, if it is a reference.
pub fn as_reference(v: &Value) -> Option<Address> {
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    obj.get("ref")?.as_str().and_then(Address::parse)
}

/// The id a value carries, if it is a live id.
pub fn as_cloud_id(v: &Value) -> Option<&str> {
    let obj = v.as_object()?;
    if obj.len() != 1 {
        return None;
    }
    obj.get("id")?.as_str()
}

/// Every address referenced anywhere inside `v`.
pub fn references(v: &Value, out: &mut Vec<Address>) {
    if let Some(a) = as_reference(v) {
        out.push(a);
        return;
    }
    match v {
        Value::Array(items) => items.iter().for_each(|i| references(i, out)),
        Value::Object(map) => map.values().for_each(|i| references(i, out)),
        _ => {}
    }
}

/// Rewrites every reference and id inside `v` with `f` (which returns the replacement value).
pub fn rewrite(v: &Value, f: &mut dyn FnMut(&Value) -> Option<Value>) -> Value {
    if let Some(new) = f(v) {
        return new;
    }
    match v {
        Value::Array(items) => Value::Array(items.iter().map(|i| rewrite(i, f)).collect()),
        Value::Object(map) => Value::Object(map.iter().map(|(k, i)| (k.clone(), rewrite(i, f))).collect()),
        other => other.clone(),
    }
}

/// Live ids (`{"id": ...}`) inside `v` as the plain strings the AWS calls take.
pub fn plain_ids(v: &Value) -> Value {
    rewrite(v, &mut |x| as_cloud_id(x).map(|id| Value::String(id.to_string())))
}

/// What the spec asks for: one resource.
#[derive(Debug, Clone, Serialize)]
pub struct Desired {
    pub address: Address,
    pub region: String,
    pub attrs: Attrs,
}

impl Desired {
    /// A resource in the stack's own region, its attributes given as a JSON object.
    pub fn in_home_region(stack: &Stack, address: Address, attrs: &Value) -> Desired {
        Desired { address, region: stack.region.clone(), attrs: self::attrs(attrs) }
    }
}

/// What exists: one resource the stack owns, as its kind read it.
#[derive(Debug, Clone, Serialize)]
pub struct Live {
    pub address: Address,
    pub region: String,
    /// The cloud's id (`vpc-0abc`, `sg-0abc`); for resources without one, whatever the kind acts on.
    pub id: String,
    /// Same schema as the desired attributes; references as `{"id": ...}`.
    pub attrs: Attrs,
}

/// When a resource must be replaced, which half goes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplaceOrder {
    /// The old one must go first: its identity (a CIDR, a fixed name) would collide with the new one.
    DeleteFirst,
    /// The new one comes up first, dependents are repointed, then the old one goes (no gap in service).
    CreateFirst,
}

/// What the engine hands a kind when it acts: attributes with every reference resolved to a plain id.
#[derive(Debug)]
pub struct Op<'a> {
    pub address: &'a Address,
    pub region: &'a str,
    /// The live id (update, delete).
    pub id: Option<&'a str>,
    /// Desired attributes, resolved (create, update).
    pub desired: Option<Attrs>,
    /// Live attributes, resolved (update, delete).
    pub live: Option<Attrs>,
    /// Names of the attributes that differ (update).
    pub changed: &'a [String],
}

impl Op<'_> {
    pub fn desired<T: DeserializeOwned>(&self) -> Result<T, CloudError> {
        decode(self.address, self.desired.as_ref())
    }

    pub fn live<T: DeserializeOwned>(&self) -> Result<T, CloudError> {
        decode(self.address, self.live.as_ref())
    }

    pub fn id(&self) -> Result<&str, CloudError> {
        self.id.ok_or_else(|| CloudError::internal(format!("{}: no live id to act on", self.address)))
    }

    pub fn changed(&self, attr: &str) -> bool {
        self.changed.iter().any(|c| c == attr)
    }
}

fn decode<T: DeserializeOwned>(address: &Address, attrs: Option<&Attrs>) -> Result<T, CloudError> {
    let attrs = attrs.ok_or_else(|| CloudError::internal(format!("{address}: attributes missing")))?;
    serde_json::from_value(Value::Object(attrs.clone()))
        .map_err(|e| CloudError::internal(format!("{address}: attributes do not match the kind's schema: {e}")))
}

/// Turns a typed attribute struct into the generic map.
pub fn attrs<T: Serialize>(value: &T) -> Attrs {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        // Attribute structs are plain structs of strings, numbers and lists: they always serialize to an object.
        _ => Attrs::new(),
    }
}

/// The one interface every resource kind implements.
#[async_trait]
pub trait Kind: Send + Sync {
    /// The kind's name in addresses (`subnet` in `subnet.public_a`).
    fn name(&self) -> &'static str;

    /// The resources of this kind the spec asks for.
    fn desired(&self, stack: &Stack) -> Vec<Desired>;

    /// Attributes that cannot change in place: a change to one of them means replacement.
    fn replace_on(&self) -> &'static [&'static str] {
        &[]
    }

    fn replace_order(&self) -> ReplaceOrder {
        ReplaceOrder::DeleteFirst
    }

    /// Whether a live resource's id is its own. A kind that manages part of another resource (a group's rule
    /// set) reports its parent's id, and must not claim it: references to that id mean the parent.
    fn owns_id(&self) -> bool {
        true
    }

    /// Everything of this kind that `cloud.stack()` owns in `region`, in as few calls as the API allows.
    async fn read(&self, cloud: &Cloud, region: &str) -> Result<Vec<Live>, CloudError>;

    /// Creates the resource, tagged at creation, and returns its id. Must leave something a later `read` finds
    /// even if interrupted halfway (so a re-run completes it as an update).
    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<String, CloudError>;

    /// Brings the attributes in `op.changed` to their desired values.
    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError>;

    /// Deletes the resource; "already gone" counts as success.
    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError>;

    /// After a delete gave up on a dependency: what still holds the resource, for the error message.
    async fn blockers(&self, _cloud: &Cloud, _op: &Op<'_>) -> Option<String> {
        None
    }
}

/// Every desired resource of the stack, across all kinds.
pub fn desired(stack: &Stack) -> Vec<Desired> {
    REGISTRY.iter().flat_map(|k| k.desired(stack)).collect()
}

/// Deletes are idempotent: a resource that is already gone counts as deleted.
pub fn gone_ok<T>(result: Result<T, CloudError>) -> Result<(), CloudError> {
    match result {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}
