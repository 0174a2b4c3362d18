//! Routing: discovery documents and health endpoints, `/api` and `/apis` resource paths
//! to verbs, the filter chain's authorization step, query parameters (dry run, field
//! validation, Table negotiation, delete options), dispatch to `ops` (and to `listwatch`
//! for lists and watches, and to `proxy` for the proxy subresources), and the self-review APIs (SelfSubjectAccessReview,
//! SelfSubjectReview).

use super::filters::{self, Attributes, Who};
use super::http::{ApiRequest, Body, error_response, full, json_response};
use super::listwatch::{list, watch};
use crate::cluster::Cluster;
use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::ops::{self, DeleteOpts, Sub, WriteOpts};
use crate::resources::{self, ResourceType};
use crate::store::{name_of, ns_of};
use crate::table::{self, Include};
use bytes::Bytes;
use hyper::{Method, Response};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The query string's parameters, percent-decoded.
fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

/// A parsed resource path.
struct Target {
    rt: &'static ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_resource_path(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let owned = |s: &&str| s.to_string();
    let (namespace, rest) = match rest {
        ["namespaces", ns, r, tail @ ..] if resources::find(group, version, r).is_some() => {
            (Some(ns.to_string()), {
                let mut v = vec![*r];
                v.extend_from_slice(tail);
                v
            })
        }
        other => (None, other.to_vec()),
    };
    let rt = resources::find(group, version, rest.first()?)?;
    if rest.len() > 3 {
        return None;
    }
    Some(Target {
        rt,
        namespace,
        name: rest.get(1).map(owned),
        sub: rest.get(2).map(owned),
    })
}

/// Routes a request that passed authentication: discovery, health, or a resource.
pub(super) async fn route(
    c: &Cluster,
    address: &str,
    who: &Who,
    req: &ApiRequest,
) -> Response<Body> {
    if req.method == Method::GET
        && let Some(r) = serve_discovery(address, &req.path)
    {
        return r;
    }
    if let Some(p) = super::proxy::parse(&req.path) {
        return super::proxy::serve(c, who, req, &p).await;
    }
    let Some(target) = parse_resource_path(&req.path) else {
        return json_response(
            404,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "the server could not find the requested resource", "reason": "NotFound", "details": {}, "code": 404}),
        );
    };
    let q = parse_query(&req.query);
    match serve_resource(c, who, req, &target, &q).await {
        Ok(r) => r,
        Err(e) => error_response(&e),
    }
}

/// The discovery documents, OpenAPI and health endpoints (GET only).
fn serve_discovery(address: &str, path: &str) -> Option<Response<Body>> {
    let doc = match path.trim_end_matches('/') {
        "/version" => Some(discovery::version()),
        "/api" => Some(discovery::api_versions(address)),
        "/apis" => Some(discovery::api_group_list()),
        "/openapi/v3" => Some(discovery::openapi_root()),
        "/healthz" | "/livez" | "/readyz" => {
            return Some(
                Response::builder()
                    .status(200)
                    .header("Content-Type", "text/plain")
                    .body(full("ok"))
                    .expect("response"),
            );
        }
        p => {
            let segs: Vec<&str> = p.trim_matches('/').split('/').collect();
            match segs.as_slice() {
                ["api", v] => discovery::resource_list("", v),
                ["apis", g] => discovery::api_group(g),
                ["apis", g, v] => discovery::resource_list(g, v),
                ["openapi", "v3", rest @ ..] => discovery::openapi_group_version(&rest.join("/")),
                _ => None,
            }
        }
    };
    doc.map(|d| json_response(200, &d))
}

fn not_found() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

/// The verb of a resource request (upstream's RequestInfo), if the method allows one.
fn verb_of(method: &Method, named: bool, watching: bool) -> Option<&'static str> {
    Some(match (method.as_str(), named) {
        ("GET", true) => "get",
        ("GET", false) if watching => "watch",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    })
}

/// A resource request: resolved to a verb, authorized, then served.
async fn serve_resource(
    c: &Cluster,
    who: &Who,
    req: &ApiRequest,
    t: &Target,
    q: &HashMap<String, String>,
) -> ApiResult<Response<Body>> {
    let rt = t.rt;
    if !rt.namespaced && t.namespace.is_some() {
        return Err(not_found());
    }
    let sub = Sub::parse(t.sub.as_deref())
        .filter(|s| s.name().is_none_or(|n| rt.subresources.contains(&n)))
        .ok_or_else(not_found)?;
    let watching = q.get("watch").is_some_and(|w| w == "1" || w == "true");
    let verb = verb_of(&req.method, t.name.is_some(), watching)
        .filter(|v| rt.verbs.contains(v))
        .ok_or_else(ApiError::method_not_allowed)?;
    let resource = match &t.sub {
        Some(s) => format!("{}/{s}", rt.plural),
        None => rt.plural.to_string(),
    };
    let name = t.name.clone().unwrap_or_default();
    filters::authorize(
        c,
        who,
        &Attributes {
            rt,
            verb,
            resource: &resource,
            sub: t.sub.as_deref(),
            name: &name,
            namespace: t.namespace.as_deref(),
        },
    )?;
    dispatch(
        c,
        who,
        req,
        t,
        q,
        Verb {
            verb,
            sub,
            name: &name,
        },
    )
    .await
}

/// A resolved request's verb, subresource and object name ("" for collections).
struct Verb<'a> {
    verb: &'static str,
    sub: Sub,
    name: &'a str,
}

/// Serves an authorized request through `ops` (lists and watches through `listwatch`).
async fn dispatch(
    c: &Cluster,
    who: &Who,
    req: &ApiRequest,
    t: &Target,
    q: &HashMap<String, String>,
    v: Verb<'_>,
) -> ApiResult<Response<Body>> {
    let (rt, sub, name) = (t.rt, v.sub, v.name);
    let ns = t.namespace.clone().unwrap_or_default();
    let (content_type, body) = (req.content_type.as_str(), &req.body);
    let dry_run = q.get("dryRun").is_some_and(|d| d == "All");
    if q.get("dryRun").is_some_and(|d| !d.is_empty() && d != "All") {
        return Err(ApiError::bad_request(format!(
            "Invalid dry run value: {}",
            q["dryRun"]
        )));
    }
    let field_validation =
        ops::FieldValidation::parse(q.get("fieldValidation").map(String::as_str))
            .map_err(ApiError::bad_request)?;
    let manager = crate::managed::manager_or_user_agent(
        q.get("fieldManager").map(String::as_str),
        &req.user_agent,
    );
    let wopts = WriteOpts {
        dry_run,
        field_validation: Some(field_validation),
        warnings: Default::default(),
        manager,
    };
    let wants_table = req.accept.contains("as=Table");
    let include = Include::parse(q.get("includeObject").map(String::as_str));
    let parse_body = || request_body(content_type, body);
    if rt.group.is_empty() && rt.kind == "Endpoints" {
        // What a 1.33 API server says on every request for core/v1 Endpoints.
        wopts.warnings.lock().unwrap().push(
            "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice".into(),
        );
    }
    let response = match v.verb {
        "get" => {
            let obj = ops::get(c, rt, &ns, name, sub)?;
            if wants_table && sub == Sub::Main {
                let stored = ops::to_stored(rt, obj.clone());
                let rv = obj["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string();
                Ok(json_response(
                    200,
                    &table::table(rt, &[stored], &rv, None, include),
                ))
            } else {
                Ok(json_response(200, &obj))
            }
        }
        "list" => list(c, rt, t.namespace.as_deref(), q, wants_table, include)
            .map(|v| json_response(200, &v)),
        "watch" => watch(c, rt, t.namespace.clone(), q, wants_table, include),
        "create" if rt.is_review() => Ok(json_response(201, &review(c, who, rt, parse_body()?))),
        "create" => Ok(json_response(
            201,
            &ops::create(c, rt, &ns, parse_body()?, &wopts)?,
        )),
        "update" => Ok(json_response(
            200,
            &ops::update(c, rt, &ns, name, parse_body()?, sub, &wopts)?,
        )),
        "patch" => {
            if content_type.starts_with("application/apply-patch") {
                return Err(ApiError::unsupported_media_type(content_type));
            }
            Ok(json_response(
                200,
                &ops::patch(c, rt, &ns, name, content_type, body, sub, &wopts)?,
            ))
        }
        "delete" => {
            let mut opts = delete_opts(q, content_type, body)?;
            opts.dry_run |= dry_run;
            Ok(json_response(200, &ops::delete(c, rt, &ns, name, &opts)?))
        }
        "deletecollection" => {
            let mut opts = delete_opts(q, content_type, body)?;
            opts.dry_run |= dry_run;
            let items = list(c, rt, t.namespace.as_deref(), q, false, include)?;
            let mut deleted = Vec::new();
            for o in items["items"].as_array().cloned().unwrap_or_default() {
                deleted.push(ops::delete(c, rt, ns_of(&o), name_of(&o), &opts)?);
            }
            Ok(json_response(
                200,
                &json!({"kind": rt.list_kind(), "apiVersion": rt.api_version(), "metadata": {}, "items": deleted}),
            ))
        }
        _ => Err(ApiError::method_not_allowed()),
    };
    let mut response = response?;
    // Upstream's warnings (`Warning: 299 - "unknown field \"spec.foo\""`), which kubectl
    // prints as `Warning: unknown field "spec.foo"`.
    for w in wopts.warnings.lock().unwrap().iter() {
        let quoted = format!("299 - \"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""));
        if let Ok(v) = hyper::header::HeaderValue::from_str(&quoted) {
            response.headers_mut().append("Warning", v);
        }
    }
    Ok(response)
}

/// A request body in the JSON form the handlers take: JSON as sent, protobuf decoded.
fn request_body(content_type: &str, body: &[u8]) -> ApiResult<Value> {
    if content_type.starts_with("application/vnd.kubernetes.protobuf") {
        crate::proto::decode_object(body).map_err(|e| {
            ApiError::bad_request(format!("the body of the request could not be decoded: {e}"))
        })
    } else {
        serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("json: {e}")))
    }
}

fn delete_opts(
    q: &HashMap<String, String>,
    content_type: &str,
    body: &Bytes,
) -> ApiResult<DeleteOpts> {
    let b: Value = if body.is_empty() {
        json!({})
    } else {
        request_body(content_type, body)?
    };
    Ok(DeleteOpts {
        dry_run: b["dryRun"]
            .as_array()
            .is_some_and(|a| a.iter().any(|d| d == "All")),
        propagation: b["propagationPolicy"]
            .as_str()
            .map(String::from)
            .or_else(|| q.get("propagationPolicy").cloned()),
        grace_seconds: b["gracePeriodSeconds"]
            .as_i64()
            .or_else(|| q.get("gracePeriodSeconds").and_then(|g| g.parse().ok())),
        precondition_uid: b
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from),
        precondition_rv: b
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok()),
    })
}

/// SelfSubjectAccessReview (answered from the Forbidden faults) and SelfSubjectReview.
fn review(c: &Cluster, who: &Who, rt: &ResourceType, mut body: Value) -> Value {
    body["apiVersion"] = json!(rt.api_version());
    body["kind"] = json!(rt.kind);
    if body["metadata"].is_null() {
        body["metadata"] = json!({});
    }
    body["metadata"]["creationTimestamp"] = json!(crate::store::now_rfc3339());
    if rt.kind == "SelfSubjectReview" {
        let groups = if who.groups.is_empty() {
            vec![
                "system:masters".to_string(),
                "system:authenticated".to_string(),
            ]
        } else {
            let mut g = who.groups.clone();
            g.push("system:authenticated".into());
            g
        };
        body["status"] = json!({"userInfo": {"username": who.user, "groups": groups}});
        return body;
    }
    let attrs = &body["spec"]["resourceAttributes"];
    let verb = attrs["verb"].as_str().unwrap_or("");
    let mut resource = attrs["resource"].as_str().unwrap_or("").to_string();
    if let Some(sub) = attrs["subresource"].as_str().filter(|s| !s.is_empty()) {
        resource = format!("{resource}/{sub}");
    }
    let name = attrs["name"].as_str().unwrap_or("");
    let group = attrs["group"].as_str().unwrap_or("");
    let denied = c.would_forbid(verb, &resource, name)
        || !c.rbac_allows(
            verb,
            group,
            &resource,
            attrs["namespace"].as_str().is_none_or(str::is_empty),
        );
    body["status"] = if denied {
        json!({"allowed": false})
    } else {
        json!({"allowed": true, "reason": "bluegreen-sim allows everything"})
    };
    body
}
