//! `promote`: switch every active Service to the preview slot through the readiness gate,
//! record the switch, verify the endpoints, and optionally scale the old slot down.

use super::checks::{
    check_available, live_color, require_two_slots, services_agree, slot_by_color,
};
use super::steps::{
    active_service_names, delay_step, ensure_services, event_step, images_of, scale_step,
    switch_annotations,
};
use super::{Action, Actor, Outcome, Plan, Step};
use crate::error::{Error, Reason, Result};
use crate::model::{App, Role};
use std::time::Duration;

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
        action: Action::Promote,
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
        h.action == Action::Promote
            && h.to == live
            && preview.is_some_and(|p| p.color == h.from && p.revision == h.from_revision)
    });
    // A promote interrupted between Service writes: the state Service already switched.
    let interrupted =
        !services_agree(app) && last.is_some_and(|h| h.action == Action::Promote && h.to == live);
    let finish = match &req.to {
        Some(to) if *to == live => true,
        Some(to) if slot_by_color(app, to).is_none() => {
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
        Some(_) => false,
        None => unchanged_since_promote || interrupted,
    };
    if finish {
        let Some(live_slot) = slot_by_color(app, &live) else {
            return Err(Error::Precondition(
                Reason::ColorMatchesNoSlot,
                format!(
                    "Service {} selects {live}, but no slot has that color",
                    app.state_service()
                ),
            ));
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
        return Err(Error::Precondition(
            Reason::ServicesDisagree,
            format!(
                "the app's Services disagree on the live color ({}): fix them by hand first",
                list.join(", ")
            ),
        ));
    }
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
    plan.preconditions.push(format!(
        "all {} Service(s) agree traffic is on {live}",
        app.services.len()
    ));
    plan.preconditions
        .push(check_available(target, active.desired, req.allow_fewer)?);
    plan.from = Some(live.clone());
    plan.to = Some(target.color.clone());
    let state = switch_annotations(app, Action::Promote, active, target, actor)?;
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
}
