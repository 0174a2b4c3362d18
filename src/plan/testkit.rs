//! What the planners' unit tests share: an actor with a fixed clock, apps built from
//! inline YAML, and a one-line-per-step view of a plan.

use super::{Actor, Plan, Step};
use crate::model::{App, build};
use crate::observe::Snapshot;
pub use crate::testutil::{deploy, snap, svc};

pub const PREVIEW: &str = "  annotations: {bluegreen.io/preview-service: shop-preview}\n";

pub fn actor() -> Actor {
    Actor {
        user: "alice".into(),
        now: "2026-11-22T00:00:00Z".into(),
    }
}

pub fn app_of(yaml: &str) -> (App, Snapshot) {
    let s = snap(yaml);
    (build(&s).remove(0), s)
}

/// Two slots of three ready replicas, traffic on blue, preview Service on green.
pub fn fresh() -> String {
    [
        svc("shop", "blue", PREVIEW),
        svc("shop-preview", "green", ""),
        deploy("shop-blue", "blue", 3, 3),
        deploy("shop-green", "green", 3, 3),
    ]
    .concat()
}

pub fn kinds(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .map(|s| match s {
            Step::PatchService { service, .. } => format!("patch svc/{service}"),
            Step::PatchDeployment { deployment, .. } => format!("patch deploy/{deployment}"),
            Step::ScaleDeployment {
                deployment,
                replicas,
                ..
            } => format!("scale deploy/{deployment}={replicas}"),
            Step::CreateDeployment { deployment, .. } => format!("create deploy/{deployment}"),
            Step::CreateEvent { reason, .. } => format!("event {reason}"),
            Step::WaitRolledOut { deployment } => format!("wait rollout {deployment}"),
            Step::WaitServing { deployment, .. } => format!("wait serving {deployment}"),
            Step::Delay { seconds, .. } => format!("delay {seconds}"),
            Step::Replan { .. } => "replan".to_string(),
            Step::Gate { .. } => "gate".to_string(),
            Step::PatchHpa { hpa, .. } => format!("patch hpa/{hpa}"),
            Step::Check { targets, .. } => format!("check {}", targets.len()),
            Step::Bake { deployment, .. } => format!("bake {deployment}"),
            Step::ClearBake { .. } => "clear bake".to_string(),
            Step::Settle { seconds, .. } => format!("settle {seconds}"),
        })
        .collect()
}

/// The state of an app after a promote from blue to green (history recorded).
pub fn promoted(blue_replicas: i32) -> String {
    let history = r#"[{"action":"promote","from":"blue","to":"green","images":[],"at":"2026-11-21T00:00:00Z","by":"bob","fromRevision":"4","toRevision":"4"}]"#;
    let ann = format!(
        "  annotations: {{bluegreen.io/preview-service: shop-preview, bluegreen.io/previous-color: blue, bluegreen.io/history: '{history}'}}\n"
    );
    [
        svc("shop", "green", &ann),
        svc("shop-preview", "blue", ""),
        deploy("shop-blue", "blue", blue_replicas, blue_replicas),
        deploy("shop-green", "green", 3, 3),
    ]
    .concat()
}
