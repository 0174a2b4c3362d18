//! Status conditions as upstream controllers set them: one per type, its
//! `lastTransitionTime` kept while the status stays the same.

use crate::store::now_rfc3339;
use serde_json::{Value, json};

/// Sets condition `type_` in `conds` (keeping its transition time if the status holds).
pub(super) fn set(conds: &mut Vec<Value>, type_: &str, status: bool, reason: &str, message: &str) {
    let status = if status { "True" } else { "False" };
    let since = conds
        .iter()
        .find(|c| c["type"] == type_ && c["status"] == status)
        .map(|c| c["lastTransitionTime"].clone())
        .unwrap_or_else(|| json!(now_rfc3339()));
    conds.retain(|c| c["type"] != type_);
    conds.push(json!({"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": since}));
}
