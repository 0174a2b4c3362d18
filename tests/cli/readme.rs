//! The README's examples, run in order through the real `kubectl` plugin dispatch against
//! the demo cluster (`bluegreen-sim --scenario demo`, what `scripts/demo up` starts), so
//! that the README cannot drift from the tool: every line of its "Every command with an
//! example" block must run and exit 0, in the order a reader follows it.

use crate::World;
use bluegreen_sim::Sim;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

const README: &str = include_str!("../../README.md");

/// The example block's commands, as plugin arguments (`kubectl bluegreen ARGS # note`;
/// a redirect is left out: the output is checked instead).
fn readme_examples() -> Vec<Vec<String>> {
    let start = README
        .find("Every command with an example")
        .expect("the README's example block");
    let block = &README[start..];
    let block = &block[block.find("```sh\n").expect("its code fence") + 6..];
    let block = &block[..block.find("```").expect("its end")];
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let command = line.split(" #").next().unwrap().split(" >").next().unwrap();
            let words: Vec<String> = command.split_whitespace().map(String::from).collect();
            match words.as_slice() {
                [k, b, rest @ ..] if k == "kubectl" && b == "bluegreen" => rest.to_vec(),
                [p, rest @ ..] if p == "kubectl-bluegreen" => rest.to_vec(),
                _ => panic!("README example is not a plugin command: {line}"),
            }
        })
        .collect()
}

#[test]
fn the_example_block_is_found_and_names_every_command() {
    let examples = readme_examples();
    for verb in [
        "status",
        "list",
        "history",
        "set-image",
        "wait",
        "promote",
        "abort",
        "init",
        "version",
        "completion",
    ] {
        assert!(
            examples.iter().any(|e| e[0] == verb),
            "no README example runs {verb}: {examples:?}"
        );
    }
}

fn history_len(sim: &Sim, service: &str) -> usize {
    sim.get("services", "default", service)
        .and_then(|s| {
            s["metadata"]["annotations"]["bluegreen.io/history"]
                .as_str()
                .and_then(|h| serde_json::from_str::<Vec<serde_json::Value>>(h).ok())
        })
        .map_or(0, |h| h.len())
}

/// Runs one example that waits for Ctrl-C (`--watch`, a `--scale-down-old` countdown):
/// interrupts it once `ready` holds (checked every 100 ms, 60 s at most) and returns its
/// exit code and output.
async fn interrupted(
    world: &World,
    kubectl: &std::path::Path,
    args: &[String],
    ready: impl Fn(&str) -> bool,
) -> (Option<i32>, String) {
    let bin_dir = crate::plugin_bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = tokio::process::Command::new(kubectl)
        .arg("bluegreen")
        .args(args)
        .env("KUBECONFIG", world.kubeconfig())
        .env("HOME", world.dir.path())
        .env("PATH", path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let out = out.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                out.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !ready(&out.lock().unwrap()) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "`{}` never got ready: {}",
            args.join(" "),
            out.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What got ready may be a step before the wait itself begins (a countdown starts
    // just after the switch is recorded).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // A process (the plugin), not kubectl's: kubectl execs the plugin in its place.
    std::process::Command::new("kill")
        .args(["-INT", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("stops on Ctrl-C")
        .unwrap();
    reader.await.unwrap();
    let mut err = String::new();
    stderr.read_to_string(&mut err).await.unwrap();
    let text = format!("{}{err}", out.lock().unwrap());
    (status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_examples_run_in_order_against_the_demo_cluster() {
    let Some(kubectl) = crate::kubectl() else {
        return;
    };
    let world = World::new(&[]).await;
    world.sim.load_demo_cluster().await.unwrap();
    for args in readme_examples() {
        let line = args.join(" ");
        if args.iter().any(|a| a == "--watch") {
            let (code, out) = interrupted(&world, &kubectl, &args, |o| o.contains("shop")).await;
            assert_eq!(code, Some(0), "{line}: {out}");
            continue;
        }
        if args.iter().any(|a| a.starts_with("--scale-down-old")) {
            let app = &args[1];
            let before = history_len(&world.sim, app);
            let sim = &world.sim;
            // Ctrl-C once the switch is recorded, during the countdown its prompt names.
            let (code, out) =
                interrupted(&world, &kubectl, &args, |_| history_len(sim, app) > before).await;
            assert_eq!(code, Some(0), "{line}: {out}");
            assert!(out.contains("the old slot is kept"), "{line}: {out}");
            continue;
        }
        let mut argv = vec!["bluegreen"];
        argv.extend(args.iter().map(String::as_str));
        let out = world.run(&kubectl, &argv, &[]).await;
        assert_eq!(out.code, 0, "`kubectl bluegreen {line}` failed: {out:?}");
        assert!(!out.stdout.trim().is_empty(), "{line} printed nothing");
    }
    // The examples did what they say: payments promoted, nginx-svc adopted.
    let payments = world.sim.get("services", "default", "payments").unwrap();
    assert_eq!(payments["spec"]["selector"]["bluegreen.io/color"], "green");
    let nginx = world.sim.get("services", "default", "nginx-svc").unwrap();
    assert!(
        nginx["spec"]["selector"]["bluegreen.io/color"].is_string(),
        "{nginx}"
    );
}
