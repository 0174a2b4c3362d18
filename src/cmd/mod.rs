//! One module per verb: each composes observe → model → render (and, for writes,
//! plan → apply → verify). The only place that knows verbs.

pub mod abort;
pub mod completion;
pub mod history;
pub mod init;
pub mod list;
pub mod mutate;
pub mod promote;
pub mod set_image;
pub mod status;
pub mod version;
pub mod wait;
pub mod watch;

use crate::error::{Error, Result};
use crate::model::{self, App};
use crate::observe::Snapshot;

/// Picks one app by name, or says precisely why there is none (exit 3).
pub fn find_app(apps: Vec<App>, snap: &Snapshot, namespace: &str, name: &str) -> Result<App> {
    if let Some(app) = apps.into_iter().find(|a| a.name == name) {
        return Ok(app);
    }
    let svc = snap.services.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(namespace)
            && s.metadata.name.as_deref() == Some(name)
    });
    let preview_of = snap.services.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(namespace)
            && s.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(model::PREVIEW_ANNOTATION))
                .map(String::as_str)
                == Some(name)
    });
    Err(Error::NotFound(match (svc, preview_of) {
        (_, Some(owner)) => format!(
            "{name} is the preview Service of app {}: run `kubectl bluegreen status {}`",
            model::app_name_of(owner),
            model::app_name_of(owner)
        ),
        (Some(_), None) => format!(
            "Service {name} in namespace {namespace} has no {} in its selector, so it is not a blue/green app (for an existing label such as `version`: kubectl annotate service {name} {}=version)",
            model::DEFAULT_COLOR_LABEL,
            model::COLOR_LABEL_ANNOTATION
        ),
        (None, None) => format!(
            "app {name:?} not found in namespace {namespace}: no Service named {name} or labelled {}={name} selects a color label (`kubectl bluegreen list -A` shows the apps)",
            model::APP_LABEL
        ),
    }))
}
