//! A create-first replacement whose create AWS answers badly.
//!
//! AWS cannot change a security group's description, so changing it replaces the group, new group first: the new
//! one comes up, every rule naming the old one is repointed, then the old one goes. The engine retries a create
//! after an ambiguous answer (none at all, `InternalError`, `ServiceUnavailable`) or "already exists", and before
//! creating again it looks for the resource at its address, to finish what an earlier attempt made. In a
//! create-first replacement the OLD group is at that same address: taken for the new one, it would keep the old
//! description, and the replacement's delete would then remove the group everything was just repointed to. These
//! tests make AWS answer the create badly and check the world AWS is left in, not what webscale reads back.

use webscale::aws::CallExt;
use webscale::resources::ReplaceOrder;

use super::fake::{Fault, VpcRec};
use super::*;

/// SPEC with web's description changed.
fn new_description() -> String {
    SPEC.replace(r#"description = "Web servers""#, r#"description = "Web servers, v2""#)
}

/// Plans the description change as `webscale apply` does, checks that the plan replaces web new-group-first, and
/// carries the plan out.
async fn replace_web(aws: &Fake) -> Report {
    let cloud = aws.cloud(fast());
    let plan = apply_plan(&cloud, &stack(&new_description())).await;
    let create_first = Action::Replace(ReplaceOrder::CreateFirst);
    assert_eq!(
        changed(&plan),
        [
            ("security_group.web".to_string(), create_first),
            ("security_group_rules.db".to_string(), Action::Update),
            ("security_group_rules.web".to_string(), create_first),
        ],
        "web is replaced new-group-first; its rules come with it; db's rule naming web is repointed"
    );
    let web = plan.changes.iter().find(|c| c.address.as_str() == "security_group.web").unwrap();
    assert_eq!(web.id.as_deref(), Some("sg-web"), "the group replaced is the old one");
    let (report, _) = run(&cloud, &plan).await;
    report
}

fn sorted(rules: &[Rule]) -> Vec<Rule> {
    let mut out = rules.to_vec();
    out.sort();
    out
}

/// The world after web's replacement, as AWS holds it: exactly one group at web's address, a new one with the new
/// description and the spec's rules; the old group gone; every rule that named the old group naming the new one.
/// Returns the new group's id.
fn assert_web_replaced(aws: &Fake) -> String {
    aws.with(|w| {
        let at = w.at_address("security_group.web");
        assert_eq!(at.len(), 1, "exactly one group is tagged security_group.web: {at:?}");
        let new = at[0].clone();
        assert_ne!(new, "sg-web", "the group at web's address is a new one");
        assert!(!w.groups.contains_key("sg-web"), "the old group is deleted");
        assert_eq!(w.groups.len(), 3, "web, db and the VPC's default group, nothing else: {:?}", w.groups.keys());
        let web = &w.groups[&new];
        assert_eq!(web.description, "Web servers, v2");
        assert_eq!(web.vpc, "vpc-main");
        assert_eq!(web.tags.get("webscale:stack").map(String::as_str), Some("mocked"));
        assert_eq!(web.ingress, [Rule::tcp(80, Peer::Cidr("0.0.0.0/0".into()))]);
        assert_eq!(
            sorted(&web.egress),
            sorted(&[Rule::tcp(443, Peer::Cidr("0.0.0.0/0".into())), Rule::tcp(5432, Peer::Group("sg-db".into()))]),
            "the spec's egress, AWS's default allow-all revoked"
        );
        for (id, g) in &w.groups {
            for rule in g.ingress.iter().chain(&g.egress) {
                assert_ne!(rule.peer, Peer::Group("sg-web".into()), "{id} still names the old group: {rule:?}");
            }
        }
        assert_eq!(
            sorted(&w.groups["sg-db"].ingress),
            sorted(&[Rule::tcp(5432, Peer::Group(new.clone())), Rule::tcp(22, Peer::Cidr("10.0.0.0/16".into()))]),
            "db accepts web's new group where it accepted the old one"
        );
        assert!(w.groups["sg-db"].egress.is_empty());
        new
    })
}

/// The calls AWS refused, as (operation, error code).
fn refused(aws: &Fake) -> Vec<(&'static str, String)> {
    aws.calls().into_iter().filter_map(|c| Some((c.op, c.error?))).collect()
}

/// Once applied, the spec and the world agree: nothing left to do.
async fn assert_settled(aws: &Fake) {
    let plan = apply_plan(&aws.cloud(fast()), &stack(&new_description())).await;
    assert!(!plan.has_changes(), "nothing left to do: {:#?}", changed(&plan));
}

/// The baseline: nothing goes wrong. One CreateSecurityGroup, every call accepted first time (rules naming the old
/// group are repointed before it is deleted).
#[tokio::test]
async fn a_new_description_replaces_the_group_new_one_first() {
    let aws = Fake::provisioned(SPEC);

    let report = replace_web(&aws).await;

    assert_all_done(&report);
    assert_no_errors(&aws);
    let new = assert_web_replaced(&aws);
    let creates = aws.calls_of("CreateSecurityGroup");
    assert_eq!(creates.iter().map(|c| c.on.as_str()).collect::<Vec<_>>(), [new.as_str()]);
    assert_settled(&aws).await;
}

/// AWS answers the new group's create with ServiceUnavailable and makes nothing. The engine looks at web's address,
/// finds only the old group, which is the one being replaced and so not the create's to finish, and creates again.
#[tokio::test]
async fn a_replacement_create_refused_as_unavailable_is_sent_again_beside_the_old_group() {
    let aws = Fake::provisioned(SPEC);
    aws.with(|w| w.fail_next("CreateSecurityGroup", Fault::Unavailable));

    let report = replace_web(&aws).await;

    assert_all_done(&report);
    let new = assert_web_replaced(&aws);
    let creates = aws.calls_of("CreateSecurityGroup");
    assert_eq!(creates.len(), 2, "refused, then made: {creates:#?}");
    assert_eq!(creates[0].error.as_deref(), Some("ServiceUnavailable"));
    assert_eq!((creates[1].on.as_str(), creates[1].error.as_deref()), (new.as_str(), None));
    assert_eq!(refused(&aws), [("CreateSecurityGroup", "ServiceUnavailable".to_string())], "nothing else refused");
    assert_settled(&aws).await;
}

/// AWS makes the new group but its answer is lost (InternalError). The engine looks at web's address, finds the old
/// group and the new one, skips the one being replaced, and finishes the new one: no second create.
#[tokio::test]
async fn a_replacement_create_whose_answer_is_lost_is_finished_not_sent_again() {
    let aws = Fake::provisioned(SPEC);
    aws.with(|w| w.fail_next("CreateSecurityGroup", Fault::AnswerLost { unseen_for: 0 }));

    let report = replace_web(&aws).await;

    assert_all_done(&report);
    let new = assert_web_replaced(&aws);
    let creates = aws.calls_of("CreateSecurityGroup");
    assert_eq!(creates.len(), 1, "made once: {creates:#?}");
    assert_eq!((creates[0].on.as_str(), creates[0].error.as_deref()), (new.as_str(), Some("InternalError")));
    assert_eq!(refused(&aws), [("CreateSecurityGroup", "InternalError".to_string())], "nothing else refused");
    assert_settled(&aws).await;
}

/// The answer is lost and the new group is not yet in the next read (AWS's reads lag): the engine creates again,
/// under the same name, and AWS answers InvalidGroup.Duplicate. That means the first call made it: the engine
/// looks again, now finds it, and finishes it.
#[tokio::test]
async fn a_lost_replacement_create_not_yet_readable_meets_invalid_group_duplicate_and_is_finished() {
    let aws = Fake::provisioned(SPEC);
    aws.with(|w| w.fail_next("CreateSecurityGroup", Fault::AnswerLost { unseen_for: 1 }));

    let report = replace_web(&aws).await;

    assert_all_done(&report);
    let new = assert_web_replaced(&aws);
    let creates = aws.calls_of("CreateSecurityGroup");
    let answers: Vec<(&str, Option<&str>)> = creates.iter().map(|c| (c.on.as_str(), c.error.as_deref())).collect();
    assert_eq!(
        answers,
        [(new.as_str(), Some("InternalError")), (new.as_str(), Some("InvalidGroup.Duplicate"))],
        "made by the first call; the second meets it"
    );
    assert_settled(&aws).await;
}

/// The rule the previous test relies on, checked on the fake itself: a group name is unique in its VPC (AWS answers
/// InvalidGroup.Duplicate and makes nothing), and only there; a new group comes with AWS's default egress rule.
#[tokio::test]
async fn the_fake_refuses_a_group_name_already_taken_in_the_vpc() {
    let aws = Fake::provisioned(SPEC);
    aws.with(|w| {
        let other = VpcRec { cidr: "10.1.0.0/16".into(), dns_hostnames: true, tags: Default::default() };
        w.vpcs.insert("vpc-other".into(), other)
    });
    let ec2 = aws.ec2_client();
    let create = |vpc: &'static str| {
        ec2.create_security_group().group_name("mocked-web-0f3c9a1e").description("Web servers").vpc_id(vpc).send()
    };

    let taken = create("vpc-main").await.call("CreateSecurityGroup").expect_err("the name is taken in vpc-main");
    assert_eq!(taken.code(), "InvalidGroup.Duplicate");
    aws.with(|w| assert_eq!(w.groups.len(), 3, "nothing made"));

    let made = create("vpc-other").await.call("CreateSecurityGroup").expect("names are unique per VPC only");
    let id = made.group_id().expect("the new group's id").to_string();
    aws.with(|w| {
        assert_eq!(w.groups[&id].vpc, "vpc-other");
        assert_eq!(w.groups[&id].egress, [Rule::allow_all_egress()], "AWS's default egress rule");
        assert!(w.groups[&id].ingress.is_empty());
    });
}
