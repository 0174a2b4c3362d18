//! `status --watch`: watches as narrow as the app's reads (its Services by name and
//! label, its Deployments, ReplicaSets and Pods by its pod labels, its EndpointSlices by
//! Service name) tell when something changed; each redraw then reads the app again the
//! way `status` does (observe::app), so a frame is always one consistent, fresh model.
//! Redrawn at most four times a second and only when the rendering changed; when the
//! app's selectors change (say, a Service switched), the watches follow. kube-runtime
//! re-lists after a dropped or expired watch. Ctrl-C ends it with exit 0.

use crate::cli::Output;
use crate::env::Env;
use crate::error::Result;
use crate::model::{self, APP_LABEL, PREVIEW_ANNOTATION, SERVICE_NAME_LABEL};
use crate::observe::{self, Reader, Snapshot};
use futures::stream::BoxStream;
use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::BTreeSet;
use std::time::Duration;

const REDRAW_EVERY: Duration = Duration::from_millis(250);

/// What the watches select, derived from the last snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selection {
    services: BTreeSet<String>,
    pod_labels: Option<String>,
    slices: Option<String>,
    deployments: BTreeSet<String>,
}

impl Selection {
    fn of(snap: &Snapshot, app: Option<&model::App>, name: &str) -> Selection {
        let mut services: BTreeSet<String> = BTreeSet::from([name.to_string()]);
        services.extend(snap.services.iter().filter_map(|s| {
            s.metadata
                .annotations
                .as_ref()?
                .get(PREVIEW_ANNOTATION)
                .cloned()
        }));
        let Some(app) = app else {
            return Selection {
                services,
                pod_labels: None,
                slices: None,
                deployments: BTreeSet::new(),
            };
        };
        let state = snap
            .services
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(app.state_service()));
        let pod_labels = state.map(|s| {
            let mut sel = model::selector_of(s);
            let key = model::color_label_of(s);
            sel.remove(&key);
            if sel.is_empty() {
                key
            } else {
                sel.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            }
        });
        let mut served: BTreeSet<String> = app.services.iter().map(|s| s.name.clone()).collect();
        served.extend(app.preview_service.iter().map(|p| p.name.clone()));
        Selection {
            services,
            pod_labels,
            slices: Some(format!(
                "{SERVICE_NAME_LABEL} in ({})",
                served.into_iter().collect::<Vec<_>>().join(",")
            )),
            deployments: app.slots.iter().map(|s| s.deployment.clone()).collect(),
        }
    }
}

/// A stream that yields whenever a watched object changes.
fn changes<K>(api: Api<K>, cfg: watcher::Config) -> BoxStream<'static, ()>
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    watcher(api, cfg).default_backoff().map(|_| ()).boxed()
}

fn watches(client: &kube::Client, ns: &str, name: &str, sel: &Selection) -> BoxStream<'static, ()> {
    let by_name = |n: &str| watcher::Config::default().fields(&format!("metadata.name={n}"));
    let mut all: Vec<BoxStream<'static, ()>> = vec![changes(
        Api::<Service>::namespaced(client.clone(), ns),
        watcher::Config::default().labels(&format!("{APP_LABEL}={name}")),
    )];
    for s in &sel.services {
        all.push(changes(
            Api::<Service>::namespaced(client.clone(), ns),
            by_name(s),
        ));
    }
    if let Some(labels) = &sel.pod_labels {
        let cfg = || watcher::Config::default().labels(labels);
        all.push(changes(
            Api::<Deployment>::namespaced(client.clone(), ns),
            cfg(),
        ));
        all.push(changes(
            Api::<ReplicaSet>::namespaced(client.clone(), ns),
            cfg(),
        ));
        all.push(changes(Api::<Pod>::namespaced(client.clone(), ns), cfg()));
    }
    for d in &sel.deployments {
        all.push(changes(
            Api::<Deployment>::namespaced(client.clone(), ns),
            by_name(d),
        ));
    }
    if let Some(slices) = &sel.slices {
        all.push(changes(
            Api::<EndpointSlice>::namespaced(client.clone(), ns),
            watcher::Config::default().labels(slices),
        ));
    }
    stream::select_all(all).boxed()
}

pub async fn run(env: &mut Env, app_name: &str, output: Output) -> Result<()> {
    // Ctrl-C is listened for by a task of its own for the whole watch, so that one coming
    // while a frame is read or drawn is kept until the loop looks again (a `ctrl_c()` made
    // anew on each turn is not listening then, and the watch would go on).
    let mut interrupted = tokio::spawn(tokio::signal::ctrl_c());
    let result = frames(env, app_name, output, &mut interrupted).await;
    interrupted.abort();
    result
}

async fn frames(
    env: &mut Env,
    app_name: &str,
    output: Output,
    interrupted: &mut tokio::task::JoinHandle<std::io::Result<()>>,
) -> Result<()> {
    let ns = env.conn.namespace.clone();
    let client = env.conn.client.clone();
    let hints = env.hints.clone();
    let reader = Reader::view(&client, env.conn.request_timeout).with_hints(hints.as_ref());
    let mut selection: Option<Selection> = None;
    let mut events: BoxStream<'static, ()> = stream::pending().boxed();
    let mut last = String::new();
    let mut first = true;
    let mut dirty = true;
    let mut tick = tokio::time::interval(REDRAW_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick(), if dirty => {
                dirty = false;
                let snap = match observe::app(&reader, &ns, app_name, None).await {
                    Ok(snap) => snap,
                    Err(e) if first => return Err(e),
                    // A failed read: say it, and try again on the next change.
                    Err(e) => { env.print(&format!("{e}\n"))?; continue; }
                };
                let found = model::find_app(&snap, &ns, app_name);
                let now = Selection::of(&snap, found.as_ref().ok(), app_name);
                if selection.as_ref() != Some(&now) {
                    events = watches(&client, &ns, app_name, &now);
                    selection = Some(now);
                }
                let app = match found {
                    Ok(app) => app,
                    Err(e) if first => return Err(e),
                    Err(e) => { env.print(&format!("{e}\n"))?; continue; }
                };
                first = false;
                let text = crate::render::status::show(std::slice::from_ref(&app), &env.conn.context, output, (env.now)(), env.style)?;
                if text != last {
                    let frame = if env.tty { format!("\x1b[H\x1b[2J{text}") } else if last.is_empty() { text.clone() } else { format!("\n{text}") };
                    env.print(&frame)?;
                    last = text;
                }
            }
            ev = events.next() => match ev {
                Some(()) => dirty = true,
                None => return Ok(()),
            },
            _ = &mut *interrupted => return Ok(()),
        }
    }
}
