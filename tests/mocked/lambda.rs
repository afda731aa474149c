//! The logging pipeline's function, its permission and its role against canned Lambda and IAM answers: the rules
//! real AWS enforces and moto does not (moto makes a function Active at once, lets a fresh role be assumed at once,
//! and never refuses an update while another is in progress), and what a plan's read costs however many functions
//! and roles the account has. The kinds are called directly (`create`, `update`, `wait`, `read`); every call a
//! test did not expect panics (the interceptor's `must_match`).
//!
//! Retries and waits run in tokio's paused time: the kind's backoff and the SDK waiters' polls cost nothing, and a
//! status answer depends on how much virtual time has passed, as it does on AWS.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_iam::operation::list_attached_role_policies::ListAttachedRolePoliciesOutput;
use aws_sdk_iam::operation::list_roles::ListRolesOutput;
use aws_sdk_iam::types::{AttachedPolicy, Role as IamRole};
use aws_sdk_lambda::config::{Credentials, Region};
use aws_sdk_lambda::error::ErrorMetadata;
use aws_sdk_lambda::operation::create_function::{CreateFunctionError, CreateFunctionOutput};
use aws_sdk_lambda::operation::get_function::GetFunctionOutput;
use aws_sdk_lambda::operation::get_policy::GetPolicyOutput;
use aws_sdk_lambda::operation::list_functions::ListFunctionsOutput;
use aws_sdk_lambda::operation::update_function_code::UpdateFunctionCodeOutput;
use aws_sdk_lambda::operation::update_function_configuration::{
    UpdateFunctionConfigurationError, UpdateFunctionConfigurationOutput,
};
use aws_sdk_lambda::types::{EnvironmentResponse, FunctionConfiguration, LastUpdateStatus, Runtime, State};
use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
use aws_smithy_types::retry::RetryConfig;
use serde_json::{Value, json};
use tokio::time::Instant;
use webscale::apply::Phase;
use webscale::aws::{Clients, Cloud};
use webscale::resources::function::Function;
use webscale::resources::function_permission::FunctionPermission;
use webscale::resources::role::{self, Role};
use webscale::resources::{Address, Kind, Op, Progress, ReadCtx};
use webscale::spec::{RegionChoice, Stack};

use super::{REGION, fast, unused_clients};

const ACCOUNT: &str = "123456789012";
const NAME: &str = "mocked-events";
const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/webscale/mocked/mocked-events";
const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:mocked-events";
const TOPIC_ARN: &str = "arn:aws:sns:us-east-1:123456789012:mocked-events";
const MARKER: &str = "webscale:stack=mocked webscale:address=function.events";
const ASSUME: &str = "The role defined for the function cannot be assumed by Lambda.";

/// The reference stack (with its [logging] table: the handler folder is packaged) as stack `mocked`.
fn stack() -> Stack {
    let path = crate::support::repo().join("templates/webscale.toml");
    let text = std::fs::read_to_string(&path).unwrap().replacen("name = \"webscale\"", "name = \"mocked\"", 1);
    let mut stack = webscale::spec::parse(&path, &text, &RegionChoice::default()).unwrap_or_else(|e| panic!("{e}"));
    stack.account = Some(ACCOUNT.to_string());
    assert!(stack.logging.as_ref().is_some_and(|l| !l.package.is_empty()), "the reference stack has a handler");
    stack
}

/// Lambda and IAM answered by `rules` (any order), every other service unused.
fn cloud(lambda_rules: &[&Rule], iam_rules: &[&Rule]) -> Cloud {
    let interceptor = |rules: &[&Rule]| {
        rules.iter().fold(MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny), |i, r| i.with_rule(r))
    };
    let lambda = aws_sdk_lambda::Client::from_conf(
        aws_sdk_lambda::Config::builder()
            .behavior_version_latest()
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .http_client(create_mock_http_client())
            .interceptor(interceptor(lambda_rules))
            .build(),
    );
    let iam = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_iam::config::Region::new(REGION))
            .credentials_provider(aws_sdk_iam::config::Credentials::new("test", "test", None, None, "test"))
            .retry_config(RetryConfig::disabled())
            .http_client(create_mock_http_client())
            .interceptor(interceptor(iam_rules))
            .build(),
    );
    Cloud::from_clients("mocked", REGION, Clients { lambda, iam, ..unused_clients() }, fast())
}

/// The function's desired attributes as the engine hands them over: references resolved (the role's ARN).
fn desired(stack: &Stack) -> (Address, Value) {
    let d = Function.desired(stack).remove(0);
    let mut attrs = d.attrs.clone();
    attrs.insert("role".into(), json!(ROLE_ARN));
    (d.address, Value::Object(attrs))
}

fn op<'a>(
    stack: &'a Stack,
    address: &'a Address,
    id: Option<&'a str>,
    desired: Value,
    changed: &'a [String],
) -> Op<'a> {
    Op {
        address,
        region: REGION,
        id,
        desired: Some(webscale::resources::attrs(&desired)),
        live: None,
        changed,
        token: "ws-test".into(),
        digests: Default::default(),
        skip_final_snapshot: false,
        wait: false,
        stack: Some(stack),
        progress: None,
    }
}

/// A function as Lambda lists it; `description` decides whose it is.
fn function(name: &str, description: &str) -> aws_sdk_lambda::types::builders::FunctionConfigurationBuilder {
    FunctionConfiguration::builder()
        .function_name(name)
        .function_arn(format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"))
        .description(description)
        .runtime(Runtime::Nodejs22x)
        .handler("index.handler")
        .memory_size(128)
        .timeout(10)
        .role(ROLE_ARN)
        .code_sha256("abc=")
}

fn lambda_error(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

fn created() -> CreateFunctionOutput {
    CreateFunctionOutput::builder().function_name(NAME).function_arn(FUNCTION_ARN).state(State::Pending).build()
}

// =====================================================================================================================
// (a) a fresh role Lambda cannot assume yet
// =====================================================================================================================

/// On AWS a role created a moment ago is not yet assumable by Lambda: CreateFunction answers
/// InvalidParameterValueException "cannot be assumed" for some seconds. The create retries it, backing off in
/// (virtual) time, and makes one function; the zip, the marker and the tags go in the create call.
#[tokio::test(start_paused = true)]
async fn a_role_lambda_cannot_assume_yet_is_retried_until_it_can() {
    let sent = Arc::new(Mutex::new(Vec::new()));
    let s = sent.clone();
    let create = mock!(aws_sdk_lambda::Client::create_function)
        .sequence()
        .error(|| CreateFunctionError::generic(lambda_error("InvalidParameterValueException", ASSUME)))
        .times(2)
        .output(created)
        .build();
    let record = mock!(aws_sdk_lambda::Client::create_function)
        .match_requests(move |i| {
            s.lock().unwrap().push((
                i.code().and_then(|c| c.zip_file()).map(|z| z.as_ref().len()),
                i.description().map(str::to_string),
                i.tags().and_then(|t| t.get("webscale:stack")).cloned(),
                i.publish(),
            ));
            false
        })
        .then_output(created);
    let cloud = cloud(&[&record, &create], &[]);
    let stack = stack();
    let (address, want) = desired(&stack);
    let start = Instant::now();

    let made = Function.create(&cloud, &op(&stack, &address, None, want, &[])).await.unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(made.id, NAME);
    assert_eq!(made.outputs["arn"], json!(FUNCTION_ARN));
    assert_eq!(create.num_calls(), 3, "two refusals, then the one function");
    assert!(start.elapsed() >= Duration::from_secs(6), "it backed off between attempts: {:?}", start.elapsed());
    assert!(start.elapsed() < Duration::from_secs(60), "and no longer than needed: {:?}", start.elapsed());
    let package = stack.logging.as_ref().unwrap().package.len();
    for (zip, description, tag, publish) in sent.lock().unwrap().iter() {
        assert_eq!(*zip, Some(package), "the spec's package is the code");
        assert_eq!(description.as_deref(), Some(MARKER), "the ownership marker is in the create");
        assert_eq!(tag.as_deref(), Some("mocked"), "so are the tags");
        assert_eq!(*publish, Some(false));
    }
}

/// Any other invalid parameter is the spec's or webscale's mistake: reported at once, never retried.
#[tokio::test(start_paused = true)]
async fn another_invalid_parameter_is_not_retried() {
    let create = mock!(aws_sdk_lambda::Client::create_function).then_error(|| {
        CreateFunctionError::generic(lambda_error(
            "InvalidParameterValueException",
            "The runtime parameter of nodejs8.10 is no longer supported for creating or updating AWS Lambda functions.",
        ))
    });
    let cloud = cloud(&[&create], &[]);
    let stack = stack();
    let (address, want) = desired(&stack);

    let err = Function.create(&cloud, &op(&stack, &address, None, want, &[])).await.expect_err("refused");

    assert_eq!(err.code(), "InvalidParameterValueException");
    assert_eq!(create.num_calls(), 1, "not retried");
}

/// A role that never becomes assumable (a wrong trust policy) ends the create after the 5-minute window.
#[tokio::test(start_paused = true)]
async fn a_role_that_never_becomes_assumable_gives_up_after_five_minutes() {
    let create = mock!(aws_sdk_lambda::Client::create_function)
        .then_error(|| CreateFunctionError::generic(lambda_error("InvalidParameterValueException", ASSUME)));
    let cloud = cloud(&[&create], &[]);
    let stack = stack();
    let (address, want) = desired(&stack);
    let start = Instant::now();

    let err = Function.create(&cloud, &op(&stack, &address, None, want, &[])).await.expect_err("gives up");

    assert!(err.message.contains("cannot be assumed"), "{err}");
    let waited = start.elapsed();
    assert!(waited > Duration::from_secs(4 * 60) && waited <= Duration::from_secs(5 * 60), "{waited:?}");
    assert!(create.num_calls() < 30, "backed off, not a tight loop: {}", create.num_calls());
}

// =====================================================================================================================
// (b) a repeated create
// =====================================================================================================================

/// The first CreateFunction made the function but its answer was lost; the repeat meets ResourceConflictException.
/// GetFunction shows the stack's marker: it is the first call's function, taken as created, and nothing is created
/// a second time.
#[tokio::test(start_paused = true)]
async fn a_repeated_create_finds_the_first_function() {
    let create = mock!(aws_sdk_lambda::Client::create_function).then_error(|| {
        CreateFunctionError::generic(lambda_error("ResourceConflictException", "Function already exist: mocked-events"))
    });
    let get = mock!(aws_sdk_lambda::Client::get_function)
        .match_requests(|i| i.function_name() == Some(NAME))
        .then_output(|| GetFunctionOutput::builder().configuration(function(NAME, MARKER).build()).build());
    let cloud = cloud(&[&create, &get], &[]);
    let stack = stack();
    let (address, want) = desired(&stack);

    let made = Function.create(&cloud, &op(&stack, &address, None, want, &[])).await.unwrap_or_else(|e| panic!("{e}"));

    assert_eq!((made.id.as_str(), &made.outputs["arn"]), (NAME, &json!(FUNCTION_ARN)));
    assert_eq!(create.num_calls(), 1, "no second create");
    assert_eq!(get.num_calls(), 1);
}

/// The same conflict on a function that is not the stack's (no marker) is an error naming it, never a takeover.
#[tokio::test(start_paused = true)]
async fn a_function_of_that_name_not_the_stacks_is_an_error() {
    let create = mock!(aws_sdk_lambda::Client::create_function).then_error(|| {
        CreateFunctionError::generic(lambda_error("ResourceConflictException", "Function already exist"))
    });
    let get = mock!(aws_sdk_lambda::Client::get_function)
        .then_output(|| GetFunctionOutput::builder().configuration(function(NAME, "made by hand").build()).build());
    let cloud = cloud(&[&create, &get], &[]);
    let stack = stack();
    let (address, want) = desired(&stack);

    let err = Function.create(&cloud, &op(&stack, &address, None, want, &[])).await.expect_err("not ours");

    assert!(err.message.contains("is not stack mocked's") && err.message.contains(NAME), "{err}");
    assert!(!err.is_already_exists(), "the engine must not take it for its own create: {err}");
}

// =====================================================================================================================
// (c) updates and their waits
// =====================================================================================================================

fn update_rules() -> (Rule, Rule) {
    let code = mock!(aws_sdk_lambda::Client::update_function_code)
        .then_output(|| UpdateFunctionCodeOutput::builder().function_name(NAME).build());
    let config = mock!(aws_sdk_lambda::Client::update_function_configuration)
        .then_output(|| UpdateFunctionConfigurationOutput::builder().function_name(NAME).build());
    (code, config)
}

/// An edited handler changes the code and nothing else: UpdateFunctionCode with the spec's zip, no configuration call.
#[tokio::test(start_paused = true)]
async fn a_code_change_calls_update_function_code_only() {
    let stack = stack();
    let package = stack.logging.as_ref().unwrap().package.clone();
    let code = mock!(aws_sdk_lambda::Client::update_function_code)
        .match_requests(move |i| i.zip_file().map(|z| z.as_ref()) == Some(package.as_slice()))
        .then_output(|| UpdateFunctionCodeOutput::builder().function_name(NAME).build());
    let (_, config) = update_rules();
    let cloud = cloud(&[&code, &config], &[]);
    let (address, want) = desired(&stack);
    let changed = vec!["code_sha256".to_string()];

    Function.update(&cloud, &op(&stack, &address, Some(NAME), want, &changed)).await.unwrap_or_else(|e| panic!("{e}"));

    assert_eq!(code.num_calls(), 1, "the code is sent, as the spec's package");
    assert_eq!(config.num_calls(), 0, "the configuration is left alone");
}

/// GetFunction answers as Lambda does over time: the update InProgress until `done` has passed, then `end`.
fn updating(start: Instant, done: Duration, end: LastUpdateStatus, seen: Arc<Mutex<Vec<String>>>) -> Rule {
    mock!(aws_sdk_lambda::Client::get_function).then_compute_output(move |_| {
        let status = if start.elapsed() < done { LastUpdateStatus::InProgress } else { end.clone() };
        seen.lock().unwrap().push(format!("{}s {}", start.elapsed().as_secs(), status.as_str()));
        let f = function(NAME, MARKER)
            .state(State::Active)
            .last_update_status(status)
            .last_update_status_reason("The handler crashed at init");
        GetFunctionOutput::builder().configuration(f.build()).build()
    })
}

/// A configuration change: one UpdateFunctionConfiguration (no code sent), and the update's wait returns only once
/// Lambda reports LastUpdateStatus Successful, through the SDK waiter (not a tight loop).
#[tokio::test(start_paused = true)]
async fn a_configuration_change_waits_for_last_update_status_successful() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let get = updating(start, Duration::from_secs(90), LastUpdateStatus::Successful, seen.clone());
    let (code, config) = update_rules();
    let cloud = cloud(&[&code, &config, &get], &[]);
    let stack = stack();
    let (address, want) = desired(&stack);
    let changed = vec!["memory_mb".to_string()];
    let op = op(&stack, &address, Some(NAME), want, &changed);

    Function.update(&cloud, &op).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((code.num_calls(), config.num_calls()), (0, 1), "the configuration only");
    let progress = Progress::default();
    Function.wait(&cloud, &op, NAME, Phase::Update, &progress).await.unwrap_or_else(|e| panic!("{e}"));

    let seen = seen.lock().unwrap().clone();
    assert!(start.elapsed() >= Duration::from_secs(90), "returned only once Successful: {seen:?}");
    assert!(seen.last().is_some_and(|s| s.ends_with("Successful")), "{seen:?}");
    assert!(seen.len() < 40, "the waiter backs off: {seen:?}");
    assert_eq!(progress.get().as_deref(), Some("Successful"));
}

/// An update Lambda reports Failed ends the wait with Lambda's reason, at once.
#[tokio::test(start_paused = true)]
async fn a_failed_update_ends_the_wait_with_lambdas_reason() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let get = updating(Instant::now(), Duration::from_secs(30), LastUpdateStatus::Failed, seen);
    let cloud = cloud(&[&get], &[]);
    let stack = stack();
    let (address, want) = desired(&stack);

    let err = Function
        .wait(&cloud, &op(&stack, &address, Some(NAME), want, &[]), NAME, Phase::Update, &Progress::default())
        .await
        .expect_err("failed");

    assert!(err.message.contains("The handler crashed at init") && err.message.contains("function.events"), "{err}");
}

/// Code and configuration both changed: two calls Lambda takes one at a time. The configuration goes only once the
/// code update is Successful; a ResourceConflictException ("update in progress") on it is retried, not fatal.
#[tokio::test(start_paused = true)]
async fn code_and_configuration_go_one_after_the_other() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let get = updating(start, Duration::from_secs(60), LastUpdateStatus::Successful, seen.clone());
    let code = mock!(aws_sdk_lambda::Client::update_function_code)
        .then_output(|| UpdateFunctionCodeOutput::builder().function_name(NAME).build());
    let at = Arc::new(Mutex::new(Vec::new()));
    let a = at.clone();
    let config = mock!(aws_sdk_lambda::Client::update_function_configuration)
        .sequence()
        .error(|| {
            UpdateFunctionConfigurationError::generic(lambda_error(
                "ResourceConflictException",
                "The operation cannot be performed at this time. An update is in progress for resource: mocked-events",
            ))
        })
        .output(|| UpdateFunctionConfigurationOutput::builder().function_name(NAME).build())
        .build();
    let watch = mock!(aws_sdk_lambda::Client::update_function_configuration)
        .match_requests(move |_| {
            a.lock().unwrap().push(start.elapsed());
            false
        })
        .then_output(|| UpdateFunctionConfigurationOutput::builder().build());
    let cloud = cloud(&[&code, &watch, &config, &get], &[]);
    let stack = stack();
    let (address, want) = desired(&stack);
    let changed = vec!["code_sha256".to_string(), "timeout_seconds".to_string()];

    Function.update(&cloud, &op(&stack, &address, Some(NAME), want, &changed)).await.unwrap_or_else(|e| panic!("{e}"));

    assert_eq!((code.num_calls(), config.num_calls()), (1, 2), "code once; configuration refused once, then made");
    let first = at.lock().unwrap()[0];
    assert!(first >= Duration::from_secs(60), "the configuration waited for the code update: {first:?}");
    let seen = seen.lock().unwrap().clone();
    assert!(seen.last().is_some_and(|s| s.ends_with("Successful")), "{seen:?}");
}

// =====================================================================================================================
// (d) the read budget
// =====================================================================================================================

type Calls = Arc<Mutex<Vec<String>>>;

fn logger(calls: &Calls, name: &'static str) -> impl Fn() + Send + Sync + 'static {
    let calls = calls.clone();
    move || calls.lock().unwrap().push(name.to_string())
}

fn iam_role(path: &str, name: &str, description: &str, document: &str) -> IamRole {
    IamRole::builder()
        .path(path)
        .role_name(name)
        .role_id(format!("AROA{name}"))
        .arn(format!("arn:aws:iam::{ACCOUNT}:role{path}{name}"))
        .create_date(aws_smithy_types::DateTime::from_secs(0))
        .description(description)
        .assume_role_policy_document(document)
        .build()
        .unwrap()
}

/// A plan's read of the three kinds costs the same calls however many functions and roles the account has: 150
/// functions (149 of others: no marker, another stack's, a name like the stack's) over 3 pages of 50 -> 3
/// ListFunctions, shared by the function and its permission; one GetPolicy (the stack's function only); roles
/// listed under the stack's IAM path (the account's 100 other roles lie elsewhere) -> 1 ListRoles, and one
/// ListAttachedRolePolicies for the stack's role only.
#[tokio::test]
async fn a_read_costs_the_same_calls_whatever_the_number_of_functions_and_roles() {
    let calls: Calls = Arc::default();
    let (l1, l2, l3, l4) = (
        logger(&calls, "ListFunctions"),
        logger(&calls, "GetPolicy"),
        logger(&calls, "ListRoles"),
        logger(&calls, "ListAttachedRolePolicies"),
    );
    let mut all: Vec<FunctionConfiguration> = (0..149)
        .map(|i| match i % 3 {
            0 => function(&format!("app-{i}"), "").build(),
            1 => function(&format!("other-{i}"), "webscale:stack=other webscale:address=function.events").build(),
            _ => function(&format!("mocked-events-{i}"), "mocked-events made by hand").build(),
        })
        .collect();
    let variables = EnvironmentResponse::builder().variables("LOG_LEVEL", "info").variables("ADDED_BY_HAND", "x");
    all.insert(
        70,
        function(NAME, MARKER)
            .function_arn(FUNCTION_ARN)
            .code_sha256(&stack().logging.unwrap().code_sha256)
            .environment(variables.build())
            .build(),
    );
    let list = mock!(aws_sdk_lambda::Client::list_functions).then_compute_output(move |input| {
        l1();
        assert_eq!(input.max_items(), Some(50), "Lambda's largest page");
        let page: usize = input.marker().map_or(0, |m| m.parse().unwrap());
        let out = ListFunctionsOutput::builder().set_functions(Some(all[page * 50..(page + 1) * 50].to_vec()));
        if page < 2 { out.next_marker((page + 1).to_string()).build() } else { out.build() }
    });
    let policy = mock!(aws_sdk_lambda::Client::get_policy).then_compute_output(move |input| {
        l2();
        assert_eq!(input.function_name(), Some(NAME), "policies asked only of the stack's function");
        let statement = json!({
            "Sid": "webscale-events", "Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
            "Action": "lambda:InvokeFunction", "Resource": FUNCTION_ARN,
            "Condition": {"ArnLike": {"AWS:SourceArn": TOPIC_ARN}},
        });
        let by_hand = json!({"Sid": "someone", "Effect": "Allow", "Principal": "*", "Action": "lambda:InvokeFunction"});
        let doc = json!({"Version": "2012-10-17", "Id": "default", "Statement": [statement, by_hand]});
        GetPolicyOutput::builder().policy(doc.to_string()).build()
    });
    // IAM returns the trust policy URL-encoded.
    let encoded: String = role::trust_policy()
        .to_string()
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let mut roles: Vec<IamRole> = (0..100).map(|i| iam_role("/", &format!("role-{i}"), "", &encoded)).collect();
    roles.push(iam_role("/webscale/mocked/", NAME, "webscale:stack=mocked webscale:address=role.events", &encoded));
    let list_roles = mock!(aws_sdk_iam::Client::list_roles).then_compute_output(move |input| {
        l3();
        let prefix = input.path_prefix().unwrap_or("/");
        let found: Vec<IamRole> = roles.iter().filter(|r| r.path().starts_with(prefix)).cloned().collect();
        ListRolesOutput::builder().set_roles(Some(found)).is_truncated(false).build().unwrap()
    });
    let attached = mock!(aws_sdk_iam::Client::list_attached_role_policies).then_compute_output(move |input| {
        l4();
        assert_eq!(input.role_name(), Some(NAME));
        let basic = AttachedPolicy::builder().policy_arn(role::BASIC_EXECUTION).policy_name("basic").build();
        ListAttachedRolePoliciesOutput::builder().attached_policies(basic).is_truncated(false).build()
    });
    let cloud = cloud(&[&list, &policy], &[&list_roles, &attached]);
    let stack = stack();
    let ctx = ReadCtx::new(&cloud, &stack);

    let (functions, permissions, roles) = futures::future::try_join3(
        Function.read(&ctx, REGION),
        FunctionPermission.read(&ctx, REGION),
        Role.read(&ctx, webscale::resources::GLOBAL),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    let mut made = calls.lock().unwrap().clone();
    made.sort();
    assert_eq!(
        made,
        ["GetPolicy", "ListAttachedRolePolicies", "ListFunctions", "ListFunctions", "ListFunctions", "ListRoles"],
        "a page of functions per call, shared; the rest only for the stack's own"
    );
    assert_eq!(functions.len(), 1, "only the stack's function");
    let f = &functions[0];
    assert_eq!((f.address.as_str(), f.id.as_str()), ("function.events", NAME));
    assert_eq!(f.attrs["environment"], json!({"LOG_LEVEL": "info"}), "the spec's plain variables are shown");
    assert_eq!(f.attrs["secret_environment"], json!({"ADDED_BY_HAND": "x"}), "any other counts as secret");
    assert_eq!(f.attrs["role"], json!(ROLE_ARN));
    assert_eq!(f.outputs["arn"], json!(FUNCTION_ARN));
    assert_eq!(permissions.len(), 1, "the stack's statement only: {permissions:?}");
    let p = &permissions[0];
    assert_eq!((p.address.as_str(), p.id.as_str()), ("function_permission.events", "mocked-events/webscale-events"));
    assert_eq!(
        Value::Object(p.attrs.clone()),
        json!({"principal": "sns.amazonaws.com", "action": "lambda:InvokeFunction", "source_arn": TOPIC_ARN,
               "function": {"id": NAME}})
    );
    assert_eq!(roles.len(), 1);
    let r = &roles[0];
    assert_eq!((r.address.as_str(), r.id.as_str()), ("role.events", NAME));
    assert_eq!(r.attrs["assume_role_policy"], role::trust_policy(), "decoded and parsed");
    assert_eq!(r.attrs["managed_policies"], json!([role::BASIC_EXECUTION]));
    assert_eq!(r.attrs["path"], json!("/webscale/mocked/"));
}
