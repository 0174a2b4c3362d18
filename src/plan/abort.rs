//! `abort`: after a promote, switch every Service back to the previous slot (scaling it up
//! and waiting for it first if needed), verify, then scale the aborted slot down; before
//! a promote, scale the preview down.

use super::checks::{check_available, live_color, require_two_slots, slot_by_color};
use super::steps::{
    active_service_names, ensure_services, event_step, scale_step, switch_annotations,
};
use super::{Action, Actor, Outcome, Plan, Step};
use crate::error::{Error, Reason, Result};
use crate::model::{App, Role};

#[derive(Debug, Clone, Default)]
pub struct AbortRequest {
    pub keep: bool,
}

pub fn abort(app: &App, req: &AbortRequest, actor: &Actor) -> Result<Plan> {
    require_two_slots(app)?;
    let live = live_color(app)?;
    let last = app.last_switch.as_ref();
    let mut plan = Plan {
        action: Action::Abort,
        app: app.name.clone(),
        namespace: app.namespace.clone(),
        outcome: Outcome::Change,
        from: None,
        to: None,
        preconditions: vec![],
        steps: vec![],
    };

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
        let state = switch_annotations(app, Action::Abort, current, prev, actor)?;
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
        Some(p) => Err(Error::Precondition(
            Reason::NothingToAbort,
            format!(
                "nothing to abort: no promote to undo, and the preview slot {} is already scaled to 0",
                p.color
            ),
        )),
        None => Err(Error::Precondition(
            Reason::NothingToAbort,
            format!("nothing to abort: app {} has no preview slot", app.name),
        )),
    }
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
}
