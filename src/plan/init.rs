//! `init`: adopt a plain Deployment + Service into the label contract with zero downtime.

use super::steps::copy_as_slot;
use super::{Action, Actor, Outcome, Plan, Step};
use crate::error::{Error, Reason, Result};
use crate::model::{self, HistoryEntry};
use crate::observe::Snapshot;
use serde_json::json;

#[derive(Debug, Clone, Default)]
pub struct InitRequest {
    /// Adopt with this color label key instead of `bluegreen.io/color`.
    pub color_label: Option<String>,
}

pub const REPLACED_BY_ANNOTATION: &str = "bluegreen.io/replaced-by";

/// Adopting a plain Deployment + Service: blue copy → wait → switch the Service (which
/// then includes the color) → verify → green copy at 0 → the original scaled to 0 and
/// annotated. Planned from whatever part is already done, so a re-run finishes it.
pub fn init(
    snap: &Snapshot,
    namespace: &str,
    service: &str,
    req: &InitRequest,
    actor: &Actor,
) -> Result<Plan> {
    let svc = snap
        .services
        .iter()
        .find(|s| {
            s.metadata.namespace.as_deref() == Some(namespace)
                && s.metadata.name.as_deref() == Some(service)
        })
        .ok_or_else(|| {
            Error::NotFound(
                Reason::ServiceNotFound,
                format!("Service {} not found in namespace {namespace}", service),
            )
        })?;
    let annotations = svc.metadata.annotations.clone().unwrap_or_default();
    let key = req
        .color_label
        .clone()
        .or_else(|| annotations.get(model::COLOR_LABEL_ANNOTATION).cloned())
        .unwrap_or_else(|| model::DEFAULT_COLOR_LABEL.to_string());
    let mut selector = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    if selector.is_empty() {
        return Err(Error::Precondition(
            Reason::NothingToAdopt,
            format!(
                "Service {} has no selector: there is nothing to adopt",
                service
            ),
        ));
    }
    let live = selector.remove(&key);
    let adopted = live.is_some();
    let in_ns = || {
        snap.deployments
            .iter()
            .filter(|d| d.metadata.namespace.as_deref() == Some(namespace))
    };
    let labels_of = |d: &k8s_openapi::api::apps::v1::Deployment| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default()
    };
    let matches_base = |d: &&k8s_openapi::api::apps::v1::Deployment| {
        let l = labels_of(d);
        selector.iter().all(|(k, v)| l.get(k) == Some(v))
    };
    let originals: Vec<_> = in_ns()
        .filter(matches_base)
        .filter(|d| !labels_of(d).contains_key(&key))
        .collect();
    let slot = |color: &str| {
        in_ns()
            .filter(matches_base)
            .find(|d| labels_of(d).get(&key).map(String::as_str) == Some(color))
    };
    let name_of =
        |d: &k8s_openapi::api::apps::v1::Deployment| d.metadata.name.clone().unwrap_or_default();
    let mut plan = Plan {
        action: Action::Init,
        app: service.to_string(),
        namespace: namespace.to_string(),
        outcome: Outcome::Change,
        from: None,
        to: Some("blue".into()),
        preconditions: vec![],
        steps: vec![],
    };
    if !adopted && originals.len() != 1 {
        let reason = if originals.is_empty() {
            Reason::NothingToAdopt
        } else {
            Reason::AmbiguousAdoption
        };
        return Err(Error::Precondition(
            reason,
            match originals.len() {
                0 => format!(
                    "no Deployment's pods are selected by Service {}: nothing to adopt",
                    service
                ),
                _ => format!(
                    "{} Deployments are selected by Service {} ({}): adopt needs exactly one",
                    originals.len(),
                    service,
                    originals
                        .iter()
                        .map(|d| name_of(d))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        ));
    }
    let original = originals.first().copied();
    let base_name = original.map(name_of).unwrap_or_else(|| service.to_string());
    let original_json = original
        .map(|d| serde_json::to_value(d).map_err(|e| Error::Other(e.to_string())))
        .transpose()?;
    let replicas = original
        .and_then(|d| d.spec.as_ref().and_then(|s| s.replicas))
        .unwrap_or(1);
    let blue_name = format!("{base_name}-blue");
    let green_name = format!("{base_name}-green");
    if adopted {
        plan.outcome = Outcome::Finish;
        plan.preconditions.push(format!(
            "Service {} already selects {key}={}: finishing the adoption",
            service,
            live.as_deref().unwrap_or("")
        ));
    } else {
        plan.preconditions.push(format!(
            "Service {} selects exactly one Deployment: {base_name} ({replicas} replicas)",
            service
        ));
    }
    let live_color = live.clone().unwrap_or_else(|| "blue".into());
    let live_deployment = slot(&live_color)
        .map(name_of)
        .unwrap_or_else(|| blue_name.clone());
    if slot(&live_color).is_none() {
        let source = original_json.clone().ok_or_else(|| {
            Error::Precondition(
                Reason::NothingToAdopt,
                format!(
                    "Service {} selects {key}={live_color} but no such Deployment exists",
                    service
                ),
            )
        })?;
        plan.steps.push(Step::CreateDeployment {
            deployment: blue_name.clone(),
            body: copy_as_slot(source, &blue_name, namespace, &key, "blue", replicas),
            why: format!(
                "the blue slot: a copy of {base_name} with {key}=blue, {replicas} replica(s)"
            ),
        });
    }
    if !adopted {
        plan.steps.push(Step::WaitRolledOut {
            deployment: blue_name.clone(),
        });
        let history = vec![HistoryEntry {
            action: Action::Init,
            from: String::new(),
            to: "blue".into(),
            images: vec![],
            at: actor.now.clone(),
            by: actor.user.clone(),
            from_revision: None,
            to_revision: None,
        }];
        let mut ann = json!({model::HISTORY_ANNOTATION: serde_json::to_string(&history).map_err(|e| Error::Other(e.to_string()))?});
        if key != model::DEFAULT_COLOR_LABEL {
            ann[model::COLOR_LABEL_ANNOTATION] = json!(key);
        }
        plan.steps.push(Step::PatchService {
            service: service.to_string(),
            patch: json!({"metadata": {"resourceVersion": svc.metadata.resource_version, "annotations": ann}, "spec": {"selector": {key.clone(): "blue"}}}),
            why: format!("select {key}=blue: traffic moves to the blue slot's (ready) pods"),
        });
    }
    plan.steps.push(Step::WaitServing {
        services: vec![service.to_string()],
        deployment: live_deployment,
        color: live_color.clone(),
    });
    let other = if live_color == "blue" {
        "green"
    } else {
        "blue"
    };
    if slot(other).is_none()
        && let Some(source) = original_json
            .clone()
            .or_else(|| slot(&live_color).and_then(|d| serde_json::to_value(d).ok()))
    {
        let name = if other == "green" {
            green_name.clone()
        } else {
            blue_name.clone()
        };
        plan.steps.push(Step::CreateDeployment {
            deployment: name.clone(),
            body: copy_as_slot(source, &name, namespace, &key, other, 0),
            why: format!("the {other} slot, idle at 0 replicas"),
        });
    }
    if let Some(o) = original {
        let already = o
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(REPLACED_BY_ANNOTATION));
        if o.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) > 0 || !already {
            let mut ann = o.metadata.annotations.clone().unwrap_or_default();
            ann.insert(
                REPLACED_BY_ANNOTATION.into(),
                format!("{blue_name},{green_name}"),
            );
            plan.steps.push(Step::ScaleDeployment {
                deployment: base_name.clone(),
                replicas: 0,
                patch: json!([
                    {"op": "test", "path": "/metadata/generation", "value": o.metadata.generation.unwrap_or(0)},
                    {"op": "replace", "path": "/spec/replicas", "value": 0},
                    {"op": "add", "path": "/metadata/annotations", "value": ann},
                ]),
                why: format!("the original is replaced by {blue_name} and {green_name} (kept, annotated, never deleted)"),
            });
        }
    }
    Ok(plan)
}
