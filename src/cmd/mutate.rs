//! What every mutating command shares: who is acting, the app's Lease, observe → plan →
//! apply with a bounded re-plan on 409, `--dry-run=client|server`, Ctrl-C, and the
//! result (a summary line, or a result object with `-o json|yaml`).

use crate::apply::{Applier, DryRun, StepResult};
use crate::cli::{DryRunMode, MutateOpts, ResultOutput};
use crate::cmd;
use crate::env::Env;
use crate::error::{Error, Result};
use crate::lease;
use crate::model::{self, App};
use crate::observe::{self, Scope, Snapshot};
use crate::plan::{Actor, Outcome, Plan};
use crate::progress::Progress;
use crate::render::{self, Format};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::{Api, PostParams};
use serde::Serialize;
use std::sync::{Arc, Mutex};

/// Re-plans after a 409 at most this many times.
const REPLANS: usize = 3;

/// The authenticated user (SelfSubjectReview), else the kubeconfig's user name.
pub async fn whoami(env: &Env) -> String {
    let api: Api<SelfSubjectReview> = Api::all(env.conn.client.clone());
    let review = SelfSubjectReview::default();
    match api.create(&PostParams::default(), &review).await {
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

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultDoc<'a> {
    api_version: &'static str,
    kind: &'static str,
    dry_run: &'static str,
    #[serde(flatten)]
    plan: &'a Plan,
    results: Vec<StepResult>,
}

fn dry_run_name(d: DryRunMode) -> &'static str {
    match d {
        DryRunMode::None => "none",
        DryRunMode::Client => "client",
        DryRunMode::Server => "server",
    }
}

/// The plan as `--dry-run=client` prints it: preconditions, then numbered steps with
/// their exact bodies.
pub fn render_plan(plan: &Plan) -> String {
    let arrow = match (&plan.from, &plan.to) {
        (Some(f), Some(t)) if f != t => format!(" ({f} → {t})"),
        (_, Some(t)) => format!(" ({t})"),
        _ => String::new(),
    };
    let mut out = format!(
        "Plan: {} {}{arrow} in namespace {}\n",
        plan.action, plan.app, plan.namespace
    );
    if plan.outcome == Outcome::Finish {
        out.push_str("Already switched: only the remaining steps are planned.\n");
    }
    out.push_str("Preconditions checked:\n");
    for p in &plan.preconditions {
        out.push_str(&format!("  ✓ {p}\n"));
    }
    out.push_str("Steps:\n");
    if plan.steps.is_empty() {
        out.push_str("  (none: nothing to do)\n");
    }
    for (i, s) in plan.steps.iter().enumerate() {
        out.push_str(&format!("  {}. {}\n", i + 1, s.describe()));
        let body = match s {
            crate::plan::Step::PatchDeployment { patch, .. }
            | crate::plan::Step::ScaleDeployment { patch, .. }
            | crate::plan::Step::PatchService { patch, .. } => Some(patch),
            crate::plan::Step::CreateDeployment { body, .. } => Some(body),
            _ => None,
        };
        if let Some(b) = body {
            out.push_str(&format!(
                "     {}\n",
                serde_json::to_string(b).unwrap_or_default()
            ));
        }
    }
    out
}

/// Reads the namespace the command acts in.
async fn observe(env: &Env) -> Result<Snapshot> {
    observe::snapshot(
        &env.conn.client,
        &Scope::Namespace(env.conn.namespace.clone()),
        env.conn.request_timeout,
    )
    .await
}

/// Adapts an app planner to a snapshot planner: finds the app first (exit 3 if absent).
pub fn for_app<'a>(
    namespace: &'a str,
    name: &'a str,
    plan_for: impl Fn(&App, &Snapshot, &Actor) -> Result<Plan> + 'a,
) -> impl Fn(&Snapshot, &Actor) -> Result<Plan> + 'a {
    move |snap, actor| {
        let app = cmd::find_app(model::build(snap), snap, namespace, name)?;
        plan_for(&app, snap, actor)
    }
}

/// Runs a mutating command under the Lease of `lock` (the app's name): `plan_for` is
/// the verb's pure planner, re-run on a fresh snapshot after a 409.
pub async fn run(
    env: &mut Env,
    lock: &str,
    opts: &MutateOpts,
    plan_for: impl Fn(&Snapshot, &Actor) -> Result<Plan>,
) -> Result<()> {
    let user = whoami(env).await;
    let actor = || Actor {
        user: user.clone(),
        now: jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .map(|t| t.to_string())
            .unwrap_or_default(),
    };
    if opts.dry_run == DryRunMode::Client {
        let snap = observe(env).await?;
        let plan = plan_for(&snap, &actor())?;
        let text = match opts.output {
            Some(o) => render::document(
                &ResultDoc {
                    api_version: render::API_VERSION,
                    kind: "Plan",
                    dry_run: "client",
                    plan: &plan,
                    results: vec![],
                },
                format(o),
            )?,
            None => render_plan(&plan),
        };
        env.print(&text)?;
        return Ok(());
    }
    // Refusals come before any write: a plan that cannot be made takes no lock either.
    {
        let snap = observe(env).await?;
        plan_for(&snap, &actor())?;
    }
    let dry = if opts.dry_run == DryRunMode::Server {
        DryRun::Server
    } else {
        DryRun::None
    };
    let progress = Progress::new(env.tty_err, opts.output.is_some());
    let done: Arc<Mutex<Vec<StepResult>>> = Arc::new(Mutex::new(Vec::new()));
    let client = env.conn.client.clone();
    let ns = env.conn.namespace.clone();
    // A server dry run writes nothing, so it needs no lock.
    let guard = match dry {
        DryRun::None => {
            let host = hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "localhost".into());
            Some(
                lease::acquire(
                    &client,
                    &ns,
                    lock,
                    &format!("{user}@{host}/{}", std::process::id()),
                )
                .await?,
            )
        }
        DryRun::Server => None,
    };
    let work = async {
        let mut attempt = 0;
        loop {
            let snap = observe(env).await?;
            let plan = plan_for(&snap, &actor())?;
            let applier = Applier {
                client: &client,
                namespace: &ns,
                dry_run: dry,
                timeout: opts.timeout,
                progress: &progress,
                done: done.clone(),
            };
            match applier.run(&plan.steps).await {
                Ok(()) => return Ok(plan),
                Err(Error::Conflict(msg)) if attempt < REPLANS => {
                    attempt += 1;
                    tracing::info!(attempt, %msg, "conflict: re-reading and re-planning");
                    progress.update(&format!("{msg}: re-reading and re-planning"));
                }
                Err(e) => return Err(e),
            }
        }
    };
    let outcome = tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => {
            let finished: Vec<String> = done.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|s| s.step.clone()).collect();
            Err(Error::Interrupted(format!(
                "interrupted; done so far: {}. Re-run the same command to finish",
                if finished.is_empty() { "nothing".to_string() } else { finished.join("; ") }
            )))
        }
    };
    progress.finish();
    if let Some(g) = guard {
        g.release().await;
    }
    let plan = outcome?;
    let results = done.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let text = match opts.output {
        Some(o) => render::document(
            &ResultDoc {
                api_version: render::API_VERSION,
                kind: "Result",
                dry_run: dry_run_name(opts.dry_run),
                plan: &plan,
                results,
            },
            format(o),
        )?,
        None => summary(&plan, dry, &results),
    };
    env.print(&text)?;
    Ok(())
}

fn format(o: ResultOutput) -> Format {
    match o {
        ResultOutput::Json => Format::Json,
        ResultOutput::Yaml => Format::Yaml,
    }
}

fn summary(plan: &Plan, dry: DryRun, results: &[StepResult]) -> String {
    let arrow = match (&plan.from, &plan.to) {
        (Some(f), Some(t)) if f != t => format!(": {f} → {t}"),
        (_, Some(t)) => format!(": {t}"),
        _ => String::new(),
    };
    if dry == DryRun::Server {
        let mut out = format!(
            "{} {}{arrow} (server dry run: nothing was changed)\n",
            plan.action, plan.app
        );
        for r in results {
            out.push_str(&format!("  {} — {}\n", r.step, r.status));
            if let Some(w) = &r.would_store {
                out.push_str(&format!(
                    "    would store: {}\n",
                    serde_json::to_string(w).unwrap_or_default()
                ));
            }
        }
        return out;
    }
    let verb = match (plan.action, plan.outcome) {
        (a, Outcome::Finish) => format!(
            "{a} of {} was already done; finished the remaining steps",
            plan.app
        ),
        ("promote", _) => format!("promoted {}", plan.app),
        ("abort", _) => format!("aborted {}", plan.app),
        ("set-image", _) => format!(
            "new image(s) rolled out on the preview slot of {}",
            plan.app
        ),
        (a, _) => format!("{a} {}", plan.app),
    };
    format!("{verb}{arrow}\n")
}

/// `-l SELECTOR` on promote/abort: each app on its own, then a table; the worst code wins.
pub async fn run_selected(
    env: &mut Env,
    selector: &str,
    opts: &MutateOpts,
    plan_for: impl Fn(&App, &Snapshot, &Actor) -> Result<Plan> + Copy,
) -> Result<()> {
    let scope = Scope::Namespace(env.conn.namespace.clone());
    let matching =
        observe::matching_services(&env.conn.client, &scope, selector, env.conn.request_timeout)
            .await?;
    let snap = observe::snapshot_with(
        &env.conn.client,
        &scope,
        env.conn.request_timeout,
        observe::Detail::Lean,
    )
    .await?;
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
        return Err(Error::NotFound(format!(
            "no app in namespace {} has a Service matching {selector}",
            env.conn.namespace
        )));
    }
    let mut rows = Vec::new();
    let mut worst = 0u8;
    let ns = env.conn.namespace.clone();
    for name in &names {
        let r = run(env, name, opts, for_app(&ns, name, plan_for)).await;
        let (code, message) = match &r {
            Ok(()) => (0, "ok".to_string()),
            Err(e) => (e.exit_code(), e.to_string()),
        };
        worst = worst.max(code);
        rows.push(vec![
            name.clone(),
            if code == 0 {
                "ok".into()
            } else {
                format!("failed (exit {code})")
            },
            message,
        ]);
    }
    env.print(&format!(
        "\n{}",
        render::table(&["APP", "RESULT", "MESSAGE"], &rows)
    ))?;
    if worst != 0 {
        let failed = rows.iter().filter(|r| r[1] != "ok").count();
        return Err(Error::Worst {
            code: worst,
            message: format!("{failed} of {} apps failed", names.len()),
        });
    }
    Ok(())
}
