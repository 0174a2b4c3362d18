//! `kubectl bluegreen list [-A] [-l SELECTOR] [-o ...]`.

use crate::cli::Output;
use crate::env::Env;
use crate::error::Result;
use crate::model::App;
use crate::observe::{Reader, Scope};
use crate::render::{self, Format, status::AppStatusList};

pub async fn run(
    env: &mut Env,
    all_namespaces: bool,
    selector: Option<&str>,
    output: Output,
) -> Result<()> {
    let scope = if all_namespaces {
        Scope::All
    } else {
        Scope::Namespace(env.conn.namespace.clone())
    };
    let client = env.conn.client.clone();
    let timeout = env.conn.request_timeout;
    let reader = Reader::view(&client, timeout);
    // The table keeps one row per app, JSON and YAML the whole app.
    let now = (env.now)();
    let text = match output {
        Output::Json | Output::Yaml => {
            let apps = matching_apps(&reader, &scope, selector, |a| a).await?;
            let format = match output {
                Output::Json => Format::Json,
                _ => Format::Yaml,
            };
            render::document(&AppStatusList::new(&apps, &env.conn.context), format)?
        }
        Output::Table | Output::Wide => {
            let rows = matching_apps(&reader, &scope, selector, |a| {
                render::list::row(&a, all_namespaces, now)
            })
            .await?;
            match &scope {
                _ if !rows.is_empty() => render::list::render_rows(&rows, all_namespaces),
                Scope::All => "No blue/green apps found.\n".to_string(),
                Scope::Namespace(ns) => format!("No blue/green apps found in {ns} namespace.\n"),
            }
        }
    };
    env.print(&text)?;
    Ok(())
}

/// The apps of the scope that `-l` selects (by their Services, as the server selects),
/// each turned into what the output keeps of it.
async fn matching_apps<T: Send>(
    reader: &Reader<'_>,
    scope: &Scope,
    selector: Option<&str>,
    keep: impl Fn(App) -> T + Sync,
) -> Result<Vec<T>> {
    let (apps, matching) = tokio::try_join!(
        reader.apps_as(scope, |app| {
            let services: Vec<(String, String)> = app
                .services
                .iter()
                .map(|s| (app.namespace.clone(), s.name.clone()))
                .collect();
            (services, keep(app))
        }),
        async {
            match selector {
                Some(sel) => reader.matching_services(scope, sel).await.map(Some),
                None => Ok(None),
            }
        }
    )?;
    Ok(apps
        .into_iter()
        .filter(|(services, _)| {
            matching
                .as_ref()
                .is_none_or(|m| services.iter().any(|s| m.contains(s)))
        })
        .map(|(_, kept)| kept)
        .collect())
}
