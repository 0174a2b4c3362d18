//! The request filter chain, as upstream's handler chain wraps every request: the
//! request log (audit), bearer-token authentication (health endpoints open),
//! impersonation (`--as`, `--as-group`), injected latency, and — once routing has
//! resolved a request's verb and resource — RBAC authorization and injected faults.

use super::http::{ApiRequest, header};
use crate::cluster::{Cluster, FaultOutcome, LogEntry, USER};
use crate::error::{ApiError, ApiResult};
use crate::resources::ResourceType;
use hyper::body::Incoming;
use hyper::{HeaderMap, Request};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// The authenticated (or impersonated) user of a request.
pub(super) struct Who {
    pub user: String,
    pub groups: Vec<String>,
}

/// A request in the request log, from its arrival on.
pub(super) struct Audit {
    arrived: u64,
    user_agent: String,
}

impl Audit {
    /// Takes the arrival tick (first thing, so overlap between requests shows).
    pub(super) fn arrive(c: &Cluster, req: &Request<Incoming>) -> Audit {
        Audit {
            arrived: c.next_request_seq(),
            user_agent: header(req.headers(), "user-agent"),
        }
    }

    /// Records the served request with its status code and completion tick; returns the
    /// counter of its response bytes.
    pub(super) fn complete(self, c: &Cluster, req: &ApiRequest, code: u16) -> Arc<AtomicU64> {
        c.record(LogEntry {
            method: req.method.to_string(),
            path: req.path.clone(),
            query: req.query.clone(),
            content_type: req.content_type.clone(),
            body: String::from_utf8_lossy(&req.body).into_owned(),
            code,
            user_agent: self.user_agent,
            arrived: self.arrived,
            completed: c.next_request_seq(),
            bytes: 0,
        })
    }
}

/// Authentication: the sim's bearer token (health endpoints need none), then
/// impersonation — the sim's user may impersonate anyone.
pub(super) fn authenticate(token: &str, path: &str, headers: &HeaderMap) -> ApiResult<Who> {
    if header(headers, "authorization") != format!("Bearer {token}")
        && !matches!(path, "/healthz" | "/livez" | "/readyz")
    {
        return Err(ApiError::unauthorized());
    }
    let user = Some(header(headers, "impersonate-user"))
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| USER.to_string());
    let groups = headers
        .get_all("impersonate-group")
        .iter()
        .filter_map(|v| v.to_str().ok().map(String::from))
        .collect();
    Ok(Who { user, groups })
}

/// The configured per-request latency (`Timing::latency`), kept to within tens of µs:
/// tokio's timer fires on millisecond ticks and late (20 ms took 21.6–22 ms), so it sleeps
/// all but the last [`TIMER_SLACK`] and a blocking thread's sleep (exact to tens of µs)
/// ends it, holding a blocking thread only that long.
pub(super) async fn inject_latency(c: &Cluster) {
    let latency = c.timing().latency;
    if latency.is_zero() {
        return;
    }
    let deadline = std::time::Instant::now() + latency;
    if let Some(coarse) = latency.checked_sub(TIMER_SLACK) {
        tokio::time::sleep(coarse).await;
    }
    let rest = deadline.saturating_duration_since(std::time::Instant::now());
    if !rest.is_zero() {
        let _ = tokio::task::spawn_blocking(move || std::thread::sleep(rest)).await;
    }
}

/// How late tokio's timer may fire: the part of a latency left to a thread's sleep.
const TIMER_SLACK: std::time::Duration = std::time::Duration::from_millis(3);

/// What a resource request does, as routing resolved it.
pub(super) struct Attributes<'a> {
    pub rt: &'static ResourceType,
    pub verb: &'static str,
    /// `plural` or `plural/subresource`, as RBAC rules and faults name it.
    pub resource: &'a str,
    pub sub: Option<&'a str>,
    /// "" for collection requests.
    pub name: &'a str,
    /// None for cluster-wide requests.
    pub namespace: Option<&'a str>,
}

/// Authorization: RBAC (access reviews stay open, as upstream), then the injected
/// faults, which may fail the request or forbid it.
pub(super) fn authorize(c: &Cluster, who: &Who, a: &Attributes) -> ApiResult<()> {
    let forbidden = || ApiError::forbidden(a.rt, a.name, &who.user, a.verb, a.sub, a.namespace);
    if !a.rt.is_review() && !c.rbac_allows(a.verb, a.rt.group, a.resource, a.namespace.is_none()) {
        return Err(forbidden());
    }
    // Faults name objects: a proxy request's `scheme:name:port` matches by its name.
    let object = match a.name.split(':').collect::<Vec<_>>().as_slice() {
        [_, n, _] => *n,
        [n, ..] => *n,
        [] => "",
    };
    match c.check_faults(a.verb, a.resource, object) {
        FaultOutcome::Pass => Ok(()),
        FaultOutcome::Fail(code) => {
            let mut e = ApiError::for_code(code);
            if code == 409 && !a.name.is_empty() {
                e = ApiError::conflict(a.rt, a.name);
            }
            Err(e)
        }
        FaultOutcome::Forbidden => Err(forbidden()),
    }
}
