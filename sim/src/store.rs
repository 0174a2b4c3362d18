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
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
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

/// One storage's objects by (namespace, name), with an index from each label pair to the
/// objects carrying it: a label-selected list reads what it selects, as the API server's
/// watch cache costs what it returns rather than what a namespace holds.
#[derive(Default)]
struct Bucket {
    /// Shared, never mutated in place: a controller pass holds thousands of them without
    /// copying (a write stores a new one).
    objects: BTreeMap<(String, String), Arc<Value>>,
    by_label: HashMap<(String, String), BTreeSet<(String, String)>>,
}

impl std::ops::Deref for Bucket {
    type Target = BTreeMap<(String, String), Arc<Value>>;
    fn deref(&self) -> &Self::Target {
        &self.objects
    }
}

impl Bucket {
    fn insert(&mut self, key: (String, String), obj: Value) {
        if let Some(old) = self.objects.remove(&key) {
            self.unindex(&key, &old);
        }
        for pair in label_pairs(&obj) {
            self.by_label.entry(pair).or_default().insert(key.clone());
        }
        self.objects.insert(key, Arc::new(obj));
    }

    fn remove(&mut self, key: &(String, String)) -> Option<Arc<Value>> {
        let old = self.objects.remove(key)?;
        self.unindex(key, &old);
        Some(old)
    }

    fn unindex(&mut self, key: &(String, String), obj: &Value) {
        for pair in label_pairs(obj) {
            if let Some(keys) = self.by_label.get_mut(&pair) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_label.remove(&pair);
                }
            }
        }
    }

    /// The objects carrying any of `pairs`, in (namespace, name) order.
    fn labelled<'a>(
        &'a self,
        pairs: &[(String, String)],
        ns: Option<&str>,
    ) -> impl Iterator<Item = &'a Value> {
        let keys: BTreeSet<&(String, String)> = pairs
            .iter()
            .filter_map(|p| self.by_label.get(p))
            .flatten()
            .filter(|(n, _)| ns.is_none_or(|ns| ns == n))
            .collect();
        keys.into_iter()
            .filter_map(|k| self.objects.get(k))
            .map(|v| &**v)
    }
}

fn label_pairs(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

struct Inner {
    rv: u64,
    objects: HashMap<&'static str, Bucket>,
    history: VecDeque<Arc<Change>>,
    /// Changes at or below this resourceVersion are no longer in `history`.
    compacted: u64,
    uid_counter: u64,
}

/// Which objects of a storage a list visits before its filter decides: what the store
/// can find without a scan. The filter still decides; a visit only narrows.
#[derive(Clone, Copy, Debug)]
pub enum Visit<'a> {
    /// Every object (of the namespace, when one is given).
    All,
    /// The objects carrying one of these labels (through the label index).
    Labelled(&'a [(String, String)]),
    /// The one object of this name (in the given namespace; across all, a scan).
    Named(&'a str),
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

// Indexing, not `pointer` (which allocates per segment): these three run per stored
// object in every list and controller pass.
pub fn name_of(obj: &Value) -> &str {
    obj["metadata"]["name"].as_str().unwrap_or("")
}

pub fn ns_of(obj: &Value) -> &str {
    obj["metadata"]["namespace"].as_str().unwrap_or("")
}

pub fn uid_of(obj: &Value) -> &str {
    obj["metadata"]["uid"].as_str().unwrap_or("")
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
            .map(|v| Value::clone(v))
    }

    /// One object, shared rather than copied (controllers sync by key).
    pub fn get_shared(&self, storage: &str, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.lock()
            .objects
            .get(storage)
            .and_then(|b| b.get(&(ns.to_string(), name.to_string())))
            .cloned()
    }

    /// The (namespace, name) of every object of a storage.
    pub fn keys(&self, storage: &str) -> Vec<(String, String)> {
        self.lock()
            .objects
            .get(storage)
            .map(|b| b.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The changes after `since`, oldest first, and the resourceVersion they reach, under
    /// one lock (what an informer's watch delivers); `None` once `since` is older than
    /// the retained history, when a reader must start over from a full list.
    pub fn changes_after(&self, since: u64) -> Option<(Vec<Arc<Change>>, u64)> {
        let inner = self.lock();
        if since < inner.compacted {
            return None;
        }
        let mut changes: Vec<Arc<Change>> = inner
            .history
            .iter()
            .rev()
            .take_while(|c| c.rv > since)
            .cloned()
            .collect();
        changes.reverse();
        Some((changes, inner.rv))
    }

    /// What `f` reads of one object, without copying it.
    pub fn peek<R>(
        &self,
        storage: &str,
        ns: &str,
        name: &str,
        f: impl FnOnce(&Value) -> R,
    ) -> Option<R> {
        self.lock()
            .objects
            .get(storage)
            .and_then(|b| b.get(&(ns.to_string(), name.to_string())))
            .map(|v| f(v))
    }

    /// Whether some object of a storage in `ns` carries the label `pair` (through the
    /// label index, copying nothing).
    pub fn any_labelled(&self, storage: &str, ns: &str, pair: &(String, String)) -> bool {
        self.lock()
            .objects
            .get(storage)
            .and_then(|b| b.by_label.get(pair))
            .is_some_and(|keys| keys.iter().any(|(n, _)| n == ns))
    }

    /// Every object of a storage, optionally in one namespace, sorted by (namespace, name).
    pub fn list(&self, storage: &str, ns: Option<&str>) -> (Vec<Value>, u64) {
        self.list_where(storage, ns, Visit::All, |_| true)
    }

    /// The objects `keep` accepts (copying only those) and the store's resourceVersion:
    /// a selected list of a large namespace costs what it selects, not what it holds.
    /// `visit` says which objects are candidates at all (see [`Visit`]).
    pub fn list_where(
        &self,
        storage: &str,
        ns: Option<&str>,
        visit: Visit<'_>,
        keep: impl FnMut(&&Value) -> bool,
    ) -> (Vec<Value>, u64) {
        let inner = self.lock();
        (Self::select(&inner, storage, ns, visit, keep), inner.rv)
    }

    /// The objects of a storage as they were at resourceVersion `rv` (a list with
    /// `resourceVersionMatch=Exact`, or a continued one): today's, with the changes after
    /// `rv` undone from the history. 410 once `rv` is older than the history, 504 for a
    /// version the store has not reached, as upstream answers them.
    pub fn list_at(
        &self,
        storage: &str,
        ns: Option<&str>,
        visit: Visit<'_>,
        rv: u64,
        mut keep: impl FnMut(&&Value) -> bool,
    ) -> ApiResult<Vec<Value>> {
        let inner = self.lock();
        if rv > inner.rv {
            let mut e = ApiError::new(
                504,
                "Timeout",
                format!("Too large resource version: {rv}, current: {}", inner.rv),
            );
            e.details = Some(serde_json::json!({
                "causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                "retryAfterSeconds": 1
            }));
            return Err(e);
        }
        if rv < inner.compacted {
            return Err(ApiError::gone(
                "The resourceVersion for the provided list is too old.",
            ));
        }
        // Today's matching objects (through the label index), then each later change
        // undone: what a change replaced comes back if it matched, what it added goes.
        let in_ns = |o: &Value| ns.is_none_or(|n| ns_of(o) == n);
        let key = |o: &Value| (ns_of(o).to_string(), name_of(o).to_string());
        let mut at: BTreeMap<(String, String), Value> =
            Self::select(&inner, storage, ns, visit, &mut keep)
                .into_iter()
                .map(|o| (key(&o), o))
                .collect();
        for change in inner.history.iter().rev().take_while(|c| c.rv > rv) {
            if change.storage != storage || !in_ns(&change.object) {
                continue;
            }
            let before = match change.event {
                EventType::Added => None,
                EventType::Modified => change.prev.as_ref(),
                EventType::Deleted => change.prev.as_ref().or(Some(&change.object)),
            };
            match before.filter(|b| keep(b)) {
                Some(b) => at.insert(key(b), b.clone()),
                None => at.remove(&key(&change.object)),
            };
        }
        Ok(at.into_values().collect())
    }

    fn select(
        inner: &Inner,
        storage: &str,
        ns: Option<&str>,
        visit: Visit<'_>,
        keep: impl FnMut(&&Value) -> bool,
    ) -> Vec<Value> {
        let Some(b) = inner.objects.get(storage) else {
            return Vec::new();
        };
        match (visit, ns) {
            (Visit::Named(name), Some(ns)) => b
                .get(&(ns.to_string(), name.to_string()))
                .map(|v| &**v)
                .into_iter()
                .filter(keep)
                .cloned()
                .collect(),
            (Visit::Labelled(pairs), _) => b.labelled(pairs, ns).filter(keep).cloned().collect(),
            (_, Some(ns)) => b
                .range((ns.to_string(), String::new())..)
                .take_while(|((n, _), _)| n == ns)
                .map(|(_, v)| &**v)
                .filter(keep)
                .cloned()
                .collect(),
            (_, None) => b.values().map(|v| &**v).filter(keep).cloned().collect(),
        }
    }

    /// Every object of a storage, shared rather than copied: a controller pass over
    /// thousands of objects copies none of them.
    pub fn list_shared(&self, storage: &str) -> Vec<Arc<Value>> {
        let inner = self.lock();
        inner
            .objects
            .get(storage)
            .map(|b| b.values().cloned().collect())
            .unwrap_or_default()
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
            None => b.values().filter_map(|v| f(v)).collect(),
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
            .map(|v| Value::clone(v))
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
            .map(|v| Value::clone(v))
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
            // Upstream's watch cache names the version just before its oldest event.
            return Err(ApiError::gone(format!(
                "too old resource version: {since} ({})",
                inner.compacted
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

    /// The selected objects of one storage plus the receiver for later changes, under one
    /// lock (arguments as [`Store::list_where`]).
    pub fn list_and_watch(
        &self,
        storage: &str,
        ns: Option<&str>,
        visit: Visit<'_>,
        keep: impl FnMut(&&Value) -> bool,
    ) -> (Vec<Value>, u64, broadcast::Receiver<Arc<Change>>) {
        let rx = self.changes.subscribe();
        let inner = self.lock();
        let items = Self::select(&inner, storage, ns, visit, keep);
        (items, inner.rv, rx)
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

    fn not_tier_db(o: &Value) -> bool {
        o["metadata"]["labels"]["tier"] != "db"
    }

    /// The label index (and a visit by name) answers exactly what a scan answers, over a
    /// seeded random run of creates, relabels and deletes across two namespaces.
    #[test]
    fn label_index_agrees_with_a_scan_through_relabels_and_deletes() {
        use crate::selector::LabelSelector;
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let s = Store::new();
        let selectors = [
            "app=a",
            "app in (a,b),tier=web",
            "tier=web",
            "app=b,tier!=web",
        ];
        for step in 0..2_000 {
            let ns = ["default", "other"][rng.random_range(0..2)];
            let name = format!("o{}", rng.random_range(0..30));
            let mut labels = serde_json::Map::new();
            if rng.random_bool(0.7) {
                labels.insert("app".into(), json!(["a", "b", "c"][rng.random_range(0..3)]));
            }
            if rng.random_bool(0.5) {
                labels.insert("tier".into(), json!(["web", "db"][rng.random_range(0..2)]));
            }
            let o = json!({"metadata": {"name": name, "namespace": ns, "labels": labels}});
            let _ = match (s.get("pods", ns, &name).is_some(), rng.random_range(0..3)) {
                (true, 0) => s.delete("pods", ns, &name, None).map(|_| ()),
                (true, _) => s.update("pods", o, None).map(|_| ()),
                (false, _) => s.create("pods", o).map(|_| ()),
            };
            for sel in selectors {
                let sel = LabelSelector::parse(sel).unwrap();
                let pairs = sel.required_pairs();
                for ns in [Some("default"), None] {
                    let visit = pairs.as_deref().map_or(Visit::All, Visit::Labelled);
                    let indexed = s.list_where("pods", ns, visit, |o| sel.matches_object(o));
                    let scanned = s.list_where("pods", ns, Visit::All, |o| sel.matches_object(o));
                    assert_eq!(indexed, scanned, "step {step}, {sel:?} in {ns:?}");
                }
            }
            // A visit by name finds what a scan for that name finds, also once deleted.
            for ns in [Some("default"), Some("other"), None] {
                let named = |o: &&Value| name_of(o) == name && not_tier_db(o);
                let by_key = s.list_where("pods", ns, Visit::Named(&name), named);
                let scanned = s.list_where("pods", ns, Visit::All, named);
                assert_eq!(by_key, scanned, "step {step}, {name} in {ns:?}");
            }
        }
        // Nothing stale is left behind: the index holds exactly the labels stored.
        let inner = s.lock();
        let b = &inner.objects["pods"];
        let indexed: usize = b.by_label.values().map(BTreeSet::len).sum();
        let carried: usize = b.values().map(|o| label_pairs(o).len()).sum();
        assert_eq!(indexed, carried);
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
