//! HTTP plumbing the server modules share: a request as the handlers read it
//! ([`ApiRequest`]) and the response bodies they answer with (JSON, API errors, chunked
//! streams).

use crate::error::ApiError;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use serde_json::Value;
use std::convert::Infallible;
use tokio::sync::mpsc;

pub type Body = BoxBody<Bytes, Infallible>;

/// A header's value, "" when absent or not text.
pub(super) fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// The parts of a request that routing and the request log use, body read in full.
pub(super) struct ApiRequest {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub content_type: String,
    pub accept: String,
    pub user_agent: String,
    pub body: Bytes,
}

impl ApiRequest {
    pub(super) async fn read(req: Request<Incoming>) -> ApiRequest {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let content_type = header(req.headers(), "content-type");
        let accept = header(req.headers(), "accept");
        let user_agent = header(req.headers(), "user-agent");
        let body = match req.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(_) => Bytes::new(),
        };
        ApiRequest {
            method,
            path,
            query,
            content_type,
            accept,
            user_agent,
            body,
        }
    }
}

pub(super) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub(super) fn json_response(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("Content-Type", "application/json")
        .header("Cache-Control", "no-cache, private")
        .body(full(serde_json::to_vec(v).unwrap_or_default()))
        .expect("valid response")
}

pub(super) fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code, &e.to_status());
    // Upstream's priority-and-fairness and 503s tell clients when to come back.
    if e.code == 429 || e.code == 503 {
        r.headers_mut()
            .insert("Retry-After", hyper::header::HeaderValue::from_static("1"));
    }
    r
}

/// A chunked 200 response: the `first` lines, then whatever arrives on `rx`.
pub(super) fn stream_response(
    first: Vec<Bytes>,
    rx: Option<mpsc::Receiver<Bytes>>,
) -> Response<Body> {
    use futures::StreamExt;
    let head = futures::stream::iter(first);
    let body: Body = match rx {
        Some(rx) => {
            let tail = tokio_stream::wrappers::ReceiverStream::new(rx);
            BodyExt::boxed(StreamBody::new(
                head.chain(tail)
                    .map(|b| Ok::<_, Infallible>(Frame::data(b))),
            ))
        }
        None => BodyExt::boxed(StreamBody::new(
            head.map(|b| Ok::<_, Infallible>(Frame::data(b))),
        )),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header("Content-Type", "application/json")
        .header("Transfer-Encoding", "chunked")
        .body(body)
        .expect("response")
}
