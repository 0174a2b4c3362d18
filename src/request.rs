//! The validated request: what the user asked for, as one value, built by
//! `cli::Cli::into_request` once every usage error has been raised (exit 2, before any
//! API call). Everything after this point may assume well-formed input.

use crate::cli::{GlobalOpts, Output, WaitFor};
use crate::plan::Intent;
use crate::render::Format;
use std::time::Duration;

#[derive(Debug)]
pub struct Request {
    /// kubectl's connection flags (kubeconfig, context, namespace, timeouts, identity).
    pub connection: GlobalOpts,
    pub verb: Verb,
}

/// One app by name, or every app whose Service matches a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    App(String),
    Selector(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DryRun {
    /// Run for real.
    None,
    /// Print the plan; send nothing.
    Client,
    /// Send every write with `dryRun=All` and print what the server would store.
    Server,
}

impl DryRun {
    pub fn as_str(self) -> &'static str {
        match self {
            DryRun::None => "none",
            DryRun::Client => "client",
            DryRun::Server => "server",
        }
    }
}

/// What every mutating command takes beside its own options.
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    pub dry_run: DryRun,
    /// How long each wait may take.
    pub timeout: Duration,
    /// A result document for scripts instead of a summary line.
    pub output: Option<Format>,
    /// Proceed although a GitOps tool owns the app (`--allow-gitops`).
    pub allow_gitops: bool,
}

#[derive(Debug)]
pub enum Verb {
    Status {
        target: Target,
        output: Output,
        watch: bool,
    },
    List {
        all_namespaces: bool,
        selector: Option<String>,
        output: Output,
    },
    History {
        app: String,
        output: Output,
    },
    /// set-image, promote, abort and init: observe → plan → lock → apply → verify.
    Write {
        target: Target,
        intent: Intent,
        options: WriteOptions,
    },
    Wait {
        app: String,
        until: WaitFor,
        timeout: Duration,
    },
    Version {
        client_only: bool,
        output: Option<Format>,
    },
    Completion {
        shell: clap_complete::Shell,
    },
    /// kubectl's plugin completion protocol (`__complete`).
    Complete {
        words: Vec<String>,
    },
}

impl Verb {
    /// Whether stdout carries a document for machines (no colour then).
    pub fn machine_output(&self) -> bool {
        match self {
            Verb::Status { output, .. }
            | Verb::List { output, .. }
            | Verb::History { output, .. } => {
                matches!(output, Output::Json | Output::Yaml)
            }
            Verb::Write { options, .. } => options.output.is_some(),
            Verb::Version { output, .. } => output.is_some(),
            Verb::Wait { .. } => false,
            Verb::Completion { .. } | Verb::Complete { .. } => true,
        }
    }
}
