//! kubectl-bluegreen: safe blue/green releases for plain Deployments and Services.
//!
//! One command, one path through these modules:
//!
//! ```text
//! main ─ cli (flags → one validated Request) ─ run
//!   read verbs:  cmd/<verb>: observe → model → render
//!   write verbs: pipeline: observe → plan (pure) → lease → apply → verify
//!                                                   │        └ waits are plan steps
//!                                                   └ re-plan on a tripped guard
//! ```
//!
//! - `connect` builds the client the way kubectl does; `env` holds it with the output,
//!   the clock and the host (tests inject all three);
//! - `observe` reads the cluster into a `Snapshot`; `model` turns it into apps (pure);
//!   `facts` decides the predicates model, plan and verify share;
//! - `plan` makes the guarded steps of a write (pure, one planner per verb); `apply`
//!   performs them; `verify` waits on watches; `lease` is the app's lock;
//! - `render` writes tables and documents from the model and from plans.

pub mod apply;
pub mod cli;
pub mod cmd;
pub mod connect;
pub mod env;
pub mod error;
pub mod facts;
pub mod lease;
pub mod model;
pub mod observe;
pub mod pipeline;
pub mod plan;
pub mod progress;
pub mod render;
pub mod request;
#[cfg(test)]
mod testutil;
pub mod verify;

use env::{Env, Io};
use error::Result;
use request::{Request, Verb};

/// Runs one request in this process, writing to stdout.
pub async fn run(request: Request) -> Result<()> {
    run_with(request, Io::process()).await
}

/// Runs one request with the given output, clock and host (tests capture and fix them).
pub async fn run_with(request: Request, mut io: Io) -> Result<()> {
    // These need no cluster.
    match &request.verb {
        Verb::Completion { shell } => {
            cmd::completion::generate(*shell, &mut io.out);
            return Ok(());
        }
        Verb::Complete { words } => {
            let text = cmd::completion::complete(words).await;
            io.out.write_all(text.as_bytes())?;
            return Ok(());
        }
        Verb::Version {
            client_only: true,
            output,
        } => return cmd::version::run(None, &mut io.out, *output).await,
        _ => {}
    }
    let conn = connect::connect(&request.connection).await?;
    let server = conn.server.clone();
    let proxy = conn.proxy.clone();
    let mut env = Env::new(conn, io, request.verb.machine_output());
    let outcome = run_verb(&mut env, request.verb).await;
    // Said the way kubectl says it: the user's first question is which server (and, through
    // a proxy, whether it was the proxy that failed).
    outcome.map_err(|e| match (&proxy, e.is_connection_refused(), e.connect_failure()) {
        (None, true, _) => error::Error::Lost(format!(
            "the connection to the server {server} was refused - did you specify the right host or port? ({e})"
        )),
        (Some(proxy), true, _) => error::Error::Lost(format!(
            "the connection to the proxy {proxy} (for the server {server}) was refused - check HTTPS_PROXY or the kubeconfig's proxy-url ({e})"
        )),
        (None, false, Some(why)) => {
            error::Error::Lost(format!("unable to connect to the server {server}: {why}"))
        }
        (Some(proxy), false, Some(why)) => error::Error::Lost(format!(
            "unable to connect to the server {server} through the proxy {proxy}: {why}"
        )),
        (_, false, None) => e,
    })
}

async fn run_verb(env: &mut Env, verb: Verb) -> Result<()> {
    match verb {
        Verb::Status {
            target,
            output,
            watch,
        } => cmd::status::run(env, &target, output, watch).await,
        Verb::List {
            all_namespaces,
            selector,
            output,
        } => cmd::list::run(env, all_namespaces, selector.as_deref(), output).await,
        Verb::History { app, output } => cmd::history::run(env, &app, output).await,
        Verb::Write {
            target,
            intent,
            options,
        } => pipeline::run(env, &target, &intent, &options).await,
        Verb::Wait {
            app,
            until,
            timeout,
        } => cmd::wait::run(env, &app, until, timeout).await,
        Verb::Version { output, .. } => {
            let Env { out, conn, .. } = env;
            cmd::version::run(Some(conn), out, output).await
        }
        Verb::Completion { .. } | Verb::Complete { .. } => Ok(()),
    }
}

use std::io::Write as _;
