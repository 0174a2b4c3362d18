//! Performing a plan's steps in order; knows no verbs. Writes go out as planned (the
//! guards inside the bodies), with `dryRun=All` for `--dry-run=server`; waits call
//! `verify`. A tripped guard (409, or a failed JSON-patch `test`) comes back as
//! `Error::Conflict` so the pipeline can re-read and re-plan. Finished steps are recorded
//! as they complete, so an interrupted command can say exactly what it did.

use crate::env::Clock;
use crate::error::{Error, Reason, Result};
use crate::lease::LeaseGuard;
use crate::plan::{NotLive, Step, SwitchEvent};
use crate::progress::Progress;
use crate::verify;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Event, Service};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StepResult {
    pub step: String,
    pub status: &'static str,
    /// With `--dry-run=server`: the parts of the object the server would store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_store: Option<Value>,
    /// The Service whose selector this step wrote (traffic may have moved).
    #[serde(skip)]
    pub switched: Option<String>,
}

/// The name every write of the plugin carries, so that `managedFields` show which fields
/// it owns (and GitOps tools can be told to leave exactly those alone).
pub const FIELD_MANAGER: &str = "kubectl-bluegreen";

/// How a plan's steps ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Done,
    /// A `Replan` step: observe again and plan the rest.
    Replan,
    /// Ctrl-C during the `--scale-down-old` countdown, which its prompt invites: the
    /// release is complete and the old slot stays as it is.
    KeptOld,
}

pub struct Applier<'a> {
    pub client: &'a kube::Client,
    /// Without client-side retries, for checks through the API server's proxy.
    pub probe: &'a kube::Client,
    /// The API server's URL (for a lost connection during a wait).
    pub server: &'a str,
    pub namespace: &'a str,
    /// `--dry-run=server`: every write carries `dryRun=All`.
    pub dry_run: bool,
    pub timeout: Duration,
    pub progress: &'a Progress,
    /// Steps finished so far (shared with the Ctrl-C handler).
    pub done: Arc<Mutex<Vec<StepResult>>>,
    /// Event timestamps.
    pub now: Clock,
    /// Event source (`reportingInstance`).
    pub host: &'a str,
    /// The app's Lease, checked before every write (none in a server dry run).
    pub fence: Option<&'a LeaseGuard>,
    /// Set during the scale-down countdown, where Ctrl-C keeps the old slot rather than
    /// interrupting the command.
    pub countdown: Arc<std::sync::atomic::AtomicBool>,
}

/// A tripped guard is a conflict: a 409 (the resourceVersion moved), or a 422 on a JSON
/// patch that tests the generation (`tests_generation`: the API server answers a failed
/// `test` operation with 422 and a generic message, so the status and the patch kind
/// decide, not the text).
/// Writes are guarded, so a write answered 500/502/503/504 is retried (twice, after a
/// short pause): if the first attempt did land, the retry trips its guard (409) and the
/// pipeline re-plans from what the cluster shows.
async fn with_retry<T, F, Fut>(mut write: F) -> std::result::Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, kube::Error>>,
{
    let mut attempt = 0u64;
    loop {
        match write().await {
            Err(kube::Error::Api(s)) if matches!(s.code, 500 | 502 | 503 | 504) && attempt < 2 => {
                attempt += 1;
                tracing::info!(
                    code = s.code,
                    attempt,
                    "transient error on a write: retrying"
                );
                tokio::time::sleep(Duration::from_millis(300 * attempt)).await;
            }
            other => return other,
        }
    }
}

fn conflict_or(e: kube::Error, action: String, tests_generation: bool) -> Error {
    match &e {
        kube::Error::Api(s) if s.code == 409 => Error::Conflict(
            Reason::Conflict,
            format!(
                "{action}: the object changed since it was read ({})",
                s.message
            ),
        ),
        kube::Error::Api(s) if s.code == 422 && tests_generation => Error::Conflict(
            Reason::Conflict,
            format!("{action}: the Deployment's spec changed since it was read"),
        ),
        _ => Error::kube(action, e),
    }
}

/// A Deployment of the new slot's name exists: if it is shaped as the slot (another hand
/// created it meanwhile), a re-plan adopts it; else the name belongs to something else
/// (reads select the app's objects by label, so the planner may not have seen it).
async fn name_taken(
    deploys: &Api<Deployment>,
    name: &str,
    planned: &Deployment,
    status: kube::core::Status,
) -> Error {
    let labels = |d: &Deployment| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default()
    };
    let want = labels(planned);
    match deploys.get_opt(name).await {
        Ok(Some(existing))
            if want
                .iter()
                .all(|(k, v)| labels(&existing).get(k) == Some(v)) =>
        {
            Error::Conflict(
                Reason::Conflict,
                format!(
                    "create deployment {name}: it was created meanwhile ({})",
                    status.message
                ),
            )
        }
        _ => Error::Precondition(
            Reason::NameTaken,
            format!(
                "deployment {name} already exists but is not a slot of this app: rename it or pass --color"
            ),
        ),
    }
}

/// An Event's name as client-go's recorder makes it (`<object>.<hex nanoseconds>`, so
/// names sort by time), plus a per-process sequence number: two Events of one command
/// never collide, even on a fixed clock.
fn event_name(object: &str, now: jiff::Timestamp) -> String {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{object}.{:x}{seq:02x}", now.as_nanosecond())
}

/// The start of an answer's body, on one line.
fn excerpt(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// What the server would store, trimmed to what the step changes.
fn summary_of_service(s: &Service) -> Value {
    json!({"selector": s.spec.as_ref().and_then(|x| x.selector.clone()), "annotations": s.metadata.annotations})
}

fn summary_of_deployment(d: &Deployment) -> Value {
    let spec = d.spec.as_ref();
    json!({
        "replicas": spec.and_then(|s| s.replicas),
        "images": spec.and_then(|s| s.template.spec.as_ref()).map(|p| p.containers.iter().map(|c| json!({"name": c.name, "image": c.image})).collect::<Vec<_>>()),
        "generation": d.metadata.generation,
    })
}

impl Applier<'_> {
    fn at(&self) -> verify::At<'_> {
        verify::At {
            client: self.client,
            server: self.server,
            namespace: self.namespace,
        }
    }

    /// Whether the Event of `switch`, with `reason`, is on the Service.
    async fn event_recorded(&self, service: &str, reason: &str, switch: &SwitchEvent) -> bool {
        let Ok(since) = switch.since.parse::<jiff::Timestamp>() else {
            return false;
        };
        // The words end there or go on after a space: "… to blue" is not "… to blue2".
        let of_this_switch = |message: &str| {
            message
                .strip_prefix(switch.words.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(' '))
        };
        let events: Api<Event> = Api::namespaced(self.client.clone(), self.namespace);
        let params = kube::api::ListParams::default()
            .fields(&format!("involvedObject.name={service},reason={reason}"));
        match events.list(&params).await {
            Ok(list) => list.items.iter().any(|e| {
                e.first_timestamp
                    .as_ref()
                    .or(e.last_timestamp.as_ref())
                    .is_some_and(|t| t.0.as_second() >= since.as_second())
                    && e.message.as_deref().is_some_and(of_this_switch)
            }),
            // Cannot tell: record it (a duplicate Event is harmless).
            Err(_) => false,
        }
    }

    /// One GET through the API server's proxy: the status and the body (or the error).
    async fn probe_once(&self, proxy: &str, path: &str) -> (u16, String) {
        let uri = format!("{proxy}{path}");
        let request = match http::Request::get(&uri).body(kube::client::Body::from(Vec::new())) {
            Ok(r) => r,
            Err(e) => return (0, e.to_string()),
        };
        match self.probe.send(request).await {
            Ok(response) => {
                let code = response.status().as_u16();
                let body = match response.into_body().collect_bytes().await {
                    Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                    Err(e) => e.to_string(),
                };
                (code, body)
            }
            Err(e) => (0, e.to_string()),
        }
    }

    /// The bake: record it on the state Service (so a re-run resumes it), then watch the
    /// live slot until `until` — restarts, readiness, checks through the active Service.
    #[allow(clippy::too_many_arguments)]
    async fn bake(
        &self,
        service: &str,
        deployment: &str,
        color: &str,
        until: &str,
        replicas: i32,
        targets: &[crate::plan::ProxyTarget],
        spec: Option<&crate::plan::CheckSpec>,
    ) -> Result<()> {
        let services: Api<Service> = Api::namespaced(self.client.clone(), self.namespace);
        let pods: Api<k8s_openapi::api::core::v1::Pod> =
            Api::namespaced(self.client.clone(), self.namespace);
        let deploys: Api<Deployment> = Api::namespaced(self.client.clone(), self.namespace);
        let state = Some(service.to_string());
        let record = crate::model::BakeRecord {
            color: color.to_string(),
            until: until.to_string(),
            checks: spec.cloned(),
        };
        if let Some(svc) = &state {
            let patch = json!({"metadata": {"annotations": {crate::model::BAKE_ANNOTATION: serde_json::to_string(&record).unwrap_or_default()}}});
            let body = Patch::Merge(&patch);
            let params = self.params();
            with_retry(|| services.patch(svc, &params, &body))
                .await
                .map_err(|e| Error::kube(format!("patch service {svc}"), e))?;
        }
        // How long is left, on the wall clock once, then on the monotonic clock.
        let left = until
            .parse::<jiff::Timestamp>()
            .ok()
            .map(|u| u.as_second() - (self.now)().as_second())
            .unwrap_or(0)
            .max(0) as u64;
        let end = tokio::time::Instant::now() + Duration::from_secs(left);
        let d = deploys
            .get(deployment)
            .await
            .map_err(|e| Error::kube(format!("read deployment {deployment}"), e))?;
        let selector = d
            .spec
            .and_then(|s| s.selector.match_labels)
            .unwrap_or_default()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let restarts = |list: &[k8s_openapi::api::core::v1::Pod]| -> i64 {
            list.iter()
                .flat_map(|p| {
                    p.status
                        .iter()
                        .flat_map(|s| s.container_statuses.iter().flatten())
                })
                .map(|c| i64::from(c.restart_count))
                .sum()
        };
        let list = kube::api::ListParams::default().labels(&selector);
        let baseline = restarts(
            &pods
                .list(&list)
                .await
                .map_err(|e| Error::kube("list pods", e))?
                .items,
        );
        let interval = Duration::from_millis(spec.map_or(1000, |s| s.interval_ms.max(100)));
        while tokio::time::Instant::now() < end {
            let secs = end
                .saturating_duration_since(tokio::time::Instant::now())
                .as_secs();
            self.progress
                .update(&format!("baking {deployment}: {secs}s left"));
            let now = pods
                .list(&list)
                .await
                .map_err(|e| Error::kube("list pods", e))?
                .items;
            let ready = now
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter(|p| {
                    p.status
                        .as_ref()
                        .and_then(|s| s.conditions.as_ref())
                        .is_some_and(|cs| {
                            cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                })
                .count() as i32;
            let regression = if restarts(&now) > baseline {
                Some(format!(
                    "a container of {deployment} restarted ({} restarts since the bake began)",
                    restarts(&now) - baseline
                ))
            } else if ready < replicas {
                Some(format!("{deployment} has {ready} of {replicas} pods ready"))
            } else {
                let mut failed = None;
                if let Some(spec) = spec {
                    for t in targets {
                        for path in &spec.paths {
                            let (code, body) = self.probe_once(&t.proxy, path).await;
                            if code != spec.status {
                                failed = Some(format!(
                                    "check {}{path} answered {code} (wanted {}): {}",
                                    t.name,
                                    spec.status,
                                    excerpt(&body)
                                ));
                            }
                        }
                    }
                }
                failed
            };
            if let Some(why) = regression {
                return Err(Error::BakeFailed(why));
            }
            tokio::time::sleep(interval).await;
        }
        Ok(())
    }

    /// Polls the Services (every 250 ms; for `window`, or until the caller stops): a
    /// selector that no longer names `color` is another manager's revert, recorded and
    /// returned as exit 9. `Ok(None)` when the window passed without one.
    async fn until_switched_back(
        &self,
        services: &Api<Service>,
        names: &[String],
        color_label: &str,
        color: &str,
        window: Option<Duration>,
    ) -> Result<Option<Error>> {
        let until = window.map(|w| tokio::time::Instant::now() + w);
        loop {
            if until.is_some_and(|u| tokio::time::Instant::now() >= u) {
                return Ok(None);
            }
            for name in names {
                let svc = services
                    .get(name)
                    .await
                    .map_err(|e| Error::kube(format!("read service {name}"), e))?;
                let now = svc
                    .spec
                    .as_ref()
                    .and_then(|s| s.selector.as_ref())
                    .and_then(|s| s.get(color_label).cloned());
                if now.as_deref() != Some(color) {
                    let who = crate::model::selector_manager(&svc)
                        .unwrap_or_else(|| "another client".into());
                    self.record_revert(services, names, color, now.as_deref(), &who)
                        .await;
                    return Ok(Some(Error::Reverted(format!(
                        "Service {name} was switched back from {color} to {} by {who} right after the switch: a GitOps tool (or someone) reverts what this command changes; make it ignore the fields kubectl-bluegreen manages (`kubectl bluegreen status` names the owner), then re-run",
                        now.as_deref().unwrap_or("(none)")
                    ))));
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Best effort: the state Service's history says who put the switch back, and an
    /// Event says it too.
    async fn record_revert(
        &self,
        services: &Api<Service>,
        names: &[String],
        from: &str,
        to: Option<&str>,
        who: &str,
    ) {
        let Some(state) = names.first() else { return };
        let Ok(svc) = services.get(state).await else {
            return;
        };
        let mut history: Vec<crate::model::HistoryEntry> = svc
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(crate::model::HISTORY_ANNOTATION))
            .and_then(|h| serde_json::from_str(h).ok())
            .unwrap_or_default();
        let now = (self.now)();
        history.insert(
            0,
            crate::model::HistoryEntry {
                action: crate::model::Action::Reverted,
                from: from.to_string(),
                to: to.unwrap_or_default().to_string(),
                images: vec![],
                at: now.round(jiff::Unit::Second).unwrap_or(now).to_string(),
                by: who.to_string(),
                from_revision: None,
                to_revision: None,
            },
        );
        history.truncate(crate::plan::HISTORY_LIMIT);
        let patch = json!({"metadata": {"resourceVersion": svc.metadata.resource_version, "annotations": {crate::model::HISTORY_ANNOTATION: serde_json::to_string(&history).unwrap_or_default()}}});
        let _ = services
            .patch(state, &self.params(), &Patch::Merge(&patch))
            .await;
        let event = Step::CreateEvent {
            service: state.clone(),
            service_uid: svc.metadata.uid.clone().unwrap_or_default(),
            event_type: "Warning".into(),
            reason: "Reverted".into(),
            message: format!("the switch to {from} was put back by {who}"),
            unless_recorded: None,
        };
        let _ = Box::pin(self.run_step(&event)).await;
    }

    /// The first of the guard's Services that selects its color now (a fresh read of
    /// each, sent together), with who switched it.
    async fn selecting(&self, g: &NotLive) -> Result<Option<(String, String)>> {
        let services: Api<Service> = Api::namespaced(self.client.clone(), self.namespace);
        let reads = g.services.iter().map(|name| {
            let services = services.clone();
            async move {
                services
                    .get(name)
                    .await
                    .map_err(|e| Error::kube(format!("read service {name}"), e))
            }
        });
        let found = futures::future::try_join_all(reads).await?;
        Ok(found.into_iter().find_map(|svc| {
            let selects = svc
                .spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .and_then(|s| s.get(&g.color_label))
                .is_some_and(|c| *c == g.color);
            selects.then(|| {
                let who =
                    crate::model::selector_manager(&svc).unwrap_or_else(|| "another client".into());
                (svc.metadata.name.unwrap_or_default(), who)
            })
        }))
    }

    /// After a guarded write to a slot: when a Service turned to the slot while the write
    /// was on its way, puts back what the write changed and says what happened. The undo
    /// is guarded by the spec generation the write made, not its resourceVersion: the
    /// Deployment controller bumps the latter at once with a status update, while the
    /// generation moves only when someone changes the spec again (then the undo stops).
    async fn undo_if_live(
        &self,
        g: &NotLive,
        deployment: &str,
        written: &Deployment,
    ) -> Result<Option<String>> {
        let Some((svc, who)) = self.selecting(g).await? else {
            return Ok(None);
        };
        tracing::warn!(%svc, %who, deployment, "a Service turned to the slot during the write: undoing it");
        let switched = format!(
            "Service {svc} was switched to {} by {who} while deployment {deployment} was being written",
            g.color
        );
        Ok(Some(match self.undo(g, deployment, written).await {
            Ok(()) => format!("{switched}: the write is undone, the slot is as it was"),
            Err(why) => format!(
                "{switched}, and undoing the write failed ({why}): check `kubectl rollout history deployment/{deployment}`"
            ),
        }))
    }

    /// Applies `g.undo` to the Deployment while its spec is still the one `written` made.
    async fn undo(
        &self,
        g: &NotLive,
        deployment: &str,
        written: &Deployment,
    ) -> Result<(), String> {
        let deploys: Api<Deployment> = Api::namespaced(self.client.clone(), self.namespace);
        let params = self.params();
        for _ in 0..5 {
            // Fresh: the guard must see the spec as it is now.
            let now = with_retry(|| deploys.get(deployment))
                .await
                .map_err(|e| format!("read deployment {deployment}: {e}"))?;
            if now.metadata.generation != written.metadata.generation {
                return Err(format!(
                    "its spec changed again after the write (generation {} → {})",
                    written.metadata.generation.unwrap_or_default(),
                    now.metadata.generation.unwrap_or_default()
                ));
            }
            let mut undo = g.undo.clone();
            undo["metadata"]["resourceVersion"] = json!(now.metadata.resource_version);
            let body = Patch::Strategic(&undo);
            match with_retry(|| deploys.patch(deployment, &params, &body)).await {
                Ok(_) => return Ok(()),
                // Only the status moved between the read and the patch: read again.
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(format!("undo the write to deployment {deployment}: {e}")),
            }
        }
        Err(format!(
            "deployment {deployment} kept changing under the undo"
        ))
    }

    fn params(&self) -> PatchParams {
        PatchParams {
            dry_run: self.dry_run,
            field_manager: Some(FIELD_MANAGER.into()),
            ..Default::default()
        }
    }

    fn post_params(&self) -> PostParams {
        PostParams {
            dry_run: self.dry_run,
            field_manager: Some(FIELD_MANAGER.into()),
        }
    }

    fn record(&self, step: &Step, status: &'static str, would_store: Option<Value>) {
        let line = step.describe();
        if status == "done" {
            self.progress.done(&line);
        }
        self.done
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(StepResult {
                step: line,
                status,
                would_store,
                switched: match step {
                    Step::PatchService { service, patch, .. }
                        if status == "done" && !patch["spec"]["selector"].is_null() =>
                    {
                        Some(service.clone())
                    }
                    _ => None,
                },
            });
    }

    /// Runs the steps in order; stops early when a step asks for a fresh plan.
    pub async fn run(&self, steps: &[Step]) -> Result<Applied> {
        for step in steps {
            if let Step::Replan { .. } = step {
                return Ok(Applied::Replan);
            }
            if step.is_write()
                && let Some(lease) = self.fence
            {
                // The Lease fences every write: a command that lost it (or could not
                // renew it for a Lease duration) stops before writing.
                lease.check()?;
            }
            if let Step::Delay { .. } = step
                && !self.dry_run
                && !self.countdown(step).await
            {
                return Ok(Applied::KeptOld);
            }
            self.run_step(step).await?;
        }
        Ok(Applied::Done)
    }

    /// The countdown before the old slot is scaled down; false when Ctrl-C ended it.
    async fn countdown(&self, step: &Step) -> bool {
        let Step::Delay { seconds, .. } = step else {
            return true;
        };
        use std::sync::atomic::Ordering;
        self.countdown.store(true, Ordering::SeqCst);
        let counted = async {
            for left in (1..=*seconds).rev() {
                self.progress.update(&format!(
                    "scaling down the old slot in {left}s (Ctrl-C keeps it)"
                ));
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        let finished = tokio::select! {
            () = counted => true,
            _ = tokio::signal::ctrl_c() => false,
        };
        if finished {
            self.countdown.store(false, Ordering::SeqCst);
        } else {
            // The flag stays set: the pipeline's own Ctrl-C handler, woken by the same
            // signal, must not report an interruption of a release that completed.
            self.record(step, "Ctrl-C: the old slot is kept", None);
        }
        finished
    }

    async fn run_step(&self, step: &Step) -> Result<()> {
        let deploys: Api<Deployment> = Api::namespaced(self.client.clone(), self.namespace);
        let services: Api<Service> = Api::namespaced(self.client.clone(), self.namespace);
        let dry = self.dry_run;
        let status = if dry { "would be done" } else { "done" };
        match step {
            Step::PatchDeployment {
                deployment,
                patch,
                not_live,
                ..
            } => {
                let guard = not_live.as_ref().filter(|_| !dry);
                if let Some(g) = guard
                    && let Some((svc, who)) = self.selecting(g).await?
                {
                    return Err(Error::Conflict(
                        Reason::ChangedMeanwhile,
                        format!(
                            "Service {svc} was switched to {} by {who} meanwhile: deployment {deployment} serves traffic, so it is not re-imaged",
                            g.color
                        ),
                    ));
                }
                let params = self.params();
                let body = Patch::Strategic(patch);
                let d = with_retry(|| deploys.patch(deployment, &params, &body))
                    .await
                    .map_err(|e| conflict_or(e, format!("patch deployment {deployment}"), false))?;
                if let Some(g) = guard
                    && let Some(what) = self.undo_if_live(g, deployment, &d).await?
                {
                    return Err(Error::Conflict(
                        Reason::ChangedMeanwhile,
                        format!("{what}; set-image does not touch a slot that serves traffic"),
                    ));
                }
                self.record(step, status, dry.then(|| summary_of_deployment(&d)));
            }
            Step::ScaleDeployment {
                deployment,
                patch,
                not_live,
                ..
            } => {
                // Rule 2 at the moment of the write: no Service selects the slot again.
                let guard = not_live.as_ref().filter(|_| !dry);
                if let Some(g) = guard
                    && let Some((svc, who)) = self.selecting(g).await?
                {
                    return Err(Error::Reverted(format!(
                        "Service {svc} selects {} again (switched by {who}): deployment {deployment} serves traffic, so it is not scaled down",
                        g.color
                    )));
                }
                let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                    .map_err(|e| Error::Other(format!("bad planned patch: {e}")))?;
                let params = self.params();
                let body = Patch::<()>::Json(ops);
                let d = with_retry(|| deploys.patch(deployment, &params, &body))
                    .await
                    .map_err(|e| conflict_or(e, format!("scale deployment {deployment}"), true))?;
                if let Some(g) = guard
                    && let Some(what) = self.undo_if_live(g, deployment, &d).await?
                {
                    return Err(Error::Reverted(format!(
                        "{what}: it serves traffic, so it is not scaled down"
                    )));
                }
                self.record(step, status, dry.then(|| summary_of_deployment(&d)));
            }
            Step::CreateDeployment {
                deployment, body, ..
            } => {
                let d: Deployment = serde_json::from_value(body.clone())
                    .map_err(|e| Error::Other(format!("bad planned deployment: {e}")))?;
                let params = self.post_params();
                let created = with_retry(|| deploys.create(&params, &d)).await;
                let d = match created {
                    Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {
                        return Err(name_taken(&deploys, deployment, &d, *s).await);
                    }
                    other => other.map_err(|e| {
                        conflict_or(e, format!("create deployment {deployment}"), false)
                    })?,
                };
                self.record(step, status, dry.then(|| summary_of_deployment(&d)));
            }
            Step::PatchService { service, patch, .. } => {
                let params = self.params();
                let body = Patch::Merge(patch);
                let s = with_retry(|| services.patch(service, &params, &body))
                    .await
                    .map_err(|e| conflict_or(e, format!("patch service {service}"), false))?;
                self.record(step, status, dry.then(|| summary_of_service(&s)));
            }
            Step::CreateEvent {
                service,
                service_uid,
                event_type,
                reason,
                message,
                unless_recorded,
            } => {
                if let Some(switch) = unless_recorded
                    && self.event_recorded(service, reason, switch).await
                {
                    self.record(step, "already recorded", None);
                    return Ok(());
                }
                let now = (self.now)();
                let ev: Event = serde_json::from_value(json!({
                    "metadata": {"name": event_name(service, now), "namespace": self.namespace},
                    "involvedObject": {"kind": "Service", "apiVersion": "v1", "name": service, "namespace": self.namespace, "uid": service_uid},
                    "type": event_type,
                    "reason": reason,
                    "message": message,
                    "source": {"component": "kubectl-bluegreen"},
                    "reportingComponent": "kubectl-bluegreen",
                    "reportingInstance": self.host,
                    "firstTimestamp": now.round(jiff::Unit::Second).unwrap_or(now).to_string(),
                    "lastTimestamp": now.round(jiff::Unit::Second).unwrap_or(now).to_string(),
                    "count": 1,
                }))
                .map_err(|e| Error::Other(format!("bad event: {e}")))?;
                // Events are best effort, as in Kubernetes' own controllers: the history
                // annotation is the record. A failed one is retried, then reported.
                let events: Api<Event> = Api::namespaced(self.client.clone(), self.namespace);
                let mut failure = None;
                for attempt in 0..3u64 {
                    match events.create(&self.post_params(), &ev).await {
                        Ok(_) => {
                            failure = None;
                            break;
                        }
                        Err(e) => {
                            failure = Some(e);
                            tokio::time::sleep(Duration::from_millis(200 * (attempt + 1))).await;
                        }
                    }
                }
                match failure {
                    None => self.record(step, status, None),
                    Some(e) => {
                        let line = format!(
                            "warning: could not record the event on service {service}: {}",
                            crate::error::Error::kube("create an event", e)
                        );
                        self.progress.done(&line);
                        self.record(step, "failed (events are best effort)", None);
                    }
                }
            }
            Step::WaitRolledOut { deployment } => {
                if dry {
                    self.record(step, "skipped in a dry run", None);
                    return Ok(());
                }
                verify::rolled_out(self.at(), deployment, self.timeout, self.progress).await?;
                self.record(step, "done", None);
            }
            Step::WaitServing {
                services: svcs,
                deployment,
                color,
                color_label,
                hold_secs,
            } => {
                if dry {
                    self.record(step, "skipped in a dry run", None);
                    return Ok(());
                }
                // A selector put back meanwhile ends the wait at once (exit 9), rather
                // than as endpoints that never converge.
                tokio::select! {
                    r = verify::serving_only(
                        self.at(),
                        svcs,
                        deployment,
                        color,
                        Duration::from_secs(*hold_secs),
                        self.timeout,
                        self.progress,
                    ) => r?,
                    e = self.until_switched_back(&services, svcs, color_label, color, None) => {
                        // Without a window it returns only on a revert (or a failed read).
                        return Err(e?.unwrap_or_else(|| Error::Other("watch ended".into())));
                    }
                }
                self.record(step, "done", None);
            }
            Step::Replan { .. } => {}
            Step::Gate {
                deployment,
                generation,
            } => {
                let d = deploys
                    .get(deployment)
                    .await
                    .map_err(|e| Error::kube(format!("read deployment {deployment}"), e))?;
                let now = d.metadata.generation.unwrap_or(0);
                if now != *generation || !crate::facts::Rollout::of(&d).is_complete() {
                    return Err(Error::Conflict(
                        Reason::ChangedMeanwhile,
                        format!(
                            "deployment {deployment} changed since it was checked (generation {generation} → {now}): traffic is not switched to it"
                        ),
                    ));
                }
                // A check, not a change: not listed among what was done.
                self.progress.done(&step.describe());
            }
            Step::Check { targets, spec } => {
                if dry {
                    self.record(step, "skipped in a dry run", None);
                    return Ok(());
                }
                // A failing answer is retried for a while (endpoints may lag a pod that
                // just became ready); past that the check refuses the promote.
                let patience =
                    Duration::from_millis(spec.interval_ms * 10).max(Duration::from_secs(5));
                for t in targets {
                    let mut in_a_row = 0;
                    let give_up = tokio::time::Instant::now() + patience;
                    while in_a_row < spec.successes {
                        for path in &spec.paths {
                            let answer = self.probe_once(&t.proxy, path).await;
                            self.progress
                                .update(&format!("check {}{path}: {}", t.name, answer.0));
                            if answer.0 == spec.status {
                                in_a_row += 1;
                            } else {
                                in_a_row = 0;
                                if tokio::time::Instant::now() >= give_up {
                                    return Err(Error::Precondition(
                                        Reason::CheckFailed,
                                        format!(
                                            "check failed before any traffic moved: {}{path} answered {} (wanted {}): {}",
                                            t.name,
                                            answer.0,
                                            spec.status,
                                            excerpt(&answer.1)
                                        ),
                                    ));
                                }
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(spec.interval_ms)).await;
                    }
                }
                self.record(step, "done", None);
            }
            Step::Bake {
                service,
                deployment,
                color,
                until,
                replicas,
                targets,
                spec,
            } => {
                if dry {
                    self.record(step, "skipped in a dry run", None);
                    return Ok(());
                }
                self.bake(
                    service,
                    deployment,
                    color,
                    until,
                    *replicas,
                    targets,
                    spec.as_ref(),
                )
                .await?;
                self.record(step, "done", None);
            }
            Step::ClearBake { service } => {
                let patch =
                    json!({"metadata": {"annotations": {crate::model::BAKE_ANNOTATION: null}}});
                let body = Patch::Merge(&patch);
                let params = self.params();
                with_retry(|| services.patch(service, &params, &body))
                    .await
                    .map_err(|e| Error::kube(format!("patch service {service}"), e))?;
                self.record(step, status, None);
            }
            Step::PatchHpa { hpa, patch, .. } => {
                let hpas: Api<HorizontalPodAutoscaler> =
                    Api::namespaced(self.client.clone(), self.namespace);
                let params = self.params();
                let body = Patch::Merge(patch);
                with_retry(|| hpas.patch(hpa, &params, &body))
                    .await
                    .map_err(|e| {
                        conflict_or(e, format!("patch horizontalpodautoscaler {hpa}"), false)
                    })?;
                self.record(step, status, None);
            }
            Step::Settle {
                services: names,
                color_label,
                color,
                seconds,
            } => {
                if dry {
                    self.record(step, "skipped in a dry run", None);
                    return Ok(());
                }
                self.progress.update(&format!(
                    "watching for {seconds}s that no one switches traffic back from {color}"
                ));
                let window = Some(Duration::from_secs(*seconds));
                if let Some(e) = self
                    .until_switched_back(&services, names, color_label, color, window)
                    .await?
                {
                    return Err(e);
                }
                self.record(step, "done", None);
            }
            Step::Delay {
                seconds,
                service,
                color_label,
                color,
            } => {
                if dry {
                    self.record(step, "skipped in a dry run", None);
                    return Ok(());
                }
                // (The countdown itself ran in `countdown`.)
                let _ = seconds;
                let svc = services
                    .get(service)
                    .await
                    .map_err(|e| Error::kube(format!("read service {service}"), e))?;
                let now = svc
                    .spec
                    .and_then(|s| s.selector)
                    .and_then(|s| s.get(color_label).cloned());
                if now.as_deref() != Some(color.as_str()) {
                    return Err(Error::Precondition(
                        Reason::ChangedMeanwhile,
                        format!(
                            "service {service} no longer selects {color_label}={color} (now {}): the old slot is not scaled down",
                            now.as_deref().unwrap_or("nothing")
                        ),
                    ));
                }
                self.record(step, "done", None);
            }
        }
        Ok(())
    }
}
