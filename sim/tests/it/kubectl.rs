//! Fidelity: the real `kubectl` against the HTTPS simulator, asserting the lines kubectl
//! prints against a real cluster. Without kubectl these tests are skipped with a printed
//! reason, except under `CI=true` where they fail. `KUBECTL=/path` picks another binary
//! (several versions are installed beside the one on the PATH).

use crate::{CONTRACT, VERSION_LABEL};
use bluegreen_sim::{Fault, FaultAction, Sim, Timing};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

pub struct Kubectl {
    bin: String,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    #[track_caller]
    fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "kubectl failed:\n{}{}",
            self.stdout, self.stderr
        );
        &self.stdout
    }
}

fn kubectl_bin() -> Option<String> {
    let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let found = std::process::Command::new(&bin)
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some(bin);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("kubectl ({bin}) is required when CI=true");
    }
    eprintln!("skipping: kubectl ({bin}) is not on the PATH");
    None
}

impl Kubectl {
    pub fn for_sim(sim: &Sim) -> Option<Kubectl> {
        let bin = kubectl_bin()?;
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig).unwrap();
        Some(Kubectl {
            bin,
            dir,
            kubeconfig,
        })
    }

    pub fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p.to_string_lossy().into_owned()
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(self.dir.path().join("cache"))
            .args(args)
            .env_remove("KUBECONFIG")
            .env("HOME", self.dir.path())
            .kill_on_drop(true);
        cmd
    }

    pub async fn run(&self, args: &[&str]) -> Out {
        let out = tokio::time::timeout(Duration::from_secs(60), self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} hung"))
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Rows of a kubectl table: the first column of each line after the header.
fn first_column(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(String::from))
        .collect()
}

async fn demo() -> (Sim, Option<Kubectl>) {
    let sim = Sim::start().await.unwrap();
    sim.load_demo().await.unwrap();
    let k = Kubectl::for_sim(&sim);
    (sim, k)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_both_fixtures_then_get_in_every_form() {
    let sim = Sim::start().await.unwrap();
    let Some(k) = Kubectl::for_sim(&sim) else {
        return;
    };
    let contract = k.file("contract.yaml", CONTRACT);
    let version_label = k.file("version-label.yaml", VERSION_LABEL);
    let out = k.run(&["apply", "-f", &contract]).await;
    assert_eq!(
        out.ok(),
        "deployment.apps/shop-blue created\ndeployment.apps/shop-green created\nservice/shop created\nservice/shop-preview created\n"
    );
    let out = k.run(&["apply", "-f", &version_label]).await;
    assert_eq!(
        out.ok(),
        "deployment.apps/demo-dp-v1 created\ndeployment.apps/demo-dp-v2 created\nservice/demo-service created\n"
    );
    // Re-applying is a no-op, computed from the last-applied annotation.
    let out = k.run(&["apply", "-f", &contract]).await;
    assert_eq!(
        out.ok(),
        "deployment.apps/shop-blue unchanged\ndeployment.apps/shop-green unchanged\nservice/shop unchanged\nservice/shop-preview unchanged\n"
    );
    // Strict server-side field validation rejects unknown fields, as a real server does.
    let bad = k.file(
        "bad.yaml",
        &CONTRACT.replacen("replicas: 3", "replicas: 3\n  replicaz: 3", 1),
    );
    let out = k.run(&["apply", "-f", &bad]).await;
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains("unknown field \"spec.replicaz\""),
        "{}",
        out.stderr
    );

    sim.wait_converged("default").await.unwrap();
    let out = k.run(&["get", "deploy"]).await;
    let table = out.ok();
    assert!(
        table.starts_with("NAME         READY   UP-TO-DATE   AVAILABLE   AGE\n"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("shop-blue    3/3     3            3           ")),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("shop-green   0/0     0            0           ")),
        "{table}"
    );
    let out = k.run(&["get", "deploy", "-o", "json"]).await;
    let list: Value = serde_json::from_str(out.ok()).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 4);
    assert_eq!(list["items"][0]["kind"], "Deployment");
    let out = k
        .run(&[
            "get",
            "deploy",
            "-l",
            "bluegreen.io/color=blue",
            "-o",
            "name",
        ])
        .await;
    assert_eq!(out.ok(), "deployment.apps/shop-blue\n");
    let out = k
        .run(&["get", "pods", "-l", "bluegreen.io/color=blue"])
        .await;
    let table = out.ok();
    assert!(table.starts_with("NAME "), "{table}");
    assert_eq!(
        table
            .lines()
            .filter(|l| l.contains(" 2/2     Running   0 "))
            .count(),
        3,
        "{table}"
    );
    let out = k.run(&["get", "svc", "demo-service"]).await;
    let table = out.ok();
    assert!(
        table.contains("LoadBalancer") && table.contains("<pending>") && table.contains("80:"),
        "{table}"
    );
    let out = k
        .run(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=shop",
            "-o",
            "jsonpath={.items[0].endpoints[*].conditions.ready}",
        ])
        .await;
    assert_eq!(out.ok(), "true true true");
    let out = k.run(&["get", "deploy", "nope"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "Error from server (NotFound): deployments.apps \"nope\" not found\n"
    );
    let out = k.run(&["get", "deploy", "-n", "kube-system"]).await;
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str()),
        ("", "No resources found in kube-system namespace.\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_sees_a_change() {
    let (sim, k) = demo().await;
    let Some(k) = k else { return };
    let mut child = k
        .command(&[
            "get",
            "svc",
            "shop",
            "-w",
            "--output-watch-events",
            "-o",
            "custom-columns=EVENT:.type,COLOR:.object.spec.selector.bluegreen\\.io/color",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let read = async {
        while let Some(l) = lines.next_line().await.unwrap() {
            seen.push(l.split_whitespace().collect::<Vec<_>>().join(" "));
            if seen.len() == 2 {
                // The initial state comes from a GET; change it once the watch is open
                // (kubectl's own process, so this polls the request log briefly).
                for _ in 0..2000 {
                    if sim.cluster().request_log().iter().any(|e| {
                        e.path == "/api/v1/namespaces/default/services"
                            && e.query.contains("watch=true")
                    }) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                let mut svc = sim.get("services", "default", "shop").unwrap();
                svc["spec"]["selector"]["bluegreen.io/color"] = "green".into();
                sim.apply_object("default", svc).unwrap();
            }
            if seen.len() == 3 {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .expect("watch saw the change");
    child.kill().await.unwrap();
    assert_eq!(seen, ["EVENT COLOR", "ADDED blue", "MODIFIED green"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_in_all_three_types() {
    let (sim, k) = demo().await;
    let Some(k) = k else { return };
    let out = k
        .run(&[
            "patch",
            "svc",
            "shop",
            "--type",
            "merge",
            "-p",
            r#"{"metadata":{"annotations":{"note":"merged"}}}"#,
        ])
        .await;
    assert_eq!(out.ok(), "service/shop patched\n");
    let out = k.run(&["patch", "deploy", "shop-green", "--type", "strategic", "-p", r#"{"spec":{"template":{"spec":{"containers":[{"name":"web","env":[{"name":"MODE","value":"preview"}]}]}}}}"#]).await;
    assert_eq!(out.ok(), "deployment.apps/shop-green patched\n");
    let green = sim.get("deployments", "default", "shop-green").unwrap();
    let cs = green["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 2, "strategic merge kept the sidecar");
    assert_eq!(cs[0]["env"][0]["name"], "MODE");
    let out = k.run(&["patch", "deploy", "shop-green", "--type", "json", "-p", r#"[{"op":"test","path":"/spec/replicas","value":0},{"op":"replace","path":"/spec/replicas","value":1}]"#]).await;
    assert_eq!(out.ok(), "deployment.apps/shop-green patched\n");
    let out = k
        .run(&[
            "patch",
            "deploy",
            "shop-green",
            "--type",
            "json",
            "-p",
            r#"[{"op":"test","path":"/spec/replicas","value":0}]"#,
        ])
        .await;
    assert_eq!(out.code, 1, "a failed test op is an error");
    let out = k
        .run(&[
            "patch",
            "svc",
            "shop",
            "-p",
            r#"{"metadata":{"annotations":{"note":"merged"}}}"#,
        ])
        .await;
    assert_eq!(out.ok(), "service/shop patched (no change)\n");
    let out = k.run(&["patch", "deploy", "shop-blue", "-p", r#"{"spec":{"selector":{"matchLabels":{"x":"y"}},"template":{"metadata":{"labels":{"x":"y"}}}}}"#]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.starts_with("The Deployment \"shop-blue\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app.kubernetes.io/name\":\"shop\", \"bluegreen.io/color\":\"blue\", \"x\":\"y\"}"), "{}", out.stderr);
    assert!(
        out.stderr.trim_end().ends_with("field is immutable"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_image_scale_rollout_status_history_and_undo() {
    let (sim, k) = demo().await;
    let Some(k) = k else { return };
    let out = k.run(&["scale", "deploy/shop-green", "--replicas=2"]).await;
    assert_eq!(out.ok(), "deployment.apps/shop-green scaled\n");
    let out = k
        .run(&[
            "set",
            "image",
            "deploy/shop-green",
            "web=registry.example.com/shop/web:1.5.0",
        ])
        .await;
    assert_eq!(out.ok(), "deployment.apps/shop-green image updated\n");
    let out = k
        .run(&["rollout", "status", "deploy/shop-green", "--timeout=30s"])
        .await;
    assert!(
        out.ok()
            .ends_with("deployment \"shop-green\" successfully rolled out\n"),
        "{}",
        out.stdout
    );
    let green = sim.get("deployments", "default", "shop-green").unwrap();
    assert_eq!(
        green["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/shop/web:1.5.0"
    );
    let out = k.run(&["rollout", "history", "deploy/shop-green"]).await;
    assert_eq!(
        out.ok(),
        "deployment.apps/shop-green \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"
    );
    let out = k.run(&["rollout", "undo", "deploy/shop-green"]).await;
    assert_eq!(out.ok(), "deployment.apps/shop-green rolled back\n");
    let out = k
        .run(&["rollout", "status", "deploy/shop-green", "--timeout=30s"])
        .await;
    out.ok();
    let green = sim.get("deployments", "default", "shop-green").unwrap();
    assert_eq!(
        green["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com/shop/web:1.4.2"
    );
    // The undo reused revision 1's ReplicaSet as revision 3.
    let out = k.run(&["rollout", "history", "deploy/shop-green"]).await;
    assert_eq!(
        out.ok(),
        "deployment.apps/shop-green \nREVISION  CHANGE-CAUSE\n2         <none>\n3         <none>\n\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_fails_on_an_exceeded_progress_deadline() {
    let (sim, k) = demo().await;
    let Some(k) = k else { return };
    k.run(&[
        "patch",
        "deploy",
        "shop-green",
        "-p",
        r#"{"spec":{"progressDeadlineSeconds":2,"replicas":1}}"#,
    ])
    .await
    .ok();
    sim.wait_rolled_out("default", "shop-green").await.unwrap();
    k.run(&[
        "set",
        "image",
        "deploy/shop-green",
        "web=registry.example.com/shop/web:crashloop",
    ])
    .await
    .ok();
    let out = k
        .run(&["rollout", "status", "deploy/shop-green", "--timeout=30s"])
        .await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "error: deployment \"shop-green\" exceeded its progress deadline\n"
    );
    let out = k
        .run(&["get", "pods", "-l", "bluegreen.io/color=green"])
        .await;
    assert!(out.ok().contains("CrashLoopBackOff"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_cascades_and_wait_and_describe() {
    let (sim, k) = demo().await;
    let Some(k) = k else { return };
    let out = k
        .run(&[
            "wait",
            "--for=condition=Available",
            "deploy/shop-blue",
            "--timeout=10s",
        ])
        .await;
    assert_eq!(out.ok(), "deployment.apps/shop-blue condition met\n");

    let out = k.run(&["describe", "deployment", "shop-blue"]).await;
    let text = out.ok();
    let rs = sim
        .list("replicasets", "default")
        .into_iter()
        .find(|r| r["metadata"]["labels"]["bluegreen.io/color"] == "blue")
        .unwrap();
    let rs_name = rs["metadata"]["name"].as_str().unwrap();
    for line in [
        "Name:                   shop-blue".to_string(),
        "Namespace:              default".to_string(),
        "Selector:               app.kubernetes.io/name=shop,bluegreen.io/color=blue".to_string(),
        "Replicas:               3 desired | 3 updated | 3 total | 3 available | 0 unavailable"
            .to_string(),
        "StrategyType:           RollingUpdate".to_string(),
        "RollingUpdateStrategy:  25% max unavailable, 25% max surge".to_string(),
        "  Available      True    MinimumReplicasAvailable".to_string(),
        "  Progressing    True    NewReplicaSetAvailable".to_string(),
        format!("NewReplicaSet:   {rs_name} (3/3 replicas created)"),
    ] {
        assert!(
            text.lines().any(|l| l.trim_end() == line),
            "missing {line:?} in:\n{text}"
        );
    }
    assert!(
        text.contains("ScalingReplicaSet  ")
            && text.contains(&format!("Scaled up replica set {rs_name} from 0 to 3")),
        "{text}"
    );

    let out = k.run(&["delete", "deploy", "shop-blue"]).await;
    assert_eq!(out.ok(), "deployment.apps \"shop-blue\" deleted\n");
    sim.wait_for("cascade", Duration::from_secs(10), |s| {
        s.list("replicasets", "default")
            .iter()
            .all(|r| r["metadata"]["labels"]["bluegreen.io/color"] != "blue")
            && s.list("pods", "default")
                .iter()
                .all(|p| p["metadata"]["labels"]["bluegreen.io/color"] != "blue")
    })
    .await
    .unwrap();
    let out = k
        .run(&["get", "rs,pods", "-l", "bluegreen.io/color=blue"])
        .await;
    assert_eq!(out.stderr, "No resources found in default namespace.\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_can_i_and_forbidden_writes() {
    let (sim, k) = demo().await;
    let Some(k) = k else { return };
    let out = k.run(&["auth", "can-i", "patch", "services"]).await;
    assert_eq!(out.ok(), "yes\n");
    sim.cluster()
        .add_fault(Fault::new("patch", "services", FaultAction::Forbidden));
    let out = k.run(&["auth", "can-i", "patch", "services"]).await;
    assert_eq!((out.code, out.stdout.as_str()), (1, "no\n"));
    let out = k.run(&["label", "svc", "shop", "x=y"]).await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr,
        "Error from server (Forbidden): services \"shop\" is forbidden: User \"sim-admin\" cannot patch resource \"services\" in API group \"\" in the namespace \"default\"\n"
    );
    let out = k
        .run(&[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .await;
    assert_eq!(out.ok(), "sim-admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_through_both_api_versions() {
    let (_sim, k) = demo().await;
    let Some(k) = k else { return };
    let out = k
        .run(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.kind=Deployment,involvedObject.name=shop-blue",
            "-o",
            "jsonpath={.items[*].reason}",
        ])
        .await;
    assert_eq!(out.ok(), "ScalingReplicaSet");
    let out = k
        .run(&[
            "get",
            "events.v1.events.k8s.io",
            "--field-selector",
            "regarding.name=shop-blue",
            "-o",
            "jsonpath={.items[*].note}",
        ])
        .await;
    assert!(
        out.ok().starts_with("Scaled up replica set shop-blue-"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_pods_show_in_rollout_status_progress() {
    // Slow enough that kubectl, started after the scale, still sees pods not ready
    // even on a loaded machine.
    let sim = Sim::start_with(Timing {
        pod_ready_after: Duration::from_secs(3),
        ..Timing::default()
    })
    .await
    .unwrap();
    sim.load_demo().await.unwrap();
    let Some(k) = Kubectl::for_sim(&sim) else {
        return;
    };
    k.run(&["scale", "deploy/shop-green", "--replicas=3"])
        .await
        .ok();
    let out = k
        .run(&["rollout", "status", "deploy/shop-green", "--timeout=30s"])
        .await;
    let text = out.ok();
    assert!(text.contains("Waiting for deployment \"shop-green\" rollout to finish: 0 of 3 updated replicas are available...\n"), "{text}");
    assert!(
        text.ends_with("deployment \"shop-green\" successfully rolled out\n"),
        "{text}"
    );
    let names = first_column(
        k.run(&["get", "pods", "-l", "bluegreen.io/color=green"])
            .await
            .ok(),
    );
    assert_eq!(names.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrongly_typed_writes_fail_as_on_a_cluster() {
    let (sim, k) = demo().await;
    let Some(k) = k else { return };
    let before = sim.get("services", "default", "shop").unwrap();
    let out = k
        .run(&[
            "patch",
            "svc",
            "shop",
            "-p",
            r#"{"spec":{"selector":"app=shop"}}"#,
        ])
        .await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim_end(),
        "The request is invalid: patch: Invalid value: \"map[spec:map[selector:app=shop]]\": cannot restore map from string"
    );
    let out = k
        .run(&[
            "patch",
            "deploy",
            "shop-green",
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"replicas":"3"}}"#,
        ])
        .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.trim_end().ends_with(
            "json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"
        ),
        "{}",
        out.stderr
    );
    let out = k
        .run(&[
            "patch",
            "deploy",
            "shop-green",
            "--type",
            "json",
            "-p",
            r#"[{"op":"test","path":"/spec/replicas","value":7}]"#,
        ])
        .await;
    assert_eq!(out.code, 1);
    assert_eq!(
        out.stderr.trim_end(),
        "The request is invalid: the server rejected our request due to an error in our request"
    );
    let file = k.file(
        "typed.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: typed}\nspec:\n  selector: app=shop\n  ports: [{port: 80}]\n",
    );
    let out = k.run(&["apply", "-f", &file]).await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("Service in version \"v1\" cannot be handled as a Service: json: cannot unmarshal string into Go struct field ServiceSpec.spec.selector of type map[string]string"),
        "{}",
        out.stderr
    );
    assert!(sim.get("services", "default", "typed").is_none());
    assert_eq!(sim.get("services", "default", "shop").unwrap(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_maps_secrets_budgets_and_autoscalers_through_kubectl() {
    let (sim, k) = demo().await;
    let Some(k) = k else { return };
    // The manifests `kubectl create ... --dry-run=client -o json` writes, sent as JSON.
    for (name, args) in [
        (
            "cm.json",
            vec!["create", "configmap", "app", "--from-literal=mode=blue"],
        ),
        (
            "secret.json",
            vec![
                "create",
                "secret",
                "generic",
                "pw",
                "--from-literal=password=s3cret",
            ],
        ),
        (
            "pdb.json",
            vec![
                "create",
                "poddisruptionbudget",
                "shop",
                "--selector=app.kubernetes.io/name=shop",
                "--min-available=1",
            ],
        ),
    ] {
        let mut a = args.clone();
        a.extend(["--dry-run=client", "-o", "json"]);
        let manifest = k.run(&a).await.ok().to_string();
        let file = k.file(name, &manifest);
        k.run(&["create", "-f", &file]).await.ok();
    }
    let hpa = k.file(
        "hpa.yaml",
        "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {name: shop-blue}\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: shop-blue}\n  minReplicas: 1\n  maxReplicas: 2\n",
    );
    k.run(&["apply", "-f", &hpa]).await.ok();
    assert_eq!(
        k.run(&["get", "secret", "pw", "-o", "jsonpath={.data.password}"])
            .await
            .ok(),
        "czNjcmV0"
    );
    assert_eq!(
        first_column(k.run(&["get", "cm,secret,sa,pdb,hpa"]).await.ok())
            .into_iter()
            .filter(|n| n != "NAME")
            .collect::<Vec<_>>(),
        [
            "configmap/app",
            "secret/pw",
            "serviceaccount/default",
            "poddisruptionbudget.policy/shop",
            "horizontalpodautoscaler.autoscaling/shop-blue"
        ]
    );
    sim.wait_for(
        "blue within its autoscaler's bounds",
        Duration::from_secs(10),
        |s| {
            s.get("deployments", "default", "shop-blue")
                .is_some_and(|d| d["spec"]["replicas"] == 2)
        },
    )
    .await
    .unwrap();
    let out = k.run(&["get", "hpa", "shop-blue"]).await;
    assert!(out.ok().contains("Deployment/shop-blue"), "{}", out.stdout);
    let out = k.run(&["get", "svc", "kubernetes"]).await;
    assert!(out.ok().contains("10.96.0.1"), "{}", out.stdout);
}

/// (manager, subresource) of each managedFields entry, and the entries' fieldsV1 by manager.
fn managers(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["manager"].as_str().unwrap_or("").to_string(),
                e["subresource"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn fields_of<'a>(obj: &'a Value, manager: &str) -> &'a Value {
    obj["metadata"]["managedFields"]
        .as_array()
        .and_then(|a| a.iter().find(|e| e["manager"] == manager))
        .map(|e| &e["fieldsV1"])
        .unwrap_or_else(|| panic!("no entry for {manager}: {obj}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_fields_show_each_kubectl_command_as_on_a_cluster() {
    let sim = Sim::start().await.unwrap();
    let Some(k) = Kubectl::for_sim(&sim) else {
        return;
    };
    let contract = k.file("contract.yaml", CONTRACT);
    k.run(&["apply", "-f", &contract]).await.ok();
    // kubectl strips them unless asked.
    let plain = k.run(&["get", "svc", "shop", "-o", "yaml"]).await;
    assert!(!plain.ok().contains("managedFields"), "{}", plain.stdout);
    let shown = k
        .run(&["get", "svc", "shop", "-o", "yaml", "--show-managed-fields"])
        .await;
    let yaml = shown.ok();
    assert!(yaml.contains("managedFields:"), "{yaml}");
    assert!(
        yaml.contains("manager: kubectl-client-side-apply"),
        "{yaml}"
    );
    assert!(yaml.contains("fieldsType: FieldsV1"), "{yaml}");
    assert!(
        yaml.contains("k:{\"port\":80,\"protocol\":\"TCP\"}:"),
        "{yaml}"
    );

    k.run(&[
        "patch",
        "svc",
        "shop",
        "-p",
        r#"{"spec":{"selector":{"bluegreen.io/color":"green"}}}"#,
    ])
    .await
    .ok();
    k.run(&["label", "svc", "shop", "tier=web"]).await.ok();
    k.run(&["annotate", "svc", "shop", "note=x"]).await.ok();
    let svc: Value = serde_json::from_str(
        k.run(&["get", "svc", "shop", "-o", "json", "--show-managed-fields"])
            .await
            .ok(),
    )
    .unwrap();
    let ms = managers(&svc);
    for m in [
        "kubectl-client-side-apply",
        "kubectl-patch",
        "kubectl-label",
        "kubectl-annotate",
    ] {
        assert!(ms.contains(&(m.to_string(), String::new())), "{m}: {ms:?}");
    }
    assert_eq!(
        fields_of(&svc, "kubectl-patch"),
        &serde_json::json!({"f:spec": {"f:selector": {}}})
    );
    assert_eq!(
        fields_of(&svc, "kubectl-label"),
        &serde_json::json!({"f:metadata": {"f:labels": {"f:tier": {}}}})
    );
    // The selector moved from apply's entry to patch's.
    assert!(
        fields_of(&svc, "kubectl-client-side-apply")["f:spec"]
            .get("f:selector")
            .is_none()
    );

    // Deployments: create, scale (the scale subresource), set image, and the
    // controller's status.
    let d = k.file("d.yaml", &crate::deployment("web", 1, "web:1"));
    k.run(&["create", "-f", &d]).await.ok();
    k.run(&["scale", "deploy", "web", "--replicas=2"])
        .await
        .ok();
    k.run(&["set", "image", "deploy/web", "web=web:2"])
        .await
        .ok();
    sim.wait_converged("default").await.unwrap();
    let dep: Value = serde_json::from_str(
        k.run(&[
            "get",
            "deploy",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await
        .ok(),
    )
    .unwrap();
    let ms = managers(&dep);
    assert!(
        ms.contains(&("kubectl-create".into(), String::new())),
        "{ms:?}"
    );
    assert!(
        ms.contains(&("kubectl-set".into(), String::new())),
        "{ms:?}"
    );
    assert!(
        ms.contains(&("kube-controller-manager".into(), "status".into())),
        "{ms:?}"
    );
    // `kubectl scale` writes the scale subresource (without a fieldManager: the user
    // agent's `kubectl`); replicas moved there from create's entry.
    assert!(ms.iter().any(|(_, sub)| sub == "scale"), "{ms:?}");
    assert!(
        fields_of(&dep, "kubectl-create")["f:spec"]
            .get("f:replicas")
            .is_none()
    );
    let image_owner =
        &fields_of(&dep, "kubectl-set")["f:spec"]["f:template"]["f:spec"]["f:containers"];
    assert_eq!(
        image_owner,
        &serde_json::json!({"k:{\"name\":\"web\"}": {"f:image": {}}})
    );
}

/// Every kubectl on this machine: the dispatcher on the PATH (or `KUBECTL`) and the
/// versioned clients installed beside it (`kubectl.1.29` … `kubectl.1.33`).
fn every_kubectl() -> Vec<String> {
    let Some(bin) = kubectl_bin() else {
        return Vec::new();
    };
    let mut out = vec![bin.clone()];
    let resolved = std::process::Command::new("sh")
        .args(["-c", &format!("readlink -f \"$(command -v {bin})\"")])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    if let Some(dir) = std::path::Path::new(&resolved).parent() {
        for minor in 29..=33 {
            let versioned = dir.join(format!("kubectl.1.{minor}"));
            if versioned.exists() {
                out.push(versioned.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// A user bringing their own app to the demo, as they would to a cluster: each command
/// with each kubectl present. kubectl 1.32 and later send these bodies as protobuf
/// (`application/vnd.kubernetes.protobuf`); older ones as JSON. Prints what it measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imperative_commands_build_an_app_with_every_kubectl_present() {
    let kubectls = every_kubectl();
    if kubectls.is_empty() {
        return;
    }
    let mut measured = Vec::new();
    for bin in &kubectls {
        let sim = Sim::start().await.unwrap();
        let mut k = Kubectl::for_sim(&sim).unwrap();
        k.bin = bin.clone();
        let version = k.run(&["version", "--client"]).await.ok().to_string();
        let version = version.lines().next().unwrap_or("").to_string();
        let steps = [
            "create namespace web",
            "-n web create deployment web --image=nginx:1.27 --replicas=2 --port=80",
            "-n web create deployment idle --image=nginx --replicas=0",
            "-n web expose deployment web --port=80 --target-port=80",
            "-n web create service clusterip admin --tcp=8080:80",
            "-n web create configmap cfg --from-literal=mode=blue --from-literal=n=1",
            "-n web create secret generic pw --from-literal=password=s3cret",
            "-n web autoscale deployment web --min=2 --max=4 --cpu-percent=80",
            "-n web create poddisruptionbudget web --selector=app=web --min-available=1",
            "-n web scale deployment web --replicas=3",
            "-n web rollout restart deployment web",
            "-n web set image deployment/web nginx=nginx:1.28",
            "-n web set env deployment/web MODE=blue",
            "-n web set resources deployment/web --requests=cpu=100m",
            "-n web label deployment web tier=front",
            "-n web annotate deployment web owner=sre",
            "-n web rollout status deployment web --timeout=60s",
        ];
        for step in steps {
            let args: Vec<&str> = step.split_whitespace().collect();
            let out = k.run(&args).await;
            assert_eq!(
                out.code, 0,
                "{version}: kubectl {args:?}:\n{}{}",
                out.stdout, out.stderr
            );
        }
        let get = |kind: &str, name: &str| {
            sim.get(kind, "web", name)
                .unwrap_or_else(|| panic!("{version}: no {kind}/{name}"))
        };
        let d = get("deployments", "web");
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            (c["image"].as_str(), c["ports"][0]["containerPort"].as_i64()),
            (Some("nginx:1.28"), Some(80)),
            "{version}: {d}"
        );
        assert_eq!(
            c["env"][0],
            serde_json::json!({"name": "MODE", "value": "blue"})
        );
        assert_eq!(c["resources"]["requests"]["cpu"], "100m");
        assert_eq!(d["metadata"]["labels"]["tier"], "front");
        assert_eq!(d["metadata"]["annotations"]["owner"], "sre");
        assert!(
            d["metadata"]["creationTimestamp"].is_string(),
            "{version}: set by the server"
        );
        assert_eq!(
            get("deployments", "idle")["spec"]["replicas"],
            0,
            "{version}: --replicas=0 is kept, not defaulted to 1"
        );
        let svc = get("services", "web");
        assert_eq!(svc["spec"]["selector"], serde_json::json!({"app": "web"}));
        assert_eq!(
            svc["spec"]["ports"][0]["targetPort"], 80,
            "{version}: {svc}"
        );
        assert_eq!(get("services", "admin")["spec"]["ports"][0]["port"], 8080);
        assert_eq!(
            get("configmaps", "cfg")["data"],
            serde_json::json!({"mode": "blue", "n": "1"})
        );
        assert_eq!(get("secrets", "pw")["data"]["password"], "czNjcmV0");
        let hpa = get("horizontalpodautoscalers", "web");
        assert_eq!(
            (
                hpa["spec"]["minReplicas"].as_i64(),
                hpa["spec"]["maxReplicas"].as_i64()
            ),
            (Some(2), Some(4)),
            "{version}: {hpa}"
        );
        assert_eq!(
            get("poddisruptionbudgets", "web")["spec"]["minAvailable"],
            1
        );
        let protobuf = sim
            .cluster()
            .request_log()
            .iter()
            .filter(|r| {
                r.content_type
                    .starts_with("application/vnd.kubernetes.protobuf")
            })
            .count();
        measured.push(format!(
            "{version} ({bin}): {} commands passed, {protobuf} protobuf request bodies",
            steps.len()
        ));
    }
    eprintln!("{}", measured.join("\n"));
    if kubectls.iter().any(|b| b.ends_with("kubectl.1.33")) {
        assert!(
            measured
                .iter()
                .any(|m| m.contains("v1.33") && !m.contains(" 0 protobuf")),
            "kubectl 1.33 sends protobuf bodies, so this test exercises them: {measured:?}"
        );
    }
}

/// What a cluster does to what an app carries: a volume naming no source becomes an
/// `emptyDir`; `rollout undo` reuses a ReplicaSet and records its old revisions in
/// `revision-history`; `kubectl apply --prune` with kubectl's default allow-list lists
/// every kind in it and prunes what left the directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_defaults_revision_history_and_apply_prune_as_on_a_cluster() {
    let sim = Sim::start().await.unwrap();
    let Some(k) = Kubectl::for_sim(&sim) else {
        return;
    };
    let dir = k.dir.path().join("app");
    std::fs::create_dir_all(&dir).unwrap();
    let keep = "apiVersion: apps/v1
kind: Deployment
metadata: {name: pr, labels: {app: pr}}
spec:
  selector: {matchLabels: {app: pr}}
  template:
    metadata: {labels: {app: pr}}
    spec:
      containers: [{name: c, image: nginx:1.25}]
      volumes: [{name: scratch}, {name: cfg, configMap: {name: pr}}]
";
    std::fs::write(dir.join("keep.yaml"), keep).unwrap();
    std::fs::write(
        dir.join("gone.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: pr-old, labels: {app: pr}}\nspec: {selector: {app: pr}, ports: [{port: 80}]}\n",
    )
    .unwrap();
    let d = dir.to_string_lossy().into_owned();
    k.run(&["apply", "--prune", "-l", "app=pr", "-f", &d])
        .await
        .ok();
    assert_eq!(
        sim.get("deployments", "default", "pr").unwrap()["spec"]["template"]["spec"]["volumes"],
        serde_json::json!([{"name": "scratch", "emptyDir": {}}, {"name": "cfg", "configMap": {"name": "pr", "defaultMode": 420}}])
    );
    std::fs::remove_file(dir.join("gone.yaml")).unwrap();
    let out = k.run(&["apply", "--prune", "-l", "app=pr", "-f", &d]).await;
    assert!(out.ok().contains("service/pr-old pruned"), "{}", out.stdout);
    assert!(sim.get("services", "default", "pr-old").is_none());

    for args in [
        &["set", "image", "deploy/pr", "c=nginx:1.26"][..],
        &["rollout", "undo", "deploy/pr"],
        &["set", "image", "deploy/pr", "c=nginx:1.26"],
        &["rollout", "undo", "deploy/pr"],
    ] {
        k.run(&["rollout", "status", "deploy/pr", "--timeout=60s"])
            .await
            .ok();
        k.run(args).await.ok();
    }
    k.run(&["rollout", "status", "deploy/pr", "--timeout=60s"])
        .await
        .ok();
    let rs = k
        .run(&[
            "get", "rs", "-l", "app=pr", "-o",
            r"jsonpath={range .items[*]}{.spec.template.spec.containers[0].image} {.metadata.annotations.deployment\.kubernetes\.io/revision} {.metadata.annotations.deployment\.kubernetes\.io/revision-history}{'\n'}{end}",
        ])
        .await;
    let mut lines: Vec<&str> = rs.ok().lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["nginx:1.25 5 1,3", "nginx:1.26 4 2"],
        "as upstream's deployment controller"
    );
}

/// Deletion as upstream's API server and garbage collector do it: a foreground delete
/// keeps the Deployment (marked, with the `foregroundDeletion` finalizer) until its
/// ReplicaSets and pods are gone, so `kubectl wait --for=delete` waits for them; any
/// finalizer holds an object until the update that removes the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletes_and_finalizers_hold_objects_until_done() {
    // Pods that take a while to terminate, so the order can be seen.
    let sim = Sim::start_with(Timing {
        pod_termination: Duration::from_millis(1500),
        ..Timing::default()
    })
    .await
    .unwrap();
    sim.load_demo().await.unwrap();
    let Some(k) = Kubectl::for_sim(&sim) else {
        return;
    };
    let blue = |s: &Sim, kind: &str| {
        s.list(kind, "default")
            .into_iter()
            .filter(|o| o["metadata"]["labels"]["bluegreen.io/color"] == "blue")
            .count()
    };
    k.run(&[
        "delete",
        "deploy",
        "shop-blue",
        "--cascade=foreground",
        "--wait=false",
    ])
    .await
    .ok();
    let marked = sim
        .get("deployments", "default", "shop-blue")
        .expect("kept while its pods go");
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    assert_eq!(
        marked["metadata"]["finalizers"],
        serde_json::json!(["foregroundDeletion"])
    );
    assert!(
        blue(&sim, "pods") > 0,
        "pods terminate gracefully, not at once"
    );
    k.run(&["wait", "--for=delete", "deploy/shop-blue", "--timeout=30s"])
        .await
        .ok();
    assert_eq!(
        (blue(&sim, "replicasets"), blue(&sim, "pods")),
        (0, 0),
        "the owner goes last"
    );

    k.run(&["create", "configmap", "held", "--from-literal=a=b"])
        .await
        .ok();
    k.run(&[
        "patch",
        "configmap",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ])
    .await
    .ok();
    k.run(&["delete", "configmap", "held", "--wait=false"])
        .await
        .ok();
    let held = sim
        .get("configmaps", "default", "held")
        .expect("held by its finalizer");
    assert!(held["metadata"]["deletionTimestamp"].is_string());
    k.run(&[
        "patch",
        "configmap",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .await
    .ok();
    assert!(
        sim.get("configmaps", "default", "held").is_none(),
        "the last finalizer's removal deletes it"
    );
}
