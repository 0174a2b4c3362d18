//! `kubectl bluegreen wait APP --for=preview-ready|switched|converged`.

use crate::cli::WaitFor;
use crate::env::Env;
use crate::error::{Error, Reason, Result};
use crate::model::{self, Role};
use crate::observe::{self, Detail, Reader};
use crate::progress::Progress;
use crate::verify;

pub async fn run(
    env: &mut Env,
    app: &str,
    until: WaitFor,
    timeout: std::time::Duration,
) -> Result<()> {
    let ns = env.conn.namespace.clone();
    let client = env.conn.client.clone();
    let deadline = tokio::time::Instant::now() + timeout;
    let progress = Progress::new(env.tty_err, false);
    let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
    // Fresh: a script acts on what wait says.
    let hints = env.hints.clone();
    let reader = Reader {
        detail: Detail::Lean,
        ..Reader::new(&client, env.conn.request_timeout).with_hints(hints.as_ref())
    };
    let snap = observe::app(&reader, &ns, app, None).await?;
    let app = model::find_app(&snap, &ns, app)?;
    let at = verify::At {
        client: &client,
        server: &env.conn.server,
        namespace: &ns,
    };
    let work = async {
        if until == WaitFor::PreviewReady {
            let preview = app.slot(Role::Preview).ok_or_else(|| {
                Error::Precondition(
                    Reason::NoPreviewSlot,
                    format!("app {} has no preview slot", app.name),
                )
            })?;
            let wanted = app.slot(Role::Active).map(|s| s.desired).unwrap_or(0);
            if preview.desired == 0 {
                return Err(Error::Precondition(
                    Reason::PreviewEmpty,
                    format!(
                        "preview slot {} is scaled to 0: it cannot become ready for a promote (`kubectl bluegreen set-image {} ...` puts a version on it)",
                        preview.color, app.name
                    ),
                ));
            }
            if preview.desired < wanted {
                return Err(Error::Precondition(
                    Reason::PreviewTooSmall,
                    format!(
                        "preview slot {} wants {} replicas, fewer than the live slot's {wanted}: it cannot become ready for a promote (set-image scales it)",
                        preview.color, preview.desired
                    ),
                ));
            }
            verify::rolled_out(at, &preview.deployment, left(), &progress).await?;
        }
        if until == WaitFor::Converged {
            // Nothing in flight: every slot rolled out at its latest generation.
            for slot in &app.slots {
                verify::rolled_out(at, &slot.deployment, left(), &progress).await?;
            }
        }
        if matches!(until, WaitFor::Switched | WaitFor::Converged) {
            if app.services.iter().any(|s| s.color != app.active_color) {
                return Err(Error::Precondition(Reason::ServicesDisagree, "the app's Services disagree on the live color: a promote or abort was interrupted; re-run it".into()));
            }
            let live = app.slot(Role::Active).ok_or_else(|| {
                Error::Precondition(
                    Reason::NoLiveSlot,
                    format!("app {} has no live slot", app.name),
                )
            })?;
            let services: Vec<String> = app.services.iter().map(|s| s.name.clone()).collect();
            verify::serving_only(
                at,
                &services,
                &live.deployment,
                &live.color,
                std::time::Duration::ZERO,
                left(),
                &progress,
            )
            .await
            .map_err(|e| match e {
                Error::NotConverged(m) => Error::Timeout(m),
                other => other,
            })?;
        }
        Ok(())
    };
    let r = tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(Error::Interrupted("interrupted".into())),
    };
    progress.finish();
    r?;
    env.print(&format!(
        "{}: {} reached\n",
        app.name,
        match until {
            WaitFor::PreviewReady => "preview-ready",
            WaitFor::Switched => "switched",
            WaitFor::Converged => "converged",
        }
    ))?;
    Ok(())
}
