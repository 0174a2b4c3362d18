//! bluegreen-sim: a simulated Kubernetes API server for kubectl-bluegreen's tests and
//! no-cluster demo. It speaks the real API over HTTPS so that kube-rs and the real
//! `kubectl` talk to it as to a small cluster, and runs the Deployment, ReplicaSet,
//! kubelet and EndpointSlice controllers inside, with injectable timing and faults.
//! This file owns the [`Sim`] handle: starting (namespaces, TLS accept loop, controller
//! task), kubeconfig and client, and the helpers tests use (apply, get/list, waits).
//!
//! Dependencies run one way (no module cycles): `server` (the request path) and
//! `controllers` (the loop) on top; `traffic`, `table` and `ops` (the API verbs) below
//! them, with `images` (the image convention both the kubelet and the traffic plane
//! follow); then `cluster` and `store`; `resources`, `selector`, `semantics`, `patch`,
//! `error`, `discovery` and `proto` at the bottom.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let sim = bluegreen_sim::Sim::start().await?;
//! sim.apply_yaml("default", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}")?;
//! let client = sim.client().await?;
//! # Ok(()) }
//! ```

pub mod cluster;
pub mod controllers;
pub mod convert;
pub mod discovery;
pub mod error;
pub mod images;
pub mod managed;
pub mod ops;
pub mod patch;
pub mod proto;
pub mod resources;
pub mod schema;
pub mod selector;
pub mod semantics;
pub mod server;
pub mod store;
pub mod table;
pub mod tls;
pub mod traffic;

pub use cluster::{
    Cluster, Fault, FaultAction, LogEntry, PolicyRule, Timing, WatchFaults, rules_from_yaml,
};

use anyhow::Context;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The contract fixture the demo scenario loads (blue live, green idle, preview Service).
pub const CONTRACT_FIXTURE: &str = include_str!("../../tests/fixtures/contract/app.yaml");
/// A second app of the demo, its Service labelled `team: payments`, green ready to promote.
pub const PAYMENTS_FIXTURE: &str = include_str!("../../tests/fixtures/payments/app.yaml");
/// A plain Deployment + Service (`nginx-svc`) of the demo, for `init` to adopt.
pub const PLAIN_FIXTURE: &str = include_str!("../../tests/fixtures/plain/app.yaml");

/// A running simulated cluster. Dropping it stops the server and the controllers.
pub struct Sim {
    cluster: Arc<Cluster>,
    url: String,
    ca_pem: String,
    token: String,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl Sim {
    /// Starts a cluster on a free loopback port with zero delays.
    pub async fn start() -> anyhow::Result<Sim> {
        Self::start_with(Timing::default()).await
    }

    pub async fn start_with(timing: Timing) -> anyhow::Result<Sim> {
        let tls = tls::generate().context("generating TLS material")?;
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let token = format!("sim-{:032x}", rand::random::<u128>());
        let cluster = Arc::new(Cluster::new(timing));
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let rt = resources::find("", "v1", "namespaces").expect("namespaces");
            ops::create(
                &cluster,
                rt,
                "",
                json!({"metadata": {"name": ns}}),
                &ops::WriteOpts::by("kube-apiserver"),
            )
            .map_err(|e| anyhow::anyhow!("creating namespace {ns}: {e}"))?;
        }
        // Every cluster has the API server's own Service in `default`, with no selector.
        let services = resources::find("", "v1", "services").expect("services");
        ops::create(
            &cluster,
            services,
            "default",
            json!({
                "metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                "spec": {"clusterIP": "10.96.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}]},
            }),
            &ops::WriteOpts::by("kube-apiserver"),
        )
        .map_err(|e| anyhow::anyhow!("creating the kubernetes Service: {e}"))?;
        let ctx = Arc::new(server::ServerCtx {
            cluster: cluster.clone(),
            token: token.clone(),
            address: addr.to_string(),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config.clone());
        let http1_acceptor = {
            let mut config = (*tls.server_config).clone();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            tokio_rustls::TlsAcceptor::from(Arc::new(config))
        };
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = if ctx.cluster.http1_only() {
                    http1_acceptor.clone()
                } else {
                    acceptor.clone()
                };
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    let handshake = ctx.cluster.timing().handshake;
                    if !handshake.is_zero() {
                        tokio::time::sleep(handshake).await;
                    }
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                    ctx.cluster.count_connection(h2);
                    let service =
                        hyper::service::service_fn(move |req| server::handle(ctx.clone(), req));
                    if h2 {
                        let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    } else {
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(tls), service)
                            .await;
                    }
                });
            }
        });
        let controller_task = tokio::spawn(controllers::run(cluster.clone()));
        Ok(Sim {
            cluster,
            url: format!("https://{addr}"),
            ca_pem: tls.ca_pem,
            token,
            tasks: vec![accept_task, controller_task],
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The shared state: store, faults, timing, request log.
    pub fn cluster(&self) -> &Arc<Cluster> {
        &self.cluster
    }

    /// A kubeconfig whose cluster, user and context are all named `sim`.
    pub fn kubeconfig_yaml(&self) -> String {
        use base64::Engine;
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: sim\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: sim\n  user:\n    token: {}\ncontexts:\n- name: sim\n  context:\n    cluster: sim\n    user: sim\n    namespace: default\ncurrent-context: sim\npreferences: {{}}\n",
            self.url, self.token
        )
    }

    pub fn write_kubeconfig(&self, path: &std::path::Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml())
    }

    /// A kube-rs client configured from the sim's kubeconfig.
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig_yaml())?;
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await?;
        Ok(kube::Client::try_from(config)?)
    }

    /// Creates (or replaces) every object of a multi-document YAML in `namespace`
    /// (objects naming their own namespace keep it), as `kubectl apply` would.
    pub fn apply_yaml(&self, namespace: &str, yaml: &str) -> anyhow::Result<Vec<Value>> {
        let docs: Vec<Value> = serde_saphyr::from_str_multiple(yaml).context("parsing YAML")?;
        let mut out = Vec::new();
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            out.push(self.apply_object(namespace, doc)?);
        }
        Ok(out)
    }

    pub fn apply_object(&self, namespace: &str, doc: Value) -> anyhow::Result<Value> {
        let api_version = doc["apiVersion"].as_str().unwrap_or("").to_string();
        let kind = doc["kind"].as_str().unwrap_or("").to_string();
        let rt = resources::by_kind(&api_version, &kind)
            .with_context(|| format!("unsupported kind {api_version}/{kind}"))?;
        let ns = doc
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or(namespace)
            .to_string();
        let name = store::name_of(&doc).to_string();
        // Recorded as the simulator's own fixture loader.
        let opts = ops::WriteOpts::by("bluegreen-sim");
        let result = match ops::get(&self.cluster, rt, &ns, &name, ops::Sub::Main) {
            Ok(_) => ops::update(&self.cluster, rt, &ns, &name, doc, ops::Sub::Main, &opts),
            Err(_) => ops::create(&self.cluster, rt, &ns, doc, &opts),
        };
        result.map_err(|e| anyhow::anyhow!("{kind} {name}: {e}"))
    }

    /// Reads an object by plural resource name (`deployments`, `services`, ...).
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let rt = resources::RESOURCES.iter().find(|r| r.plural == plural)?;
        self.cluster
            .store
            .get(rt.storage, if rt.namespaced { namespace } else { "" }, name)
    }

    /// Objects of a resource in a namespace.
    pub fn list(&self, plural: &str, namespace: &str) -> Vec<Value> {
        let Some(rt) = resources::RESOURCES.iter().find(|r| r.plural == plural) else {
            return Vec::new();
        };
        self.cluster.store.list(rt.storage, Some(namespace)).0
    }

    /// Waits until `cond` holds, re-checking after every change to the store (no polling,
    /// no sleeping); fails after `timeout` naming `what`.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut(&Sim) -> bool,
    ) -> anyhow::Result<()> {
        let mut rx = self.cluster.store.subscribe_revision();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            rx.borrow_and_update();
            if cond(self) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => anyhow::bail!("store closed while waiting for {what}"),
                Err(_) => anyhow::bail!("timed out after {timeout:?} waiting for {what}"),
            }
        }
    }

    /// Waits until a Deployment has rolled out its latest generation and is fully available.
    pub async fn wait_rolled_out(&self, namespace: &str, name: &str) -> anyhow::Result<()> {
        self.wait_for(
            &format!("deployment {namespace}/{name} rolled out"),
            Duration::from_secs(30),
            |s| {
                s.get("deployments", namespace, name)
                    .is_some_and(|d| deployment_complete(&d))
            },
        )
        .await
    }

    /// Waits until the store has taken no write for `window` (the controllers are done
    /// with what the last change started, as far as the store shows).
    pub async fn wait_quiet(&self, window: Duration) {
        let store = &self.cluster.store;
        loop {
            let before = store.resource_version();
            tokio::time::sleep(window).await;
            if store.resource_version() == before {
                return;
            }
        }
    }

    /// Waits until every Deployment in the namespace is rolled out and every selecting
    /// Service's EndpointSlices show exactly its ready pods.
    pub async fn wait_converged(&self, namespace: &str) -> anyhow::Result<()> {
        self.wait_for(
            &format!("namespace {namespace} converged"),
            Duration::from_secs(30),
            |s| s.converged(namespace),
        )
        .await
    }

    fn converged(&self, namespace: &str) -> bool {
        if !self
            .list("deployments", namespace)
            .iter()
            .all(deployment_complete)
        {
            return false;
        }
        let pods = self.list("pods", namespace);
        let slices = self.list("endpointslices", namespace);
        self.list("services", namespace).iter().all(|svc| {
            let Some(sel) = svc["spec"]["selector"]
                .as_object()
                .filter(|m| !m.is_empty())
            else {
                return true;
            };
            let sel = selector::LabelSelector::from_map(sel);
            let mut want: Vec<&str> = pods
                .iter()
                .filter(|p| sel.matches_object(p) && p["metadata"]["deletionTimestamp"].is_null())
                .filter(|p| {
                    p["status"]["conditions"].as_array().is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
                })
                .map(store::name_of)
                .collect();
            let mut have: Vec<&str> = slices
                .iter()
                .filter(|s| {
                    s.pointer("/metadata/labels/kubernetes.io~1service-name")
                        == Some(&svc["metadata"]["name"])
                })
                .flat_map(|s| s["endpoints"].as_array().into_iter().flatten())
                .filter(|e| e["conditions"]["ready"] == true)
                .filter_map(|e| e["targetRef"]["name"].as_str())
                .collect();
            want.sort();
            have.sort();
            want == have
        })
    }

    /// The loopback address of a Service's proxy (traffic plane), once published.
    pub async fn service_proxy(
        &self,
        namespace: &str,
        service: &str,
    ) -> anyhow::Result<std::net::SocketAddr> {
        self.wait_for(
            &format!("proxy of service {namespace}/{service}"),
            Duration::from_secs(10),
            |s| {
                s.get("services", namespace, service).is_some_and(|svc| {
                    svc.pointer("/metadata/annotations/sim.bluegreen.io~1proxy")
                        .is_some()
                })
            },
        )
        .await?;
        let svc = self
            .get("services", namespace, service)
            .context("service vanished")?;
        let addr = svc
            .pointer("/metadata/annotations/sim.bluegreen.io~1proxy")
            .and_then(Value::as_str)
            .unwrap_or("");
        addr.parse()
            .with_context(|| format!("bad proxy address {addr:?}"))
    }

    /// Creates `n` apps (a Service and two 0-replica slots each), 100 per namespace
    /// `team-K`, with the controllers held during the bulk load, then converged.
    pub async fn load_many_apps(&self, n: usize) -> anyhow::Result<()> {
        self.cluster.set_controllers_paused(true);
        for chunk in 0..n.div_ceil(100) {
            let ns = format!("team-{chunk}");
            self.apply_yaml(
                "",
                &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}"),
            )?;
            let mut yaml = String::new();
            for i in (chunk * 100)..((chunk + 1) * 100).min(n) {
                let app = format!("app-{i}");
                yaml.push_str(&format!("---\napiVersion: v1\nkind: Service\nmetadata: {{name: {app}}}\nspec: {{selector: {{app: {app}, bluegreen.io/color: blue}}, ports: [{{port: 80}}]}}\n"));
                for color in ["blue", "green"] {
                    yaml.push_str(&format!("---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {app}-{color}}}\nspec:\n  replicas: 0\n  selector: {{matchLabels: {{app: {app}, bluegreen.io/color: {color}}}}}\n  template:\n    metadata: {{labels: {{app: {app}, bluegreen.io/color: {color}}}}}\n    spec: {{containers: [{{name: web, image: web:1}}]}}\n"));
                }
            }
            self.apply_yaml(&ns, &yaml)?;
        }
        self.cluster.set_controllers_paused(false);
        let want = 2 * n;
        self.wait_for("the apps' ReplicaSets", Duration::from_secs(900), |s| {
            s.cluster.store.list("replicasets", None).0.len() >= want
        })
        .await
    }

    /// Adds `n` unrelated Deployments to `namespace`, each with a Service, one pod and
    /// `old` ReplicaSets of earlier templates (scaled to 0, owned by it, as rollouts leave
    /// them): the crowded namespace real teams have, for reads that must not grow with it.
    pub async fn load_neighbours(
        &self,
        namespace: &str,
        n: usize,
        old: usize,
    ) -> anyhow::Result<()> {
        let mut yaml = String::new();
        for i in 0..n {
            yaml.push_str(&format!("---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: other-{i}, labels: {{app: other-{i}}}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: other-{i}}}}}\n  template:\n    metadata: {{labels: {{app: other-{i}}}}}\n    spec: {{containers: [{{name: c, image: other:{old}}}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: other-{i}}}\nspec: {{selector: {{app: other-{i}}}, ports: [{{port: 80}}]}}\n"));
            // apply_yaml takes at most 1024 documents at once.
            if (i + 1) % 500 == 0 || i + 1 == n {
                self.apply_yaml(namespace, &std::mem::take(&mut yaml))?;
            }
        }
        self.wait_converged(namespace).await?;
        for i in 0..n {
            let name = format!("other-{i}");
            let uid = self
                .get("deployments", namespace, &name)
                .and_then(|d| d["metadata"]["uid"].as_str().map(str::to_string))
                .with_context(|| format!("deployment {name} vanished"))?;
            let mut yaml = String::new();
            for j in 0..old {
                yaml.push_str(&format!("---\napiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}-old{j}\n  labels: {{app: {name}, pod-template-hash: old{j}}}\n  annotations: {{deployment.kubernetes.io/revision: \"{j}\"}}\n  ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: {name}, uid: {uid}, controller: true, blockOwnerDeletion: true}}]\nspec:\n  replicas: 0\n  selector: {{matchLabels: {{app: {name}, pod-template-hash: old{j}}}}}\n  template:\n    metadata: {{labels: {{app: {name}, pod-template-hash: old{j}}}}}\n    spec: {{containers: [{{name: c, image: other:{j}}}]}}\n"));
            }
            self.apply_yaml(namespace, &yaml)?;
        }
        self.wait_converged(namespace).await
    }

    /// Loads the contract fixture in `default`, converged.
    pub async fn load_demo(&self) -> anyhow::Result<()> {
        self.apply_yaml("default", CONTRACT_FIXTURE)?;
        self.wait_converged("default").await
    }

    /// Loads what the demo cluster holds, so that the README's examples run in order
    /// against it: `shop` (the contract app), `payments` (a team's app, green ready) and
    /// `nginx-svc` (a plain Deployment + Service, not yet blue/green), all in `default`.
    pub async fn load_demo_cluster(&self) -> anyhow::Result<()> {
        for fixture in [CONTRACT_FIXTURE, PAYMENTS_FIXTURE, PLAIN_FIXTURE] {
            self.apply_yaml("default", fixture)?;
        }
        self.wait_converged("default").await
    }
}

/// Upstream's "rollout complete": latest generation observed, every replica updated,
/// available, and no old replicas left.
pub fn deployment_complete(d: &Value) -> bool {
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let st = &d["status"];
    let n = |k: &str| st[k].as_i64().unwrap_or(0);
    st["observedGeneration"].as_i64() >= d["metadata"]["generation"].as_i64()
        && n("updatedReplicas") == want
        && n("replicas") == want
        && n("availableReplicas") == want
}
