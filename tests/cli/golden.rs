//! Whole renderings compared with files in `tests/golden/`: the real observe → model →
//! render path against the sim, with creation times pinned and a fixed clock so that
//! ages are stable.

use crate::{CONTRACT, VERSION_LABEL, World};
use kubectl_bluegreen::cli::Output;
use kubectl_bluegreen::model;
use kubectl_bluegreen::observe::{self, Scope, Snapshot};
use kubectl_bluegreen::render::{self, Style};
use std::path::Path;

const CREATED: &str = "2026-11-10T00:00:00Z";
const NOW: &str = "2026-11-22T00:00:00Z";

#[track_caller]
pub fn check(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing golden file {} (run with BLESS=1)", path.display()));
    if expected != actual {
        panic!(
            "{name} differs from the golden file\n--- expected\n{expected}--- actual\n{actual}---"
        );
    }
}

async fn snapshot(world: &World, scope: Scope) -> Snapshot {
    let client = world.sim.client().await.unwrap();
    let mut snap = observe::Reader::new(&client, None)
        .snapshot(&scope)
        .await
        .unwrap();
    let pinned: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time =
        serde_json::from_value(serde_json::json!(CREATED)).unwrap();
    for d in &mut snap.deployments {
        d.metadata.creation_timestamp = Some(pinned.clone());
    }
    snap
}

fn now() -> jiff::Timestamp {
    NOW.parse().unwrap()
}

const HISTORY: &str = r#"[{"action":"abort","from":"green","to":"blue","images":["registry.example.com/shop/web:1.4.2"],"at":"2026-11-21T22:00:00Z","by":"alice@example.com"},{"action":"promote","from":"blue","to":"green","images":["registry.example.com/shop/web:1.5.0"],"at":"2026-11-21T21:30:00Z","by":"alice@example.com"}]"#;

async fn contract_with_history() -> World {
    let world = World::new(&[CONTRACT]).await;
    let mut svc = world.sim.get("services", "default", "shop").unwrap();
    svc["metadata"]["annotations"]["bluegreen.io/history"] = HISTORY.into();
    svc["metadata"]["annotations"]["bluegreen.io/previous-color"] = "green".into();
    world.sim.apply_object("default", svc).unwrap();
    world
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_the_contract_app() {
    let world = contract_with_history().await;
    let snap = snapshot(&world, Scope::Namespace("default".into())).await;
    let apps = model::build(&snap);
    let shop = std::slice::from_ref(apps.iter().find(|a| a.name == "shop").unwrap());
    let style = Style::default();
    check(
        "status-contract.txt",
        &kubectl_bluegreen::render::status::show(shop, "sim", Output::Table, now(), style).unwrap(),
    );
    check(
        "status-contract-wide.txt",
        &kubectl_bluegreen::render::status::show(shop, "sim", Output::Wide, now(), style).unwrap(),
    );
    check(
        "status-contract.json",
        &kubectl_bluegreen::render::status::show(shop, "sim", Output::Json, now(), style).unwrap(),
    );
    check(
        "status-contract.yaml",
        &kubectl_bluegreen::render::status::show(shop, "sim", Output::Yaml, now(), style).unwrap(),
    );
    check(
        "history-contract.txt",
        &render::history::render(&shop[0], now()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_of_the_version_label_app_unchanged() {
    let world = World::new(&[VERSION_LABEL]).await;
    let snap = snapshot(&world, Scope::Namespace("default".into())).await;
    let apps = model::build(&snap);
    assert_eq!(apps.len(), 1);
    check(
        "status-version-label.txt",
        &kubectl_bluegreen::render::status::show(
            &apps,
            "sim",
            Output::Table,
            now(),
            Style::default(),
        )
        .unwrap(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_across_namespaces() {
    let world = contract_with_history().await;
    world.sim.apply_yaml("default", VERSION_LABEL).unwrap();
    world
        .sim
        .apply_yaml(
            "default",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: payments}",
        )
        .unwrap();
    // An app with one slot in another namespace: listed with its problem.
    world
        .sim
        .apply_yaml(
            "payments",
            &CONTRACT
                .split("\n---\n")
                .filter(|d| !d.contains("shop-green") && !d.contains("name: shop-preview"))
                .collect::<Vec<_>>()
                .join("\n---\n"),
        )
        .unwrap();
    world.sim.wait_converged("default").await.unwrap();
    world.sim.wait_converged("payments").await.unwrap();
    let snap = snapshot(&world, Scope::All).await;
    let apps = model::build(&snap);
    check("list-all.txt", &render::list::render(&apps, true, now()));
    let in_default: Vec<_> = apps
        .into_iter()
        .filter(|a| a.namespace == "default")
        .collect();
    check(
        "list-default.txt",
        &render::list::render(&in_default, false, now()),
    );
}
