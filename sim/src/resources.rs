//! The API surface the simulator serves: one row per resource type, read by discovery,
//! routing, the OpenAPI stub and the store. Adding a resource is adding a row here.

/// One served resource (a group/version/plural), as discovery describes it.
#[derive(Debug)]
pub struct ResourceType {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// Subresources served under `<plural>/<sub>`.
    pub subresources: &'static [&'static str],
    /// Where objects live: two versions of one resource (core/v1 and events.k8s.io/v1
    /// events) share one storage, as upstream stores one object and converts on read.
    pub storage: &'static str,
    /// Whether writes to `spec` bump `metadata.generation` (upstream: workloads do).
    pub has_generation: bool,
    /// Whether the main resource ignores `status` on writes (there is a status subresource).
    pub status_subresource: bool,
    pub categories: &'static [&'static str],
}

const RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const CREATE_ONLY: &[&str] = &["create"];
const NS_VERBS: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, `services`: the name upstream puts in error messages.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.to_string()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    pub fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub fn is_review(&self) -> bool {
        self.verbs == CREATE_ONLY
    }
}

/// A kind the simulator stores and serves as it comes, with a status subresource and no
/// controller acting on it (`has_generation`: writes to `spec` bump `metadata.generation`).
#[allow(clippy::too_many_arguments)]
const fn stored(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    has_generation: bool,
) -> ResourceType {
    ResourceType {
        group,
        version,
        kind,
        plural,
        singular,
        namespaced,
        short_names,
        verbs: RW,
        subresources: &["status"],
        storage: plural,
        has_generation,
        status_subresource: true,
        categories: &[],
    }
}

const HPA_V2: ResourceType = ResourceType {
    group: "autoscaling",
    version: "v2",
    kind: "HorizontalPodAutoscaler",
    plural: "horizontalpodautoscalers",
    singular: "horizontalpodautoscaler",
    namespaced: true,
    short_names: &["hpa"],
    verbs: RW,
    subresources: &["status"],
    storage: "horizontalpodautoscalers",
    has_generation: false,
    status_subresource: true,
    categories: &["all"],
};

pub static RESOURCES: &[ResourceType] = &[
    ResourceType {
        group: "",
        version: "v1",
        kind: "Namespace",
        plural: "namespaces",
        singular: "namespace",
        namespaced: false,
        short_names: &["ns"],
        verbs: NS_VERBS,
        subresources: &["status"],
        storage: "namespaces",
        has_generation: false,
        status_subresource: true,
        categories: &[],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Pod",
        plural: "pods",
        singular: "pod",
        namespaced: true,
        short_names: &["po"],
        verbs: RW,
        subresources: &["status", "proxy"],
        storage: "pods",
        has_generation: false,
        status_subresource: true,
        categories: &["all"],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Service",
        plural: "services",
        singular: "service",
        namespaced: true,
        short_names: &["svc"],
        verbs: &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        subresources: &["status", "proxy"],
        storage: "services",
        has_generation: false,
        status_subresource: true,
        categories: &["all"],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Endpoints",
        plural: "endpoints",
        singular: "endpoints",
        namespaced: true,
        short_names: &["ep"],
        verbs: RW,
        subresources: &[],
        storage: "endpoints",
        has_generation: false,
        status_subresource: false,
        categories: &[],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        verbs: RW,
        subresources: &[],
        storage: "events",
        has_generation: false,
        status_subresource: false,
        categories: &[],
    },
    ResourceType {
        group: "events.k8s.io",
        version: "v1",
        kind: "Event",
        plural: "events",
        singular: "event",
        namespaced: true,
        short_names: &["ev"],
        verbs: RW,
        subresources: &[],
        storage: "events",
        has_generation: false,
        status_subresource: false,
        categories: &[],
    },
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "Deployment",
        plural: "deployments",
        singular: "deployment",
        namespaced: true,
        short_names: &["deploy"],
        verbs: RW,
        subresources: &["scale", "status"],
        storage: "deployments",
        has_generation: true,
        status_subresource: true,
        categories: &["all"],
    },
    ResourceType {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
        plural: "replicasets",
        singular: "replicaset",
        namespaced: true,
        short_names: &["rs"],
        verbs: RW,
        subresources: &["scale", "status"],
        storage: "replicasets",
        has_generation: true,
        status_subresource: true,
        categories: &["all"],
    },
    ResourceType {
        group: "discovery.k8s.io",
        version: "v1",
        kind: "EndpointSlice",
        plural: "endpointslices",
        singular: "endpointslice",
        namespaced: true,
        short_names: &[],
        verbs: RW,
        subresources: &[],
        storage: "endpointslices",
        has_generation: false,
        status_subresource: false,
        categories: &[],
    },
    ResourceType {
        group: "coordination.k8s.io",
        version: "v1",
        kind: "Lease",
        plural: "leases",
        singular: "lease",
        namespaced: true,
        short_names: &[],
        verbs: RW,
        subresources: &[],
        storage: "leases",
        has_generation: false,
        status_subresource: false,
        categories: &[],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "ConfigMap",
        plural: "configmaps",
        singular: "configmap",
        namespaced: true,
        short_names: &["cm"],
        verbs: RW,
        subresources: &[],
        storage: "configmaps",
        has_generation: false,
        status_subresource: false,
        categories: &[],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "Secret",
        plural: "secrets",
        singular: "secret",
        namespaced: true,
        short_names: &[],
        verbs: RW,
        subresources: &[],
        storage: "secrets",
        has_generation: false,
        status_subresource: false,
        categories: &[],
    },
    ResourceType {
        group: "",
        version: "v1",
        kind: "ServiceAccount",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        namespaced: true,
        short_names: &["sa"],
        verbs: RW,
        subresources: &[],
        storage: "serviceaccounts",
        has_generation: false,
        status_subresource: false,
        categories: &[],
    },
    ResourceType {
        group: "policy",
        version: "v1",
        kind: "PodDisruptionBudget",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        namespaced: true,
        short_names: &["pdb"],
        verbs: RW,
        subresources: &["status"],
        storage: "poddisruptionbudgets",
        has_generation: true,
        status_subresource: true,
        categories: &[],
    },
    HPA_V2,
    // Stored as v2 (listed first: discovery's preferred version); served as v1 too.
    ResourceType {
        version: "v1",
        ..HPA_V2
    },
    ResourceType {
        group: "authorization.k8s.io",
        version: "v1",
        kind: "SelfSubjectAccessReview",
        plural: "selfsubjectaccessreviews",
        singular: "selfsubjectaccessreview",
        namespaced: false,
        short_names: &[],
        verbs: CREATE_ONLY,
        subresources: &[],
        storage: "",
        has_generation: false,
        status_subresource: false,
        categories: &[],
    },
    ResourceType {
        group: "authentication.k8s.io",
        version: "v1",
        kind: "SelfSubjectReview",
        plural: "selfsubjectreviews",
        singular: "selfsubjectreview",
        namespaced: false,
        short_names: &[],
        verbs: CREATE_ONLY,
        subresources: &[],
        storage: "",
        has_generation: false,
        status_subresource: false,
        categories: &[],
    },
    // Stored and served, with no controller: the kinds in `kubectl apply --prune`'s
    // default allow-list, so pruning can list them (an app may carry any of them).
    stored(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        "persistentvolumeclaim",
        true,
        &["pvc"],
        false,
    ),
    stored(
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        "persistentvolume",
        false,
        &["pv"],
        false,
    ),
    stored(
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        "replicationcontroller",
        true,
        &["rc"],
        true,
    ),
    stored(
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        "daemonset",
        true,
        &["ds"],
        true,
    ),
    stored(
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        "statefulset",
        true,
        &["sts"],
        true,
    ),
    stored("batch", "v1", "Job", "jobs", "job", true, &[], true),
    stored(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        "cronjob",
        true,
        &["cj"],
        true,
    ),
    stored(
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        "ingress",
        true,
        &["ing"],
        true,
    ),
];

/// The resource served at `group/version/plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.group == group && r.version == version && r.plural == plural)
}

/// The canonical (stored) resource type for a storage name.
pub fn by_storage(storage: &str) -> &'static ResourceType {
    RESOURCES
        .iter()
        .find(|r| r.storage == storage)
        .unwrap_or_else(|| panic!("unknown storage {storage}"))
}

/// The resource type of a manifest's apiVersion + kind (for loading fixtures).
pub fn by_kind(api_version: &str, kind: &str) -> Option<&'static ResourceType> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
}

/// Group versions in discovery order.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}
