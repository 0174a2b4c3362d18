//! From a snapshot to apps (design §2), as a pure function: which Services are apps,
//! their slots, which slot is active, what really serves each Service (EndpointSlices
//! whose ready endpoints' pods belong to a slot's ReplicaSets), the recorded history,
//! and the problems the model must name rather than hide. Rendering and, later,
//! planning read only this.

use crate::error::{Error, Reason, Result};
use crate::facts::{self, PodOwners, Rollout};
use crate::observe::Snapshot;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Service;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

pub const DEFAULT_COLOR_LABEL: &str = "bluegreen.io/color";
pub const APP_LABEL: &str = "bluegreen.io/app";
pub const COLOR_LABEL_ANNOTATION: &str = "bluegreen.io/color-label";
pub const PREVIEW_ANNOTATION: &str = "bluegreen.io/preview-service";
pub const PREVIOUS_COLOR_ANNOTATION: &str = "bluegreen.io/previous-color";
pub const HISTORY_ANNOTATION: &str = "bluegreen.io/history";
pub(crate) const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What a mutating command does; also the `action` of its history entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Promote,
    Abort,
    SetImage,
    Init,
    /// An abort before any promote: the preview stopped, traffic never moved.
    AbortPreview,
    /// Another manager put a switch back (recorded when a settle period catches it).
    Reverted,
    /// A bake found a regression and switched back on its own.
    AutoAbort,
    /// An action this version does not know (written by a newer one).
    #[serde(other)]
    Unknown,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Promote => "promote",
            Action::Abort => "abort",
            Action::SetImage => "set-image",
            Action::Init => "init",
            Action::AbortPreview => "abort-preview",
            Action::Reverted => "reverted",
            Action::AutoAbort => "auto-abort",
            Action::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Active,
    Preview,
    /// A third (or later) slot: neither live nor the preview.
    Idle,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Active => "active",
            Role::Preview => "preview",
            Role::Idle => "idle",
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ContainerImage {
    pub name: String,
    pub image: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub init: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Ready endpoints of one Service that point at one slot's pods.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Serving {
    pub service: String,
    pub ready_endpoints: u32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Slot {
    pub color: String,
    pub role: Role,
    pub deployment: String,
    pub images: Vec<ContainerImage>,
    /// `spec.replicas`.
    pub desired: i32,
    pub ready: i32,
    pub updated: i32,
    pub available: i32,
    pub unavailable: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revision: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    pub generation: i64,
    pub observed_generation: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_template_hash: Option<String>,
    /// Fully rolled out at its latest generation: every replica updated, ready and
    /// available, none unavailable.
    pub rolled_out: bool,
    pub conditions: Vec<Condition>,
    pub serving: Vec<Serving>,
    /// Live: one of the app's active Services selects it or routes endpoints to it.
    /// Nothing may modify or scale down a live slot (rule 2).
    pub live: bool,
    /// Why a pod of its current template cannot become ready (crash loop, image pull…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cannot_start: Option<String>,
    /// When its current version (pod template) was first rolled out.
    #[serde(skip)]
    pub template_since: Option<jiff::Timestamp>,
    #[serde(skip)]
    pub resource_version: String,
    /// The Deployment's own pod selector (to find its pods).
    #[serde(skip)]
    pub selector: BTreeMap<String, String>,
}

/// One recorded switch (design §2), as kept in the `bluegreen.io/history` annotation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub action: Action,
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
    #[serde(default)]
    pub images: Vec<String>,
    #[serde(default)]
    pub at: String,
    #[serde(default)]
    pub by: String,
    /// Revisions (`deployment.kubernetes.io/revision`) of the two slots at the switch:
    /// how a re-run tells "nothing changed since" from "a new version was deployed".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_revision: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_revision: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppService {
    pub name: String,
    /// The color value its selector names (None if it lacks the color key).
    pub color: Option<String>,
    /// What guarded writes to it are planned from.
    #[serde(skip)]
    pub resource_version: String,
    #[serde(skip)]
    pub uid: String,
    /// Its ports, for checks through the API server's Service proxy.
    #[serde(skip)]
    pub ports: Vec<ServicePort>,
    /// Who last wrote its selector, and when (the newest `managedFields` entry owning it).
    #[serde(skip)]
    pub selector_manager: Option<String>,
    #[serde(skip)]
    pub selector_changed_at: Option<jiff::Timestamp>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PreviewService {
    pub name: String,
    pub color: Option<String>,
    pub exists: bool,
    #[serde(skip)]
    pub resource_version: String,
    /// Its ports, for checks through the API server's Service proxy.
    #[serde(skip)]
    pub ports: Vec<ServicePort>,
}

/// A Service port: its name and number, and the pods' port it maps to.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: i32,
    /// `targetPort` (a number or a container port's name).
    pub target: String,
}

pub fn ports_of(svc: &Service) -> Vec<ServicePort> {
    svc.spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .into_iter()
        .flatten()
        .map(|p| ServicePort {
            name: p.name.clone(),
            port: p.port,
            target: match &p.target_port {
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => {
                    n.to_string()
                }
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s)) => {
                    s.clone()
                }
                None => p.port.to_string(),
            },
        })
        .collect()
}

/// A bake in progress, as recorded on the app's Service when it started (so that a
/// re-run after a crash resumes it).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BakeRecord {
    /// The color being baked (live since the promote).
    pub color: String,
    /// When the bake ends (RFC 3339).
    pub until: String,
    /// The checks repeated during the bake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<CheckSpec>,
}

/// HTTP checks sent through the API server's proxy (`promote --check`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CheckSpec {
    pub paths: Vec<String>,
    /// The Service port (name or number); default: the Service's first port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<String>,
    /// The status every answer must have.
    pub status: u16,
    /// Consecutive successes each target needs.
    pub successes: u32,
    pub interval_ms: u64,
}

/// The annotation on the app's Service that records a bake in progress.
pub const BAKE_ANNOTATION: &str = "bluegreen.io/bake";

/// A HorizontalPodAutoscaler whose `scaleTargetRef` is one of the app's slots.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Hpa {
    pub name: String,
    /// The Deployment it scales, and that slot's color.
    pub target: String,
    pub color: String,
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub current_replicas: i32,
    pub desired_replicas: i32,
    #[serde(skip)]
    pub resource_version: String,
}

/// A GitOps tool or package manager that owns the app's Service and may revert what a
/// release changes.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    /// `ArgoCD`, `Flux` or `Helm`.
    pub tool: &'static str,
    /// What gave it away: a label, an annotation or a `managedFields` manager.
    pub evidence: String,
    /// The fields a release changes under it.
    pub fields: Vec<String>,
}

/// The annotation on the app's Service that names the HPA the tool moves between slots.
pub const HPA_ANNOTATION: &str = "bluegreen.io/hpa";

/// A problem the model names instead of hiding; `reason` is stable for scripts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct App {
    pub name: String,
    pub namespace: String,
    pub color_label: String,
    /// The app's active Services, by name; the first holds the state annotations.
    pub services: Vec<AppService>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview_service: Option<PreviewService>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_color: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_color: Option<String>,
    pub slots: Vec<Slot>,
    #[serde(skip)]
    pub history: Vec<HistoryEntry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_switch: Option<HistoryEntry>,
    /// HPAs targeting a slot (normally one, following the live slot).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hpas: Vec<Hpa>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    /// A bake in progress (`promote --bake`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bake: Option<BakeRecord>,
    /// Pods of each slot's current template, by slot color (checks prove each one).
    #[serde(skip)]
    pub pods: BTreeMap<String, Vec<String>>,
    pub problems: Vec<Problem>,
}

impl App {
    pub fn state_service(&self) -> &str {
        &self.services[0].name
    }

    pub fn slot(&self, role: Role) -> Option<&Slot> {
        self.slots.iter().find(|s| s.role == role)
    }
}

/// A valid label value (empty, or ≤ 63 alphanumerics, `-`, `_`, `.`, alphanumeric at both ends).
pub fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

fn labels(
    md: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> BTreeMap<String, String> {
    md.labels.clone().unwrap_or_default()
}

pub(crate) fn annotation<'a>(svc: &'a Service, key: &str) -> Option<&'a str> {
    svc.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

pub(crate) fn color_label_of(svc: &Service) -> String {
    annotation(svc, COLOR_LABEL_ANNOTATION)
        .unwrap_or(DEFAULT_COLOR_LABEL)
        .to_string()
}

pub(crate) fn selector_of(svc: &Service) -> BTreeMap<String, String> {
    svc.spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default()
}

fn ns_of(md: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    md.namespace.clone().unwrap_or_default()
}

fn name_of(md: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    md.name.clone().unwrap_or_default()
}

/// Who, besides us, declares the app's Services and may put their selectors back: Argo
/// CD, Flux or Helm, from their labels, annotations and `managedFields` managers.
pub fn gitops_owner(services: &[&Service]) -> Option<Owner> {
    let fields = vec![
        "Service spec.selector (the color)".to_string(),
        "Service annotations bluegreen.io/*".to_string(),
        "preview Deployment image and replicas".to_string(),
    ];
    for svc in services {
        let labels = labels(&svc.metadata);
        let ann = svc.metadata.annotations.clone().unwrap_or_default();
        let managers: Vec<String> = svc
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .filter_map(|m| m.manager.clone())
            .collect();
        let name = name_of(&svc.metadata);
        let found = |tool: &'static str, evidence: String| Owner {
            tool,
            evidence: format!("Service {name}: {evidence}"),
            fields: fields.clone(),
        };
        if let Some(m) = managers.iter().find(|m| m.as_str() == "argocd-controller") {
            return Some(found("ArgoCD", format!("managedFields manager {m}")));
        }
        if ann.contains_key("argocd.argoproj.io/tracking-id") {
            return Some(found(
                "ArgoCD",
                "annotation argocd.argoproj.io/tracking-id".into(),
            ));
        }
        for key in [
            "kustomize.toolkit.fluxcd.io/name",
            "helm.toolkit.fluxcd.io/name",
        ] {
            if labels.contains_key(key) {
                return Some(found("Flux", format!("label {key}")));
            }
        }
        if let Some(m) = managers
            .iter()
            .find(|m| m.as_str() == "kustomize-controller" || m.as_str() == "helm-controller")
        {
            return Some(found("Flux", format!("managedFields manager {m}")));
        }
        let helm = labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str)
            == Some("Helm")
            || ann.contains_key("meta.helm.sh/release-name");
        if helm {
            return Some(found(
                "Helm",
                "label app.kubernetes.io/managed-by: Helm / annotation meta.helm.sh/release-name"
                    .into(),
            ));
        }
        if labels.contains_key("app.kubernetes.io/instance")
            && managers.iter().any(|m| m.starts_with("argocd"))
        {
            return Some(found(
                "ArgoCD",
                "tracking label app.kubernetes.io/instance".into(),
            ));
        }
    }
    None
}

/// Who last wrote a Service's selector, from its `managedFields`.
pub fn selector_manager(svc: &Service) -> Option<String> {
    selector_entry(svc).and_then(|m| m.manager.clone())
}

/// The newest `managedFields` entry that owns part of `spec.selector`.
fn selector_entry(
    svc: &Service,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry> {
    svc.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0.pointer("/f:spec/f:selector").is_some())
        })
        .max_by_key(|m| m.time.as_ref().map(|t| t.0))
}

/// Whether a Service is an app's active Service: its selector carries the color key.
pub(crate) fn is_app_service(svc: &Service) -> bool {
    selector_of(svc).contains_key(&color_label_of(svc))
}

pub fn app_name_of(svc: &Service) -> String {
    labels(&svc.metadata)
        .get(APP_LABEL)
        .cloned()
        .unwrap_or_else(|| name_of(&svc.metadata))
}

fn template_labels(d: &Deployment) -> BTreeMap<String, String> {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn images_of(d: &Deployment) -> Vec<ContainerImage> {
    let Some(pod) = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()) else {
        return Vec::new();
    };
    let init = pod.init_containers.iter().flatten().map(|c| (c, true));
    init.chain(pod.containers.iter().map(|c| (c, false)))
        .map(|(c, init)| ContainerImage {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            init,
        })
        .collect()
}

fn revision_of(md: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> Option<String> {
    md.annotations
        .as_ref()?
        .get("deployment.kubernetes.io/revision")
        .cloned()
}

fn slot_from(d: &Deployment, color: &str, replicasets: &[&ReplicaSet]) -> Slot {
    let spec = d.spec.as_ref();
    let rollout = Rollout::of(d);
    let conditions: Vec<Condition> = d
        .status
        .as_ref()
        .and_then(|st| st.conditions.as_ref())
        .into_iter()
        .flatten()
        .map(|c| Condition {
            type_: c.type_.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
        })
        .collect();
    let revision = revision_of(&d.metadata);
    let current_rs = replicasets
        .iter()
        .find(|rs| revision.is_some() && revision_of(&rs.metadata) == revision);
    let pod_template_hash =
        current_rs.and_then(|rs| labels(&rs.metadata).get("pod-template-hash").cloned());
    // When its current version was first rolled out: the ReplicaSet of that template.
    let template_since = current_rs
        .and_then(|rs| rs.metadata.creation_timestamp.as_ref())
        .map(|t| t.0);
    Slot {
        color: color.to_string(),
        role: Role::Idle,
        deployment: name_of(&d.metadata),
        images: images_of(d),
        desired: rollout.desired,
        ready: rollout.ready,
        updated: rollout.updated,
        available: rollout.available,
        unavailable: rollout.unavailable,
        revision,
        created: d
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
        generation: rollout.generation,
        observed_generation: rollout.observed_generation,
        pod_template_hash,
        rolled_out: rollout.is_complete(),
        conditions,
        serving: Vec::new(),
        live: false,
        cannot_start: None,
        template_since,
        resource_version: d.metadata.resource_version.clone().unwrap_or_default(),
        selector: spec
            .and_then(|s| s.selector.match_labels.clone())
            .unwrap_or_default(),
    }
}

/// The snapshot grouped once by namespace (and slices by Service), so that building
/// thousands of apps does not rescan every object for each app.
/// A Deployment with its pod-template labels, computed once.
type Labelled<'a> = (&'a Deployment, BTreeMap<String, String>);

struct Index<'a> {
    deployments: HashMap<String, Vec<Labelled<'a>>>,
    replicasets: HashMap<String, Vec<&'a ReplicaSet>>,
    slices: HashMap<(String, String), Vec<&'a k8s_openapi::api::discovery::v1::EndpointSlice>>,
    services: HashMap<(String, String), &'a Service>,
    pods: HashMap<String, Vec<&'a k8s_openapi::api::core::v1::Pod>>,
    hpas: HashMap<String, Vec<&'a k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler>>,
}

impl<'a> Index<'a> {
    fn new(snap: &'a Snapshot) -> Self {
        let mut ix = Index {
            deployments: HashMap::new(),
            replicasets: HashMap::new(),
            slices: HashMap::new(),
            services: HashMap::new(),
            pods: HashMap::new(),
            hpas: HashMap::new(),
        };
        for h in &snap.hpas {
            ix.hpas.entry(ns_of(&h.metadata)).or_default().push(h);
        }
        for p in &snap.pods {
            ix.pods.entry(ns_of(&p.metadata)).or_default().push(p);
        }
        for d in &snap.deployments {
            ix.deployments
                .entry(ns_of(&d.metadata))
                .or_default()
                .push((d, template_labels(d)));
        }
        for r in &snap.replicasets {
            ix.replicasets
                .entry(ns_of(&r.metadata))
                .or_default()
                .push(r);
        }
        for s in &snap.slices {
            if let Some(svc) = labels(&s.metadata).get(SERVICE_NAME_LABEL) {
                ix.slices
                    .entry((ns_of(&s.metadata), svc.clone()))
                    .or_default()
                    .push(s);
            }
        }
        for s in &snap.services {
            ix.services
                .insert((ns_of(&s.metadata), name_of(&s.metadata)), s);
        }
        ix
    }
}

/// Builds every app in the snapshot, sorted by namespace and name.
pub fn build(snap: &Snapshot) -> Vec<App> {
    let index = Index::new(snap);
    // Preview Services are named by an annotation on an app's Service; they are never apps.
    let previews: BTreeSet<(String, String)> = snap
        .services
        .iter()
        .filter_map(|s| {
            annotation(s, PREVIEW_ANNOTATION).map(|p| (ns_of(&s.metadata), p.to_string()))
        })
        .collect();
    let mut groups: BTreeMap<(String, String), Vec<&Service>> = BTreeMap::new();
    for svc in &snap.services {
        let key = (ns_of(&svc.metadata), name_of(&svc.metadata));
        if is_app_service(svc) && !previews.contains(&key) {
            groups
                .entry((key.0, app_name_of(svc)))
                .or_default()
                .push(svc);
        }
    }
    groups
        .into_iter()
        .map(|((ns, name), mut services)| {
            services.sort_by_key(|s| name_of(&s.metadata));
            build_app(&index, ns, name, &services)
        })
        .collect()
}

fn build_app(ix: &Index, namespace: String, name: String, services: &[&Service]) -> App {
    let state = services[0];
    let color_label = color_label_of(state);
    let mut problems = Vec::new();
    let mut base = selector_of(state);
    let active_color = base.remove(&color_label);
    let app_services: Vec<AppService> = services
        .iter()
        .map(|s| AppService {
            name: name_of(&s.metadata),
            color: selector_of(s).get(&color_label).cloned(),
            resource_version: s.metadata.resource_version.clone().unwrap_or_default(),
            uid: s.metadata.uid.clone().unwrap_or_default(),
            ports: ports_of(s),
            selector_manager: selector_entry(s).and_then(|m| m.manager.clone()),
            // When it was switched: a selector written with the Service itself was not.
            selector_changed_at: selector_entry(s)
                .and_then(|m| m.time.as_ref().map(|t| t.0))
                .filter(|at| {
                    s.metadata
                        .creation_timestamp
                        .as_ref()
                        .is_none_or(|c| at.as_second() > c.0.as_second())
                }),
        })
        .collect();
    if app_services.iter().any(|s| s.color != active_color) {
        let list: Vec<String> = app_services
            .iter()
            .map(|s| format!("{} → {}", s.name, s.color.as_deref().unwrap_or("(none)")))
            .collect();
        problems.push(Problem {
            reason: "PartiallySwitched",
            message: format!(
                "partially switched: {}; `kubectl bluegreen promote {name}` finishes the switch, `kubectl bluegreen abort {name}` reverts it",
                list.join(", ")
            ),
        });
    }

    // Slots: Deployments whose pod labels match the rest of the selector and carry the color.
    let mut by_color: BTreeMap<String, Vec<&Deployment>> = BTreeMap::new();
    for (d, tl) in ix.deployments.get(&namespace).into_iter().flatten() {
        if let Some(color) = tl.get(&color_label)
            && base.iter().all(|(k, v)| tl.get(k) == Some(v))
        {
            by_color.entry(color.clone()).or_default().push(d);
        }
    }
    let rs_in_ns: Vec<&ReplicaSet> = ix.replicasets.get(&namespace).cloned().unwrap_or_default();
    let mut slots: Vec<Slot> = Vec::new();
    for (color, deployments) in &by_color {
        if deployments.len() > 1 {
            let names: Vec<String> = deployments.iter().map(|d| name_of(&d.metadata)).collect();
            problems.push(Problem {
                reason: "DuplicateColor",
                message: format!("{} Deployments have {color_label}={color}: {}; each color must be one Deployment", names.len(), names.join(", ")),
            });
        }
        let d = deployments[0];
        let dname = name_of(&d.metadata);
        let owned: Vec<&ReplicaSet> = rs_in_ns
            .iter()
            .copied()
            .filter(|r| facts::owner_deployment(r) == Some(dname.as_str()))
            .collect();
        slots.push(slot_from(d, color, &owned));
    }

    // The preview Service may be named on any of the app's active Services.
    let named: BTreeSet<&str> = services
        .iter()
        .filter_map(|s| annotation(s, PREVIEW_ANNOTATION))
        .collect();
    if named.len() > 1 {
        problems.push(Problem {
            reason: "PreviewServiceConflict",
            message: format!(
                "the app's Services name different preview Services ({}): keep one {PREVIEW_ANNOTATION} annotation",
                named.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        });
    }
    let preview_service = named.first().map(|p| {
        let found = ix
            .services
            .get(&(namespace.clone(), p.to_string()))
            .copied();
        PreviewService {
            name: p.to_string(),
            color: found.and_then(|s| selector_of(s).get(&color_label).cloned()),
            exists: found.is_some(),
            resource_version: found
                .and_then(|s| s.metadata.resource_version.clone())
                .unwrap_or_default(),
            ports: found.map(ports_of).unwrap_or_default(),
        }
    });
    if let Some(p) = preview_service.as_ref().filter(|p| !p.exists) {
        problems.push(Problem {
            reason: "PreviewServiceMissing",
            message: format!(
                "preview Service {} (named by the {PREVIEW_ANNOTATION} annotation) does not exist",
                p.name
            ),
        });
    }

    // Roles: the live color is active; the preview Service's color, or the only other
    // slot, is the preview; any further slot is idle.
    let preview_color = preview_service.as_ref().and_then(|p| p.color.clone());
    let others = slots
        .iter()
        .filter(|s| Some(&s.color) != active_color.as_ref())
        .count();
    for s in &mut slots {
        s.role = if Some(&s.color) == active_color.as_ref() {
            Role::Active
        } else if Some(&s.color) == preview_color.as_ref() || others == 1 {
            Role::Preview
        } else {
            Role::Idle
        };
    }
    slots.sort_by(|a, b| a.role.cmp(&b.role).then(a.color.cmp(&b.color)));

    // What really serves each Service: ready endpoints whose pods belong to a slot.
    let rs_owner: BTreeMap<&str, &str> = rs_in_ns
        .iter()
        .filter_map(|r| Some((r.metadata.name.as_deref()?, facts::owner_deployment(r)?)))
        .collect();
    let pod_owners = PodOwners::new(rs_owner.keys().copied());
    let mut served: Vec<String> = app_services.iter().map(|s| s.name.clone()).collect();
    if let Some(p) = preview_service.as_ref().filter(|p| p.exists) {
        served.push(p.name.clone());
    }
    for svc in &served {
        let mut outside = 0u32;
        let mut counts: BTreeMap<String, u32> = BTreeMap::new();
        let slices = ix
            .slices
            .get(&(namespace.clone(), svc.clone()))
            .into_iter()
            .flatten();
        for ep in slices.flat_map(|s| s.endpoints.iter()) {
            // A nil `ready` means ready (EndpointConditions API).
            if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
                continue;
            }
            let deployment = ep
                .target_ref
                .as_ref()
                .filter(|t| t.kind.as_deref() == Some("Pod"))
                .and_then(|t| t.name.as_deref())
                .and_then(|pod| pod_owners.owner(pod))
                .and_then(|rs| rs_owner.get(rs));
            match deployment.filter(|d| slots.iter().any(|s| s.deployment == **d)) {
                Some(d) => *counts.entry(d.to_string()).or_default() += 1,
                None => outside += ep.addresses.len().max(1) as u32,
            }
        }
        for s in &mut slots {
            if let Some(n) = counts.get(&s.deployment) {
                s.serving.push(Serving {
                    service: svc.clone(),
                    ready_endpoints: *n,
                });
            }
        }
        if outside > 0 {
            problems.push(Problem {
                reason: "ForeignEndpoints",
                message: format!("Service {svc} also routes to {outside} ready endpoint(s) outside the app's slots"),
            });
        }
    }

    // Live means live: selected by any active Service, or serving any of them.
    for s in &mut slots {
        s.live = app_services
            .iter()
            .any(|a| a.color.as_deref() == Some(s.color.as_str()))
            || s.serving
                .iter()
                .any(|v| app_services.iter().any(|a| a.name == v.service));
    }
    // Pods of a slot's current template that cannot start (waiting will not help).
    let mut slot_pods: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pod in ix.pods.get(&namespace).into_iter().flatten() {
        let owner = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .and_then(|o| rs_owner.get(o.name.as_str()));
        let hash = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash"));
        let current = slots.iter_mut().find(|s| {
            owner.is_some_and(|d| **d == s.deployment) && s.pod_template_hash.as_ref() == hash
        });
        if let Some(slot) = &current
            && pod.metadata.deletion_timestamp.is_none()
        {
            slot_pods
                .entry(slot.color.clone())
                .or_default()
                .push(name_of(&pod.metadata));
        }
        if let Some(slot) = current
            && slot.cannot_start.is_none()
        {
            slot.cannot_start = facts::pod_cannot_start(pod)
                .map(|why| format!("pod {} {why}", pod.metadata.name.as_deref().unwrap_or("")));
        }
    }
    for s in &slots {
        if let Some(why) = &s.cannot_start
            && s.role != Role::Active
        {
            problems.push(Problem {
                reason: "PreviewCannotStart",
                message: format!("{} ({}) cannot become ready: {why}", s.deployment, s.color),
            });
        }
        if !s.selector.contains_key(&color_label) {
            problems.push(Problem {
                reason: "SelectorLacksColor",
                message: format!(
                    "Deployment {} selects its pods without {color_label}, so it may adopt the other slot's pods: add {color_label}={} to its spec.selector (a new Deployment, since the selector is immutable)",
                    s.deployment, s.color
                ),
            });
        }
    }
    if let Some(live) = slots.iter().find(|s| s.role == Role::Active)
        && app_services.iter().all(|a| a.color == active_color)
    {
        // Only where EndpointSlices exist: without any, nothing tells what serves.
        for a in app_services
            .iter()
            .filter(|a| ix.slices.contains_key(&(namespace.clone(), a.name.clone())))
        {
            let serving = live
                .serving
                .iter()
                .find(|v| v.service == a.name)
                .map_or(0, |v| v.ready_endpoints);
            if serving == 0 {
                problems.push(Problem {
                    reason: "LiveNotServing",
                    message: format!(
                        "Service {} has no ready endpoints on the live slot {} ({}): its traffic is failing",
                        a.name, live.color, live.deployment
                    ),
                });
            }
        }
    }

    match slots.len() {
        0 => problems.push(Problem {
            reason: "NoSlots",
            message: format!(
                "no Deployment has pod labels {} with a {color_label} label: create the blue and green Deployments",
                if base.is_empty() { "(any)".to_string() } else { base.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",") }
            ),
        }),
        1 => problems.push(Problem {
            reason: "OneSlot",
            message: format!("only one slot ({}): `kubectl bluegreen set-image` creates the other", slots[0].color),
        }),
        2 => {}
        n => problems.push(Problem {
            reason: "TooManySlots",
            message: format!(
                "{n} slots ({}): a blue/green app has exactly two; remove or relabel the extra Deployments",
                slots.iter().map(|s| s.color.as_str()).collect::<Vec<_>>().join(", ")
            ),
        }),
    }
    if let Some(c) = &active_color
        && !slots.is_empty()
        && !slots.iter().any(|s| &s.color == c)
    {
        problems.push(Problem {
            reason: "ColorMatchesNoSlot",
            message: format!("Service {} selects {color_label}={c}, but no slot has that color: it serves no slot", name_of(&state.metadata)),
        });
    }
    for s in &slots {
        if let Some(c) = s
            .conditions
            .iter()
            .find(|c| c.reason.as_deref() == Some("ProgressDeadlineExceeded"))
        {
            problems.push(Problem {
                reason: "ProgressDeadlineExceeded",
                message: format!(
                    "{} ({}): {}",
                    s.deployment,
                    s.color,
                    c.message
                        .as_deref()
                        .unwrap_or("rollout exceeded its progress deadline")
                ),
            });
        }
    }

    // HPAs that scale one of the slots.
    let hpas: Vec<Hpa> = ix
        .hpas
        .get(&namespace)
        .into_iter()
        .flatten()
        .filter_map(|h| {
            let spec = h.spec.as_ref()?;
            let target = &spec.scale_target_ref;
            let slot = slots
                .iter()
                .find(|s| target.kind == "Deployment" && target.name == s.deployment)?;
            let status = h.status.as_ref();
            Some(Hpa {
                name: name_of(&h.metadata),
                target: slot.deployment.clone(),
                color: slot.color.clone(),
                min_replicas: spec.min_replicas.unwrap_or(1),
                max_replicas: spec.max_replicas,
                current_replicas: status.and_then(|s| s.current_replicas).unwrap_or(0),
                desired_replicas: status.map(|s| s.desired_replicas).unwrap_or(0),
                resource_version: h.metadata.resource_version.clone().unwrap_or_default(),
            })
        })
        .collect();
    if let Some(live) = slots.iter().find(|s| s.role == Role::Active) {
        let on_live = hpas.iter().any(|h| h.color == live.color);
        if !on_live && let Some(h) = hpas.iter().find(|h| h.color != live.color) {
            problems.push(Problem {
                reason: "HpaOnPreviewOnly",
                message: format!(
                    "HPA {} scales the preview slot {} but none scales the live slot {}: a load spike finds a fixed replica count (a promote moves it to the slot it makes live)",
                    h.name, h.target, live.deployment
                ),
            });
        }
        if hpas.is_empty()
            && let Some(name) = annotation(state, HPA_ANNOTATION)
        {
            problems.push(Problem {
                reason: "HpaMissing",
                message: format!(
                    "HPA {name} (recorded by an earlier release) scales neither slot now: the live slot {} is not autoscaled",
                    live.deployment
                ),
            });
        }
        if let Some(h) = hpas.iter().find(|h| h.color == live.color)
            && let Some(preview) = slots.iter().find(|s| s.role == Role::Preview)
            && preview.desired > 0
            && preview.desired < h.min_replicas
        {
            problems.push(Problem {
                reason: "HpaBoundsUnmet",
                message: format!(
                    "the preview slot {} runs {} replica(s), below HPA {}'s minimum of {}: a promote would hand the HPA a slot below its bounds (set-image sizes it to the live slot's count)",
                    preview.deployment, preview.desired, h.name, h.min_replicas
                ),
            });
        }
    }
    let owner = gitops_owner(services);

    let history = match annotation(state, HISTORY_ANNOTATION) {
        None => Vec::new(),
        Some(raw) => serde_json::from_str::<Vec<HistoryEntry>>(raw).unwrap_or_else(|e| {
            problems.push(Problem {
                reason: "BadHistory",
                message: format!(
                    "the {HISTORY_ANNOTATION} annotation on Service {} is not a valid history: {e}",
                    name_of(&state.metadata)
                ),
            });
            Vec::new()
        }),
    };
    App {
        name,
        namespace,
        color_label,
        services: app_services,
        preview_service,
        active_color,
        previous_color: annotation(state, PREVIOUS_COLOR_ANNOTATION).map(String::from),
        slots,
        last_switch: history.first().cloned(),
        history,
        hpas,
        owner,
        bake: annotation(state, BAKE_ANNOTATION).and_then(|b| serde_json::from_str(b).ok()),
        pods: slot_pods,
        problems,
    }
}

/// Picks one app by name, or says precisely why there is none (exit 3).
pub fn find_app(snap: &Snapshot, namespace: &str, name: &str) -> Result<App> {
    let apps = build_in(snap, namespace);
    if let Some(app) = apps.into_iter().find(|a| a.name == name) {
        return Ok(app);
    }
    let svc = snap.services.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(namespace)
            && s.metadata.name.as_deref() == Some(name)
    });
    let preview_of = snap.services.iter().find(|s| {
        s.metadata.namespace.as_deref() == Some(namespace)
            && s.metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(PREVIEW_ANNOTATION))
                .map(String::as_str)
                == Some(name)
    });
    let reason = if svc.is_some() || preview_of.is_some() {
        Reason::NotAnApp
    } else {
        Reason::AppNotFound
    };
    Err(Error::NotFound(
        reason,
        match (svc, preview_of) {
            (_, Some(owner)) => format!(
                "{name} is the preview Service of app {}: run `kubectl bluegreen status {}`",
                app_name_of(owner),
                app_name_of(owner)
            ),
            (Some(_), None) => format!(
                "Service {name} in namespace {namespace} has no {} in its selector, so it is not a blue/green app (for an existing label such as `version`: kubectl annotate service {name} {}=version)",
                DEFAULT_COLOR_LABEL, COLOR_LABEL_ANNOTATION
            ),
            (None, None) => format!(
                "app {name:?} not found in namespace {namespace}: no Service named {name} or labelled {}={name} selects a color label (`kubectl bluegreen list -A` shows the apps)",
                APP_LABEL
            ),
        },
    ))
}

/// The apps of one namespace of the snapshot.
fn build_in(snap: &Snapshot, namespace: &str) -> Vec<App> {
    let mut apps = build(snap);
    apps.retain(|a| a.namespace == namespace);
    apps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{deploy, slice, snap, svc};

    fn reasons(app: &App) -> Vec<&'static str> {
        app.problems.iter().map(|p| p.reason).collect()
    }

    const PREVIEW: &str = "  annotations: {bluegreen.io/preview-service: shop-preview}\n";

    #[test]
    fn two_slots_with_roles_serving_and_no_problems() {
        let yaml = [
            svc("shop", "blue", PREVIEW),
            svc("shop-preview", "green", ""),
            deploy("shop-blue", "blue", 3, 3),
            deploy("shop-green", "green", 3, 3),
            slice(
                "shop",
                &[
                    ("shop-blue-abc12-aaaaa", true),
                    ("shop-blue-abc12-bbbbb", true),
                    ("shop-blue-abc12-ccccc", false),
                ],
            ),
            slice("shop-preview", &[("shop-green-abc12-ddddd", true)]),
        ]
        .concat();
        let apps = build(&snap(&yaml));
        assert_eq!(apps.len(), 1, "the preview Service is never an app");
        let app = &apps[0];
        assert_eq!(app.name, "shop");
        assert_eq!(app.active_color.as_deref(), Some("blue"));
        assert!(app.problems.is_empty(), "{:?}", app.problems);
        let blue = app.slot(Role::Active).unwrap();
        assert_eq!(
            (blue.color.as_str(), blue.deployment.as_str()),
            ("blue", "shop-blue")
        );
        assert!(blue.rolled_out);
        assert_eq!(blue.pod_template_hash.as_deref(), Some("abc12"));
        assert_eq!(
            blue.serving,
            vec![Serving {
                service: "shop".into(),
                ready_endpoints: 2
            }],
            "not-ready endpoints do not serve"
        );
        let green = app.slot(Role::Preview).unwrap();
        assert_eq!(
            green.serving,
            vec![Serving {
                service: "shop-preview".into(),
                ready_endpoints: 1
            }]
        );
        assert_eq!(
            app.preview_service.as_ref().unwrap().color.as_deref(),
            Some("green")
        );
    }

    #[test]
    fn custom_color_label_and_app_name_from_label() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata:\n  name: demo-service\n  labels: {bluegreen.io/app: demo}\n  annotations: {bluegreen.io/color-label: version}\nspec:\n  selector: {app: demo, version: v1}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: demo-dp-v1}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: demo, version: v1}}\n  template:\n    metadata: {labels: {app: demo, version: v1}}\n    spec: {containers: [{name: demo, image: demo:v1}]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: demo-dp-v2}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: demo, version: v2}}\n  template:\n    metadata: {labels: {app: demo, version: v2}}\n    spec: {containers: [{name: demo, image: demo:v2}]}\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: other}\nspec:\n  selector: {matchLabels: {app: other, version: v1}}\n  template:\n    metadata: {labels: {app: other, version: v1}}\n    spec: {containers: [{name: x, image: x}]}\n";
        let apps = build(&snap(yaml));
        assert_eq!(apps.len(), 1);
        let app = &apps[0];
        assert_eq!(
            (app.name.as_str(), app.color_label.as_str()),
            ("demo", "version")
        );
        let colors: Vec<(&str, Role)> = app
            .slots
            .iter()
            .map(|s| (s.color.as_str(), s.role))
            .collect();
        assert_eq!(colors, [("v1", Role::Active), ("v2", Role::Preview)]);
        assert!(app.problems.is_empty(), "{:?}", app.problems);
    }

    #[test]
    fn services_without_the_color_key_are_not_apps() {
        let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: plain}\nspec:\n  selector: {app: shop}\n";
        assert!(build(&snap(yaml)).is_empty());
    }

    #[test]
    fn no_slots_one_slot_three_slots() {
        let none = build(&snap(&svc("shop", "blue", "")));
        assert_eq!(reasons(&none[0]), ["NoSlots"]);
        assert!(
            none[0].problems[0].message.contains("app=shop"),
            "{}",
            none[0].problems[0].message
        );

        let one = build(&snap(
            &[svc("shop", "blue", ""), deploy("shop-blue", "blue", 3, 3)].concat(),
        ));
        assert_eq!(reasons(&one[0]), ["OneSlot"]);

        let three = build(&snap(
            &[
                svc("shop", "blue", ""),
                deploy("a", "blue", 1, 1),
                deploy("b", "green", 1, 1),
                deploy("c", "red", 1, 1),
            ]
            .concat(),
        ));
        assert_eq!(reasons(&three[0]), ["TooManySlots"]);
        let roles: Vec<Role> = three[0].slots.iter().map(|s| s.role).collect();
        assert_eq!(roles, [Role::Active, Role::Idle, Role::Idle]);
    }

    #[test]
    fn a_color_that_matches_no_slot() {
        let app = &build(&snap(
            &[
                svc("shop", "purple", ""),
                deploy("a", "blue", 1, 1),
                deploy("b", "green", 1, 1),
            ]
            .concat(),
        ))[0];
        assert_eq!(reasons(app), ["ColorMatchesNoSlot"]);
        assert!(app.slot(Role::Active).is_none());
    }

    #[test]
    fn progress_deadline_exceeded_is_named() {
        let failing = deploy("shop-green", "green", 3, 1).replace(
            "status: {",
            "status: {conditions: [{type: Progressing, status: \"False\", reason: ProgressDeadlineExceeded, message: 'ReplicaSet \"shop-green-abc12\" has timed out progressing.'}], ",
        );
        let app = &build(&snap(
            &[
                svc("shop", "blue", ""),
                deploy("shop-blue", "blue", 3, 3),
                failing,
            ]
            .concat(),
        ))[0];
        assert_eq!(reasons(app), ["ProgressDeadlineExceeded"]);
        assert!(!app.slot(Role::Preview).unwrap().rolled_out);
    }

    #[test]
    fn services_of_one_app_disagreeing_on_the_color() {
        let label = "  labels: {bluegreen.io/app: shop}\n";
        let yaml = [
            svc("shop", "blue", label),
            svc("shop-grpc", "green", label),
            deploy("a", "blue", 1, 1),
            deploy("b", "green", 1, 1),
        ]
        .concat();
        let apps = build(&snap(&yaml));
        assert_eq!(apps.len(), 1, "one app fronted by two Services");
        let app = &apps[0];
        assert_eq!(
            app.services
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            ["shop", "shop-grpc"]
        );
        assert_eq!(
            app.active_color.as_deref(),
            Some("blue"),
            "the first Service by name holds the state"
        );
        assert_eq!(reasons(app), ["PartiallySwitched"]);
        assert_eq!(
            app.problems[0].message,
            "partially switched: shop → blue, shop-grpc → green; `kubectl bluegreen promote shop` finishes the switch, `kubectl bluegreen abort shop` reverts it"
        );
        let live: Vec<(&str, bool)> = app
            .slots
            .iter()
            .map(|s| (s.color.as_str(), s.live))
            .collect();
        assert_eq!(
            live,
            [("blue", true), ("green", true)],
            "a slot any Service selects is live"
        );
    }

    #[test]
    fn missing_preview_service_foreign_endpoints_and_history() {
        let history = r#"  annotations: {bluegreen.io/preview-service: gone, bluegreen.io/previous-color: green, bluegreen.io/history: '[{"action":"promote","from":"green","to":"blue","images":["web:blue"],"at":"2026-11-21T22:00:00Z","by":"alice"}]'}
"#;
        let yaml = [
            svc("shop", "blue", history),
            deploy("shop-blue", "blue", 1, 1),
            deploy("shop-green", "green", 1, 1),
            slice(
                "shop",
                &[("shop-blue-abc12-aaaaa", true), ("hand-made-pod", true)],
            ),
        ]
        .concat();
        let app = &build(&snap(&yaml))[0];
        assert_eq!(reasons(app), ["PreviewServiceMissing", "ForeignEndpoints"]);
        assert_eq!(app.previous_color.as_deref(), Some("green"));
        let last = app.last_switch.as_ref().unwrap();
        assert_eq!(
            (
                last.action.as_str(),
                last.from.as_str(),
                last.to.as_str(),
                last.by.as_str()
            ),
            ("promote", "green", "blue", "alice")
        );
    }

    #[test]
    fn a_broken_history_annotation_is_a_problem_not_a_crash() {
        let yaml = [
            svc(
                "shop",
                "blue",
                "  annotations: {bluegreen.io/history: 'not json'}\n",
            ),
            deploy("a", "blue", 1, 1),
            deploy("b", "green", 1, 1),
        ]
        .concat();
        let app = &build(&snap(&yaml))[0];
        assert_eq!(reasons(app), ["BadHistory"]);
    }

    fn hpa(name: &str, target: &str, min: i32) -> String {
        format!(
            "---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: {{name: {name}}}\nspec:\n  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: {target}}}\n  minReplicas: {min}\n  maxReplicas: 10\nstatus: {{currentReplicas: 3, desiredReplicas: 3}}\n"
        )
    }

    #[test]
    fn hpas_of_the_slots_and_their_problems() {
        let base = [
            svc("shop", "blue", ""),
            deploy("shop-blue", "blue", 3, 3),
            deploy("shop-green", "green", 2, 2),
        ]
        .concat();
        let app = &build(&snap(&format!("{base}{}", hpa("shop", "shop-blue", 2))))[0];
        assert_eq!(app.hpas.len(), 1);
        assert_eq!(
            (app.hpas[0].color.as_str(), app.hpas[0].min_replicas),
            ("blue", 2)
        );
        assert!(app.problems.is_empty(), "{:?}", app.problems);

        let app = &build(&snap(&format!("{base}{}", hpa("shop", "shop-green", 2))))[0];
        assert_eq!(reasons(app), ["HpaOnPreviewOnly"]);

        let app = &build(&snap(&format!("{base}{}", hpa("shop", "shop-blue", 3))))[0];
        assert_eq!(
            reasons(app),
            ["HpaBoundsUnmet"],
            "green's 2 < the HPA's minimum 3"
        );

        let recorded = [
            svc("shop", "blue", "  annotations: {bluegreen.io/hpa: shop}\n"),
            deploy("shop-blue", "blue", 3, 3),
            deploy("shop-green", "green", 2, 2),
            hpa("shop", "elsewhere", 2),
        ]
        .concat();
        assert_eq!(reasons(&build(&snap(&recorded))[0]), ["HpaMissing"]);
    }

    #[test]
    fn gitops_owners_are_recognised_from_labels_annotations_and_managers() {
        let with = |meta: &str| {
            let yaml = [
                svc("shop", "blue", meta),
                deploy("a", "blue", 1, 1),
                deploy("b", "green", 1, 1),
            ]
            .concat();
            build(&snap(&yaml)).remove(0).owner.map(|o| o.tool)
        };
        assert_eq!(with(""), None);
        assert_eq!(
            with("  labels: {kustomize.toolkit.fluxcd.io/name: apps}\n"),
            Some("Flux")
        );
        assert_eq!(
            with("  labels: {app.kubernetes.io/managed-by: Helm}\n"),
            Some("Helm")
        );
        assert_eq!(
            with("  annotations: {argocd.argoproj.io/tracking-id: 'shop:/Service:default/shop'}\n"),
            Some("ArgoCD")
        );
        assert_eq!(
            with(
                "  managedFields: [{manager: argocd-controller, operation: Update, fieldsType: FieldsV1, fieldsV1: {}}]\n"
            ),
            Some("ArgoCD")
        );
        assert_eq!(
            with("  labels: {app.kubernetes.io/instance: shop}\n"),
            None,
            "the instance label alone is Helm's convention too: not enough"
        );
    }
}
