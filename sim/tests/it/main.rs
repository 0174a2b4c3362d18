//! The simulator's integration tests, in one binary: the API through the real kube-rs
//! client (`api`), the controllers on paused tokio time (`controllers`), the real
//! `kubectl` against the HTTPS server (`kubectl`), the proxy subresources and what pods
//! answer over HTTP (`proxy`) and the `bluegreen-sim` binary (`binary`).

mod api;
mod binary;
mod controllers;
mod kubectl;
mod objects;
mod proxy;

use bluegreen_sim::Sim;
use serde_json::Value;

pub const CONTRACT: &str = include_str!("../../../tests/fixtures/contract/app.yaml");
pub const VERSION_LABEL: &str = include_str!("../../../tests/fixtures/version-label/app.yaml");

/// A Deployment manifest with `replicas` copies of `image`, labelled `app: NAME`.
pub fn deployment(name: &str, replicas: i64, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: {image}
        ports: [{{containerPort: 8080}}]
"
    )
}

/// Pods of a Deployment's ReplicaSets (by label), excluding terminating ones.
pub fn live_pods(sim: &Sim, ns: &str, app: &str) -> Vec<Value> {
    sim.list("pods", ns)
        .into_iter()
        .filter(|p| {
            p["metadata"]["labels"]["app"] == app && p["metadata"]["deletionTimestamp"].is_null()
        })
        .collect()
}

pub fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}
