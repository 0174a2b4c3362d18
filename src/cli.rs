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
