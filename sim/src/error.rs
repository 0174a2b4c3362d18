//! API errors as the real API server sends them: a `Status` object with the upstream
//! `reason`, `code`, `message` and `details`, so clients (kube-rs, kubectl) react the same.

use crate::resources::ResourceType;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.reason, self.message)
    }
}

impl std::error::Error for ApiError {}

pub type ApiResult<T> = Result<T, ApiError>;

fn details(rt: &ResourceType, name: &str) -> Value {
    let mut d = json!({"name": name, "kind": rt.plural});
    if !rt.group.is_empty() {
        d["group"] = json!(rt.group);
    }
    d
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn not_found(rt: &ResourceType, name: &str) -> Self {
        ApiError {
            details: Some(details(rt, name)),
            ..Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", rt.group_resource()),
            )
        }
    }

    pub fn namespace_not_found(ns: &str) -> Self {
        ApiError {
            details: Some(json!({"name": ns, "kind": "namespaces"})),
            ..Self::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
        }
    }

    pub fn already_exists(rt: &ResourceType, name: &str) -> Self {
        ApiError {
            details: Some(details(rt, name)),
            ..Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", rt.group_resource()),
            )
        }
    }

    pub fn conflict(rt: &ResourceType, name: &str) -> Self {
        ApiError {
            details: Some(details(rt, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    rt.group_resource()
                ),
            )
        }
    }

    pub fn precondition_failed(rt: &ResourceType, name: &str, what: &str) -> Self {
        ApiError {
            details: Some(details(rt, name)),
            ..Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": {what}",
                    rt.group_resource()
                ),
            )
        }
    }

    /// 422 Invalid with one cause per `(field, cause reason, message)`, shaped like
    /// upstream's `field.ErrorList` aggregate.
    pub fn invalid(rt: &ResourceType, name: &str, causes: &[(String, &str, String)]) -> Self {
        Self::invalid_kind(rt.group, rt.kind, name, causes)
    }

    /// `NewInvalid` for a group and kind that need not be a served resource (`ListOptions`
    /// in `meta.k8s.io`).
    pub fn invalid_kind(
        group: &str,
        kind_name: &str,
        name: &str,
        causes: &[(String, &str, String)],
    ) -> Self {
        let kind = if group.is_empty() {
            kind_name.to_string()
        } else {
            format!("{kind_name}.{group}")
        };
        let text: Vec<String> = causes.iter().map(|(f, _, m)| format!("{f}: {m}")).collect();
        let message = if text.len() == 1 {
            format!("{kind} \"{name}\" is invalid: {}", text[0])
        } else {
            format!("{kind} \"{name}\" is invalid: [{}]", text.join(", "))
        };
        let mut d = json!({
            "name": name,
            "kind": kind_name,
            "causes": causes.iter().map(|(f, r, m)| json!({"reason": r, "message": m, "field": f})).collect::<Vec<_>>(),
        });
        if !group.is_empty() {
            d["group"] = json!(group);
        }
        ApiError {
            details: Some(d),
            ..Self::new(422, "Invalid", message)
        }
    }

    /// What a patch whose result does not decode into the type gets: upstream's
    /// `NewInvalid(schema.GroupKind{}, "", field.Invalid(field.NewPath("patch"), ...))`,
    /// whose empty kind and name make the message start with ` "" is invalid`.
    pub fn invalid_patch(value: &str, detail: &str) -> Self {
        let body = format!("Invalid value: {value:?}: {detail}");
        ApiError {
            details: Some(
                json!({"causes": [{"reason": "FieldValueInvalid", "message": body, "field": "patch"}]}),
            ),
            ..Self::new(422, "Invalid", format!(" \"\" is invalid: patch: {body}"))
        }
    }

    /// A JSON patch that does not apply (a failed `test`, a missing path): upstream answers
    /// `NewGenericServerResponse(422, ...)`, the generic text with empty details.
    pub fn json_patch_not_applied() -> Self {
        ApiError {
            details: Some(json!({})),
            ..Self::new(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request",
            )
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed() -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    /// Upstream's RBAC denial text, e.g. `services "x" is forbidden: User "u" cannot patch
    /// resource "services" in API group "" in the namespace "default"`.
    pub fn forbidden(
        rt: &ResourceType,
        name: &str,
        user: &str,
        verb: &str,
        subresource: Option<&str>,
        namespace: Option<&str>,
    ) -> Self {
        let res = match subresource {
            Some(s) => format!("{}/{s}", rt.plural),
            None => rt.plural.to_string(),
        };
        let who = if name.is_empty() {
            rt.group_resource()
        } else {
            format!("{} \"{name}\"", rt.group_resource())
        };
        let scope = match namespace {
            Some(ns) => format!(" in the namespace \"{ns}\""),
            None => " at the cluster scope".to_string(),
        };
        ApiError {
            details: Some(details(rt, name)),
            ..Self::new(
                403,
                "Forbidden",
                format!(
                    "{who} is forbidden: User \"{user}\" cannot {verb} resource \"{res}\" in API group \"{}\"{scope}",
                    rt.group
                ),
            )
        }
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    pub fn unsupported_media_type(ct: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {ct})"
            ),
        )
    }

    /// The reason upstream uses for an injected status code.
    pub fn for_code(code: u16) -> Self {
        match code {
            400 => Self::bad_request("injected fault"),
            409 => Self::new(
                409,
                "Conflict",
                "injected conflict: the object has been modified; please apply your changes to the latest version and try again",
            ),
            429 => Self::new(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
            ),
            500 => Self::internal("Internal error occurred: injected fault"),
            503 => Self::new(
                503,
                "ServiceUnavailable",
                "The server is currently unable to handle the request",
            ),
            504 => Self::new(
                504,
                "Timeout",
                "Timeout: request did not complete within the allowed duration",
            ),
            c => Self::new(c, "Unknown", format!("injected fault {c}")),
        }
    }

    pub fn to_status(&self) -> Value {
        let mut s = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            s["details"] = d.clone();
        }
        if self.code == 429 {
            s["details"] = json!({"retryAfterSeconds": 1});
        }
        s
    }
}
