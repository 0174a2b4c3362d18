//! What mutating commands print: the plan (`--dry-run=client`), the summary line of a run
//! or a server dry run, the result document (`-o json|yaml`), and the `-l` results table.

use super::{Format, document, table};
use crate::apply::StepResult;
use crate::error::{Error, Reason, Result};
use crate::plan::{Action, Outcome, Plan, Step};
use crate::request::DryRun;
use serde::Serialize;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultDoc<'a> {
    api_version: &'static str,
    kind: &'static str,
    dry_run: &'static str,
    #[serde(flatten)]
    plan: &'a Plan,
    results: &'a [StepResult],
}

/// The plan or result as a document for scripts.
pub fn result_document(
    plan: &Plan,
    dry_run: DryRun,
    results: &[StepResult],
    format: Format,
) -> Result<String> {
    document(
        &ResultDoc {
            api_version: super::API_VERSION,
            kind: if dry_run == DryRun::Client {
                "Plan"
            } else {
                "Result"
            },
            dry_run: dry_run.as_str(),
            plan,
            results,
        },
        format,
    )
}

fn arrow(plan: &Plan, sep: &str) -> String {
    match (&plan.from, &plan.to) {
        (Some(f), Some(t)) if f != t => format!("{sep}{f} → {t}"),
        (_, Some(t)) => format!("{sep}{t}"),
        _ => String::new(),
    }
}

/// The plan as `--dry-run=client` prints it: preconditions, then numbered steps with
/// their exact bodies.
pub fn plan_text(plan: &Plan) -> String {
    let arrow = match (&plan.from, &plan.to) {
        (Some(f), Some(t)) if f != t => format!(" ({f} → {t})"),
        (_, Some(t)) => format!(" ({t})"),
        _ => String::new(),
    };
    let mut out = format!(
        "Plan: {} {}{arrow} in namespace {}\n",
        plan.action, plan.app, plan.namespace
    );
    if plan.outcome == Outcome::Finish {
        out.push_str("Already switched: only the remaining steps are planned.\n");
    }
    out.push_str("Preconditions checked:\n");
    for p in &plan.preconditions {
        out.push_str(&format!("  ✓ {p}\n"));
    }
    out.push_str("Steps:\n");
    if plan.steps.is_empty() {
        out.push_str("  (none: nothing to do)\n");
    }
    for (i, s) in plan.steps.iter().enumerate() {
        out.push_str(&format!("  {}. {}\n", i + 1, s.describe()));
        let body = match s {
            Step::PatchDeployment { patch, .. }
            | Step::ScaleDeployment { patch, .. }
            | Step::PatchService { patch, .. } => Some(patch),
            Step::CreateDeployment { body, .. } => Some(body),
            _ => None,
        };
        if let Some(b) = body {
            out.push_str(&format!(
                "     {}\n",
                serde_json::to_string(b).unwrap_or_default()
            ));
        }
    }
    out
}

/// One line after a run; a server dry run lists what the server would store.
pub fn summary(plan: &Plan, dry_run: DryRun, results: &[StepResult]) -> String {
    let arrow = arrow(plan, ": ");
    if dry_run == DryRun::Server {
        let mut out = format!(
            "{} {}{arrow} (server dry run: nothing was changed)\n",
            plan.action, plan.app
        );
        for r in results {
            out.push_str(&format!("  {} — {}\n", r.step, r.status));
            if let Some(w) = &r.would_store {
                out.push_str(&format!(
                    "    would store: {}\n",
                    serde_json::to_string(w).unwrap_or_default()
                ));
            }
        }
        return out;
    }
    if plan.action == Action::Abort && plan.to.is_none() {
        let slot = plan.from.as_deref().unwrap_or("?");
        return match plan.outcome {
            Outcome::Finish => format!(
                "the preview slot {slot} of {} was already stopped; traffic did not move\n",
                plan.app
            ),
            Outcome::Change => format!(
                "stopped the preview slot {slot} of {}; traffic did not move\n",
                plan.app
            ),
        };
    }
    let verb = match (plan.action, plan.outcome) {
        (a, Outcome::Finish) => format!(
            "{a} of {} was already done; finished the remaining steps",
            plan.app
        ),
        (Action::Promote, _) => format!("promoted {}", plan.app),
        (Action::Abort, _) if plan.to.is_none() => {
            return format!(
                "stopped the preview slot{} of {}; traffic did not move\n",
                plan.from
                    .as_deref()
                    .map(|c| format!(" {c}"))
                    .unwrap_or_default(),
                plan.app
            );
        }
        (Action::Abort, _) => format!("aborted {}", plan.app),
        (Action::SetImage, _)
            if !plan
                .steps
                .iter()
                .any(|s| matches!(s, Step::WaitRolledOut { .. })) =>
        {
            format!(
                "new image(s) set on the preview slot of {} (not waited for: `kubectl bluegreen wait {} --for=preview-ready`)",
                plan.app, plan.app
            )
        }
        (Action::SetImage, _) => format!(
            "new image(s) rolled out on the preview slot of {}",
            plan.app
        ),
        (a, _) => format!("{a} {}", plan.app),
    };
    let kept = results
        .iter()
        .any(|r| r.status.starts_with("Ctrl-C: the old slot is kept"));
    let tail = if kept {
        "; Ctrl-C during the countdown: the old slot is kept (`kubectl bluegreen abort` switches back to it at once)"
    } else {
        ""
    };
    format!("{verb}{arrow}{tail}\n")
}

/// How one app of a `-l` run ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppResult {
    pub app: String,
    pub exit_code: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    pub message: String,
}

impl AppResult {
    pub fn of(app: &str, outcome: &Result<String>) -> AppResult {
        match outcome {
            Ok(text) => AppResult {
                app: app.to_string(),
                exit_code: 0,
                reason: None,
                message: text.lines().next().unwrap_or("ok").to_string(),
            },
            Err(e) => AppResult {
                app: app.to_string(),
                exit_code: e.exit_code(),
                reason: Some(e.reason()),
                message: e.to_string(),
            },
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultList<'a> {
    api_version: &'static str,
    kind: &'static str,
    items: &'a [AppResult],
}

/// The `-l` summary: a table, or a `ResultList` document with `-o json|yaml`.
pub fn selected(results: &[AppResult], format: Option<Format>) -> Result<String> {
    if let Some(f) = format {
        return document(
            &ResultList {
                api_version: super::API_VERSION,
                kind: "ResultList",
                items: results,
            },
            f,
        );
    }
    let rows: Vec<Vec<String>> = results
        .iter()
        .map(|r| {
            vec![
                r.app.clone(),
                if r.exit_code == 0 {
                    "ok".into()
                } else {
                    format!("failed (exit {})", r.exit_code)
                },
                r.reason
                    .map(|x| format!("{x:?}"))
                    .unwrap_or_else(|| "-".into()),
                r.message.clone(),
            ]
        })
        .collect();
    Ok(format!(
        "\n{}",
        table(&["APP", "RESULT", "REASON", "MESSAGE"], &rows)
    ))
}

/// The error a `-l` run ends with: the worst exit code of its apps.
pub fn selected_error(results: &[AppResult]) -> Option<Error> {
    let worst = results.iter().map(|r| r.exit_code).max().unwrap_or(0);
    (worst != 0).then(|| Error::Worst {
        code: worst,
        message: format!(
            "{} of {} apps failed",
            results.iter().filter(|r| r.exit_code != 0).count(),
            results.len()
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_image(steps: Vec<Step>) -> Plan {
        Plan {
            action: Action::SetImage,
            app: "shop".into(),
            namespace: "default".into(),
            outcome: Outcome::Change,
            from: Some("green".into()),
            to: Some("green".into()),
            preconditions: vec![],
            steps,
        }
    }

    #[test]
    fn set_image_says_rolled_out_only_when_it_waited() {
        let wait = Step::WaitRolledOut {
            deployment: "shop-green".into(),
        };
        assert_eq!(
            summary(&set_image(vec![wait]), DryRun::None, &[]),
            "new image(s) rolled out on the preview slot of shop: green\n"
        );
        let text = summary(&set_image(vec![]), DryRun::None, &[]);
        assert!(text.contains("not waited for"), "{text}");
        assert!(!text.contains("rolled out"), "{text}");
    }
}
