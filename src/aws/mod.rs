//! Everything about talking to AWS that is not specific to a resource kind: one shared SDK config (the standard
//! credential chain, profiles, AWS_REGION, AWS_ENDPOINT_URL), clients per region, and error classification.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::resources::{GLOBAL, GLOBAL_HOME};

/// Overrides from the command line; anything unset comes from the standard AWS chain.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub region: Option<String>,
    pub profile: Option<String>,
    pub endpoint_url: Option<String>,
}

/// The region the environment names (AWS_REGION, AWS_DEFAULT_REGION, the profile), if any. Deliberately not the
/// full default chain: its last resort asks the EC2 instance metadata service, a network call with timeouts on
/// every machine that is not an EC2 instance.
pub async fn ambient_region(settings: &Settings) -> Option<String> {
    use aws_config::environment::EnvironmentVariableRegionProvider;
    use aws_config::meta::region::RegionProviderChain;
    use aws_config::profile::ProfileFileRegionProvider;
    let mut profile = ProfileFileRegionProvider::builder();
    if let Some(p) = &settings.profile {
        profile = profile.profile_name(p);
    }
    RegionProviderChain::first_try(EnvironmentVariableRegionProvider::new())
        .or_else(profile.build())
        .region()
        .await
        .map(|r| r.to_string())
}

/// The HTTPS client every AWS call goes through: the SDK's own (hyper + rustls, the system's root certificates), with
/// rustls on *ring* rather than the SDK's default aws-lc, whose C build alone took ~45 s of a clean build's CPU.
pub fn http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
        .build_https()
}

/// Loads the shared SDK config the way every AWS tool does (credential chain, profile, AWS_ENDPOINT_URL), with
/// our overrides on top; `region` is the stack's home region.
pub async fn load_config(settings: &Settings, region: &str) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .region(Region::new(region.to_string()));
    if let Some(p) = &settings.profile {
        loader = loader.profile_name(p);
    }
    if let Some(url) = &settings.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    // Refreshing a large stack makes many calls at once: retry throttling harder than the SDK's default of
    // 3 attempts, unless the user chose a policy (AWS_MAX_ATTEMPTS / AWS_RETRY_MODE / profile settings).
    if std::env::var_os("AWS_MAX_ATTEMPTS").is_none() && std::env::var_os("AWS_RETRY_MODE").is_none() {
        loader = loader.retry_config(
            aws_config::retry::RetryConfig::standard().with_max_attempts(10).with_max_backoff(Duration::from_secs(20)),
        );
    }
    loader.load().await
}

/// The clients of one region.
#[derive(Clone, Debug)]
pub struct Clients {
    pub ec2: aws_sdk_ec2::Client,
    pub elbv2: aws_sdk_elasticloadbalancingv2::Client,
    pub rds: aws_sdk_rds::Client,
    pub route53: aws_sdk_route53::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub sns: aws_sdk_sns::Client,
    /// Parameter Store: the stack lock (`crate::lock`), in the stack's home region.
    pub ssm: aws_sdk_ssm::Client,
    /// The static assets' bucket and its objects.
    pub s3: aws_sdk_s3::Client,
    /// CloudFront is global: only the [`GLOBAL`] clients' copy is used.
    pub cloudfront: aws_sdk_cloudfront::Client,
    /// ACM: the certificate of the static assets' aliases (CloudFront takes them from us-east-1: the [`GLOBAL`]
    /// clients' copy).
    pub acm: aws_sdk_acm::Client,
    /// The logging pipeline's function and its permissions.
    pub lambda: aws_sdk_lambda::Client,
    /// IAM is global: only the [`GLOBAL`] clients' copy is used (the function's role).
    pub iam: aws_sdk_iam::Client,
}

impl Clients {
    pub fn new(config: &SdkConfig, region: &str) -> Clients {
        let config = config.clone().into_builder().region(Region::new(region.to_string())).build();
        Clients {
            ec2: aws_sdk_ec2::Client::new(&config),
            elbv2: aws_sdk_elasticloadbalancingv2::Client::new(&config),
            rds: aws_sdk_rds::Client::new(&config),
            route53: aws_sdk_route53::Client::new(&config),
            logs: aws_sdk_cloudwatchlogs::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            ssm: aws_sdk_ssm::Client::new(&config),
            s3: s3_client(&config),
            cloudfront: aws_sdk_cloudfront::Client::new(&config),
            acm: aws_sdk_acm::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
            iam: aws_sdk_iam::Client::new(&config),
        }
    }
}

/// S3 addresses buckets as `BUCKET.s3.REGION.amazonaws.com` on AWS; an endpoint override (an emulator on
/// 127.0.0.1, a VPC endpoint) has no such names, so there the bucket goes in the path instead.
fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let path_style = config.endpoint_url().is_some();
    aws_sdk_s3::Client::from_conf(aws_sdk_s3::config::Builder::from(config).force_path_style(path_style).build())
}

/// How long to keep retrying conditions that clear by themselves.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Right after a create, other calls may not see the new resource yet (`InvalidVpcID.NotFound`).
    pub consistency: Duration,
    /// Deletes blocked by dependencies that drain on their own (ENIs left by ELB/Lambda): `DependencyViolation`.
    pub dependency: Duration,
    /// First pause between attempts; doubles up to 15 s.
    pub interval: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        // Terraform's AWS provider waits ~2 min for eventual consistency and up to 15-20 min for SG deletes.
        RetryPolicy {
            consistency: Duration::from_secs(120),
            dependency: Duration::from_secs(15 * 60),
            interval: Duration::from_secs(2),
        }
    }
}

/// A kind's state for one run, behind [`Cloud::shared`].
type Shared = Arc<dyn std::any::Any + Send + Sync>;

/// The connection to AWS for one stack: who we are (the stack name, for ownership), clients per region.
#[derive(Debug, Clone)]
pub struct Cloud {
    stack: String,
    home: String,
    regions: BTreeMap<String, Clients>,
    pub retry: RetryPolicy,
    /// The AWS account, once known (see [`whoami`]).
    pub account: Option<String>,
    /// Tag keys other tools own (`[stack] ignore_tags`): live reads leave them out.
    pub ignore_tags: Vec<String>,
    /// The shared config, to reach regions beyond the stack's own (absent for hand-built clients).
    config: Option<SdkConfig>,
    /// What a kind keeps between its operations of one run (see [`Cloud::shared`]).
    shared: Arc<Mutex<HashMap<&'static str, Shared>>>,
}

impl Cloud {
    /// `regions` must include every region the stack's resources live in; the first is the stack's home.
    /// Global kinds' calls (Route 53, CloudFront, IAM) go to [`GLOBAL_HOME`] under the pseudo-region [`GLOBAL`],
    /// which every cloud has, so a global kind is read even when the spec declares none of it.
    pub fn new(stack: &str, config: &SdkConfig, regions: &[String]) -> Cloud {
        let home = config.region().map(|r| r.to_string()).unwrap_or_else(|| regions[0].clone());
        let mut all: Vec<String> = regions.iter().filter(|r| *r != GLOBAL).cloned().collect();
        all.push(home.clone());
        let mut regions: BTreeMap<String, Clients> =
            all.into_iter().map(|r| (r.clone(), Clients::new(config, &r))).collect();
        regions.insert(GLOBAL.to_string(), Clients::new(config, GLOBAL_HOME));
        Cloud {
            stack: stack.to_string(),
            home,
            regions,
            retry: RetryPolicy::default(),
            account: None,
            ignore_tags: Vec::new(),
            config: Some(config.clone()),
            shared: Arc::default(),
        }
    }

    /// Built from ready clients (tests hand in mocked ones); the same clients answer for global kinds.
    pub fn from_clients(stack: &str, region: &str, clients: Clients, retry: RetryPolicy) -> Cloud {
        Cloud {
            stack: stack.to_string(),
            home: region.to_string(),
            regions: BTreeMap::from([(region.to_string(), clients.clone()), (GLOBAL.to_string(), clients)]),
            retry,
            account: None,
            ignore_tags: Vec::new(),
            config: None,
            shared: Arc::default(),
        }
    }

    /// The one `T` named `name` for this run, made on first use: what a kind keeps between its operations (the
    /// Route 53 change a create started, for its wait; the turn instances take to change type). It belongs to this
    /// cloud and its clones, never to the process, so two stacks or two tests in one process never share it.
    pub fn shared<T: Default + Send + Sync + 'static>(&self, name: &'static str) -> Arc<T> {
        let mut all = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        let entry = all.entry(name).or_insert_with(|| Arc::new(T::default()));
        match entry.clone().downcast::<T>() {
            Ok(found) => found,
            // Another type under the same name: a programming error, kept from panicking by starting afresh.
            Err(_) => {
                let fresh = Arc::new(T::default());
                *entry = fresh.clone();
                fresh
            }
        }
    }

    /// The stack name: the value of the `webscale:stack` ownership tag.
    pub fn stack(&self) -> &str {
        &self.stack
    }

    /// The region resources live in unless they say otherwise.
    pub fn home_region(&self) -> &str {
        &self.home
    }

    /// Every region clients exist for, [`GLOBAL`] included.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.regions.keys().map(String::as_str)
    }

    /// Adds clients for more regions (a test with resources in two regions).
    pub fn with_region(mut self, region: &str, clients: Clients) -> Cloud {
        self.regions.insert(region.to_string(), clients);
        self
    }

    /// Where calls go, for messages.
    pub fn endpoint(&self) -> String {
        self.config
            .as_ref()
            .and_then(|c| c.endpoint_url())
            .map_or_else(|| "the AWS endpoints".to_string(), str::to_string)
    }

    /// Who we are ([`whoami`]); `None` for hand-built clients (tests), which have no STS.
    pub async fn whoami(&self) -> Result<Option<String>, CloudError> {
        match &self.config {
            Some(config) => whoami(config).await.map(Some),
            None => Ok(None),
        }
    }

    pub fn clients(&self, region: &str) -> Result<&Clients, CloudError> {
        self.regions.get(region).ok_or_else(|| CloudError::internal(format!("no AWS clients for region {region}")))
    }

    pub fn ec2(&self, region: &str) -> Result<&aws_sdk_ec2::Client, CloudError> {
        Ok(&self.clients(region)?.ec2)
    }

    /// Other regions where this stack has a VPC (every stack has one) although the spec does not name them: a
    /// region dropped from the spec, or a region mix-up (a different AWS_REGION in CI) that would otherwise build
    /// a second copy or leave the first one behind. Asked alongside every plan's reads. Best effort: regions that
    /// cannot be asked are skipped. An emulator that answers every region from one store (LocalStack aliases
    /// some) reports the same VPC ids everywhere: a VPC already seen in a region of the stack does not count.
    pub async fn stack_elsewhere(&self) -> Vec<String> {
        // Hand-built clients (tests) reach one endpoint that is no AWS: nothing to look for elsewhere.
        if self.config.is_none() {
            return Vec::new();
        }
        let Ok(ec2) = self.ec2(&self.home) else { return Vec::new() };
        let regions = match ec2.describe_regions().send().await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %crate::aws::cause_chain(&e), "cannot list regions");
                return Vec::new();
            }
        };
        tracing::debug!(regions = regions.regions().len(), "looking for the stack in other regions");
        let used: Vec<&str> = self.regions.keys().filter(|r| *r != GLOBAL).map(String::as_str).collect();
        let mut names: Vec<&str> = regions.regions().iter().filter_map(|r| r.region_name()).collect();
        names.extend(used.iter().filter(|u| !names.contains(u)).collect::<Vec<_>>());
        let probes = names.into_iter().map(|region| async move {
            // One EC2 client for every region, the region overridden per call: building a client per region (let
            // alone every service's) costs more than the calls themselves (measured on a plan of the network
            // tier: 1.3 s with every service's clients per region, 0.8 s with an EC2 client per region).
            let found = ec2
                .describe_vpcs()
                .filters(aws_sdk_ec2::types::Filter::builder().name("tag:webscale:stack").values(&self.stack).build())
                .customize()
                .config_override(aws_sdk_ec2::config::Builder::default().region(Region::new(region.to_string())));
            let ids: Vec<String> = found
                .send()
                .await
                .map(|o| o.vpcs().iter().filter_map(|v| v.vpc_id()).map(str::to_string).collect())
                .unwrap_or_default();
            (region, ids)
        });
        let found = futures::future::join_all(probes).await;
        let seen: Vec<&String> = found.iter().filter(|(r, _)| used.contains(r)).flat_map(|(_, ids)| ids).collect();
        let mut elsewhere: Vec<String> = found
            .iter()
            .filter(|(r, ids)| !used.contains(r) && ids.iter().any(|id| !seen.contains(&id)))
            .map(|(r, _)| r.to_string())
            .collect();
        elsewhere.sort();
        elsewhere
    }

    /// Runs `f` again while AWS does not yet see something created a moment ago (`*.NotFound`), within the
    /// consistency window. For the steps after a create: they act on the id already in hand, so a retry never
    /// creates anything twice.
    pub async fn settled<T, F, Fut>(&self, f: F) -> Result<T, CloudError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CloudError>>,
    {
        retrying(self.retry.consistency, self.retry.interval, CloudError::is_not_found, f).await
    }
}

/// An AWS call that failed, keeping the service's error code: it is how "not found", "throttled" and
/// "dependency violation" are told apart.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{operation}: {}{message}", code.as_ref().map(|c| format!("{c}: ")).unwrap_or_default())]
pub struct CloudError {
    pub operation: String,
    pub code: Option<String>,
    pub message: String,
}

impl CloudError {
    /// A failure of webscale itself rather than of a call.
    pub fn internal(message: impl Into<String>) -> CloudError {
        CloudError { operation: "webscale".into(), code: None, message: message.into() }
    }

    pub fn code(&self) -> &str {
        self.code.as_deref().unwrap_or("")
    }

    /// The thing acted on does not exist (any service's spelling).
    pub fn is_not_found(&self) -> bool {
        let c = self.code();
        c.ends_with(".NotFound") || c.ends_with("NotFound") || c.ends_with("NotFoundException") || c == "NoSuchEntity"
    }

    /// The endpoint does not serve the call (LocalStack's free edition: "not included in your license plan";
    /// an emulator without the service), or the credentials may not make it.
    pub fn is_unserved(&self) -> bool {
        let c = self.code();
        matches!(
            c,
            "AccessDenied"
                | "AccessDeniedException"
                | "UnauthorizedOperation"
                | "NotImplemented"
                | "InternalFailure"
                | "UnknownOperationException"
                | "InvalidAction"
        ) || self.message.contains("not included in your")
            || self.message.contains("not yet implemented")
    }

    /// AWS asked us to slow down: the call was not carried out, so repeating it is safe.
    pub fn is_throttling(&self) -> bool {
        matches!(
            self.code(),
            "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException" | "SlowDown"
        )
    }

    /// The call may or may not have been carried out: no answer arrived (timeout, reset connection), or the
    /// service failed on its side. A create after such an error must look before it creates again.
    pub fn is_ambiguous(&self) -> bool {
        self.code.is_none() && self.operation != "webscale"
            || matches!(self.code(), "InternalError" | "InternalFailure" | "ServiceUnavailable" | "Unavailable")
    }

    /// The error code, else the message: for one-line warnings.
    pub fn code_or_message(&self) -> &str {
        self.code.as_deref().unwrap_or(&self.message)
    }

    /// A create repeated after its answer was lost meets the resource the first call made (names the service
    /// keeps unique: groups, load balancers, DB identifiers, functions, roles, log groups, buckets, topics).
    pub fn is_already_exists(&self) -> bool {
        let c = self.code();
        c.ends_with(".Duplicate")
            || c.ends_with("AlreadyExists")
            || c.ends_with("AlreadyExistsException")
            || c.ends_with("AlreadyExistsFault")
            || matches!(
                c,
                "EntityAlreadyExists"
                    | "BucketAlreadyOwnedByYou"
                    | "DuplicateLoadBalancerName"
                    | "DuplicateTargetGroupName"
                    | "DuplicateListener"
            )
    }

    /// Something still uses the resource; often clears by itself (ENIs draining).
    pub fn is_dependency_violation(&self) -> bool {
        matches!(self.code(), "DependencyViolation" | "ResourceInUse" | "ResourceInUseException")
    }
}

/// Attaches the operation name to an SDK result, keeping the error code.
pub trait CallExt<T> {
    fn call(self, operation: &str) -> Result<T, CloudError>;
}

/// For SDK call results and waiter results alike: both carry AWS's error metadata.
impl<T, E> CallExt<T> for Result<T, E>
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    fn call(self, operation: &str) -> Result<T, CloudError> {
        self.map_err(|err| {
            let code = err.code().map(str::to_string);
            let message = match err.message() {
                Some(m) => m.to_string(),
                // Not a service error (no network, timeout, bad credentials): the cause chain says why.
                None => cause_chain(&err),
            };
            CloudError { operation: operation.to_string(), code, message }
        })
    }
}

/// `outer: inner: innermost`, each cause once: the SDK nests the same words several levels deep.
fn cause_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

/// For EC2 creates: no automatic retries. The SDK would repeat a call whose answer was lost, and AWS, having
/// carried out the first, would make a second resource where the API has no idempotency token (CreateVpc,
/// CreateSubnet, CreateInternetGateway). The engine retries instead, looking for the resource by its tags before it
/// creates again. Where the API takes a client token (CreateRouteTable, CreateNetworkAcl) it is passed as well, so
/// a repeat that the look misses (tag reads are eventually consistent on AWS) still returns the first resource.
pub fn ec2_once() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::default().retry_config(aws_config::retry::RetryConfig::disabled())
}

/// Who we are, asked once before anything else: it fails fast (and says why) when the endpoint is unreachable
/// or there are no usable credentials, instead of every read retrying; and the plan can name the account.
pub async fn whoami(config: &SdkConfig) -> Result<String, CloudError> {
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(config)
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
            .build(),
    );
    let me = sts.get_caller_identity().send().await.call("GetCallerIdentity")?;
    Ok(me.account().unwrap_or("unknown").to_string())
}

/// Retries `f` while `transient` says the error clears by itself, for at most `limit`, backing off to 15 s.
pub async fn retrying<T, F, Fut>(
    limit: Duration,
    first_pause: Duration,
    transient: fn(&CloudError) -> bool,
    mut f: F,
) -> Result<T, CloudError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, CloudError>>,
{
    let started = Instant::now();
    let mut pause = first_pause;
    loop {
        match f().await {
            Err(e) if transient(&e) && started.elapsed() + pause <= limit => {
                tracing::debug!(error = %e, ?pause, "transient error, retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(15));
            }
            other => return other,
        }
    }
}
