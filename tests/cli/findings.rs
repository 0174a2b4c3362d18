//! The eight ways partial failures, pauses and concurrent edits broke the safety rules
//! (design §4) before the write path learned "live means live", pinned intent, exit 8
//! and the Lease fence — one test each, through the real binary against the sim.

use crate::write::{kill_after_writes, ok, replicas, selector_color, writes};
use crate::{CONTRACT, Out, World};
use bluegreen_sim::{Fault, FaultAction, Timing};
use serde_json::{Value, json};
use std::time::Duration;

const COLOR: &str = "bluegreen.io/color";
const V15: &str = "web=registry.example.com/shop/web:1.5.0";

/// The contract app with a second active Service, `shop-grpc`, beside `shop`.
fn two_services() -> String {
    format!(
        "{CONTRACT}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: shop-grpc\n  labels:\n    bluegreen.io/app: shop\nspec:\n  selector:\n    app.kubernetes.io/name: shop\n    bluegreen.io/color: blue\n  ports:\n  - name: grpc\n    port: 9090\n    targetPort: 8080\n"
    )
}

fn timing(world: &World, pod_ready_after: Duration) {
    world.sim.cluster().set_timing(Timing {
        pod_ready_after,
        endpoint_delay: Duration::from_millis(100),
        pod_termination: Duration::from_millis(200),
        ..Timing::default()
    });
}

#[track_caller]
fn code(out: &Out, want: i32) {
    assert_eq!(out.code, want, "{out:?}");
}

/// Writes to Deployments, in order (`PATCH …/deployments/NAME`).
fn deployment_writes(world: &World) -> Vec<String> {
    writes(&world.sim.cluster().request_log())
        .into_iter()
        .filter(|w| w.contains("/deployments/"))
        .collect()
}

/// Another operator's edit: read, change, write back (again if a controller wrote first).
fn edit(world: &World, plural: &str, name: &str, change: impl Fn(&mut Value)) {
    for _ in 0..20 {
        let mut o = world.sim.get(plural, "default", name).unwrap();
        change(&mut o);
        if world.sim.apply_object("default", o).is_ok() {
            return;
        }
    }
    panic!("could not edit {plural}/{name}");
}

fn set_selector(world: &World, svc: &str, color: &str) {
    edit(world, "services", svc, |s| {
        s["spec"]["selector"][COLOR] = json!(color)
    });
}

fn set_image(world: &World, deployment: &str, image: &str) {
    edit(world, "deployments", deployment, |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = json!(image)
    });
}

/// Waits until the plugin's request log shows `what` (e.g. a write to a path).
async fn until_logged(world: &World, what: &str) {
    for _ in 0..2000 {
        if writes(&world.sim.cluster().request_log())
            .iter()
            .any(|w| w.contains(what))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{what} never happened");
}

fn spawn(world: &World, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(crate::plugin_bin())
        .args(args)
        .env("KUBECONFIG", world.kubeconfig())
        .env("KUBECACHEDIR", crate::cache_of(&world.kubeconfig()))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn finish(child: tokio::process::Child) -> Out {
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("finished")
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// 1. A half-switched app: set-image must not touch the slot one Service still serves,
///    and abort must switch back rather than scale that live slot to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_switched_app_keeps_its_live_slots() {
    let world = World::new(&[&two_services()]).await;
    ok(&world.plugin(&["set-image", "shop", V15]).await);
    let c = world.sim.cluster();
    c.add_fault(Fault::new("patch", "services", FaultAction::Forbidden).named("shop-grpc"));
    let out = world.plugin(&["promote", "shop"]).await;
    code(&out, 8);
    assert!(
        out.stderr.contains("shop → green, shop-grpc → blue"),
        "{out:?}"
    );
    assert_eq!(selector_color(&world, "shop", COLOR), "green");
    assert_eq!(selector_color(&world, "shop-grpc", COLOR), "blue");

    let status: Value =
        serde_json::from_str(ok(&world.plugin(&["status", "shop", "-o", "json"]).await)).unwrap();
    assert!(
        status["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["reason"] == "PartiallySwitched"),
        "{status:#}"
    );

    c.clear_request_log();
    let out = world
        .plugin(&[
            "set-image",
            "shop",
            "web=registry.example.com/shop/web:3.0-untested",
        ])
        .await;
    code(&out, 4);
    assert!(out.stderr.contains("partially switched"), "{out:?}");
    assert!(deployment_writes(&world).is_empty(), "no slot was touched");

    // abort: every Service back to blue (blue is available), then green to 0.
    c.clear_request_log();
    ok(&world.plugin(&["abort", "shop"]).await);
    assert_eq!(selector_color(&world, "shop", COLOR), "blue");
    assert_eq!(selector_color(&world, "shop-grpc", COLOR), "blue");
    assert_eq!(replicas(&world, "shop-blue"), 3, "the live slot kept");
    assert_eq!(replicas(&world, "shop-green"), 0);
    let order = writes(&c.request_log());
    let switch = order
        .iter()
        .position(|w| w.ends_with("/services/shop"))
        .unwrap();
    let scale = order
        .iter()
        .position(|w| w.ends_with("/deployments/shop-green"))
        .unwrap();
    assert!(
        switch < scale,
        "green scaled down only after traffic left it: {order:?}"
    );
    assert!(
        !order.iter().any(|w| w.ends_with("/deployments/shop-blue")),
        "{order:?}"
    );
}

/// 2. Another operator switches the Service during a promote: the promote stops (exit 5)
///    and never switches traffic back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_switch_stops_the_promote_instead_of_reversing_it() {
    let world = World::new(&[CONTRACT]).await;
    ok(&world.plugin(&["set-image", "shop", V15]).await);
    let c = world.sim.cluster();
    c.set_timing(Timing {
        latency: Duration::from_millis(300),
        ..c.timing()
    });
    c.clear_request_log();
    let promote = spawn(&world, &["promote", "shop"]);
    until_logged(&world, "/leases").await;
    set_selector(&world, "shop", "green");
    let out = finish(promote).await;
    code(&out, 5);
    // Stopped at the first observation after the switch, or at the guarded write: both
    // name who switched (from managedFields).
    assert!(
        out.stderr
            .contains("Service shop was switched from blue to green meanwhile by bluegreen-sim")
            || out
                .stderr
                .contains("Service shop was switched to green by bluegreen-sim"),
        "names who changed it (managedFields): {out:?}"
    );
    assert_eq!(
        selector_color(&world, "shop", COLOR),
        "green",
        "the other operator's switch stands"
    );
    let ours: Vec<Value> = c
        .request_log()
        .iter()
        .filter(|e| e.method == "PATCH" && e.path.ends_with("/services/shop") && e.code == 200)
        .map(|e| serde_json::from_str(&e.body).unwrap())
        .collect();
    assert!(
        ours.iter().all(|b| b["spec"]["selector"][COLOR] != "blue"),
        "traffic was never sent back to blue: {ours:?}"
    );
}

/// 3. Finishing a partial switch goes through the readiness gate: no Service is pointed
///    at a slot with no available pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finishing_a_partial_switch_checks_the_target_first() {
    let world = World::new(&[&two_services()]).await;
    let history = r#"[{"action":"promote","from":"blue","to":"green","images":[],"at":"2026-11-21T00:00:00Z","by":"bob","fromRevision":"1","toRevision":"1"}]"#;
    let mut shop = world.sim.get("services", "default", "shop").unwrap();
    shop["spec"]["selector"][COLOR] = json!("green");
    shop["metadata"]["annotations"]["bluegreen.io/history"] = json!(history);
    world.sim.apply_object("default", shop).unwrap();
    assert_eq!(
        replicas(&world, "shop-green"),
        0,
        "green is idle in the fixture"
    );
    world.sim.cluster().clear_request_log();
    let out = world.plugin(&["promote", "shop"]).await;
    code(&out, 4);
    assert!(out.stderr.contains("no available pods"), "{out:?}");
    assert!(
        writes(&world.sim.cluster().request_log())
            .iter()
            .all(|w| !w.contains("/services/")),
        "nothing switched"
    );
    assert_eq!(selector_color(&world, "shop-grpc", COLOR), "blue");
}

/// 4. A failure after traffic moved is told as such (exit 8, where each Service points,
///    an Event), endpoints are verified first, and a re-run finishes; a one-off 500 on
///    the Event does not fail the promote.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_traffic_moved_is_exit_8_and_a_rerun_finishes() {
    let world = World::new(&[CONTRACT]).await;
    ok(&world.plugin(&["set-image", "shop", V15]).await);
    let c = world.sim.cluster();
    c.add_fault(Fault::new("patch", "services", FaultAction::Forbidden).named("shop-preview"));
    let out = world.plugin(&["promote", "shop"]).await;
    code(&out, 8);
    let last = out.stderr.lines().last().unwrap();
    assert!(
        last.starts_with("error: traffic was moved, then the promote failed"),
        "{out:?}"
    );
    assert!(
        last.contains("shop → green, shop-preview (preview) → green"),
        "{out:?}"
    );
    assert!(
        last.contains("`kubectl bluegreen promote shop` finishes it"),
        "{out:?}"
    );
    assert!(
        out.stderr
            .contains("wait until service/shop serve only green"),
        "endpoints verified before the failing write: {out:?}"
    );
    let reasons: Vec<String> = world
        .sim
        .list("events", "default")
        .iter()
        .filter_map(|e| e["reason"].as_str().map(String::from))
        .collect();
    assert!(reasons.contains(&"Promoted".to_string()), "{reasons:?}");
    assert!(
        reasons.contains(&"PartialSwitch".to_string()),
        "{reasons:?}"
    );
    c.clear_faults();
    assert_eq!(
        ok(&world.plugin(&["promote", "shop"]).await),
        "promote of shop was already done; finished the remaining steps: blue → green\n"
    );
    assert_eq!(selector_color(&world, "shop-preview", COLOR), "blue");

    // Events are best effort and retried: a one-off 500 does not fail an abort.
    c.add_fault(Fault::new("create", "events", FaultAction::Status(500)).times(1));
    ok(&world.plugin(&["abort", "shop"]).await);
    assert!(
        world
            .sim
            .list("events", "default")
            .iter()
            .any(|e| e["reason"] == "Aborted"),
        "the retried Event was recorded"
    );
}

/// 5. abort restores the version it planned to restore: a previous slot re-imaged while
///    abort waits for it to come back is not given traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_does_not_restore_a_slot_changed_during_its_wait() {
    let world = World::new(&[CONTRACT]).await;
    timing(&world, Duration::from_millis(200));
    ok(&world.plugin(&["set-image", "shop", V15]).await);
    ok(&world
        .plugin(&["promote", "shop", "--scale-down-old=0s"])
        .await);
    assert_eq!(replicas(&world, "shop-blue"), 0);
    timing(&world, Duration::from_secs(2));
    let c = world.sim.cluster();
    c.clear_request_log();
    let abort = spawn(&world, &["abort", "shop"]);
    until_logged(&world, "/deployments/shop-blue").await;
    set_image(
        &world,
        "shop-blue",
        "registry.example.com/shop/web:3.0-unreviewed",
    );
    let out = finish(abort).await;
    code(&out, 5);
    assert!(out.stderr.contains("changed meanwhile"), "{out:?}");
    assert_eq!(
        selector_color(&world, "shop", COLOR),
        "green",
        "not switched"
    );
    assert_eq!(replicas(&world, "shop-green"), 3, "the live version kept");
}

/// 6. The Lease fences the work: a command that cannot renew its Lease for the Lease's
///    duration stops before its next write (someone else may hold it by then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_cannot_renew_its_lease_stops_before_writing() {
    let world = World::new(&[CONTRACT]).await;
    timing(&world, Duration::from_millis(200));
    ok(&world.plugin(&["set-image", "shop", V15]).await);
    ok(&world
        .plugin(&["promote", "shop", "--scale-down-old=0s"])
        .await);
    // blue takes 17 s to come back; every renewal fails meanwhile.
    timing(&world, Duration::from_secs(17));
    let c = world.sim.cluster();
    // The takeover of the (released) Lease passes; every renewal after it fails.
    let mut codes = vec![0u16];
    codes.extend([500u16; 60]);
    c.add_fault(Fault::new(
        "update",
        "leases",
        FaultAction::Sequence(codes.into()),
    ));
    let out = world.plugin(&["abort", "shop", "--timeout=60s"]).await;
    code(&out, 5);
    assert!(out.stderr.contains("could not renew the lock"), "{out:?}");
    assert_eq!(
        selector_color(&world, "shop", COLOR),
        "green",
        "no write after the fence"
    );
}

/// 7. A tripped generation guard is a conflict (exit 5), and the re-plan after it (or a
///    re-run after SIGKILL) never promotes the other, re-imaged slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tripped_guard_never_promotes_a_second_version() {
    for kill in [false, true] {
        let world = World::new(&[CONTRACT]).await;
        timing(&world, Duration::from_millis(200));
        ok(&world.plugin(&["set-image", "shop", V15]).await);
        let c = world.sim.cluster();
        c.clear_request_log();
        let args = ["promote", "shop", "--scale-down-old=3s"];
        let promote = spawn(&world, &args);
        until_logged(&world, "/services/shop-preview").await;
        if kill {
            let mut promote = promote;
            promote.start_kill().unwrap();
            promote.wait().await.unwrap();
            set_image(
                &world,
                "shop-blue",
                "registry.example.com/shop/web:3.0-unreviewed",
            );
            world
                .sim
                .wait_rolled_out("default", "shop-blue")
                .await
                .unwrap();
            let out = world.plugin(&args).await;
            code(&out, 5);
            assert!(out.stderr.contains("interrupted promote"), "{out:?}");
        } else {
            set_image(
                &world,
                "shop-blue",
                "registry.example.com/shop/web:3.0-unreviewed",
            );
            let out = finish(promote).await;
            code(&out, 5);
        }
        assert_eq!(
            selector_color(&world, "shop", COLOR),
            "green",
            "kill={kill}: traffic stays on the promoted version"
        );
        assert_eq!(replicas(&world, "shop-blue"), 3, "kill={kill}");
    }
}

/// 8. abort before any promote is re-runnable: killed after each of its writes, the
///    re-run finishes (exit 0), takes over the dead process's Lease at once, and the
///    history records that traffic did not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_before_a_promote_is_rerunnable_after_a_kill() {
    for k in 1..=2 {
        let world = World::new(&[CONTRACT]).await;
        timing(&world, Duration::from_millis(200));
        ok(&world.plugin(&["set-image", "shop", V15]).await);
        let killed = kill_after_writes(&world, &["abort", "shop"], k).await;
        assert!(killed, "k={k}: killed before it finished");
        let out = world.plugin(&["abort", "shop"]).await;
        assert_eq!(out.code, 0, "k={k}: {out:?}");
        assert_eq!(replicas(&world, "shop-green"), 0, "k={k}");
        assert_eq!(selector_color(&world, "shop", COLOR), "blue", "k={k}");
        let history = crate::write::history(&world, "shop");
        assert_eq!(history[0]["action"], "abort-preview", "k={k}");
        assert_eq!(
            ok(&world.plugin(&["abort", "shop"]).await),
            "the preview slot green of shop was already stopped; traffic did not move\n",
            "k={k}: a third run changes nothing"
        );
    }
}

/// Waits until the plugin's request log shows `method` on a path ending in `suffix`,
/// answered after the request the log shows first for `after` (a path fragment).
async fn until_answered(world: &World, after: &str, method: &str, suffix: &str) {
    for _ in 0..4000 {
        let log = world.sim.cluster().request_log();
        if let Some(start) = log.iter().position(|e| e.path.contains(after))
            && log[start + 1..]
                .iter()
                .any(|e| e.method == method && e.path.ends_with(suffix))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{method} …{suffix} after {after} never answered");
}

/// Green rolled out on 1.5.0 and idle, every request 300 ms slow: room for another
/// operator to act between two of set-image's requests.
async fn slow_app_with_a_ready_preview() -> World {
    let world = World::new(&[CONTRACT]).await;
    timing(&world, Duration::from_millis(100));
    ok(&world.plugin(&["set-image", "shop", V15]).await);
    assert_eq!(replicas(&world, "shop-green"), 3);
    let c = world.sim.cluster();
    c.set_timing(Timing {
        latency: Duration::from_millis(300),
        ..c.timing()
    });
    c.clear_request_log();
    world
}

const V16: &str = "web=registry.example.com/shop/web:1.6.0";

/// 9. Another operator switches traffic to the preview slot after set-image observed the
///    app but before it writes: the fresh look at the Services right before the write
///    sees it, and the slot, live now, is never written (rule 2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_just_before_set_images_write_stops_it_unwritten() {
    let world = slow_app_with_a_ready_preview().await;
    let run = spawn(&world, &["set-image", "shop", V16]);
    // The observation under the Lease has read the Deployments: the plan is made.
    until_answered(&world, "/leases/", "GET", "/deployments").await;
    set_selector(&world, "shop", "green");
    let out = finish(run).await;
    code(&out, 5);
    assert!(
        out.stderr.contains(
            "Service shop was switched to green by bluegreen-sim meanwhile: deployment shop-green serves traffic, so it is not re-imaged"
        ),
        "{out:?}"
    );
    assert!(deployment_writes(&world).is_empty(), "{out:?}");
    assert_eq!(
        crate::write::image(&world, "shop-green"),
        "registry.example.com/shop/web:1.5.0"
    );
}

/// 10. The switch lands while set-image's write is on its way (after its last look at
///     the Services, before the write reaches the API server: a window no client closes
///     without a transaction). The look right after the write sees it, the write is
///     undone at once, guarded by the version it made, and the command says so (exit 5):
///     the live slot ends as the operator switched to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switch_while_set_images_write_is_on_its_way_is_met_by_an_undo() {
    let world = slow_app_with_a_ready_preview().await;
    let before = world
        .sim
        .get("deployments", "default", "shop-green")
        .unwrap();
    let run = spawn(&world, &["set-image", "shop", V16]);
    // The look right before the write has been answered; the write is in flight.
    until_answered(&world, "/leases/", "GET", "/services/shop").await;
    set_selector(&world, "shop", "green");
    let out = finish(run).await;
    code(&out, 5);
    assert!(
        out.stderr.contains(
            "Service shop was switched to green by bluegreen-sim while deployment shop-green was being written: the write is undone, the slot is as it was"
        ),
        "{out:?}"
    );
    assert_eq!(
        deployment_writes(&world),
        [
            "PATCH /apis/apps/v1/namespaces/default/deployments/shop-green",
            "PATCH /apis/apps/v1/namespaces/default/deployments/shop-green"
        ],
        "the write, then its undo"
    );
    let after = world
        .sim
        .get("deployments", "default", "shop-green")
        .unwrap();
    assert_eq!(after["spec"]["template"], before["spec"]["template"]);
    assert_eq!(after["spec"]["replicas"], before["spec"]["replicas"]);
    assert_eq!(selector_color(&world, "shop", COLOR), "green");
}

/// 11. An abort right after a half-switch: the Service it switches back had not yet
///     published the promote's switch (its endpoints still showed blue), so that
///     publication lands after the abort's own switch. The aborted slot is scaled down
///     only once the Service's ready endpoints stayed on blue (found by the randomized
///     safety suite, seed 7031).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_after_a_half_switch_outwaits_a_lagging_endpoint_publication() {
    let world = World::new(&[&two_services()]).await;
    ok(&world.plugin(&["set-image", "shop", V15]).await);
    let c = world.sim.cluster();
    c.set_timing(Timing {
        endpoint_delay: Duration::from_millis(1000),
        ..c.timing()
    });
    c.add_fault(Fault::new("patch", "services", FaultAction::Forbidden).named("shop-grpc"));
    let before = c.store.resource_version();
    code(&world.plugin(&["promote", "shop"]).await, 8);
    c.clear_faults();
    ok(&world.plugin(&["abort", "shop"]).await);
    // The promote's publication lands within the endpoint delay of its switch.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(replicas(&world, "shop-green"), 0);

    let (changes, _) = c.store.watch_from(before).unwrap();
    let green_served = |o: &Value| {
        o["endpoints"].as_array().into_iter().flatten().any(|e| {
            e["conditions"]["ready"] != false
                && e["targetRef"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("shop-green-"))
        })
    };
    let last_green = changes
        .iter()
        .filter(|ch| {
            ch.storage == "endpointslices"
                && ch.object["metadata"]["labels"]["kubernetes.io/service-name"] == "shop"
                && green_served(&ch.object)
        })
        .map(|ch| ch.rv)
        .max()
        .expect("the promote's switch was published");
    let scaled_down = changes
        .iter()
        .filter(|ch| {
            ch.storage == "deployments"
                && ch.object["metadata"]["name"] == "shop-green"
                && ch.object["spec"]["replicas"] == 0
        })
        .map(|ch| ch.rv)
        .min()
        .expect("green was scaled down");
    assert!(
        scaled_down > last_green,
        "shop-green scaled down (rv {scaled_down}) while Service shop still served it (rv {last_green})"
    );
}
