//! How commands read (issue 12): one app's reads are selected by labels and fields, so
//! they do not grow with the namespace; slim decoding keeps every field the model reads;
//! what narrow reads cannot see by selectors is still found (a slot without the app's
//! labels, an unlabelled preview Service, a name taken outside the app).

use crate::{CONTRACT, VERSION_LABEL, World};
use bluegreen_sim::LogEntry;
use kubectl_bluegreen::model;
use kubectl_bluegreen::observe::{self, Detail, Freshness, Reader, Scope};
use std::time::Duration;

const NEIGHBOURS: usize = 40;

/// `n` unrelated Deployments (each with a Service and three old ReplicaSets beside the
/// current one) and a Pod each.
async fn add_neighbours(world: &World, n: usize) {
    let mut yaml = String::new();
    for i in 0..n {
        yaml.push_str(&format!("---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: other-{i}, labels: {{app: other-{i}}}}}\nspec:\n  replicas: 1\n  selector: {{matchLabels: {{app: other-{i}}}}}\n  template:\n    metadata: {{labels: {{app: other-{i}}}}}\n    spec: {{containers: [{{name: c, image: other:0}}]}}\n---\napiVersion: v1\nkind: Service\nmetadata: {{name: other-{i}}}\nspec: {{selector: {{app: other-{i}}}, ports: [{{port: 80}}]}}\n"));
    }
    world.sim.apply_yaml("default", &yaml).unwrap();
    for round in 1..=3 {
        for i in 0..n {
            let mut d = world
                .sim
                .get("deployments", "default", &format!("other-{i}"))
                .unwrap();
            d["spec"]["template"]["spec"]["containers"][0]["image"] =
                format!("other:{round}").into();
            // An update, not a guarded write: the controllers write status meanwhile.
            d["metadata"]
                .as_object_mut()
                .unwrap()
                .remove("resourceVersion");
            world.sim.apply_object("default", d).unwrap();
        }
        world.sim.wait_converged("default").await.unwrap();
    }
    let rs = world.sim.cluster().store.list("replicasets", None).0.len();
    assert!(rs >= n * 3, "{rs} ReplicaSets");
}

/// Waits until the store has taken no write for 300 ms.
async fn quiet(world: &World) {
    world.sim.wait_quiet(Duration::from_millis(300)).await;
}

/// Requests and response bytes of one in-process command.
async fn cost(world: &World, args: &[&str]) -> (Vec<LogEntry>, u64) {
    world.sim.cluster().clear_request_log();
    let out = world.bluegreen(args).await;
    assert_eq!(out.code, 0, "{args:?}: {out:?}");
    // Watch streams end when the command returns; let their last bytes be counted.
    tokio::time::sleep(Duration::from_millis(100)).await;
    (
        world.sim.cluster().request_log(),
        world.sim.cluster().bytes_served(),
    )
}

/// A list or watch of a namespaced kind that selects nothing: whole-namespace reads.
fn unselected(log: &[LogEntry]) -> Vec<String> {
    log.iter()
        .filter(|e| e.method == "GET")
        .filter(|e| {
            let kinds = [
                "/deployments",
                "/replicasets",
                "/pods",
                "/services",
                "/endpointslices",
            ];
            kinds.iter().any(|k| e.path.ends_with(k))
        })
        .filter(|e| !e.query.contains("labelSelector=") && !e.query.contains("fieldSelector="))
        .map(|e| format!("{} ?{}", e.path, e.query))
        .collect()
}

fn shape(log: &[LogEntry]) -> Vec<String> {
    let mut v: Vec<String> = log
        .iter()
        .map(|e| format!("{} {}", e.method, e.path))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_apps_reads_do_not_grow_with_its_neighbours() {
    let world = World::new(&[CONTRACT]).await;
    // Both reads see the app settled: a late status write in between would change its
    // bytes, not the neighbours.
    quiet(&world).await;
    let (alone, alone_bytes) = cost(&world, &["status", "shop"]).await;
    add_neighbours(&world, NEIGHBOURS).await;
    quiet(&world).await;
    let (crowded, crowded_bytes) = cost(&world, &["status", "shop"]).await;
    assert_eq!(
        shape(&alone),
        shape(&crowded),
        "the same requests beside {NEIGHBOURS} neighbours"
    );
    assert!(
        unselected(&crowded).is_empty(),
        "{:#?}",
        unselected(&crowded)
    );
    // The same objects come back; only resourceVersions may have grown a digit.
    assert!(
        crowded_bytes <= alone_bytes + alone_bytes / 50,
        "{alone_bytes} bytes alone, {crowded_bytes} beside the neighbours"
    );

    // The write path too: set-image and promote make only selected reads and watches.
    for args in [
        &[
            "set-image",
            "shop",
            "web=registry.example.com/shop/web:1.5.0",
        ][..],
        &["promote", "shop"],
        &["wait", "shop", "--for=converged", "--timeout=20s"],
        &["abort", "shop"],
        &["history", "shop"],
    ] {
        let (log, _) = cost(&world, args).await;
        assert!(
            unselected(&log).is_empty(),
            "{args:?}: {:#?}",
            unselected(&log)
        );
    }
}

/// Everything the model reads survives slim decoding and narrow reads: over several
/// states of two apps, the apps built from slim objects from the watch cache, from whole
/// objects, and from one app's selected reads are the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slim_whole_and_app_reads_build_the_same_apps() {
    let world = World::new(&[CONTRACT, VERSION_LABEL]).await;
    let client = world.sim.client().await.unwrap();
    let scope = Scope::Namespace("default".into());
    let whole = Reader::new(&client, None);
    let slim = Reader::view(&client, None);
    let fresh_slim = Reader {
        detail: Detail::Lean,
        freshness: Freshness::Fresh,
        ..whole
    };
    let hpa = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: shop}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: shop-blue}\n  minReplicas: 2\n  maxReplicas: 5\n  metrics: [{type: Resource, resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}}]\n";
    let steps: Vec<Vec<&str>> = vec![
        vec![],
        vec![
            "set-image",
            "shop",
            "web=registry.example.com/shop/web:1.5.0",
        ],
        vec!["promote", "shop"],
        vec![
            "set-image",
            "shop",
            "web=registry.example.com/shop/web:crashloop",
            "--timeout=3s",
        ],
        vec!["abort", "shop"],
    ];
    for (i, step) in steps.iter().enumerate() {
        if !step.is_empty() {
            world.bluegreen(step).await;
        }
        if i == 2 {
            world.sim.apply_yaml("default", hpa).unwrap();
            world.sim.wait_converged("default").await.unwrap();
        }
        if i == steps.len() - 1 {
            // Another manager on the Service (slim Services keep managers, not fields).
            use k8s_openapi::api::core::v1::Service;
            use kube::api::{Api, Patch, PatchParams};
            let api: Api<Service> = Api::namespaced(client.clone(), "default");
            let labels = serde_json::json!({"metadata": {"labels": {"team": "web"}}});
            api.patch(
                "shop",
                &PatchParams::apply("argocd-controller"),
                &Patch::Merge(labels),
            )
            .await
            .unwrap();
        }
        // Nothing moves between the reads compared (a reconcile under way finishes).
        world.sim.cluster().set_controllers_paused(true);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let apps = model::build(&whole.snapshot(&scope).await.unwrap());
        assert!(apps.len() >= 2, "{apps:#?}");
        if i == steps.len() - 1 {
            let shop = apps.iter().find(|a| a.name == "shop").unwrap();
            assert_eq!(shop.owner.as_ref().map(|o| o.tool), Some("ArgoCD"));
            assert_eq!(
                shop.services[0].selector_manager.as_deref(),
                Some("kubectl-bluegreen")
            );
        }
        assert_eq!(
            model::build(&slim.snapshot(&scope).await.unwrap()),
            apps,
            "after {step:?}: slim from the cache"
        );
        for app in &apps {
            for reader in [&whole, &fresh_slim] {
                let snap = observe::app(reader, "default", &app.name, None)
                    .await
                    .unwrap();
                assert_eq!(
                    &model::find_app(&snap, "default", &app.name).unwrap(),
                    app,
                    "after {step:?}: app {} from its own reads ({:?})",
                    app.name,
                    reader.detail
                );
            }
        }
        world.sim.cluster().set_controllers_paused(false);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_selectors_cannot_see_is_still_found() {
    let world = World::new(&[CONTRACT]).await;

    // An unlabelled preview Service is still told apart from an app.
    let out = world.bluegreen(&["status", "shop-preview"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("preview Service of app shop"),
        "{out:?}"
    );

    // A slot whose own labels lack the app's labels is found through its ReplicaSets.
    let mut d = world
        .sim
        .get("deployments", "default", "shop-green")
        .unwrap();
    d["metadata"]["labels"] = serde_json::json!({"team": "x"});
    world.sim.apply_object("default", d).unwrap();
    world.sim.cluster().clear_request_log();
    let out = world.bluegreen(&["status", "shop", "-o", "json"]).await;
    assert_eq!(out.code, 0, "{out:?}");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let slots: Vec<&str> = v["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["deployment"].as_str().unwrap())
        .collect();
    assert_eq!(slots, ["shop-blue", "shop-green"], "{}", out.stdout);
    assert!(
        world
            .sim
            .cluster()
            .request_log()
            .iter()
            .any(|e| e.query.contains("fieldSelector=metadata.name%3Dshop-green")),
        "round 3 read it by name"
    );

    // An unknown namespace is said as such.
    let out = world.bluegreen(&["-n", "nowhere", "status", "shop"]).await;
    assert_eq!(out.code, 3, "{out:?}");
    assert!(
        out.stderr.contains("namespace \"nowhere\" not found"),
        "{out:?}"
    );
}

/// set-image's new slot takes a name that belongs to a Deployment outside the app (which
/// the app's narrow reads do not bring): refused with the name, not retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_slots_name_taken_outside_the_app_is_refused() {
    let without_green: String = CONTRACT
        .split("\n---\n")
        .filter(|doc| !doc.contains("name: shop-green\n"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    let world = World::new(&[&without_green]).await;
    world.sim.apply_yaml("default", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: shop-green}\nspec:\n  replicas: 0\n  selector: {matchLabels: {app: unrelated}}\n  template:\n    metadata: {labels: {app: unrelated}}\n    spec: {containers: [{name: c, image: c:1}]}\n").unwrap();
    world.sim.wait_converged("default").await.unwrap();
    let out = world
        .bluegreen(&[
            "set-image",
            "shop",
            "web=registry.example.com/shop/web:1.5.0",
        ])
        .await;
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr
            .contains("deployment shop-green already exists but is not a slot"),
        "{out:?}"
    );
    let unrelated = world
        .sim
        .get("deployments", "default", "shop-green")
        .unwrap();
    assert_eq!(
        unrelated["spec"]["template"]["metadata"]["labels"]["app"], "unrelated",
        "left alone"
    );
}

/// Completion reads the namespace given before the subcommand (`-n NS status <TAB>`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_follows_the_namespace_flag() {
    let world = World::new(&[CONTRACT]).await;
    world
        .sim
        .apply_yaml(
            "",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}",
        )
        .unwrap();
    world.sim.apply_yaml("team-a", VERSION_LABEL).unwrap();
    let kc = world.kubeconfig().display().to_string();
    let words = |w: &[&str]| -> Vec<String> {
        ["--kubeconfig", kc.as_str()]
            .iter()
            .chain(w)
            .map(|s| s.to_string())
            .collect()
    };
    let names = |c: Vec<String>| -> Vec<String> {
        c.into_iter()
            .map(|l| l.split('\t').next().unwrap().to_string())
            .collect()
    };
    use kubectl_bluegreen::cmd::completion::candidates;
    assert_eq!(
        names(candidates(&words(&["-n", "team-a", "status", ""])).await),
        ["demo-service"]
    );
    assert_eq!(
        names(candidates(&words(&["status", "--namespace=team-a", ""])).await),
        ["demo-service"]
    );
    assert_eq!(
        names(candidates(&words(&["promote", "sh"])).await),
        ["shop"]
    );
}

/// The requests a command sends at once share one connection: the plugin offers
/// HTTP/2, as client-go does, and the requests sent before the first connection is up
/// wait for it instead of each opening one (`FirstConnect` in connect.rs). Over
/// HTTP/1.1 `status` would open one connection per request in flight; before that
/// wait, over HTTP/2, a read of a known app (8 requests at once) made 8 TCP and TLS
/// handshakes and closed 7.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commands_requests_share_one_http2_connection() {
    let world = World::new(&[CONTRACT]).await;
    // A first read (two rounds), then one of a known app (one round of 8).
    for read in ["first", "known"] {
        world.sim.cluster().clear_request_log();
        let out = world.bluegreen(&["status", "shop"]).await;
        assert_eq!(out.code, 0, "{out:?}");
        let requests = world.sim.cluster().request_log().len();
        let (http1, http2) = world.sim.cluster().connections_accepted();
        assert_eq!(http1, 0, "{read} read: HTTP/1.1 connections");
        assert_eq!(
            http2, 1,
            "{read} read: HTTP/2 connections for its {requests} requests"
        );
    }
    // Behind a proxy that speaks HTTP/1.1 only, the waiting requests connect on their
    // own once the first connection says so: one connection per request in flight.
    world.sim.cluster().set_http1_only(true);
    world.sim.cluster().clear_request_log();
    let http1 = world.bluegreen(&["status", "shop"]).await;
    assert_eq!(http1.code, 0, "{http1:?}");
    assert_eq!(
        http1.stdout,
        world.bluegreen(&["status", "shop"]).await.stdout
    );
    let (http1, http2) = world.sim.cluster().connections_accepted();
    assert_eq!(http2, 0);
    assert!(
        (2..=16).contains(&http1),
        "{http1} HTTP/1.1 connections for two reads of 8 requests at once"
    );
}
