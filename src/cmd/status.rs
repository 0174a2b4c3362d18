//! `kubectl bluegreen status APP | -l SELECTOR [-o ...] [--watch]`.

use crate::cli::Output;
use crate::cmd::watch;
use crate::env::Env;
use crate::error::{Error, Reason, Result};
use crate::model;
use crate::observe::{self, Reader, Scope};
use crate::render;
use crate::request::Target;

pub async fn run(env: &mut Env, target: &Target, output: Output, follow: bool) -> Result<()> {
    if follow {
        return match target {
            Target::App(app) => watch::run(env, app, output).await,
            Target::Selector(_) => Err(Error::Usage(
                "--watch follows one app: give APP instead of -l".into(),
            )),
        };
    }
    let ns = env.conn.namespace.clone();
    let scope = Scope::Namespace(ns.clone());
    let client = env.conn.client.clone();
    let timeout = env.conn.request_timeout;
    let hints = env.hints.clone();
    let reader = Reader::view(&client, timeout).with_hints(hints.as_ref());
    let apps = match target {
        Target::App(name) => {
            let snap = observe::app(&reader, &ns, name, None).await?;
            vec![model::find_app(&snap, &ns, name)?]
        }
        Target::Selector(selector) => {
            let (snap, matching) = reader.snapshot_selecting(&scope, Some(selector)).await?;
            let matching = matching.unwrap_or_default();
            let selected: Vec<_> = model::build(&snap)
                .into_iter()
                .filter(|a| {
                    a.services
                        .iter()
                        .any(|s| matching.contains(&(a.namespace.clone(), s.name.clone())))
                })
                .collect();
            if selected.is_empty() {
                return Err(Error::NotFound(
                    Reason::AppNotFound,
                    format!("no app in namespace {ns} has a Service matching {selector}"),
                ));
            }
            selected
        }
    };
    let text = render::status::show(&apps, &env.conn.context, output, (env.now)(), env.style)?;
    env.print(&text)?;
    Ok(())
}
