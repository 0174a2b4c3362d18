//! The checks planners make before they plan a write. Rule 1 of the design (traffic only
//! moves to a slot fully available at its latest generation) lives here, in
//! `check_available`, and nowhere else.

use crate::error::{Error, Reason, Result};
use crate::model::{App, Slot};

pub(super) fn slot_by_color<'a>(app: &'a App, color: &str) -> Option<&'a Slot> {
    app.slots.iter().find(|s| s.color == color)
}

pub(super) fn require_two_slots(app: &App) -> Result<()> {
    if app.slots.len() > 2 {
        let colors: Vec<&str> = app.slots.iter().map(|s| s.color.as_str()).collect();
        return Err(Error::Precondition(
            Reason::TooManySlots,
            format!(
                "app {} has {} slots ({}): a blue/green app has exactly two; remove or relabel the extra Deployments",
                app.name,
                app.slots.len(),
                colors.join(", ")
            ),
        ));
    }
    Ok(())
}

pub(super) fn live_color(app: &App) -> Result<String> {
    app.active_color.clone().ok_or_else(|| {
        Error::Precondition(
            Reason::NoLiveColor,
            format!(
                "Service {} selects no {} value",
                app.state_service(),
                app.color_label
            ),
        )
    })
}

pub(super) fn services_agree(app: &App) -> bool {
    app.services.iter().all(|s| s.color == app.active_color)
}

/// Rule 1 of the design: a slot must be fully available at its latest generation.
pub(super) fn check_available(slot: &Slot, wanted: i32, allow_fewer: bool) -> Result<String> {
    let name = format!("{} ({})", slot.color, slot.deployment);
    if let Some(c) = slot
        .conditions
        .iter()
        .find(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
    {
        return Err(Error::Precondition(
            Reason::PreviewCannotStart,
            format!(
                "preview slot {name} failed to roll out: {}",
                c.message.as_deref().unwrap_or("progress deadline exceeded")
            ),
        ));
    }
    if slot.observed_generation < slot.generation {
        return Err(Error::Precondition(
            Reason::PreviewNotReady,
            format!(
                "preview slot {name} is not rolled out: generation {} not yet observed (observed {})",
                slot.generation, slot.observed_generation
            ),
        ));
    }
    if !slot.rolled_out {
        return Err(Error::Precondition(
            Reason::PreviewNotReady,
            format!(
                "preview slot {name} is not fully available: {} desired, {} updated, {} ready, {} available, {} unavailable (wait with `kubectl bluegreen wait APP --for=preview-ready`)",
                slot.desired, slot.updated, slot.ready, slot.available, slot.unavailable
            ),
        ));
    }
    if slot.available == 0 {
        return Err(Error::Precondition(
            Reason::PreviewEmpty,
            format!(
                "preview slot {name} has no available pods: put a version on it with `kubectl bluegreen set-image`"
            ),
        ));
    }
    if slot.available < wanted && !allow_fewer {
        return Err(Error::Precondition(
            Reason::PreviewTooSmall,
            format!(
                "preview slot {name} has {} available replicas but the live slot wants {wanted} (scale it up, or pass --allow-fewer)",
                slot.available
            ),
        ));
    }
    Ok(format!(
        "{name} is rolled out at generation {} with {}/{} available",
        slot.generation, slot.available, slot.desired
    ))
}

#[cfg(test)]
mod tests {
    use crate::plan::testkit::*;
    use crate::plan::{AbortRequest, PromoteRequest, abort, promote};

    #[test]
    fn one_slot_and_three_slots_are_refused_by_every_planner() {
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
}
