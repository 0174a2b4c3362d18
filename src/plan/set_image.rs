//! `set-image`: new images on the preview slot only (created as a copy of the live slot
//! when the app has one), sized like the live slot, then a wait until it is rolled out.

use super::checks::{check_not_live, live_color, refuse_partial, require_two_slots, slot_by_color};
use super::steps::{copy_as_slot, live_replicas, not_live_guard};
use super::{Action, Plan, Step};
use crate::error::{Error, Reason, Result};
use crate::model::{App, Role};
use crate::observe::Snapshot;
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq)]
pub struct ImageSpec {
    /// Container name, or `*` for every container.
    pub container: String,
    pub image: String,
}

#[derive(Debug, Clone, Default)]
pub struct SetImageRequest {
    pub images: Vec<ImageSpec>,
    pub replicas: Option<i32>,
    /// Color of a slot to create when the app has only one (default: blue ↔ green).
    pub color: Option<String>,
    pub wait: bool,
}

fn other_color(live: &str) -> Option<&'static str> {
    match live {
        "blue" => Some("green"),
        "green" => Some("blue"),
        _ => None,
    }
}

/// The containers (and init containers) of a pod template with new images applied.
fn image_patch_lists(
    pod_spec: &Value,
    images: &[ImageSpec],
    deployment: &str,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let names = |list: &str| -> Vec<String> {
        pod_spec[list]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let (containers, inits) = (names("containers"), names("initContainers"));
    for spec in images.iter().filter(|s| s.container != "*") {
        if !containers.contains(&spec.container) && !inits.contains(&spec.container) {
            let mut all = containers.clone();
            all.extend(inits.iter().map(|i| format!("{i} (init)")));
            return Err(Error::NotFound(
                Reason::NoSuchContainer,
                format!(
                    "deployment {deployment} has no container {:?}; its containers are: {}",
                    spec.container,
                    all.join(", ")
                ),
            ));
        }
    }
    let image_for = |name: &str| -> Option<String> {
        images
            .iter()
            .rev()
            .find(|s| s.container == name)
            .or_else(|| images.iter().rev().find(|s| s.container == "*"))
            .map(|s| s.image.clone())
    };
    let patch = |list: &[String]| -> Vec<Value> {
        list.iter()
            .filter_map(|n| image_for(n).map(|i| json!({"name": n, "image": i})))
            .collect()
    };
    Ok((patch(&containers), patch(&inits)))
}

pub fn set_image(app: &App, snap: &Snapshot, req: &SetImageRequest) -> Result<Plan> {
    require_two_slots(app)?;
    refuse_partial(app, "set images")?;
    let live = live_color(app)?;
    let active = slot_by_color(app, &live).ok_or_else(|| {
        Error::Precondition(
            Reason::ColorMatchesNoSlot,
            format!(
                "Service {} selects {}={live}, but no slot has that color",
                app.state_service(),
                app.color_label
            ),
        )
    })?;
    // Sized like the live slot now (with an HPA, what it scaled the live slot to).
    let replicas = req.replicas.unwrap_or(live_replicas(app, active));
    let mut plan = Plan::new(Action::SetImage, &app.name, &app.namespace);
    let raw = |name: &str| -> Result<Value> {
        let d = snap
            .deployments
            .iter()
            .find(|d| {
                d.metadata.namespace.as_deref() == Some(&app.namespace)
                    && d.metadata.name.as_deref() == Some(name)
            })
            .ok_or_else(|| {
                Error::NotFound(Reason::NotFound, format!("deployment {name} disappeared"))
            })?;
        serde_json::to_value(d).map_err(|e| Error::Other(e.to_string()))
    };
    plan.preconditions.push(format!(
        "the live slot is {live} ({}); it is never touched",
        active.deployment
    ));
    match app.slot(Role::Preview) {
        Some(preview) => {
            check_not_live(app, preview, "set images on the preview slot")?;
            let d = raw(&preview.deployment)?;
            let pod = &d["spec"]["template"]["spec"];
            let (containers, inits) = image_patch_lists(pod, &req.images, &preview.deployment)?;
            let mut template_spec = json!({});
            if !containers.is_empty() {
                template_spec["containers"] = json!(containers);
            }
            if !inits.is_empty() {
                template_spec["initContainers"] = json!(inits);
            }
            let patch = json!({
                "metadata": {"resourceVersion": preview.resource_version},
                "spec": {"replicas": replicas, "template": {"spec": template_spec}},
            });
            // What the patch changes, as it was: the undo if a Service turns to the slot
            // while the write is on its way.
            let before = |list: &str, new: &[Value]| -> Vec<Value> {
                new.iter()
                    .filter_map(|n| {
                        pod[list]
                            .as_array()?
                            .iter()
                            .find(|c| c["name"] == n["name"])
                    })
                    .map(|c| json!({"name": c["name"], "image": c["image"]}))
                    .collect()
            };
            let mut undo_spec = json!({});
            if !containers.is_empty() {
                undo_spec["containers"] = json!(before("containers", &containers));
            }
            if !inits.is_empty() {
                undo_spec["initContainers"] = json!(before("initContainers", &inits));
            }
            let undo = json!({
                "spec": {"replicas": preview.desired, "template": {"spec": undo_spec}},
            });
            plan.from = Some(preview.color.clone());
            plan.to = Some(preview.color.clone());
            plan.steps.push(Step::PatchDeployment {
                deployment: preview.deployment.clone(),
                patch,
                why: format!(
                    "new image(s) on the preview slot {}, {replicas} replica(s) like the live slot",
                    preview.color
                ),
                not_live: Some(not_live_guard(app, preview, undo)),
            });
            if req.wait {
                plan.steps.push(Step::WaitRolledOut {
                    deployment: preview.deployment.clone(),
                });
            }
        }
        None => {
            let color = match &req.color {
                Some(c) => c.clone(),
                None => other_color(&live).map(String::from).ok_or_else(|| {
                    Error::Usage(format!(
                        "the live color is {live:?}: name the new slot's color with --color VALUE"
                    ))
                })?,
            };
            if color == live {
                return Err(Error::Usage(format!(
                    "--color {color} is the live color; the new slot needs another"
                )));
            }
            let d = raw(&active.deployment)?;
            let name = match active.deployment.rfind(&live) {
                Some(i) => format!(
                    "{}{color}{}",
                    &active.deployment[..i],
                    &active.deployment[i + live.len()..]
                ),
                None => format!("{}-{color}", active.deployment),
            };
            if snap.deployments.iter().any(|x| {
                x.metadata.namespace.as_deref() == Some(&app.namespace)
                    && x.metadata.name.as_deref() == Some(&name)
            }) {
                return Err(Error::Precondition(
                    Reason::NameTaken,
                    format!(
                        "deployment {name} already exists but is not a slot of app {}: rename it or pass --color",
                        app.name
                    ),
                ));
            }
            let (containers, inits) = image_patch_lists(
                &d["spec"]["template"]["spec"],
                &req.images,
                &active.deployment,
            )?;
            let mut d = copy_as_slot(d, &name, &app.namespace, &app.color_label, &color, replicas);
            for (list, new) in [("containers", containers), ("initContainers", inits)] {
                for c in d["spec"]["template"]["spec"][list]
                    .as_array_mut()
                    .into_iter()
                    .flatten()
                {
                    if let Some(n) = new.iter().find(|n| n["name"] == c["name"]) {
                        c["image"] = n["image"].clone();
                    }
                }
            }
            plan.to = Some(color.clone());
            plan.preconditions.push(format!(
                "app has one slot: the {color} slot is created as a copy of {}",
                active.deployment
            ));
            plan.steps.push(Step::CreateDeployment {
                deployment: name.clone(),
                body: d,
                why: format!(
                    "the {color} slot, a copy of {} with the new image(s)",
                    active.deployment
                ),
            });
            if req.wait {
                plan.steps.push(Step::WaitRolledOut { deployment: name });
            }
        }
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::testkit::*;

    fn images(pairs: &[(&str, &str)]) -> Vec<ImageSpec> {
        pairs
            .iter()
            .map(|(c, i)| ImageSpec {
                container: c.to_string(),
                image: i.to_string(),
            })
            .collect()
    }

    #[test]
    fn set_image_patches_only_the_preview_or_creates_it() {
        let (app, s) = app_of(&fresh());
        let req = SetImageRequest {
            images: images(&[("web", "web:2")]),
            wait: true,
            ..Default::default()
        };
        let plan = set_image(&app, &s, &req).unwrap();
        assert_eq!(
            kinds(&plan),
            ["patch deploy/shop-green", "wait rollout shop-green"]
        );
        let Step::PatchDeployment { patch, .. } = &plan.steps[0] else {
            panic!()
        };
        assert_eq!(
            patch["spec"]["template"]["spec"]["containers"],
            json!([{"name": "web", "image": "web:2"}])
        );
        assert_eq!(patch["spec"]["replicas"], 3, "scaled like the live slot");
        let err = set_image(
            &app,
            &s,
            &SetImageRequest {
                images: images(&[("api", "x:1")]),
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 3);
        assert!(err.to_string().contains("its containers are: web"), "{err}");

        let (app, s) =
            app_of(&[svc("shop", "blue", ""), deploy("shop-blue", "blue", 3, 3)].concat());
        let plan = set_image(
            &app,
            &s,
            &SetImageRequest {
                images: images(&[("*", "web:2")]),
                ..Default::default()
            },
        )
        .unwrap();
        let Step::CreateDeployment {
            deployment, body, ..
        } = &plan.steps[0]
        else {
            panic!()
        };
        assert_eq!(deployment, "shop-green");
        assert_eq!(
            body["spec"]["selector"]["matchLabels"]["bluegreen.io/color"],
            "green"
        );
        assert_eq!(
            body["spec"]["template"]["metadata"]["labels"]["bluegreen.io/color"],
            "green"
        );
        assert_eq!(
            body["spec"]["template"]["spec"]["containers"][0]["image"],
            "web:2"
        );
        assert!(
            body["status"].is_null()
                && body["metadata"]["uid"].is_null()
                && body["metadata"]["resourceVersion"].is_null()
        );
        assert!(
            body["metadata"]["annotations"]
                .get("deployment.kubernetes.io/revision")
                .is_none()
        );
    }
}
