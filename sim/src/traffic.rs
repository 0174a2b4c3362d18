//! The traffic plane (opt-in): every Ready pod answers HTTP on its own loopback port with
//! its name, image, labels and the request's method and path; every Service with a
//! selector gets a loopback proxy, its
//! address published in the `sim.bluegreen.io/proxy` annotation, that forwards each
//! connection to a ready endpoint (or, with none, a serving terminating one) taken from the Service's EndpointSlices as they are at
//! that moment — already lagging pod changes by the propagation delay — as kube-proxy
//! does (per connection: a keep-alive connection stays on its pod). A pod stops answering
//! only when it is gone, i.e. after its termination grace period; so scaling old pods
//! down before the endpoints moved loses requests, exactly as on a real cluster.
//!
//! A pod's server answers as its first container's image says ([`crate::images`]): 200
//! on every path; an `http500` image 500 on every path but its readiness path; a
//! `failafter` image 500 on every path from the moment it fails, and when it crashes its
//! server goes (connections reset) and a new one starts once the restarted container is
//! Ready again. Pods that never became Ready (`crashloop`, `pullfail`, `neverready`,
//! still starting) have no server: connecting is refused. The plane publishes where each
//! pod answers in the cluster ([`Cluster::pod_server`]), which the Service proxies and
//! the API server's `pods/proxy` and `services/proxy` subresources dial.
//!
//! The controller loop owns the [`TrafficPlane`] and reconciles it after each round once
//! `Cluster::enable_traffic` was called; the cluster itself knows only that flag and the
//! published addresses. While the plane is off no pod answers at all.

use crate::cluster::Cluster;
use crate::images::{self, Behaviour};
use crate::store::{name_of, ns_of, uid_of};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub const PROXY_ANNOTATION: &str = "sim.bluegreen.io/proxy";

struct Running {
    addr: SocketAddr,
    task: JoinHandle<()>,
    /// A pod server: the first container's restartCount it runs for (a restart ends it).
    restarts: i64,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Aborting the accept task drops its connections' JoinSet: open connections reset.
        self.task.abort();
    }
}

/// The running servers and proxies. Owned by the controller loop (created once
/// `Cluster::enable_traffic` was called); dropping it stops them all.
#[derive(Default)]
pub struct TrafficPlane {
    /// Pod uid → its server.
    pods: Mutex<HashMap<String, Running>>,
    /// (namespace, Service name) → its proxy.
    proxies: Mutex<HashMap<(String, String), Running>>,
}

fn bind() -> std::io::Result<(TcpListener, SocketAddr)> {
    let std = std::net::TcpListener::bind("127.0.0.1:0")?;
    std.set_nonblocking(true)?;
    let addr = std.local_addr()?;
    Ok((TcpListener::from_std(std)?, addr))
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

/// The restartCount of the pod's first container.
fn first_restarts(p: &Value) -> i64 {
    p["status"]["containerStatuses"][0]["restartCount"]
        .as_i64()
        .unwrap_or(0)
}

/// What one pod's server answers: its first container, by the image convention.
struct App {
    identity: Value,
    behaviour: Behaviour,
    readiness_path: String,
    /// `failafter`: from when every answer is 500.
    fails_at: Option<Instant>,
    /// `failafter`: from when the container is gone (connections are closed unanswered).
    crashes_at: Option<Instant>,
}

impl App {
    fn answer(&self, method: &str, path_and_query: &str) -> Option<(u16, Vec<u8>)> {
        let now = Instant::now();
        if self.crashes_at.is_some_and(|t| now >= t) {
            return None;
        }
        let path = path_and_query.split('?').next().unwrap_or("/");
        let failing = self.fails_at.is_some_and(|t| now >= t);
        let mut body = self.identity.clone();
        body["method"] = json!(method);
        body["path"] = json!(path_and_query);
        let code = if failing {
            body["error"] = json!("failafter: the container failed");
            500
        } else if self.behaviour == Behaviour::Http500 && path != self.readiness_path {
            body["error"] = json!(format!(
                "http500: every path but {} answers 500",
                self.readiness_path
            ));
            500
        } else {
            200
        };
        Some((code, serde_json::to_vec(&body).unwrap_or_default()))
    }
}

/// Answers HTTP/1.1 requests (keep-alive) as the pod's app until aborted.
async fn serve_pod(listener: TcpListener, app: Arc<App>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let app = app.clone();
                async move {
                    let method = req.method().to_string();
                    let pq = req
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_else(|| "/".into());
                    // Read the request body in full, so keep-alive stays in step.
                    let _ = req.into_body().collect().await;
                    match app.answer(&method, &pq) {
                        // A crashed container: the connection closes unanswered.
                        None => Err(std::io::Error::other("container crashed")),
                        Some((code, body)) => Ok(Response::builder()
                            .status(code)
                            .header("Content-Type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .expect("response")),
                    }
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while conns.try_join_next().is_some() {}
    }
}

/// Forwards each accepted connection to a ready endpoint of the Service.
async fn serve_proxy(listener: TcpListener, cluster: Weak<Cluster>, ns: String, svc: String) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let Some(c) = cluster.upgrade() else {
            return;
        };
        let target = pick_endpoint(&c, &ns, &svc);
        conns.spawn(async move {
            let Some(addr) = target else { return };
            // A refused connection (the pod is gone) resets the client: a lost request.
            let Ok(mut upstream) = TcpStream::connect(addr).await else {
                return;
            };
            let _ = upstream.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
        while conns.try_join_next().is_some() {}
    }
}

/// The pod uids kube-proxy would route to: the ready endpoints (a missing `ready` counts
/// as ready); only when there are none, the serving-and-terminating ones.
pub fn routable(endpoints: &[Value]) -> Vec<String> {
    let uids = |keep: &dyn Fn(&Value) -> bool| -> Vec<String> {
        endpoints
            .iter()
            .filter(|e| keep(&e["conditions"]))
            .filter_map(|e| e["targetRef"]["uid"].as_str().map(String::from))
            .collect()
    };
    let ready = uids(&|c| c["ready"] != false);
    if !ready.is_empty() {
        return ready;
    }
    uids(&|c| c["serving"] == true && c["terminating"] == true)
}

/// A random routable endpoint of the Service, as its EndpointSlices say now.
fn pick_endpoint(c: &Cluster, ns: &str, svc: &str) -> Option<SocketAddr> {
    let endpoints: Vec<Value> = c
        .store
        .scan("endpointslices", Some(ns), |s| {
            (s.pointer("/metadata/labels/kubernetes.io~1service-name")
                .and_then(Value::as_str)
                == Some(svc))
            .then(|| s.clone())
        })
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .collect();
    let pods = routable(&endpoints);
    if pods.is_empty() {
        return None;
    }
    let uid = &pods[rand::random_range(0..pods.len())];
    // The endpoint may name a pod whose server is gone: connecting then fails, as a
    // stale iptables rule to a dead pod would.
    Some(
        c.pod_server(uid)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9))),
    )
}

impl TrafficPlane {
    /// Starts servers for newly Ready pods and proxies for new Services; stops those
    /// whose objects are gone, and the servers of containers that restarted. Called from
    /// the controller loop, which knows when the kubelet started each pod (`started`, by
    /// uid: where a `failafter` container is in its life).
    pub fn reconcile(&self, c: &Arc<Cluster>, started: &dyn Fn(&str) -> Option<Instant>) {
        let pods = c.store.list("pods", None).0;
        {
            let mut servers = self.pods.lock().unwrap_or_else(|e| e.into_inner());
            let live: HashMap<&str, &Value> = pods.iter().map(|p| (uid_of(p), p)).collect();
            servers.retain(|uid, r| {
                live.get(uid.as_str())
                    .is_some_and(|p| first_restarts(p) == r.restarts)
            });
            let new: Vec<&Value> = pods
                .iter()
                .filter(|p| is_ready(p) && !servers.contains_key(uid_of(p)))
                .collect();
            for p in new {
                let Ok((listener, addr)) = bind() else {
                    continue;
                };
                let app = Arc::new(app_of(p, started(uid_of(p))));
                let task = tokio::spawn(serve_pod(listener, app));
                servers.insert(
                    uid_of(p).to_string(),
                    Running {
                        addr,
                        task,
                        restarts: first_restarts(p),
                    },
                );
            }
            c.set_pod_servers(
                servers
                    .iter()
                    .map(|(uid, r)| (uid.clone(), r.addr))
                    .collect(),
            );
        }
        let services = c.store.list("services", None).0;
        let mut proxies = self.proxies.lock().unwrap_or_else(|e| e.into_inner());
        let live: std::collections::HashSet<(String, String)> = services
            .iter()
            .map(|s| (ns_of(s).to_string(), name_of(s).to_string()))
            .collect();
        proxies.retain(|k, _| live.contains(k));
        for s in services.iter().filter(|s| {
            s["spec"]["selector"]
                .as_object()
                .is_some_and(|m| !m.is_empty())
        }) {
            let key = (ns_of(s).to_string(), name_of(s).to_string());
            let addr = match proxies.get(&key) {
                Some(r) => r.addr,
                None => {
                    let Ok((listener, addr)) = bind() else {
                        continue;
                    };
                    let task = tokio::spawn(serve_proxy(
                        listener,
                        Arc::downgrade(c),
                        key.0.clone(),
                        key.1.clone(),
                    ));
                    proxies.insert(
                        key.clone(),
                        Running {
                            addr,
                            task,
                            restarts: 0,
                        },
                    );
                    addr
                }
            };
            if s.pointer("/metadata/annotations/sim.bluegreen.io~1proxy")
                .and_then(Value::as_str)
                != Some(addr.to_string().as_str())
            {
                let mut next = s.clone();
                if !next["metadata"]["annotations"].is_object() {
                    next["metadata"]["annotations"] = json!({});
                }
                next["metadata"]["annotations"][PROXY_ANNOTATION] = json!(addr.to_string());
                // Guarded: a conflicting user write wins; the next pass annotates again.
                let _ = crate::ops::controller_write(
                    c,
                    "services",
                    s,
                    next,
                    "bluegreen-sim-traffic",
                    crate::ops::Sub::Main,
                );
            }
        }
    }
}

/// The app a Ready pod's server runs: its first container's image, and for `failafter`
/// the current run's failure and crash times (the kubelet's clock: `started`).
fn app_of(p: &Value, started: Option<Instant>) -> App {
    let ctr = &p["spec"]["containers"][0];
    let behaviour = Behaviour::of(ctr["image"].as_str().unwrap_or(""));
    let cycle = match (behaviour, started) {
        (Behaviour::FailAfter(after), Some(t)) => Some(images::cycle(t, after, Instant::now())),
        _ => None,
    };
    App {
        identity: json!({
            "pod": name_of(p),
            "image": ctr["image"],
            "labels": p["metadata"]["labels"],
        }),
        behaviour,
        readiness_path: images::readiness_path(ctr),
        fails_at: cycle.map(|c| c.fails_at),
        crashes_at: cycle.map(|c| c.crashes_at),
    }
}

/// A minimal HTTP/1.1 GET over an open connection: the response body, or an error.
pub async fn get(stream: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    stream
        .get_mut()
        .write_all(b"GET / HTTP/1.1\r\nHost: sim\r\n\r\n")
        .await?;
    let mut len = None;
    let mut status_ok = false;
    let mut first = true;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        if first {
            status_ok = line.starts_with("HTTP/1.1 200");
            first = false;
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; len.unwrap_or(0)];
    stream.read_exact(&mut body).await?;
    if !status_ok {
        return Err(std::io::Error::other("non-200 response"));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_like_kube_proxy_ready_first_then_serving_terminating() {
        let ep = |uid: &str, ready: bool, serving: bool, term: bool| json!({"targetRef": {"uid": uid}, "conditions": {"ready": ready, "serving": serving, "terminating": term}});
        let both = [ep("old", false, true, true), ep("new", true, true, false)];
        assert_eq!(routable(&both), ["new"]);
        let draining = [
            ep("old", false, true, true),
            ep("gone", false, false, true),
            ep("starting", false, false, false),
        ];
        assert_eq!(routable(&draining), ["old"]);
        assert!(routable(&[ep("x", false, false, true)]).is_empty());
    }
}
