//! The horizontal pod autoscaler: keeps each HPA's target (a Deployment or ReplicaSet)
//! within `minReplicas..maxReplicas` through the target's scale subresource, as
//! upstream's controller does. The sim has no metrics: the recommendation is the current
//! count unless a test set one (`Cluster::set_hpa_recommendation`). A target at 0 replicas
//! is left alone (`ScalingActive` False, `ScalingDisabled`). Writes `status.currentReplicas`,
//! `desiredReplicas`, `lastScaleTime` and the `AbleToScale`, `ScalingActive` and
//! `ScalingLimited` conditions. (Upstream's scale-down stabilization window is not modeled.)

use super::conditions;
use crate::cluster::Cluster;
use crate::ops::{self, Sub, WriteOpts};
use crate::resources;
use crate::store::{name_of, now_rfc3339, ns_of};
use serde_json::{Value, json};

pub(super) fn reconcile(c: &Cluster, hpa: &Value) {
    let (ns, name) = (ns_of(hpa), name_of(hpa));
    let spec = &hpa["spec"];
    let target = &spec["scaleTargetRef"];
    let min = spec["minReplicas"].as_i64().unwrap_or(1);
    let max = spec["maxReplicas"].as_i64().unwrap_or(1);
    let mut status = hpa["status"].clone();
    if !status.is_object() {
        status = json!({});
    }
    let mut conds = status["conditions"].as_array().cloned().unwrap_or_default();
    let group = target["apiVersion"]
        .as_str()
        .and_then(|v| v.split_once('/'))
        .map(|(g, _)| g)
        .unwrap_or("apps");
    let plural = match target["kind"].as_str() {
        Some("Deployment") => "deployments",
        Some("ReplicaSet") => "replicasets",
        _ => "",
    };
    let target_name = target["name"].as_str().unwrap_or("");
    let rt = resources::find(group, "v1", plural);
    let scale = rt.map(|rt| (rt, ops::get(c, rt, ns, target_name, Sub::Scale)));
    match scale {
        Some((rt, Ok(scale))) => {
            let current = scale["spec"]["replicas"].as_i64().unwrap_or(0);
            status["currentReplicas"] = json!(current);
            if current == 0 && min != 0 {
                status["desiredReplicas"] = json!(0);
                conditions::set(
                    &mut conds,
                    "AbleToScale",
                    true,
                    "SucceededGetScale",
                    "the HPA controller was able to get the target's current scale",
                );
                conditions::set(
                    &mut conds,
                    "ScalingActive",
                    false,
                    "ScalingDisabled",
                    "scaling is disabled since the replica count of the target is zero",
                );
            } else {
                let wanted = c.hpa_recommendation(ns, name).unwrap_or(current);
                let desired = wanted.clamp(min, max.max(min));
                if wanted > max {
                    conditions::set(
                        &mut conds,
                        "ScalingLimited",
                        true,
                        "TooManyReplicas",
                        "the desired replica count is more than the maximum replica count",
                    );
                } else if wanted < min {
                    conditions::set(
                        &mut conds,
                        "ScalingLimited",
                        true,
                        "TooFewReplicas",
                        "the desired replica count is less than the minimum replica count",
                    );
                } else {
                    conditions::set(
                        &mut conds,
                        "ScalingLimited",
                        false,
                        "DesiredWithinRange",
                        "the desired count is within the acceptable range",
                    );
                }
                conditions::set(
                    &mut conds,
                    "ScalingActive",
                    true,
                    "ValidMetricFound",
                    "the HPA was able to successfully calculate a replica count from cpu resource utilization (percentage of request)",
                );
                status["desiredReplicas"] = json!(desired);
                if desired != current {
                    let body = json!({"metadata": {"resourceVersion": scale["metadata"]["resourceVersion"]}, "spec": {"replicas": desired}});
                    match ops::update(
                        c,
                        rt,
                        ns,
                        target_name,
                        body,
                        Sub::Scale,
                        &WriteOpts::by(super::CONTROLLER_MANAGER),
                    ) {
                        Ok(_) => {
                            status["lastScaleTime"] = json!(now_rfc3339());
                            conditions::set(
                                &mut conds,
                                "AbleToScale",
                                true,
                                "SucceededRescale",
                                &format!(
                                    "the HPA controller was able to update the target scale to {desired}"
                                ),
                            );
                        }
                        Err(e) => conditions::set(
                            &mut conds,
                            "AbleToScale",
                            false,
                            "FailedUpdateScale",
                            &format!(
                                "the HPA controller was unable to update the target scale: {}",
                                e.message
                            ),
                        ),
                    }
                } else {
                    conditions::set(
                        &mut conds,
                        "AbleToScale",
                        true,
                        "ReadyForNewScale",
                        "recommended size matches current size",
                    );
                }
            }
        }
        other => {
            let message = match other {
                Some((_, Err(e))) => e.message,
                _ => format!(
                    "no matches for kind \"{}\" in group \"{group}\"",
                    target["kind"].as_str().unwrap_or("")
                ),
            };
            conditions::set(
                &mut conds,
                "AbleToScale",
                false,
                "FailedGetScale",
                &format!(
                    "the HPA controller was unable to get the target's current scale: {message}"
                ),
            );
        }
    }
    status["conditions"] = json!(conds);
    if status != hpa["status"] {
        // Re-read: the scale write above does not touch the HPA, but a user may have.
        let mut next = hpa.clone();
        next["status"] = status;
        let _ = ops::controller_write(
            c,
            "horizontalpodautoscalers",
            hpa,
            next,
            super::CONTROLLER_MANAGER,
            Sub::Status,
        );
    }
}
