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
    ready_endpoints_in(sim, "default", svc)
}

fn ready_endpoints_in(sim: &Sim, ns: &str, svc: &str) -> usize {
    sim.list("endpointslices", ns)
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
            tokio::process::Command::new(crate::plugin_bin())
                .args(["init", "nginx-svc"])
                .env("KUBECONFIG", &kc)
                .env("KUBECACHEDIR", crate::cache_of(&kc))
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

const RBAC: &str = include_str!("../../deploy/rbac.yaml");

fn role(name: &str) -> Vec<bluegreen_sim::PolicyRule> {
    let doc = RBAC
        .split("\n---\n")
        .find(|d| d.contains(&format!("name: {name}\n")))
        .unwrap();
    bluegreen_sim::rules_from_yaml(doc).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_role_is_enough_for_the_whole_cycle() {
    let world = World::new(&[crate::CONTRACT, PLAIN]).await;
    world
        .sim
        .cluster()
        .set_rbac(Some(role("bluegreen-operator")));
    for args in [
        vec!["init", "nginx-svc"],
        vec![
            "set-image",
            "shop",
            "web=registry.example.com/shop/web:1.5.0",
        ],
        vec!["promote", "shop"],
        vec!["abort", "shop"],
        vec!["wait", "shop", "--for=converged"],
        vec!["status", "shop"],
        vec!["list"],
        vec!["history", "shop"],
    ] {
        let out = world.plugin(&args).await;
        assert_eq!(out.code, 0, "{args:?} with the operator Role: {out:?}");
    }
    assert!(
        world
            .sim
            .cluster()
            .request_log()
            .iter()
            .all(|e| e.code != 403),
        "nothing was denied"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_viewer_role_reads_and_every_write_fails_in_one_line() {
    let world = World::new(&[crate::CONTRACT, PLAIN]).await;
    // A preview ready to promote, so that promote gets as far as its first write.
    ok(&world
        .plugin(&[
            "set-image",
            "shop",
            "web=registry.example.com/shop/web:1.5.0",
        ])
        .await);
    world.sim.cluster().set_rbac(Some(role("bluegreen-viewer")));
    for args in [
        vec!["status", "shop"],
        vec!["list"],
        vec!["history", "shop"],
    ] {
        assert_eq!(world.plugin(&args).await.code, 0, "{args:?}");
    }
    let out = world.plugin(&["list", "-A"]).await;
    assert_eq!(out.code, 4, "a namespaced Role does not cover -A: {out:?}");
    world.sim.cluster().set_rbac(Some(
        [
            role("bluegreen-viewer"),
            role("bluegreen-viewer-all-namespaces"),
        ]
        .concat(),
    ));
    assert_eq!(world.plugin(&["list", "-A"]).await.code, 0);
    world.sim.cluster().set_rbac(Some(role("bluegreen-viewer")));
    for args in [
        vec!["set-image", "shop", "web=x:2"],
        vec!["promote", "shop"],
        vec!["abort", "shop"],
        vec!["init", "nginx-svc"],
    ] {
        let out = world.plugin(&args).await;
        assert_eq!(out.code, 4, "{args:?}: {out:?}");
        let errors: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{out:?}");
        assert!(
            errors[0].contains("is forbidden: User \"sim-admin\" cannot"),
            "{out:?}"
        );
    }
}

/// Issue 11's user path: an app brought to the sim the way one is brought to a cluster,
/// with the `kubectl` on the PATH (1.32+ send these bodies as protobuf) — a namespace, a
/// Deployment, `expose`, a ConfigMap, a Secret, a PDB, an HPA, a scale and a restart —
/// is adopted by `init` and released through the plugin's kubectl dispatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_created_with_kubectls_imperative_commands_is_adopted_and_released() {
    let Some(kubectl) = crate::kubectl() else {
        return;
    };
    let w = World::new(&[]).await;
    for step in [
        "create namespace web",
        "-n web create deployment web --image=nginx:1.27 --replicas=2 --port=80",
        "-n web expose deployment web --port=80",
        "-n web create configmap web --from-literal=mode=prod",
        "-n web create secret generic web --from-literal=token=s3cret",
        "-n web create poddisruptionbudget web --selector=app=web --min-available=1",
        "-n web autoscale deployment web --min=2 --max=4",
        "-n web scale deployment web --replicas=3",
        "-n web rollout restart deployment web",
        "-n web rollout status deployment web --timeout=60s",
        "bluegreen -n web init web",
        "bluegreen -n web set-image web nginx=nginx:1.28",
        "bluegreen -n web promote web",
    ] {
        let args: Vec<&str> = step.split_whitespace().collect();
        let out = w.run(&kubectl, &args, &[]).await;
        assert_eq!(out.code, 0, "kubectl {step}: {out:?}");
    }
    let protobuf = w
        .sim
        .cluster()
        .request_log()
        .iter()
        .filter(|r| {
            r.content_type
                .starts_with("application/vnd.kubernetes.protobuf")
        })
        .count();
    eprintln!("protobuf request bodies: {protobuf}");
    let status = ok(&w
        .plugin(&["-n", "web", "status", "web", "-o", "json"])
        .await)
    .to_string();
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let text = status.to_string();
    assert!(text.contains("nginx:1.28"), "the release is live: {status}");
    let svc = w.sim.get("services", "web", "web").unwrap();
    assert_eq!(
        svc["spec"]["selector"]["bluegreen.io/color"], "green",
        "{svc}"
    );
    assert!(
        ready_endpoints_in(&w.sim, "web", "web") >= 2,
        "the Service serves the new slot"
    );
}
