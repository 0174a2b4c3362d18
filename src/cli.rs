//! Command-line flags, parsed by clap into these types, then validated once into a
//! `Request` (`Cli::into_request`): every usage error — malformed `NAME=IMAGE`, duplicate
//! containers, invalid image references, `--replicas`, `--color` and `--color-label`
//! values, label selectors, durations — is raised here, before any API call.
//! `kubectl bluegreen --help` and each subcommand's help are written here too.

use crate::error::{Error, Result};
use crate::model;
use crate::plan::{AbortRequest, ImageSpec, InitRequest, Intent, PromoteRequest, SetImageRequest};
use crate::render::Format;
use crate::request::{DryRun, Request, Target, Verb, WriteOptions};
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

/// The help heading of kubectl's flags, listed after each command's own.
const CONNECTION: &str = "Connection (kubectl's flags)";

/// kubectl's connection flags, accepted before or after the subcommand.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalOpts {
    /// Path to the kubeconfig file to use (only that file).
    #[arg(help_heading = CONNECTION, long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(help_heading = CONNECTION, long, global = true)]
    pub context: Option<String>,
    /// The kubeconfig cluster to use.
    #[arg(help_heading = CONNECTION, long, global = true)]
    pub cluster: Option<String>,
    /// The kubeconfig user to use.
    #[arg(help_heading = CONNECTION, long, global = true)]
    pub user: Option<String>,
    /// Namespace (default: the context's namespace, else `default`).
    #[arg(help_heading = CONNECTION, short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// Give up on a request after this long (`0` = no limit), e.g. `10s`, `1m`.
    #[arg(help_heading = CONNECTION, long, global = true, value_parser = parse_duration, value_name = "DURATION")]
    pub request_timeout: Option<Duration>,
    /// Impersonate this user.
    #[arg(help_heading = CONNECTION, long = "as", global = true, value_name = "USER")]
    pub as_user: Option<String>,
    /// Impersonate this group (repeatable).
    #[arg(help_heading = CONNECTION, long = "as-group", global = true, value_name = "GROUP")]
    pub as_groups: Vec<String>,
    /// Do not verify the server's certificate (insecure).
    #[arg(help_heading = CONNECTION, long, global = true)]
    pub insecure_skip_tls_verify: bool,
    /// Log verbosity on stderr, kubectl-style: -v=2 info, -v=4 debug, -v=6 requests.
    #[arg(
        help_heading = CONNECTION,
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
        after_help = "Examples:\n  kubectl bluegreen set-image shop web=registry.example.com/shop/web:1.5.0\n  kubectl bluegreen set-image shop '*=registry.example.com/shop/web:1.5.0' --no-wait\n  kubectl bluegreen set-image demo demo=bebullish/demo:v3 --color v3\n\nIf the app has only one slot, the other is created as a copy of the live Deployment.\nExit codes: 0 ready · 2 malformed NAME=IMAGE · 3 unknown app or container · 4 pods cannot become ready, the preview is live, the app is partially switched, or a GitOps tool owns it · 5 locked or changed concurrently · 6 timed out · 130 interrupted"
    )]
    SetImage(SetImageArgs),
    /// Switch traffic to the preview slot, once it is fully available, and verify it.
    #[command(
        after_help = "Examples:\n  kubectl bluegreen promote shop\n  kubectl bluegreen promote shop --scale-down-old=2m\n  kubectl bluegreen promote shop --dry-run=client\n  kubectl bluegreen promote -l team=payments\n  kubectl bluegreen promote shop --check /healthz --bake 10m --scale-down-old\n\nExit codes: 0 switched and verified (or already done) · 4 preview not ready, a check failed, wrong state, or a GitOps tool owns the app · 5 locked, or changed meanwhile by another hand · 7 switched but endpoints did not converge · 8 partially switched (the message says where each Service points) · 9 reverted (a failed bake, or another manager put the old selector back) · 130 interrupted"
    )]
    Promote(PromoteArgs),
    /// Go back: switch traffic to the previous slot (after a promote), or stop the preview.
    #[command(
        after_help = "Examples:\n  kubectl bluegreen abort shop\n  kubectl bluegreen abort shop --keep\n\nExit codes: 0 done · 4 nothing to abort, or the preview is live · 5 locked or changed meanwhile · 6 the previous slot did not come back in time · 7 endpoints did not converge · 8 partially switched · 9 another manager put the selector back · 130 interrupted"
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
Exit codes: 0 adopted (or already) · 3 Service not found · 4 none or several Deployments selected, or a GitOps tool owns it · 5 locked · 8 partially switched · 130 interrupted"
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
    /// Proceed although Argo CD, Flux or Helm owns the app (they may revert the switch;
    /// promote and abort then watch for that for 5s, see --settle).
    #[arg(long)]
    pub allow_gitops: bool,
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
    /// After the switch, watch this long for a selector put back by another manager (exit 9)
    /// [default: 5s when a GitOps tool owns the app, else 0s].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub settle: Option<Duration>,
    /// Before any traffic moves, GET this path (repeatable) through the API server's proxy:
    /// the preview Service and each preview pod must answer --check-status
    /// --check-successes times in a row, or nothing is switched (exit 4).
    #[arg(long = "check", value_name = "PATH")]
    pub checks: Vec<String>,
    /// The Service port the checks use (name or number) [default: the first].
    #[arg(long, value_name = "PORT")]
    pub check_port: Option<String>,
    /// The HTTP status every check must answer.
    #[arg(long, default_value_t = 200, value_name = "CODE")]
    pub check_status: u16,
    /// Consecutive successes each target needs.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub check_successes: u32,
    /// Pause between checks.
    #[arg(long, value_parser = parse_duration, default_value = "1s", value_name = "DURATION")]
    pub check_interval: Duration,
    /// After the switch is verified, keep the old slot up and watch the new one this long
    /// (restarts, readiness, the --check paths through the live Service); on a regression,
    /// switch back on its own (exit 9). --scale-down-old happens only after a clean bake.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub bake: Option<Duration>,
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
    /// After switching back, watch this long for a selector put back by another manager
    /// (exit 9) [default: 5s when a GitOps tool owns the app, else 0s].
    #[arg(long, value_parser = parse_duration, value_name = "DURATION")]
    pub settle: Option<Duration>,
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

/// kubectl's durations (Go's `time.ParseDuration`: `90s`, `1h30m`, `1.5h`, `250ms`), or a
/// bare number of seconds as `--request-timeout` takes it; never negative.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("invalid duration '': use e.g. 90s, 5m, 1h30m".into());
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let d: kube::core::Duration = s
        .parse()
        .map_err(|e| format!("invalid duration '{s}': {e} (e.g. 90s, 5m, 1h30m)"))?;
    if d.is_negative() {
        return Err(format!("invalid duration '{s}': must not be negative"));
    }
    Ok(d.into())
}

impl Cli {
    /// Validates the parsed flags into the one request the rest of the program runs.
    pub fn into_request(self) -> Result<Request> {
        let verb = match self.command {
            Command::Status(a) => Verb::Status {
                target: target(a.app, a.selector)?,
                output: a.output,
                watch: a.watch,
            },
            Command::List(a) => Verb::List {
                all_namespaces: a.all_namespaces,
                selector: a
                    .selector
                    .map(|s| validate_selector(&s).map(|()| s))
                    .transpose()?,
                output: a.output,
            },
            Command::History(a) => Verb::History {
                app: a.app,
                output: a.output,
            },
            Command::SetImage(a) => {
                if let Some(r) = a.replicas
                    && r < 0
                {
                    return Err(Error::Usage(format!("--replicas {r}: must be 0 or more")));
                }
                if let Some(c) = &a.color
                    && (c.is_empty() || !model::is_label_value(c))
                {
                    return Err(Error::Usage(format!(
                        "--color {c:?} is not a valid label value (up to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
                    )));
                }
                Verb::Write {
                    target: Target::App(a.app),
                    intent: Intent::SetImage(SetImageRequest {
                        images: parse_images(&a.images)?,
                        replicas: a.replicas,
                        color: a.color,
                        wait: !a.no_wait,
                    }),
                    options: a.opts.validated(),
                }
            }
            Command::Promote(a) => {
                let check = checks(&a)?;
                Verb::Write {
                    target: target(a.app, a.selector)?,
                    intent: Intent::Promote(PromoteRequest {
                        to: a.to,
                        allow_fewer: a.allow_fewer,
                        scale_down_old: a.scale_down_old,
                        settle: a.settle,
                        check,
                        bake: a.bake,
                    }),
                    options: a.opts.validated(),
                }
            }
            Command::Abort(a) => Verb::Write {
                target: target(a.app, a.selector)?,
                intent: Intent::Abort(AbortRequest {
                    keep: a.keep,
                    settle: a.settle,
                    reason: None,
                }),
                options: a.opts.validated(),
            },
            Command::Init(a) => {
                if let Some(k) = &a.color_label {
                    validate_label_key(k)
                        .map_err(|e| Error::Usage(format!("--color-label {k:?}: {e}")))?;
                }
                Verb::Write {
                    target: Target::App(a.service),
                    intent: Intent::Init(InitRequest {
                        color_label: a.color_label,
                    }),
                    options: a.opts.validated(),
                }
            }
            Command::Wait(a) => Verb::Wait {
                app: a.app,
                until: a.for_,
                timeout: a.timeout,
            },
            Command::Version { client, output } => Verb::Version {
                client_only: client,
                output: output.map(ResultOutput::format),
            },
            Command::Completion { shell } => Verb::Completion { shell },
            Command::Complete { words } => Verb::Complete { words },
        };
        Ok(Request {
            connection: self.global,
            verb,
        })
    }
}

impl MutateOpts {
    fn validated(&self) -> WriteOptions {
        WriteOptions {
            dry_run: match self.dry_run {
                DryRunMode::None => DryRun::None,
                DryRunMode::Client => DryRun::Client,
                DryRunMode::Server => DryRun::Server,
            },
            timeout: self.timeout,
            output: self.output.map(ResultOutput::format),
            allow_gitops: self.allow_gitops,
        }
    }
}

impl ResultOutput {
    fn format(self) -> Format {
        match self {
            ResultOutput::Json => Format::Json,
            ResultOutput::Yaml => Format::Yaml,
        }
    }
}

fn checks(a: &PromoteArgs) -> Result<Option<crate::model::CheckSpec>> {
    if a.checks.is_empty() {
        return Ok(None);
    }
    if let Some(bad) = a.checks.iter().find(|p| !p.starts_with('/')) {
        return Err(Error::Usage(format!(
            "--check {bad:?}: a check is a path starting with '/', e.g. --check /healthz"
        )));
    }
    if !(100..=599).contains(&a.check_status) {
        return Err(Error::Usage(format!(
            "--check-status {}: an HTTP status is 100 to 599",
            a.check_status
        )));
    }
    if a.check_successes == 0 {
        return Err(Error::Usage("--check-successes must be at least 1".into()));
    }
    Ok(Some(crate::model::CheckSpec {
        paths: a.checks.clone(),
        port: a.check_port.clone(),
        status: a.check_status,
        successes: a.check_successes,
        interval_ms: a.check_interval.as_millis() as u64,
    }))
}

fn target(app: Option<String>, selector: Option<String>) -> Result<Target> {
    match (app, selector) {
        (Some(app), None) => Ok(Target::App(app)),
        (None, Some(sel)) => {
            validate_selector(&sel)?;
            Ok(Target::Selector(sel))
        }
        _ => Err(Error::Usage("give an APP or -l SELECTOR".into())),
    }
}

/// Parses `NAME=IMAGE` arguments (exit 2 on malformed input).
pub fn parse_images(args: &[String]) -> Result<Vec<ImageSpec>> {
    let specs = parse_image_pairs(args)?;
    for (i, spec) in specs.iter().enumerate() {
        if specs[..i].iter().any(|s| s.container == spec.container) {
            return Err(Error::Usage(format!(
                "container {:?} is named twice: give each container one image",
                spec.container
            )));
        }
        validate_image(&spec.image).map_err(|e| {
            Error::Usage(format!(
                "{}={}: invalid image reference: {e}",
                spec.container, spec.image
            ))
        })?;
    }
    Ok(specs)
}

fn parse_image_pairs(args: &[String]) -> Result<Vec<ImageSpec>> {
    args.iter()
        .map(|a| match a.split_once('=') {
            Some((c, i))
                if !c.trim().is_empty()
                    && !i.trim().is_empty()
                    && !i.contains(char::is_whitespace) =>
            {
                Ok(ImageSpec {
                    container: c.trim().to_string(),
                    image: i.trim().to_string(),
                })
            }
            _ => Err(Error::Usage(format!(
                "malformed {a:?}: expected CONTAINER=IMAGE (or *=IMAGE for every container)"
            ))),
        })
        .collect()
}

/// An image reference as the container runtime parses it
/// (`[host[:port]/]path[:tag][@algorithm:digest]`, distribution/reference's grammar).
pub fn validate_image(image: &str) -> std::result::Result<(), String> {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let (algo, hex) = d
            .split_once(':')
            .ok_or("a digest is ALGORITHM:HEX, e.g. sha256:…")?;
        if algo.is_empty()
            || !algo
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+._-".contains(&b))
            || hex.len() < 32
            || !hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(format!("malformed digest {d:?}"));
        }
    }
    // A tag follows the last ':' that comes after the last '/'.
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(t) = tag {
        let ok = !t.is_empty()
            && t.len() <= 128
            && (t.as_bytes()[0].is_ascii_alphanumeric() || t.as_bytes()[0] == b'_')
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        if !ok {
            return Err(format!("malformed tag {t:?}"));
        }
    }
    if name.is_empty() {
        return Err("the repository name is empty".into());
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // A first part with '.' or ':' or that is "localhost" is a registry host[:port].
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        let (h, port) = match host.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        };
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
            || port.is_some_and(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("malformed registry {host:?}"));
        }
    }
    for c in parts {
        let b = c.as_bytes();
        let ok = !c.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && c.bytes()
                .all(|x| x.is_ascii_lowercase() || x.is_ascii_digit() || b"._-".contains(&x))
            && !c.contains("..");
        if !ok {
            return Err(format!(
                "{c:?}: repository path components are lowercase letters, digits and separators (. _ -)"
            ));
        }
    }
    Ok(())
}

/// A label key: an optional DNS-subdomain prefix and '/', then a name of up to 63
/// characters (letters, digits, '-', '_', '.', alphanumeric at both ends).
pub fn validate_label_key(key: &str) -> std::result::Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        if !ok {
            return Err(format!("prefix {p:?} is not a DNS subdomain"));
        }
    }
    if name.is_empty() || !model::is_label_value(name) {
        return Err(format!(
            "name {name:?} must be 1-63 letters, digits, '-', '_' or '.', alphanumeric at both ends"
        ));
    }
    Ok(())
}

/// A label selector as the API server parses it: requirements separated by commas, each
/// `key`, `!key`, `key=value`, `key==value`, `key!=value`, `key in (v1,v2)` or
/// `key notin (v1,v2)`.
pub fn validate_selector(selector: &str) -> Result<()> {
    let bad = |why: String| Error::Usage(format!("invalid label selector {selector:?}: {why}"));
    if selector.trim().is_empty() {
        return Err(bad("it is empty".into()));
    }
    // Split on commas outside parentheses.
    let mut requirements = Vec::new();
    let (mut depth, mut start) = (0i32, 0usize);
    for (i, c) in selector.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                requirements.push(&selector[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(bad("unbalanced ')'".into()));
        }
    }
    if depth != 0 {
        return Err(bad("unbalanced '('".into()));
    }
    requirements.push(&selector[start..]);
    for r in requirements {
        let r = r.trim();
        let key_ok = |k: &str| {
            validate_label_key(k.trim()).map_err(|e| bad(format!("key {}: {e}", k.trim())))
        };
        let value_ok = |v: &str| {
            let v = v.trim();
            if model::is_label_value(v) {
                Ok(())
            } else {
                Err(bad(format!("{v:?} is not a valid label value")))
            }
        };
        if let Some(k) = r.strip_prefix('!') {
            key_ok(k)?;
        } else if let Some((k, v)) = r.split_once("!=") {
            key_ok(k)?;
            value_ok(v)?;
        } else if let Some((k, v)) = r.split_once('=') {
            let v = v.strip_prefix('=').unwrap_or(v);
            if v.contains('=') {
                return Err(bad(format!("{r:?} has more than one '='")));
            }
            key_ok(k)?;
            value_ok(v)?;
        } else if let Some((k, rest)) = r.split_once(" in ").or_else(|| r.split_once(" notin ")) {
            key_ok(k)?;
            let rest = rest.trim();
            let inner = rest
                .strip_prefix('(')
                .and_then(|x| x.strip_suffix(')'))
                .ok_or_else(|| bad(format!("{r:?}: the values of in/notin go in parentheses")))?;
            for v in inner.split(',') {
                value_ok(v)?;
            }
        } else {
            key_ok(r)?;
        }
    }
    Ok(())
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
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in ["-5m", "5", "m", "1d", "1h30", ""] {
            if bad == "5" {
                continue; // a bare number is seconds, as --request-timeout takes it
            }
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    fn request(args: &[&str]) -> Result<Request> {
        let mut argv = vec!["kubectl-bluegreen"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().into_request()
    }

    fn usage_error(args: &[&str]) -> String {
        match request(args) {
            Err(e @ Error::Usage(_)) => e.to_string(),
            other => panic!("{args:?}: expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn every_usage_error_is_raised_before_any_api_call() {
        for (args, says) in [
            (
                &["set-image", "shop", "web"][..],
                "expected CONTAINER=IMAGE",
            ),
            (&["set-image", "shop", "=x:1"], "expected CONTAINER=IMAGE"),
            (
                &["set-image", "shop", "web=a b"],
                "expected CONTAINER=IMAGE",
            ),
            (&["set-image", "shop", "web=x:1", "web=x:2"], "named twice"),
            (
                &["set-image", "shop", "web=Web:1"],
                "invalid image reference",
            ),
            (&["set-image", "shop", "web=web:"], "malformed tag"),
            (
                &["set-image", "shop", "web=web:1@sha256:zz"],
                "malformed digest",
            ),
            (
                &["set-image", "shop", "web=x:1", "--replicas=-1"],
                "--replicas -1",
            ),
            (
                &["set-image", "shop", "web=x:1", "--color", "Green!"],
                "not a valid label value",
            ),
            (
                &["init", "web", "--color-label", "bad key"],
                "--color-label",
            ),
            (&["promote", "-l", "a=b=c"], "more than one '='"),
            (&["abort", "-l", "team in payments"], "parentheses"),
            (&["status", "-l", "=x"], "invalid label selector"),
            (&["list", "-l", "a,,b"], "invalid label selector"),
        ] {
            let msg = usage_error(args);
            assert!(msg.contains(says), "{args:?}: {msg}");
        }
    }

    #[test]
    fn well_formed_requests_pass_validation() {
        for args in [
            &[
                "set-image",
                "shop",
                "web=registry.example.com:5000/shop/web:1.5.0",
            ][..],
            &["set-image", "shop", "*=nginx"],
            &[
                "set-image",
                "shop",
                "web=ghcr.io/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ],
            &[
                "set-image",
                "shop",
                "web=localhost/web:v2",
                "sidecar=busybox:1.36",
            ],
            &[
                "promote",
                "-l",
                "team=payments,tier!=db,env in (prod, staging),!legacy",
            ],
            &[
                "promote",
                "shop",
                "--scale-down-old=1h30m",
                "--timeout",
                "90s",
            ],
            &["init", "web", "--color-label", "version"],
            &["init", "web", "--color-label", "example.com/track"],
        ] {
            request(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        }
        let Request {
            verb:
                Verb::Write {
                    intent: Intent::Promote(p),
                    options,
                    ..
                },
            ..
        } = request(&[
            "promote",
            "shop",
            "--scale-down-old=1h30m",
            "--timeout",
            "90s",
        ])
        .unwrap()
        else {
            panic!()
        };
        assert_eq!(p.scale_down_old, Some(Duration::from_secs(5400)));
        assert_eq!(options.timeout, Duration::from_secs(90));
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
    fn help_lists_the_commands_own_flags_before_kubectls() {
        use clap::CommandFactory;
        let mut cli = Cli::command();
        cli.build(); // propagates the global (kubectl) flags to the subcommands
        let help = cli
            .find_subcommand_mut("promote")
            .unwrap()
            .render_long_help()
            .to_string();
        let own = help.find("--scale-down-old").unwrap();
        let heading = help.find("Connection (kubectl's flags):").unwrap();
        let kubeconfig = help.find("--kubeconfig").unwrap();
        assert!(own < heading && heading < kubeconfig, "{help}");
    }

    #[test]
    fn clap_configuration_is_valid() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
