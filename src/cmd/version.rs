//! `kubectl bluegreen version [--client] [-o json|yaml]`.

use crate::connect::Connection;
use crate::error::Result;
use crate::render::{self, Format};
use serde::Serialize;

/// The Kubernetes API version the binary is compiled against (k8s-openapi's feature):
/// the oldest cluster version supported.
pub const API_FEATURE: &str = "v1_33";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientVersion {
    pub version: &'static str,
    pub git_commit: &'static str,
    pub kube: &'static str,
    pub kubernetes_api: &'static str,
    pub platform: String,
}

pub fn client() -> ClientVersion {
    ClientVersion {
        version: concat!("v", env!("CARGO_PKG_VERSION")),
        git_commit: env!("BLUEGREEN_GIT_COMMIT"),
        kube: env!("BLUEGREEN_KUBE_VERSION"),
        kubernetes_api: API_FEATURE,
        platform: format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Versions {
    client_version: ClientVersion,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_version: Option<serde_json::Value>,
}

pub fn client_line() -> String {
    let c = client();
    format!(
        "Client Version: kubectl-bluegreen {} (commit {}, kube {}, Kubernetes API {}, {})\n",
        c.version, c.git_commit, c.kube, c.kubernetes_api, c.platform
    )
}

/// Prints the client version, and the server's when connected.
pub async fn run(
    conn: Option<&Connection>,
    out: &mut dyn std::io::Write,
    output: Option<Format>,
) -> Result<()> {
    let server = match conn {
        Some(conn) => Some(
            conn.client
                .apiserver_version()
                .await
                .map_err(|e| crate::error::Error::kube("read the server version", e))?,
        ),
        None => None,
    };
    let text = match output {
        Some(f) => render::document(
            &Versions {
                client_version: client(),
                server_version: server
                    .as_ref()
                    .map(|s| serde_json::to_value(s).unwrap_or_default()),
            },
            f,
        )?,
        None => {
            let mut t = client_line();
            if let Some(s) = &server {
                t.push_str(&format!("Server Version: {}\n", s.git_version));
            }
            t
        }
    };
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}
