//! `init`: adopt a plain Deployment + Service into the label contract with zero downtime.

use super::steps::copy_as_slot;
use super::{Action, Actor, Outcome, Plan, Step};
use crate::error::{Error, Reason, Result};
use crate::model::{self, HistoryEntry};
use crate::observe::Snapshot;
use serde_json::json;

#[derive(Debug, Clone, Default)]
pub struct InitRequest {
    /// Adopt with this color label key instead of `bluegreen.io/color`.
    pub color_label: Option<String>,
}

pub const REPLACED_BY_ANNOTATION: &str = "bluegreen.io/replaced-by";

/// Adopting a plain Deployment + Service: blue copy → wait → switch the Service (which
/// then includes the color) → verify → green copy at 0 → the original scaled to 0 and
/// annotated. Planned from whatever part is already done, so a re-run finishes it.
pub fn init(
    snap: &Snapshot,
    namespace: &str,
    service: &str,
    req: &InitRequest,
    actor: &Actor,
) -> Result<Plan> {
    let svc = snap
        .services
        .iter()
        .find(|s| {
            s.metadata.namespace.as_deref() == Some(namespace)
                && s.metadata.name.as_deref() == Some(service)
        })
        .ok_or_else(|| {
            Error::NotFound(
                Reason::ServiceNotFound,
                format!("Service {} not found in namespace {namespace}", service),
            )
        })?;
    let annotations = svc.metadata.annotations.clone().unwrap_or_default();
    let key = req
        .color_label
        .clone()
        .or_else(|| annotations.get(model::COLOR_LABEL_ANNOTATION).cloned())
        .unwrap_or_else(|| model::DEFAULT_COLOR_LABEL.to_string());
    let mut selector = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    if selector.is_empty() {
        return Err(Error::Precondition(
            Reason::NothingToAdopt,
            format!(
                "Service {} has no selector: there is nothing to adopt",
                service
            ),
        ));
    }
    let live = selector.remove(&key);
    let adopted = live.is_some();
    let in_ns = || {
        snap.deployments
            .iter()
            .filter(|d| d.metadata.namespace.as_deref() == Some(namespace))
    };
    let labels_of = |d: &k8s_openapi::api::apps::v1::Deployment| {
        d.spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default()
    };
    let matches_base = |d: &&k8s_openapi::api::apps::v1::Deployment| {
        let l = labels_of(d);
        selector.iter().all(|(k, v)| l.get(k) == Some(v))
    };
    let originals: Vec<_> = in_ns()
        .filter(matches_base)
        .filter(|d| !labels_of(d).contains_key(&key))
        .collect();
    let slot = |color: &str| {
        in_ns()
            .filter(matches_base)
            .find(|d| labels_of(d).get(&key).map(String::as_str) == Some(color))
    };
    let name_of =
        |d: &k8s_openapi::api::apps::v1::Deployment| d.metadata.name.clone().unwrap_or_default();
    let mut plan = Plan::new(Action::Init, service, namespace);
    plan.to = Some("blue".into());
    if !adopted && originals.len() != 1 {
        let reason = if originals.is_empty() {
            Reason::NothingToAdopt
        } else {
            Reason::AmbiguousAdoption
        };
        return Err(Error::Precondition(
            reason,
            match originals.len() {
                0 => format!(
                    "no Deployment's pods are selected by Service {}: nothing to adopt",
                    service
                ),
                _ => format!(
                    "{} Deployments are selected by Service {} ({}): adopt needs exactly one",
                    originals.len(),
                    service,
                    originals
                        .iter()
                        .map(|d| name_of(d))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
        ));
    }
    let original = originals.first().copied();
    let base_name = original.map(name_of).unwrap_or_else(|| service.to_string());
    let original_json = original
        .map(|d| serde_json::to_value(d).map_err(|e| Error::Other(e.to_string())))
        .transpose()?;
    let replicas = original
        .and_then(|d| d.spec.as_ref().and_then(|s| s.replicas))
        .unwrap_or(1);
    let blue_name = format!("{base_name}-blue");
    let green_name = format!("{base_name}-green");
    if adopted {
        plan.outcome = Outcome::Finish;
        plan.preconditions.push(format!(
            "Service {} already selects {key}={}: finishing the adoption",
            service,
            live.as_deref().unwrap_or("")
        ));
    } else {
        plan.preconditions.push(format!(
            "Service {} selects exactly one Deployment: {base_name} ({replicas} replicas)",
            service
        ));
    }
    let live_color = live.clone().unwrap_or_else(|| "blue".into());
    plan.to = Some(live_color.clone());
    let live_deployment = slot(&live_color)
        .map(name_of)
        .unwrap_or_else(|| blue_name.clone());
    if slot(&live_color).is_none() {
        let source = original_json.clone().ok_or_else(|| {
            Error::Precondition(
                Reason::NothingToAdopt,
                format!(
                    "Service {} selects {key}={live_color} but no such Deployment exists",
                    service
                ),
            )
        })?;
        plan.steps.push(Step::CreateDeployment {
            deployment: blue_name.clone(),
            body: copy_as_slot(source, &blue_name, namespace, &key, "blue", replicas),
            why: format!(
                "the blue slot: a copy of {base_name} with {key}=blue, {replicas} replica(s)"
            ),
        });
    }
    if !adopted {
        plan.steps.push(Step::WaitRolledOut {
            deployment: blue_name.clone(),
        });
        let history = vec![HistoryEntry {
            action: Action::Init,
            from: String::new(),
            to: "blue".into(),
            images: vec![],
            at: actor.now.clone(),
            by: actor.user.clone(),
            from_revision: None,
            to_revision: None,
        }];
        let mut ann = json!({model::HISTORY_ANNOTATION: serde_json::to_string(&history).map_err(|e| Error::Other(e.to_string()))?});
        if key != model::DEFAULT_COLOR_LABEL {
            ann[model::COLOR_LABEL_ANNOTATION] = json!(key);
        }
        plan.steps.push(Step::PatchService {
            service: service.to_string(),
            patch: json!({"metadata": {"resourceVersion": svc.metadata.resource_version, "annotations": ann}, "spec": {"selector": {key.clone(): "blue"}}}),
            why: format!("select {key}=blue: traffic moves to the blue slot's (ready) pods"),
        });
    }
    plan.steps.push(Step::WaitServing {
        services: vec![service.to_string()],
        deployment: live_deployment,
        color: live_color.clone(),
        color_label: key.clone(),
        hold_secs: 0,
    });
    // The other slot: the one Deployment of another color if there is one (an existing
    // `version: v1|v2` setup is adopted in place), else blue ↔ green.
    let others: Vec<String> = in_ns()
        .filter(matches_base)
        .filter_map(|d| labels_of(d).get(&key).cloned())
        .filter(|c| *c != live_color)
        .collect();
    if others.len() > 1 {
        return Err(Error::Precondition(
            Reason::TooManySlots,
            format!(
                "Service {service} selects {key}={live_color} and {} other Deployments carry {key} ({}): a blue/green app has exactly two slots; remove or relabel the extra ones",
                others.len(),
                others.join(", ")
            ),
        ));
    }
    let other: String = match others.first() {
        Some(c) => c.clone(),
        None => match live_color.as_str() {
            "blue" => "green".into(),
            "green" => "blue".into(),
            _ => {
                return Err(Error::Precondition(
                    Reason::NothingToAdopt,
                    format!(
                        "Service {service} selects {key}={live_color} and no second slot exists: create it with `kubectl bluegreen set-image {service} '*=IMAGE' --color COLOR` once the app is adopted, or deploy it yourself"
                    ),
                ));
            }
        },
    };
    let other = other.as_str();
    // Adopting in place: only the Service learns which key is the color.
    if adopted
        && key != model::DEFAULT_COLOR_LABEL
        && annotations.get(model::COLOR_LABEL_ANNOTATION) != Some(&key)
    {
        let history = vec![HistoryEntry {
            action: Action::Init,
            from: String::new(),
            to: live_color.clone(),
            images: vec![],
            at: actor.now.clone(),
            by: actor.user.clone(),
            from_revision: None,
            to_revision: None,
        }];
        let history = serde_json::to_string(&history).map_err(|e| Error::Other(e.to_string()))?;
        plan.outcome = Outcome::Change;
        plan.steps.insert(
            0,
            Step::PatchService {
                service: service.to_string(),
                patch: json!({"metadata": {"resourceVersion": svc.metadata.resource_version, "annotations": {
                    model::COLOR_LABEL_ANNOTATION: key,
                    model::HISTORY_ANNOTATION: history,
                }}}),
                why: format!("adopt in place: {key} is the color label (the selector is unchanged)"),
            },
        );
    }
    if slot(other).is_none()
        && let Some(source) = original_json
            .clone()
            .or_else(|| slot(&live_color).and_then(|d| serde_json::to_value(d).ok()))
    {
        let name = if other == "green" {
            green_name.clone()
        } else {
            blue_name.clone()
        };
        plan.steps.push(Step::CreateDeployment {
            deployment: name.clone(),
            body: copy_as_slot(source, &name, namespace, &key, other, 0),
            why: format!("the {other} slot, idle at 0 replicas"),
        });
    }
    if let Some(o) = original {
        let already = o
            .metadata
            .annotations
            .as_ref()
            .is_some_and(|a| a.contains_key(REPLACED_BY_ANNOTATION));
        if o.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1) > 0 || !already {
            let mut ann = o.metadata.annotations.clone().unwrap_or_default();
            ann.insert(
                REPLACED_BY_ANNOTATION.into(),
                format!("{blue_name},{green_name}"),
            );
            plan.steps.push(Step::ScaleDeployment {
                deployment: base_name.clone(),
                replicas: 0,
                patch: json!([
                    {"op": "test", "path": "/metadata/generation", "value": o.metadata.generation.unwrap_or(0)},
                    {"op": "replace", "path": "/spec/replicas", "value": 0},
                    {"op": "add", "path": "/metadata/annotations", "value": ann},
                ]),
                why: format!("the original is replaced by {blue_name} and {green_name} (kept, annotated, never deleted)"),
                not_live: None,
            });
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use crate::plan::testkit::{actor, deploy, kinds, snap};

    /// A plain Service `web` selecting `app: shop` (or `extra` more), and its Deployment.
    fn plain(replicas: i32, extra_selector: &str, annotations: &str) -> String {
        format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\n{annotations}spec:\n  selector: {{app: shop{extra_selector}}}\n  ports: [{{port: 80}}]\n{}",
            original(replicas, "")
        )
    }

    fn original(replicas: i32, annotations: &str) -> String {
        format!(
            "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  generation: 1\n{annotations}spec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: shop}}}}\n  template:\n    metadata: {{labels: {{app: shop}}}}\n    spec: {{containers: [{{name: web, image: web:1}}]}}\nstatus: {{observedGeneration: 1, replicas: {replicas}, readyReplicas: {replicas}, availableReplicas: {replicas}, updatedReplicas: {replicas}}}\n"
        )
    }

    fn plan_of(yaml: &str, req: &InitRequest) -> Result<Plan> {
        init(&snap(yaml), "default", "web", req, &actor())
    }

    fn reason(e: Error) -> Reason {
        e.reason()
    }

    #[test]
    fn fresh_adoption_copies_waits_switches_verifies_then_retires_the_original() {
        let plan = plan_of(&plain(3, "", ""), &InitRequest::default()).unwrap();
        assert_eq!(plan.outcome, Outcome::Change);
        assert_eq!(
            kinds(&plan),
            [
                "create deploy/web-blue",
                "wait rollout web-blue",
                "patch svc/web",
                "wait serving web-blue",
                "create deploy/web-green",
                "scale deploy/web=0",
            ],
            "traffic moves only after the copy is rolled out; the original goes last"
        );
        let Step::CreateDeployment { body, .. } = &plan.steps[0] else {
            panic!()
        };
        assert_eq!(body["spec"]["replicas"], 3, "as many as the original");
        assert_eq!(
            body["spec"]["selector"]["matchLabels"]["bluegreen.io/color"],
            "blue"
        );
        let Step::PatchService { patch, .. } = &plan.steps[2] else {
            panic!()
        };
        assert_eq!(patch["spec"]["selector"]["bluegreen.io/color"], "blue");
        assert!(
            patch["metadata"]["annotations"]
                .get(model::COLOR_LABEL_ANNOTATION)
                .is_none(),
            "the default key needs no annotation"
        );
        let Step::CreateDeployment { body, .. } = &plan.steps[4] else {
            panic!()
        };
        assert_eq!(body["spec"]["replicas"], 0, "green starts idle");
        let Step::ScaleDeployment { patch, .. } = &plan.steps[5] else {
            panic!()
        };
        assert_eq!(patch[0]["op"], "test", "guarded by the generation");
        assert_eq!(
            patch[2]["value"][REPLACED_BY_ANNOTATION], "web-blue,web-green",
            "annotated, never deleted"
        );
    }

    #[test]
    fn a_custom_color_key_is_recorded_on_the_service() {
        let req = InitRequest {
            color_label: Some("version".into()),
        };
        let plan = plan_of(&plain(2, "", ""), &req).unwrap();
        let Some(Step::PatchService { patch, .. }) = plan
            .steps
            .iter()
            .find(|s| matches!(s, Step::PatchService { .. }))
        else {
            panic!()
        };
        assert_eq!(patch["spec"]["selector"]["version"], "blue");
        assert_eq!(
            patch["metadata"]["annotations"][model::COLOR_LABEL_ANNOTATION],
            "version"
        );
    }

    #[test]
    fn a_rerun_after_the_copy_was_created_does_not_create_it_again() {
        let yaml = format!(
            "{}{}",
            plain(3, "", ""),
            deploy_plain_slot("web-blue", "blue", 3)
        );
        let plan = plan_of(&yaml, &InitRequest::default()).unwrap();
        assert_eq!(
            kinds(&plan),
            [
                "wait rollout web-blue",
                "patch svc/web",
                "wait serving web-blue",
                "create deploy/web-green",
                "scale deploy/web=0",
            ]
        );
    }

    /// A slot of the adopted app: the original's labels plus the color.
    fn deploy_plain_slot(name: &str, color: &str, replicas: i32) -> String {
        deploy(name, color, replicas, replicas)
    }

    #[test]
    fn an_adopted_service_only_finishes_what_is_left() {
        // The Service already selects the color; green missing, original still running.
        let yaml = format!(
            "{}{}",
            plain(3, ", bluegreen.io/color: blue", ""),
            deploy_plain_slot("web-blue", "blue", 3)
        );
        let plan = plan_of(&yaml, &InitRequest::default()).unwrap();
        assert_eq!(plan.outcome, Outcome::Finish);
        assert_eq!(
            kinds(&plan),
            [
                "wait serving web-blue",
                "create deploy/web-green",
                "scale deploy/web=0"
            ]
        );
        // Everything done: the original at 0 and annotated, both slots there.
        let yaml = format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {{app: shop, bluegreen.io/color: blue}}\n{}{}{}",
            original(
                0,
                "  annotations: {bluegreen.io/replaced-by: 'web-blue,web-green'}\n"
            ),
            deploy_plain_slot("web-blue", "blue", 3),
            deploy_plain_slot("web-green", "green", 0)
        );
        let plan = plan_of(&yaml, &InitRequest::default()).unwrap();
        assert_eq!(
            kinds(&plan),
            ["wait serving web-blue"],
            "nothing is repeated"
        );
    }

    #[test]
    fn refusals_name_what_is_missing_or_ambiguous() {
        let err = init(
            &snap(&plain(1, "", "")),
            "default",
            "nope",
            &InitRequest::default(),
            &actor(),
        )
        .unwrap_err();
        assert_eq!(
            (err.exit_code(), err.reason()),
            (3, Reason::ServiceNotFound)
        );

        let no_selector = "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports: [{port: 80}]\n";
        let err = plan_of(no_selector, &InitRequest::default()).unwrap_err();
        assert!(err.to_string().contains("has no selector"), "{err}");
        assert_eq!(reason(err), Reason::NothingToAdopt);

        let nothing = plain(1, "", "")
            .replace("app: shop}}\n  template", "app: other}}\n  template")
            .replace("labels: {app: shop}", "labels: {app: other}");
        let err = plan_of(&nothing, &InitRequest::default()).unwrap_err();
        assert_eq!((err.exit_code(), err.reason()), (4, Reason::NothingToAdopt));

        let two = format!(
            "{}{}",
            plain(1, "", ""),
            original(1, "").replace("name: web\n  generation", "name: web-2\n  generation")
        );
        let err = plan_of(&two, &InitRequest::default()).unwrap_err();
        assert_eq!(
            (err.exit_code(), err.reason()),
            (4, Reason::AmbiguousAdoption)
        );
        assert!(err.to_string().contains("web, web-2"), "{err}");

        // Adopted, but the slot the Service selects is gone and there is no original.
        let orphan = "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {app: shop, bluegreen.io/color: blue}\n";
        let err = plan_of(orphan, &InitRequest::default()).unwrap_err();
        assert_eq!(err.exit_code(), 4);
        assert!(
            err.to_string().contains("no such Deployment exists"),
            "{err}"
        );
    }

    #[test]
    fn a_version_label_setup_is_adopted_in_place() {
        let slot = |v: &str, replicas: i32| {
            format!(
                "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: demo-{v}, generation: 1}}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: demo, version: {v}}}}}\n  template:\n    metadata: {{labels: {{app: demo, version: {v}}}}}\n    spec: {{containers: [{{name: demo, image: demo:{v}}}]}}\n"
            )
        };
        let service = "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: demo, version: v1}\n";
        let req = InitRequest {
            color_label: Some("version".into()),
        };
        let yaml = format!("{service}{}{}", slot("v1", 3), slot("v2", 3));
        let plan = plan_of(&yaml, &req).unwrap();
        assert_eq!(
            kinds(&plan),
            ["patch svc/web", "wait serving demo-v1"],
            "no third Deployment, nothing scaled: only the annotation"
        );
        let Step::PatchService { patch, .. } = &plan.steps[0] else {
            panic!()
        };
        assert_eq!(
            patch["metadata"]["annotations"][model::COLOR_LABEL_ANNOTATION],
            "version"
        );
        assert!(patch["spec"].is_null(), "the selector is left as it is");

        // One slot of a non-blue/green color: nothing to name the other after.
        let err = plan_of(&format!("{service}{}", slot("v1", 3)), &req).unwrap_err();
        assert_eq!(err.reason(), Reason::NothingToAdopt);
        assert!(err.to_string().contains("--color"), "{err}");
        // Three: refused.
        let three = format!(
            "{service}{}{}{}",
            slot("v1", 3),
            slot("v2", 0),
            slot("v3", 0)
        );
        assert_eq!(
            plan_of(&three, &req).unwrap_err().reason(),
            Reason::TooManySlots
        );
    }
}
