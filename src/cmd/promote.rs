//! `kubectl bluegreen promote APP | -l SELECTOR`.

use crate::cli::PromoteArgs;
use crate::cmd::mutate;
use crate::env::Env;
use crate::error::Result;
use crate::plan::{self, PromoteRequest};

pub async fn run(env: &mut Env, args: &PromoteArgs) -> Result<()> {
    let req = PromoteRequest {
        to: args.to.clone(),
        allow_fewer: args.allow_fewer,
        scale_down_old: args.scale_down_old,
    };
    let plan_for = |app: &_, _snap: &_, actor: &_| plan::promote(app, &req, actor);
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
