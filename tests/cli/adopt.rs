//! `init`: adopting a plain Deployment + Service with zero downtime, nothing deleted.

use crate::{Out, World};
use bluegreen_sim::{Sim, Timing};
use std::time::Duration;

pub const PLAIN: &str = include_str!("../fixtures/plain/app.yaml");

#[track_caller]
fn ok(out: &Out) -> &str {
    assert_eq!(out.code, 0, "{out:?}");
    &out.stdout
}

fn ready_endpoints(sim: &Sim, svc: &str) -> usize {
    sim.list("endpointslices", "default")
        .iter()
        .filter(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == svc)
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["conditions"]["ready"] == true)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_adopts_a_plain_app_without_ever_emptying_the_endpoints() {
    let world = World::new(&[PLAIN]).await;
    world.sim.cluster().set_timing(Timing {
        pod_ready_after: Duration::from_millis(300),
        endpoint_delay: Duration::from_millis(200),
        pod_termination: Duration::from_millis(300),
        ..Timing::default()
    });
    let child = tokio::spawn({
        let kc = world.kubeconfig();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-bluegreen"))
                .args(["init", "nginx-svc"])
                .env("KUBECONFIG", kc)
                .output()
                .await
                .unwrap()
        }
    });
    // At every change of the store: the Service has ready endpoints.
    let mut minimum = usize::MAX;
    world
        .sim
        .wait_for("adoption finished", Duration::from_secs(60), |s| {
            minimum = minimum.min(ready_endpoints(s, "nginx-svc"));
            s.get("deployments", "default", "nginx-dm")
                .is_some_and(|d| d["spec"]["replicas"] == 0 && d["status"]["replicas"].is_null())
        })
        .await
        .unwrap();
    let out = child.await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        minimum >= 3,
        "endpoints dropped to {minimum} during the adoption"
    );
    let svc = world.sim.get("services", "default", "nginx-svc").unwrap();
    assert_eq!(
        svc["spec"]["selector"],
        serde_json::json!({"app": "nginx", "bluegreen.io/color": "blue"})
    );
    let original = world.sim.get("deployments", "default", "nginx-dm").unwrap();
    assert_eq!(
        original["metadata"]["annotations"]["bluegreen.io/replaced-by"],
        "nginx-dm-blue,nginx-dm-green"
    );
    assert_eq!(
        world
            .sim
            .get("deployments", "default", "nginx-dm-green")
            .unwrap()["spec"]["replicas"],
        0
    );
    assert_eq!(
        world
            .sim
            .get("deployments", "default", "nginx-dm-blue")
            .unwrap()["spec"]["replicas"],
        3
    );
    // Now an app like any other: status, and a re-run changes nothing.
    let status = world.plugin(&["status", "nginx-svc"]).await;
    assert!(
        ok(&status).contains("blue    active    nginx-dm-blue    nginx:1.27   3/3"),
        "{}",
        status.stdout
    );
    assert!(
        status.stdout.contains("Last switch: blue adopted"),
        "{}",
        status.stdout
    );
    world.sim.cluster().clear_request_log();
    ok(&world.plugin(&["init", "nginx-svc"]).await);
    assert!(
        world
            .sim
            .cluster()
            .request_log()
            .iter()
            .all(|e| e.method == "GET"
                || e.path.contains("/leases")
                || e.path.ends_with("/selfsubjectreviews")),
        "the re-run wrote nothing to the app"
    );
    assert!(
        world
            .sim
            .cluster()
            .request_log()
            .iter()
            .all(|e| e.method != "DELETE")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_refuses_none_or_several_deployments_and_takes_a_custom_key() {
    let world = World::new(&[PLAIN]).await;
    let second = PLAIN
        .split("\n---\n")
        .next()
        .unwrap()
        .replace("name: nginx-dm", "name: nginx-dm2");
    world.sim.apply_yaml("default", &second).unwrap();
    world.sim.cluster().clear_request_log();
    let out = world.plugin(&["init", "nginx-svc"]).await;
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr
            .contains("2 Deployments are selected by Service nginx-svc (nginx-dm, nginx-dm2)"),
        "{out:?}"
    );
    assert!(
        world
            .sim
            .cluster()
            .request_log()
            .iter()
            .all(|e| e.method == "GET" || e.path.ends_with("/selfsubjectreviews"))
    );
    let out = world.plugin(&["init", "nope"]).await;
    assert_eq!(out.code, 3, "{out:?}");

    let world = World::new(&[PLAIN]).await;
    ok(&world
        .plugin(&["init", "nginx-svc", "--color-label", "version"])
        .await);
    let svc = world.sim.get("services", "default", "nginx-svc").unwrap();
    assert_eq!(svc["spec"]["selector"]["version"], "blue");
    assert_eq!(
        svc["metadata"]["annotations"]["bluegreen.io/color-label"],
        "version"
    );
    let out = world.plugin(&["status", "nginx-svc", "-o", "json"]).await;
    let doc: serde_json::Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(doc["colorLabel"], "version");
    assert_eq!(doc["slots"].as_array().unwrap().len(), 2);
}
