//! `kubectl bluegreen set-image APP CONTAINER=IMAGE...`.

use crate::cli::SetImageArgs;
use crate::cmd::mutate;
use crate::env::Env;
use crate::error::Result;
use crate::plan::{self, SetImageRequest};

pub async fn run(env: &mut Env, args: &SetImageArgs) -> Result<()> {
    // Validated before any API call: malformed input is exit 2 with nothing sent.
    let req = SetImageRequest {
        images: plan::parse_images(&args.images)?,
        replicas: args.replicas,
        color: args.color.clone(),
        wait: !args.no_wait,
    };
    if let Some(r) = args.replicas
        && r < 0
    {
        return Err(crate::error::Error::Usage(format!(
            "--replicas {r}: must be 0 or more"
        )));
    }
    let ns = env.conn.namespace.clone();
    let plan_for = mutate::for_app(&ns, &args.app, |app, snap, _actor| {
        plan::set_image(app, snap, &req)
    });
    mutate::run(env, &args.app, &args.opts, plan_for).await
}
