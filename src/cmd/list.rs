//! `kubectl bluegreen list [-A] [-l SELECTOR] [-o ...]`.

use crate::cli::Output;
use crate::env::Env;
use crate::error::Result;
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
    let (mut apps, matching) = tokio::try_join!(reader.apps(&scope), async {
        match selector {
            Some(sel) => reader.matching_services(&scope, sel).await.map(Some),
            None => Ok(None),
        }
    })?;
    if let Some(m) = matching {
        apps.retain(|a| {
            a.services
                .iter()
                .any(|s| m.contains(&(a.namespace.clone(), s.name.clone())))
        });
    }
    let text = match output {
        Output::Json => {
            render::document(&AppStatusList::new(&apps, &env.conn.context), Format::Json)?
        }
        Output::Yaml => {
            render::document(&AppStatusList::new(&apps, &env.conn.context), Format::Yaml)?
        }
        Output::Table | Output::Wide if apps.is_empty() => match &scope {
            Scope::All => "No blue/green apps found.\n".to_string(),
            Scope::Namespace(ns) => format!("No blue/green apps found in {ns} namespace.\n"),
        },
        Output::Table | Output::Wide => render::list::render(&apps, all_namespaces, (env.now)()),
    };
    env.print(&text)?;
    Ok(())
}
