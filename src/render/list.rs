//! `list`: one row per app.

use super::{age, short_image, table};
use crate::model::{App, Role};

fn images(app: &App, role: Role) -> String {
    match app.slot(role) {
        None => "-".into(),
        Some(s) => s
            .images
            .iter()
            .filter(|c| !c.init)
            .map(|c| short_image(&c.image))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// The table's header, with a NAMESPACE column over all namespaces.
fn header(all_namespaces: bool) -> Vec<&'static str> {
    let mut header = vec![
        "APP",
        "ACTIVE",
        "ACTIVE IMAGES",
        "PREVIEW IMAGES",
        "READY",
        "LAST SWITCH",
        "PROBLEMS",
    ];
    if all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    header
}

/// One app's row: all `list` keeps of an app (over thousands of apps, rows are made as
/// each namespace is read, and the apps dropped).
pub fn row(a: &App, all_namespaces: bool, now: jiff::Timestamp) -> Vec<String> {
    let ready = a
        .slot(Role::Active)
        .map(|s| format!("{}/{}", s.ready, s.desired))
        .unwrap_or_else(|| "-".into());
    let last = a
        .last_switch
        .as_ref()
        .map(|h| format!("{} {} ago", h.action, age(Some(&h.at), now)))
        .unwrap_or_else(|| "-".into());
    let problems = if a.problems.is_empty() {
        "-".into()
    } else {
        a.problems
            .iter()
            .map(|p| p.reason)
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut row = vec![
        a.name.clone(),
        a.active_color.clone().unwrap_or_else(|| "?".into()),
        images(a, Role::Active),
        images(a, Role::Preview),
        ready,
        last,
        problems,
    ];
    if all_namespaces {
        row.insert(0, a.namespace.clone());
    }
    row
}

pub fn render(apps: &[App], all_namespaces: bool, now: jiff::Timestamp) -> String {
    let rows: Vec<Vec<String>> = apps.iter().map(|a| row(a, all_namespaces, now)).collect();
    render_rows(&rows, all_namespaces)
}

/// The table of rows made by [`row`].
pub fn render_rows(rows: &[Vec<String>], all_namespaces: bool) -> String {
    table(&header(all_namespaces), rows)
}
