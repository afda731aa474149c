use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use webscale::cli::{self, Cli};

fn main() -> ExitCode {
    // clap exits 2 on a usage error, which `plan --detailed-exitcode` means "changes pending": a typo in a CI
    // script must read as an error (1) instead. --help and --version still exit 0.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::FAILURE } else { ExitCode::SUCCESS };
        }
    };
    // By default only our own warnings: the SDK's (e.g. each credential provider that found nothing) would
    // bury the one error message that says what to do.
    let level = match cli.global.verbose {
        0 => "error,webscale=warn",
        1 => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();

    let ui = cli.ui();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            ui.error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(cli, ui)) {
        Ok(code) => code,
        // The failure report is already printed.
        Err(webscale::Error::Incomplete(_)) => ExitCode::FAILURE,
        Err(e) => {
            ui.error(&e);
            ExitCode::FAILURE
        }
    }
}
