//! The logging pipeline's SNS and CloudWatch Logs kinds (`log_group`, `topic`, `subscription`) against canned
//! answers: what a plan's read costs however many topics and log groups the account has, and the AWS rules the
//! emulator does not show: CreateLogGroup has no client token, so a repeated create meets
//! ResourceAlreadyExistsException (our own group is finished, anyone else's is named and left alone), and a topic
//! policy AWS gives back in another, equivalent form (single values for one-element lists) is no change.

use std::collections::HashMap;

use aws_sdk_cloudwatchlogs::config::{Credentials, Region};
use aws_sdk_cloudwatchlogs::error::ErrorMetadata;
use aws_sdk_cloudwatchlogs::operation::create_log_group::CreateLogGroupError;
use aws_sdk_cloudwatchlogs::operation::describe_log_groups::DescribeLogGroupsOutput;
use aws_sdk_cloudwatchlogs::operation::list_tags_for_resource::ListTagsForResourceOutput as LogTagsOutput;
use aws_sdk_cloudwatchlogs::operation::put_retention_policy::PutRetentionPolicyOutput;
use aws_sdk_cloudwatchlogs::types::LogGroup as Group;
use aws_sdk_sns::operation::get_topic_attributes::GetTopicAttributesOutput;
use aws_sdk_sns::operation::list_subscriptions_by_topic::ListSubscriptionsByTopicOutput;
use aws_sdk_sns::operation::list_tags_for_resource::ListTagsForResourceOutput as TopicTagsOutput;
use aws_sdk_sns::operation::list_topics::ListTopicsOutput;
use aws_sdk_sns::types::{Subscription as SnsSubscription, Tag, Topic as SnsTopic};
use aws_smithy_mocks::{MockResponse, MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_types::retry::RetryConfig;
use serde_json::json;
use webscale::aws::{Clients, Cloud};
use webscale::plan::{self, Action, Mode};
use webscale::resources::log_group::LogGroup;
use webscale::resources::subscription::Subscription;
use webscale::resources::topic::Topic;
use webscale::resources::{Address, Kind, Op, ReadCtx};
use webscale::spec::{RegionChoice, Stack};

use super::{REGION, fast, unused_clients};

const ACCOUNT: &str = "123456789012";
const TOPIC: &str = "mocked-events";
const TOPIC_ARN: &str = "arn:aws:sns:us-east-1:123456789012:mocked-events";
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:mocked-events";
const EVENTS_GROUP: &str = "/aws/lambda/mocked-events";
const APP_GROUP: &str = "/webscale/mocked/app";

/// The reference stack (it has `[logging]`) as stack `mocked`, its account known.
fn stack() -> Stack {
    let path = crate::support::repo().join("templates/webscale.toml");
    let text = std::fs::read_to_string(&path).unwrap().replacen("name = \"webscale\"", "name = \"mocked\"", 1);
    let mut stack = webscale::spec::parse(&path, &text, &RegionChoice::default()).unwrap_or_else(|e| panic!("{e}"));
    stack.account = Some(ACCOUNT.to_string());
    stack
}

fn interceptor(rules: &[&Rule]) -> MockResponseInterceptor {
    rules.iter().fold(MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny), |i, r| i.with_rule(r))
}

/// A cloud whose CloudWatch Logs and SNS clients answer from `logs` and `sns`; every other service is unused.
fn cloud(logs: &[&Rule], sns: &[&Rule]) -> Cloud {
    let credentials = Credentials::new("test", "test", None, None, "test");
    let logs = aws_sdk_cloudwatchlogs::Client::from_conf(
        aws_sdk_cloudwatchlogs::Config::builder()
            .behavior_version_latest()
            .region(Region::new(REGION))
            .credentials_provider(credentials.clone())
            .retry_config(RetryConfig::disabled())
            .http_client(create_mock_http_client())
            .interceptor(interceptor(logs))
            .build(),
    );
    let sns = aws_sdk_sns::Client::from_conf(
        aws_sdk_sns::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_sns::config::Region::new(REGION))
            .credentials_provider(credentials)
            .retry_config(RetryConfig::disabled())
            .http_client(create_mock_http_client())
            .interceptor(interceptor(sns))
            .build(),
    );
    Cloud::from_clients("mocked", REGION, Clients { logs, sns, ..unused_clients() }, fast())
}

/// A described log group, with both ARN forms as AWS gives them.
fn group(name: &str, retention: Option<i32>) -> Group {
    let arn = format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}");
    Group::builder()
        .log_group_name(name)
        .arn(format!("{arn}:*"))
        .log_group_arn(arn)
        .set_retention_in_days(retention)
        .build()
}

fn group_arn(name: &str) -> String {
    format!("arn:aws:logs:{REGION}:{ACCOUNT}:log-group:{name}")
}

/// DescribeLogGroups as AWS answers it: the groups whose name starts with the prefix asked for (all without one),
/// 50 a page.
fn describe(all: Vec<Group>) -> Rule {
    mock!(aws_sdk_cloudwatchlogs::Client::describe_log_groups).then_compute_output(move |input| {
        let prefix = input.log_group_name_prefix().unwrap_or("");
        let matching: Vec<&Group> =
            all.iter().filter(|g| g.log_group_name().unwrap_or("").starts_with(prefix)).collect();
        let start: usize = input.next_token().map_or(0, |t| t.parse().unwrap());
        let page: Vec<Group> = matching.iter().skip(start).take(50).map(|g| (*g).clone()).collect();
        let next = (start + 50 < matching.len()).then(|| (start + 50).to_string());
        DescribeLogGroupsOutput::builder().set_log_groups(Some(page)).set_next_token(next).build()
    })
}

/// The ownership tags of `address` in stack `owner`, as the spec gives them (written out here, not computed).
fn owned_tags(owner: &str, address: &str) -> HashMap<String, String> {
    HashMap::from([
        ("Name".to_string(), format!("{owner}-{}", address.replace(['.', '_'], "-"))),
        ("environment".to_string(), "demo".to_string()),
        ("webscale:stack".to_string(), owner.to_string()),
        ("webscale:address".to_string(), address.to_string()),
    ])
}

fn op<'a>(address: &'a Address, desired: serde_json::Value) -> Op<'a> {
    Op {
        address,
        region: REGION,
        id: None,
        desired: Some(webscale::resources::attrs(&desired)),
        live: None,
        changed: &[],
        token: "ws-test".into(),
        digests: Default::default(),
        skip_final_snapshot: false,
        wait: false,
        stack: None,
        progress: None,
    }
}

fn already_exists() -> Rule {
    mock!(aws_sdk_cloudwatchlogs::Client::create_log_group).then_compute_response(|input| {
        assert_eq!(input.log_group_name(), Some(EVENTS_GROUP));
        let tags = input.tags().cloned().unwrap_or_default();
        assert_eq!(tags.get("webscale:stack").map(String::as_str), Some("mocked"), "tags in the create: {tags:?}");
        MockResponse::Error(CreateLogGroupError::generic(
            ErrorMetadata::builder()
                .code("ResourceAlreadyExistsException")
                .message("The specified log group already exists")
                .build(),
        ))
    })
}

fn retention() -> Rule {
    mock!(aws_sdk_cloudwatchlogs::Client::put_retention_policy).then_compute_output(|input| {
        assert_eq!((input.log_group_name(), input.retention_in_days()), (Some(EVENTS_GROUP), Some(14)));
        PutRetentionPolicyOutput::builder().build()
    })
}

fn group_tags(tags: HashMap<String, String>) -> Rule {
    mock!(aws_sdk_cloudwatchlogs::Client::list_tags_for_resource).then_compute_output(move |input| {
        assert_eq!(input.resource_arn(), Some(group_arn(EVENTS_GROUP).as_str()), "the ARN without :*");
        LogTagsOutput::builder().set_tags(Some(tags.clone())).build()
    })
}

/// CreateLogGroup has no client token: when its first answer is lost, the retry meets ResourceAlreadyExistsException.
/// The group carries the stack's tags (they went in with the create), so it is that first create's: the retention
/// finishes it instead of the apply failing.
#[tokio::test]
async fn a_repeated_log_group_create_meets_our_own_group_and_finishes_it() {
    let create = already_exists();
    let put = retention();
    let describe = describe(vec![group(EVENTS_GROUP, None), group("/aws/lambda/mocked-events-old", Some(1))]);
    let tags = group_tags(owned_tags("mocked", "log_group.events"));
    let cloud = cloud(&[&create, &put, &describe, &tags], &[]);
    let desired = LogGroup.desired(&stack()).remove(0);
    let address = desired.address.clone();
    assert_eq!(address.as_str(), "log_group.events");

    let created = LogGroup
        .create(&cloud, &op(&address, serde_json::Value::Object(desired.attrs)))
        .await
        .unwrap_or_else(|e| panic!("a repeat of our own create finishes it: {e}"));

    assert_eq!(created.id, EVENTS_GROUP);
    assert_eq!(created.outputs["arn"], json!(group_arn(EVENTS_GROUP)), "the ARN without :*");
    assert_eq!(put.num_calls(), 1, "the retention is set");
}

/// The same answer for a group that is not the stack's (Lambda made it when an earlier function of that name was
/// invoked; or another stack's): the create fails, naming the group and how to adopt it, and changes nothing.
#[tokio::test]
async fn a_log_group_of_that_name_that_is_not_ours_is_named_never_taken_over() {
    for (tags, says) in
        [(HashMap::new(), "first invocation"), (owned_tags("other", "log_group.events"), "belongs to stack other")]
    {
        let create = already_exists();
        let put = retention();
        let describe = describe(vec![group(EVENTS_GROUP, None)]);
        let tags = group_tags(tags);
        let cloud = cloud(&[&create, &put, &describe, &tags], &[]);
        let desired = LogGroup.desired(&stack()).remove(0);
        let address = desired.address.clone();

        let err = LogGroup
            .create(&cloud, &op(&address, serde_json::Value::Object(desired.attrs)))
            .await
            .expect_err("not the stack's group");

        assert_eq!(err.code(), "ResourceAlreadyExistsException", "{err}");
        let text = err.to_string();
        assert!(text.contains(says), "says whose it is: {text}");
        assert!(text.contains("webscale import log_group.events /aws/lambda/mocked-events"), "says what to do: {text}");
        assert_eq!(put.num_calls(), 0, "nothing is changed on it");
    }
}

/// At plan time, a group of the function's name that the stack does not own blocks the create, named with the
/// import command: no "already exists" halfway through an apply. It costs no call beyond the read's.
#[tokio::test]
async fn a_plan_names_a_leftover_function_log_group_before_apply() {
    let describe = describe(vec![group(EVENTS_GROUP, None)]);
    let tags = group_tags(HashMap::new());
    let cloud = cloud(&[&describe, &tags], &[]);

    let plan = plan::build_with(&[&LogGroup], &cloud, &stack(), Mode::Apply).await.unwrap_or_else(|e| panic!("{e}"));

    let events = plan.changes.iter().find(|c| c.address.as_str() == "log_group.events").expect("planned");
    assert_eq!(events.action, Action::Create);
    assert_eq!(events.blocked_by.len(), 1, "{:?}", events.blocked_by);
    assert!(events.blocked_by[0].contains("webscale import log_group.events /aws/lambda/mocked-events"));
    let app = plan.changes.iter().find(|c| c.address.as_str() == "log_group.app").expect("planned");
    assert!(app.blocked_by.is_empty(), "nothing where the app group goes: {:?}", app.blocked_by);
    assert_eq!((describe.num_calls(), tags.num_calls()), (2, 1), "the read's listing serves the check too");
}

fn topic_tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build().unwrap()
}

/// The read of the three kinds costs the same calls however many topics and log groups the account has: 150
/// foreign topics over two pages and the stack's one make 2 ListTopics, and tags, attributes and subscriptions are
/// asked of the stack's topic only; 120 foreign log groups under other names cost nothing, since DescribeLogGroups
/// is asked by the stack's two name prefixes.
#[tokio::test]
async fn a_read_costs_the_same_calls_whatever_the_number_of_topics_and_log_groups() {
    // SNS: ListTopics pages of 100, as AWS gives them.
    let mut arns: Vec<String> = (0..150).map(|i| format!("arn:aws:sns:{REGION}:{ACCOUNT}:someone-else-{i}")).collect();
    arns.insert(120, TOPIC_ARN.to_string());
    let list_topics = mock!(aws_sdk_sns::Client::list_topics).then_compute_output(move |input| {
        let start: usize = input.next_token().map_or(0, |t| t.parse().unwrap());
        let page = arns.iter().skip(start).take(100).map(|a| SnsTopic::builder().topic_arn(a).build()).collect();
        let next = (start + 100 < arns.len()).then(|| (start + 100).to_string());
        ListTopicsOutput::builder().set_topics(Some(page)).set_next_token(next).build()
    });
    let topic_tags = mock!(aws_sdk_sns::Client::list_tags_for_resource).then_compute_output(|input| {
        assert_eq!(input.resource_arn(), Some(TOPIC_ARN), "tags asked only of a topic named like the stack's");
        let tags = owned_tags("mocked", "topic.events");
        TopicTagsOutput::builder().set_tags(Some(tags.iter().map(|(k, v)| topic_tag(k, v)).collect())).build()
    });
    let attributes = mock!(aws_sdk_sns::Client::get_topic_attributes).then_compute_output(|input| {
        assert_eq!(input.topic_arn(), Some(TOPIC_ARN));
        GetTopicAttributesOutput::builder().attributes("Policy", r#"{"Version":"2012-10-17","Statement":[]}"#).build()
    });
    let subscriptions = mock!(aws_sdk_sns::Client::list_subscriptions_by_topic).then_compute_output(|input| {
        assert_eq!(input.topic_arn(), Some(TOPIC_ARN));
        let sub = |arn: &str, protocol: &str, endpoint: &str| {
            SnsSubscription::builder()
                .subscription_arn(arn)
                .protocol(protocol)
                .endpoint(endpoint)
                .topic_arn(TOPIC_ARN)
                .build()
        };
        ListSubscriptionsByTopicOutput::builder()
            .subscriptions(sub(&format!("{TOPIC_ARN}:1111"), "lambda", FUNCTION_ARN))
            // Someone's queue and someone's function on the stack's topic: not the stack's.
            .subscriptions(sub(&format!("{TOPIC_ARN}:2222"), "sqs", "arn:aws:sqs:us-east-1:123456789012:audit"))
            .subscriptions(sub(
                &format!("{TOPIC_ARN}:3333"),
                "lambda",
                "arn:aws:lambda:us-east-1:123456789012:function:audit",
            ))
            .build()
    });
    // Logs: 120 groups of other names, and the stack's two.
    let mut groups: Vec<Group> = (0..60).map(|i| group(&format!("/aws/lambda/other-fn-{i}"), Some(7))).collect();
    groups.extend((0..60).map(|i| group(&format!("/ecs/service-{i}"), None)));
    groups.push(group(EVENTS_GROUP, Some(14)));
    groups.push(group(APP_GROUP, Some(30)));
    let describe = describe(groups);
    let log_tags = mock!(aws_sdk_cloudwatchlogs::Client::list_tags_for_resource).then_compute_output(|input| {
        let arn = input.resource_arn().unwrap_or_default();
        let address = match arn.rsplit_once(":log-group:").map(|(_, n)| n) {
            Some(EVENTS_GROUP) => "log_group.events",
            Some(APP_GROUP) => "log_group.app",
            other => panic!("tags asked of a group that is not named like the stack's: {other:?}"),
        };
        LogTagsOutput::builder().set_tags(Some(owned_tags("mocked", address))).build()
    });
    let cloud = cloud(&[&describe, &log_tags], &[&list_topics, &topic_tags, &attributes, &subscriptions]);
    let stack = stack();
    let ctx = ReadCtx::new(&cloud, &stack);

    let (groups, topics, subs) = futures::future::try_join3(
        LogGroup.read(&ctx, REGION),
        Topic.read(&ctx, REGION),
        Subscription.read(&ctx, REGION),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let found: Vec<(&str, &str)> = groups.iter().map(|l| (l.address.as_str(), l.id.as_str())).collect();
    assert_eq!(found, [("log_group.events", EVENTS_GROUP), ("log_group.app", APP_GROUP)]);
    assert_eq!(groups[0].attrs["retention_days"], json!(14));
    assert_eq!(groups[0].outputs["arn"], json!(group_arn(EVENTS_GROUP)));
    assert_eq!(topics.len(), 1);
    assert_eq!((topics[0].address.as_str(), topics[0].id.as_str()), ("topic.events", TOPIC_ARN));
    assert_eq!(topics[0].outputs["name"], json!(TOPIC));
    let found: Vec<(&str, &str)> = subs.iter().map(|l| (l.address.as_str(), l.id.as_str())).collect();
    assert_eq!(found, [("subscription.events", format!("{TOPIC_ARN}:1111").as_str())], "only the stack's function");
    assert_eq!(subs[0].attrs["topic"], json!({"id": TOPIC_ARN}), "the topic by id, mapped to its address by the plan");
    assert_eq!(subs[0].attrs["endpoint"], json!(FUNCTION_ARN));

    let calls = [
        ("ListTopics", list_topics.num_calls()),
        ("sns:ListTagsForResource", topic_tags.num_calls()),
        ("GetTopicAttributes", attributes.num_calls()),
        ("ListSubscriptionsByTopic", subscriptions.num_calls()),
        ("DescribeLogGroups", describe.num_calls()),
        ("logs:ListTagsForResource", log_tags.num_calls()),
    ];
    assert_eq!(
        calls,
        [
            ("ListTopics", 2),
            ("sns:ListTagsForResource", 1),
            ("GetTopicAttributes", 1),
            ("ListSubscriptionsByTopic", 1),
            ("DescribeLogGroups", 2),
            ("logs:ListTagsForResource", 2),
        ],
        "one listing of topics for the topic and its subscription; per-resource calls for the stack's only"
    );
}

/// The topic's live policy as AWS may give it back: one-element lists as single values, statements, keys and
/// actions in another order, no whitespace. The same grants: the plan changes nothing. A policy that really differs
/// (anyone may publish) is planned as an update.
#[tokio::test]
async fn a_topic_policy_given_back_in_another_form_plans_no_change() {
    let collapsed = r#"{"Statement":[{"Condition":{"StringEquals":{"aws:SourceAccount":"123456789012"},"ArnLike":{"aws:SourceArn":"arn:aws:cloudwatch:us-east-1:123456789012:alarm:*"}},"Resource":"arn:aws:sns:us-east-1:123456789012:mocked-events","Action":"sns:Publish","Principal":{"Service":"cloudwatch.amazonaws.com"},"Effect":"Allow","Sid":"CloudWatchAlarms"},{"Sid":"StackPublishers","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":["sns:Subscribe","sns:Publish","sns:ListSubscriptionsByTopic","sns:GetTopicAttributes"],"Resource":"arn:aws:sns:us-east-1:123456789012:mocked-events"}],"Version":"2012-10-17"}"#;
    let open = collapsed.replace(r#"{"AWS":"arn:aws:iam::123456789012:root"}"#, r#"{"AWS":"*"}"#);
    for (policy, expected) in [(collapsed.to_string(), Action::NoOp), (open, Action::Update)] {
        let list_topics = mock!(aws_sdk_sns::Client::list_topics).then_output(|| {
            ListTopicsOutput::builder().topics(SnsTopic::builder().topic_arn(TOPIC_ARN).build()).build()
        });
        let tags = mock!(aws_sdk_sns::Client::list_tags_for_resource).then_output(|| {
            let tags = owned_tags("mocked", "topic.events");
            TopicTagsOutput::builder().set_tags(Some(tags.iter().map(|(k, v)| topic_tag(k, v)).collect())).build()
        });
        let attributes = mock!(aws_sdk_sns::Client::get_topic_attributes)
            .then_compute_output(move |_| GetTopicAttributesOutput::builder().attributes("Policy", &policy).build());
        let cloud = cloud(&[], &[&list_topics, &tags, &attributes]);

        let plan = plan::build_with(&[&Topic], &cloud, &stack(), Mode::Apply).await.unwrap_or_else(|e| panic!("{e}"));

        let change = plan.changes.iter().find(|c| c.address.as_str() == "topic.events").expect("planned");
        let changed: Vec<&str> = change.attributes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(change.action, expected, "changed: {changed:?}");
        if expected == Action::Update {
            assert_eq!(changed, ["policy"]);
        }
    }
}
