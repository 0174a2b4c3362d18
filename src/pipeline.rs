//! The write pipeline that set-image, promote, abort and init all run, read top to bottom:
//!
//! 1. **observe** the namespace and **plan** (`plan::plan`, pure): a refusal stops here,
//!    before any lock or write;
//! 2. with `--dry-run=client`, print the plan and stop;
//! 3. take the app's **Lease** (not for `--dry-run=server`, which writes nothing),
//!    recording the **pin**: the target the first plan chose;
//! 4. **apply** the plan (its waits run `verify`); after a tripped guard (409) or a
//!    `Replan` step, observe and plan again — every new plan must keep the pin, and a
//!    change made meanwhile by another hand stops the command (exit 5), never reverses it;
//! 5. release the Lease and print the summary or result document. A failure after
//!    traffic moved is reported as such (exit 8: where each Service points, what
//!    finishes or reverts it, and a `PartialSwitch` Event).
//!
//! Ctrl-C at any point releases the Lease and says what was done (exit 130). `-l`
//! runs the pipeline once per matching app and ends with a results table.

use crate::apply::{Applied, Applier, StepResult};
use crate::env::Env;
use crate::error::{Error, Reason, Result};
use crate::lease::{self, Holder};
use crate::model;
use crate::observe::{self, Query, Reader, Scope, Snapshot};
use crate::plan::{self, Action, Actor, Intent, Plan};
use crate::progress::Progress;
use crate::render::plan::{self as show, AppResult};
use crate::request::{DryRun, Target, WriteOptions};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use std::sync::{Arc, Mutex};

/// Re-plans after a 409 at most this many times.
const REPLANS: usize = 3;
/// Plans that end in a `Replan` step (a wait before a switch), at most.
const MAX_REPLANS: usize = 5;

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
    let seen = observe(env, name, Some(intent)).await?;
    let first = plan::plan(intent, &seen, &namespace, name, &actor)?;
    if !options.allow_gitops {
        refuse_gitops_owner(&seen, &namespace, name, options)?;
    }

    // 2. A client dry run prints the plan and sends nothing.
    if options.dry_run == DryRun::Client {
        return match options.output {
            Some(format) => show::result_document(&first, DryRun::Client, &[], format),
            None => Ok(show::plan_text(&first)),
        };
    }

    // 3. The Lease, so that a second operator is told who is working on the app; it
    //    records the pin, so that a re-run after a crash keeps the crashed run's target.
    let pin = Pin::of(&first, &seen, &namespace, name);
    let lease = match options.dry_run {
        DryRun::None => {
            let me = Holder::new(&actor.user, &env.host, env.pid, env.now);
            let guard =
                lease::acquire(&env.conn.client, &namespace, name, &me, &pin.encode()).await?;
            if let Some(earlier) = guard.previous_intent.as_deref().and_then(Pin::decode)
                && let Err(e) = earlier.still_holds(&pin)
            {
                guard.release().await;
                return Err(e);
            }
            Some(guard)
        }
        DryRun::Server | DryRun::Client => None,
    };

    // 4. Apply, re-planning from a fresh observation after a conflict.
    let progress = Progress::new(env.tty_err, options.output.is_some());
    let done: Arc<Mutex<Vec<StepResult>>> = Arc::default();
    let countdown: Arc<std::sync::atomic::AtomicBool> = Arc::default();
    let applier = Applier {
        client: &env.conn.client,
        probe: &env.conn.probe,
        server: &env.conn.server,
        namespace: &namespace,
        dry_run: options.dry_run == DryRun::Server,
        timeout: options.timeout,
        progress: &progress,
        done: done.clone(),
        now: env.now,
        host: &env.host,
        fence: lease.as_ref(),
        countdown: countdown.clone(),
    };
    let work = async {
        let (mut conflicts, mut replans) = (0, 0);
        loop {
            let snap = observe(env, name, Some(intent)).await?;
            // Another hand's change is told as such before the planner sees the state
            // it left (which it might refuse for a reason of its own).
            pin.check_state(&snap, &namespace, name, &done)?;
            let plan = plan::plan(intent, &snap, &namespace, name, &actor)?;
            pin.check_target(&plan)?;
            match applier.run(&plan.steps).await {
                Ok(Applied::Done | Applied::KeptOld) => return Ok(plan),
                Ok(Applied::Replan) if replans < MAX_REPLANS => replans += 1,
                Ok(Applied::Replan) => {
                    return Err(Error::Other(format!(
                        "gave up after {MAX_REPLANS} plans that each asked for another"
                    )));
                }
                Err(Error::Conflict(Reason::Conflict, msg)) if conflicts < REPLANS => {
                    conflicts += 1;
                    tracing::info!(conflicts, %msg, "conflict: re-reading and re-planning");
                    progress.update(&format!("{msg}: re-reading and re-planning"));
                }
                Err(e) => return Err(e),
            }
        }
    };
    let outcome: Result<Plan> = {
        tokio::pin!(work);
        loop {
            tokio::select! {
                r = &mut work => break r,
                _ = tokio::signal::ctrl_c() => {
                    // The countdown takes this Ctrl-C: it keeps the old slot.
                    if countdown.load(std::sync::atomic::Ordering::SeqCst) {
                        continue;
                    }
                    break Err(interrupted(&done));
                }
            }
        }
    };
    progress.finish();

    // A regression during the bake: revert on the abort path (guarded, verified), then
    // report it as reverted (exit 9).
    if let Err(Error::BakeFailed(why)) = &outcome {
        let why = why.clone();
        progress.finish();
        let back = Intent::Abort(plan::AbortRequest {
            keep: false,
            settle: None,
            reason: Some(why.clone()),
        });
        let reverted = Box::pin(run_one(env, name, &back, options)).await;
        if let Some(lease) = lease {
            lease.release().await;
        }
        return Err(match reverted {
            Ok(summary) => Error::Reverted(format!(
                "the bake found a regression ({why}) and reverted it: {}",
                summary.trim_end()
            )),
            Err(e) => Error::PartiallySwitched(format!(
                "the bake found a regression ({why}), and reverting it failed: {e}; run `kubectl bluegreen abort {name}`"
            )),
        });
    }

    // 5. Release and report; a failure after traffic moved says where it stands.
    let outcome = match outcome {
        Err(e) if switched_services(&done).is_empty() => Err(e),
        Err(e @ (Error::NotConverged(_) | Error::Interrupted(_) | Error::Reverted(_))) => Err(e),
        Err(e) => Err(after_switch(env, name, &first, &done, e).await),
        ok => ok,
    };
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
    // Which apps: their names come from the Services alone; each app is then read on
    // its own, fresh, by the pipeline.
    let reader = Reader::new(&env.conn.client, env.conn.request_timeout);
    let (services, matching) = tokio::try_join!(
        reader.list::<Service>(&scope, Query::default()),
        reader.matching_services(&scope, selector)
    )?;
    let snap = Snapshot {
        services,
        ..Snapshot::default()
    };
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

/// Reads the app's objects (fresh and whole: preconditions of writes are checked against
/// them, and the write side copies Deployments).
async fn observe(env: &Env, name: &str, intent: Option<&Intent>) -> Result<Snapshot> {
    // init leaves the color key it adopts with out of the pod labels it reads by.
    let color_label = match intent {
        Some(Intent::Init(req)) => req.color_label.as_deref(),
        _ => None,
    };
    let reader =
        Reader::new(&env.conn.client, env.conn.request_timeout).with_hints(env.hints.as_ref());
    observe::app(&reader, &env.conn.namespace, name, color_label).await
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

/// A GitOps tool that owns the app would put back what the release changes: refuse
/// (exit 4) and say exactly what makes it leave our fields alone, unless
/// `--allow-gitops`.
fn refuse_gitops_owner(
    snap: &Snapshot,
    namespace: &str,
    name: &str,
    options: &WriteOptions,
) -> Result<()> {
    let owner = match model::find_app(snap, namespace, name) {
        Ok(app) => app.owner,
        // init: the Service is not an app yet.
        Err(_) => snap
            .services
            .iter()
            .find(|s| {
                s.metadata.namespace.as_deref() == Some(namespace)
                    && s.metadata.name.as_deref() == Some(name)
            })
            .and_then(|s| model::gitops_owner(&[s])),
    };
    let Some(owner) = owner else {
        return Ok(());
    };
    if options.dry_run == DryRun::Client {
        return Ok(());
    }
    let remedy = match owner.tool {
        "ArgoCD" => format!(
            "add to the Argo CD Application `spec.ignoreDifferences: [{{group: \"\", kind: Service, name: {name}, managedFieldsManagers: [kubectl-bluegreen]}}, {{group: apps, kind: Deployment, managedFieldsManagers: [kubectl-bluegreen]}}]` and `spec.syncPolicy.syncOptions: [RespectIgnoreDifferences=true]`"
        ),
        "Flux" => format!(
            "stop Flux from reverting it: `kubectl annotate service {name} kustomize.toolkit.fluxcd.io/reconcile=disabled` (and the same on the slot Deployments), or leave the color out of the manifests in Git"
        ),
        _ => "leave the color label out of the chart's Service selector and slot Deployments' replicas/images (or template them from values you keep in step), since `helm upgrade` puts back what the chart declares".to_string(),
    };
    Err(Error::Precondition(
        Reason::GitOpsOwned,
        format!(
            "{} owns this app ({}) and would revert {}: {remedy}; or pass --allow-gitops to proceed (a revert is then caught and reported, exit 9)",
            owner.tool,
            owner.evidence,
            owner.fields.join(", ")
        ),
    ))
}

/// What a command decided at its first observation; every later plan must keep it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Pin {
    action: Action,
    /// The color traffic is to end on (promote, abort), or the slot set-image writes.
    to: Option<String>,
    /// The target slot's revision then: a re-imaged target is not the one decided on.
    to_revision: Option<String>,
    /// Where each of the app's active Services pointed.
    services: std::collections::BTreeMap<String, Option<String>>,
}

impl Pin {
    fn of(plan: &Plan, snap: &Snapshot, namespace: &str, name: &str) -> Pin {
        let app = model::find_app(snap, namespace, name).ok();
        Pin {
            action: plan.action,
            to: plan.to.clone(),
            to_revision: app.as_ref().and_then(|a| {
                let to = plan.to.as_deref()?;
                a.slots.iter().find(|s| s.color == to)?.revision.clone()
            }),
            services: app
                .iter()
                .flat_map(|a| a.services.iter())
                .map(|s| (s.name.clone(), s.color.clone()))
                .collect(),
        }
    }

    fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn decode(s: &str) -> Option<Pin> {
        serde_json::from_str(s).ok()
    }

    /// A crashed run of the same command left this pin: does the new run keep it?
    fn still_holds(&self, now: &Pin) -> Result<()> {
        let moves_traffic = matches!(self.action, Action::Promote | Action::Abort);
        if self.action == now.action && moves_traffic && self.to != now.to {
            return Err(Error::Conflict(
                Reason::ChangedMeanwhile,
                format!(
                    "an interrupted {} of this app was switching traffic to {}; it would now go to {} instead (the slots changed meanwhile): check `kubectl bluegreen status`, then run the command again to act on what is there now",
                    self.action,
                    self.to.as_deref().unwrap_or("?"),
                    now.to.as_deref().unwrap_or("?"),
                ),
            ));
        }
        Ok(())
    }

    /// A re-plan keeps the target's revision, and Services that only this command moved;
    /// anything else is another hand's change (exit 5).
    fn check_state(
        &self,
        snap: &Snapshot,
        namespace: &str,
        name: &str,
        done: &Mutex<Vec<StepResult>>,
    ) -> Result<()> {
        let changed = |what: String| Err(Error::Conflict(Reason::ChangedMeanwhile, what));
        let moves_traffic = matches!(self.action, Action::Promote | Action::Abort);
        // Say what another hand changed, where that can be told: a re-imaged target,
        // or a Service switched by someone else.
        if moves_traffic && let Ok(app) = model::find_app(snap, namespace, name) {
            if let Some(to) = &self.to
                && let Some(slot) = app.slots.iter().find(|s| &s.color == to)
                && slot.revision != self.to_revision
            {
                return changed(format!(
                    "slot {to} ({}) was changed meanwhile (revision {} → {}): traffic is not switched to a version nobody checked",
                    slot.deployment,
                    self.to_revision.as_deref().unwrap_or("?"),
                    slot.revision.as_deref().unwrap_or("?"),
                ));
            }
            let ours = switched_services(done);
            for svc in &app.services {
                let before = self.services.get(&svc.name).cloned().flatten();
                let moved_by_us = ours.contains(&svc.name) && svc.color == self.to;
                if svc.color != before && !moved_by_us {
                    return changed(format!(
                        "Service {} was switched from {} to {} meanwhile by {}: stopped without overwriting it",
                        svc.name,
                        before.as_deref().unwrap_or("(none)"),
                        svc.color.as_deref().unwrap_or("(none)"),
                        svc.selector_manager.as_deref().unwrap_or("another client"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The new plan goes where the first one went.
    fn check_target(&self, plan: &Plan) -> Result<()> {
        let changed = |what: String| Err(Error::Conflict(Reason::ChangedMeanwhile, what));
        if plan.to != self.to {
            return changed(format!(
                "the app changed while this {} was running: it would now go to {} instead of {}; stopped without reversing anything (`kubectl bluegreen status` shows where it stands)",
                self.action,
                plan.to.as_deref().unwrap_or("nothing"),
                self.to.as_deref().unwrap_or("nothing"),
            ));
        }
        Ok(())
    }
}

/// The Services whose selectors this command wrote.
fn switched_services(done: &Mutex<Vec<StepResult>>) -> Vec<String> {
    done.lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter_map(|r| r.switched.clone())
        .collect()
}

/// A failure after this command moved traffic: where each Service points now, what
/// finishes or reverts it, a `PartialSwitch` Event (best effort), exit 8.
async fn after_switch(
    env: &Env,
    name: &str,
    first: &Plan,
    done: &Mutex<Vec<StepResult>>,
    cause: Error,
) -> Error {
    let namespace = &env.conn.namespace;
    let state = match observe(env, name, None).await {
        Ok(snap) => model::find_app(&snap, namespace, name).ok(),
        Err(_) => None,
    };
    // Every Service where the plan put it (active on the target, the preview Service on
    // the other slot): the switch itself is complete, the failure came after it.
    if let (Some(app), Some(to)) = (&state, &first.to)
        && app.services.iter().all(|s| s.color.as_ref() == Some(to))
        && app
            .preview_service
            .as_ref()
            .is_none_or(|p| !p.exists || first.from.is_none() || p.color == first.from)
    {
        return cause;
    }
    let where_ = state
        .as_ref()
        .map(|app| {
            let mut parts: Vec<String> = app
                .services
                .iter()
                .map(|s| format!("{} → {}", s.name, s.color.as_deref().unwrap_or("(none)")))
                .collect();
            if let Some(p) = &app.preview_service {
                parts.push(format!(
                    "{} (preview) → {}",
                    p.name,
                    p.color.as_deref().unwrap_or("(none)")
                ));
            }
            parts.join(", ")
        })
        .unwrap_or_else(|| format!("switched so far: {}", switched_services(done).join(", ")));
    let message = match first.action {
        Action::Promote => format!(
            "traffic was moved, then the promote failed: {cause}. Now: {where_}. `kubectl bluegreen promote {name}` finishes it, `kubectl bluegreen abort {name}` reverts it"
        ),
        action => format!(
            "traffic was moved, then the {action} failed: {cause}. Now: {where_}. Re-run `kubectl bluegreen {action} {name}` to finish it"
        ),
    };
    if let Some(app) = &state
        && let Some(svc) = app.services.first()
    {
        let event = plan::Step::CreateEvent {
            service: svc.name.clone(),
            service_uid: svc.uid.clone(),
            event_type: "Warning".into(),
            reason: "PartialSwitch".into(),
            message: message.clone(),
            unless_recorded: None,
        };
        let progress = Progress::new(false, true);
        let applier = Applier {
            client: &env.conn.client,
            probe: &env.conn.probe,
            server: &env.conn.server,
            namespace,
            dry_run: false,
            timeout: std::time::Duration::from_secs(5),
            progress: &progress,
            done: Arc::default(),
            now: env.now,
            host: &env.host,
            fence: None,
            countdown: Arc::default(),
        };
        let _ = applier.run(std::slice::from_ref(&event)).await;
    }
    Error::PartiallySwitched(message)
}
