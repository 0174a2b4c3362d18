//! What round 2 of an app's read asked last time, kept on this machine so that the next
//! read can send it along with round 1: a guess, never an answer. A guess's answers are
//! used only when round 1 shows that round 2 would ask exactly the same questions;
//! otherwise round 2 runs as if there had been no guess. Deleting the files changes
//! nothing but one round trip.
//!
//! The files live where kubectl keeps its caches (`$KUBECACHEDIR`, else
//! `~/.kube/cache`), under `bluegreen/<server>/<namespace>/<app>.json`. They are not the
//! app's state (that is on its Service): they hold label selectors and Service names.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// kubectl's cache directory: `$KUBECACHEDIR`, else `$HOME/.kube/cache`.
pub fn kubectl_cache_dir() -> Option<PathBuf> {
    let set = |var| std::env::var_os(var).filter(|v| !v.is_empty());
    set("KUBECACHEDIR")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|h| Path::new(&h).join(".kube").join("cache")))
}

/// Round 2's questions, as round 1's answers pose them (observe/app.rs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FollowUp {
    /// The label selector for the app's Deployments, ReplicaSets and Pods.
    pub pods: String,
    /// The label selector for the EndpointSlices of the app's Services.
    pub slices: String,
    /// Preview Services round 1 did not bring, read by name.
    pub previews: Vec<String>,
    /// Whether the namespace's Services are read too (the Service named NAME is
    /// unlabelled, so only they can tell whose preview it is).
    pub all_services: bool,
}

/// The hint files of one API server.
#[derive(Debug, Clone)]
pub struct ReadHints {
    dir: PathBuf,
}

impl ReadHints {
    /// The hints of `server` under the cache directory `cache`.
    pub fn under(cache: &Path, server: &str) -> ReadHints {
        ReadHints {
            dir: cache.join("bluegreen").join(server_dir(server)),
        }
    }

    fn file(&self, namespace: &str, app: &str) -> Option<PathBuf> {
        (is_plain_name(namespace) && is_plain_name(app))
            .then(|| self.dir.join(namespace).join(format!("{app}.json")))
    }

    /// Last time's follow-up for the app, if one was kept and still parses.
    pub fn load(&self, namespace: &str, app: &str) -> Option<FollowUp> {
        let text = std::fs::read(self.file(namespace, app)?).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Keeps `follow_up` for the next read. A hint is only ever worth a round trip, so a
    /// cache that cannot be written (read-only home, full disk) is passed over.
    pub fn save(&self, namespace: &str, app: &str, follow_up: &FollowUp) {
        let Some(file) = self.file(namespace, app) else {
            return;
        };
        let written = (|| {
            std::fs::create_dir_all(file.parent().expect("a file under a directory"))?;
            // Written whole, then renamed over: a concurrent reader sees the old hint or
            // the new one, never half of one.
            let tmp = file.with_extension(format!("json.{}.tmp", std::process::id()));
            std::fs::write(&tmp, serde_json::to_vec(follow_up)?)?;
            std::fs::rename(&tmp, &file)
        })();
        if let Err(e) = written {
            tracing::debug!(file = %file.display(), error = %e, "read hint not kept");
        }
    }
}

/// The server URL as one directory name, the way kubectl names its discovery cache
/// (`https://10.0.0.1:6443` → `10.0.0.1_6443`).
fn server_dir(server: &str) -> String {
    let bare = server
        .split_once("://")
        .map_or(server, |(_, rest)| rest)
        .trim_end_matches('/');
    bare.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Names that are safe as one path component: Kubernetes names (DNS labels and
/// subdomains). Anything else (`..`, `a/b`) gets no hint.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follow_up() -> FollowUp {
        FollowUp {
            pods: "app=shop".into(),
            slices: "kubernetes.io/service-name in (shop)".into(),
            previews: vec![],
            all_services: false,
        }
    }

    #[test]
    fn a_kept_hint_is_read_back_and_a_broken_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let hints = ReadHints::under(dir.path(), "https://127.0.0.1:6443/");
        assert_eq!(hints.load("default", "shop"), None);
        hints.save("default", "shop", &follow_up());
        assert_eq!(hints.load("default", "shop"), Some(follow_up()));
        let file = dir
            .path()
            .join("bluegreen/127.0.0.1_6443/default/shop.json");
        assert!(file.is_file(), "kept at {}", file.display());
        std::fs::write(&file, "{not json").unwrap();
        assert_eq!(hints.load("default", "shop"), None);
    }

    #[test]
    fn names_that_are_not_kubernetes_names_get_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let hints = ReadHints::under(dir.path(), "https://h:1");
        for (ns, app) in [("default", "../x"), ("..", "shop"), ("default", "a/b")] {
            hints.save(ns, app, &follow_up());
            assert_eq!(hints.load(ns, app), None, "{ns}/{app}");
        }
        assert!(!dir.path().join("bluegreen/h_1/x.json").exists());
        assert!(!dir.path().join("bluegreen/shop.json").exists());
    }

    #[test]
    fn an_unwritable_cache_is_passed_over() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let hints = ReadHints::under(&file, "https://h:1");
        hints.save("default", "shop", &follow_up());
        assert_eq!(hints.load("default", "shop"), None);
    }
}
