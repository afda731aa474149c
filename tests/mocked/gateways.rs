//! Internet gateways and route tables: the order AWS requires for them (a gateway is detached before it is
//! deleted, a table's subnets are released before it is deleted, the VPC goes last), and CreateRouteTable's client
//! token. The world starts from [`public_spec`]'s (or SPEC's, when the test adds the gateway).

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{ResourceType, Tag, TagSpecification};
use webscale::aws::CallExt;

use super::fake::{Fault, Table, VpcRec};
use super::*;

/// The one id in `ids`.
fn one(ids: Vec<String>) -> String {
    assert_eq!(ids.len(), 1, "exactly one: {ids:?}");
    ids.into_iter().next().unwrap()
}

/// Where in `calls` `op` on `on` first succeeded.
fn at(calls: &[Call], op: &str, on: &str) -> usize {
    calls
        .iter()
        .position(|c| c.op == op && c.on == on && c.error.is_none())
        .unwrap_or_else(|| panic!("no successful {op} on {on}: {calls:#?}"))
}

/// The route calls made, as (operation, table, what the request named).
fn route_calls(aws: &Fake) -> Vec<(&'static str, String, Vec<String>)> {
    let ops = ["CreateRoute", "ReplaceRoute", "DeleteRoute"];
    aws.calls().into_iter().filter(|c| ops.contains(&c.op)).map(|c| (c.op, c.on, c.refs)).collect()
}

/// The hand-written world of the public spec is what that spec asks for: nothing to do.
#[tokio::test]
async fn the_public_world_is_what_the_public_spec_asks_for() {
    let aws = Fake::provisioned(&public_spec());
    let cloud = aws.cloud(fast());
    let plan = apply_plan(&cloud, &stack(&public_spec())).await;
    assert!(!plan.has_changes(), "{:#?}", changed(&plan));
}

/// The rules the tests below rely on, checked on the fake itself with calls made out of order on purpose.
#[tokio::test]
async fn the_fake_refuses_gateway_and_route_table_calls_as_aws_does() {
    let aws = Fake::provisioned(&public_spec());
    let client = aws.ec2_client();
    let ec2 = &client;
    let code = |r: Result<(), CloudError>| r.err().map(|e| e.code().to_string());
    let delete_gateway = move || async move {
        ec2.delete_internet_gateway().internet_gateway_id("igw-main").send().await.call("X").map(|_| ())
    };
    let detach = move || async move {
        let out = ec2.detach_internet_gateway().internet_gateway_id("igw-main").vpc_id("vpc-main").send().await;
        out.call("X").map(|_| ())
    };
    let delete_table = move |id: &'static str| async move {
        ec2.delete_route_table().route_table_id(id).send().await.call("X").map(|_| ())
    };
    let delete_vpc = move || async move { ec2.delete_vpc().vpc_id("vpc-main").send().await.call("X").map(|_| ()) };
    let route = move |destination: &'static str| async move {
        let out = ec2
            .create_route()
            .route_table_id("rtb-public")
            .destination_cidr_block(destination)
            .gateway_id("igw-main")
            .send()
            .await;
        out.call("X").map(|_| ())
    };

    // An attached gateway can be neither deleted nor attached again.
    assert_eq!(code(delete_gateway().await).as_deref(), Some("DependencyViolation"));
    let again = ec2.attach_internet_gateway().internet_gateway_id("igw-main").vpc_id("vpc-main").send().await;
    assert_eq!(code(again.call("X").map(|_| ())).as_deref(), Some("Resource.AlreadyAssociated"));
    // A table with subnets cannot be deleted, the main table never; a subnet has one explicit association.
    assert_eq!(code(delete_table("rtb-public").await).as_deref(), Some("DependencyViolation"));
    assert_eq!(code(delete_table("rtb-main").await).as_deref(), Some("DependencyViolation"));
    let twice = ec2.associate_route_table().route_table_id("rtb-public").subnet_id("subnet-public-a").send().await;
    assert_eq!(code(twice.call("X").map(|_| ())).as_deref(), Some("Resource.AlreadyAssociated"));
    let main = ec2.disassociate_route_table().association_id("rtbassoc-main").send().await;
    assert_eq!(code(main.call("X").map(|_| ())).as_deref(), Some("InvalidParameterValue"));
    // One route per destination; deleting a route that is not there fails.
    assert_eq!(code(route("0.0.0.0/0").await).as_deref(), Some("RouteAlreadyExists"));
    let missing = ec2.delete_route().route_table_id("rtb-public").destination_cidr_block("192.0.2.0/24").send().await;
    assert_eq!(code(missing.call("X").map(|_| ())).as_deref(), Some("InvalidRoute.NotFound"));

    // With everything else gone, the VPC still cannot go while the gateway is attached or the table exists.
    aws.with(|w| {
        for subnet in ["subnet-public-a", "subnet-public-b", "subnet-private-a", "subnet-private-b"] {
            w.remove_subnet(subnet);
        }
        w.groups.retain(|_, g| g.name == "default");
        w.acls.retain(|_, a| a.default);
    });
    assert_eq!(code(delete_vpc().await).as_deref(), Some("DependencyViolation"));
    assert_eq!(code(detach().await), None);
    assert_eq!(code(detach().await).as_deref(), Some("Gateway.NotAttached"), "a detached gateway is not attached");
    assert_eq!(code(route("192.0.2.0/24").await).as_deref(), Some("InvalidParameterValue"), "not the VPC's gateway");
    assert_eq!(code(delete_vpc().await).as_deref(), Some("DependencyViolation"), "rtb-public is still there");
    assert_eq!(code(delete_table("rtb-public").await), None, "no subnets left: its routes go with it");
    assert_eq!(code(delete_gateway().await), None);
    assert_eq!(code(delete_vpc().await), None);
    aws.with(|w| {
        assert!(w.tables.is_empty(), "the main table went with the VPC");
        assert!(w.groups.is_empty(), "so did the default group");
        assert!(w.acls.is_empty(), "so did the default ACL");
    });
}

/// CreateRouteTable with a client token already used, and the same parameters, returns the first table and makes
/// no second one; with other parameters AWS refuses; another token makes another table.
#[tokio::test]
async fn a_repeated_create_route_table_with_its_token_returns_the_first_table() {
    let aws = Fake::provisioned(SPEC);
    aws.with(|w| {
        let other = VpcRec { cidr: "10.1.0.0/16".into(), dns_hostnames: true, tags: Default::default() };
        w.vpcs.insert("vpc-other".into(), other);
    });
    let ec2 = aws.ec2_client();
    let create = |vpc: &'static str, token: &'static str| {
        let name = Tag::builder().key("Name").value("mocked-route-table-public").build();
        ec2.create_route_table()
            .vpc_id(vpc)
            .client_token(token)
            .tag_specifications(TagSpecification::builder().resource_type(ResourceType::RouteTable).tags(name).build())
            .send()
    };
    let id = |out: op::create_route_table::CreateRouteTableOutput| {
        out.route_table().and_then(|t| t.route_table_id()).expect("a table id").to_string()
    };

    let first = id(create("vpc-main", "ws-token-1").await.call("CreateRouteTable").unwrap());
    let again = id(create("vpc-main", "ws-token-1").await.call("CreateRouteTable").unwrap());
    assert_eq!(again, first, "the same token and parameters return the first table");
    aws.with(|w| assert_eq!(w.tables.keys().collect::<Vec<_>>(), ["rtb-main", first.as_str()], "no second table"));

    let mismatch = create("vpc-other", "ws-token-1").await.call("CreateRouteTable").expect_err("other parameters");
    assert_eq!(mismatch.code(), "IdempotentParameterMismatch");
    let other = id(create("vpc-main", "ws-token-2").await.call("CreateRouteTable").unwrap());
    assert_ne!(other, first, "another token, another table");
    aws.with(|w| assert_eq!(w.tables.len(), 3));
}

/// Turning the gateway on and routing the public tier through it: the gateway is made and attached before the route
/// to it (AWS refuses a route to a gateway not attached to the table's VPC), then the table gets its route and its
/// subnets. Every call accepted first time.
#[tokio::test]
async fn adding_a_gateway_and_a_public_route_table_is_accepted_first_time() {
    let aws = Fake::provisioned(SPEC);
    let cloud = aws.cloud(fast());

    let plan = apply_plan(&cloud, &stack(&public_spec())).await;
    assert_eq!(
        changed(&plan),
        [("internet_gateway.main".to_string(), Action::Create), ("route_table.public".to_string(), Action::Create)]
    );
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    assert_no_errors(&aws);
    let (gateway, table) =
        aws.with(|w| (one(w.at_address("internet_gateway.main")), one(w.at_address("route_table.public"))));
    let calls = aws.calls();
    assert!(
        at(&calls, "AttachInternetGateway", &gateway) < at(&calls, "CreateRoute", &table),
        "attached, then routed to"
    );
    assert_eq!(calls[at(&calls, "AttachInternetGateway", &gateway)].refs, ["vpc-main"]);
    aws.with(|w| {
        assert_eq!(w.gateways[&gateway].vpc.as_deref(), Some("vpc-main"));
        assert_eq!(w.tables[&table].vpc, "vpc-main");
        assert_eq!(w.tables[&table].routes, BTreeMap::from([("0.0.0.0/0".to_string(), gateway.clone())]));
        assert_eq!(w.subnets_on_table(&table), ["subnet-public-a", "subnet-public-b"]);
        assert_eq!(w.tables.len(), 2, "the main table and the public one");
    });
    assert!(!apply_plan(&cloud, &stack(&public_spec())).await.has_changes(), "nothing left to do");
}

/// CreateRouteTable's answer is lost and the table is not yet in the next read (AWS's reads lag), so the engine's
/// look before creating again finds nothing: it sends the create again, with the same client token, and AWS
/// answers with the table the first call made. One table, not two.
#[tokio::test]
async fn a_lost_route_table_create_sent_again_with_its_token_makes_no_second_table() {
    let aws = Fake::provisioned(SPEC);
    aws.with(|w| w.fail_next("CreateRouteTable", Fault::AnswerLost { unseen_for: 1 }));
    let cloud = aws.cloud(fast());

    let plan = apply_plan(&cloud, &stack(&public_spec())).await;
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    let creates = aws.calls_of("CreateRouteTable");
    assert_eq!(creates.len(), 2, "{creates:#?}");
    assert_eq!(creates[0].error.as_deref(), Some("InternalError"));
    assert_eq!(creates[1].error, None);
    assert!(creates[0].token.is_some(), "CreateRouteTable carries a client token");
    assert_eq!(creates[1].token, creates[0].token, "the repeat carries the same token");
    assert_eq!(creates[1].on, creates[0].on, "and is answered with the first table");
    let table = creates[0].on.clone();
    aws.with(|w| {
        assert_eq!(w.at_address("route_table.public"), [table.clone()], "one table");
        assert_eq!(w.tables.len(), 2, "the main table and the public one");
        assert_eq!(w.subnets_on_table(&table), ["subnet-public-a", "subnet-public-b"]);
        assert_eq!(w.tables[&table].routes.len(), 1);
    });
    assert!(!apply_plan(&cloud, &stack(&public_spec())).await.has_changes(), "nothing left to do");
}

/// Destroy in the order AWS requires: the table's subnets are released before the table is deleted (its routes go
/// with it), the gateway is detached before it is deleted, and the VPC is deleted last. Each call accepted first
/// time.
#[tokio::test]
async fn destroy_releases_and_detaches_before_deleting_and_deletes_the_vpc_last() {
    let aws = Fake::provisioned(&public_spec());
    let cloud = aws.cloud(fast());

    let plan = destroy_plan(&cloud).await;
    let planned = deletes(&plan);
    for address in ["internet_gateway.main", "route_table.public", "vpc.main"] {
        assert!(planned.iter().any(|a| a == address), "{address} is deleted: {planned:?}");
    }
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    assert_no_errors(&aws);
    let calls = aws.calls();
    let table_deleted = at(&calls, "DeleteRouteTable", "rtb-public");
    for subnet in ["subnet-public-a", "subnet-public-b"] {
        let released = at(&calls, "DisassociateRouteTable", subnet);
        assert_eq!(calls[released].refs, ["rtb-public"], "{subnet} is released from the public table");
        assert!(released < table_deleted, "{subnet} is released before DeleteRouteTable");
    }
    let detached = at(&calls, "DetachInternetGateway", "igw-main");
    assert_eq!(calls[detached].refs, ["vpc-main"]);
    assert!(detached < at(&calls, "DeleteInternetGateway", "igw-main"), "detached, then deleted");
    let vpc = at(&calls, "DeleteVpc", "vpc-main");
    let writes_after: Vec<&Call> = calls[vpc + 1..].iter().filter(|c| !c.op.starts_with("Describe")).collect();
    assert!(writes_after.is_empty(), "the VPC goes last: {writes_after:#?}");
    for (op, on) in [
        ("DeleteRouteTable", "rtb-public"),
        ("DetachInternetGateway", "igw-main"),
        ("DeleteInternetGateway", "igw-main"),
        ("DeleteVpc", "vpc-main"),
    ] {
        assert_eq!(aws.count(op, on), 1, "{op} {on}: accepted at the first attempt");
    }
    assert!(route_calls(&aws).is_empty(), "no route is deleted one by one: {:?}", route_calls(&aws));
    aws.with(|w| {
        assert!(w.gateways.is_empty() && w.tables.is_empty() && w.vpcs.is_empty(), "nothing left");
        assert!(w.subnets.is_empty() && w.groups.is_empty() && w.acls.is_empty(), "nothing left");
    });
}

/// Someone pointed the default route elsewhere by hand (a virtual private gateway, say). The plan updates the
/// table, and apply puts the route back on the internet gateway in place (ReplaceRoute): deleting it first would
/// leave the public subnets without a way out for a moment.
#[tokio::test]
async fn a_default_route_pointed_elsewhere_by_hand_is_replaced_in_place() {
    let aws = Fake::provisioned(&public_spec());
    aws.with(|w| w.tables.get_mut("rtb-public").unwrap().routes.insert("0.0.0.0/0".into(), "vgw-office".into()));
    let cloud = aws.cloud(fast());

    let plan = apply_plan(&cloud, &stack(&public_spec())).await;
    assert_eq!(changed(&plan), [("route_table.public".to_string(), Action::Update)]);
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    assert_no_errors(&aws);
    assert_eq!(
        route_calls(&aws),
        [("ReplaceRoute", "rtb-public".to_string(), vec!["0.0.0.0/0".to_string(), "igw-main".to_string()])]
    );
    aws.with(|w| assert_eq!(w.tables["rtb-public"].routes["0.0.0.0/0"], "igw-main"));
}

/// A public subnet moved onto another table by hand (in the console). The plan gives it back to the public table
/// by moving its association (ReplaceRouteTableAssociation): AWS refuses a second association for a subnet.
#[tokio::test]
async fn a_public_subnet_moved_to_another_table_by_hand_is_moved_back() {
    let aws = Fake::provisioned(&public_spec());
    aws.with(|w| {
        w.tables.get_mut("rtb-public").unwrap().associations.remove("rtbassoc-public-a");
        let console = Table {
            vpc: "vpc-main".into(),
            main: None,
            tags: BTreeMap::new(),
            routes: BTreeMap::new(),
            associations: BTreeMap::from([("rtbassoc-console-a".to_string(), "subnet-public-a".to_string())]),
        };
        w.tables.insert("rtb-console".into(), console);
    });
    let cloud = aws.cloud(fast());

    let plan = apply_plan(&cloud, &stack(&public_spec())).await;
    assert_eq!(changed(&plan), [("route_table.public".to_string(), Action::Update)]);
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    assert_no_errors(&aws);
    let moves = aws.calls_of("ReplaceRouteTableAssociation");
    assert_eq!(moves.len(), 1, "{moves:#?}");
    assert_eq!(
        (moves[0].on.as_str(), moves[0].refs.as_slice()),
        ("subnet-public-a", ["rtb-public".to_string()].as_slice())
    );
    assert!(aws.calls_of("AssociateRouteTable").is_empty(), "no second association is attempted");
    aws.with(|w| {
        assert_eq!(w.table_of("subnet-public-a").as_deref(), Some("rtb-public"));
        assert!(w.tables["rtb-console"].associations.is_empty());
    });
}

/// Dropping the default route from the spec deletes that route, and nothing else: the table keeps its subnets.
#[tokio::test]
async fn a_route_dropped_from_the_spec_is_deleted() {
    let aws = Fake::provisioned(&public_spec());
    let cloud = aws.cloud(fast());
    let no_route = public_spec()
        .replace(r#"routes = [{ destination = "0.0.0.0/0", target = "internet_gateway" }]"#, "routes = []");

    let plan = apply_plan(&cloud, &stack(&no_route)).await;
    assert_eq!(changed(&plan), [("route_table.public".to_string(), Action::Update)]);
    let (report, _) = run(&cloud, &plan).await;

    assert_all_done(&report);
    assert_no_errors(&aws);
    assert_eq!(route_calls(&aws), [("DeleteRoute", "rtb-public".to_string(), vec!["0.0.0.0/0".to_string()])]);
    aws.with(|w| {
        assert!(w.tables["rtb-public"].routes.is_empty());
        assert_eq!(w.subnets_on_table("rtb-public"), ["subnet-public-a", "subnet-public-b"]);
        assert_eq!(w.gateways["igw-main"].vpc.as_deref(), Some("vpc-main"), "the gateway stays");
    });
    assert!(!apply_plan(&cloud, &stack(&no_route)).await.has_changes(), "nothing left to do");
}
