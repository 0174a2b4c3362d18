//! The event recorder: core/v1 Events the controllers emit about objects (e.g. the
//! Deployment controller's ScalingReplicaSet). Stateless.

use crate::cluster::Cluster;
use crate::ops::{self, WriteOpts};
use crate::resources::find;
use crate::store::{name_of, now_rfc3339, ns_of, uid_of};
use serde_json::{Value, json};

/// Records a core/v1 Event about an object, as controllers do through their recorder.
pub fn record_event(
    c: &Cluster,
    obj: &Value,
    type_: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    let now = now_rfc3339();
    let nanos = jiff::Timestamp::now().as_nanosecond();
    let ev = json!({
        "metadata": {"name": format!("{}.{:x}", name_of(obj), nanos), "namespace": ns_of(obj)},
        "involvedObject": {"kind": obj["kind"], "namespace": ns_of(obj), "name": name_of(obj), "uid": uid_of(obj), "apiVersion": obj["apiVersion"], "resourceVersion": obj["metadata"]["resourceVersion"]},
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": type_,
        "eventTime": null,
        "reportingComponent": component,
        "reportingInstance": "",
    });
    let rt = find("", "v1", "events").expect("events resource");
    // The kubelet writes as itself; every other recorder runs in the controller manager.
    let manager = if component == "kubelet" {
        "kubelet"
    } else {
        "kube-controller-manager"
    };
    let _ = ops::create(c, rt, ns_of(obj), ev, &WriteOpts::by(manager));
}
