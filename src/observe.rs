//! Snapshots of the cluster for the model and the planners (waits watch in `verify`, the
//! Lease reads itself in `lease`). One snapshot = Services, Deployments, ReplicaSets,
//! EndpointSlices, Pods and HorizontalPodAutoscalers of a namespace (or all), listed
//! concurrently, one paginated list per kind: the request count does not grow with the
//! number of apps. Pods are kept only as far as the model reads them (owner, template
//! hash, container states).
//!
//! Why whole-namespace lists rather than label selectors: slots are found by their
//! *pod-template* labels (design §2), which the API cannot select Deployments by, and an
//! app is found by name or by label, which no single selector expresses.

use crate::error::{Error, Result};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;
use std::fmt::Debug;
use std::time::Duration;

/// Where to look.
#[derive(Debug, Clone)]
pub enum Scope {
    Namespace(String),
    All,
}

/// Everything the model needs, as read at one moment.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    pub services: Vec<Service>,
    pub deployments: Vec<Deployment>,
    pub replicasets: Vec<ReplicaSet>,
    pub slices: Vec<EndpointSlice>,
    /// Reduced to what `facts::pod_cannot_start` and attribution read.
    pub pods: Vec<Pod>,
    /// autoscaling/v2: the ones targeting a slot follow the live slot.
    pub hpas: Vec<HorizontalPodAutoscaler>,
}

const PAGE: u32 = 500;

fn api<K>(client: &kube::Client, scope: &Scope) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    match scope {
        Scope::Namespace(ns) => Api::namespaced(client.clone(), ns),
        Scope::All => Api::all(client.clone()),
    }
}

fn describe(scope: &Scope) -> String {
    match scope {
        Scope::Namespace(ns) => format!("in namespace {ns}"),
        Scope::All => "in all namespaces".into(),
    }
}

/// Lists every object of a kind, page by page, passing each object through `trim`.
async fn list_all<K>(
    api: Api<K>,
    what: &str,
    scope: &Scope,
    timeout: Option<Duration>,
    trim: fn(&mut K),
) -> Result<Vec<K>>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    let mut items = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        tracing::debug!(kind = what, scope = %describe(scope), continue_ = params.continue_token.is_some(), "list");
        let call = api.list(&params);
        let page = match timeout {
            Some(t) => tokio::time::timeout(t, call).await.map_err(|_| {
                Error::Timeout(format!(
                    "listing {what} {} took longer than --request-timeout",
                    describe(scope)
                ))
            })?,
            None => call.await,
        }
        .map_err(|e| Error::kube(format!("list {what} {}", describe(scope)), e))?;
        items.extend(page.items.into_iter().map(|mut k| {
            trim(&mut k);
            k
        }));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => {
                tracing::info!(kind = what, count = items.len(), "listed");
                return Ok(items);
            }
        }
    }
}

/// How much of each object to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Whole objects: the write side copies Deployments.
    Full,
    /// What the model reads: pod templates keep only labels and container names and
    /// images, and the large last-applied annotation is dropped. Read-only commands over
    /// thousands of apps then hold a fraction of the memory.
    Lean,
}

fn keep<K>(_: &mut K) {}

fn lean_template(t: &mut k8s_openapi::api::core::v1::PodTemplateSpec) {
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    if let Some(m) = t.metadata.as_mut() {
        m.annotations = None;
    }
    if let Some(spec) = t.spec.as_mut() {
        let slim = |c: &Container| Container {
            name: c.name.clone(),
            image: c.image.clone(),
            ..Default::default()
        };
        *spec = PodSpec {
            containers: spec.containers.iter().map(slim).collect(),
            init_containers: spec
                .init_containers
                .as_ref()
                .map(|cs| cs.iter().map(slim).collect()),
            ..Default::default()
        };
    }
}

fn lean_meta(m: &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) {
    m.managed_fields = None;
    if let Some(a) = m.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
    }
}

/// A pod as the model reads it: identity, labels, owner, deletion, container states.
fn lean_pod(p: &mut Pod) {
    use k8s_openapi::api::core::v1::PodStatus;
    lean_meta(&mut p.metadata);
    p.metadata.annotations = None;
    p.spec = None;
    if let Some(st) = p.status.take() {
        p.status = Some(PodStatus {
            container_statuses: st.container_statuses,
            init_container_statuses: st.init_container_statuses,
            phase: st.phase,
            ..Default::default()
        });
    }
}

fn lean_deployment(d: &mut Deployment) {
    lean_meta(&mut d.metadata);
    if let Some(s) = d.spec.as_mut() {
        lean_template(&mut s.template);
    }
}

fn lean_replicaset(r: &mut ReplicaSet) {
    lean_meta(&mut r.metadata);
    if let Some(s) = r.spec.as_mut()
        && let Some(t) = s.template.as_mut()
    {
        lean_template(t);
    }
}

/// Reads a snapshot: four concurrent paginated lists.
pub async fn snapshot(
    client: &kube::Client,
    scope: &Scope,
    timeout: Option<Duration>,
) -> Result<Snapshot> {
    snapshot_with(client, scope, timeout, Detail::Full).await
}

pub async fn snapshot_with(
    client: &kube::Client,
    scope: &Scope,
    timeout: Option<Duration>,
    detail: Detail,
) -> Result<Snapshot> {
    let lean = detail == Detail::Lean;
    let trim_d: fn(&mut Deployment) = if lean { lean_deployment } else { keep };
    let trim_r: fn(&mut ReplicaSet) = if lean { lean_replicaset } else { keep };
    let (services, deployments, replicasets, slices, pods, hpas) = tokio::try_join!(
        list_all(
            api::<Service>(client, scope),
            "services",
            scope,
            timeout,
            keep
        ),
        list_all(
            api::<Deployment>(client, scope),
            "deployments",
            scope,
            timeout,
            trim_d
        ),
        list_all(
            api::<ReplicaSet>(client, scope),
            "replicasets",
            scope,
            timeout,
            trim_r
        ),
        list_all(
            api::<EndpointSlice>(client, scope),
            "endpointslices",
            scope,
            timeout,
            keep
        ),
        list_all(api::<Pod>(client, scope), "pods", scope, timeout, lean_pod),
        list_all(
            api::<HorizontalPodAutoscaler>(client, scope),
            "horizontalpodautoscalers",
            scope,
            timeout,
            |h| lean_meta(&mut h.metadata)
        ),
    )?;
    Ok(Snapshot {
        services,
        deployments,
        replicasets,
        slices,
        pods,
        hpas,
    })
}

/// (namespace, name) of the Services matching a label selector, as the server selects.
pub async fn matching_services(
    client: &kube::Client,
    scope: &Scope,
    selector: &str,
    timeout: Option<Duration>,
) -> Result<std::collections::BTreeSet<(String, String)>> {
    let api = api::<Service>(client, scope);
    let mut params = ListParams::default().labels(selector).limit(PAGE);
    let mut out = std::collections::BTreeSet::new();
    loop {
        let call = api.list_metadata(&params);
        let page = match timeout {
            Some(t) => tokio::time::timeout(t, call).await.map_err(|_| {
                Error::Timeout("listing services took longer than --request-timeout".into())
            })?,
            None => call.await,
        }
        .map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 400 => Error::Usage(format!(
                "invalid label selector {selector:?}: {}",
                s.message
            )),
            _ => Error::kube(
                format!("list services matching {selector} {}", describe(scope)),
                e,
            ),
        })?;
        out.extend(page.items.into_iter().map(|m| {
            (
                m.metadata.namespace.unwrap_or_default(),
                m.metadata.name.unwrap_or_default(),
            )
        }));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// A lean snapshot and, with `-l`, the Services the selector matches, read concurrently
/// (what `status -l` and `list -l` both need).
pub async fn snapshot_selecting(
    client: &kube::Client,
    scope: &Scope,
    selector: Option<&str>,
    timeout: Option<Duration>,
) -> Result<(
    Snapshot,
    Option<std::collections::BTreeSet<(String, String)>>,
)> {
    tokio::try_join!(snapshot_with(client, scope, timeout, Detail::Lean), async {
        match selector {
            Some(sel) => matching_services(client, scope, sel, timeout)
                .await
                .map(Some),
            None => Ok(None),
        }
    })
}
