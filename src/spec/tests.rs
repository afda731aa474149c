//! What a user sees from `spec::parse`: a checked stack for a good file, and for a bad one every problem at once,
//! each at the right file:line:column, naming the field, saying what is wrong and what would be valid.
//!
//! Most tests edit `BASE`, a small valid stack whose line numbers the expected positions below rely on. Messages
//! are checked by their key words, not copied whole, so rewording stays cheap while the content stays required.

use ipnet::Ipv4Net;

use super::*;

/// A minimal valid stack. Line numbers: 1 `[stack]`, 2 name, 3 region, 5 `[network]`, 6 cidr,
/// 8 `[network.zones.a]` (9 az, 10 public, 11 private), 13 `[network.zones.b]` (14 az, 15 public, 16 private).
/// Text appended with `with` starts on line 17.
const BASE: &str = r#"[stack]
name = "shop"
region = "us-east-1"

[network]
cidr = "10.0.0.0/16"

[network.zones.a]
availability_zone = "us-east-1a"
public_subnet = "10.0.0.0/24"
private_subnet = "10.0.10.0/24"

[network.zones.b]
availability_zone = "us-east-1b"
public_subnet = "10.0.1.0/24"
private_subnet = "10.0.11.0/24"
"#;

const TEMPLATE: &str = include_str!("../../templates/webscale.toml");
const FILE: &str = "templates/stack.toml";

fn no_region() -> RegionChoice {
    RegionChoice::default()
}

fn parse_with(text: &str, region: &RegionChoice) -> Result<Stack, SpecError> {
    parse(Path::new(FILE), text, region)
}

#[track_caller]
fn ok(text: &str) -> Stack {
    match parse_with(text, &no_region()) {
        Ok(stack) => stack,
        Err(e) => panic!("expected a valid stack, got:\n{e}"),
    }
}

#[track_caller]
fn problems_with(text: &str, region: &RegionChoice) -> Vec<Diagnostic> {
    match parse_with(text, region) {
        Ok(_) => panic!("expected problems, but the stack parsed:\n{text}"),
        Err(SpecError::Invalid(diags)) => diags,
        Err(e) => panic!("expected SpecError::Invalid, got {e:?}"),
    }
}

#[track_caller]
fn problems(text: &str) -> Vec<Diagnostic> {
    problems_with(text, &no_region())
}

/// The single problem in `text`; fails if there are more, so a test also proves nothing else is reported.
#[track_caller]
fn one(text: &str) -> Diagnostic {
    one_of(problems(text))
}

#[track_caller]
fn one_of(diags: Vec<Diagnostic>) -> Diagnostic {
    match <[Diagnostic; 1]>::try_from(diags) {
        Ok([d]) => d,
        Err(diags) => panic!("expected exactly one problem, got {}:\n{}", diags.len(), render(&diags)),
    }
}

fn render(diags: &[Diagnostic]) -> String {
    diags.iter().map(|d| format!("  {d}\n")).collect()
}

/// Asserts where a problem is and that its message contains every one of `words`.
#[track_caller]
fn check(d: &Diagnostic, field: &str, line: usize, column: usize, words: &[&str]) {
    assert_eq!(d.file, Path::new(FILE), "file of {d}");
    assert_eq!((d.field.as_str(), d.line, d.column), (field, line, column), "position of {d}");
    for w in words {
        assert!(d.message.contains(w), "message of {d}\n  lacks {w:?}");
    }
}

/// `BASE` with one exact piece of text replaced; the piece must occur once, so edits cannot silently miss.
#[track_caller]
fn edit(from: &str, to: &str) -> String {
    assert_eq!(BASE.matches(from).count(), 1, "{from:?} must occur exactly once in BASE");
    BASE.replacen(from, to, 1)
}

/// `BASE` with more tables after it, starting on line 17.
fn with(extra: &str) -> String {
    format!("{BASE}{extra}")
}

fn net(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}

// ---------------------------------------------------------------------------------------------------------------
// Files that parse

#[test]
fn reference_template_parses_into_the_documented_stack() {
    let stack = ok(TEMPLATE);
    assert_eq!(stack.name, "webscale");
    assert_eq!(stack.region, "us-east-1");
    assert_eq!(stack.tags, BTreeMap::from([("environment".to_string(), "demo".to_string())]));

    let network = &stack.network;
    assert_eq!(network.cidr, net("10.0.0.0/16"));
    assert!(network.internet_gateway && network.dns_hostnames);
    let zones: Vec<_> = network.zones.iter().map(|z| (z.name.as_str(), z.availability_zone.as_str())).collect();
    assert_eq!(zones, [("a", "us-east-1a"), ("b", "us-east-1b")]);
    assert_eq!(network.zones[1].public_subnet, net("10.0.1.0/24"));
    assert_eq!(network.zones[1].private_subnet, net("10.0.11.0/24"));
    let public = network.route_tables.iter().find(|t| t.tier == Tier::Public).expect("a public route table");
    assert_eq!(public.routes.len(), 1);
    assert_eq!(public.routes[0].destination, net("0.0.0.0/0"));
    assert_eq!(public.routes[0].target, RouteTarget::InternetGateway);

    let groups: Vec<_> = stack.security_groups.iter().map(|g| g.name.as_str()).collect();
    assert_eq!(groups, ["db", "lb", "web"], "three groups, sorted by name");
    let group = |name: &str| stack.security_groups.iter().find(|g| g.name == name).unwrap();
    // web omits egress: it keeps AWS's default allow-all rule.
    let allow_all = SgRule { protocol: Protocol::All, ports: None, peer: Peer::Cidr(net("0.0.0.0/0")) };
    assert_eq!(group("web").egress, [allow_all]);
    // db writes `egress = []`: no egress at all.
    assert!(group("db").egress.is_empty());
    let to_web = SgRule {
        protocol: Protocol::Tcp,
        ports: Some(PortRange { from: 80, to: 80 }),
        peer: Peer::Group("web".into()),
    };
    assert_eq!(group("lb").egress, [to_web]);
    assert_eq!(group("lb").description, "Load balancer: HTTP and HTTPS from anywhere");

    assert_eq!(stack.network_acls.len(), 2);
    let private = stack.network_acls.iter().find(|a| a.tier == Tier::Private).unwrap();
    let numbers: Vec<_> = private.ingress.iter().map(|r| r.number).collect();
    assert_eq!(numbers, [100, 110]);
    assert_eq!(private.ingress[1].ports, Some(PortRange { from: 1024, to: 65535 }));
    assert!(private.ingress.iter().all(|r| r.allow));

    assert_eq!(network.nat, Nat::Single);
    let web = stack.web.as_ref().expect("[web]");
    assert_eq!((web.count, web.instance_type.as_str(), web.security_group.as_str()), (2, "t3.micro", "web"));
    assert_eq!(web.ami, Ami::Parameter("/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64".into()));
    assert!(
        web.user_data.starts_with("#!/bin/bash") && web.user_data.contains("/health"),
        "user data read from the file"
    );
    let lb = stack.load_balancer.as_ref().expect("[load_balancer]");
    assert_eq!((lb.security_group.as_str(), lb.certificate_arn.as_deref(), lb.target_port), ("lb", None, 80));
    assert_eq!(lb.health_check.path, "/health");
    let dns = stack.dns.as_ref().expect("[dns]");
    assert_eq!((dns.zone.as_str(), dns.create_zone), ("webscale.example.com", true));
    assert_eq!(dns.records, [RecordName::Apex, RecordName::Www]);
}

#[test]
fn load_reads_the_reference_template_from_disk() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/webscale.toml");
    let stack = load(&path, &no_region()).expect("the reference template is valid");
    assert_eq!(stack.security_groups.len(), 3);
}

#[test]
fn load_of_a_missing_file_is_a_read_error_naming_the_file() {
    let err = load(Path::new("/nonexistent/stack.toml"), &no_region()).unwrap_err();
    assert!(matches!(err, SpecError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/stack.toml"), "{err}");
}

#[test]
fn base_is_valid_and_defaults_apply() {
    let stack = ok(BASE);
    assert!(stack.network.internet_gateway, "internet_gateway defaults to true");
    assert!(stack.network.dns_hostnames, "dns_hostnames defaults to true");
    assert!(stack.security_groups.is_empty() && stack.network_acls.is_empty() && stack.tags.is_empty());
}

#[test]
fn security_group_without_description_gets_one_naming_the_stack() {
    let stack = ok(&with("[security_groups.web]\n"));
    assert_eq!(stack.security_groups[0].description, "web tier of webscale stack shop");
}

// ---------------------------------------------------------------------------------------------------------------
// TOML and shape: syntax, unknown keys, types, required fields

#[test]
fn syntax_error_points_at_the_broken_spot() {
    let d = one(&edit("[network]\n", "[network\n"));
    check(&d, "(syntax)", 5, 9, &["expected `]`"]);
}

#[test]
fn duplicate_key_is_a_syntax_error_at_the_second_key() {
    let d = one(&edit("name = \"shop\"\n", "name = \"shop\"\nname = \"shop2\"\n"));
    check(&d, "(syntax)", 3, 1, &["duplicate key"]);
}

#[test]
fn unknown_top_level_key_lists_the_valid_keys() {
    let d = one(&format!("bogus = 1\n{BASE}"));
    check(&d, "bogus", 1, 1, &["unknown field `bogus`", "`stack`", "`network`", "`security_groups`", "`network_acls`"]);
}

#[test]
fn unknown_key_in_a_named_table_lists_the_valid_keys() {
    let d = one(&edit("public_subnet = \"10.0.1.0/24\"", "public_subnets = \"10.0.1.0/24\""));
    check(
        &d,
        "network.zones.b.public_subnets",
        15,
        1,
        &["unknown field `public_subnets`", "`availability_zone`", "`public_subnet`", "`private_subnet`"],
    );
}

#[test]
fn unknown_key_in_a_rule_names_the_rule_by_index() {
    let d = one(&with(concat!(
        "[security_groups.web]\n",
        "ingress = [\n",
        "  { protocol = \"tcp\", ports = 443, cidr = \"0.0.0.0/0\" },\n",
        "  { protocol = \"tcp\", port = 80, cidr = \"0.0.0.0/0\" },\n",
        "]\n",
    )));
    check(
        &d,
        "security_groups.web.ingress[1].port",
        20,
        23,
        &["unknown field `port`", "`protocol`", "`ports`", "`cidr`", "`security_group`"],
    );
}

#[test]
fn every_unknown_key_is_reported_at_once_next_to_the_other_problems() {
    // Two typos of optional keys in two tables, and a subnet overlapping another: all three, top down.
    let text = edit("region = \"us-east-1\"\n", "region = \"us-east-1\"\ntag = { team = \"web\" }\n")
        .replace("cidr = \"10.0.0.0/16\"\n", "cidr = \"10.0.0.0/16\"\ninternet_gatway = false\n")
        .replace("\"10.0.1.0/24\"", "\"10.0.0.0/23\"");
    let diags = problems(&text);
    let got: Vec<_> = diags.iter().map(|d| (d.line, d.column, d.field.as_str())).collect();
    assert_eq!(
        got,
        [(4, 1, "stack.tag"), (8, 1, "network.internet_gatway"), (17, 17, "network.zones.b.public_subnet")],
        "\n{}",
        render(&diags)
    );
    check(&diags[0], "stack.tag", 4, 1, &["unknown field `tag`", "`name`", "`region`", "`tags`", "`ignore_tags`"]);
    check(
        &diags[1],
        "network.internet_gatway",
        8,
        1,
        &["unknown field `internet_gatway`", "`cidr`", "`internet_gateway`", "`dns_hostnames`", "`route_tables`"],
    );
    check(&diags[2], "network.zones.b.public_subnet", 17, 17, &["overlaps network.zones.a.public_subnet"]);
}

#[test]
fn unknown_key_in_a_rule_entry_names_its_field_path_and_not_the_key_it_hides() {
    // `prots` is `ports` misspelt: one problem, not also "a tcp rule needs ports".
    let d = one(&with(concat!(
        "[security_groups.web]\n",
        "ingress = [{ protocol = \"tcp\", prots = 80, cidr = \"0.0.0.0/0\" }]\n",
    )));
    check(
        &d,
        "security_groups.web.ingress[0].prots",
        18,
        32,
        &["unknown field `prots`", "`protocol`", "`ports`", "`cidr`", "`security_group`"],
    );
}

#[test]
fn a_key_is_taken_as_misspelt_only_when_the_unknown_key_looks_like_it() {
    // `regoin` is `region` misspelt: no "no region" problem on top of it.
    let d = one(&edit("region = ", "regoin = "));
    check(&d, "stack.regoin", 3, 1, &["unknown field `regoin`", "`region`"]);
    // `note` is not: the stack still has no region, and says so.
    let diags = problems(&edit("region = \"us-east-1\"\n", "note = 1\n"));
    let got: Vec<_> = diags.iter().map(|d| (d.line, d.column, d.field.as_str())).collect();
    assert_eq!(got, [(1, 1, "stack.region"), (3, 1, "stack.note")], "\n{}", render(&diags));
    // A required key misspelt so it holds the real one (`cidr_blok`) is one problem, not also "missing `cidr`".
    let d = one(&edit("cidr = ", "cidr_blok = "));
    check(&d, "network.cidr_blok", 6, 1, &["unknown field `cidr_blok`", "`cidr`"]);
}

#[test]
fn misspelt_top_level_table_lists_the_tables() {
    // The whole of [network] misspelt: one problem, not also "missing field `network`".
    let d = one(&BASE.replace("[network", "[netwrk"));
    check(
        &d,
        "netwrk",
        5,
        2,
        &["unknown field `netwrk`", "`stack`", "`network`", "`security_groups`", "`network_acls`"],
    );

    // Only the header misspelt: its keys are then missing from [network], which its sub-tables still make.
    let diags = problems(&edit("[network]\n", "[netwrk]\n"));
    let got: Vec<_> = diags.iter().map(|d| (d.line, d.column, d.field.as_str())).collect();
    assert_eq!(got, [(5, 2, "netwrk"), (8, 2, "network.cidr")], "\n{}", render(&diags));
}

#[test]
fn unknown_keys_are_found_in_every_kind_of_table() {
    let text = r#"[stack]
name = "shop"
region = "us-east-1"
x1 = 1
tags = { "x" = "tags take any key" }

[network]
cidr = "10.0.0.0/16"
x2 = 1

[network.zones.a]
availability_zone = "us-east-1a"
public_subnet = "10.0.0.0/24"
private_subnet = "10.0.10.0/24"
x3 = 1

[network.zones.b]
availability_zone = "us-east-1b"
public_subnet = "10.0.1.0/24"
private_subnet = "10.0.11.0/24"

[network.route_tables.public]
tier = "public"
x4 = 1
routes = [{ destination = "0.0.0.0/0", target = "internet_gateway", x5 = 1 }]

[security_groups.web]
x6 = 1
ingress = [{ protocol = "tcp", ports = 80, cidr = "0.0.0.0/0", x7 = 1 }]
egress = [{ protocol = "all", cidr = "10.0.0.0/8" }, { protocol = "all", cidr = "0.0.0.0/0", x8 = 1 }]

[network_acls.public]
tier = "public"
x9 = 1
egress = [{ rule = 100, protocol = "all", cidr = "0.0.0.0/0", action = "allow", x10 = 1 }]
"#;
    let diags = problems(text);
    let got: Vec<_> = diags.iter().map(|d| (d.line, d.field.as_str())).collect();
    assert_eq!(
        got,
        [
            (4, "stack.x1"),
            (9, "network.x2"),
            (15, "network.zones.a.x3"),
            (24, "network.route_tables.public.x4"),
            (25, "network.route_tables.public.routes[0].x5"),
            (28, "security_groups.web.x6"),
            (29, "security_groups.web.ingress[0].x7"),
            (30, "security_groups.web.egress[1].x8"),
            (34, "network_acls.public.x9"),
            (35, "network_acls.public.egress[0].x10"),
        ],
        "\n{}",
        render(&diags)
    );
    assert!(diags.iter().all(|d| d.message.starts_with("unknown field `x")), "\n{}", render(&diags));
    let without: String = text.lines().filter(|l| !l.starts_with("x")).map(|l| format!("{l}\n")).collect();
    let without =
        without.replace(", x5 = 1", "").replace(", x7 = 1", "").replace(", x8 = 1", "").replace(", x10 = 1", "");
    ok(&without);
}

/// Every table the unknown-key pass knows under a key must be a key serde takes there, or the pass would skip it.
#[test]
fn unknown_key_shapes_name_only_keys_serde_takes() {
    use super::validate::{Shape, spec_shape};
    fn walk(shape: &Shape, at: &str, tables: &mut usize) {
        match shape {
            Shape::Table { keys, nested } => {
                *tables += 1;
                assert!(!keys.is_empty(), "{at}: no keys");
                for (key, inner) in nested {
                    assert!(keys.contains(key), "{at}: `{key}` is not one of {keys:?}");
                    walk(inner, &format!("{at}.{key}"), tables);
                }
            }
            Shape::Named(inner) => walk(inner, &format!("{at}.NAME"), tables),
            Shape::Each(inner) => walk(inner, &format!("{at}[]"), tables),
        }
    }
    let mut tables = 0;
    walk(&spec_shape(), "(top level)", &mut tables);
    // The file, [stack], [network], zone, route table, route, group, its rules (ingress, egress), ACL, its rules,
    // [web], [load_balancer], its health check, [dns], [database], [static_assets], [logging].
    assert_eq!(tables, 19);
}

#[test]
fn wrong_type_says_what_was_found_and_what_is_expected() {
    let d = one(&edit("cidr = \"10.0.0.0/16\"", "cidr = 10"));
    check(&d, "network.cidr", 6, 8, &["integer `10`", "expected a string"]);

    let d = one(&edit("cidr = \"10.0.0.0/16\"", "cidr = \"10.0.0.0/16\"\ninternet_gateway = \"yes\""));
    check(&d, "network.internet_gateway", 7, 20, &["string \"yes\"", "expected a boolean"]);
}

#[test]
fn missing_field_names_the_missing_key_and_points_at_its_table() {
    let d = one(&edit("private_subnet = \"10.0.11.0/24\"\n", ""));
    check(&d, "network.zones.b.private_subnet", 13, 1, &["missing", "`private_subnet`"]);
}

#[test]
fn missing_field_in_an_inline_rule_points_at_the_rule() {
    let d = one(&with(concat!(
        "[network_acls.public]\n",
        "tier = \"public\"\n",
        "ingress = [{ protocol = \"all\", cidr = \"0.0.0.0/0\", action = \"allow\" }]\n",
    )));
    check(&d, "network_acls.public.ingress[0].rule", 19, 12, &["missing", "`rule`"]);
}

#[test]
fn missing_top_level_table_is_named() {
    let d = one("[stack]\nname = \"shop\"\nregion = \"us-east-1\"\n");
    check(&d, "network", 1, 1, &["missing", "`network`"]);
}

// ---------------------------------------------------------------------------------------------------------------
// [stack]: name, region, tags

#[test]
fn invalid_stack_name_says_what_a_name_may_hold() {
    let d = one(&edit("name = \"shop\"", "name = \"My_Shop\""));
    check(&d, "stack.name", 2, 8, &["\"My_Shop\"", "lowercase letters, digits and hyphens", "starting with a letter"]);

    let long = "a".repeat(33);
    let d = one(&edit("name = \"shop\"", &format!("name = \"{long}\"")));
    check(&d, "stack.name", 2, 8, &["1 to 32"]);

    ok(&edit("name = \"shop\"", &format!("name = \"{}\"", "a".repeat(32))));
}

#[test]
fn invalid_region_gives_an_example_of_a_valid_one() {
    let d = one(&edit("region = \"us-east-1\"", "region = \"US East\""));
    check(&d, "stack.region", 3, 10, &["\"US East\"", "not an AWS region", "\"us-east-1\""]);
}

#[test]
fn invalid_region_does_not_also_flag_every_zone() {
    // With no usable region, "us-east-1a" cannot be judged; one problem, not three.
    let d = one(&edit("region = \"us-east-1\"", "region = \"useast1\""));
    check(&d, "stack.region", 3, 10, &["not an AWS region"]);
}

#[test]
fn reserved_tag_keys_are_rejected_whatever_their_case() {
    let text = edit(
        "region = \"us-east-1\"\n",
        concat!(
            "region = \"us-east-1\"\n",
            "tags = { \"aws:owner\" = \"x\", \"AWS:team\" = \"y\", \"webscale:stack\" = \"z\", Name = \"n\", team = \"ok\" }\n",
        ),
    );
    let diags = problems(&text);
    assert_eq!(diags.len(), 4, "{}", render(&diags));
    check(&diags[0], "stack.tags.\"aws:owner\"", 4, 10, &["reserved", "\"aws:\"", "\"webscale:\""]);
    check(&diags[1], "stack.tags.\"AWS:team\"", 4, 29, &["reserved"]);
    check(&diags[2], "stack.tags.\"webscale:stack\"", 4, 47, &["reserved"]);
    check(&diags[3], "stack.tags.Name", 4, 71, &["reserved", "\"Name\""]);
}

// ---------------------------------------------------------------------------------------------------------------
// Region choice: --region beats the file, which beats AWS_REGION / the profile

/// BASE with portable bare-letter zones, so it fits any region.
fn portable(region_line: &str) -> String {
    BASE.replace("region = \"us-east-1\"\n", region_line)
        .replace("\"us-east-1a\"", "\"a\"")
        .replace("\"us-east-1b\"", "\"b\"")
}

#[test]
fn bare_letter_zone_expands_in_the_stack_region() {
    let stack = ok(&portable("region = \"us-east-1\"\n"));
    assert_eq!(stack.network.zones[0].availability_zone, "us-east-1a");
    assert_eq!(stack.network.zones[1].availability_zone, "us-east-1b");
}

#[test]
fn forced_region_overrides_the_file() {
    let choice = RegionChoice { forced: Some("eu-west-1".into()), ambient: Some("ap-south-1".into()) };
    let stack = parse_with(&portable("region = \"us-east-1\"\n"), &choice).unwrap();
    assert_eq!(stack.region, "eu-west-1");
    assert_eq!(stack.network.zones[0].availability_zone, "eu-west-1a");
}

#[test]
fn ambient_region_is_used_only_when_the_file_names_none() {
    let choice = RegionChoice { forced: None, ambient: Some("eu-west-1".into()) };
    assert_eq!(parse_with(&portable("region = \"us-east-1\"\n"), &choice).unwrap().region, "us-east-1");
    let stack = parse_with(&portable(""), &choice).unwrap();
    assert_eq!(stack.region, "eu-west-1");
    assert_eq!(stack.network.zones[1].availability_zone, "eu-west-1b");
}

#[test]
fn no_region_anywhere_is_one_error_at_the_stack_table() {
    let d = one(&edit("region = \"us-east-1\"\n", ""));
    check(&d, "stack.region", 1, 1, &["no region", "region = ", "AWS_REGION", "--region"]);
}

#[test]
fn invalid_forced_region_is_reported() {
    let choice = RegionChoice { forced: Some("mars".into()), ambient: None };
    let d = one_of(problems_with(&portable(""), &choice));
    check(&d, "stack.region", 1, 1, &["\"mars\"", "--region", "\"us-east-1\""]);
}

#[test]
fn forced_region_does_not_hide_an_invalid_region_in_the_file() {
    let choice = RegionChoice { forced: Some("eu-west-1".into()), ambient: None };
    let d = one_of(problems_with(&portable("region = \"nowhere\"\n"), &choice));
    check(&d, "stack.region", 3, 10, &["\"nowhere\"", "not an AWS region"]);
}

// ---------------------------------------------------------------------------------------------------------------
// [network]: CIDRs, zones

#[test]
fn cidr_with_host_bits_suggests_the_network_address() {
    let d = one(&edit("\"10.0.1.0/24\"", "\"10.0.1.5/24\""));
    check(&d, "network.zones.b.public_subnet", 15, 17, &["10.0.1.5/24", "host bits", "did you mean \"10.0.1.0/24\"?"]);
}

#[test]
fn cidr_that_is_not_a_cidr_gives_an_example() {
    let d = one(&edit("\"10.0.10.0/24\"", "\"10.0.10.0\""));
    check(&d, "network.zones.a.private_subnet", 11, 18, &["\"10.0.10.0\"", "not an IPv4 CIDR", "\"10.0.0.0/16\""]);
}

#[test]
fn subnet_outside_the_vpc() {
    let d = one(&edit("\"10.0.1.0/24\"", "\"10.1.1.0/24\""));
    check(&d, "network.zones.b.public_subnet", 15, 17, &["10.1.1.0/24", "outside the VPC CIDR 10.0.0.0/16"]);
}

#[test]
fn overlapping_subnets_name_the_other_subnet() {
    let d = one(&edit("\"10.0.1.0/24\"", "\"10.0.0.0/23\""));
    check(
        &d,
        "network.zones.b.public_subnet",
        15,
        17,
        &["10.0.0.0/23 overlaps network.zones.a.public_subnet (10.0.0.0/24)"],
    );
}

#[test]
fn overlap_is_reported_on_the_later_subnet_in_the_file() {
    // Zone "z" comes first in the file, so the clash belongs to zone "a", whatever the names' order.
    let text = BASE.replace("[network.zones.a]", "[network.zones.y]").replace("[network.zones.b]", "[network.zones.a]");
    let text = text.replace("\"10.0.1.0/24\"", "\"10.0.0.0/24\"");
    let d = one(&text);
    check(&d, "network.zones.a.public_subnet", 15, 17, &["overlaps network.zones.y.public_subnet"]);
}

#[test]
fn prefix_outside_16_to_28() {
    let d = one(&edit("cidr = \"10.0.0.0/16\"", "cidr = \"10.0.0.0/8\""));
    check(&d, "network.cidr", 6, 8, &["/8", "/16 to /28"]);

    let d = one(&edit("\"10.0.11.0/24\"", "\"10.0.11.0/29\""));
    check(&d, "network.zones.b.private_subnet", 16, 18, &["/29", "/16 to /28"]);

    // The bounds themselves are fine.
    ok(&edit("\"10.0.11.0/24\"", "\"10.0.11.0/28\""));
}

#[test]
fn fewer_than_two_zones() {
    let text = BASE.split("[network.zones.b]").next().unwrap();
    let d = one(text);
    check(&d, "network.zones", 8, 10, &["1 availability zone", "at least two", "[network.zones.NAME]"]);
}

#[test]
fn the_same_availability_zone_twice() {
    let d = one(&edit("\"us-east-1b\"", "\"us-east-1a\""));
    check(&d, "network.zones.b.availability_zone", 14, 21, &["us-east-1a", "already used by network.zones.a"]);

    // A bare letter is the same zone as its full name.
    let d = one(&edit("\"us-east-1b\"", "\"a\""));
    check(&d, "network.zones.b.availability_zone", 14, 21, &["us-east-1a", "already used by network.zones.a"]);
}

#[test]
fn availability_zone_outside_the_region() {
    let d = one(&edit("\"us-east-1b\"", "\"us-west-2b\""));
    check(
        &d,
        "network.zones.b.availability_zone",
        14,
        21,
        &["\"us-west-2b\"", "not an availability zone of region us-east-1", "\"us-east-1b\" or just \"b\""],
    );
    // The region followed by more than one letter is no zone either.
    let d = one(&edit("\"us-east-1b\"", "\"us-east-1bb\""));
    check(&d, "network.zones.b.availability_zone", 14, 21, &["not an availability zone"]);
}

#[test]
fn a_zone_outside_the_region_is_not_also_called_a_duplicate() {
    let text = edit("\"us-east-1a\"", "\"us-west-2a\"").replace("\"us-east-1b\"", "\"us-west-2a\"");
    let diags = problems(&text);
    assert_eq!(diags.len(), 2, "{}", render(&diags));
    check(&diags[0], "network.zones.a.availability_zone", 9, 21, &["not an availability zone of region us-east-1"]);
    check(&diags[1], "network.zones.b.availability_zone", 14, 21, &["not an availability zone of region us-east-1"]);
}

#[test]
fn invalid_zone_name_is_quoted_in_the_field_path() {
    let d = one(&edit("[network.zones.b]", "[network.zones.\"B.1\"]"));
    check(&d, "network.zones.\"B.1\"", 13, 16, &["\"B.1\"", "lowercase letters, digits and underscores"]);
}

// ---------------------------------------------------------------------------------------------------------------
// Route tables

#[test]
fn two_route_tables_for_one_tier() {
    // `z` is written first, so `a` is the one in the way, whatever the alphabet says.
    let d = one(&with(concat!(
        "[network.route_tables.z]\n",
        "tier = \"public\"\n",
        "\n",
        "[network.route_tables.a]\n",
        "tier = \"public\"\n",
    )));
    check(
        &d,
        "network.route_tables.a.tier",
        21,
        8,
        &["\"public\"", "already claimed by network.route_tables.z", "only one route table"],
    );
}

#[test]
fn unknown_tier_lists_the_tiers() {
    let d = one(&with("[network.route_tables.dmz]\ntier = \"dmz\"\n"));
    check(&d, "network.route_tables.dmz.tier", 18, 8, &["\"dmz\"", "\"public\"", "\"private\""]);
}

#[test]
fn unknown_route_target_lists_the_targets() {
    let d = one(&with(concat!(
        "[network.route_tables.public]\n",
        "tier = \"public\"\n",
        "routes = [{ destination = \"0.0.0.0/0\", target = \"nat_gateway\" }]\n",
    )));
    check(
        &d,
        "network.route_tables.public.routes[0].target",
        19,
        49,
        &["\"nat_gateway\"", "valid targets: \"internet_gateway\""],
    );
}

#[test]
fn route_to_a_disabled_internet_gateway() {
    let text = edit("cidr = \"10.0.0.0/16\"\n", "cidr = \"10.0.0.0/16\"\ninternet_gateway = false\n");
    let d = one(&format!(
        "{text}[network.route_tables.public]\ntier = \"public\"\nroutes = [{{ destination = \"0.0.0.0/0\", target = \"internet_gateway\" }}]\n"
    ));
    check(
        &d,
        "network.route_tables.public.routes[0].target",
        20,
        49,
        &["internet gateway", "network.internet_gateway is false", "set it to true"],
    );
}

#[test]
fn route_destination_inside_the_vpc() {
    let d = one(&with(concat!(
        "[network.route_tables.public]\n",
        "tier = \"public\"\n",
        "routes = [{ destination = \"10.0.5.0/24\", target = \"internet_gateway\" }]\n",
    )));
    check(
        &d,
        "network.route_tables.public.routes[0].destination",
        19,
        27,
        &["10.0.5.0/24 overlaps the VPC CIDR 10.0.0.0/16", "routes locally", "outside 10.0.0.0/16"],
    );
}

#[test]
fn the_same_route_destination_twice() {
    let d = one(&with(concat!(
        "[network.route_tables.public]\n",
        "tier = \"public\"\n",
        "routes = [\n",
        "  { destination = \"0.0.0.0/0\", target = \"internet_gateway\" },\n",
        "  { destination = \"0.0.0.0/0\", target = \"internet_gateway\" },\n",
        "]\n",
    )));
    check(&d, "network.route_tables.public.routes[1].destination", 21, 19, &["0.0.0.0/0", "already defined"]);
}

// ---------------------------------------------------------------------------------------------------------------
// Security groups

/// BASE plus two security groups: `lb` (line 17) and `web` whose ingress rule is `rule`, on line 21 at column 12.
fn web_ingress(rule: &str) -> String {
    with(&format!(
        "[security_groups.lb]\ningress = [{{ protocol = \"tcp\", ports = 443, cidr = \"0.0.0.0/0\" }}]\n\n[security_groups.web]\ningress = [{rule}]\n"
    ))
}

#[test]
fn the_rule_helper_builds_a_valid_stack() {
    let stack = ok(&web_ingress("{ protocol = \"tcp\", ports = 80, security_group = \"lb\" }"));
    let web = stack.security_groups.iter().find(|g| g.name == "web").unwrap();
    assert_eq!(web.ingress[0].peer, Peer::Group("lb".into()));
}

#[test]
fn reference_to_an_undefined_security_group_lists_the_defined_ones() {
    let d = one(&web_ingress("{ protocol = \"tcp\", ports = 80, security_group = \"lbb\" }"));
    check(
        &d,
        "security_groups.web.ingress[0].security_group",
        21,
        61,
        &["no security group named \"lbb\"", "defined groups: \"lb\", \"web\""],
    );
}

#[test]
fn invalid_protocol_lists_the_protocols() {
    let d = one(&web_ingress("{ protocol = \"tpc\", ports = 80, cidr = \"0.0.0.0/0\" }"));
    check(
        &d,
        "security_groups.web.ingress[0].protocol",
        21,
        25,
        &["unknown protocol \"tpc\"", "\"tcp\", \"udp\", \"icmp\" or \"all\""],
    );
}

#[test]
fn tcp_rule_without_ports_points_at_the_rule() {
    let d = one(&web_ingress("{ protocol = \"tcp\", cidr = \"0.0.0.0/0\" }"));
    check(&d, "security_groups.web.ingress[0].ports", 21, 12, &["a tcp rule needs ports", "443", "\"1024-65535\""]);
}

#[test]
fn ports_on_an_all_rule() {
    let d = one(&web_ingress("{ protocol = \"all\", ports = 80, cidr = \"0.0.0.0/0\" }"));
    check(
        &d,
        "security_groups.web.ingress[0].ports",
        21,
        40,
        &["an all rule covers every port", "remove `ports`", "\"tcp\" or \"udp\""],
    );
}

#[test]
fn port_out_of_range() {
    let d = one(&web_ingress("{ protocol = \"tcp\", ports = 70000, cidr = \"0.0.0.0/0\" }"));
    check(&d, "security_groups.web.ingress[0].ports", 21, 40, &["port 70000 is out of range", "0 to 65535"]);

    let d = one(&web_ingress("{ protocol = \"udp\", ports = \"1024-65536\", cidr = \"0.0.0.0/0\" }"));
    check(&d, "security_groups.web.ingress[0].ports", 21, 40, &["port 65536 is out of range", "0 to 65535"]);
}

#[test]
fn reversed_port_range() {
    let d = one(&web_ingress("{ protocol = \"tcp\", ports = \"443-80\", cidr = \"0.0.0.0/0\" }"));
    check(&d, "security_groups.web.ingress[0].ports", 21, 40, &["\"443-80\" runs backwards", "FROM <= TO"]);
}

#[test]
fn garbage_ports() {
    let d = one(&web_ingress("{ protocol = \"tcp\", ports = \"http\", cidr = \"0.0.0.0/0\" }"));
    check(&d, "security_groups.web.ingress[0].ports", 21, 40, &["\"http\" is not a port", "0 to 65535", "\"FROM-TO\""]);

    let d = one(&web_ingress("{ protocol = \"tcp\", ports = [80], cidr = \"0.0.0.0/0\" }"));
    check(&d, "security_groups.web.ingress[0].ports", 21, 40, &["is not a port", "\"1024-65535\""]);
}

#[test]
fn ports_on_an_icmp_rule() {
    let d = one(&web_ingress("{ protocol = \"icmp\", ports = 8, cidr = \"0.0.0.0/0\" }"));
    check(
        &d,
        "security_groups.web.ingress[0].ports",
        21,
        41,
        &["an icmp rule covers every ICMP type", "remove `ports`"],
    );
}

#[test]
fn rule_with_both_cidr_and_security_group() {
    let d = one(&web_ingress("{ protocol = \"tcp\", ports = 80, cidr = \"0.0.0.0/0\", security_group = \"lb\" }"));
    check(&d, "security_groups.web.ingress[0]", 21, 12, &["both `cidr` and `security_group`", "exactly one"]);
}

#[test]
fn rule_with_neither_cidr_nor_security_group() {
    let d = one(&web_ingress("{ protocol = \"tcp\", ports = 80 }"));
    check(
        &d,
        "security_groups.web.ingress[0]",
        21,
        12,
        &["neither `cidr` nor `security_group`", "cidr = ", "security_group = "],
    );
}

#[test]
fn duplicate_security_group_rule_names_the_first_copy() {
    // 443 and "443" are the same port.
    let d = one(&web_ingress(
        "{ protocol = \"tcp\", ports = 443, cidr = \"0.0.0.0/0\" }, { protocol = \"TCP\", ports = \"443\", cidr = \"0.0.0.0/0\" }",
    ));
    check(&d, "security_groups.web.ingress[1]", 21, 67, &["repeats security_groups.web.ingress[0]", "duplicate"]);
}

#[test]
fn the_same_rule_in_ingress_and_egress_is_fine() {
    ok(&with(concat!(
        "[security_groups.web]\n",
        "ingress = [{ protocol = \"tcp\", ports = 443, cidr = \"0.0.0.0/0\" }]\n",
        "egress = [{ protocol = \"tcp\", ports = 443, cidr = \"0.0.0.0/0\" }]\n",
    )));
}

#[test]
fn description_with_a_character_aws_refuses() {
    let d = one(&with("[security_groups.web]\ndescription = \"Web <servers>\"\n"));
    check(&d, "security_groups.web.description", 18, 15, &["'<'", "not allowed", "letters, digits, spaces"]);
}

// ---------------------------------------------------------------------------------------------------------------
// Network ACLs

/// BASE plus an ACL for the public tier: its `ingress` list on line 19, `egress` on line 20.
fn public_acl(ingress: &str, egress: &str) -> String {
    with(&format!("[network_acls.public]\ntier = \"public\"\ningress = [{ingress}]\negress = [{egress}]\n"))
}

const ALLOW_ALL: &str = "protocol = \"all\", cidr = \"0.0.0.0/0\", action = \"allow\"";

#[test]
fn nacl_rule_number_bounds() {
    let d = one(&public_acl(&format!("{{ rule = 0, {ALLOW_ALL} }}"), ""));
    check(&d, "network_acls.public.ingress[0].rule", 19, 21, &["rule number 0 is out of range", "1 to 32766"]);

    let d = one(&public_acl("", &format!("{{ rule = 32767, {ALLOW_ALL} }}")));
    check(&d, "network_acls.public.egress[0].rule", 20, 20, &["32767", "1 to 32766", "deny-all"]);

    ok(&public_acl(&format!("{{ rule = 1, {ALLOW_ALL} }}, {{ rule = 32766, {ALLOW_ALL} }}"), ""));
}

#[test]
fn duplicate_nacl_rule_number_in_one_direction() {
    let d = one(&public_acl(&format!("{{ rule = 100, {ALLOW_ALL} }}, {{ rule = 100, {ALLOW_ALL} }}"), ""));
    check(
        &d,
        "network_acls.public.ingress[1].rule",
        19,
        93,
        &["rule number 100 is already used by network_acls.public.ingress[0]", "unique per direction"],
    );
}

#[test]
fn the_same_nacl_rule_number_in_both_directions_is_fine() {
    let rule = format!("{{ rule = 100, {ALLOW_ALL} }}");
    let stack = ok(&public_acl(&rule, &rule));
    assert_eq!(stack.network_acls[0].ingress[0].number, 100);
    assert_eq!(stack.network_acls[0].egress[0].number, 100);
}

#[test]
fn invalid_nacl_action() {
    let d = one(&public_acl("{ rule = 100, protocol = \"all\", cidr = \"0.0.0.0/0\", action = \"permit\" }", ""));
    check(&d, "network_acls.public.ingress[0].action", 19, 73, &["unknown action \"permit\"", "\"allow\", \"deny\""]);
}

#[test]
fn nacl_tcp_rule_without_ports() {
    let d = one(&public_acl("{ rule = 100, protocol = \"tcp\", cidr = \"0.0.0.0/0\", action = \"allow\" }", ""));
    check(&d, "network_acls.public.ingress[0].ports", 19, 12, &["a tcp rule needs ports"]);
}

#[test]
fn two_nacls_for_one_tier() {
    let d = one(&with(concat!(
        "[network_acls.web]\n",
        "tier = \"private\"\n",
        "\n",
        "[network_acls.app]\n",
        "tier = \"private\"\n",
    )));
    check(
        &d,
        "network_acls.app.tier",
        21,
        8,
        &["\"private\"", "already claimed by network_acls.web", "only one network ACL"],
    );
}

#[test]
fn a_route_table_and_a_nacl_may_share_a_tier() {
    ok(&with("[network.route_tables.public]\ntier = \"public\"\n\n[network_acls.public]\ntier = \"public\"\n"));
}

// ---------------------------------------------------------------------------------------------------------------
// Many problems at once

#[test]
fn every_problem_is_reported_in_one_error_in_file_order() {
    // Security groups are written before [network] and are checked after it; the report still reads top down.
    let text = r#"[stack]
name = "Shop"
region = "us-east-1"

[security_groups.web]
ingress = [{ protocol = "tcp", cidr = "0.0.0.0/0" }]

[network]
cidr = "10.0.0.0/8"

[network.zones.a]
availability_zone = "us-east-1a"
public_subnet = "10.0.0.1/24"
private_subnet = "10.0.10.0/24"

[network.zones.b]
availability_zone = "us-east-1a"
public_subnet = "10.0.1.0/24"
private_subnet = "10.0.11.0/24"

[network_acls.public]
tier = "public"
ingress = [{ rule = 0, protocol = "all", cidr = "0.0.0.0/0", action = "deny" }]
"#;
    let diags = problems(text);
    let got: Vec<_> = diags.iter().map(|d| (d.line, d.column, d.field.as_str())).collect();
    assert_eq!(
        got,
        [
            (2, 8, "stack.name"),
            (6, 12, "security_groups.web.ingress[0].ports"),
            (9, 8, "network.cidr"),
            (13, 17, "network.zones.a.public_subnet"),
            (17, 21, "network.zones.b.availability_zone"),
            (23, 21, "network_acls.public.ingress[0].rule"),
        ],
        "\n{}",
        render(&diags)
    );
}

#[test]
fn display_prints_one_file_line_col_field_message_line_per_problem() {
    let text = edit("name = \"shop\"", "name = \"Shop\"").replace("\"10.0.1.0/24\"", "\"10.0.1.5/24\"");
    let err = parse_with(&text, &no_region()).unwrap_err();
    let shown = err.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 3, "{shown}");
    assert_eq!(lines[0], "2 problems in the stack file:");
    assert!(
        lines[1].starts_with("  templates/stack.toml:2:8: stack.name: \"Shop\" is not a valid stack name"),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines[2],
        "  templates/stack.toml:15:17: network.zones.b.public_subnet: 10.0.1.5/24 has host bits set; did you mean \"10.0.1.0/24\"?"
    );

    let one = SpecError::Invalid(vec![Diagnostic {
        file: "s.toml".into(),
        line: 1,
        column: 2,
        field: "f".into(),
        message: "m".into(),
    }]);
    assert_eq!(one.to_string(), "1 problem in the stack file:\n  s.toml:1:2: f: m");
}

#[test]
fn columns_count_characters_not_bytes() {
    // "é" is two bytes in UTF-8; an editor puts the next character in column 2.
    let d = one(&edit("name = \"shop\"", "name = \"shop\" # é\nnote = 1 # x"));
    check(&d, "stack.note", 3, 1, &["unknown field `note`"]);
    let d =
        one(&edit("region = \"us-east-1\"\n", "region = \"us-east-1\"\ntags = { \"é\" = \"x\", \"aws:x\" = \"y\" }\n"));
    check(&d, "stack.tags.\"aws:x\"", 4, 21, &["reserved"]);
}

#[test]
fn stack_names_aws_would_refuse_in_group_names_are_rejected() {
    let d = one(&BASE.replacen("name = \"shop\"", "name = \"sg-prod\"", 1));
    assert_eq!((d.field.as_str(), d.line), ("stack.name", 2));
    assert!(d.message.contains("\"sg-\"") && d.message.contains("pick another name"), "{}", d.message);
}

#[test]
fn names_reserved_for_stray_resources_are_rejected() {
    let d = one(&with("[security_groups.stray_web]\n"));
    assert_eq!(d.field, "security_groups.stray_web");
    assert!(d.message.contains("reserved"), "{}", d.message);
}

#[test]
fn more_tags_than_aws_allows_per_resource_are_rejected() {
    let many: String = (0..48).map(|i| format!("k{i:02} = \"v\"\n")).collect();
    let d = one(&with(&format!("[stack.tags]\n{many}")));
    assert_eq!(d.field, "stack.tags");
    assert!(d.message.contains("48 tags") && d.message.contains("at most 47"), "{}", d.message);
}

#[test]
fn ignore_tags_takes_keys_and_prefixes_but_never_webscales_own_or_the_stacks() {
    let stack = ok(&BASE.replacen(
        "region = \"us-east-1\"\n",
        "region = \"us-east-1\"\nignore_tags = [\"CreatedBy\", \"cost:*\"]\n",
        1,
    ));
    assert_eq!(stack.ignore_tags, ["CreatedBy", "cost:*"]);
    assert!(crate::spec::tag_ignored(&stack.ignore_tags, "cost:center"));
    assert!(crate::spec::tag_ignored(&stack.ignore_tags, "CreatedBy"));
    assert!(!crate::spec::tag_ignored(&stack.ignore_tags, "CreatedByX"));

    let d =
        one(&BASE.replacen("region = \"us-east-1\"\n", "region = \"us-east-1\"\nignore_tags = [\"webscale:*\"]\n", 1));
    assert_eq!((d.field.as_str(), d.line), ("stack.ignore_tags[0]", 4));
    assert!(d.message.contains("tag webscale sets"), "{}", d.message);

    let d = one(&format!(
        "{}[stack.tags]\nteam = \"web\"\n",
        BASE.replacen("region = \"us-east-1\"\n", "region = \"us-east-1\"\nignore_tags = [\"t*\"]\n", 1)
    ));
    assert_eq!(d.field, "stack.ignore_tags[0]");
    assert!(d.message.contains("\"team\""), "{}", d.message);

    let d = one(&BASE.replacen("region = \"us-east-1\"\n", "region = \"us-east-1\"\nignore_tags = [\"a*b*\"]\n", 1));
    assert!(d.message.contains("prefix ending in one `*`"), "{}", d.message);
}

// ---------------------------------------------------------------------------------------------------------------
// Web, load balancer and DNS tiers

/// Groups `lb` and `web` for the web-tier tests, appended to `BASE` (line 17 on), then `extra` (line 23 on).
fn web_tier(extra: &str) -> String {
    with(&format!("[security_groups.lb]\ningress = []\n\n[security_groups.web]\ningress = []\n\n{extra}"))
}

const WEB: &str =
    "[web]\ninstance_type = \"t3.micro\"\nami = \"ami-0123456789abcdef0\"\nuser_data = \"web/user-data.sh\"\n";

#[test]
fn web_defaults_two_instances_in_the_web_group_with_an_8_gib_root_volume() {
    let stack = ok(&web_tier(WEB));
    let web = stack.web.unwrap();
    assert_eq!((web.count, web.security_group.as_str(), web.root_volume_size), (2, "web", 8));
    assert_eq!(web.ami, Ami::Id("ami-0123456789abcdef0".into()));
    assert_eq!(web.user_data_file, "web/user-data.sh");
    assert_eq!(stack.network.nat, Nat::None, "no nat key: no NAT gateways (stacks applied before it existed)");
    assert!(stack.load_balancer.is_none() && stack.dns.is_none());
}

#[test]
fn every_web_problem_is_reported_at_its_field() {
    let text = web_tier(
        "[web]\ncount = 500\ninstance_type = \"micro\"\nami = \"ubuntu\"\nuser_data = \"missing.sh\"\nsecurity_group = \"app\"\nroot_volume_size = 2\n",
    );
    let diags = problems(&text);
    let fields: Vec<&str> = diags.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        ["web.count", "web.instance_type", "web.ami", "web.user_data", "web.security_group", "web.root_volume_size"],
        "{}",
        render(&diags)
    );
    check(&diags[0], "web.count", 24, 9, &["500", "0 to 100"]);
    check(&diags[1], "web.instance_type", 25, 17, &["t3.micro"]);
    check(&diags[2], "web.ami", 26, 7, &["ami-", "/aws/service/"]);
    check(&diags[3], "web.user_data", 27, 13, &["missing.sh", "relative to the stack file"]);
    check(&diags[4], "web.security_group", 28, 18, &["app", "\"lb\", \"web\""]);
    check(&diags[5], "web.root_volume_size", 29, 20, &["8 to 16384"]);
}

#[test]
fn a_load_balancer_needs_web_servers_and_a_sane_health_check() {
    let text = web_tier(
        "[load_balancer]\ncertificate_arn = \"arn:aws:iam::1:server-certificate/x\"\n\n[load_balancer.health_check]\npath = \"health\"\ninterval = 10\ntimeout = 10\nmatcher = \"ok\"\n",
    );
    let diags = problems(&text);
    let fields: Vec<&str> = diags.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "load_balancer",
            "load_balancer.certificate_arn",
            "load_balancer.health_check.path",
            "load_balancer.health_check.timeout",
            "load_balancer.health_check.matcher"
        ],
        "{}",
        render(&diags)
    );
    check(&diags[0], "load_balancer", 23, 1, &["no [web]"]);
    check(&diags[1], "load_balancer.certificate_arn", 24, 19, &["ACM certificate ARN"]);
    check(&diags[3], "load_balancer.health_check.timeout", 29, 11, &["shorter than the interval"]);
    check(&diags[4], "load_balancer.health_check.matcher", 30, 11, &["200-299"]);
}

#[test]
fn dns_checks_the_zone_name_the_record_names_and_needs_a_load_balancer_for_records() {
    let diags = problems(&with("[dns]\nzone = \"not a domain\"\nrecords = [\"apex\", \"mail\", \"apex\"]\n"));
    let fields: Vec<&str> = diags.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(fields, ["dns.zone", "dns.records", "dns.records[1]", "dns.records[2]"], "{}", render(&diags));
    check(&diags[0], "dns.zone", 18, 8, &["example.com"]);
    check(&diags[1], "dns.records", 19, 11, &["no [load_balancer]", "records = []"]);
    check(&diags[2], "dns.records[1]", 19, 20, &["\"mail\"", "\"www\""]);
    check(&diags[3], "dns.records[2]", 19, 28, &["twice"]);
    let stack = ok(&with("[dns]\nzone = \"Shop.Example.COM.\"\nrecords = []\ncreate_zone = false\n"));
    let dns = stack.dns.unwrap();
    assert_eq!((dns.zone.as_str(), dns.create_zone, dns.records.len()), ("shop.example.com", false, 0));
}

#[test]
fn nat_needs_the_internet_gateway_and_the_private_default_route() {
    let text = edit("cidr = \"10.0.0.0/16\"", "cidr = \"10.0.0.0/16\"\ninternet_gateway = false\nnat = \"single\"");
    let diags = problems(&text);
    let fields: Vec<&str> = diags.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(fields, ["network.nat", "network.nat"], "{}", render(&diags));
    assert!(diags[0].message.contains("internet_gateway is false"), "{}", diags[0]);
    assert!(diags[1].message.contains("tier = \"private\""), "{}", diags[1]);
    let d = one(&edit("cidr = \"10.0.0.0/16\"", "cidr = \"10.0.0.0/16\"\nnat = \"always\""));
    check(&d, "network.nat", 7, 7, &["\"none\"", "\"single\"", "\"per_zone\""]);
}

// ---------------------------------------------------------------------------------------------------------------
// [database]

/// `BASE` with a web group, a database group admitting it on `port`, and `[database]` with `extra` keys.
fn with_database(db_ingress: &str, extra: &str) -> String {
    with(&format!(
        "[security_groups.web]\ndescription = \"web\"\n\n[security_groups.db]\ndescription = \"db\"\ningress = [{db_ingress}]\n\n[database]\nengine = \"postgres\"\nengine_version = \"16\"\ninstance_class = \"db.t4g.micro\"\n{extra}"
    ))
}

const FROM_WEB: &str = "{ protocol = \"tcp\", ports = 5432, security_group = \"web\" }";

#[test]
fn a_database_gets_safe_defaults() {
    let stack = ok(&with_database(FROM_WEB, ""));
    let db = stack.database.expect("[database]");
    assert!(db.encrypted && db.deletion_protection && !db.apply_immediately && !db.multi_az);
    assert_eq!((db.port, db.backup_retention_days, db.replicas, db.storage_gb), (5432, 7, 0, 20));
    assert!(db.password.is_none(), "RDS manages the password unless password_env is given");
    assert_eq!(db.replica_zones, ["a", "b"], "replicas spread over every zone by default");
}

#[test]
fn replicas_need_backups_and_a_password_of_the_operators() {
    let diags = problems(&with_database(FROM_WEB, "replicas = 2\nbackup_retention_days = 0\n"));
    let fields: Vec<&str> = diags.iter().map(|d| d.field.as_str()).collect();
    assert_eq!(fields, ["database.replicas", "database.backup_retention_days"], "{}", render(&diags));
    assert!(diags[1].message.contains("read replicas need backups"), "{}", diags[1]);
    assert!(diags[0].message.contains("password_env") && diags[0].message.contains("Secrets Manager"), "{}", diags[0]);
    // With password_env they are fine, and the variable is only needed by the commands that send it.
    let stack = ok(&with_database(FROM_WEB, "replicas = 2\npassword_env = \"WEBSCALE_SPEC_TEST_UNSET_PW\"\n"));
    let err = stack.require_secrets().expect_err("the variable is not set").to_string();
    assert!(err.contains("database.password_env") && err.contains("WEBSCALE_SPEC_TEST_UNSET_PW is not set"), "{err}");
}

#[test]
fn the_database_group_admits_only_groups_and_the_web_tier_on_the_engines_port() {
    let web = "[web]\ninstance_type = \"t3.micro\"\nami = \"ami-12345678\"\nuser_data = \"web/user-data.sh\"\n";
    let open = with_database("{ protocol = \"tcp\", ports = 5432, cidr = \"0.0.0.0/0\" }", "");
    let diags = problems(&format!("{open}\n{web}"));
    let messages: Vec<&str> =
        diags.iter().filter(|d| d.field == "database.security_group").map(|d| d.message.as_str()).collect();
    assert!(messages.iter().any(|m| m.contains("admits 0.0.0.0/0")), "{}", render(&diags));
    assert!(messages.iter().any(|m| m.contains("does not admit the web servers")), "{}", render(&diags));
    let mysql = with_database(FROM_WEB, "").replace("engine = \"postgres\"", "engine = \"mysql\"");
    let diags = problems(&format!("{mysql}\n{web}"));
    assert!(diags.iter().any(|d| d.message.contains("ports = 3306")), "mysql's port: {}", render(&diags));
}

#[test]
fn database_values_are_checked_with_what_would_be_valid() {
    let diags = problems(&with_database(
        FROM_WEB,
        "storage_gb = 10\nmax_storage_gb = 15\nbackup_window = \"3am\"\nreplica_zones = [\"c\"]\nusername = \"admin\"\n",
    ));
    let fields: Vec<&str> = diags.iter().map(|d| d.field.as_str()).collect();
    for field in [
        "database.storage_gb",
        "database.max_storage_gb",
        "database.backup_window",
        "database.username",
        "database.replica_zones",
    ] {
        assert!(fields.contains(&field), "{field} missing from {}", render(&diags));
    }
    let short = one(&with_database(FROM_WEB, "backup_window = \"03:00-03:10\"\n"));
    assert!(short.field == "database.backup_window" && short.message.contains("at least 30 minutes"), "{short}");
    ok(&with_database(FROM_WEB, "backup_window = \"23:45-00:15\"\n"));
    let bad_engine = with_database(FROM_WEB, "").replace("\"postgres\"", "\"oracle\"");
    assert!(problems(&bad_engine).iter().any(|d| d.field == "database.engine" && d.message.contains("\"mysql\"")));
}
