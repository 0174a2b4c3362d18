//! Helpers the controllers share: the per-pass owner index, the work queue, ownerReferences, pod
//! predicates, conditions, integer fields, the FNV-1a hash and timer merging.

use crate::cluster::Cluster;
use crate::store::{Change, EventType, name_of, ns_of, rv_of, uid_of};
use serde_json::{Value, json};
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap};
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

/// An object's (namespace, name): what controllers queue and look up.
pub(super) type Key = (String, String);

/// The key of an object.
pub(super) fn key_of(o: &Value) -> Key {
    (ns_of(o).to_string(), name_of(o).to_string())
}

/// What the owner index keeps of one controlled object.
struct Owned {
    uid: String,
    rv: u64,
}

/// The objects each owner (by uid) controls, so that a controller's look-up does not
/// scan the namespace (thousands of apps stay cheap). Built once, then kept current
/// from the store's changes (as upstream's informer indexers are), so a pass costs
/// what changed.
#[derive(Default)]
pub(super) struct OwnerIndex(HashMap<String, BTreeMap<Key, Owned>>);

/// The uid of the object's controller, if any.
fn controller_uid(o: &Value) -> Option<&str> {
    o["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)?["uid"]
        .as_str()
}

/// The (kind, name) of the object's controller, if any.
pub(super) fn controller_of(o: &Value) -> Option<(&str, &str)> {
    let r = o["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"] == true)?;
    Some((r["kind"].as_str()?, r["name"].as_str()?))
}

impl OwnerIndex {
    pub(super) fn build(c: &Cluster, storage: &str) -> Self {
        let mut idx = OwnerIndex::default();
        for o in c.store.list_shared(storage) {
            idx.insert(&o);
        }
        idx
    }

    fn insert(&mut self, o: &Value) {
        if let Some(owner) = controller_uid(o) {
            let owned = Owned {
                uid: uid_of(o).to_string(),
                rv: rv_of(o).unwrap_or(0),
            };
            self.0
                .entry(owner.to_string())
                .or_default()
                .insert(key_of(o), owned);
        }
    }

    fn remove(&mut self, o: &Value) {
        if let Some(owner) = controller_uid(o)
            && let Some(owned) = self.0.get_mut(owner)
        {
            owned.remove(&key_of(o));
            if owned.is_empty() {
                self.0.remove(owner);
            }
        }
    }

    /// Takes one change of the indexed storage into account (in resourceVersion order;
    /// taking one twice changes nothing).
    pub(super) fn apply(&mut self, change: &Change) {
        if let Some(prev) = &change.prev {
            self.remove(prev);
        }
        match change.event {
            EventType::Deleted => self.remove(&change.object),
            _ => self.insert(&change.object),
        }
    }

    /// Every (owner uid, key, uid, resourceVersion), in order: tests compare indexes.
    #[cfg(test)]
    pub(super) fn entries(&self) -> Vec<(String, Key, String, u64)> {
        let mut out: Vec<_> = self
            .0
            .iter()
            .flat_map(|(owner, owned)| {
                owned
                    .iter()
                    .map(|(k, o)| (owner.clone(), k.clone(), o.uid.clone(), o.rv))
            })
            .collect();
        out.sort();
        out
    }

    fn of(&self, owner_uid: &str) -> impl Iterator<Item = (&Key, &Owned)> {
        self.0.get(owner_uid).into_iter().flatten()
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
            .map(|((ns, n), _)| (ns.as_str(), n.as_str()))
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
        self.of(owner_uid).map(|(_, o)| o.uid.as_str())
    }

    /// Feeds the names and resourceVersions of what `owner_uid` controls to `h`, in key
    /// order: a changed, new or deleted dependent changes the hash.
    pub(super) fn hash_owned(&self, owner_uid: &str, h: &mut impl Hasher) {
        for ((_, name), o) in self.of(owner_uid) {
            (name, o.rv).hash(h);
        }
    }
}

/// What the work queue remembers of an object's last sync.
struct Synced {
    uid: String,
    inputs: u64,
    wake: Option<Instant>,
}

/// Which objects a controller syncs in a pass. Upstream controllers sync an object
/// only when an informer event about it or its dependents queues it, or when a sync
/// asked to be requeued at a time. A pass here is handed the keys whose object or
/// dependents changed (`informer::Dirty`) plus those whose requeue time came
/// ([`WorkQueue::due`]); the queue remembers, per key, a hash of the resourceVersions
/// its last sync read and when it asked to be looked at again, and skips a sync whose
/// inputs did not change. So a pass costs what changed, not what the store holds, and
/// a rollout's pace does not depend on how many unrelated objects sit beside it.
#[derive(Default)]
pub(super) struct WorkQueue {
    synced: HashMap<Key, Synced>,
}

impl WorkQueue {
    /// Runs `sync` unless the object's inputs hash as at its last sync and its requeue
    /// time has not come; returns when it wants to be looked at again.
    pub(super) fn sync(
        &mut self,
        key: &Key,
        uid: &str,
        inputs: u64,
        now: Instant,
        sync: impl FnOnce() -> Option<Instant>,
    ) -> Option<Instant> {
        if let Some(last) = self.synced.get(key)
            && last.uid == uid
            && last.inputs == inputs
            && last.wake.is_none_or(|w| w > now)
        {
            return last.wake;
        }
        let wake = sync();
        let synced = Synced {
            uid: uid.to_string(),
            inputs,
            wake,
        };
        self.synced.insert(key.clone(), synced);
        wake
    }

    /// The keys whose requeue time has come.
    pub(super) fn due(&self, now: Instant) -> Vec<Key> {
        self.synced
            .iter()
            .filter(|(_, s)| s.wake.is_some_and(|w| w <= now))
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The earliest requeue time asked for.
    pub(super) fn next_wake(&self) -> Option<Instant> {
        self.synced.values().filter_map(|s| s.wake).min()
    }

    /// Forgets an object that is gone.
    pub(super) fn forget(&mut self, key: &Key) {
        self.synced.remove(key);
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
        let a = ("default".to_string(), "a".to_string());
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(5);
        let mut syncs = 0;
        let mut sync = |wake| {
            syncs += 1;
            wake
        };
        assert_eq!(q.sync(&a, "u1", 1, t0, || sync(Some(later))), Some(later));
        // Same inputs, requeue not yet due: skipped, its requeue still reported.
        assert_eq!(q.sync(&a, "u1", 1, t0, || sync(None)), Some(later));
        assert!(q.due(t0).is_empty());
        assert_eq!(q.due(later), vec![a.clone()]);
        assert_eq!(q.next_wake(), Some(later));
        // Changed inputs: synced.
        assert_eq!(q.sync(&a, "u1", 2, t0, || sync(None)), None);
        assert_eq!(q.next_wake(), None);
        // Another object under the same name (deleted and re-created): synced.
        assert_eq!(q.sync(&a, "u2", 2, t0, || sync(Some(later))), Some(later));
        // Forgotten once gone: synced again when it shows up.
        q.forget(&a);
        assert_eq!(q.next_wake(), None);
        q.sync(&a, "u2", 2, t0, || sync(Some(later)));
        // The requeue time reached: synced although nothing changed.
        q.sync(&a, "u2", 2, later, || sync(None));
        assert_eq!(syncs, 5);
    }
}
