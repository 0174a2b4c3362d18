//! What the controllers learn of the store between passes, as upstream's informers
//! deliver it: the changes since the last look (the store's history, as a watch reads
//! it), folded into the owner indexes and into the keys each controller must look at.
//! A full relist (every key dirty, the indexes rebuilt) happens only on the first look
//! and when the history no longer reaches back to the last one, as an informer relists
//! after 410 Gone. So a pass costs what changed, not what the store holds.

use super::shared::{Key, OwnerIndex, controller_of, key_of};
use crate::cluster::Cluster;
use crate::store::{Change, ns_of};
use serde_json::{Map, Value};
use std::collections::BTreeSet;

/// The keys each controller has to look at, from the changes seen so far. A controller
/// takes its set when it runs; what later phases of a pass change lands in the sets for
/// the next pass.
#[derive(Default)]
pub(super) struct Dirty {
    pub deployments: BTreeSet<Key>,
    pub replicasets: BTreeSet<Key>,
    pub pods: BTreeSet<Key>,
    pub services: BTreeSet<Key>,
    /// The labels of changed pods (before and after the change), by namespace: the
    /// Services selecting either are dirty (upstream's endpoint controller finds them
    /// by matching every Service of the pod's namespace).
    pub pod_labels: Vec<(String, Map<String, Value>)>,
}

/// The controllers' view of the store: where they last looked, the owner indexes and
/// what changed since.
#[derive(Default)]
pub(super) struct Informer {
    /// The resourceVersion folded in so far; `None` before the first look.
    at: Option<u64>,
    /// ReplicaSets by their controlling Deployment's uid.
    pub replicasets: OwnerIndex,
    /// Pods by their controlling ReplicaSet's uid.
    pub pods: OwnerIndex,
    pub dirty: Dirty,
}

impl Informer {
    /// Folds in what changed since the last look (or relists everything).
    pub(super) fn catch_up(&mut self, c: &Cluster) {
        let changes = self.at.and_then(|at| c.store.changes_after(at));
        let Some((changes, rv)) = changes else {
            self.relist(c);
            return;
        };
        for change in &changes {
            self.fold(c, change);
        }
        self.at = Some(rv);
    }

    /// Forgets where it last looked: the next look relists (tests check that a relist
    /// finds what the changes told).
    #[cfg(test)]
    pub(super) fn forget_position(&mut self) {
        self.at = None;
    }

    /// Every key dirty and the indexes rebuilt. The resourceVersion is read first: what
    /// lands during the relist is folded in again on the next look, which changes
    /// nothing that the relist already saw.
    fn relist(&mut self, c: &Cluster) {
        let rv = c.store.resource_version();
        self.replicasets = OwnerIndex::build(c, "replicasets");
        self.pods = OwnerIndex::build(c, "pods");
        let d = &mut self.dirty;
        d.deployments.extend(c.store.keys("deployments"));
        d.replicasets.extend(c.store.keys("replicasets"));
        d.pods.extend(c.store.keys("pods"));
        d.services.extend(c.store.keys("services"));
        self.at = Some(rv);
    }

    /// One change: the indexes, and the keys of the controllers that read the object.
    fn fold(&mut self, c: &Cluster, change: &Change) {
        let versions = || std::iter::once(&change.object).chain(change.prev.as_ref());
        let d = &mut self.dirty;
        match change.storage {
            "deployments" => {
                d.deployments.insert(key_of(&change.object));
            }
            "replicasets" => {
                self.replicasets.apply(change);
                d.replicasets.insert(key_of(&change.object));
                for rs in versions() {
                    if let Some(("Deployment", name)) = controller_of(rs) {
                        d.deployments
                            .insert((ns_of(rs).to_string(), name.to_string()));
                    }
                }
            }
            "pods" => {
                self.pods.apply(change);
                d.pods.insert(key_of(&change.object));
                for pod in versions() {
                    let ns = ns_of(pod);
                    if let Some(("ReplicaSet", rs)) = controller_of(pod) {
                        d.replicasets.insert((ns.to_string(), rs.to_string()));
                        // The Deployment hashes its ReplicaSets' pods too.
                        let owner = c.store.peek("replicasets", ns, rs, |rs| {
                            controller_of(rs)
                                .map(|(kind, name)| (kind == "Deployment", name.to_string()))
                        });
                        if let Some(Some((true, name))) = owner {
                            d.deployments.insert((ns.to_string(), name));
                        }
                    }
                    if let Some(labels) = pod["metadata"]["labels"].as_object() {
                        d.pod_labels.push((ns.to_string(), labels.clone()));
                    }
                }
            }
            "services" | "endpoints" => {
                d.services.insert(key_of(&change.object));
            }
            "endpointslices" => {
                let o = &change.object;
                if let Some(svc) = o["metadata"]["labels"]["kubernetes.io/service-name"].as_str() {
                    d.services.insert((ns_of(o).to_string(), svc.to_string()));
                }
            }
            _ => {}
        }
    }
}
