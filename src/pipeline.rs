//! The write pipeline that set-image, promote, abort and init all run, read top to bottom:
//!
//! 1. **observe** the namespace and **plan** (`plan::plan`, pure): a refusal stops here,
//!    before any lock or write;
//! 2. with `--dry-run=client`, print the plan and stop;
//! 3. take the app's **Lease** (not for `--dry-run=server`, which writes nothing);
//! 4. **apply** the plan (its waits run `verify`); after a 409, observe and plan again,
//!    a bounded number of times;
//! 5. release the Lease and print the summary or result document.
//!
//! Ctrl-C at any point releases the Lease and says what was done (exit 130). `-l`
//! runs the pipeline once per matching app and ends with a results table.

use crate::apply::{Applier, StepResult};
use crate::env::Env;
use crate::error::{Error, Reason, Result};
use crate::lease::{self, Holder};
use crate::model;
use crate::observe::{self, Scope, Snapshot};
use crate::plan::{self, Actor, Intent, Plan};
use crate::progress::Progress;
use crate::render::plan::{self as show, AppResult};
use crate::request::{DryRun, Target, WriteOptions};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, PostParams};
use std::sync::{Arc, Mutex};

/// Re-plans after a 409 at most this many times.
const REPLANS: usize = 3;

/// Runs a mutating command on its target: one app, or each app a selector matches.
pub async fn run(
    env: &mut Env,
    target: &Target,
    intent: &Intent,
    options: &WriteOptions,
) -> Result<()> {
    match target {
        Target::App(name) => {
            let text = run_one(env, name, intent, options).await?;
            env.print(&text)?;
            Ok(())
        }
        Target::Selector(selector) => run_selected(env, selector, intent, options).await,
    }
}

/// The pipeline for one app (or, for init, one Service); returns what to print.
async fn run_one(
    env: &mut Env,
    name: &str,
    intent: &Intent,
    options: &WriteOptions,
) -> Result<String> {
    let namespace = env.conn.namespace.clone();
    let actor = Actor {
        user: whoami(env).await,
        now: env.timestamp(),
    };

    // 1. Observe and plan: refusals come before any lock or write.
    let first = plan::plan(intent, &observe(env).await?, &namespace, name, &actor)?;

    // 2. A client dry run prints the plan and sends nothing.
    if options.dry_run == DryRun::Client {
        return match options.output {
            Some(format) => show::result_document(&first, DryRun::Client, &[], format),
            None => Ok(show::plan_text(&first)),
        };
    }

    // 3. The Lease, so that a second operator is told who is working on the app.
    let lease = match options.dry_run {
        DryRun::None => {
            let me = Holder::new(&actor.user, &env.host, env.pid, env.now);
            Some(lease::acquire(&env.conn.client, &namespace, name, &me).await?)
        }
        DryRun::Server | DryRun::Client => None,
    };

    // 4. Apply, re-planning from a fresh observation after a conflict.
    let progress = Progress::new(env.tty_err, options.output.is_some());
    let done: Arc<Mutex<Vec<StepResult>>> = Arc::default();
    let applier = Applier {
        client: &env.conn.client,
        namespace: &namespace,
        dry_run: options.dry_run == DryRun::Server,
        timeout: options.timeout,
        progress: &progress,
        done: done.clone(),
        now: env.now,
        host: &env.host,
    };
    let work = async {
        let mut attempt = 0;
        loop {
            let plan = plan::plan(intent, &observe(env).await?, &namespace, name, &actor)?;
            match applier.run(&plan.steps).await {
                Ok(()) => return Ok(plan),
                Err(Error::Conflict(Reason::Conflict, msg)) if attempt < REPLANS => {
                    attempt += 1;
                    tracing::info!(attempt, %msg, "conflict: re-reading and re-planning");
                    progress.update(&format!("{msg}: re-reading and re-planning"));
                }
                Err(e) => return Err(e),
            }
        }
    };
    let outcome: Result<Plan> = tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(interrupted(&done)),
    };
    progress.finish();

    // 5. Release and report.
    if let Some(lease) = lease {
        lease.release().await;
    }
    let plan = outcome?;
    let results = done.lock().unwrap_or_else(|e| e.into_inner()).clone();
    match options.output {
        Some(format) => show::result_document(&plan, options.dry_run, &results, format),
        None => Ok(show::summary(&plan, options.dry_run, &results)),
    }
}

/// `-l SELECTOR`: each matching app through the pipeline on its own, then a table (or a
/// `ResultList`); the worst exit code wins.
async fn run_selected(
    env: &mut Env,
    selector: &str,
    intent: &Intent,
    options: &WriteOptions,
) -> Result<()> {
    let scope = Scope::Namespace(env.conn.namespace.clone());
    let (snap, matching) = observe::snapshot_selecting(
        &env.conn.client,
        &scope,
        Some(selector),
        env.conn.request_timeout,
    )
    .await?;
    let matching = matching.unwrap_or_default();
    let names: Vec<String> = model::build(&snap)
        .into_iter()
        .filter(|a| {
            a.services
                .iter()
                .any(|s| matching.contains(&(a.namespace.clone(), s.name.clone())))
        })
        .map(|a| a.name)
        .collect();
    if names.is_empty() {
        return Err(Error::NotFound(
            Reason::AppNotFound,
            format!(
                "no app in namespace {} has a Service matching {selector}",
                env.conn.namespace
            ),
        ));
    }
    let mut results = Vec::new();
    for name in &names {
        let outcome = run_one(env, name, intent, options).await;
        if options.output.is_none()
            && let Ok(text) = &outcome
        {
            env.print(text)?;
        }
        results.push(AppResult::of(name, &outcome));
    }
    env.print(&show::selected(&results, options.output)?)?;
    match show::selected_error(&results) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Reads the namespace the command acts in (fresh: preconditions of writes are checked
/// against it).
async fn observe(env: &Env) -> Result<Snapshot> {
    observe::snapshot(
        &env.conn.client,
        &Scope::Namespace(env.conn.namespace.clone()),
        env.conn.request_timeout,
    )
    .await
}

/// The authenticated user (SelfSubjectReview), else the kubeconfig's user name.
async fn whoami(env: &Env) -> String {
    let api: Api<SelfSubjectReview> = Api::all(env.conn.client.clone());
    match api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
    {
        Ok(r) => r
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| env.conn.kubeconfig_user.clone()),
        Err(e) => {
            tracing::debug!(error = %e, "SelfSubjectReview failed; using the kubeconfig user");
            env.conn.kubeconfig_user.clone()
        }
    }
}

/// Ctrl-C: what was done so far, and that a re-run finishes it.
fn interrupted(done: &Mutex<Vec<StepResult>>) -> Error {
    let finished: Vec<String> = done
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|s| s.step.clone())
        .collect();
    Error::Interrupted(format!(
        "interrupted; done so far: {}. Re-run the same command to finish",
        if finished.is_empty() {
            "nothing".to_string()
        } else {
            finished.join("; ")
        }
    ))
}
