//! A cutover that proves itself, under steady load through the sim's traffic plane:
//! `--check` refuses a version that answers 500 before any traffic moves, `--bake`
//! reverts a version that degrades after the switch, a good version bakes cleanly and
//! the old slot is scaled down after, and a SIGKILL during the bake resumes on re-run.

use crate::traffic::{realistic, start_load, stop};
use crate::write::{ok, replicas, selector_color};
use crate::{CONTRACT, World};
use std::time::Duration;
use tokio::time::Instant;

const COLOR: &str = "bluegreen.io/color";
const CHECK: &[&str] = &[
    "--check",
    "/healthz",
    "--check",
    "/",
    "--check-interval=100ms",
];

async fn with_traffic() -> World {
    let world = World::new(&[CONTRACT]).await;
    world.sim.cluster().enable_traffic();
    world.sim.cluster().set_timing(realistic());
    world
}

fn args<'a>(base: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = base.to_vec();
    v.extend_from_slice(extra);
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_answering_500_is_refused_before_any_traffic_moves() {
    let world = with_traffic().await;
    let addr = world.sim.service_proxy("default", "shop").await.unwrap();
    let (stats, stop_tx, tasks) = start_load(addr, 100, COLOR);
    ok(&world
        .plugin(&[
            "set-image",
            "shop",
            "web=registry.example.com/shop/web:1.5.0-http500",
        ])
        .await);
    let out = world.plugin(&args(&["promote", "shop"], CHECK)).await;
    assert_eq!(out.code, 4, "{out:?}");
    let error = out.stderr.lines().last().unwrap();
    assert!(
        error.contains("check failed before any traffic moved") && error.contains("answered 500"),
        "names the failing target and status: {out:?}"
    );
    assert_eq!(
        selector_color(&world, "shop", COLOR),
        "blue",
        "nothing switched"
    );
    stop(stop_tx, tasks).await;
    let s = stats.lock().unwrap();
    assert!(s.ok > 0);
    assert!(s.failed.is_empty(), "no request failed: {:?}", s.failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_degrades_during_the_bake_is_reverted_on_its_own() {
    let world = with_traffic().await;
    let addr = world.sim.service_proxy("default", "shop").await.unwrap();
    ok(&world
        .plugin(&[
            "set-image",
            "shop",
            "web=registry.example.com/shop/web:1.5.0-failafter-5s",
        ])
        .await);
    let (stats, stop_tx, tasks) = start_load(addr, 100, COLOR);
    let started = Instant::now();
    let out = world
        .plugin(&args(
            &["promote", "shop", "--bake=30s", "--scale-down-old=0s"],
            CHECK,
        ))
        .await;
    let ended = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop(stop_tx, tasks).await;
    assert_eq!(out.code, 9, "{out:?}");
    assert!(out.stderr.contains("reverted it"), "{out:?}");
    assert_eq!(
        selector_color(&world, "shop", COLOR),
        "blue",
        "the old version serves again"
    );
    assert_eq!(
        replicas(&world, "shop-blue"),
        3,
        "never scaled down: the bake failed"
    );
    let history = crate::write::history(&world, "shop");
    assert_eq!(history[0]["action"], "auto-abort", "{history:?}");
    let s = stats.lock().unwrap();
    let (first, last) = (s.failed_at.first().copied(), s.failed_at.last().copied());
    eprintln!(
        "bake revert: {} requests ok, {} answered badly between the regression and the revert (first {:?} after the promote started, window {:?}); command took {:?}",
        s.ok,
        s.failed.len(),
        first.map(|f| f - started),
        first.zip(last).map(|(f, l)| l - f),
        ended - started
    );
    assert!(s.ok > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_version_bakes_cleanly_then_the_old_slot_is_scaled_down() {
    let world = with_traffic().await;
    let addr = world.sim.service_proxy("default", "shop").await.unwrap();
    ok(&world
        .plugin(&[
            "set-image",
            "shop",
            "web=registry.example.com/shop/web:1.5.0",
        ])
        .await);
    let (stats, stop_tx, tasks) = start_load(addr, 100, COLOR);
    ok(&world
        .plugin(&args(
            &["promote", "shop", "--bake=3s", "--scale-down-old=0s"],
            CHECK,
        ))
        .await);
    stop(stop_tx, tasks).await;
    assert_eq!(selector_color(&world, "shop", COLOR), "green");
    assert_eq!(
        replicas(&world, "shop-blue"),
        0,
        "scaled down after the clean bake"
    );
    let svc = world.sim.get("services", "default", "shop").unwrap();
    assert!(
        svc["metadata"]["annotations"]["bluegreen.io/bake"].is_null(),
        "the bake record is cleared"
    );
    let s = stats.lock().unwrap();
    assert!(s.failed.is_empty(), "no request failed: {:?}", s.failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sigkill_during_the_bake_resumes_on_rerun() {
    let world = with_traffic().await;
    ok(&world
        .plugin(&[
            "set-image",
            "shop",
            "web=registry.example.com/shop/web:1.5.0",
        ])
        .await);
    let promote = ["promote", "shop", "--bake=6s", "--scale-down-old=0s"];
    let mut child = tokio::process::Command::new(crate::plugin_bin())
        .args(promote)
        .env("KUBECONFIG", world.kubeconfig())
        .env("KUBECACHEDIR", crate::cache_of(&world.kubeconfig()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    world
        .sim
        .wait_for("the bake to start", Duration::from_secs(30), |sim| {
            !sim.get("services", "default", "shop").unwrap()["metadata"]["annotations"]
                ["bluegreen.io/bake"]
                .is_null()
        })
        .await
        .unwrap();
    child.start_kill().unwrap();
    child.wait().await.unwrap();
    let record: serde_json::Value = serde_json::from_str(
        world.sim.get("services", "default", "shop").unwrap()["metadata"]["annotations"]
            ["bluegreen.io/bake"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let until = record["until"].as_str().unwrap().to_string();
    assert_eq!(
        replicas(&world, "shop-blue"),
        3,
        "killed mid-bake: the old slot is kept"
    );
    let status = world.plugin(&["status", "shop", "-o", "json"]).await;
    assert!(
        status.stdout.contains("\"bake\""),
        "status shows the bake: {status:?}"
    );
    let out = world.plugin(&promote).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains(&format!("bake until {until}")),
        "the re-run resumed the recorded bake rather than starting a new one: {out:?}"
    );
    assert_eq!(selector_color(&world, "shop", COLOR), "green");
    assert_eq!(
        replicas(&world, "shop-blue"),
        0,
        "scaled down after the resumed bake"
    );
}
