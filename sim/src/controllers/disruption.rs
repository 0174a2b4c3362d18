//! The disruption controller: each PodDisruptionBudget's status from the pods its
//! selector matches, as upstream computes it: `currentHealthy` (ready, not terminating),
//! `expectedPods` (the pods, or the scale of their controllers when the budget is a
//! percentage or `maxUnavailable`), `desiredHealthy`, `disruptionsAllowed` and the
//! `DisruptionAllowed` condition.

use super::conditions;
use super::shared::{pod_ready, terminating};
use crate::cluster::Cluster;
use crate::selector::LabelSelector;
use crate::store::{name_of, ns_of};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// An IntOrString budget against `total` (percentages round up, as upstream's
/// `GetScaledValueFromIntOrPercent(..., true)`).
fn scaled(v: &Value, total: i64) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            Some((pct * total + 99) / 100)
        }
        _ => None,
    }
}

/// The summed `spec.replicas` of the controllers of `pods` (a ReplicaSet owned by a
/// Deployment counts as that Deployment); a pod without a controller counts as one.
fn expected_scale(c: &Cluster, pods: &[&Value]) -> i64 {
    let mut controllers: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut loose = 0;
    for p in pods {
        let ns = ns_of(p);
        let owner = p["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|rs| rs.iter().find(|r| r["controller"] == true));
        let Some(owner) = owner else {
            loose += 1;
            continue;
        };
        let rs_name = owner["name"].as_str().unwrap_or("");
        let Some(rs) = c.store.get("replicasets", ns, rs_name) else {
            loose += 1;
            continue;
        };
        let dep = rs["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|rs| {
                rs.iter()
                    .find(|r| r["controller"] == true && r["kind"] == "Deployment")
            })
            .and_then(|r| {
                c.store
                    .get("deployments", ns, r["name"].as_str().unwrap_or(""))
            });
        let (key, replicas) = match dep {
            Some(d) => (
                ("deployments".to_string(), name_of(&d).to_string()),
                d["spec"]["replicas"].as_i64(),
            ),
            None => (
                ("replicasets".to_string(), rs_name.to_string()),
                rs["spec"]["replicas"].as_i64(),
            ),
        };
        controllers.insert(key, replicas.unwrap_or(0));
    }
    controllers.values().sum::<i64>() + loose
}

pub(super) fn reconcile(c: &Cluster, pdb: &Value) {
    let ns = ns_of(pdb);
    let spec = &pdb["spec"];
    let selector = LabelSelector::from_object(&spec["selector"]);
    let all = c.store.list("pods", Some(ns)).0;
    let pods: Vec<&Value> = match &selector {
        Some(sel) if !spec["selector"].is_null() => {
            all.iter().filter(|p| sel.matches_object(p)).collect()
        }
        _ => Vec::new(),
    };
    let healthy = pods
        .iter()
        .filter(|p| !terminating(p) && pod_ready(p))
        .count() as i64;
    let (expected, desired) = if !spec["maxUnavailable"].is_null() {
        let expected = expected_scale(c, &pods);
        let max = scaled(&spec["maxUnavailable"], expected).unwrap_or(0);
        (expected, (expected - max).max(0))
    } else if let Some(n) = spec["minAvailable"].as_i64() {
        (pods.len() as i64, n)
    } else if spec["minAvailable"].is_string() {
        let expected = expected_scale(c, &pods);
        (
            expected,
            scaled(&spec["minAvailable"], expected).unwrap_or(0),
        )
    } else {
        (pods.len() as i64, 0)
    };
    let mut allowed = healthy - desired;
    if expected <= 0 || allowed <= 0 {
        allowed = 0;
    }
    let mut status = pdb["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    let mut conds = status["conditions"].as_array().cloned().unwrap_or_default();
    if allowed > 0 {
        conditions::set(&mut conds, "DisruptionAllowed", true, "SufficientPods", "");
    } else {
        conditions::set(
            &mut conds,
            "DisruptionAllowed",
            false,
            "InsufficientPods",
            "",
        );
    }
    for c in &mut conds {
        c["observedGeneration"] = pdb["metadata"]["generation"].clone();
    }
    status["observedGeneration"] = pdb["metadata"]["generation"].clone();
    status["currentHealthy"] = json!(healthy);
    status["desiredHealthy"] = json!(desired);
    status["expectedPods"] = json!(expected);
    status["disruptionsAllowed"] = json!(allowed);
    status["conditions"] = json!(conds);
    if status != pdb["status"] {
        let mut next = pdb.clone();
        next["status"] = status;
        let _ = crate::ops::controller_write(
            c,
            "poddisruptionbudgets",
            pdb,
            next,
            super::CONTROLLER_MANAGER,
            crate::ops::Sub::Status,
        );
    }
}
