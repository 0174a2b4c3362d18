//! Connecting like kubectl, in one function: `--kubeconfig` (that file only) or
//! `KUBECONFIG` (several files, merged by kubectl's rules) or `~/.kube/config`, else the
//! in-cluster service account; then `--context`/`--cluster`/`--user`, impersonation,
//! TLS and timeout flags. Credentials (token, client certificate, exec plugins) are
//! kube-rs's, which follows client-go.

use crate::cli::GlobalOpts;
use crate::error::{Error, Reason, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A ready client and what the commands need to know about where it points.
pub struct Connection {
    pub client: kube::Client,
    /// The namespace commands act in (flag, else context, else `default`).
    pub namespace: String,
    /// The context's name, shown in status headers (`in-cluster` without a kubeconfig).
    pub context: String,
    /// The authenticated user as the kubeconfig names it (history's fallback for "by").
    pub kubeconfig_user: String,
    pub request_timeout: Option<Duration>,
    /// The API server's URL, as messages about it name it.
    pub server: String,
    /// The proxy the connection goes through, if any (without its credentials).
    pub proxy: Option<String>,
    /// The same connection without client-side retries: for checks through the API
    /// server's proxy, where a 503 is an answer to report, not a hiccup to retry.
    pub probe: kube::Client,
}

fn load_kubeconfig(opts: &GlobalOpts) -> Result<Option<Kubeconfig>> {
    if let Some(path) = &opts.kubeconfig {
        if !path.exists() {
            return Err(Error::NotFound(
                Reason::KubeconfigNotFound,
                format!("kubeconfig file {} does not exist", path.display()),
            ));
        }
        return Kubeconfig::read_from(path)
            .map(Some)
            .map_err(|e| Error::Kubeconfig(format!("{}: {e}", path.display())));
    }
    let from_env = std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty());
    let default_exists = std::env::var_os("HOME")
        .is_some_and(|h| std::path::Path::new(&h).join(".kube/config").exists());
    if !from_env && !default_exists {
        return Ok(None);
    }
    Kubeconfig::read()
        .map(Some)
        .map_err(|e| Error::Kubeconfig(e.to_string()))
}

/// Builds the client. Nothing is sent to the server here.
pub async fn connect(opts: &GlobalOpts) -> Result<Connection> {
    let (mut config, context, user, kubeconfig_proxy) = match load_kubeconfig(opts)? {
        Some(kc) => {
            let context = match opts.context.clone().or_else(|| kc.current_context.clone()) {
                Some(c) if !c.is_empty() => c,
                _ => {
                    return Err(Error::NotFound(
                        Reason::KubeconfigNotFound,
                        "no context is set in the kubeconfig: pass --context or run `kubectl config use-context NAME`".into(),
                    ));
                }
            };
            let Some(named) = kc.contexts.iter().find(|c| c.name == context) else {
                return Err(Error::NotFound(
                    Reason::NotFound,
                    format!("context \"{context}\" not found in the kubeconfig"),
                ));
            };
            let ctx_user = named
                .context
                .as_ref()
                .and_then(|c| c.user.clone())
                .unwrap_or_default();
            let user = opts.user.clone().unwrap_or(ctx_user);
            if let Some(cluster) = &opts.cluster
                && !kc.clusters.iter().any(|c| &c.name == cluster)
            {
                return Err(Error::NotFound(
                    Reason::NotFound,
                    format!("cluster \"{cluster}\" not found in the kubeconfig"),
                ));
            }
            if let Some(u) = &opts.user
                && !kc.auth_infos.iter().any(|a| &a.name == u)
            {
                return Err(Error::NotFound(
                    Reason::NotFound,
                    format!("user \"{u}\" not found in the kubeconfig"),
                ));
            }
            // The cluster's own proxy-url, told apart from kube's reading of HTTPS_PROXY
            // (which it matches against NO_PROXY wrongly): `proxy_for` decides.
            let cluster = opts
                .cluster
                .clone()
                .or_else(|| named.context.as_ref().map(|c| c.cluster.clone()));
            let kubeconfig_proxy = kc
                .clusters
                .iter()
                .find(|c| Some(&c.name) == cluster.as_ref())
                .and_then(|c| c.cluster.as_ref())
                .and_then(|c| c.proxy_url.clone())
                .filter(|p| !p.is_empty());
            let kco = KubeConfigOptions {
                context: Some(context.clone()),
                cluster: opts.cluster.clone(),
                user: opts.user.clone(),
            };
            let config = kube::Config::from_custom_kubeconfig(kc, &kco)
                .await
                .map_err(|e| Error::Kubeconfig(e.to_string()))?;
            (config, context, user, kubeconfig_proxy)
        }
        None => {
            let config = kube::Config::incluster().map_err(|_| {
                Error::NotFound(Reason::KubeconfigNotFound, "no kubeconfig found (set KUBECONFIG, pass --kubeconfig, or create ~/.kube/config) and not running in a cluster".into())
            })?;
            (
                config,
                "in-cluster".to_string(),
                "serviceaccount".to_string(),
                None,
            )
        }
    };
    if let Some(u) = &opts.as_user {
        config.auth_info.impersonate = Some(u.clone());
    }
    if !opts.as_groups.is_empty() {
        config.auth_info.impersonate_groups = Some(opts.as_groups.clone());
    }
    if opts.insecure_skip_tls_verify {
        config.accept_invalid_certs = true;
        config.root_cert = None;
    }
    let request_timeout = opts.request_timeout.filter(|d| !d.is_zero());
    if let Some(t) = request_timeout {
        config.connect_timeout = Some(t);
    }
    let namespace = opts
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let server = config
        .cluster_url
        .to_string()
        .trim_end_matches('/')
        .to_string();
    let (client, probe, proxy) = clients(&config, kubeconfig_proxy.as_deref())?;
    Ok(Connection {
        server,
        proxy,
        probe,
        client,
        namespace,
        context,
        kubeconfig_user: user,
        request_timeout,
    })
}

/// The client, and the probe client (the same without retries), from one TLS setup,
/// through the proxy kubectl would use (`kubeconfig_proxy`: the cluster's `proxy-url`).
fn clients(
    config: &kube::Config,
    kubeconfig_proxy: Option<&str>,
) -> Result<(kube::Client, kube::Client, Option<String>)> {
    let proxy = proxy_for(&config.cluster_url, kubeconfig_proxy)?;
    let tls = kube::client::ConfigExt::rustls_client_config(config)
        .map_err(|e| Error::kube("create a Kubernetes client", e))?;
    let build = |tls, retry| {
        client_for(config, tls, proxy.as_ref(), retry)
            .map_err(|e| Error::kube("create a Kubernetes client", e))
    };
    let shown = proxy.as_ref().map(|p| shown(&p.uri));
    Ok((
        build(tls.clone(), config.default_retry)?,
        build(tls, false)?,
        shown,
    ))
}

/// The proxy to reach the API server through, chosen as kubectl (client-go) chooses:
/// the cluster's `proxy-url` if the kubeconfig sets one; else `HTTPS_PROXY` (or
/// `HTTP_PROXY` for an `http://` server) unless `NO_PROXY` lists the server's host, and
/// never for `localhost` or a loopback address (Go's rule).
fn proxy_for(server: &http::Uri, kubeconfig_proxy: Option<&str>) -> Result<Option<Intercept>> {
    use hyper_util::client::proxy::matcher::Matcher;
    let intercept = match kubeconfig_proxy {
        Some(url) => {
            let scheme = url.split_once("://").map(|(s, _)| s);
            if !matches!(scheme, Some("http" | "https" | "socks5" | "socks5h")) {
                return Err(Error::Kubeconfig(format!(
                    "proxy-url {url:?} has no supported scheme (http://, socks5:// or socks5h://)"
                )));
            }
            Matcher::builder().all(url).build().intercept(server)
        }
        None if is_loopback(server) => None,
        None => {
            let env = |names: [&str; 2]| {
                names
                    .iter()
                    .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
                    .unwrap_or_default()
            };
            Matcher::builder()
                .https(env(["HTTPS_PROXY", "https_proxy"]))
                .http(env(["HTTP_PROXY", "http_proxy"]))
                .no(env(["NO_PROXY", "no_proxy"]))
                .build()
                .intercept(server)
        }
    };
    if let Some(i) = intercept
        .as_ref()
        .filter(|i| i.uri().scheme_str() == Some("https"))
    {
        return Err(Error::Other(format!(
            "the proxy {} is an https:// proxy, which kubectl-bluegreen cannot use yet: use an http:// or socks5:// proxy",
            shown(i.uri())
        )));
    }
    Ok(intercept.map(|i| Intercept {
        uri: i.uri().clone(),
        basic_auth: i.basic_auth().cloned(),
        login: i.raw_auth().map(|(u, p)| (u.to_string(), p.to_string())),
    }))
}

/// A proxy's URL as messages show it (its credentials were already taken out).
fn shown(uri: &http::Uri) -> String {
    uri.to_string().trim_end_matches('/').to_string()
}

/// Whether the server is `localhost` or a loopback address.
fn is_loopback(server: &http::Uri) -> bool {
    let host = server.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A proxy in use: where it is and its credentials (HTTP proxies take a basic
/// `Proxy-Authorization`, SOCKS5 ones a user and password).
struct Intercept {
    uri: http::Uri,
    basic_auth: Option<http::HeaderValue>,
    login: Option<(String, String)>,
}

/// The client over a direct TCP connection, an HTTP proxy's `CONNECT` tunnel or a SOCKS5
/// proxy; TLS to the API server runs inside either, end to end.
fn client_for(
    config: &kube::Config,
    tls: rustls::ClientConfig,
    proxy: Option<&Intercept>,
    retry: bool,
) -> kube::Result<kube::Client> {
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::client::legacy::connect::proxy::{SocksV5, Tunnel};

    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    // As Go's net package (kubectl) does: HTTP/2 writes small frames that Nagle would hold.
    tcp.set_nodelay(true);
    let Some(proxy) = proxy else {
        return client_over(config, tcp, tls, retry);
    };
    match proxy.uri.scheme_str() {
        Some("http") => {
            let mut tunnel = Tunnel::new(proxy.uri.clone(), tcp);
            if let Some(auth) = &proxy.basic_auth {
                tunnel = tunnel.with_auth(auth.clone());
            }
            client_over(config, tunnel, tls, retry)
        }
        Some(scheme @ ("socks5" | "socks5h")) => {
            // socks5h: the proxy resolves the server's name; socks5: this machine does.
            let mut socks = SocksV5::new(proxy.uri.clone(), tcp).local_dns(scheme == "socks5");
            if let Some((user, password)) = &proxy.login {
                socks = socks.with_auth(user.clone(), password.clone());
            }
            client_over(config, socks, tls, retry)
        }
        _ => Err(kube::Error::ProxyProtocolUnsupported {
            proxy_url: Box::new(proxy.uri.clone()),
        }),
    }
}

/// kube's default client stack (base URL, retries of 5xx/429, credentials, impersonation
/// headers, timeouts, request tracing) over a connection that offers HTTP/2, as client-go
/// does: the concurrent requests of a read round then share one TLS connection, where
/// HTTP/1.1 opens one per request in flight (each a TCP and a TLS handshake, two round
/// trips before the request's own). Servers without HTTP/2 get HTTP/1.1 by ALPN.
fn client_over<C>(
    config: &kube::Config,
    transport: C,
    tls: rustls::ClientConfig,
    retry: bool,
) -> kube::Result<kube::Client>
where
    C: tower::Service<http::Uri> + Clone + Send + Sync + 'static,
    C::Response: hyper::rt::Read
        + hyper::rt::Write
        + hyper_util::client::legacy::connect::Connection
        + Send
        + Unpin
        + 'static,
    C::Future: Send + 'static,
    C::Error: Into<tower::BoxError>,
{
    use kube::client::ConfigExt;
    use tower::ServiceBuilder;

    let mut tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = rustls_pki_types::ServerName::try_from(name.clone()).map_err(|e| {
            kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e))
        })?;
        tls = tls.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let mut timed =
        hyper_timeout::TimeoutConnector::new(tls.enable_all_versions().wrap_connector(transport));
    timed.set_connect_timeout(config.connect_timeout);
    timed.set_read_timeout(config.read_timeout);
    timed.set_write_timeout(config.write_timeout);
    timed.set_reset_reader_on_write(config.reset_reader_on_write);
    let connector = FirstConnect::new(timed);
    // One HTTP/2 connection carries every request, so a dead one must be noticed: pinged
    // after 30 s without a frame and dropped 15 s later without an answer, as client-go's
    // ReadIdleTimeout and PingTimeout do (a long `wait` or `--bake` outlives NAT timeouts).
    let http: hyper_util::client::legacy::Client<_, kube::client::Body> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .timer(hyper_util::rt::TokioTimer::new())
            .http2_keep_alive_interval(Duration::from_secs(30))
            .http2_keep_alive_timeout(Duration::from_secs(15))
            .build(connector);
    let retry = retry
        .then(|| tower::retry::RetryLayer::new(kube::client::retry::RetryPolicy::server_retry()));
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(retry)
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .layer(
            tower_http::trace::TraceLayer::new_for_http().make_span_with(
                |req: &http::Request<kube::client::Body>| {
                    tracing::debug_span!("HTTP", http.method = %req.method(), http.url = %req.uri())
                },
            ),
        )
        .map_err(tower::BoxError::from)
        .service(http);
    Ok(kube::Client::new(service, config.default_namespace.clone()))
}

/// How long a request that waits for another's connection holds its own connect once
/// that connection turned out HTTP/2: the pool hands it the shared connection within a
/// moment, and this connect is then dropped in the background. Only if the HTTP/2
/// handshake after ALPN fails does a request see this hold end, in an error.
const JOIN_HOLD: Duration = Duration::from_secs(10);

/// One connection for the requests a command sends at once. hyper's pool learns that a
/// connection speaks HTTP/2 only from ALPN, after its TLS handshake, so each request
/// sent before that opens a connection of its own, and all but one are closed once
/// ALPN says h2 (a read round of 8 requests made 8 TCP and TLS handshakes, on both
/// sides). Here, while one connect is under way the others wait for it; then, over
/// HTTP/2, they hold, and the pool gives their requests the shared connection; over
/// HTTP/1.1, or when it failed, they connect on their own.
#[derive(Clone)]
struct FirstConnect<C> {
    inner: C,
    /// The connect under way, if any: its outcome, once known (`Some(true)`: HTTP/2).
    under_way: Arc<Mutex<Option<tokio::sync::watch::Receiver<Option<bool>>>>>,
}

/// The leading connect's hold on `FirstConnect::under_way`, let go when it ends.
struct Leading {
    slot: Arc<Mutex<Option<tokio::sync::watch::Receiver<Option<bool>>>>>,
    mine: tokio::sync::watch::Receiver<Option<bool>>,
}

impl Drop for Leading {
    fn drop(&mut self) {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|rx| rx.same_channel(&self.mine)) {
            *slot = None;
        }
    }
}

impl<C> FirstConnect<C> {
    fn new(inner: C) -> Self {
        FirstConnect {
            inner,
            under_way: Arc::default(),
        }
    }
}

impl<C> tower::Service<http::Uri> for FirstConnect<C>
where
    C: tower::Service<http::Uri> + Clone + Send + 'static,
    C::Response: hyper_util::client::legacy::connect::Connection + Send,
    C::Future: Send + 'static,
    C::Error: Into<tower::BoxError>,
{
    type Response = C::Response;
    type Error = tower::BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = std::result::Result<C::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::result::Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: http::Uri) -> Self::Future {
        use hyper_util::client::legacy::connect::Connection as _;
        // The service that was polled ready does the connect; a fresh clone stays here.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let mut under_way = self.under_way.lock().unwrap_or_else(|e| e.into_inner());
        let leader = match under_way.as_ref() {
            Some(outcome) => Err(outcome.clone()),
            None => {
                let (tx, rx) = tokio::sync::watch::channel(None);
                *under_way = Some(rx);
                Ok(tx)
            }
        };
        drop(under_way);
        let slot = self.under_way.clone();
        Box::pin(async move {
            match leader {
                Ok(tx) => {
                    // Done or dropped mid-connect (its request given up), the next
                    // connect leads again; a dropped one's waiters read the unsent
                    // outcome as a failure and connect on their own.
                    let _leading = Leading {
                        slot,
                        mine: tx.subscribe(),
                    };
                    let connected = inner.call(uri).await.map_err(Into::into);
                    let h2 = connected
                        .as_ref()
                        .is_ok_and(|io| io.connected().is_negotiated_h2());
                    let _ = tx.send(Some(h2));
                    connected
                }
                Err(mut outcome) => {
                    let h2 = match outcome.wait_for(Option::is_some).await {
                        Ok(h2) => *h2 == Some(true),
                        Err(_) => false,
                    };
                    if h2 {
                        tokio::time::sleep(JOIN_HOLD).await;
                        return Err("this request shares the command's HTTP/2 connection".into());
                    }
                    std::future::poll_fn(|cx| inner.poll_ready(cx))
                        .await
                        .map_err(Into::into)?;
                    inner.call(uri).await.map_err(Into::into)
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper_util::client::legacy::connect::{Connected, Connection};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tower::Service;

    /// A connection that says whether ALPN chose h2.
    struct Io(bool);

    impl Connection for Io {
        fn connected(&self) -> Connected {
            let c = Connected::new();
            if self.0 { c.negotiated_h2() } else { c }
        }
    }

    /// A connector that counts its connects; the first one hangs when `hang_first`.
    #[derive(Clone)]
    struct Fake {
        calls: Arc<AtomicUsize>,
        h2: bool,
        hang_first: bool,
        go: Arc<tokio::sync::Notify>,
    }

    impl Service<http::Uri> for Fake {
        type Response = Io;
        type Error = std::io::Error;
        type Future =
            std::pin::Pin<Box<dyn std::future::Future<Output = std::io::Result<Io>> + Send>>;
        fn poll_ready(
            &mut self,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Uri) -> Self::Future {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let (h2, go) = (self.h2, self.go.clone());
            let hang = self.hang_first && n == 0;
            Box::pin(async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                go.notified().await;
                Ok(Io(h2))
            })
        }
    }

    fn fake(h2: bool, hang_first: bool) -> Fake {
        Fake {
            calls: Arc::default(),
            h2,
            hang_first,
            go: Arc::default(),
        }
    }

    fn uri() -> http::Uri {
        "https://api.example:6443".parse().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn connects_sent_together_wait_for_the_first_and_join_it_over_http2() {
        let inner = fake(true, false);
        let mut gate = FirstConnect::new(inner.clone());
        let first = tokio::spawn(gate.call(uri()));
        let second = tokio::spawn(gate.call(uri()));
        tokio::task::yield_now().await;
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1, "the second waits");
        inner.go.notify_waiters();
        assert!(first.await.unwrap().is_ok());
        // Over HTTP/2 the second never connects: the pool hands it the first's connection
        // meanwhile, and its own connect ends (in the background) after the hold.
        let joined = second.await.unwrap();
        assert!(joined.is_err());
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn over_http1_the_waiting_connects_go_on_their_own() {
        let inner = fake(false, false);
        let mut gate = FirstConnect::new(inner.clone());
        let first = tokio::spawn(gate.call(uri()));
        let second = tokio::spawn(gate.call(uri()));
        tokio::task::yield_now().await;
        assert_eq!(inner.calls.load(Ordering::SeqCst), 1);
        inner.go.notify_waiters();
        assert!(first.await.unwrap().is_ok());
        while inner.calls.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        inner.go.notify_waiters();
        assert!(second.await.unwrap().is_ok(), "its own HTTP/1.1 connection");
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_connect_given_up_lets_the_next_lead() {
        let inner = fake(true, true);
        let mut gate = FirstConnect::new(inner.clone());
        let first = tokio::spawn(gate.call(uri()));
        let waiting = tokio::spawn(gate.call(uri()));
        tokio::task::yield_now().await;
        first.abort();
        let _ = first.await;
        // Its waiter connects on its own, and a later connect leads instead of waiting.
        while inner.calls.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        let later = tokio::spawn(gate.call(uri()));
        while inner.calls.load(Ordering::SeqCst) < 3 {
            tokio::task::yield_now().await;
        }
        // `later` leads: a connect sent meanwhile waits for it.
        let after = tokio::spawn(gate.call(uri()));
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            inner.calls.load(Ordering::SeqCst),
            3,
            "waits for the new leader"
        );
        inner.go.notify_waiters();
        assert!(waiting.await.unwrap().is_ok());
        assert!(later.await.unwrap().is_ok());
        assert!(after.await.unwrap().is_err(), "joins its HTTP/2 connection");
        assert_eq!(inner.calls.load(Ordering::SeqCst), 3);
    }
}
