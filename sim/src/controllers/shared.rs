//! Helpers the controllers share: the per-pass owner index, ownerReferences, pod
//! predicates, conditions, integer fields, the FNV-1a hash and timer merging.

use crate::cluster::Cluster;
use crate::store::{name_of, ns_of, uid_of};
use serde_json::{Value, json};
use std::collections::HashMap;
use tokio::time::Instant;

/// The earlier of two optional wake-up times.
pub(super) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// Names of the objects each owner (by uid) controls, built once per pass so that a
/// controller's look-up does not scan the namespace (thousands of apps stay cheap).
#[derive(Default)]
pub(super) struct OwnerIndex(HashMap<String, Vec<(String, String)>>);

impl OwnerIndex {
    pub(super) fn build(c: &Cluster, storage: &str) -> Self {
        let mut idx: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for (owner, ns, name) in c.store.scan(storage, None, |o| {
            let r = o["metadata"]["ownerReferences"]
                .as_array()?
                .iter()
                .find(|r| r["controller"] == true)?;
            Some((
                r["uid"].as_str()?.to_string(),
                ns_of(o).to_string(),
                name_of(o).to_string(),
            ))
        }) {
            idx.entry(owner).or_default().push((ns, name));
        }
        OwnerIndex(idx)
    }

    /// Current copies of what `owner_uid` controls, plus `extra` names created since.
    pub(super) fn owned(
        &self,
        c: &Cluster,
        storage: &str,
        owner_uid: &str,
        extra: &[(String, String)],
    ) -> Vec<Value> {
        let base = self.0.get(owner_uid).map(Vec::as_slice).unwrap_or(&[]);
        let mut names: Vec<&(String, String)> = base.iter().chain(extra).collect();
        names.sort();
        names.dedup();
        names
            .into_iter()
            .filter_map(|(ns, n)| c.store.get(storage, ns, n))
            .filter(|o| owned_by(o, owner_uid))
            .collect()
    }
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
