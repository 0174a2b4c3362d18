//! The EndpointSlice/Endpoints controller: for each Service with a selector, computes
//! the endpoints of its matching pods (ready, serving, terminating; named target ports
//! resolved) and publishes them after the propagation delay `endpoint_delay`, as one
//! EndpointSlice plus the legacy Endpoints mirror (without terminating pods, as upstream). State: the publications queued per
//! Service and the last one computed.

use super::shared::{owner_ref, pod_ready, terminating};
use crate::cluster::Cluster;
use crate::ops::{self, DeleteOpts, Sub, WriteOpts};
use crate::resources::find;
use crate::selector::LabelSelector;
use crate::store::{Visit, name_of, ns_of, uid_of};
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap, VecDeque};
use tokio::time::Instant;

/// The label naming an EndpointSlice's Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A Service's (namespace, name).
type ServiceKey = (String, String);

/// What the endpoint controller remembers between passes.
#[derive(Default)]
pub(super) struct EndpointState {
    /// EndpointSlice updates scheduled per Service, applied when due: the endpoint
    /// controller's propagation lag.
    queue: HashMap<ServiceKey, VecDeque<(Instant, Value)>>,
    /// The latest desired endpoints computed per Service.
    last: HashMap<ServiceKey, Value>,
}

/// Queues changed endpoints of the Services that may have changed — those in
/// `services` (the Service or what it publishes changed), those selecting a pod of
/// `pod_labels` (a pod's labels before or after a change) and those with a publication
/// due — and publishes what is due; returns when the next queued publication is due,
/// and how many Services it looked at.
pub(super) fn reconcile(
    c: &Cluster,
    state: &mut EndpointState,
    mut services: BTreeSet<ServiceKey>,
    pod_labels: &[(String, Map<String, Value>)],
    now: Instant,
) -> (Option<Instant>, usize) {
    let delay = c.timing().endpoint_delay;
    services.extend(selecting(c, pod_labels));
    services.extend(
        state
            .queue
            .iter()
            .filter(|(_, q)| q.front().is_some_and(|(at, _)| *at <= now))
            .map(|(k, _)| k.clone()),
    );
    let visited = services.len();
    for key in services {
        let svc = c.store.get_shared("services", &key.0, &key.1);
        let Some((svc, (k, v))) = svc.as_ref().and_then(|svc| {
            let first = svc["spec"]["selector"].as_object()?.iter().next()?;
            Some((svc, first))
        }) else {
            // Gone, or without a selector: nothing of it to publish.
            state.last.remove(&key);
            state.queue.remove(&key);
            continue;
        };
        // Only pods carrying one of the selector's labels can match (the label index,
        // as upstream's pod lister by selector): a Service costs its pods, not the
        // namespace's.
        let pair = [(k.clone(), v.as_str().unwrap_or_default().to_string())];
        let candidates = c
            .store
            .list_where("pods", Some(&key.0), Visit::Labelled(&pair), |_| true)
            .0;
        let desired = desired_endpoints(svc, &candidates);
        if state.last.get(&key) != Some(&desired) {
            state.last.insert(key.clone(), desired.clone());
            state
                .queue
                .entry(key.clone())
                .or_default()
                .push_back((now + delay, desired));
        }
        publish_due(c, state, svc, &key, now);
    }
    let next = state
        .queue
        .values()
        .filter_map(|q| q.front().map(|(at, _)| *at))
        .min();
    (next, visited)
}

/// The Services whose selector matches one of the label sets, each in its namespace.
fn selecting(c: &Cluster, pod_labels: &[(String, Map<String, Value>)]) -> Vec<ServiceKey> {
    let namespaces: BTreeSet<&str> = pod_labels.iter().map(|(ns, _)| ns.as_str()).collect();
    let mut out = Vec::new();
    for ns in namespaces {
        let labels: Vec<&Map<String, Value>> = pod_labels
            .iter()
            .filter(|(n, _)| n == ns)
            .map(|(_, l)| l)
            .collect();
        out.extend(c.store.scan("services", Some(ns), |svc| {
            let selector = svc["spec"]["selector"].as_object()?;
            labels
                .iter()
                .any(|l| selector.iter().all(|(k, v)| l.get(k) == Some(v)))
                .then(|| (ns.to_string(), name_of(svc).to_string()))
        }));
    }
    out
}

/// Publishes the latest due publication of one Service, or re-creates published objects
/// found missing (e.g. deleted by a user); returns when its next one is due.
fn publish_due(
    c: &Cluster,
    state: &mut EndpointState,
    svc: &Value,
    key: &ServiceKey,
    now: Instant,
) -> Option<Instant> {
    let queue = state.queue.entry(key.clone()).or_default();
    let mut due = None;
    while queue.front().is_some_and(|(at, _)| *at <= now) {
        due = queue.pop_front().map(|(_, d)| d);
    }
    let next = queue.front().map(|(at, _)| *at);
    if let Some(d) = due {
        publish(c, svc, &d);
    } else if queue.is_empty() && !published(c, key) {
        let d = state
            .last
            .get(key)
            .cloned()
            .unwrap_or(json!({"endpoints": [], "ports": []}));
        publish(c, svc, &d);
    }
    next
}

/// Whether the Service's Endpoints and an EndpointSlice of it exist (upstream's
/// controllers watch what they publish and re-create what someone deleted).
fn published(c: &Cluster, (ns, name): &ServiceKey) -> bool {
    let slice_of = (SERVICE_NAME_LABEL.to_string(), name.clone());
    c.store.peek("endpoints", ns, name, |_| ()).is_some()
        && c.store.any_labelled("endpointslices", ns, &slice_of)
}

/// What the endpoint controller would publish for a Service now: (endpoints, ports).
fn desired_endpoints(svc: &Value, pods: &[Value]) -> Value {
    let selector = LabelSelector::from_map(
        svc["spec"]["selector"]
            .as_object()
            .expect("checked by caller"),
    );
    let mut endpoints = Vec::new();
    let mut first_pod: Option<&Value> = None;
    for p in pods {
        if !selector.matches_object(p) || p["status"]["podIP"].is_null() {
            continue;
        }
        if p["status"]["phase"] == "Failed" || p["status"]["phase"] == "Succeeded" {
            continue;
        }
        first_pod.get_or_insert(p);
        endpoints.push(endpoint_of(p));
    }
    json!({"endpoints": endpoints, "ports": service_ports(svc, first_pod)})
}

/// One pod's EndpointSlice endpoint.
fn endpoint_of(p: &Value) -> Value {
    let term = terminating(p);
    let ready = pod_ready(p);
    json!({
        "addresses": [p["status"]["podIP"]],
        "conditions": {"ready": ready && !term, "serving": ready, "terminating": term},
        "targetRef": {"kind": "Pod", "namespace": ns_of(p), "name": name_of(p), "uid": uid_of(p)},
        "nodeName": p["spec"]["nodeName"],
    })
}

/// The Service's ports with target ports resolved (a named one through the first
/// endpoint pod's container ports; unresolvable ones left out).
fn service_ports(svc: &Value, first_pod: Option<&Value>) -> Vec<Value> {
    let mut ports = Vec::new();
    for sp in svc["spec"]["ports"].as_array().cloned().unwrap_or_default() {
        let target = &sp["targetPort"];
        let port = match target {
            Value::String(name) => first_pod.and_then(|p| {
                p["spec"]["containers"]
                    .as_array()?
                    .iter()
                    .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                    .find(|cp| cp["name"] == *name)
                    .map(|cp| cp["containerPort"].clone())
            }),
            Value::Null => Some(sp["port"].clone()),
            v => Some(v.clone()),
        };
        if let Some(port) = port {
            let mut p = json!({"port": port, "protocol": sp["protocol"].as_str().unwrap_or("TCP")});
            p["name"] = sp.get("name").cloned().unwrap_or(json!(""));
            ports.push(p);
        }
    }
    ports
}

/// Writes the desired endpoints of a Service: its EndpointSlice and Endpoints.
fn publish(c: &Cluster, svc: &Value, desired: &Value) {
    publish_slice(c, svc, desired);
    publish_legacy_endpoints(c, svc, desired);
}

/// One EndpointSlice per Service (created from `<service>-`, extra ones deleted).
fn publish_slice(c: &Cluster, svc: &Value, desired: &Value) {
    let ns = ns_of(svc);
    let name = name_of(svc);
    let slice_body = |base: Value| -> Value {
        let mut s = base;
        s["addressType"] = json!("IPv4");
        s["endpoints"] = desired["endpoints"].clone();
        s["ports"] = desired["ports"].clone();
        s
    };
    let slices: Vec<Value> = c.store.scan("endpointslices", Some(ns), |s| {
        (s["metadata"]["labels"][SERVICE_NAME_LABEL].as_str() == Some(name)).then(|| s.clone())
    });
    let rt = find("discovery.k8s.io", "v1", "endpointslices").expect("slices");
    match slices.first() {
        None => {
            let mut labels = svc["metadata"]["labels"].clone();
            if !labels.is_object() {
                labels = json!({});
            }
            labels[SERVICE_NAME_LABEL] = json!(name);
            labels["endpointslice.kubernetes.io/managed-by"] =
                json!("endpointslice-controller.k8s.io");
            let body = slice_body(
                json!({"metadata": {"generateName": format!("{name}-"), "namespace": ns, "labels": labels, "ownerReferences": owner_ref("v1", "Service", svc)}}),
            );
            let _ = ops::create(c, rt, ns, body, &WriteOpts::by(super::CONTROLLER_MANAGER));
        }
        Some(s) => {
            let next = slice_body(s.clone());
            if next != *s {
                let _ = ops::controller_write(
                    c,
                    "endpointslices",
                    s,
                    next,
                    super::CONTROLLER_MANAGER,
                    Sub::Main,
                );
            }
            for extra in slices.iter().skip(1) {
                let _ = ops::delete(c, rt, ns, name_of(extra), &DeleteOpts::default());
            }
        }
    }
}

/// The legacy Endpoints mirror, as `kubectl get endpoints` and describe show it.
fn publish_legacy_endpoints(c: &Cluster, svc: &Value, desired: &Value) {
    let ns = ns_of(svc);
    let name = name_of(svc);
    // Upstream's Endpoints controller leaves terminating pods out altogether
    // (`ShouldPodBeInEndpoints`); only the EndpointSlice shows them.
    let eps: Vec<Value> = desired["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["conditions"]["terminating"] != true)
        .cloned()
        .collect();
    let addr = |e: &Value| json!({"ip": e["addresses"][0], "nodeName": e["nodeName"], "targetRef": e["targetRef"]});
    let ready: Vec<Value> = eps
        .iter()
        .filter(|e| e["conditions"]["ready"] == true)
        .map(addr)
        .collect();
    let not_ready: Vec<Value> = eps
        .iter()
        .filter(|e| e["conditions"]["ready"] != true)
        .map(addr)
        .collect();
    let mut subset = json!({"ports": desired["ports"].as_array().map(|ps| ps.iter().map(|p| {
        let mut q = json!({"port": p["port"], "protocol": p["protocol"]});
        if p["name"] != "" { q["name"] = p["name"].clone(); }
        q
    }).collect::<Vec<_>>())});
    if !ready.is_empty() {
        subset["addresses"] = json!(ready);
    }
    if !not_ready.is_empty() {
        subset["notReadyAddresses"] = json!(not_ready);
    }
    let mut ep =
        json!({"metadata": {"name": name, "namespace": ns, "labels": svc["metadata"]["labels"]}});
    if ep["metadata"]["labels"].is_null() {
        ep["metadata"]
            .as_object_mut()
            .expect("object")
            .remove("labels");
    }
    if !eps.is_empty() {
        ep["subsets"] = json!([subset]);
    }
    let rt = find("", "v1", "endpoints").expect("endpoints");
    match c.store.get("endpoints", ns, name) {
        None => {
            let _ = ops::create(c, rt, ns, ep, &WriteOpts::by(super::CONTROLLER_MANAGER));
        }
        Some(cur) => {
            let mut next = cur.clone();
            next["subsets"] = ep["subsets"].clone();
            if next["subsets"].is_null() {
                next.as_object_mut().expect("object").remove("subsets");
            }
            if next != cur {
                let _ = ops::controller_write(
                    c,
                    "endpoints",
                    &cur,
                    next,
                    super::CONTROLLER_MANAGER,
                    Sub::Main,
                );
            }
        }
    }
}
