//! The README's examples, run in order through the real `kubectl` plugin dispatch against
//! the demo cluster (`bluegreen-sim --scenario demo`, what `scripts/demo up` starts), so
//! that the README cannot drift from the tool: every line of its "Every command with an
//! example" block must run and exit 0, in the order a reader follows it.

use crate::World;
use bluegreen_sim::Sim;
use std::time::Duration;

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

/// Runs one example that waits for Ctrl-C (`--watch`, a `--scale-down-old` countdown)
/// through kubectl: interrupts it once `ready` holds for the sim (60 s at most), and a
/// moment more (what got ready may be a step before the wait itself begins).
async fn interrupted(
    world: &World,
    kubectl: &std::path::Path,
    args: &[String],
    ready: impl Fn(&Sim) -> bool,
) -> crate::Out {
    let mut argv = vec!["bluegreen"];
    argv.extend(args.iter().map(String::as_str));
    let child = world.spawn(kubectl, &argv);
    // Polled: the request log that tells a watch has started is not a store change.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !ready(&world.sim) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "`{}` never got ready",
            args.join(" ")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    crate::interrupt(child).await
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
            // Redrawn frames follow watches, which start after the first frame.
            world.sim.cluster().clear_request_log();
            let out = interrupted(&world, &kubectl, &args, |s| {
                s.cluster()
                    .request_log()
                    .iter()
                    .any(|r| r.query.contains("watch=true"))
            })
            .await;
            assert_eq!(out.code, 0, "{line}: {out:?}");
            assert!(out.stdout.contains("shop"), "{line}: {out:?}");
            continue;
        }
        if args.iter().any(|a| a.starts_with("--scale-down-old")) {
            let app = &args[1];
            let before = history_len(&world.sim, app);
            // Ctrl-C once the switch is recorded, during the countdown its prompt names.
            let out = interrupted(&world, &kubectl, &args, |s| history_len(s, app) > before).await;
            assert_eq!(out.code, 0, "{line}: {out:?}");
            assert!(
                out.stdout.contains("the old slot is kept"),
                "{line}: {out:?}"
            );
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
