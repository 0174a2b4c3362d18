//! The step builders every planner shares: guarded Service and Deployment patches, the
//! state annotations of a switch, Events, delays, and copies of a Deployment as a slot.

use super::{Action, Actor, CheckSpec, HISTORY_LIMIT, NotLive, ProxyTarget, Step};
use crate::error::{Error, Result};
use crate::model::{self, App, HistoryEntry, ServicePort, Slot};
use serde_json::{Value, json};
use std::time::Duration;

pub(super) fn images_of(slot: &Slot) -> Vec<String> {
    slot.images
        .iter()
        .filter(|c| !c.init)
        .map(|c| c.image.clone())
        .collect()
}

/// The patch that points a Service at `color`, guarded by its resourceVersion.
pub(super) fn service_patch(
    color_label: &str,
    color: &str,
    rv: &str,
    annotations: Option<Value>,
) -> Value {
    let mut p =
        json!({"metadata": {"resourceVersion": rv}, "spec": {"selector": {color_label: color}}});
    if let Some(a) = annotations {
        p["metadata"]["annotations"] = a;
    }
    p
}

pub(super) fn scale_step(slot: &Slot, replicas: i32, why: &str) -> Step {
    Step::ScaleDeployment {
        deployment: slot.deployment.clone(),
        replicas,
        patch: json!([
            {"op": "test", "path": "/metadata/generation", "value": slot.generation},
            {"op": "replace", "path": "/spec/replicas", "value": replicas},
        ]),
        why: why.to_string(),
        not_live: None,
    }
}

/// A slot scaled to 0, guarded by its generation and by fresh looks at the app's
/// Services right before and after the write (none may select it; else it is scaled back).
pub(super) fn retire_step(app: &App, slot: &Slot, why: &str) -> Step {
    let mut step = scale_step(slot, 0, why);
    if let Step::ScaleDeployment { not_live, .. } = &mut step {
        *not_live = Some(not_live_guard(
            app,
            slot,
            json!({"spec": {"replicas": slot.desired}}),
        ));
    }
    step
}

/// Rule 2 at the moment of a write to `slot`: what to read again and what undoes it.
pub(super) fn not_live_guard(app: &App, slot: &Slot, undo: Value) -> NotLive {
    NotLive {
        services: active_service_names(app),
        color_label: app.color_label.clone(),
        color: slot.color.clone(),
        undo,
    }
}

/// The state annotations after a switch from `from` to `to`.
pub(super) fn switch_annotations(
    app: &App,
    action: Action,
    from: &Slot,
    to: &Slot,
    actor: &Actor,
) -> Result<Value> {
    let mut history = app.history.clone();
    history.insert(
        0,
        HistoryEntry {
            action,
            from: from.color.clone(),
            to: to.color.clone(),
            images: images_of(to),
            at: actor.now.clone(),
            by: actor.user.clone(),
            from_revision: from.revision.clone(),
            to_revision: to.revision.clone(),
        },
    );
    history.truncate(HISTORY_LIMIT);
    let history = serde_json::to_string(&history)
        .map_err(|e| Error::Other(format!("cannot encode history: {e}")))?;
    let mut annotations =
        json!({model::PREVIOUS_COLOR_ANNOTATION: from.color, model::HISTORY_ANNOTATION: history});
    // The HPA the switch moves is named, so that status notices if it goes missing.
    if let Some(h) = app.hpas.first() {
        annotations[model::HPA_ANNOTATION] = json!(h.name);
    }
    Ok(annotations)
}

/// The HPA follows the live slot: an HPA on `from` (when `to` has none of its own) is
/// pointed at `to`, guarded by its resourceVersion, its bounds kept. With one HPA per
/// slot, each stays with its slot (the old one idles once its slot is at 0).
pub(super) fn move_hpa(app: &App, from: &Slot, to: &Slot) -> Option<Step> {
    if app.hpas.iter().any(|h| h.color == to.color) {
        return None;
    }
    let h = app.hpas.iter().find(|h| h.color == from.color)?;
    Some(Step::PatchHpa {
        hpa: h.name.clone(),
        patch: json!({"metadata": {"resourceVersion": h.resource_version}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": to.deployment}}}),
        why: format!(
            "the HPA follows the live slot: {} → {} (min {}, max {} kept)",
            from.deployment, to.deployment, h.min_replicas, h.max_replicas
        ),
    })
}

/// The replicas a slot that takes over from `live` must offer: the live slot's count, or
/// what its HPA wants now if that is more.
pub(super) fn live_replicas(app: &App, live: &Slot) -> i32 {
    app.hpas
        .iter()
        .filter(|h| h.color == live.color)
        .map(|h| h.desired_replicas.max(h.current_replicas))
        .fold(live.desired, i32::max)
}

/// A history entry without a switch (an abort before any promote), written on the state
/// Service and guarded by its resourceVersion; the previous color is left as it is.
pub(super) fn record_step(
    app: &App,
    action: Action,
    slot: &Slot,
    live: &str,
    actor: &Actor,
) -> Result<Step> {
    let mut history = app.history.clone();
    history.insert(
        0,
        HistoryEntry {
            action,
            from: slot.color.clone(),
            to: live.to_string(),
            images: images_of(slot),
            at: actor.now.clone(),
            by: actor.user.clone(),
            from_revision: slot.revision.clone(),
            to_revision: None,
        },
    );
    history.truncate(HISTORY_LIMIT);
    let history = serde_json::to_string(&history)
        .map_err(|e| Error::Other(format!("cannot encode history: {e}")))?;
    let svc = &app.services[0];
    Ok(Step::PatchService {
        service: svc.name.clone(),
        patch: json!({"metadata": {"resourceVersion": svc.resource_version, "annotations": {model::HISTORY_ANNOTATION: history}}}),
        why: format!("record the {action} of the preview slot {}", slot.color),
    })
}

/// Steps that point every active Service at `to`, skipping those already there; the
/// state Service's patch (the first) carries `state` annotations when given.
pub(super) fn switch_services(app: &App, to: &str, state: Option<Value>, why: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for (i, svc) in app.services.iter().enumerate() {
        let annotations = if i == 0 { state.clone() } else { None };
        if svc.color.as_deref() != Some(to) || annotations.is_some() {
            steps.push(Step::PatchService {
                service: svc.name.clone(),
                patch: service_patch(&app.color_label, to, &svc.resource_version, annotations),
                why: format!("{why}: select {}={to}", app.color_label),
            });
        }
    }
    steps
}

/// The preview Service follows the slot that is not live (if it is not there yet).
pub(super) fn follow_preview(app: &App, other: &str) -> Option<Step> {
    let p = app
        .preview_service
        .as_ref()
        .filter(|p| p.exists && p.color.as_deref() != Some(other))?;
    Some(Step::PatchService {
        service: p.name.clone(),
        patch: service_patch(&app.color_label, other, &p.resource_version, None),
        why: format!(
            "preview Service follows the other slot: select {}={other}",
            app.color_label
        ),
    })
}

/// Traffic from `from` to `to` (rule 1 is the caller's check): every active Service
/// switched, the history recorded on the state Service's patch when `record` (a new
/// switch, not the finish of one), an Event whenever a Service is switched by this plan
/// (a finishing re-run cannot know whether the interrupted one recorded it), the wait
/// until the endpoints serve only `to`, then the preview Service following `from`.
pub(super) fn switch(
    app: &App,
    action: Action,
    from: &Slot,
    to: &Slot,
    actor: &Actor,
    record: bool,
) -> Result<Vec<Step>> {
    let state = record
        .then(|| switch_annotations(app, action, from, to, actor))
        .transpose()?;
    let why = match (action, record) {
        (Action::Abort | Action::AutoAbort, _) => "switch traffic back",
        (_, true) => "switch traffic",
        (_, false) => "finish the switch",
    };
    let mut steps = switch_services(app, &to.color, state, why);
    if !steps.is_empty() {
        steps.insert(
            0,
            Step::Gate {
                deployment: to.deployment.clone(),
                generation: to.generation,
            },
        );
        let (kind, reason, message) = match action {
            Action::AutoAbort => (
                "Warning",
                "AutoAborted",
                format!(
                    "traffic switched back from {} to {} automatically: the bake found a regression",
                    from.color, to.color
                ),
            ),
            Action::Abort => (
                "Warning",
                "Aborted",
                format!(
                    "traffic switched back from {} to {} by {}",
                    from.color, to.color, actor.user
                ),
            ),
            _ => (
                "Normal",
                "Promoted",
                format!(
                    "traffic switched from {} to {} ({}) by {}",
                    from.color,
                    to.color,
                    images_of(to).join(", "),
                    actor.user
                ),
            ),
        };
        steps.push(event_step(app, kind, reason, message));
    }
    steps.push(Step::WaitServing {
        services: active_service_names(app),
        deployment: to.deployment.clone(),
        color: to.color.clone(),
        color_label: app.color_label.clone(),
        hold_secs: endpoint_hold_secs(app),
    });
    steps.extend(follow_preview(app, &from.color));
    steps.extend(move_hpa(app, from, to));
    Ok(steps)
}

/// Where checks of `slot` go: through `via` (a Service's proxy, on the chosen port) and
/// through each of the slot's current pods (on the port that Service port targets).
pub(super) fn check_targets(
    app: &App,
    slot: &Slot,
    via: Option<(&str, &[ServicePort])>,
    ports: &[ServicePort],
    spec: &CheckSpec,
    pods: bool,
) -> Result<Vec<ProxyTarget>> {
    let pick = |ports: &[ServicePort]| -> Result<ServicePort> {
        let found = match &spec.port {
            Some(p) => ports
                .iter()
                .find(|sp| sp.name.as_deref() == Some(p.as_str()) || sp.port.to_string() == *p),
            None => ports.first(),
        };
        found.cloned().ok_or_else(|| {
            Error::Usage(format!(
                "--check-port {}: the app's Services have no such port (they have {})",
                spec.port.as_deref().unwrap_or("(first)"),
                ports
                    .iter()
                    .map(|p| p.name.clone().unwrap_or_else(|| p.port.to_string()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
    };
    let ns = &app.namespace;
    let mut targets = Vec::new();
    if let Some((name, via_ports)) = via {
        let p = pick(via_ports)?;
        targets.push(ProxyTarget {
            name: format!("service/{name}"),
            proxy: format!("/api/v1/namespaces/{ns}/services/{name}:{}/proxy", p.port),
        });
    }
    if pods {
        let target = pick(ports)?.target;
        for pod in app.pods.get(&slot.color).into_iter().flatten() {
            targets.push(ProxyTarget {
                name: format!("pod/{pod}"),
                proxy: format!("/api/v1/namespaces/{ns}/pods/{pod}:{target}/proxy"),
            });
        }
    }
    Ok(targets)
}

/// After a switch, watch the Services for `seconds`: a selector put back by another
/// manager (a GitOps tool syncing the old state) is caught and reported (exit 9).
pub(super) fn settle_step(app: &App, color: &str, seconds: u64) -> Option<Step> {
    (seconds > 0).then(|| Step::Settle {
        services: active_service_names(app),
        color_label: app.color_label.clone(),
        color: color.to_string(),
        seconds,
    })
}

pub(super) fn delay_step(app: &App, delay: Duration, color: &str) -> Step {
    Step::Delay {
        seconds: delay.as_secs(),
        service: app.state_service().to_string(),
        color_label: app.color_label.clone(),
        color: color.to_string(),
    }
}

/// An Event on the app's (state) Service, which `kubectl describe svc` shows.
pub(super) fn event_step(app: &App, event_type: &str, reason: &str, message: String) -> Step {
    Step::CreateEvent {
        service: app.state_service().to_string(),
        service_uid: app.services[0].uid.clone(),
        event_type: event_type.into(),
        reason: reason.into(),
        message,
        unless_recorded: None,
    }
}

/// How long a wait for endpoints holds once they serve the target slot only.
///
/// When an active Service was seen served by a slot other than the one its selector
/// names, the endpoint controller had not yet caught up with a selector change (a
/// half-switched app, a switch moments ago). A publication it computed from that older
/// selector may still land after our switch, so endpoints that look right at once do
/// not prove the other slot is out of traffic; an endpoint controller catches up within
/// about a second, so they must stay right for [`LAGGING_ENDPOINTS_HOLD`].
pub(super) fn endpoint_hold_secs(app: &App) -> u64 {
    let lagging = app.services.iter().any(|svc| {
        app.slots.iter().any(|slot| {
            svc.color.as_deref() != Some(slot.color.as_str())
                && slot.serving.iter().any(|s| s.service == svc.name)
        })
    });
    if lagging { LAGGING_ENDPOINTS_HOLD } else { 0 }
}

/// Seconds endpoints must stay right after a switch of lagging Services.
pub(super) const LAGGING_ENDPOINTS_HOLD: u64 = 3;

pub(super) fn active_service_names(app: &App) -> Vec<String> {
    app.services.iter().map(|s| s.name.clone()).collect()
}

/// A copy of a Deployment as a slot of `color`: identity, status and revision stripped,
/// the color label set on its labels, selector and pod template.
pub(super) fn copy_as_slot(
    mut d: Value,
    name: &str,
    namespace: &str,
    color_label: &str,
    color: &str,
    replicas: i32,
) -> Value {
    d["metadata"] = json!({
        "name": name,
        "namespace": namespace,
        "labels": d["metadata"]["labels"],
        "annotations": d["metadata"]["annotations"],
    });
    if let Some(a) = d["metadata"]["annotations"].as_object_mut() {
        a.retain(|k, _| {
            !k.starts_with("deployment.kubernetes.io/")
                && k != "kubectl.kubernetes.io/last-applied-configuration"
                && !k.starts_with("bluegreen.io/")
        });
    }
    for path in [
        "/metadata/labels",
        "/spec/selector/matchLabels",
        "/spec/template/metadata/labels",
    ] {
        if let Some(m) = d.pointer_mut(path).and_then(Value::as_object_mut) {
            m.insert(color_label.to_string(), json!(color));
        } else if path == "/metadata/labels" {
            d["metadata"]["labels"] = json!({color_label: color});
        }
    }
    d["spec"]["replicas"] = json!(replicas);
    if let Some(m) = d.as_object_mut() {
        m.remove("status");
    }
    d
}
