//! Slim decoding for read-only views: each kind's wire type names only the fields the
//! model reads, so serde skips the rest of the JSON (managedFields, whole pod specs,
//! volumes, probes, the last-applied annotation) without allocating for it. The result is
//! then held in the k8s-openapi type with only those fields set, so that the model reads
//! one type whatever the detail.
//!
//! What "the model reads" is checked end to end (tests/cli/reads.rs): apps built from
//! slim objects must equal the apps built from whole ones, over many states of the sim.

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStatus, DeploymentStrategy, ReplicaSet, ReplicaSetSpec,
    ReplicaSetStatus,
};
use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, HorizontalPodAutoscalerStatus,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerStatus, Pod, PodSpec, PodStatus, PodTemplateSpec, Service, ServiceSpec,
    ServiceStatus,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    FieldsV1, LabelSelector, ManagedFieldsEntry, ObjectMeta, OwnerReference, Time,
};
use kube::api::{Api, ListParams};
use serde::Deserialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use std::collections::BTreeMap;

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// A kind the snapshot reads: its slim wire form, and what a whole object keeps.
pub trait Slim: Sized {
    type Wire: DeserializeOwned;
    fn from_wire(w: Self::Wire) -> Self;
    /// What a `Detail::Full` read drops anyway (nothing the write side reads).
    fn trim_full(&mut self) {}
}

#[derive(Deserialize, Default)]
struct WireListMeta {
    #[serde(rename = "continue")]
    continue_: Option<String>,
}

/// One page of a list, decoded slim as it arrives: the objects and the continue token.
pub async fn list<K>(
    client: &kube::Client,
    api: &Api<K>,
    params: &ListParams,
) -> kube::Result<(Vec<K>, Option<String>)>
where
    K: Slim + kube::Resource,
{
    let request = kube::core::Request::new(api.resource_url())
        .list(params)
        .map_err(kube::Error::BuildRequest)?;
    let body = client.request_stream(request).await?;
    let (items, meta) = super::stream::decode::<K::Wire, WireListMeta>(body).await?;
    Ok((
        items.into_iter().map(K::from_wire).collect(),
        meta.and_then(|m| m.continue_),
    ))
}

/// Object metadata as the model reads it; `M` is what is kept of `managedFields`
/// (nothing by default: serde skips it without allocating).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct Meta<M = IgnoredAny> {
    managed_fields: Option<M>,
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
}

impl<M> From<Meta<M>> for ObjectMeta {
    fn from(m: Meta<M>) -> ObjectMeta {
        ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            labels: m.labels,
            annotations: m.annotations.map(|mut a| {
                a.remove(LAST_APPLIED);
                a
            }),
            owner_references: m.owner_references,
            ..ObjectMeta::default()
        }
    }
}

fn lean_meta(m: &mut ObjectMeta) {
    m.managed_fields = None;
    if let Some(a) = m.annotations.as_mut() {
        a.remove(LAST_APPLIED);
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct WireContainer {
    name: String,
    image: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct WirePodSpec {
    containers: Vec<WireContainer>,
    init_containers: Option<Vec<WireContainer>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct WireTemplateMeta {
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct WireTemplate {
    metadata: Option<WireTemplateMeta>,
    spec: Option<WirePodSpec>,
}

fn container(c: WireContainer) -> Container {
    Container {
        name: c.name,
        image: c.image,
        ..Container::default()
    }
}

impl From<WireTemplate> for PodTemplateSpec {
    fn from(t: WireTemplate) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: t.metadata.map(|m| ObjectMeta {
                labels: m.labels,
                ..ObjectMeta::default()
            }),
            spec: t.spec.map(|s| PodSpec {
                containers: s.containers.into_iter().map(container).collect(),
                init_containers: s
                    .init_containers
                    .map(|cs| cs.into_iter().map(container).collect()),
                ..PodSpec::default()
            }),
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct WireDeploymentSpec {
    replicas: Option<i32>,
    selector: LabelSelector,
    template: WireTemplate,
    paused: Option<bool>,
    progress_deadline_seconds: Option<i32>,
    min_ready_seconds: Option<i32>,
    revision_history_limit: Option<i32>,
    strategy: Option<DeploymentStrategy>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct WireDeployment {
    metadata: Meta,
    spec: Option<WireDeploymentSpec>,
    status: Option<DeploymentStatus>,
}

impl Slim for Deployment {
    type Wire = WireDeployment;
    fn from_wire(w: WireDeployment) -> Deployment {
        Deployment {
            metadata: w.metadata.into(),
            spec: w.spec.map(|s| DeploymentSpec {
                replicas: s.replicas,
                selector: s.selector,
                template: s.template.into(),
                paused: s.paused,
                progress_deadline_seconds: s.progress_deadline_seconds,
                min_ready_seconds: s.min_ready_seconds,
                revision_history_limit: s.revision_history_limit,
                strategy: s.strategy,
            }),
            status: w.status,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct WireReplicaSetSpec {
    replicas: Option<i32>,
    selector: LabelSelector,
    template: Option<WireTemplate>,
    min_ready_seconds: Option<i32>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct WireReplicaSet {
    metadata: Meta,
    spec: Option<WireReplicaSetSpec>,
    status: Option<ReplicaSetStatus>,
}

impl Slim for ReplicaSet {
    type Wire = WireReplicaSet;
    fn from_wire(w: WireReplicaSet) -> ReplicaSet {
        ReplicaSet {
            metadata: w.metadata.into(),
            spec: w.spec.map(|s| ReplicaSetSpec {
                replicas: s.replicas,
                selector: s.selector,
                template: s.template.map(Into::into),
                min_ready_seconds: s.min_ready_seconds,
            }),
            status: w.status,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct WirePodStatus {
    phase: Option<String>,
    container_statuses: Option<Vec<ContainerStatus>>,
    init_container_statuses: Option<Vec<ContainerStatus>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct WirePod {
    metadata: Meta,
    status: Option<WirePodStatus>,
}

fn pod_status(st: PodStatus) -> PodStatus {
    PodStatus {
        container_statuses: st.container_statuses,
        init_container_statuses: st.init_container_statuses,
        phase: st.phase,
        ..PodStatus::default()
    }
}

impl Slim for Pod {
    type Wire = WirePod;
    fn from_wire(w: WirePod) -> Pod {
        let mut metadata: ObjectMeta = w.metadata.into();
        metadata.annotations = None;
        Pod {
            metadata,
            spec: None,
            status: w.status.map(|s| PodStatus {
                container_statuses: s.container_statuses,
                init_container_statuses: s.init_container_statuses,
                phase: s.phase,
                ..PodStatus::default()
            }),
        }
    }
    /// Even whole reads keep a pod to what the model reads: namespaces hold many pods.
    fn trim_full(&mut self) {
        lean_meta(&mut self.metadata);
        self.metadata.annotations = None;
        self.spec = None;
        self.status = self.status.take().map(pod_status);
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct WireSlice {
    metadata: Meta,
    address_type: String,
    endpoints: Vec<Endpoint>,
    ports: Option<Vec<EndpointPort>>,
}

impl Slim for EndpointSlice {
    type Wire = WireSlice;
    fn from_wire(w: WireSlice) -> EndpointSlice {
        EndpointSlice {
            metadata: w.metadata.into(),
            address_type: w.address_type,
            endpoints: w.endpoints,
            ports: w.ports,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct WireHpa {
    metadata: Meta,
    spec: Option<HorizontalPodAutoscalerSpec>,
    status: Option<HorizontalPodAutoscalerStatus>,
}

impl Slim for HorizontalPodAutoscaler {
    type Wire = WireHpa;
    fn from_wire(w: WireHpa) -> HorizontalPodAutoscaler {
        HorizontalPodAutoscaler {
            metadata: w.metadata.into(),
            spec: w.spec,
            status: w.status,
        }
    }
    fn trim_full(&mut self) {
        lean_meta(&mut self.metadata);
    }
}

/// A `managedFields` entry as the model reads it: who wrote, when, and whether the write
/// owns part of `spec.selector` (the rest of `fieldsV1` is skipped).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct WireManagedField {
    manager: Option<String>,
    operation: Option<String>,
    time: Option<Time>,
    fields_v1: Option<WireFields>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct WireFields {
    #[serde(rename = "f:spec")]
    spec: Option<WireSpecFields>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct WireSpecFields {
    #[serde(rename = "f:selector")]
    selector: Option<IgnoredAny>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct WireService {
    metadata: Meta<Vec<WireManagedField>>,
    spec: Option<ServiceSpec>,
    status: Option<ServiceStatus>,
}

/// Services keep their `managedFields` managers and times (the model names who last
/// wrote the selector, and finds GitOps tools among the managers); of each entry's
/// fields, only whether it owns the selector.
impl Slim for Service {
    type Wire = WireService;
    fn from_wire(w: WireService) -> Service {
        let mut meta = w.metadata;
        let managed = meta
            .managed_fields
            .take()
            .map(|entries| entries.into_iter().map(ManagedFieldsEntry::from).collect());
        let mut metadata: ObjectMeta = meta.into();
        metadata.managed_fields = managed;
        Service {
            metadata,
            spec: w.spec,
            status: w.status,
        }
    }
}

impl From<WireManagedField> for ManagedFieldsEntry {
    fn from(m: WireManagedField) -> ManagedFieldsEntry {
        let owns_selector = m.fields_v1.and_then(|f| f.spec?.selector).is_some();
        ManagedFieldsEntry {
            manager: m.manager,
            operation: m.operation,
            time: m.time,
            fields_v1: owns_selector
                .then(|| FieldsV1(serde_json::json!({"f:spec": {"f:selector": {}}}))),
            ..ManagedFieldsEntry::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn the_wire_types_skip_what_the_model_does_not_read() {
        let json = serde_json::json!({
            "metadata": {"name": "a", "managedFields": [{"manager": "kubectl"}],
                         "annotations": {LAST_APPLIED: "{}", "deployment.kubernetes.io/revision": "3"}},
            "spec": {"selector": {"matchLabels": {"app": "a"}},
                     "template": {"metadata": {"labels": {"app": "a"}, "annotations": {"x": "y"}},
                                  "spec": {"containers": [{"name": "web", "image": "web:1",
                                      "readinessProbe": {"httpGet": {"path": "/", "port": 80}}}],
                                           "volumes": [{"name": "v", "emptyDir": {}}]}}}
        });
        let d = Deployment::from_wire(serde_json::from_value(json).unwrap());
        assert_eq!(d.metadata.managed_fields, None);
        assert_eq!(
            d.metadata.annotations.unwrap().keys().collect::<Vec<_>>(),
            ["deployment.kubernetes.io/revision"]
        );
        let pod = d.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.containers[0].image.as_deref(), Some("web:1"));
        assert!(pod.containers[0].readiness_probe.is_none() && pod.volumes.is_none());
    }
}
