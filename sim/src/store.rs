//! The object store: every object as JSON under (storage, namespace, name), one global
//! resourceVersion counter (like etcd's revision), a bounded history of changes for
//! watches to resume from, and a change signal controllers and tests await.
//!
//! The store only keeps objects and versions; API semantics (generation, defaults,
//! validation, subresources) live in `ops`. Reads return deep copies (client-go's fakes
//! do the same) so no caller can mutate stored state by accident.

use crate::error::{ApiError, ApiResult};
use crate::resources;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, watch};

/// How many changes a watch can resume from; older resourceVersions get 410 Gone.
pub const HISTORY_LEN: usize = 20_000;

/// What a watch starts from: the retained changes after its version, and the live feed.
pub type WatchStart = (Vec<Arc<Change>>, broadcast::Receiver<Arc<Change>>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as a watch sees it. `prev` lets a filtered watch turn "no longer matches"
/// into DELETED, as the API server's watch cache does.
#[derive(Debug)]
pub struct Change {
    pub rv: u64,
    pub storage: &'static str,
    pub event: EventType,
    pub object: Value,
    pub prev: Option<Value>,
}

type Bucket = BTreeMap<(String, String), Value>;

struct Inner {
    rv: u64,
    objects: HashMap<&'static str, Bucket>,
    history: VecDeque<Arc<Change>>,
    /// Changes at or below this resourceVersion are no longer in `history`.
    compacted: u64,
    uid_counter: u64,
}

pub struct Store {
    inner: Mutex<Inner>,
    changes: broadcast::Sender<Arc<Change>>,
    revision: watch::Sender<u64>,
}

pub fn rv_of(obj: &Value) -> Option<u64> {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
}

pub fn name_of(obj: &Value) -> &str {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn ns_of(obj: &Value) -> &str {
    obj.pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn uid_of(obj: &Value) -> &str {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub fn now_rfc3339() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(HISTORY_LEN);
        let (revision, _) = watch::channel(1);
        Store {
            inner: Mutex::new(Inner {
                rv: 1,
                objects: HashMap::new(),
                history: VecDeque::new(),
                compacted: 1,
                uid_counter: 0,
            }),
            changes,
            revision,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// A receiver whose value is the latest resourceVersion: changes on every write.
    pub fn subscribe_revision(&self) -> watch::Receiver<u64> {
        self.revision.subscribe()
    }

    pub fn get(&self, storage: &str, ns: &str, name: &str) -> Option<Value> {
        self.lock()
            .objects
            .get(storage)
            .and_then(|b| b.get(&(ns.to_string(), name.to_string())))
            .cloned()
    }

    /// Every object of a storage, optionally in one namespace, sorted by (namespace, name).
    pub fn list(&self, storage: &str, ns: Option<&str>) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = match inner.objects.get(storage) {
            None => Vec::new(),
            Some(b) => match ns {
                Some(ns) => b
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, v)| v.clone())
                    .collect(),
                None => b.values().cloned().collect(),
            },
        };
        (items, inner.rv)
    }

    /// The objects `keep` accepts (copying only those) and the store's resourceVersion:
    /// a selected list of a large namespace costs what it selects, not what it holds.
    pub fn list_where(
        &self,
        storage: &str,
        ns: Option<&str>,
        mut keep: impl FnMut(&Value) -> bool,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        let items = match inner.objects.get(storage) {
            None => Vec::new(),
            Some(b) => match ns {
                Some(ns) => b
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, v)| v)
                    .filter(|v| keep(v))
                    .cloned()
                    .collect(),
                None => b.values().filter(|v| keep(v)).cloned().collect(),
            },
        };
        (items, inner.rv)
    }

    /// Visits objects without copying them all (controllers scan large stores).
    pub fn scan<R>(
        &self,
        storage: &str,
        ns: Option<&str>,
        mut f: impl FnMut(&Value) -> Option<R>,
    ) -> Vec<R> {
        let inner = self.lock();
        let Some(b) = inner.objects.get(storage) else {
            return Vec::new();
        };
        match ns {
            Some(ns) => b
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .filter_map(|(_, v)| f(v))
                .collect(),
            None => b.values().filter_map(&mut f).collect(),
        }
    }

    pub fn new_uid(&self) -> String {
        let mut inner = self.lock();
        inner.uid_counter += 1;
        let n = inner.uid_counter;
        let r: u64 = rand::random();
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (r >> 32) as u32,
            (r >> 16) as u16,
            (r & 0xfff) as u16,
            (n >> 48) as u16 & 0xfff,
            n & 0xffff_ffff_ffff
        )
    }

    fn record(&self, inner: &mut Inner, change: Change) {
        let change = Arc::new(change);
        inner.history.push_back(change.clone());
        while inner.history.len() > HISTORY_LEN {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted = old.rv;
            }
        }
        let _ = self.changes.send(change);
        self.revision.send_replace(inner.rv);
    }

    /// Stores a new object; fails if it exists. Sets resourceVersion; the caller has set
    /// everything else (uid, timestamps) so that dry runs can stop before this call.
    pub fn create(&self, storage: &'static str, mut obj: Value) -> ApiResult<Value> {
        let mut inner = self.lock();
        let key = (ns_of(&obj).to_string(), name_of(&obj).to_string());
        let bucket = inner.objects.entry(storage).or_default();
        if bucket.contains_key(&key) {
            return Err(ApiError::already_exists(
                resources::by_storage(storage),
                &key.1,
            ));
        }
        inner.rv += 1;
        let rv = inner.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        inner
            .objects
            .entry(storage)
            .or_default()
            .insert(key, obj.clone());
        self.record(
            &mut inner,
            Change {
                rv,
                storage,
                event: EventType::Added,
                object: obj.clone(),
                prev: None,
            },
        );
        Ok(obj)
    }

    /// Replaces an object. With `expected_rv`, fails with 409 Conflict unless the stored
    /// object is still at that version: the optimistic concurrency every client relies on.
    /// A write that changes nothing keeps the resourceVersion, as upstream does.
    pub fn update(
        &self,
        storage: &'static str,
        mut obj: Value,
        expected_rv: Option<u64>,
    ) -> ApiResult<Value> {
        let mut inner = self.lock();
        let key = (ns_of(&obj).to_string(), name_of(&obj).to_string());
        let rt = resources::by_storage(storage);
        let Some(current) = inner
            .objects
            .get(storage)
            .and_then(|b| b.get(&key))
            .cloned()
        else {
            return Err(ApiError::not_found(rt, &key.1));
        };
        if let Some(expected) = expected_rv
            && rv_of(&current) != Some(expected)
        {
            return Err(ApiError::conflict(rt, &key.1));
        }
        obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        if obj == current {
            return Ok(current);
        }
        inner.rv += 1;
        let rv = inner.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        inner
            .objects
            .entry(storage)
            .or_default()
            .insert(key, obj.clone());
        self.record(
            &mut inner,
            Change {
                rv,
                storage,
                event: EventType::Modified,
                object: obj.clone(),
                prev: Some(current),
            },
        );
        Ok(obj)
    }

    /// Removes an object; returns it with the deletion's resourceVersion.
    pub fn delete(
        &self,
        storage: &'static str,
        ns: &str,
        name: &str,
        expected_rv: Option<u64>,
    ) -> ApiResult<Value> {
        let mut inner = self.lock();
        let rt = resources::by_storage(storage);
        let key = (ns.to_string(), name.to_string());
        let Some(current) = inner
            .objects
            .get(storage)
            .and_then(|b| b.get(&key))
            .cloned()
        else {
            return Err(ApiError::not_found(rt, name));
        };
        if let Some(expected) = expected_rv
            && rv_of(&current) != Some(expected)
        {
            return Err(ApiError::precondition_failed(
                rt,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {expected}, ResourceVersion in object meta: {}",
                    rv_of(&current).unwrap_or(0)
                ),
            ));
        }
        if let Some(b) = inner.objects.get_mut(storage) {
            b.remove(&key);
        }
        inner.rv += 1;
        let rv = inner.rv;
        let mut gone = current.clone();
        gone["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.record(
            &mut inner,
            Change {
                rv,
                storage,
                event: EventType::Deleted,
                object: gone.clone(),
                prev: Some(current),
            },
        );
        Ok(gone)
    }

    /// The changes after `since` (for a watch resuming there) and a receiver for what comes
    /// next, taken under one lock so nothing falls between them. 410 Gone if `since` is
    /// older than the retained history.
    pub fn watch_from(&self, since: u64) -> ApiResult<WatchStart> {
        let inner = self.lock();
        if since < inner.compacted {
            return Err(ApiError::gone(format!(
                "too old resource version: {since} ({})",
                inner.compacted + 1
            )));
        }
        let backlog = inner
            .history
            .iter()
            .filter(|c| c.rv > since)
            .cloned()
            .collect();
        Ok((backlog, self.changes.subscribe()))
    }

    /// A snapshot of one storage plus the receiver for later changes, under one lock.
    pub fn list_and_watch(
        &self,
        storage: &str,
        ns: Option<&str>,
    ) -> (Vec<Value>, u64, broadcast::Receiver<Arc<Change>>) {
        let rx = self.changes.subscribe();
        let (items, rv) = {
            let inner = self.lock();
            let items = match inner.objects.get(storage) {
                None => Vec::new(),
                Some(b) => b
                    .iter()
                    .filter(|((n, _), _)| ns.is_none_or(|ns| ns == n))
                    .map(|(_, v)| v.clone())
                    .collect(),
            };
            (items, inner.rv)
        };
        (items, rv, rx)
    }

    /// Forgets history up to now, so that watches from older versions get 410 Gone
    /// (what etcd compaction does; tests use it to exercise relists).
    pub fn compact(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.compacted = inner.rv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}, "spec": {"x": 1}})
    }

    #[test]
    fn every_write_bumps_one_global_resource_version() {
        let s = Store::new();
        let a = s.create("services", obj("a")).unwrap();
        let b = s.create("pods", obj("b")).unwrap();
        assert!(rv_of(&b).unwrap() > rv_of(&a).unwrap());
        assert_eq!(s.resource_version(), rv_of(&b).unwrap());
    }

    #[test]
    fn stale_update_is_a_conflict_and_changes_nothing() {
        let s = Store::new();
        let a = s.create("services", obj("a")).unwrap();
        let rv = rv_of(&a).unwrap();
        let mut changed = a.clone();
        changed["spec"]["x"] = json!(2);
        let updated = s.update("services", changed.clone(), Some(rv)).unwrap();
        changed["spec"]["x"] = json!(3);
        let err = s.update("services", changed, Some(rv)).unwrap_err();
        assert_eq!((err.code, err.reason), (409, "Conflict"));
        assert_eq!(s.get("services", "default", "a").unwrap(), updated);
    }

    #[test]
    fn no_op_update_keeps_the_resource_version() {
        let s = Store::new();
        let a = s.create("services", obj("a")).unwrap();
        let same = s.update("services", a.clone(), None).unwrap();
        assert_eq!(rv_of(&same), rv_of(&a));
    }

    #[test]
    fn duplicate_create_is_already_exists() {
        let s = Store::new();
        s.create("services", obj("a")).unwrap();
        let err = s.create("services", obj("a")).unwrap_err();
        assert_eq!((err.code, err.reason), (409, "AlreadyExists"));
        assert_eq!(err.message, "services \"a\" already exists");
    }

    #[test]
    fn watch_resumes_after_a_version_and_compaction_gives_gone() {
        let s = Store::new();
        let a = s.create("services", obj("a")).unwrap();
        s.create("services", obj("b")).unwrap();
        s.delete("services", "default", "a", None).unwrap();
        let (backlog, _) = s.watch_from(rv_of(&a).unwrap()).unwrap();
        let seen: Vec<_> = backlog
            .iter()
            .map(|c| (c.event, name_of(&c.object).to_string()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (EventType::Added, "b".into()),
                (EventType::Deleted, "a".into())
            ]
        );
        s.compact();
        let err = s.watch_from(rv_of(&a).unwrap()).unwrap_err();
        assert_eq!((err.code, err.reason), (410, "Expired"));
    }

    #[test]
    fn lists_are_sorted_and_namespace_scoped() {
        let s = Store::new();
        for (ns, n) in [("b", "x"), ("a", "z"), ("a", "y")] {
            s.create("pods", json!({"metadata": {"name": n, "namespace": ns}}))
                .unwrap();
        }
        let (all, _) = s.list("pods", None);
        let names: Vec<_> = all
            .iter()
            .map(|o| format!("{}/{}", ns_of(o), name_of(o)))
            .collect();
        assert_eq!(names, ["a/y", "a/z", "b/x"]);
        assert_eq!(s.list("pods", Some("a")).0.len(), 2);
    }
}
