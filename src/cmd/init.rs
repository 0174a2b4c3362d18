//! `kubectl bluegreen init SERVICE`: adopt a plain Deployment + Service.

use crate::cli::InitArgs;
use crate::cmd::mutate;
use crate::env::Env;
use crate::error::Result;
use crate::plan::{self, InitRequest};

pub async fn run(env: &mut Env, args: &InitArgs) -> Result<()> {
    let req = InitRequest {
        service: args.service.clone(),
        color_label: args.color_label.clone(),
    };
    let ns = env.conn.namespace.clone();
    mutate::run(env, &args.service, &args.opts, |snap, actor| {
        plan::init(snap, &ns, &req, actor)
    })
    .await
}
