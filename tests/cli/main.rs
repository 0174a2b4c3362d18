//! kubectl-bluegreen's integration tests, in one binary, against the simulated cluster:
//! golden renderings (`golden`), verbs run in-process through the library entry with a
//! captured output and a fixed clock (`verbs`), the binary through the real `kubectl`
//! plugin dispatch (`plugin`), connection handling and exit codes (`connect`), writes
//! and their safety rules (`write`), adoption (`adopt`), packaging (`krew`), traffic, and
//! the README's examples in order (`readme`).
//!
//! Set `BLESS=1` to rewrite the golden files after an intended change.

pub mod adopt;
mod connect;
mod cutover;
mod findings;
mod gitops;
mod golden;
mod krew;
mod plugin;
mod readme;
mod reads;
mod safety;
pub mod traffic;
mod verbs;
pub mod write;

use bluegreen_sim::Sim;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The clock of in-process runs.
pub const FIXED_NOW: &str = "2026-11-22T00:00:00Z";

fn fixed_now() -> jiff::Timestamp {
    FIXED_NOW.parse().unwrap()
}

/// stdout of an in-process run.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub const CONTRACT: &str = include_str!("../fixtures/contract/app.yaml");
pub const VERSION_LABEL: &str = include_str!("../fixtures/version-label/app.yaml");

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl std::fmt::Debug for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A started sim with a kubeconfig on disk.
pub struct World {
    pub sim: Sim,
    pub dir: tempfile::TempDir,
}

impl World {
    pub async fn new(fixtures: &[&str]) -> World {
        let sim = Sim::start().await.unwrap();
        for f in fixtures {
            sim.apply_yaml("default", f).unwrap();
        }
        sim.wait_converged("default").await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        sim.write_kubeconfig(&dir.path().join("kubeconfig"))
            .unwrap();
        World { sim, dir }
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    pub fn file(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    /// Runs the plugin in this process, as `main` would (parse, validate, run, one error
    /// line, exit code), with stdout captured, the clock at `FIXED_NOW`, host `testhost`.
    pub async fn bluegreen(&self, args: &[&str]) -> Out {
        use clap::Parser;
        use kubectl_bluegreen::cli::Cli;
        let kubeconfig = self.kubeconfig().display().to_string();
        let mut argv = vec!["kubectl-bluegreen", "--kubeconfig", &kubeconfig];
        argv.extend_from_slice(args);
        let cli = match Cli::try_parse_from(&argv) {
            Ok(cli) => cli,
            Err(e) => {
                return Out {
                    code: e.exit_code(),
                    stdout: String::new(),
                    stderr: e.to_string(),
                };
            }
        };
        let stdout = Captured::default();
        let io = kubectl_bluegreen::env::Io {
            out: Box::new(stdout.clone()),
            now: fixed_now,
            host: "testhost".into(),
            pid: std::process::id(),
            tty: false,
            tty_err: false,
            no_color: true,
            // As the plugin's own process would keep them, under this world's HOME.
            cache_dir: Some(self.dir.path().join(".kube/cache")),
        };
        let outcome = match cli.into_request() {
            Ok(request) => kubectl_bluegreen::run_with(request, io).await,
            Err(e) => Err(e),
        };
        let (code, stderr) = match &outcome {
            Ok(()) => (0, String::new()),
            Err(e) => (i32::from(e.exit_code()), format!("error: {e}\n")),
        };
        let stdout = String::from_utf8(stdout.0.lock().unwrap().clone()).unwrap();
        Out {
            code,
            stdout,
            stderr,
        }
    }

    /// Runs the plugin binary directly with `KUBECONFIG` pointing at the sim.
    pub async fn plugin(&self, args: &[&str]) -> Out {
        self.run(&plugin_bin(), args, &[]).await
    }

    /// `program ARGS` as a user of this world runs it: `KUBECONFIG` at the sim, the plugin
    /// on the PATH (for kubectl's plugin dispatch), a HOME of its own.
    pub fn command(&self, program: &Path, args: &[&str]) -> tokio::process::Command {
        let bin = plugin_bin();
        let bin_dir = bin.parent().unwrap();
        let path = format!(
            "{}:{}",
            bin_dir.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = tokio::process::Command::new(program);
        cmd.args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .env("HOME", self.dir.path())
            .env("PATH", path)
            .env_remove("NO_COLOR")
            .kill_on_drop(true);
        cmd
    }

    /// Starts `program ARGS` with its output captured, for a test that interrupts it.
    pub fn spawn(&self, program: &Path, args: &[&str]) -> tokio::process::Child {
        self.command(program, args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub async fn run(&self, program: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut cmd = self.command(program, args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output())
            .await
            .expect("command finished")
            .unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Ctrl-C to a running command (SIGINT to its process: kubectl execs the plugin in its
/// place), then its exit and output; it must stop within 10 s.
pub async fn interrupt(child: tokio::process::Child) -> Out {
    std::process::Command::new("kill")
        .args(["-INT", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("stops on Ctrl-C")
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Where a test that runs the plugin itself has it keep its read hints: beside the
/// world's kubeconfig (the developer's own `~/.kube/cache` is left alone).
pub fn cache_of(kubeconfig: &Path) -> PathBuf {
    kubeconfig
        .parent()
        .expect("a kubeconfig in a directory")
        .join(".kube/cache")
}

/// The plugin binary: the one this test build made, unless `BLUEGREEN_PLUGIN_BIN` names a
/// copy (a long campaign runs a copy, so that rebuilding meanwhile does not change it).
pub fn plugin_bin() -> PathBuf {
    std::env::var_os("BLUEGREEN_PLUGIN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kubectl-bluegreen")))
}

/// The real kubectl, or None (skipped with a printed reason; a failure under CI=true).
pub fn kubectl() -> Option<PathBuf> {
    let bin = std::env::var("KUBECTL").unwrap_or_else(|_| "kubectl".into());
    if std::process::Command::new(&bin)
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(PathBuf::from(bin));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("kubectl ({bin}) is required when CI=true");
    }
    eprintln!("skipping: kubectl ({bin}) is not on the PATH");
    None
}
