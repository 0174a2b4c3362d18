//! The `bluegreen-sim` binary: flags, the `ready <url>` line, the kubeconfig it writes,
//! the request log file, and a clean exit on SIGTERM.

use std::time::Duration;
use tokio::io::AsyncBufReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_serves_the_demo_until_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kc");
    let log = dir.path().join("requests.jsonl");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_bluegreen-sim"))
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args([
            "--scenario",
            "demo",
            "--latency",
            "1ms",
            "--pod-ready-after",
            "100ms",
            "--fault",
            "delete:services=forbidden",
        ])
        .arg("--request-log")
        .arg(&log)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("ready in time")
        .unwrap()
        .unwrap();
    let url = first
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let kc = std::fs::read_to_string(&kubeconfig).unwrap();
    for line in [
        "- name: sim",
        "current-context: sim",
        "    namespace: default",
        "certificate-authority-data: ",
        "    token: ",
    ] {
        assert!(kc.contains(line), "kubeconfig lacks {line:?}:\n{kc}");
    }
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::from_yaml(&kc).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let deploys: kube::Api<k8s_openapi::api::apps::v1::Deployment> =
        kube::Api::default_namespaced(client.clone());
    let blue = deploys.get("shop-blue").await.unwrap();
    assert_eq!(
        blue.status.unwrap().ready_replicas,
        Some(3),
        "the demo starts converged"
    );
    let services: kube::Api<k8s_openapi::api::core::v1::Service> =
        kube::Api::default_namespaced(client);
    let err = services
        .delete("shop", &Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(s) if s.code == 403),
        "the --fault flag is in force"
    );

    let logged = std::fs::read_to_string(&log).unwrap();
    let entries: Vec<serde_json::Value> = logged
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(entries.iter().any(|e| e["method"] == "GET"
        && e["path"] == "/apis/apps/v1/namespaces/default/deployments/shop-blue"
        && e["code"] == 200));
    assert!(
        entries
            .iter()
            .any(|e| e["method"] == "DELETE" && e["code"] == 403)
    );

    let pid = child.id().unwrap() as i32;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status:?}");
    assert_eq!(
        lines.next_line().await.unwrap(),
        None,
        "exactly one line on stdout"
    );
}
