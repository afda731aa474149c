//! The one integration-test binary (every extra test binary is another large link of the AWS SDK).
//!
//! - `cli`: the command line as CI scripts see it, before any AWS call;
//! - `emulator`, `ownership`, `replace`: the real binary against the local AWS emulator on 127.0.0.1:4566
//!   (`localstack/up`), each test with its own stack name so they run in parallel, results checked through an
//!   SDK client of the test's own;
//! - `mocked`: rules real AWS enforces and the emulator does not, with canned SDK responses (aws-smithy-mocks);
//! - the tiers: `nat`, `web_instances`, `load_balancer`, `dns`, `database`, `static_assets` (emulator runs and mocked
//!   AWS rules of each);
//! - `runbooks`: the ops runbooks in `docs/runbooks/`, run as written (trycmd).

mod cli;
mod database;
mod dns;
mod drift;
mod emulator;
mod engine;
mod load_balancer;
mod lock;
mod logging;
mod lost_answer;
mod mocked;
mod nat;
mod ownership;
mod proxy;
mod replace;
mod runbooks;
mod static_assets;
mod support;
mod terraform_habits;
mod upgrade;
mod web_instances;
