//! Records the git commit the binary is built from (`kubectl bluegreen version`).
fn main() {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BLUEGREEN_GIT_COMMIT={commit}");
    // The kube-rs version the lock file resolved, for `version`.
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let kube = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"kube\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BLUEGREEN_KUBE_VERSION={kube}");
    println!("cargo:rerun-if-changed=Cargo.lock");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
}
