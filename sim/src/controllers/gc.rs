//! The garbage collector: deletes ReplicaSets, pods and EndpointSlices whose every owner
//! is gone (Background propagation), and carries out foreground deletes (dependents
//! first, then the owner). State: the resourceVersion it last looked from.
//!
//! Like upstream's, which keeps a dependency graph fed by informers, it looks only at
//! what changed: dependents created since its last pass (their owner may be missing) and
//! dependents of owners deleted since. It sweeps every dependent only when the store's
//! history no longer reaches back to its last pass.

use crate::cluster::Cluster;
use crate::ops::{self, DeleteOpts};
use crate::resources;
use crate::store::{EventType, name_of, ns_of, uid_of};
use serde_json::Value;
use std::collections::{BTreeSet, HashSet};

const OWNERS: [&str; 4] = ["deployments", "replicasets", "services", "pods"];
const DEPENDENTS: [&str; 3] = ["replicasets", "pods", "endpointslices"];

/// What the garbage collector remembers between passes.
#[derive(Default)]
pub(super) struct GcState {
    /// The resourceVersion up to which changes were looked at (0: never; sweep).
    checked_at: u64,
}

/// A dependent to look at: (storage, namespace, name).
type Candidate = (&'static str, String, String);

/// Deletes objects whose every owner is gone (Background propagation), and moves each
/// foreground delete one step on.
pub(super) fn garbage_collect(c: &Cluster, state: &mut GcState) {
    for storage in OWNERS {
        let going = c.store.scan(storage, None, |o| {
            (!o["metadata"]["deletionTimestamp"].is_null()
                && ops::finalizers(o).iter().any(|f| f == ops::FOREGROUND))
            .then(|| o.clone())
        });
        for owner in going {
            ops::advance_foreground_delete(c, storage, &owner);
        }
    }
    let now = c.store.resource_version();
    let candidates = match c.store.watch_from(state.checked_at) {
        Ok((changes, _)) if state.checked_at > 0 => changed_dependents(c, &changes),
        _ => every_dependent(c, |_| true),
    };
    state.checked_at = now;
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

/// Dependents created in `changes`, and dependents of the owners deleted in them.
fn changed_dependents(
    c: &Cluster,
    changes: &[std::sync::Arc<crate::store::Change>],
) -> BTreeSet<Candidate> {
    let mut gone: HashSet<String> = HashSet::new();
    let mut out = BTreeSet::new();
    for ch in changes {
        if ch.event == EventType::Deleted && OWNERS.contains(&ch.storage) {
            gone.insert(uid_of(&ch.object).to_string());
        }
        if ch.event == EventType::Added
            && let Some(storage) = DEPENDENTS.iter().find(|s| **s == ch.storage)
        {
            out.insert((
                *storage,
                ns_of(&ch.object).to_string(),
                name_of(&ch.object).to_string(),
            ));
        }
    }
    if !gone.is_empty() {
        out.extend(every_dependent(c, |r| {
            r["uid"].as_str().is_some_and(|u| gone.contains(u))
        }));
    }
    out
}

/// Dependents with an owner reference `pick` accepts.
fn every_dependent(c: &Cluster, pick: impl Fn(&Value) -> bool) -> BTreeSet<Candidate> {
    let mut out = BTreeSet::new();
    for storage in DEPENDENTS {
        out.extend(c.store.scan(storage, None, |o| {
            o["metadata"]["ownerReferences"]
                .as_array()?
                .iter()
                .any(&pick)
                .then(|| (storage, ns_of(o).to_string(), name_of(o).to_string()))
        }));
    }
    out
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
