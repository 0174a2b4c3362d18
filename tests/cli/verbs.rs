//! Verbs run in-process through the library entry (`World::bluegreen`): stdout captured,
//! the clock fixed, so that what mutating commands print — the `--dry-run=client` plan,
//! the server dry run's summary, the `-l` results — is compared with golden files, and
//! the long-Deployment-name case runs end to end.

use crate::golden::check;
use crate::{CONTRACT, Out, World};
use serde_json::Value;

#[track_caller]
fn ok(out: &Out) -> &str {
    assert_eq!(out.code, 0, "{out:?}");
    &out.stdout
}

/// resourceVersions depend on how many writes the sim's controllers made first.
fn redact_versions(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    let key = "\"resourceVersion\":\"";
    while let Some(i) = rest.find(key) {
        out.push_str(&rest[..i + key.len()]);
        rest = &rest[i + key.len()..];
        let end = rest.find('"').unwrap_or(rest.len());
        out.push_str("RV");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The contract app with green rolled out at a new version, ready to promote.
async fn ready_to_promote(fixtures: &[&str]) -> World {
    let world = World::new(fixtures).await;
    ok(&world
        .bluegreen(&[
            "set-image",
            "shop",
            "web=registry.example.com/shop/web:1.5.0",
        ])
        .await);
    world
}

/// A second app, `cart`, like `shop`; both Services labelled team=payments.
fn team_of_two() -> (String, String) {
    let shop = CONTRACT.replace(
        "    bluegreen.io/app: shop\n",
        "    bluegreen.io/app: shop\n    team: payments\n",
    );
    let cart = shop.replace("shop", "cart");
    (shop, cart)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_client_prints_the_exact_plan() {
    let world = ready_to_promote(&[CONTRACT]).await;
    let out = world
        .bluegreen(&["promote", "shop", "--dry-run=client", "--scale-down-old=1m"])
        .await;
    check("promote-dry-run-client.txt", &redact_versions(ok(&out)));
    let out = world
        .bluegreen(&["promote", "shop", "--dry-run=client", "-o", "json"])
        .await;
    let doc: Value = serde_json::from_str(ok(&out)).unwrap();
    assert_eq!(doc["kind"], "Plan");
    assert_eq!(doc["action"], "promote");
    assert_eq!(
        doc["steps"][1]["patch"]["metadata"]["annotations"]["bluegreen.io/history"]
            .as_str()
            .map(|h| h.contains(crate::FIXED_NOW)),
        Some(true),
        "the history entry is stamped by the injected clock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_server_says_what_the_server_would_store() {
    let world = ready_to_promote(&[CONTRACT]).await;
    let before = world.sim.get("services", "default", "shop").unwrap();
    let out = world
        .bluegreen(&["promote", "shop", "--dry-run=server"])
        .await;
    check("promote-dry-run-server.txt", &redact_versions(ok(&out)));
    assert_eq!(
        world.sim.get("services", "default", "shop").unwrap()["metadata"]["resourceVersion"],
        before["metadata"]["resourceVersion"],
        "nothing was changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_by_selector_ends_with_a_results_table_and_the_worst_code() {
    let (shop, cart) = team_of_two();
    let world = ready_to_promote(&[&shop, &cart]).await;
    // shop's preview is ready, cart's is idle at 0 replicas: one promoted, one refused.
    let out = world.bluegreen(&["promote", "-l", "team=payments"]).await;
    assert_eq!(out.code, 4, "the worst exit code of the apps: {out:?}");
    assert_eq!(out.stderr, "error: 1 of 2 apps failed\n");
    check("promote-selector.txt", &out.stdout);
    assert_eq!(
        world.sim.get("services", "default", "shop").unwrap()["spec"]["selector"]["bluegreen.io/color"],
        "green"
    );
    assert_eq!(
        world.sim.get("services", "default", "cart").unwrap()["spec"]["selector"]["bluegreen.io/color"],
        "blue"
    );

    // The same as a document, with stable reasons: shop's promote is already done.
    let out = world
        .bluegreen(&["promote", "-l", "team=payments", "-o", "json"])
        .await;
    assert_eq!(out.code, 4, "{out:?}");
    let doc: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(doc["kind"], "ResultList");
    let items: Vec<(&str, u64, &str)> = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["app"].as_str().unwrap(),
                i["exitCode"].as_u64().unwrap(),
                i["reason"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    assert_eq!(items, [("cart", 4, "PreviewEmpty"), ("shop", 0, "-")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_52_character_deployment_name_is_served_and_promoted() {
    let long = "payments-api-gateway-eu-west-1-canary-release-v";
    let yaml = CONTRACT
        .replace("name: shop-blue", &format!("name: {long}-blue"))
        .replace("name: shop-green", &format!("name: {long}-green"));
    assert_eq!(format!("{long}-blue").len(), 52);
    let world = World::new(&[&yaml]).await;
    let status = |out: &Out| -> Value { serde_json::from_str(ok(out)).unwrap() };

    let doc = status(&world.bluegreen(&["status", "shop", "-o", "json"]).await);
    assert_eq!(doc["problems"], serde_json::json!([]), "{doc:#}");
    let blue = &doc["slots"][0];
    assert_eq!(blue["deployment"], format!("{long}-blue"));
    assert_eq!(
        blue["serving"],
        serde_json::json!([{"service": "shop", "readyEndpoints": 3}]),
        "every endpoint is attributed to its slot, though the pod names are cut"
    );
    let pod_names: Vec<String> = world
        .sim
        .list("pods", "default")
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
        .collect();
    assert!(
        pod_names.iter().all(|p| p.len() == 63),
        "the sim cuts generated names like the API server: {pod_names:?}"
    );

    ok(&world
        .bluegreen(&[
            "set-image",
            "shop",
            "web=registry.example.com/shop/web:1.5.0",
        ])
        .await);
    ok(&world.bluegreen(&["promote", "shop"]).await);
    let doc = status(&world.bluegreen(&["status", "shop", "-o", "json"]).await);
    assert_eq!(doc["activeColor"], "green");
    assert_eq!(doc["problems"], serde_json::json!([]), "{doc:#}");
}
