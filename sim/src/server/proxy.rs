//! The proxy subresources, `services/proxy` and `pods/proxy`:
//! `/api/v1/namespaces/NS/services/ID/proxy[/PATH]` and `…/pods/ID/proxy[/PATH]`, any
//! method, where ID is `name`, `name:port` or `scheme:name:port` (scheme `http` or
//! `https`), as upstream's `SplitSchemeNamePort` reads it.
//!
//! Resolution follows upstream's `ResourceLocation`: a Service's numeric port is mapped
//! to its port name (a bare name means the unnamed port), then one ready address of the
//! Service's Endpoints serving that port is picked at random (its pod must exist with
//! that IP); a pod is dialled at the given port or its first declared containerPort.
//! The request then goes to the pod's server in the traffic plane
//! ([`Cluster::pod_server`]) and its answer (status, headers, body) is passed through.
//!
//! Errors as upstream: 404 for an unknown Service (`endpoints "x" not found` for a bare
//! name, `services "x" not found` with a numeric port, as upstream looks them up) or
//! pod; 400 `invalid service request` / `address not allowed` (no pod IP yet); 503
//! ServiceUnavailable `no service port 81 found for service "x"`, `no endpoints
//! available for service "x"` and, when nothing answers at the address (the traffic
//! plane is off, or the pod never became Ready, or its container crashed),
//! `error trying to reach service: dial tcp IP:PORT: connect: connection refused`.
//! Authorization is RBAC's and the faults' `get` (POST `create`, PUT `update`, ...) on
//! `services/proxy` / `pods/proxy`; a fault naming an object matches the Service or pod
//! name without scheme and port. Proxy errors carry no `Retry-After` header, as upstream
//! (clients that retry every 503, like kube-rs's default retry layer, still do).

use super::filters::{self, Attributes, Who};
use super::http::{ApiRequest, Body, full, json_response};
use crate::cluster::Cluster;
use crate::error::{ApiError, ApiResult};
use crate::resources;
use crate::store::uid_of;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::time::Duration;

/// How long the API server waits for a pod to answer.
const PROXY_TIMEOUT: Duration = Duration::from_secs(30);

/// A parsed proxy request path.
pub(super) struct ProxyPath {
    /// `services` or `pods`.
    plural: &'static str,
    namespace: String,
    /// The name segment as given: `shop`, `shop:80`, `http:shop:http`.
    id: String,
    /// The path after `proxy`, from its `/` (`/` when none).
    rest: String,
}

/// `/api/v1/namespaces/NS/(services|pods)/ID/proxy[/PATH]`, or None.
pub(super) fn parse(path: &str) -> Option<ProxyPath> {
    let rest = path.strip_prefix("/api/v1/namespaces/")?;
    let (ns, rest) = rest.split_once('/')?;
    let (plural, rest) = rest.split_once('/')?;
    let plural = match plural {
        "services" => "services",
        "pods" => "pods",
        _ => return None,
    };
    let (id, rest) = rest.split_once('/')?;
    let rest = match rest.strip_prefix("proxy")? {
        "" => "/",
        r if r.starts_with('/') => r,
        _ => return None,
    };
    let dec = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    Some(ProxyPath {
        plural,
        namespace: dec(ns),
        id: dec(id),
        rest: rest.to_string(),
    })
}

/// Upstream's `SplitSchemeNamePort`: (scheme, name, port), or None when invalid.
pub(super) fn split_scheme_name_port(id: &str) -> Option<(&str, &str, &str)> {
    let parts: Vec<&str> = id.split(':').collect();
    let (scheme, name, port) = match parts.as_slice() {
        [n] => ("", *n, ""),
        [n, p] => ("", *n, *p),
        [s, n, p] => (*s, *n, *p),
        _ => return None,
    };
    (!name.is_empty() && ["", "http", "https"].contains(&scheme)).then_some((scheme, name, port))
}

/// The verb of a proxy request (upstream's RequestInfo for subresources).
fn verb_of(method: &Method) -> Option<&'static str> {
    Some(match method.as_str() {
        "GET" | "HEAD" => "get",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        "OPTIONS" => "options",
        _ => return None,
    })
}

fn unavailable(message: String) -> ApiError {
    ApiError::new(503, "ServiceUnavailable", message)
}

/// Where a proxied request goes: a pod (by uid) at an IP and port.
struct Destination {
    uid: String,
    ip: String,
    port: u16,
    /// Whether the pod listens on that port at all (it declares it, or declares none).
    listens: bool,
}

/// Serves a proxy request: authorized, resolved, forwarded.
pub(super) async fn serve(
    c: &Cluster,
    who: &Who,
    req: &ApiRequest,
    p: &ProxyPath,
) -> Response<Body> {
    match serve_inner(c, who, req, p).await {
        Ok(r) => r,
        // Upstream's proxy errors carry no Retry-After (their Status has no
        // retryAfterSeconds), unlike the server's own 429/503s.
        Err(e) => json_response(e.code, &e.to_status()),
    }
}

async fn serve_inner(
    c: &Cluster,
    who: &Who,
    req: &ApiRequest,
    p: &ProxyPath,
) -> ApiResult<Response<Body>> {
    let rt = resources::find("", "v1", p.plural).expect("core resource");
    let verb = verb_of(&req.method).ok_or_else(ApiError::method_not_allowed)?;
    let resource = format!("{}/proxy", p.plural);
    filters::authorize(
        c,
        who,
        &Attributes {
            rt,
            verb,
            resource: &resource,
            sub: Some("proxy"),
            name: &p.id,
            namespace: Some(&p.namespace),
        },
    )?;
    let kind = if p.plural == "services" {
        "service"
    } else {
        "pod"
    };
    let (scheme, name, port) = split_scheme_name_port(&p.id)
        .ok_or_else(|| ApiError::bad_request(format!("invalid {kind} request {:?}", p.id)))?;
    let dest = if p.plural == "services" {
        locate_service(c, &p.namespace, name, port, &p.id)?
    } else {
        locate_pod(c, &p.namespace, name, port, scheme)?
    };
    forward(c, req, &dest, scheme, &p.rest).await
}

/// Upstream's Service `ResourceLocation`, over the Service's Endpoints.
fn locate_service(
    c: &Cluster,
    ns: &str,
    name: &str,
    port: &str,
    id: &str,
) -> ApiResult<Destination> {
    let mut port_name = port.to_string();
    if let Ok(n) = port.parse::<i64>() {
        let services = resources::find("", "v1", "services").expect("services");
        let svc = c
            .store
            .get("services", ns, name)
            .ok_or_else(|| ApiError::not_found(services, name))?;
        let found = svc["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|sp| sp["port"].as_i64() == Some(n))
            .ok_or_else(|| {
                unavailable(format!("no service port {n} found for service \"{name}\""))
            })?;
        port_name = found["name"].as_str().unwrap_or("").to_string();
    }
    let endpoints_rt = resources::find("", "v1", "endpoints").expect("endpoints");
    let eps = c
        .store
        .get("endpoints", ns, name)
        .ok_or_else(|| ApiError::not_found(endpoints_rt, name))?;
    let subsets = eps["subsets"].as_array().cloned().unwrap_or_default();
    if subsets.is_empty() {
        return Err(unavailable(format!(
            "no endpoints available for service \"{name}\""
        )));
    }
    let seed = rand::random_range(0..subsets.len());
    for i in 0..subsets.len() {
        let ss = &subsets[(seed + i) % subsets.len()];
        let addrs = ss["addresses"].as_array().cloned().unwrap_or_default();
        if addrs.is_empty() {
            continue;
        }
        for sp in ss["ports"].as_array().into_iter().flatten() {
            if sp["name"].as_str().unwrap_or("") != port_name {
                continue;
            }
            let Some(port) = sp["port"].as_u64().and_then(|p| u16::try_from(p).ok()) else {
                continue;
            };
            let aseed = rand::random_range(0..addrs.len());
            for j in 0..addrs.len() {
                let a = &addrs[(aseed + j) % addrs.len()];
                let ip = a["ip"].as_str().unwrap_or("");
                // Upstream's isValidAddress: the address's pod exists with that IP.
                let Some(pod) = a["targetRef"]["name"]
                    .as_str()
                    .and_then(|n| c.store.get("pods", ns, n))
                    .filter(|p| p["status"]["podIP"] == ip)
                else {
                    continue;
                };
                return Ok(Destination {
                    uid: uid_of(&pod).to_string(),
                    ip: ip.to_string(),
                    port,
                    // kube-proxy and the Endpoints controller already chose the port.
                    listens: true,
                });
            }
        }
    }
    Err(unavailable(format!(
        "no endpoints available for service \"{id}\""
    )))
}

/// Upstream's pod `ResourceLocation`: the given port, or the first declared one.
fn locate_pod(
    c: &Cluster,
    ns: &str,
    name: &str,
    port: &str,
    scheme: &str,
) -> ApiResult<Destination> {
    let pods = resources::find("", "v1", "pods").expect("pods");
    let pod = c
        .store
        .get("pods", ns, name)
        .ok_or_else(|| ApiError::not_found(pods, name))?;
    let declared: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|ctr| ctr["ports"].as_array().cloned().unwrap_or_default())
        .collect();
    let ip = pod["status"]["podIP"].as_str().unwrap_or("");
    if ip.is_empty() {
        return Err(ApiError::bad_request("address not allowed"));
    }
    let number = if port.is_empty() {
        declared
            .first()
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or(if scheme == "https" { 443 } else { 80 })
    } else if let Ok(n) = port.parse::<u64>() {
        n
    } else {
        // A port name: upstream dials it as a service name; the sim resolves it among
        // the pod's named container ports.
        declared
            .iter()
            .find(|p| p["name"] == port)
            .and_then(|p| p["containerPort"].as_u64())
            .ok_or_else(|| {
                unavailable(format!(
                    "error trying to reach service: dial tcp: lookup tcp/{port}: unknown port"
                ))
            })?
    };
    let port = u16::try_from(number).map_err(|_| {
        unavailable(format!(
            "error trying to reach service: dial tcp: address {number}: invalid port"
        ))
    })?;
    let listens = declared.is_empty()
        || declared
            .iter()
            .any(|p| p["containerPort"].as_u64() == Some(u64::from(port)));
    Ok(Destination {
        uid: uid_of(&pod).to_string(),
        ip: ip.to_string(),
        port,
        listens,
    })
}

fn unreachable(d: &Destination, why: impl std::fmt::Display) -> ApiError {
    unavailable(format!(
        "error trying to reach service: dial tcp {}:{}: {why}",
        d.ip, d.port
    ))
}

/// Sends the request to the pod's server and passes its answer through.
async fn forward(
    c: &Cluster,
    req: &ApiRequest,
    d: &Destination,
    scheme: &str,
    rest: &str,
) -> ApiResult<Response<Body>> {
    let refused = || unreachable(d, "connect: connection refused");
    let addr = c
        .pod_server(&d.uid)
        .filter(|_| d.listens)
        .ok_or_else(refused)?;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|_| refused())?;
    if scheme == "https" {
        // The sim's pods speak plain HTTP: a TLS client's handshake fails as Go's does.
        return Err(unavailable(
            "error trying to reach service: tls: first record does not look like a TLS handshake"
                .into(),
        ));
    }
    let _ = stream.set_nodelay(true);
    let lost =
        |e: &dyn std::fmt::Display| unavailable(format!("error trying to reach service: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| lost(&e))?;
    let conn_task = tokio::spawn(conn);
    let target = if req.query.is_empty() {
        rest.to_string()
    } else {
        format!("{rest}?{}", req.query)
    };
    let mut out = Request::builder()
        .method(req.method.clone())
        .uri(target)
        .header("Host", format!("{}:{}", d.ip, d.port));
    for (h, v) in [
        ("Content-Type", &req.content_type),
        ("Accept", &req.accept),
        ("User-Agent", &req.user_agent),
    ] {
        if !v.is_empty() {
            out = out.header(h, v.as_str());
        }
    }
    let out = out
        .body(Full::new(req.body.clone()))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let answered = tokio::time::timeout(PROXY_TIMEOUT, async {
        let resp = sender.send_request(out).await?;
        let (parts, body) = resp.into_parts();
        let bytes: Bytes = body.collect().await?.to_bytes();
        Ok::<_, hyper::Error>((parts, bytes))
    })
    .await;
    conn_task.abort();
    let (parts, bytes) = match answered {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return Err(lost(&e)),
        Err(_) => return Err(lost(&"net/http: timeout awaiting response headers")),
    };
    let mut resp = Response::builder().status(parts.status);
    for (h, v) in &parts.headers {
        // Hop-by-hop headers and the length stay with their connection.
        if !matches!(
            h.as_str(),
            "connection" | "keep-alive" | "transfer-encoding" | "content-length" | "upgrade"
        ) {
            resp = resp.header(h, v);
        }
    }
    resp.body(full(bytes))
        .map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_ids_as_upstream_reads_them() {
        let p = parse("/api/v1/namespaces/default/services/shop:80/proxy/healthz").unwrap();
        assert_eq!(
            (
                p.plural,
                p.namespace.as_str(),
                p.id.as_str(),
                p.rest.as_str()
            ),
            ("services", "default", "shop:80", "/healthz")
        );
        let p = parse("/api/v1/namespaces/ns/pods/web-1%3A8080/proxy").unwrap();
        assert_eq!(
            (p.plural, p.id.as_str(), p.rest.as_str()),
            ("pods", "web-1:8080", "/")
        );
        assert!(parse("/api/v1/namespaces/ns/pods/web-1/proxyx").is_none());
        assert!(parse("/api/v1/namespaces/ns/deployments/web/proxy/").is_none());
        assert!(parse("/api/v1/namespaces/ns/services/web").is_none());
        assert_eq!(split_scheme_name_port("shop"), Some(("", "shop", "")));
        assert_eq!(
            split_scheme_name_port("shop:http"),
            Some(("", "shop", "http"))
        );
        assert_eq!(
            split_scheme_name_port("https:shop:443"),
            Some(("https", "shop", "443"))
        );
        assert_eq!(split_scheme_name_port("ftp:shop:21"), None);
        assert_eq!(split_scheme_name_port(":80"), None);
        assert_eq!(split_scheme_name_port("a:b:c:d"), None);
    }
}
