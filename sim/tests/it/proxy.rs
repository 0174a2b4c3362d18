//! The proxy subresources (`services/proxy`, `pods/proxy`) through the traffic plane,
//! with kube-rs and the real `kubectl`, and the image conventions only HTTP shows:
//! `http500` (Ready, 500 but on its readiness path) and `failafter-<duration>` (Ready,
//! then not ready and 500, then restarted).

use crate::kubectl::Kubectl;
use crate::{CONTRACT, deployment, is_ready, live_pods};
use bluegreen_sim::{Fault, FaultAction, Sim, Timing, rules_from_yaml};
use serde_json::Value;
use std::time::Duration;

/// The answer to a request through the API server: status code and body.
async fn call(client: &kube::Client, method: &str, path: &str) -> (u16, Value) {
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .body(Vec::new())
        .unwrap();
    let resp = client
        .send(req.map(kube::client::Body::from))
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (
        code,
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into())),
    )
}

async fn get(client: &kube::Client, path: &str) -> (u16, Value) {
    call(client, "GET", path).await
}

/// Retries a GET until it answers `code` (pod servers start on the traffic plane's pass
/// after the controllers converged).
async fn eventually(client: &kube::Client, path: &str, code: u16) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (c, body) = get(client, path).await;
        if c == code {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} kept answering {c}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const SHOP: &str = "/api/v1/namespaces/default/services";
const PODS: &str = "/api/v1/namespaces/default/pods";

/// A kube-rs client without the default retry layer, which would retry every 503 (the
/// answers under test) up to 15 times with exponential backoff.
async fn client(sim: &Sim) -> kube::Client {
    let kc = kube::config::Kubeconfig::from_yaml(&sim.kubeconfig_yaml()).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    config.default_retry = false;
    kube::Client::try_from(config).unwrap()
}

async fn shop(traffic: bool) -> (Sim, kube::Client, Vec<String>) {
    let sim = Sim::start().await.unwrap();
    if traffic {
        sim.cluster().enable_traffic();
    }
    sim.apply_yaml("default", CONTRACT).unwrap();
    sim.wait_converged("default").await.unwrap();
    let client = client(&sim).await;
    let blue = sim
        .list("pods", "default")
        .iter()
        .filter(|p| p["metadata"]["labels"]["bluegreen.io/color"] == "blue")
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    (sim, client, blue)
}

fn status_of(body: &Value) -> (&str, &str) {
    assert_eq!(body["kind"], "Status", "{body}");
    (
        body["reason"].as_str().unwrap(),
        body["message"].as_str().unwrap(),
    )
}

#[tokio::test]
async fn service_and_pod_proxy_reach_ready_pods_through_kube_rs() {
    let (_sim, client, blue) = shop(true).await;
    // By port number (mapped to the port's name, as upstream) and by port name.
    let body = eventually(&client, &format!("{SHOP}/shop:80/proxy/healthz"), 200).await;
    assert!(blue.contains(&body["pod"].as_str().unwrap().to_string()));
    assert_eq!(body["path"], "/healthz");
    assert_eq!(body["labels"]["bluegreen.io/color"], "blue");
    let body = eventually(
        &client,
        &format!("{SHOP}/http:shop:http/proxy/a/b?x=1"),
        200,
    )
    .await;
    assert_eq!(body["path"], "/a/b?x=1");
    // kube-rs's request_text, as a plugin would call it.
    let text = client
        .request_text(
            hyper::Request::get(format!("{SHOP}/shop:80/proxy/"))
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert!(text.contains("\"path\":\"/\""), "{text}");
    // Every pod, one by one, by name and by container port; any method.
    for pod in &blue {
        let body = eventually(&client, &format!("{PODS}/{pod}/proxy/hello"), 200).await;
        assert_eq!(body["pod"], pod.as_str());
        let body = eventually(&client, &format!("{PODS}/{pod}:8080/proxy"), 200).await;
        assert_eq!(
            (body["pod"].as_str(), body["path"].as_str()),
            (Some(pod.as_str()), Some("/"))
        );
    }
    let (code, body) = call(&client, "POST", &format!("{PODS}/{}/proxy/submit", blue[0])).await;
    assert_eq!((code, body["method"].as_str()), (200, Some("POST")));
    // A port the pod does not declare: nothing listens there.
    let (code, body) = get(&client, &format!("{PODS}/{}:9999/proxy/", blue[0])).await;
    assert_eq!(code, 503);
    let (reason, msg) = status_of(&body);
    assert_eq!(reason, "ServiceUnavailable");
    assert!(
        msg.starts_with("error trying to reach service: dial tcp 10.244.")
            && msg.ends_with(":9999: connect: connection refused"),
        "{msg}"
    );
    // The pods' answers appear in the request log like every request.
    assert!(
        _sim.cluster()
            .request_log()
            .iter()
            .any(|e| e.path.ends_with("/proxy/submit") && e.code == 200 && e.method == "POST")
    );
}

#[tokio::test]
async fn proxy_errors_read_as_upstream() {
    let (sim, client, _) = shop(true).await;
    eventually(&client, &format!("{SHOP}/shop:80/proxy/"), 200).await;
    // A bare name means the Service's unnamed port; shop's only port is named `http`.
    let (code, body) = get(&client, &format!("{SHOP}/shop/proxy/")).await;
    assert_eq!(code, 503);
    assert_eq!(
        status_of(&body),
        (
            "ServiceUnavailable",
            "no endpoints available for service \"shop\""
        )
    );
    let (code, body) = get(&client, &format!("{SHOP}/shop:81/proxy/")).await;
    assert_eq!(code, 503);
    assert_eq!(
        status_of(&body).1,
        "no service port 81 found for service \"shop\""
    );
    let (code, body) = get(&client, &format!("{SHOP}/nope:80/proxy/")).await;
    assert_eq!(
        (code, status_of(&body)),
        (404, ("NotFound", "services \"nope\" not found"))
    );
    assert_eq!(body["details"]["name"], "nope");
    let (code, body) = get(&client, &format!("{SHOP}/nope/proxy/")).await;
    assert_eq!(
        (code, status_of(&body).1),
        (404, "endpoints \"nope\" not found")
    );
    let (code, body) = get(&client, &format!("{PODS}/nope/proxy/")).await;
    assert_eq!((code, status_of(&body).1), (404, "pods \"nope\" not found"));
    let (code, body) = get(&client, &format!("{SHOP}/ftp:shop:80/proxy/")).await;
    assert_eq!(
        (code, status_of(&body).1),
        (400, "invalid service request \"ftp:shop:80\"")
    );
    // No ready endpoint: the preview Service selects the idle green slot.
    let (code, body) = get(&client, &format!("{SHOP}/shop-preview:80/proxy/")).await;
    assert_eq!(code, 503);
    assert_eq!(
        status_of(&body),
        (
            "ServiceUnavailable",
            "no endpoints available for service \"shop-preview\""
        )
    );
    // Pods that are not ready yet (neverready) are in notReadyAddresses only: no endpoint
    // for the Service, and the pod itself has no server.
    sim.apply_yaml("default", &deployment("stuck", 1, "web:neverready"))
        .unwrap();
    sim.apply_yaml(
        "default",
        "apiVersion: v1\nkind: Service\nmetadata: {name: stuck}\nspec: {selector: {app: stuck}, ports: [{port: 80, targetPort: 8080}]}",
    )
    .unwrap();
    sim.wait_for("stuck's not-ready endpoint", Duration::from_secs(10), |s| {
        s.get("endpoints", "default", "stuck")
            .is_some_and(|e| e["subsets"][0]["notReadyAddresses"].is_array())
    })
    .await
    .unwrap();
    let (code, body) = get(&client, &format!("{SHOP}/stuck:80/proxy/")).await;
    assert_eq!(
        (code, status_of(&body).1),
        (503, "no endpoints available for service \"stuck:80\"")
    );
    let stuck = live_pods(&sim, "default", "stuck");
    let ip = stuck[0]["status"]["podIP"].as_str().unwrap();
    let name = stuck[0]["metadata"]["name"].as_str().unwrap();
    let (code, body) = get(&client, &format!("{PODS}/{name}/proxy/")).await;
    assert_eq!(code, 503);
    assert_eq!(
        status_of(&body).1,
        format!("error trying to reach service: dial tcp {ip}:8080: connect: connection refused")
    );
}

#[tokio::test]
async fn with_the_traffic_plane_off_no_pod_answers() {
    let (sim, client, blue) = shop(false).await;
    let (code, body) = get(&client, &format!("{SHOP}/shop:80/proxy/healthz")).await;
    assert_eq!(code, 503);
    let (reason, msg) = status_of(&body);
    assert_eq!(reason, "ServiceUnavailable");
    let ips: Vec<String> = sim
        .list("pods", "default")
        .iter()
        .map(|p| p["status"]["podIP"].as_str().unwrap().to_string())
        .collect();
    assert!(
        ips.iter().any(|ip| msg
            == format!(
                "error trying to reach service: dial tcp {ip}:8080: connect: connection refused"
            )),
        "{msg}"
    );
    let (code, _) = get(&client, &format!("{PODS}/{}/proxy/", blue[0])).await;
    assert_eq!(code, 503);
}

#[tokio::test]
async fn rbac_and_faults_treat_proxy_as_its_own_subresource() {
    let (sim, client, blue) = shop(true).await;
    let path = format!("{SHOP}/shop:80/proxy/healthz");
    eventually(&client, &path, 200).await;
    sim.cluster()
        .add_fault(Fault::new("get", "services/proxy", FaultAction::Forbidden));
    let (code, body) = get(&client, &path).await;
    assert_eq!(code, 403);
    assert_eq!(
        status_of(&body),
        (
            "Forbidden",
            "services \"shop:80\" is forbidden: User \"sim-admin\" cannot get resource \"services/proxy\" in API group \"\" in the namespace \"default\""
        )
    );
    // Not the Service itself, nor the pod proxy.
    assert_eq!(get(&client, &format!("{SHOP}/shop")).await.0, 200);
    assert_eq!(
        get(&client, &format!("{PODS}/{}/proxy/", blue[0])).await.0,
        200
    );
    sim.cluster().clear_faults();
    // A fault on one pod's proxy, by the pod's name (whatever port is asked).
    sim.cluster()
        .add_fault(Fault::parse(&format!("get:pods/proxy/{}=500", blue[0])).unwrap());
    assert_eq!(
        get(&client, &format!("{PODS}/{}:8080/proxy/", blue[0]))
            .await
            .0,
        500
    );
    assert_eq!(
        get(&client, &format!("{PODS}/{}/proxy/", blue[1])).await.0,
        200
    );
    sim.cluster().clear_faults();
    // RBAC: reading Services does not grant their proxy.
    let role = |extra: &str| {
        format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: r}}\nrules:\n- apiGroups: [\"\"]\n  resources: [services, pods{extra}]\n  verbs: [get]\n"
        )
    };
    sim.cluster()
        .set_rbac(Some(rules_from_yaml(&role("")).unwrap()));
    assert_eq!(get(&client, &format!("{SHOP}/shop")).await.0, 200);
    assert_eq!(get(&client, &path).await.0, 403);
    let (code, body) = get(&client, &format!("{PODS}/{}/proxy/", blue[0])).await;
    assert_eq!(code, 403);
    assert!(
        status_of(&body)
            .1
            .contains("cannot get resource \"pods/proxy\"")
    );
    sim.cluster().set_rbac(Some(
        rules_from_yaml(&role(", services/proxy, pods/proxy")).unwrap(),
    ));
    assert_eq!(get(&client, &path).await.0, 200);
    assert_eq!(
        get(&client, &format!("{PODS}/{}/proxy/", blue[0])).await.0,
        200
    );
    // POST is `create` on the subresource, which the Role does not grant.
    assert_eq!(
        call(&client, "POST", &format!("{PODS}/{}/proxy/", blue[0]))
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn discovery_lists_the_proxy_subresources() {
    let sim = Sim::start().await.unwrap();
    let client = client(&sim).await;
    let (_, list) = get(&client, "/api/v1").await;
    let r = list["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "services/proxy")
        .expect("services/proxy");
    assert_eq!(r["kind"], "ServiceProxyOptions");
    assert_eq!(
        r["verbs"],
        serde_json::json!(["create", "delete", "get", "patch", "update"])
    );
    assert!(
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "pods/proxy" && r["kind"] == "PodProxyOptions")
    );
}

#[tokio::test]
async fn an_http500_pod_is_ready_but_answers_500_off_its_readiness_path() {
    let sim = Sim::start().await.unwrap();
    sim.cluster().enable_traffic();
    // green, the preview slot, runs the broken version with 2 replicas.
    let app = CONTRACT.replace("replicas: 0", "replicas: 2");
    let green_at = app.find("name: shop-green").unwrap();
    let (head, tail) = app.split_at(green_at);
    let app = format!(
        "{head}{}",
        tail.replacen("shop/web:1.4.2", "shop/web:2.0-http500", 1)
    );
    sim.apply_yaml("default", &app).unwrap();
    sim.wait_converged("default").await.unwrap();
    let client = client(&sim).await;
    let green: Vec<Value> = sim
        .list("pods", "default")
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["bluegreen.io/color"] == "green")
        .collect();
    assert_eq!(green.len(), 2);
    assert!(green.iter().all(is_ready), "http500 passes readiness");
    for p in &green {
        let name = p["metadata"]["name"].as_str().unwrap();
        let body = eventually(&client, &format!("{PODS}/{name}/proxy/healthz"), 200).await;
        assert_eq!(body["pod"], name);
        let (code, body) = get(&client, &format!("{PODS}/{name}/proxy/")).await;
        assert_eq!(code, 500, "{body}");
        assert_eq!(body["pod"], name);
        assert_eq!(
            get(&client, &format!("{PODS}/{name}/proxy/api/orders"))
                .await
                .0,
            500
        );
    }
    // Through the preview Service too; the live one still answers 200 everywhere.
    assert_eq!(
        get(&client, &format!("{SHOP}/shop-preview:80/proxy/"))
            .await
            .0,
        500
    );
    assert_eq!(
        get(&client, &format!("{SHOP}/shop-preview:http/proxy/healthz"))
            .await
            .0,
        200
    );
    assert_eq!(
        eventually(&client, &format!("{SHOP}/shop:80/proxy/"), 200).await["path"],
        "/"
    );
}

fn restarts(p: &Value) -> i64 {
    p["status"]["containerStatuses"][0]["restartCount"]
        .as_i64()
        .unwrap_or(0)
}

/// The kubelet side on paused time: Ready, not ready when the duration is up, restarted
/// a second later (not ready again for `pod_ready_after`), and again from the new start.
#[tokio::test(start_paused = true)]
async fn a_failafter_container_fails_and_restarts_cycle_after_cycle() {
    let sim = Sim::start_with(Timing {
        pod_ready_after: Duration::from_secs(2),
        ..Timing::default()
    })
    .await
    .unwrap();
    sim.apply_yaml("default", &deployment("web", 1, "web:3-failafter-20s"))
        .unwrap();
    let t0 = tokio::time::Instant::now();
    let pod = |s: &Sim| live_pods(s, "default", "web").pop();
    sim.wait_for("ready", Duration::from_secs(10), |s| {
        pod(s).is_some_and(|p| is_ready(&p))
    })
    .await
    .unwrap();
    sim.wait_for("not ready", Duration::from_secs(60), |s| {
        pod(s).is_some_and(|p| !is_ready(&p))
    })
    .await
    .unwrap();
    let failed = t0.elapsed();
    assert!(
        failed >= Duration::from_secs(20) && failed < Duration::from_secs(21),
        "{failed:?}"
    );
    let p = pod(&sim).unwrap();
    assert_eq!(restarts(&p), 0, "not ready before it restarts");
    assert_eq!(p["status"]["containerStatuses"][0]["ready"], false);
    sim.wait_for("restarted", Duration::from_secs(60), |s| {
        pod(s).is_some_and(|p| restarts(&p) == 1)
    })
    .await
    .unwrap();
    let p = pod(&sim).unwrap();
    assert!(
        !is_ready(&p),
        "not ready for pod_ready_after after the restart"
    );
    let cs = &p["status"]["containerStatuses"][0];
    assert_eq!(cs["lastState"]["terminated"]["reason"], "Error");
    assert!(cs["state"]["running"].is_object());
    sim.wait_for("ready again", Duration::from_secs(60), |s| {
        pod(s).is_some_and(|p| is_ready(&p))
    })
    .await
    .unwrap();
    let back = t0.elapsed();
    assert!(
        back >= Duration::from_secs(23) && back < Duration::from_secs(24),
        "{back:?}"
    );
    sim.wait_for("restarted twice", Duration::from_secs(120), |s| {
        pod(s).is_some_and(|p| restarts(&p) == 2)
    })
    .await
    .unwrap();
    let twice = t0.elapsed();
    assert!(
        twice >= Duration::from_secs(42) && twice < Duration::from_secs(43),
        "{twice:?}"
    );
    // The same pod all along: a container restart, not a replacement.
    assert_eq!(live_pods(&sim, "default", "web").len(), 1);
}

/// The HTTP side on real time: 200, then (not ready) 500, its endpoint not ready, then
/// after the restart 200 again from a new run, and the count keeps growing.
#[tokio::test]
async fn a_failafter_pod_answers_500_once_failed_and_again_200_after_its_restart() {
    let sim = Sim::start().await.unwrap();
    sim.cluster().enable_traffic();
    sim.apply_yaml("default", &deployment("web", 1, "web:failafter-1s"))
        .unwrap();
    sim.apply_yaml(
        "default",
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}",
    )
    .unwrap();
    let client = client(&sim).await;
    let pod = |s: &Sim| live_pods(s, "default", "web").pop();
    sim.wait_for("ready", Duration::from_secs(10), |s| {
        pod(s).is_some_and(|p| is_ready(&p))
    })
    .await
    .unwrap();
    let name = pod(&sim).unwrap()["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("{PODS}/{name}/proxy/");
    let body = eventually(&client, &path, 200).await;
    assert_eq!(body["pod"], name.as_str());
    sim.wait_for("not ready", Duration::from_secs(10), |s| {
        pod(s).is_some_and(|p| !is_ready(&p))
    })
    .await
    .unwrap();
    let (code, body) = get(&client, &path).await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(
        get(&client, &format!("{PODS}/{name}/proxy/healthz"))
            .await
            .0,
        500
    );
    sim.wait_for("endpoint not ready", Duration::from_secs(10), |s| {
        s.list("endpointslices", "default").iter().any(|sl| {
            sl["metadata"]["labels"]["kubernetes.io/service-name"] == "web"
                && sl["endpoints"][0]["conditions"]["ready"] == false
        })
    })
    .await
    .unwrap();
    sim.wait_for("restarted and ready", Duration::from_secs(10), |s| {
        pod(s).is_some_and(|p| restarts(&p) >= 1 && is_ready(&p))
    })
    .await
    .unwrap();
    let body = eventually(&client, &format!("{SHOP}/web:80/proxy/"), 200).await;
    assert_eq!(body["pod"], name.as_str());
    sim.wait_for("restarted twice", Duration::from_secs(10), |s| {
        pod(s).is_some_and(|p| restarts(&p) >= 2)
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn kubectl_get_raw_through_the_proxies() {
    let (sim, client, blue) = shop(true).await;
    eventually(&client, &format!("{SHOP}/shop:80/proxy/healthz"), 200).await;
    let Some(k) = Kubectl::for_sim(&sim) else {
        return;
    };
    let out = k
        .run(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/services/shop:80/proxy/healthz",
        ])
        .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(blue.contains(&v["pod"].as_str().unwrap().to_string()));
    assert_eq!(v["path"], "/healthz");
    let out = k
        .run(&["get", "--raw", &format!("{PODS}/{}:8080/proxy/", blue[1])])
        .await;
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["pod"], blue[1].as_str());
    let out = k
        .run(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/services/shop-preview:80/proxy/",
        ])
        .await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim(),
        "Error from server (ServiceUnavailable): no endpoints available for service \"shop-preview\""
    );
    let out = k
        .run(&[
            "get",
            "--raw",
            "/api/v1/namespaces/default/services/nope:80/proxy/",
        ])
        .await;
    assert_eq!(
        out.stderr.trim(),
        "Error from server (NotFound): services \"nope\" not found"
    );
    sim.cluster()
        .add_fault(Fault::parse("get:services/proxy=forbidden").unwrap());
    let out = k
        .run(&["auth", "can-i", "get", "services", "--subresource=proxy"])
        .await;
    assert_eq!(out.stdout.trim(), "no");
    let out = k
        .run(&["auth", "can-i", "get", "pods", "--subresource=proxy"])
        .await;
    assert_eq!(out.stdout.trim(), "yes");
}
