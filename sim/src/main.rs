//! `bluegreen-sim`: runs the simulated cluster as a process, writes its kubeconfig, prints
//! `ready <url>` once it accepts requests, and serves until SIGINT/SIGTERM.

use bluegreen_sim::{Fault, Sim, Timing, WatchFaults};
use clap::Parser;
use std::path::PathBuf;
use std::time::Duration;

/// A simulated Kubernetes API server for kubectl-bluegreen's tests and demo.
///
/// Example:
///   bluegreen-sim --kubeconfig /tmp/sim.kubeconfig --scenario demo &
///   kubectl --kubeconfig /tmp/sim.kubeconfig get deploy,svc
#[derive(Parser, Debug)]
#[command(version, verbatim_doc_comment)]
struct Args {
    /// Where to write the kubeconfig (cluster, user and context named `sim`).
    #[arg(long)]
    kubeconfig: PathBuf,
    /// Objects to start with: `demo` loads the demo apps (`shop`: blue live, green idle;
    /// `payments`: green ready; `nginx-svc`: plain, to adopt);
    /// `apps:N` creates N two-slot apps (0 replicas) across namespaces of 100 apps each;
    /// `neighbours:N` is the demo plus N unrelated Deployments (one pod, nine old
    /// ReplicaSets each) in `default`.
    #[arg(long, default_value = "empty")]
    scenario: String,
    /// Delay added to every request, e.g. `20ms`.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    latency: Duration,
    /// Delay before the TLS handshake of every new connection, e.g. `40ms` for the TCP and
    /// TLS round trips of a network with `--latency 20ms`.
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    handshake: Duration,
    /// Time from a pod's creation until it is Ready.
    #[arg(long, value_parser = parse_duration, default_value = "1s")]
    pod_ready_after: Duration,
    /// Lag of EndpointSlices behind pod changes (kube-proxy sees changes this late).
    #[arg(long, value_parser = parse_duration, default_value = "200ms")]
    endpoint_delay: Duration,
    /// How long a deleted pod stays Terminating (0s: removed at once).
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    pod_termination: Duration,
    /// Inject a fault (repeatable): `VERB:RESOURCE[/NAME]=CODE[xN][@RATE]`,
    /// `VERB:RESOURCE=seq:CODE,...` (0 passes) or `VERB:RESOURCE=forbidden`; `*` for any.
    /// Example: `--fault patch:services=409x1 --fault get:pods=503@0.1`
    #[arg(long = "fault", value_parser = Fault::parse)]
    faults: Vec<Fault>,
    /// Close every watch stream after this many events.
    #[arg(long)]
    watch_close_after_events: Option<usize>,
    /// Close every watch stream after this long.
    #[arg(long, value_parser = parse_duration)]
    watch_close_after: Option<Duration>,
    /// Serve traffic: pods answer HTTP on loopback, each Service gets a loopback proxy
    /// (address in its `sim.bluegreen.io/proxy` annotation).
    #[arg(long)]
    traffic: bool,
    /// Append one JSON line per served request to this file.
    #[arg(long)]
    request_log: Option<PathBuf>,
}

/// `150ms`, `2s`, `1m`, `1.5s`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| c.is_ascii_alphabetic())
        .map(|i| s.split_at(i))
        .ok_or_else(|| format!("missing unit in '{s}' (use ms, s or m)"))?;
    let n: f64 = num.parse().map_err(|_| format!("invalid duration '{s}'"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("unknown unit in '{s}' (use ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let timing = Timing {
        latency: args.latency,
        handshake: args.handshake,
        pod_ready_after: args.pod_ready_after,
        endpoint_delay: args.endpoint_delay,
        pod_termination: args.pod_termination,
    };
    let sim = Sim::start_with(timing.clone()).await?;
    if let Some(path) = &args.request_log {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        sim.cluster().set_log_file(f);
    }
    if args.traffic {
        sim.cluster().enable_traffic();
    }
    let neighbours = match args.scenario.strip_prefix("neighbours:") {
        Some(n) => Some(
            n.parse::<usize>()
                .map_err(|_| anyhow::anyhow!("--scenario neighbours:N needs a number"))?,
        ),
        None => None,
    };
    if let Some(n) = args.scenario.strip_prefix("apps:") {
        let n: usize = n
            .parse()
            .map_err(|_| anyhow::anyhow!("--scenario apps:N needs a number"))?;
        sim.load_many_apps(n).await?;
    } else if !matches!(args.scenario.as_str(), "demo" | "empty") && neighbours.is_none() {
        anyhow::bail!(
            "unknown scenario {:?} (demo, empty, apps:N, neighbours:N)",
            args.scenario
        );
    }
    if args.scenario == "demo" || neighbours.is_some() {
        // Converge fast, then switch to the requested timing.
        sim.cluster().set_timing(Timing {
            latency: Duration::ZERO,
            ..Timing::default()
        });
        match neighbours {
            Some(n) => {
                sim.load_demo().await?;
                sim.load_neighbours("default", n, 9).await?;
            }
            None => sim.load_demo_cluster().await?,
        }
        sim.cluster().set_timing(timing);
    }
    for f in args.faults {
        sim.cluster().add_fault(f);
    }
    sim.cluster().set_watch_faults(WatchFaults {
        close_after_events: args.watch_close_after_events,
        close_after: args.watch_close_after,
    });
    sim.write_kubeconfig(&args.kubeconfig)?;
    println!("ready {}", sim.url());
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
