//! What the controller refuses, or waits for, before it starts anything: a repository inside
//! another set's, a "new" claim that already exists, a Secret without the key a set names,
//! a StorageSet whose bucket does not exist; and what it does when a job pod cannot mount
//! its key or is refused by Pod Security admission, or a manual token is reverted. Each was
//! found trying Holdfast as a new user.
#![allow(clippy::unwrap_used)] // reason: tests

use std::collections::BTreeSet;
use std::path::PathBuf;

use holdfast_e2e::harness::{claim, condition, events};
use holdfast_e2e::scenario::{PASSPHRASE, RUN, SOON, Shop, Target, set_manifest};
use serde_json::Value;

/// The BackupSet `name` over the `uploads` claim; `extra` is more YAML of its spec.
fn named_set(name: &str, extra: &str) -> String {
    set_manifest(extra).replace(
        "metadata: {name: shop}",
        &format!("metadata: {{name: {name}}}"),
    )
}

async fn jobs_of(shop: &Shop, prefix: &str) -> Vec<String> {
    shop.jobs()
        .await
        .into_iter()
        .filter(|j| j.starts_with(prefix))
        .collect()
}

/// The repository URL of set `name` in this scenario's bucket (the CLI's view).
fn repository_of(shop: &Shop, path: &str) -> String {
    format!(
        "s3://{}/{}/{path}?endpoint={}&path_style=true&region=us-east-1",
        shop.c.s3_bucket, shop.ns, shop.c.s3_endpoint
    )
}

/// `holdfast <args> --json` against `url`, as an operator would run it from outside.
fn cli_at(shop: &Shop, url: &str, args: &[&str]) -> (i32, Value, String) {
    let bin = std::env::var("HOLDFAST_BIN").unwrap_or_else(|_| "holdfast".into());
    let out = std::process::Command::new(bin)
        .arg("--repo")
        .arg(url)
        .arg("--json")
        .args(args)
        .env("HOLDFAST_PASSPHRASE", PASSPHRASE)
        .env("AWS_ACCESS_KEY_ID", &shop.c.s3_access_key)
        .env("AWS_SECRET_ACCESS_KEY", &shop.c.s3_secret_key)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_slice(&out.stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_repository_inside_another_sets_is_refused_and_deleting_the_outer_set_spares_it() {
    let shop = Shop::new("nested", Target::S3).await;
    let ns = shop.ns.clone();
    shop.apply(&named_set(
        "outer",
        "  deletionPolicy: Purge\n  manualRun: {token: one, level: full}\n",
    ));
    shop.wait("BackupSet", "outer", "the outer run", RUN, |o| {
        (o.pointer("/status/lastRun/phase")? == "Complete").then_some(())
    })
    .await;

    // A set keeping its repository inside the outer one's: refused, nothing runs.
    shop.apply(&named_set(
        "inner",
        &format!("  repository: {ns}/outer/nested\n  manualRun: {{token: one, level: full}}\n"),
    ));
    let message = shop
        .stalled("BackupSet", "inner", "RepositoryClaimed")
        .await;
    assert!(
        message.contains("outer") && message.contains("around this set's"),
        "{message}"
    );
    assert!(
        jobs_of(&shop, "inner-").await.is_empty(),
        "no job for inner"
    );
    // The engine refuses it too, from outside the cluster.
    let inner_url = repository_of(&shop, &format!("{ns}/outer/nested"));
    let (code, _, err) = cli_at(&shop, &inner_url, &["init"]);
    assert_eq!(code, 16, "{err}");
    assert!(err.contains("lies inside the repository"), "{err}");

    // One made by a build before that refusal: copied in beside the outer repository's own
    // objects, straight into the bucket's directory.
    let (code, _, err) = cli_at(&shop, &repository_of(&shop, "elsewhere"), &["init"]);
    assert_eq!(code, 0, "{err}");
    let bucket: PathBuf = shop.c.s3_dir.join(&shop.c.s3_bucket).join(&ns);
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(bucket.join("elsewhere"))
        .arg(bucket.join(&ns).join("outer/nested"))
        .status()
        .unwrap();
    assert!(status.success());
    let (code, runs, err) = cli_at(&shop, &inner_url, &["runs"]);
    assert_eq!((code, runs.as_array().map(Vec::len)), (0, Some(0)), "{err}");

    // Deleting the outer set (Purge) deletes nothing while another repository is inside:
    // the set says why, and the inner repository is intact.
    shop.c.kubectl_ok(
        &["delete", "backupset", "outer", "-n", &ns, "--wait=false"],
        None,
    );
    // (the deletion job is retried by Kubernetes before it counts as failed)
    let message = shop
        .stalled_within("BackupSet", "outer", "PurgeFailed", RUN)
        .await;
    assert!(message.contains("nested/"), "{message}");
    let (code, _, err) = cli_at(&shop, &inner_url, &["runs"]);
    assert_eq!(code, 0, "the inner repository survives: {err}");
    let (code, runs, err) = cli_at(
        &shop,
        &repository_of(&shop, &format!("{ns}/outer")),
        &["runs"],
    );
    assert_eq!((code, runs.as_array().map(Vec::len)), (0, Some(1)), "{err}");
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_new_claim_that_already_exists_is_refused_and_keeps_its_data() {
    let shop = Shop::new("newclaim", Target::S3).await;
    shop.apply(&set_manifest(""));
    let last = shop.run("", "one", "full").await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
    let existing = claim(&shop.c, &shop.ns, "uploads-copy").await;
    std::fs::write(existing.join("keep.txt"), b"mine").unwrap();
    shop.apply(
        "apiVersion: holdfast.io/v1alpha1\nkind: Restore\nmetadata: {name: copy}\nspec:\n  backupSetRef: {name: shop}\n  target:\n    newPersistentVolumeClaim: {name: uploads-copy, size: 1Gi, storageClassName: e2e-host}\n",
    );
    let message = shop.stalled("Restore", "copy", "TargetClaimExists").await;
    assert!(
        message.contains("uploads-copy") && message.contains("target.persistentVolumeClaim"),
        "{message}"
    );
    assert!(jobs_of(&shop, "copy-").await.is_empty(), "no restore job");
    let entries: Vec<_> = std::fs::read_dir(&existing)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries, ["keep.txt"], "the claim holds what it held");
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_secret_without_the_named_key_stalls_before_any_job_and_a_pod_that_cannot_mount_it_fails_the_run()
 {
    let shop = Shop::new("nokey", Target::S3).await;
    let wrong = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: shop-key}}\nstringData: {{pass: {PASSPHRASE:?}}}\n"
    );
    shop.c
        .kubectl_ok(&["delete", "secret", "shop-key", "-n", &shop.ns], None);
    shop.apply(&wrong);
    shop.apply(&set_manifest("  manualRun: {token: one, level: full}\n"));
    let message = shop.stalled("BackupSet", "shop", "KeySecretInvalid").await;
    assert!(
        message.contains("Secret shop-key has no key \"passphrase\" (it has pass)"),
        "{message}"
    );
    assert!(
        jobs_of(&shop, "shop-").await.is_empty(),
        "no job before the key exists"
    );

    // When the key names cannot be told (the Secret's field records were cleared), the job
    // starts, its pod cannot mount the key, and the run fails with the kubelet's reason
    // instead of staying "running".
    shop.c.kubectl_ok(
        &[
            "patch",
            "secret",
            "shop-key",
            "-n",
            &shop.ns,
            "--type=merge",
            "-p",
            r#"{"metadata":{"managedFields":[{}]}}"#,
        ],
        None,
    );
    let last = shop.next_run(&BTreeSet::new()).await;
    assert_eq!(last["phase"], "Failed", "{last:#}");
    let why = last["message"].as_str().unwrap_or_default();
    assert!(
        why.contains("FailedMount") && why.contains("non-existent secret key: passphrase"),
        "{last:#}"
    );

    // With the key, the next token runs.
    shop.apply(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: shop-key}}\nstringData: {{passphrase: {PASSPHRASE:?}}}\n"
    ));
    let last = shop.run("", "two", "full").await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_backup_pod_refused_by_pod_security_fails_the_run_at_once_naming_the_level_it_needs() {
    let shop = Shop::new("podsec", Target::S3).await;
    let level = |level: &str| {
        shop.c.kubectl_ok(
            &[
                "label",
                "namespace",
                &shop.ns,
                "--overwrite",
                &format!("pod-security.kubernetes.io/enforce={level}"),
            ],
            None,
        );
    };
    // `baseline` admits the storage check (root, no capability) but not a backup's pod,
    // which asks for DAC_READ_SEARCH: the job controller cannot create it, and only an
    // Event on the Job says why.
    level("baseline");
    let started = std::time::Instant::now();
    let last = shop.run("", "one", "full").await;
    let waited = started.elapsed();
    assert_eq!(last["phase"], "Failed", "{last:#}");
    let why = last["message"].as_str().unwrap_or_default();
    eprintln!("refused by Pod Security, the run Failed after {waited:?}: {why}");
    for needed in [
        "PodRefused",
        "violates PodSecurity",
        "DAC_READ_SEARCH",
        "pod-security.kubernetes.io/enforce",
    ] {
        assert!(why.contains(needed), "{needed} missing from {last:#}");
    }
    // Not the backup timeout: failed as soon as the refusal was seen.
    assert!(
        waited < std::time::Duration::from_secs(30),
        "took {waited:?}"
    );
    // Stalled with the reason until something changes, and no hot loop meanwhile.
    let (reason, message) = shop
        .wait("BackupSet", "shop", "Stalled=True", SOON, |o| {
            let (s, r, m) = condition(o, "Stalled")?;
            (s == "True").then_some((r, m))
        })
        .await;
    assert_eq!(reason, "PodRefused", "{message}");
    let reconciles = || async {
        shop.ctl
            .metric("holdfast_reconciles_total{kind=\"BackupSet\"}")
            .await
            .unwrap_or_default()
    };
    let before = reconciles().await;
    assert!(before > 0.0, "the controller counts its reconciles");
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    let during = reconciles().await - before;
    eprintln!("reconciles of the refused set in the minute after: {during}");
    assert!(during <= 4.0, "{during} reconciles in a minute");

    // With the level the message names, the next run works.
    level("privileged");
    let last = shop.run("", "two", "full").await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_missing_bucket_holds_the_sets_runs_until_it_exists() {
    let shop = Shop::new("nobucket-wait", Target::S3).await;
    let good = holdfast_e2e::scenario::storage_manifests(&shop.c, &shop.ns, Target::S3);
    let missing = good.replace(
        &format!("bucket: {}", shop.c.s3_bucket),
        "bucket: no-such-bucket",
    );
    shop.apply(&missing);
    let (reason, message) = shop
        .wait("StorageSet", "offsite", "Ready=False", RUN, |o| {
            let (s, r, m) = condition(o, "Ready")?;
            (s == "False" && o.pointer("/status/failureReason").is_some()).then_some((r, m))
        })
        .await;
    assert_eq!(reason, "BucketNotFound", "{message}");
    shop.apply(&set_manifest("  manualRun: {token: one, level: full}\n"));
    let message = shop.stalled("BackupSet", "shop", "StorageNotReady").await;
    assert!(
        message.contains("StorageSet offsite") && message.contains("no-such-bucket"),
        "{message}"
    );
    assert!(
        jobs_of(&shop, "shop-").await.is_empty(),
        "no job while the bucket is missing"
    );
    let ev = events(&shop.c, &shop.ns, "shop").await;
    assert!(ev.iter().any(|(_, r, _)| r == "StorageNotReady"), "{ev:?}");

    // Fixed (here by pointing at the bucket that exists): the waiting token runs.
    shop.apply(&good);
    let last = shop.next_run(&BTreeSet::new()).await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_set_applied_with_a_storage_set_whose_bucket_is_missing_starts_no_job_until_it_exists() {
    // One sync (one `kubectl apply`): the StorageSet's first check has not ended when the
    // set is first reconciled; the set waits for it instead of spending its token on a
    // run that fails with BucketNotFound.
    let shop = Shop::new("nobucket-sync", Target::S3).await;
    let good = holdfast_e2e::scenario::storage_manifests(&shop.c, &shop.ns, Target::S3);
    let missing = good.replace(
        &format!("bucket: {}", shop.c.s3_bucket),
        "bucket: no-such-bucket",
    );
    let set = set_manifest("  manualRun: {token: one, level: full}\n");
    shop.apply(&format!("{missing}\n---\n{set}"));
    let message = shop.stalled("BackupSet", "shop", "StorageNotReady").await;
    assert!(message.contains("no-such-bucket"), "{message}");
    assert!(
        jobs_of(&shop, "shop-").await.is_empty(),
        "no backup job was ever created (a failed one would still be listed)"
    );
    let ev = events(&shop.c, &shop.ns, "shop").await;
    assert!(
        !ev.iter()
            .any(|(_, r, _)| r == "BackupStarted" || r == "BackupFailed"),
        "{ev:?}"
    );

    shop.apply(&good);
    let last = shop.next_run(&BTreeSet::new()).await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_quota_that_requires_limits_refuses_the_backup_pod_by_name_until_the_set_gives_resources()
{
    let shop = Shop::new("quota", Target::S3).await;
    // The storage check ran before the quota (its pod sets no limits either).
    shop.ready("StorageSet", "offsite").await;
    shop.apply(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: compute}\n\
         spec: {hard: {limits.memory: 8Gi}}\n",
    );
    // Admission checks a quota once the controller-manager has computed its status.
    let mut computed = false;
    for _ in 0..120 {
        let hard = shop.c.kubectl_ok(
            &[
                "get",
                "resourcequota",
                "compute",
                "-n",
                &shop.ns,
                "-o",
                "jsonpath={.status.hard}",
            ],
            None,
        );
        if hard.contains("limits.memory") {
            computed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(
        computed,
        "the quota controller never computed quota compute"
    );

    // A StorageSet created now: its check's pod is refused too, and says so; a set on it
    // waits with that reason instead of starting runs that cannot start either.
    let storage = holdfast_e2e::scenario::storage_manifests(&shop.c, &shop.ns, Target::S3).replace(
        "kind: StorageSet\nmetadata: {name: offsite}",
        "kind: StorageSet\nmetadata: {name: refused}",
    );
    assert!(storage.contains("name: refused"), "{storage}");
    let started = std::time::Instant::now();
    shop.apply(&storage);
    let (reason, message) = shop
        .wait("StorageSet", "refused", "Stalled=True", SOON, |o| {
            let (s, r, m) = condition(o, "Stalled")?;
            (s == "True").then_some((r, m))
        })
        .await;
    eprintln!(
        "a storage check refused by the quota, Stalled after {:?}: {reason}: {message}",
        started.elapsed()
    );
    assert_eq!(reason, "PodRefused", "{message}");
    assert!(message.contains("limits.memory"), "{message}");
    let checked = shop
        .wait(
            "StorageSet",
            "refused",
            "the refused check recorded",
            SOON,
            |o| o.pointer("/status/failureReason").cloned(),
        )
        .await;
    assert_eq!(checked, "PodRefused");
    shop.apply(
        &set_manifest("")
            .replace("metadata: {name: shop}", "metadata: {name: other}")
            .replace(
                "storageSetRef: {name: offsite}",
                "storageSetRef: {name: refused}",
            ),
    );
    let waiting = shop.stalled("BackupSet", "other", "StorageNotReady").await;
    assert!(waiting.contains("PodRefused"), "{waiting}");
    // What the message says: the StorageSet's own jobTemplate.resources; its next check
    // (a changed spec is checked at once) passes.
    shop.apply(&storage.replace(
        "    credentialsSecretRef: {name: s3-creds}\n",
        "    credentialsSecretRef: {name: s3-creds}\n  jobTemplate: {resources: {limits: {memory: 256Mi}}}\n",
    ));
    shop.ready("StorageSet", "refused").await;

    let started = std::time::Instant::now();
    let last = shop.run("", "one", "full").await;
    let waited = started.elapsed();
    assert_eq!(last["phase"], "Failed", "{last:#}");
    let why = last["message"].as_str().unwrap_or_default();
    eprintln!("refused by the quota, the run Failed after {waited:?}: {why}");
    for needed in [
        "PodRefused",
        "compute",
        "limits.memory",
        "jobTemplate.resources",
    ] {
        assert!(why.contains(needed), "{needed} missing from {last:#}");
    }
    assert!(
        waited < std::time::Duration::from_secs(30),
        "failed as soon as the refusal was seen, took {waited:?}"
    );
    let ev = events(&shop.c, &shop.ns, "shop").await;
    assert!(ev.iter().any(|(_, r, _)| r == "BackupFailed"), "{ev:?}");

    // With the resources the message names, the next run completes.
    let last = shop
        .run(
            "  jobTemplate: {resources: {limits: {memory: 1Gi}}}\n",
            "two",
            "full",
        )
        .await;
    assert_eq!(last["phase"], "Complete", "{last:#}");

    // A LimitRange below those resources refuses the pod too, naming the bound.
    shop.apply(
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: small}\n\
         spec: {limits: [{type: Container, max: {memory: 512Mi}}]}\n",
    );
    let started = std::time::Instant::now();
    let last = shop
        .run(
            "  jobTemplate: {resources: {limits: {memory: 1Gi}}}\n",
            "three",
            "full",
        )
        .await;
    let waited = started.elapsed();
    let why = last["message"].as_str().unwrap_or_default();
    eprintln!("refused by the LimitRange, the run Failed after {waited:?}: {why}");
    assert_eq!(last["phase"], "Failed", "{last:#}");
    for needed in ["PodRefused", "512Mi", "LimitRange"] {
        assert!(why.contains(needed), "{needed} missing from {last:#}");
    }
    assert!(
        waited < std::time::Duration::from_secs(30),
        "took {waited:?}"
    );

    // A Restore's pod takes its set's template (1Gi): refused the same way, and the
    // Restore says so; one with resources of its own within the bound restores.
    holdfast_e2e::harness::prepared_volume(&shop.c, &shop.ns, "copy-a");
    let fresh = holdfast_e2e::harness::prepared_volume(&shop.c, &shop.ns, "copy-b");
    let restore = |name: &str, claim: &str, extra: &str| {
        format!(
            "apiVersion: holdfast.io/v1alpha1\nkind: Restore\nmetadata: {{name: {name}}}\nspec:\n  backupSetRef: {{name: shop}}\n  target:\n    newPersistentVolumeClaim: {{name: {claim}, size: 1Gi, storageClassName: e2e-host}}\n{extra}"
        )
    };
    shop.apply(&restore("a", "copy-a", ""));
    let status = shop.restored("a").await;
    assert_eq!(status["phase"], "Failed", "{status:#}");
    let message = status["message"].as_str().unwrap_or_default();
    eprintln!("a Restore refused by the LimitRange: {message}");
    assert!(
        message.contains("PodRefused") && message.contains("512Mi"),
        "{status:#}"
    );
    shop.apply(&restore(
        "b",
        "copy-b",
        "  jobTemplate: {resources: {limits: {memory: 256Mi}}}\n",
    ));
    let status = shop.restored("b").await;
    assert_eq!(status["phase"], "Completed", "{status:#}");
    assert_eq!(status["unrestored"], 0, "{status:#}");
    assert!(
        std::fs::read_dir(&fresh).unwrap().count() > 0,
        "the restored claim holds the data"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_used_up_quota_holds_the_run_saying_so_and_it_completes_once_the_quota_allows_it() {
    let shop = Shop::new("quota-full", Target::S3).await;
    shop.ready("StorageSet", "offsite").await;
    // No room for one more pod: a refusal that passes once other pods end or the quota
    // grows.
    shop.apply(
        "apiVersion: v1\nkind: ResourceQuota\nmetadata: {name: pods}\nspec: {hard: {pods: '0'}}\n",
    );
    let mut computed = false;
    for _ in 0..120 {
        let hard = shop.c.kubectl_ok(
            &[
                "get",
                "resourcequota",
                "pods",
                "-n",
                &shop.ns,
                "-o",
                "jsonpath={.status.hard}",
            ],
            None,
        );
        if hard.contains("pods") {
            computed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(computed, "the quota controller never computed quota pods");
    let before: BTreeSet<String> = shop.jobs().await.into_iter().collect();
    shop.apply(&set_manifest("  manualRun: {token: one, level: full}\n"));
    let started = std::time::Instant::now();
    let message = shop.stalled("BackupSet", "shop", "PodRefused").await;
    eprintln!(
        "a used-up quota, Stalled after {:?}: {message}",
        started.elapsed()
    );
    assert!(
        message.contains("exceeded quota") && message.contains("retries with backoff"),
        "{message}"
    );
    let set = shop.get("BackupSet", "shop").await.unwrap();
    assert_eq!(
        set["status"]["lastRun"]["phase"], "Running",
        "not failed while it may pass: {set:#}"
    );
    // The quota grows: the job controller's next try creates the pod and the run ends.
    shop.c
        .kubectl_ok(&["delete", "resourcequota", "pods", "-n", &shop.ns], None);
    let last = shop.next_run(&before).await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
}

/// Deletes cluster-scoped objects of a scenario when dropped (it passes or panics).
struct ClusterScoped(holdfast_e2e::harness::Cluster, Vec<String>);

impl Drop for ClusterScoped {
    fn drop(&mut self) {
        for o in &self.1 {
            let _ = self.0.kubectl(&["delete", o, "--ignore-not-found"], None);
        }
    }
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_policy_that_requires_a_label_refuses_the_pod_saying_so_until_the_job_template_gives_it()
{
    // A platform's policy (here the API server's own ValidatingAdmissionPolicy; Kyverno and
    // Gatekeeper deny through webhooks the same way): every pod of the namespace needs a
    // `team` label.
    let shop = Shop::new("policy", Target::S3).await;
    shop.ready("StorageSet", "offsite").await;
    let name = format!("{}-team", shop.ns);
    let _cleanup = ClusterScoped(
        shop.c.clone(),
        vec![
            format!("validatingadmissionpolicybinding/{name}"),
            format!("validatingadmissionpolicy/{name}"),
        ],
    );
    shop.c.kubectl_ok(
        &["apply", "-f", "-"],
        Some(&format!(
            "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\n\
             metadata: {{name: {name}}}\nspec:\n  failurePolicy: Fail\n  matchConstraints:\n\
             \x20   resourceRules: [{{apiGroups: [''], apiVersions: [v1], operations: [CREATE], resources: [pods]}}]\n\
             \x20 validations:\n  - expression: \"has(object.metadata.labels) && 'team' in object.metadata.labels\"\n\
             \x20   message: every pod needs a team label\n\
             ---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\n\
             metadata: {{name: {name}}}\nspec:\n  policyName: {name}\n  validationActions: [Deny]\n\
             \x20 matchResources:\n    namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {}}}}}\n",
            shop.ns
        )),
    );
    // The API server takes a moment to load a new policy: wait until it denies a pod.
    let probe = format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: probe, namespace: {}}}\nspec: {{containers: [{{name: c, image: x}}]}}\n",
        shop.ns
    );
    let mut enforced = false;
    for _ in 0..60 {
        let (ok, _, err) = shop
            .c
            .kubectl(&["create", "--dry-run=server", "-f", "-"], Some(&probe));
        if !ok && err.contains("team label") {
            enforced = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(enforced, "the policy never took effect");

    let started = std::time::Instant::now();
    let last = shop.run("", "one", "full").await;
    let waited = started.elapsed();
    let why = last["message"].as_str().unwrap_or_default();
    eprintln!("refused by a policy, the run Failed after {waited:?}: {why}");
    assert_eq!(last["phase"], "Failed", "{last:#}");
    for needed in ["PodRefused", "team label", "jobTemplate"] {
        assert!(why.contains(needed), "{needed} missing from {last:#}");
    }
    assert!(
        waited < std::time::Duration::from_secs(30),
        "took {waited:?}"
    );

    // What the message says to do: the label through the set's jobTemplate.
    let last = shop
        .run("  jobTemplate: {podLabels: {team: shop}}\n", "two", "full")
        .await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
}

/// How often an Event `reason` about `name` occurred (repeats are one Event with a series).
async fn occurrences(shop: &Shop, name: &str, reason: &str) -> i32 {
    let api: kube::Api<k8s_openapi::api::events::v1::Event> =
        holdfast_e2e::harness::api(&shop.c, &shop.ns);
    api.list(&Default::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name)
        })
        .map(|e| e.series.as_ref().map_or(1, |s| s.count))
        .sum()
}

/// Ask for a manual run with `token`, and wait for its run, from a Job not in `seen`.
async fn manual_run(shop: &Shop, token: &str, seen: &mut BTreeSet<String>) {
    shop.apply(&set_manifest(&format!(
        "  manualRun: {{token: {token}, level: incr}}\n"
    )));
    let last = shop.next_run(seen).await;
    assert_eq!(last["phase"], "Complete", "token {token}: {last:#}");
    seen.insert(last["job"].as_str().unwrap().to_owned());
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_reverted_manual_token_runs_again_whether_or_not_its_old_job_remains() {
    let shop = Shop::new("revert", Target::S3).await;
    shop.apply(&set_manifest(""));
    // Every Job seen so far: each token's run must come from a Job not among them.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    // A, B, then A again while A's first Job still exists.
    for token in ["a", "b", "a"] {
        manual_run(&shop, token, &mut seen).await;
    }
    assert_eq!(seen.len(), 3, "three runs, three Jobs: {seen:?}");
    // B again once every old Job is gone.
    shop.c.kubectl_ok(
        &["delete", "jobs", "--all", "-n", &shop.ns, "--wait=true"],
        None,
    );
    manual_run(&shop, "b", &mut seen).await;
    assert_eq!(seen.len(), 4, "{seen:?}");
    // Re-applying the same token does nothing.
    let before: BTreeSet<String> = shop.jobs().await.into_iter().collect();
    shop.apply(&set_manifest("  manualRun: {token: b, level: incr}\n"));
    shop.ready("BackupSet", "shop").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let after: BTreeSet<String> = shop.jobs().await.into_iter().collect();
    assert_eq!(before, after);
    let set = shop.get("BackupSet", "shop").await.unwrap();
    assert_eq!(set.pointer("/status/lastManualToken").unwrap(), "b");
    assert_eq!(
        occurrences(&shop, "shop", "BackupStarted").await,
        4,
        "a, b, a, b each ran once"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_set_with_hooks_stalls_until_the_chart_enables_them_and_runs_nothing_unhooked() {
    let shop = Shop::new("nohooks", Target::S3).await;
    let hooks = "  hooks:\n  - name: lock\n    podLabels: {app: db}\n    pre: [sync]\n";
    shop.apply(&set_manifest(&format!(
        "{hooks}  manualRun: {{token: one, level: full}}\n"
    )));
    let message = shop.stalled("BackupSet", "shop", "HooksNotEnabled").await;
    assert!(message.contains("hooks.enabled=true"), "{message}");
    assert!(
        jobs_of(&shop, "shop-").await.is_empty(),
        "no backup runs without its hooks"
    );
    // It keeps the cleanup finalizer (a run whose pre ran owes its post), and deleting it
    // with nothing owed lets it go.
    let set = shop.get("BackupSet", "shop").await.unwrap();
    assert!(
        set["metadata"]["finalizers"]
            .to_string()
            .contains("holdfast.io/cleanup"),
        "{set:#}"
    );
    shop.c.kubectl_ok(
        &[
            "delete",
            "backupset",
            "shop",
            "-n",
            &shop.ns,
            "--timeout=60s",
        ],
        None,
    );
    // Without hooks, the same token runs.
    let last = shop.run("", "one", "full").await;
    assert_eq!(last["phase"], "Complete", "{last:#}");
}
