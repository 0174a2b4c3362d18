//! `kubectl-bluegreen`: parse and validate, run, print one error line, return the exit code.

use clap::Parser;
use kubectl_bluegreen::{cli::Cli, run};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let verbosity = cli.global.verbosity;
    if verbosity > 0 {
        let level = match verbosity {
            1..=2 => tracing::Level::INFO,
            3..=5 => tracing::Level::DEBUG,
            _ => tracing::Level::TRACE,
        };
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(level)
            .with_target(false)
            .init();
    }
    let outcome = cli.into_request().and_then(|request| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| {
                kubectl_bluegreen::error::Error::Other(format!(
                    "cannot start the async runtime: {e}"
                ))
            })?;
        let outcome = runtime.block_on(run(request));
        // The command is done: do not wait on the idle connections' tasks to wind down.
        runtime.shutdown_background();
        outcome
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        // `| head` closed the pipe: that is success for a reader that had enough.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            // One line: what failed and, where the user can fix it, how.
            match e.hint() {
                Some(hint) => eprintln!("error: {e} ({hint})"),
                None => eprintln!("error: {e}"),
            }
            e.to_exit_code()
        }
    }
}
