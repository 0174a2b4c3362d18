//! `status`: a header naming where and what, one row per slot, problems as warnings;
//! and the `AppStatus` document for `-o json|yaml`.

use super::{Format, Style, age, document, short_image, table};
use crate::cli::Output;
use crate::error::Result;
use crate::model::{App, HistoryEntry, Role};
use serde::Serialize;

/// The versioned `-o json|yaml` document of one app (documented in the README).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppStatus<'a> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub context: &'a str,
    #[serde(flatten)]
    pub app: &'a App,
}

impl<'a> AppStatus<'a> {
    pub fn new(app: &'a App, context: &'a str) -> Self {
        AppStatus {
            api_version: super::API_VERSION,
            kind: "AppStatus",
            context,
            app,
        }
    }
}

/// Several apps (`status -l`, `list`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppStatusList<'a> {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub items: Vec<AppStatus<'a>>,
}

impl<'a> AppStatusList<'a> {
    pub fn new(apps: &'a [App], context: &'a str) -> Self {
        AppStatusList {
            api_version: super::API_VERSION,
            kind: "AppStatusList",
            items: apps.iter().map(|a| AppStatus::new(a, context)).collect(),
        }
    }
}

fn past_tense(action: &str) -> String {
    match action {
        "promote" => "promoted".into(),
        "abort" => "aborted".into(),
        "init" => "adopted".into(),
        "abort-preview" => "preview aborted".into(),
        "reverted" => "reverted".into(),
        "auto-abort" => "reverted automatically".into(),
        other => other.to_string(),
    }
}

/// `green ← blue promoted 2h ago by alice`.
pub fn describe_switch(h: &HistoryEntry, now: jiff::Timestamp) -> String {
    if h.from.is_empty() {
        let by = if h.by.is_empty() {
            String::new()
        } else {
            format!(" by {}", h.by)
        };
        return format!(
            "{} {} {} ago{by}",
            h.to,
            past_tense(h.action.as_str()),
            age(Some(&h.at), now)
        );
    }
    let mut s = format!(
        "{} ← {} {} {} ago",
        h.to,
        h.from,
        past_tense(h.action.as_str()),
        age(Some(&h.at), now)
    );
    if !h.by.is_empty() {
        s.push_str(&format!(" by {}", h.by));
    }
    s
}

pub fn render(app: &App, context: &str, now: jiff::Timestamp, wide: bool, style: Style) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Context: {context}   Namespace: {}   App: {}\n",
        app.namespace,
        style.bold(&app.name)
    ));
    let color = |c: &Option<String>| c.clone().unwrap_or_else(|| "?".into());
    let mut services: Vec<String> = app
        .services
        .iter()
        .map(|s| format!("{} (active → {})", s.name, color(&s.color)))
        .collect();
    if let Some(p) = &app.preview_service {
        let state = if p.exists {
            color(&p.color)
        } else {
            "missing".into()
        };
        services.push(format!("{} (preview → {state})", p.name));
    }
    out.push_str(&format!("Services: {}\n", services.join(", ")));
    match &app.last_switch {
        Some(h) => out.push_str(&format!("Last switch: {}\n", describe_switch(h, now))),
        None => out.push_str("Last switch: none recorded\n"),
    }
    for h in &app.hpas {
        out.push_str(&format!(
            "HPA: {} → {} ({}), min {} max {}, {} current / {} desired\n",
            h.name,
            h.target,
            h.color,
            h.min_replicas,
            h.max_replicas,
            h.current_replicas,
            h.desired_replicas
        ));
    }
    if let Some(o) = &app.owner {
        out.push_str(&format!(
            "Managed by: {} ({}); a release changes under it: {}\n",
            o.tool,
            o.evidence,
            o.fields.join(", ")
        ));
    }
    out.push('\n');
    if app.slots.is_empty() {
        out.push_str("No slots found.\n");
    } else {
        let mut header = vec![
            "COLOR",
            "ROLE",
            "DEPLOYMENT",
            "IMAGES",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "REV",
            "AGE",
            "SERVING",
        ];
        if wide {
            header.extend(["HASH", "GENERATION", "CONDITIONS"]);
        }
        let rows: Vec<Vec<String>> = app
            .slots
            .iter()
            .map(|s| {
                let images: Vec<String> = s
                    .images
                    .iter()
                    .map(|c| {
                        let img = if wide {
                            c.image.as_str()
                        } else {
                            short_image(&c.image)
                        };
                        if c.init {
                            format!("init:{img}")
                        } else {
                            img.to_string()
                        }
                    })
                    .collect();
                let serving: Vec<String> = s
                    .serving
                    .iter()
                    .map(|v| format!("{} {}/{}", v.service, v.ready_endpoints, s.desired))
                    .collect();
                let role = match s.role {
                    Role::Active => style.good("active"),
                    r => r.as_str().to_string(),
                };
                let mut row = vec![
                    s.color.clone(),
                    role,
                    s.deployment.clone(),
                    images.join(", "),
                    format!("{}/{}", s.ready, s.desired),
                    s.updated.to_string(),
                    s.available.to_string(),
                    s.revision.clone().unwrap_or_else(|| "-".into()),
                    age(s.created.as_deref(), now),
                    if serving.is_empty() {
                        "-".into()
                    } else {
                        serving.join(", ")
                    },
                ];
                if wide {
                    let conds: Vec<String> = s
                        .conditions
                        .iter()
                        .map(|c| match &c.reason {
                            Some(r) => format!("{}={}/{r}", c.type_, c.status),
                            None => format!("{}={}", c.type_, c.status),
                        })
                        .collect();
                    row.push(s.pod_template_hash.clone().unwrap_or_else(|| "-".into()));
                    row.push(format!("{}/{}", s.generation, s.observed_generation));
                    row.push(if conds.is_empty() {
                        "-".into()
                    } else {
                        conds.join(",")
                    });
                }
                row
            })
            .collect();
        out.push_str(&table(&header, &rows));
    }
    if !app.problems.is_empty() {
        out.push('\n');
        for p in &app.problems {
            out.push_str(&format!("{} {}\n", style.warn("Warning:"), p.message));
        }
    }
    out
}

/// The whole rendering of `status` for these apps.
pub fn show(
    apps: &[App],
    context: &str,
    output: Output,
    now: jiff::Timestamp,
    style: Style,
) -> Result<String> {
    match output {
        Output::Json | Output::Yaml => {
            let format = if output == Output::Json {
                Format::Json
            } else {
                Format::Yaml
            };
            if apps.len() == 1 {
                document(&AppStatus::new(&apps[0], context), format)
            } else {
                document(&AppStatusList::new(apps, context), format)
            }
        }
        Output::Table | Output::Wide => Ok(apps
            .iter()
            .map(|a| render(a, context, now, output == Output::Wide, style))
            .collect::<Vec<_>>()
            .join("\n")),
    }
}
