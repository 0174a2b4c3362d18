//! Field types of the served kinds, as the Go structs declare them (for the fields the
//! simulator models), and the two ways the API server turns a wrongly-typed body into an
//! error: typed JSON decoding (POST, PUT, JSON and merge patches: `json: cannot unmarshal
//! string into Go struct field DeploymentSpec.spec.replicas of type int32`) and the
//! unstructured converter a strategic merge patch goes through (`cannot restore map from
//! string`, `unrecognized type: int32`). Unmodeled fields are accepted as they come.

use serde_json::{Map, Value};

/// A field's Go type.
pub enum Ty {
    Str,
    Int32,
    Int64,
    Bool,
    /// `intstr.IntOrString` (custom JSON unmarshaller: a string, or else an int32).
    IntOrStr,
    /// `map[string]string`
    MapStr,
    /// `[]string`
    ListStr,
    /// `[]pkg.Struct`
    ListOf(&'static Struct),
    /// `pkg.Struct` or `*pkg.Struct`
    Struct(&'static Struct),
    /// Not modeled: anything goes.
    Any,
}

/// A Go struct: its package-qualified name and its JSON fields in declaration order.
pub struct Struct {
    pub pkg: &'static str,
    pub name: &'static str,
    pub fields: &'static [(&'static str, Ty)],
}

impl Ty {
    fn go_type(&self) -> String {
        match self {
            Ty::Str => "string".into(),
            Ty::Int32 | Ty::IntOrStr => "int32".into(),
            Ty::Int64 => "int64".into(),
            Ty::Bool => "bool".into(),
            Ty::MapStr => "map[string]string".into(),
            Ty::ListStr => "[]string".into(),
            Ty::ListOf(s) => format!("[]{}.{}", s.pkg, s.name),
            Ty::Struct(s) => format!("{}.{}", s.pkg, s.name),
            Ty::Any => "interface {}".into(),
        }
    }
}

macro_rules! go_struct {
    ($id:ident, $pkg:literal, $name:literal, [$(($f:literal, $t:expr)),* $(,)?]) => {
        pub static $id: Struct = Struct { pkg: $pkg, name: $name, fields: &[$(($f, $t)),*] };
    };
}

go_struct!(
    OBJECT_META,
    "v1",
    "ObjectMeta",
    [
        ("name", Ty::Str),
        ("generateName", Ty::Str),
        ("namespace", Ty::Str),
        ("uid", Ty::Str),
        ("resourceVersion", Ty::Str),
        ("labels", Ty::MapStr),
        ("annotations", Ty::MapStr),
        ("finalizers", Ty::ListStr),
    ]
);
go_struct!(
    LABEL_SELECTOR_REQUIREMENT,
    "v1",
    "LabelSelectorRequirement",
    [
        ("key", Ty::Str),
        ("operator", Ty::Str),
        ("values", Ty::ListStr),
    ]
);
go_struct!(
    LABEL_SELECTOR,
    "v1",
    "LabelSelector",
    [
        ("matchLabels", Ty::MapStr),
        ("matchExpressions", Ty::ListOf(&LABEL_SELECTOR_REQUIREMENT)),
    ]
);
go_struct!(
    CONTAINER_PORT,
    "v1",
    "ContainerPort",
    [
        ("name", Ty::Str),
        ("hostPort", Ty::Int32),
        ("containerPort", Ty::Int32),
        ("protocol", Ty::Str),
    ]
);
go_struct!(
    ENV_VAR,
    "v1",
    "EnvVar",
    [("name", Ty::Str), ("value", Ty::Str)]
);
go_struct!(
    HTTP_GET,
    "v1",
    "HTTPGetAction",
    [
        ("path", Ty::Str),
        ("port", Ty::IntOrStr),
        ("scheme", Ty::Str),
    ]
);
go_struct!(
    PROBE,
    "v1",
    "Probe",
    [
        ("httpGet", Ty::Struct(&HTTP_GET)),
        ("initialDelaySeconds", Ty::Int32),
        ("timeoutSeconds", Ty::Int32),
        ("periodSeconds", Ty::Int32),
        ("successThreshold", Ty::Int32),
        ("failureThreshold", Ty::Int32),
    ]
);
go_struct!(
    CONTAINER,
    "v1",
    "Container",
    [
        ("name", Ty::Str),
        ("image", Ty::Str),
        ("command", Ty::ListStr),
        ("args", Ty::ListStr),
        ("workingDir", Ty::Str),
        ("ports", Ty::ListOf(&CONTAINER_PORT)),
        ("env", Ty::ListOf(&ENV_VAR)),
        ("livenessProbe", Ty::Struct(&PROBE)),
        ("readinessProbe", Ty::Struct(&PROBE)),
        ("startupProbe", Ty::Struct(&PROBE)),
        ("imagePullPolicy", Ty::Str),
    ]
);
go_struct!(
    POD_SPEC,
    "v1",
    "PodSpec",
    [
        ("initContainers", Ty::ListOf(&CONTAINER)),
        ("containers", Ty::ListOf(&CONTAINER)),
        ("restartPolicy", Ty::Str),
        ("terminationGracePeriodSeconds", Ty::Int64),
        ("dnsPolicy", Ty::Str),
        ("nodeSelector", Ty::MapStr),
        ("serviceAccountName", Ty::Str),
        ("nodeName", Ty::Str),
    ]
);
go_struct!(
    POD_TEMPLATE_SPEC,
    "v1",
    "PodTemplateSpec",
    [
        ("metadata", Ty::Struct(&OBJECT_META)),
        ("spec", Ty::Struct(&POD_SPEC)),
    ]
);
go_struct!(
    ROLLING_UPDATE_DEPLOYMENT,
    "v1",
    "RollingUpdateDeployment",
    [("maxUnavailable", Ty::IntOrStr), ("maxSurge", Ty::IntOrStr),]
);
go_struct!(
    DEPLOYMENT_STRATEGY,
    "v1",
    "DeploymentStrategy",
    [
        ("type", Ty::Str),
        ("rollingUpdate", Ty::Struct(&ROLLING_UPDATE_DEPLOYMENT)),
    ]
);
go_struct!(
    DEPLOYMENT_SPEC,
    "v1",
    "DeploymentSpec",
    [
        ("replicas", Ty::Int32),
        ("selector", Ty::Struct(&LABEL_SELECTOR)),
        ("template", Ty::Struct(&POD_TEMPLATE_SPEC)),
        ("strategy", Ty::Struct(&DEPLOYMENT_STRATEGY)),
        ("minReadySeconds", Ty::Int32),
        ("revisionHistoryLimit", Ty::Int32),
        ("paused", Ty::Bool),
        ("progressDeadlineSeconds", Ty::Int32),
    ]
);
go_struct!(
    DEPLOYMENT,
    "v1",
    "Deployment",
    [
        ("metadata", Ty::Struct(&OBJECT_META)),
        ("spec", Ty::Struct(&DEPLOYMENT_SPEC)),
    ]
);
go_struct!(
    REPLICA_SET_SPEC,
    "v1",
    "ReplicaSetSpec",
    [
        ("replicas", Ty::Int32),
        ("minReadySeconds", Ty::Int32),
        ("selector", Ty::Struct(&LABEL_SELECTOR)),
        ("template", Ty::Struct(&POD_TEMPLATE_SPEC)),
    ]
);
go_struct!(
    REPLICA_SET,
    "v1",
    "ReplicaSet",
    [
        ("metadata", Ty::Struct(&OBJECT_META)),
        ("spec", Ty::Struct(&REPLICA_SET_SPEC)),
    ]
);
go_struct!(
    POD,
    "v1",
    "Pod",
    [
        ("metadata", Ty::Struct(&OBJECT_META)),
        ("spec", Ty::Struct(&POD_SPEC)),
    ]
);
go_struct!(
    SERVICE_PORT,
    "v1",
    "ServicePort",
    [
        ("name", Ty::Str),
        ("protocol", Ty::Str),
        ("appProtocol", Ty::Str),
        ("port", Ty::Int32),
        ("targetPort", Ty::IntOrStr),
        ("nodePort", Ty::Int32),
    ]
);
go_struct!(
    SERVICE_SPEC,
    "v1",
    "ServiceSpec",
    [
        ("ports", Ty::ListOf(&SERVICE_PORT)),
        ("selector", Ty::MapStr),
        ("clusterIP", Ty::Str),
        ("clusterIPs", Ty::ListStr),
        ("type", Ty::Str),
        ("externalIPs", Ty::ListStr),
        ("sessionAffinity", Ty::Str),
        ("externalName", Ty::Str),
    ]
);
go_struct!(
    SERVICE,
    "v1",
    "Service",
    [
        ("metadata", Ty::Struct(&OBJECT_META)),
        ("spec", Ty::Struct(&SERVICE_SPEC)),
    ]
);
go_struct!(
    METADATA_ONLY,
    "v1",
    "Object",
    [("metadata", Ty::Struct(&OBJECT_META))]
);
go_struct!(
    CONFIG_MAP,
    "v1",
    "ConfigMap",
    [
        ("metadata", Ty::Struct(&OBJECT_META)),
        ("immutable", Ty::Bool),
        ("data", Ty::MapStr),
    ]
);
go_struct!(
    SECRET,
    "v1",
    "Secret",
    [
        ("metadata", Ty::Struct(&OBJECT_META)),
        ("immutable", Ty::Bool),
        ("stringData", Ty::MapStr),
        ("type", Ty::Str),
    ]
);
go_struct!(
    PDB_SPEC,
    "v1",
    "PodDisruptionBudgetSpec",
    [
        ("minAvailable", Ty::IntOrStr),
        ("selector", Ty::Struct(&LABEL_SELECTOR)),
        ("maxUnavailable", Ty::IntOrStr),
    ]
);
go_struct!(
    PDB,
    "v1",
    "PodDisruptionBudget",
    [
        ("metadata", Ty::Struct(&OBJECT_META)),
        ("spec", Ty::Struct(&PDB_SPEC)),
    ]
);
go_struct!(
    SCALE_TARGET_REF,
    "v2",
    "CrossVersionObjectReference",
    [
        ("kind", Ty::Str),
        ("name", Ty::Str),
        ("apiVersion", Ty::Str),
    ]
);
go_struct!(
    HPA_SPEC,
    "v2",
    "HorizontalPodAutoscalerSpec",
    [
        ("scaleTargetRef", Ty::Struct(&SCALE_TARGET_REF)),
        ("minReplicas", Ty::Int32),
        ("maxReplicas", Ty::Int32),
    ]
);
go_struct!(
    HPA,
    "v2",
    "HorizontalPodAutoscaler",
    [
        ("metadata", Ty::Struct(&OBJECT_META)),
        ("spec", Ty::Struct(&HPA_SPEC)),
    ]
);
go_struct!(SCALE_SPEC, "v1", "ScaleSpec", [("replicas", Ty::Int32)]);
go_struct!(
    SCALE,
    "v1",
    "Scale",
    [
        ("metadata", Ty::Struct(&OBJECT_META)),
        ("spec", Ty::Struct(&SCALE_SPEC)),
    ]
);

/// The modeled schema of a served kind (by API group and kind).
pub fn of(group: &str, kind: &str) -> &'static Struct {
    match (group, kind) {
        ("apps", "Deployment") => &DEPLOYMENT,
        ("apps", "ReplicaSet") => &REPLICA_SET,
        ("", "Pod") => &POD,
        ("", "Service") => &SERVICE,
        ("", "ConfigMap") => &CONFIG_MAP,
        ("", "Secret") => &SECRET,
        ("policy", "PodDisruptionBudget") => &PDB,
        ("autoscaling", "HorizontalPodAutoscaler") => &HPA,
        ("autoscaling", "Scale") => &SCALE,
        _ => &METADATA_ONLY,
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(_) => "number",
        Value::Bool(_) => "bool",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
        Value::Null => "null",
    }
}

/// The first type error typed JSON decoding (Go's `encoding/json`, as the API server's
/// serializer uses it) reports for `obj` decoded into `root`, in Go's words.
pub fn json_decode_error(root: &'static Struct, obj: &Value) -> Option<String> {
    let m = obj.as_object()?;
    let mut path = Vec::new();
    json_struct(root, m, &mut path)
}

fn json_struct(s: &Struct, m: &Map<String, Value>, path: &mut Vec<String>) -> Option<String> {
    for (k, v) in m {
        let Some((_, ty)) = s.fields.iter().find(|(f, _)| f == k) else {
            continue;
        };
        path.push(k.clone());
        let err = json_value(ty, v, s, path);
        path.pop();
        if err.is_some() {
            return err;
        }
    }
    None
}

fn json_value(ty: &Ty, v: &Value, parent: &Struct, path: &mut Vec<String>) -> Option<String> {
    let at = path.join(".");
    let mismatch = |what: String, ty: &Ty| {
        Some(format!(
            "json: cannot unmarshal {what} into Go struct field {}.{at} of type {}",
            parent.name,
            ty.go_type()
        ))
    };
    let int_ok = |v: &Value, lo: i64, hi: i64| v.as_i64().is_some_and(|n| (lo..=hi).contains(&n));
    match (ty, v) {
        (_, Value::Null) | (Ty::Any, _) => None,
        (Ty::Str, Value::String(_)) | (Ty::Bool, Value::Bool(_)) => None,
        (Ty::Int32, Value::Number(_)) if int_ok(v, i32::MIN.into(), i32::MAX.into()) => None,
        (Ty::Int64, Value::Number(_)) if int_ok(v, i64::MIN, i64::MAX) => None,
        (Ty::Int32 | Ty::Int64, Value::Number(n)) => mismatch(format!("number {n}"), ty),
        (Ty::IntOrStr, Value::String(_)) => None,
        (Ty::IntOrStr, _) if int_ok(v, i32::MIN.into(), i32::MAX.into()) => None,
        (Ty::IntOrStr, _) => Some(format!(
            "json: cannot unmarshal {} into Go value of type int32",
            match v {
                Value::Number(n) => format!("number {n}"),
                other => json_kind(other).to_string(),
            }
        )),
        (Ty::MapStr, Value::Object(m)) => m
            .values()
            .find(|x| !x.is_string() && !x.is_null())
            .and_then(|x| mismatch(json_kind(x).into(), &Ty::Str)),
        (Ty::ListStr, Value::Array(a)) => a
            .iter()
            .find(|x| !x.is_string() && !x.is_null())
            .and_then(|x| mismatch(json_kind(x).into(), &Ty::Str)),
        (Ty::ListOf(s), Value::Array(a)) => {
            for x in a {
                let err = match x {
                    Value::Null => None,
                    Value::Object(m) => json_struct(s, m, path),
                    other => mismatch(json_kind(other).into(), &Ty::Struct(s)),
                };
                if err.is_some() {
                    return err;
                }
            }
            None
        }
        (Ty::Struct(s), Value::Object(m)) => json_struct(s, m, path),
        (ty, v) => mismatch(json_kind(v).into(), ty),
    }
}

fn go_kind(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "string",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int64",
        Value::Bool(_) => "bool",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
        Value::Null => "invalid",
    }
}

/// The first error upstream's unstructured converter (`FromUnstructured`, which a
/// strategic merge patch's result goes through) reports for `obj` into `root`.
pub fn unstructured_error(root: &'static Struct, obj: &Value) -> Option<String> {
    unstructured(&Ty::Struct(root), obj)
}

fn unstructured(ty: &Ty, v: &Value) -> Option<String> {
    let convert = |target: &str| -> Option<String> {
        match v {
            Value::Number(n) if n.is_f64() && target == "string" => {
                Some("unrecognized type: string".into())
            }
            Value::Number(_) => Some(format!("cannot convert {} to {target}", go_kind(v))),
            _ => Some(format!("unrecognized type: {target}")),
        }
    };
    let integral = |v: &Value| {
        v.as_i64().is_some() || v.as_f64().is_some_and(|f| f == f.trunc() && f.is_finite())
    };
    match (ty, v) {
        (_, Value::Null) | (Ty::Any, _) => None,
        (Ty::Str, Value::String(_)) | (Ty::Bool, Value::Bool(_)) => None,
        (Ty::Str, _) => convert("string"),
        (Ty::Bool, _) => convert("bool"),
        (Ty::Int32 | Ty::Int64, Value::Number(_)) if integral(v) => None,
        (Ty::Int32, _) => convert("int32"),
        (Ty::Int64, _) => convert("int64"),
        // IntOrString converts through its JSON unmarshaller.
        (Ty::IntOrStr, _) => json_value(ty, v, &METADATA_ONLY, &mut Vec::new()),
        (Ty::MapStr, Value::Object(m)) => m.values().find_map(|x| unstructured(&Ty::Str, x)),
        (Ty::MapStr, _) => Some(format!("cannot restore map from {}", go_kind(v))),
        (Ty::ListStr, Value::Array(a)) => a.iter().find_map(|x| unstructured(&Ty::Str, x)),
        (Ty::ListOf(s), Value::Array(a)) => a.iter().find_map(|x| unstructured(&Ty::Struct(s), x)),
        (Ty::ListStr | Ty::ListOf(_), _) => {
            Some(format!("cannot restore slice from {}", go_kind(v)))
        }
        (Ty::Struct(s), Value::Object(m)) => s
            .fields
            .iter()
            .find_map(|(f, t)| m.get(*f).and_then(|x| unstructured(t, x))),
        (Ty::Struct(_), _) => Some(format!("cannot restore struct from: {}", go_kind(v))),
    }
}

/// Go's `%+v` of a decoded JSON value (`map[spec:map[replicas:3]]`), as upstream prints
/// a strategic merge patch in its Invalid message.
pub fn go_format(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_format).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(m) => format!(
            "map[{}]",
            m.iter()
                .map(|(k, v)| format!("{k}:{}", go_format(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_decoding_errors_read_like_go() {
        let d = json!({"spec": {"replicas": "3"}});
        assert_eq!(
            json_decode_error(&DEPLOYMENT, &d).unwrap(),
            "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
        );
        let s = json!({"spec": {"selector": "app=web"}});
        assert_eq!(
            json_decode_error(&SERVICE, &s).unwrap(),
            "json: cannot unmarshal string into Go struct field ServiceSpec.spec.selector of type map[string]string"
        );
        let s = json!({"spec": {"ports": [{"port": "80"}]}});
        assert_eq!(
            json_decode_error(&SERVICE, &s).unwrap(),
            "json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32"
        );
        let t = json!({"spec": {"template": {"metadata": {"labels": "app"}}}});
        assert_eq!(
            json_decode_error(&DEPLOYMENT, &t).unwrap(),
            "json: cannot unmarshal string into Go struct field ObjectMeta.spec.template.metadata.labels of type map[string]string"
        );
        let l = json!({"metadata": {"labels": {"a": 1}}});
        assert_eq!(
            json_decode_error(&SERVICE, &l).unwrap(),
            "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string"
        );
        assert_eq!(
            json_decode_error(&DEPLOYMENT, &json!({"spec": {"replicas": 2.5}})).unwrap(),
            "json: cannot unmarshal number 2.5 into Go struct field DeploymentSpec.spec.replicas of type int32"
        );
        let ok = json!({"metadata": {"labels": {"a": "b"}}, "spec": {"replicas": 3, "unknown": [1], "template": {"spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}}}});
        assert_eq!(json_decode_error(&DEPLOYMENT, &ok), None);
    }

    #[test]
    fn unstructured_errors_read_like_the_converter() {
        let cases = [
            (
                json!({"spec": {"selector": "x"}}),
                &SERVICE,
                "cannot restore map from string",
            ),
            (
                json!({"spec": {"selector": ["x"]}}),
                &SERVICE,
                "cannot restore map from slice",
            ),
            (
                json!({"spec": {"selector": 1}}),
                &SERVICE,
                "cannot restore map from int64",
            ),
            (
                json!({"spec": {"selector": true}}),
                &SERVICE,
                "cannot restore map from bool",
            ),
            (
                json!({"spec": {"replicas": "3"}}),
                &DEPLOYMENT,
                "unrecognized type: int32",
            ),
            (
                json!({"spec": {"replicas": 2.5}}),
                &DEPLOYMENT,
                "cannot convert float64 to int32",
            ),
            (
                json!({"metadata": {"labels": {"a": 1}}}),
                &SERVICE,
                "cannot convert int64 to string",
            ),
            (
                json!({"spec": {"ports": "80"}}),
                &SERVICE,
                "cannot restore slice from string",
            ),
            (
                json!({"spec": "x"}),
                &SERVICE,
                "cannot restore struct from: string",
            ),
        ];
        for (v, s, want) in cases {
            assert_eq!(unstructured_error(s, &v).as_deref(), Some(want), "{v}");
        }
        assert_eq!(
            unstructured_error(&DEPLOYMENT, &json!({"spec": {"replicas": 3.0}})),
            None
        );
        assert_eq!(
            go_format(&json!({"spec": {"replicas": "3", "x": [1, true]}})),
            "map[spec:map[replicas:3 x:[1 true]]]"
        );
    }
}
