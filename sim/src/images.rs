//! The image convention (documented in the README), shared by the kubelet stand-in (what
//! a container's status says) and the traffic plane (what a pod answers over HTTP): an
//! image reference containing `crashloop` runs but crash-loops (CrashLoopBackOff), one
//! containing `pullfail` never pulls (ErrImagePull / ImagePullBackOff), one containing
//! `neverready` runs and never passes its readiness probe, one containing `http500`
//! passes readiness but answers 500 on every path other than its readiness path, and one
//! containing `failafter-<duration>` (Go-like: `1s`, `500ms`, `2m`, `1m30s`) behaves
//! well, then, that long after its container started, fails readiness, answers 500, and
//! [`RESTART_AFTER_FAILING`] later crashes and restarts, counting again from its new
//! start. Any other image becomes Ready after `pod_ready_after` and answers 200.
//! The first matching word wins, in that order.

use serde_json::Value;
use std::time::Duration;
use tokio::time::Instant;

/// How long a `failafter` container keeps running (not ready, answering 500) before it
/// crashes and is restarted — as a failing liveness probe would have it killed.
pub const RESTART_AFTER_FAILING: Duration = Duration::from_secs(1);

/// The path an `http500` (or healthy) pod answers its readiness probe on when its
/// container has no `readinessProbe.httpGet.path`.
pub const DEFAULT_READINESS_PATH: &str = "/healthz";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    Normal,
    CrashLoop,
    PullFail,
    NeverReady,
    Http500,
    FailAfter(Duration),
}

impl Behaviour {
    pub fn of(image: &str) -> Behaviour {
        if image.contains("crashloop") {
            Behaviour::CrashLoop
        } else if image.contains("pullfail") {
            Behaviour::PullFail
        } else if image.contains("neverready") {
            Behaviour::NeverReady
        } else if image.contains("http500") {
            Behaviour::Http500
        } else if let Some(d) = fail_after(image) {
            Behaviour::FailAfter(d)
        } else {
            Behaviour::Normal
        }
    }
}

/// The duration of the first `failafter-<duration>` in an image reference (a zero or
/// unparsable duration does not count).
fn fail_after(image: &str) -> Option<Duration> {
    image.match_indices("failafter-").find_map(|(i, m)| {
        let rest = &image[i + m.len()..];
        parse_duration_prefix(rest).filter(|d| !d.is_zero())
    })
}

/// The longest Go-like duration (`1m30s`, `1.5s`, `250ms`, `2h`) at the start of `s`.
pub fn parse_duration_prefix(s: &str) -> Option<Duration> {
    let mut total = 0f64;
    let mut rest = s;
    let mut any = false;
    loop {
        let num_len = rest
            .find(|ch: char| !(ch.is_ascii_digit() || ch == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            break;
        }
        let Ok(n) = rest[..num_len].parse::<f64>() else {
            break;
        };
        let after = &rest[num_len..];
        let (unit, secs) = if after.starts_with("ms") {
            (2, 0.001)
        } else if after.starts_with('s') {
            (1, 1.0)
        } else if after.starts_with('m') {
            (1, 60.0)
        } else if after.starts_with('h') {
            (1, 3600.0)
        } else {
            break;
        };
        total += n * secs;
        any = true;
        rest = &after[unit..];
    }
    any.then(|| Duration::from_secs_f64(total))
}

/// Where a `failafter` container is in its life: it started `restarts` times before,
/// the current run started at `started`, fails at `fails_at` and crashes (and is
/// restarted at once) at `crashes_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cycle {
    pub restarts: u32,
    pub started: Instant,
    pub fails_at: Instant,
    pub crashes_at: Instant,
}

/// The cycle a `failafter` container whose pod started at `pod_started` is in at `now`.
pub fn cycle(pod_started: Instant, after: Duration, now: Instant) -> Cycle {
    let period = after + RESTART_AFTER_FAILING;
    let elapsed = now.saturating_duration_since(pod_started);
    let restarts = (elapsed.as_nanos() / period.as_nanos()) as u32;
    let started = pod_started + period * restarts;
    Cycle {
        restarts,
        started,
        fails_at: started + after,
        crashes_at: started + period,
    }
}

/// The path the container's readiness probe asks (`readinessProbe.httpGet.path`, else
/// [`DEFAULT_READINESS_PATH`]).
pub fn readiness_path(container: &Value) -> String {
    container
        .pointer("/readinessProbe/httpGet/path")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_READINESS_PATH)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviours_by_image_word() {
        assert_eq!(Behaviour::of("web:1"), Behaviour::Normal);
        assert_eq!(Behaviour::of("reg/web:crashloop"), Behaviour::CrashLoop);
        assert_eq!(Behaviour::of("reg/web:http500"), Behaviour::Http500);
        assert_eq!(
            Behaviour::of("reg/web:2.0-failafter-20s"),
            Behaviour::FailAfter(Duration::from_secs(20))
        );
        assert_eq!(
            Behaviour::of("web:failafter-1m30s-rc1"),
            Behaviour::FailAfter(Duration::from_secs(90))
        );
        assert_eq!(
            Behaviour::of("web:failafter-250ms"),
            Behaviour::FailAfter(Duration::from_millis(250))
        );
        assert_eq!(Behaviour::of("web:failafter-soon"), Behaviour::Normal);
        assert_eq!(Behaviour::of("web:failafter-0s"), Behaviour::Normal);
    }

    #[test]
    fn failafter_cycles_restart_and_count_from_the_new_start() {
        let t0 = Instant::now();
        let d = Duration::from_secs(2);
        let c = cycle(t0, d, t0 + Duration::from_millis(1500));
        assert_eq!(c.restarts, 0);
        assert_eq!(c.fails_at, t0 + d);
        assert_eq!(c.crashes_at, t0 + d + RESTART_AFTER_FAILING);
        let c = cycle(t0, d, t0 + Duration::from_millis(3500));
        assert_eq!(c.restarts, 1);
        assert_eq!(c.started, t0 + Duration::from_secs(3));
        assert_eq!(c.fails_at, t0 + Duration::from_secs(5));
    }
}
