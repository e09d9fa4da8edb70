//! The reconcilers against an in-memory API (fast, exact about the writes they make):
//! a due run becomes one Job, Job results become status, missing references stall without a
//! hot loop, a finished Restore never runs again, finalizers follow the deletion policy, an
//! abort suspends the running Job once. The flow test runs the real `holdfast job` process in
//! place of the pod, so status is built from the engine's own output. The same behaviours
//! against the real API server are in the end-to-end suite (`e2e/tests`).
#![allow(clippy::unwrap_used)] // reason: tests

mod support;

use std::sync::Arc;
use std::time::Duration;

use holdfast::api::{BackupSet, Restore, StorageSet};
use holdfast::operator::context::{Context, Settings};
use holdfast::operator::metrics::Metrics;
use holdfast::operator::{backup_set, restore, storage_set};
use kube::runtime::controller::Action;
use serde_json::{Value, json};
use support::fake_api::{Call, FakeApi};

const NOW: &str = "2026-12-01T12:00:00Z";
const SETS: &str = "/apis/holdfast.io/v1alpha1/namespaces/shop/backupsets";
const JOBS: &str = "/apis/batch/v1/namespaces/shop/jobs";

fn context(client: kube::Client) -> Arc<Context> {
    context_at(client, NOW)
}

/// A context whose clock reads `now`.
fn context_at(client: kube::Client, now: &str) -> Arc<Context> {
    let mut ctx = Context::new(
        client,
        Settings {
            image: "ghcr.io/holdfast-io/holdfast:test".into(),
            ..Settings::default()
        },
        Arc::new(Metrics::default()),
        "test",
    );
    let now: jiff::Timestamp = now.parse().unwrap();
    ctx.clock = Arc::new(move || now);
    Arc::new(ctx)
}

/// The shop: Secrets, a bound claim, a StorageSet on S3 and a BackupSet with `spec`.
fn shop(api: &FakeApi, spec: Value) {
    for (name, keys) in [
        // "super-secret-passphrase", "AKIAEXAMPLE123", "wJalrXUtnFEMIEXAMPLEKEY"
        (
            "shop-key",
            json!({"passphrase": "c3VwZXItc2VjcmV0LXBhc3NwaHJhc2U="}),
        ),
        (
            "s3-creds",
            json!({"AWS_ACCESS_KEY_ID": "QUtJQUVYQU1QTEUxMjM=",
                   "AWS_SECRET_ACCESS_KEY": "d0phbHJYVXRuRkVNSUVYQU1QTEVLRVk="}),
        ),
    ] {
        api.put(json!({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": name, "namespace": "shop"}, "data": keys}));
    }
    api.put(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "uploads", "namespace": "shop"},
        "spec": {"accessModes": ["ReadWriteOnce"], "volumeName": "pv-1",
                 "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Bound"}}));
    api.put(
        json!({"apiVersion": "holdfast.io/v1alpha1", "kind": "StorageSet",
        "metadata": {"name": "offsite", "namespace": "shop", "generation": 1},
        "spec": {"s3": {"bucket": "backups", "endpoint": "http://s3.test:9000",
                        "forcePathStyle": true, "credentialsSecretRef": {"name": "s3-creds"}}},
        "status": {"checkedGeneration": 1}}),
    );
    let mut base = json!({"storageSetRef": {"name": "offsite"},
        "sources": [{"name": "uploads", "persistentVolumeClaim": {"claimName": "uploads"}}],
        "encryption": {"keySecretRef": {"name": "shop-key", "key": "passphrase"}}});
    support::fake_api::merge(&mut base, &spec);
    api.put(
        json!({"apiVersion": "holdfast.io/v1alpha1", "kind": "BackupSet",
        "metadata": {"name": "shop", "namespace": "shop"}, "spec": base}),
    );
}

fn set_of(api: &FakeApi) -> Arc<BackupSet> {
    Arc::new(serde_json::from_value(api.get(&format!("{SETS}/shop")).unwrap()).unwrap())
}

async fn reconcile_set(api: &FakeApi, ctx: &Arc<Context>) -> Action {
    backup_set::reconcile(set_of(api), ctx.clone())
        .await
        .unwrap()
}

/// When the action reconciles again (kube-runtime keeps it private; its Debug shows it).
fn requeue(action: &Action) -> Option<Duration> {
    let text = format!("{action:?}");
    let inner = text.split("Some(").nth(1)?.split(')').next()?;
    let (num, unit) = inner.split_at(inner.find(|c: char| c.is_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    Some(Duration::from_secs_f64(match unit {
        "s" => n,
        "ms" => n / 1000.0,
        "µs" | "us" => n / 1e6,
        "ns" => n / 1e9,
        _ => return None,
    }))
}

fn shorts(calls: &[Call]) -> Vec<String> {
    calls.iter().map(Call::short).collect()
}

fn status(api: &FakeApi) -> Value {
    api.get(&format!("{SETS}/shop")).unwrap()["status"].clone()
}

fn condition(status: &Value, t: &str) -> (String, String) {
    let c = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == t)
        .unwrap();
    (
        c["status"].as_str().unwrap().to_owned(),
        c["reason"].as_str().unwrap().to_owned(),
    )
}

/// The Job's pod ended with `message` as termination message, and the Job is `condition`.
fn finish_job(api: &FakeApi, job: &str, message: &str, condition: &str) {
    api.edit(&format!("{JOBS}/{job}"), |j| {
        j["status"] = json!({"conditions": [{"type": condition, "status": "True",
            "lastTransitionTime": "2026-12-01T12:01:00Z"}],
            "startTime": "2026-12-01T12:00:00Z", "completionTime": "2026-12-01T12:01:00Z",
            "succeeded": if condition == "Complete" { 1 } else { 0 }});
    });
    api.put(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": format!("{job}-x"), "namespace": "shop",
                     "labels": {"batch.kubernetes.io/job-name": job}},
        "status": {"phase": "Succeeded", "containerStatuses": [{
            "name": "holdfast", "image": "h", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": 0, "finishedAt": "2026-12-01T12:01:00Z",
                                      "message": message, "reason": "Completed"}}}]}}));
}

/// A shop whose manual full run has just created its Job: the API, the context and the
/// Job's name.
async fn shop_with_a_started_backup() -> (FakeApi, Arc<Context>, String) {
    let (api, client) = FakeApi::new();
    let ctx = context(client);
    shop(
        &api,
        json!({"manualRun": {"token": "one", "level": "full"}}),
    );
    reconcile_set(&api, &ctx).await;
    let job = api.take_writes()[0].body["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    (api, ctx, job)
}

fn backup_message(status: &str, read: u64) -> String {
    let partial = status == "Partial";
    json!({"op": "backup", "label": "full-20261201.120000", "level": "full", "status": status,
           "started": "2026-12-01T12:00:00Z", "finished": "2026-12-01T12:01:00Z",
           "durationMs": 60000, "files": 12, "bytesTotal": read, "bytesRead": read,
           "bytesStored": read / 2, "errorCount": u64::from(partial),
           "sources": [{"name": "uploads", "level": "full", "files": 12, "bytes": read,
                        "errors": u64::from(partial),
                        "status": if partial { "Partial" } else { "Complete" }}],
           "errors": if partial { json!(["uploads:/a: permission denied"]) } else { json!([]) }})
    .to_string()
}

#[tokio::test]
async fn a_manual_token_creates_one_job_then_a_second_reconcile_writes_nothing() {
    let (api, client) = FakeApi::new();
    let ctx = context(client);
    shop(
        &api,
        json!({"manualRun": {"token": "one", "level": "full"}}),
    );

    let action = reconcile_set(&api, &ctx).await;
    let writes = api.take_writes();
    assert_eq!(
        shorts(&writes),
        ["POST jobs", "POST events", "PATCH backupsets/shop/status"],
        "{writes:#?}"
    );
    let job = &writes[0].body;
    let name = job["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("shop-backup-m"), "{name}");
    assert_eq!(
        job["metadata"]["labels"]["app.kubernetes.io/managed-by"],
        "holdfast"
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["kind"], "BackupSet");
    // No Secret value anywhere in what the controller wrote.
    let all = serde_json::to_string(&writes.iter().map(|c| &c.body).collect::<Vec<_>>()).unwrap();
    for secret in [
        "c3VwZXItc2VjcmV0LXBhc3NwaHJhc2U=",
        "super-secret-passphrase",
        "QUtJQUVYQU1QTEUxMjM=",
        "AKIAEXAMPLE123",
        "d0phbHJYVXRuRkVNSUVYQU1QTEVLRVk=",
        "wJalrXUtnFEMIEXAMPLEKEY",
    ] {
        assert!(!all.contains(secret), "{secret} leaked");
    }
    assert_eq!(writes[1].body["reason"], "BackupStarted");
    // Status by server-side apply under the controller's one field manager.
    assert!(
        writes[2].query.contains("fieldManager=holdfast-controller"),
        "{}",
        writes[2].query
    );
    let s = status(&api);
    assert_eq!(s["lastManualToken"], "one");
    assert_eq!(s["phase"], "Running");
    assert_eq!(s["lastRun"]["phase"], "Running");
    // While a job runs, the set is looked at again soon (a stuck pod is noticed).
    assert!(
        requeue(&action).is_some_and(|d| d <= Duration::from_secs(30)),
        "{action:?}"
    );

    let _ = reconcile_set(&api, &ctx).await;
    assert!(
        api.take_writes().is_empty(),
        "the same token twice starts nothing"
    );
}

#[tokio::test]
async fn job_results_complete_partial_and_failed_become_status_events_and_health() {
    for (message, condition_type, phase, failures, stalled) in [
        (
            backup_message("Complete", 1_000_000),
            "Complete",
            "Complete",
            0,
            "False",
        ),
        (
            backup_message("Partial", 1_000_000),
            "Complete",
            "Partial",
            0,
            "False",
        ),
        (
            json!({"op": "failed", "operation": "backup", "category": "NotFound",
                   "message": "bucket backups does not exist"})
            .to_string(),
            "Complete",
            "Failed",
            1,
            "True",
        ),
        // A pod that died without a summary: the Job's own reason is the message.
        ("segfault".to_owned(), "Failed", "Failed", 1, "True"),
    ] {
        let (api, ctx, job) = shop_with_a_started_backup().await;
        finish_job(&api, &job, &message, condition_type);
        reconcile_set(&api, &ctx).await;
        let writes = api.take_writes();
        assert_eq!(
            shorts(&writes),
            ["POST events", "PATCH backupsets/shop/status"],
            "{phase}: {writes:#?}"
        );
        let s = status(&api);
        assert_eq!(s["lastRun"]["phase"], phase, "{s:#}");
        assert_eq!(s["lastRun"]["job"], job.as_str());
        assert_eq!(s["consecutiveFailures"], failures, "{phase}");
        assert_eq!(condition(&s, "Stalled").0, stalled, "{phase}: {s:#}");
        assert_eq!(s["handledJobs"][0], job.as_str());
        let reason = writes[0].body["reason"].as_str().unwrap();
        assert_eq!(reason, format!("Backup{phase}"));
        if phase == "Complete" {
            assert_eq!(
                s["restorePoints"],
                Value::Null,
                "no repository totals in this summary"
            );
            assert!(s["lastSuccessfulTime"].is_string());
        }
        // Taken in once.
        reconcile_set(&api, &ctx).await;
        assert!(api.take_writes().is_empty(), "{phase}: absorbed twice");
    }
}

#[tokio::test]
async fn a_set_whose_storage_set_was_never_checked_waits_without_a_job_then_runs() {
    // A StorageSet with a missing bucket applied in one sync with a set holding a manual
    // token: no run may start (and spend the token) before the storage check has spoken.
    let (api, client) = FakeApi::new();
    let ctx = context(client);
    shop(&api, json!({"manualRun": {"token": "one"}}));
    let storage = "/apis/holdfast.io/v1alpha1/namespaces/shop/storagesets/offsite";
    api.edit(storage, |s| {
        s.as_object_mut().unwrap().remove("status");
    });
    api.take_calls();
    let action = reconcile_set(&api, &ctx).await;
    let writes = api.take_writes();
    assert_eq!(
        shorts(&writes),
        ["POST events", "PATCH backupsets/shop/status"],
        "{writes:#?}"
    );
    assert_eq!(writes[0].body["reason"], "StorageNotChecked");
    assert_eq!(writes[0].body["type"], "Normal", "waiting is not a problem");
    let s = status(&api);
    assert_eq!(s["phase"], "Waiting", "{s:#}");
    assert_eq!(
        condition(&s, "Reconciling"),
        ("True".into(), "StorageNotChecked".into())
    );
    assert_eq!(condition(&s, "Stalled").0, "False");
    assert!(s.get("lastRun").is_none(), "no run recorded: {s:#}");
    assert!(requeue(&action).is_some(), "{action:?}");
    // Still unchecked: nothing written again.
    reconcile_set(&api, &ctx).await;
    assert!(api.take_writes().is_empty());

    // The check passes: the token's run starts.
    api.edit(storage, |s| {
        s["status"] = json!({"checkedGeneration": 1});
    });
    reconcile_set(&api, &ctx).await;
    let writes = api.take_writes();
    assert!(
        shorts(&writes).iter().any(|w| w == "POST jobs"),
        "{:?}",
        shorts(&writes)
    );
}

#[tokio::test]
async fn a_missing_storage_set_or_secret_stalls_with_a_reason_and_no_hot_loop() {
    for (remove, reason) in [
        (
            "/apis/holdfast.io/v1alpha1/namespaces/shop/storagesets/offsite",
            "StorageSetNotFound",
        ),
        (
            "/api/v1/namespaces/shop/secrets/shop-key",
            "KeySecretNotFound",
        ),
        (
            "/api/v1/namespaces/shop/persistentvolumeclaims/uploads",
            "SourceClaimNotFound",
        ),
    ] {
        let (api, client) = FakeApi::new();
        let ctx = context(client);
        shop(&api, json!({"manualRun": {"token": "one"}}));
        api.edit(remove, |_| {});
        // Remove by editing it away: the fake has no delete helper, DELETE through the API.
        let c = kube::Client::clone(&ctx.client);
        let _ = c
            .request::<Value>(http::Request::delete(remove).body(Vec::new()).unwrap())
            .await;
        api.take_calls();
        let action = reconcile_set(&api, &ctx).await;
        let writes = api.take_writes();
        assert_eq!(
            shorts(&writes),
            ["POST events", "PATCH backupsets/shop/status"],
            "{reason}: {writes:#?}"
        );
        assert_eq!(writes[0].body["reason"], reason);
        assert_eq!(writes[0].body["type"], "Warning");
        let s = status(&api);
        assert_eq!(condition(&s, "Stalled"), ("True".into(), reason.into()));
        assert_eq!(condition(&s, "Ready").0, "False");
        assert!(
            requeue(&action).is_some_and(|d| d >= Duration::from_secs(10)),
            "{action:?}"
        );
        // Still missing: no second Event, no status write.
        reconcile_set(&api, &ctx).await;
        assert!(api.take_writes().is_empty(), "{reason}");
    }
}

#[tokio::test]
async fn a_finished_restore_reapplied_or_reconciled_again_does_nothing() {
    let (api, client) = FakeApi::new();
    let ctx = context(client);
    shop(&api, json!({}));
    api.put(
        json!({"apiVersion": "holdfast.io/v1alpha1", "kind": "Restore",
        "metadata": {"name": "copy", "namespace": "shop", "generation": 2},
        "spec": {"backupSetRef": {"name": "shop"},
                 "target": {"persistentVolumeClaim": {"claimName": "uploads"}}},
        "status": {"phase": "Completed", "observedGeneration": 1, "restored": 3}}),
    );
    let r: Restore = serde_json::from_value(
        api.get("/apis/holdfast.io/v1alpha1/namespaces/shop/restores/copy")
            .unwrap(),
    )
    .unwrap();
    api.take_calls();
    let action = restore::reconcile(Arc::new(r), ctx.clone()).await.unwrap();
    assert_eq!(action, Action::await_change());
    let calls = api.take_calls();
    assert_eq!(
        shorts(&calls),
        ["GET restores/copy"],
        "only the read-your-writes GET: {calls:#?}"
    );
}

#[tokio::test]
async fn finalizers_follow_the_deletion_policy() {
    // Retain: no finalizer, ever.
    let (api, client) = FakeApi::new();
    let ctx = context(client);
    shop(&api, json!({}));
    reconcile_set(&api, &ctx).await;
    assert!(
        !shorts(&api.take_writes()).contains(&"PATCH backupsets/shop".to_owned()),
        "a Retain set gets no finalizer"
    );

    // Purge: the finalizer, then on deletion the repository deletion job, then release.
    let (api, client) = FakeApi::new();
    let ctx = context(client);
    shop(&api, json!({"deletionPolicy": "Purge"}));
    reconcile_set(&api, &ctx).await;
    let writes = api.take_writes();
    assert_eq!(shorts(&writes)[0], "PATCH backupsets/shop");
    assert_eq!(
        writes[0].body["metadata"]["finalizers"],
        json!(["holdfast.io/cleanup"])
    );
    api.edit(&format!("{SETS}/shop"), |o| {
        o["metadata"]["deletionTimestamp"] = json!("2026-12-01T12:00:00Z");
    });
    reconcile_set(&api, &ctx).await;
    let writes = api.take_writes();
    assert_eq!(shorts(&writes), ["POST jobs", "POST events"], "{writes:#?}");
    let job = writes[0].body["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(job, "shop-delete-repository-final");
    assert!(
        writes[0].body["metadata"]["ownerReferences"].is_null(),
        "not owned by the set"
    );
    finish_job(
        &api,
        &job,
        &json!({"op": "delete-repository", "objectsDeleted": 10, "bytesDeleted": 1000}).to_string(),
        "Complete",
    );
    reconcile_set(&api, &ctx).await;
    let writes = api.take_writes();
    assert_eq!(
        shorts(&writes),
        [
            "POST events",
            "DELETE jobs/shop-delete-repository-final",
            "PATCH backupsets/shop"
        ],
        "{writes:#?}"
    );
    assert_eq!(writes[2].body["metadata"]["finalizers"], json!([]));
    assert!(
        api.get(&format!("{SETS}/shop")).is_none(),
        "the set is gone"
    );
}

#[tokio::test]
async fn the_abort_annotation_suspends_the_running_backup_once() {
    let (api, ctx, job) = shop_with_a_started_backup().await;
    api.edit(&format!("{JOBS}/{job}"), |j| {
        j["status"] = json!({"active": 1, "startTime": "2026-12-01T12:00:00Z"});
    });
    api.edit(&format!("{SETS}/shop"), |o| {
        o["metadata"]["annotations"] = json!({"holdfast.io/abort": "stop-1"});
    });
    reconcile_set(&api, &ctx).await;
    let writes = api.take_writes();
    assert_eq!(
        shorts(&writes),
        [
            format!("PATCH jobs/{job}"),
            "POST events".into(),
            "PATCH backupsets/shop/status".into()
        ],
        "{writes:#?}"
    );
    assert_eq!(writes[0].body["spec"]["suspend"], true);
    assert_eq!(
        writes[0].body["metadata"]["annotations"]["holdfast.io/aborted"],
        "true"
    );
    assert_eq!(status(&api)["lastAbortToken"], "stop-1");
    reconcile_set(&api, &ctx).await;
    let writes = api.take_writes();
    assert!(
        !shorts(&writes).iter().any(|w| w.starts_with("PATCH jobs")),
        "aborted once: {writes:#?}"
    );
}

#[tokio::test]
async fn a_storage_set_starts_a_check_and_takes_its_result_in() {
    let (api, client) = FakeApi::new();
    let ctx = context(client);
    shop(&api, json!({}));
    let path = "/apis/holdfast.io/v1alpha1/namespaces/shop/storagesets/offsite";
    // New: never checked.
    api.edit(path, |s| {
        s.as_object_mut().unwrap().remove("status");
    });
    let s: StorageSet = serde_json::from_value(api.get(path).unwrap()).unwrap();
    storage_set::reconcile(Arc::new(s), ctx.clone())
        .await
        .unwrap();
    let writes = api.take_writes();
    assert_eq!(
        shorts(&writes),
        ["POST jobs", "PATCH storagesets/offsite/status"],
        "{writes:#?}"
    );
    let job = writes[0].body["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let st = api.get(path).unwrap()["status"].clone();
    assert_eq!(condition(&st, "Reconciling").0, "True", "checking: {st:#}");
    finish_job(
        &api,
        &job,
        &json!({"op": "storage-check", "ok": false, "items": [
            {"check": "bucket", "ok": false, "detail": "bucket backups does not exist"}]})
        .to_string(),
        "Complete",
    );
    let s: StorageSet = serde_json::from_value(api.get(path).unwrap()).unwrap();
    storage_set::reconcile(Arc::new(s), ctx.clone())
        .await
        .unwrap();
    let writes = api.take_writes();
    assert_eq!(
        shorts(&writes),
        ["POST events", "PATCH storagesets/offsite/status"],
        "{writes:#?}"
    );
    let st = api.get(path).unwrap()["status"].clone();
    assert_eq!(
        condition(&st, "Ready"),
        ("False".into(), "StorageCheckFailed".into())
    );
    assert!(
        st["failedChecks"][0]
            .as_str()
            .unwrap()
            .contains("does not exist")
    );
}

/// The flow: the reconciler's Job, run by the real `holdfast job run` (its plan and paths
/// mapped onto temporary directories, as the pod's volumes would be), its summary as the
/// pod's termination message, and status built from it.
#[tokio::test]
async fn flow_backup_and_restore_through_the_real_job_process() {
    let (api, client) = FakeApi::new();
    let ctx = context(client);
    let dir = tempfile::tempdir().unwrap();
    let (data, storage, key) = (
        dir.path().join("uploads"),
        dir.path().join("storage"),
        dir.path().join("key"),
    );
    std::fs::create_dir_all(data.join("docs")).unwrap();
    std::fs::write(data.join("docs/a.txt"), b"hello").unwrap();
    std::fs::write(data.join("big.bin"), vec![7u8; 300_000]).unwrap();
    std::fs::create_dir_all(&storage).unwrap();
    std::fs::create_dir_all(&key).unwrap();
    std::fs::write(key.join("passphrase"), b"flow passphrase\n").unwrap();
    shop(
        &api,
        json!({"manualRun": {"token": "one", "level": "full"}}),
    );
    api.edit(
        "/apis/holdfast.io/v1alpha1/namespaces/shop/storagesets/offsite",
        |s| {
            s["spec"] = json!({"filesystem": {"persistentVolumeClaim": {"claimName": "backups"}}});
        },
    );
    api.put(json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "backups", "namespace": "shop"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
        "status": {"phase": "Bound"}}));
    reconcile_set(&api, &ctx).await;
    let job = api.take_writes()[0].body.clone();
    let name = job["metadata"]["name"].as_str().unwrap().to_owned();
    let message = run_job(
        &job,
        &[
            ("/holdfast/sources/uploads", data.to_str().unwrap()),
            ("/holdfast/storage", storage.to_str().unwrap()),
            ("/holdfast/key", key.to_str().unwrap()),
        ],
    );
    finish_job(&api, &name, &message, "Complete");
    reconcile_set(&api, &ctx).await;
    let s = status(&api);
    assert_eq!(s["lastRun"]["phase"], "Complete", "{s:#}");
    assert_eq!(s["lastRun"]["files"], 2);
    assert_eq!(s["lastRun"]["bytesRead"], 300_005);
    assert_eq!(s["restorePoints"]["count"], 1, "{s:#}");
    assert_eq!(s["sources"][0]["lastLevel"], "full");
    assert!(s["usage"]["storedBytes"].as_u64().unwrap() > 0);
}

/// Run a Job's container locally: its plan from `HOLDFAST_JOB_PLAN` with the pod's paths
/// replaced, the key file, and the summary file; the summary.
fn run_job(job: &Value, paths: &[(&str, &str)]) -> String {
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    let env = container["env"].as_array().unwrap();
    let mut plan = env
        .iter()
        .find(|e| e["name"] == "HOLDFAST_JOB_PLAN")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut key_file = env
        .iter()
        .find(|e| e["name"] == "HOLDFAST_KEY_FILE")
        .unwrap()["value"]
        .as_str()
        .unwrap()
        .to_owned();
    for (pod, local) in paths {
        plan = plan.replace(pod, local);
        key_file = key_file.replace(pod, local);
    }
    let dir = tempfile::tempdir().unwrap();
    let summary = dir.path().join("summary");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["job", "run"])
        .env("HOLDFAST_JOB_PLAN", &plan)
        .env("HOLDFAST_KEY_FILE", &key_file)
        .env("HOLDFAST_SUMMARY_FILE", &summary)
        .env("HOLDFAST_LOCK_HOLDER", "flow-test")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "holdfast job run: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        plan
    );
    std::fs::read_to_string(summary).unwrap()
}

#[tokio::test]
async fn a_set_on_an_older_sets_repository_stalls_from_the_watch_cache_without_listing_sets() {
    let (api, client) = FakeApi::new();
    let ctx = context(client);
    shop(&api, json!({"manualRun": {"token": "one"}}));
    let mut older: BackupSet = serde_json::from_value(json!({
        "apiVersion": "holdfast.io/v1alpha1", "kind": "BackupSet",
        "metadata": {"name": "legacy", "namespace": "shop", "uid": "u-legacy",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"storageSetRef": {"name": "offsite"}, "repository": "shop/shop",
                 "sources": [{"name": "uploads", "persistentVolumeClaim": {"claimName": "uploads"}}],
                 "encryption": {"keySecretRef": {"name": "shop-key", "key": "passphrase"}}}}))
    .unwrap();
    let mut mine = (*set_of(&api)).clone();
    mine.metadata.uid = Some("u-shop".into());
    mine.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        "2026-06-01T00:00:00Z".parse().unwrap(),
    ));
    api.edit(&format!("{SETS}/shop"), |o| {
        o["metadata"]["uid"] = json!("u-shop");
        o["metadata"]["creationTimestamp"] = json!("2026-06-01T00:00:00Z");
    });
    // The watch cache holds both sets; the API itself does not know the older one, so only
    // the cache can tell the reconcile about it.
    let (reader, mut writer) = kube::runtime::reflector::store::<BackupSet>();
    for e in [
        kube::runtime::watcher::Event::InitApply(older.clone()),
        kube::runtime::watcher::Event::InitApply(mine),
        kube::runtime::watcher::Event::InitDone,
    ] {
        writer.apply_watcher_event(&e);
    }
    ctx.set_stores.insert(Some("shop"), reader);
    api.take_calls();
    reconcile_set(&api, &ctx).await;
    let calls = api.take_calls();
    assert!(
        !calls
            .iter()
            .any(|c| c.method == "GET" && c.path.ends_with("/backupsets")),
        "siblings come from the cache, not a list: {calls:#?}"
    );
    let s = status(&api);
    assert_eq!(
        condition(&s, "Stalled"),
        ("True".into(), "RepositoryClaimed".into())
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.is_write() && c.path.contains("/jobs")),
        "no Job for a claimed repository: {calls:#?}"
    );
    // Once the older set moves elsewhere, the same cache lets this one through.
    older.spec.repository = Some("shop/legacy".into());
    writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(older));
    reconcile_set(&api, &ctx).await;
    assert_eq!(condition(&status(&api), "Stalled").0, "False");
}

/// A second StorageSet `vault-store` (another bucket and region) with keys of its own.
fn vault_store(api: &FakeApi) {
    api.put(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "vault-creds", "namespace": "shop"},
        "data": {"AWS_ACCESS_KEY_ID": "QUtJQVZBVUxU", "AWS_SECRET_ACCESS_KEY": "dmF1bHQ="}}));
    api.put(
        json!({"apiVersion": "holdfast.io/v1alpha1", "kind": "StorageSet",
        "metadata": {"name": "vault-store", "namespace": "shop", "generation": 1},
        "spec": {"s3": {"bucket": "vault", "region": "eu-north-1",
                        "credentialsSecretRef": {"name": "vault-creds"}}}}),
    );
}

/// The shop with a copy `vault` in a second StorageSet (another bucket, its own keys), and
/// its manual backup's Job finished Complete.
async fn shop_with_a_copy_and_a_recorded_run() -> (FakeApi, Arc<Context>) {
    let (api, client) = FakeApi::new();
    let ctx = context(client);
    vault_store(&api);
    shop(
        &api,
        json!({"manualRun": {"token": "one", "level": "full"},
               "copies": [{"name": "vault", "storageSetRef": {"name": "vault-store"}}]}),
    );
    reconcile_set(&api, &ctx).await;
    let backup = api.take_writes()[0].body["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    finish_job(
        &api,
        &backup,
        &backup_message("Complete", 1_000_000),
        "Complete",
    );
    (api, ctx)
}

fn env_of(job: &Value) -> Vec<Value> {
    job["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_copy_follows_a_recorded_run_with_its_own_keys_and_a_failed_copy_waits_longer() {
    let (api, ctx) = shop_with_a_copy_and_a_recorded_run().await;
    reconcile_set(&api, &ctx).await;
    let writes = api.take_writes();
    assert_eq!(
        shorts(&writes),
        [
            "POST events",
            "POST jobs",
            "POST events",
            "PATCH backupsets/shop/status"
        ],
        "{writes:#?}"
    );
    let job = &writes[1].body;
    let name = job["metadata"]["name"].as_str().unwrap().to_owned();
    assert_eq!(name, "shop-copy-vault-20261201120000");
    assert_eq!(job["metadata"]["labels"]["holdfast.io/copy"], "vault");
    assert_eq!(job["metadata"]["labels"]["holdfast.io/operation"], "copy");
    assert_eq!(writes[2].body["reason"], "CopyStarted");
    let env = env_of(job);
    let plan: Value = serde_json::from_str(
        env.iter()
            .find(|e| e["name"] == "HOLDFAST_JOB_PLAN")
            .unwrap()["value"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(plan["operation"]["type"], "copy");
    assert_eq!(
        plan["operation"]["to"]["url"],
        "s3://vault/shop/shop?region=eu-north-1"
    );
    assert_eq!(plan["operation"]["to"]["create"], true);
    assert!(
        plan["repository"]["url"]
            .as_str()
            .unwrap()
            .starts_with("s3://backups/shop/shop")
    );
    // Each StorageSet's keys under their own names, from their own Secrets.
    let from_secret = |var: &str| {
        env.iter().find(|e| e["name"] == var).map(|e| {
            let r = &e["valueFrom"]["secretKeyRef"];
            (
                r["name"].as_str().unwrap().to_owned(),
                r["key"].as_str().unwrap().to_owned(),
            )
        })
    };
    assert_eq!(
        from_secret("AWS_ACCESS_KEY_ID"),
        Some(("s3-creds".into(), "AWS_ACCESS_KEY_ID".into()))
    );
    assert_eq!(
        from_secret("HOLDFAST_COPY_AWS_SECRET_ACCESS_KEY"),
        Some(("vault-creds".into(), "AWS_SECRET_ACCESS_KEY".into()))
    );
    let s = status(&api);
    assert_eq!(s["copies"][0]["target"], "vault-store/shop/shop", "{s:#}");
    assert_eq!(s["copies"][0]["lastAttempt"], NOW);

    // While it runs, nothing more.
    reconcile_set(&api, &ctx).await;
    assert!(
        !shorts(&api.take_writes()).contains(&"POST jobs".to_owned()),
        "one copy Job at a time"
    );

    // It fails: counted, its reason kept, and the next waits a minute.
    let failure = json!({"op": "failed", "operation": "copy", "category": "BucketNotFound",
                         "message": "bucket vault does not exist"});
    finish_job(&api, &name, &failure.to_string(), "Complete");
    let action = reconcile_set(&api, &ctx).await;
    let writes = api.take_writes();
    assert_eq!(
        shorts(&writes),
        ["POST events", "PATCH backupsets/shop/status"],
        "{writes:#?}"
    );
    assert_eq!(writes[0].body["reason"], "CopyFailed");
    let s = status(&api);
    assert_eq!(s["copies"][0]["consecutiveFailures"], 1, "{s:#}");
    assert!(
        s["copies"][0]["lastError"]
            .as_str()
            .unwrap()
            .contains("bucket vault does not exist")
    );
    assert!(
        requeue(&action).unwrap() <= Duration::from_secs(60),
        "{action:?}"
    );
    assert_eq!(
        condition(&s, "Ready").0,
        "True",
        "a failing copy does not stop backups"
    );

    // A minute later it runs again; this time it copies, and is caught up.
    let later = context_at(ctx.client.clone(), "2026-12-01T12:01:30Z");
    reconcile_set(&api, &later).await;
    let writes = api.take_writes();
    let retry = writes
        .iter()
        .find(|w| w.short() == "POST jobs")
        .expect("a second copy Job")
        .body["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(retry, "shop-copy-vault-20261201120130");
    let behind = r#"holdfast_copy_behind_seconds{namespace="shop",backup_set="shop",copy="vault"}"#;
    let failures =
        r#"holdfast_copy_consecutive_failures{namespace="shop",backup_set="shop",copy="vault"}"#;
    let metrics = later.metrics.render();
    assert!(
        metrics.contains(&format!("{behind} 30")),
        "lacking the 12:01:00 run for 30 s: {metrics}"
    );
    assert!(metrics.contains(&format!("{failures} 1")), "{metrics}");
    let copied = json!({"op": "copy", "name": "vault", "created": true,
        "runsCopied": ["full-20261201.120000"], "runsCopiedCount": 1, "bytesMoved": 500000,
        "blobsMoved": 3, "volumesWritten": 1, "durationMs": 900,
        "repository": {"volumes": 1, "bytes": 500000, "runs": 1}});
    finish_job(&api, &retry, &copied.to_string(), "Complete");
    api.edit(&format!("{JOBS}/{retry}"), |j| {
        j["status"]["startTime"] = json!("2026-12-01T12:01:30Z");
    });
    reconcile_set(&api, &later).await;
    let writes = api.take_writes();
    assert_eq!(
        shorts(&writes),
        ["POST events", "PATCH backupsets/shop/status"],
        "{writes:#?}"
    );
    assert_eq!(writes[0].body["reason"], "CopyComplete");
    let s = status(&api);
    let c = &s["copies"][0];
    assert_eq!(
        (
            &c["caughtUpTo"],
            &c["consecutiveFailures"],
            &c["runsCopied"],
            &c["totalBytesMoved"]
        ),
        (
            &json!("2026-12-01T12:01:30Z"),
            &json!(0),
            &json!(1),
            &json!(500000)
        ),
        "{s:#}"
    );
    assert!(c.get("lastError").is_none(), "{c}");
    let metrics = later.metrics.render();
    assert!(metrics.contains(&format!("{behind} 0")), "{metrics}");
    assert!(metrics.contains(&format!("{failures} 0")), "{metrics}");
    // Caught up: nothing until the next run.
    reconcile_set(&api, &later).await;
    assert!(!shorts(&api.take_writes()).contains(&"POST jobs".to_owned()));
}

#[tokio::test]
async fn a_copy_kept_in_the_sets_own_repository_stalls_with_the_way_out() {
    let (api, client) = FakeApi::new();
    let ctx = context(client);
    shop(
        &api,
        json!({"copies": [{"name": "again", "storageSetRef": {"name": "offsite"}}]}),
    );
    reconcile_set(&api, &ctx).await;
    let s = status(&api);
    let (stalled, reason) = condition(&s, "Stalled");
    assert_eq!(
        (stalled.as_str(), reason.as_str()),
        ("True", "CopyOverlapsRepository"),
        "{s:#}"
    );
    assert!(api.take_writes().iter().all(|w| w.short() != "POST jobs"));
    // Another path in the same StorageSet is another place.
    api.edit(&format!("{SETS}/shop"), |s| {
        s["spec"]["copies"][0]["repository"] = json!("copies/shop");
    });
    reconcile_set(&api, &ctx).await;
    assert_eq!(condition(&status(&api), "Stalled").0, "False");
}

#[tokio::test]
async fn the_purge_window_purges_each_copy_by_its_own_retention_with_its_own_keys() {
    let (api, client) = FakeApi::new();
    let ctx = context_at(client, "2026-12-01T12:00:30Z");
    vault_store(&api);
    api.put(
        json!({"apiVersion": "holdfast.io/v1alpha1", "kind": "Schedule",
        "metadata": {"name": "nightly", "namespace": "shop"},
        "spec": {"timeZone": "UTC", "full": "0 1 * * 6", "purge": "0 12 * * *"}}),
    );
    shop(
        &api,
        json!({"scheduleRef": {"name": "nightly"}, "retention": {"keepFulls": 4},
               "copies": [{"name": "vault", "storageSetRef": {"name": "vault-store"},
                           "retention": {"keepFulls": 12}}]}),
    );
    api.edit(&format!("{SETS}/shop"), |s| {
        s["metadata"]["creationTimestamp"] = json!("2026-12-01T11:00:00Z");
    });
    reconcile_set(&api, &ctx).await;
    let writes = api.take_writes();
    let jobs: Vec<&Value> = writes
        .iter()
        .filter(|w| w.short() == "POST jobs")
        .map(|w| &w.body)
        .collect();
    let names: Vec<&str> = jobs
        .iter()
        .map(|j| j["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["shop-purge-202612011200", "shop-purge-vault-202612011200"],
        "{writes:#?}"
    );
    let plan_of = |job: &Value| -> Value {
        let env = env_of(job);
        serde_json::from_str(
            env.iter()
                .find(|e| e["name"] == "HOLDFAST_JOB_PLAN")
                .unwrap()["value"]
                .as_str()
                .unwrap(),
        )
        .unwrap()
    };
    let (own, copy) = (plan_of(jobs[0]), plan_of(jobs[1]));
    assert_eq!(own["operation"]["retention"]["keepFulls"], 4);
    assert_eq!(copy["operation"]["type"], "purge");
    assert_eq!(copy["operation"]["retention"]["keepFulls"], 12, "{copy:#}");
    assert_eq!(
        copy["repository"]["url"],
        "s3://vault/shop/shop?region=eu-north-1"
    );
    // The copy's repository is this pod's only one: its keys under the usual names.
    let key = env_of(jobs[1])
        .into_iter()
        .find(|e| e["name"] == "AWS_ACCESS_KEY_ID")
        .unwrap();
    assert_eq!(key["valueFrom"]["secretKeyRef"]["name"], "vault-creds");
    assert_eq!(jobs[1]["metadata"]["labels"]["holdfast.io/copy"], "vault");
    assert_ne!(
        jobs[1]["metadata"]["labels"]["holdfast.io/repository"],
        jobs[0]["metadata"]["labels"]["holdfast.io/repository"],
        "the copy's own repository"
    );

    // A reconcile again makes neither twice.
    reconcile_set(&api, &ctx).await;
    assert!(!shorts(&api.take_writes()).contains(&"POST jobs".to_owned()));

    // The copy's result goes to the copy's entry, not the set's.
    let purged = json!({"op": "purge", "runsExpiredCount": 2, "runsKept": 12,
        "bytesReclaimed": 4096, "durationMs": 10, "runsExpired": ["full-1", "full-2"],
        "repository": {"volumes": 3, "bytes": 70000, "runs": 12}});
    finish_job(
        &api,
        "shop-purge-vault-202612011200",
        &purged.to_string(),
        "Complete",
    );
    reconcile_set(&api, &ctx).await;
    let writes = api.take_writes();
    let event = writes.iter().find(|w| w.short() == "POST events").unwrap();
    assert_eq!(event.body["reason"], "PurgeComplete");
    assert!(
        event.body["note"]
            .as_str()
            .unwrap_or_default()
            .starts_with("copy vault:"),
        "{event:#?}"
    );
    let s = status(&api);
    assert_eq!(s["copies"][0]["retention"]["runsExpired"], 2, "{s:#}");
    assert_eq!(s["copies"][0]["storedBytes"], 70000);
    assert!(
        s.get("retention").is_none(),
        "the set's own purge has not ended: {s:#}"
    );
}

#[tokio::test]
async fn a_braked_purge_says_so_and_the_approval_annotation_runs_exactly_its_plan() {
    let (api, client) = FakeApi::new();
    let ctx = context_at(client, "2026-12-01T12:00:30Z");
    api.put(
        json!({"apiVersion": "holdfast.io/v1alpha1", "kind": "Schedule",
        "metadata": {"name": "nightly", "namespace": "shop"},
        "spec": {"timeZone": "UTC", "full": "0 1 * * 6", "purge": "0 12 * * *"}}),
    );
    shop(
        &api,
        json!({"scheduleRef": {"name": "nightly"}, "retention": {"keepFulls": 1}}),
    );
    api.edit(&format!("{SETS}/shop"), |s| {
        s["metadata"]["creationTimestamp"] = json!("2026-12-01T11:00:00Z");
    });
    reconcile_set(&api, &ctx).await;
    let writes = api.take_writes();
    let job = writes.iter().find(|w| w.short() == "POST jobs").unwrap();
    let plan_of = |job: &Value| -> Value {
        serde_json::from_str(
            env_of(job)
                .iter()
                .find(|e| e["name"] == "HOLDFAST_JOB_PLAN")
                .unwrap()["value"]
                .as_str()
                .unwrap(),
        )
        .unwrap()
    };
    assert_eq!(
        plan_of(&job.body)["operation"]["brakePercent"],
        50,
        "the default brake"
    );
    let name = job.body["metadata"]["name"].as_str().unwrap().to_owned();
    let braked = json!({"op": "purge", "runsExpiredCount": 0, "runsKept": 8, "durationMs": 10,
        "braked": {"reason": "it would expire 7 of 8 restore points (87%), more than the 50% one purge may expire",
                   "plan": "0123456789abcdef", "runsCount": 7, "runs": ["full-1", "full-2"]}});
    finish_job(&api, &name, &braked.to_string(), "Complete");
    reconcile_set(&api, &ctx).await;
    let writes = api.take_writes();
    let event = writes.iter().find(|w| w.short() == "POST events").unwrap();
    assert_eq!(event.body["reason"], "PurgeBraked");
    assert_eq!(event.body["type"], "Warning");
    let s = status(&api);
    assert_eq!(
        s["retention"]["awaitingApproval"]["plan"], "0123456789abcdef",
        "{s:#}"
    );
    assert_eq!(s["retention"]["runsExpired"], 0);
    let (on, reason) = condition(&s, "AwaitingApproval");
    assert_eq!((on.as_str(), reason.as_str()), ("True", "PurgeBraked"));
    assert_eq!(condition(&s, "Ready").0, "True", "backups go on");
    // Reconciled again, nothing changes (the condition keeps its time).
    reconcile_set(&api, &ctx).await;
    assert!(api.take_writes().is_empty());

    // Approved: a purge now, carrying the approval.
    api.edit(&format!("{SETS}/shop"), |s| {
        s["metadata"]["annotations"] = json!({"holdfast.io/approve-purge": "0123456789abcdef"});
    });
    reconcile_set(&api, &ctx).await;
    let writes = api.take_writes();
    let approved = writes
        .iter()
        .find(|w| w.short() == "POST jobs")
        .expect("a purge on approval");
    assert_eq!(
        plan_of(&approved.body)["operation"]["approved"],
        json!(["0123456789abcdef"])
    );
    let approved_name = approved.body["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    reconcile_set(&api, &ctx).await;
    assert!(
        !shorts(&api.take_writes()).contains(&"POST jobs".to_owned()),
        "once"
    );
    let done = json!({"op": "purge", "runsExpiredCount": 7, "runsKept": 1, "durationMs": 10,
        "runsExpired": ["full-1"]});
    finish_job(&api, &approved_name, &done.to_string(), "Complete");
    reconcile_set(&api, &ctx).await;
    let s = status(&api);
    assert!(s["retention"].get("awaitingApproval").is_none(), "{s:#}");
    assert_eq!(condition(&s, "AwaitingApproval").0, "False");
}

#[tokio::test]
async fn four_purge_sets_deleted_together_wait_each_for_its_approval() {
    let (api, client) = FakeApi::new();
    let ctx = context(client);
    shop(&api, json!({"deletionPolicy": "Purge"}));
    reconcile_set(&api, &ctx).await;
    api.edit(&format!("{SETS}/shop"), |o| {
        o["metadata"]["deletionTimestamp"] = json!("2026-12-01T11:58:00Z");
        o["metadata"]["uid"] = json!("u-shop");
    });
    // Three more sets of other namespaces deleted within minutes, as the watch cache sees
    // them.
    let (reader, mut writer) = kube::runtime::reflector::store::<BackupSet>();
    let mut events = vec![kube::runtime::watcher::Event::InitApply(
        (*set_of(&api)).clone(),
    )];
    for (i, at) in [
        "2026-12-01T11:55:00Z",
        "2026-12-01T11:57:00Z",
        "2026-12-01T11:59:30Z",
    ]
    .iter()
    .enumerate()
    {
        let other: BackupSet = serde_json::from_value(json!({
            "apiVersion": "holdfast.io/v1alpha1", "kind": "BackupSet",
            "metadata": {"name": format!("app{i}"), "namespace": format!("team{i}"),
                         "uid": format!("u-{i}"), "deletionTimestamp": at,
                         "finalizers": ["holdfast.io/cleanup"]},
            "spec": {"storageSetRef": {"name": "offsite"}, "deletionPolicy": "Purge",
                     "sources": [{"name": "a", "persistentVolumeClaim": {"claimName": "a"}}],
                     "encryption": {"keySecretRef": {"name": "k", "key": "p"}}}}))
        .unwrap();
        events.push(kube::runtime::watcher::Event::InitApply(other));
    }
    events.push(kube::runtime::watcher::Event::InitDone);
    for e in &events {
        writer.apply_watcher_event(e);
    }
    ctx.set_stores.insert(None, reader);
    reconcile_set(&api, &ctx).await;
    let writes = api.take_writes();
    assert!(
        !shorts(&writes).contains(&"POST jobs".to_owned()),
        "{writes:#?}"
    );
    let event = writes.iter().find(|w| w.short() == "POST events").unwrap();
    assert_eq!(event.body["reason"], "DeletionBraked");
    let s = status(&api);
    let (stalled, reason) = condition(&s, "Stalled");
    assert_eq!(
        (stalled.as_str(), reason.as_str()),
        ("True", "DeletionBraked")
    );
    let message = s["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Stalled")
        .unwrap()["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("4 sets") && message.contains("holdfast.io/approve-deletion=true"),
        "{message}"
    );

    // Approved, this one's repository goes.
    api.edit(&format!("{SETS}/shop"), |o| {
        o["metadata"]["annotations"] = json!({"holdfast.io/approve-deletion": "true"});
    });
    reconcile_set(&api, &ctx).await;
    assert_eq!(shorts(&api.take_writes())[0], "POST jobs");
}
