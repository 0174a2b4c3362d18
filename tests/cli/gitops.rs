//! The clusters teams run: an HPA follows the live slot through set-image → promote →
//! abort → promote --scale-down-old; a GitOps owner is detected before a release
//! (refusal + remedy) and, with --allow-gitops, its revert is caught (exit 9).

use crate::write::{ok, replicas, selector_color};
use crate::{CONTRACT, World};
use bluegreen_sim::Timing;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};
use std::time::Duration;

const COLOR: &str = "bluegreen.io/color";
const V15: &str = "web=registry.example.com/shop/web:1.5.0";

fn hpa(target: &str) -> String {
    format!(
        "---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: shop\nspec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {target}}}\n  minReplicas: 2\n  maxReplicas: 6\n"
    )
}

fn hpa_target(world: &World) -> String {
    world
        .sim
        .get("horizontalpodautoscalers", "default", "shop")
        .unwrap()["spec"]["scaleTargetRef"]["name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The HPA scales the live slot, and no autoscaled slot sits at 0.
#[track_caller]
fn hpa_on_live(world: &World, step: &str) {
    let live = format!("shop-{}", selector_color(world, "shop", COLOR));
    assert_eq!(
        hpa_target(world),
        live,
        "{step}: the HPA follows the live slot"
    );
    assert!(
        replicas(world, &live) > 0,
        "{step}: the autoscaled live slot has replicas"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hpa_follows_the_live_slot_through_a_release_cycle() {
    let world = World::new(&[CONTRACT, &hpa("shop-blue")]).await;
    world.sim.cluster().set_timing(Timing {
        pod_ready_after: Duration::from_millis(200),
        endpoint_delay: Duration::from_millis(100),
        pod_termination: Duration::from_millis(200),
        ..Timing::default()
    });
    // Load grows: the HPA wants 5 of blue; set-image sizes green like that.
    world
        .sim
        .cluster()
        .set_hpa_recommendation("default", "shop", Some(5));
    world
        .sim
        .wait_for("blue scaled to 5", Duration::from_secs(20), |sim| {
            sim.get("deployments", "default", "shop-blue").unwrap()["spec"]["replicas"] == 5
        })
        .await
        .unwrap();
    hpa_on_live(&world, "start");

    ok(&world.bluegreen(&["set-image", "shop", V15]).await);
    assert_eq!(
        replicas(&world, "shop-green"),
        5,
        "sized like the live slot now"
    );
    hpa_on_live(&world, "set-image");

    let doc: Value = serde_json::from_str(ok(&world
        .bluegreen(&["status", "shop", "-o", "json"])
        .await))
    .unwrap();
    assert_eq!(doc["hpas"][0]["name"], "shop");
    assert_eq!(doc["hpas"][0]["target"], "shop-blue");
    assert_eq!(doc["hpas"][0]["minReplicas"], 2);
    assert_eq!(doc["hpas"][0]["maxReplicas"], 6);

    ok(&world.bluegreen(&["promote", "shop"]).await);
    hpa_on_live(&world, "promote");
    ok(&world.bluegreen(&["abort", "shop"]).await);
    hpa_on_live(&world, "abort");
    assert_eq!(replicas(&world, "shop-green"), 0);

    ok(&world
        .bluegreen(&[
            "set-image",
            "shop",
            "web=registry.example.com/shop/web:1.6.0",
        ])
        .await);
    ok(&world
        .bluegreen(&["promote", "shop", "--scale-down-old=0s"])
        .await);
    hpa_on_live(&world, "promote --scale-down-old");
    assert_eq!(
        replicas(&world, "shop-blue"),
        0,
        "the old slot, no longer autoscaled"
    );

    // A preview smaller than what the HPA keeps the live slot at is refused.
    ok(&world
        .bluegreen(&[
            "set-image",
            "shop",
            "web=registry.example.com/shop/web:1.7.0",
            "--replicas=1",
        ])
        .await);
    let out = world.bluegreen(&["promote", "shop"]).await;
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stderr.contains("--allow-fewer"), "{out:?}");
}

/// Marks the Service as Argo CD's: a write under its manager name.
async fn owned_by_argocd(world: &World) {
    let client = world.sim.client().await.unwrap();
    let api: Api<Service> = Api::namespaced(client, "default");
    api.patch(
        "shop",
        &PatchParams::apply("argocd-controller").clone(),
        &Patch::Merge(json!({"metadata": {"labels": {"app.kubernetes.io/part-of": "shop"}}})),
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gitops_owner_is_named_before_the_release_and_its_revert_is_caught() {
    let world = World::new(&[CONTRACT]).await;
    ok(&world.bluegreen(&["set-image", "shop", V15]).await);
    owned_by_argocd(&world).await;

    let doc: Value = serde_json::from_str(ok(&world
        .bluegreen(&["status", "shop", "-o", "json"])
        .await))
    .unwrap();
    assert_eq!(doc["owner"]["tool"], "ArgoCD", "{doc:#}");
    let out = world.bluegreen(&["promote", "shop"]).await;
    assert_eq!(out.code, 4, "{out:?}");
    assert!(
        out.stderr
            .contains("managedFieldsManagers: [kubectl-bluegreen]"),
        "the exact Argo CD setting: {out:?}"
    );
    assert_eq!(
        selector_color(&world, "shop", COLOR),
        "blue",
        "nothing switched"
    );

    // With the override: Argo CD syncs the old selector back right after the switch.
    let client = world.sim.client().await.unwrap();
    let reverter = tokio::spawn(async move {
        let api: Api<Service> = Api::namespaced(client, "default");
        loop {
            let svc = api.get("shop").await.unwrap();
            let color = svc.spec.unwrap().selector.unwrap()[COLOR].clone();
            if color == "green" {
                api.patch(
                    "shop",
                    &PatchParams::apply("argocd-controller").clone(),
                    &Patch::Merge(json!({"spec": {"selector": {COLOR: "blue"}}})),
                )
                .await
                .unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let out = world
        .bluegreen(&["promote", "shop", "--allow-gitops"])
        .await;
    reverter.await.unwrap();
    assert_eq!(out.code, 9, "{out:?}");
    assert!(out.stderr.contains("by argocd-controller"), "{out:?}");
    let doc: Value = serde_json::from_str(ok(&world
        .bluegreen(&["status", "shop", "-o", "json"])
        .await))
    .unwrap();
    assert_eq!(doc["lastSwitch"]["action"], "reverted", "{doc:#}");
    assert_eq!(doc["lastSwitch"]["by"], "argocd-controller");
}
