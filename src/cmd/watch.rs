//! `status --watch`: reflectors on the app's Services, Deployments, ReplicaSets and
//! EndpointSlices (watch events, no polling; kube-runtime re-lists after a dropped or
//! expired watch), redrawn at most four times a second and only when the rendering
//! changed. Ctrl-C ends it with exit 0.

use crate::cli::Output;
use crate::env::Env;
use crate::error::Result;
use crate::model;
use crate::observe::Snapshot;
use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use std::time::Duration;

const REDRAW_EVERY: Duration = Duration::from_millis(250);

fn cloned<K: Clone + kube::Resource>(store: &Store<K>) -> Vec<K>
where
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    store.state().iter().map(|k| (**k).clone()).collect()
}

pub async fn run(env: &mut Env, app_name: &str, output: Output) -> Result<()> {
    let ns = env.conn.namespace.clone();
    let client = env.conn.client.clone();
    let (svc_r, svc_w) = reflector::store::<Service>();
    let (dep_r, dep_w) = reflector::store::<Deployment>();
    let (rs_r, rs_w) = reflector::store::<ReplicaSet>();
    let (eps_r, eps_w) = reflector::store::<EndpointSlice>();
    let cfg = watcher::Config::default();
    let events = stream::select_all(vec![
        reflector::reflector(
            svc_w,
            watcher(Api::<Service>::namespaced(client.clone(), &ns), cfg.clone()),
        )
        .default_backoff()
        .map(|e| e.is_ok())
        .boxed(),
        reflector::reflector(
            dep_w,
            watcher(
                Api::<Deployment>::namespaced(client.clone(), &ns),
                cfg.clone(),
            ),
        )
        .default_backoff()
        .map(|e| e.is_ok())
        .boxed(),
        reflector::reflector(
            rs_w,
            watcher(
                Api::<ReplicaSet>::namespaced(client.clone(), &ns),
                cfg.clone(),
            ),
        )
        .default_backoff()
        .map(|e| e.is_ok())
        .boxed(),
        reflector::reflector(
            eps_w,
            watcher(Api::<EndpointSlice>::namespaced(client.clone(), &ns), cfg),
        )
        .default_backoff()
        .map(|e| e.is_ok())
        .boxed(),
    ]);
    tokio::pin!(events);
    let ready = async {
        let _ = tokio::join!(
            svc_r.wait_until_ready(),
            dep_r.wait_until_ready(),
            rs_r.wait_until_ready(),
            eps_r.wait_until_ready()
        );
    };
    // Drive the streams until every store has its initial list.
    tokio::pin!(ready);
    loop {
        tokio::select! {
            _ = &mut ready => break,
            ev = events.next() => if ev.is_none() { return Ok(()) },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
    let mut last = String::new();
    let mut first = true;
    let mut dirty = true;
    let mut tick = tokio::time::interval(REDRAW_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick(), if dirty => {
                dirty = false;
                let snap = Snapshot { services: cloned(&svc_r), deployments: cloned(&dep_r), replicasets: cloned(&rs_r), slices: cloned(&eps_r), ..Snapshot::default() };
                let app = match model::find_app(&snap, &ns, app_name) {
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
                Some(_) => dirty = true,
                None => return Ok(()),
            },
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}
