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

/// Rule 2: a live slot (selected by, or serving, any active Service) is never modified
/// or scaled down.
pub(super) fn check_not_live(app: &App, slot: &Slot, doing: &str) -> Result<()> {
    if !slot.live {
        return Ok(());
    }
    let serving: Vec<String> = app
        .services
        .iter()
        .filter(|s| {
            s.color.as_deref() == Some(slot.color.as_str())
                || slot.serving.iter().any(|v| v.service == s.name)
        })
        .map(|s| s.name.clone())
        .collect();
    Err(Error::Precondition(
        Reason::SlotIsLive,
        format!(
            "refusing to {doing}: slot {} ({}) serves live traffic through Service(s) {}{}",
            slot.color,
            slot.deployment,
            serving.join(", "),
            partial_hint(app)
        ),
    ))
}

/// Where each Service points, and the two commands that resolve a partial switch.
pub(super) fn partial_hint(app: &App) -> String {
    if services_agree(app) {
        return String::new();
    }
    format!(
        " (partially switched: {}; `kubectl bluegreen promote {}` finishes the switch, `kubectl bluegreen abort {}` reverts it)",
        where_services_point(app),
        app.name,
        app.name
    )
}

pub(super) fn where_services_point(app: &App) -> String {
    app.services
        .iter()
        .map(|s| format!("{} → {}", s.name, s.color.as_deref().unwrap_or("(none)")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Only promote and abort may act on a partially switched app.
pub(super) fn refuse_partial(app: &App, doing: &str) -> Result<()> {
    if services_agree(app) {
        return Ok(());
    }
    Err(Error::Precondition(
        Reason::PartiallySwitched,
        format!(
            "refusing to {doing}: app {} is partially switched ({}); `kubectl bluegreen promote {}` finishes the switch, `kubectl bluegreen abort {}` reverts it",
            app.name,
            where_services_point(app),
            app.name,
            app.name
        ),
    ))
}

/// A partially switched app's two ways out: (forward, back). The last recorded promote
/// names them when the Services point only at its two colors; otherwise the state
/// Service (written first by every switch) still points where traffic came from.
pub(super) fn partial_directions(app: &App) -> Option<(String, String)> {
    let colors: std::collections::BTreeSet<&str> = app
        .services
        .iter()
        .filter_map(|s| s.color.as_deref())
        .collect();
    if let Some(h) = app
        .last_switch
        .as_ref()
        .filter(|h| h.action == crate::model::Action::Promote)
        && colors.iter().all(|c| *c == h.to || *c == h.from)
    {
        return Some((h.to.clone(), h.from.clone()));
    }
    let back = app.services.first()?.color.clone()?;
    let mut others = colors.iter().filter(|c| **c != back);
    let forward = others.next()?.to_string();
    others.next().is_none().then_some((forward, back))
}

/// How long after another hand switched a Service a promote without `--to` refuses: the
/// preview it would now pick may be the version that person just moved traffic away from.
pub(super) const RECENT_SWITCH_SECS: i64 = 30;

/// A Service of the app switched moments ago by someone else (not this tool): stop, as
/// for a change made meanwhile (rule 3), rather than guess which way they meant.
pub(super) fn refuse_recent_outside_switch(app: &App, now: &str) -> Result<()> {
    let Ok(now) = now.parse::<jiff::Timestamp>() else {
        return Ok(());
    };
    for s in &app.services {
        if let (Some(who), Some(at)) = (&s.selector_manager, s.selector_changed_at)
            && who != crate::apply::FIELD_MANAGER
            && (0..RECENT_SWITCH_SECS).contains(&(now.as_second() - at.as_second()))
        {
            return Err(Error::Conflict(
                Reason::ChangedMeanwhile,
                format!(
                    "Service {} was switched to {} by {who} {}s ago, outside kubectl-bluegreen: another release may be under way; check `kubectl bluegreen status {}` (a promote can name its target with --to COLOR; otherwise re-run once the switch is {RECENT_SWITCH_SECS}s old)",
                    s.name,
                    s.color.as_deref().unwrap_or("(none)"),
                    now.as_second() - at.as_second(),
                    app.name
                ),
            ));
        }
    }
    Ok(())
}

/// What else must hold before traffic moves to `target` (beside rule 1): its pods can
/// start, every endpoint of the app's Services belongs to a slot (or the switch could
/// never be verified), and every slot selects its pods by color.
pub(super) fn check_switchable(app: &App, target: &Slot) -> Result<()> {
    if let Some(why) = &target.cannot_start {
        return Err(Error::Precondition(
            Reason::PreviewCannotStart,
            format!(
                "slot {} ({}) cannot become ready: {why}",
                target.color, target.deployment
            ),
        ));
    }
    for (reason, code) in [
        ("ForeignEndpoints", Reason::ForeignEndpoints),
        ("SelectorLacksColor", Reason::SelectorLacksColor),
    ] {
        if let Some(p) = app.problems.iter().find(|p| p.reason == reason) {
            return Err(Error::Precondition(
                code,
                format!("{}: fix that first", p.message),
            ));
        }
    }
    Ok(())
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
