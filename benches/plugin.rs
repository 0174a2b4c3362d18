//! The numbers in BENCHMARKS.md: `cargo bench --bench plugin` prints them as Markdown.
//! Everything runs against the simulated cluster on loopback; wall times are medians of
//! alternating runs, so a noisy neighbour hurts both sides alike.

use bluegreen_sim::{LogEntry, Sim, Timing};
use std::path::{Path, PathBuf};
// (The release binary's size is measured from `cargo build --release`: the bench
// profile writes to the same target/release directory with other settings.)
use std::process::Command;
use std::time::{Duration, Instant};

const CONTRACT: &str = include_str!("../tests/fixtures/contract/app.yaml");
const RUNS: usize = 15;

struct Ctx {
    sim: Sim,
    dir: tempfile::TempDir,
}

impl Ctx {
    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_kubectl-bluegreen")
}

/// Wall time and peak RSS (KiB) of one run; panics on failure.
fn run(program: &str, args: &[&str], kubeconfig: &Path) -> (Duration, i64) {
    run_with(program, args, kubeconfig, &[])
}

/// `run` with more environment (e.g. `KUBECACHEDIR=/dev/null`: no read hints).
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which also gives its rusage
fn run_with(
    program: &str,
    args: &[&str],
    kubeconfig: &Path,
    env: &[(&str, &str)],
) -> (Duration, i64) {
    let start = Instant::now();
    let child = Command::new(program)
        .args(args)
        .env("KUBECONFIG", kubeconfig)
        .env("HOME", kubeconfig.parent().unwrap())
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // wait4 gives this child's own peak RSS.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    let took = start.elapsed();
    assert!(
        pid > 0 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{program} {args:?} failed"
    );
    (took, usage.ru_maxrss)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn world(fixtures: &[&str]) -> Ctx {
    let sim = Sim::start().await.unwrap();
    for f in fixtures {
        sim.apply_yaml("default", f).unwrap();
    }
    sim.wait_converged("default").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    sim.write_kubeconfig(&dir.path().join("kubeconfig"))
        .unwrap();
    Ctx { sim, dir }
}

fn requests(log: &[LogEntry]) -> usize {
    log.len()
}

async fn count_requests(ctx: &Ctx, args: &[&str]) -> usize {
    ctx.sim.cluster().clear_request_log();
    let kc = ctx.kubeconfig();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        run(bin(), &a, &kc)
    })
    .await
    .unwrap();
    requests(&ctx.sim.cluster().request_log())
}

/// Median wall time of `RUNS` runs (after one warm-up, which also leaves the app's
/// read hint: a command naming the app then reads it in one round).
async fn median_of(kc: &Path, args: &[&str]) -> Duration {
    median_with(kc, args, &[]).await
}

/// `median_of` as on a machine that keeps no read hints: every read of an app is its
/// first (two rounds).
async fn median_cold(kc: &Path, args: &[&str]) -> Duration {
    median_with(kc, args, &[("KUBECACHEDIR", "/dev/null")]).await
}

async fn median_with(kc: &Path, args: &[&str], env: &[(&'static str, &'static str)]) -> Duration {
    let kc = kc.to_path_buf();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let env = env.to_vec();
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        run_with(bin(), &a, &kc, &env);
        median(
            (0..RUNS)
                .map(|_| run_with(bin(), &a, &kc, &env).0)
                .collect(),
        )
    })
    .await
    .unwrap()
}

/// Lets the sim finish what the last command started (terminating pods, endpoint lag),
/// then holds its controllers, so that reads are timed against a quiet server.
async fn settle(sim: &Sim) {
    sim.wait_converged("default").await.unwrap();
    sim.wait_quiet(Duration::from_secs(1)).await;
    sim.cluster().set_controllers_paused(true);
}

/// Waits until the namespace has converged and the store took no write for 300 ms.
async fn converged(sim: &Sim) {
    sim.wait_converged("default").await.unwrap();
    sim.wait_quiet(Duration::from_millis(300)).await;
}

/// Response bytes the API server sent for each command of one release cycle: all of
/// them, and those outside watch streams.
async fn write_cycle_bytes(ctx: &Ctx, version: &str) -> Vec<(String, (u64, u64))> {
    let image = format!("web=registry.example.com/shop/web:{version}");
    let cycle: [&[&str]; 4] = [
        &["set-image", "shop", &image],
        &["wait", "shop", "--for=preview-ready"],
        &["promote", "shop"],
        &["abort", "shop"],
    ];
    let mut out = Vec::new();
    for args in cycle {
        // Each command starts from a settled app in both worlds: beside 5,000 ReplicaSets
        // the sim's passes are slower, so the last abort's scale-down could still be
        // under way and set-image would read those pods too (the sim's pace, not the
        // command's reads).
        converged(&ctx.sim).await;
        ctx.sim.cluster().clear_request_log();
        let kc = ctx.kubeconfig();
        let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        tokio::task::spawn_blocking(move || {
            run(
                bin(),
                &a.iter().map(String::as_str).collect::<Vec<_>>(),
                &kc,
            )
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let c = ctx.sim.cluster();
        let all = c.bytes_served();
        out.push((args[0].to_string(), (all, all - c.watch_bytes_served())));
    }
    out
}

/// Per command, the medians of the bytes (all, and outside watches) over three cycles.
async fn median_cycle_bytes(ctx: &Ctx) -> Vec<(String, (u64, u64))> {
    let mut cycles = Vec::new();
    for version in ["1.5.1", "1.5.2", "1.5.3"] {
        cycles.push(write_cycle_bytes(ctx, version).await);
    }
    let median = |mut b: Vec<u64>| {
        b.sort_unstable();
        b[1]
    };
    (0..cycles[0].len())
        .map(|i| {
            let all = median(cycles.iter().map(|c| c[i].1.0).collect());
            let reads = median(cycles.iter().map(|c| c[i].1.1).collect());
            (cycles[0][i].0.clone(), (all, reads))
        })
        .collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let kubectl = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());

    // 1. status vs the kubectl command a user would run, at 0 and 20 ms per request.
    let ctx = world(&[CONTRACT]).await;
    for latency in [0u64, 20] {
        ctx.sim.cluster().set_timing(Timing {
            latency: Duration::from_millis(latency),
            ..Timing::default()
        });
        let kc = ctx.kubeconfig();
        let k = kubectl.clone();
        let (ours, theirs) = tokio::task::spawn_blocking(move || {
            // Warm both (kubectl's discovery cache, page cache).
            run(bin(), &["status", "shop"], &kc);
            run(&k, &["get", "deploy,svc,endpointslices"], &kc);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            for _ in 0..RUNS {
                a.push(run(bin(), &["status", "shop"], &kc).0);
                b.push(run(&k, &["get", "deploy,svc,endpointslices"], &kc).0);
            }
            (median(a), median(b))
        })
        .await
        .unwrap();
        rows.push((
            format!(
                "`status shop` vs `kubectl get deploy,svc,endpointslices`, {latency} ms/request"
            ),
            format!("{} vs {}", ms(ours), ms(theirs)),
            format!("{:.1}× faster", theirs.as_secs_f64() / ours.as_secs_f64()),
        ));
    }
    ctx.sim.cluster().set_timing(Timing::default());
    let startup = {
        let kc = ctx.kubeconfig();
        tokio::task::spawn_blocking(move || {
            median(
                (0..RUNS)
                    .map(|_| run(bin(), &["version", "--client"], &kc).0)
                    .collect(),
            )
        })
        .await
        .unwrap()
    };
    rows.push((
        "`version --client` (process start)".into(),
        ms(startup),
        String::new(),
    ));

    // 2. Requests per command.
    let status_reqs = count_requests(&ctx, &["status", "shop"]).await;
    let list_reqs = count_requests(&ctx, &["list", "-A"]).await;
    let set_image_reqs = count_requests(
        &ctx,
        &[
            "set-image",
            "shop",
            "web=registry.example.com/shop/web:1.5.0",
        ],
    )
    .await;
    let promote_reqs = count_requests(&ctx, &["promote", "shop"]).await;
    let abort_reqs = count_requests(&ctx, &["abort", "shop"]).await;
    rows.push((
        "requests: status, list -A, set-image, promote, abort".into(),
        format!("{status_reqs}, {list_reqs}, {set_image_reqs}, {promote_reqs}, {abort_reqs}"),
        "incl. watches for waits".into(),
    ));

    // 3. promote: start to endpoints verified, minus the propagation delay.
    let delay = Duration::from_millis(200);
    let ctx = world(&[CONTRACT]).await;
    ctx.sim.cluster().set_timing(Timing {
        endpoint_delay: delay,
        ..Timing::default()
    });
    let mut times = Vec::new();
    for _ in 0..5 {
        for args in [
            ["set-image", "shop", "web=registry.example.com/shop/web:9.9"].as_slice(),
            &["promote", "shop"],
        ] {
            let kc = ctx.kubeconfig();
            let a: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let took = tokio::task::spawn_blocking(move || {
                run(
                    bin(),
                    &a.iter().map(String::as_str).collect::<Vec<_>>(),
                    &kc,
                )
                .0
            })
            .await
            .unwrap();
            if args[0] == "promote" {
                times.push(took.saturating_sub(delay));
            }
        }
        let kc = ctx.kubeconfig();
        tokio::task::spawn_blocking(move || run(bin(), &["abort", "shop"], &kc))
            .await
            .unwrap();
        // The next set-image is a new version each round.
        let mut d = ctx.sim.get("deployments", "default", "shop-green").unwrap();
        d["spec"]["template"]["metadata"]["annotations"] =
            serde_json::json!({"round": times.len().to_string()});
        // An update, not a guarded write: the controllers write status meanwhile.
        d["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        ctx.sim.apply_object("default", d).unwrap();
        ctx.sim.wait_converged("default").await.unwrap();
    }
    rows.push((
        "promote: start → endpoints verified, minus 200 ms propagation".into(),
        ms(median(times)),
        "median of 5".into(),
    ));

    // 4. The app beside 500 unrelated Deployments, each with a Service, one pod and nine
    //    old ReplicaSets (5,000 ReplicaSets in all), against the app alone.
    //    Both worlds run one release cycle first, so that the measured cycle starts from
    //    the same app history (each cycle leaves the app one more ReplicaSet). Reads are
    //    timed once the sim is quiet, with its controllers held: their passes over 5,000
    //    ReplicaSets would compete for these two cores, which is the sim's cost, not ours.
    //    Bytes are medians over three cycles: how many status updates a wait's watch
    //    sees depends on how fast the sim's controllers roll out, which varies.
    //    Both worlds give pods the same 1 s to become Ready, so each rollout's pace is set
    //    by that timer in both and not by how fast the sim's passes go beside 5,000
    //    ReplicaSets: the bytes compare what the commands ask for.
    let paced = Timing {
        pod_ready_after: Duration::from_secs(1),
        ..Timing::default()
    };
    let alone_ctx = world(&[CONTRACT]).await;
    alone_ctx.sim.cluster().set_timing(paced.clone());
    write_cycle_bytes(&alone_ctx, "1.5.0").await;
    let alone_bytes = median_cycle_bytes(&alone_ctx).await;
    settle(&alone_ctx.sim).await;
    let alone = median_of(&alone_ctx.kubeconfig(), &["status", "shop"]).await;
    let alone_reqs = count_requests(&alone_ctx, &["status", "shop"]).await;
    let ctx = world(&[CONTRACT]).await;
    ctx.sim.cluster().set_timing(paced);
    let kc = ctx.kubeconfig();
    write_cycle_bytes(&ctx, "1.5.0").await;
    ctx.sim.load_neighbours("default", 500, 9).await.unwrap();
    let crowded_bytes = median_cycle_bytes(&ctx).await;
    settle(&ctx.sim).await;
    let crowded = median_of(&kc, &["status", "shop"]).await;
    let crowded_reqs = count_requests(&ctx, &["status", "shop"]).await;
    rows.push((
        "`status shop` alone vs beside 500 Deployments (5,000 ReplicaSets, 500 pods, 500 Services)"
            .into(),
        format!("{} vs {}", ms(alone), ms(crowded)),
        format!(
            "{:.2}×; {alone_reqs} vs {crowded_reqs} requests",
            crowded.as_secs_f64() / alone.as_secs_f64()
        ),
    ));
    let change = |a: u64, c: u64| format!("{:+.1} %", (c as f64 / a as f64 - 1.0) * 100.0);
    for ((verb, (a, ar)), (_, (c, cr))) in alone_bytes.iter().zip(&crowded_bytes) {
        rows.push((
            format!("bytes received by `{verb}`, alone vs beside the 500: all / outside watches"),
            format!("{a} vs {c} / {ar} vs {cr}"),
            format!("{} / {}", change(*a, *c), change(*ar, *cr)),
        ));
    }

    // 4b. status with 20 ms per request: one round for an app read before (its hint
    //     kept), two for a first read.
    ctx.sim.cluster().set_timing(Timing {
        latency: Duration::from_millis(20),
        ..Timing::default()
    });
    let slow = median_of(&kc, &["status", "shop"]).await;
    rows.push((
        "`status shop` at 20 ms/request (beside the 500), the app read before: 1 round".into(),
        ms(slow),
        format!(
            "target: process start + 1.2 × 1 round × 20 ms = {}",
            ms(startup + Duration::from_millis(24))
        ),
    ));
    let first = median_cold(&kc, &["status", "shop"]).await;
    rows.push((
        "`status shop` at 20 ms/request (beside the 500), a first read (`KUBECACHEDIR=/dev/null`): 2 rounds".into(),
        ms(first),
        format!(
            "target: process start + 1.2 × 2 rounds × 20 ms = {}",
            ms(startup + Duration::from_millis(48))
        ),
    ));
    // 4c. The same on a modelled network: a new connection also costs its TCP and TLS
    //     round trips (40 ms). The app was read before: one round.
    ctx.sim.cluster().set_timing(Timing {
        latency: Duration::from_millis(20),
        handshake: Duration::from_millis(40),
        ..Timing::default()
    });
    let networked = median_of(&kc, &["status", "shop"]).await;
    ctx.sim.cluster().clear_request_log();
    {
        let kc = kc.clone();
        tokio::task::spawn_blocking(move || run(bin(), &["status", "shop"], &kc))
            .await
            .unwrap();
    }
    let (h1, h2) = ctx.sim.cluster().connections_accepted();
    let k = kubectl.clone();
    let kc2 = kc.clone();
    let theirs = tokio::task::spawn_blocking(move || {
        median(
            (0..RUNS)
                .map(|_| run(&k, &["get", "deploy/shop-blue", "svc/shop"], &kc2).0)
                .collect(),
        )
    })
    .await
    .unwrap();
    ctx.sim.cluster().set_timing(Timing::default());
    ctx.sim.cluster().set_controllers_paused(false);
    rows.push((
        "`status shop` at 20 ms/request and 40 ms per new connection (beside the 500) vs `kubectl get deploy/shop-blue svc/shop`"
            .into(),
        format!("{} vs {}", ms(networked), ms(theirs)),
        format!(
            "connections opened by status: {h2} HTTP/2, {h1} HTTP/1.1; lower bound 1 round × 20 + 40 = 60 ms"
        ),
    ));

    // 5. list -A over 2,000 apps (4,000 Deployments).
    let sim = Sim::start().await.unwrap();
    sim.cluster().set_controllers_paused(true);
    for n in 0..20 {
        let ns = format!("team-{n}");
        sim.apply_yaml(
            "",
            &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}"),
        )
        .unwrap();
        let mut yaml = String::new();
        for i in 0..100 {
            let app = format!("app-{i}");
            yaml.push_str(&format!("---\napiVersion: v1\nkind: Service\nmetadata: {{name: {app}}}\nspec: {{selector: {{app: {app}, bluegreen.io/color: blue}}, ports: [{{port: 80}}]}}\n"));
            for color in ["blue", "green"] {
                yaml.push_str(&format!("---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {app}-{color}}}\nspec:\n  replicas: 0\n  selector: {{matchLabels: {{app: {app}, bluegreen.io/color: {color}}}}}\n  template:\n    metadata: {{labels: {{app: {app}, bluegreen.io/color: {color}}}}}\n    spec: {{containers: [{{name: web, image: web:1}}]}}\n"));
            }
        }
        sim.apply_yaml(&ns, &yaml).unwrap();
    }
    sim.cluster().set_controllers_paused(false);
    sim.wait_for("4,000 ReplicaSets", Duration::from_secs(600), |s| {
        s.cluster().store.list("replicasets", None).0.len() == 4000
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    sim.write_kubeconfig(&dir.path().join("kubeconfig"))
        .unwrap();
    let kc = dir.path().join("kubeconfig");
    sim.cluster().clear_request_log();
    let (took, rss) = tokio::task::spawn_blocking({
        let kc = kc.clone();
        move || {
            run(bin(), &["list", "-A"], &kc);
            let took = median((0..5).map(|_| run(bin(), &["list", "-A"], &kc).0).collect());
            // Peak RSS from GNU time in its own process: a child forked from this large
            // process would count the parent's pages it shared before exec.
            let rss = Command::new("/usr/bin/time")
                .args(["-f", "%M", bin(), "list", "-A"])
                .env("KUBECONFIG", &kc)
                .stdout(std::process::Stdio::null())
                .output()
                .ok()
                .and_then(|o| {
                    String::from_utf8_lossy(&o.stderr)
                        .trim()
                        .lines()
                        .last()
                        .and_then(|l| l.parse::<i64>().ok())
                });
            (took, rss)
        }
    })
    .await
    .unwrap();
    // Five timed runs, one warm-up and one under GNU time.
    let reqs = sim.cluster().request_log().len() / 7;
    let theirs = tokio::task::spawn_blocking({
        let (kc, k) = (kc.clone(), kubectl.clone());
        move || {
            let args = ["get", "deploy,svc,rs,endpointslices", "-A"];
            run(&k, &args, &kc);
            median((0..5).map(|_| run(&k, &args, &kc).0).collect())
        }
    })
    .await
    .unwrap();
    rows.push((
        "`list -A` vs `kubectl get deploy,svc,rs,endpointslices -A`, 2,000 apps".into(),
        format!("{} vs {}", ms(took), ms(theirs)),
        format!("{:.1}× faster", theirs.as_secs_f64() / took.as_secs_f64()),
    ));
    rows.push((
        "`list -A` over 2,000 apps (4,000 Deployments)".into(),
        format!(
            "{}, peak RSS {}",
            ms(took),
            rss.map(|k| format!("{:.1} MB", k as f64 / 1024.0))
                .unwrap_or_else(|| "n/a (needs GNU time)".into())
        ),
        format!("{reqs} requests (Services, then 5 kinds per namespace holding an app)"),
    ));

    println!("| measure | result | note |\n|---|---|---|");
    for (a, b, c) in rows {
        println!("| {a} | {b} | {c} |");
    }
}
