//! The garbage collector: deletes ReplicaSets, pods and EndpointSlices whose every owner
//! is gone (Background propagation), and carries out foreground deletes (dependents
//! first, then the owner). Stateless.

use crate::cluster::Cluster;
use crate::ops::{self, DeleteOpts};
use crate::resources;
use crate::store::{name_of, ns_of, uid_of};
use std::collections::HashSet;

/// Deletes objects whose every owner is gone (Background propagation), and moves each
/// foreground delete one step on.
pub(super) fn garbage_collect(c: &Cluster) {
    for storage in ["deployments", "replicasets", "services", "pods"] {
        let going = c.store.scan(storage, None, |o| {
            (!o["metadata"]["deletionTimestamp"].is_null()
                && ops::finalizers(o).iter().any(|f| f == ops::FOREGROUND))
            .then(|| o.clone())
        });
        for owner in going {
            ops::advance_foreground_delete(c, storage, &owner);
        }
    }
    let mut live: HashSet<String> = HashSet::new();
    for s in ["deployments", "replicasets", "services", "pods"] {
        live.extend(c.store.scan(s, None, |o| Some(uid_of(o).to_string())));
    }
    for storage in ["replicasets", "pods", "endpointslices"] {
        let orphans = c.store.scan(storage, None, |o| {
            let refs = o["metadata"]["ownerReferences"].as_array()?;
            (!refs.is_empty()
                && refs
                    .iter()
                    .all(|r| !live.contains(r["uid"].as_str().unwrap_or(""))))
            .then(|| (ns_of(o).to_string(), name_of(o).to_string()))
        });
        let rt = resources::by_storage(storage);
        for (ns, name) in orphans {
            let _ = ops::delete(c, rt, &ns, &name, &DeleteOpts::default());
        }
    }
}
