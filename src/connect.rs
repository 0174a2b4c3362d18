//! Connecting like kubectl, in one function: `--kubeconfig` (that file only) or
//! `KUBECONFIG` (several files, merged by kubectl's rules) or `~/.kube/config`, else the
//! in-cluster service account; then `--context`/`--cluster`/`--user`, impersonation,
//! TLS and timeout flags. Credentials (token, client certificate, exec plugins) are
//! kube-rs's, which follows client-go.

use crate::cli::GlobalOpts;
use crate::error::{Error, Reason, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};
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
    let (mut config, context, user) = match load_kubeconfig(opts)? {
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
            let kco = KubeConfigOptions {
                context: Some(context.clone()),
                cluster: opts.cluster.clone(),
                user: opts.user.clone(),
            };
            let config = kube::Config::from_custom_kubeconfig(kc, &kco)
                .await
                .map_err(|e| Error::Kubeconfig(e.to_string()))?;
            (config, context, user)
        }
        None => {
            let config = kube::Config::incluster().map_err(|_| {
                Error::NotFound(Reason::KubeconfigNotFound, "no kubeconfig found (set KUBECONFIG, pass --kubeconfig, or create ~/.kube/config) and not running in a cluster".into())
            })?;
            (
                config,
                "in-cluster".to_string(),
                "serviceaccount".to_string(),
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
    let (client, probe) =
        clients(&config).map_err(|e| Error::kube("create a Kubernetes client", e))?;
    Ok(Connection {
        server,
        probe,
        client,
        namespace,
        context,
        kubeconfig_user: user,
        request_timeout,
    })
}

/// The client, and the probe client (the same without retries), from one TLS setup.
fn clients(config: &kube::Config) -> kube::Result<(kube::Client, kube::Client)> {
    if config.proxy_url.is_some() {
        // kube's own stack answers proxies (with the error of a build without proxy support).
        let mut probe = config.clone();
        probe.default_retry = false;
        return Ok((
            kube::Client::try_from(config.clone())?,
            kube::Client::try_from(probe)?,
        ));
    }
    let tls = kube::client::ConfigExt::rustls_client_config(config)?;
    Ok((
        client_for(config, tls.clone(), config.default_retry)?,
        client_for(config, tls, false)?,
    ))
}

/// kube's default client stack (base URL, retries of 5xx/429, credentials, impersonation
/// headers, timeouts, request tracing) over a connection that offers HTTP/2, as client-go
/// does: the concurrent requests of a read round then share one TLS connection, where
/// HTTP/1.1 opens one per request in flight (each a TCP and a TLS handshake, two round
/// trips before the request's own). Servers without HTTP/2 get HTTP/1.1 by ALPN.
fn client_for(
    config: &kube::Config,
    tls: rustls::ClientConfig,
    retry: bool,
) -> kube::Result<kube::Client> {
    use hyper_util::client::legacy::connect::HttpConnector;
    use kube::client::ConfigExt;
    use tower::ServiceBuilder;

    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    // As Go's net package (kubectl) does: HTTP/2 writes small frames that Nagle would hold.
    tcp.set_nodelay(true);
    let mut tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = rustls_pki_types::ServerName::try_from(name.clone()).map_err(|e| {
            kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e))
        })?;
        tls = tls.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let mut connector =
        hyper_timeout::TimeoutConnector::new(tls.enable_all_versions().wrap_connector(tcp));
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
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
