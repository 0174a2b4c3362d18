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
