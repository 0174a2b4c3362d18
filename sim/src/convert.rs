//! One stored object seen through several API versions, as upstream stores one version
//! and converts on read and write: core/v1 and events.k8s.io/v1 Events, autoscaling/v2
//! and autoscaling/v1 HorizontalPodAutoscalers.

use crate::resources::ResourceType;
use serde_json::{Value, json};

// ---- events: one storage seen through core/v1 and events.k8s.io/v1 ----

fn move_field(from: &mut Value, to: &mut Value, a: &str, b: &str) {
    if let Some(v) = from.as_object_mut().and_then(|m| m.remove(a))
        && !v.is_null()
    {
        to[b] = v;
    }
}

// ---- autoscalers: stored as autoscaling/v2, also served as autoscaling/v1 ----
//
// As upstream converts: v1's `targetCPUUtilizationPercentage` is v2's CPU Utilization
// metric; what v1 cannot say (other metrics, behavior, conditions) rides in annotations,
// so that a v1 round trip keeps it. (Upstream writes those annotations in the older
// autoscaling/v2beta1 shape; here they hold the v2 JSON.)

const HPA_V1_ANNOTATIONS: [(&str, &str, &str); 4] = [
    ("spec", "metrics", "autoscaling.alpha.kubernetes.io/metrics"),
    (
        "spec",
        "behavior",
        "autoscaling.alpha.kubernetes.io/behavior",
    ),
    (
        "status",
        "conditions",
        "autoscaling.alpha.kubernetes.io/conditions",
    ),
    (
        "status",
        "currentMetrics",
        "autoscaling.alpha.kubernetes.io/current-metrics",
    ),
];

fn is_cpu_utilization(m: &Value) -> bool {
    m["type"] == "Resource"
        && m["resource"]["name"] == "cpu"
        && m["resource"]["target"]["type"] == "Utilization"
}

fn hpa_v2_to_v1(mut obj: Value) -> Value {
    let mut annotations = obj["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (part, field, key) in HPA_V1_ANNOTATIONS {
        let Some(mut v) = obj[part].as_object_mut().and_then(|m| m.remove(field)) else {
            continue;
        };
        let cpu_field = match field {
            "metrics" => Some((
                "targetCPUUtilizationPercentage",
                "/resource/target/averageUtilization",
            )),
            "currentMetrics" => Some((
                "currentCPUUtilizationPercentage",
                "/resource/current/averageUtilization",
            )),
            _ => None,
        };
        if let (Some((name, pointer)), Some(list)) = (cpu_field, v.as_array_mut()) {
            let cpu = |m: &Value| {
                m["type"] == "Resource"
                    && m["resource"]["name"] == "cpu"
                    && m.pointer(pointer).is_some()
            };
            if let Some(i) = list
                .iter()
                .position(|m| cpu(m) && (field == "currentMetrics" || is_cpu_utilization(m)))
            {
                obj[part][name] = list
                    .remove(i)
                    .pointer(pointer)
                    .cloned()
                    .unwrap_or(Value::Null);
            }
            if list.is_empty() {
                continue;
            }
        }
        annotations.insert(key.to_string(), json!(v.to_string()));
    }
    if !annotations.is_empty() {
        obj["metadata"]["annotations"] = Value::Object(annotations);
    }
    obj
}

fn hpa_v1_to_v2(mut obj: Value) -> Value {
    let mut annotations = obj["metadata"]["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (part, field, key) in HPA_V1_ANNOTATIONS {
        if let Some(v) = annotations.remove(key).and_then(|v| {
            v.as_str()
                .and_then(|s| serde_json::from_str::<Value>(s).ok())
        }) {
            obj[part][field] = v;
        }
    }
    for (part, name, field, kind) in [
        (
            "spec",
            "targetCPUUtilizationPercentage",
            "metrics",
            "target",
        ),
        (
            "status",
            "currentCPUUtilizationPercentage",
            "currentMetrics",
            "current",
        ),
    ] {
        let Some(pct) = obj[part].as_object_mut().and_then(|m| m.remove(name)) else {
            continue;
        };
        let mut metric = json!({"type": "Resource", "resource": {"name": "cpu"}});
        metric["resource"][kind] = if kind == "target" {
            json!({"type": "Utilization", "averageUtilization": pct})
        } else {
            json!({"averageUtilization": pct})
        };
        match obj[part][field].as_array_mut() {
            Some(list) => list.insert(0, metric),
            None => obj[part][field] = json!([metric]),
        }
    }
    match obj["metadata"].as_object_mut() {
        Some(meta) if annotations.is_empty() => {
            meta.remove("annotations");
        }
        Some(meta) => {
            meta.insert("annotations".into(), Value::Object(annotations));
        }
        None => {}
    }
    obj
}

fn is_hpa_v1(rt: &ResourceType) -> bool {
    rt.group == "autoscaling" && rt.version == "v1" && rt.kind == "HorizontalPodAutoscaler"
}

/// Stored (core/v1) form → the form served for `rt`.
pub fn to_served(rt: &ResourceType, mut obj: Value) -> Value {
    if is_hpa_v1(rt) {
        obj = hpa_v2_to_v1(obj);
    }
    if rt.group == "events.k8s.io" {
        let mut out = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event"});
        for (a, b) in [
            ("metadata", "metadata"),
            ("involvedObject", "regarding"),
            ("message", "note"),
            ("reason", "reason"),
            ("type", "type"),
            ("related", "related"),
            ("action", "action"),
            ("series", "series"),
            ("eventTime", "eventTime"),
            ("reportingInstance", "reportingInstance"),
            ("source", "deprecatedSource"),
            ("firstTimestamp", "deprecatedFirstTimestamp"),
            ("lastTimestamp", "deprecatedLastTimestamp"),
            ("count", "deprecatedCount"),
        ] {
            move_field(&mut obj, &mut out, a, b);
        }
        if let Some(c) = obj
            .get("reportingComponent")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            out["reportingController"] = json!(c);
        } else if let Some(c) = out.pointer("/deprecatedSource/component").cloned() {
            out["reportingController"] = c;
        }
        return out;
    }
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    obj
}

/// Served form → stored (core/v1) form.
pub fn to_stored(rt: &ResourceType, mut obj: Value) -> Value {
    if is_hpa_v1(rt) {
        obj = hpa_v1_to_v2(obj);
        obj["apiVersion"] = json!("autoscaling/v2");
        obj["kind"] = json!(rt.kind);
        return obj;
    }
    if rt.group == "events.k8s.io" {
        let mut out = json!({"apiVersion": "v1", "kind": "Event"});
        for (a, b) in [
            ("metadata", "metadata"),
            ("regarding", "involvedObject"),
            ("note", "message"),
            ("reason", "reason"),
            ("type", "type"),
            ("related", "related"),
            ("action", "action"),
            ("series", "series"),
            ("eventTime", "eventTime"),
            ("reportingInstance", "reportingInstance"),
            ("reportingController", "reportingComponent"),
            ("deprecatedSource", "source"),
            ("deprecatedFirstTimestamp", "firstTimestamp"),
            ("deprecatedLastTimestamp", "lastTimestamp"),
            ("deprecatedCount", "count"),
        ] {
            move_field(&mut obj, &mut out, a, b);
        }
        if out["involvedObject"].is_null() {
            out["involvedObject"] = json!({});
        }
        return out;
    }
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    obj
}

#[cfg(test)]
mod hpa_versions {
    use super::*;

    #[test]
    fn an_autoscaler_round_trips_through_v1_without_losing_what_v1_cannot_say() {
        let v2 = json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"minReplicas": 2, "maxReplicas": 5, "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}}}
            ]},
            "status": {"currentReplicas": 2, "desiredReplicas": 2,
                "conditions": [{"type": "AbleToScale", "status": "True"}]}
        });
        let v1 = hpa_v2_to_v1(v2.clone());
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 70);
        assert!(v1["spec"].get("metrics").is_none());
        let memory: Value = serde_json::from_str(
            v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(memory[0]["resource"]["name"], "memory");
        assert_eq!(hpa_v1_to_v2(v1), v2, "v2 → v1 → v2 is the identity");
        // What `kubectl autoscale` 1.29 (autoscaling/v1) sends becomes a v2 CPU metric.
        let sent = json!({"metadata": {"name": "a"}, "spec": {"maxReplicas": 3, "targetCPUUtilizationPercentage": 80}});
        assert_eq!(
            hpa_v1_to_v2(sent)["spec"]["metrics"][0]["resource"]["target"],
            json!({"type": "Utilization", "averageUtilization": 80})
        );
    }
}
