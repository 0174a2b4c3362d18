//! The API server's request path: [`handle`] takes each HTTPS request (TLS is accepted in
//! `lib.rs`) through the filter chain (`filters`: request log, authentication,
//! impersonation, latency, RBAC and faults) to `routing` (discovery, resource paths,
//! verbs, dispatch to `ops`), which hands lists and watches to `listwatch` and the
//! `services/proxy` and `pods/proxy` subresources to `proxy` (through the traffic plane).

mod filters;
mod http;
mod listwatch;
mod proxy;
mod routing;

pub use http::Body;

use crate::cluster::Cluster;
use hyper::Request;
use hyper::Response;
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::Arc;

/// What every request handler shares: the cluster, the bearer token it accepts and the
/// address it serves on (for discovery's serverAddressByClientCIDRs).
pub struct ServerCtx {
    pub cluster: Arc<Cluster>,
    pub token: String,
    pub address: String,
}

/// Serves one request; every request is logged, whatever its outcome.
pub async fn handle(
    ctx: Arc<ServerCtx>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let c = &ctx.cluster;
    let audit = filters::Audit::arrive(c, &req);
    let who = filters::authenticate(&ctx.token, req.uri().path(), req.headers());
    let request = http::ApiRequest::read(req).await;
    filters::inject_latency(c).await;
    let response = match who {
        Ok(who) => routing::route(c, &ctx.address, &who, &request).await,
        Err(e) => http::error_response(&e),
    };
    let sent = audit.complete(c, &request, response.status().as_u16());
    // Count the body as it is sent (a watch's events long after this returns).
    let counter = ctx.cluster.clone();
    let watch = request
        .query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    Ok(response.map(|body| {
        use http_body_util::BodyExt;
        body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                counter.count_served(data.len(), watch, &sent);
            }
            frame
        })
        .boxed()
    }))
}
