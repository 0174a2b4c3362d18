//! `metadata.managedFields` as the API server's field manager keeps them for Update
//! operations (the simulator has no server-side apply): every write compares the object
//! before and after (a create compares against the kind's Go zero value, as upstream's
//! `liveObj` on create is `New()`), and the fields it added or changed move to the
//! writing manager's entry (ownership transfer on Update); removed fields leave every
//! entry. The sets are structured-merge-diff's FieldsV1: `f:<field>` for struct and map
//! fields, `k:{"name":"web"}` for items of keyed lists, `v:<value>` for set items and
//! `.` when a manager owns a non-leaf entry itself. Atomic fields (label selectors,
//! Service selectors, unkeyed lists) are leaves.

use crate::store::now_rfc3339;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Upstream's `FieldManagerMaxLength`.
const MAX_MANAGER_LEN: usize = 128;

/// The manager of a write: the `fieldManager` parameter, else the user agent's first
/// `/`-separated token (printable characters, at most 128 bytes), as upstream's
/// `managerOrUserAgent`.
pub fn manager_or_user_agent(field_manager: Option<&str>, user_agent: &str) -> String {
    if let Some(m) = field_manager.filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    let mut out = String::new();
    for ch in user_agent.split('/').next().unwrap_or("").chars() {
        if ch.is_control() {
            continue;
        }
        if out.len() + ch.len_utf8() > MAX_MANAGER_LEN {
            break;
        }
        out.push(ch);
    }
    out
}

/// A set of field paths as a tree: `member` when the path itself is in the set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    fn child(&mut self, k: &str) -> &mut FieldSet {
        self.children.entry(k.to_string()).or_default()
    }

    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Whether the path (e.g. `["f:spec", "f:selector"]`) is a member.
    pub fn has(&self, path: &[&str]) -> bool {
        match path.split_first() {
            None => self.member,
            Some((k, rest)) => self.children.get(*k).is_some_and(|c| c.has(rest)),
        }
    }

    fn union(&mut self, o: &FieldSet) {
        self.member |= o.member;
        for (k, c) in &o.children {
            self.child(k).union(c);
        }
    }

    /// Member-wise difference (structured-merge-diff's `Set.Difference`).
    fn difference(&mut self, o: &FieldSet) {
        if o.member {
            self.member = false;
        }
        for (k, c) in &o.children {
            if let Some(mine) = self.children.get_mut(k) {
                mine.difference(c);
            }
        }
        self.prune();
    }

    fn prune(&mut self) {
        self.children.retain(|_, c| {
            c.prune();
            !c.is_empty()
        });
    }

    /// FieldsV1 JSON: leaves are `{}`, owned non-leaves carry `".": {}`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), json!({}));
        }
        for (k, c) in &self.children {
            if !c.is_empty() {
                m.insert(k.clone(), c.to_json());
            }
        }
        Value::Object(m)
    }

    /// Parses FieldsV1 JSON (unknown shapes are ignored).
    pub fn from_json(v: &Value) -> FieldSet {
        let mut s = FieldSet::default();
        if let Some(m) = v.as_object() {
            for (k, c) in m {
                if k == "." {
                    s.member = true;
                    continue;
                }
                let mut child = FieldSet::from_json(c);
                if c.as_object().is_some_and(Map::is_empty) {
                    child.member = true;
                }
                s.children.insert(k.clone(), child);
            }
        }
        s
    }
}

/// How a field is merged, as the upstream schema marks it.
enum Shape {
    Granular,
    Atomic,
    Keyed(&'static [&'static str]),
    Set,
}

/// `path` holds field names from the root, with `[]` for a list item.
fn shape(kind: &str, path: &[&str]) -> Shape {
    let last = path.last().copied().unwrap_or("");
    let parent = if path.len() >= 3 {
        Some((path[path.len() - 3], path[path.len() - 2]))
    } else {
        None
    };
    match (path, last) {
        (["spec", "selector"], _)
            if matches!(
                kind,
                "Deployment"
                    | "ReplicaSet"
                    | "StatefulSet"
                    | "DaemonSet"
                    | "PodDisruptionBudget"
                    | "Service"
            ) =>
        {
            Shape::Atomic
        }
        (["spec", "ports"], _) if kind == "Service" => Shape::Keyed(&["port", "protocol"]),
        (_, "containers" | "initContainers" | "ephemeralContainers") => Shape::Keyed(&["name"]),
        (_, "ports")
            if matches!(
                parent,
                Some((
                    "containers" | "initContainers" | "ephemeralContainers",
                    "[]"
                ))
            ) =>
        {
            Shape::Keyed(&["containerPort", "protocol"])
        }
        (_, "env" | "volumes" | "imagePullSecrets") => Shape::Keyed(&["name"]),
        (_, "volumeMounts") => Shape::Keyed(&["mountPath"]),
        (["metadata", "ownerReferences"], _) => Shape::Keyed(&["uid"]),
        (["metadata", "finalizers"], _) => Shape::Set,
        (["status", "conditions"], _) => Shape::Keyed(&["type"]),
        (["status", "podIPs" | "hostIPs"], _) => Shape::Keyed(&["ip"]),
        _ => Shape::Granular,
    }
}

/// The path element of a keyed list item: `k:{"name":"web"}` (keys sorted).
fn item_key(keys: &[&str], item: &Value) -> Option<String> {
    let mut k = BTreeMap::new();
    for f in keys {
        match item.get(*f) {
            Some(v) if !v.is_null() => {
                k.insert(*f, v.clone());
            }
            // Upstream's schema defaults a port's protocol for the key.
            _ if *f == "protocol" => {
                k.insert(*f, json!("TCP"));
            }
            _ => {}
        }
    }
    (!k.is_empty()).then(|| format!("k:{}", serde_json::to_string(&k).unwrap_or_default()))
}

fn is_empty_or_null(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => true,
        Some(Value::Object(m)) => m.is_empty(),
        Some(Value::Array(a)) => a.is_empty(),
        _ => false,
    }
}

/// The comparison of two objects: fields added or modified, and fields removed.
#[derive(Default)]
struct Diff {
    changed: FieldSet,
    removed: FieldSet,
}

struct Walker<'a> {
    kind: &'a str,
    names: Vec<&'a str>,
    at: Vec<String>,
}

impl<'a> Walker<'a> {
    fn mark(set: &mut FieldSet, at: &[String]) {
        let mut s = set;
        for k in at {
            s = s.child(k);
        }
        s.member = true;
    }

    fn leaf(&self, d: &mut Diff, lhs: Option<&Value>, rhs: Option<&Value>) {
        match (lhs, rhs) {
            (None, Some(_)) => Self::mark(&mut d.changed, &self.at),
            (Some(_), None) => Self::mark(&mut d.removed, &self.at),
            (Some(l), Some(r)) if l != r => Self::mark(&mut d.changed, &self.at),
            _ => {}
        }
    }

    /// `zero` is the Go zero value at this path: a field either side lacks is read from
    /// it, as both sides are typed objects upstream.
    fn walk(
        &mut self,
        d: &mut Diff,
        lhs: Option<&'a Value>,
        rhs: Option<&'a Value>,
        zero: Option<&'a Value>,
    ) {
        if is_empty_or_null(lhs) && is_empty_or_null(rhs) {
            return self.leaf(d, lhs, rhs);
        }
        let both_or_one = |f: fn(&Value) -> bool| {
            lhs.is_none_or(|v| v.is_null() || f(v)) && rhs.is_none_or(|v| v.is_null() || f(v))
        };
        let shape = shape(self.kind, &self.names);
        match shape {
            Shape::Atomic => self.leaf(d, lhs, rhs),
            Shape::Granular if both_or_one(Value::is_object) => {
                let lm = lhs.and_then(Value::as_object);
                let rm = rhs.and_then(Value::as_object);
                let mut keys: Vec<&'a String> = lm
                    .into_iter()
                    .flat_map(Map::keys)
                    .chain(rm.into_iter().flat_map(Map::keys))
                    .collect();
                keys.sort();
                keys.dedup();
                for k in keys {
                    let z = zero.and_then(|z| z.get(k));
                    self.names.push(k);
                    self.at.push(format!("f:{k}"));
                    self.walk(
                        d,
                        lm.and_then(|m| m.get(k)).or(z),
                        rm.and_then(|m| m.get(k)).or(z),
                        z,
                    );
                    self.at.pop();
                    self.names.pop();
                }
                self.own_container(d, lhs, rhs);
            }
            Shape::Keyed(keys) if both_or_one(Value::is_array) => {
                let index = |v: Option<&'a Value>| -> Option<BTreeMap<String, &'a Value>> {
                    let mut m = BTreeMap::new();
                    for item in v.and_then(Value::as_array).into_iter().flatten() {
                        m.insert(item_key(keys, item)?, item);
                    }
                    Some(m)
                };
                let (Some(li), Some(ri)) = (index(lhs), index(rhs)) else {
                    return self.leaf(d, lhs, rhs);
                };
                let mut ks: Vec<&String> = li.keys().chain(ri.keys()).collect();
                ks.sort();
                ks.dedup();
                for k in ks {
                    self.names.push("[]");
                    self.at.push(k.clone());
                    self.walk(d, li.get(k).copied(), ri.get(k).copied(), None);
                    self.at.pop();
                    self.names.pop();
                }
                self.own_container(d, lhs, rhs);
            }
            Shape::Set if both_or_one(Value::is_array) => {
                let values = |v: Option<&Value>| -> Vec<String> {
                    v.and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                        .map(|x| format!("v:{x}"))
                        .collect()
                };
                let (lv, rv) = (values(lhs), values(rhs));
                for x in rv.iter().filter(|x| !lv.contains(x)) {
                    self.at.push(x.clone());
                    Self::mark(&mut d.changed, &self.at);
                    self.at.pop();
                }
                for x in lv.iter().filter(|x| !rv.contains(x)) {
                    self.at.push(x.clone());
                    Self::mark(&mut d.removed, &self.at);
                    self.at.pop();
                }
                self.own_container(d, lhs, rhs);
            }
            _ => self.leaf(d, lhs, rhs),
        }
    }

    /// A map or list that did not exist before (a null counts as existing, as a Go zero
    /// value's non-omitempty field does) is owned itself: the `.` entry.
    fn own_container(&self, d: &mut Diff, lhs: Option<&Value>, rhs: Option<&Value>) {
        match (lhs, rhs) {
            (None, Some(r)) if !r.is_null() => Self::mark(&mut d.changed, &self.at),
            (Some(l), None) if !l.is_null() => Self::mark(&mut d.removed, &self.at),
            _ => {}
        }
    }
}

/// Metadata fields no manager owns (upstream's stripMetaManager).
const STRIPPED_META: &[&str] = &[
    "name",
    "namespace",
    "creationTimestamp",
    "selfLink",
    "uid",
    "clusterName",
    "generation",
    "managedFields",
    "resourceVersion",
];

fn compare(kind: &str, lhs: &Value, rhs: &Value, zero: &Value, ignored: &[&str]) -> Diff {
    let mut d = Diff::default();
    let empty = Map::new();
    let lm = lhs.as_object().unwrap_or(&empty);
    let rm = rhs.as_object().unwrap_or(&empty);
    let zm = zero.as_object().unwrap_or(&empty);
    let mut keys: Vec<&String> = lm.keys().chain(rm.keys()).chain(zm.keys()).collect();
    keys.sort();
    keys.dedup();
    let meta = |m: &Map<String, Value>| -> Option<Value> {
        m.get("metadata").map(|md| match md.as_object() {
            Some(o) => Value::Object(
                o.iter()
                    .filter(|(k, _)| !STRIPPED_META.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            None => md.clone(),
        })
    };
    let (lmeta, rmeta) = (meta(lm), meta(rm));
    for k in keys {
        if k == "apiVersion" || k == "kind" || ignored.contains(&k.as_str()) {
            continue;
        }
        let mut w = Walker {
            kind,
            names: vec![k.as_str()],
            at: vec![format!("f:{k}")],
        };
        if k == "metadata" {
            let mut md = Diff::default();
            let mut w = Walker {
                kind,
                names: vec!["metadata"],
                at: vec!["f:metadata".into()],
            };
            w.walk(&mut md, lmeta.as_ref(), rmeta.as_ref(), None);
            // `metadata` itself is never owned.
            for s in [&mut md.changed, &mut md.removed] {
                if let Some(m) = s.children.get_mut("f:metadata") {
                    m.member = false;
                }
            }
            d.changed.union(&md.changed);
            d.removed.union(&md.removed);
            continue;
        }
        let z = zm.get(k);
        w.walk(&mut d, lm.get(k).or(z), rm.get(k).or(z), z);
    }
    d.changed.prune();
    d.removed.prune();
    d
}

/// The Go zero value of a kind as upstream's converter renders it: non-pointer structs
/// as `{}`, non-omitempty slices and pointers as null. A create is compared against it.
pub fn zero_value(kind: &str) -> Value {
    let template = json!({"metadata": {"creationTimestamp": null}, "spec": {"containers": null}});
    match kind {
        "Deployment" => {
            json!({"spec": {"selector": null, "template": template, "strategy": {}}, "status": {}})
        }
        "ReplicaSet" => {
            json!({"spec": {"selector": null, "template": template}, "status": {"replicas": 0}})
        }
        "Pod" => json!({"spec": {"containers": null}, "status": {}}),
        "Service" => json!({"spec": {}, "status": {"loadBalancer": {}}}),
        "Namespace" => json!({"spec": {}, "status": {}}),
        "EndpointSlice" => json!({"addressType": "", "endpoints": null, "ports": null}),
        "HorizontalPodAutoscaler" => json!({
            "spec": {"scaleTargetRef": {"kind": "", "name": ""}, "maxReplicas": 0},
            "status": {"desiredReplicas": 0, "currentMetrics": null}
        }),
        "PodDisruptionBudget" => json!({"spec": {}, "status": {
            "disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0
        }}),
        "Event" => json!({
            "involvedObject": {}, "source": {}, "firstTimestamp": null, "lastTimestamp": null,
            "eventTime": null, "reportingComponent": "", "reportingInstance": ""
        }),
        "Scale" => json!({"spec": {}, "status": {"replicas": 0}}),
        _ => json!({}),
    }
}

/// Who writes, and what the write cannot own.
pub struct Write<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    pub subresource: Option<&'a str>,
    /// Top-level fields the endpoint resets (status for a main resource with a status
    /// subresource): never owned through it.
    pub ignored: &'a [&'a str],
}

struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: String,
    time: String,
    fields: FieldSet,
    /// Fields of the entry this simulator does not interpret (kept as sent).
    rest: Map<String, Value>,
}

impl Entry {
    fn parse(v: &Value) -> Option<Entry> {
        let m = v.as_object()?;
        let s = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mut rest = m.clone();
        for k in [
            "manager",
            "operation",
            "apiVersion",
            "subresource",
            "time",
            "fieldsType",
            "fieldsV1",
        ] {
            rest.remove(k);
        }
        Some(Entry {
            manager: s("manager"),
            operation: s("operation"),
            api_version: s("apiVersion"),
            subresource: s("subresource"),
            time: s("time"),
            fields: m
                .get("fieldsV1")
                .map(FieldSet::from_json)
                .unwrap_or_default(),
            rest,
        })
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation));
        m.insert("apiVersion".into(), json!(self.api_version));
        if !self.time.is_empty() {
            m.insert("time".into(), json!(self.time));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.fields.to_json());
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        m.extend(self.rest.clone());
        Value::Object(m)
    }
}

fn entries_of(obj: &Value) -> Option<&Vec<Value>> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .filter(|a| !a.is_empty())
}

/// Records the write of `next` over `prev` (None for a create) in `next`'s
/// `metadata.managedFields`. Managed fields the client sent replace the live ones (an
/// empty list is ignored, and `[{}]` strips them all), as upstream allows.
pub fn record(kind: &str, w: &Write<'_>, prev: Option<&Value>, next: &mut Value) {
    let sent = entries_of(next).cloned();
    let live = prev.and_then(entries_of).cloned().unwrap_or_default();
    let base = match sent {
        Some(s) if w.subresource.is_none() => {
            if s.iter().all(|e| e.as_object().is_some_and(Map::is_empty)) {
                if let Some(m) = next["metadata"].as_object_mut() {
                    m.remove("managedFields");
                }
                return;
            }
            s
        }
        _ => live,
    };
    let mut entries: Vec<Entry> = base.iter().filter_map(Entry::parse).collect();
    let zero = zero_value(kind);
    let empty = json!({});
    let d = compare(kind, prev.unwrap_or(&empty), next, &zero, w.ignored);
    for e in &mut entries {
        e.fields.difference(&d.changed);
        e.fields.difference(&d.removed);
    }
    if !d.changed.is_empty() {
        let sub = w.subresource.unwrap_or("");
        let mine = entries.iter_mut().find(|e| {
            e.manager == w.manager
                && e.operation == "Update"
                && e.api_version == w.api_version
                && e.subresource == sub
        });
        let now = now_rfc3339();
        match mine {
            Some(e) => {
                e.fields.union(&d.changed);
                e.time = now;
            }
            None => entries.push(Entry {
                manager: w.manager.to_string(),
                operation: "Update".into(),
                api_version: w.api_version.to_string(),
                subresource: sub.to_string(),
                time: now,
                fields: d.changed,
                rest: Map::new(),
            }),
        }
    }
    entries.retain(|e| !e.fields.is_empty());
    // Upstream's order: operation, time, manager, apiVersion, subresource.
    entries.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    if !next["metadata"].is_object() {
        next["metadata"] = json!({});
    }
    let md = next["metadata"].as_object_mut().expect("metadata");
    if entries.is_empty() {
        md.remove("managedFields");
    } else {
        md.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(Entry::to_json).collect()),
        );
    }
}

/// The fields `manager`'s entries own, for tests.
pub fn owned_by(obj: &Value, manager: &str) -> FieldSet {
    let mut s = FieldSet::default();
    for e in entries_of(obj).into_iter().flatten() {
        if let Some(e) = Entry::parse(e).filter(|e| e.manager == manager) {
            s.union(&e.fields);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(manager: &str) -> Write<'_> {
        Write {
            manager,
            api_version: "apps/v1",
            subresource: None,
            ignored: &["status"],
        }
    }

    #[test]
    fn a_create_owns_what_it_set_with_dots_only_where_the_zero_value_had_nothing() {
        let mut d = json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                    {"name": "web", "image": "nginx", "resources": {}, "ports": [{"containerPort": 80, "protocol": "TCP"}]}
                ]}}
            },
            "status": {"replicas": 0}
        });
        record("Deployment", &w("kubectl-create"), None, &mut d);
        let mf = &d["metadata"]["managedFields"][0];
        assert_eq!(mf["manager"], "kubectl-create");
        assert_eq!(mf["operation"], "Update");
        assert_eq!(mf["fieldsType"], "FieldsV1");
        assert_eq!(
            mf["fieldsV1"],
            json!({
                "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}}, "f:type": {}},
                    "f:template": {
                        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {
                            ".": {}, "f:image": {}, "f:name": {},
                            "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                ".": {}, "f:containerPort": {}, "f:protocol": {}
                            }},
                            "f:resources": {}
                        }}}
                    }
                }
            })
        );
    }

    #[test]
    fn an_update_by_another_manager_takes_the_fields_it_changed() {
        let svc = |color: &str| json!({"metadata": {"name": "web"}, "spec": {"selector": {"color": color}, "type": "ClusterIP"}});
        let mut v1 = svc("blue");
        record("Service", &w("a"), None, &mut v1);
        let mut v2 = svc("green");
        v2["metadata"]["managedFields"] = v1["metadata"]["managedFields"].clone();
        record("Service", &w("b"), Some(&v1), &mut v2);
        assert!(owned_by(&v2, "b").has(&["f:spec", "f:selector"]));
        assert!(!owned_by(&v2, "a").has(&["f:spec", "f:selector"]));
        assert!(owned_by(&v2, "a").has(&["f:spec", "f:type"]));
        // A write that changes nothing changes no entry.
        let mut v3 = v2.clone();
        record("Service", &w("c"), Some(&v2), &mut v3);
        assert_eq!(v3, v2);
        // `[{}]` strips them.
        let mut v4 = v2.clone();
        v4["metadata"]["managedFields"] = json!([{}]);
        record("Service", &w("c"), Some(&v2), &mut v4);
        assert!(v4["metadata"].get("managedFields").is_none());
    }

    #[test]
    fn removed_fields_leave_their_owner_and_finalizers_are_a_set() {
        let mut v1 = json!({"metadata": {"labels": {"a": "1", "b": "2"}, "finalizers": ["x"]}});
        record("ConfigMap", &w("m"), None, &mut v1);
        let mut v2 = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x"], "managedFields": v1["metadata"]["managedFields"].clone()}});
        record("ConfigMap", &w("n"), Some(&v1), &mut v2);
        let m = owned_by(&v2, "m");
        assert!(m.has(&["f:metadata", "f:labels", "f:a"]));
        assert!(!m.has(&["f:metadata", "f:labels", "f:b"]));
        assert!(m.has(&["f:metadata", "f:finalizers", "v:\"x\""]));
        assert!(owned_by(&v2, "n").is_empty());
    }

    #[test]
    fn the_manager_is_the_parameter_or_the_user_agent_prefix() {
        assert_eq!(
            manager_or_user_agent(Some("kubectl-patch"), "kubectl/v1.33"),
            "kubectl-patch"
        );
        assert_eq!(
            manager_or_user_agent(None, "kubectl/v1.33.0 (linux/amd64) kubernetes/abc"),
            "kubectl"
        );
        assert_eq!(manager_or_user_agent(Some(""), ""), "");
        assert_eq!(manager_or_user_agent(None, &"x".repeat(200)).len(), 128);
    }
}
