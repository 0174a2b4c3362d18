//! The API surface through the real kube-rs client over HTTPS: object semantics, errors as
//! upstream `Status` objects, selectors, pagination, watches, patches, dry runs, faults.

use crate::{CONTRACT, deployment};
use bluegreen_sim::{Fault, FaultAction, Sim, WatchFaults};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Service};
use k8s_openapi::api::events::v1::Event as EventV1;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::{DynamicObject, GroupVersionKind};
use serde_json::{Value, json};
use std::time::Duration;

async fn start() -> (Sim, kube::Client) {
    let sim = Sim::start().await.expect("sim starts");
    let client = sim.client().await.expect("client");
    (sim, client)
}

fn api_err(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn svc(name: &str, labels: Value) -> Service {
    serde_json::from_value(
        json!({"metadata": {"name": name, "labels": labels}, "spec": {"ports": [{"port": 80}]}}),
    )
    .unwrap()
}

#[tokio::test]
async fn create_fills_metadata_and_upstream_defaults() {
    let (_sim, client) = start().await;
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let d: Deployment =
        serde_json::from_value(serde_saphyr_value(&deployment("web", 2, "web:1"))).unwrap();
    let created = deploys.create(&PostParams::default(), &d).await.unwrap();
    let md = &created.metadata;
    assert!(md.uid.as_ref().is_some_and(|u| u.len() == 36));
    assert!(md.creation_timestamp.is_some());
    assert!(md.resource_version.is_some());
    assert_eq!(md.generation, Some(1));
    let spec = created.spec.unwrap();
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(spec.progress_deadline_seconds, Some(600));
    let strategy = spec.strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let ru = strategy.rolling_update.unwrap();
    assert_eq!(json!(ru.max_surge), json!("25%"));
    assert_eq!(json!(ru.max_unavailable), json!("25%"));
    let c = &spec.template.spec.unwrap().containers[0];
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(
        c.termination_message_path.as_deref(),
        Some("/dev/termination-log")
    );

    let services: Api<Service> = Api::default_namespaced(client);
    let s = services
        .create(&PostParams::default(), &svc("web", json!({})))
        .await
        .unwrap();
    let spec = s.spec.unwrap();
    assert_eq!(spec.type_.as_deref(), Some("ClusterIP"));
    assert!(
        spec.cluster_ip
            .as_deref()
            .is_some_and(|ip| ip.starts_with("10.96."))
    );
    assert_eq!(json!(spec.ports.unwrap()[0].target_port), json!(80));
    let err = api_err(
        services
            .create(&PostParams::default(), &svc("web", json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(err.message, "services \"web\" already exists");
}

fn serde_saphyr_value(yaml: &str) -> Value {
    serde_saphyr::from_str(yaml).unwrap()
}

#[tokio::test]
async fn generate_name_and_missing_namespace() {
    let (_sim, client) = start().await;
    let leases: Api<Lease> = Api::default_namespaced(client.clone());
    let l: Lease = serde_json::from_value(
        json!({"metadata": {"generateName": "lock-"}, "spec": {"holderIdentity": "me"}}),
    )
    .unwrap();
    let created = leases.create(&PostParams::default(), &l).await.unwrap();
    let name = created.metadata.name.unwrap();
    assert!(name.starts_with("lock-") && name.len() == 10, "{name}");
    let nowhere: Api<Lease> = Api::namespaced(client, "nowhere");
    let err = api_err(
        nowhere
            .create(&PostParams::default(), &l)
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (404, "namespaces \"nowhere\" not found")
    );
}

#[tokio::test]
async fn stale_writes_conflict_and_generation_tracks_spec_only() {
    let (sim, client) = start().await;
    sim.apply_yaml("default", &deployment("web", 1, "web:1"))
        .unwrap();
    sim.wait_rolled_out("default", "web").await.unwrap();
    let deploys: Api<Deployment> = Api::default_namespaced(client);
    let d = deploys.get("web").await.unwrap();
    let gen1 = d.metadata.generation.unwrap();

    // A label change is not a spec change.
    let mut labelled = d.clone();
    labelled
        .metadata
        .labels
        .get_or_insert_default()
        .insert("team".into(), "a".into());
    let labelled = deploys
        .replace("web", &PostParams::default(), &labelled)
        .await
        .unwrap();
    assert_eq!(labelled.metadata.generation, Some(gen1));

    // Replacing from the stale copy conflicts, with upstream's message.
    let mut stale = d.clone();
    stale.spec.as_mut().unwrap().replicas = Some(5);
    let err = api_err(
        deploys
            .replace("web", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        err.message,
        "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again"
    );

    let mut fresh = labelled.clone();
    fresh.spec.as_mut().unwrap().replicas = Some(2);
    let updated = deploys
        .replace("web", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_eq!(updated.metadata.generation, Some(gen1 + 1));
    sim.wait_rolled_out("default", "web").await.unwrap();
    let updated = deploys.get("web").await.unwrap();

    // Status is ignored on the main resource and written through /status only.
    let mut with_status = updated.clone();
    with_status.status.get_or_insert_default().collision_count = Some(7);
    let after = deploys
        .replace("web", &PostParams::default(), &with_status)
        .await
        .unwrap();
    assert_ne!(after.status.and_then(|s| s.collision_count), Some(7));
    let patched = deploys
        .patch_status(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"collisionCount": 7}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().collision_count, Some(7));
    assert_eq!(
        patched.metadata.generation,
        Some(gen1 + 1),
        "a status write is not a spec change"
    );
}

#[tokio::test]
async fn scale_subresource_reads_and_writes_replicas() {
    let (sim, client) = start().await;
    sim.apply_yaml("default", &deployment("web", 2, "web:1"))
        .unwrap();
    sim.wait_rolled_out("default", "web").await.unwrap();
    let deploys: Api<Deployment> = Api::default_namespaced(client);
    let scale = deploys.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    let st = scale.status.unwrap();
    assert_eq!(st.replicas, 2);
    assert_eq!(st.selector.as_deref(), Some("app=web"));
    deploys
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    let d = deploys.get("web").await.unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(4));
    assert_eq!(d.metadata.generation, Some(2));
    sim.wait_rolled_out("default", "web").await.unwrap();
}

#[tokio::test]
async fn the_three_patch_types_and_their_failures() {
    let (sim, client) = start().await;
    sim.apply_yaml("default", CONTRACT).unwrap();
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    let pp = PatchParams::default();

    // Strategic merge: containers merge by name, like `kubectl set image`.
    let smp = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:2"}]}}}});
    let d = deploys
        .patch("shop-green", &pp, &Patch::Strategic(smp))
        .await
        .unwrap();
    let cs = d.spec.unwrap().template.spec.unwrap().containers;
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0].image.as_deref(), Some("web:2"));
    assert_eq!(cs[1].name, "metrics-sidecar");

    // Merge patch: lists are replaced whole.
    let mp = json!({"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "web:3"}]}}}});
    let d = deploys
        .patch("shop-green", &pp, &Patch::Merge(mp))
        .await
        .unwrap();
    assert_eq!(d.spec.unwrap().template.spec.unwrap().containers.len(), 1);

    // JSON patch with a failing `test` changes nothing.
    let jp: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/replicas", "value": 99},
        {"op": "replace", "path": "/spec/replicas", "value": 5}
    ]))
    .unwrap();
    let err = api_err(
        deploys
            .patch("shop-green", &pp, &Patch::<()>::Json(jp))
            .await
            .unwrap_err(),
    );
    // Upstream's generic answer (NewGenericServerResponse): no detail a client could
    // come to depend on.
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert_eq!(
        err.message,
        "the server rejected our request due to an error in our request"
    );
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/spec/replicas", "value": 5}]))
            .unwrap();
    let d = deploys
        .patch("shop-green", &pp, &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(d.spec.unwrap().replicas, Some(5));

    // A resourceVersion inside the patch is a precondition.
    let guarded = json!({"metadata": {"resourceVersion": "1"}, "spec": {"replicas": 1}});
    let err = api_err(
        deploys
            .patch("shop-green", &pp, &Patch::Merge(guarded))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));

    // The selector is immutable: 422 Invalid with upstream's field path.
    let sel = json!({"spec": {"selector": {"matchLabels": {"extra": "x"}}, "template": {"metadata": {"labels": {"extra": "x"}}}}});
    let err = api_err(
        deploys
            .patch("shop-green", &pp, &Patch::Strategic(sel))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    let causes = err.details.unwrap().causes;
    assert!(
        causes
            .iter()
            .any(|c| c.field == "spec.selector" && c.message.ends_with("field is immutable")),
        "{causes:?}"
    );

    // Invalid label values are rejected on Services too.
    let services: Api<Service> = Api::default_namespaced(client);
    let bad = json!({"metadata": {"labels": {"bluegreen.io/app": "not valid!"}}});
    let err = api_err(
        services
            .patch("shop", &pp, &Patch::Merge(bad))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.starts_with(
            "Service \"shop\" is invalid: metadata.labels: Invalid value: \"not valid!\""
        ),
        "{}",
        err.message
    );
}

#[tokio::test]
async fn dry_run_returns_the_result_and_stores_nothing() {
    let (sim, client) = start().await;
    sim.apply_yaml("default", CONTRACT).unwrap();
    sim.wait_converged("default").await.unwrap();
    let rv_before = sim.cluster().store.resource_version();
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let dry = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let out = services
        .patch(
            "shop",
            &dry,
            &Patch::Merge(json!({"spec": {"selector": {"bluegreen.io/color": "green"}}})),
        )
        .await
        .unwrap();
    assert_eq!(
        out.spec.unwrap().selector.unwrap()["bluegreen.io/color"],
        "green"
    );
    let created = services
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &svc("ghost", json!({})),
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.name.as_deref(), Some("ghost"));
    services
        .delete(
            "shop",
            &DeleteParams {
                dry_run: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        sim.get("services", "default", "shop").unwrap()["spec"]["selector"]["bluegreen.io/color"],
        "blue"
    );
    assert!(sim.get("services", "default", "ghost").is_none());
    assert_eq!(sim.cluster().store.resource_version(), rv_before);
}

#[tokio::test]
async fn selectors_and_pagination() {
    let (sim, client) = start().await;
    // Its own namespace: `default` also holds the cluster's `kubernetes` Service.
    sim.apply_yaml("", "apiVersion: v1\nkind: Namespace\nmetadata: {name: sel}")
        .unwrap();
    let services: Api<Service> = Api::namespaced(client, "sel");
    for i in 0..7 {
        let color = if i % 2 == 0 { "blue" } else { "green" };
        services
            .create(
                &PostParams::default(),
                &svc(
                    &format!("s{i}"),
                    json!({"color": color, "idx": i.to_string()}),
                ),
            )
            .await
            .unwrap();
    }
    let names = |l: &kube::core::ObjectList<Service>| {
        l.items
            .iter()
            .map(|s| s.metadata.name.clone().unwrap())
            .collect::<Vec<_>>()
    };
    for (sel, want) in [
        ("color=blue", vec!["s0", "s2", "s4", "s6"]),
        ("color!=blue", vec!["s1", "s3", "s5"]),
        ("idx in (1,2)", vec!["s1", "s2"]),
        ("idx notin (0,1,2,3,4)", vec!["s5", "s6"]),
        ("color", vec!["s0", "s1", "s2", "s3", "s4", "s5", "s6"]),
        ("!color", vec![]),
        ("color==green,idx in (3,5)", vec!["s3", "s5"]),
    ] {
        let l = services
            .list(&ListParams::default().labels(sel))
            .await
            .unwrap();
        assert_eq!(names(&l), want, "selector {sel}");
    }
    let l = services
        .list(&ListParams::default().fields("metadata.name=s3"))
        .await
        .unwrap();
    assert_eq!(names(&l), ["s3"]);
    let err = api_err(
        services
            .list(&ListParams::default().labels("a b"))
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
    let err = api_err(
        services
            .list(&ListParams::default().fields("spec.type=ClusterIP"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (err.code, err.message.as_str()),
        (400, "field label not supported: spec.type")
    );

    // Pages of 3 with continue tokens, all at the first page's resourceVersion.
    let mut pages = Vec::new();
    let mut lp = ListParams::default().limit(3);
    loop {
        let page = services.list(&lp).await.unwrap();
        pages.push(names(&page));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(c) => lp = lp.continue_token(&c),
            None => break,
        }
    }
    assert_eq!(
        pages,
        vec![vec!["s0", "s1", "s2"], vec!["s3", "s4", "s5"], vec!["s6"]]
    );
}

#[tokio::test]
async fn watch_resumes_from_a_version_and_reports_selector_transitions() {
    let (_sim, client) = start().await;
    let services: Api<Service> = Api::default_namespaced(client);
    let first = services
        .create(&PostParams::default(), &svc("a", json!({"tier": "web"})))
        .await
        .unwrap();
    let rv = first.metadata.resource_version.unwrap();
    // Changes after `rv`, seen through a label-filtered watch.
    services
        .create(&PostParams::default(), &svc("b", json!({"tier": "db"})))
        .await
        .unwrap();
    services
        .patch(
            "b",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "web"}}})),
        )
        .await
        .unwrap();
    services
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "db"}}})),
        )
        .await
        .unwrap();
    let wp = WatchParams::default().labels("tier=web").timeout(5);
    let stream = services.watch(&wp, &rv).await.unwrap();
    let events: Vec<_> = stream.take(2).try_collect().await.unwrap();
    let seen: Vec<String> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(s) => format!("ADDED {}", s.metadata.name.clone().unwrap()),
            WatchEvent::Modified(s) => format!("MODIFIED {}", s.metadata.name.clone().unwrap()),
            WatchEvent::Deleted(s) => format!("DELETED {}", s.metadata.name.clone().unwrap()),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        seen,
        ["ADDED b", "DELETED a"],
        "b entered the selection, a left it"
    );
}

#[tokio::test]
async fn watch_from_a_compacted_version_gets_410_gone() {
    let (sim, client) = start().await;
    let services: Api<Service> = Api::default_namespaced(client);
    let s = services
        .create(&PostParams::default(), &svc("a", json!({})))
        .await
        .unwrap();
    services
        .create(&PostParams::default(), &svc("b", json!({})))
        .await
        .unwrap();
    sim.cluster().store.compact();
    let mut stream = services
        .watch(
            &WatchParams::default(),
            &s.metadata.resource_version.unwrap(),
        )
        .await
        .unwrap()
        .boxed();
    match stream.next().await {
        Some(Ok(WatchEvent::Error(e))) => assert_eq!((e.code, e.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[tokio::test]
async fn watch_streams_bookmarks_and_can_be_cut_short() {
    let (sim, client) = start().await;
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let s = services
        .create(&PostParams::default(), &svc("a", json!({})))
        .await
        .unwrap();
    let rv = s.metadata.resource_version.unwrap();
    let wp = WatchParams::default().timeout(10); // kube asks for bookmarks by default
    let mut stream = services.watch(&wp, &rv).await.unwrap().boxed();
    match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
        Ok(Some(Ok(WatchEvent::Bookmark(b)))) => assert_eq!(b.metadata.resource_version, rv),
        other => panic!("expected a bookmark, got {other:?}"),
    }
    // A watch fault closes streams after one event: the stream ends, the client re-watches.
    sim.cluster().set_watch_faults(WatchFaults {
        close_after_events: Some(1),
        close_after: None,
    });
    let stream = services
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap();
    services
        .create(&PostParams::default(), &svc("b", json!({})))
        .await
        .unwrap();
    services
        .create(&PostParams::default(), &svc("c", json!({})))
        .await
        .unwrap();
    let events: Vec<_> = tokio::time::timeout(Duration::from_secs(5), stream.collect::<Vec<_>>())
        .await
        .expect("stream ends");
    let real: Vec<_> = events
        .iter()
        .filter(|e| !matches!(e, Ok(WatchEvent::Bookmark(_))))
        .collect();
    assert_eq!(real.len(), 1, "{events:?}");
}

#[tokio::test]
async fn delete_cascades_through_owner_references() {
    let (sim, client) = start().await;
    sim.apply_yaml("default", &deployment("web", 2, "web:1"))
        .unwrap();
    sim.wait_rolled_out("default", "web").await.unwrap();
    assert_eq!(sim.list("replicasets", "default").len(), 1);
    assert_eq!(sim.list("pods", "default").len(), 2);
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());
    deploys
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    sim.wait_for("dependents collected", Duration::from_secs(10), |s| {
        s.list("replicasets", "default").is_empty() && s.list("pods", "default").is_empty()
    })
    .await
    .unwrap();

    // Orphan keeps the ReplicaSet and drops its ownerReference.
    sim.apply_yaml("default", &deployment("api", 1, "api:1"))
        .unwrap();
    sim.wait_rolled_out("default", "api").await.unwrap();
    deploys
        .delete("api", &DeleteParams::orphan())
        .await
        .unwrap();
    let rs = sim.list("replicasets", "default");
    assert_eq!(rs.len(), 1);
    assert!(
        rs[0]["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(|r| r.is_empty())
    );
    let err = api_err(
        deploys
            .delete("api", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (404, "NotFound"));
    assert_eq!(err.message, "deployments.apps \"api\" not found");
    let details = err.details.unwrap();
    assert_eq!(
        (
            details.name.as_str(),
            details.group.as_str(),
            details.kind.as_str()
        ),
        ("api", "apps", "deployments")
    );
}

/// The garbage collector looks only at what changed since its last pass: a dependent
/// created with a missing owner (or an owner of another uid) goes, one with a live owner
/// stays, and once the history no longer reaches its last pass it sweeps everything.
#[tokio::test]
async fn dependents_of_missing_owners_are_collected_also_after_compaction() {
    let (sim, _client) = start().await;
    sim.apply_yaml(
        "default",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}",
    )
    .unwrap();
    let svc_uid = sim.get("services", "default", "web").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let pod = |name: &str, kind: &str, owner: &str, uid: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  ownerReferences: [{{apiVersion: v1, kind: {kind}, name: {owner}, uid: {uid}, controller: true}}]\nspec: {{containers: [{{name: c, image: c:1}}]}}\n"
        )
    };
    let live = |s: &Sim, n: &str| s.get("pods", "default", n).is_some();
    sim.apply_yaml("default", &pod("kept", "Service", "web", &svc_uid))
        .unwrap();
    sim.apply_yaml(
        "default",
        &pod("ghost", "ReplicaSet", "gone", "no-such-uid"),
    )
    .unwrap();
    sim.apply_yaml("default", &pod("stale", "Service", "web", "an-older-uid"))
        .unwrap();
    sim.wait_for("orphans collected", Duration::from_secs(10), |s| {
        !live(s, "ghost") && !live(s, "stale")
    })
    .await
    .unwrap();
    sim.wait_converged("default").await.unwrap();
    assert!(live(&sim, "kept"), "a pod with a live owner stays");

    // Created while the controllers are held, then the history compacted away.
    sim.cluster().set_controllers_paused(true);
    // A pass under way when the hold came finishes first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    sim.apply_yaml("default", &pod("late", "ReplicaSet", "gone", "no-such-uid"))
        .unwrap();
    sim.cluster().store.compact();
    sim.cluster().set_controllers_paused(false);
    sim.wait_for("swept", Duration::from_secs(10), |s| !live(s, "late"))
        .await
        .unwrap();
    assert!(live(&sim, "kept"));
}

#[tokio::test]
async fn unauthenticated_requests_get_401() {
    let (sim, _client) = start().await;
    let yaml = sim.kubeconfig_yaml().replace(sim.token(), "wrong-token");
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let services: Api<Service> = Api::default_namespaced(client);
    let err = api_err(services.list(&ListParams::default()).await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (401, "Unauthorized"));
}

#[tokio::test]
async fn injected_faults_answer_like_the_real_server() {
    let (sim, client) = start().await;
    sim.apply_yaml("default", CONTRACT).unwrap();
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let c = sim.cluster();
    c.add_fault(Fault::new("patch", "services", FaultAction::Forbidden));
    let err = api_err(
        services
            .patch("shop", &PatchParams::default(), &Patch::Merge(json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        err.message,
        "services \"shop\" is forbidden: User \"sim-admin\" cannot patch resource \"services\" in API group \"\" in the namespace \"default\""
    );
    c.clear_faults();
    // kube-rs retries 429/503/504 by itself: a short burst of 503s is invisible to callers.
    c.add_fault(Fault::new(
        "get",
        "services",
        FaultAction::Sequence([503, 503, 0, 500].into()),
    ));
    services.get("shop").await.unwrap();
    let err = api_err(services.get("shop").await.unwrap_err());
    assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
    services.get("shop").await.unwrap();
    assert!(
        sim.cluster()
            .request_log()
            .iter()
            .filter(|e| e.code == 503)
            .count()
            == 2
    );
    c.add_fault(Fault::new("patch", "services", FaultAction::Status(409)).times(1));
    let err = api_err(
        services
            .patch("shop", &PatchParams::default(), &Patch::Merge(json!({})))
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    services
        .patch("shop", &PatchParams::default(), &Patch::Merge(json!({})))
        .await
        .unwrap();
    c.add_fault(Fault::new("list", "deployments", FaultAction::Status(500)));
    let deploys: Api<Deployment> = Api::default_namespaced(client);
    assert_eq!(
        api_err(deploys.list(&ListParams::default()).await.unwrap_err()).code,
        500
    );
}

#[tokio::test]
async fn request_log_records_what_was_sent() {
    let (sim, client) = start().await;
    sim.apply_yaml("default", CONTRACT).unwrap();
    sim.cluster().clear_request_log();
    let services: Api<Service> = Api::default_namespaced(client);
    services
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"x": "y"}}})),
        )
        .await
        .unwrap();
    services
        .list(&ListParams::default().labels("bluegreen.io/app=shop"))
        .await
        .unwrap();
    let log = sim.cluster().request_log();
    assert_eq!(log.len(), 2);
    assert_eq!(
        (log[0].method.as_str(), log[0].path.as_str(), log[0].code),
        ("PATCH", "/api/v1/namespaces/default/services/shop", 200)
    );
    assert_eq!(log[0].content_type, "application/merge-patch+json");
    assert_eq!(log[0].body, r#"{"metadata":{"labels":{"x":"y"}}}"#);
    assert_eq!(log[1].method, "GET");
    assert!(
        log[1]
            .query
            .contains("labelSelector=bluegreen.io%2Fapp%3Dshop"),
        "{}",
        log[1].query
    );
}

#[tokio::test]
async fn events_are_one_store_seen_through_two_versions() {
    let (_sim, client) = start().await;
    let core: Api<Event> = Api::default_namespaced(client.clone());
    let v1: Api<EventV1> = Api::default_namespaced(client.clone());
    let e: Event = serde_json::from_value(json!({
        "metadata": {"name": "shop.1"},
        "involvedObject": {"kind": "Service", "name": "shop", "namespace": "default", "apiVersion": "v1"},
        "reason": "Promoted", "message": "traffic moved to green", "type": "Normal",
        "source": {"component": "kubectl-bluegreen"}, "count": 1,
    }))
    .unwrap();
    core.create(&PostParams::default(), &e).await.unwrap();
    let seen = v1.get("shop.1").await.unwrap();
    assert_eq!(
        seen.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("shop")
    );
    assert_eq!(seen.note.as_deref(), Some("traffic moved to green"));
    assert_eq!(
        seen.reporting_controller.as_deref(),
        Some("kubectl-bluegreen")
    );
    let e2: EventV1 = serde_json::from_value(json!({
        "metadata": {"name": "shop.2"},
        "regarding": {"kind": "Service", "name": "shop", "namespace": "default"},
        "note": "aborted", "reason": "Aborted", "type": "Warning", "action": "Abort",
        "reportingController": "kubectl-bluegreen", "reportingInstance": "cli",
        "eventTime": "2026-11-22T00:00:00.000000Z",
    }))
    .unwrap();
    v1.create(&PostParams::default(), &e2).await.unwrap();
    let back = core.get("shop.2").await.unwrap();
    assert_eq!(back.involved_object.name.as_deref(), Some("shop"));
    assert_eq!(back.message.as_deref(), Some("aborted"));
    let by_field = core
        .list(&ListParams::default().fields("involvedObject.name=shop,involvedObject.kind=Service"))
        .await
        .unwrap();
    assert_eq!(by_field.items.len(), 2);
    let by_regarding = v1
        .list(&ListParams::default().fields("regarding.name=shop,type=Warning"))
        .await
        .unwrap();
    assert_eq!(by_regarding.items.len(), 1);
}

#[tokio::test]
async fn reviews_answer_who_and_whether() {
    let (sim, client) = start().await;
    let gvk = GroupVersionKind::gvk("authentication.k8s.io", "v1", "SelfSubjectReview");
    let (ar, _) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
    let reviews: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let r: DynamicObject = serde_json::from_value(json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {}})).unwrap();
    let out = reviews.create(&PostParams::default(), &r).await.unwrap();
    assert_eq!(out.data["status"]["userInfo"]["username"], "sim-admin");

    let gvk = GroupVersionKind::gvk("authorization.k8s.io", "v1", "SelfSubjectAccessReview");
    let (ar, _) = kube::discovery::pinned_kind(&client, &gvk).await.unwrap();
    let ssar: Api<DynamicObject> = Api::all_with(client, &ar);
    let ask = |verb: &str| -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
            "spec": {"resourceAttributes": {"namespace": "default", "verb": verb, "resource": "services"}}}))
        .unwrap()
    };
    assert_eq!(
        ssar.create(&PostParams::default(), &ask("patch"))
            .await
            .unwrap()
            .data["status"]["allowed"],
        true
    );
    sim.cluster()
        .add_fault(Fault::new("patch", "services", FaultAction::Forbidden));
    assert_eq!(
        ssar.create(&PostParams::default(), &ask("patch"))
            .await
            .unwrap()
            .data["status"]["allowed"],
        false
    );
    assert_eq!(
        ssar.create(&PostParams::default(), &ask("get"))
            .await
            .unwrap()
            .data["status"]["allowed"],
        true
    );
}

#[tokio::test]
async fn discovery_lists_every_resource_a_release_touches() {
    let (_sim, client) = start().await;
    let discovery = kube::Discovery::new(client).run().await.unwrap();
    let mut found: Vec<String> = Vec::new();
    for group in discovery.groups() {
        for (ar, _) in group.recommended_resources() {
            found.push(format!("{}/{}", ar.api_version, ar.plural));
        }
    }
    for want in [
        "v1/namespaces",
        "v1/pods",
        "v1/services",
        "v1/endpoints",
        "v1/events",
        "apps/v1/deployments",
        "apps/v1/replicasets",
        "discovery.k8s.io/v1/endpointslices",
        "coordination.k8s.io/v1/leases",
        "events.k8s.io/v1/events",
    ] {
        assert!(
            found.contains(&want.to_string()),
            "{want} missing from {found:?}"
        );
    }
}

/// `PATCH` with a raw body of the given content type; the API error, if any.
async fn raw_patch<K>(api: &Api<K>, name: &str, patch: Patch<Value>) -> kube::core::Status
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api_err(
        api.patch(name, &PatchParams::default(), &patch)
            .await
            .unwrap_err(),
    )
}

#[tokio::test]
async fn wrongly_typed_writes_are_refused_like_upstream_and_store_nothing() {
    let (sim, client) = start().await;
    sim.apply_yaml("default", CONTRACT).unwrap();
    let before_svc = sim.get("services", "default", "shop").unwrap();
    let before_dep = sim.get("deployments", "default", "shop-green").unwrap();
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let deploys: Api<Deployment> = Api::default_namespaced(client.clone());

    // Strategic merge patches go through the unstructured converter.
    for (selector, want) in [
        (json!("app=shop"), "cannot restore map from string"),
        (json!(7), "cannot restore map from int64"),
        (json!(["app"]), "cannot restore map from slice"),
        (json!(true), "cannot restore map from bool"),
    ] {
        let sent = json!({"spec": {"selector": selector}});
        let err = raw_patch(&services, "shop", Patch::Strategic(sent)).await;
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
        assert!(
            err.message
                .starts_with(" \"\" is invalid: patch: Invalid value: \"map[spec:map[selector:")
                && err.message.ends_with(want),
            "{}",
            err.message
        );
        let causes = err.details.unwrap().causes;
        assert_eq!(causes[0].field, "patch");
    }
    let err = raw_patch(
        &deploys,
        "shop-green",
        Patch::Strategic(json!({"spec": {"replicas": "3"}})),
    )
    .await;
    assert_eq!(err.code, 422);
    assert_eq!(
        err.message,
        " \"\" is invalid: patch: Invalid value: \"map[spec:map[replicas:3]]\": unrecognized type: int32"
    );

    // Merge and JSON patches: the patched object goes through the JSON decoder.
    let err = raw_patch(
        &deploys,
        "shop-green",
        Patch::Merge(json!({"spec": {"replicas": "3"}})),
    )
    .await;
    assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
    assert!(
        err.message.ends_with(": json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"),
        "{}",
        err.message
    );
    let jp: json_patch::Patch = serde_json::from_value(
        json!([{"op": "replace", "path": "/spec/template/metadata/labels", "value": "app"}]),
    )
    .unwrap();
    let err = api_err(
        deploys
            .patch(
                "shop-green",
                &PatchParams::default(),
                &Patch::<()>::Json(jp),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.ends_with("json: cannot unmarshal string into Go struct field ObjectMeta.spec.template.metadata.labels of type map[string]string"),
        "{}",
        err.message
    );

    // POST and PUT: 400 BadRequest from decoding the body.
    let ar = kube::discovery::ApiResource::erase::<Service>(&());
    let dynamic: Api<DynamicObject> = Api::default_namespaced_with(client.clone(), &ar);
    let bad: DynamicObject = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "typed"}, "spec": {"selector": "app=shop", "ports": [{"port": 80}]}})).unwrap();
    let err = api_err(
        dynamic
            .create(&PostParams::default(), &bad)
            .await
            .unwrap_err(),
    );
    assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"));
    assert_eq!(
        err.message,
        "Service in version \"v1\" cannot be handled as a Service: json: cannot unmarshal string into Go struct field ServiceSpec.spec.selector of type map[string]string"
    );
    assert!(sim.get("services", "default", "typed").is_none());
    let mut replaced = before_svc.clone();
    replaced["spec"]["ports"][0]["port"] = json!("80");
    let replaced: DynamicObject = serde_json::from_value(replaced).unwrap();
    let err = api_err(
        dynamic
            .replace("shop", &PostParams::default(), &replaced)
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 400);
    assert!(
        err.message.ends_with("json: cannot unmarshal string into Go struct field ServicePort.spec.ports.port of type int32"),
        "{}",
        err.message
    );

    // The scale subresource decodes a Scale.
    let err = api_err(
        deploys
            .patch_scale(
                "shop-green",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"replicas": true}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(err.code, 422);
    assert!(
        err.message.ends_with(
            "json: cannot unmarshal bool into Go struct field ScaleSpec.spec.replicas of type int32"
        ),
        "{}",
        err.message
    );

    // Nothing was stored by any of them (the controllers write the Deployment's status).
    let after_svc = sim.get("services", "default", "shop").unwrap();
    let after_dep = sim.get("deployments", "default", "shop-green").unwrap();
    assert_eq!(after_svc, before_svc);
    assert_eq!(after_dep["spec"], before_dep["spec"]);
    assert_eq!(after_dep["metadata"]["generation"], 1);
}

/// The entries of an object's managedFields, as (manager, subresource, fieldsV1).
fn managed_entries(obj: &Value) -> Vec<(String, String, Value)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            assert_eq!(e["operation"], "Update", "{e}");
            assert_eq!(e["fieldsType"], "FieldsV1", "{e}");
            assert!(
                e["time"]
                    .as_str()
                    .is_some_and(|t| t.len() == 20 && t.ends_with('Z')),
                "{e}"
            );
            (
                e["manager"].as_str().unwrap().to_string(),
                e["subresource"].as_str().unwrap_or("").to_string(),
                e["fieldsV1"].clone(),
            )
        })
        .collect()
}

#[tokio::test]
async fn managed_fields_record_each_manager_and_move_on_update() {
    let (sim, client) = start().await;
    sim.apply_yaml("default", CONTRACT).unwrap();
    let services: Api<Service> = Api::default_namespaced(client.clone());
    let as_json = |s: Service| serde_json::to_value(s).unwrap();

    // The plugin's patch of the selector: upstream marks a Service selector atomic
    // (`+mapType=atomic`), so the manager owns `f:spec.f:selector` as one leaf.
    let by = |m: &str| PatchParams {
        field_manager: Some(m.into()),
        ..PatchParams::default()
    };
    let flip = json!({"spec": {"selector": {"bluegreen.io/color": "green"}}, "metadata": {"labels": {"bluegreen.io/live": "green"}}});
    let s = as_json(
        services
            .patch("shop", &by("kubectl-bluegreen"), &Patch::Merge(flip))
            .await
            .unwrap(),
    );
    let owned = bluegreen_sim::managed::owned_by(&s, "kubectl-bluegreen");
    assert!(owned.has(&["f:spec", "f:selector"]), "{s}");
    assert!(
        owned.has(&["f:metadata", "f:labels", "f:bluegreen.io/live"]),
        "{s}"
    );
    let mine = managed_entries(&s)
        .into_iter()
        .find(|(m, _, _)| m == "kubectl-bluegreen")
        .unwrap();
    assert_eq!(
        mine.2,
        json!({"f:metadata": {"f:labels": {"f:bluegreen.io/live": {}}}, "f:spec": {"f:selector": {}}})
    );
    // The fixture loader created it and no longer owns the selector.
    let loader = bluegreen_sim::managed::owned_by(&s, "bluegreen-sim");
    assert!(!loader.has(&["f:spec", "f:selector"]), "{s}");
    assert!(loader.has(&["f:spec", "f:ports"]), "{s}");

    // Another manager sets the same field: ownership moves (Update never conflicts).
    let back = json!({"spec": {"selector": {"app.kubernetes.io/name": "shop", "bluegreen.io/color": "blue"}}});
    let s = as_json(
        services
            .patch("shop", &by("argocd-controller"), &Patch::Strategic(back))
            .await
            .unwrap(),
    );
    let argo = bluegreen_sim::managed::owned_by(&s, "argocd-controller");
    let plugin = bluegreen_sim::managed::owned_by(&s, "kubectl-bluegreen");
    assert!(argo.has(&["f:spec", "f:selector"]), "{s}");
    assert!(!plugin.has(&["f:spec", "f:selector"]), "{s}");
    assert!(
        plugin.has(&["f:metadata", "f:labels", "f:bluegreen.io/live"]),
        "{s}"
    );
    // Label keys are granular: another manager's label leaves this one's alone.
    let s = as_json(
        services
            .patch(
                "shop",
                &by("argocd-controller"),
                &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
            )
            .await
            .unwrap(),
    );
    assert!(
        bluegreen_sim::managed::owned_by(&s, "kubectl-bluegreen").has(&[
            "f:metadata",
            "f:labels",
            "f:bluegreen.io/live"
        ])
    );
    // A write that changes nothing touches no entry and no resourceVersion.
    let again = services
        .patch(
            "shop",
            &by("someone-else"),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}})),
        )
        .await
        .unwrap();
    assert_eq!(as_json(again), s);

    // A PUT without managedFields keeps the live ones; `[{}]` strips them all.
    let mut cur = services.get("shop").await.unwrap();
    cur.metadata.managed_fields = None;
    cur.metadata
        .labels
        .as_mut()
        .unwrap()
        .insert("x".into(), "y".into());
    let pp = PostParams {
        field_manager: Some("replacer".into()),
        ..PostParams::default()
    };
    let s = as_json(services.replace("shop", &pp, &cur).await.unwrap());
    let managers: Vec<String> = managed_entries(&s).into_iter().map(|e| e.0).collect();
    for m in [
        "argocd-controller",
        "bluegreen-sim",
        "kubectl-bluegreen",
        "replacer",
    ] {
        assert!(managers.contains(&m.to_string()), "{m} in {managers:?}");
    }
    let strip = Patch::<Value>::Json(
        serde_json::from_value(
            json!([{"op": "replace", "path": "/metadata/managedFields", "value": [{}]}]),
        )
        .unwrap(),
    );
    let s = as_json(services.patch("shop", &by("x"), &strip).await.unwrap());
    assert!(s["metadata"].get("managedFields").is_none(), "{s}");

    // Controllers write as upstream's: the Deployment's status and the pods' status.
    sim.wait_converged("default").await.unwrap();
    let d = sim.get("deployments", "default", "shop-blue").unwrap();
    let entries = managed_entries(&d);
    assert!(
        entries
            .iter()
            .any(|(m, sub, f)| m == "kube-controller-manager"
                && sub == "status"
                && f["f:status"]["f:conditions"]["k:{\"type\":\"Available\"}"].is_object()),
        "{entries:?}"
    );
    let rs = sim.list("replicasets", "default");
    let rs = rs
        .iter()
        .find(|r| {
            r["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with("shop-blue-")
        })
        .unwrap();
    assert!(
        bluegreen_sim::managed::owned_by(rs, "kube-controller-manager")
            .has(&["f:spec", "f:replicas"])
    );
    let pod = sim.list("pods", "default").into_iter().find(|p| {
        p["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("shop-blue-")
    });
    let p = pod.expect("a blue pod");
    let kubelet = managed_entries(&p)
        .into_iter()
        .find(|(m, _, _)| m == "kubelet")
        .expect("kubelet entry");
    assert_eq!(kubelet.1, "status");
    assert!(kubelet.2["f:status"]["f:phase"].is_object());
    // The scale subresource records on the parent, as subresource `scale`.
    let deploys: Api<Deployment> = Api::default_namespaced(client);
    let scaled = deploys
        .patch_scale(
            "shop-blue",
            &by("scaler"),
            &Patch::Merge(json!({"spec": {"replicas": 4}})),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(4));
    let d = sim.get("deployments", "default", "shop-blue").unwrap();
    assert!(
        managed_entries(&d).iter().any(|(m, sub, f)| m == "scaler"
            && sub == "scale"
            && *f == json!({"f:spec": {"f:replicas": {}}})),
        "{}",
        d["metadata"]["managedFields"]
    );
}

/// Fields the type does not know: dropped and named in a `Warning` header by default
/// (`Warn`), dropped silently with `Ignore`, refused with `Strict` (a create's decoding
/// error; a patch's 422 `"" is invalid: patch: …`), and never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_dropped_warned_or_refused_as_the_request_asks() {
    let (sim, client) = start().await;
    let url = sim.url().to_string();
    let http = |q: &str, method: &str, ct: &str, body: &str| {
        let mut cmd = std::process::Command::new("curl");
        cmd.args(["-sk", "-i", "-X", method, "-H"])
            .arg(format!("Authorization: Bearer {}", sim.token()))
            .args(["-H", &format!("Content-Type: {ct}"), "--data", body])
            .arg(format!("{url}/api/v1/namespaces/default/configmaps{q}"));
        String::from_utf8_lossy(&cmd.output().unwrap().stdout).into_owned()
    };
    let cm = |name: &str| {
        format!(
            r#"{{"apiVersion":"v1","kind":"ConfigMap","metadata":{{"name":"{name}"}},"data":{{"a":"1"}},"spec":{{"foo":1}}}}"#
        )
    };
    // The status line's code (HTTP/2 or 1.1, as curl and the sim agree).
    let code = |r: &str| r.split_whitespace().nth(1).unwrap_or_default().to_string();
    let warned = http("", "POST", "application/json", &cm("warned"));
    assert!(code(&warned) == "201", "{warned}");
    assert!(
        warned
            .to_ascii_lowercase()
            .contains(r#"warning: 299 - "unknown field \"spec\"""#),
        "{warned}"
    );
    let ignored = http(
        "?fieldValidation=Ignore",
        "POST",
        "application/json",
        &cm("ignored"),
    );
    assert!(
        code(&ignored) == "201" && !ignored.to_ascii_lowercase().contains("warning:"),
        "{ignored}"
    );
    let strict = http(
        "?fieldValidation=Strict",
        "POST",
        "application/json",
        &cm("strict"),
    );
    assert!(code(&strict) == "400", "{strict}");
    assert!(
        strict.contains(r#"ConfigMap in version \"v1\" cannot be handled as a ConfigMap: strict decoding error: unknown field \"spec\""#),
        "{strict}"
    );
    let bad = http(
        "?fieldValidation=Loud",
        "POST",
        "application/json",
        &cm("loud"),
    );
    assert!(code(&bad) == "400", "{bad}");
    for name in ["warned", "ignored"] {
        let stored = sim.get("configmaps", "default", name).unwrap();
        assert!(stored.get("spec").is_none(), "never stored: {stored}");
        assert_eq!(stored["data"]["a"], "1");
    }
    assert!(sim.get("configmaps", "default", "strict").is_none());

    let deployments: Api<Deployment> = Api::namespaced(client, "default");
    sim.apply_yaml("default", &deployment("u", 1, "app:1"))
        .unwrap();
    let strict = PatchParams {
        field_validation: Some(kube::api::ValidationDirective::Strict),
        ..PatchParams::default()
    };
    for patch in [
        Patch::Merge(json!({"spec": {"bar": 1}})),
        Patch::Strategic(json!({"spec": {"bar": 1}})),
    ] {
        let status = api_err(deployments.patch("u", &strict, &patch).await.unwrap_err());
        assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
        assert!(
            status
                .message
                .starts_with(r#" "" is invalid: patch: Invalid value: "#)
                && status
                    .message
                    .ends_with(r#": strict decoding error: unknown field "spec.bar""#),
            "{}",
            status.message
        );
    }
    let warn = deployments
        .patch(
            "u",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"bar": 1}})),
        )
        .await
        .unwrap();
    assert!(
        serde_json::to_value(&warn).unwrap()["spec"]
            .get("bar")
            .is_none()
    );
}

/// Lists at a resourceVersion as upstream serves them: `Exact` is a snapshot at that
/// version (objects since created are absent, since deleted present), older than the
/// history is 410, newer than the store is 504, and every misuse of
/// `resourceVersionMatch` is one 422 on `ListOptions` naming each error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_at_a_resource_version_are_snapshots_or_upstreams_errors() {
    let (sim, client) = start().await;
    let cms: Api<k8s_openapi::api::core::v1::ConfigMap> =
        Api::namespaced(client.clone(), "default");
    let cm = |name: &str| serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    let a = cms.create(&PostParams::default(), &cm("a")).await.unwrap();
    let rv_a = a.metadata.resource_version.clone().unwrap();
    cms.create(&PostParams::default(), &cm("b")).await.unwrap();
    cms.delete("a", &DeleteParams::default()).await.unwrap();
    let names = |l: kube::core::ObjectList<k8s_openapi::api::core::v1::ConfigMap>| {
        l.items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect::<Vec<_>>()
    };
    let exact = ListParams::default()
        .at(&rv_a)
        .matching(kube::api::VersionMatch::Exact);
    let then = cms.list(&exact).await.unwrap();
    assert_eq!(
        then.metadata.resource_version.as_deref(),
        Some(rv_a.as_str())
    );
    assert_eq!(names(then), ["a"], "the snapshot at a's creation");
    assert_eq!(
        names(cms.list(&ListParams::default()).await.unwrap()),
        ["b"]
    );
    // Through the label index: an object relabelled since is in the snapshot it matched.
    let l: k8s_openapi::api::core::v1::ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "l", "labels": {"tier": "x"}}}))
            .unwrap();
    let rv_l = cms
        .create(&PostParams::default(), &l)
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    cms.patch(
        "l",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "y"}}})),
    )
    .await
    .unwrap();
    let tier_x = ListParams::default().labels("tier=x");
    assert_eq!(
        names(
            cms.list(
                &tier_x
                    .clone()
                    .at(&rv_l)
                    .matching(kube::api::VersionMatch::Exact)
            )
            .await
            .unwrap()
        ),
        ["l"]
    );
    assert!(names(cms.list(&tier_x).await.unwrap()).is_empty());

    let raw = |q: &str| {
        let out = std::process::Command::new("curl")
            .args(["-sk", "-H"])
            .arg(format!("Authorization: Bearer {}", sim.token()))
            .arg(format!(
                "{}/api/v1/namespaces/default/configmaps?{q}",
                sim.url()
            ))
            .output()
            .unwrap();
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    // Through curl: kube-rs's client retries a 504 (as it should a real server's).
    let e = raw("resourceVersionMatch=Exact&resourceVersion=999999");
    assert_eq!(
        (e["code"].as_i64(), e["reason"].as_str()),
        (Some(504), Some("Timeout")),
        "{e}"
    );
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .starts_with("Too large resource version: 999999, current: "),
        "{e}"
    );
    let e = raw("resourceVersionMatch=NotOlderThan");
    assert_eq!(e["code"], 422);
    assert_eq!(
        e["message"],
        r#"ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided"#
    );
    assert_eq!(e["details"]["group"], "meta.k8s.io");
    let e = raw("resourceVersionMatch=Exact&resourceVersion=0");
    assert_eq!(e["code"], 422);
    assert_eq!(
        e["details"]["causes"][0]["message"],
        r#"Forbidden: resourceVersionMatch "exact" is forbidden for resourceVersion "0""#
    );
    let e = raw("resourceVersionMatch=Sometimes");
    assert_eq!(e["code"], 422);
    assert_eq!(
        e["details"]["causes"].as_array().unwrap().len(),
        2,
        "both errors: {e}"
    );

    sim.cluster().store.compact();
    let e = api_err(cms.list(&exact).await.unwrap_err());
    assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
    assert_eq!(
        e.message,
        "The resourceVersion for the provided list is too old."
    );
}

/// As the API server: HTTP/2 for a client that offers it by ALPN (client-go, kubectl,
/// curl), HTTP/1.1 for one that does not; the sim counts the connections of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_is_served_to_clients_that_offer_it_and_http1_to_the_rest() {
    let (sim, _client) = start().await;
    sim.cluster().clear_request_log();
    let version = |flag: &str| {
        let out = std::process::Command::new("curl")
            .args([
                "-sk",
                flag,
                "-o",
                "/dev/null",
                "-w",
                "%{http_version} %{http_code}",
            ])
            .args(["-H", &format!("Authorization: Bearer {}", sim.token())])
            .arg(format!("{}/api/v1/namespaces/default/services", sim.url()))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(version("--http2"), "2 200");
    assert_eq!(version("--http1.1"), "1.1 200");
    assert_eq!(sim.cluster().connections_accepted(), (1, 1));
}
