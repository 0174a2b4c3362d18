//! `kubectl bluegreen status APP | -l SELECTOR [-o ...] [--watch]`.

use crate::cli::{Output, StatusArgs};
use crate::env::Env;
use crate::error::{Error, Result};
use crate::observe::{self, Scope};
use crate::render::{self, Format, status::AppStatus, status::AppStatusList};
use crate::{cmd, model};

pub async fn run(env: &mut Env, args: &StatusArgs) -> Result<()> {
    if args.watch {
        return cmd::watch::run(env, args).await;
    }
    let ns = env.conn.namespace.clone();
    let scope = Scope::Namespace(ns.clone());
    let client = env.conn.client.clone();
    let timeout = env.conn.request_timeout;
    let (snap, matching) =
        observe::snapshot_selecting(&client, &scope, args.selector.as_deref(), timeout).await?;
    let apps = model::build(&snap);
    let apps = match (&args.app, matching) {
        (Some(name), _) => vec![cmd::find_app(apps, &snap, &ns, name)?],
        (None, Some(matching)) => {
            let selected: Vec<_> = apps
                .into_iter()
                .filter(|a| {
                    a.services
                        .iter()
                        .any(|s| matching.contains(&(a.namespace.clone(), s.name.clone())))
                })
                .collect();
            if selected.is_empty() {
                return Err(Error::NotFound(format!(
                    "no app in namespace {ns} has a Service matching {}",
                    args.selector.as_deref().unwrap_or_default()
                )));
            }
            selected
        }
        (None, None) => return Err(Error::Usage("give an APP or -l SELECTOR".into())),
    };
    let text = show(
        &apps,
        &env.conn.context,
        args.output,
        (env.now)(),
        env.style,
    )?;
    env.print(&text)?;
    Ok(())
}

/// The whole rendering of `status` for these apps.
pub fn show(
    apps: &[model::App],
    context: &str,
    output: Output,
    now: jiff::Timestamp,
    style: render::Style,
) -> Result<String> {
    match output {
        Output::Json | Output::Yaml => {
            let format = if output == Output::Json {
                Format::Json
            } else {
                Format::Yaml
            };
            if apps.len() == 1 {
                render::document(&AppStatus::new(&apps[0], context), format)
            } else {
                render::document(&AppStatusList::new(apps, context), format)
            }
        }
        Output::Table | Output::Wide => Ok(apps
            .iter()
            .map(|a| render::status::render(a, context, now, output == Output::Wide, style))
            .collect::<Vec<_>>()
            .join("\n")),
    }
}
