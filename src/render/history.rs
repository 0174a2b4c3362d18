//! `history`: the recorded switches of one app, newest first, and its document.

use super::{age, table};
use crate::model::{App, HistoryEntry};
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppHistory<'a> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub app: &'a str,
    pub namespace: &'a str,
    pub service: &'a str,
    pub items: &'a [HistoryEntry],
}

impl<'a> AppHistory<'a> {
    pub fn new(app: &'a App) -> Self {
        AppHistory {
            api_version: super::API_VERSION,
            kind: "AppHistory",
            app: &app.name,
            namespace: &app.namespace,
            service: app.state_service(),
            items: &app.history,
        }
    }
}

pub fn render(app: &App, now: jiff::Timestamp) -> String {
    if app.history.is_empty() {
        return format!(
            "No switches recorded for app {} (Service {}).\n",
            app.name,
            app.state_service()
        );
    }
    let rows: Vec<Vec<String>> = app
        .history
        .iter()
        .map(|h| {
            vec![
                h.at.clone(),
                age(Some(&h.at), now),
                h.action.to_string(),
                h.from.clone(),
                h.to.clone(),
                if h.by.is_empty() {
                    "-".into()
                } else {
                    h.by.clone()
                },
                if h.images.is_empty() {
                    "-".into()
                } else {
                    h.images.join(", ")
                },
            ]
        })
        .collect();
    table(
        &["AT", "AGE", "ACTION", "FROM", "TO", "BY", "IMAGES"],
        &rows,
    )
}
