//! The garbage collector: deletes ReplicaSets, pods and EndpointSlices whose every owner
//! is gone (Background propagation), and carries out foreground deletes (dependents
//! first, then the owner). State: the resourceVersion it last looked from.
//!
//! Like upstream's, which keeps a dependency graph fed by informers, it looks only at
//! what changed: dependents created since its last pass (their owner may be missing) and
//! dependents of owners deleted since, found in its graph of dependents by owner uid.
//! It rebuilds the graph and sweeps every dependent only on its first pass and when the
//! store's history no longer reaches back to its last one.

use crate::cluster::Cluster;
use crate::ops::{self, DeleteOpts};
use crate::resources;
use crate::store::{Change, EventType, name_of, ns_of, uid_of};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

const OWNERS: [&str; 4] = ["deployments", "replicasets", "services", "pods"];
const DEPENDENTS: [&str; 3] = ["replicasets", "pods", "endpointslices"];

/// What the garbage collector remembers between passes: its dependency graph, as
/// upstream's keeps one fed by informers.
#[derive(Default)]
pub(super) struct GcState {
    /// The resourceVersion up to which changes were looked at (`None`: never; sweep).
    checked_at: Option<u64>,
    /// Dependents by the uid of each owner they name.
    dependents: HashMap<String, BTreeSet<Candidate>>,
    /// Owners being deleted in the foreground (their dependents first).
    foreground: BTreeSet<Candidate>,
}

/// A dependent or owner to look at: (storage, namespace, name).
type Candidate = (&'static str, String, String);

/// Deletes objects whose every owner is gone (Background propagation), and moves each
/// foreground delete one step on.
pub(super) fn garbage_collect(c: &Cluster, state: &mut GcState) {
    let candidates = match state.checked_at.and_then(|at| c.store.changes_after(at)) {
        Some((changes, rv)) => {
            state.checked_at = Some(rv);
            changes.iter().flat_map(|ch| state.fold(ch)).collect()
        }
        None => state.sweep(c),
    };
    for (storage, ns, name) in state.foreground.clone() {
        match c.store.get(storage, &ns, &name) {
            Some(owner) if going_foreground(&owner) => {
                ops::advance_foreground_delete(c, storage, &owner)
            }
            _ => {
                state.foreground.remove(&(storage, ns, name));
            }
        }
    }
    for (storage, ns, name) in candidates {
        // The references are copied out: the owners are looked up after the store's
        // lock is released.
        let refs = c.store.peek(storage, &ns, &name, |o| {
            o["metadata"]["ownerReferences"].as_array().cloned()
        });
        let orphaned = refs
            .flatten()
            .is_some_and(|refs| !refs.is_empty() && refs.iter().all(|r| !owner_alive(c, &ns, r)));
        if orphaned {
            let rt = resources::by_storage(storage);
            let _ = ops::delete(c, rt, &ns, &name, &DeleteOpts::default());
        }
    }
}

fn going_foreground(o: &Value) -> bool {
    !o["metadata"]["deletionTimestamp"].is_null()
        && ops::finalizers(o).iter().any(|f| f == ops::FOREGROUND)
}

/// The owner uids an object names.
fn owner_uids(o: &Value) -> impl Iterator<Item = &str> {
    o["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["uid"].as_str())
}

impl GcState {
    /// The graph: dependents by owner uid, and the foreground deletes under way.
    #[cfg(test)]
    pub(super) fn graph(&self) -> (Vec<(&String, &BTreeSet<Candidate>)>, &BTreeSet<Candidate>) {
        let mut deps: Vec<_> = self.dependents.iter().collect();
        deps.sort();
        (deps, &self.foreground)
    }

    /// Rebuilds the graph from every object; every dependent is a candidate.
    pub(super) fn sweep(&mut self, c: &Cluster) -> BTreeSet<Candidate> {
        self.checked_at = Some(c.store.resource_version());
        self.dependents.clear();
        self.foreground.clear();
        for storage in OWNERS {
            self.foreground.extend(c.store.scan(storage, None, |o| {
                going_foreground(o).then(|| (storage, ns_of(o).to_string(), name_of(o).to_string()))
            }));
        }
        let mut all = BTreeSet::new();
        for storage in DEPENDENTS {
            for (uids, dep) in c.store.scan(storage, None, |o| {
                let uids: Vec<String> = owner_uids(o).map(String::from).collect();
                Some((
                    uids,
                    (storage, ns_of(o).to_string(), name_of(o).to_string()),
                ))
            }) {
                for uid in uids {
                    self.dependents.entry(uid).or_default().insert(dep.clone());
                }
                all.insert(dep);
            }
        }
        all
    }

    /// One change into the graph; returns the dependents to look at: one just created
    /// (its owner may be missing) or those of an owner just deleted.
    fn fold(&mut self, ch: &Change) -> Vec<Candidate> {
        let mut out = Vec::new();
        let key = |o: &Value| (ch.storage, ns_of(o).to_string(), name_of(o).to_string());
        if DEPENDENTS.contains(&ch.storage) {
            if let Some(prev) = &ch.prev {
                for uid in owner_uids(prev) {
                    if let Some(deps) = self.dependents.get_mut(uid) {
                        deps.remove(&key(prev));
                        if deps.is_empty() {
                            self.dependents.remove(uid);
                        }
                    }
                }
            }
            if ch.event != EventType::Deleted {
                for uid in owner_uids(&ch.object) {
                    let deps = self.dependents.entry(uid.to_string()).or_default();
                    deps.insert(key(&ch.object));
                }
            }
            if ch.event == EventType::Added {
                out.push(key(&ch.object));
            }
        }
        if OWNERS.contains(&ch.storage) {
            let owner = key(&ch.object);
            if ch.event == EventType::Deleted {
                self.foreground.remove(&owner);
                let deps = self.dependents.get(uid_of(&ch.object));
                out.extend(deps.into_iter().flatten().cloned());
            } else if going_foreground(&ch.object) {
                self.foreground.insert(owner);
            } else {
                self.foreground.remove(&owner);
            }
        }
        out
    }
}

/// Whether the object an owner reference names exists with that uid (owners live in
/// the dependent's namespace; kinds the sim does not run count as gone, as before).
fn owner_alive(c: &Cluster, ns: &str, r: &Value) -> bool {
    let Some(storage) = resources::by_kind(
        r["apiVersion"].as_str().unwrap_or_default(),
        r["kind"].as_str().unwrap_or_default(),
    )
    .map(|rt| rt.storage)
    .filter(|s| OWNERS.contains(s)) else {
        return false;
    };
    let (Some(name), Some(uid)) = (r["name"].as_str(), r["uid"].as_str()) else {
        return false;
    };
    c.store
        .peek(storage, ns, name, |o| uid_of(o) == uid)
        .unwrap_or(false)
}
