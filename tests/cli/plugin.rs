//! The binary as users run it: `kubectl bluegreen …` through kubectl's plugin dispatch
//! (the binary's directory on PATH), against the sim over HTTPS.

use crate::{CONTRACT, Out, VERSION_LABEL, World, kubectl};
use bluegreen_sim::Timing;
use serde_json::Value;
use std::time::Duration;

async fn bluegreen(world: &World, args: &[&str]) -> Option<Out> {
    let k = kubectl()?;
    let mut full = vec!["bluegreen"];
    full.extend_from_slice(args);
    Some(world.run(&k, &full, &[]).await)
}

#[track_caller]
fn ok(out: &Out) -> &str {
    assert_eq!(out.code, 0, "{out:?}");
    &out.stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_list_and_history_through_kubectl() {
    let world = World::new(&[CONTRACT, VERSION_LABEL]).await;
    let Some(out) = bluegreen(&world, &["status", "shop"]).await else {
        return;
    };
    let text = ok(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Context: sim   Namespace: default   App: shop");
    assert_eq!(
        lines[1],
        "Services: shop (active → blue), shop-preview (preview → green)"
    );
    assert_eq!(lines[2], "Last switch: none recorded");
    assert!(lines[4].starts_with("COLOR   ROLE      DEPLOYMENT   IMAGES                    READY   UP-TO-DATE   AVAILABLE   REV   AGE"), "{text}");
    assert!(lines[5].starts_with("blue    active    shop-blue    web:1.4.2, exporter:0.9   3/3     3            3           1     "), "{text}");
    assert!(lines[5].ends_with("shop 3/3"), "{text}");
    assert!(lines[6].starts_with("green   preview   shop-green   web:1.4.2, exporter:0.9   0/0     0            0           1     "), "{text}");
    assert!(!text.contains("Warning"), "{text}");
    assert!(
        !text.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );

    let out = bluegreen(&world, &["status", "demo-service"])
        .await
        .unwrap();
    let text = ok(&out);
    assert!(
        text.contains("v1      active    demo-dp-v1   demo:v1   3/3"),
        "{text}"
    );
    assert!(
        text.contains("v2      preview   demo-dp-v2   demo:v2   3/3"),
        "{text}"
    );

    let out = bluegreen(&world, &["list"]).await.unwrap();
    let names: Vec<&str> = ok(&out)
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names, ["demo-service", "shop"]);
    let out = bluegreen(&world, &["list", "-A"]).await.unwrap();
    assert!(ok(&out).starts_with("NAMESPACE   APP "), "{}", out.stdout);

    let out = bluegreen(&world, &["history", "shop"]).await.unwrap();
    assert_eq!(
        ok(&out),
        "No switches recorded for app shop (Service shop).\n"
    );
    let out = bluegreen(&world, &["status", "-l", "bluegreen.io/app=shop"])
        .await
        .unwrap();
    assert!(ok(&out).starts_with("Context: sim   Namespace: default   App: shop\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_output_is_versioned_and_complete() {
    let world = World::new(&[CONTRACT]).await;
    let Some(out) = bluegreen(&world, &["status", "shop", "-o", "json"]).await else {
        return;
    };
    let doc: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(
        (doc["apiVersion"].as_str(), doc["kind"].as_str()),
        (Some("bluegreen.io/v1"), Some("AppStatus"))
    );
    assert_eq!(doc["name"], "shop");
    assert_eq!(doc["activeColor"], "blue");
    assert_eq!(doc["colorLabel"], "bluegreen.io/color");
    assert_eq!(doc["slots"][0]["role"], "active");
    assert_eq!(
        doc["slots"][0]["serving"][0],
        serde_json::json!({"service": "shop", "readyEndpoints": 3})
    );
    assert_eq!(doc["slots"][0]["rolledOut"], true);
    assert_eq!(doc["previewService"]["name"], "shop-preview");
    let out = bluegreen(&world, &["status", "shop", "-o", "yaml"])
        .await
        .unwrap();
    let yaml: Value = serde_saphyr::from_str(ok(&out)).unwrap();
    assert_eq!(yaml, doc, "yaml and json carry the same document");
    let out = bluegreen(&world, &["list", "-o", "json"]).await.unwrap();
    let list: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(list["kind"], "AppStatusList");
    assert_eq!(list["items"][0], doc);
    let out = bluegreen(&world, &["history", "shop", "-o", "json"])
        .await
        .unwrap();
    let h: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(
        (h["kind"].as_str(), h["items"].as_array().map(Vec::len)),
        (Some("AppHistory"), Some(0))
    );
    let out = bluegreen(&world, &["status", "shop", "-o", "wide"])
        .await
        .unwrap();
    assert!(
        ok(&out)
            .lines()
            .nth(4)
            .unwrap()
            .ends_with("SERVING    HASH         GENERATION   CONDITIONS"),
        "{}",
        out.stdout
    );
}

/// A request as the sim logged it: method, path and query.
fn line(e: &bluegreen_sim::LogEntry) -> String {
    format!("{} {}?{}", e.method, e.path, e.query)
}

/// The requests of one command, in order of arrival.
fn requests_of(world: &World) -> Vec<bluegreen_sim::LogEntry> {
    let mut log = world.sim.cluster().request_log();
    log.sort_by_key(|e| e.arrived);
    log
}

/// Whether every request of `round` was in flight at one moment.
fn in_flight_together(round: &[bluegreen_sim::LogEntry]) -> bool {
    round.iter().map(|e| e.arrived).max() < round.iter().map(|e| e.completed).min()
}

/// `status APP` reads in two rounds of concurrent, selected lists (observe/app.rs): the
/// app's Services (by name and by label) and the HPAs; then what the Services select.
/// Round 2's questions are kept as a hint (observe/hints.rs), so the next read of the
/// app sends them along with round 1: one round, the same requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_a_new_app_in_two_concurrent_rounds_and_a_known_one_in_one() {
    let world = World::new(&[CONTRACT]).await;
    world.sim.cluster().set_timing(Timing {
        latency: Duration::from_millis(300),
        ..Timing::default()
    });
    world.sim.cluster().clear_request_log();
    let cold = world.plugin(&["status", "shop", "-o", "json"]).await;
    assert_eq!(cold.code, 0, "{cold:?}");
    let log = requests_of(&world);
    let lines: Vec<String> = log.iter().map(line).collect();
    let has = |e: &bluegreen_sim::LogEntry, path: &str, query: &str| {
        e.path.ends_with(path) && e.query.contains(query)
    };
    let (first, second) = log.split_at(3);
    for (path, query) in [
        ("/services", "fieldSelector=metadata.name%3Dshop"),
        ("/services", "labelSelector=bluegreen.io%2Fapp%3Dshop"),
        ("/horizontalpodautoscalers", ""),
    ] {
        assert!(
            first.iter().any(|e| has(e, path, query)),
            "round 1 lacks {path}?{query}: {lines:#?}"
        );
    }
    for (path, query) in [
        (
            "/deployments",
            "labelSelector=app.kubernetes.io%2Fname%3Dshop",
        ),
        (
            "/replicasets",
            "labelSelector=app.kubernetes.io%2Fname%3Dshop",
        ),
        ("/pods", "labelSelector=app.kubernetes.io%2Fname%3Dshop"),
        (
            "/endpointslices",
            "labelSelector=kubernetes.io%2Fservice-name",
        ),
        ("/services", "fieldSelector=metadata.name%3Dshop-preview"),
    ] {
        assert!(
            second.iter().any(|e| has(e, path, query)),
            "round 2 lacks {path}?{query}: {lines:#?}"
        );
    }
    assert_eq!(log.len(), 8, "{lines:#?}");
    assert!(
        in_flight_together(first),
        "round 1 in flight together: {log:#?}"
    );
    assert!(
        in_flight_together(second),
        "round 2 in flight together: {log:#?}"
    );
    assert!(
        !in_flight_together(&log),
        "a new app's round 2 waits for round 1: {log:#?}"
    );
    assert!(
        log.iter()
            .all(|e| e.method == "GET" && e.query.contains("resourceVersion=0")),
        "lists from the watch cache: {lines:#?}"
    );

    world.sim.cluster().clear_request_log();
    let warm = world.plugin(&["status", "shop", "-o", "json"]).await;
    assert_eq!(warm.stdout, cold.stdout, "the same table from one round");
    let again = requests_of(&world);
    let mut asked: Vec<String> = again.iter().map(line).collect();
    let mut before = lines.clone();
    asked.sort();
    before.sort();
    assert_eq!(asked, before, "the same requests");
    assert!(in_flight_together(&again), "all in one round: {again:#?}");
}

/// A hint that no longer fits (here: selectors of another app, as after the Service's
/// selector was edited) costs its requests and a second round, never a wrong table; the
/// hint is then mended, so the next read takes one round again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_read_hint_costs_a_round_never_a_wrong_answer() {
    let world = World::new(&[CONTRACT]).await;
    let cold = world.plugin(&["status", "shop", "-o", "json"]).await;
    assert_eq!(cold.code, 0, "{cold:?}");
    let file = std::fs::read_dir(world.dir.path().join(".kube/cache/bluegreen"))
        .unwrap()
        .next()
        .expect("one server's hints")
        .unwrap()
        .path()
        .join("default/shop.json");
    let kept = std::fs::read_to_string(&file).unwrap();
    let stale = kept
        .replace(
            "app.kubernetes.io/name=shop",
            "app.kubernetes.io/name=other",
        )
        .replace("(shop,shop-preview)", "(other)");
    assert_ne!(stale, kept, "{kept}");
    for wrong in [stale.as_str(), "{not json", ""] {
        std::fs::write(&file, wrong).unwrap();
        world.sim.cluster().set_timing(Timing {
            latency: Duration::from_millis(200),
            ..Timing::default()
        });
        world.sim.cluster().clear_request_log();
        let out = world.plugin(&["status", "shop", "-o", "json"]).await;
        assert_eq!(out.stdout, cold.stdout, "hint {wrong:?}");
        let log = requests_of(&world);
        let lines: Vec<String> = log.iter().map(line).collect();
        assert!(!in_flight_together(&log), "two rounds: {lines:#?}");
        let wasted = if wrong == stale { 5 } else { 0 };
        assert_eq!(log.len(), 8 + wasted, "hint {wrong:?}: {lines:#?}");
        assert_eq!(std::fs::read_to_string(&file).unwrap(), kept, "mended");

        world.sim.cluster().clear_request_log();
        let out = world.plugin(&["status", "shop", "-o", "json"]).await;
        assert_eq!(out.stdout, cold.stdout);
        let log = requests_of(&world);
        assert!(in_flight_together(&log), "one round again: {log:#?}");
        world.sim.cluster().set_timing(Timing::default());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_redraws_on_a_change_and_exits_0_on_ctrl_c() {
    let world = World::new(&[CONTRACT]).await;
    let Some(k) = kubectl() else { return };
    let bin = crate::plugin_bin();
    let bin_dir = bin.parent().unwrap();
    let mut child = tokio::process::Command::new(k)
        .args(["bluegreen", "status", "shop", "--watch"])
        .env("KUBECONFIG", world.kubeconfig())
        .env("KUBECACHEDIR", crate::cache_of(&world.kubeconfig()))
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = String::new();
    let scaled = async {
        let mut changed = false;
        while let Some(l) = lines.next_line().await.unwrap() {
            seen.push_str(&l);
            seen.push('\n');
            if !changed && l.starts_with("green ") {
                // First frame drawn: scale the preview slot and wait for the redraw.
                let mut d = world
                    .sim
                    .get("deployments", "default", "shop-green")
                    .unwrap();
                d["spec"]["replicas"] = 2.into();
                world.sim.apply_object("default", d).unwrap();
                changed = true;
            } else if changed && l.starts_with("green ") && l.contains(" 2/2 ") {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), scaled)
        .await
        .unwrap_or_else(|_| panic!("no redraw; saw:\n{seen}"));
    assert!(seen.matches("Context: sim").count() >= 2, "{seen}");
    // Ctrl-C: kubectl forwards nothing itself, so signal the plugin (kubectl execs it).
    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

/// Ctrl-C while `--watch` is reading the app for a frame (each request slowed to 300 ms,
/// so a read takes two rounds of that) must still end the watch: a Ctrl-C listener made
/// anew on each turn of the loop would miss it, and the watch would go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_exits_on_a_ctrl_c_that_comes_while_a_frame_is_being_read() {
    let sim = bluegreen_sim::Sim::start_with(Timing {
        latency: Duration::from_millis(300),
        ..Timing::default()
    })
    .await
    .unwrap();
    sim.apply_yaml("default", CONTRACT).unwrap();
    sim.wait_converged("default").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    sim.write_kubeconfig(&dir.path().join("kubeconfig"))
        .unwrap();
    let world = World { sim, dir };
    let reads = |w: &World| {
        w.sim
            .cluster()
            .request_log()
            .iter()
            .filter(|r| r.path.ends_with("/services") && r.query.contains("metadata.name%3Dshop&"))
            .count()
    };
    let child = world.spawn(&crate::plugin_bin(), &["status", "shop", "--watch"]);
    // The first frame's read, then the watches' start marks the app changed: the second
    // read begins. Its first round answered, its second is in flight: Ctrl-C now.
    tokio::time::timeout(Duration::from_secs(20), async {
        while reads(&world) < 2 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a second read of the app");
    let out = crate::interrupt(child).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Context: sim"), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_survives_dropped_watch_streams() {
    let world = World::new(&[CONTRACT]).await;
    // Every watch stream is cut after one event: the plugin must re-watch and keep drawing.
    world
        .sim
        .cluster()
        .set_watch_faults(bluegreen_sim::WatchFaults {
            close_after_events: Some(1),
            close_after: None,
        });
    let mut child = tokio::process::Command::new(crate::plugin_bin())
        .args(["status", "shop", "--watch"])
        .env("KUBECONFIG", world.kubeconfig())
        .env("KUBECACHEDIR", crate::cache_of(&world.kubeconfig()))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut replicas = 0;
    let run = async {
        while let Some(l) = lines.next_line().await.unwrap() {
            if l.starts_with("green ") && l.contains(&format!(" {replicas}/{replicas} ")) {
                if replicas == 3 {
                    return;
                }
                replicas += 1;
                let mut d = world
                    .sim
                    .get("deployments", "default", "shop-green")
                    .unwrap();
                d["spec"]["replicas"] = replicas.into();
                world.sim.apply_object("default", d).unwrap();
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("kept redrawing across dropped watches");
    let rewatches = world
        .sim
        .cluster()
        .request_log()
        .iter()
        .filter(|e| e.query.contains("watch=true"))
        .count();
    assert!(
        rewatches > 4,
        "the streams were re-established ({rewatches} watch requests)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colour_only_on_a_terminal_and_never_with_no_color() {
    let world = World::new(&[CONTRACT]).await;
    let script = std::process::Command::new("script")
        .arg("--version")
        .output();
    if script.is_err() {
        eprintln!("skipping: `script` (util-linux) is not installed");
        return;
    }
    let bin = crate::plugin_bin().display().to_string();
    let run_in_pty = |extra_env: &str| {
        let cmd = format!("{extra_env} {bin} status shop");
        std::process::Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .env("KUBECONFIG", world.kubeconfig())
            .env("KUBECACHEDIR", crate::cache_of(&world.kubeconfig()))
            .env_remove("NO_COLOR")
            .output()
            .unwrap()
    };
    let tty = run_in_pty("");
    let text = String::from_utf8_lossy(&tty.stdout);
    assert!(
        text.contains("\x1b[32mactive\x1b[0m"),
        "coloured on a terminal: {text:?}"
    );
    let plain = run_in_pty("NO_COLOR=1");
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(
        text.contains("active") && !text.contains("\x1b["),
        "NO_COLOR: {text:?}"
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &format!("{bin} status shop -o json"), "/dev/null"])
        .env("KUBECONFIG", world.kubeconfig())
        .env("KUBECACHEDIR", crate::cache_of(&world.kubeconfig()))
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("\x1b["),
        "never in -o json"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipe_exits_0_silently() {
    let world = World::new(&[]).await;
    // Enough apps that the JSON overflows the pipe buffer after `head` has gone.
    let mut yaml = String::new();
    for i in 0..400 {
        yaml.push_str(&format!("---\napiVersion: v1\nkind: Service\nmetadata: {{name: app-{i}}}\nspec: {{selector: {{app: app-{i}, bluegreen.io/color: blue}}, ports: [{{port: 80}}]}}\n"));
    }
    world.sim.apply_yaml("default", &yaml).unwrap();
    let bin = crate::plugin_bin().display().to_string();
    let out = std::process::Command::new("bash")
        .args([
            "-c",
            &format!(
                "{bin} list -o json | head -c 10 >/dev/null; echo \"exit=${{PIPESTATUS[0]}}\""
            ),
        ])
        .env("KUBECONFIG", world.kubeconfig())
        .env("KUBECACHEDIR", crate::cache_of(&world.kubeconfig()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "exit=0\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "silently");
}
