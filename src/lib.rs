//! kubectl-bluegreen: safe blue/green releases for plain Deployments and Services.
//!
//! The pipeline: `observe` reads the cluster into a `Snapshot`, `model` turns it into
//! apps (a pure function), `render` writes them; `cmd/<verb>` composes the three, and
//! `connect` builds the client the way kubectl does. `main.rs` only maps `run` to an
//! exit code.

pub mod apply;
pub mod cli;
pub mod cmd;
pub mod connect;
pub mod env;
pub mod error;
pub mod lease;
pub mod model;
pub mod observe;
pub mod plan;
pub mod progress;
pub mod render;
#[cfg(test)]
mod testutil;
pub mod verify;

use cli::{Cli, Command};
use error::Result;
use std::io::IsTerminal;

/// Runs one parsed command line against the cluster, writing to stdout.
pub async fn run(cli: Cli) -> Result<()> {
    // These need no cluster.
    match &cli.command {
        Command::Completion { shell } => {
            cmd::completion::generate(*shell, &mut std::io::stdout());
            return Ok(());
        }
        Command::Complete { words } => {
            let text = cmd::completion::complete(words).await;
            print!("{text}");
            return Ok(());
        }
        Command::Version {
            client: true,
            output,
        } => return cmd::version::run(None, output.map(format_of)).await,
        _ => {}
    }
    let conn = connect::connect(&cli.global).await?;
    let tty = std::io::stdout().is_terminal();
    let machine_output = match &cli.command {
        Command::Status(a) => matches!(a.output, cli::Output::Json | cli::Output::Yaml),
        Command::List(a) => matches!(a.output, cli::Output::Json | cli::Output::Yaml),
        Command::History(a) => matches!(a.output, cli::Output::Json | cli::Output::Yaml),
        Command::SetImage(a) => a.opts.output.is_some(),
        Command::Promote(a) => a.opts.output.is_some(),
        Command::Abort(a) => a.opts.output.is_some(),
        Command::Wait(_) => false,
        Command::Init(a) => a.opts.output.is_some(),
        Command::Version { output, .. } => output.is_some(),
        Command::Completion { .. } | Command::Complete { .. } => true,
    };
    let color = tty && !machine_output && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let mut env = env::Env {
        conn,
        out: Box::new(std::io::stdout()),
        now: jiff::Timestamp::now,
        style: render::Style { color },
        tty,
        tty_err: std::io::stderr().is_terminal(),
    };
    match &cli.command {
        Command::Status(a) => cmd::status::run(&mut env, a).await,
        Command::List(a) => cmd::list::run(&mut env, a).await,
        Command::History(a) => cmd::history::run(&mut env, a).await,
        Command::SetImage(a) => cmd::set_image::run(&mut env, a).await,
        Command::Promote(a) => cmd::promote::run(&mut env, a).await,
        Command::Abort(a) => cmd::abort::run(&mut env, a).await,
        Command::Wait(a) => cmd::wait::run(&mut env, a).await,
        Command::Init(a) => cmd::init::run(&mut env, a).await,
        Command::Version { output, .. } => {
            cmd::version::run(Some(&mut env), output.map(format_of)).await
        }
        Command::Completion { .. } | Command::Complete { .. } => Ok(()),
    }
}

fn format_of(o: cli::ResultOutput) -> render::Format {
    match o {
        cli::ResultOutput::Json => render::Format::Json,
        cli::ResultOutput::Yaml => render::Format::Yaml,
    }
}
