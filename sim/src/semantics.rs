//! Per-type API semantics users see: the upstream defaults (`kubectl get -o yaml` shows
//! them) and the validation errors users hit, with upstream field paths and messages.

use crate::resources::ResourceType;
use serde_json::{Map, Value, json};

pub type Causes = Vec<(String, &'static str, String)>;

const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const LABEL_VALUE_MSG: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";
const QUALIFIED_NAME_MSG: &str = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";

/// One part of a DNS name: lowercase alphanumerics and '-', alphanumeric at both ends.
fn is_dns1123_part(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns1123_label(s: &str) -> bool {
    s.len() <= 63 && is_dns1123_part(s)
}

/// Upstream's IsDNS1123Subdomain: at most 253 characters in all; its dot-separated parts
/// are not limited to 63 (so a ReplicaSet of a 53-character Deployment is valid).
pub fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns1123_part)
}

fn is_dns1035_label(s: &str) -> bool {
    is_dns1123_label(s) && s.as_bytes()[0].is_ascii_lowercase()
}

fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

fn is_qualified_name(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    prefix.is_none_or(is_dns1123_subdomain) && !name.is_empty() && is_label_value(name)
}

/// Go's `%#v` of a `map[string]string`, as upstream prints it in Invalid messages.
pub fn go_map(m: &Map<String, Value>) -> String {
    let parts: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{:?}:{:?}", k, v.as_str().unwrap_or("")))
        .collect();
    format!("map[string]string{{{}}}", parts.join(", "))
}

fn go_label_selector(sel: &Value) -> String {
    let ml = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .map(go_map)
        .unwrap_or_else(|| "map[string]string(nil)".into());
    format!(
        "v1.LabelSelector{{MatchLabels:{ml}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}}"
    )
}

fn check_labels(causes: &mut Causes, path: &str, labels: Option<&Value>) {
    let Some(m) = labels.and_then(Value::as_object) else {
        return;
    };
    for (k, v) in m {
        if !is_qualified_name(k) {
            causes.push((
                path.into(),
                "FieldValueInvalid",
                format!("Invalid value: {k:?}: {QUALIFIED_NAME_MSG}"),
            ));
        }
        let val = v.as_str().unwrap_or("");
        if !is_label_value(val) {
            causes.push((
                path.into(),
                "FieldValueInvalid",
                format!("Invalid value: {val:?}: {LABEL_VALUE_MSG}"),
            ));
        }
    }
}

fn set_default(obj: &mut Value, key: &str, value: Value) {
    if obj.get(key).is_none_or(Value::is_null) {
        obj[key] = value;
    }
}

fn default_container(c: &mut Value) {
    set_default(c, "terminationMessagePath", json!("/dev/termination-log"));
    set_default(c, "terminationMessagePolicy", json!("File"));
    set_default(c, "resources", json!({}));
    let image = c["image"].as_str().unwrap_or("");
    let last = image.rsplit('/').next().unwrap_or("");
    let pull = if !last.contains(':') || last.ends_with(":latest") {
        "Always"
    } else {
        "IfNotPresent"
    };
    let pull = if image.contains('@') {
        "IfNotPresent"
    } else {
        pull
    };
    set_default(c, "imagePullPolicy", json!(pull));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            set_default(p, "protocol", json!("TCP"));
        }
    }
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).filter(|p| p.is_object()) {
            set_default(p, "timeoutSeconds", json!(1));
            set_default(p, "periodSeconds", json!(10));
            set_default(p, "successThreshold", json!(1));
            set_default(p, "failureThreshold", json!(3));
            if let Some(h) = p.get_mut("httpGet").filter(|h| h.is_object()) {
                set_default(h, "scheme", json!("HTTP"));
            }
        }
    }
}

pub fn default_pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    set_default(spec, "restartPolicy", json!("Always"));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "schedulerName", json!("default-scheduler"));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                default_container(c);
            }
        }
    }
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in volumes.iter_mut().filter(|v| v.is_object()) {
            default_volume(v);
        }
    }
}

/// Upstream's `SetDefaults_Volume` and its sources' defaults: a volume naming no source
/// is an `emptyDir`; files projected from ConfigMaps, Secrets and the downward API get
/// mode 0644 (420) unless the volume says otherwise.
fn default_volume(v: &mut Value) {
    let has_source = v
        .as_object()
        .is_some_and(|m| m.iter().any(|(k, x)| k != "name" && !x.is_null()));
    if !has_source {
        v["emptyDir"] = json!({});
    }
    for source in ["configMap", "secret", "projected", "downwardAPI"] {
        if v[source].is_object() {
            set_default(&mut v[source], "defaultMode", json!(420));
        }
    }
}

/// Applies the upstream defaults of a type to an object about to be stored.
pub fn apply_defaults(rt: &ResourceType, obj: &mut Value) {
    match rt.kind {
        "Deployment" => {
            let spec = &mut obj["spec"];
            set_default(spec, "replicas", json!(1));
            set_default(spec, "revisionHistoryLimit", json!(10));
            set_default(spec, "progressDeadlineSeconds", json!(600));
            set_default(spec, "strategy", json!({"type": "RollingUpdate"}));
            if spec["strategy"]["type"].is_null() {
                spec["strategy"]["type"] = json!("RollingUpdate");
            }
            if spec["strategy"]["type"] == "RollingUpdate" {
                let ru = &mut spec["strategy"]["rollingUpdate"];
                if ru.is_null() {
                    *ru = json!({});
                }
                set_default(ru, "maxSurge", json!("25%"));
                set_default(ru, "maxUnavailable", json!("25%"));
            }
            default_pod_spec(&mut spec["template"]["spec"]);
        }
        "ReplicaSet" => {
            set_default(&mut obj["spec"], "replicas", json!(1));
            default_pod_spec(&mut obj["spec"]["template"]["spec"]);
        }
        "Pod" => {
            default_pod_spec(&mut obj["spec"]);
            set_default(&mut obj["spec"], "serviceAccountName", json!("default"));
            set_default(&mut obj["spec"], "enableServiceLinks", json!(true));
            set_default(&mut obj["spec"], "priority", json!(0));
        }
        "Service" => {
            let spec = &mut obj["spec"];
            set_default(spec, "type", json!("ClusterIP"));
            set_default(spec, "sessionAffinity", json!("None"));
            set_default(spec, "ipFamilies", json!(["IPv4"]));
            set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
            set_default(spec, "internalTrafficPolicy", json!("Cluster"));
            if spec["type"] == "LoadBalancer" || spec["type"] == "NodePort" {
                set_default(spec, "externalTrafficPolicy", json!("Cluster"));
            }
            if spec["type"] == "LoadBalancer" {
                set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
            }
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for p in ports {
                    set_default(p, "protocol", json!("TCP"));
                    let port = p["port"].clone();
                    set_default(p, "targetPort", port);
                }
            }
        }
        "Secret" => {
            // Upstream folds `stringData` into `data` (base64) and never stores it.
            if let Some(Value::Object(sd)) =
                obj.as_object_mut().and_then(|m| m.remove("stringData"))
            {
                use base64::Engine;
                if !obj["data"].is_object() {
                    obj["data"] = json!({});
                }
                for (k, v) in sd {
                    let raw = v.as_str().unwrap_or("");
                    obj["data"][k] =
                        json!(base64::engine::general_purpose::STANDARD.encode(raw.as_bytes()));
                }
            }
            set_default(obj, "type", json!("Opaque"));
        }
        "HorizontalPodAutoscaler" => {
            let spec = &mut obj["spec"];
            set_default(spec, "minReplicas", json!(1));
            if spec["metrics"].as_array().is_none_or(Vec::is_empty) {
                spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]);
            }
        }
        "Namespace" => {
            set_default(&mut obj["spec"], "finalizers", json!(["kubernetes"]));
            let name = obj["metadata"]["name"].clone();
            if !obj["metadata"]["labels"].is_object() {
                obj["metadata"]["labels"] = json!({});
            }
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = name;
        }
        _ => {}
    }
}

fn check_pod_template(causes: &mut Causes, tmpl: &Value, path: &str) {
    check_labels(
        causes,
        &format!("{path}.metadata.labels"),
        tmpl.pointer("/metadata/labels"),
    );
    let containers = tmpl.pointer("/spec/containers").and_then(Value::as_array);
    match containers {
        None => causes.push((
            format!("{path}.spec.containers"),
            "FieldValueRequired",
            "Required value".into(),
        )),
        Some(cs) if cs.is_empty() => causes.push((
            format!("{path}.spec.containers"),
            "FieldValueRequired",
            "Required value".into(),
        )),
        Some(cs) => {
            for (i, c) in cs.iter().enumerate() {
                if c["name"].as_str().is_none_or(str::is_empty) {
                    causes.push((
                        format!("{path}.spec.containers[{i}].name"),
                        "FieldValueRequired",
                        "Required value".into(),
                    ));
                }
                if c["image"].as_str().is_none_or(|s| s.trim().is_empty()) {
                    causes.push((
                        format!("{path}.spec.containers[{i}].image"),
                        "FieldValueRequired",
                        "Required value".into(),
                    ));
                }
            }
        }
    }
}

/// Validation of a create (`old` = None) or an update. Returns upstream's causes.
pub fn validate(rt: &ResourceType, obj: &Value, old: Option<&Value>) -> Causes {
    let mut causes = Causes::new();
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    let name_ok = match rt.kind {
        "Service" | "Namespace" => {
            is_dns1035_label(name) || (rt.kind == "Namespace" && is_dns1123_label(name))
        }
        "Event" | "Lease" => !name.is_empty(),
        _ => is_dns1123_subdomain(name),
    };
    if !name_ok {
        let msg = if rt.kind == "Service" {
            DNS1035_MSG
        } else {
            DNS1123_SUBDOMAIN_MSG
        };
        causes.push((
            "metadata.name".into(),
            "FieldValueInvalid",
            format!("Invalid value: {name:?}: {msg}"),
        ));
    }
    check_labels(
        &mut causes,
        "metadata.labels",
        obj.pointer("/metadata/labels"),
    );
    match rt.kind {
        "Deployment" | "ReplicaSet" => {
            let spec = &obj["spec"];
            if let Some(r) = spec["replicas"].as_i64()
                && r < 0
            {
                causes.push((
                    "spec.replicas".into(),
                    "FieldValueInvalid",
                    format!("Invalid value: {r}: must be greater than or equal to 0"),
                ));
            }
            let sel = &spec["selector"];
            let sel_empty = sel.is_null()
                || (sel["matchLabels"].as_object().is_none_or(Map::is_empty)
                    && sel["matchExpressions"].as_array().is_none_or(Vec::is_empty));
            if sel_empty {
                causes.push((
                    "spec.selector".into(),
                    "FieldValueRequired",
                    "Required value".into(),
                ));
                causes.push((
                    "spec.selector".into(),
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {}: empty selector is invalid for deployment",
                        go_label_selector(sel)
                    ),
                ));
            } else {
                check_labels(
                    &mut causes,
                    "spec.selector.matchLabels",
                    sel.get("matchLabels"),
                );
                let selector = crate::selector::LabelSelector::from_object(sel).unwrap_or_default();
                let tmpl_labels = crate::selector::labels_of(&spec["template"]);
                if !selector.matches(&tmpl_labels) {
                    let shown = spec
                        .pointer("/template/metadata/labels")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default();
                    causes.push((
                        "spec.template.metadata.labels".into(),
                        "FieldValueInvalid",
                        format!(
                            "Invalid value: {}: `selector` does not match template `labels`",
                            go_map(&shown)
                        ),
                    ));
                }
            }
            if let Some(old) = old
                && old["spec"]["selector"] != spec["selector"]
            {
                causes.push((
                    "spec.selector".into(),
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {}: field is immutable",
                        go_label_selector(sel)
                    ),
                ));
            }
            check_pod_template(&mut causes, &spec["template"], "spec.template");
            if rt.kind == "Deployment" {
                let st = spec["strategy"]["type"].as_str().unwrap_or("");
                if st != "RollingUpdate" && st != "Recreate" {
                    causes.push(("spec.strategy.type".into(), "FieldValueNotSupported", format!("Unsupported value: {st:?}: supported values: \"Recreate\", \"RollingUpdate\"")));
                }
                if st == "Recreate" && !spec["strategy"]["rollingUpdate"].is_null() {
                    causes.push((
                        "spec.strategy.rollingUpdate".into(),
                        "FieldValueForbidden",
                        "Forbidden: may not be specified when strategy `type` is 'Recreate'".into(),
                    ));
                }
            }
        }
        "Service" => {
            let spec = &obj["spec"];
            if spec["ports"].as_array().is_none_or(Vec::is_empty)
                && spec["type"] != "ExternalName"
                && spec["clusterIP"] != "None"
            {
                causes.push((
                    "spec.ports".into(),
                    "FieldValueRequired",
                    "Required value".into(),
                ));
            }
            check_labels(&mut causes, "spec.selector", spec.get("selector"));
            if let Some(old) = old {
                let (o, n) = (&old["spec"]["clusterIP"], &spec["clusterIP"]);
                if !o.is_null() && !n.is_null() && o != n {
                    causes.push((
                        "spec.clusterIPs[0]".into(),
                        "FieldValueInvalid",
                        format!(
                            "Invalid value: []string{{{:?}}}: may not change once set",
                            n.as_str().unwrap_or("")
                        ),
                    ));
                }
            }
        }
        "HorizontalPodAutoscaler" => {
            let spec = &obj["spec"];
            for f in ["kind", "name"] {
                if spec["scaleTargetRef"][f].as_str().is_none_or(str::is_empty) {
                    causes.push((
                        format!("spec.scaleTargetRef.{f}"),
                        "FieldValueRequired",
                        "Required value".into(),
                    ));
                }
            }
            let max = spec["maxReplicas"].as_i64().unwrap_or(0);
            if max < 1 {
                causes.push((
                    "spec.maxReplicas".into(),
                    "FieldValueInvalid",
                    format!("Invalid value: {max}: must be greater than or equal to 1"),
                ));
            }
            if let Some(min) = spec["minReplicas"].as_i64()
                && min > max
                && max >= 1
            {
                causes.push((
                    "spec.minReplicas".into(),
                    "FieldValueInvalid",
                    format!("Invalid value: {min}: must be less than or equal to maxReplicas"),
                ));
            }
        }
        "PodDisruptionBudget" => {
            let spec = &obj["spec"];
            if !spec["minAvailable"].is_null() && !spec["maxUnavailable"].is_null() {
                causes.push((
                    "spec".into(),
                    "FieldValueInvalid",
                    "Invalid value: \"\": minAvailable and maxUnavailable cannot be both set"
                        .into(),
                ));
            }
        }
        "Pod" => {
            let tmpl = json!({"metadata": obj["metadata"].clone(), "spec": obj["spec"].clone()});
            let mut pc = Causes::new();
            check_pod_template(&mut pc, &tmpl, "");
            causes.extend(
                pc.into_iter()
                    .filter(|(f, _, _)| !f.starts_with("metadata"))
                    .map(|(f, r, m)| (f.trim_start_matches('.').to_string(), r, m)),
            );
        }
        _ => {}
    }
    causes
}

/// Server-side strict field validation (`fieldValidation=Strict`): fields the typed
/// object does not know are an error. Decoding into the k8s-openapi type and back drops
/// unknown fields; whatever was dropped is reported.
pub fn unknown_fields(rt: &ResourceType, obj: &Value) -> Result<Vec<String>, String> {
    use k8s_openapi::api::{
        apps::v1 as apps, coordination::v1 as coord, core::v1 as core, discovery::v1 as disc,
        events::v1 as ev,
    };
    fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(
        v: &Value,
    ) -> Result<Value, String> {
        let t: T = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
        serde_json::to_value(t).map_err(|e| e.to_string())
    }
    let back = match (rt.group, rt.kind) {
        ("apps", "Deployment") => roundtrip::<apps::Deployment>(obj)?,
        ("apps", "ReplicaSet") => roundtrip::<apps::ReplicaSet>(obj)?,
        ("", "Service") => roundtrip::<core::Service>(obj)?,
        ("", "Pod") => roundtrip::<core::Pod>(obj)?,
        ("", "Namespace") => roundtrip::<core::Namespace>(obj)?,
        ("", "Endpoints") => roundtrip::<core::Endpoints>(obj)?,
        ("", "Event") => roundtrip::<core::Event>(obj)?,
        ("events.k8s.io", "Event") => roundtrip::<ev::Event>(obj)?,
        ("discovery.k8s.io", _) => roundtrip::<disc::EndpointSlice>(obj)?,
        ("coordination.k8s.io", _) => roundtrip::<coord::Lease>(obj)?,
        ("", "ConfigMap") => roundtrip::<core::ConfigMap>(obj)?,
        ("", "Secret") => roundtrip::<core::Secret>(obj)?,
        ("", "ServiceAccount") => roundtrip::<core::ServiceAccount>(obj)?,
        ("policy", _) => roundtrip::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(obj)?,
        ("autoscaling", _) if rt.version == "v1" => {
            roundtrip::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>(obj)?
        }
        ("autoscaling", _) => {
            roundtrip::<k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>(obj)?
        }
        _ => return Ok(vec![]),
    };
    let mut missing = Vec::new();
    diff_fields(obj, &back, "", &mut missing);
    Ok(missing)
}

/// Removes the field at `path` as `unknown_fields` names it (`spec.template.spec.containers[0].foo`).
pub fn remove_path(obj: &mut Value, path: &str) {
    let mut steps: Vec<(&str, Vec<usize>)> = Vec::new();
    for seg in path.split('.') {
        let (key, rest) = seg.split_once('[').map_or((seg, ""), |(k, r)| (k, r));
        let indexes = rest
            .split('[')
            .filter_map(|i| i.trim_end_matches(']').parse().ok())
            .collect();
        steps.push((key, indexes));
    }
    let Some(((last, last_indexes), parents)) = steps.split_last() else {
        return;
    };
    let mut at = obj;
    for (key, indexes) in parents {
        let Some(next) = at.get_mut(*key) else { return };
        at = next;
        for i in indexes {
            let Some(next) = at.get_mut(*i) else { return };
            at = next;
        }
    }
    if last_indexes.is_empty()
        && let Some(m) = at.as_object_mut()
    {
        m.remove(*last);
    }
}

fn diff_fields(input: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (input, known) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in a {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let empty = v.is_null()
                    || v.as_object().is_some_and(Map::is_empty)
                    || v.as_array().is_some_and(Vec::is_empty);
                match b.get(k) {
                    Some(bv) => diff_fields(v, bv, &p, out),
                    // Free-form maps (labels, annotations, selectors) round-trip whole, so
                    // a missing key here is a field the schema does not declare.
                    None if !empty && !matches!(k.as_str(), "kind" | "apiVersion") => out.push(p),
                    None => {}
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    #[test]
    fn names_and_labels_are_validated_like_upstream() {
        assert!(is_dns1123_subdomain("shop-blue"));
        assert!(is_dns1123_subdomain(&format!(
            "{}-7d9f8c6b5",
            "a".repeat(60)
        )));
        assert!(!is_dns1123_subdomain(&"a".repeat(254)));
        assert!(!is_dns1123_subdomain("Shop"));
        assert!(is_label_value("v1.2_x"));
        assert!(!is_label_value("bad value"));
        assert!(is_qualified_name("bluegreen.io/color"));
        assert!(!is_qualified_name("Bad_Prefix/x"));
    }

    #[test]
    fn deployment_selector_must_match_template_and_is_immutable() {
        let rt = find("apps", "v1", "deployments").unwrap();
        let d = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}, "strategy": {"type": "RollingUpdate"}}});
        let causes = validate(rt, &d, None);
        assert_eq!(causes[0].0, "spec.template.metadata.labels");
        assert_eq!(
            causes[0].2,
            "Invalid value: map[string]string{\"app\":\"b\"}: `selector` does not match template `labels`"
        );
        let mut ok = d.clone();
        ok["spec"]["template"]["metadata"]["labels"]["app"] = json!("a");
        assert!(validate(rt, &ok, None).is_empty());
        let mut changed = ok.clone();
        changed["spec"]["selector"]["matchLabels"]["x"] = json!("y");
        changed["spec"]["template"]["metadata"]["labels"]["x"] = json!("y");
        let causes = validate(rt, &changed, Some(&ok));
        assert_eq!(causes.len(), 1);
        assert!(causes[0].2.ends_with("field is immutable"), "{causes:?}");
    }

    #[test]
    fn strict_validation_finds_unknown_fields() {
        let rt = find("apps", "v1", "deployments").unwrap();
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "labels": {"any": "x"}}, "spec": {"replicas": 1, "bogus": 1, "selector": {"matchLabels": {"a": "b"}}, "template": {"spec": {"containers": [{"name": "c", "image": "i", "imagePullPolcy": "x"}]}}}});
        assert_eq!(
            unknown_fields(rt, &d).unwrap(),
            vec![
                "spec.bogus",
                "spec.template.spec.containers[0].imagePullPolcy"
            ]
        );
    }
}
