//! How many requests per second the simulator serves, so that later benchmarks know it
//! is not their bottleneck. Run with `cargo bench -p bluegreen-sim`; prints a table.
//! Requests go through the real kube-rs client over HTTPS on loopback, one at a time and
//! with 8 in flight.

use bluegreen_sim::Sim;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ListParams, Patch, PatchParams};
use serde_json::json;
use std::time::{Duration, Instant};

const OBJECTS: usize = 1_000;

async fn measure<F, Fut>(total: usize, concurrency: usize, f: F) -> f64
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let start = Instant::now();
    let per_task = total / concurrency;
    let mut tasks = Vec::new();
    for t in 0..concurrency {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_task {
                f(t * per_task + i).await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("bench task");
    }
    (per_task * concurrency) as f64 / start.elapsed().as_secs_f64()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let sim = Sim::start().await?;
    let mut yaml = String::new();
    for i in 0..OBJECTS {
        // Selector-less Services: no controller work, so this measures the API path alone.
        yaml.push_str(&format!("---\napiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}, labels: {{bench: \"yes\"}}}}\nspec: {{ports: [{{port: 80}}]}}\n"));
    }
    sim.apply_yaml("default", &yaml)?;
    let client = sim.client().await?;
    let services: Api<Service> = Api::default_namespaced(client);
    // Warm up connections.
    services.get("svc-0").await?;

    println!(
        "bluegreen-sim throughput (kube-rs over HTTPS on loopback, {OBJECTS} Services stored)"
    );
    println!(
        "{:<28} {:>12} {:>12}",
        "operation", "1 in flight", "8 in flight"
    );
    let rows: Vec<(&str, usize)> = vec![
        ("get", 2_000),
        ("list 1,000 objects", 40),
        ("patch (merge)", 1_000),
    ];
    for (name, n) in rows {
        let mut cells = Vec::new();
        for conc in [1, 8] {
            let api = services.clone();
            let rate = match name {
                "get" => {
                    measure(n, conc, move |i| {
                        let api = api.clone();
                        async move {
                            api.get(&format!("svc-{}", i % OBJECTS)).await.expect("get");
                        }
                    })
                    .await
                }
                "list 1,000 objects" => {
                    measure(n, conc, move |_| {
                        let api = api.clone();
                        async move {
                            let l = api
                                .list(&ListParams::default().labels("bench=yes"))
                                .await
                                .expect("list");
                            assert_eq!(l.items.len(), OBJECTS);
                        }
                    })
                    .await
                }
                _ => {
                    measure(n, conc, move |i| {
                        let api = api.clone();
                        async move {
                            let p = json!({"metadata": {"annotations": {"n": i.to_string()}}});
                            api.patch(
                                &format!("svc-{}", i % OBJECTS),
                                &PatchParams::default(),
                                &Patch::Merge(p),
                            )
                            .await
                            .expect("patch");
                        }
                    })
                    .await
                }
            };
            cells.push(format!("{rate:.0} req/s"));
        }
        println!("{:<28} {:>12} {:>12}", name, cells[0], cells[1]);
    }
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(())
}
