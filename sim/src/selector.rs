//! Label and field selectors: the `labelSelector=` / `fieldSelector=` query syntax of the
//! API server, and `metav1.LabelSelector` objects (matchLabels + matchExpressions) that
//! Deployments, ReplicaSets and Services carry.

use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; the empty selector matches everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelSelector(Vec<Requirement>);

/// Splits on commas that are not inside parentheses (`a in (x,y),b`).
fn split_top_level(s: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c)
            }
            ')' => {
                depth -= 1;
                cur.push(c)
            }
            ',' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts
        .into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_set(rest: &str) -> Result<Vec<String>, String> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| format!("found '{rest}', expected: '('"))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl LabelSelector {
    /// Parses the query-string form: `a=b,c!=d,e in (x,y),f notin (z),g,!h`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let req = if let Some(key) = part.strip_prefix('!') {
                Requirement::NotExists(key.trim().to_string())
            } else if let Some((k, v)) = part.split_once("!=") {
                Requirement::NotEq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once("==") {
                Requirement::Eq(k.trim().into(), v.trim().into())
            } else if let Some((k, v)) = part.split_once('=') {
                Requirement::Eq(k.trim().into(), v.trim().into())
            } else if let Some(idx) = part.find(" notin ") {
                Requirement::NotIn(part[..idx].trim().into(), parse_set(&part[idx + 7..])?)
            } else if let Some(idx) = part.find(" in ") {
                Requirement::In(part[..idx].trim().into(), parse_set(&part[idx + 4..])?)
            } else if part.contains(' ') || part.contains('(') || part.contains(')') {
                return Err(format!("unable to parse requirement: {part}"));
            } else {
                Requirement::Exists(part)
            };
            if let Requirement::Eq(k, _) | Requirement::NotEq(k, _) = &req
                && k.is_empty()
            {
                return Err(format!("unable to parse requirement: missing key in '{s}'"));
            }
            reqs.push(req);
        }
        Ok(LabelSelector(reqs))
    }

    /// From a `metav1.LabelSelector` object. `None` (or JSON null) selects nothing, as
    /// upstream treats a nil selector; `{}` selects everything.
    pub fn from_object(sel: &Value) -> Option<Self> {
        if sel.is_null() {
            return None;
        }
        let mut reqs = Vec::new();
        if let Some(ml) = sel.get("matchLabels").and_then(Value::as_object) {
            for (k, v) in ml {
                reqs.push(Requirement::Eq(k.clone(), v.as_str().unwrap_or("").into()));
            }
        }
        if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e["key"].as_str().unwrap_or("").to_string();
                let values: Vec<String> = e["values"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                reqs.push(match e["operator"].as_str().unwrap_or("") {
                    "In" => Requirement::In(key, values),
                    "NotIn" => Requirement::NotIn(key, values),
                    "Exists" => Requirement::Exists(key),
                    _ => Requirement::NotExists(key),
                });
            }
        }
        Some(LabelSelector(reqs))
    }

    /// From a Service's `spec.selector` map (equality only). An empty map selects nothing,
    /// as the endpoint controller skips selector-less Services.
    pub fn from_map(map: &serde_json::Map<String, Value>) -> Self {
        LabelSelector(
            map.iter()
                .map(|(k, v)| Requirement::Eq(k.clone(), v.as_str().unwrap_or("").into()))
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Label pairs one of which every matching object must carry (from the first `=` or
    /// `in` requirement), so that a store index can find candidates without a scan.
    /// `None` when no requirement names a value (`!=`, `notin`, existence only).
    pub fn required_pairs(&self) -> Option<Vec<(String, String)>> {
        self.0.iter().find_map(|r| match r {
            Requirement::Eq(k, v) => Some(vec![(k.clone(), v.clone())]),
            Requirement::In(k, vs) => Some(vs.iter().map(|v| (k.clone(), v.clone())).collect()),
            _ => None,
        })
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|k| labels.get(k).map(String::as_str))
    }

    /// Matches an object's own labels in place: a list scans thousands of stored
    /// objects, so nothing is copied or allocated per object.
    pub fn matches_object(&self, obj: &Value) -> bool {
        let labels = obj["metadata"]["labels"].as_object();
        self.matches_with(|k| labels?.get(k).map(|v| v.as_str().unwrap_or("")))
    }

    fn matches_with<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::Eq(k, v) => label(k) == Some(v.as_str()),
            Requirement::NotEq(k, v) => label(k) != Some(v.as_str()),
            Requirement::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Requirement::NotIn(k, vs) => label(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
        })
    }

    /// The query-string form, as `Scale.status.selector` carries it.
    pub fn to_query(&self) -> String {
        let mut parts: Vec<String> = self
            .0
            .iter()
            .map(|r| match r {
                Requirement::Eq(k, v) => format!("{k}={v}"),
                Requirement::NotEq(k, v) => format!("{k}!={v}"),
                Requirement::In(k, vs) => format!("{k} in ({})", vs.join(",")),
                Requirement::NotIn(k, vs) => format!("{k} notin ({})", vs.join(",")),
                Requirement::Exists(k) => k.clone(),
                Requirement::NotExists(k) => format!("!{k}"),
            })
            .collect();
        parts.sort();
        parts.join(",")
    }
}

pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// A field selector: `metadata.name=x,involvedObject.kind!=Pod`.
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, eq, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                ));
            };
            out.push((field.trim().to_string(), eq, value.trim().to_string()));
        }
        Ok(FieldSelector(out))
    }

    /// Checks every field is one the resource supports (upstream: 400 with this message).
    pub fn validate(&self, allowed: &[&str]) -> Result<(), String> {
        match self
            .0
            .iter()
            .find(|(f, _, _)| !allowed.contains(&f.as_str()))
        {
            Some((field, _, _)) => Err(format!("field label not supported: {field}")),
            None => Ok(()),
        }
    }

    pub fn is_empty_selector(&self) -> bool {
        self.0.is_empty()
    }

    /// The one name a `metadata.name=NAME` requirement allows: upstream's registry then
    /// reads that key alone instead of the whole collection (`SelectionPredicate.MatchesSingle`).
    pub fn single_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, eq, _)| *eq && f == "metadata.name")
            .map(|(_, _, v)| v.as_str())
    }

    /// Matches against the object's value at each dotted path (missing = "").
    pub fn matches(&self, obj: &Value) -> bool {
        self.0.iter().all(|(field, eq, value)| {
            let mut cur = obj;
            for seg in field.split('.') {
                cur = cur.get(seg).unwrap_or(&Value::Null);
            }
            let same = match cur {
                Value::String(s) => s == value,
                Value::Null => value.is_empty(),
                Value::Bool(b) => value == if *b { "true" } else { "false" },
                Value::Number(n) => *value == n.to_string(),
                _ => false,
            };
            same == *eq
        })
    }
}

/// The field selectors each stored resource supports (beyond metadata.name/namespace).
pub fn allowed_fields(group: &str, plural: &str) -> Vec<&'static str> {
    let mut f = vec!["metadata.name", "metadata.namespace"];
    match (group, plural) {
        ("", "events") => f.extend([
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ]),
        ("events.k8s.io", "events") => f.extend([
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reason",
            "reportingController",
            "type",
        ]),
        ("", "pods") => f.extend([
            "spec.nodeName",
            "status.phase",
            "status.podIP",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
        ]),
        ("", "namespaces") => f.push("status.phase"),
        ("apps", "replicasets") => f.push("status.replicas"),
        _ => {}
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn every_operator_of_the_query_syntax() {
        let l = labels(&[("app", "shop"), ("color", "blue")]);
        let yes = [
            "",
            "app=shop",
            "app==shop",
            "color!=green",
            "color in (blue,green)",
            "color notin (green)",
            "app",
            "!tier",
            "app=shop,color in (blue, green),!tier",
            "missing!=x",
            "missing notin (x)",
        ];
        for s in yes {
            assert!(
                LabelSelector::parse(s).unwrap().matches(&l),
                "{s} should match"
            );
        }
        let no = [
            "app=web",
            "color!=blue",
            "color in (green)",
            "color notin (blue)",
            "tier",
            "!app",
            "missing in (x)",
        ];
        for s in no {
            assert!(
                !LabelSelector::parse(s).unwrap().matches(&l),
                "{s} should not match"
            );
        }
        assert!(LabelSelector::parse("a b").is_err());
        assert!(LabelSelector::parse("=x").is_err());
    }

    #[test]
    fn label_selector_objects() {
        let sel = json!({"matchLabels": {"app": "shop"}, "matchExpressions": [{"key": "color", "operator": "In", "values": ["blue"]}]});
        let s = LabelSelector::from_object(&sel).unwrap();
        assert!(s.matches(&labels(&[("app", "shop"), ("color", "blue")])));
        assert!(!s.matches(&labels(&[("app", "shop"), ("color", "green")])));
        assert!(LabelSelector::from_object(&Value::Null).is_none());
        assert_eq!(s.to_query(), "app=shop,color in (blue)");
    }

    #[test]
    fn field_selectors_on_nested_fields() {
        let ev = json!({"metadata": {"name": "e1", "namespace": "default"}, "involvedObject": {"kind": "Service", "name": "shop"}});
        assert!(
            FieldSelector::parse("involvedObject.kind=Service,involvedObject.name=shop")
                .unwrap()
                .matches(&ev)
        );
        assert!(
            !FieldSelector::parse("involvedObject.name!=shop")
                .unwrap()
                .matches(&ev)
        );
        assert!(
            FieldSelector::parse("metadata.name==e1")
                .unwrap()
                .matches(&ev)
        );
        assert!(FieldSelector::parse("nonsense").is_err());
    }
}
