//! Packaging: the krew manifest obeys krew's validation rules, and the archive installs
//! the way `kubectl krew install --manifest … --archive …` installs it.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every rule krew's validator enforces on a plugin manifest.
fn validate(manifest: &serde_json::Value, file_name: &str) -> Result<(), String> {
    let m = manifest;
    if m["apiVersion"] != "krew.googlecontainertools.github.com/v1alpha2" || m["kind"] != "Plugin" {
        return Err("wrong apiVersion/kind".into());
    }
    let name = m["metadata"]["name"].as_str().ok_or("no name")?;
    if format!("{name}.yaml") != file_name {
        return Err(format!(
            "file {file_name} does not match the plugin name {name}"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!("invalid plugin name {name}"));
    }
    let spec = &m["spec"];
    let version = spec["version"].as_str().ok_or("no version")?;
    let semver = version
        .strip_prefix('v')
        .ok_or("version must start with v")?;
    let parts: Vec<&str> = semver
        .split(['-', '+'])
        .next()
        .unwrap()
        .split('.')
        .collect();
    if parts.len() != 3 || parts.iter().any(|p| p.parse::<u64>().is_err()) {
        return Err(format!("{version} is not semver"));
    }
    let short = spec["shortDescription"]
        .as_str()
        .ok_or("no shortDescription")?;
    if short.contains('\n') || short.len() > 100 {
        return Err("shortDescription must be one short line".into());
    }
    if spec["homepage"]
        .as_str()
        .is_none_or(|h| !h.starts_with("https://"))
        || spec["description"].as_str().is_none()
    {
        return Err("homepage and description are required".into());
    }
    let platforms = spec["platforms"]
        .as_array()
        .filter(|p| !p.is_empty())
        .ok_or("no platforms")?;
    let mut seen = std::collections::BTreeSet::new();
    for p in platforms {
        let labels = p["selector"]["matchLabels"]
            .as_object()
            .ok_or("selector without matchLabels")?;
        if p["selector"].as_object().unwrap().len() != 1
            || labels.keys().any(|k| k != "os" && k != "arch")
        {
            return Err("selectors may only use os and arch".into());
        }
        let key = (
            labels["os"].as_str().unwrap_or("").to_string(),
            labels["arch"].as_str().unwrap_or("").to_string(),
        );
        if !seen.insert(key.clone()) {
            return Err(format!("overlapping selectors for {key:?}"));
        }
        let uri = p["uri"].as_str().ok_or("no uri")?;
        if !uri.ends_with(".tar.gz") && !uri.ends_with(".zip") {
            return Err(format!("uri {uri} is not a .tar.gz or .zip"));
        }
        let sha = p["sha256"].as_str().ok_or("no sha256")?;
        if sha.len() != 64
            || !sha
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        {
            return Err(format!("sha256 {sha} is not 64 lowercase hex digits"));
        }
        let bin = p["bin"].as_str().ok_or("no bin")?;
        if (key.0 == "windows") != bin.ends_with(".exe") {
            return Err(format!("bin {bin} for {}", key.0));
        }
    }
    Ok(())
}

fn crate_version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// The release-bot template as krew-release-bot renders it for this version (each
/// `addURIAndSha` filled with its uri and a placeholder sha256).
fn rendered_template() -> serde_json::Value {
    let template = std::fs::read_to_string(root().join(".krew.yaml")).unwrap();
    let tag = format!("v{}", crate_version());
    let rendered: String = template
        .replace("{{ .TagName }}", &tag)
        .lines()
        .map(
            |l| match l.trim_start().strip_prefix("{{ addURIAndSha \"") {
                Some(rest) => {
                    let uri = rest
                        .split('"')
                        .next()
                        .unwrap()
                        .replace("{{ .TagName }}", &tag);
                    format!("    uri: {uri}\n    sha256: {}\n", "ab".repeat(32))
                }
                None => format!("{l}\n"),
            },
        )
        .collect();
    serde_saphyr::from_str(&rendered).unwrap_or_else(|e| panic!("not YAML: {e}\n{rendered}"))
}

fn os_arch(p: &serde_json::Value) -> String {
    format!(
        "{}/{}",
        p["selector"]["matchLabels"]["os"].as_str().unwrap(),
        p["selector"]["matchLabels"]["arch"].as_str().unwrap()
    )
}

#[test]
fn the_release_bot_template_renders_to_a_valid_manifest_for_all_five_platforms() {
    let tag = format!("v{}", crate_version());
    let m = rendered_template();
    validate(&m, "bluegreen.yaml").unwrap();
    assert_eq!(
        m["spec"]["version"],
        tag.as_str(),
        "the version matches Cargo.toml"
    );
    let mut platforms: Vec<String> = m["spec"]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(os_arch)
        .collect();
    platforms.sort();
    assert_eq!(
        platforms,
        [
            "darwin/amd64",
            "darwin/arm64",
            "linux/amd64",
            "linux/arm64",
            "windows/amd64"
        ]
    );
    for p in m["spec"]["platforms"].as_array().unwrap() {
        let uri = p["uri"].as_str().unwrap();
        assert!(
            uri.contains(&format!("kubectl-bluegreen_{tag}_")),
            "archives are named by Rust target triple: {uri}"
        );
    }
}

/// What `scripts/package --all` builds on this machine, in the manifest's order, with
/// krew's platform for each; darwin is left to the release workflow (README, "Releases").
const BUILT_HERE: [(&str, &str); 3] = [
    ("x86_64-unknown-linux-musl", "linux/amd64"),
    ("aarch64-unknown-linux-musl", "linux/arm64"),
    ("x86_64-pc-windows-gnu", "windows/amd64"),
];

fn committed_manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(root().join("krew-manifest.yaml"))
        .expect("krew-manifest.yaml at the top level (scripts/package --all writes it)");
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("krew-manifest.yaml is not YAML: {e}"))
}

#[test]
fn the_committed_manifest_passes_krews_rules_and_agrees_with_the_template() {
    let m = committed_manifest();
    // krew-index would hold it as bluegreen.yaml; `krew install --manifest` takes any name.
    validate(&m, "bluegreen.yaml").unwrap();
    let tag = format!("v{}", crate_version());
    assert_eq!(
        m["spec"]["version"],
        tag.as_str(),
        "the version of Cargo.toml"
    );
    let template = rendered_template();
    assert_eq!(m["metadata"], template["metadata"]);
    for field in [
        "version",
        "homepage",
        "shortDescription",
        "description",
        "caveats",
    ] {
        assert_eq!(m["spec"][field], template["spec"][field], "spec.{field}");
    }
    let platforms = m["spec"]["platforms"].as_array().unwrap();
    assert_eq!(
        platforms.iter().map(os_arch).collect::<Vec<_>>(),
        BUILT_HERE.map(|(_, p)| p.to_string()),
        "one entry per archive built here"
    );
    for (p, (target, _)) in platforms.iter().zip(BUILT_HERE) {
        let ext = if target.contains("windows") {
            "zip"
        } else {
            "tar.gz"
        };
        assert_eq!(
            p["uri"].as_str().unwrap(),
            format!(
                "https://github.com/kubectl-bluegreen/kubectl-bluegreen/releases/download/{tag}/kubectl-bluegreen_{tag}_{target}.{ext}"
            )
        );
        // The release bot's entry for the same platform names the same archive, so the
        // checksum committed here is the one krew-index will get for it.
        let bot = template["spec"]["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| os_arch(t) == os_arch(p))
            .unwrap_or_else(|| panic!("the template has no {}", os_arch(p)));
        for field in ["selector", "uri", "bin", "files"] {
            assert_eq!(p[field], bot[field], "{} {field}", os_arch(p));
        }
    }
}

/// The committed checksums are of this commit's archives: rebuilds the linux/amd64 one
/// as `scripts/package --all` does (a release build with zig, ~6 minutes on 2 cores, so
/// `.ci/run` runs it after the suite: `cargo test --test cli -- --ignored krew::`), then
/// installs it from the committed manifest as krew would.
#[test]
#[ignore = "a release build; .ci/run runs it"]
fn the_committed_manifest_holds_this_commits_archive_and_it_installs_like_krew() {
    let kubectl = crate::kubectl().expect("kubectl on the PATH");
    let m = committed_manifest();
    let (target, platform) = BUILT_HERE[0];
    assert_eq!(
        (std::env::consts::OS, std::env::consts::ARCH),
        ("linux", "x86_64"),
        "the archive this test rebuilds runs here"
    );
    let dist = tempfile::tempdir().unwrap();
    // Its own target directory: the `cargo test` running this holds the default one.
    let target_dir = Path::new(env!("CARGO_BIN_EXE_kubectl-bluegreen"))
        .ancestors()
        .nth(2)
        .unwrap()
        .join("release-archives");
    let out = std::process::Command::new(root().join("scripts/package"))
        .arg(target)
        .env("DIST", dist.path())
        .env("CARGO_TARGET_DIR", &target_dir)
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .status()
        .unwrap();
    assert!(out.success(), "scripts/package {target}");
    let p = m["spec"]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| os_arch(p) == platform)
        .unwrap();
    let archive = archive_named_by(dist.path(), p);
    assert_eq!(
        sha256_hex(&archive),
        p["sha256"].as_str().unwrap(),
        "krew-manifest.yaml is stale: run scripts/package --all and commit it"
    );
    install_like_krew(&kubectl, &m, p, &archive);
}

/// Where a platform entry's archive is in `dist`: the last segment of its uri.
fn archive_named_by(dist: &Path, platform: &serde_json::Value) -> PathBuf {
    dist.join(
        platform["uri"]
            .as_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap(),
    )
}

fn sha256_hex(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn the_packaged_archive_installs_like_krew_and_runs() {
    let Some(kubectl) = crate::kubectl() else {
        return;
    };
    let dist = tempfile::tempdir().unwrap();
    // Packages the binary this test run built: the archive's layout, checksum and
    // manifest are what is tested, and a second build of the binary would only cost time.
    let out = std::process::Command::new(root().join("scripts/package"))
        .env("BIN", env!("CARGO_BIN_EXE_kubectl-bluegreen"))
        .env("DIST", dist.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest_path = dist.path().join("bluegreen.yaml");
    let m: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    validate(&m, "bluegreen.yaml").unwrap();
    assert_eq!(m["spec"]["version"], format!("v{}", crate_version()));
    let p = &m["spec"]["platforms"][0];
    let archive = archive_named_by(dist.path(), p);
    assert_eq!(
        sha256_hex(&archive),
        p["sha256"].as_str().unwrap(),
        "krew checks the sha256 of the archive"
    );
    // Entries that install cleanly anywhere: no directory entry, programs 0755,
    // documents 0644, root-owned, sorted, a fixed mtime.
    let listing = std::process::Command::new("tar")
        .args(["-tvzf"])
        .arg(&archive)
        .arg("--numeric-owner")
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    let entries: Vec<(String, String, String)> = listing
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[0].into(), f[1].into(), f[f.len() - 1].into())
        })
        .collect();
    assert_eq!(
        entries,
        [
            ("-rw-r--r--", "0/0", "LICENSE"),
            ("-rwxr-xr-x", "0/0", "kubectl-bluegreen"),
            ("-rwxr-xr-x", "0/0", "kubectl_complete-bluegreen"),
        ]
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())),
        "{listing}"
    );
    assert!(
        listing.lines().all(|l| l.contains("1980-01-01")),
        "{listing}"
    );
    // Reproducible: packaging the same binary again gives the same bytes.
    let again = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(root().join("scripts/package"))
        .env("BIN", env!("CARGO_BIN_EXE_kubectl-bluegreen"))
        .env("DIST", again.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        sha256_hex(&again.path().join(archive.file_name().unwrap())),
        sha256_hex(&archive),
        "the same binary packs into the same archive"
    );

    install_like_krew(&kubectl, &m, p, &archive);
}

/// What `kubectl krew install --manifest … --archive …` does with one platform entry:
/// check the archive's sha256, unpack it into krew's store, link `bin` into krew's bin
/// directory on the PATH; then `kubectl plugin list` must find it and
/// `kubectl bluegreen version --client` must run.
fn install_like_krew(kubectl: &Path, m: &serde_json::Value, p: &serde_json::Value, archive: &Path) {
    assert_eq!(
        sha256_hex(archive),
        p["sha256"].as_str().unwrap(),
        "krew checks the sha256 of the archive"
    );
    let krew_root = tempfile::tempdir().unwrap();
    let store = krew_root
        .path()
        .join("store/bluegreen")
        .join(m["spec"]["version"].as_str().unwrap());
    std::fs::create_dir_all(&store).unwrap();
    assert!(
        std::process::Command::new("tar")
            .arg("-xzf")
            .arg(archive)
            .arg("-C")
            .arg(&store)
            .status()
            .unwrap()
            .success()
    );
    let bin = p["bin"].as_str().unwrap();
    assert!(store.join(bin).exists(), "bin {bin} is in the archive");
    assert!(store.join("LICENSE").exists(), "LICENSE is in the archive");
    assert!(store.join("kubectl_complete-bluegreen").exists());
    let bin_dir = krew_root.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(store.join(bin), bin_dir.join("kubectl-bluegreen")).unwrap();
    let path = format!("{}:{}", bin_dir.display(), "/usr/bin:/bin");
    let kubectl_dir = kubectl
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let path = if kubectl_dir.is_empty() {
        path
    } else {
        format!("{path}:{kubectl_dir}")
    };
    let list = std::process::Command::new(kubectl)
        .args(["plugin", "list"])
        .env("PATH", &path)
        .env("HOME", krew_root.path())
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains(&format!("{}/kubectl-bluegreen", bin_dir.display())),
        "kubectl plugin list: {listed}{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let v = std::process::Command::new(kubectl)
        .args(["bluegreen", "version", "--client"])
        .env("PATH", &path)
        .env("HOME", krew_root.path())
        .output()
        .unwrap();
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    assert!(String::from_utf8_lossy(&v.stdout).starts_with(&format!(
        "Client Version: kubectl-bluegreen v{}",
        crate_version()
    )));
}

#[test]
fn the_release_workflow_is_valid_yaml_building_all_five_targets() {
    let wf: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root().join(".github/workflows/release.yml")).unwrap(),
    )
    .unwrap();
    let targets: Vec<&str> = wf["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets.len(), 5);
    assert!(
        targets
            .iter()
            .filter(|t| t.contains("linux"))
            .all(|t| t.ends_with("-musl")),
        "static Linux binaries"
    );
}
