//! Server-side printing: `meta.k8s.io/v1` Table responses, which `kubectl get` asks for
//! (`Accept: application/json;as=Table;...`). Columns and cells follow upstream's printers
//! for the kinds a release touches, so `kubectl get deploy` looks as on a real cluster.

use crate::resources::ResourceType;
use crate::selector::LabelSelector;
use crate::store::name_of;
use serde_json::{Value, json};

/// Upstream's `duration.HumanDuration`, the AGE column.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    if s < 120 {
        return format!("{s}s");
    }
    let m = s / 60;
    if m < 10 {
        let rs = s % 60;
        return if rs == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rs}s")
        };
    }
    if m < 180 {
        return format!("{m}m");
    }
    let h = m / 60;
    if h < 8 {
        let rm = m % 60;
        return if rm == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rm}m")
        };
    }
    if h < 48 {
        return format!("{h}h");
    }
    let d = h / 24;
    if h < 24 * 8 {
        let rh = h % 24;
        return if rh == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{rh}h")
        };
    }
    if h < 24 * 365 * 2 {
        return format!("{d}d");
    }
    let y = d / 365;
    if h < 24 * 365 * 8 {
        let dy = d % 365;
        return if dy == 0 {
            format!("{y}y")
        } else {
            format!("{y}y{dy}d")
        };
    }
    format!("{y}y")
}

fn age_of(ts: &Value) -> String {
    match ts.as_str().and_then(|s| s.parse::<jiff::Timestamp>().ok()) {
        Some(t) => human_duration(jiff::Timestamp::now().as_second() - t.as_second()),
        None => "<unknown>".into(),
    }
}

fn age(obj: &Value) -> String {
    age_of(&obj["metadata"]["creationTimestamp"])
}

/// Entries of a map or list field (0 when absent).
fn count(v: &Value) -> usize {
    v.as_object()
        .map(|m| m.len())
        .or_else(|| v.as_array().map(Vec::len))
        .unwrap_or(0)
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn col(name: &str, type_: &str, priority: i64) -> Value {
    let mut c =
        json!({"name": name, "type": type_, "format": "", "description": "", "priority": priority});
    if name == "Name" {
        c["format"] = json!("name");
    }
    c
}

fn containers_and_images(spec: &Value) -> (String, String) {
    let cs = spec["containers"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = cs.iter().filter_map(|c| c["name"].as_str()).collect();
    let images: Vec<&str> = cs.iter().filter_map(|c| c["image"].as_str()).collect();
    (names.join(","), images.join(","))
}

fn selector_string(sel: &Value) -> String {
    LabelSelector::from_object(sel)
        .map(|s| s.to_query())
        .unwrap_or_else(|| "<none>".into())
}

fn columns(kind: &str) -> Vec<Value> {
    let c = |n: &str, t: &str, p: i64| col(n, t, p);
    match kind {
        "Deployment" => vec![
            c("Name", "string", 0),
            c("Ready", "string", 0),
            c("Up-to-date", "integer", 0),
            c("Available", "integer", 0),
            c("Age", "string", 0),
            c("Containers", "string", 1),
            c("Images", "string", 1),
            c("Selector", "string", 1),
        ],
        "ReplicaSet" => vec![
            c("Name", "string", 0),
            c("Desired", "integer", 0),
            c("Current", "integer", 0),
            c("Ready", "integer", 0),
            c("Age", "string", 0),
            c("Containers", "string", 1),
            c("Images", "string", 1),
            c("Selector", "string", 1),
        ],
        "Pod" => vec![
            c("Name", "string", 0),
            c("Ready", "string", 0),
            c("Status", "string", 0),
            c("Restarts", "string", 0),
            c("Age", "string", 0),
            c("IP", "string", 1),
            c("Node", "string", 1),
            c("Nominated Node", "string", 1),
            c("Readiness Gates", "string", 1),
        ],
        "Service" => vec![
            c("Name", "string", 0),
            c("Type", "string", 0),
            c("Cluster-IP", "string", 0),
            c("External-IP", "string", 0),
            c("Port(s)", "string", 0),
            c("Age", "string", 0),
            c("Selector", "string", 1),
        ],
        "Endpoints" => vec![
            c("Name", "string", 0),
            c("Endpoints", "string", 0),
            c("Age", "string", 0),
        ],
        "EndpointSlice" => vec![
            c("Name", "string", 0),
            c("AddressType", "string", 0),
            c("Ports", "string", 0),
            c("Endpoints", "string", 0),
            c("Age", "string", 0),
        ],
        "ConfigMap" => vec![
            c("Name", "string", 0),
            c("Data", "string", 0),
            c("Age", "string", 0),
        ],
        "Secret" => vec![
            c("Name", "string", 0),
            c("Type", "string", 0),
            c("Data", "string", 0),
            c("Age", "string", 0),
        ],
        "ServiceAccount" => vec![
            c("Name", "string", 0),
            c("Secrets", "string", 0),
            c("Age", "string", 0),
        ],
        "PodDisruptionBudget" => vec![
            c("Name", "string", 0),
            c("Min Available", "string", 0),
            c("Max Unavailable", "string", 0),
            c("Allowed Disruptions", "integer", 0),
            c("Age", "string", 0),
        ],
        "HorizontalPodAutoscaler" => vec![
            c("Name", "string", 0),
            c("Reference", "string", 0),
            c("Targets", "string", 0),
            c("MinPods", "string", 0),
            c("MaxPods", "integer", 0),
            c("Replicas", "integer", 0),
            c("Age", "string", 0),
        ],
        "Namespace" => vec![
            c("Name", "string", 0),
            c("Status", "string", 0),
            c("Age", "string", 0),
        ],
        "Lease" => vec![
            c("Name", "string", 0),
            c("Holder", "string", 0),
            c("Age", "string", 0),
        ],
        "Event" => vec![
            c("Last Seen", "string", 0),
            c("Type", "string", 0),
            c("Reason", "string", 0),
            c("Object", "string", 0),
            c("Subobject", "string", 1),
            c("Source", "string", 1),
            c("Message", "string", 0),
            c("First Seen", "string", 1),
            c("Count", "string", 1),
            c("Name", "string", 1),
        ],
        _ => vec![c("Name", "string", 0), c("Age", "string", 0)],
    }
}

fn pod_status_reason(p: &Value) -> String {
    if !p["metadata"]["deletionTimestamp"].is_null() {
        return "Terminating".into();
    }
    let mut reason = p["status"]["phase"]
        .as_str()
        .unwrap_or("Pending")
        .to_string();
    for cs in p["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        if let Some(r) = cs.pointer("/state/waiting/reason").and_then(Value::as_str) {
            reason = r.to_string();
        }
    }
    reason
}

fn cells(kind: &str, o: &Value) -> Vec<Value> {
    let name = json!(name_of(o));
    match kind {
        "Deployment" => {
            let (cs, imgs) = containers_and_images(&o["spec"]["template"]["spec"]);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(&o["status"]["readyReplicas"]),
                    int(&o["spec"]["replicas"])
                )),
                json!(int(&o["status"]["updatedReplicas"])),
                json!(int(&o["status"]["availableReplicas"])),
                json!(age(o)),
                json!(cs),
                json!(imgs),
                json!(selector_string(&o["spec"]["selector"])),
            ]
        }
        "ReplicaSet" => {
            let (cs, imgs) = containers_and_images(&o["spec"]["template"]["spec"]);
            vec![
                name,
                json!(int(&o["spec"]["replicas"])),
                json!(int(&o["status"]["replicas"])),
                json!(int(&o["status"]["readyReplicas"])),
                json!(age(o)),
                json!(cs),
                json!(imgs),
                json!(selector_string(&o["spec"]["selector"])),
            ]
        }
        "Pod" => {
            let statuses = o["status"]["containerStatuses"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let total = o["spec"]["containers"]
                .as_array()
                .map(Vec::len)
                .unwrap_or(0);
            let ready = statuses.iter().filter(|s| s["ready"] == true).count();
            let restarts: i64 = statuses.iter().map(|s| int(&s["restartCount"])).sum();
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status_reason(o)),
                json!(restarts.to_string()),
                json!(age(o)),
                json!(o["status"]["podIP"].as_str().unwrap_or("<none>")),
                json!(o["spec"]["nodeName"].as_str().unwrap_or("<none>")),
                json!("<none>"),
                json!("<none>"),
            ]
        }
        "Service" => {
            let spec = &o["spec"];
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|p| match p["nodePort"].as_i64() {
                    Some(np) => format!(
                        "{}:{np}/{}",
                        int(&p["port"]),
                        p["protocol"].as_str().unwrap_or("TCP")
                    ),
                    None => format!(
                        "{}/{}",
                        int(&p["port"]),
                        p["protocol"].as_str().unwrap_or("TCP")
                    ),
                })
                .collect();
            let external = if spec["type"] == "LoadBalancer" {
                "<pending>"
            } else {
                "<none>"
            };
            let sel = spec["selector"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "<none>".into());
            vec![
                name,
                json!(spec["type"].as_str().unwrap_or("ClusterIP")),
                json!(spec["clusterIP"].as_str().unwrap_or("<none>")),
                json!(external),
                json!(if ports.is_empty() {
                    "<none>".to_string()
                } else {
                    ports.join(",")
                }),
                json!(age(o)),
                json!(sel),
            ]
        }
        "Endpoints" => {
            let mut eps = Vec::new();
            for s in o["subsets"].as_array().cloned().unwrap_or_default() {
                for a in s["addresses"].as_array().cloned().unwrap_or_default() {
                    for p in s["ports"].as_array().cloned().unwrap_or_default() {
                        eps.push(format!(
                            "{}:{}",
                            a["ip"].as_str().unwrap_or(""),
                            int(&p["port"])
                        ));
                    }
                }
            }
            vec![name, json!(shorten(&eps)), json!(age(o))]
        }
        "EndpointSlice" => {
            let ports: Vec<String> = o["ports"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .map(|p| int(&p["port"]).to_string())
                .collect();
            let addrs: Vec<String> = o["endpoints"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|e| e["addresses"][0].as_str().map(String::from))
                .collect();
            vec![
                name,
                json!(o["addressType"].as_str().unwrap_or("")),
                json!(if ports.is_empty() {
                    "<unset>".into()
                } else {
                    ports.join(",")
                }),
                json!(shorten(&addrs)),
                json!(age(o)),
            ]
        }
        "ConfigMap" => vec![
            name,
            json!(count(&o["data"]) + count(&o["binaryData"])),
            json!(age(o)),
        ],
        "Secret" => vec![
            name,
            json!(o["type"].as_str().unwrap_or("Opaque")),
            json!(count(&o["data"])),
            json!(age(o)),
        ],
        "ServiceAccount" => vec![name, json!(count(&o["secrets"])), json!(age(o))],
        "PodDisruptionBudget" => {
            let show = |v: &Value| match v {
                Value::Null => "N/A".to_string(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            vec![
                name,
                json!(show(&o["spec"]["minAvailable"])),
                json!(show(&o["spec"]["maxUnavailable"])),
                json!(int(&o["status"]["disruptionsAllowed"])),
                json!(age(o)),
            ]
        }
        "HorizontalPodAutoscaler" => {
            let r = &o["spec"]["scaleTargetRef"];
            let targets: Vec<String> = o["spec"]["metrics"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|m| {
                    let res = &m["resource"];
                    let pct = res["target"]["averageUtilization"].as_i64()?;
                    Some(format!("{}: <unknown>/{pct}%", res["name"].as_str()?))
                })
                .collect();
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    r["kind"].as_str().unwrap_or(""),
                    r["name"].as_str().unwrap_or("")
                )),
                json!(if targets.is_empty() {
                    "<none>".to_string()
                } else {
                    targets.join(", ")
                }),
                json!(int(&o["spec"]["minReplicas"]).to_string()),
                json!(int(&o["spec"]["maxReplicas"])),
                json!(int(&o["status"]["currentReplicas"])),
                json!(age(o)),
            ]
        }
        "Namespace" => vec![
            name,
            json!(o["status"]["phase"].as_str().unwrap_or("Active")),
            json!(age(o)),
        ],
        "Lease" => vec![
            name,
            json!(o["spec"]["holderIdentity"].as_str().unwrap_or("<unknown>")),
            json!(age(o)),
        ],
        "Event" => {
            let io = &o["involvedObject"];
            let last = if o["lastTimestamp"].is_null() {
                &o["eventTime"]
            } else {
                &o["lastTimestamp"]
            };
            let first = if o["firstTimestamp"].is_null() {
                &o["eventTime"]
            } else {
                &o["firstTimestamp"]
            };
            vec![
                json!(age_of(last)),
                json!(o["type"].as_str().unwrap_or("")),
                json!(o["reason"].as_str().unwrap_or("")),
                json!(format!(
                    "{}/{}",
                    io["kind"].as_str().unwrap_or("").to_lowercase(),
                    io["name"].as_str().unwrap_or("")
                )),
                json!(io["fieldPath"].as_str().unwrap_or("")),
                json!(
                    o["source"]["component"]
                        .as_str()
                        .or(o["reportingComponent"].as_str())
                        .unwrap_or("")
                ),
                json!(o["message"].as_str().unwrap_or("").trim()),
                json!(age_of(first)),
                json!(int(&o["count"]).max(1).to_string()),
                name,
            ]
        }
        _ => vec![name, json!(age(o))],
    }
}

/// Upstream shows at most three endpoints and "+ N more...".
fn shorten(items: &[String]) -> String {
    if items.is_empty() {
        return "<none>".into();
    }
    if items.len() <= 3 {
        return items.join(",");
    }
    format!("{} + {} more...", items[..3].join(","), items.len() - 3)
}

/// What a row carries besides its cells: `includeObject=None|Metadata|Object`.
#[derive(Clone, Copy, PartialEq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(s: Option<&str>) -> Include {
        match s {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

fn row(rt: &ResourceType, o: &Value, include: Include) -> Value {
    let mut r = json!({"cells": cells(rt.kind, o)});
    match include {
        Include::None => {}
        Include::Metadata => {
            r["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]});
        }
        Include::Object => {
            r["object"] = crate::ops::to_served(rt, o.clone());
        }
    }
    r
}

/// A Table of stored objects (cells read the stored form; rows carry the served form).
pub fn table(
    rt: &ResourceType,
    items: &[Value],
    rv: &str,
    cont: Option<&str>,
    include: Include,
) -> Value {
    let mut md = json!({"resourceVersion": rv});
    if let Some(c) = cont {
        md["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": md,
        "columnDefinitions": columns(rt.kind),
        "rows": items.iter().map(|o| row(rt, o, include)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(12 * 86400), "12d");
    }
}
