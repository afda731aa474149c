//! webscale: one declarative stack file -> the classic "zero to millions of users" AWS architecture, kept
//! matching live AWS. No state file: what the stack owns is found in AWS by its ownership tags.
//!
//! The pipeline, one module per stage:
//! `spec` (TOML -> checked stack) -> `resources` (desired resources, one file per kind) -> `plan::read` (live
//! state) -> `plan::diff` (the plan, as data) -> `apply` (ordered by `graph`, run in parallel) -> `ui` (all
//! output). `aws` holds what every kind shares: SDK config, clients, error classification.

pub mod apply;
pub mod aws;
pub mod cli;
pub mod events;
pub mod graph;
pub mod lock;
pub mod plan;
pub mod resources;
pub mod spec;
pub mod ui;

/// The one error type a command can end with; each stage keeps its own precise error inside.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(
        "cannot use AWS at {endpoint}: {source}\n  Check credentials (AWS_PROFILE / --profile, AWS_ACCESS_KEY_ID), the endpoint (AWS_ENDPOINT_URL / --endpoint-url) and the network."
    )]
    Connect { endpoint: String, source: aws::CloudError },
    #[error("reading live state failed: {0}")]
    Read(aws::CloudError),
    #[error("cannot plan: {0}")]
    Plan(#[from] plan::PlanError),
    /// The user (or the lack of a terminal) said no.
    #[error("{0}")]
    Refused(String),
    /// The stack lock is held by another apply/destroy (or was left behind by one that was killed); or taking or
    /// breaking it failed. The message names the holder and how to break a stale lock.
    #[error("{0}")]
    Locked(String),
    /// Some operations failed; the report has already been printed.
    /// `publish` / `logs`: the stack has no logging pipeline, or it is not applied yet.
    #[error("{0}")]
    Operate(String),
    #[error("{0} did not complete")]
    Incomplete(&'static str),
}
