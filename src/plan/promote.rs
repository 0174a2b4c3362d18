//! `promote`: switch every active Service to the preview slot through the readiness gate
//! (also when finishing a partial switch), record the switch, verify the endpoints, and
//! optionally scale the old slot down once the switch is verified.

use super::checks::{
    check_available, check_switchable, live_color, partial_directions,
    refuse_recent_outside_switch, require_two_slots, services_agree, slot_by_color,
    where_services_point,
};
use super::steps::{
    active_service_names, check_targets, delay_step, endpoint_hold_secs, event_step,
    follow_preview, live_replicas, move_hpa, retire_step, settle_step, switch,
};
use super::{Action, Actor, CheckSpec, Outcome, Plan, Step, SwitchEvent};
use crate::error::{Error, Reason, Result};
use crate::model::{App, Role, Slot};
use std::time::Duration;

#[derive(Debug, Clone, Default)]
pub struct PromoteRequest {
    pub to: Option<String>,
    pub allow_fewer: bool,
    /// `--scale-down-old[=DELAY]`.
    pub scale_down_old: Option<Duration>,
    /// `--settle`: how long to watch for a switch put back by another manager (default:
    /// `DEFAULT_SETTLE` when a GitOps owner is detected, else none).
    pub settle: Option<Duration>,
    /// `--check`: HTTP checks of the preview before traffic moves (and during the bake).
    pub check: Option<CheckSpec>,
    /// `--bake`: how long to watch the new live slot, reverting on a regression.
    pub bake: Option<Duration>,
}

/// The settle period when a GitOps tool owns the app (it may sync the old selector back).
pub const DEFAULT_SETTLE: Duration = Duration::from_secs(5);

/// The settle period for `app`: the flag, else `DEFAULT_SETTLE` under a GitOps owner.
pub(super) fn settle_secs(app: &App, settle: Option<Duration>) -> u64 {
    settle
        .unwrap_or(if app.owner.is_some() {
            DEFAULT_SETTLE
        } else {
            Duration::ZERO
        })
        .as_secs()
}

pub fn promote(app: &App, req: &PromoteRequest, actor: &Actor) -> Result<Plan> {
    require_two_slots(app)?;
    let state_color = live_color(app)?;
    let last = app.last_switch.as_ref();
    let mut plan = Plan::new(Action::Promote, &app.name, &app.namespace);
    if let Some(to) = &req.to
        && slot_by_color(app, to).is_none()
    {
        return Err(Error::NotFound(
            Reason::NoSuchSlot,
            format!(
                "app {} has no slot with {}={to} (slots: {})",
                app.name,
                app.color_label,
                app.slots
                    .iter()
                    .map(|s| s.color.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }

    // A partially switched app: finish forward, through the readiness gate.
    if !services_agree(app) {
        let (forward, _back) = partial_directions(app).ok_or_else(|| {
            Error::Precondition(
                Reason::PartiallySwitched,
                format!(
                    "app {} is partially switched ({}) and its history does not say which way: switch the Services by hand",
                    app.name,
                    where_services_point(app)
                ),
            )
        })?;
        let forward = req.to.clone().unwrap_or(forward);
        let (Some(to), Some(from)) = (
            slot_by_color(app, &forward),
            app.slots.iter().find(|s| s.color != forward),
        ) else {
            return Err(Error::Precondition(
                Reason::ColorMatchesNoSlot,
                format!("no slot has the color {forward} to finish the switch to"),
            ));
        };
        plan.outcome = Outcome::Finish;
        plan.from = Some(from.color.clone());
        plan.to = Some(to.color.clone());
        plan.preconditions.push(format!(
            "partially switched ({}): finishing the switch to {forward}",
            where_services_point(app)
        ));
        plan.preconditions.push(check_available(
            to,
            live_replicas(app, from),
            req.allow_fewer,
        )?);
        check_switchable(app, to)?;
        // The history is recorded by the state Service's patch, unless it already was.
        let recorded = last.is_some_and(|h| {
            h.action == Action::Promote && h.to == forward && state_color == forward
        });
        plan.steps
            .extend(switch(app, Action::Promote, from, to, actor, !recorded)?);
        plan.steps
            .extend(settle_step(app, &to.color, settle_secs(app, req.settle)));
        scale_down_after(&mut plan, app, req, from, to);
        return Ok(plan);
    }

    let live = state_color;
    let preview = app.slot(Role::Preview);
    // An earlier promote to the live color that nothing has changed since: finish it.
    let unchanged_since_promote = last.is_some_and(|h| {
        h.action == Action::Promote
            && h.to == live
            && preview.is_some_and(|p| p.color == h.from && p.revision == h.from_revision)
    });
    let Some(active) = slot_by_color(app, &live) else {
        return Err(Error::Precondition(
            Reason::ColorMatchesNoSlot,
            format!(
                "Service {} selects {}={live}, but no slot has that color",
                app.state_service(),
                app.color_label
            ),
        ));
    };
    if req.to.as_deref() == Some(live.as_str()) || (req.to.is_none() && unchanged_since_promote) {
        let other = app.slots.iter().find(|s| s.color != live);
        plan.outcome = Outcome::Finish;
        plan.to = Some(live.clone());
        plan.from = other.map(|s| s.color.clone());
        plan.preconditions.push(format!(
            "traffic was already switched to {live}: finishing the remaining steps"
        ));
        plan.steps.push(Step::WaitServing {
            services: active_service_names(app),
            deployment: active.deployment.clone(),
            color: live.clone(),
            color_label: app.color_label.clone(),
            hold_secs: endpoint_hold_secs(app),
        });
        // The interrupted run may have died between the switch and its Event.
        if let (Some(h), Some(old)) = (last.filter(|h| h.action == Action::Promote), other) {
            let words = format!("traffic switched from {} to {live}", old.color);
            let mut event = event_step(
                app,
                "Normal",
                "Promoted",
                format!("{words} by {} (finished by {})", h.by, actor.user),
            );
            if let Step::CreateEvent {
                unless_recorded, ..
            } = &mut event
            {
                *unless_recorded = Some(SwitchEvent {
                    since: h.at.clone(),
                    words,
                });
            }
            plan.steps.push(event);
        }
        if let Some(old) = other {
            plan.steps.extend(follow_preview(app, &old.color));
            plan.steps.extend(move_hpa(app, old, active));
            // A bake the interrupted run started: resume it (to its recorded end).
            if let Some(b) = app.bake.as_ref().filter(|b| b.color == live) {
                let req = PromoteRequest {
                    check: b.checks.clone().or(req.check.clone()),
                    ..req.clone()
                };
                plan.steps
                    .extend(bake_steps(app, &req, active, b.until.clone())?);
            }
            scale_down_after(&mut plan, app, req, old, active);
        }
        return Ok(plan);
    }

    if req.to.is_none() {
        refuse_recent_outside_switch(app, &actor.now)?;
    }
    let target = match &req.to {
        Some(to) => slot_by_color(app, to).expect("checked above"),
        None => preview.ok_or_else(|| Error::Precondition(Reason::NoPreviewSlot, format!("app {} has no preview slot: create one with `kubectl bluegreen set-image {} NAME=IMAGE`", app.name, app.name)))?,
    };
    // Going back to the version that was live before is abort's job.
    if req.to.is_none()
        && app.previous_color.as_deref() == Some(target.color.as_str())
        && last.is_some_and(|h| h.from == target.color && h.from_revision == target.revision)
    {
        let h = last.expect("checked");
        return Err(Error::Precondition(
            Reason::PreviousVersion,
            format!(
                "preview slot {} is the version traffic left at the {} at {}, unchanged since: deploy a new version with `kubectl bluegreen set-image {} ...`, or pass --to {} to promote it again",
                target.color, h.action, h.at, app.name, target.color
            ),
        ));
    }
    // Promote goes forward: a preview older than the live version is a way back (which
    // is abort's job) — e.g. someone switched traffic to the new version meanwhile.
    if req.to.is_none()
        && let (Some(t), Some(l)) = (target.template_since, active.template_since)
        && t.as_second() < l.as_second()
    {
        return Err(Error::Precondition(
            Reason::PreviousVersion,
            format!(
                "preview slot {} runs an older version (since {}) than the live slot {} (since {}): promoting it would go back; `kubectl bluegreen abort {}` is the way back, or pass --to {} to promote it anyway",
                target.color,
                t.round(jiff::Unit::Second).unwrap_or(t),
                active.color,
                l.round(jiff::Unit::Second).unwrap_or(l),
                app.name,
                target.color
            ),
        ));
    }
    plan.preconditions.push(format!(
        "all {} Service(s) agree traffic is on {live}",
        app.services.len()
    ));
    plan.preconditions.push(check_available(
        target,
        live_replicas(app, active),
        req.allow_fewer,
    )?);
    check_switchable(app, target)?;
    plan.from = Some(live.clone());
    plan.to = Some(target.color.clone());
    // Proven before any traffic moves: through the preview Service and each of its pods.
    if let Some(spec) = &req.check {
        let via = app
            .preview_service
            .as_ref()
            .filter(|p| p.exists && p.color.as_deref() == Some(target.color.as_str()))
            .map(|p| (p.name.as_str(), p.ports.as_slice()));
        let ports = &app.services[0].ports;
        let targets = check_targets(app, target, via, ports, spec, true)?;
        plan.steps.push(Step::Check {
            targets,
            spec: spec.clone(),
        });
    }
    plan.steps
        .extend(switch(app, Action::Promote, active, target, actor, true)?);
    plan.steps.extend(settle_step(
        app,
        &target.color,
        settle_secs(app, req.settle),
    ));
    if let Some(bake) = req.bake {
        let until = actor
            .now
            .parse::<jiff::Timestamp>()
            .ok()
            .and_then(|t| {
                t.checked_add(jiff::SignedDuration::try_from(bake).ok()?)
                    .ok()
            })
            .map(|t| t.to_string())
            .unwrap_or_default();
        plan.steps.extend(bake_steps(app, req, target, until)?);
    }
    scale_down_after(&mut plan, app, req, active, target);
    Ok(plan)
}

/// The bake of `live`: watched until `until`, then its record cleared.
fn bake_steps(app: &App, req: &PromoteRequest, live: &Slot, until: String) -> Result<Vec<Step>> {
    let svc = &app.services[0];
    let targets = match &req.check {
        Some(spec) => check_targets(
            app,
            live,
            Some((svc.name.as_str(), svc.ports.as_slice())),
            &svc.ports,
            spec,
            false,
        )?,
        None => vec![],
    };
    Ok(vec![
        Step::Bake {
            service: svc.name.clone(),
            deployment: live.deployment.clone(),
            color: live.color.clone(),
            until,
            replicas: live_replicas(app, live).max(live.desired),
            targets,
            spec: req.check.clone(),
        },
        Step::ClearBake {
            service: svc.name.clone(),
        },
    ])
}

/// `--scale-down-old`: after the switch is verified, a delay that re-checks traffic is
/// still on `new`, then the old slot to 0 (guarded by its generation).
fn scale_down_after(plan: &mut Plan, app: &App, req: &PromoteRequest, old: &Slot, new: &Slot) {
    if let Some(delay) = req.scale_down_old
        && old.desired > 0
    {
        plan.steps.push(delay_step(app, delay, &new.color));
        plan.steps.push(retire_step(
            app,
            old,
            "scale down the old slot after the switch was verified",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HistoryEntry;
    use crate::plan::testkit::*;
    use serde_json::json;

    #[test]
    fn promote_a_fresh_app_switches_every_service_guarded_then_verifies() {
        let (app, _) = app_of(&fresh());
        let plan = promote(&app, &PromoteRequest::default(), &actor()).unwrap();
        assert_eq!(plan.outcome, Outcome::Change);
        assert_eq!(
            kinds(&plan),
            [
                "gate",
                "patch svc/shop",
                "event Promoted",
                "wait serving shop-green",
                "patch svc/shop-preview"
            ]
        );
        let Step::PatchService { patch, .. } = &plan.steps[1] else {
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
        let Step::PatchService { patch, .. } = &plan.steps[4] else {
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
                "patch svc/shop-preview",
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
    fn already_switched_finishes_and_never_flips_back() {
        let (app, _) = app_of(&promoted(3));
        let plan = promote(&app, &PromoteRequest::default(), &actor()).unwrap();
        assert_eq!(plan.outcome, Outcome::Finish);
        assert_eq!(
            kinds(&plan),
            ["wait serving shop-green", "event Promoted"],
            "nothing is switched back"
        );
        let Some(Step::CreateEvent {
            unless_recorded, ..
        }) = plan.steps.last()
        else {
            panic!()
        };
        assert_eq!(
            unless_recorded.as_ref(),
            Some(&SwitchEvent {
                since: "2026-11-21T00:00:00Z".into(),
                words: "traffic switched from blue to green".into()
            }),
            "only if the interrupted run did not record this switch's Event"
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
                "event Promoted",
                "delay 0",
                "scale deploy/shop-blue=0"
            ]
        );
    }

    #[test]
    fn a_partial_switch_is_finished_forward_through_the_readiness_gate() {
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
        // No history: the state Service (written first by every switch) is where traffic
        // came from, so forward is green, recorded now.
        let plan = promote(&app, &PromoteRequest::default(), &actor()).unwrap();
        assert_eq!(plan.to.as_deref(), Some("green"));
        assert_eq!(
            kinds(&plan),
            ["gate", "patch svc/shop", "event Promoted", "wait serving b"]
        );
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
        assert_eq!(
            kinds(&plan),
            [
                "gate",
                "patch svc/shop-grpc",
                "event Promoted",
                "wait serving b"
            ],
            "the interrupted run may have died before its Event: this one records it"
        );

        // Rule 1 holds on this path too: a green slot at 0 replicas gets no traffic.
        let (app, _) = app_of(
            &[
                svc("shop", "green", &state),
                svc("shop-grpc", "blue", label),
                deploy("a", "blue", 1, 1),
                deploy("b", "green", 0, 0),
            ]
            .concat(),
        );
        let err = promote(&app, &PromoteRequest::default(), &actor()).unwrap_err();
        assert_eq!(
            (err.exit_code(), err.reason()),
            (4, Reason::PreviewEmpty),
            "{err}"
        );
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
}
