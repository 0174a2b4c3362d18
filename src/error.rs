//! The plugin's errors, their stable reasons, and the one place they map to exit codes
//! (design §4): 0 ok · 1 unexpected · 2 usage · 3 not found · 4 precondition not met ·
//! 5 conflict or lock held · 6 timed out waiting · 7 switched but endpoints did not
//! converge · 8 partially switched · 9 reverted after the switch · 130 interrupted.

use std::process::ExitCode;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad flags or arguments (clap reports its own with the same code).
    #[error("{0}")]
    Usage(String),
    /// An app, object, context or kubeconfig that does not exist.
    #[error("{1}")]
    NotFound(Reason, String),
    /// The cluster is not in a state the command can act on: a refusal.
    #[error("{1}")]
    Precondition(Reason, String),
    /// Someone else changed the object, or holds the app's Lease.
    #[error("{1}")]
    Conflict(Reason, String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    NotConverged(String),
    /// A regression during `promote --bake` (the pipeline reverts it).
    #[error("{0}")]
    BakeFailed(String),
    /// The switch was put back by another manager (or reverted automatically): exit 9.
    #[error("{0}")]
    Reverted(String),
    /// A failure after traffic moved: where each Service points and what finishes it.
    #[error("{0}")]
    PartiallySwitched(String),
    /// A failed API call: `action` says what we were doing ("list deployments in shop").
    #[error("failed to {action}: {}", describe_kube(.source))]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot load kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
    /// The API server stopped answering (during a wait).
    #[error("{0}")]
    Lost(String),
    /// Ctrl-C: what was done and how to finish.
    #[error("{0}")]
    Interrupted(String),
    /// Several apps were acted on; the worst exit code of them.
    #[error("{message}")]
    Worst { code: u8, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The API server's own message for API errors; the transport's for the rest.
pub fn describe_kube(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => other.to_string(),
    }
}

impl Error {
    pub fn kube(action: impl Into<String>, source: kube::Error) -> Self {
        Error::Kube {
            action: action.into(),
            source,
        }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) => 2,
            Error::NotFound(..) | Error::Kubeconfig(_) => 3,
            Error::Precondition(..) => 4,
            Error::Conflict(..) => 5,
            Error::Timeout(_) => 6,
            Error::NotConverged(_) => 7,
            Error::PartiallySwitched(_) => 8,
            Error::Reverted(_) | Error::BakeFailed(_) => 9,
            Error::Kube {
                source: kube::Error::Api(s),
                ..
            } => match s.code {
                404 => 3,
                401 | 403 => 4,
                409 => 5,
                _ => 1,
            },
            Error::Kube { .. } | Error::Io(_) | Error::Other(_) | Error::Lost(_) => 1,
            Error::Interrupted(_) => 130,
            Error::Worst { code, .. } => *code,
        }
    }

    /// The stable, machine-readable reason (for `-o json` results and scripts).
    pub fn reason(&self) -> Reason {
        match self {
            Error::Usage(_) => Reason::InvalidArgument,
            Error::NotFound(r, _) | Error::Precondition(r, _) | Error::Conflict(r, _) => *r,
            Error::Timeout(_) => Reason::TimedOut,
            Error::NotConverged(_) => Reason::EndpointsNotConverged,
            Error::PartiallySwitched(_) => Reason::PartiallySwitched,
            Error::Reverted(_) | Error::BakeFailed(_) => Reason::Reverted,
            Error::Kube {
                source: kube::Error::Api(s),
                ..
            } => match s.code {
                401 => Reason::Unauthorized,
                403 => Reason::Forbidden,
                404 => Reason::NotFound,
                409 => Reason::Conflict,
                _ => Reason::ApiError,
            },
            Error::Kube { .. } => Reason::ApiError,
            Error::Kubeconfig(_) => Reason::KubeconfigNotFound,
            Error::Io(_) | Error::Other(_) => Reason::Internal,
            Error::Lost(_) => Reason::ConnectionLost,
            Error::Interrupted(_) => Reason::Interrupted,
            Error::Worst { .. } => Reason::SomeFailed,
        }
    }

    /// A hint printed after the error line, for the failures users can fix themselves.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            Error::Kube {
                source: kube::Error::Api(s),
                ..
            } if s.code == 403 => Some(
                "ask your cluster admin for RBAC access to these resources (kubectl auth can-i --list)",
            ),
            Error::Kube {
                source: kube::Error::Api(s),
                ..
            } if s.code == 401 => {
                Some("your credentials were rejected: log in again or check the kubeconfig user")
            }
            _ => None,
        }
    }

    /// Why no connection to the API server could be made (name lookup, TCP, proxy, TLS),
    /// as its innermost cause says it; `None` for a failure after connecting.
    pub fn connect_failure(&self) -> Option<String> {
        let Error::Kube { source, .. } = self else {
            return None;
        };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
        let mut connecting = false;
        let mut innermost = None;
        while let Some(e) = cause {
            connecting |= e
                .downcast_ref::<hyper_util::client::legacy::Error>()
                .is_some_and(|e| e.is_connect());
            innermost = Some(e);
            cause = e.source();
        }
        innermost.filter(|_| connecting).map(|e| e.to_string())
    }

    /// Whether the API server refused the TCP connection (nothing listens there).
    pub fn is_connection_refused(&self) -> bool {
        let Error::Kube { source, .. } = self else {
            return false;
        };
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(source);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::ConnectionRefused
            {
                return true;
            }
            if e.to_string().contains("Connection refused") {
                return true;
            }
            cause = e.source();
        }
        false
    }

    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub fn to_exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit_code())
    }
}

/// Why a command stopped, as a stable name scripts can branch on (`-o json` carries it;
/// the message beside it is for people and may change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Reason {
    // usage (exit 2)
    InvalidArgument,
    // not found (exit 3)
    NotFound,
    AppNotFound,
    NamespaceNotFound,
    NotAnApp,
    ServiceNotFound,
    NoSuchSlot,
    NoSuchContainer,
    KubeconfigNotFound,
    // refusals (exit 4)
    TooManySlots,
    NoLiveColor,
    ColorMatchesNoSlot,
    ServicesDisagree,
    NoPreviewSlot,
    NoLiveSlot,
    PreviewNotReady,
    PreviewCannotStart,
    PreviewEmpty,
    PreviewTooSmall,
    PreviousVersion,
    SlotIsLive,
    PartiallySwitched,
    ForeignEndpoints,
    SelectorLacksColor,
    NothingToAbort,
    NameTaken,
    NothingToAdopt,
    AmbiguousAdoption,
    Unauthorized,
    Forbidden,
    // conflicts (exit 5)
    Conflict,
    ChangedMeanwhile,
    LeaseHeld,
    LeaseLost,
    GitOpsOwned,
    CheckFailed,
    Reverted,
    // waits and the rest
    TimedOut,
    EndpointsNotConverged,
    ApiError,
    ConnectionLost,
    Interrupted,
    SomeFailed,
    Internal,
}
