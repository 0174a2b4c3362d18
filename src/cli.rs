//! Command-line flags, parsed once by clap into these types; `kubectl bluegreen --help`
//! and each subcommand's help are written here, with examples as users type them.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "kubectl-bluegreen",
    bin_name = "kubectl bluegreen",
    version,
    about = "Safe blue/green releases for plain Deployments and Services",
    long_about = "Safe blue/green releases for plain Kubernetes Deployments and Services.\n\n\
An app is a Service whose selector includes a color label (bluegreen.io/color, or the key\n\
named by the Service's bluegreen.io/color-label annotation). Its slots are the Deployments\n\
whose pod labels match the rest of that selector: the one the selector's color names is\n\
active, the other is the preview. Nothing is installed in the cluster.",
    after_help = "Examples:\n  kubectl bluegreen status shop\n  kubectl bluegreen list -A\n  kubectl bluegreen history shop -o yaml",
    disable_version_flag = false
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// kubectl's connection flags, accepted before or after the subcommand.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalOpts {
    /// Path to the kubeconfig file to use (only that file).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The kubeconfig cluster to use.
    #[arg(long, global = true)]
    pub cluster: Option<String>,
    /// The kubeconfig user to use.
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// Namespace (default: the context's namespace, else `default`).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Give up on a request after this long (`0` = no limit), e.g. `10s`, `1m`.
    #[arg(long, global = true, value_parser = parse_duration, value_name = "DURATION")]
    pub request_timeout: Option<Duration>,
    /// Impersonate this user.
    #[arg(long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// Impersonate this group (repeatable).
    #[arg(long = "as-group", global = true, value_name = "GROUP")]
    pub as_groups: Vec<String>,
    /// Do not verify the server's certificate (insecure).
    #[arg(long, global = true)]
    pub insecure_skip_tls_verify: bool,
    /// Log verbosity on stderr, kubectl-style: -v=2 info, -v=4 debug, -v=6 requests.
    #[arg(
        short = 'v',
        long = "v",
        global = true,
        value_name = "N",
        default_value_t = 0
    )]
    pub verbosity: u8,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show an app's slots, which one is live, and what really serves its Services.
    #[command(
        after_help = "Examples:\n  kubectl bluegreen status shop\n  kubectl bluegreen status shop -o wide\n  kubectl bluegreen status -l team=payments\n  kubectl bluegreen status shop --watch\n\n\
Exit codes: 0 shown (problems are printed as warnings) · 3 app not found"
    )]
    Status(StatusArgs),
    /// List the blue/green apps in the namespace (or all namespaces with -A).
    #[command(
        after_help = "Examples:\n  kubectl bluegreen list\n  kubectl bluegreen list -A\n  kubectl bluegreen list -l team=payments -o json"
    )]
    List(ListArgs),
    /// Show the switches recorded on an app's Service, newest first.
    #[command(
        after_help = "Examples:\n  kubectl bluegreen history shop\n  kubectl bluegreen history shop -o json"
    )]
    History(HistoryArgs),
    /// Put new images on the preview slot (never the live one) and wait until it is ready.
    #[command(
        after_help = "Examples:\n  kubectl bluegreen set-image shop web=registry.example.com/shop/web:1.5.0\n  kubectl bluegreen set-image shop '*=registry.example.com/shop/web:1.5.0' --no-wait\n  kubectl bluegreen set-image demo demo=bebullish/demo:v3 --color v3\n\nIf the app has only one slot, the other is created as a copy of the live Deployment.\nExit codes: 0 ready · 2 malformed NAME=IMAGE · 3 unknown app or container · 4 pods cannot become ready · 5 locked · 6 timed out"
    )]
    SetImage(SetImageArgs),
    /// Switch traffic to the preview slot, once it is fully available, and verify it.
    #[command(
        after_help = "Examples:\n  kubectl bluegreen promote shop\n  kubectl bluegreen promote shop --scale-down-old=2m\n  kubectl bluegreen promote shop --dry-run=client\n  kubectl bluegreen promote -l team=payments\n\nExit codes: 0 switched and verified (or already done) · 4 preview not ready / wrong state · 5 locked or changed concurrently · 7 switched but endpoints did not converge · 130 interrupted"
    )]
    Promote(PromoteArgs),
    /// Go back: switch traffic to the previous slot (after a promote), or stop the preview.
    #[command(
        after_help = "Examples:\n  kubectl bluegreen abort shop\n  kubectl bluegreen abort shop --keep\n\nExit codes: 0 done · 4 nothing to abort · 5 locked · 6 the previous slot did not come back in time · 7 endpoints did not converge · 130 interrupted"
    )]
    Abort(AbortArgs),
    /// Block until the app reaches a state (for CI scripts).
    #[command(
        after_help = "Examples:\n  kubectl bluegreen wait shop --for=preview-ready --timeout=10m\n  kubectl bluegreen wait shop --for=switched\n\nStates: preview-ready (the preview slot is rolled out and as large as the live one), switched (every Service serves only the live slot), converged (switched, and every slot rolled out at its latest generation).\nExit codes: 0 reached · 4 can no longer be reached (e.g. crash-looping pods) · 6 timed out"
    )]
    Wait(WaitArgs),
    /// Adopt a plain Deployment + Service as a blue/green app, with no downtime.
    #[command(
        after_help = "Examples:\n  kubectl bluegreen init nginx-svc\n  kubectl bluegreen init web --color-label version --dry-run=client\n\n\
Creates the blue slot as a copy of the one Deployment the Service selects, waits until it is\n\
available, adds the color to the Service's selector, verifies the endpoints, creates the\n\
green slot at 0 replicas, and scales the original to 0 (annotated, never deleted).\n\
Exit codes: 0 adopted (or already) · 3 Service not found · 4 none or several Deployments selected · 5 locked"
    )]
    Init(InitArgs),
    /// Print the shell completion script for kubectl-bluegreen.
    #[command(
        after_help = "Examples:\n  source <(kubectl-bluegreen completion bash)\n  kubectl-bluegreen completion zsh > \"${fpath[1]}/_kubectl-bluegreen\"\n\n\
For `kubectl bluegreen <TAB>` (kubectl 1.26 or later), put the kubectl_complete-bluegreen\n\
helper shipped with the plugin on your PATH: kubectl asks it for candidates."
    )]
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the plugin's version and the server's.
    Version {
        /// Only the plugin's version (no cluster needed).
        #[arg(long)]
        client: bool,
        #[arg(short = 'o', long, value_enum)]
        output: Option<ResultOutput>,
    },
    /// Candidates for kubectl's plugin completion (called by kubectl_complete-bluegreen).
    #[command(name = "__complete", hide = true)]
    Complete {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        words: Vec<String>,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRunMode {
    /// Run for real.
    None,
    /// Print the plan; send nothing.
    Client,
    /// Send every write with dryRun=All and print what the server would store.
    Server,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultOutput {
    Json,
    Yaml,
}

/// Flags every mutating command takes.
#[derive(Args, Debug, Clone)]
pub struct MutateOpts {
    /// Print (client) or server-check (server) the plan without changing anything.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "client", default_value = "none", require_equals = true)]
    pub dry_run: DryRunMode,
    /// How long each wait may take.
    #[arg(long, value_parser = parse_duration, default_value = "5m", value_name = "DURATION")]
    pub timeout: Duration,
    /// Print a result object for scripts instead of a summary line.
    #[arg(short = 'o', long, value_enum)]
    pub output: Option<ResultOutput>,
}

#[derive(Args, Debug)]
pub struct SetImageArgs {
    /// The app.
    pub app: String,
    /// CONTAINER=IMAGE pairs; `*=IMAGE` sets every container (init containers included).
    #[arg(required = true, value_name = "CONTAINER=IMAGE")]
    pub images: Vec<String>,
    /// Replicas for the preview slot (default: as many as the live slot wants).
    #[arg(long)]
    pub replicas: Option<i32>,
    /// Color of the slot to create when the app has only one (default: blue ↔ green).
    #[arg(long)]
    pub color: Option<String>,
    /// Do not wait for the preview slot to be rolled out.
    #[arg(long)]
    pub no_wait: bool,
    #[command(flatten)]
    pub opts: MutateOpts,
}

#[derive(Args, Debug)]
pub struct PromoteArgs {
    /// The app.
    #[arg(required_unless_present = "selector", conflicts_with = "selector")]
    pub app: Option<String>,
    /// Promote every app whose Service matches this label selector, each on its own.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// The color to switch to; naming the live color finishes an earlier promote.
    #[arg(long, value_name = "COLOR")]
    pub to: Option<String>,
    /// Switch even if the preview slot has fewer available replicas than the live one wants.
    #[arg(long)]
    pub allow_fewer: bool,
    /// After verifying the switch, wait DELAY (default 30s), re-check, and scale the old slot to 0.
    #[arg(long, value_parser = parse_duration, num_args = 0..=1, default_missing_value = "30s", require_equals = true, value_name = "DELAY")]
    pub scale_down_old: Option<Duration>,
    #[command(flatten)]
    pub opts: MutateOpts,
}

#[derive(Args, Debug)]
pub struct AbortArgs {
    /// The app.
    #[arg(required_unless_present = "selector", conflicts_with = "selector")]
    pub app: Option<String>,
    /// Abort every app whose Service matches this label selector, each on its own.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Keep the aborted slot running (default: scale it to 0 once traffic is back).
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub opts: MutateOpts,
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// The Service to adopt.
    pub service: String,
    /// Color label key to adopt with (default bluegreen.io/color; recorded on the Service).
    #[arg(long, value_name = "KEY")]
    pub color_label: Option<String>,
    #[command(flatten)]
    pub opts: MutateOpts,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    PreviewReady,
    Switched,
    Converged,
}

#[derive(Args, Debug)]
pub struct WaitArgs {
    /// The app.
    pub app: String,
    /// The state to wait for.
    #[arg(long = "for", value_enum)]
    pub for_: WaitFor,
    /// Give up after this long (exit 6).
    #[arg(long, value_parser = parse_duration, default_value = "5m", value_name = "DURATION")]
    pub timeout: Duration,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    #[default]
    Table,
    Wide,
    Json,
    Yaml,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The app: a Service's `bluegreen.io/app` label, or the Service's name.
    #[arg(required_unless_present = "selector", conflicts_with = "selector")]
    pub app: Option<String>,
    /// Show every app whose Service matches this label selector.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
    /// Keep redrawing as the cluster changes, until Ctrl-C.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

#[derive(Args, Debug)]
pub struct ListArgs {
    /// List apps in every namespace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only apps whose Service matches this label selector.
    #[arg(short = 'l', long = "selector")]
    pub selector: Option<String>,
    /// Output format (`wide` is the same as the table).
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// The app.
    pub app: String,
    /// Output format (`wide` is the same as the table).
    #[arg(short = 'o', long, value_enum, default_value_t)]
    pub output: Output,
}

/// kubectl-style durations: `30s`, `5m`, `1h`, `250ms`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Ok(Duration::from_secs_f64(secs));
    }
    let split = s
        .find(|c: char| c.is_ascii_alphabetic())
        .ok_or_else(|| format!("invalid duration '{s}'"))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration '{s}': use e.g. 30s, 5m, 1h"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration '{s}': unknown unit '{unit}' (ms, s, m, h)"
            ));
        }
    };
    if secs < 0.0 {
        return Err(format!("invalid duration '{s}': must not be negative"));
    }
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_like_kubectl() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn flags_parse_before_and_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "kubectl-bluegreen",
            "-n",
            "shop",
            "status",
            "web",
            "-o",
            "wide",
            "--context=prod",
            "-v=4",
        ])
        .unwrap();
        assert_eq!(cli.global.namespace.as_deref(), Some("shop"));
        assert_eq!(cli.global.context.as_deref(), Some("prod"));
        assert_eq!(cli.global.verbosity, 4);
        match cli.command {
            Command::Status(a) => {
                assert_eq!(a.app.as_deref(), Some("web"));
                assert_eq!(a.output, Output::Wide);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            Cli::try_parse_from(["kubectl-bluegreen", "status"]).is_err(),
            "APP or -l is required"
        );
        assert!(Cli::try_parse_from(["kubectl-bluegreen", "status", "a", "-l", "x=y"]).is_err());
    }

    #[test]
    fn clap_configuration_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
