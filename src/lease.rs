//! The app's lock: a `coordination.k8s.io/v1` Lease named `bluegreen-<app>` in the app's
//! namespace, held as `user@host/pid` and renewed while a command runs. A second operator
//! is told who holds it since when; a Lease whose holder stopped renewing (a killed
//! process) expires and is taken over — at once when the holder was a process of this
//! machine that no longer exists. Every Lease write is guarded by its
//! resourceVersion, so two takers cannot both win.

use crate::env::Clock;
use crate::error::{Error, Reason, Result};
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long a Lease stays valid without renewal.
pub const LEASE_SECONDS: i32 = 15;

pub struct LeaseGuard {
    api: Api<Lease>,
    name: String,
    holder: String,
    now: Clock,
    /// What the renewal task knows: when it last renewed, and whether someone else holds
    /// the Lease now. `check` reads it before every write.
    health: Arc<Mutex<Health>>,
    /// The intent of a holder that died or stopped renewing before it finished.
    pub previous_intent: Option<String>,
    renew: JoinHandle<()>,
}

pub fn lease_name(app: &str) -> String {
    format!("bluegreen-{app}")
}

/// Who takes the Lease: `user@host/pid`, the host and pid being those of this process
/// (so a dead local holder can be told from a live remote one), and the clock to stamp
/// acquire and renew times with.
#[derive(Debug, Clone)]
pub struct Holder {
    pub identity: String,
    pub host: String,
    pub pid: u32,
    pub now: Clock,
}

impl Holder {
    pub fn new(user: &str, host: &str, pid: u32, now: Clock) -> Holder {
        Holder {
            identity: format!("{user}@{host}/{pid}"),
            host: host.to_string(),
            pid,
            now,
        }
    }
}

fn expired(spec: &LeaseSpec, now: jiff::Timestamp) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let secs = spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS) as i64;
    now.as_second() > renewed.0.as_second() + secs
}

/// Whether the holder is a process of this machine that no longer exists (a killed
/// command): its Lease need not be waited out. Only decidable where /proc exists.
fn holder_is_dead_local_process(holder: &str, me: &Holder) -> bool {
    let Some((user_host, pid)) = holder.rsplit_once('/') else {
        return false;
    };
    let Some((_, host)) = user_host.rsplit_once('@') else {
        return false;
    };
    let proc = std::path::Path::new("/proc");
    host == me.host
        && proc.join("self").exists()
        && pid
            .parse::<u32>()
            .is_ok_and(|p| p != me.pid && !proc.join(p.to_string()).exists())
}

fn held_by(lease: &Lease) -> Option<String> {
    lease
        .spec
        .as_ref()
        .and_then(|s| s.holder_identity.clone())
        .filter(|h| !h.is_empty())
}

fn locked_error(app: &str, lease: &Lease, now: jiff::Timestamp) -> Error {
    let spec = lease.spec.clone().unwrap_or_default();
    let since = spec.acquire_time.map(|t| {
        let ago = crate::render::human_duration(now.as_second() - t.0.as_second());
        format!(
            " since {} ({ago} ago)",
            t.0.round(jiff::Unit::Second).unwrap_or(t.0)
        )
    });
    Error::Conflict(
        Reason::LeaseHeld,
        format!(
            "app {app} is locked by {}{}: another command is working on it; the lock expires {}s after its holder stops renewing it",
            held_by(lease).unwrap_or_default(),
            since.unwrap_or_default(),
            spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS)
        ),
    )
}

/// The annotation on the Lease that says what its holder set out to do (a pinned target),
/// so that a re-run after a crash can tell whether the target moved meanwhile.
pub const INTENT_ANNOTATION: &str = "bluegreen.io/intent";

/// Takes the app's Lease, recording `intent`, or fails with exit 5 naming its holder.
/// A Lease taken over from a holder that died or stopped renewing hands back that
/// holder's unfinished intent (`LeaseGuard::previous_intent`).
pub async fn acquire(
    client: &kube::Client,
    namespace: &str,
    app: &str,
    me: &Holder,
    intent: &str,
) -> Result<LeaseGuard> {
    let mut previous_intent = None;
    let holder = me.identity.as_str();
    let clock = me.now;
    let now = move || MicroTime(clock());
    let api: Api<Lease> = Api::namespaced(client.clone(), namespace);
    let name = lease_name(app);
    let fresh = |transitions: i32| LeaseSpec {
        holder_identity: Some(holder.to_string()),
        lease_duration_seconds: Some(LEASE_SECONDS),
        acquire_time: Some(now()),
        renew_time: Some(now()),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    match api
        .get_opt(&name)
        .await
        .map_err(|e| Error::kube(format!("read lease {name}"), e))?
    {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(namespace.to_string()),
                    annotations: Some([(INTENT_ANNOTATION.to_string(), intent.to_string())].into()),
                    ..Default::default()
                },
                spec: Some(fresh(0)),
            };
            match api.create(&post_params(), &lease).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    let current = api
                        .get(&name)
                        .await
                        .map_err(|e| Error::kube(format!("read lease {name}"), e))?;
                    return Err(locked_error(app, &current, clock()));
                }
                Err(e) => return Err(Error::kube(format!("create lease {name}"), e)),
            }
        }
        Some(mut lease) => {
            let spec = lease.spec.clone().unwrap_or_default();
            let free = held_by(&lease)
                .is_none_or(|h| h == holder || holder_is_dead_local_process(&h, me))
                || expired(&spec, clock());
            if !free {
                return Err(locked_error(app, &lease, clock()));
            }
            tracing::info!(lease = %name, previous = ?held_by(&lease), "taking the lease");
            if held_by(&lease).is_some_and(|h| h != holder) {
                previous_intent = lease
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(INTENT_ANNOTATION).cloned());
            }
            let annotations = lease.metadata.annotations.get_or_insert_default();
            annotations.insert(INTENT_ANNOTATION.to_string(), intent.to_string());
            lease.spec = Some(fresh(spec.lease_transitions.unwrap_or(0) + 1));
            match api.replace(&name, &post_params(), &lease).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    let current = api
                        .get(&name)
                        .await
                        .map_err(|e| Error::kube(format!("read lease {name}"), e))?;
                    return Err(locked_error(app, &current, clock()));
                }
                Err(e) => return Err(Error::kube(format!("take lease {name}"), e)),
            }
        }
    }
    let health = Arc::new(Mutex::new(Health {
        renewed_at: clock(),
        lost_to: None,
    }));
    let renew = {
        let (api, name, holder) = (api.clone(), name.clone(), holder.to_string());
        let health = health.clone();
        tokio::spawn(async move {
            // Renew at a third of the duration; after a failure, retry every second.
            let every = Duration::from_secs((LEASE_SECONDS / 3).max(1) as u64);
            let mut wait = every;
            loop {
                tokio::time::sleep(wait).await;
                wait = Duration::from_secs(1);
                let Ok(mut lease) = api.get(&name).await else {
                    continue;
                };
                if let Some(other) = held_by(&lease).filter(|h| h != &holder) {
                    tracing::warn!(lease = %name, holder = %other, "lost the lease");
                    lock(&health).lost_to = Some(other);
                    return;
                }
                if let Some(spec) = lease.spec.as_mut() {
                    spec.renew_time = Some(now());
                }
                // Guarded by the resourceVersion just read: a taker wins, we notice.
                if api.replace(&name, &post_params(), &lease).await.is_ok() {
                    lock(&health).renewed_at = clock();
                    wait = every;
                }
            }
        })
    };
    Ok(LeaseGuard {
        api,
        name,
        holder: holder.to_string(),
        now: clock,
        health,
        renew,
        previous_intent,
    })
}

/// The renewal task's findings.
#[derive(Debug)]
struct Health {
    renewed_at: jiff::Timestamp,
    lost_to: Option<String>,
}

fn lock(h: &Mutex<Health>) -> std::sync::MutexGuard<'_, Health> {
    h.lock().unwrap_or_else(|e| e.into_inner())
}

impl LeaseGuard {
    /// Whether this command may still write: it holds the Lease and renewed it within
    /// the Lease's duration (a paused or cut-off process may have lost it to another
    /// operator who then legitimately took it over). Exit 5 otherwise.
    pub fn check(&self) -> Result<()> {
        let h = lock(&self.health);
        if let Some(other) = &h.lost_to {
            return Err(Error::Conflict(
                Reason::LeaseLost,
                format!(
                    "lost the lock of this app (Lease {}) to {other}: stopped before the next write so as not to overwrite their work",
                    self.name
                ),
            ));
        }
        let since = (self.now)().as_second() - h.renewed_at.as_second();
        if since >= LEASE_SECONDS as i64 {
            return Err(Error::Conflict(
                Reason::LeaseLost,
                format!(
                    "could not renew the lock of this app (Lease {}) for {since}s, longer than its {LEASE_SECONDS}s duration: stopped before the next write, since someone else may hold it now",
                    self.name
                ),
            ));
        }
        Ok(())
    }

    /// Gives the Lease up (clears the holder, guarded) so the next command need not wait.
    pub async fn release(self) {
        self.renew.abort();
        for _ in 0..3 {
            let Ok(mut lease) = self.api.get(&self.name).await else {
                return;
            };
            if held_by(&lease).as_deref() != Some(self.holder.as_str()) {
                return;
            }
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.renew_time = Some(MicroTime((self.now)()));
            }
            if let Some(a) = lease.metadata.annotations.as_mut() {
                a.remove(INTENT_ANNOTATION);
            }
            match self.api.replace(&self.name, &post_params(), &lease).await {
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                _ => return,
            }
        }
    }
}

fn post_params() -> PostParams {
    PostParams {
        dry_run: false,
        field_manager: Some(crate::apply::FIELD_MANAGER.into()),
    }
}
