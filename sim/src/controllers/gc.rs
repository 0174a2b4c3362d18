//! The garbage collector: deletes ReplicaSets, pods and EndpointSlices whose every owner
//! is gone (Background propagation). Stateless.

use crate::cluster::Cluster;
use crate::ops::{self, DeleteOpts};
use crate::resources;
use crate::store::{name_of, ns_of, uid_of};
use std::collections::HashSet;

/// Deletes objects whose every owner is gone (Background propagation).
pub(super) fn garbage_collect(c: &Cluster) {
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
