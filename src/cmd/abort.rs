//! `kubectl bluegreen abort APP | -l SELECTOR`.

use crate::cli::AbortArgs;
use crate::cmd::mutate;
use crate::env::Env;
use crate::error::Result;
use crate::plan::{self, AbortRequest};

pub async fn run(env: &mut Env, args: &AbortArgs) -> Result<()> {
    let req = AbortRequest { keep: args.keep };
    let plan_for = |app: &_, _snap: &_, actor: &_| plan::abort(app, &req, actor);
    match (&args.app, &args.selector) {
        (Some(app), _) => {
            let ns = env.conn.namespace.clone();
            mutate::run(env, app, &args.opts, mutate::for_app(&ns, app, plan_for)).await
        }
        (None, Some(sel)) => mutate::run_selected(env, sel, &args.opts, plan_for).await,
        (None, None) => Err(crate::error::Error::Usage(
            "give an APP or -l SELECTOR".into(),
        )),
    }
}
