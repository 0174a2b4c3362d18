//! The objects real apps carry beside Deployments and Services: ConfigMaps, Secrets,
//! ServiceAccounts, the `kubernetes` Service, PodDisruptionBudgets (with status) and
//! HorizontalPodAutoscalers (with their controller), through kube-rs.

use crate::deployment;
use bluegreen_sim::Sim;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use serde_json::{Value, json};
use std::time::Duration;

fn condition<'a>(o: &'a Value, type_: &str) -> &'a Value {
    o["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == type_))
        .unwrap_or(&Value::Null)
}

#[tokio::test]
async fn config_maps_secrets_service_accounts_and_the_kubernetes_service() {
    let sim = Sim::start().await.unwrap();
    let client = sim.client().await.unwrap();
    let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "app"}, "data": {"mode": "blue"}}))
            .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    assert_eq!(cms.get("app").await.unwrap().data.unwrap()["mode"], "blue");

    // stringData is folded into base64 data and never stored.
    let secrets: Api<Secret> = Api::default_namespaced(client.clone());
    let s: Secret = serde_json::from_value(
        json!({"metadata": {"name": "pw"}, "stringData": {"password": "s3cret"}, "data": {"user": "YWRtaW4="}}),
    )
    .unwrap();
    let created = secrets.create(&PostParams::default(), &s).await.unwrap();
    assert_eq!(created.type_.as_deref(), Some("Opaque"));
    assert!(created.string_data.is_none());
    let stored = sim.get("secrets", "default", "pw").unwrap();
    assert_eq!(
        stored["data"],
        json!({"password": "czNjcmV0", "user": "YWRtaW4="})
    );
    assert!(stored.get("stringData").is_none());

    // A `default` ServiceAccount in every namespace, new ones included.
    for ns in ["default", "kube-system"] {
        assert!(sim.get("serviceaccounts", ns, "default").is_some(), "{ns}");
    }
    sim.apply_yaml("", "apiVersion: v1\nkind: Namespace\nmetadata: {name: web}")
        .unwrap();
    assert!(sim.get("serviceaccounts", "web", "default").is_some());

    // The API server's Service: no selector, so no endpoints controller output, and the
    // demo still converges around it.
    let k = sim.get("services", "default", "kubernetes").unwrap();
    assert!(k["spec"]["selector"].is_null());
    assert_eq!(k["spec"]["clusterIP"], "10.96.0.1");
    sim.load_demo().await.unwrap();
    assert!(
        sim.list("endpointslices", "default")
            .iter()
            .all(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] != "kubernetes")
    );
}

#[tokio::test]
async fn disruption_budgets_count_ready_pods_like_upstream() {
    let sim = Sim::start().await.unwrap();
    sim.apply_yaml("default", &deployment("web", 3, "web:1"))
        .unwrap();
    sim.wait_rolled_out("default", "web").await.unwrap();
    sim.apply_yaml(
        "default",
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: by-min}\nspec: {minAvailable: 2, selector: {matchLabels: {app: web}}}\n---\napiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: by-max}\nspec: {maxUnavailable: 50%, selector: {matchLabels: {app: web}}}",
    )
    .unwrap();
    sim.wait_for("budgets observed", Duration::from_secs(10), |s| {
        ["by-min", "by-max"].iter().all(|n| {
            s.get("poddisruptionbudgets", "default", n)
                .is_some_and(|p| p["status"]["observedGeneration"] == 1)
        })
    })
    .await
    .unwrap();
    let by_min = sim
        .get("poddisruptionbudgets", "default", "by-min")
        .unwrap();
    let st = &by_min["status"];
    assert_eq!(
        (
            &st["currentHealthy"],
            &st["desiredHealthy"],
            &st["expectedPods"],
            &st["disruptionsAllowed"]
        ),
        (&json!(3), &json!(2), &json!(3), &json!(1))
    );
    assert_eq!(
        condition(&by_min, "DisruptionAllowed")["reason"],
        "SufficientPods"
    );
    // 50% of the Deployment's 3 replicas may be unavailable: ceil(1.5) = 2.
    let st = sim
        .get("poddisruptionbudgets", "default", "by-max")
        .unwrap()["status"]
        .clone();
    assert_eq!(
        (&st["desiredHealthy"], &st["disruptionsAllowed"]),
        (&json!(1), &json!(2))
    );

    // Scaled to zero: nothing may be disrupted.
    sim.apply_yaml("default", &deployment("web", 0, "web:1"))
        .unwrap();
    sim.wait_for("budget at zero", Duration::from_secs(10), |s| {
        s.get("poddisruptionbudgets", "default", "by-min")
            .is_some_and(|p| p["status"]["currentHealthy"] == 0)
    })
    .await
    .unwrap();
    let by_min = sim
        .get("poddisruptionbudgets", "default", "by-min")
        .unwrap();
    assert_eq!(by_min["status"]["disruptionsAllowed"], 0);
    assert_eq!(condition(&by_min, "DisruptionAllowed")["status"], "False");
}

fn replicas(sim: &Sim) -> i64 {
    sim.get("deployments", "default", "web").unwrap()["spec"]["replicas"]
        .as_i64()
        .unwrap()
}

async fn wait_replicas(sim: &Sim, want: i64) {
    sim.wait_for(
        &format!("web at {want} replicas"),
        Duration::from_secs(10),
        |s| {
            s.get("deployments", "default", "web")
                .is_some_and(|d| d["spec"]["replicas"] == want)
                && s.get("horizontalpodautoscalers", "default", "web")
                    .is_some_and(|h| h["status"]["currentReplicas"] == want)
        },
    )
    .await
    .unwrap();
}

fn scale_by_hand(sim: &Sim, n: i64) {
    let rt = bluegreen_sim::resources::find("apps", "v1", "deployments").unwrap();
    bluegreen_sim::ops::update(
        sim.cluster(),
        rt,
        "default",
        "web",
        json!({"spec": {"replicas": n}}),
        bluegreen_sim::ops::Sub::Scale,
        &Default::default(),
    )
    .unwrap();
}

#[tokio::test]
async fn an_autoscaler_keeps_its_deployment_within_bounds_and_leaves_zero_alone() {
    let sim = Sim::start().await.unwrap();
    sim.apply_yaml("default", &deployment("web", 1, "web:1"))
        .unwrap();
    sim.apply_yaml(
        "default",
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: web}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\n  minReplicas: 2\n  maxReplicas: 4\n",
    )
    .unwrap();
    // Below the minimum: scaled up through the scale subresource.
    wait_replicas(&sim, 2).await;
    let hpa = sim
        .get("horizontalpodautoscalers", "default", "web")
        .unwrap();
    assert_eq!(hpa["status"]["desiredReplicas"], 2);
    assert_eq!(condition(&hpa, "AbleToScale")["status"], "True");
    assert_eq!(condition(&hpa, "ScalingActive")["status"], "True");
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["name"], "cpu",
        "v2 default metric"
    );

    // Scaled by hand above the maximum: back to 4.
    scale_by_hand(&sim, 10);
    wait_replicas(&sim, 4).await;
    // Within bounds a hand-set count stays (no metrics: the recommendation is "as is").
    scale_by_hand(&sim, 3);
    wait_replicas(&sim, 3).await;
    assert_eq!(
        condition(
            &sim.get("horizontalpodautoscalers", "default", "web")
                .unwrap(),
            "ScalingLimited"
        )["reason"],
        "DesiredWithinRange"
    );

    // Load changes: the recommendation is clamped to the bounds.
    sim.cluster()
        .set_hpa_recommendation("default", "web", Some(9));
    wait_replicas(&sim, 4).await;
    let hpa = sim
        .get("horizontalpodautoscalers", "default", "web")
        .unwrap();
    assert_eq!(
        condition(&hpa, "ScalingLimited")["reason"],
        "TooManyReplicas"
    );
    sim.cluster()
        .set_hpa_recommendation("default", "web", Some(2));
    wait_replicas(&sim, 2).await;
    sim.cluster().set_hpa_recommendation("default", "web", None);

    // Scaled to zero: the autoscaler leaves it alone.
    scale_by_hand(&sim, 0);
    sim.wait_for("scaling disabled", Duration::from_secs(10), |s| {
        s.get("horizontalpodautoscalers", "default", "web")
            .is_some_and(|h| condition(&h, "ScalingActive")["reason"] == "ScalingDisabled")
    })
    .await
    .unwrap();
    sim.wait_converged("default").await.unwrap();
    assert_eq!(replicas(&sim), 0);
    let hpa = sim
        .get("horizontalpodautoscalers", "default", "web")
        .unwrap();
    assert_eq!(condition(&hpa, "ScalingActive")["status"], "False");
    assert_eq!(hpa["status"]["desiredReplicas"], 0);
}
