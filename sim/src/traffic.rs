//! The traffic plane (opt-in): every Ready pod answers HTTP on its own loopback port with
//! its name, image and labels; every Service with a selector gets a loopback proxy, its
//! address published in the `sim.bluegreen.io/proxy` annotation, that forwards each
//! connection to a ready endpoint (or, with none, a serving terminating one) taken from the Service's EndpointSlices as they are at
//! that moment — already lagging pod changes by the propagation delay — as kube-proxy
//! does (per connection: a keep-alive connection stays on its pod). A pod stops answering
//! only when it is gone, i.e. after its termination grace period; so scaling old pods
//! down before the endpoints moved loses requests, exactly as on a real cluster.
//!
//! The controller loop owns the [`TrafficPlane`] and reconciles it after each round once
//! `Cluster::enable_traffic` was called; the cluster itself knows only that flag.

use crate::cluster::Cluster;
use crate::store::{name_of, ns_of, uid_of};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const PROXY_ANNOTATION: &str = "sim.bluegreen.io/proxy";

struct Running {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Aborting the accept task drops its connections' JoinSet: open connections reset.
        self.task.abort();
    }
}

/// Pod uid → its server; shared with the proxies, which look up where a pod answers.
type PodServers = Arc<Mutex<HashMap<String, Running>>>;

/// The running servers and proxies. Owned by the controller loop (created once
/// `Cluster::enable_traffic` was called); dropping it stops them all.
#[derive(Default)]
pub struct TrafficPlane {
    pods: PodServers,
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

/// Answers HTTP/1.1 requests (keep-alive) with the pod's identity until aborted.
async fn serve_pod(listener: TcpListener, body: Arc<Vec<u8>>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let body = body.clone();
        conns.spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut r = BufReader::new(r);
            loop {
                // Read one request: headers up to the blank line (GET has no body).
                let mut line = String::new();
                let mut saw_request = false;
                loop {
                    line.clear();
                    match r.read_line(&mut line).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                    if line == "\r\n" || line == "\n" {
                        break;
                    }
                    saw_request = true;
                }
                if !saw_request {
                    continue;
                }
                let head = format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len());
                if w.write_all(head.as_bytes()).await.is_err() || w.write_all(&body).await.is_err() {
                    return;
                }
            }
        });
        while conns.try_join_next().is_some() {}
    }
}

/// Forwards each accepted connection to a ready endpoint of the Service.
async fn serve_proxy(
    listener: TcpListener,
    cluster: Weak<Cluster>,
    pods: Weak<Mutex<HashMap<String, Running>>>,
    ns: String,
    svc: String,
) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        let (Some(c), Some(pods)) = (cluster.upgrade(), pods.upgrade()) else {
            return;
        };
        let target = pick_endpoint(&c, &pods, &ns, &svc);
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
fn pick_endpoint(
    c: &Cluster,
    servers: &Mutex<HashMap<String, Running>>,
    ns: &str,
    svc: &str,
) -> Option<SocketAddr> {
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
    let servers = servers.lock().unwrap_or_else(|e| e.into_inner());
    let uid = &pods[rand::random_range(0..pods.len())];
    // The endpoint may name a pod whose server is gone: connecting then fails, as a
    // stale iptables rule to a dead pod would.
    Some(
        servers
            .get(uid)
            .map(|r| r.addr)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9))),
    )
}

impl TrafficPlane {
    /// Starts servers for newly Ready pods and proxies for new Services; stops those
    /// whose objects are gone. Called from the controller loop.
    pub fn reconcile(&self, c: &Arc<Cluster>) {
        let pods = c.store.list("pods", None).0;
        {
            let mut servers = self.pods.lock().unwrap_or_else(|e| e.into_inner());
            let live: std::collections::HashSet<&str> = pods.iter().map(uid_of).collect();
            servers.retain(|uid, _| live.contains(uid.as_str()));
            let new: Vec<&Value> = pods
                .iter()
                .filter(|p| is_ready(p) && !servers.contains_key(uid_of(p)))
                .collect();
            for p in new {
                let Ok((listener, addr)) = bind() else {
                    continue;
                };
                let body = json!({
                    "pod": name_of(p),
                    "image": p["spec"]["containers"][0]["image"],
                    "labels": p["metadata"]["labels"],
                });
                let body = Arc::new(serde_json::to_vec(&body).unwrap_or_default());
                let task = tokio::spawn(serve_pod(listener, body));
                servers.insert(uid_of(p).to_string(), Running { addr, task });
            }
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
                        Arc::downgrade(&self.pods),
                        key.0.clone(),
                        key.1.clone(),
                    ));
                    proxies.insert(key.clone(), Running { addr, task });
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
