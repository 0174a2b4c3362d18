//! Shell completion: `completion bash|zsh|fish|powershell` (clap_complete, for the
//! `kubectl-bluegreen` binary), and the hidden `__complete` that the
//! `kubectl_complete-bluegreen` helper calls so that kubectl (≥ 1.26) completes
//! `kubectl bluegreen <TAB>`: kubectl passes the words after the plugin name and expects
//! cobra's answer, one candidate per line (`value<TAB>description`), then `:<directive>`.

use crate::cli::{Cli, GlobalOpts};
use crate::connect;
use crate::model;
use crate::observe::{Query, Reader, Scope, Snapshot};
use clap::CommandFactory;
use k8s_openapi::api::core::v1::Service;

/// cobra's ShellCompDirectiveNoFileComp.
const NO_FILE_COMP: u8 = 4;

pub fn generate(shell: clap_complete::Shell, out: &mut dyn std::io::Write) {
    clap_complete::generate(shell, &mut Cli::command(), "kubectl-bluegreen", out);
}

/// The connection flags among the words typed so far.
fn global_opts(words: &[String]) -> GlobalOpts {
    let mut g = GlobalOpts::default();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        let (flag, inline) = match w.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (w.as_str(), None),
        };
        let mut value = || inline.clone().or_else(|| it.next().cloned());
        match flag {
            "-n" | "--namespace" => g.namespace = value(),
            "--context" => g.context = value(),
            "--kubeconfig" => g.kubeconfig = value().map(Into::into),
            "--cluster" => g.cluster = value(),
            "--user" => g.user = value(),
            _ => {}
        }
    }
    g
}

/// Candidates for the words typed after `kubectl bluegreen`; the last is being completed.
pub async fn candidates(words: &[String]) -> Vec<String> {
    let current = words.last().map(String::as_str).unwrap_or("");
    let cmd = Cli::command();
    let typed: Vec<&String> = words[..words.len().saturating_sub(1)].iter().collect();
    // The subcommand is the first word that is neither a flag nor a flag's value
    // (`kubectl bluegreen -n shop status <TAB>`: `shop` is the namespace).
    let takes_value = |flag: &str| {
        !flag.contains('=')
            && cmd.get_arguments().any(|a| {
                a.get_action().takes_values()
                    && (a
                        .get_long()
                        .is_some_and(|l| flag.strip_prefix("--") == Some(l))
                        || a.get_short().is_some_and(|c| flag == format!("-{c}")))
            })
    };
    let mut sub = None;
    let mut words_typed = typed.iter();
    while let Some(w) = words_typed.next() {
        if w.starts_with('-') {
            if takes_value(w) {
                words_typed.next();
            }
            continue;
        }
        sub = Some(w.as_str());
        break;
    }
    let Some(sub) = sub else {
        return cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name().starts_with(current))
            .map(|s| {
                format!(
                    "{}\t{}",
                    s.get_name(),
                    s.get_about().map(|a| a.to_string()).unwrap_or_default()
                )
            })
            .collect();
    };
    let Some(subcmd) = cmd.find_subcommand(sub) else {
        return Vec::new();
    };
    if current.starts_with('-') {
        return subcmd
            .get_arguments()
            .chain(cmd.get_arguments())
            .filter_map(|a| {
                a.get_long().map(|l| {
                    (
                        format!("--{l}"),
                        a.get_help().map(|h| h.to_string()).unwrap_or_default(),
                    )
                })
            })
            .filter(|(l, _)| l.starts_with(current))
            .map(|(l, h)| format!("{l}\t{h}"))
            .collect();
    }
    // The first positional of these commands is an app (or, for init, a Service).
    let positionals_typed = typed
        .iter()
        .skip_while(|w| w.as_str() != sub)
        .skip(1)
        .filter(|w| !w.starts_with('-'))
        .count();
    if positionals_typed > 0
        || ![
            "status",
            "history",
            "set-image",
            "promote",
            "abort",
            "wait",
            "init",
        ]
        .contains(&sub)
    {
        return Vec::new();
    }
    let Ok(conn) = connect::connect(&global_opts(words)).await else {
        return Vec::new();
    };
    // App names and live colors come from the Services alone.
    let reader = Reader::view(&conn.client, Some(std::time::Duration::from_secs(5)));
    let scope = Scope::Namespace(conn.namespace.clone());
    let Ok(services) = reader.list::<Service>(&scope, Query::default()).await else {
        return Vec::new();
    };
    let snap = Snapshot {
        services,
        ..Snapshot::default()
    };
    if sub == "init" {
        // Services not yet adopted: a selector without a color label.
        return snap
            .services
            .iter()
            .filter(|s| {
                s.spec
                    .as_ref()
                    .and_then(|p| p.selector.as_ref())
                    .is_some_and(|sel| {
                        !sel.is_empty() && !sel.contains_key(model::DEFAULT_COLOR_LABEL)
                    })
            })
            .filter_map(|s| s.metadata.name.clone())
            .filter(|n| n.starts_with(current))
            .collect();
    }
    model::build(&snap)
        .into_iter()
        .filter(|a| a.name.starts_with(current))
        .map(|a| {
            format!(
                "{}\tlive: {}",
                a.name,
                a.active_color.unwrap_or_else(|| "?".into())
            )
        })
        .collect()
}

pub async fn complete(words: &[String]) -> String {
    let mut out = String::new();
    for c in candidates(words).await {
        out.push_str(&c);
        out.push('\n');
    }
    out.push_str(&format!(":{NO_FILE_COMP}\n"));
    out
}
