//! Records, for `kubectl bluegreen version`, the commit the binary's sources come from and
//! the kube-rs version the lock file resolved.
//!
//! The commit is the last one that changed what goes into the binary (the paths below),
//! not HEAD: a release archive's checksum is committed in krew-manifest.yaml, and a binary
//! that embedded HEAD would change with the very commit that records its checksum.
//! Uncommitted changes to those paths add `-dirty`.

/// What the binary is built from; krew-manifest.yaml and the docs are not in it.
const SOURCES: &[&str] = &["src", "build.rs", "Cargo.toml", "Cargo.lock"];

fn git(args: &[&str]) -> Option<String> {
    std::process::Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
}

fn main() {
    let mut log = vec!["log", "-1", "--format=%h", "--abbrev=12", "--"];
    log.extend(SOURCES);
    let commit = match git(&log).filter(|c| !c.is_empty()) {
        Some(c) => {
            let mut status = vec!["status", "--porcelain", "--"];
            status.extend(SOURCES);
            match git(&status) {
                Some(s) if !s.is_empty() => format!("{c}-dirty"),
                _ => c,
            }
        }
        None => "unknown".into(),
    };
    println!("cargo:rustc-env=BLUEGREEN_GIT_COMMIT={commit}");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let kube = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"kube\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BLUEGREEN_KUBE_VERSION={kube}");
    for path in SOURCES {
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
