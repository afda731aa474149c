//! The fake EC2: the state of one region ([`World`]) and the SDK client that answers every call from it
//! ([`Fake::ec2_client`], one mock rule per operation). A delete really removes, a rule really references, a
//! gateway really is attached, so the engine is checked end to end against the rules real AWS enforces. Each
//! handler says which rule it enforces where it enforces it; in short:
//!
//! Security groups
//! - Every VPC has a group named `default` (untagged); it cannot be deleted (`CannotDelete`) and goes with the VPC.
//! - CreateSecurityGroup: a group name is unique in its VPC (`InvalidGroup.Duplicate`); a new group comes with
//!   AWS's allow-all egress rule.
//! - DeleteSecurityGroup: `DependencyViolation` while any other group's rule references the group (and while ENIs
//!   drain, when a test asks for it); `InvalidGroup.NotFound` once it is gone.
//! - Authorize/Revoke: one request is all or nothing. Revoking a rule that is not there fails the whole request
//!   with `InvalidPermission.NotFound` and revokes nothing (documented for non-default VPCs); authorizing a rule
//!   that exists fails it with `InvalidPermission.Duplicate` and adds nothing. AWS reports tcp, udp and icmp by
//!   name whichever spelling the request used, every protocol as `-1`, and refuses names it does not know (`all`).
//!
//! Network ACLs
//! - DeleteNetworkAcl: `DependencyViolation` while a subnet is still associated with the ACL.
//! - Entries take protocol numbers (AWS reports `6`, `-1`); a number is unique per direction.
//!
//! Internet gateways and route tables
//! - AttachInternetGateway: a gateway is attached to one VPC, a VPC has one gateway (`Resource.AlreadyAssociated`).
//! - DetachInternetGateway: `Gateway.NotAttached` unless attached to that VPC.
//! - DeleteInternetGateway: `DependencyViolation` while attached.
//! - CreateRouteTable: idempotent by ClientToken (the same token and parameters return the first table, other
//!   parameters fail with `IdempotentParameterMismatch`).
//! - CreateRoute/ReplaceRoute: the gateway must be attached to the table's VPC; one route per destination
//!   (`RouteAlreadyExists`); DeleteRoute of a missing route fails with `InvalidRoute.NotFound`.
//! - AssociateRouteTable: a subnet has at most one explicit association (`Resource.AlreadyAssociated`); the main
//!   table's association cannot be removed.
//! - DeleteRouteTable: `DependencyViolation` while subnets are associated, and always for the VPC's main table.
//!
//! Subnets and VPCs
//! - CreateSubnet: the new subnet starts on the VPC's default ACL (and, implicitly, its main route table).
//! - DeleteSubnet: also removes the subnet's ACL and route table associations (they go with it).
//! - DeleteVpc: `DependencyViolation` while subnets, non-default security groups or ACLs, an attached gateway or
//!   non-main route tables remain; the default group, the default ACL and the main route table go with the VPC.
//!
//! Reads
//! - Every describe that lists by tag (the kinds' reads) is paged, [`PAGE`] items a page, the rest behind a
//!   NextToken honoured on the next request, so a read that drops NextToken loses resources in these tests. Real
//!   AWS pages when a request sets MaxResults; without it the answer is whole (but may time out or be throttled on a
//!   big account), and the fake answers every other describe whole, as the one-off lookups by `vpc-id` expect.
//! - NAT gateways and Elastic IPs are not modeled: the worlds hold none, and their describes answer empty.
//! - Nor are instances and volumes (the instance kind's tests have their own fake).
//! - Listings are oldest first (AWS promises no order; see [`World::oldest_first`]).
//! - What a create made just now may be left out of the next tag-filtered describes ([`Fault::AnswerLost`]): AWS's
//!   reads are eventually consistent.
//!
//! Every call is logged ([`Call`]) so a test can assert order, and a test can make the next call of an operation
//! fail as AWS sometimes does ([`Fault`]). An operation the fake does not model makes the mock interceptor panic,
//! which fails the test loudly rather than letting it pass on a guess.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use aws_config::Region;
use aws_sdk_ec2::config::Credentials;
use aws_sdk_ec2::error::{ErrorMetadata, ProvideErrorMetadata};
use aws_sdk_ec2::operation as op;
use aws_sdk_ec2::types::{
    AttachmentStatus, AttributeBooleanValue, Filter, InternetGateway, InternetGatewayAttachment, IpPermission, IpRange,
    NetworkAcl, NetworkAclAssociation, NetworkAclEntry, PortRange, ResourceType, Route, RouteOrigin, RouteState,
    RouteTable, RouteTableAssociation, RouteTableAssociationState, RouteTableAssociationStateCode, RuleAction,
    SecurityGroup, Subnet, SubnetState, Tag, TagSpecification, UserIdGroupPair, Vpc, VpcAttributeName, VpcState,
};
use aws_smithy_mocks::{MockResponse, MockResponseInterceptor, RuleMode, create_mock_http_client, mock};
use aws_smithy_types::retry::RetryConfig;
use webscale::aws::{Clients, Cloud, RetryPolicy};

use super::{REGION, unused_clients};

/// At most this many items in one page of a describe.
pub(super) const PAGE: usize = 2;

/// One call the code made, as the fake saw it.
#[derive(Debug, Clone)]
pub(super) struct Call {
    pub(super) op: &'static str,
    /// What it acted on: a group, ACL, VPC, subnet, gateway or route table id; for the association calls
    /// (ReplaceNetworkAclAssociation, Associate/Disassociate/ReplaceRouteTableAssociation), the subnet moved.
    pub(super) on: String,
    /// Other ids the request named: groups its rules reference; the ACL or route table a subnet is moved to; the
    /// VPC a gateway is attached to or detached from; a route's destination and gateway.
    pub(super) refs: Vec<String>,
    /// The AWS error code it was answered with.
    pub(super) error: Option<String>,
    /// For network ACL entry calls: (egress, rule number).
    pub(super) entry: Option<(bool, i32)>,
    /// For CreateRouteTable: the client token it carried.
    pub(super) token: Option<String>,
}

/// A failure a test arranges for the next call of one operation ([`World::fail_next`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fault {
    /// AWS carries the call out, but the caller gets `InternalError` (a 500) instead of the result: as good as an
    /// answer lost on the way. What the call made stays out of the next `unseen_for` tag-filtered describes that
    /// would list it (AWS's reads are eventually consistent).
    AnswerLost { unseen_for: usize },
    /// AWS answers `ServiceUnavailable` (a 503) and does nothing.
    Unavailable,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Peer {
    Cidr(String),
    Group(String),
}

/// An inclusive port range, absent where the protocol has none.
pub(super) type Ports = Option<(i32, i32)>;

/// One security group rule, one source: how AWS matches rules in Authorize and Revoke.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Rule {
    /// As DescribeSecurityGroups reports it: `tcp`, `udp`, `icmp`, `-1` (every protocol), other numbers as is.
    pub(super) protocol: String,
    /// None for `-1` (every port).
    pub(super) ports: Ports,
    pub(super) peer: Peer,
}

impl Rule {
    pub(super) fn tcp(port: i32, peer: Peer) -> Rule {
        Rule { protocol: "tcp".into(), ports: Some((port, port)), peer }
    }

    /// The egress rule AWS gives every new group: everything, everywhere.
    pub(super) fn allow_all_egress() -> Rule {
        Rule { protocol: "-1".into(), ports: None, peer: Peer::Cidr("0.0.0.0/0".into()) }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Group {
    pub(super) vpc: String,
    /// Unique in its VPC.
    pub(super) name: String,
    pub(super) description: String,
    pub(super) tags: BTreeMap<String, String>,
    pub(super) ingress: Vec<Rule>,
    pub(super) egress: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub(super) struct SubnetRec {
    pub(super) vpc: String,
    pub(super) cidr: String,
    pub(super) zone: String,
    pub(super) public: bool,
    pub(super) tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub(super) struct Entry {
    pub(super) number: i32,
    pub(super) egress: bool,
    /// The IANA number, as AWS reports it (`-1`, `6`).
    pub(super) protocol: String,
    pub(super) ports: Option<(i32, i32)>,
    pub(super) cidr: String,
    pub(super) allow: bool,
}

impl Entry {
    /// The entry AWS puts in both directions of a VPC's default ACL: rule 100, allow everything.
    pub(super) fn allow_all(egress: bool) -> Entry {
        Entry { number: 100, egress, protocol: "-1".into(), ports: None, cidr: "0.0.0.0/0".into(), allow: true }
    }
}

#[derive(Debug, Clone)]
pub(super) struct Acl {
    pub(super) vpc: String,
    pub(super) default: bool,
    pub(super) tags: BTreeMap<String, String>,
    pub(super) entries: Vec<Entry>,
    /// Association id -> subnet id.
    pub(super) associations: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub(super) struct VpcRec {
    pub(super) cidr: String,
    pub(super) dns_hostnames: bool,
    pub(super) tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub(super) struct Gateway {
    /// The VPC it is attached to.
    pub(super) vpc: Option<String>,
    pub(super) tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub(super) struct Table {
    pub(super) vpc: String,
    /// For the VPC's main route table, its main association's id. AWS makes that table with the VPC; it routes every
    /// subnet without an explicit association, goes with the VPC and can never be deleted on its own.
    pub(super) main: Option<String>,
    pub(super) tags: BTreeMap<String, String>,
    /// Destination CIDR -> gateway id: the routes made by CreateRoute. The VPC's local route is implied.
    pub(super) routes: BTreeMap<String, String>,
    /// Explicit associations: association id -> subnet id.
    pub(super) associations: BTreeMap<String, String>,
}

/// EC2 in one region, as far as these tests need it.
#[derive(Debug, Default)]
pub(super) struct World {
    pub(super) vpcs: BTreeMap<String, VpcRec>,
    pub(super) subnets: BTreeMap<String, SubnetRec>,
    pub(super) groups: BTreeMap<String, Group>,
    pub(super) acls: BTreeMap<String, Acl>,
    pub(super) gateways: BTreeMap<String, Gateway>,
    pub(super) tables: BTreeMap<String, Table>,
    /// CreateRouteTable client token -> (the request's VPC and tags, the table it made).
    tokens: BTreeMap<String, ((String, BTreeMap<String, String>), String)>,
    /// Group id -> how many more deletes are refused because ENIs are still draining.
    pub(super) draining: HashMap<String, usize>,
    /// Operation -> the failure its next call meets.
    faults: HashMap<&'static str, Fault>,
    /// Resource id -> how many more tag-filtered describes leave it out.
    unseen: HashMap<String, usize>,
    /// Id -> when the fake made it (the hand-written world's resources are older than everything it makes).
    born: HashMap<String, usize>,
    pub(super) log: Vec<Call>,
    /// Every operation called, in order, one entry per request (so one per page of a describe).
    pub(super) ops: Vec<&'static str>,
    next_id: usize,
}

/// The fake EC2 shared by the client's mock rules and the test.
#[derive(Clone, Default)]
pub(super) struct Fake(Arc<Mutex<World>>);

impl Fake {
    pub(super) fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.world())
    }

    fn world(&self) -> MutexGuard<'_, World> {
        self.0.lock().unwrap()
    }

    pub(super) fn calls(&self) -> Vec<Call> {
        self.world().log.clone()
    }

    /// The calls of `op`, in order.
    pub(super) fn calls_of(&self, op: &str) -> Vec<Call> {
        self.world().log.iter().filter(|c| c.op == op).cloned().collect()
    }

    pub(super) fn count(&self, op: &str, on: &str) -> usize {
        self.world().log.iter().filter(|c| c.op == op && c.on == on).count()
    }

    /// The error codes `op` on `on` was answered with, in order.
    pub(super) fn errors(&self, op: &str, on: &str) -> Vec<String> {
        self.world().log.iter().filter(|c| c.op == op && c.on == on).filter_map(|c| c.error.clone()).collect()
    }

    /// Where in the log `op` on `on` first succeeded.
    pub(super) fn first_success(&self, op: &str, on: &str) -> Option<usize> {
        self.world().log.iter().position(|c| c.op == op && c.on == on && c.error.is_none())
    }

    /// A cloud whose EC2 client answers from this fake; every other client must never be called.
    pub(super) fn cloud(&self, retry: RetryPolicy) -> Cloud {
        let clients = Clients { ec2: self.ec2_client(), ..unused_clients() };
        Cloud::from_clients("mocked", REGION, clients, retry)
    }

    /// An EC2 client whose every call is answered by the fake: one mock rule per operation.
    pub(super) fn ec2_client(&self) -> aws_sdk_ec2::Client {
        use aws_sdk_ec2::Client as Ec2;
        macro_rules! serve {
            ($op:ident) => {{
                let fake = self.clone();
                mock!(Ec2::$op).then_compute_response(move |req| {
                    let mut world = fake.world();
                    world.ops.push(stringify!($op));
                    world.$op(req)
                })
            }};
        }
        let rules = [
            serve!(describe_vpcs),
            serve!(describe_vpc_attribute),
            serve!(describe_internet_gateways),
            serve!(describe_subnets),
            serve!(describe_availability_zones),
            serve!(describe_route_tables),
            serve!(describe_security_groups),
            serve!(describe_network_acls),
            serve!(describe_network_interfaces),
            serve!(describe_nat_gateways),
            serve!(describe_addresses),
            serve!(describe_instances),
            serve!(describe_volumes),
            serve!(create_subnet),
            serve!(delete_subnet),
            serve!(delete_vpc),
            serve!(create_security_group),
            serve!(delete_security_group),
            serve!(authorize_security_group_ingress),
            serve!(authorize_security_group_egress),
            serve!(revoke_security_group_ingress),
            serve!(revoke_security_group_egress),
            serve!(replace_network_acl_association),
            serve!(delete_network_acl),
            serve!(create_network_acl_entry),
            serve!(replace_network_acl_entry),
            serve!(delete_network_acl_entry),
            serve!(create_internet_gateway),
            serve!(attach_internet_gateway),
            serve!(detach_internet_gateway),
            serve!(delete_internet_gateway),
            serve!(create_route_table),
            serve!(delete_route_table),
            serve!(create_route),
            serve!(replace_route),
            serve!(delete_route),
            serve!(associate_route_table),
            serve!(disassociate_route_table),
            serve!(replace_route_table_association),
            serve!(create_tags),
        ];
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for rule in &rules {
            interceptor = interceptor.with_rule(rule);
        }
        let config = aws_sdk_ec2::Config::builder()
            .behavior_version_latest()
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            // One logged call per call the code makes: the SDK's own retries would hide attempts.
            .retry_config(RetryConfig::disabled())
            .http_client(create_mock_http_client())
            .interceptor(interceptor)
            .build();
        aws_sdk_ec2::Client::from_conf(config)
    }
}

// ---- the world's own bookkeeping --------------------------------------------------------------------------------

impl World {
    /// The next call of `op` (`"CreateSecurityGroup"`) meets `fault`.
    pub(super) fn fail_next(&mut self, op: &'static str, fault: Fault) {
        self.faults.insert(op, fault);
    }

    fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        let id = format!("{prefix}-{}", self.next_id);
        self.born.insert(id.clone(), self.next_id);
        id
    }

    /// A listing's ids, oldest first. AWS promises no order; oldest first is the one in which a reader that takes
    /// the first resource at an address gets the old one of a create-first replacement, so such a bug shows.
    fn oldest_first(&self, mut ids: Vec<String>) -> Vec<String> {
        ids.sort_by_key(|id| (self.born.get(id).copied().unwrap_or(0), id.clone()));
        ids
    }

    pub(super) fn group(&mut self, id: &str) -> &mut Group {
        self.groups.get_mut(id).unwrap_or_else(|| panic!("no group {id}"))
    }

    /// A new subnet starts on its VPC's default ACL.
    fn add_subnet(&mut self, id: String, subnet: SubnetRec) {
        let default = self.default_acl(&subnet.vpc).expect("the VPC has a default ACL");
        let association = self.new_id("aclassoc");
        self.acls.get_mut(&default).unwrap().associations.insert(association, id.clone());
        self.subnets.insert(id, subnet);
    }

    /// Deleting a subnet on real AWS deletes its ACL and route table associations with it.
    pub(super) fn remove_subnet(&mut self, id: &str) {
        self.subnets.remove(id);
        for acl in self.acls.values_mut() {
            acl.associations.retain(|_, subnet| subnet != id);
        }
        for table in self.tables.values_mut() {
            table.associations.retain(|_, subnet| subnet != id);
        }
    }

    fn default_acl(&self, vpc: &str) -> Option<String> {
        self.acls.iter().find(|(_, a)| a.vpc == vpc && a.default).map(|(id, _)| id.clone())
    }

    /// (association id, ACL id) of a subnet's one association.
    fn association_of(&self, subnet: &str) -> Option<(String, String)> {
        self.acls.iter().find_map(|(acl, a)| {
            a.associations.iter().find(|(_, s)| *s == subnet).map(|(assoc, _)| (assoc.clone(), acl.clone()))
        })
    }

    pub(super) fn acl_of(&self, subnet: &str) -> Option<String> {
        self.association_of(subnet).map(|(_, acl)| acl)
    }

    pub(super) fn subnets_of(&self, acl: &str) -> Vec<String> {
        let mut out: Vec<String> = self.acls[acl].associations.values().cloned().collect();
        out.sort();
        out
    }

    pub(super) fn subnet_with_cidr(&self, cidr: &str) -> Option<String> {
        self.subnets.iter().find(|(_, s)| s.cidr == cidr).map(|(id, _)| id.clone())
    }

    /// Moves an association to `acl`; AWS gives the association a new id.
    fn move_association(&mut self, association: &str, acl: &str) -> String {
        let subnet = self.acls.values_mut().find_map(|a| a.associations.remove(association)).expect("association");
        let new = self.new_id("aclassoc");
        self.acls.get_mut(acl).expect("target ACL").associations.insert(new.clone(), subnet);
        new
    }

    /// The route table a subnet is explicitly associated with, if any.
    pub(super) fn table_of(&self, subnet: &str) -> Option<String> {
        self.tables.iter().find(|(_, t)| t.associations.values().any(|s| s == subnet)).map(|(id, _)| id.clone())
    }

    /// The subnets explicitly associated with a route table, sorted.
    pub(super) fn subnets_on_table(&self, table: &str) -> Vec<String> {
        let mut out: Vec<String> = self.tables[table].associations.values().cloned().collect();
        out.sort();
        out
    }

    /// Ids of the resources carrying `webscale:address = address`, across every kind.
    pub(super) fn at_address(&self, address: &str) -> Vec<String> {
        let at = |tags: &BTreeMap<String, String>| tags.get("webscale:address").map(String::as_str) == Some(address);
        let mut out: Vec<String> = self
            .vpcs
            .iter()
            .filter(|(_, r)| at(&r.tags))
            .map(|(id, _)| id)
            .chain(self.subnets.iter().filter(|(_, r)| at(&r.tags)).map(|(id, _)| id))
            .chain(self.groups.iter().filter(|(_, r)| at(&r.tags)).map(|(id, _)| id))
            .chain(self.acls.iter().filter(|(_, r)| at(&r.tags)).map(|(id, _)| id))
            .chain(self.gateways.iter().filter(|(_, r)| at(&r.tags)).map(|(id, _)| id))
            .chain(self.tables.iter().filter(|(_, r)| at(&r.tags)).map(|(id, _)| id))
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// Groups other than `id` whose rules name `id`.
    pub(super) fn referencing(&self, id: &str) -> Vec<String> {
        let names = |r: &Rule| r.peer == Peer::Group(id.to_string());
        self.groups
            .iter()
            .filter(|(other, g)| *other != id && g.ingress.iter().chain(&g.egress).any(names))
            .map(|(other, _)| other.clone())
            .collect()
    }

    /// The ids a listing shows, oldest first: a describe by tag leaves out what was created a moment ago (see
    /// [`Fault::AnswerLost`]), and each first page that does so counts the delay down.
    fn visible(&mut self, ids: Vec<String>, filters: &[Filter], first_page: bool) -> Vec<String> {
        let ids = self.oldest_first(ids);
        if !filters.iter().any(|f| f.name().is_some_and(|n| n.starts_with("tag:"))) {
            return ids;
        }
        ids.into_iter()
            .filter(|id| match self.unseen.get_mut(id) {
                Some(n) if *n > 0 => {
                    if first_page {
                        *n -= 1;
                    }
                    false
                }
                _ => true,
            })
            .collect()
    }

    /// A create under the fault a test arranged for it: `Unavailable` answers 503 and does not call `create`;
    /// `AnswerLost` calls it, then answers 500 instead of its result. `create` returns the new id and the answer.
    fn create_with_fault<O, E: ProvideErrorMetadata>(
        &mut self,
        op: &'static str,
        generic: fn(ErrorMetadata) -> E,
        create: impl FnOnce(&mut World) -> (String, MockResponse<O, E>),
    ) -> MockResponse<O, E> {
        let (on, response) = match self.faults.remove(op) {
            Some(Fault::Unavailable) => {
                (String::new(), fail(generic, "ServiceUnavailable", "The service is unavailable. Try again shortly."))
            }
            Some(Fault::AnswerLost { unseen_for }) => match create(self) {
                (id, MockResponse::Output(_)) => {
                    self.unseen.insert(id.clone(), unseen_for);
                    (id, fail(generic, "InternalError", "An internal error has occurred."))
                }
                other => other,
            },
            None => create(self),
        };
        self.record(op, &on, vec![], response)
    }

    fn record<O, E: ProvideErrorMetadata>(
        &mut self,
        op: &'static str,
        on: &str,
        refs: Vec<String>,
        response: MockResponse<O, E>,
    ) -> MockResponse<O, E> {
        let error = match &response {
            MockResponse::Error(e) => Some(e.code().unwrap_or("(no code)").to_string()),
            _ => None,
        };
        self.log.push(Call { op, on: on.to_string(), refs, error, entry: None, token: None });
        response
    }

    /// `record` for the entry calls, which also note the entry's direction and number.
    fn record_entry<O, E: ProvideErrorMetadata>(
        &mut self,
        op: &'static str,
        acl: &str,
        entry: (bool, i32),
        response: MockResponse<O, E>,
    ) -> MockResponse<O, E> {
        let response = self.record(op, acl, vec![], response);
        if let Some(call) = self.log.last_mut() {
            call.entry = Some(entry);
        }
        response
    }
}

// ---- shared by the handlers -------------------------------------------------------------------------------------

/// An AWS error response with `code`, for any operation (`generic` is every EC2 operation error's constructor).
fn fail<O, E>(generic: fn(ErrorMetadata) -> E, code: &str, message: impl Into<String>) -> MockResponse<O, E> {
    MockResponse::Error(generic(ErrorMetadata::builder().code(code).message(message).build()))
}

fn tags(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter().map(|(k, v)| Tag::builder().key(k).value(v).build()).collect()
}

/// The tags a create's TagSpecifications put on the new resource. A specification for another resource type would
/// tag something else (AWS refuses it): the test fails.
fn tags_in(specs: &[TagSpecification], kind: ResourceType) -> BTreeMap<String, String> {
    for s in specs {
        assert_eq!(s.resource_type(), Some(&kind), "a TagSpecification for another resource type: {s:?}");
    }
    specs.iter().flat_map(|s| s.tags()).filter_map(|t| Some((t.key()?.to_string(), t.value()?.to_string()))).collect()
}

/// Whether a resource passes a describe's filters: `tag:KEY`, or one of `fields` (`vpc-id`, ...) naming one of
/// the resource's values. A filter the fake does not know fails the test: AWS would apply it, the fake would not.
fn passes(filters: &[Filter], tags: &BTreeMap<String, String>, fields: &[(&str, Vec<&str>)]) -> bool {
    filters.iter().all(|f| {
        let name = f.name().unwrap_or_default();
        let values: Vec<&str> = if let Some(key) = name.strip_prefix("tag:") {
            tags.get(key).map(String::as_str).into_iter().collect()
        } else if let Some((_, values)) = fields.iter().find(|(field, _)| *field == name) {
            values.clone()
        } else {
            panic!("the fake EC2 does not model the describe filter {name:?} here")
        };
        values.iter().any(|v| f.values().iter().any(|want| want == v))
    })
}

/// One page of a listing: from the offset `token` names (a token this operation issued), and the token for the
/// rest, if anything is left. Only a listing by tag is paged (the kinds' reads, which follow NextToken); any other
/// is answered whole, as AWS answers a request that sets no MaxResults (the one-off lookups by `vpc-id` or
/// `association.subnet-id` rely on that).
fn page<T>(op: &str, items: Vec<T>, filters: &[Filter], token: Option<&str>) -> (Vec<T>, Option<String>) {
    if !filters.iter().any(|f| f.name().is_some_and(|n| n.starts_with("tag:"))) {
        assert!(token.is_none(), "{op} was sent a NextToken for a listing it never paged");
        return (items, None);
    }
    let start = match token {
        None => 0,
        Some(t) => t
            .strip_prefix(op)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{op} was sent a NextToken it never issued: {t:?}")),
    };
    let next = (start + PAGE < items.len()).then(|| format!("{op}/{}", start + PAGE));
    (items.into_iter().skip(start).take(PAGE).collect(), next)
}

/// A security group rule's protocol as AWS reports it, from the spellings AWS accepts in a request: tcp, udp and
/// icmp by name or number (reported by name), `-1` for every protocol, any other protocol number as is. A name AWS
/// does not know (`all`) is refused.
fn sg_protocol(p: &str) -> Result<String, String> {
    match p.to_ascii_lowercase().as_str() {
        "tcp" | "6" => Ok("tcp".into()),
        "udp" | "17" => Ok("udp".into()),
        "icmp" | "1" => Ok("icmp".into()),
        "-1" => Ok("-1".into()),
        n if n.parse::<u8>().is_ok() => Ok(n.into()),
        other => Err(format!("Invalid value '{other}' for IP protocol. Unknown protocol.")),
    }
}

/// A network ACL entry's protocol as AWS reports it: a number (`-1` for every protocol). Requests may name tcp,
/// udp or icmp instead.
fn acl_protocol(p: &str) -> Result<String, String> {
    match p.to_ascii_lowercase().as_str() {
        "tcp" | "6" => Ok("6".into()),
        "udp" | "17" => Ok("17".into()),
        "icmp" | "1" => Ok("1".into()),
        "-1" => Ok("-1".into()),
        n if n.parse::<u8>().is_ok() => Ok(n.into()),
        other => Err(format!("Invalid value '{other}' for protocol.")),
    }
}

/// The rules a request's permissions name, one per source; AWS's error code and message for what it refuses.
fn rules_in(perms: &[IpPermission]) -> Result<Vec<Rule>, (&'static str, String)> {
    let mut out = Vec::new();
    for p in perms {
        assert!(
            p.ipv6_ranges().is_empty() && p.prefix_list_ids().is_empty(),
            "the fake EC2 models IPv4 and group sources only: {p:?}"
        );
        let protocol = sg_protocol(p.ip_protocol().unwrap_or_default()).map_err(|m| ("InvalidParameterValue", m))?;
        let ports = match (protocol.as_str(), p.from_port(), p.to_port()) {
            // Every protocol means every port, whatever the request says.
            ("-1", _, _) => None,
            (_, Some(from), Some(to)) => Some((from, to)),
            _ => panic!("AWS requires ports for {protocol}: {p:?}"),
        };
        let rule = |peer| Rule { protocol: protocol.clone(), ports, peer };
        out.extend(p.ip_ranges().iter().filter_map(|r| r.cidr_ip()).map(|c| rule(Peer::Cidr(c.into()))));
        out.extend(p.user_id_group_pairs().iter().filter_map(|g| g.group_id()).map(|g| rule(Peer::Group(g.into()))));
    }
    Ok(out)
}

/// Rules as DescribeSecurityGroups reports them: sources that share protocol and ports in one permission.
fn permissions(rules: &[Rule]) -> Vec<IpPermission> {
    let mut blocks: BTreeMap<(&str, Ports), Vec<&Peer>> = BTreeMap::new();
    for r in rules {
        blocks.entry((r.protocol.as_str(), r.ports)).or_default().push(&r.peer);
    }
    blocks
        .into_iter()
        .map(|((protocol, ports), peers)| {
            let mut p = IpPermission::builder().ip_protocol(protocol);
            if let Some((from, to)) = ports {
                p = p.from_port(from).to_port(to);
            }
            for peer in peers {
                p = match peer {
                    Peer::Cidr(c) => p.ip_ranges(IpRange::builder().cidr_ip(c).build()),
                    Peer::Group(g) => p.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).build()),
                };
            }
            p.build()
        })
        .collect()
}

/// The groups a request's rules name (for the log).
fn group_refs(perms: &[IpPermission]) -> Vec<String> {
    let set: BTreeSet<String> =
        perms.iter().flat_map(|p| p.user_id_group_pairs()).filter_map(|g| g.group_id()).map(str::to_string).collect();
    set.into_iter().collect()
}

#[derive(Clone, Copy)]
enum Dir {
    Ingress,
    Egress,
}

/// The shared part of Authorize/Revoke Ingress/Egress: AWS applies a request's rules all or none.
fn change_rules(
    w: &mut World,
    group: Option<&str>,
    perms: &[IpPermission],
    dir: Dir,
    grant: bool,
) -> Result<(), (&'static str, String)> {
    let group = group.unwrap_or_default();
    let requested = rules_in(perms)?;
    let Some(g) = w.groups.get(group) else {
        return Err(("InvalidGroup.NotFound", format!("The security group '{group}' does not exist")));
    };
    if grant {
        for r in &requested {
            if let Peer::Group(other) = &r.peer
                && !w.groups.contains_key(other)
            {
                return Err(("InvalidGroup.NotFound", format!("The security group '{other}' does not exist")));
            }
        }
    }
    let have = match dir {
        Dir::Ingress => &g.ingress,
        Dir::Egress => &g.egress,
    };
    if grant {
        // One rule already there fails the request; none of its rules is added.
        if let Some(dup) = requested.iter().find(|r| have.contains(r)) {
            return Err(("InvalidPermission.Duplicate", format!("the specified rule {dup:?} already exists")));
        }
    } else if let Some(missing) = requested.iter().find(|r| !have.contains(r)) {
        // Non-default VPC: one unknown rule fails the request and no rule is revoked (EC2 API reference).
        return Err((
            "InvalidPermission.NotFound",
            format!("The specified rule {missing:?} does not exist in this security group"),
        ));
    }
    let g = w.group(group);
    let list = match dir {
        Dir::Ingress => &mut g.ingress,
        Dir::Egress => &mut g.egress,
    };
    if grant {
        list.extend(requested);
    } else {
        list.retain(|r| !requested.contains(r));
    }
    Ok(())
}

/// An entry call's ACL, direction and number; AWS requires all three.
fn entry_key(acl: Option<&str>, egress: Option<bool>, number: Option<i32>) -> (String, bool, i32) {
    (
        acl.expect("AWS requires NetworkAclId").to_string(),
        egress.expect("AWS requires Egress"),
        number.expect("AWS requires RuleNumber"),
    )
}

/// The entry a Create/ReplaceNetworkAclEntry request describes, as the fake stores it; AWS's message for a
/// protocol it refuses.
fn entry_of(
    number: i32,
    egress: bool,
    protocol: Option<&str>,
    ports: Option<&PortRange>,
    cidr: Option<&str>,
    ipv6_cidr: Option<&str>,
    action: Option<&RuleAction>,
) -> Result<Entry, String> {
    assert!(ipv6_cidr.is_none(), "the fake EC2 models IPv4 entries only");
    let protocol = acl_protocol(protocol.expect("AWS requires Protocol"))?;
    let ports = ports.map(|p| (p.from().expect("port range from"), p.to().expect("port range to")));
    assert!(
        ports.is_some() || !matches!(protocol.as_str(), "6" | "17"),
        "AWS requires a port range for protocol {protocol}"
    );
    Ok(Entry {
        number,
        egress,
        protocol,
        ports,
        cidr: cidr.expect("AWS requires CidrBlock or Ipv6CidrBlock").to_string(),
        allow: action.expect("AWS requires RuleAction") == &RuleAction::Allow,
    })
}

/// The one route target the fake models: `gateway_id` (an internet gateway). Any other target in the request
/// fails the test.
fn gateway_target(
    gateway: Option<&str>,
    others: &[Option<&str>],
    destination: Option<&str>,
    ipv6: Option<&str>,
    prefix_list: Option<&str>,
) -> (String, String) {
    assert!(others.iter().all(Option::is_none), "the fake EC2 models routes to internet gateways only");
    assert!(ipv6.is_none() && prefix_list.is_none(), "the fake EC2 models IPv4 route destinations only");
    let gateway = gateway.expect("the fake EC2 models routes to internet gateways only (GatewayId)");
    assert!(gateway.starts_with("igw-"), "the fake EC2 models routes to internet gateways only, not {gateway}");
    (destination.expect("AWS requires a destination").to_string(), gateway.to_string())
}

// ---- answering calls: one method per EC2 operation, named like the client's, so `serve!` can wire them up ---------

impl World {
    /// The only interfaces modeled: a draining group still holds a load balancer's (another stack's, say), which AWS
    /// manages for the service (`RequesterManaged`), in the group's VPC and in no subnet of the world.
    pub(super) fn describe_network_interfaces(
        &mut self,
        req: &op::describe_network_interfaces::DescribeNetworkInterfacesInput,
    ) -> MockResponse<
        op::describe_network_interfaces::DescribeNetworkInterfacesOutput,
        op::describe_network_interfaces::DescribeNetworkInterfacesError,
    > {
        assert!(req.network_interface_ids().is_empty(), "the fake models describing interfaces by filter only");
        let enis = self
            .draining
            .iter()
            .filter(|(_, n)| **n > 0)
            .filter_map(|(g, _)| Some((g, &self.groups.get(g)?.vpc)))
            .filter(|(g, vpc)| {
                let fields = [("group-id", vec![g.as_str()]), ("vpc-id", vec![vpc.as_str()]), ("subnet-id", vec![])];
                passes(req.filters(), &BTreeMap::new(), &fields)
            })
            .map(|(g, vpc)| {
                aws_sdk_ec2::types::NetworkInterface::builder()
                    .network_interface_id(format!("eni-draining-{g}"))
                    .vpc_id(vpc)
                    .requester_id("amazon-elb")
                    .requester_managed(true)
                    .description("ELB app/other/123")
                    .groups(aws_sdk_ec2::types::GroupIdentifier::builder().group_id(g).build())
                    .build()
            })
            .collect();
        let out = op::describe_network_interfaces::DescribeNetworkInterfacesOutput::builder()
            .set_network_interfaces(Some(enis))
            .build();
        self.record("DescribeNetworkInterfaces", "", vec![], MockResponse::Output(out))
    }

    /// The worlds hold no NAT gateways (their specs leave `nat` at "none"), so the NAT kinds' tag-filtered reads
    /// find nothing: one page, like any empty listing.
    pub(super) fn describe_nat_gateways(
        &mut self,
        req: &op::describe_nat_gateways::DescribeNatGatewaysInput,
    ) -> MockResponse<
        op::describe_nat_gateways::DescribeNatGatewaysOutput,
        op::describe_nat_gateways::DescribeNatGatewaysError,
    > {
        assert!(req.next_token().is_none(), "DescribeNatGateways was sent a NextToken it never issued");
        let out =
            op::describe_nat_gateways::DescribeNatGatewaysOutput::builder().set_nat_gateways(Some(vec![])).build();
        self.record("DescribeNatGateways", "", vec![], MockResponse::Output(out))
    }

    /// Nor Elastic IPs. DescribeAddresses has no pagination: AWS answers every match at once.
    pub(super) fn describe_addresses(
        &mut self,
        _req: &op::describe_addresses::DescribeAddressesInput,
    ) -> MockResponse<op::describe_addresses::DescribeAddressesOutput, op::describe_addresses::DescribeAddressesError>
    {
        let out = op::describe_addresses::DescribeAddressesOutput::builder().set_addresses(Some(vec![])).build();
        self.record("DescribeAddresses", "", vec![], MockResponse::Output(out))
    }

    /// The worlds hold no instances (their specs have no `[web]`; the instance kind's own tests use a fake of
    /// their own, tests/web_instances.rs): the instance kind's tag-filtered read finds none, one page. Only the
    /// filters that read sends are accepted.
    pub(super) fn describe_instances(
        &mut self,
        req: &op::describe_instances::DescribeInstancesInput,
    ) -> MockResponse<op::describe_instances::DescribeInstancesOutput, op::describe_instances::DescribeInstancesError>
    {
        assert!(req.next_token().is_none(), "DescribeInstances was sent a NextToken it never issued");
        for f in req.filters() {
            let name = f.name().unwrap_or_default();
            assert!(
                name.starts_with("tag:") || name == "instance-state-name",
                "the fake EC2 does not model the describe filter {name:?} here"
            );
        }
        let out = op::describe_instances::DescribeInstancesOutput::builder().set_reservations(Some(vec![])).build();
        self.record("DescribeInstances", "", vec![], MockResponse::Output(out))
    }

    /// Nor volumes (the instance kind asks only when it found an instance).
    pub(super) fn describe_volumes(
        &mut self,
        req: &op::describe_volumes::DescribeVolumesInput,
    ) -> MockResponse<op::describe_volumes::DescribeVolumesOutput, op::describe_volumes::DescribeVolumesError> {
        assert!(req.next_token().is_none(), "DescribeVolumes was sent a NextToken it never issued");
        let out = op::describe_volumes::DescribeVolumesOutput::builder().set_volumes(Some(vec![])).build();
        self.record("DescribeVolumes", "", vec![], MockResponse::Output(out))
    }

    pub(super) fn describe_vpcs(
        &mut self,
        req: &op::describe_vpcs::DescribeVpcsInput,
    ) -> MockResponse<op::describe_vpcs::DescribeVpcsOutput, op::describe_vpcs::DescribeVpcsError> {
        let by_ids = !req.vpc_ids().is_empty();
        let ids: Vec<String> = self
            .vpcs
            .iter()
            .filter(|(id, v)| passes(req.filters(), &v.tags, &[("vpc-id", vec![id.as_str()])]))
            .filter(|(id, _)| !by_ids || req.vpc_ids().contains(id))
            .map(|(id, _)| id.clone())
            .collect();
        let ids = self.visible(ids, req.filters(), req.next_token().is_none());
        let (ids, next) = page("DescribeVpcs", ids, req.filters(), req.next_token());
        let vpcs = ids
            .iter()
            .map(|id| {
                let v = &self.vpcs[id];
                Vpc::builder()
                    .vpc_id(id)
                    .cidr_block(&v.cidr)
                    .state(VpcState::Available)
                    .set_tags(Some(tags(&v.tags)))
                    .build()
            })
            .collect();
        let out = op::describe_vpcs::DescribeVpcsOutput::builder().set_vpcs(Some(vpcs)).set_next_token(next).build();
        self.record("DescribeVpcs", "", vec![], MockResponse::Output(out))
    }

    pub(super) fn describe_vpc_attribute(
        &mut self,
        req: &op::describe_vpc_attribute::DescribeVpcAttributeInput,
    ) -> MockResponse<
        op::describe_vpc_attribute::DescribeVpcAttributeOutput,
        op::describe_vpc_attribute::DescribeVpcAttributeError,
    > {
        use op::describe_vpc_attribute::{DescribeVpcAttributeError as E, DescribeVpcAttributeOutput as O};
        let id = req.vpc_id().unwrap_or_default();
        assert_eq!(req.attribute(), Some(&VpcAttributeName::EnableDnsHostnames), "the fake models DNS hostnames only");
        let response = match self.vpcs.get(id) {
            None => fail(E::generic, "InvalidVpcID.NotFound", format!("The vpc ID '{id}' does not exist")),
            Some(v) => MockResponse::Output(
                O::builder()
                    .vpc_id(id)
                    .enable_dns_hostnames(AttributeBooleanValue::builder().value(v.dns_hostnames).build())
                    .build(),
            ),
        };
        self.record("DescribeVpcAttribute", id, vec![], response)
    }

    pub(super) fn describe_internet_gateways(
        &mut self,
        req: &op::describe_internet_gateways::DescribeInternetGatewaysInput,
    ) -> MockResponse<
        op::describe_internet_gateways::DescribeInternetGatewaysOutput,
        op::describe_internet_gateways::DescribeInternetGatewaysError,
    > {
        use op::describe_internet_gateways::{DescribeInternetGatewaysError as E, DescribeInternetGatewaysOutput as O};
        let wanted = req.internet_gateway_ids();
        if let Some(missing) = wanted.iter().find(|id| !self.gateways.contains_key(*id)) {
            let response = fail(
                E::generic,
                "InvalidInternetGatewayID.NotFound",
                format!("The internetGateway ID '{missing}' does not exist"),
            );
            return self.record("DescribeInternetGateways", missing, vec![], response);
        }
        let ids: Vec<String> = self
            .gateways
            .iter()
            .filter(|(id, g)| {
                let fields = [
                    ("internet-gateway-id", vec![id.as_str()]),
                    ("attachment.vpc-id", g.vpc.as_deref().into_iter().collect()),
                ];
                passes(req.filters(), &g.tags, &fields) && (wanted.is_empty() || wanted.contains(id))
            })
            .map(|(id, _)| id.clone())
            .collect();
        let ids = self.visible(ids, req.filters(), req.next_token().is_none());
        let (ids, next) = page("DescribeInternetGateways", ids, req.filters(), req.next_token());
        let gateways = ids
            .iter()
            .map(|id| {
                let g = &self.gateways[id];
                // An attached gateway reports its attachment as "available".
                let attachments = g.vpc.iter().map(|vpc| {
                    InternetGatewayAttachment::builder().vpc_id(vpc).state(AttachmentStatus::from("available")).build()
                });
                InternetGateway::builder()
                    .internet_gateway_id(id)
                    .set_attachments(Some(attachments.collect()))
                    .set_tags(Some(tags(&g.tags)))
                    .build()
            })
            .collect();
        let out = O::builder().set_internet_gateways(Some(gateways)).set_next_token(next).build();
        self.record("DescribeInternetGateways", "", vec![], MockResponse::Output(out))
    }

    pub(super) fn describe_route_tables(
        &mut self,
        req: &op::describe_route_tables::DescribeRouteTablesInput,
    ) -> MockResponse<
        op::describe_route_tables::DescribeRouteTablesOutput,
        op::describe_route_tables::DescribeRouteTablesError,
    > {
        use op::describe_route_tables::{DescribeRouteTablesError as E, DescribeRouteTablesOutput as O};
        let wanted = req.route_table_ids();
        if let Some(missing) = wanted.iter().find(|id| !self.tables.contains_key(*id)) {
            let response = fail(
                E::generic,
                "InvalidRouteTableID.NotFound",
                format!("The routeTable ID '{missing}' does not exist"),
            );
            return self.record("DescribeRouteTables", missing, vec![], response);
        }
        let ids: Vec<String> = self
            .tables
            .iter()
            .filter(|(id, t)| {
                let fields = [
                    ("route-table-id", vec![id.as_str()]),
                    ("vpc-id", vec![t.vpc.as_str()]),
                    ("association.subnet-id", t.associations.values().map(String::as_str).collect()),
                ];
                passes(req.filters(), &t.tags, &fields) && (wanted.is_empty() || wanted.contains(id))
            })
            .map(|(id, _)| id.clone())
            .collect();
        let ids = self.visible(ids, req.filters(), req.next_token().is_none());
        let (ids, next) = page("DescribeRouteTables", ids, req.filters(), req.next_token());
        let tables = ids.iter().map(|id| self.route_table(id)).collect();
        let out = O::builder().set_route_tables(Some(tables)).set_next_token(next).build();
        self.record("DescribeRouteTables", "", vec![], MockResponse::Output(out))
    }

    /// A route table as AWS describes it.
    fn route_table(&self, id: &str) -> RouteTable {
        let t = &self.tables[id];
        let cidr = self.vpcs.get(&t.vpc).map(|v| v.cidr.clone()).unwrap_or_default();
        // Every table routes its VPC's own range locally: AWS's route, made with the table, never changed.
        let local = Route::builder()
            .destination_cidr_block(cidr)
            .gateway_id("local")
            .origin(RouteOrigin::CreateRouteTable)
            .state(RouteState::Active)
            .build();
        let created = t.routes.iter().map(|(destination, gateway)| {
            // A route whose gateway is no longer attached to the VPC stays, as a blackhole.
            let attached = self.gateways.get(gateway).is_some_and(|g| g.vpc.as_deref() == Some(t.vpc.as_str()));
            Route::builder()
                .destination_cidr_block(destination)
                .gateway_id(gateway)
                .origin(RouteOrigin::CreateRoute)
                .state(if attached { RouteState::Active } else { RouteState::Blackhole })
                .build()
        });
        let associated =
            || RouteTableAssociationState::builder().state(RouteTableAssociationStateCode::Associated).build();
        let main = t.main.iter().map(|assoc| {
            RouteTableAssociation::builder()
                .main(true)
                .route_table_association_id(assoc)
                .route_table_id(id)
                .association_state(associated())
                .build()
        });
        let explicit = t.associations.iter().map(|(assoc, subnet)| {
            RouteTableAssociation::builder()
                .main(false)
                .route_table_association_id(assoc)
                .route_table_id(id)
                .subnet_id(subnet)
                .association_state(associated())
                .build()
        });
        RouteTable::builder()
            .route_table_id(id)
            .vpc_id(&t.vpc)
            .set_routes(Some(std::iter::once(local).chain(created).collect()))
            .set_associations(Some(main.chain(explicit).collect()))
            .set_tags(Some(tags(&t.tags)))
            .build()
    }

    /// The region's zones, as us-east-1 has them: asked at plan time only when the plan creates a subnet.
    pub(super) fn describe_availability_zones(
        &mut self,
        _req: &op::describe_availability_zones::DescribeAvailabilityZonesInput,
    ) -> MockResponse<
        op::describe_availability_zones::DescribeAvailabilityZonesOutput,
        op::describe_availability_zones::DescribeAvailabilityZonesError,
    > {
        let zones = ["a", "b", "c", "d", "e", "f"].map(|l| {
            aws_sdk_ec2::types::AvailabilityZone::builder()
                .zone_name(format!("{REGION}{l}"))
                .region_name(REGION)
                .build()
        });
        MockResponse::Output(
            op::describe_availability_zones::DescribeAvailabilityZonesOutput::builder()
                .set_availability_zones(Some(zones.to_vec()))
                .build(),
        )
    }

    pub(super) fn describe_subnets(
        &mut self,
        req: &op::describe_subnets::DescribeSubnetsInput,
    ) -> MockResponse<op::describe_subnets::DescribeSubnetsOutput, op::describe_subnets::DescribeSubnetsError> {
        use op::describe_subnets::{DescribeSubnetsError as E, DescribeSubnetsOutput as O};
        if let Some(missing) = req.subnet_ids().iter().find(|id| !self.subnets.contains_key(*id)) {
            let response =
                fail(E::generic, "InvalidSubnetID.NotFound", format!("The subnet ID '{missing}' does not exist"));
            return self.record("DescribeSubnets", missing, vec![], response);
        }
        let by_ids = !req.subnet_ids().is_empty();
        let ids: Vec<String> = self
            .subnets
            .iter()
            .filter(|(id, s)| {
                passes(req.filters(), &s.tags, &[("vpc-id", vec![s.vpc.as_str()])])
                    && (!by_ids || req.subnet_ids().contains(id))
            })
            .map(|(id, _)| id.clone())
            .collect();
        let ids = self.visible(ids, req.filters(), req.next_token().is_none());
        let (ids, next) = page("DescribeSubnets", ids, req.filters(), req.next_token());
        let subnets = ids
            .iter()
            .map(|id| {
                let s = &self.subnets[id];
                Subnet::builder()
                    .subnet_id(id)
                    .vpc_id(&s.vpc)
                    .cidr_block(&s.cidr)
                    .availability_zone(&s.zone)
                    .map_public_ip_on_launch(s.public)
                    .state(SubnetState::Available)
                    .set_tags(Some(tags(&s.tags)))
                    .build()
            })
            .collect();
        let out = O::builder().set_subnets(Some(subnets)).set_next_token(next).build();
        self.record("DescribeSubnets", "", vec![], MockResponse::Output(out))
    }

    pub(super) fn describe_security_groups(
        &mut self,
        req: &op::describe_security_groups::DescribeSecurityGroupsInput,
    ) -> MockResponse<
        op::describe_security_groups::DescribeSecurityGroupsOutput,
        op::describe_security_groups::DescribeSecurityGroupsError,
    > {
        use op::describe_security_groups::{DescribeSecurityGroupsError as E, DescribeSecurityGroupsOutput as O};
        if let Some(missing) = req.group_ids().iter().find(|id| !self.groups.contains_key(*id)) {
            let response =
                fail(E::generic, "InvalidGroup.NotFound", format!("The security group '{missing}' does not exist"));
            return self.record("DescribeSecurityGroups", missing, vec![], response);
        }
        let by_ids = !req.group_ids().is_empty();
        let ids: Vec<String> = self
            .groups
            .iter()
            .filter(|(id, g)| {
                let fields = [("vpc-id", vec![g.vpc.as_str()]), ("group-name", vec![g.name.as_str()])];
                passes(req.filters(), &g.tags, &fields) && (!by_ids || req.group_ids().contains(id))
            })
            .map(|(id, _)| id.clone())
            .collect();
        let ids = self.visible(ids, req.filters(), req.next_token().is_none());
        let (ids, next) = page("DescribeSecurityGroups", ids, req.filters(), req.next_token());
        let groups = ids
            .iter()
            .map(|id| {
                let g = &self.groups[id];
                SecurityGroup::builder()
                    .group_id(id)
                    .group_name(&g.name)
                    .description(&g.description)
                    .vpc_id(&g.vpc)
                    .set_ip_permissions(Some(permissions(&g.ingress)))
                    .set_ip_permissions_egress(Some(permissions(&g.egress)))
                    .set_tags(Some(tags(&g.tags)))
                    .build()
            })
            .collect();
        let out = O::builder().set_security_groups(Some(groups)).set_next_token(next).build();
        self.record("DescribeSecurityGroups", "", vec![], MockResponse::Output(out))
    }

    pub(super) fn describe_network_acls(
        &mut self,
        req: &op::describe_network_acls::DescribeNetworkAclsInput,
    ) -> MockResponse<
        op::describe_network_acls::DescribeNetworkAclsOutput,
        op::describe_network_acls::DescribeNetworkAclsError,
    > {
        assert!(req.network_acl_ids().is_empty(), "the fake models describing by filter only");
        let ids: Vec<String> = self
            .acls
            .iter()
            .filter(|(_, a)| passes(req.filters(), &a.tags, &[("vpc-id", vec![a.vpc.as_str()])]))
            .map(|(id, _)| id.clone())
            .collect();
        let ids = self.visible(ids, req.filters(), req.next_token().is_none());
        let (ids, next) = page("DescribeNetworkAcls", ids, req.filters(), req.next_token());
        let acls = ids
            .iter()
            .map(|id| {
                let a = &self.acls[id];
                // Every ACL ends with AWS's own deny-all, rule 32767, in each direction.
                let deny_all = |egress| Entry {
                    number: 32767,
                    egress,
                    protocol: "-1".into(),
                    ports: None,
                    cidr: "0.0.0.0/0".into(),
                    allow: false,
                };
                let entries = a.entries.iter().cloned().chain([deny_all(false), deny_all(true)]).map(|e| {
                    NetworkAclEntry::builder()
                        .rule_number(e.number)
                        .egress(e.egress)
                        .protocol(e.protocol)
                        .cidr_block(e.cidr)
                        .rule_action(if e.allow { RuleAction::Allow } else { RuleAction::Deny })
                        .set_port_range(e.ports.map(|(from, to)| PortRange::builder().from(from).to(to).build()))
                        .build()
                });
                let associations = a.associations.iter().map(|(assoc, subnet)| {
                    NetworkAclAssociation::builder()
                        .network_acl_association_id(assoc)
                        .network_acl_id(id)
                        .subnet_id(subnet)
                        .build()
                });
                NetworkAcl::builder()
                    .network_acl_id(id)
                    .vpc_id(&a.vpc)
                    .is_default(a.default)
                    .set_entries(Some(entries.collect()))
                    .set_associations(Some(associations.collect()))
                    .set_tags(Some(tags(&a.tags)))
                    .build()
            })
            .collect();
        let out = op::describe_network_acls::DescribeNetworkAclsOutput::builder()
            .set_network_acls(Some(acls))
            .set_next_token(next)
            .build();
        self.record("DescribeNetworkAcls", "", vec![], MockResponse::Output(out))
    }

    /// A new subnet starts on the VPC's default ACL (and on its main route table, implicitly).
    /// Tags on whatever the fake holds under these ids (every apply rewrites webscale's record of what it applied).
    /// Not logged among the calls: tests look at what changes the infrastructure.
    pub(super) fn create_tags(
        &mut self,
        req: &op::create_tags::CreateTagsInput,
    ) -> MockResponse<op::create_tags::CreateTagsOutput, op::create_tags::CreateTagsError> {
        let tags: Vec<(String, String)> = req
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string())))
            .collect();
        for id in req.resources() {
            let target = if let Some(r) = self.vpcs.get_mut(id) {
                Some(&mut r.tags)
            } else if let Some(r) = self.subnets.get_mut(id) {
                Some(&mut r.tags)
            } else if let Some(r) = self.groups.get_mut(id) {
                Some(&mut r.tags)
            } else if let Some(r) = self.acls.get_mut(id) {
                Some(&mut r.tags)
            } else if let Some(r) = self.gateways.get_mut(id) {
                Some(&mut r.tags)
            } else {
                self.tables.get_mut(id).map(|r| &mut r.tags)
            };
            if let Some(target) = target {
                target.extend(tags.iter().cloned());
            }
        }
        MockResponse::Output(op::create_tags::CreateTagsOutput::builder().build())
    }

    pub(super) fn create_subnet(
        &mut self,
        req: &op::create_subnet::CreateSubnetInput,
    ) -> MockResponse<op::create_subnet::CreateSubnetOutput, op::create_subnet::CreateSubnetError> {
        let vpc = req.vpc_id().unwrap_or_default().to_string();
        let record = SubnetRec {
            vpc: vpc.clone(),
            cidr: req.cidr_block().unwrap_or_default().into(),
            zone: req.availability_zone().unwrap_or_default().into(),
            public: false,
            tags: tags_in(req.tag_specifications(), ResourceType::Subnet),
        };
        let id = self.new_id("subnet-new");
        let subnet = Subnet::builder()
            .subnet_id(&id)
            .vpc_id(&vpc)
            .cidr_block(&record.cidr)
            .availability_zone(&record.zone)
            .state(SubnetState::Pending)
            .build();
        self.add_subnet(id.clone(), record);
        let out = op::create_subnet::CreateSubnetOutput::builder().subnet(subnet).build();
        self.record("CreateSubnet", &id, vec![], MockResponse::Output(out))
    }

    /// A deleted subnet's ACL and route table associations go with it.
    pub(super) fn delete_subnet(
        &mut self,
        req: &op::delete_subnet::DeleteSubnetInput,
    ) -> MockResponse<op::delete_subnet::DeleteSubnetOutput, op::delete_subnet::DeleteSubnetError> {
        use op::delete_subnet::{DeleteSubnetError as E, DeleteSubnetOutput as O};
        let id = req.subnet_id().unwrap_or_default();
        let response = if self.subnets.contains_key(id) {
            self.remove_subnet(id);
            MockResponse::Output(O::builder().build())
        } else {
            fail(E::generic, "InvalidSubnetID.NotFound", format!("The subnet ID '{id}' does not exist"))
        };
        self.record("DeleteSubnet", id, vec![], response)
    }

    /// A VPC goes last: AWS refuses while subnets, groups, non-default ACLs, an attached gateway or non-main route
    /// tables remain. Its default group, default ACL and main route table go with it.
    pub(super) fn delete_vpc(
        &mut self,
        req: &op::delete_vpc::DeleteVpcInput,
    ) -> MockResponse<op::delete_vpc::DeleteVpcOutput, op::delete_vpc::DeleteVpcError> {
        use op::delete_vpc::{DeleteVpcError as E, DeleteVpcOutput as O};
        let id = req.vpc_id().unwrap_or_default();
        let in_use = self.subnets.values().any(|s| s.vpc == id)
            || self.groups.values().any(|g| g.vpc == id && g.name != "default")
            || self.acls.values().any(|a| a.vpc == id && !a.default)
            || self.gateways.values().any(|g| g.vpc.as_deref() == Some(id))
            || self.tables.values().any(|t| t.vpc == id && t.main.is_none());
        let response = if !self.vpcs.contains_key(id) {
            fail(E::generic, "InvalidVpcID.NotFound", format!("The vpc ID '{id}' does not exist"))
        } else if in_use {
            fail(E::generic, "DependencyViolation", format!("The vpc '{id}' has dependencies and cannot be deleted."))
        } else {
            self.vpcs.remove(id);
            self.groups.retain(|_, g| g.vpc != id);
            self.acls.retain(|_, a| a.vpc != id);
            self.tables.retain(|_, t| t.vpc != id);
            MockResponse::Output(O::builder().build())
        };
        self.record("DeleteVpc", id, vec![], response)
    }

    /// A group name is unique in its VPC (`InvalidGroup.Duplicate`, also for a repeat of a create whose answer was
    /// lost); a new group has AWS's allow-all egress rule.
    pub(super) fn create_security_group(
        &mut self,
        req: &op::create_security_group::CreateSecurityGroupInput,
    ) -> MockResponse<
        op::create_security_group::CreateSecurityGroupOutput,
        op::create_security_group::CreateSecurityGroupError,
    > {
        use op::create_security_group::{CreateSecurityGroupError as E, CreateSecurityGroupOutput as O};
        let vpc = req.vpc_id().expect("the fake EC2 models groups in a VPC only").to_string();
        let name = req.group_name().expect("AWS requires GroupName").to_string();
        let description = req.description().expect("AWS requires Description").to_string();
        let tags = tags_in(req.tag_specifications(), ResourceType::SecurityGroup);
        self.create_with_fault("CreateSecurityGroup", E::generic, |w| {
            if !w.vpcs.contains_key(&vpc) {
                return (
                    vpc.clone(),
                    fail(E::generic, "InvalidVpcID.NotFound", format!("The vpc ID '{vpc}' does not exist")),
                );
            }
            if let Some((id, _)) = w.groups.iter().find(|(_, g)| g.vpc == vpc && g.name == name) {
                let message = format!("The security group '{name}' already exists for VPC '{vpc}'");
                return (id.clone(), fail(E::generic, "InvalidGroup.Duplicate", message));
            }
            let id = w.new_id("sg-new");
            let group = Group {
                vpc,
                name,
                description,
                tags: tags.clone(),
                ingress: vec![],
                egress: vec![Rule::allow_all_egress()],
            };
            w.groups.insert(id.clone(), group);
            let out = O::builder().group_id(&id).set_tags(Some(self::tags(&tags))).build();
            (id, MockResponse::Output(out))
        })
    }

    /// A group named by another group's rule cannot be deleted (moto deletes it anyway); a VPC's default group
    /// cannot be deleted at all (it goes with the VPC).
    pub(super) fn delete_security_group(
        &mut self,
        req: &op::delete_security_group::DeleteSecurityGroupInput,
    ) -> MockResponse<
        op::delete_security_group::DeleteSecurityGroupOutput,
        op::delete_security_group::DeleteSecurityGroupError,
    > {
        use op::delete_security_group::{DeleteSecurityGroupError as E, DeleteSecurityGroupOutput as O};
        let id = req.group_id().unwrap_or_default().to_string();
        let draining = self.draining.get_mut(&id).filter(|n| **n > 0);
        let response = if !self.groups.contains_key(&id) {
            fail(E::generic, "InvalidGroup.NotFound", format!("The security group '{id}' does not exist"))
        } else if self.groups[&id].name == "default" {
            fail(
                E::generic,
                "CannotDelete",
                format!("the specified group: \"{id}\" name: \"default\" cannot be deleted by a user"),
            )
        } else if let Some(n) = draining {
            *n -= 1;
            fail(E::generic, "DependencyViolation", format!("resource {id} has a dependent object"))
        } else if !self.referencing(&id).is_empty() {
            fail(E::generic, "DependencyViolation", format!("resource {id} has a dependent object"))
        } else {
            self.groups.remove(&id);
            MockResponse::Output(O::builder().build())
        };
        self.record("DeleteSecurityGroup", &id, vec![], response)
    }

    pub(super) fn authorize_security_group_ingress(
        &mut self,
        req: &op::authorize_security_group_ingress::AuthorizeSecurityGroupIngressInput,
    ) -> MockResponse<
        op::authorize_security_group_ingress::AuthorizeSecurityGroupIngressOutput,
        op::authorize_security_group_ingress::AuthorizeSecurityGroupIngressError,
    > {
        use op::authorize_security_group_ingress::{
            AuthorizeSecurityGroupIngressError as E, AuthorizeSecurityGroupIngressOutput as O,
        };
        let response = match change_rules(self, req.group_id(), req.ip_permissions(), Dir::Ingress, true) {
            Ok(()) => MockResponse::Output(O::builder().r#return(true).build()),
            Err((code, message)) => fail(E::generic, code, message),
        };
        let refs = group_refs(req.ip_permissions());
        self.record("AuthorizeSecurityGroupIngress", req.group_id().unwrap_or_default(), refs, response)
    }

    pub(super) fn authorize_security_group_egress(
        &mut self,
        req: &op::authorize_security_group_egress::AuthorizeSecurityGroupEgressInput,
    ) -> MockResponse<
        op::authorize_security_group_egress::AuthorizeSecurityGroupEgressOutput,
        op::authorize_security_group_egress::AuthorizeSecurityGroupEgressError,
    > {
        use op::authorize_security_group_egress::{
            AuthorizeSecurityGroupEgressError as E, AuthorizeSecurityGroupEgressOutput as O,
        };
        let response = match change_rules(self, req.group_id(), req.ip_permissions(), Dir::Egress, true) {
            Ok(()) => MockResponse::Output(O::builder().r#return(true).build()),
            Err((code, message)) => fail(E::generic, code, message),
        };
        let refs = group_refs(req.ip_permissions());
        self.record("AuthorizeSecurityGroupEgress", req.group_id().unwrap_or_default(), refs, response)
    }

    pub(super) fn revoke_security_group_ingress(
        &mut self,
        req: &op::revoke_security_group_ingress::RevokeSecurityGroupIngressInput,
    ) -> MockResponse<
        op::revoke_security_group_ingress::RevokeSecurityGroupIngressOutput,
        op::revoke_security_group_ingress::RevokeSecurityGroupIngressError,
    > {
        use op::revoke_security_group_ingress::{
            RevokeSecurityGroupIngressError as E, RevokeSecurityGroupIngressOutput as O,
        };
        let response = match change_rules(self, req.group_id(), req.ip_permissions(), Dir::Ingress, false) {
            Ok(()) => MockResponse::Output(O::builder().r#return(true).build()),
            Err((code, message)) => fail(E::generic, code, message),
        };
        let refs = group_refs(req.ip_permissions());
        self.record("RevokeSecurityGroupIngress", req.group_id().unwrap_or_default(), refs, response)
    }

    pub(super) fn revoke_security_group_egress(
        &mut self,
        req: &op::revoke_security_group_egress::RevokeSecurityGroupEgressInput,
    ) -> MockResponse<
        op::revoke_security_group_egress::RevokeSecurityGroupEgressOutput,
        op::revoke_security_group_egress::RevokeSecurityGroupEgressError,
    > {
        use op::revoke_security_group_egress::{
            RevokeSecurityGroupEgressError as E, RevokeSecurityGroupEgressOutput as O,
        };
        let response = match change_rules(self, req.group_id(), req.ip_permissions(), Dir::Egress, false) {
            Ok(()) => MockResponse::Output(O::builder().r#return(true).build()),
            Err((code, message)) => fail(E::generic, code, message),
        };
        let refs = group_refs(req.ip_permissions());
        self.record("RevokeSecurityGroupEgress", req.group_id().unwrap_or_default(), refs, response)
    }

    /// A subnet always has exactly one ACL: its association moves (and gets a new id), it is never removed.
    pub(super) fn replace_network_acl_association(
        &mut self,
        req: &op::replace_network_acl_association::ReplaceNetworkAclAssociationInput,
    ) -> MockResponse<
        op::replace_network_acl_association::ReplaceNetworkAclAssociationOutput,
        op::replace_network_acl_association::ReplaceNetworkAclAssociationError,
    > {
        use op::replace_network_acl_association::{
            ReplaceNetworkAclAssociationError as E, ReplaceNetworkAclAssociationOutput as O,
        };
        let association = req.association_id().unwrap_or_default();
        let target = req.network_acl_id().unwrap_or_default().to_string();
        let subnet = self.acls.values().find_map(|a| a.associations.get(association).cloned());
        let response = match &subnet {
            None => fail(
                E::generic,
                "InvalidAssociationID.NotFound",
                format!("The association ID '{association}' does not exist"),
            ),
            Some(_) if !self.acls.contains_key(&target) => {
                fail(E::generic, "InvalidNetworkAclID.NotFound", format!("The networkAcl ID '{target}' does not exist"))
            }
            Some(_) => {
                let new = self.move_association(association, &target);
                MockResponse::Output(O::builder().new_association_id(new).build())
            }
        };
        let on = subnet.unwrap_or_else(|| format!("(unknown association {association})"));
        self.record("ReplaceNetworkAclAssociation", &on, vec![target], response)
    }

    /// An ACL with subnets cannot be deleted (moto keeps stale associations and fails differently), nor can the
    /// VPC's default ACL.
    pub(super) fn delete_network_acl(
        &mut self,
        req: &op::delete_network_acl::DeleteNetworkAclInput,
    ) -> MockResponse<op::delete_network_acl::DeleteNetworkAclOutput, op::delete_network_acl::DeleteNetworkAclError>
    {
        use op::delete_network_acl::{DeleteNetworkAclError as E, DeleteNetworkAclOutput as O};
        let id = req.network_acl_id().unwrap_or_default().to_string();
        let response = match self.acls.get(&id) {
            None => {
                fail(E::generic, "InvalidNetworkAclID.NotFound", format!("The networkAcl ID '{id}' does not exist"))
            }
            Some(a) if a.default => {
                fail(E::generic, "InvalidParameterValue", format!("cannot delete default network ACL {id}"))
            }
            Some(a) if !a.associations.is_empty() => fail(
                E::generic,
                "DependencyViolation",
                format!("The networkAcl '{id}' has dependencies and cannot be deleted."),
            ),
            Some(_) => {
                self.acls.remove(&id);
                MockResponse::Output(O::builder().build())
            }
        };
        self.record("DeleteNetworkAcl", &id, vec![], response)
    }

    /// A number is unique per direction; creating it twice fails (replace is the way to change it).
    pub(super) fn create_network_acl_entry(
        &mut self,
        req: &op::create_network_acl_entry::CreateNetworkAclEntryInput,
    ) -> MockResponse<
        op::create_network_acl_entry::CreateNetworkAclEntryOutput,
        op::create_network_acl_entry::CreateNetworkAclEntryError,
    > {
        use op::create_network_acl_entry::{CreateNetworkAclEntryError as E, CreateNetworkAclEntryOutput as O};
        let (id, egress, number) = entry_key(req.network_acl_id(), req.egress(), req.rule_number());
        let entry = entry_of(
            number,
            egress,
            req.protocol(),
            req.port_range(),
            req.cidr_block(),
            req.ipv6_cidr_block(),
            req.rule_action(),
        );
        let response = match (self.acls.get_mut(&id), entry) {
            (None, _) => {
                fail(E::generic, "InvalidNetworkAclID.NotFound", format!("The networkAcl ID '{id}' does not exist"))
            }
            (Some(_), Err(message)) => fail(E::generic, "InvalidParameterValue", message),
            (Some(a), Ok(_)) if a.entries.iter().any(|e| e.egress == egress && e.number == number) => fail(
                E::generic,
                "NetworkAclEntryAlreadyExists",
                format!("The network acl entry identified by {number} already exists."),
            ),
            (Some(a), Ok(entry)) => {
                a.entries.push(entry);
                MockResponse::Output(O::builder().build())
            }
        };
        self.record_entry("CreateNetworkAclEntry", &id, (egress, number), response)
    }

    /// Replacing needs an entry at that number and direction.
    pub(super) fn replace_network_acl_entry(
        &mut self,
        req: &op::replace_network_acl_entry::ReplaceNetworkAclEntryInput,
    ) -> MockResponse<
        op::replace_network_acl_entry::ReplaceNetworkAclEntryOutput,
        op::replace_network_acl_entry::ReplaceNetworkAclEntryError,
    > {
        use op::replace_network_acl_entry::{ReplaceNetworkAclEntryError as E, ReplaceNetworkAclEntryOutput as O};
        let (id, egress, number) = entry_key(req.network_acl_id(), req.egress(), req.rule_number());
        let entry = entry_of(
            number,
            egress,
            req.protocol(),
            req.port_range(),
            req.cidr_block(),
            req.ipv6_cidr_block(),
            req.rule_action(),
        );
        let existing =
            self.acls.get_mut(&id).map(|a| a.entries.iter_mut().find(|e| e.egress == egress && e.number == number));
        let response = match (existing, entry) {
            (None, _) => {
                fail(E::generic, "InvalidNetworkAclID.NotFound", format!("The networkAcl ID '{id}' does not exist"))
            }
            (Some(_), Err(message)) => fail(E::generic, "InvalidParameterValue", message),
            (Some(None), Ok(_)) => fail(
                E::generic,
                "InvalidNetworkAclEntry.NotFound",
                format!("The network acl entry identified by {number} does not exist."),
            ),
            (Some(Some(e)), Ok(entry)) => {
                *e = entry;
                MockResponse::Output(O::builder().build())
            }
        };
        self.record_entry("ReplaceNetworkAclEntry", &id, (egress, number), response)
    }

    /// Deleting needs an entry at that number and direction.
    pub(super) fn delete_network_acl_entry(
        &mut self,
        req: &op::delete_network_acl_entry::DeleteNetworkAclEntryInput,
    ) -> MockResponse<
        op::delete_network_acl_entry::DeleteNetworkAclEntryOutput,
        op::delete_network_acl_entry::DeleteNetworkAclEntryError,
    > {
        use op::delete_network_acl_entry::{DeleteNetworkAclEntryError as E, DeleteNetworkAclEntryOutput as O};
        let (id, egress, number) = entry_key(req.network_acl_id(), req.egress(), req.rule_number());
        let response = match self.acls.get_mut(&id) {
            None => {
                fail(E::generic, "InvalidNetworkAclID.NotFound", format!("The networkAcl ID '{id}' does not exist"))
            }
            Some(a) if !a.entries.iter().any(|e| e.egress == egress && e.number == number) => fail(
                E::generic,
                "InvalidNetworkAclEntry.NotFound",
                format!("The network acl entry identified by {number} does not exist."),
            ),
            Some(a) => {
                a.entries.retain(|e| !(e.egress == egress && e.number == number));
                MockResponse::Output(O::builder().build())
            }
        };
        self.record_entry("DeleteNetworkAclEntry", &id, (egress, number), response)
    }

    /// A new gateway is detached. CreateInternetGateway takes no client token: a repeat makes a second gateway.
    pub(super) fn create_internet_gateway(
        &mut self,
        req: &op::create_internet_gateway::CreateInternetGatewayInput,
    ) -> MockResponse<
        op::create_internet_gateway::CreateInternetGatewayOutput,
        op::create_internet_gateway::CreateInternetGatewayError,
    > {
        use op::create_internet_gateway::{CreateInternetGatewayError as E, CreateInternetGatewayOutput as O};
        let tags = tags_in(req.tag_specifications(), ResourceType::InternetGateway);
        self.create_with_fault("CreateInternetGateway", E::generic, |w| {
            let id = w.new_id("igw-new");
            w.gateways.insert(id.clone(), Gateway { vpc: None, tags: tags.clone() });
            let gateway = InternetGateway::builder().internet_gateway_id(&id).set_tags(Some(self::tags(&tags))).build();
            (id, MockResponse::Output(O::builder().internet_gateway(gateway).build()))
        })
    }

    /// A gateway is attached to at most one VPC, and a VPC has at most one gateway.
    pub(super) fn attach_internet_gateway(
        &mut self,
        req: &op::attach_internet_gateway::AttachInternetGatewayInput,
    ) -> MockResponse<
        op::attach_internet_gateway::AttachInternetGatewayOutput,
        op::attach_internet_gateway::AttachInternetGatewayError,
    > {
        use op::attach_internet_gateway::{AttachInternetGatewayError as E, AttachInternetGatewayOutput as O};
        let id = req.internet_gateway_id().unwrap_or_default().to_string();
        let vpc = req.vpc_id().unwrap_or_default().to_string();
        let other = self.gateways.iter().find(|(_, g)| g.vpc.as_deref() == Some(vpc.as_str())).map(|(o, _)| o.clone());
        let response = match self.gateways.get_mut(&id) {
            None => fail(
                E::generic,
                "InvalidInternetGatewayID.NotFound",
                format!("The internetGateway ID '{id}' does not exist"),
            ),
            Some(_) if !self.vpcs.contains_key(&vpc) => {
                fail(E::generic, "InvalidVpcID.NotFound", format!("The vpc ID '{vpc}' does not exist"))
            }
            Some(g) if g.vpc.is_some() => fail(
                E::generic,
                "Resource.AlreadyAssociated",
                format!("resource {id} is already attached to network {}", g.vpc.as_deref().unwrap_or_default()),
            ),
            Some(_) if other.is_some() => fail(
                E::generic,
                "Resource.AlreadyAssociated",
                format!("network {vpc} already has an internet gateway attached ({})", other.unwrap_or_default()),
            ),
            Some(g) => {
                g.vpc = Some(vpc.clone());
                MockResponse::Output(O::builder().build())
            }
        };
        self.record("AttachInternetGateway", &id, vec![vpc], response)
    }

    /// Detaching needs the gateway attached to that VPC (`Gateway.NotAttached` otherwise).
    pub(super) fn detach_internet_gateway(
        &mut self,
        req: &op::detach_internet_gateway::DetachInternetGatewayInput,
    ) -> MockResponse<
        op::detach_internet_gateway::DetachInternetGatewayOutput,
        op::detach_internet_gateway::DetachInternetGatewayError,
    > {
        use op::detach_internet_gateway::{DetachInternetGatewayError as E, DetachInternetGatewayOutput as O};
        let id = req.internet_gateway_id().unwrap_or_default().to_string();
        let vpc = req.vpc_id().unwrap_or_default().to_string();
        let response = match self.gateways.get_mut(&id) {
            None => fail(
                E::generic,
                "InvalidInternetGatewayID.NotFound",
                format!("The internetGateway ID '{id}' does not exist"),
            ),
            Some(g) if g.vpc.as_deref() != Some(vpc.as_str()) => {
                fail(E::generic, "Gateway.NotAttached", format!("resource {id} is not attached to network {vpc}"))
            }
            Some(g) => {
                g.vpc = None;
                MockResponse::Output(O::builder().build())
            }
        };
        self.record("DetachInternetGateway", &id, vec![vpc], response)
    }

    /// An attached gateway cannot be deleted (routes to it may remain: they become blackholes).
    pub(super) fn delete_internet_gateway(
        &mut self,
        req: &op::delete_internet_gateway::DeleteInternetGatewayInput,
    ) -> MockResponse<
        op::delete_internet_gateway::DeleteInternetGatewayOutput,
        op::delete_internet_gateway::DeleteInternetGatewayError,
    > {
        use op::delete_internet_gateway::{DeleteInternetGatewayError as E, DeleteInternetGatewayOutput as O};
        let id = req.internet_gateway_id().unwrap_or_default().to_string();
        let response = match self.gateways.get(&id) {
            None => fail(
                E::generic,
                "InvalidInternetGatewayID.NotFound",
                format!("The internetGateway ID '{id}' does not exist"),
            ),
            Some(g) if g.vpc.is_some() => fail(
                E::generic,
                "DependencyViolation",
                format!("The internetGateway '{id}' has dependencies and cannot be deleted."),
            ),
            Some(_) => {
                self.gateways.remove(&id);
                MockResponse::Output(O::builder().build())
            }
        };
        self.record("DeleteInternetGateway", &id, vec![], response)
    }

    /// Idempotent by ClientToken: the same token with the same parameters returns the table the first call made
    /// (no second table); with other parameters AWS refuses (`IdempotentParameterMismatch`).
    pub(super) fn create_route_table(
        &mut self,
        req: &op::create_route_table::CreateRouteTableInput,
    ) -> MockResponse<op::create_route_table::CreateRouteTableOutput, op::create_route_table::CreateRouteTableError>
    {
        use op::create_route_table::{CreateRouteTableError as E, CreateRouteTableOutput as O};
        let vpc = req.vpc_id().unwrap_or_default().to_string();
        let tags = tags_in(req.tag_specifications(), ResourceType::RouteTable);
        let token = req.client_token().map(str::to_string);
        let response = self.create_with_fault("CreateRouteTable", E::generic, |w| {
            let params = (vpc.clone(), tags.clone());
            let earlier = token.as_ref().and_then(|t| w.tokens.get(t)).cloned();
            let id = match earlier {
                Some((earlier, _)) if earlier != params => {
                    let message = "The client token you have provided is associated with a resource that has \
                                   different parameters.";
                    return (String::new(), fail(E::generic, "IdempotentParameterMismatch", message));
                }
                Some((_, id)) => id,
                None if !w.vpcs.contains_key(&vpc) => {
                    return (
                        vpc.clone(),
                        fail(E::generic, "InvalidVpcID.NotFound", format!("The vpc ID '{vpc}' does not exist")),
                    );
                }
                None => {
                    let id = w.new_id("rtb-new");
                    let table = Table {
                        vpc: vpc.clone(),
                        main: None,
                        tags: tags.clone(),
                        routes: BTreeMap::new(),
                        associations: BTreeMap::new(),
                    };
                    w.tables.insert(id.clone(), table);
                    if let Some(t) = &token {
                        w.tokens.insert(t.clone(), (params, id.clone()));
                    }
                    id
                }
            };
            let out = O::builder().route_table(w.route_table(&id)).set_client_token(token.clone()).build();
            (id, MockResponse::Output(out))
        });
        if let Some(call) = self.log.last_mut() {
            call.token = token;
            call.refs = vec![vpc];
        }
        response
    }

    /// A table that still has subnets cannot be deleted, and the VPC's main table never can; its routes go with it.
    pub(super) fn delete_route_table(
        &mut self,
        req: &op::delete_route_table::DeleteRouteTableInput,
    ) -> MockResponse<op::delete_route_table::DeleteRouteTableOutput, op::delete_route_table::DeleteRouteTableError>
    {
        use op::delete_route_table::{DeleteRouteTableError as E, DeleteRouteTableOutput as O};
        let id = req.route_table_id().unwrap_or_default().to_string();
        let response = match self.tables.get(&id) {
            None => {
                fail(E::generic, "InvalidRouteTableID.NotFound", format!("The routeTable ID '{id}' does not exist"))
            }
            Some(t) if t.main.is_some() || !t.associations.is_empty() => fail(
                E::generic,
                "DependencyViolation",
                format!("The routeTable '{id}' has dependencies and cannot be deleted."),
            ),
            Some(_) => {
                self.tables.remove(&id);
                MockResponse::Output(O::builder().build())
            }
        };
        self.record("DeleteRouteTable", &id, vec![], response)
    }

    /// Why AWS refuses a route from `table` to `gateway`, if it does: the table and the gateway must exist, and the
    /// gateway must be attached to the table's VPC.
    fn route_refused(&self, table: &str, gateway: &str) -> Option<(&'static str, String)> {
        let Some(t) = self.tables.get(table) else {
            return Some(("InvalidRouteTableID.NotFound", format!("The routeTable ID '{table}' does not exist")));
        };
        match self.gateways.get(gateway) {
            None => Some((
                "InvalidInternetGatewayID.NotFound",
                format!("The internetGateway ID '{gateway}' does not exist"),
            )),
            Some(g) if g.vpc.as_deref() != Some(t.vpc.as_str()) => Some((
                "InvalidParameterValue",
                format!("route table {table} and network gateway {gateway} belong to different networks"),
            )),
            Some(_) => None,
        }
    }

    /// One route per destination (`RouteAlreadyExists`), to a gateway attached to the table's VPC.
    pub(super) fn create_route(
        &mut self,
        req: &op::create_route::CreateRouteInput,
    ) -> MockResponse<op::create_route::CreateRouteOutput, op::create_route::CreateRouteError> {
        use op::create_route::{CreateRouteError as E, CreateRouteOutput as O};
        let table = req.route_table_id().unwrap_or_default().to_string();
        let others = [
            req.nat_gateway_id(),
            req.transit_gateway_id(),
            req.vpc_peering_connection_id(),
            req.egress_only_internet_gateway_id(),
            req.instance_id(),
            req.network_interface_id(),
            req.local_gateway_id(),
            req.carrier_gateway_id(),
            req.vpc_endpoint_id(),
            req.core_network_arn(),
        ];
        let (destination, gateway) = gateway_target(
            req.gateway_id(),
            &others,
            req.destination_cidr_block(),
            req.destination_ipv6_cidr_block(),
            req.destination_prefix_list_id(),
        );
        let response = match self.route_refused(&table, &gateway) {
            Some((code, message)) => fail(E::generic, code, message),
            None if self.tables[&table].routes.contains_key(&destination) => {
                fail(E::generic, "RouteAlreadyExists", format!("The route identified by {destination} already exists."))
            }
            None => {
                self.tables.get_mut(&table).unwrap().routes.insert(destination.clone(), gateway.clone());
                MockResponse::Output(O::builder().r#return(true).build())
            }
        };
        self.record("CreateRoute", &table, vec![destination, gateway], response)
    }

    /// Replacing needs a route to that destination; the new gateway must be attached to the table's VPC.
    pub(super) fn replace_route(
        &mut self,
        req: &op::replace_route::ReplaceRouteInput,
    ) -> MockResponse<op::replace_route::ReplaceRouteOutput, op::replace_route::ReplaceRouteError> {
        use op::replace_route::{ReplaceRouteError as E, ReplaceRouteOutput as O};
        let table = req.route_table_id().unwrap_or_default().to_string();
        assert!(req.local_target().is_none(), "the fake EC2 does not model local targets");
        let others = [
            req.nat_gateway_id(),
            req.transit_gateway_id(),
            req.vpc_peering_connection_id(),
            req.egress_only_internet_gateway_id(),
            req.instance_id(),
            req.network_interface_id(),
            req.local_gateway_id(),
            req.carrier_gateway_id(),
            req.vpc_endpoint_id(),
            req.core_network_arn(),
        ];
        let (destination, gateway) = gateway_target(
            req.gateway_id(),
            &others,
            req.destination_cidr_block(),
            req.destination_ipv6_cidr_block(),
            req.destination_prefix_list_id(),
        );
        let response = match self.route_refused(&table, &gateway) {
            Some((code, message)) => fail(E::generic, code, message),
            None if !self.tables[&table].routes.contains_key(&destination) => fail(
                E::generic,
                "InvalidParameterValue",
                format!("There is no route defined for '{destination}' in the route table. Use CreateRoute instead."),
            ),
            None => {
                self.tables.get_mut(&table).unwrap().routes.insert(destination.clone(), gateway.clone());
                MockResponse::Output(O::builder().build())
            }
        };
        self.record("ReplaceRoute", &table, vec![destination, gateway], response)
    }

    /// Deleting needs a route to that destination (`InvalidRoute.NotFound`).
    pub(super) fn delete_route(
        &mut self,
        req: &op::delete_route::DeleteRouteInput,
    ) -> MockResponse<op::delete_route::DeleteRouteOutput, op::delete_route::DeleteRouteError> {
        use op::delete_route::{DeleteRouteError as E, DeleteRouteOutput as O};
        let table = req.route_table_id().unwrap_or_default().to_string();
        assert!(
            req.destination_ipv6_cidr_block().is_none() && req.destination_prefix_list_id().is_none(),
            "the fake EC2 models IPv4 route destinations only"
        );
        let destination = req.destination_cidr_block().expect("AWS requires a destination").to_string();
        let response = match self.tables.get_mut(&table).map(|t| t.routes.remove(&destination)) {
            None => {
                fail(E::generic, "InvalidRouteTableID.NotFound", format!("The routeTable ID '{table}' does not exist"))
            }
            Some(None) => fail(
                E::generic,
                "InvalidRoute.NotFound",
                format!("no route with destination-cidr-block {destination} in route table {table}"),
            ),
            Some(Some(_)) => MockResponse::Output(O::builder().build()),
        };
        self.record("DeleteRoute", &table, vec![destination], response)
    }

    /// A subnet has at most one explicit association (`Resource.AlreadyAssociated`; moving it is
    /// ReplaceRouteTableAssociation), with a table of its own VPC.
    pub(super) fn associate_route_table(
        &mut self,
        req: &op::associate_route_table::AssociateRouteTableInput,
    ) -> MockResponse<
        op::associate_route_table::AssociateRouteTableOutput,
        op::associate_route_table::AssociateRouteTableError,
    > {
        use op::associate_route_table::{AssociateRouteTableError as E, AssociateRouteTableOutput as O};
        assert!(req.gateway_id().is_none(), "the fake EC2 models subnet associations only");
        let table = req.route_table_id().unwrap_or_default().to_string();
        let subnet = req.subnet_id().unwrap_or_default().to_string();
        let response = match (self.tables.get(&table), self.subnets.get(&subnet)) {
            (None, _) => {
                fail(E::generic, "InvalidRouteTableID.NotFound", format!("The routeTable ID '{table}' does not exist"))
            }
            (_, None) => {
                fail(E::generic, "InvalidSubnetID.NotFound", format!("The subnet ID '{subnet}' does not exist"))
            }
            (Some(t), Some(s)) if t.vpc != s.vpc => fail(
                E::generic,
                "InvalidParameterValue",
                format!("route table {table} and subnet {subnet} belong to different networks"),
            ),
            _ if self.table_of(&subnet).is_some() => fail(
                E::generic,
                "Resource.AlreadyAssociated",
                format!("the specified association for route table {table} conflicts with an existing association"),
            ),
            _ => {
                let association = self.new_id("rtbassoc");
                self.tables.get_mut(&table).unwrap().associations.insert(association.clone(), subnet.clone());
                MockResponse::Output(O::builder().association_id(association).build())
            }
        };
        self.record("AssociateRouteTable", &subnet, vec![table], response)
    }

    /// The subnet goes back to the main table (implicitly); the main table's own association cannot be removed.
    pub(super) fn disassociate_route_table(
        &mut self,
        req: &op::disassociate_route_table::DisassociateRouteTableInput,
    ) -> MockResponse<
        op::disassociate_route_table::DisassociateRouteTableOutput,
        op::disassociate_route_table::DisassociateRouteTableError,
    > {
        use op::disassociate_route_table::{DisassociateRouteTableError as E, DisassociateRouteTableOutput as O};
        let association = req.association_id().unwrap_or_default().to_string();
        let main = self.tables.values().any(|t| t.main.as_deref() == Some(association.as_str()));
        let found = self
            .tables
            .iter()
            .find_map(|(id, t)| t.associations.get(&association).map(|subnet| (id.clone(), subnet.clone())));
        let (on, refs, response) = match found {
            _ if main => (
                format!("(main association {association})"),
                vec![],
                fail(E::generic, "InvalidParameterValue", "Cannot disassociate the main route table association"),
            ),
            None => (
                format!("(unknown association {association})"),
                vec![],
                fail(
                    E::generic,
                    "InvalidAssociationID.NotFound",
                    format!("The association ID '{association}' does not exist"),
                ),
            ),
            Some((table, subnet)) => {
                self.tables.get_mut(&table).unwrap().associations.remove(&association);
                (subnet, vec![table], MockResponse::Output(O::builder().build()))
            }
        };
        self.record("DisassociateRouteTable", &on, refs, response)
    }

    /// Moves a subnet's explicit association to another table; AWS gives it a new id.
    pub(super) fn replace_route_table_association(
        &mut self,
        req: &op::replace_route_table_association::ReplaceRouteTableAssociationInput,
    ) -> MockResponse<
        op::replace_route_table_association::ReplaceRouteTableAssociationOutput,
        op::replace_route_table_association::ReplaceRouteTableAssociationError,
    > {
        use op::replace_route_table_association::{
            ReplaceRouteTableAssociationError as E, ReplaceRouteTableAssociationOutput as O,
        };
        let association = req.association_id().unwrap_or_default().to_string();
        let target = req.route_table_id().unwrap_or_default().to_string();
        assert!(
            !self.tables.values().any(|t| t.main.as_deref() == Some(association.as_str())),
            "the fake EC2 does not model replacing a VPC's main route table"
        );
        let found = self
            .tables
            .iter()
            .find_map(|(id, t)| t.associations.get(&association).map(|subnet| (id.clone(), subnet.clone())));
        let response = match &found {
            None => fail(
                E::generic,
                "InvalidAssociationID.NotFound",
                format!("The association ID '{association}' does not exist"),
            ),
            Some(_) if !self.tables.contains_key(&target) => {
                fail(E::generic, "InvalidRouteTableID.NotFound", format!("The routeTable ID '{target}' does not exist"))
            }
            Some((from, subnet)) => {
                self.tables.get_mut(from).unwrap().associations.remove(&association);
                let new = self.new_id("rtbassoc");
                self.tables.get_mut(&target).unwrap().associations.insert(new.clone(), subnet.clone());
                MockResponse::Output(O::builder().new_association_id(new).build())
            }
        };
        let on = found.map_or_else(|| format!("(unknown association {association})"), |(_, subnet)| subnet);
        self.record("ReplaceRouteTableAssociation", &on, vec![target], response)
    }
}
