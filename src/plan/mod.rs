//! Planning: a pure function from the observed cluster and a request to the ordered,
//! guarded writes and waits that reach the requested state (`plan`), one planner per verb
//! beside its unit tests. Plans are "ensure" plans: they hold only what is not done yet,
//! so re-planning after a crash, a Ctrl-C or a 409 finishes the job instead of repeating
//! or reversing it. Each write carries its guard: Service patches the `resourceVersion`
//! they were planned from, Deployment scale patches a JSON-patch `test` of the
//! `generation` (status updates by the controller must not fail them, spec changes by
//! someone else must), set-image the `resourceVersion`. Waits are steps too: `apply`
//! runs them through `verify`.

mod abort;
mod checks;
mod init;
mod promote;
mod set_image;
mod steps;
#[cfg(test)]
mod testkit;

pub use abort::{AbortRequest, abort};
pub use init::{InitRequest, REPLACED_BY_ANNOTATION, init};
pub use promote::{PromoteRequest, promote};
pub use set_image::{ImageSpec, SetImageRequest, set_image};

use crate::error::Result;
use crate::model;
pub use crate::model::{Action, CheckSpec};
use crate::observe::Snapshot;
use serde::Serialize;
use serde_json::Value;

/// A validated mutating request: the verb and its options, without the app's name.
#[derive(Debug, Clone)]
pub enum Intent {
    Promote(PromoteRequest),
    Abort(AbortRequest),
    SetImage(SetImageRequest),
    Init(InitRequest),
}

impl Intent {
    pub fn action(&self) -> Action {
        match self {
            Intent::Promote(_) => Action::Promote,
            Intent::Abort(_) => Action::Abort,
            Intent::SetImage(_) => Action::SetImage,
            Intent::Init(_) => Action::Init,
        }
    }
}

/// The plan for `intent` on the app (or, for `init`, the Service) named `name`.
pub fn plan(
    intent: &Intent,
    snap: &Snapshot,
    namespace: &str,
    name: &str,
    actor: &Actor,
) -> Result<Plan> {
    let app = || model::find_app(snap, namespace, name);
    match intent {
        Intent::Promote(req) => promote(&app()?, req, actor),
        Intent::Abort(req) => abort(&app()?, req, actor),
        Intent::SetImage(req) => set_image(&app()?, snap, req),
        Intent::Init(req) => init(snap, namespace, name, req, actor),
    }
}

pub const HISTORY_LIMIT: usize = 20;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum Step {
    /// A strategic-merge patch of a Deployment (set-image), guarded by `metadata.resourceVersion`.
    #[serde(rename_all = "camelCase")]
    PatchDeployment {
        deployment: String,
        patch: Value,
        why: String,
        /// For a re-image of the preview slot: rule 2 at the moment of the write.
        #[serde(skip_serializing_if = "Option::is_none")]
        not_live: Option<NotLive>,
    },
    /// A JSON patch of a Deployment whose first operation tests the generation.
    #[serde(rename_all = "camelCase")]
    ScaleDeployment {
        deployment: String,
        replicas: i32,
        patch: Value,
        why: String,
        /// For a scale-down of a slot: rule 2 at the moment of the write.
        #[serde(skip_serializing_if = "Option::is_none")]
        not_live: Option<NotLive>,
    },
    #[serde(rename_all = "camelCase")]
    CreateDeployment {
        deployment: String,
        body: Value,
        why: String,
    },
    /// A merge patch of a Service carrying the resourceVersion it was planned from.
    #[serde(rename_all = "camelCase")]
    PatchService {
        service: String,
        patch: Value,
        why: String,
    },
    #[serde(rename_all = "camelCase")]
    CreateEvent {
        service: String,
        service_uid: String,
        event_type: String,
        reason: String,
        message: String,
        /// Only if this switch's Event is not there yet (a finishing re-run, which
        /// cannot know whether the interrupted run recorded it).
        #[serde(skip_serializing_if = "Option::is_none")]
        unless_recorded: Option<SwitchEvent>,
    },
    /// Wait until the Deployment is rolled out at its latest generation.
    #[serde(rename_all = "camelCase")]
    WaitRolledOut { deployment: String },
    /// Wait until the ready endpoints of every Service belong to this slot only.
    #[serde(rename_all = "camelCase")]
    WaitServing {
        services: Vec<String>,
        deployment: String,
        color: String,
        /// The Services' color key: a selector changed back meanwhile ends the wait.
        color_label: String,
        /// How long the endpoints must serve this slot only, without a break, before
        /// the wait ends: non-zero when a Service's endpoints lagged its selector as
        /// observed (an endpoint publication computed before the switch may still land).
        #[serde(default, skip_serializing_if = "is_zero")]
        hold_secs: u64,
    },
    /// HTTP checks through the API server's Service and pod proxies; any target that
    /// does not answer `spec.status` `spec.successes` times in a row refuses (exit 4).
    #[serde(rename_all = "camelCase")]
    Check {
        targets: Vec<ProxyTarget>,
        spec: CheckSpec,
    },
    /// Watch the new live slot until `until`: a container restart, fewer ready pods than
    /// `replicas`, or a failing check through the active Service ends the bake with a
    /// regression, which the pipeline reverts (the abort path, exit 9).
    #[serde(rename_all = "camelCase")]
    Bake {
        /// The state Service, where the bake is recorded while it runs.
        service: String,
        deployment: String,
        color: String,
        until: String,
        replicas: i32,
        targets: Vec<ProxyTarget>,
        #[serde(skip_serializing_if = "Option::is_none")]
        spec: Option<CheckSpec>,
    },
    /// Remove the bake record from the state Service (our own annotation only).
    #[serde(rename_all = "camelCase")]
    ClearBake { service: String },
    /// A merge patch of a HorizontalPodAutoscaler's target, guarded by its resourceVersion.
    #[serde(rename_all = "camelCase")]
    PatchHpa {
        hpa: String,
        patch: Value,
        why: String,
    },
    /// Watch the Services for `seconds`: a selector changed back by another manager ends
    /// the command with exit 9 (reverted), naming that manager.
    #[serde(rename_all = "camelCase")]
    Settle {
        services: Vec<String>,
        color_label: String,
        color: String,
        seconds: u64,
    },
    /// Rule 1 at the moment of the switch: re-read the target Deployment right before the
    /// first Service write; it must still be at `generation`, fully rolled out.
    #[serde(rename_all = "camelCase")]
    Gate { deployment: String, generation: i64 },
    /// Stop here: the pipeline observes the cluster again and plans the rest (after a
    /// wait that precedes a switch, so the switch is planned from fresh state).
    #[serde(rename_all = "camelCase")]
    Replan { why: String },
    /// Wait, then check that the Service still selects `color` before going on.
    #[serde(rename_all = "camelCase")]
    Delay {
        seconds: u64,
        service: String,
        color_label: String,
        color: String,
    },
}

impl Step {
    pub fn is_write(&self) -> bool {
        matches!(
            self,
            Step::PatchDeployment { .. }
                | Step::ScaleDeployment { .. }
                | Step::CreateDeployment { .. }
                | Step::PatchService { .. }
                | Step::PatchHpa { .. }
                | Step::ClearBake { .. }
                | Step::CreateEvent { .. }
        )
    }

    /// One line for humans.
    pub fn describe(&self) -> String {
        match self {
            Step::PatchDeployment {
                deployment, why, ..
            } => format!("patch deployment/{deployment}: {why}"),
            Step::ScaleDeployment {
                deployment,
                replicas,
                why,
                ..
            } => format!("scale deployment/{deployment} to {replicas}: {why}"),
            Step::CreateDeployment {
                deployment, why, ..
            } => format!("create deployment/{deployment}: {why}"),
            Step::PatchService { service, why, .. } => format!("patch service/{service}: {why}"),
            Step::CreateEvent {
                service, reason, ..
            } => format!("record event {reason} on service/{service}"),
            Step::WaitRolledOut { deployment } => {
                format!("wait until deployment/{deployment} is rolled out and available")
            }
            Step::WaitServing {
                services,
                deployment,
                color,
                hold_secs,
                ..
            } => {
                let held = if *hold_secs > 0 {
                    format!(" for {hold_secs}s in a row (their endpoints lagged their selectors)")
                } else {
                    String::new()
                };
                format!(
                    "wait until {} serve only {color} ({deployment}) pods{held}",
                    services
                        .iter()
                        .map(|s| format!("service/{s}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            Step::Replan { why } => format!("observe again and plan the rest: {why}"),
            Step::Gate {
                deployment,
                generation,
            } => format!(
                "re-check that deployment/{deployment} is still rolled out at generation {generation}"
            ),
            Step::PatchHpa { hpa, why, .. } => {
                format!("patch horizontalpodautoscaler/{hpa}: {why}")
            }
            Step::Check { targets, spec } => format!(
                "check {} through {}: {} answers {} in a row",
                spec.paths.join(", "),
                targets
                    .iter()
                    .map(|t| t.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                spec.status,
                spec.successes
            ),
            Step::Bake {
                deployment, until, ..
            } => format!(
                "bake until {until}: watch {deployment} for restarts, readiness and failing checks; revert on a regression"
            ),
            Step::ClearBake { service } => {
                format!("record on service/{service} that the bake ended")
            }
            Step::Settle { seconds, color, .. } => {
                format!("watch for {seconds}s that no one switches the Services back from {color}")
            }
            Step::Delay { seconds, color, .. } => {
                format!("wait {seconds}s, then check traffic is still on {color}")
            }
        }
    }
}

/// How a finishing run tells that a switch's Event was recorded: an Event with the
/// step's reason, at or after `since` (the history entry's time), whose message starts
/// with `words` ("traffic switched from green to blue"). Both times are whole seconds,
/// so the time alone would take the Event of another switch in the same second (the
/// opposite one, a moment before) for this one's.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SwitchEvent {
    pub since: String,
    pub words: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// The plan changes something.
    Change,
    /// The requested state was already reached by an earlier run; the plan only finishes it.
    Finish,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub action: Action,
    pub app: String,
    pub namespace: String,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    pub preconditions: Vec<String>,
    pub steps: Vec<Step>,
}

impl Plan {
    /// An empty plan of `action` on `app` in `namespace`; planners fill it in.
    pub fn new(action: Action, app: &str, namespace: &str) -> Plan {
        Plan {
            action,
            app: app.to_string(),
            namespace: namespace.to_string(),
            outcome: Outcome::Change,
            from: None,
            to: None,
            preconditions: vec![],
            steps: vec![],
        }
    }
}

/// Rule 2 (a slot that serves traffic is never modified) where the plan cannot hold it
/// alone: between the observation and the write, another hand may switch a Service to the
/// slot. So these Services are read again right before the write (none may select the
/// slot), and once more right after it: a switch that landed in between (one round trip,
/// which no client can close without a transaction) is met by `undo`, a strategic-merge
/// patch putting back what the write changed, applied only while the Deployment's spec
/// generation is still the one the write made.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NotLive {
    pub services: Vec<String>,
    pub color_label: String,
    pub color: String,
    pub undo: Value,
}

/// Where a check goes: the API server's proxy path of a Service or a pod.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProxyTarget {
    /// `service/NAME` or `pod/NAME`.
    pub name: String,
    /// `/api/v1/namespaces/NS/services/NAME:PORT/proxy` (a path is appended).
    pub proxy: String,
}

/// Who acts and when (for history entries and event messages).
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: String,
    pub now: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}
