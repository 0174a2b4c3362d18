//! Planning: a pure function from an app's state and a request to the ordered steps that
//! reach the requested state. Plans are "ensure" plans: they contain only what is not
//! done yet, so re-planning after a crash, a Ctrl-C or a 409 finishes the job instead of
//! repeating or reversing it. Each write carries its guard: Service patches the
//! `resourceVersion` they were planned from, Deployment scale patches a JSON-patch `test`
//! of the `generation` (status updates by the controller must not fail them, spec changes
//! by someone else must), set-image the `resourceVersion`.

use crate::error::{Error, Result};
use crate::model::{self, App, HistoryEntry, Role, Slot};
use crate::observe::Snapshot;
use serde::Serialize;
use serde_json::{Value, json};
use std::time::Duration;

/// How many history entries the Service keeps.
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
    },
    /// A JSON patch of a Deployment whose first operation tests the generation.
    #[serde(rename_all = "camelCase")]
    ScaleDeployment {
        deployment: String,
        replicas: i32,
        patch: Value,
        why: String,
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
    },
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
            } => {
                format!(
                    "wait until {} serve only {color} ({deployment}) pods",
                    services
                        .iter()
                        .map(|s| format!("service/{s}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
            Step::Delay { seconds, color, .. } => {
                format!("wait {seconds}s, then check traffic is still on {color}")
            }
        }
    }
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
    pub action: &'static str,
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

/// Who acts and when (for history entries and event messages).
#[derive(Debug, Clone)]
pub struct Actor {
    pub user: String,
    pub now: String,
}

fn slot_by_color<'a>(app: &'a App, color: &str) -> Option<&'a Slot> {
    app.slots.iter().find(|s| s.color == color)
}

fn require_two_slots(app: &App) -> Result<()> {
    if app.slots.len() > 2 {
        let colors: Vec<&str> = app.slots.iter().map(|s| s.color.as_str()).collect();
        return Err(Error::Precondition(format!(
            "app {} has {} slots ({}): a blue/green app has exactly two; remove or relabel the extra Deployments",
            app.name,
            app.slots.len(),
            colors.join(", ")
        )));
    }
    Ok(())
}

fn live_color(app: &App) -> Result<String> {
    app.active_color.clone().ok_or_else(|| {
        Error::Precondition(format!(
            "Service {} selects no {} value",
            app.state_service(),
            app.color_label
        ))
    })
}

fn services_agree(app: &App) -> bool {
    app.services.iter().all(|s| s.color == app.active_color)
}

fn images_of(slot: &Slot) -> Vec<String> {
    slot.images
        .iter()
        .filter(|c| !c.init)
        .map(|c| c.image.clone())
        .collect()
}

/// The patch that points a Service at `color`, guarded by its resourceVersion.
fn service_patch(color_label: &str, color: &str, rv: &str, annotations: Option<Value>) -> Value {
    let mut p =
        json!({"metadata": {"resourceVersion": rv}, "spec": {"selector": {color_label: color}}});
    if let Some(a) = annotations {
        p["metadata"]["annotations"] = a;
    }
    p
}

fn scale_step(slot: &Slot, replicas: i32, why: &str) -> Step {
    Step::ScaleDeployment {
        deployment: slot.deployment.clone(),
        replicas,
        patch: json!([
            {"op": "test", "path": "/metadata/generation", "value": slot.generation},
            {"op": "replace", "path": "/spec/replicas", "value": replicas},
        ]),
        why: why.to_string(),
    }
}

/// The state annotations after a switch from `from` to `to`.
fn switch_annotations(
    app: &App,
    action: &str,
    from: &Slot,
    to: &Slot,
    actor: &Actor,
) -> Result<Value> {
    let mut history = app.history.clone();
    history.insert(
        0,
        HistoryEntry {
            action: action.to_string(),
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
    Ok(json!({model::PREVIOUS_COLOR_ANNOTATION: from.color, model::HISTORY_ANNOTATION: history}))
}

/// Steps that point every active Service at `to` and the preview Service at `other`,
/// skipping those already there; the state Service's patch carries `state` annotations.
fn ensure_services(app: &App, to: &str, other: &str, state: Option<Value>, why: &str) -> Vec<Step> {
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
    if let Some(p) = app
        .preview_service
        .as_ref()
        .filter(|p| p.exists && p.color.as_deref() != Some(other))
    {
        steps.push(Step::PatchService {
            service: p.name.clone(),
            patch: service_patch(&app.color_label, other, &p.resource_version, None),
            why: format!(
                "preview Service follows the other slot: select {}={other}",
                app.color_label
            ),
        });
    }
    steps
}

fn delay_step(app: &App, delay: Duration, color: &str) -> Step {
    Step::Delay {
        seconds: delay.as_secs(),
        service: app.state_service().to_string(),
        color_label: app.color_label.clone(),
        color: color.to_string(),
    }
}

/// An Event on the app's (state) Service, which `kubectl describe svc` shows.
fn event_step(app: &App, event_type: &str, reason: &str, message: String) -> Step {
    Step::CreateEvent {
        service: app.state_service().to_string(),
        service_uid: app.services[0].uid.clone(),
        event_type: event_type.into(),
        reason: reason.into(),
        message,
    }
}

fn active_service_names(app: &App) -> Vec<String> {
    app.services.iter().map(|s| s.name.clone()).collect()
}

/// Rule 1 of the design: a slot must be fully available at its latest generation.
fn check_available(slot: &Slot, wanted: i32, allow_fewer: bool) -> Result<String> {
    let name = format!("{} ({})", slot.color, slot.deployment);
    if let Some(c) = slot
        .conditions
        .iter()
        .find(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
    {
        return Err(Error::Precondition(format!(
            "preview slot {name} failed to roll out: {}",
            c.message.as_deref().unwrap_or("progress deadline exceeded")
        )));
    }
    if slot.observed_generation < slot.generation {
        return Err(Error::Precondition(format!(
            "preview slot {name} is not rolled out: generation {} not yet observed (observed {})",
            slot.generation, slot.observed_generation
        )));
    }
    if !slot.rolled_out {
        return Err(Error::Precondition(format!(
            "preview slot {name} is not fully available: {} desired, {} updated, {} ready, {} available, {} unavailable (wait with `kubectl bluegreen wait APP --for=preview-ready`)",
            slot.desired, slot.updated, slot.ready, slot.available, slot.unavailable
        )));
    }
    if slot.available == 0 {
        return Err(Error::Precondition(format!(
            "preview slot {name} has no available pods: put a version on it with `kubectl bluegreen set-image`"
        )));
    }
    if slot.available < wanted && !allow_fewer {
        return Err(Error::Precondition(format!(
            "preview slot {name} has {} available replicas but the live slot wants {wanted} (scale it up, or pass --allow-fewer)",
            slot.available
        )));
    }
    Ok(format!(
        "{name} is rolled out at generation {} with {}/{} available",
        slot.generation, slot.available, slot.desired
    ))
}

// ------------------------------------------------------------------ promote

#[derive(Debug, Clone, Default)]
pub struct PromoteRequest {
    pub to: Option<String>,
    pub allow_fewer: bool,
    /// `--scale-down-old[=DELAY]`.
    pub scale_down_old: Option<Duration>,
}

pub fn promote(app: &App, req: &PromoteRequest, actor: &Actor) -> Result<Plan> {
    require_two_slots(app)?;
    let live = live_color(app)?;
    let last = app.last_switch.as_ref();
    let preview = app.slot(Role::Preview);
    let mut plan = Plan {
        action: "promote",
        app: app.name.clone(),
        namespace: app.namespace.clone(),
        outcome: Outcome::Change,
        from: None,
        to: None,
        preconditions: vec![],
        steps: vec![],
    };

    // An earlier promote to the live color that nothing has changed since: finish it.
    let unchanged_since_promote = last.is_some_and(|h| {
        h.action == "promote"
            && h.to == live
            && preview.is_some_and(|p| p.color == h.from && p.revision == h.from_revision)
    });
    // A promote interrupted between Service writes: the state Service already switched.
    let interrupted =
        !services_agree(app) && last.is_some_and(|h| h.action == "promote" && h.to == live);
    let finish = match &req.to {
        Some(to) if *to == live => true,
        Some(to) if slot_by_color(app, to).is_none() => {
            return Err(Error::NotFound(format!(
                "app {} has no slot with {}={to} (slots: {})",
                app.name,
                app.color_label,
                app.slots
                    .iter()
                    .map(|s| s.color.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Some(_) => false,
        None => unchanged_since_promote || interrupted,
    };
    if finish {
        let Some(live_slot) = slot_by_color(app, &live) else {
            return Err(Error::Precondition(format!(
                "Service {} selects {live}, but no slot has that color",
                app.state_service()
            )));
        };
        let other = app.slots.iter().find(|s| s.color != live);
        plan.outcome = Outcome::Finish;
        plan.to = Some(live.clone());
        plan.from = other.map(|s| s.color.clone());
        plan.preconditions.push(format!(
            "traffic was already switched to {live}: finishing the remaining steps"
        ));
        plan.steps.extend(ensure_services(
            app,
            &live,
            other.map(|s| s.color.as_str()).unwrap_or(""),
            None,
            "finish the switch",
        ));
        plan.steps.push(Step::WaitServing {
            services: active_service_names(app),
            deployment: live_slot.deployment.clone(),
            color: live.clone(),
        });
        if let (Some(delay), Some(old)) = (req.scale_down_old, other)
            && old.desired > 0
        {
            plan.steps.push(delay_step(app, delay, &live));
            plan.steps.push(scale_step(
                old,
                0,
                "scale down the old slot after the switch was verified",
            ));
        }
        return Ok(plan);
    }

    if !services_agree(app) {
        let list: Vec<String> = app
            .services
            .iter()
            .map(|s| format!("{} → {}", s.name, s.color.as_deref().unwrap_or("(none)")))
            .collect();
        return Err(Error::Precondition(format!(
            "the app's Services disagree on the live color ({}): fix them by hand first",
            list.join(", ")
        )));
    }
    let Some(active) = slot_by_color(app, &live) else {
        return Err(Error::Precondition(format!(
            "Service {} selects {}={live}, but no slot has that color",
            app.state_service(),
            app.color_label
        )));
    };
    let target = match &req.to {
        Some(to) => slot_by_color(app, to).expect("checked above"),
        None => preview.ok_or_else(|| Error::Precondition(format!("app {} has no preview slot: create one with `kubectl bluegreen set-image {} NAME=IMAGE`", app.name, app.name)))?,
    };
    // Going back to the version that was live before is abort's job.
    if req.to.is_none()
        && app.previous_color.as_deref() == Some(target.color.as_str())
        && last.is_some_and(|h| h.from == target.color && h.from_revision == target.revision)
    {
        let h = last.expect("checked");
        return Err(Error::Precondition(format!(
            "preview slot {} is the version traffic left at the {} at {}, unchanged since: deploy a new version with `kubectl bluegreen set-image {} ...`, or pass --to {} to promote it again",
            target.color, h.action, h.at, app.name, target.color
        )));
    }
    plan.preconditions.push(format!(
        "all {} Service(s) agree traffic is on {live}",
        app.services.len()
    ));
    plan.preconditions
        .push(check_available(target, active.desired, req.allow_fewer)?);
    plan.from = Some(live.clone());
    plan.to = Some(target.color.clone());
    let state = switch_annotations(app, "promote", active, target, actor)?;
    plan.steps.extend(ensure_services(
        app,
        &target.color,
        &live,
        Some(state),
        "switch traffic",
    ));
    plan.steps.push(event_step(
        app,
        "Normal",
        "Promoted",
        format!(
            "traffic switched from {live} to {} ({}) by {}",
            target.color,
            images_of(target).join(", "),
            actor.user
        ),
    ));
    plan.steps.push(Step::WaitServing {
        services: active_service_names(app),
        deployment: target.deployment.clone(),
        color: target.color.clone(),
    });
    if let Some(delay) = req.scale_down_old {
        plan.steps.push(delay_step(app, delay, &target.color));
        plan.steps.push(scale_step(
            active,
            0,
            "scale down the old slot after the switch was verified",
        ));
    }
    Ok(plan)
}

// ------------------------------------------------------------------ abort

#[derive(Debug, Clone, Default)]
pub struct AbortRequest {
    pub keep: bool,
}

pub fn abort(app: &App, req: &AbortRequest, actor: &Actor) -> Result<Plan> {
    require_two_slots(app)?;
    let live = live_color(app)?;
    let last = app.last_switch.as_ref();
    let mut plan = Plan {
        action: "abort",
        app: app.name.clone(),
        namespace: app.namespace.clone(),
        outcome: Outcome::Change,
        from: None,
        to: None,
        preconditions: vec![],
        steps: vec![],
    };

    // A re-run of an interrupted (or finished) abort: make sure everything is done.
    if let Some(h) = last.filter(|h| h.action == "abort" && h.to == live)
        && let (Some(back), Some(aborted)) =
            (slot_by_color(app, &live), slot_by_color(app, &h.from))
        && aborted.revision == h.from_revision
    {
        plan.outcome = Outcome::Finish;
        plan.from = Some(h.from.clone());
        plan.to = Some(live.clone());
        plan.preconditions.push(format!(
            "traffic was already switched back to {live}: finishing the remaining steps"
        ));
        plan.steps.extend(ensure_services(
            app,
            &live,
            &h.from,
            None,
            "finish switching back",
        ));
        plan.steps.push(Step::WaitServing {
            services: active_service_names(app),
            deployment: back.deployment.clone(),
            color: live.clone(),
        });
        if !req.keep && aborted.desired > 0 {
            plan.steps
                .push(scale_step(aborted, 0, "scale down the aborted slot"));
        }
        return Ok(plan);
    }

    // After a promote (the previous slot unchanged since): switch back.
    let after_promote = last
        .filter(|h| h.action == "promote" && h.to == live)
        .and_then(|h| {
            let prev = slot_by_color(app, &h.from)?;
            (prev.revision == h.from_revision).then_some(prev)
        });
    if let Some(prev) = after_promote {
        let Some(current) = slot_by_color(app, &live) else {
            return Err(Error::Precondition(format!(
                "Service {} selects {live}, but no slot has that color",
                app.state_service()
            )));
        };
        plan.from = Some(live.clone());
        plan.to = Some(prev.color.clone());
        let wanted = current.desired.max(1);
        if prev.desired < wanted || !prev.rolled_out {
            plan.preconditions.push(format!(
                "{} has {}/{} available: scale it back up first",
                prev.color, prev.available, wanted
            ));
            if prev.desired < wanted {
                plan.steps.push(scale_step(
                    prev,
                    wanted,
                    "make the previous version available again",
                ));
            }
            plan.steps.push(Step::WaitRolledOut {
                deployment: prev.deployment.clone(),
            });
        } else {
            plan.preconditions
                .push(check_available(prev, wanted, false)?.replace("preview slot ", ""));
        }
        let state = switch_annotations(app, "abort", current, prev, actor)?;
        plan.steps.extend(ensure_services(
            app,
            &prev.color,
            &live,
            Some(state),
            "switch traffic back",
        ));
        plan.steps.push(event_step(
            app,
            "Warning",
            "Aborted",
            format!(
                "traffic switched back from {live} to {} by {}",
                prev.color, actor.user
            ),
        ));
        plan.steps.push(Step::WaitServing {
            services: active_service_names(app),
            deployment: prev.deployment.clone(),
            color: prev.color.clone(),
        });
        if !req.keep {
            plan.steps
                .push(scale_step(current, 0, "scale down the aborted slot"));
        }
        return Ok(plan);
    }

    // Before a promote: stop the preview.
    match app.slot(Role::Preview) {
        Some(p) if p.desired > 0 => {
            plan.from = Some(p.color.clone());
            plan.to = Some(live.clone());
            plan.preconditions
                .push(format!("no promote to undo: traffic stays on {live}"));
            plan.steps
                .push(scale_step(p, 0, "abort the preview before it was promoted"));
            plan.steps.push(event_step(
                app,
                "Normal",
                "PreviewAborted",
                format!("preview slot {} scaled to 0 by {}", p.color, actor.user),
            ));
            Ok(plan)
        }
        Some(p) => Err(Error::Precondition(format!(
            "nothing to abort: no promote to undo, and the preview slot {} is already scaled to 0",
            p.color
        ))),
        None => Err(Error::Precondition(format!(
            "nothing to abort: app {} has no preview slot",
            app.name
        ))),
    }
}

// ------------------------------------------------------------------ set-image

/// A copy of a Deployment as a slot of `color`: identity, status and revision stripped,
/// the color label set on its labels, selector and pod template.
fn copy_as_slot(
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

#[derive(Debug, Clone, PartialEq)]
pub struct ImageSpec {
    /// Container name, or `*` for every container.
    pub container: String,
    pub image: String,
}

/// Parses `NAME=IMAGE` arguments (exit 2 on malformed input).
pub fn parse_images(args: &[String]) -> Result<Vec<ImageSpec>> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((c, i))
                if !c.trim().is_empty()
                    && !i.trim().is_empty()
                    && !i.contains(char::is_whitespace) =>
            {
                Ok(ImageSpec {
                    container: c.trim().to_string(),
                    image: i.trim().to_string(),
                })
            }
            _ => Err(Error::Usage(format!(
                "malformed {a:?}: expected CONTAINER=IMAGE (or *=IMAGE for every container)"
            ))),
        })
        .collect()
}

#[derive(Debug, Clone, Default)]
pub struct SetImageRequest {
    pub images: Vec<ImageSpec>,
    pub replicas: Option<i32>,
    /// Color of a slot to create when the app has only one (default: blue ↔ green).
    pub color: Option<String>,
    pub wait: bool,
}

fn other_color(live: &str) -> Option<&'static str> {
    match live {
        "blue" => Some("green"),
        "green" => Some("blue"),
        _ => None,
    }
}

/// The containers (and init containers) of a pod template with new images applied.
fn image_patch_lists(
    pod_spec: &Value,
    images: &[ImageSpec],
    deployment: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let names = |list: &str| -> Vec<String> {
        pod_spec[list]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (containers, inits) = (names("containers"), names("initContainers"));
    for spec in images.iter().filter(|s| s.container != "*") {
        if !containers.contains(&spec.container) && !inits.contains(&spec.container) {
            let mut all = containers.clone();
            all.extend(inits.iter().map(|i| format!("{i} (init)")));
            return Err(Error::NotFound(format!(
                "deployment {deployment} has no container {:?}; its containers are: {}",
                spec.container,
                all.join(", ")
            )));
        }
    }
    let image_for = |name: &str| -> Option<String> {
        images
            .iter()
            .rev()
            .find(|s| s.container == name)
            .or_else(|| images.iter().rev().find(|s| s.container == "*"))
            .map(|s| s.image.clone())
    };
    let patch = |list: &[String]| -> Vec<Value> {
        list.iter()
            .filter_map(|n| image_for(n).map(|i| json!({"name": n, "image": i})))
            .collect()
    };
    Ok((patch(&containers), patch(&inits)))
}

pub fn set_image(app: &App, snap: &Snapshot, req: &SetImageRequest) -> Result<Plan> {
    require_two_slots(app)?;
    let live = live_color(app)?;
    let active = slot_by_color(app, &live).ok_or_else(|| {
        Error::Precondition(format!(
            "Service {} selects {}={live}, but no slot has that color",
            app.state_service(),
            app.color_label
        ))
    })?;
    let replicas = req.replicas.unwrap_or(active.desired);
    let mut plan = Plan {
        action: "set-image",
        app: app.name.clone(),
        namespace: app.namespace.clone(),
        outcome: Outcome::Change,
        from: None,
        to: None,
        preconditions: vec![],
        steps: vec![],
    };
    let raw = |name: &str| -> Result<Value> {
        let d = snap
            .deployments
            .iter()
            .find(|d| {
                d.metadata.namespace.as_deref() == Some(&app.namespace)
                    && d.metadata.name.as_deref() == Some(name)
            })
            .ok_or_else(|| Error::NotFound(format!("deployment {name} disappeared")))?;
        serde_json::to_value(d).map_err(|e| Error::Other(e.to_string()))
    };
    plan.preconditions.push(format!(
        "the live slot is {live} ({}); it is never touched",
        active.deployment
    ));
    match app.slot(Role::Preview) {
        Some(preview) => {
            let d = raw(&preview.deployment)?;
            let pod = &d["spec"]["template"]["spec"];
            let (containers, inits) = image_patch_lists(pod, &req.images, &preview.deployment)?;
            let mut template_spec = json!({});
            if !containers.is_empty() {
                template_spec["containers"] = json!(containers);
            }
            if !inits.is_empty() {
                template_spec["initContainers"] = json!(inits);
            }
            let patch = json!({
                "metadata": {"resourceVersion": preview.resource_version},
                "spec": {"replicas": replicas, "template": {"spec": template_spec}},
            });
            plan.from = Some(preview.color.clone());
            plan.to = Some(preview.color.clone());
            plan.steps.push(Step::PatchDeployment {
                deployment: preview.deployment.clone(),
                patch,
                why: format!(
                    "new image(s) on the preview slot {}, {replicas} replica(s) like the live slot",
                    preview.color
                ),
            });
            if req.wait {
                plan.steps.push(Step::WaitRolledOut {
                    deployment: preview.deployment.clone(),
                });
            }
        }
        None => {
            let color = match &req.color {
                Some(c) => c.clone(),
                None => other_color(&live).map(String::from).ok_or_else(|| {
                    Error::Usage(format!(
                        "the live color is {live:?}: name the new slot's color with --color VALUE"
                    ))
                })?,
            };
            if color == live {
                return Err(Error::Usage(format!(
                    "--color {color} is the live color; the new slot needs another"
                )));
            }
            if !crate::model::is_label_value(&color) {
                return Err(Error::Usage(format!(
                    "--color {color:?} is not a valid label value"
                )));
            }
            let d = raw(&active.deployment)?;
            let name = match active.deployment.rfind(&live) {
                Some(i) => format!(
                    "{}{color}{}",
                    &active.deployment[..i],
                    &active.deployment[i + live.len()..]
                ),
                None => format!("{}-{color}", active.deployment),
            };
            if snap.deployments.iter().any(|x| {
                x.metadata.namespace.as_deref() == Some(&app.namespace)
                    && x.metadata.name.as_deref() == Some(&name)
            }) {
                return Err(Error::Precondition(format!(
                    "deployment {name} already exists but is not a slot of app {}: rename it or pass --color",
                    app.name
                )));
            }
            let (containers, inits) = image_patch_lists(
                &d["spec"]["template"]["spec"],
                &req.images,
                &active.deployment,
            )?;
            let mut d = copy_as_slot(d, &name, &app.namespace, &app.color_label, &color, replicas);
            for (list, new) in [("containers", containers), ("initContainers", inits)] {
                for c in d["spec"]["template"]["spec"][list]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    if let Some(n) = new.iter().find(|n| n["name"] == c["name"]) {
                        c["image"] = n["image"].clone();
                    }
                }
            }
            plan.to = Some(color.clone());
            plan.preconditions.push(format!(
                "app has one slot: the {color} slot is created as a copy of {}",
                active.deployment
            ));
            plan.steps.push(Step::CreateDeployment {
                deployment: name.clone(),
                body: d,
                why: format!(
                    "the {color} slot, a copy of {} with the new image(s)",
                    active.deployment
                ),
            });
            if req.wait {
                plan.steps.push(Step::WaitRolledOut { deployment: name });
            }
        }
    }
    Ok(plan)
}

// ------------------------------------------------------------------ init

#[derive(Debug, Clone, Default)]
pub struct InitRequest {
    pub service: String,
    /// Adopt with this color label key instead of `bluegreen.io/color`.
    pub color_label: Option<String>,
}

pub const REPLACED_BY_ANNOTATION: &str = "bluegreen.io/replaced-by";

/// Adopting a plain Deployment + Service: blue copy → wait → switch the Service (which
/// then includes the color) → verify → green copy at 0 → the original scaled to 0 and
/// annotated. Planned from whatever part is already done, so a re-run finishes it.
pub fn init(snap: &Snapshot, namespace: &str, req: &InitRequest, actor: &Actor) -> Result<Plan> {
    let svc = snap
        .services
        .iter()
        .find(|s| {
            s.metadata.namespace.as_deref() == Some(namespace)
                && s.metadata.name.as_deref() == Some(req.service.as_str())
        })
        .ok_or_else(|| {
            Error::NotFound(format!(
                "Service {} not found in namespace {namespace}",
                req.service
            ))
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
        return Err(Error::Precondition(format!(
            "Service {} has no selector: there is nothing to adopt",
            req.service
        )));
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
        action: "init",
        app: req.service.clone(),
        namespace: namespace.to_string(),
        outcome: Outcome::Change,
        from: None,
        to: Some("blue".into()),
        preconditions: vec![],
        steps: vec![],
    };
    if !adopted && originals.len() != 1 {
        return Err(Error::Precondition(match originals.len() {
            0 => format!(
                "no Deployment's pods are selected by Service {}: nothing to adopt",
                req.service
            ),
            _ => format!(
                "{} Deployments are selected by Service {} ({}): adopt needs exactly one",
                originals.len(),
                req.service,
                originals
                    .iter()
                    .map(|d| name_of(d))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }));
    }
    let original = originals.first().copied();
    let base_name = original.map(name_of).unwrap_or_else(|| req.service.clone());
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
            req.service,
            live.as_deref().unwrap_or("")
        ));
    } else {
        plan.preconditions.push(format!(
            "Service {} selects exactly one Deployment: {base_name} ({replicas} replicas)",
            req.service
        ));
    }
    let live_color = live.clone().unwrap_or_else(|| "blue".into());
    let live_deployment = slot(&live_color)
        .map(name_of)
        .unwrap_or_else(|| blue_name.clone());
    if slot(&live_color).is_none() {
        let source = original_json.clone().ok_or_else(|| {
            Error::Precondition(format!(
                "Service {} selects {key}={live_color} but no such Deployment exists",
                req.service
            ))
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
            action: "init".into(),
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
            service: req.service.clone(),
            patch: json!({"metadata": {"resourceVersion": svc.metadata.resource_version, "annotations": ann}, "spec": {"selector": {key.clone(): "blue"}}}),
            why: format!("select {key}=blue: traffic moves to the blue slot's (ready) pods"),
        });
    }
    plan.steps.push(Step::WaitServing {
        services: vec![req.service.clone()],
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::build;
    use crate::testutil::{deploy, snap, svc};

    const PREVIEW: &str = "  annotations: {bluegreen.io/preview-service: shop-preview}\n";

    fn actor() -> Actor {
        Actor {
            user: "alice".into(),
            now: "2026-11-22T00:00:00Z".into(),
        }
    }

    fn app_of(yaml: &str) -> (App, Snapshot) {
        let s = snap(yaml);
        (build(&s).remove(0), s)
    }

    fn fresh() -> String {
        [
            svc("shop", "blue", PREVIEW),
            svc("shop-preview", "green", ""),
            deploy("shop-blue", "blue", 3, 3),
            deploy("shop-green", "green", 3, 3),
        ]
        .concat()
    }

    fn kinds(plan: &Plan) -> Vec<String> {
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
            })
            .collect()
    }

    /// The state of an app after a promote from blue to green (history recorded).
    fn promoted(blue_replicas: i32) -> String {
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

    #[test]
    fn promote_a_fresh_app_switches_every_service_guarded_then_verifies() {
        let (app, _) = app_of(&fresh());
        let plan = promote(&app, &PromoteRequest::default(), &actor()).unwrap();
        assert_eq!(plan.outcome, Outcome::Change);
        assert_eq!(
            kinds(&plan),
            [
                "patch svc/shop",
                "patch svc/shop-preview",
                "event Promoted",
                "wait serving shop-green"
            ]
        );
        let Step::PatchService { patch, .. } = &plan.steps[0] else {
            panic!()
        };
        assert_eq!(patch["spec"]["selector"]["bluegreen.io/color"], "green");
        assert!(
            patch["metadata"]["resourceVersion"].is_string(),
            "guarded by the resourceVersion it was planned from"
        );
        assert_eq!(
            patch["metadata"]["annotations"]["bluegreen.io/previous-color"],
            "blue"
        );
        let history: Vec<HistoryEntry> = serde_json::from_str(
            patch["metadata"]["annotations"]["bluegreen.io/history"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (
                history[0].action.as_str(),
                history[0].from.as_str(),
                history[0].to.as_str(),
                history[0].by.as_str()
            ),
            ("promote", "blue", "green", "alice")
        );
        let Step::PatchService { patch, .. } = &plan.steps[1] else {
            panic!()
        };
        assert_eq!(
            patch["spec"]["selector"]["bluegreen.io/color"], "blue",
            "the preview Service follows the old slot"
        );
        assert!(
            patch["metadata"].get("annotations").is_none(),
            "state lives on the app's Service only"
        );
    }

    #[test]
    fn scale_down_old_comes_after_verification_and_a_delay() {
        let (app, _) = app_of(&fresh());
        let req = PromoteRequest {
            scale_down_old: Some(Duration::from_secs(30)),
            ..Default::default()
        };
        let plan = promote(&app, &req, &actor()).unwrap();
        assert_eq!(
            kinds(&plan)[3..],
            [
                "wait serving shop-green",
                "delay 30",
                "scale deploy/shop-blue=0"
            ]
        );
        let Step::ScaleDeployment { patch, .. } = plan.steps.last().unwrap() else {
            panic!()
        };
        assert_eq!(
            patch[0],
            json!({"op": "test", "path": "/metadata/generation", "value": 2}),
            "guarded by the generation"
        );
    }

    #[test]
    fn promote_refuses_a_preview_that_is_not_fully_available() {
        let (app, _) = app_of(
            &[
                svc("shop", "blue", ""),
                deploy("shop-blue", "blue", 3, 3),
                deploy("shop-green", "green", 3, 2),
            ]
            .concat(),
        );
        let err = promote(&app, &PromoteRequest::default(), &actor()).unwrap_err();
        assert_eq!(err.exit_code(), 4);
        assert!(err.to_string().contains("not fully available"), "{err}");
        // Fewer replicas than the live slot wants needs --allow-fewer; none available never passes.
        let (app, _) = app_of(
            &[
                svc("shop", "blue", ""),
                deploy("shop-blue", "blue", 3, 3),
                deploy("shop-green", "green", 2, 2),
            ]
            .concat(),
        );
        assert!(
            promote(&app, &PromoteRequest::default(), &actor())
                .unwrap_err()
                .to_string()
                .contains("--allow-fewer")
        );
        assert!(
            promote(
                &app,
                &PromoteRequest {
                    allow_fewer: true,
                    ..Default::default()
                },
                &actor()
            )
            .is_ok()
        );
        let (app, _) = app_of(
            &[
                svc("shop", "blue", ""),
                deploy("shop-blue", "blue", 3, 3),
                deploy("shop-green", "green", 0, 0),
            ]
            .concat(),
        );
        assert!(
            promote(
                &app,
                &PromoteRequest {
                    allow_fewer: true,
                    ..Default::default()
                },
                &actor()
            )
            .unwrap_err()
            .to_string()
            .contains("no available pods")
        );
    }

    #[test]
    fn one_slot_and_three_slots() {
        let (app, _) =
            app_of(&[svc("shop", "blue", ""), deploy("shop-blue", "blue", 3, 3)].concat());
        assert!(
            promote(&app, &PromoteRequest::default(), &actor())
                .unwrap_err()
                .to_string()
                .contains("no preview slot")
        );
        let (app, _) = app_of(
            &[
                svc("shop", "blue", ""),
                deploy("a", "blue", 1, 1),
                deploy("b", "green", 1, 1),
                deploy("c", "red", 1, 1),
            ]
            .concat(),
        );
        for err in [
            promote(&app, &PromoteRequest::default(), &actor()).unwrap_err(),
            abort(&app, &AbortRequest::default(), &actor()).unwrap_err(),
        ] {
            assert_eq!(err.exit_code(), 4);
            assert!(
                err.to_string().contains("3 slots (blue, green, red)"),
                "{err}"
            );
        }
    }

    #[test]
    fn already_switched_finishes_and_never_flips_back() {
        let (app, _) = app_of(&promoted(3));
        let plan = promote(&app, &PromoteRequest::default(), &actor()).unwrap();
        assert_eq!(plan.outcome, Outcome::Finish);
        assert_eq!(
            kinds(&plan),
            ["wait serving shop-green"],
            "nothing is switched back"
        );
        let plan = promote(
            &app,
            &PromoteRequest {
                to: Some("green".into()),
                scale_down_old: Some(Duration::ZERO),
                ..Default::default()
            },
            &actor(),
        )
        .unwrap();
        assert_eq!(
            kinds(&plan),
            [
                "wait serving shop-green",
                "delay 0",
                "scale deploy/shop-blue=0"
            ]
        );
    }

    #[test]
    fn disagreeing_services_refuse_unless_a_promote_was_interrupted() {
        let label = "  labels: {bluegreen.io/app: shop}\n";
        let (app, _) = app_of(
            &[
                svc("shop", "blue", label),
                svc("shop-grpc", "green", label),
                deploy("a", "blue", 1, 1),
                deploy("b", "green", 1, 1),
            ]
            .concat(),
        );
        let err = promote(&app, &PromoteRequest::default(), &actor()).unwrap_err();
        assert!(err.to_string().contains("disagree"), "{err}");
        // The state Service (first by name) was switched and recorded; the second was not.
        let history = r#"[{"action":"promote","from":"blue","to":"green","at":"2026-11-21T00:00:00Z","fromRevision":"4","toRevision":"4"}]"#;
        let state = format!(
            "  labels: {{bluegreen.io/app: shop}}\n  annotations: {{bluegreen.io/history: '{history}', bluegreen.io/previous-color: blue}}\n"
        );
        let (app, _) = app_of(
            &[
                svc("shop", "green", &state),
                svc("shop-grpc", "blue", label),
                deploy("a", "blue", 1, 1),
                deploy("b", "green", 1, 1),
            ]
            .concat(),
        );
        let plan = promote(&app, &PromoteRequest::default(), &actor()).unwrap();
        assert_eq!(plan.outcome, Outcome::Finish);
        assert_eq!(kinds(&plan), ["patch svc/shop-grpc", "wait serving b"]);
    }

    #[test]
    fn the_previous_version_is_not_promoted_again_after_an_abort() {
        let history = r#"[{"action":"abort","from":"green","to":"blue","at":"2026-11-21T00:00:00Z","fromRevision":"4","toRevision":"4"}]"#;
        let ann = format!(
            "  annotations: {{bluegreen.io/previous-color: green, bluegreen.io/history: '{history}'}}\n"
        );
        let (app, _) = app_of(
            &[
                svc("shop", "blue", &ann),
                deploy("shop-blue", "blue", 3, 3),
                deploy("shop-green", "green", 3, 3),
            ]
            .concat(),
        );
        let err = promote(&app, &PromoteRequest::default(), &actor()).unwrap_err();
        assert_eq!(err.exit_code(), 4);
        assert!(err.to_string().contains("--to green"), "{err}");
        assert!(
            promote(
                &app,
                &PromoteRequest {
                    to: Some("green".into()),
                    ..Default::default()
                },
                &actor()
            )
            .is_ok(),
            "--to overrides"
        );
        // After set-image the revision differs: a new version, promoted normally.
        let (app, _) = app_of(
            &[
                svc("shop", "blue", &ann),
                deploy("shop-blue", "blue", 3, 3),
                deploy("shop-green", "green", 3, 3).replace("revision: \"4\"}", "revision: \"5\"}"),
            ]
            .concat(),
        );
        assert!(promote(&app, &PromoteRequest::default(), &actor()).is_ok());
    }

    #[test]
    fn abort_after_promote_switches_back_and_scales_the_aborted_slot() {
        let (app, _) = app_of(&promoted(3));
        let plan = abort(&app, &AbortRequest::default(), &actor()).unwrap();
        assert_eq!(
            (plan.from.as_deref(), plan.to.as_deref()),
            (Some("green"), Some("blue"))
        );
        assert_eq!(
            kinds(&plan),
            [
                "patch svc/shop",
                "patch svc/shop-preview",
                "event Aborted",
                "wait serving shop-blue",
                "scale deploy/shop-green=0"
            ]
        );
        let plan = abort(&app, &AbortRequest { keep: true }, &actor()).unwrap();
        assert!(
            !kinds(&plan).iter().any(|k| k.starts_with("scale")),
            "--keep"
        );
    }

    #[test]
    fn abort_scales_a_scaled_down_previous_color_up_first() {
        let (app, _) = app_of(&promoted(0));
        let plan = abort(&app, &AbortRequest::default(), &actor()).unwrap();
        assert_eq!(
            kinds(&plan)[..3],
            [
                "scale deploy/shop-blue=3",
                "wait rollout shop-blue",
                "patch svc/shop"
            ]
        );
    }

    #[test]
    fn abort_before_a_promote_stops_the_preview_and_nothing_to_abort_is_exit_4() {
        let (app, _) = app_of(&fresh());
        let plan = abort(&app, &AbortRequest::default(), &actor()).unwrap();
        assert_eq!(
            kinds(&plan),
            ["scale deploy/shop-green=0", "event PreviewAborted"]
        );
        let (app, _) = app_of(
            &[
                svc("shop", "blue", ""),
                deploy("shop-blue", "blue", 3, 3),
                deploy("shop-green", "green", 0, 0),
            ]
            .concat(),
        );
        let err = abort(&app, &AbortRequest::default(), &actor()).unwrap_err();
        assert_eq!(err.exit_code(), 4);
        assert!(err.to_string().starts_with("nothing to abort"), "{err}");
    }

    #[test]
    fn set_image_patches_only_the_preview_or_creates_it() {
        let (app, s) = app_of(&fresh());
        let req = SetImageRequest {
            images: parse_images(&["web=web:2".into()]).unwrap(),
            wait: true,
            ..Default::default()
        };
        let plan = set_image(&app, &s, &req).unwrap();
        assert_eq!(
            kinds(&plan),
            ["patch deploy/shop-green", "wait rollout shop-green"]
        );
        let Step::PatchDeployment { patch, .. } = &plan.steps[0] else {
            panic!()
        };
        assert_eq!(
            patch["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "web:2"}])
        );
        assert_eq!(patch["spec"]["replicas"], 3, "scaled like the live slot");
        let err = set_image(
            &app,
            &s,
            &SetImageRequest {
                images: parse_images(&["api=x:1".into()]).unwrap(),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 3);
        assert!(err.to_string().contains("its containers are: web"), "{err}");

        let (app, s) =
            app_of(&[svc("shop", "blue", ""), deploy("shop-blue", "blue", 3, 3)].concat());
        let plan = set_image(
            &app,
            &s,
            &SetImageRequest {
                images: parse_images(&["*=web:2".into()]).unwrap(),
                ..Default::default()
            },
        )
        .unwrap();
        let Step::CreateDeployment {
            deployment, body, ..
        } = &plan.steps[0]
        else {
            panic!()
        };
        assert_eq!(deployment, "shop-green");
        assert_eq!(
            body["spec"]["selector"]["matchLabels"]["bluegreen.io/color"],
            "green"
        );
        assert_eq!(
            body["spec"]["template"]["metadata"]["labels"]["bluegreen.io/color"],
            "green"
        );
        assert_eq!(
            body["spec"]["template"]["spec"]["containers"][0]["image"],
            "web:2"
        );
        assert!(
            body["status"].is_null()
                && body["metadata"]["uid"].is_null()
                && body["metadata"]["resourceVersion"].is_null()
        );
        assert!(
            body["metadata"]["annotations"]
                .get("deployment.kubernetes.io/revision")
                .is_none()
        );
    }

    #[test]
    fn malformed_images_are_usage_errors() {
        for bad in ["web", "=x:1", "web=", "web=a b"] {
            assert_eq!(
                parse_images(&[bad.to_string()]).unwrap_err().exit_code(),
                2,
                "{bad}"
            );
        }
    }
}
