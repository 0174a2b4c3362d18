//! YAML builders for unit tests of the model and the planner.

use crate::observe::Snapshot;
use serde_json::Value;

/// A snapshot from multi-document YAML (Services, Deployments, ReplicaSets, slices).
pub fn snap(yaml: &str) -> Snapshot {
    let docs: Vec<Value> = serde_saphyr::from_str_multiple(yaml).unwrap();
    let mut s = Snapshot::default();
    for mut d in docs.into_iter().filter(|d| !d.is_null()) {
        if d["metadata"]["namespace"].is_null() {
            d["metadata"]["namespace"] = "default".into();
        }
        match d["kind"].as_str().unwrap() {
            "Service" => s.services.push(serde_json::from_value(d).unwrap()),
            "Deployment" => s.deployments.push(serde_json::from_value(d).unwrap()),
            "ReplicaSet" => s.replicasets.push(serde_json::from_value(d).unwrap()),
            "EndpointSlice" => s.slices.push(serde_json::from_value(d).unwrap()),
            "Pod" => s.pods.push(serde_json::from_value(d).unwrap()),
            "HorizontalPodAutoscaler" => s.hpas.push(serde_json::from_value(d).unwrap()),
            k => panic!("unexpected kind {k}"),
        }
    }
    s
}

pub fn svc(name: &str, color: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n{extra}spec:\n  selector: {{app: shop, bluegreen.io/color: {color}}}\n  ports: [{{port: 80}}]\n"
    )
}

pub fn deploy(name: &str, color: &str, replicas: i32, ready: i32) -> String {
    format!(
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  generation: 2\n  annotations: {{deployment.kubernetes.io/revision: \"4\"}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: shop, bluegreen.io/color: {color}}}}}\n  template:\n    metadata: {{labels: {{app: shop, bluegreen.io/color: {color}}}}}\n    spec: {{containers: [{{name: web, image: web:{color}}}]}}\nstatus: {{observedGeneration: 2, replicas: {ready}, updatedReplicas: {ready}, readyReplicas: {ready}, availableReplicas: {ready}}}\n---\napiVersion: apps/v1\nkind: ReplicaSet\nmetadata:\n  name: {name}-abc12\n  labels: {{pod-template-hash: abc12}}\n  annotations: {{deployment.kubernetes.io/revision: \"4\"}}\n  ownerReferences: [{{apiVersion: apps/v1, kind: Deployment, name: {name}, uid: u-{name}, controller: true}}]\nspec:\n  selector: {{matchLabels: {{app: shop}}}}\n"
    )
}

pub fn slice(service: &str, pods: &[(&str, bool)]) -> String {
    let eps: Vec<String> = pods
    .iter()
    .enumerate()
    .map(|(i, (pod, ready))| format!("  - addresses: [10.0.0.{i}]\n    conditions: {{ready: {ready}}}\n    targetRef: {{kind: Pod, name: {pod}, namespace: default}}\n"))
    .collect();
    format!(
        "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {service}-x\n  labels: {{kubernetes.io/service-name: {service}}}\naddressType: IPv4\nendpoints:\n{}",
        eps.concat()
    )
}
