//! The API verbs with their semantics, shared by the HTTP layer and the in-server
//! controllers (upstream controllers also write through the API): create (generateName
//! as upstream's name generator does it, defaults, validation), update (optimistic
//! concurrency, generation bumped only on spec changes, status only through the status
//! subresource), patch, the scale subresource, delete (graceful pods, cascading through
//! ownerReferences) and dry runs.

use crate::cluster::Cluster;
pub use crate::convert::{to_served, to_stored};
use crate::error::{ApiError, ApiResult};
use crate::managed;
use crate::patch::{self, PatchType};
use crate::resources::{self, ResourceType};
use crate::schema;
use crate::selector::LabelSelector;
use crate::semantics;
use crate::store::{name_of, now_rfc3339, rv_of, uid_of};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    Main,
    Status,
    Scale,
}

impl Sub {
    pub fn parse(s: Option<&str>) -> Option<Sub> {
        match s {
            None => Some(Sub::Main),
            Some("status") => Some(Sub::Status),
            Some("scale") => Some(Sub::Scale),
            _ => None,
        }
    }
    pub fn name(self) -> Option<&'static str> {
        match self {
            Sub::Main => None,
            Sub::Status => Some("status"),
            Sub::Scale => Some("scale"),
        }
    }
}

/// The `fieldValidation` of a write: what happens to fields the type does not know.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Dropped silently.
    Ignore,
    /// Dropped, each named in a `Warning` response header (upstream's default).
    #[default]
    Warn,
    /// The write fails.
    Strict,
}

impl FieldValidation {
    pub fn parse(v: Option<&str>) -> Result<FieldValidation, String> {
        match v {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some(other) => Err(format!(
                "fieldValidation parameter unsupported: {other:?}. Must be one of: Ignore, Warn, Strict"
            )),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct WriteOpts {
    pub dry_run: bool,
    /// None for the simulator's own writes (controllers, fixtures), which carry only
    /// known fields and are not checked.
    pub field_validation: Option<FieldValidation>,
    /// The field manager the write is recorded under in `metadata.managedFields`.
    pub manager: String,
    /// Warnings for the response's `Warning` headers, in the order they arose.
    pub warnings: Arc<Mutex<Vec<String>>>,
}

impl WriteOpts {
    /// A write by `manager` (e.g. `kube-controller-manager` for upstream's controllers).
    pub fn by(manager: &str) -> WriteOpts {
        WriteOpts {
            manager: manager.to_string(),
            ..WriteOpts::default()
        }
    }
}

/// Records a write of `next` (stored form) over `prev` (None for a create) by `manager`
/// in `next`'s managedFields, with the served version's paths and apiVersion. The main
/// resource never owns `status` where a status subresource exists (upstream resets it).
pub fn record_write(
    rt: &ResourceType,
    prev: Option<&Value>,
    next: &mut Value,
    manager: &str,
    sub: Sub,
) {
    let srt = storage_rt(rt);
    let ignored: &[&str] = match sub {
        Sub::Main if srt.status_subresource => &["status"],
        Sub::Status => &["spec"],
        _ => &[],
    };
    let api_version = rt.api_version();
    let w = managed::Write {
        manager,
        api_version: &api_version,
        subresource: sub.name(),
        ignored,
    };
    if rt.group == srt.group {
        return managed::record(srt.kind, &w, prev, next);
    }
    // events.k8s.io: fields are named as that version names them.
    let p = prev.map(|p| to_served(rt, p.clone()));
    let mut n = to_served(rt, next.clone());
    managed::record(rt.kind, &w, p.as_ref(), &mut n);
    match n["metadata"].get("managedFields") {
        Some(m) => next["metadata"]["managedFields"] = m.clone(),
        None => {
            if let Some(m) = next["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
        }
    }
}

/// A controller's guarded write straight to storage, recorded under `manager`.
pub fn controller_write(
    c: &Cluster,
    storage: &'static str,
    based_on: &Value,
    mut next: Value,
    manager: &str,
    sub: Sub,
) -> ApiResult<Value> {
    record_write(
        resources::by_storage(storage),
        Some(based_on),
        &mut next,
        manager,
        sub,
    );
    c.store.update(storage, next, rv_of(based_on))
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub dry_run: bool,
    pub propagation: Option<String>,
    pub grace_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<u64>,
}

const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Upstream's `maxNameLength` (63) minus `randomLength` (5), in
/// k8s.io/apiserver/pkg/storage/names.
const MAX_GENERATED_BASE: usize = 58;
const RANDOM_LENGTH: usize = 5;

/// Five random characters from the alphabet upstream uses for generated names.
pub fn random_suffix() -> String {
    (0..RANDOM_LENGTH)
        .map(|_| NAME_CHARS[rand::random_range(0..NAME_CHARS.len())] as char)
        .collect()
}

/// A name for `generateName`, as upstream's `SimpleNameGenerator`: the base cut to 58
/// bytes, then five random characters (so a generated name never exceeds 63).
pub fn generate_name(base: &str) -> String {
    let mut cut = base.len().min(MAX_GENERATED_BASE);
    // Valid bases are ASCII; a non-ASCII one is cut at a character boundary (upstream
    // cuts bytes) and then fails validation like upstream's.
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{}", &base[..cut], random_suffix())
}

fn storage_rt(rt: &ResourceType) -> &'static ResourceType {
    resources::by_storage(rt.storage)
}

fn check_namespace(c: &Cluster, rt: &ResourceType, ns: &str) -> ApiResult<()> {
    if rt.namespaced && c.store.get("namespaces", "", ns).is_none() {
        return Err(ApiError::namespace_not_found(ns));
    }
    Ok(())
}

/// Where a body under field validation came from: a Strict failure is reported as
/// upstream reports it for each (a decoding error for POST/PUT, an invalid `patch`).
enum Written<'a> {
    Body,
    Patch { kind: PatchType, sent: &'a [u8] },
}

/// Upstream decodes a write into its Go type: unknown fields are dropped, and named in a
/// warning (`Warn`) or refused (`Strict`, the whole list in one error).
fn check_unknown_fields(
    rt: &ResourceType,
    obj: &mut Value,
    opts: &WriteOpts,
    written: Written<'_>,
) -> ApiResult<()> {
    let Some(mode) = opts.field_validation else {
        return Ok(());
    };
    let unknown = semantics::unknown_fields(rt, obj).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            rt.kind, rt.version, rt.kind
        ))
    })?;
    if unknown.is_empty() {
        return Ok(());
    }
    let fields: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    match mode {
        FieldValidation::Strict => {
            let detail = format!("strict decoding error: {}", fields.join(", "));
            Err(match written {
                Written::Body => ApiError::bad_request(format!(
                    "{} in version \"{}\" cannot be handled as a {}: {detail}",
                    rt.kind, rt.version, rt.kind
                )),
                // JSON and merge patches show the patched object, a strategic merge
                // patch the patch itself in Go's map notation.
                Written::Patch {
                    kind: PatchType::Strategic,
                    sent,
                } => {
                    let sent: Value = serde_json::from_slice(sent).unwrap_or_default();
                    ApiError::invalid_patch(&schema::go_format(&sent), &detail)
                }
                Written::Patch { .. } => ApiError::invalid_patch(&obj.to_string(), &detail),
            })
        }
        FieldValidation::Warn | FieldValidation::Ignore => {
            for path in &unknown {
                semantics::remove_path(obj, path);
            }
            if mode == FieldValidation::Warn {
                opts.warnings.lock().unwrap().extend(fields);
            }
            Ok(())
        }
    }
}

/// The decoding step of a POST or PUT body: a wrongly-typed field is upstream's 400
/// `<Kind> in version "<v>" cannot be handled as a <Kind>: json: cannot unmarshal ...`.
fn check_decodes(group: &str, version: &str, kind: &str, body: &Value) -> ApiResult<()> {
    match schema::json_decode_error(schema::of(group, kind), body) {
        None => Ok(()),
        Some(e) => Err(ApiError::bad_request(format!(
            "{kind} in version \"{version}\" cannot be handled as a {kind}: {e}"
        ))),
    }
}

fn check_body_decodes(rt: &ResourceType, sub: Sub, body: &Value) -> ApiResult<()> {
    if sub == Sub::Scale {
        check_decodes("autoscaling", "v1", "Scale", body)
    } else {
        check_decodes(rt.group, rt.version, rt.kind, body)
    }
}

fn invalid_unless_empty(rt: &ResourceType, name: &str, causes: semantics::Causes) -> ApiResult<()> {
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(rt, name, &causes))
    }
}

/// Creates an object in `ns` (ignored for cluster-scoped types).
pub fn create(
    c: &Cluster,
    rt: &'static ResourceType,
    ns: &str,
    mut obj: Value,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request was not a valid object",
        ));
    }
    check_body_decodes(rt, Sub::Main, &obj)?;
    check_unknown_fields(rt, &mut obj, opts, Written::Body)?;
    if rt.namespaced {
        check_namespace(c, rt, ns)?;
        match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
            Some(n) if !n.is_empty() && n != ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => {}
        }
    }
    if !obj["metadata"].is_object() {
        obj["metadata"] = json!({});
    }
    let md = &mut obj["metadata"];
    if rt.namespaced {
        md["namespace"] = json!(ns);
    } else if let Some(m) = md.as_object_mut() {
        m.remove("namespace");
    }
    let name = md["name"].as_str().unwrap_or("").to_string();
    if name.is_empty() {
        match md["generateName"].as_str() {
            Some(prefix) if !prefix.is_empty() => md["name"] = json!(generate_name(prefix)),
            _ => {
                return Err(ApiError::invalid(
                    rt,
                    "",
                    &[(
                        "metadata.name".into(),
                        "FieldValueRequired",
                        "Required value: name or generateName is required".into(),
                    )],
                ));
            }
        }
    }
    let mut obj = to_stored(rt, obj);
    let srt = storage_rt(rt);
    if let Some(m) = obj["metadata"].as_object_mut() {
        for k in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generation",
        ] {
            m.remove(k);
        }
    }
    if srt.status_subresource
        && srt.kind != "Namespace"
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    let sent_spec = (!storage_filled(srt.kind).is_empty()).then(|| obj["spec"].clone());
    semantics::apply_defaults(srt, &mut obj);
    record_create(rt, &mut obj, sent_spec.as_ref(), &opts.manager);
    prepare_new(c, srt, &mut obj);
    invalid_unless_empty(rt, name_of(&obj), semantics::validate(srt, &obj, None))?;
    let name = name_of(&obj).to_string();
    if c.store
        .get(srt.storage, crate::store::ns_of(&obj), &name)
        .is_some()
    {
        return Err(ApiError::already_exists(rt, &name));
    }
    obj["metadata"]["uid"] = json!(c.store.new_uid());
    obj["metadata"]["creationTimestamp"] = json!(now_rfc3339());
    if srt.has_generation {
        obj["metadata"]["generation"] = json!(1);
    }
    let stored = if opts.dry_run {
        obj
    } else {
        c.store.create(srt.storage, obj)?
    };
    if !opts.dry_run {
        if srt.kind == "Namespace" {
            // Upstream's service account controller gives every namespace a `default`.
            let sa = resources::find("", "v1", "serviceaccounts").expect("serviceaccounts");
            let by_controller = WriteOpts {
                dry_run: false,
                ..WriteOpts::by("kube-controller-manager")
            };
            let _ = create(
                c,
                sa,
                &name,
                json!({"metadata": {"name": "default"}}),
                &by_controller,
            );
        }
        c.kick();
    }
    Ok(to_served(rt, stored))
}

/// Spec fields that upstream fills after the field manager has run on a create (the
/// REST storage: a Service's IP families; mutating admission: a Pod's service account
/// and priority): no manager owns them unless the request set them.
fn storage_filled(kind: &str) -> &'static [&'static str] {
    match kind {
        "Service" => &["ipFamilies", "ipFamilyPolicy"],
        "Pod" => &["serviceAccountName", "priority"],
        "Namespace" => &["finalizers"],
        _ => &[],
    }
}

/// Records a create after defaulting and before the fields the REST storage fills
/// (cluster IPs and node ports are filled later; see also [`storage_filled`]).
fn record_create(rt: &ResourceType, obj: &mut Value, sent_spec: Option<&Value>, manager: &str) {
    let Some(sent) = sent_spec else {
        return record_write(rt, None, obj, manager, Sub::Main);
    };
    let mut view = obj.clone();
    if let Some(spec) = view["spec"].as_object_mut() {
        for &k in storage_filled(storage_rt(rt).kind) {
            if sent.get(k).is_none() {
                spec.remove(k);
            }
        }
    }
    record_write(rt, None, &mut view, manager, Sub::Main);
    match view["metadata"].get("managedFields") {
        Some(m) => obj["metadata"]["managedFields"] = m.clone(),
        None => {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("managedFields");
            }
        }
    }
}

/// Fields the server fills on create: Service cluster IPs and node ports, Namespace phase.
fn prepare_new(c: &Cluster, rt: &ResourceType, obj: &mut Value) {
    match rt.kind {
        "Service" => {
            let spec = &mut obj["spec"];
            if spec["type"] != "ExternalName"
                && spec["clusterIP"].as_str().is_none_or(str::is_empty)
            {
                let ip = c.allocate_service_ip();
                spec["clusterIP"] = json!(ip);
                spec["clusterIPs"] = json!([ip]);
            } else if spec["clusterIPs"].is_null() && spec["clusterIP"].is_string() {
                spec["clusterIPs"] = json!([spec["clusterIP"].clone()]);
            }
            if (spec["type"] == "LoadBalancer" || spec["type"] == "NodePort")
                && let Some(ports) = spec["ports"].as_array_mut()
            {
                for p in ports.iter_mut().filter(|p| p["nodePort"].is_null()) {
                    p["nodePort"] = json!(c.allocate_node_port());
                }
            }
            obj["status"] = json!({"loadBalancer": {}});
        }
        "Namespace" => obj["status"] = json!({"phase": "Active"}),
        "Pod" => obj["status"] = json!({"phase": "Pending", "qosClass": "BestEffort"}),
        _ => {}
    }
}

pub fn get(
    c: &Cluster,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    sub: Sub,
) -> ApiResult<Value> {
    let obj = c
        .store
        .get(rt.storage, if rt.namespaced { ns } else { "" }, name)
        .ok_or_else(|| ApiError::not_found(rt, name))?;
    Ok(match sub {
        Sub::Scale => to_scale(&obj),
        _ => to_served(rt, obj),
    })
}

/// The `autoscaling/v1` Scale view of a Deployment or ReplicaSet.
pub fn to_scale(obj: &Value) -> Value {
    let selector = LabelSelector::from_object(&obj["spec"]["selector"]).unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"],
            "uid": obj["metadata"]["uid"],
            "resourceVersion": obj["metadata"]["resourceVersion"],
            "creationTimestamp": obj["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": obj["spec"]["replicas"].as_i64().unwrap_or(0)},
        "status": {"replicas": obj["status"]["replicas"].as_i64().unwrap_or(0), "selector": selector.to_query()},
    })
}

/// Replaces an object (PUT), or its status or scale.
pub fn update(
    c: &Cluster,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    body: Value,
    sub: Sub,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    // An update without a resourceVersion is unconditional: like the API server's
    // GuaranteedUpdate, it is retried when another write landed between its read and
    // its write, rather than failing with a Conflict the client never asked for.
    let unconditional = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty);
    let mut tries = 0;
    loop {
        match update_once(c, rt, ns, name, body.clone(), sub, opts) {
            Err(e) if unconditional && e.code == 409 && e.reason == "Conflict" && tries < 16 => {
                tries += 1;
            }
            other => return other,
        }
    }
}

fn update_once(
    c: &Cluster,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    body: Value,
    sub: Sub,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request was not a valid object",
        ));
    }
    check_body_decodes(rt, sub, &body)?;
    update_decoded(c, rt, ns, name, body, sub, opts)
}

/// An update whose body already decoded into the type.
fn update_decoded(
    c: &Cluster,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    body: Value,
    sub: Sub,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    let ns = if rt.namespaced { ns } else { "" };
    let current = c
        .store
        .get(rt.storage, ns, name)
        .ok_or_else(|| ApiError::not_found(rt, name))?;
    let body_name = body
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    let expected = body
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))
        })
        .transpose()?;
    if let Some(e) = expected
        && rv_of(&current) != Some(e)
    {
        return Err(ApiError::conflict(rt, name));
    }
    let srt = storage_rt(rt);
    let mut next = match sub {
        Sub::Scale => {
            let replicas = body
                .pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let mut n = current.clone();
            n["spec"]["replicas"] = json!(replicas);
            n
        }
        Sub::Status => {
            let mut n = current.clone();
            n["status"] = to_stored(rt, body)["status"].clone();
            n
        }
        Sub::Main => {
            let mut body = body;
            check_unknown_fields(rt, &mut body, opts, Written::Body)?;
            let mut n = to_stored(rt, body);
            if n["metadata"].is_null() {
                n["metadata"] = json!({});
            }
            for k in [
                "uid",
                "creationTimestamp",
                "generation",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "namespace",
                "name",
            ] {
                let v = current["metadata"][k].clone();
                if v.is_null() {
                    if let Some(m) = n["metadata"].as_object_mut() {
                        m.remove(k);
                    }
                } else {
                    n["metadata"][k] = v;
                }
            }
            if srt.status_subresource {
                n["status"] = current["status"].clone();
            }
            if srt.kind == "Service" {
                for k in ["clusterIP", "clusterIPs"] {
                    if n["spec"][k].is_null() || n["spec"][k] == "" {
                        n["spec"][k] = current["spec"][k].clone();
                    }
                }
                // Node ports are kept by port when an update omits them.
                if let (Some(new_ports), Some(old_ports)) = (
                    n["spec"]["ports"].as_array_mut(),
                    current["spec"]["ports"].as_array(),
                ) {
                    for p in new_ports {
                        if p["nodePort"].is_null()
                            && let Some(o) = old_ports.iter().find(|o| o["port"] == p["port"])
                            && !o["nodePort"].is_null()
                        {
                            p["nodePort"] = o["nodePort"].clone();
                        }
                    }
                }
            }
            semantics::apply_defaults(srt, &mut n);
            n
        }
    };
    if next.get("status").is_some_and(Value::is_null)
        && let Some(m) = next.as_object_mut()
    {
        m.remove("status");
    }
    invalid_unless_empty(rt, name, semantics::validate(srt, &next, Some(&current)))?;
    record_write(rt, Some(&current), &mut next, &opts.manager, sub);
    if srt.has_generation && next["spec"] != current["spec"] {
        let g = current["metadata"]["generation"].as_i64().unwrap_or(1);
        next["metadata"]["generation"] = json!(g + 1);
    }
    let stored = if opts.dry_run {
        next
    } else if !next["metadata"]["deletionTimestamp"].is_null() && finalizers(&next).is_empty() {
        // Upstream: the update that removes the last finalizer of an object being
        // deleted completes the delete.
        let gone = c.store.delete(srt.storage, ns, name, rv_of(&current))?;
        c.kick();
        gone
    } else {
        let s = c.store.update(srt.storage, next, rv_of(&current))?;
        c.kick();
        s
    };
    Ok(match sub {
        Sub::Scale => to_scale(&stored),
        _ => to_served(rt, stored),
    })
}

/// PATCH: apply the patch to the current object (or its Scale), then update. A
/// `metadata.resourceVersion` in the patch is a precondition.
#[allow(clippy::too_many_arguments)]
pub fn patch(
    c: &Cluster,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    content_type: &str,
    body: &[u8],
    sub: Sub,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    // Upstream applies a patch inside GuaranteedUpdate: a write that lands between its
    // read and its write makes it re-read and apply again, so a patch without a
    // resourceVersion of its own never fails with 409 because of someone else's write.
    let sent: Value = serde_json::from_slice(body).unwrap_or_default();
    let own_precondition = sent.pointer("/metadata/resourceVersion").is_some()
        || sent
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o["path"] == "/metadata/resourceVersion"));
    let mut attempts = 0;
    loop {
        match patch_once(c, rt, ns, name, content_type, body, sub, opts) {
            Err(e) if e.code == 409 && !own_precondition && attempts < 10 => {
                attempts += 1;
                opts.warnings.lock().unwrap().clear();
            }
            other => return other,
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn patch_once(
    c: &Cluster,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    content_type: &str,
    body: &[u8],
    sub: Sub,
    opts: &WriteOpts,
) -> ApiResult<Value> {
    let kind = PatchType::from_content_type(content_type)?;
    let ns_key = if rt.namespaced { ns } else { "" };
    let current = c
        .store
        .get(rt.storage, ns_key, name)
        .ok_or_else(|| ApiError::not_found(rt, name))?;
    let original = match sub {
        Sub::Scale => to_scale(&current),
        _ => to_served(rt, current.clone()),
    };
    let mut patched = patch::apply(kind, &original, body)?;
    // The patched object is decoded into the type: JSON and merge patches through the
    // JSON decoder, a strategic merge patch through the unstructured converter.
    let target = match sub {
        Sub::Scale => schema::of("autoscaling", "Scale"),
        _ => schema::of(rt.group, rt.kind),
    };
    if kind == PatchType::Strategic {
        if let Some(e) = schema::unstructured_error(target, &patched) {
            let sent: Value = serde_json::from_slice(body).unwrap_or_default();
            return Err(ApiError::invalid_patch(&schema::go_format(&sent), &e));
        }
    } else if let Some(e) = schema::json_decode_error(target, &patched) {
        return Err(ApiError::invalid_patch(&patched.to_string(), &e));
    }
    let patched_rv = patched
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !patched_rv.is_empty()
        && Some(patched_rv.as_str())
            != original
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
    {
        return Err(ApiError::conflict(rt, name));
    }
    // The update below must be guarded by the version the patch was applied to, so that
    // a concurrent write between read and write is retried rather than lost.
    patched["metadata"]["resourceVersion"] = original["metadata"]["resourceVersion"].clone();
    if sub == Sub::Main {
        check_unknown_fields(rt, &mut patched, opts, Written::Patch { kind, sent: body })?;
    }
    update_decoded(
        c,
        rt,
        ns,
        name,
        patched,
        sub,
        &WriteOpts {
            field_validation: None,
            ..opts.clone()
        },
    )
}

/// DELETE, with graceful pod termination and cascading per `propagationPolicy`.
pub fn delete(
    c: &Cluster,
    rt: &'static ResourceType,
    ns: &str,
    name: &str,
    opts: &DeleteOpts,
) -> ApiResult<Value> {
    let ns = if rt.namespaced { ns } else { "" };
    let current = c
        .store
        .get(rt.storage, ns, name)
        .ok_or_else(|| ApiError::not_found(rt, name))?;
    if let Some(uid) = &opts.precondition_uid
        && uid != uid_of(&current)
    {
        return Err(ApiError::precondition_failed(
            rt,
            name,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                uid_of(&current)
            ),
        ));
    }
    if opts.dry_run {
        return Ok(to_served(rt, current));
    }
    let srt = storage_rt(rt);
    if srt.kind == "Pod" {
        let grace = opts
            .grace_seconds
            .or_else(|| current["spec"]["terminationGracePeriodSeconds"].as_i64())
            .unwrap_or(30);
        if grace > 0 && !c.timing().pod_termination.is_zero() {
            // Graceful: the pod turns Terminating (not ready) and the kubelet removes it
            // once its containers have stopped.
            if current["metadata"]["deletionTimestamp"].is_null() {
                let mut next = current.clone();
                next["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
                next["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                let stored =
                    c.store
                        .update(srt.storage, next, opts.precondition_rv.or(rv_of(&current)))?;
                c.kick();
                return Ok(to_served(rt, stored));
            }
            return Ok(to_served(rt, current));
        }
    }
    let propagation = opts.propagation.as_deref().unwrap_or("Background");
    let uid = uid_of(&current).to_string();
    if propagation == "Orphan" {
        orphan_dependents(c, &uid);
    }
    // An object with finalizers is marked (deletionTimestamp) and kept until they are
    // removed; Foreground adds `foregroundDeletion`, which the garbage collector removes
    // once it has deleted every dependent (so `kubectl wait --for=delete` waits for them).
    let mut fins = finalizers(&current);
    if propagation == "Foreground" && !fins.iter().any(|f| f == FOREGROUND) {
        fins.push(FOREGROUND.to_string());
    }
    if !fins.is_empty() {
        if !current["metadata"]["deletionTimestamp"].is_null() && fins == finalizers(&current) {
            return Ok(to_served(rt, current));
        }
        let mut next = current.clone();
        if next["metadata"]["deletionTimestamp"].is_null() {
            next["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            next["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        }
        next["metadata"]["finalizers"] = json!(fins);
        let stored = c
            .store
            .update(srt.storage, next, opts.precondition_rv.or(rv_of(&current)))?;
        c.kick();
        return Ok(to_served(rt, stored));
    }
    let gone = c
        .store
        .delete(srt.storage, ns, name, opts.precondition_rv)?;
    if srt.kind == "Namespace" {
        for r in resources::RESOURCES
            .iter()
            .filter(|r| r.namespaced && r.storage == r.plural && !r.storage.is_empty())
        {
            for o in c.store.list(r.storage, Some(name)).0 {
                let _ = c.store.delete(r.storage, name, name_of(&o), None);
            }
        }
    }
    c.kick();
    Ok(to_served(rt, gone))
}

/// Everything whose ownerReferences name `owner_uid`: (storage, namespace, name).
pub fn dependents_of(c: &Cluster, owner_uid: &str) -> Vec<(&'static str, String, String)> {
    let mut out = Vec::new();
    for storage in ["replicasets", "pods", "endpointslices", "events"] {
        out.extend(c.store.scan(storage, None, |o| {
            let owned = o["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|refs| refs.iter().any(|r| r["uid"] == owner_uid));
            owned.then(|| {
                (
                    storage,
                    crate::store::ns_of(o).to_string(),
                    name_of(o).to_string(),
                )
            })
        }));
    }
    out
}

/// The finalizer of a foreground cascading delete.
pub const FOREGROUND: &str = "foregroundDeletion";

pub fn finalizers(o: &Value) -> Vec<String> {
    o["metadata"]["finalizers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The garbage collector's side of a foreground delete of `owner` (stored form): deletes
/// its dependents not yet going (ReplicaSets in the foreground too, as they have pods),
/// and once none is left, removes `foregroundDeletion`, which deletes the owner if it
/// was the last finalizer.
pub fn advance_foreground_delete(c: &Cluster, storage: &'static str, owner: &Value) {
    let dependents = dependents_of(c, uid_of(owner));
    if dependents.is_empty() {
        let mut next = owner.clone();
        let rest: Vec<String> = finalizers(owner)
            .into_iter()
            .filter(|f| f != FOREGROUND)
            .collect();
        if rest.is_empty() {
            let _ = c.store.delete(
                storage,
                crate::store::ns_of(owner),
                name_of(owner),
                rv_of(owner),
            );
        } else {
            next["metadata"]["finalizers"] = json!(rest);
            let _ = c.store.update(storage, next, rv_of(owner));
        }
        c.kick();
        return;
    }
    for (dep_storage, ns, name) in dependents {
        let going = c
            .store
            .get(dep_storage, &ns, &name)
            .is_none_or(|d| !d["metadata"]["deletionTimestamp"].is_null());
        if going {
            continue;
        }
        let opts = DeleteOpts {
            propagation: Some(
                if dep_storage == "replicasets" {
                    "Foreground"
                } else {
                    "Background"
                }
                .into(),
            ),
            ..Default::default()
        };
        let _ = delete(c, resources::by_storage(dep_storage), &ns, &name, &opts);
    }
}

fn orphan_dependents(c: &Cluster, owner_uid: &str) {
    for (storage, ns, name) in dependents_of(c, owner_uid) {
        if let Some(mut o) = c.store.get(storage, &ns, &name) {
            let rv = rv_of(&o);
            let before = o.clone();
            if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                refs.retain(|r| r["uid"] != owner_uid);
            }
            // The garbage collector runs in the controller manager.
            let rt = resources::by_storage(storage);
            record_write(
                rt,
                Some(&before),
                &mut o,
                "kube-controller-manager",
                Sub::Main,
            );
            let _ = c.store.update(storage, o, rv);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_cut_the_base_to_58_and_add_5_safe_characters() {
        let short = generate_name("web-");
        assert!(short.starts_with("web-") && short.len() == 9, "{short}");
        let base = "a".repeat(70);
        let long = generate_name(&base);
        assert_eq!(long.len(), 63);
        assert!(long.starts_with(&base[..58]));
        assert!(
            long[58..].chars().all(|c| NAME_CHARS.contains(&(c as u8))),
            "{long}"
        );
        // Never panics on a multi-byte base (validation rejects such names later).
        assert!(generate_name(&format!("{}é", "a".repeat(57))).len() <= 63);
    }
}
