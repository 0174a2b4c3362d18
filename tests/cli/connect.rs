//! Connecting like kubectl, and bad input: one line on stderr, the documented exit code.

use crate::{CONTRACT, Out, World};
use bluegreen_sim::{Fault, FaultAction};

#[track_caller]
fn one_line_error(out: &Out, code: i32, contains: &str) {
    assert_eq!(out.code, code, "{out:?}");
    assert_eq!(out.stdout, "", "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "exactly one line: {out:?}");
    assert!(
        out.stderr.starts_with("error: ") && out.stderr.contains(contains),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_one_line_and_its_exit_code() {
    let world = World::new(&[CONTRACT]).await;
    one_line_error(
        &world.plugin(&["status", "nope"]).await,
        3,
        "app \"nope\" not found in namespace default",
    );
    one_line_error(
        &world.plugin(&["status", "shop", "--context", "prod"]).await,
        3,
        "context \"prod\" not found in the kubeconfig",
    );
    one_line_error(
        &world
            .plugin(&["status", "shop", "--kubeconfig", "/nonexistent/kc"])
            .await,
        3,
        "kubeconfig file /nonexistent/kc does not exist",
    );
    one_line_error(
        &world.plugin(&["status", "shop", "-n", "ghost"]).await,
        3,
        "namespace \"ghost\" not found",
    );
    one_line_error(
        &world.plugin(&["status", "-l", "a b"]).await,
        2,
        "invalid label selector",
    );

    // Usage errors come from clap: exit 2, and no partial output on stdout.
    let out = world.plugin(&["status", "shop", "-o", "xml"]).await;
    assert_eq!(out.code, 2, "{out:?}");
    assert!(out.stderr.contains("invalid value 'xml'"), "{out:?}");
    let out = world.plugin(&["status"]).await;
    assert_eq!(out.code, 2, "{out:?}");

    // RBAC denial: the server's message, a hint, exit 4.
    world
        .sim
        .cluster()
        .add_fault(Fault::new("list", "deployments", FaultAction::Forbidden));
    one_line_error(
        &world.plugin(&["status", "shop"]).await,
        4,
        "deployments.apps is forbidden: User \"sim-admin\" cannot list resource \"deployments\"",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubeconfig_files_merge_like_kubectl_and_flags_pick_context_and_namespace() {
    let world = World::new(&[CONTRACT]).await;
    world
        .sim
        .apply_yaml(
            "default",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}",
        )
        .unwrap();
    let kc = world.sim.kubeconfig_yaml();
    // File 1: clusters and users. File 2: contexts, one pointing at namespace `other`.
    let (head, contexts) = kc.split_once("contexts:").unwrap();
    let f1 = world.file("clusters.yaml", &format!("{head}contexts: []\n"));
    let ctx = contexts.split("current-context").next().unwrap();
    let f2 = world.file(
        "contexts.yaml",
        &format!("apiVersion: v1\nkind: Config\ncontexts:{ctx}- name: elsewhere\n  context:\n    cluster: sim\n    user: sim\n    namespace: other\ncurrent-context: sim\n"),
    );
    let merged = format!("{}:{}", f1.display(), f2.display());
    let bin = &crate::plugin_bin();
    let out = world
        .run(bin, &["status", "shop"], &[("KUBECONFIG", &merged)])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    let out = world
        .run(
            bin,
            &["status", "shop", "--context", "elsewhere"],
            &[("KUBECONFIG", &merged)],
        )
        .await;
    assert_eq!(out.code, 3, "the context's namespace is used: {out:?}");
    assert!(out.stderr.contains("in namespace other"), "{out:?}");
    let out = world
        .run(
            bin,
            &["status", "shop", "--context", "elsewhere", "-n", "default"],
            &[("KUBECONFIG", &merged)],
        )
        .await;
    assert_eq!(out.code, 0, "-n wins over the context: {out:?}");
    assert!(
        out.stdout
            .starts_with("Context: elsewhere   Namespace: default"),
        "{out:?}"
    );
    // --kubeconfig means that file only: the contexts file alone names no cluster.
    let out = world
        .run(
            bin,
            &["status", "shop", "--kubeconfig", &f2.display().to_string()],
            &[],
        )
        .await;
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_credential_plugins_supply_the_token() {
    let world = World::new(&[CONTRACT]).await;
    let script = world.file(
        "get-token.sh",
        &format!(
            "#!/bin/sh\necho 'asking for a token' >&2\ncat <<EOF\n{{\"apiVersion\": \"client.authentication.k8s.io/v1\", \"kind\": \"ExecCredential\", \"status\": {{\"token\": \"{}\"}}}}\nEOF\n",
            world.sim.token()
        ),
    );
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    let kc = world.sim.kubeconfig_yaml().replace(
        &format!("    token: {}\n", world.sim.token()),
        &format!("    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: {}\n      interactiveMode: Never\n", script.display()),
    );
    assert!(kc.contains("exec:"), "{kc}");
    let path = world.file("exec-kubeconfig", &kc);
    let bin = &crate::plugin_bin();
    let out = world
        .run(
            bin,
            &[
                "status",
                "shop",
                "--kubeconfig",
                &path.display().to_string(),
            ],
            &[],
        )
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.starts_with("Context: sim"), "{out:?}");
    // A wrong token is rejected by the server: one line, exit 4, with a hint.
    let bad = world.file(
        "bad-kubeconfig",
        &world
            .sim
            .kubeconfig_yaml()
            .replace(world.sim.token(), "nope"),
    );
    let out = world
        .run(
            bin,
            &["list", "--kubeconfig", &bad.display().to_string()],
            &[],
        )
        .await;
    one_line_error(&out, 4, "Unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_tls_and_request_timeout_flags() {
    let world = World::new(&[CONTRACT]).await;
    // --as: the server sees (and names) the impersonated user.
    world
        .sim
        .cluster()
        .add_fault(Fault::new("list", "services", FaultAction::Forbidden));
    let out = world
        .plugin(&["list", "--as", "bob@example.com", "--as-group", "devs"])
        .await;
    one_line_error(
        &out,
        4,
        "User \"bob@example.com\" cannot list resource \"services\"",
    );
    world.sim.cluster().clear_faults();

    // A kubeconfig without the CA: refused, unless --insecure-skip-tls-verify.
    let kc = world.sim.kubeconfig_yaml();
    let no_ca: String = kc
        .lines()
        .filter(|l| !l.contains("certificate-authority-data"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = world.file("no-ca", &no_ca).display().to_string();
    let out = world.plugin(&["list", "--kubeconfig", &path]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    let out = world
        .plugin(&["list", "--kubeconfig", &path, "--insecure-skip-tls-verify"])
        .await;
    assert_eq!(out.code, 0, "{out:?}");

    // --request-timeout bounds each request.
    world.sim.cluster().set_timing(bluegreen_sim::Timing {
        latency: std::time::Duration::from_secs(3),
        ..Default::default()
    });
    let out = world
        .plugin(&["status", "shop", "--request-timeout", "300ms"])
        .await;
    one_line_error(&out, 6, "took longer than --request-timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_is_one_line() {
    let world = World::new(&[]).await;
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kc = world
        .sim
        .kubeconfig_yaml()
        .replace(world.sim.url(), &format!("https://127.0.0.1:{port}"));
    let path = world.file("dead", &kc).display().to_string();
    let out = world
        .plugin(&["status", "shop", "--kubeconfig", &path])
        .await;
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
    assert!(
        out.stderr.starts_with(&format!(
            "error: the connection to the server https://127.0.0.1:{port} was refused - did you specify the right host or port?"
        )),
        "{out:?}"
    );
}

/// An HTTP proxy that answers `CONNECT host:port` by connecting to 127.0.0.1:port (its
/// own name resolution: every host is this machine) and records each request's target
/// and `Proxy-Authorization`.
struct ConnectProxy {
    url: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
}

impl ConnectProxy {
    async fn start() -> ConnectProxy {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut client = BufReader::new(client);
                    let mut head = Vec::new();
                    loop {
                        let mut line = String::new();
                        if client.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push(line.trim_end().to_string());
                    }
                    let target = head[0].split(' ').nth(1).unwrap_or_default().to_string();
                    let auth = head
                        .iter()
                        .find_map(|h| {
                            h.to_ascii_lowercase()
                                .starts_with("proxy-authorization:")
                                .then(|| h[20..].trim().to_string())
                        })
                        .unwrap_or_default();
                    log.lock().unwrap().push((target.clone(), auth));
                    let port = target.rsplit(':').next().unwrap_or_default();
                    let Ok(mut upstream) =
                        tokio::net::TcpStream::connect(format!("127.0.0.1:{port}")).await
                    else {
                        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                        return;
                    };
                    let _ = client
                        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                        .await;
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
            }
        });
        ConnectProxy { url, seen }
    }

    fn seen(&self) -> Vec<(String, String)> {
        std::mem::take(&mut *self.seen.lock().unwrap())
    }
}

/// A SOCKS5 proxy (no authentication) that connects every target to 127.0.0.1 on the
/// target's port, and records each target as `host:port` (a name for socks5h).
async fn socks5_proxy() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("socks5h://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut greeting = [0u8; 2];
                client.read_exact(&mut greeting).await?;
                let mut methods = vec![0u8; greeting[1] as usize];
                client.read_exact(&mut methods).await?;
                client.write_all(&[5, 0]).await?;
                let mut request = [0u8; 4];
                client.read_exact(&mut request).await?;
                let host = match request[3] {
                    1 => {
                        let mut ip = [0u8; 4];
                        client.read_exact(&mut ip).await?;
                        std::net::Ipv4Addr::from(ip).to_string()
                    }
                    _ => {
                        let len = client.read_u8().await? as usize;
                        let mut name = vec![0u8; len];
                        client.read_exact(&mut name).await?;
                        String::from_utf8_lossy(&name).into_owned()
                    }
                };
                let port = client.read_u16().await?;
                log.lock().unwrap().push(format!("{host}:{port}"));
                let mut upstream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).await?;
                tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
                Ok::<_, std::io::Error>(())
            });
        }
    });
    (url, seen)
}

/// Proxies as kubectl uses them: the kubeconfig's `proxy-url` for its cluster, else
/// `HTTPS_PROXY` unless `NO_PROXY` names the host, never for loopback. TLS to the API
/// server runs end to end inside the proxy's tunnel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_are_used_where_kubectl_uses_them() {
    let world = World::new(&[CONTRACT]).await;
    let proxy = ConnectProxy::start().await;
    let port = world.sim.url().rsplit(':').next().unwrap().to_string();
    let run = |kubeconfig: std::path::PathBuf, env: Vec<(&'static str, String)>| {
        let mut cmd = world.command(&crate::plugin_bin(), &["status", "shop"]);
        for var in [
            "HTTPS_PROXY",
            "https_proxy",
            "HTTP_PROXY",
            "http_proxy",
            "NO_PROXY",
            "no_proxy",
            "ALL_PROXY",
            "all_proxy",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("KUBECONFIG", kubeconfig);
        for (k, v) in env {
            cmd.env(k, v);
        }
        async move {
            let out = cmd.output().await.unwrap();
            Out {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            }
        }
    };
    let with_credentials = proxy.url.replace("http://", "http://ops:s3cret@");

    // The sim on 127.0.0.1: loopback never goes through HTTPS_PROXY (it used to fail).
    let out = run(world.kubeconfig(), vec![("HTTPS_PROXY", proxy.url.clone())]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(proxy.seen(), vec![]);

    // A server by name (the proxy resolves every name to this machine): tunnelled, with
    // the proxy's credentials, and TLS still checks the server's certificate.
    let named = world
        .sim
        .kubeconfig_yaml()
        .replace(
            world.sim.url(),
            &format!("https://apiserver.bluegreen.test:{port}"),
        )
        .replace(
            "    certificate-authority-data",
            "    tls-server-name: localhost\n    certificate-authority-data",
        );
    let named = world.file("named", &named);
    let out = run(
        named.clone(),
        vec![("HTTPS_PROXY", with_credentials.clone())],
    )
    .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("shop-blue"), "{out:?}");
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    for (target, auth) in seen {
        assert_eq!(target, format!("apiserver.bluegreen.test:{port}"));
        assert_eq!(auth, "Basic b3BzOnMzY3JldA==");
    }

    // NO_PROXY names the domain: the proxy is passed by (and the name does not resolve).
    let env = vec![
        ("HTTPS_PROXY", proxy.url.clone()),
        ("NO_PROXY", ".bluegreen.test".to_string()),
    ];
    let out = run(named.clone(), env).await;
    one_line_error(&out, 1, "apiserver.bluegreen.test");
    assert_eq!(proxy.seen(), vec![]);

    // A proxy that is not there: said of the proxy, without its credentials.
    let dead = format!("http://ops:s3cret@127.0.0.1:{}", free_port());
    let out = run(named.clone(), vec![("HTTPS_PROXY", dead.clone())]).await;
    one_line_error(
        &out,
        1,
        &format!("the proxy {}", dead.replace("ops:s3cret@", "")),
    );
    assert!(!out.stderr.contains("s3cret"), "{out:?}");

    // The kubeconfig's proxy-url is the cluster's own: used even for loopback, and
    // before HTTPS_PROXY (here a dead one).
    let via = world.sim.kubeconfig_yaml().replace(
        "    certificate-authority-data",
        &format!(
            "    proxy-url: {}\n    certificate-authority-data",
            proxy.url
        ),
    );
    let via = world.file("via-proxy", &via);
    let env = vec![("HTTPS_PROXY", "http://127.0.0.1:9".to_string())];
    let out = run(via, env).await;
    assert_eq!(out.code, 0, "{out:?}");
    let seen = proxy.seen();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|(t, _)| *t == format!("127.0.0.1:{port}")),
        "{seen:?}"
    );

    // A SOCKS5 proxy-url, socks5h: the proxy is given the server's name to resolve.
    let (socks, socks_seen) = socks5_proxy().await;
    let kc = std::fs::read_to_string(&named).unwrap().replace(
        "    certificate-authority-data",
        &format!("    proxy-url: {socks}\n    certificate-authority-data"),
    );
    let out = run(world.file("via-socks", &kc), vec![]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let seen = socks_seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|t| *t == format!("apiserver.bluegreen.test:{port}")),
        "{seen:?}"
    );

    // A proxy-url this build cannot speak: one line, nothing sent.
    let ftp = world.sim.kubeconfig_yaml().replace(
        "    certificate-authority-data",
        "    proxy-url: ftp://127.0.0.1:21\n    certificate-authority-data",
    );
    let out = run(world.file("ftp-proxy", &ftp), vec![]).await;
    one_line_error(&out, 3, "proxy-url");
    let env = vec![("HTTPS_PROXY", "https://127.0.0.1:3129".to_string())];
    let out = run(named, env).await;
    one_line_error(&out, 1, "https:// proxy");
}

/// A port nothing listens on.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
