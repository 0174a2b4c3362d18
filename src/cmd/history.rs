//! `kubectl bluegreen history APP [-o ...]`.

use crate::cli::Output;
use crate::env::Env;
use crate::error::Result;
use crate::model;
use crate::observe::{self, Reader};
use crate::render::{self, Format, history::AppHistory};

pub async fn run(env: &mut Env, app: &str, output: Output) -> Result<()> {
    let ns = env.conn.namespace.clone();
    let reader =
        Reader::view(&env.conn.client, env.conn.request_timeout).with_hints(env.hints.as_ref());
    let snap = observe::app(&reader, &ns, app, None).await?;
    let app = model::find_app(&snap, &ns, app)?;
    let text = match output {
        Output::Json => render::document(&AppHistory::new(&app), Format::Json)?,
        Output::Yaml => render::document(&AppHistory::new(&app), Format::Yaml)?,
        Output::Table | Output::Wide => render::history::render(&app, (env.now)()),
    };
    env.print(&text)?;
    Ok(())
}
