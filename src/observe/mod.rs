//! Snapshots of the cluster for the model and the planners (waits watch in `verify`, the
//! Lease reads itself in `lease`).
//!
//! Two shapes of read, so that a command's cost grows with what it shows and never with
//! the rest of the namespace:
//! - [`app`]: one app's objects, selected by label and field selectors (rounds in
//!   `app.rs`). Every command that names an app reads this way.
//! - [`Reader::snapshot`]: every app of a namespace (or of all namespaces, one namespace at
//!   a time): `list`, `status -l`. Whole lists, as a table of all apps needs.
//!
//! Freshness: preconditions of a write are checked against quorum reads
//! ([`Freshness::Fresh`]); read-only views may be served from the API server's watch
//! cache ([`Freshness::Cached`], `resourceVersion=0`), which costs the server no etcd read
//! and may lag by a moment — harmless for a table a person looks at.

mod app;
mod hints;
mod slim;
mod stream;

pub use app::app;
pub use hints::{ReadHints, kubectl_cache_dir};

use crate::error::{Error, Result};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;
use std::collections::BTreeSet;
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

impl Snapshot {
    fn extend(&mut self, other: Snapshot) {
        self.services.extend(other.services);
        self.deployments.extend(other.deployments);
        self.replicasets.extend(other.replicasets);
        self.slices.extend(other.slices);
        self.pods.extend(other.pods);
        self.hpas.extend(other.hpas);
    }
}

const PAGE: u32 = 500;

/// How much of each object to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// Whole objects: the write side copies Deployments and reads managedFields.
    Full,
    /// What the model reads, decoded through slim types (`slim.rs`): pod templates keep
    /// only labels and container names and images; managedFields and the last-applied
    /// annotation are never decoded. Read-only views over thousands of apps then hold a
    /// fraction of the memory and spend a fraction of the time decoding.
    Lean,
}

/// How fresh a read must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// A quorum read: what a write's preconditions are checked against.
    Fresh,
    /// From the API server's watch cache (`resourceVersion=0`, "not older than any"):
    /// read-only views only.
    Cached,
}

/// How one command reads the API server.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    pub client: &'a kube::Client,
    pub timeout: Option<Duration>,
    pub freshness: Freshness,
    pub detail: Detail,
    /// Where an app's read keeps what its round 2 asked (None: every read asks anew).
    pub hints: Option<&'a ReadHints>,
}

/// A list's selectors (`None`: all objects of the namespace).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Query<'q> {
    pub labels: Option<&'q str>,
    pub fields: Option<&'q str>,
}

impl Query<'_> {
    fn describe(&self) -> String {
        let mut s = String::new();
        if let Some(l) = self.labels {
            s.push_str(&format!(" labelled {l}"));
        }
        if let Some(f) = self.fields {
            s.push_str(&format!(" with {f}"));
        }
        s
    }
}

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

impl<'a> Reader<'a> {
    pub fn new(client: &'a kube::Client, timeout: Option<Duration>) -> Self {
        Reader {
            client,
            timeout,
            freshness: Freshness::Fresh,
            detail: Detail::Full,
            hints: None,
        }
    }

    /// For read-only views: slim objects from the watch cache.
    pub fn view(client: &'a kube::Client, timeout: Option<Duration>) -> Self {
        Reader {
            client,
            timeout,
            freshness: Freshness::Cached,
            detail: Detail::Lean,
            hints: None,
        }
    }

    /// The same reader, guessing an app's round 2 from `hints` (observe/hints.rs).
    pub fn with_hints(self, hints: Option<&'a ReadHints>) -> Self {
        Reader { hints, ..self }
    }

    fn params(&self, q: Query<'_>) -> ListParams {
        // The watch cache answers a selection whole: kube-rs sends `resourceVersion=0`
        // only without a limit (older API servers ignored the limit there anyway).
        let mut p = match self.freshness {
            Freshness::Fresh => ListParams::default().limit(PAGE),
            Freshness::Cached => ListParams::default(),
        };
        if let Some(l) = q.labels {
            p = p.labels(l);
        }
        if let Some(f) = q.fields {
            p = p.fields(f);
        }
        if self.freshness == Freshness::Cached {
            p = p.match_any();
        }
        p
    }

    /// Awaits one request within `--request-timeout`.
    async fn timed<T>(
        &self,
        what: impl Fn() -> String,
        call: impl std::future::Future<Output = kube::Result<T>>,
    ) -> Result<T> {
        let answered = match self.timeout {
            Some(t) => tokio::time::timeout(t, call).await.map_err(|_| {
                Error::Timeout(format!("{} took longer than --request-timeout", what()))
            })?,
            None => call.await,
        };
        answered.map_err(|e| Error::kube(what(), e))
    }

    /// Every object of a kind that `q` selects, page by page; each object through `trim`
    /// (`Full`) or decoded slim (`Lean`).
    pub(crate) async fn list<K>(&self, scope: &Scope, q: Query<'_>) -> Result<Vec<K>>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + slim::Slim
            + Clone
            + DeserializeOwned
            + Debug,
        <K as kube::Resource>::DynamicType: Default,
    {
        let plural = K::plural(&Default::default()).to_string();
        let what = || format!("list {plural} {}{}", describe(scope), q.describe());
        let api: Api<K> = api(self.client, scope);
        let mut items = Vec::new();
        let mut params = self.params(q);
        loop {
            tracing::debug!(kind = %plural, scope = %describe(scope), query = %q.describe(), continue_ = params.continue_token.is_some(), "list");
            let (page, next) = match self.detail {
                Detail::Full => {
                    let page = self.timed(what, api.list(&params)).await?;
                    let next = page.metadata.continue_.clone();
                    (page.items, next)
                }
                Detail::Lean => {
                    self.timed(what, slim::list::<K>(self.client, &api, &params))
                        .await?
                }
            };
            items.extend(page.into_iter().map(|mut k| {
                if self.detail == Detail::Full {
                    K::trim_full(&mut k);
                }
                k
            }));
            match next.filter(|c| !c.is_empty()) {
                // A continuation names its own snapshot: the API server refuses a
                // resourceVersion beside it.
                Some(token) => {
                    params = params.continue_token(&token);
                    params.resource_version = None;
                    params.version_match = None;
                }
                None => {
                    tracing::info!(kind = %plural, count = items.len(), "listed");
                    return Ok(items);
                }
            }
        }
    }

    /// Every app's objects in the scope: whole lists of each kind, concurrently. Over all
    /// namespaces, the Services come first and only the namespaces holding an app are
    /// read, a few at a time, so that memory is bounded by a few namespaces' objects.
    pub async fn snapshot(&self, scope: &Scope) -> Result<Snapshot> {
        Box::pin(self.snapshot_unboxed(scope)).await
    }

    async fn snapshot_unboxed(&self, scope: &Scope) -> Result<Snapshot> {
        match scope {
            Scope::Namespace(_) => self.namespace(scope).await,
            Scope::All => {
                use futures::{StreamExt, TryStreamExt};
                let services: Vec<Service> = self.list(scope, Query::default()).await?;
                let namespaces: BTreeSet<String> = services
                    .iter()
                    .filter(|s| crate::model::is_app_service(s))
                    .filter_map(|s| s.metadata.namespace.clone())
                    .collect();
                let parts: Vec<Snapshot> = futures::stream::iter(namespaces)
                    .map(|ns| async move {
                        let scope = Scope::Namespace(ns);
                        self.namespace_without_services(&scope).await
                    })
                    // As many namespaces at a time as `apps` reads.
                    .buffered(3)
                    .try_collect()
                    .await?;
                let mut snap = Snapshot {
                    services,
                    ..Snapshot::default()
                };
                for part in parts {
                    snap.extend(part);
                }
                Ok(snap)
            }
        }
    }

    /// Every app in the scope, built namespace by namespace: over all namespaces, each
    /// namespace's objects are dropped once its apps are built, so memory holds the apps
    /// and a few namespaces' objects, never the whole cluster's.
    pub async fn apps(&self, scope: &Scope) -> Result<Vec<crate::model::App>> {
        self.apps_as(scope, |app| app).await
    }

    /// [`Reader::apps`], each app turned into what the caller keeps of it (a table row)
    /// as soon as its namespace is built: memory holds that, not the apps.
    pub async fn apps_as<T: Send>(
        &self,
        scope: &Scope,
        keep: impl Fn(crate::model::App) -> T + Sync,
    ) -> Result<Vec<T>> {
        Box::pin(async {
            let Scope::All = scope else {
                let apps = crate::model::build(&self.namespace(scope).await?);
                return Ok(apps.into_iter().map(&keep).collect());
            };
            use futures::{StreamExt, TryStreamExt};
            let services: Vec<Service> = self.list(scope, Query::default()).await?;
            let mut by_namespace: std::collections::BTreeMap<String, Vec<Service>> =
                Default::default();
            for s in services {
                by_namespace
                    .entry(s.metadata.namespace.clone().unwrap_or_default())
                    .or_default()
                    .push(s);
            }
            by_namespace.retain(|_, svcs| svcs.iter().any(crate::model::is_app_service));
            let keep = &keep;
            let per_namespace: Vec<Vec<T>> = futures::stream::iter(by_namespace)
                .map(|(ns, services)| async move {
                    let rest = self
                        .namespace_without_services(&Scope::Namespace(ns))
                        .await?;
                    let apps = crate::model::build(&Snapshot { services, ..rest });
                    Ok::<_, Error>(apps.into_iter().map(keep).collect())
                })
                // Three namespaces at a time (15 lists in flight): as fast as four on
                // `apps:2000` and ~3 MB less peak RSS, mostly hyper's per-connection read
                // buffers (BENCHMARKS.md).
                .buffered(3)
                .try_collect()
                .await?;
            Ok(per_namespace.into_iter().flatten().collect())
        })
        .await
    }

    async fn namespace(&self, scope: &Scope) -> Result<Snapshot> {
        let (services, rest) = tokio::try_join!(
            self.list::<Service>(scope, Query::default()),
            self.namespace_without_services(scope)
        )?;
        Ok(Snapshot { services, ..rest })
    }

    async fn namespace_without_services(&self, scope: &Scope) -> Result<Snapshot> {
        let all = Query::default();
        let (deployments, replicasets, slices, pods, hpas) = tokio::try_join!(
            self.list(scope, all),
            self.list(scope, all),
            self.list(scope, all),
            self.list(scope, all),
            self.list(scope, all),
        )?;
        Ok(Snapshot {
            services: Vec::new(),
            deployments,
            replicasets,
            slices,
            pods,
            hpas,
        })
    }

    /// (namespace, name) of the Services matching a label selector, as the server selects.
    pub async fn matching_services(
        &self,
        scope: &Scope,
        selector: &str,
    ) -> Result<BTreeSet<(String, String)>> {
        let api = api::<Service>(self.client, scope);
        let mut params = self.params(Query {
            labels: Some(selector),
            fields: None,
        });
        let mut out = BTreeSet::new();
        loop {
            let what = || format!("list services matching {selector} {}", describe(scope));
            let page = self
                .timed(what, api.list_metadata(&params))
                .await
                .map_err(|e| match e {
                    Error::Kube {
                        source: kube::Error::Api(s),
                        ..
                    } if s.code == 400 => Error::Usage(format!(
                        "invalid label selector {selector:?}: {}",
                        s.message
                    )),
                    e => e,
                })?;
            out.extend(page.items.into_iter().map(|m| {
                (
                    m.metadata.namespace.unwrap_or_default(),
                    m.metadata.name.unwrap_or_default(),
                )
            }));
            match page.metadata.continue_.filter(|c| !c.is_empty()) {
                Some(token) => {
                    params = params.continue_token(&token);
                    params.resource_version = None;
                    params.version_match = None;
                }
                None => return Ok(out),
            }
        }
    }

    /// A snapshot of the scope and, with `-l`, the Services the selector matches, read
    /// concurrently (what `status -l` and `list -l` both need).
    pub async fn snapshot_selecting(
        &self,
        scope: &Scope,
        selector: Option<&str>,
    ) -> Result<(Snapshot, Option<BTreeSet<(String, String)>>)> {
        tokio::try_join!(self.snapshot(scope), async {
            match selector {
                Some(sel) => self.matching_services(scope, sel).await.map(Some),
                None => Ok(None),
            }
        })
    }
}
