//! Load through the sim's traffic plane while releases run: zero failed requests, and
//! no response from a color after the command that moved traffic away from it returned
//! (for connections opened after that; an open keep-alive connection stays on its pod,
//! as with kube-proxy). A careless manual switch in the same harness must lose requests.
//!
//! Short form in `cargo test`; the full form (200 requests/s, seconds between steps):
//!   BLUEGREEN_LOAD=full cargo test --test cli traffic -- --nocapture

use crate::adopt::PLAIN;
use crate::{CONTRACT, World};
use bluegreen_sim::Timing;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::BufReader;
use tokio::net::TcpStream;
use tokio::time::Instant;

fn full() -> bool {
    std::env::var("BLUEGREEN_LOAD").is_ok_and(|v| v == "full")
}

/// Requests per second, and the pause between release steps.
fn shape() -> (u32, Duration) {
    if full() {
        (200, Duration::from_secs(3))
    } else {
        (100, Duration::from_millis(300))
    }
}

#[derive(Default)]
pub struct Stats {
    pub ok: u64,
    pub failed: Vec<String>,
    /// When each failed request ended.
    pub failed_at: Vec<Instant>,
    /// (when the connection was opened, the color that answered)
    answers: Vec<(Instant, String)>,
}

/// Sends `rate` requests/s through `addr` until `stop`: four workers, each reusing a
/// keep-alive connection for up to 10 requests and opening a fresh one every 4th request.
pub fn start_load(
    addr: SocketAddr,
    rate: u32,
    color_key: &'static str,
) -> (
    Arc<Mutex<Stats>>,
    tokio::sync::watch::Sender<bool>,
    Vec<tokio::task::JoinHandle<()>>,
) {
    let stats = Arc::new(Mutex::new(Stats::default()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = 4;
    let every = Duration::from_secs_f64(workers as f64 / rate as f64);
    let tasks = (0..workers)
        .map(|w| {
            let stats = stats.clone();
            let stop = stop_rx.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                let mut conn: Option<(BufReader<TcpStream>, Instant, u32)> = None;
                let mut n = 0u32;
                // Bounded in count and time whatever happens.
                let deadline = Instant::now() + Duration::from_secs(120);
                while !*stop.borrow() && Instant::now() < deadline {
                    tick.tick().await;
                    n += 1;
                    if conn.as_ref().is_none_or(|(_, _, used)| *used >= 10)
                        || (n + w).is_multiple_of(4)
                    {
                        conn = None;
                        match TcpStream::connect(addr).await {
                            Ok(s) => {
                                let _ = s.set_nodelay(true);
                                conn = Some((BufReader::new(s), Instant::now(), 0));
                            }
                            Err(e) => {
                                let mut s = stats.lock().unwrap();
                                s.failed.push(format!("connect: {e}"));
                                s.failed_at.push(Instant::now());
                                continue;
                            }
                        }
                    }
                    let (stream, opened, used) = conn.as_mut().unwrap();
                    *used += 1;
                    match tokio::time::timeout(
                        Duration::from_secs(2),
                        bluegreen_sim::traffic::get(stream),
                    )
                    .await
                    {
                        Ok(Ok(body)) => {
                            let v: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or_default();
                            let color = v["labels"][color_key].as_str().unwrap_or("?").to_string();
                            let mut s = stats.lock().unwrap();
                            s.ok += 1;
                            s.answers.push((*opened, color));
                        }
                        Ok(Err(e)) => {
                            let mut s = stats.lock().unwrap();
                            s.failed.push(format!("request: {e}"));
                            s.failed_at.push(Instant::now());
                            conn = None;
                        }
                        Err(_) => {
                            let mut s = stats.lock().unwrap();
                            s.failed.push("request: timed out".into());
                            s.failed_at.push(Instant::now());
                            conn = None;
                        }
                    }
                }
            })
        })
        .collect();
    (stats, stop_tx, tasks)
}

pub async fn stop(stop: tokio::sync::watch::Sender<bool>, tasks: Vec<tokio::task::JoinHandle<()>>) {
    stop.send(true).unwrap();
    for t in tasks {
        t.await.unwrap();
    }
}

pub fn realistic() -> Timing {
    Timing {
        pod_ready_after: Duration::from_millis(300),
        endpoint_delay: Duration::from_millis(300),
        // Longer than the propagation delay plus a connection's life (even on a loaded
        // machine): nothing is cut.
        pod_termination: Duration::from_secs(3),
        ..Timing::default()
    }
}

/// Colors that answered on connections opened in [from, to).
fn colors_between(stats: &Stats, from: Instant, to: Instant) -> std::collections::BTreeSet<String> {
    stats
        .answers
        .iter()
        .filter(|(opened, _)| *opened >= from && *opened < to)
        .map(|(_, c)| c.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_is_lost_through_set_image_promote_abort_promote() {
    let world = World::new(&[CONTRACT]).await;
    world.sim.cluster().enable_traffic();
    world.sim.cluster().set_timing(realistic());
    let addr = world.sim.service_proxy("default", "shop").await.unwrap();
    let (rate, pause) = shape();
    let (stats, stop_tx, tasks) = start_load(addr, rate, "bluegreen.io/color");
    let run = |args: &'static [&'static str]| {
        let w = &world;
        async move {
            let out = w.plugin(args).await;
            assert_eq!(out.code, 0, "{args:?}: {out:?}");
            Instant::now()
        }
    };
    tokio::time::sleep(pause).await;
    run(&[
        "set-image",
        "shop",
        "web=registry.example.com/shop/web:1.5.0",
    ])
    .await;
    tokio::time::sleep(pause).await;
    let promoted = run(&["promote", "shop"]).await;
    tokio::time::sleep(pause).await;
    let abort_started = Instant::now();
    let aborted = run(&["abort", "shop"]).await;
    tokio::time::sleep(pause).await;
    run(&[
        "set-image",
        "shop",
        "web=registry.example.com/shop/web:1.5.1",
    ])
    .await;
    let second_started = Instant::now();
    let promoted_again = run(&["promote", "shop", "--scale-down-old=0s"]).await;
    // Long enough for the old pods to terminate under load.
    tokio::time::sleep(pause.max(Duration::from_secs(2))).await;
    let end = Instant::now();
    stop(stop_tx, tasks).await;
    let s = stats.lock().unwrap();
    eprintln!(
        "traffic: {} ok, {} failed over the release cycle",
        s.ok,
        s.failed.len()
    );
    assert!(s.ok > 50, "the load ran ({} ok)", s.ok);
    assert_eq!(s.failed, Vec::<String>::new(), "zero failed requests");
    assert_eq!(
        colors_between(&s, promoted, abort_started),
        ["green".to_string()].into(),
        "after promote returned: only green"
    );
    assert_eq!(
        colors_between(&s, aborted, second_started),
        ["blue".to_string()].into(),
        "after abort returned: only blue"
    );
    assert_eq!(
        colors_between(&s, promoted_again, end),
        ["green".to_string()].into(),
        "after the second promote: only green"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_is_lost_while_init_adopts_a_plain_app() {
    let world = World::new(&[PLAIN]).await;
    world.sim.cluster().enable_traffic();
    world.sim.cluster().set_timing(realistic());
    let addr = world
        .sim
        .service_proxy("default", "nginx-svc")
        .await
        .unwrap();
    let (rate, pause) = shape();
    let (stats, stop_tx, tasks) = start_load(addr, rate, "bluegreen.io/color");
    tokio::time::sleep(pause).await;
    let out = world.plugin(&["init", "nginx-svc"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let adopted = Instant::now();
    tokio::time::sleep(pause.max(Duration::from_secs(2))).await;
    let end = Instant::now();
    stop(stop_tx, tasks).await;
    let s = stats.lock().unwrap();
    eprintln!(
        "traffic: {} ok, {} failed during init",
        s.ok,
        s.failed.len()
    );
    assert!(s.ok > 20, "the load ran ({} ok)", s.ok);
    assert_eq!(s.failed, Vec::<String>::new(), "zero failed requests");
    assert_eq!(
        colors_between(&s, adopted, end),
        ["blue".to_string()].into(),
        "after init: the blue slot serves"
    );
}

/// The negative control: switching the selector and deleting the old pods at once, as a
/// hurried operator would, loses requests in this same harness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_careless_manual_switch_loses_requests() {
    let world = World::new(&[CONTRACT]).await;
    world.sim.cluster().enable_traffic();
    world.sim.cluster().set_timing(realistic());
    assert_eq!(
        world
            .plugin(&[
                "set-image",
                "shop",
                "web=registry.example.com/shop/web:1.5.0"
            ])
            .await
            .code,
        0
    );
    let addr = world.sim.service_proxy("default", "shop").await.unwrap();
    let (rate, pause) = shape();
    let (stats, stop_tx, tasks) = start_load(addr, rate, "bluegreen.io/color");
    tokio::time::sleep(pause).await;
    let mut svc = world.sim.get("services", "default", "shop").unwrap();
    svc["spec"]["selector"]["bluegreen.io/color"] = "green".into();
    world.sim.apply_object("default", svc).unwrap();
    let pods = bluegreen_sim::resources::find("", "v1", "pods").unwrap();
    for p in world
        .sim
        .list("pods", "default")
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["bluegreen.io/color"] == "blue")
    {
        let opts = bluegreen_sim::ops::DeleteOpts {
            grace_seconds: Some(0),
            ..Default::default()
        };
        bluegreen_sim::ops::delete(
            world.sim.cluster(),
            pods,
            "default",
            p["metadata"]["name"].as_str().unwrap(),
            &opts,
        )
        .unwrap();
    }
    tokio::time::sleep(pause.max(Duration::from_secs(1))).await;
    stop(stop_tx, tasks).await;
    let s = stats.lock().unwrap();
    eprintln!("negative control: {} ok, {} failed", s.ok, s.failed.len());
    assert!(
        !s.failed.is_empty(),
        "the harness must see the failures of a careless switch"
    );
}
