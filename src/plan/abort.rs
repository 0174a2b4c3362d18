//! `abort`: after a promote (or from a partial switch), switch every Service back to the
//! previous slot through the readiness gate (scaling it up and waiting for it first if
//! needed, then re-planning), verify, then scale the aborted slot down; before a promote,
//! record the abort and scale the preview down (never a live slot).

use super::checks::{
    check_available, check_not_live, live_color, partial_directions, refuse_recent_outside_switch,
    require_two_slots, services_agree, slot_by_color, where_services_point,
};
use super::promote::settle_secs;
use super::steps::{
    active_service_names, endpoint_hold_secs, event_step, follow_preview, live_replicas, move_hpa,
    record_step, retire_step, scale_step, settle_step, switch,
};
use super::{Action, Actor, Outcome, Plan, Step, SwitchEvent};
use crate::error::{Error, Reason, Result};
use crate::model::{App, Role, Slot};

#[derive(Debug, Clone, Default)]
pub struct AbortRequest {
    pub keep: bool,
    /// `--settle` (see `PromoteRequest::settle`).
    pub settle: Option<std::time::Duration>,
    /// Set when a failed bake reverts on its own: recorded as `auto-abort` with it.
    pub reason: Option<String>,
}

pub fn abort(app: &App, req: &AbortRequest, actor: &Actor) -> Result<Plan> {
    require_two_slots(app)?;
    let state_color = live_color(app)?;
    let last = app.last_switch.as_ref();
    let mut plan = Plan::new(Action::Abort, &app.name, &app.namespace);

    // A partially switched app: every Service back, through the readiness gate.
    if !services_agree(app) {
        let (forward, back) = partial_directions(app).ok_or_else(|| {
            Error::Precondition(
                Reason::PartiallySwitched,
                format!(
                    "app {} is partially switched ({}) and its history does not say which way: switch the Services by hand",
                    app.name,
                    where_services_point(app)
                ),
            )
        })?;
        let (Some(to), Some(from)) = (slot_by_color(app, &back), slot_by_color(app, &forward))
        else {
            return Err(Error::Precondition(
                Reason::ColorMatchesNoSlot,
                format!("no slot has the color {back} to switch back to"),
            ));
        };
        plan.from = Some(forward.clone());
        plan.to = Some(back.clone());
        plan.preconditions.push(format!(
            "partially switched ({}): switching every Service back to {back}",
            where_services_point(app)
        ));
        if !bring_back(&mut plan, to, live_replicas(app, from).max(1))? {
            return Ok(plan);
        }
        let recorded = last.is_some_and(|h| h.action == Action::Abort && h.to == back);
        plan.steps
            .extend(switch(app, Action::Abort, from, to, actor, !recorded)?);
        plan.steps
            .extend(settle_step(app, &back, settle_secs(app, req.settle)));
        if !req.keep {
            plan.steps
                .push(retire_step(app, from, "scale down the aborted slot"));
        }
        return Ok(plan);
    }
    let live = state_color;

    // A re-run of an interrupted (or finished) abort: make sure everything is done.
    if let Some(h) = last.filter(|h| h.action == Action::Abort && h.to == live)
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
        plan.steps.push(Step::WaitServing {
            services: active_service_names(app),
            deployment: back.deployment.clone(),
            color: live.clone(),
            color_label: app.color_label.clone(),
            hold_secs: endpoint_hold_secs(app),
        });
        // The interrupted run may have died between the switch and its Event.
        let words = format!("traffic switched back from {} to {live}", h.from);
        let mut event = event_step(
            app,
            "Warning",
            "Aborted",
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
        plan.steps.extend(follow_preview(app, &h.from));
        plan.steps.extend(move_hpa(app, aborted, back));
        if !req.keep && aborted.desired > 0 {
            plan.steps
                .push(retire_step(app, aborted, "scale down the aborted slot"));
        }
        return Ok(plan);
    }

    // After a promote (the previous slot unchanged since): switch back.
    let after_promote = last
        .filter(|h| h.action == Action::Promote && h.to == live)
        .and_then(|h| {
            let prev = slot_by_color(app, &h.from)?;
            (prev.revision == h.from_revision).then_some(prev)
        });
    if let Some(prev) = after_promote {
        let Some(current) = slot_by_color(app, &live) else {
            return Err(Error::Precondition(
                Reason::ColorMatchesNoSlot,
                format!(
                    "Service {} selects {live}, but no slot has that color",
                    app.state_service()
                ),
            ));
        };
        plan.from = Some(live.clone());
        plan.to = Some(prev.color.clone());
        refuse_recent_outside_switch(app, &actor.now)?;
        if !bring_back(&mut plan, prev, live_replicas(app, current).max(1))? {
            return Ok(plan);
        }
        let action = if req.reason.is_some() {
            Action::AutoAbort
        } else {
            Action::Abort
        };
        plan.steps
            .extend(switch(app, action, current, prev, actor, true)?);
        plan.steps
            .extend(settle_step(app, &prev.color, settle_secs(app, req.settle)));
        if !req.keep {
            plan.steps
                .push(retire_step(app, current, "scale down the aborted slot"));
        }
        return Ok(plan);
    }

    // Before a promote: stop the preview (never a live one). The history entry is
    // written first, so that a re-run after a crash knows the abort was started.
    let Some(p) = app.slot(Role::Preview) else {
        return Err(Error::Precondition(
            Reason::NothingToAbort,
            format!("nothing to abort: app {} has no preview slot", app.name),
        ));
    };
    let started = last.is_some_and(|h| {
        h.action == Action::AbortPreview && h.from == p.color && h.from_revision == p.revision
    });
    if p.desired == 0 && !started {
        return Err(Error::Precondition(
            Reason::NothingToAbort,
            format!(
                "nothing to abort: no promote to undo, and the preview slot {} is already scaled to 0",
                p.color
            ),
        ));
    }
    check_not_live(app, p, "scale the preview down")?;
    plan.from = Some(p.color.clone());
    plan.preconditions
        .push(format!("no promote to undo: traffic stays on {live}"));
    if started {
        plan.outcome = Outcome::Finish;
    } else {
        plan.steps
            .push(record_step(app, Action::AbortPreview, p, &live, actor)?);
    }
    if p.desired > 0 {
        plan.steps.push(retire_step(
            app,
            p,
            "abort the preview before it was promoted",
        ));
    }
    if !started {
        plan.steps.push(event_step(
            app,
            "Normal",
            "PreviewAborted",
            format!("preview slot {} scaled to 0 by {}", p.color, actor.user),
        ));
    }
    Ok(plan)
}

/// Rule 1 on the way back: the previous slot must be fully available before traffic
/// returns to it. If it is not, the plan scales it up, waits, and asks to be made again
/// (`Replan`) so that the switch is planned from what the cluster shows after the wait.
/// Returns whether the switch may be planned now.
fn bring_back(plan: &mut Plan, prev: &Slot, wanted: i32) -> Result<bool> {
    if prev.desired >= wanted && prev.rolled_out && prev.available >= wanted {
        plan.preconditions
            .push(check_available(prev, wanted, false)?.replace("preview slot ", ""));
        return Ok(true);
    }
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
    plan.steps.push(Step::Replan {
        why: format!(
            "re-check {} before switching traffic back to it",
            prev.color
        ),
    });
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testkit::*;

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
                "gate",
                "patch svc/shop",
                "event Aborted",
                "wait serving shop-blue",
                "patch svc/shop-preview",
                "scale deploy/shop-green=0"
            ],
            "the preview Service follows once traffic is verified back"
        );
        let plan = abort(
            &app,
            &AbortRequest {
                keep: true,
                ..Default::default()
            },
            &actor(),
        )
        .unwrap();
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
            kinds(&plan),
            [
                "scale deploy/shop-blue=3",
                "wait rollout shop-blue",
                "replan"
            ],
            "the switch back is planned only after the wait, from what the cluster shows then"
        );
        // Once blue is back, the re-plan switches.
        let (app, _) = app_of(&promoted(3));
        let plan = abort(&app, &AbortRequest::default(), &actor()).unwrap();
        assert_eq!(kinds(&plan)[..2], ["gate", "patch svc/shop"]);
    }

    #[test]
    fn abort_before_a_promote_stops_the_preview_and_nothing_to_abort_is_exit_4() {
        let (app, _) = app_of(&fresh());
        let plan = abort(&app, &AbortRequest::default(), &actor()).unwrap();
        assert_eq!(
            kinds(&plan),
            [
                "patch svc/shop",
                "scale deploy/shop-green=0",
                "event PreviewAborted"
            ],
            "recorded first, so that a re-run after a crash knows"
        );
        let Step::PatchService { patch, .. } = &plan.steps[0] else {
            panic!()
        };
        assert!(
            patch["spec"].is_null(),
            "traffic does not move: only the history is written"
        );
        assert!(plan.to.is_none());
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
}
