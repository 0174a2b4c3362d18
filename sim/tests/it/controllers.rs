//! The in-server controllers, driven through the library on paused tokio time: timers
//! (readiness, propagation lag, termination, progress deadlines) advance only when every
//! task is idle, so these tests never sleep on the wall clock.

use crate::{deployment, is_ready, live_pods};
use bluegreen_sim::{Sim, Timing};
use serde_json::{Value, json};
use std::time::Duration;

fn condition<'a>(d: &'a Value, type_: &str) -> &'a Value {
    d["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

fn patch_image(sim: &Sim, name: &str, image: &str) {
    let mut d = sim.get("deployments", "default", name).unwrap();
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image);
    sim.apply_object("default", d).unwrap();
}

fn slice_addresses(sim: &Sim, svc: &str) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = sim
        .list("endpointslices", "default")
        .iter()
        .filter(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == svc)
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .map(|e| {
            (
                e["targetRef"]["name"].as_str().unwrap_or("").to_string(),
                e["conditions"]["ready"] == true,
            )
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(start_paused = true)]
async fn a_deployment_rolls_out_through_replicasets_and_pods() {
    let sim = Sim::start().await.unwrap();
    sim.apply_yaml("default", &deployment("web", 3, "web:1"))
        .unwrap();
    sim.wait_rolled_out("default", "web").await.unwrap();
    let rs = sim.list("replicasets", "default");
    assert_eq!(rs.len(), 1);
    let rs = &rs[0];
    let hash = rs["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"]["pod-template-hash"],
        hash.as_str()
    );
    assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    let pods = live_pods(&sim, "default", "web");
    assert_eq!(pods.len(), 3);
    for p in &pods {
        let name = p["metadata"]["name"].as_str().unwrap();
        assert!(
            name.starts_with(&format!("web-{hash}-"))
                && name.len() == format!("web-{hash}-").len() + 5,
            "{name}"
        );
        assert_eq!(
            p["metadata"]["ownerReferences"][0]["name"],
            rs["metadata"]["name"]
        );
        assert!(
            p["status"]["podIP"]
                .as_str()
                .unwrap()
                .starts_with("10.244.")
        );
        assert!(is_ready(p));
    }
    let d = sim.get("deployments", "default", "web").unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(d["status"]["observedGeneration"], 1);
    assert_eq!(
        (
            d["status"]["readyReplicas"].as_i64(),
            d["status"]["availableReplicas"].as_i64()
        ),
        (Some(3), Some(3))
    );
    assert_eq!(
        condition(&d, "Available")["reason"],
        "MinimumReplicasAvailable"
    );
    assert_eq!(
        condition(&d, "Progressing")["reason"],
        "NewReplicaSetAvailable"
    );
    assert_eq!(
        condition(&d, "Progressing")["message"],
        format!("ReplicaSet \"web-{hash}\" has successfully progressed.")
    );
}

/// Long names: the ReplicaSet is `<deployment>-<pod-template-hash>` uncut, and its pods'
/// generateName `<rs-name>-` is cut to 58 characters plus 5 random ones, as upstream's
/// name generator does, so pod names stay within 63.
#[tokio::test(start_paused = true)]
async fn generated_pod_names_are_cut_to_63_characters_like_upstream() {
    let sim = Sim::start().await.unwrap();
    let name = format!("long-{}", "x".repeat(47));
    assert_eq!(name.len(), 52);
    sim.apply_yaml("default", &deployment(&name, 2, "web:1"))
        .unwrap();
    sim.wait_rolled_out("default", &name).await.unwrap();
    let rs = sim.list("replicasets", "default");
    assert_eq!(rs.len(), 1);
    let hash = rs[0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap();
    let rs_name = rs[0]["metadata"]["name"].as_str().unwrap();
    assert_eq!(rs_name, format!("{name}-{hash}"));
    let base = format!("{rs_name}-");
    assert!(base.len() > 58, "{base}");
    let pods = live_pods(&sim, "default", &name);
    assert_eq!(pods.len(), 2);
    for p in &pods {
        let pod = p["metadata"]["name"].as_str().unwrap();
        assert_eq!(pod.len(), 63, "{pod}");
        assert!(pod.starts_with(&base[..58]), "{pod} vs {base}");
        let suffix = &pod[58..];
        assert_eq!(suffix.len(), 5);
        assert!(
            suffix
                .chars()
                .all(|c| "bcdfghjklmnpqrstvwxz2456789".contains(c)),
            "{pod}"
        );
        assert_eq!(p["metadata"]["generateName"], base.as_str());
    }
}

/// Observes every intermediate state of a rolling update and checks the strategy's bounds.
#[tokio::test(start_paused = true)]
async fn rolling_update_honours_max_surge_and_max_unavailable() {
    let sim = Sim::start_with(Timing {
        pod_ready_after: Duration::from_secs(1),
        ..Timing::default()
    })
    .await
    .unwrap();
    let mut yaml = deployment("web", 4, "web:1");
    yaml = yaml.replace(
        "spec:\n  replicas: 4",
        "spec:\n  replicas: 4\n  strategy:\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}",
    );
    sim.apply_yaml("default", &yaml).unwrap();
    sim.wait_rolled_out("default", "web").await.unwrap();
    patch_image(&sim, "web", "web:2");
    let (mut max_pods, mut min_ready) = (0usize, usize::MAX);
    sim.wait_for("rollout to web:2", Duration::from_secs(60), |s| {
        let pods = live_pods(s, "default", "web");
        max_pods = max_pods.max(pods.len());
        min_ready = min_ready.min(pods.iter().filter(|p| is_ready(p)).count());
        let d = s.get("deployments", "default", "web").unwrap();
        bluegreen_sim::deployment_complete(&d)
            && pods
                .iter()
                .all(|p| p["spec"]["containers"][0]["image"] == "web:2")
    })
    .await
    .unwrap();
    assert_eq!(max_pods, 5, "replicas + maxSurge");
    assert_eq!(min_ready, 4, "maxUnavailable 0 keeps every replica ready");
    let d = sim.get("deployments", "default", "web").unwrap();
    assert_eq!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "2"
    );
    let rs = sim.list("replicasets", "default");
    assert_eq!(rs.len(), 2, "the old ReplicaSet is kept at 0 for rollback");
    assert!(rs.iter().any(|r| r["spec"]["replicas"] == 0
        && r["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"));
}

#[tokio::test(start_paused = true)]
async fn recreate_stops_every_old_pod_before_starting_new_ones() {
    let sim = Sim::start_with(Timing {
        pod_ready_after: Duration::from_millis(500),
        pod_termination: Duration::from_secs(1),
        ..Timing::default()
    })
    .await
    .unwrap();
    let yaml = deployment("web", 3, "web:1").replace(
        "spec:\n  replicas: 3",
        "spec:\n  replicas: 3\n  strategy: {type: Recreate}",
    );
    sim.apply_yaml("default", &yaml).unwrap();
    sim.wait_rolled_out("default", "web").await.unwrap();
    patch_image(&sim, "web", "web:2");
    let mut mixed = false;
    sim.wait_for("recreate done", Duration::from_secs(60), |s| {
        let all: Vec<Value> = s.list("pods", "default");
        let images: std::collections::HashSet<String> = all
            .iter()
            .map(|p| {
                p["spec"]["containers"][0]["image"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        mixed |= images.len() > 1;
        bluegreen_sim::deployment_complete(&s.get("deployments", "default", "web").unwrap())
            && images.len() == 1
            && images.contains("web:2")
    })
    .await
    .unwrap();
    assert!(!mixed, "old and new pods never coexist under Recreate");
}

#[tokio::test(start_paused = true)]
async fn a_paused_deployment_does_not_roll_out_until_resumed() {
    let sim = Sim::start().await.unwrap();
    sim.apply_yaml("default", &deployment("web", 2, "web:1"))
        .unwrap();
    sim.wait_rolled_out("default", "web").await.unwrap();
    let mut d = sim.get("deployments", "default", "web").unwrap();
    d["spec"]["paused"] = json!(true);
    d["spec"]["template"]["spec"]["containers"][0]["image"] = json!("web:2");
    sim.apply_object("default", d).unwrap();
    sim.wait_for("paused condition", Duration::from_secs(5), |s| {
        condition(
            &s.get("deployments", "default", "web").unwrap(),
            "Progressing",
        )["reason"]
            == "DeploymentPaused"
    })
    .await
    .unwrap();
    assert_eq!(sim.list("replicasets", "default").len(), 1);
    let mut d = sim.get("deployments", "default", "web").unwrap();
    d["spec"]["paused"] = json!(false);
    sim.apply_object("default", d).unwrap();
    sim.wait_rolled_out("default", "web").await.unwrap();
    assert!(
        live_pods(&sim, "default", "web")
            .iter()
            .all(|p| p["spec"]["containers"][0]["image"] == "web:2")
    );
}

#[tokio::test(start_paused = true)]
async fn never_ready_images_exceed_the_progress_deadline() {
    let sim = Sim::start().await.unwrap();
    let yaml = deployment("web", 2, "web:1").replace(
        "spec:\n  replicas: 2",
        "spec:\n  replicas: 2\n  progressDeadlineSeconds: 30",
    );
    sim.apply_yaml("default", &yaml).unwrap();
    sim.wait_rolled_out("default", "web").await.unwrap();
    for (image, reason) in [
        ("web:crashloop", "CrashLoopBackOff"),
        ("registry.invalid/web:pullfail", "ImagePullBackOff"),
        ("web:neverready", ""),
    ] {
        patch_image(&sim, "web", image);
        let started = tokio::time::Instant::now();
        sim.wait_for("deadline exceeded", Duration::from_secs(120), |s| {
            let d = s.get("deployments", "default", "web").unwrap();
            // Like kubectl: only a status that observed the latest generation counts.
            d["status"]["observedGeneration"] == d["metadata"]["generation"]
                && condition(&d, "Progressing")["reason"] == "ProgressDeadlineExceeded"
        })
        .await
        .unwrap();
        assert!(
            started.elapsed() >= Duration::from_secs(30),
            "not before progressDeadlineSeconds"
        );
        let d = sim.get("deployments", "default", "web").unwrap();
        assert_eq!(condition(&d, "Progressing")["status"], "False");
        assert!(
            condition(&d, "Progressing")["message"]
                .as_str()
                .unwrap()
                .ends_with("has timed out progressing.")
        );
        let bad: Vec<Value> = live_pods(&sim, "default", "web")
            .into_iter()
            .filter(|p| p["spec"]["containers"][0]["image"] == image)
            .collect();
        assert!(!bad.is_empty());
        for p in &bad {
            assert!(!is_ready(p));
            if !reason.is_empty() {
                assert_eq!(
                    p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"],
                    reason
                );
            }
        }
        // The old pods keep serving: maxUnavailable 25% of 2 rounds down to 0.
        assert_eq!(
            live_pods(&sim, "default", "web")
                .iter()
                .filter(|p| is_ready(p))
                .count(),
            2
        );
    }
}

#[tokio::test(start_paused = true)]
async fn min_ready_seconds_delays_availability() {
    let sim = Sim::start().await.unwrap();
    let yaml = deployment("web", 1, "web:1").replace(
        "spec:\n  replicas: 1",
        "spec:\n  replicas: 1\n  minReadySeconds: 10",
    );
    sim.apply_yaml("default", &yaml).unwrap();
    sim.wait_for("ready", Duration::from_secs(5), |s| {
        s.get("deployments", "default", "web").unwrap()["status"]["readyReplicas"] == 1
    })
    .await
    .unwrap();
    let t0 = tokio::time::Instant::now();
    assert!(
        sim.get("deployments", "default", "web").unwrap()["status"]["availableReplicas"].is_null()
    );
    sim.wait_rolled_out("default", "web").await.unwrap();
    assert!(
        t0.elapsed() >= Duration::from_secs(9),
        "available only after minReadySeconds ({:?})",
        t0.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn endpoint_slices_lag_pod_changes_by_the_propagation_delay() {
    let delay = Duration::from_secs(2);
    let sim = Sim::start_with(Timing {
        endpoint_delay: delay,
        pod_ready_after: Duration::from_secs(1),
        ..Timing::default()
    })
    .await
    .unwrap();
    sim.apply_yaml("default", &deployment("web", 1, "web:1"))
        .unwrap();
    sim.apply_yaml("default", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}").unwrap();
    sim.wait_for("pod ready", Duration::from_secs(10), |s| {
        live_pods(s, "default", "web").iter().any(is_ready)
    })
    .await
    .unwrap();
    let ready_at = tokio::time::Instant::now();
    assert!(
        slice_addresses(&sim, "web").iter().all(|(_, ready)| !ready),
        "not yet propagated"
    );
    sim.wait_for("endpoint ready", Duration::from_secs(10), |s| {
        slice_addresses(s, "web").iter().any(|(_, r)| *r)
    })
    .await
    .unwrap();
    assert!(
        ready_at.elapsed() >= delay - Duration::from_millis(10),
        "{:?}",
        ready_at.elapsed()
    );
    let slice = sim
        .list("endpointslices", "default")
        .into_iter()
        .find(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == "web")
        .unwrap();
    assert_eq!(
        slice["ports"],
        json!([{"name": "", "port": 8080, "protocol": "TCP"}])
    );
    assert_eq!(slice["endpoints"][0]["targetRef"]["kind"], "Pod");
    assert_eq!(slice["metadata"]["ownerReferences"][0]["kind"], "Service");
    let ep = sim.get("endpoints", "default", "web").unwrap();
    assert_eq!(ep["subsets"][0]["addresses"].as_array().unwrap().len(), 1);

    // A deleted slice comes back, as upstream's controller re-creates what it manages.
    let name = slice["metadata"]["name"].as_str().unwrap();
    sim.cluster()
        .store
        .delete("endpointslices", "default", name, None)
        .unwrap();
    sim.cluster().kick();
    sim.wait_for("slice re-created", Duration::from_secs(10), |s| {
        slice_addresses(s, "web").iter().any(|(_, r)| *r)
    })
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn deleted_pods_terminate_turn_unready_then_disappear() {
    let grace = Duration::from_secs(5);
    let sim = Sim::start_with(Timing {
        pod_termination: grace,
        ..Timing::default()
    })
    .await
    .unwrap();
    sim.apply_yaml("default", &deployment("web", 2, "web:1"))
        .unwrap();
    sim.apply_yaml("default", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80}]}").unwrap();
    sim.wait_converged("default").await.unwrap();
    let mut d = sim.get("deployments", "default", "web").unwrap();
    d["spec"]["replicas"] = json!(1);
    sim.apply_object("default", d).unwrap();
    sim.wait_for("one terminating", Duration::from_secs(5), |s| {
        s.list("pods", "default")
            .iter()
            .any(|p| !p["metadata"]["deletionTimestamp"].is_null() && !is_ready(p))
    })
    .await
    .unwrap();
    let t0 = tokio::time::Instant::now();
    sim.wait_for(
        "terminating pod not ready in the slice",
        Duration::from_secs(5),
        |s| slice_addresses(s, "web").iter().filter(|(_, r)| *r).count() == 1,
    )
    .await
    .unwrap();
    assert_eq!(
        sim.list("pods", "default").len(),
        2,
        "still there during its grace period"
    );
    // As upstream: the slice keeps the terminating pod (ready false, serving its
    // readiness, terminating true); the legacy Endpoints drop it altogether.
    let pods = sim.list("pods", "default");
    let dying = pods
        .iter()
        .find(|p| !p["metadata"]["deletionTimestamp"].is_null())
        .unwrap();
    let slices = sim.list("endpointslices", "default");
    let ep = slices
        .iter()
        .flat_map(|s| s["endpoints"].as_array().unwrap())
        .find(|e| e["targetRef"]["uid"] == dying["metadata"]["uid"])
        .expect("terminating pod in the slice");
    assert_eq!(
        ep["conditions"],
        json!({"ready": false, "serving": is_ready(dying), "terminating": true})
    );
    let eps = sim.get("endpoints", "default", "web").unwrap();
    assert_eq!(eps["subsets"][0]["addresses"].as_array().unwrap().len(), 1);
    assert!(eps["subsets"][0]["notReadyAddresses"].is_null(), "{eps}");
    sim.wait_for("pod removed", Duration::from_secs(30), |s| {
        s.list("pods", "default").len() == 1
    })
    .await
    .unwrap();
    assert!(t0.elapsed() >= grace - Duration::from_millis(10));
}

#[tokio::test(start_paused = true)]
async fn revision_history_is_trimmed_and_rollback_reuses_the_old_replicaset() {
    let sim = Sim::start().await.unwrap();
    let yaml = deployment("web", 1, "web:1").replace(
        "spec:\n  replicas: 1",
        "spec:\n  replicas: 1\n  revisionHistoryLimit: 2",
    );
    sim.apply_yaml("default", &yaml).unwrap();
    sim.wait_rolled_out("default", "web").await.unwrap();
    for v in 2..=5 {
        patch_image(&sim, "web", &format!("web:{v}"));
        sim.wait_rolled_out("default", "web").await.unwrap();
    }
    sim.wait_for("history trimmed", Duration::from_secs(5), |s| {
        s.list("replicasets", "default").len() == 3
    })
    .await
    .unwrap();
    let revs = |s: &Sim| {
        let mut r: Vec<(String, String)> = s
            .list("replicasets", "default")
            .iter()
            .map(|r| {
                (
                    r["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                    r["spec"]["template"]["spec"]["containers"][0]["image"]
                        .as_str()
                        .unwrap()
                        .to_string(),
                )
            })
            .collect();
        r.sort();
        r
    };
    assert_eq!(
        revs(&sim),
        [
            ("3".into(), "web:3".into()),
            ("4".into(), "web:4".into()),
            ("5".into(), "web:5".into())
        ]
    );
    // Rolling back to web:4 reuses its ReplicaSet as revision 6.
    patch_image(&sim, "web", "web:4");
    sim.wait_rolled_out("default", "web").await.unwrap();
    sim.wait_for("revision bumped", Duration::from_secs(5), |s| {
        revs(s).iter().any(|(r, i)| r == "6" && i == "web:4")
    })
    .await
    .unwrap();
    assert_eq!(sim.list("replicasets", "default").len(), 3);
    assert_eq!(
        sim.get("deployments", "default", "web").unwrap()["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "6"
    );
}

#[tokio::test(start_paused = true)]
async fn the_demo_scenario_is_converged() {
    let sim = Sim::start().await.unwrap();
    sim.load_demo().await.unwrap();
    let blue = sim.get("deployments", "default", "shop-blue").unwrap();
    assert_eq!(blue["status"]["readyReplicas"], 3);
    assert_eq!(
        slice_addresses(&sim, "shop")
            .iter()
            .filter(|(_, r)| *r)
            .count(),
        3
    );
    assert!(slice_addresses(&sim, "shop-preview").is_empty());
    assert_eq!(
        sim.get("services", "default", "shop").unwrap()["metadata"]["annotations"]["bluegreen.io/preview-service"],
        "shop-preview"
    );
}
