//! The Schedule reconciler: `Ready` when every cron entry, duration and the time zone are
//! valid (else Stalled, with what is wrong), the next planned runs, and the sets using it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::ListParams;
use kube::runtime::controller::Action;
use kube::{Api, Resource, ResourceExt};

use crate::api::schedule::{PlannedRun, ScheduleStatus};
use crate::api::{BackupSet, Schedule};
use crate::operator::conditions::{Health, conditions};
use crate::operator::context::Context;
use crate::operator::error::Error;
use crate::operator::event_reason::EventReason;
use crate::operator::plan::schedule::{upcoming, validate};
use crate::operator::plan::set::until;
use crate::operator::write;

/// Planned runs listed in status.
const LISTED: usize = 5;

pub async fn reconcile(s: Arc<Schedule>, ctx: Arc<Context>) -> Result<Action, Error> {
    ctx.metrics.reconciled("Schedule");
    let ns = s.namespace().unwrap_or_default();
    let name = s.name_any();
    let now = ctx.now();
    let old = s.status.clone();
    let mut status: ScheduleStatus = old.clone().unwrap_or_default();
    let sets: Api<BackupSet> = Api::namespaced(ctx.client.clone(), &ns);
    (status.used_by, status.used_by_count) = crate::api::bounded_names(
        sets.list(&ListParams::default())
            .await
            .map_err(Error::api("listing backup sets"))?
            .items
            .iter()
            .filter(|b| b.spec.schedule_ref.as_ref().is_some_and(|r| r.name == name))
            .map(|b| b.name_any())
            .collect(),
    );
    let (health, wake) = match validate(&s.spec) {
        Ok(v) => {
            let runs = upcoming(&v, now, LISTED);
            status.next_runs = runs
                .iter()
                .map(|(t, l)| PlannedRun {
                    time: Time(*t),
                    level: (*l).into(),
                })
                .collect();
            (
                Health::ready("Ready", format!("valid, in time zone {}", v.tz_name)),
                runs.first().map(|(t, _)| until(now, *t)),
            )
        }
        Err(m) => {
            status.next_runs.clear();
            let was_stalled = old.as_ref().is_some_and(|o| {
                o.conditions
                    .iter()
                    .any(|c| c.type_ == "Stalled" && c.status == "True")
            });
            if !was_stalled {
                ctx.event(
                    &s.object_ref(&()),
                    EventReason::Problem("ScheduleInvalid"),
                    "Validate",
                    m.clone(),
                )
                .await;
            }
            (Health::stalled("ScheduleInvalid", m), None)
        }
    };
    status.observed_generation = s.metadata.generation;
    status.conditions = conditions(&status.conditions, &health, s.metadata.generation, now);
    let api: Api<Schedule> = Api::namespaced(ctx.client.clone(), &ns);
    write::status(&api, &name, old.as_ref(), &status).await?;
    // Refresh the planned runs once the first has passed.
    Ok(Action::requeue(
        wake.unwrap_or(Duration::from_secs(3600))
            .min(Duration::from_secs(3600)),
    ))
}
