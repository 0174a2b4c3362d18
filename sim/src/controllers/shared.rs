//! Helpers the controllers share: the per-pass owner index, the work queue, ownerReferences, pod
//! predicates, conditions, integer fields, the FNV-1a hash and timer merging.

use crate::cluster::Cluster;
use crate::store::{name_of, ns_of, rv_of, uid_of};
use serde_json::{Value, json};
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use tokio::time::Instant;

/// How long a controller waits before it retries a failed create.
pub(super) const RETRY_AFTER: std::time::Duration = std::time::Duration::from_millis(500);

/// The earlier of two optional wake-up times.
pub(super) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// What the owner index keeps of one controlled object.
struct Owned {
    ns: String,
    name: String,
    uid: String,
    rv: u64,
}

/// The objects each owner (by uid) controls, built once per pass so that a controller's
/// look-up does not scan the namespace (thousands of apps stay cheap).
#[derive(Default)]
pub(super) struct OwnerIndex(HashMap<String, Vec<Owned>>);

impl OwnerIndex {
    pub(super) fn build(c: &Cluster, storage: &str) -> Self {
        let mut idx: HashMap<String, Vec<Owned>> = HashMap::new();
        for (owner, owned) in c.store.scan(storage, None, |o| {
            let r = o["metadata"]["ownerReferences"]
                .as_array()?
                .iter()
                .find(|r| r["controller"] == true)?;
            Some((
                r["uid"].as_str()?.to_string(),
                Owned {
                    ns: ns_of(o).to_string(),
                    name: name_of(o).to_string(),
                    uid: uid_of(o).to_string(),
                    rv: rv_of(o).unwrap_or(0),
                },
            ))
        }) {
            idx.entry(owner).or_default().push(owned);
        }
        OwnerIndex(idx)
    }

    fn of(&self, owner_uid: &str) -> &[Owned] {
        self.0.get(owner_uid).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Current copies of what `owner_uid` controls, plus `extra` names created since.
    pub(super) fn owned(
        &self,
        c: &Cluster,
        storage: &str,
        owner_uid: &str,
        extra: &[(String, String)],
    ) -> Vec<Value> {
        let mut names: Vec<(&str, &str)> = self
            .of(owner_uid)
            .iter()
            .map(|o| (o.ns.as_str(), o.name.as_str()))
            .chain(extra.iter().map(|(ns, n)| (ns.as_str(), n.as_str())))
            .collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|(ns, n)| c.store.get(storage, ns, n))
            .filter(|o| owned_by(o, owner_uid))
            .collect()
    }

    /// Uids of what `owner_uid` controls.
    pub(super) fn uids<'a>(&'a self, owner_uid: &str) -> impl Iterator<Item = &'a str> {
        self.of(owner_uid).iter().map(|o| o.uid.as_str())
    }

    /// Feeds the names and resourceVersions of what `owner_uid` controls to `h`, in name
    /// order: a changed, new or deleted dependent changes the hash.
    pub(super) fn hash_owned(&self, owner_uid: &str, h: &mut impl Hasher) {
        let mut owned: Vec<&Owned> = self.of(owner_uid).iter().collect();
        owned.sort_by(|a, b| (&a.ns, &a.name).cmp(&(&b.ns, &b.name)));
        for o in owned {
            (&o.name, o.rv).hash(h);
        }
    }
}

/// Which objects a controller looks at in a pass. Upstream controllers sync an object
/// only when an informer event about it or its dependents queues it, or when a sync
/// asked to be requeued at a time; a pass here does the same by remembering, per object
/// (by uid), a hash of the resourceVersions its last sync read and when it asked to be
/// looked at again. So a pass costs what changed, not what the store holds, and a
/// rollout's pace does not depend on how many unrelated objects sit beside it.
#[derive(Default)]
pub(super) struct WorkQueue {
    synced: HashMap<String, (u64, Option<Instant>)>,
    seen: HashSet<String>,
}

impl WorkQueue {
    /// Runs `sync` unless the object's inputs hash as at its last sync and its requeue
    /// time has not come; returns when it wants to be looked at again.
    pub(super) fn sync(
        &mut self,
        uid: &str,
        inputs: u64,
        now: Instant,
        sync: impl FnOnce() -> Option<Instant>,
    ) -> Option<Instant> {
        self.seen.insert(uid.to_string());
        if let Some((last, wake)) = self.synced.get(uid)
            && *last == inputs
            && wake.is_none_or(|w| w > now)
        {
            return *wake;
        }
        let wake = sync();
        self.synced.insert(uid.to_string(), (inputs, wake));
        wake
    }

    /// Ends a pass: forgets the objects it did not see (deleted).
    pub(super) fn end_pass(&mut self) {
        let seen = std::mem::take(&mut self.seen);
        self.synced.retain(|uid, _| seen.contains(uid));
    }
}

/// A hasher for the inputs of a sync.
pub(super) fn inputs_hasher() -> DefaultHasher {
    DefaultHasher::new()
}

fn owned_by(o: &Value, uid: &str) -> bool {
    o["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["uid"] == uid && r["controller"] == true)
        })
}

/// The `ownerReferences` of an object controlled by `owner`.
pub(super) fn owner_ref(api_version: &str, kind: &str, owner: &Value) -> Value {
    json!([{"apiVersion": api_version, "kind": kind, "name": name_of(owner), "uid": uid_of(owner), "controller": true, "blockOwnerDeletion": true}])
}

/// An integer field, 0 when absent.
pub(super) fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// The condition of `type_` in a status, if any.
pub(super) fn condition<'a>(status: &'a Value, type_: &str) -> Option<&'a Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

pub(super) fn pod_ready(p: &Value) -> bool {
    condition(&p["status"], "Ready").is_some_and(|c| c["status"] == "True")
}

pub(super) fn terminating(p: &Value) -> bool {
    !p["metadata"]["deletionTimestamp"].is_null()
}

/// FNV-1a 32-bit, as upstream hashes pod templates.
pub(super) fn fnv32a(data: &[u8]) -> u32 {
    let mut h: u32 = 0x811c9dc5;
    for b in data {
        h ^= *b as u32;
        h = h.wrapping_mul(0x01000193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_work_queue_syncs_on_changed_inputs_or_a_due_requeue_only() {
        let mut q = WorkQueue::default();
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        let mut syncs = 0;
        let mut sync = |wake| {
            syncs += 1;
            wake
        };
        assert_eq!(q.sync("a", 1, t0, || sync(Some(later))), Some(later));
        // Same inputs, requeue not yet due: skipped, its requeue still reported.
        assert_eq!(q.sync("a", 1, t0, || sync(None)), Some(later));
        // Changed inputs: synced.
        assert_eq!(q.sync("a", 2, t0, || sync(None)), None);
        assert_eq!(q.sync("a", 2, later, || sync(Some(later))), None);
        q.end_pass();
        // Forgotten when a pass did not see it: synced again when it shows up.
        q.end_pass();
        q.sync("a", 2, t0, || sync(Some(later)));
        // The requeue time reached: synced although nothing changed.
        q.sync("a", 2, later, || sync(None));
        assert_eq!(syncs, 4);
    }
}
