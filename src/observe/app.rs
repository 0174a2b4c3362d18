//! One app's objects, read by label and field selectors: the cost of a command that names
//! an app depends on the app, not on what else the namespace holds.
//!
//! Rounds (the requests of a round are sent together):
//! 1. The Services named NAME or labelled `bluegreen.io/app=NAME`, and the namespace's
//!    HorizontalPodAutoscalers (they point at Deployments by name, which no selector
//!    expresses; a namespace holds far fewer of them than ReplicaSets or Pods).
//! 2. From the app's Service selector without the color key (the app's pod labels):
//!    the Deployments labelled with them, the ReplicaSets and Pods carrying them (both
//!    carry their template's labels); the EndpointSlices of the app's Services
//!    (`kubernetes.io/service-name in (…)`); the preview Service by name when round 1 did
//!    not bring it. When the Service named NAME has no `bluegreen.io/app` label, also the
//!    namespace's Services: only they can tell whether it is another app's preview
//!    Service (label it and this read goes away).
//! 3. Only when a ReplicaSet's owner Deployment was not among round 2's (its own labels
//!    lack the pod labels): those Deployments, by name.
//!
//! Round 2's questions change only when the app's Services do, so round 1 also sends
//! last time's (observe/hints.rs): when round 1 shows the same questions, their answers
//! stand for round 2 and a read of a known app takes one round trip; when not, they are
//! dropped (errors too) and round 2 asks anew. A hint costs a wasted round's worth of
//! small, selected lists at most, never a wrong answer.
//!
//! Without any Service: the namespace itself, so that a missing namespace is said.

use super::hints::FollowUp;
use super::{Query, Reader, Scope, Snapshot};
use crate::error::{Error, Reason, Result};
use crate::model::{
    APP_LABEL, PREVIEW_ANNOTATION, SERVICE_NAME_LABEL, annotation, app_name_of, color_label_of,
    is_app_service, selector_of,
};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use std::collections::{BTreeMap, BTreeSet};

/// The objects of app `name` in `namespace` (for `init`, of the Service `name` and what
/// it selects; `color_label` is the key init adopts with, left out of the pod labels).
pub async fn app(
    reader: &Reader<'_>,
    namespace: &str,
    name: &str,
    color_label: Option<&str>,
) -> Result<Snapshot> {
    // Boxed: the rounds' concurrent lists make a large future, and callers nest it deep.
    Box::pin(read(reader, namespace, name, color_label)).await
}

async fn read(
    reader: &Reader<'_>,
    namespace: &str,
    name: &str,
    color_label: Option<&str>,
) -> Result<Snapshot> {
    let scope = Scope::Namespace(namespace.to_string());
    let by_name = format!("metadata.name={name}");
    let by_label = format!("{APP_LABEL}={name}");

    // Round 1, with last time's round 2 as a guess (not for init: what it adopts with
    // changes the questions).
    let hints = reader.hints.filter(|_| color_label.is_none());
    let guess = hints.and_then(|h| h.load(namespace, name));
    let round_1 = async {
        tokio::try_join!(
            reader.list::<Service>(
                &scope,
                Query {
                    fields: Some(&by_name),
                    labels: None
                }
            ),
            reader.list::<Service>(
                &scope,
                Query {
                    labels: Some(&by_label),
                    fields: None
                }
            ),
            reader.list(&scope, Query::default()),
        )
    };
    let guessed = async {
        match guess {
            Some(guess) => {
                let answers = ask(reader, &scope, &guess).await;
                Some((guess, answers))
            }
            None => None,
        }
    };
    let (round_1, guessed) = tokio::join!(round_1, guessed);
    let (named, labelled, hpas) = round_1?;
    let unlabelled = named.iter().any(|s| {
        is_app_service(s)
            && s.metadata
                .labels
                .as_ref()
                .is_none_or(|l| !l.contains_key(APP_LABEL))
    });
    let mut services = named;
    for s in labelled {
        if !services.iter().any(|x| x.metadata.name == s.metadata.name) {
            services.push(s);
        }
    }
    let app_services: Vec<&Service> = services
        .iter()
        .filter(|s| is_app_service(s) && app_name_of(s) == name)
        .collect();
    // The Service whose selector names the app's pods: the app's state Service (the first
    // by name, as the model takes it), else for init the Service named NAME.
    let anchor = app_services
        .iter()
        .copied()
        .min_by_key(|s| s.metadata.name.clone())
        .or_else(|| {
            services
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(name))
        });
    let Some(anchor) = anchor else {
        namespace_exists(reader, namespace).await?;
        return Ok(Snapshot {
            services,
            hpas,
            ..Snapshot::default()
        });
    };
    let mut pod_labels = selector_of(anchor);
    pod_labels.remove(&color_label_of(anchor));
    if let Some(key) = color_label {
        pod_labels.remove(key);
    }
    let previews: BTreeSet<String> = app_services
        .iter()
        .filter_map(|s| annotation(s, PREVIEW_ANNOTATION))
        .filter(|p| {
            !services
                .iter()
                .any(|s| s.metadata.name.as_deref() == Some(p))
        })
        .map(String::from)
        .collect();
    let mut served: BTreeSet<String> = app_services
        .iter()
        .chain(std::iter::once(&anchor))
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    served.extend(
        app_services
            .iter()
            .filter_map(|s| annotation(s, PREVIEW_ANNOTATION))
            .map(String::from),
    );
    let follow_up = FollowUp {
        pods: selector(&pod_labels, &color_label_of(anchor)),
        slices: format!(
            "{SERVICE_NAME_LABEL} in ({})",
            served.iter().cloned().collect::<Vec<_>>().join(",")
        ),
        previews: previews.into_iter().collect(),
        all_services: unlabelled,
    };

    // Round 2, unless the guess sent with round 1 asked the same.
    let (deployments, replicasets, pods, slices, preview_services, all_services) = match guessed {
        Some((guess, answers)) if guess == follow_up => answers?,
        guessed => {
            if guessed.is_some() {
                tracing::debug!(app = name, "read hint stale: round 2 asks anew");
            }
            if let Some(hints) = hints {
                hints.save(namespace, name, &follow_up);
            }
            ask(reader, &scope, &follow_up).await?
        }
    };
    services.extend(preview_services);
    if let Some(all) = all_services {
        // Keep a Service that names NAME as its preview: the model then says whose.
        let owners: Vec<Service> = all
            .into_iter()
            .filter(|s| {
                annotation(s, PREVIEW_ANNOTATION) == Some(name)
                    && !services.iter().any(|x| x.metadata.name == s.metadata.name)
            })
            .collect();
        services.extend(owners);
    }

    // Round 3 (rare): owners the labels did not bring.
    let known: BTreeSet<&str> = deployments
        .iter()
        .filter_map(|d| d.metadata.name.as_deref())
        .collect();
    let missing: BTreeSet<String> = replicasets
        .iter()
        .filter_map(crate::facts::owner_deployment)
        .filter(|d| !known.contains(d))
        .map(String::from)
        .collect();
    let mut deployments = deployments;
    if !missing.is_empty() {
        tracing::debug!(?missing, "owner Deployments without the app's labels");
        let gets = missing.iter().map(|d| {
            let field = format!("metadata.name={d}");
            let (reader, scope) = (*reader, scope.clone());
            async move {
                reader
                    .list::<Deployment>(
                        &scope,
                        Query {
                            fields: Some(&field),
                            labels: None,
                        },
                    )
                    .await
            }
        });
        for found in futures::future::try_join_all(gets).await? {
            deployments.extend(found);
        }
    }
    Ok(Snapshot {
        services,
        deployments,
        replicasets,
        slices,
        pods,
        hpas,
    })
}

/// Round 2's answers: the Deployments, ReplicaSets and Pods carrying the app's pod
/// labels, the EndpointSlices of its Services, the preview Services by name, and (only
/// when asked) the namespace's Services.
type Answers = (
    Vec<Deployment>,
    Vec<ReplicaSet>,
    Vec<Pod>,
    Vec<EndpointSlice>,
    Vec<Service>,
    Option<Vec<Service>>,
);

async fn ask(reader: &Reader<'_>, scope: &Scope, asked: &FollowUp) -> Result<Answers> {
    let pods = Query {
        labels: Some(&asked.pods),
        fields: None,
    };
    tokio::try_join!(
        reader.list::<Deployment>(scope, pods),
        reader.list::<ReplicaSet>(scope, pods),
        reader.list(scope, pods),
        reader.list(
            scope,
            Query {
                labels: Some(&asked.slices),
                fields: None
            }
        ),
        async {
            let mut found = Vec::new();
            for p in &asked.previews {
                let field = format!("metadata.name={p}");
                found.extend(
                    reader
                        .list::<Service>(
                            scope,
                            Query {
                                fields: Some(&field),
                                labels: None,
                            },
                        )
                        .await?,
                );
            }
            Ok(found)
        },
        async {
            if asked.all_services {
                reader
                    .list::<Service>(scope, Query::default())
                    .await
                    .map(Some)
            } else {
                Ok(None)
            }
        },
    )
}

/// A label selector for the app's pods: its pod labels, or (when the Service selects by
/// the color alone) every pod carrying the color key.
fn selector(pod_labels: &BTreeMap<String, String>, color_key: &str) -> String {
    if pod_labels.is_empty() {
        return color_key.to_string();
    }
    pod_labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Fails with "namespace not found" when the namespace does not exist (when the answer
/// is anything else, e.g. forbidden, the app's absence is reported as usual).
async fn namespace_exists(reader: &Reader<'_>, namespace: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(reader.client.clone());
    match api.get_metadata_opt(namespace).await {
        Ok(None) => Err(Error::NotFound(
            Reason::NamespaceNotFound,
            format!("namespace {namespace:?} not found (`kubectl get namespaces` lists them)"),
        )),
        _ => Ok(()),
    }
}
