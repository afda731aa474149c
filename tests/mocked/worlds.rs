//! The worlds the tests start from, written out by hand from the specs, not computed from what webscale would ask
//! for: ids, CIDRs, tags and rules literally, in the form AWS reports them (a security group rule's protocol as
//! `tcp` or `-1`, a network ACL entry's as the number `6` or `-1`). A bug in `resources::desired()` or in
//! webscale's protocol mapping therefore shows up as a plan that is not empty where these tests expect nothing to
//! do (`a_plan_reads_each_kind_with_one_describe_call_per_page`, `the_public_world_is_what_the_public_spec_asks_for`)
//! instead of hiding itself in both the world and the plan.

use std::collections::BTreeMap;

use super::fake::{Acl, Entry, Fake, Gateway, Group, Peer, Rule, SubnetRec, Table, VpcRec, World};
use super::{SPEC, public_spec};

/// The tags webscale puts on what it makes, written out: a Name for people, and the ownership pair.
fn owned(name: &str, address: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("Name".to_string(), name.to_string()),
        ("webscale:stack".to_string(), "mocked".to_string()),
        ("webscale:address".to_string(), address.to_string()),
    ])
}

fn subnet(cidr: &str, zone: &str, public: bool, name: &str, address: &str) -> SubnetRec {
    SubnetRec { vpc: "vpc-main".into(), cidr: cidr.into(), zone: zone.into(), public, tags: owned(name, address) }
}

fn cidr(c: &str) -> Peer {
    Peer::Cidr(c.into())
}

fn group(g: &str) -> Peer {
    Peer::Group(g.into())
}

fn associations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(a, s)| (a.to_string(), s.to_string())).collect()
}

impl Fake {
    /// EC2 as a successful `webscale apply` of `spec` left it, for the specs that have a hand-written world
    /// ([`SPEC`], [`public_spec`]). Ids are readable: `vpc-main`, `sg-web`, `subnet-private-a`, `acl-private`; the
    /// VPC's default group is `sg-default`, its default ACL `acl-default`, its main route table `rtb-main`.
    pub(super) fn provisioned(spec: &str) -> Fake {
        let fake = Fake::default();
        fake.with(|w| {
            if spec == SPEC {
                w.spec();
            } else if spec == public_spec() {
                w.spec();
                w.public();
            } else {
                panic!("no hand-written world for this spec: write one in tests/mocked/worlds.rs");
            }
        });
        fake
    }
}

impl World {
    /// [`SPEC`]: the VPC, four subnets, groups web and db (which name each other), the private tier's ACL, and what
    /// AWS makes with every VPC (its default group, default ACL and main route table).
    fn spec(&mut self) {
        // dns_hostnames is left out of SPEC, and on by default.
        let vpc =
            VpcRec { cidr: "10.0.0.0/16".into(), dns_hostnames: true, tags: owned("mocked-vpc-main", "vpc.main") };
        self.vpcs.insert("vpc-main".into(), vpc);

        let subnets = [
            ("subnet-public-a", subnet("10.0.0.0/24", "us-east-1a", true, "mocked-subnet-public-a", "subnet.public_a")),
            (
                "subnet-private-a",
                subnet("10.0.10.0/24", "us-east-1a", false, "mocked-subnet-private-a", "subnet.private_a"),
            ),
            ("subnet-public-b", subnet("10.0.1.0/24", "us-east-1b", true, "mocked-subnet-public-b", "subnet.public_b")),
            (
                "subnet-private-b",
                subnet("10.0.11.0/24", "us-east-1b", false, "mocked-subnet-private-b", "subnet.private_b"),
            ),
        ];
        for (id, s) in subnets {
            self.subnets.insert(id.into(), s);
        }

        // AWS makes every VPC with a default ACL that allows everything and a main route table; neither is tagged.
        // The public subnets are on the default ACL, the private ones on the tier's ACL; every subnet uses the main
        // route table, implicitly.
        let default = Acl {
            vpc: "vpc-main".into(),
            default: true,
            tags: BTreeMap::new(),
            entries: vec![Entry::allow_all(false), Entry::allow_all(true)],
            associations: associations(&[
                ("aclassoc-public-a", "subnet-public-a"),
                ("aclassoc-public-b", "subnet-public-b"),
            ]),
        };
        self.acls.insert("acl-default".into(), default);
        let main = Table {
            vpc: "vpc-main".into(),
            main: Some("rtbassoc-main".into()),
            tags: BTreeMap::new(),
            routes: BTreeMap::new(),
            associations: BTreeMap::new(),
        };
        self.tables.insert("rtb-main".into(), main);

        // [network_acls.private]: all protocols in from the VPC, out to anywhere.
        let all = |number, egress, cidr: &str| Entry {
            number,
            egress,
            protocol: "-1".into(),
            ports: None,
            cidr: cidr.into(),
            allow: true,
        };
        let private = Acl {
            vpc: "vpc-main".into(),
            default: false,
            tags: owned("mocked-network-acl-private", "network_acl.private"),
            entries: vec![all(100, false, "10.0.0.0/16"), all(100, true, "0.0.0.0/0")],
            associations: associations(&[
                ("aclassoc-private-a", "subnet-private-a"),
                ("aclassoc-private-b", "subnet-private-b"),
            ]),
        };
        self.acls.insert("acl-private".into(), private);

        // Group names carry the suffix of the create that made them; any will do.
        let web = Group {
            vpc: "vpc-main".into(),
            name: "mocked-web-0f3c9a1e".into(),
            description: "Web servers".into(),
            tags: owned("mocked-security-group-web", "security_group.web"),
            ingress: vec![Rule::tcp(80, cidr("0.0.0.0/0"))],
            egress: vec![Rule::tcp(5432, group("sg-db")), Rule::tcp(443, cidr("0.0.0.0/0"))],
        };
        // `egress = []`: AWS's default allow-all egress rule was revoked.
        let db = Group {
            vpc: "vpc-main".into(),
            name: "mocked-db-7d21b4c8".into(),
            description: "Database".into(),
            tags: owned("mocked-security-group-db", "security_group.db"),
            ingress: vec![Rule::tcp(5432, group("sg-web")), Rule::tcp(22, cidr("10.0.0.0/16"))],
            egress: vec![],
        };
        self.groups.insert("sg-web".into(), web);
        self.groups.insert("sg-db".into(), db);
        // AWS makes every VPC with a group named default, untagged: its members reach each other, and go anywhere.
        let default = Group {
            vpc: "vpc-main".into(),
            name: "default".into(),
            description: "default VPC security group".into(),
            tags: BTreeMap::new(),
            ingress: vec![Rule { protocol: "-1".into(), ports: None, peer: group("sg-default") }],
            egress: vec![Rule::allow_all_egress()],
        };
        self.groups.insert("sg-default".into(), default);
    }

    /// What [`public_spec`] adds: the internet gateway, attached, and the public tier's route table with the
    /// default route to it.
    fn public(&mut self) {
        let gateway = Gateway {
            vpc: Some("vpc-main".into()),
            tags: owned("mocked-internet-gateway-main", "internet_gateway.main"),
        };
        self.gateways.insert("igw-main".into(), gateway);
        let table = Table {
            vpc: "vpc-main".into(),
            main: None,
            tags: owned("mocked-route-table-public", "route_table.public"),
            routes: BTreeMap::from([("0.0.0.0/0".to_string(), "igw-main".to_string())]),
            associations: associations(&[
                ("rtbassoc-public-a", "subnet-public-a"),
                ("rtbassoc-public-b", "subnet-public-b"),
            ]),
        };
        self.tables.insert("rtb-public".into(), table);
    }
}
