//! Waiting for named conditions, from watch events (kube-runtime reflectors re-list after
//! dropped or expired watches), with the timeout explicit at every call:
//! - `rolled_out`: a Deployment rolled out at its latest generation, every replica
//!   updated, ready and available — or a failure the pods name (crash loop, image pull)
//!   or the controller names (progress deadline), reported at once (exit 4);
//! - `serving_only`: every given Service's ready endpoints are pods of one slot.

use crate::error::{Error, Reason, Result};
use crate::facts::{self, PodOwners, Rollout};
use crate::progress::Progress;
use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// A Deployment's pod selector (its `matchLabels`), read now.
async fn pod_selector(
    client: &kube::Client,
    ns: &str,
    deployment: &str,
) -> Result<BTreeMap<String, String>> {
    let d: Deployment = Api::namespaced(client.clone(), ns)
        .get(deployment)
        .await
        .map_err(|e| Error::kube(format!("read deployment {deployment}"), e))?;
    Ok(d.spec
        .and_then(|s| s.selector.match_labels)
        .unwrap_or_default())
}

fn selector_string(m: &BTreeMap<String, String>) -> String {
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A failure that ends the wait: the rollout's own verdict or a pod that cannot start.
fn rollout_failure(d: &Deployment, pods: &[std::sync::Arc<Pod>]) -> Option<String> {
    let name = d.metadata.name.clone().unwrap_or_default();
    if let Some(c) = d
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.reason.as_deref() == Some(facts::PROGRESS_DEADLINE_EXCEEDED))
        })
    {
        return Some(format!(
            "deployment {name} exceeded its progress deadline: {}",
            c.message.clone().unwrap_or_default()
        ));
    }
    let images: BTreeSet<String> = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|p| {
            p.containers
                .iter()
                .filter_map(|c| c.image.clone())
                .collect()
        })
        .unwrap_or_default();
    for p in pods {
        // Only pods of the current template count: old pods may be failing on their own.
        let current = p.spec.as_ref().is_some_and(|s| {
            s.containers
                .iter()
                .all(|c| c.image.as_ref().is_some_and(|i| images.contains(i)))
        });
        if !current {
            continue;
        }
        if let Some(why) = facts::pod_cannot_start(p) {
            return Some(format!(
                "pod {} of deployment {name} cannot become ready: {why}",
                p.metadata.name.clone().unwrap_or_default(),
            ));
        }
    }
    None
}

fn progress_line(d: &Deployment) -> String {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let st = d.status.clone().unwrap_or_default();
    format!(
        "deployment/{}: {}/{want} updated, {}/{want} ready, {}/{want} available",
        d.metadata.name.clone().unwrap_or_default(),
        st.updated_replicas.unwrap_or(0),
        st.ready_replicas.unwrap_or(0),
        st.available_replicas.unwrap_or(0)
    )
}

/// Waits until `deployment` is rolled out (exit 6 on timeout, 4 on a failure that waiting
/// cannot fix).
pub async fn rolled_out(
    at: At<'_>,
    deployment: &str,
    timeout: Duration,
    progress: &Progress,
) -> Result<()> {
    let (client, server, ns) = (at.client, at.server, at.namespace);
    let deploys: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let selector = pod_selector(client, ns, deployment).await?;
    let (d_reader, d_writer) = reflector::store::<Deployment>();
    let (p_reader, p_writer) = reflector::store::<Pod>();
    let dcfg = watcher::Config::default().fields(&format!("metadata.name={deployment}"));
    let pcfg = watcher::Config::default().labels(&selector_string(&selector));
    let events = stream::select(
        reflector::reflector(d_writer, watcher(deploys, dcfg))
            .default_backoff()
            .map(outcome)
            .boxed(),
        reflector::reflector(
            p_writer,
            watcher(Api::<Pod>::namespaced(client.clone(), ns), pcfg),
        )
        .default_backoff()
        .map(outcome)
        .boxed(),
    );
    let check = || -> Option<Result<()>> {
        let d = d_reader.state().into_iter().next()?;
        progress.update(&progress_line(&d));
        if Rollout::of(&d).is_complete() {
            return Some(Ok(()));
        }
        rollout_failure(&d, &p_reader.state())
            .map(|f| Err(Error::Precondition(Reason::PreviewCannotStart, f)))
    };
    let waited = until(
        events,
        &d_reader,
        &p_reader,
        check,
        Duration::ZERO,
        timeout,
        server,
    )
    .await;
    match waited {
        Some(r) => r,
        None => Err(Error::Timeout(format!(
            "deployment {deployment} was not rolled out within {}: {}",
            crate::render::human_duration(timeout.as_secs() as i64),
            d_reader
                .state()
                .first()
                .map(|d| progress_line(d))
                .unwrap_or_default()
        ))),
    }
}

/// Where a wait watches: the client, the API server's URL (named when the connection is
/// lost) and the namespace.
#[derive(Clone, Copy)]
pub struct At<'a> {
    pub client: &'a kube::Client,
    pub server: &'a str,
    pub namespace: &'a str,
}

/// How long watches may fail in a row before the wait reports a lost connection.
const LOST_AFTER: Duration = Duration::from_secs(8);

/// A watch event, or why the watch failed (the reflector retries with a backoff).
fn outcome<T>(e: std::result::Result<T, watcher::Error>) -> std::result::Result<(), String> {
    e.map(|_| ()).map_err(|e| match e {
        watcher::Error::InitialListFailed(k)
        | watcher::Error::WatchStartFailed(k)
        | watcher::Error::WatchFailed(k) => crate::error::describe_kube(&k),
        other => other.to_string(),
    })
}

/// Drives the watch streams until `check` decides, the stores being ready first. Watches
/// that fail for `LOST_AFTER` in a row end the wait as a lost connection to `server`,
/// rather than as a time-out much later.
async fn until<S, A, B>(
    events: S,
    a: &Store<A>,
    b: &Store<B>,
    mut check: impl FnMut() -> Option<Result<()>>,
    hold: Duration,
    timeout: Duration,
    server: &str,
) -> Option<Result<()>>
where
    S: futures::Stream<Item = std::result::Result<(), String>>,
    A: kube::Resource + Clone + 'static,
    A::DynamicType: std::hash::Hash + Eq + Clone,
    B: kube::Resource + Clone + 'static,
    B::DynamicType: std::hash::Hash + Eq + Clone,
{
    let work = async {
        tokio::pin!(events);
        let ready = async {
            let _ = tokio::join!(a.wait_until_ready(), b.wait_until_ready());
        };
        tokio::pin!(ready);
        let mut is_ready = false;
        let mut failing: Option<(tokio::time::Instant, String)> = None;
        let lost = |why: &str| {
            Some(Err(Error::Lost(format!(
                "lost the connection to the server {server} while waiting: {why}"
            ))))
        };
        // With a hold, success counts once `check` has said so without a break for
        // `hold` (re-checked on every event and when the hold is up).
        let mut held_since: Option<tokio::time::Instant> = None;
        loop {
            if is_ready {
                match check() {
                    Some(Ok(())) if !hold.is_zero() => {
                        let since = *held_since.get_or_insert_with(tokio::time::Instant::now);
                        if since.elapsed() >= hold {
                            return Some(Ok(()));
                        }
                    }
                    Some(r) => return Some(r),
                    None => held_since = None,
                }
            }
            let hold_up = held_since.map(|since| since + hold);
            let give_up = failing
                .as_ref()
                .map(|(since, _)| *since + LOST_AFTER)
                .unwrap_or_else(|| tokio::time::Instant::now() + timeout);
            tokio::select! {
                _ = &mut ready, if !is_ready => { is_ready = true; }
                e = events.next() => match e? {
                    Ok(()) => failing = None,
                    Err(why) => {
                        tracing::debug!(%why, "watch failed; retrying");
                        if failing.is_none() {
                            failing = Some((tokio::time::Instant::now(), why));
                        } else if let Some((_, last)) = failing.as_mut() {
                            *last = why;
                        }
                    }
                },
                _ = tokio::time::sleep_until(give_up), if failing.is_some() => {
                    return lost(failing.as_ref().map(|(_, w)| w.as_str()).unwrap_or(""));
                }
                _ = tokio::time::sleep_until(hold_up.unwrap_or(give_up)), if hold_up.is_some() => {}
            }
        }
    };
    tokio::time::timeout(timeout, work).await.ok().flatten()
}

/// What a Service's ready endpoints point at: pods of the slot, and the others by name.
fn endpoint_split(
    slices: &[std::sync::Arc<EndpointSlice>],
    service: &str,
    slot_rs: &BTreeSet<String>,
) -> (u32, Vec<String>) {
    let owners = PodOwners::new(slot_rs.iter().map(String::as_str));
    let (mut ours, mut others) = (0u32, Vec::new());
    for s in slices.iter().filter(|s| {
        s.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .map(String::as_str)
            == Some(service)
    }) {
        for ep in &s.endpoints {
            if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            let pod = ep
                .target_ref
                .as_ref()
                .and_then(|t| t.name.clone())
                .unwrap_or_else(|| ep.addresses.join(","));
            match owners.owner(&pod) {
                Some(_) => ours += 1,
                None => others.push(pod),
            }
        }
    }
    (ours, others)
}

/// Waits until every Service's ready endpoints are pods of `deployment` only, and at
/// least one, for `hold` without a break (exit 7 on timeout, naming what is still
/// served).
pub async fn serving_only(
    at: At<'_>,
    services: &[String],
    deployment: &str,
    color: &str,
    hold: Duration,
    timeout: Duration,
    progress: &Progress,
) -> Result<()> {
    let (client, server, ns) = (at.client, at.server, at.namespace);
    let selector = pod_selector(client, ns, deployment).await?;
    let (s_reader, s_writer) = reflector::store::<EndpointSlice>();
    let (r_reader, r_writer) = reflector::store::<ReplicaSet>();
    let scfg = watcher::Config::default().labels(&format!(
        "kubernetes.io/service-name in ({})",
        services.join(",")
    ));
    let rcfg = watcher::Config::default().labels(&selector_string(&selector));
    let events = stream::select(
        reflector::reflector(
            s_writer,
            watcher(Api::<EndpointSlice>::namespaced(client.clone(), ns), scfg),
        )
        .default_backoff()
        .map(outcome)
        .boxed(),
        reflector::reflector(
            r_writer,
            watcher(Api::<ReplicaSet>::namespaced(client.clone(), ns), rcfg),
        )
        .default_backoff()
        .map(outcome)
        .boxed(),
    );
    let describe =
        |slices: &[std::sync::Arc<EndpointSlice>], rs: &BTreeSet<String>| -> (bool, String) {
            let mut done = true;
            let mut parts = Vec::new();
            for svc in services {
                let (ours, others) = endpoint_split(slices, svc, rs);
                done &= ours > 0 && others.is_empty();
                parts.push(if others.is_empty() {
                    format!("service/{svc}: {ours} endpoint(s) on {color}")
                } else {
                    format!(
                        "service/{svc}: {ours} endpoint(s) on {color}, {} elsewhere ({})",
                        others.len(),
                        others.join(", ")
                    )
                });
            }
            (done, parts.join("; "))
        };
    let slot_rs = |r: &Store<ReplicaSet>| -> BTreeSet<String> {
        r.state()
            .iter()
            .filter(|rs| facts::owner_deployment(rs) == Some(deployment))
            .filter_map(|rs| rs.metadata.name.clone())
            .collect()
    };
    let check = || -> Option<Result<()>> {
        let (done, line) = describe(&s_reader.state(), &slot_rs(&r_reader));
        progress.update(&line);
        done.then_some(Ok(()))
    };
    match until(events, &s_reader, &r_reader, check, hold, timeout, server).await {
        Some(r) => r,
        None => {
            let (_, line) = describe(&s_reader.state(), &slot_rs(&r_reader));
            Err(Error::NotConverged(format!(
                "traffic was switched to {color}, but endpoints did not converge within {}: {line}",
                crate::render::human_duration(timeout.as_secs() as i64)
            )))
        }
    }
}
