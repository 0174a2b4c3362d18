//! `kubectl-bluegreen`: parse, run, print one error line, return the exit code.

use clap::Parser;
use kubectl_bluegreen::{cli::Cli, run};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match cli.global.verbosity {
        0 => tracing::Level::WARN,
        1..=2 => tracing::Level::INFO,
        3..=5 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    if cli.global.verbosity > 0 {
        tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_max_level(level)
            .with_target(false)
            .init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
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
