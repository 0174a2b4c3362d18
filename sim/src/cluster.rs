//! The shared state of one simulated cluster: the store, the timing knobs, the injected
//! faults and RBAC rules (their data and matching; `server::filters` applies them), the
//! request log, address allocators, and the controllers' wake-up, pause and traffic
//! switches. The HTTP layer, the controllers and the library API all hold an
//! `Arc<Cluster>`; it depends on nothing above the store.

use crate::store::Store;
use serde::Serialize;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// The username the sim authenticates every valid token as.
pub const USER: &str = "sim-admin";

/// How fast simulated time-dependent things happen. Zero means "at the next controller
/// pass", which is what most tests want; the demo and load tests use realistic values.
#[derive(Debug, Clone, Default)]
pub struct Timing {
    /// Added before answering every request.
    pub latency: Duration,
    /// Added before the TLS handshake of every new connection: a network's cost of
    /// opening one (TCP's and TLS's round trips; `latency` models the request's own).
    pub handshake: Duration,
    /// From a pod's creation until its Ready condition turns True.
    pub pod_ready_after: Duration,
    /// Lag of the EndpointSlice/Endpoints controller behind pod changes.
    pub endpoint_delay: Duration,
    /// How long a deleted pod stays Terminating before it is removed; zero deletes at once.
    pub pod_termination: Duration,
}

/// What a fault does to a matching request.
#[derive(Debug, Clone)]
pub enum FaultAction {
    /// Answer with this status code (409, 429, 500, 503, ...) and upstream's Status body.
    Status(u16),
    /// 403 Forbidden with upstream's RBAC message.
    Forbidden,
    /// One entry per matching request: a code to fail with, or 0 to pass; the rule is
    /// used up when the sequence ends.
    Sequence(VecDeque<u16>),
}

/// A fault matcher in front of the store, like client-go fakes' reactors.
#[derive(Debug, Clone)]
pub struct Fault {
    /// Kubernetes verb: get, list, watch, create, update, patch, delete; None = any.
    pub verb: Option<String>,
    /// Plural resource, optionally with a subresource: `services`, `deployments/scale`.
    pub resource: Option<String>,
    /// Only this object name.
    pub name: Option<String>,
    pub action: FaultAction,
    /// Fraction of matching requests that fail (1.0 = all).
    pub rate: f64,
    /// Fail only this many times, then pass.
    pub times: Option<u32>,
}

impl Fault {
    pub fn new(verb: &str, resource: &str, action: FaultAction) -> Self {
        Fault {
            verb: (verb != "*").then(|| verb.to_string()),
            resource: (resource != "*").then(|| resource.to_string()),
            name: None,
            action,
            rate: 1.0,
            times: None,
        }
    }
    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }
    pub fn rate(mut self, r: f64) -> Self {
        self.rate = r;
        self
    }

    /// Parses the `--fault` flag: `VERB:RESOURCE=CODE[xN][@RATE]` or
    /// `VERB:RESOURCE=seq:CODE,CODE,...` (0 passes) or `VERB:RESOURCE=forbidden`; RESOURCE is
    /// `plural[/subresource][/name]` (`services/proxy/shop`, `deployments/scale`).
    pub fn parse(spec: &str) -> Result<Fault, String> {
        let (target, what) = spec
            .split_once('=')
            .ok_or("expected VERB:RESOURCE=ACTION")?;
        let (verb, resource) = target.split_once(':').ok_or("expected VERB:RESOURCE")?;
        // `RESOURCE[/SUBRESOURCE][/NAME]`.
        let subs = ["status", "scale", "proxy"];
        let (resource, name) = match resource.splitn(3, '/').collect::<Vec<_>>().as_slice() {
            [r, s] if subs.contains(s) => (format!("{r}/{s}"), None),
            [r, n] => (r.to_string(), Some(n.to_string())),
            [r, s, n] if subs.contains(s) => (format!("{r}/{s}"), Some(n.to_string())),
            [r, n, rest] => (r.to_string(), Some(format!("{n}/{rest}"))),
            _ => (resource.to_string(), None),
        };
        let mut f = Fault::new(verb, &resource, FaultAction::Status(500));
        f.name = name;
        if what == "forbidden" {
            f.action = FaultAction::Forbidden;
        } else if let Some(seq) = what.strip_prefix("seq:") {
            let codes: Result<VecDeque<u16>, _> = seq.split(',').map(str::parse).collect();
            f.action =
                FaultAction::Sequence(codes.map_err(|e| format!("bad code in sequence: {e}"))?);
        } else {
            let (code, rate) = match what.split_once('@') {
                Some((c, r)) => (c, Some(r)),
                None => (what, None),
            };
            let (code, times) = match code.split_once('x') {
                Some((c, n)) => (c, Some(n.parse().map_err(|_| format!("bad count {n}"))?)),
                None => (code, None),
            };
            f.action = FaultAction::Status(
                code.parse()
                    .map_err(|_| format!("bad status code {code}"))?,
            );
            f.times = times;
            if let Some(r) = rate {
                f.rate = r.parse().map_err(|_| format!("bad rate {r}"))?;
            }
        }
        Ok(f)
    }
}

/// One RBAC policy rule (`rbac.authorization.k8s.io/v1` PolicyRule); `*` matches anything.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRule {
    #[serde(default)]
    pub api_groups: Vec<String>,
    #[serde(default)]
    pub resources: Vec<String>,
    #[serde(default)]
    pub verbs: Vec<String>,
    /// From a ClusterRole: also grants cluster-wide (all-namespaces) requests.
    #[serde(skip)]
    pub cluster_wide: bool,
}

impl PolicyRule {
    fn allows(&self, verb: &str, group: &str, resource: &str) -> bool {
        let any = |list: &[String], v: &str| list.iter().any(|x| x == "*" || x == v);
        any(&self.verbs, verb) && any(&self.api_groups, group) && any(&self.resources, resource)
    }
}

/// The rules of every Role/ClusterRole in a YAML document stream.
pub fn rules_from_yaml(yaml: &str) -> Result<Vec<PolicyRule>, String> {
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_str_multiple(yaml).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for d in docs
        .into_iter()
        .filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole")
    {
        let mut rules: Vec<PolicyRule> =
            serde_json::from_value(d["rules"].clone()).map_err(|e| e.to_string())?;
        for r in &mut rules {
            r.cluster_wide = d["kind"] == "ClusterRole";
        }
        out.extend(rules);
    }
    Ok(out)
}

/// Watch streams the server cuts short, to exercise client recovery.
#[derive(Debug, Clone, Default)]
pub struct WatchFaults {
    pub close_after_events: Option<usize>,
    pub close_after: Option<Duration>,
}

/// One served request, as tests and scripts see it.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    pub method: String,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub body: String,
    pub code: u16,
    pub user_agent: String,
    /// Arrival and completion, on one counter shared by all requests: requests A and B
    /// were in flight together when each arrived before the other completed.
    pub arrived: u64,
    pub completed: u64,
    /// Response body bytes sent for this request so far, as of [`Cluster::request_log`]:
    /// a watch's grow while its stream is open. Not in `--request-log` lines, which are
    /// written when a response starts.
    #[serde(skip)]
    pub bytes: u64,
}

/// The decision for one request after the faults were consulted.
pub enum FaultOutcome {
    Pass,
    Fail(u16),
    Forbidden,
}

pub struct Cluster {
    pub store: Store,
    timing: RwLock<Timing>,
    faults: Mutex<Vec<Fault>>,
    watch_faults: RwLock<WatchFaults>,
    /// Each entry beside the count of its response bytes, which the body adds to as it
    /// is sent.
    log: Mutex<Vec<(LogEntry, Arc<AtomicU64>)>>,
    log_file: Mutex<Option<std::fs::File>>,
    /// Wakes the controllers after a write.
    pub kicked: Notify,
    next_service_ip: AtomicU32,
    next_pod_ip: AtomicU32,
    next_node_port: AtomicU32,
    request_seq: AtomicU64,
    /// Response body bytes sent to clients (watch streams as they flow).
    bytes_served: AtomicU64,
    /// Of those, the bytes of watch streams.
    watch_bytes_served: AtomicU64,
    /// TLS connections accepted, with the protocol they negotiated: (HTTP/1.1, HTTP/2).
    connections: (AtomicU32, AtomicU32),
    /// Offer HTTP/1.1 only by ALPN (`set_http1_only`).
    http1_only: AtomicBool,
    /// When set, only what these rules allow is permitted (403 otherwise), like a user
    /// bound to exactly these Roles; reviews and discovery stay open, as upstream.
    rbac: RwLock<Option<Vec<PolicyRule>>>,
    /// Set once by `enable_traffic`; the controller loop then runs the traffic plane.
    traffic_enabled: std::sync::atomic::AtomicBool,
    /// Where each pod's HTTP server answers (pod uid → loopback address), as the traffic
    /// plane publishes it; the Service proxies and the API server's proxy subresources
    /// dial these. Empty while the plane is off: no pod answers.
    pod_servers: RwLock<std::collections::HashMap<String, std::net::SocketAddr>>,
    controllers_paused: std::sync::atomic::AtomicBool,
    /// Replica counts HorizontalPodAutoscalers recommend, by (namespace, name), as if the
    /// load had changed (the sim has no metrics; without one an HPA keeps the current count).
    hpa_recommendations: Mutex<std::collections::HashMap<(String, String), i64>>,
}

impl Cluster {
    pub fn new(timing: Timing) -> Self {
        Cluster {
            store: Store::new(),
            timing: RwLock::new(timing),
            faults: Mutex::new(Vec::new()),
            watch_faults: RwLock::new(WatchFaults::default()),
            log: Mutex::new(Vec::new()),
            log_file: Mutex::new(None),
            kicked: Notify::new(),
            next_service_ip: AtomicU32::new(10),
            next_pod_ip: AtomicU32::new(2),
            next_node_port: AtomicU32::new(30080),
            request_seq: AtomicU64::new(0),
            bytes_served: AtomicU64::new(0),
            watch_bytes_served: AtomicU64::new(0),
            connections: (AtomicU32::new(0), AtomicU32::new(0)),
            http1_only: AtomicBool::new(false),
            rbac: RwLock::new(None),
            traffic_enabled: std::sync::atomic::AtomicBool::new(false),
            pod_servers: RwLock::new(Default::default()),
            controllers_paused: std::sync::atomic::AtomicBool::new(false),
            hpa_recommendations: Mutex::new(Default::default()),
        }
    }

    pub fn kick(&self) {
        self.kicked.notify_one();
    }

    pub fn timing(&self) -> Timing {
        self.timing
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn set_timing(&self, t: Timing) {
        *self.timing.write().unwrap_or_else(|e| e.into_inner()) = t;
        self.kick();
    }

    pub fn add_fault(&self, f: Fault) {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(f);
    }

    pub fn clear_faults(&self) {
        self.faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        *self.watch_faults.write().unwrap_or_else(|e| e.into_inner()) = WatchFaults::default();
    }

    pub fn set_watch_faults(&self, w: WatchFaults) {
        *self.watch_faults.write().unwrap_or_else(|e| e.into_inner()) = w;
    }

    pub fn watch_faults(&self) -> WatchFaults {
        self.watch_faults
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Consults the fault rules for a request, consuming counted and sequenced ones.
    pub fn check_faults(&self, verb: &str, resource: &str, name: &str) -> FaultOutcome {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let base = resource.split('/').next().unwrap_or(resource);
        for i in 0..faults.len() {
            let f = &mut faults[i];
            let verb_ok = f.verb.as_deref().is_none_or(|v| v == verb);
            let res_ok = f
                .resource
                .as_deref()
                .is_none_or(|r| r == resource || (r == base && !resource.contains('/')));
            let name_ok = f.name.as_deref().is_none_or(|n| n == name);
            if !(verb_ok && res_ok && name_ok) {
                continue;
            }
            if f.rate < 1.0 && rand::random::<f64>() >= f.rate {
                continue;
            }
            let outcome = match &mut f.action {
                FaultAction::Status(code) => FaultOutcome::Fail(*code),
                FaultAction::Forbidden => FaultOutcome::Forbidden,
                FaultAction::Sequence(seq) => match seq.pop_front() {
                    Some(0) => FaultOutcome::Pass,
                    Some(code) => FaultOutcome::Fail(code),
                    None => FaultOutcome::Pass,
                },
            };
            let used_up = match (&mut f.times, &f.action) {
                (_, FaultAction::Sequence(seq)) => seq.is_empty(),
                (Some(n), _) => {
                    *n = n.saturating_sub(1);
                    *n == 0
                }
                (None, _) => false,
            };
            if used_up {
                faults.remove(i);
            }
            return outcome;
        }
        FaultOutcome::Pass
    }

    /// Whether a Forbidden fault covers this request, without consuming anything
    /// (SelfSubjectAccessReview answers from it, so `kubectl auth can-i` agrees with 403s).
    pub fn would_forbid(&self, verb: &str, resource: &str, name: &str) -> bool {
        let faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        faults.iter().any(|f| {
            matches!(f.action, FaultAction::Forbidden)
                && f.verb.as_deref().is_none_or(|v| v == verb)
                && f.resource.as_deref().is_none_or(|r| r == resource)
                && f.name.as_deref().is_none_or(|n| n.is_empty() || n == name)
        })
    }

    /// Test hook: the HorizontalPodAutoscaler `namespace/name` now recommends `replicas`
    /// (as metrics would under changed load); None goes back to "keep the current count".
    /// The HPA still clamps it to minReplicas..maxReplicas.
    pub fn set_hpa_recommendation(&self, namespace: &str, name: &str, replicas: Option<i64>) {
        let key = (namespace.to_string(), name.to_string());
        let mut m = self
            .hpa_recommendations
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        match replicas {
            Some(r) => m.insert(key, r),
            None => m.remove(&key),
        };
        drop(m);
        self.kick();
    }

    pub fn hpa_recommendation(&self, namespace: &str, name: &str) -> Option<i64> {
        self.hpa_recommendations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(namespace.to_string(), name.to_string()))
            .copied()
    }

    /// Holds the controllers (e.g. while loading thousands of objects in bulk).
    pub fn set_controllers_paused(&self, paused: bool) {
        self.controllers_paused.store(paused, Ordering::SeqCst);
        self.kick();
    }

    pub fn controllers_paused(&self) -> bool {
        self.controllers_paused.load(Ordering::SeqCst)
    }

    /// Turns the traffic plane on: pods answer HTTP, Services get proxies (the controller
    /// loop owns and runs the plane once this is set).
    pub fn enable_traffic(&self) {
        self.traffic_enabled.store(true, Ordering::SeqCst);
        self.kick();
    }

    pub fn traffic_enabled(&self) -> bool {
        self.traffic_enabled.load(Ordering::SeqCst)
    }

    /// Where the pod (by uid) answers HTTP, if its server runs (traffic plane on, pod
    /// Ready once and not crashed or gone since).
    pub fn pod_server(&self, uid: &str) -> Option<std::net::SocketAddr> {
        self.pod_servers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(uid)
            .copied()
    }

    /// The traffic plane publishes its running pod servers (replacing the last list).
    pub fn set_pod_servers(
        &self,
        servers: std::collections::HashMap<String, std::net::SocketAddr>,
    ) {
        *self.pod_servers.write().unwrap_or_else(|e| e.into_inner()) = servers;
    }

    /// Restricts the user to these rules (None: everything allowed).
    pub fn set_rbac(&self, rules: Option<Vec<PolicyRule>>) {
        *self.rbac.write().unwrap_or_else(|e| e.into_inner()) = rules;
    }

    /// Whether RBAC (if restricted) allows `verb` on `group`/`resource` (`plural[/sub]`);
    /// `cluster_scope` for requests outside any namespace, which only ClusterRoles grant.
    pub fn rbac_allows(
        &self,
        verb: &str,
        group: &str,
        resource: &str,
        cluster_scope: bool,
    ) -> bool {
        match &*self.rbac.read().unwrap_or_else(|e| e.into_inner()) {
            None => true,
            Some(rules) => rules
                .iter()
                .any(|r| (r.cluster_wide || !cluster_scope) && r.allows(verb, group, resource)),
        }
    }

    /// The next tick of the request log's arrival/completion counter.
    pub fn next_request_seq(&self) -> u64 {
        self.request_seq.fetch_add(1, Ordering::SeqCst)
    }

    /// Logs a request; the returned counter takes its response bytes.
    pub fn record(&self, entry: LogEntry) -> Arc<AtomicU64> {
        if let Some(f) = self
            .log_file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            && let Ok(line) = serde_json::to_string(&entry)
        {
            let _ = writeln!(f, "{line}");
        }
        let bytes = Arc::new(AtomicU64::new(0));
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((entry, bytes.clone()));
        bytes
    }

    pub fn set_log_file(&self, f: std::fs::File) {
        *self.log_file.lock().unwrap_or_else(|e| e.into_inner()) = Some(f);
    }

    pub fn request_log(&self) -> Vec<LogEntry> {
        let log = self.log.lock().unwrap_or_else(|e| e.into_inner());
        log.iter()
            .map(|(entry, bytes)| LogEntry {
                bytes: bytes.load(Ordering::Relaxed),
                ..entry.clone()
            })
            .collect()
    }

    /// Clears the request log and the counts of bytes served and connections accepted.
    pub fn clear_request_log(&self) {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.bytes_served.store(0, Ordering::SeqCst);
        self.watch_bytes_served.store(0, Ordering::SeqCst);
        self.connections.0.store(0, Ordering::SeqCst);
        self.connections.1.store(0, Ordering::SeqCst);
    }

    /// TLS connections accepted since the log was last cleared: (HTTP/1.1, HTTP/2). A
    /// client that sends a round of requests over HTTP/1.1 opens one per request in flight.
    pub fn connections_accepted(&self) -> (u32, u32) {
        (
            self.connections.0.load(Ordering::SeqCst),
            self.connections.1.load(Ordering::SeqCst),
        )
    }

    /// From now on, new connections are offered HTTP/1.1 only, as by an API server
    /// behind a proxy or load balancer that does not speak HTTP/2.
    pub fn set_http1_only(&self, only: bool) {
        self.http1_only.store(only, Ordering::SeqCst);
    }

    pub(crate) fn http1_only(&self) -> bool {
        self.http1_only.load(Ordering::SeqCst)
    }

    pub(crate) fn count_connection(&self, h2: bool) {
        let c = if h2 {
            &self.connections.1
        } else {
            &self.connections.0
        };
        c.fetch_add(1, Ordering::SeqCst);
    }

    /// Response body bytes sent since the log was last cleared: what clients received
    /// from the API server (list pages, objects, watch events).
    pub fn bytes_served(&self) -> u64 {
        self.bytes_served.load(Ordering::SeqCst)
    }

    /// Of [`Cluster::bytes_served`], those of watch streams: how many events a watch sees
    /// depends on how long it stays open, not only on what it selects.
    pub fn watch_bytes_served(&self) -> u64 {
        self.watch_bytes_served.load(Ordering::SeqCst)
    }

    pub(crate) fn count_served(&self, n: usize, watch: bool, request: &AtomicU64) {
        request.fetch_add(n as u64, Ordering::Relaxed);
        self.bytes_served.fetch_add(n as u64, Ordering::Relaxed);
        if watch {
            self.watch_bytes_served
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Service ClusterIPs from 10.96.0.0/12, like a default kubeadm cluster.
    pub fn allocate_service_ip(&self) -> String {
        let n = self.next_service_ip.fetch_add(1, Ordering::Relaxed);
        format!("10.96.{}.{}", n / 250, n % 250 + 1)
    }

    /// Pod IPs from 10.244.0.0/16.
    pub fn allocate_pod_ip(&self) -> String {
        let n = self.next_pod_ip.fetch_add(1, Ordering::Relaxed);
        format!("10.244.{}.{}", n / 250, n % 250 + 1)
    }

    pub fn allocate_node_port(&self) -> u32 {
        self.next_node_port.fetch_add(1, Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_flags_parse() {
        let f = Fault::parse("patch:services=409x2").unwrap();
        assert_eq!(f.verb.as_deref(), Some("patch"));
        assert_eq!(f.times, Some(2));
        assert!(matches!(f.action, FaultAction::Status(409)));
        let f = Fault::parse("*:deployments/scale=seq:0,503").unwrap();
        assert!(f.verb.is_none() && f.resource.as_deref() == Some("deployments/scale"));
        let f = Fault::parse("get:services/shop=forbidden").unwrap();
        assert_eq!(f.name.as_deref(), Some("shop"));
        let f = Fault::parse("get:services/proxy=503").unwrap();
        assert_eq!(f.resource.as_deref(), Some("services/proxy"));
        assert!(f.name.is_none());
        let f = Fault::parse("get:pods/proxy/web-1=500").unwrap();
        assert_eq!(f.resource.as_deref(), Some("pods/proxy"));
        assert_eq!(f.name.as_deref(), Some("web-1"));
        assert!(Fault::parse("nonsense").is_err());
    }

    #[test]
    fn counted_and_sequenced_faults_are_used_up() {
        let c = Cluster::new(Timing::default());
        c.add_fault(Fault::new("patch", "services", FaultAction::Status(409)).times(1));
        c.add_fault(Fault::new(
            "get",
            "pods",
            FaultAction::Sequence([0, 503].into()),
        ));
        assert!(matches!(
            c.check_faults("patch", "services", "x"),
            FaultOutcome::Fail(409)
        ));
        assert!(matches!(
            c.check_faults("patch", "services", "x"),
            FaultOutcome::Pass
        ));
        assert!(matches!(
            c.check_faults("get", "pods", "x"),
            FaultOutcome::Pass
        ));
        assert!(matches!(
            c.check_faults("get", "pods", "x"),
            FaultOutcome::Fail(503)
        ));
        assert!(matches!(
            c.check_faults("get", "pods", "x"),
            FaultOutcome::Pass
        ));
        // A fault on the main resource does not hit its subresources.
        c.add_fault(Fault::new("patch", "deployments", FaultAction::Status(500)));
        assert!(matches!(
            c.check_faults("patch", "deployments/scale", "x"),
            FaultOutcome::Pass
        ));
    }
}
