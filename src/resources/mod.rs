//! Resource kinds: one file per kind, each behind the one [`Kind`] trait, all listed once in [`REGISTRY`].
//!
//! The core (plan, apply) never names a concrete kind. It sees resources as an [`Address`] plus a map of
//! attributes (JSON values), which is what lets it diff, order and render any kind the same way:
//! - a reference to another resource of the stack is written `{"ref": "vpc.main"}` in desired attributes;
//! - a kind's live read writes the cloud id instead, `{"id": "vpc-0abc"}`; the planner maps ids it knows back to
//!   addresses, so desired and live compare in the same terms and a plan reads in the spec's names;
//! - before calling a kind to act, the engine resolves both forms to plain id strings, so kinds deserialize their
//!   attributes into typed structs and never deal with addresses.

pub mod ami;
pub mod bucket;
pub mod bucket_objects;
pub mod bucket_policy;
pub mod certificate;
mod context;
pub mod db_instance;
pub mod db_subnet_group;
pub mod distribution;
pub mod dns_record;
pub mod dns_zone;
mod ec2_dependents;
mod ec2_tags;
pub mod elastic_ip;
mod elb_tags;
pub mod function;
pub mod function_permission;
pub mod hosted_zone;
pub mod instance;
pub mod internet_gateway;
pub mod listener;
pub mod load_balancer;
pub mod log_group;
pub mod nat_gateway;
pub mod network_acl;
pub mod origin_access_control;
mod rds_tags;
pub mod role;
pub mod route53;
pub mod route_table;
mod schema;
pub mod security_group;
pub mod security_group_rules;
pub mod subnet;
pub mod subscription;
pub mod tags;
pub mod target_group;
pub mod topic;
pub mod vpc;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::aws::{Cloud, CloudError};
use crate::spec::Stack;

pub use context::ReadCtx;
pub use schema::{Attr, digest, rules as schema_rules};
pub use tags::{TAG_ADDRESS, TAG_STACK};

/// Every kind webscale manages. Adding a kind: one file in this folder, one line here. Plan and apply take the
/// kinds they run as a parameter ([`Kinds`]); this is the default, and tests hand in kinds of their own.
pub static REGISTRY: &[&dyn Kind] = &[
    &vpc::Vpc,
    &internet_gateway::InternetGateway,
    &subnet::Subnet,
    &elastic_ip::ElasticIp,
    &nat_gateway::NatGateway,
    &route_table::RouteTable,
    &security_group::SecurityGroup,
    &security_group_rules::SecurityGroupRules,
    &network_acl::NetworkAcl,
    &ami::Ami,
    &instance::Instance,
    &load_balancer::LoadBalancer,
    &target_group::TargetGroup,
    &listener::Listener,
    &hosted_zone::HostedZone,
    &dns_zone::DnsZone,
    &dns_record::DnsRecord,
    &db_subnet_group::DbSubnetGroup,
    &db_instance::DbInstance,
    &bucket::Bucket,
    &origin_access_control::OriginAccessControl,
    &certificate::Certificate,
    &distribution::Distribution,
    &bucket_objects::BucketObjects,
    &bucket_policy::BucketPolicy,
    &log_group::LogGroup,
    &topic::Topic,
    &subscription::Subscription,
    &role::Role,
    &function::Function,
    &function_permission::FunctionPermission,
];

/// The kinds a plan or apply runs over.
pub type Kinds<'a> = &'a [&'a dyn Kind];

/// Finds a kind of the registry by the name used in addresses.
pub fn kind(name: &str) -> Option<&'static dyn Kind> {
    REGISTRY.iter().copied().find(|k| k.name() == name)
}

/// Finds a kind among `kinds`.
pub fn find<'a>(kinds: Kinds<'a>, name: &str) -> Option<&'a dyn Kind> {
    kinds.iter().copied().find(|k| k.name() == name)
}

/// The pseudo-region of global kinds (Route 53, CloudFront, IAM): one endpoint for the whole account, read once
/// per plan. Their calls go to [`GLOBAL_HOME`].
pub const GLOBAL: &str = "global";
/// Where the global services' endpoints live.
pub const GLOBAL_HOME: &str = "us-east-1";

/// A resource's identity: the same address may exist in two regions (geo routing declares a tier twice).
pub type Key = (String, Address);

/// Whether a kind lives in a region or in the account as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Regional,
    Global,
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

/// A reference to one of another resource's outputs (a value known only once it exists, such as a load
/// balancer's DNS name): `{"ref": "load_balancer.web", "output": "dns_name"}`.
pub fn output_reference(to: &Address, output: &str) -> Value {
    json!({ "ref": to.as_str(), "output": output })
}

/// A reference to a resource in another region than the referring one's: `{"ref": ..., "region": ...}`.
pub fn reference_in(to: &Address, region: &str) -> Value {
    json!({ "ref": to.as_str(), "region": region })
}

/// A reference, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ref {
    pub address: Address,
    /// Set only when the reference names a region explicitly.
    pub region: Option<String>,
    /// Set for a reference to an output rather than the id.
    pub output: Option<String>,
}

/// The reference `v` is, if it is one.
pub fn as_ref(v: &Value) -> Option<Ref> {
    let obj = v.as_object()?;
    if obj.keys().any(|k| !matches!(k.as_str(), "ref" | "region" | "output")) {
        return None;
    }
    let address = obj.get("ref")?.as_str().and_then(Address::parse)?;
    let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
    Some(Ref { address, region: text("region"), output: text("output") })
}

/// The address a value refers to, if it is a reference (to an id or an output).
pub fn as_reference(v: &Value) -> Option<Address> {
    as_ref(v).map(|r| r.address)
}

/// Where a reference from a resource in `from_region` points: its explicit region, else the global pseudo-region
/// for a global kind, else the referring resource's own region (the home region when a global resource refers to
/// a regional one). `kinds` tells global kinds apart.
pub fn target(kinds: Kinds, from_region: &str, home: &str, r: &Ref) -> Key {
    let region = match &r.region {
        Some(region) => region.clone(),
        None if find(kinds, r.address.kind()).is_some_and(|k| k.scope() == Scope::Global) => GLOBAL.to_string(),
        None if from_region == GLOBAL => home.to_string(),
        None => from_region.to_string(),
    };
    (region, r.address.clone())
}

/// Every (region, address) referenced inside `v`, written in a resource of `from_region` (see [`target`]).
pub fn targets(kinds: Kinds, from_region: &str, home: &str, v: &Value, out: &mut Vec<Key>) {
    if let Some(r) = as_ref(v) {
        out.push(target(kinds, from_region, home, &r));
        return;
    }
    match v {
        Value::Array(items) => items.iter().for_each(|i| targets(kinds, from_region, home, i, out)),
        Value::Object(map) => map.values().for_each(|i| targets(kinds, from_region, home, i, out)),
        _ => {}
    }
}

/// A value not known until apply (an output of a resource still to be created): `{"unknown": "ADDRESS.OUTPUT"}`.
pub fn unknown(r: &Ref) -> Value {
    json!({ "unknown": format!("{}.{}", r.address, r.output.as_deref().unwrap_or("id")) })
}

pub fn is_unknown(v: &Value) -> bool {
    v.as_object().is_some_and(|o| o.len() == 1 && o.contains_key("unknown"))
}

/// A secret as the plan shows it: a digest (so a saved plan can still be checked for staleness), never the value.
pub fn is_sensitive(v: &Value) -> bool {
    v.as_object().is_some_and(|o| o.len() == 1 && o.contains_key("sensitive"))
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
    /// Its region ([`GLOBAL`] for global kinds).
    pub region: String,
    pub attrs: Attrs,
    /// Resources that must be ready before this one is created or updated although no attribute refers to
    /// them (switch a listener only once the new targets are healthy). Same region.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub depends_on: Vec<Address>,
    /// How long to wait for AWS, where the spec overrides the kind's defaults.
    #[serde(skip)]
    pub timeouts: Option<Timeouts>,
    /// The spec asks apply to wait for this resource's slow propagation (a CloudFront deployment) instead of
    /// reporting it as still in progress: [`Op::wait`].
    #[serde(skip)]
    pub wait: bool,
}

impl Desired {
    /// A resource in the stack's own region, its attributes given as a JSON object.
    pub fn in_home_region(stack: &Stack, address: Address, attrs: &Value) -> Desired {
        Desired::new(&stack.region, address, attrs)
    }

    pub fn new(region: &str, address: Address, attrs: &Value) -> Desired {
        Desired {
            address,
            region: region.to_string(),
            attrs: self::attrs(attrs),
            depends_on: Vec::new(),
            timeouts: None,
            wait: false,
        }
    }

    pub fn key(&self) -> Key {
        (self.region.clone(), self.address.clone())
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
    /// Values other resources may refer to that are not attributes of this one (a DNS name, an ARN, an
    /// endpoint).
    #[serde(skip_serializing_if = "Attrs::is_empty")]
    pub outputs: Attrs,
    /// Set while AWS is still bringing the resource up or changing it ("creating", "modifying"): it exists, but
    /// what depends on it must wait.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// What webscale last applied, as recorded on the resource (`crate::plan::drift`), taken out of its tags by the
    /// read; `None` for kinds without tags and resources applied before the record existed.
    #[serde(skip)]
    pub applied: Option<String>,
}

impl Live {
    pub fn new(address: Address, region: &str, id: impl Into<String>, attrs: Attrs) -> Live {
        Live {
            address,
            region: region.to_string(),
            id: id.into(),
            attrs,
            outputs: Attrs::new(),
            pending: None,
            applied: None,
        }
    }

    pub fn key(&self) -> Key {
        (self.region.clone(), self.address.clone())
    }
}

/// What a create returns: the new id and the outputs other resources may refer to.
#[derive(Debug, Clone, Default)]
pub struct Created {
    pub id: String,
    pub outputs: Attrs,
}

impl From<String> for Created {
    fn from(id: String) -> Created {
        Created { id, outputs: Attrs::new() }
    }
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

/// How long the engine waits for AWS to finish an operation of a kind before giving up (a re-run resumes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub create: Duration,
    pub update: Duration,
    pub delete: Duration,
}

impl Timeouts {
    pub const fn minutes(create: u64, update: u64, delete: u64) -> Timeouts {
        Timeouts {
            create: Duration::from_secs(create * 60),
            update: Duration::from_secs(update * 60),
            delete: Duration::from_secs(delete * 60),
        }
    }
}

/// Where a long wait reports the status AWS gives (`backing-up`), for the progress heartbeat; and where a kind
/// leaves a note for the operator (a CloudFront distribution still deploying when apply did not wait for it), which
/// apply collects into its report ([`crate::apply::Report::notes`]).
#[derive(Debug, Default)]
pub struct Progress {
    status: std::sync::Mutex<Option<String>>,
    notes: std::sync::Mutex<Vec<String>>,
}

impl Progress {
    pub fn set(&self, status: impl Into<String>) {
        *self.status.lock().unwrap_or_else(|e| e.into_inner()) = Some(status.into());
    }

    pub fn get(&self) -> Option<String> {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Leaves a note for the operator, shown after the run's summary.
    pub fn note(&self, text: impl Into<String>) {
        self.notes.lock().unwrap_or_else(|e| e.into_inner()).push(text.into());
    }

    /// The notes left so far.
    pub fn notes(&self) -> Vec<String> {
        self.notes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
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
    /// Identifies this create among every create of the address: the stack, the address and the replacement
    /// generation (the id being replaced, if any). Kinds pass it as the API's client token / caller reference, so
    /// a repeated call returns the first result instead of making a second resource.
    pub token: String,
    /// Digests of the write-only attributes' desired values, for the kind to keep on the resource.
    pub digests: BTreeMap<String, String>,
    /// `--skip-final-snapshot`: a delete of a resource holding data ([`Kind::data_loss`]) keeps no backup.
    pub skip_final_snapshot: bool,
    /// `apply --wait`, or the spec's per-resource setting ([`Desired::wait`]): a create or update waits for slow
    /// propagation (a CloudFront deployment, 5-20 minutes) instead of leaving a note that it is still in progress.
    pub wait: bool,
    /// The checked spec, for kinds whose work needs more than attributes can carry (the files of the static
    /// assets' folder: where each is on disk, its content type). `None` where a test drives a kind without one.
    pub stack: Option<&'a Stack>,
    /// Where a long create or update says how far it got ("uploaded 120 of 500 files"), for the heartbeat line;
    /// `None` where a test drives a kind directly.
    pub progress: Option<&'a Progress>,
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

    /// A client token for APIs that take one: at most `max` characters of `[A-Za-z0-9-]` (CreateRouteTable
    /// allows 64, CallerReference 128).
    pub fn client_token(&self, max: usize) -> String {
        self.token.chars().take(max).collect()
    }
}

/// The client token of one create: a digest of stack, address and replacement generation (so a replacement gets a
/// token of its own, and a repeat of the same create the same one).
pub fn create_token(stack: &str, address: &Address, replacing: Option<&str>) -> String {
    let d = digest(&json!([stack, address.as_str(), replacing]));
    format!("ws-{}", d.trim_start_matches("sha256:"))
}

fn decode<T: DeserializeOwned>(address: &Address, attrs: Option<&Attrs>) -> Result<T, CloudError> {
    let attrs = attrs.ok_or_else(|| CloudError::internal(format!("{address}: attributes missing")))?;
    // The path of the mismatch, never serde's message: it quotes the value, which may be a secret.
    serde_path_to_error::deserialize(Value::Object(attrs.clone())).map_err(|e| {
        CloudError::internal(format!("{address}: attributes do not match the kind's schema at `{}`", e.path()))
    })
}

/// Turns a typed attribute struct into the generic map.
pub fn attrs<T: Serialize>(value: &T) -> Attrs {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        // Attribute structs are plain structs of strings, numbers and lists: they always serialize to an object.
        _ => Attrs::new(),
    }
}

/// What deleting a resource loses that no spec can bring back (a database's rows): the plan marks such deletes and
/// replacements, and apply refuses them unless the operator names the resource with `--allow-data-loss`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataLoss {
    /// For a person: "database webscale-primary (postgres 16.4, 20 GiB)".
    pub what: String,
    /// AWS refuses the delete until this is turned off: webscale turns it off only for an address named with
    /// `--allow-data-loss`.
    pub deletion_protection: bool,
    /// The backup the delete keeps (unless `--skip-final-snapshot`), by the name it will have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub final_snapshot: Option<String>,
}

/// The one interface every resource kind implements.
#[async_trait]
pub trait Kind: Send + Sync {
    /// The kind's name in addresses (`subnet` in `subnet.public_a`).
    fn name(&self) -> &'static str;

    /// The AWS service it lives in (`ec2`), for messages when an endpoint does not serve it.
    fn service(&self) -> &'static str {
        "ec2"
    }

    /// Regional (read in every region of the stack) or global (read once, see [`GLOBAL`]).
    fn scope(&self) -> Scope {
        Scope::Regional
    }

    /// Every attribute the kind's desired and live resources carry, and the rules for each: what forces a
    /// replacement, what is secret, what cannot be read back, which lists are ordered.
    fn schema(&self) -> &'static [Attr];

    /// The resources of this kind the spec asks for.
    fn desired(&self, stack: &Stack) -> Vec<Desired>;

    fn replace_order(&self) -> ReplaceOrder {
        ReplaceOrder::DeleteFirst
    }

    /// A lookup: something the stack uses but does not own (an existing hosted zone adopted by name, a
    /// certificate by ARN, an AMI id from an SSM public parameter path). Its desired entries say what to look for;
    /// its read finds them (through `ctx.stack`) at plan time and reports what others refer to as outputs. A
    /// lookup is never created, changed or deleted; finding nothing fails the plan.
    fn is_lookup(&self) -> bool {
        false
    }

    /// Whether a live resource's id is its own. A kind that manages part of another resource (a group's rule
    /// set) reports its parent's id, and must not claim it: references to that id mean the parent.
    fn owns_id(&self) -> bool {
        true
    }

    /// Default waits for AWS: real durations, not the emulator's (RDS takes tens of minutes).
    fn timeouts(&self) -> Timeouts {
        Timeouts::minutes(10, 10, 20)
    }

    /// Whether an error means the resource is gone (deletes count it as done). The service's own spellings:
    /// `NoSuchDistribution`, `DBInstanceNotFound`, ...
    fn is_gone(&self, error: &CloudError) -> bool {
        error.is_not_found()
    }

    /// Everything of this kind that `ctx.cloud.stack()` owns in `region`, in a fixed number of calls however
    /// many resources there are (beyond pagination and batch limits). When `ctx.only` is set, only that address
    /// is asked for (a retried create checking for its one resource); kinds narrow their call where the API
    /// allows it, and the engine filters the rest.
    async fn read(&self, ctx: &ReadCtx<'_>, region: &str) -> Result<Vec<Live>, CloudError>;

    /// Creates the resource, tagged at creation, and returns its id (and outputs). Must leave something a later
    /// `read` finds even if interrupted halfway (so a re-run completes it as an update). Starts the work; waiting
    /// for AWS to finish it belongs in [`Kind::wait`], which does not hold an apply slot.
    async fn create(&self, cloud: &Cloud, op: &Op<'_>) -> Result<Created, CloudError>;

    /// Brings the attributes in `op.changed` to their desired values.
    async fn update(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError>;

    /// Deletes the resource; "already gone" counts as success.
    async fn delete(&self, cloud: &Cloud, op: &Op<'_>) -> Result<(), CloudError>;

    /// Waits until AWS has finished `phase` on resource `id` (available after a create, stable after an update,
    /// gone after a delete), reporting AWS's status through `progress`. The engine bounds it by the timeouts and
    /// stops it on Ctrl-C. Default: nothing to wait for.
    async fn wait(
        &self,
        _cloud: &Cloud,
        _op: &Op<'_>,
        _id: &str,
        _phase: crate::apply::Phase,
        _progress: &Progress,
    ) -> Result<(), CloudError> {
        Ok(())
    }

    /// Whether deleting `live` (or replacing it, which deletes it) destroys data: `None` for everything but the
    /// kinds that hold data nobody can recreate from the spec (a database primary; not its replicas, which copy it).
    fn data_loss(&self, _live: &Live) -> Option<DataLoss> {
        None
    }

    /// For an in-place update of `changed`, what an operator should know about when it takes effect ("waits for
    /// the maintenance window"), shown as the change's reason.
    fn update_note(&self, _desired: &Attrs, _changed: &[String]) -> Option<String> {
        None
    }

    /// Before a delete, at plan time: what the stack does not own that would keep it from completing (a subnet
    /// added by hand to the stack's VPC), described for a person. `owned` holds the ids of everything the stack owns.
    /// Asked only for resources being deleted; a destroy stops before deleting anything when any answer is not empty.
    async fn strangers(
        &self,
        _ctx: &ReadCtx<'_>,
        _live: &Live,
        _owned: &std::collections::HashSet<String>,
    ) -> Result<Vec<String>, CloudError> {
        Ok(Vec::new())
    }

    /// Before a create, at plan time: what the stack does not own that already sits where the resource would go (a
    /// DNS record of the same name made by hand), described for a person. webscale never takes over what it does
    /// not own: apply stops before starting while any answer is not empty, like a blocked delete.
    async fn occupied(&self, _ctx: &ReadCtx<'_>, _desired: &Desired) -> Result<Vec<String>, CloudError> {
        Ok(Vec::new())
    }

    /// Before a create, at plan time: why AWS would refuse it for a reason only live AWS knows (a subnet in an
    /// availability zone the region does not have), each said with what would be valid. Apply refuses to start
    /// while any answer is not empty, so nothing is half made.
    async fn unavailable(&self, _ctx: &ReadCtx<'_>, _desired: &Desired) -> Result<Vec<String>, CloudError> {
        Ok(Vec::new())
    }

    /// After a delete gave up on a dependency: what still holds the resource, for the error message.
    async fn blockers(&self, _cloud: &Cloud, _op: &Op<'_>) -> Option<String> {
        None
    }

    /// `webscale import`: adopts the existing resource `id` in `region` (made by hand) by giving it `tags` (the
    /// ownership pair), after checking that it exists, is of this kind and belongs to no stack yet. The engine has
    /// already checked that the address is declared and that nothing live claims it.
    async fn adopt(&self, _cloud: &Cloud, _region: &str, _id: &str, _tags: &tags::Tags) -> Result<(), CloudError> {
        Err(CloudError::internal(format!("import is not supported for {}", self.name())))
    }
}

/// Every desired resource of the stack, across the registry's kinds.
pub fn desired(stack: &Stack) -> Vec<Desired> {
    desired_of(REGISTRY, stack)
}

/// Every desired resource of the stack, across `kinds`.
pub fn desired_of(kinds: Kinds, stack: &Stack) -> Vec<Desired> {
    kinds.iter().flat_map(|k| k.desired(stack)).collect()
}

/// Deletes are idempotent: a resource that is already gone counts as deleted.
pub fn gone_ok<T>(result: Result<T, CloudError>) -> Result<(), CloudError> {
    match result {
        Err(e) if !e.is_not_found() => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// A kind's schema and the attributes it actually produces are one list: an attribute missing from the schema
    /// would silently get the plain rules (a forced replacement or a secret lost), and a schema entry no resource
    /// carries is a misspelling. Checked for every kind of the registry on the reference stack.
    #[test]
    fn every_kinds_schema_lists_exactly_the_attributes_it_produces() {
        let mut desired = crate::plan::diff::tests::reference_desired();
        // The reference stack owns its zone; the adopted zone (a lookup) is its `create_zone = false` variant.
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/webscale.toml");
        let text = std::fs::read_to_string(file).expect("reference template");
        let text = text.replacen("[dns]", "[dns]\ncreate_zone = false", 1);
        let adopting = crate::spec::parse(std::path::Path::new(file), &text, &Default::default()).expect("it parses");
        desired.extend(desired_of(&[&dns_zone::DnsZone], &adopting));
        // The certificate is looked up only for the static assets' aliases, which the reference stack has none of.
        let text =
            text.replacen("[static_assets]\n", "[static_assets]\naliases = [\"static.webscale.example.com\"]\n", 1);
        let aliased = crate::spec::parse(std::path::Path::new(file), &text, &Default::default()).expect("it parses");
        desired.extend(desired_of(&[&certificate::Certificate], &aliased));
        for kind in REGISTRY {
            let produced: BTreeSet<&str> = desired
                .iter()
                .filter(|d| d.address.kind() == kind.name())
                .flat_map(|d| d.attrs.keys().map(String::as_str))
                .collect();
            let listed: BTreeSet<&str> = kind.schema().iter().map(|a| a.name).collect();
            assert!(!produced.is_empty(), "the reference stack has no {}", kind.name());
            assert_eq!(produced, listed, "{}: schema vs desired attributes", kind.name());
            assert_eq!(listed.len(), kind.schema().len(), "{}: an attribute listed twice", kind.name());
        }
    }

    #[test]
    fn references_carry_region_and_output_only_when_given() {
        let a = Address::new("load_balancer", "web");
        assert_eq!(as_ref(&reference(&a)), Some(Ref { address: a.clone(), region: None, output: None }));
        let out = as_ref(&output_reference(&a, "dns_name")).unwrap();
        assert_eq!((out.address, out.output.as_deref(), out.region), (a.clone(), Some("dns_name"), None));
        let there = as_ref(&reference_in(&a, "eu-west-1")).unwrap();
        assert_eq!(there.region.as_deref(), Some("eu-west-1"));
        assert_eq!(as_ref(&json!({"ref": "load_balancer.web", "other": 1})), None, "not a reference");
        assert_eq!(as_reference(&json!({"id": "vpc-1"})), None);
    }

    #[test]
    fn a_reference_resolves_in_its_own_region_unless_it_names_one() {
        let vpc = Ref { address: Address::new("vpc", "main"), region: None, output: None };
        assert_eq!(target(REGISTRY, "eu-west-1", "us-east-1", &vpc).0, "eu-west-1");
        assert_eq!(target(REGISTRY, GLOBAL, "us-east-1", &vpc).0, "us-east-1", "from a global resource: home");
        let named = Ref { region: Some("ap-south-1".into()), ..vpc };
        assert_eq!(target(REGISTRY, "eu-west-1", "us-east-1", &named).0, "ap-south-1");
    }

    #[test]
    fn client_tokens_differ_per_address_and_replacement_and_repeat_for_the_same_create() {
        let a = Address::new("route_table", "public");
        let first = create_token("shop", &a, None);
        assert_eq!(first, create_token("shop", &a, None), "a repeat of the same create gets the same token");
        assert_ne!(first, create_token("shop", &a, Some("rtb-old")), "a replacement gets its own");
        assert_ne!(first, create_token("shop", &Address::new("route_table", "private"), None));
        assert_ne!(first, create_token("other", &a, None));
        assert!(first.len() <= 70 && first.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'), "{first}");
    }
}
