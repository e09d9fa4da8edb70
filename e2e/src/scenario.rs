//! The setting most controller scenarios share: a namespace with its own controller (the
//! chart's RBAC), a claim holding a real tree, the Secrets, a StorageSet on the s3s-fs
//! bucket (or on a claim), and a BackupSet, all applied as a GitOps tool applies them.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::controller::Controller;
use crate::harness::{self, Cluster, apply, claim, wait_holdfast};

/// How long one backup, restore or purge of the test tree may take, pod start included.
pub const RUN: Duration = Duration::from_secs(120);
/// How long a status change after an action may take.
pub const SOON: Duration = Duration::from_secs(60);

pub const PASSPHRASE: &str = "correct horse battery staple";

/// Where the repositories go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    S3,
    Filesystem,
}

/// One scenario's namespace and what lives in it.
pub struct Shop {
    pub c: Cluster,
    pub ns: String,
    pub ctl: Controller,
    /// The host directory behind the `uploads` claim.
    pub data: PathBuf,
    pub target: Target,
}

impl std::fmt::Debug for Shop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shop").field("ns", &self.ns).finish()
    }
}

/// The Secrets and the StorageSet `offsite`.
pub fn storage_manifests(c: &Cluster, ns: &str, target: Target) -> String {
    let key = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: shop-key}}\nstringData: {{passphrase: {PASSPHRASE:?}}}\n"
    );
    let storage = match target {
        Target::S3 => format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: s3-creds}}\nstringData:\n  AWS_ACCESS_KEY_ID: {}\n  AWS_SECRET_ACCESS_KEY: {}\n---\n\
             apiVersion: holdfast.io/v1alpha1\nkind: StorageSet\nmetadata: {{name: offsite}}\nspec:\n  s3:\n    bucket: {}\n    prefix: {ns}\n    endpoint: {}\n    forcePathStyle: true\n    region: us-east-1\n    credentialsSecretRef: {{name: s3-creds}}\n",
            c.s3_access_key, c.s3_secret_key, c.s3_bucket, c.s3_endpoint
        ),
        Target::Filesystem => "apiVersion: holdfast.io/v1alpha1\nkind: StorageSet\nmetadata: {name: offsite}\nspec:\n  filesystem:\n    persistentVolumeClaim: {claimName: backups}\n    path: /repos\n".into(),
    };
    format!("{key}---\n{storage}")
}

/// The mover of the shared scenarios: root, so that their restores are exact to the owner
/// (the test tree has files of several users, some readable by their owner alone). The
/// namespaces the harness makes allow it; `node.rs` proves the default, unprivileged one.
pub const PRIVILEGED_MOVER: &str = "  mover: {privileged: true}\n";

/// The BackupSet `shop` over the `uploads` claim, with the privileged mover; `extra` is more
/// YAML of its spec.
pub fn set_manifest(extra: &str) -> String {
    format!(
        "apiVersion: holdfast.io/v1alpha1\nkind: BackupSet\nmetadata: {{name: shop}}\nspec:\n  storageSetRef: {{name: offsite}}\n  sources:\n  - name: uploads\n    persistentVolumeClaim: {{claimName: uploads}}\n  encryption:\n    keySecretRef: {{name: shop-key, key: passphrase}}\n{PRIVILEGED_MOVER}{extra}"
    )
}

/// The BackupSet `shop` over the `uploads` claim and a `db` dump running `script` in the
/// shell image; `extra` is more YAML of its spec.
pub fn command_set(c: &Cluster, script: &str, extra: &str) -> String {
    format!(
        "apiVersion: holdfast.io/v1alpha1\nkind: BackupSet\nmetadata: {{name: shop}}\nspec:\n  storageSetRef: {{name: offsite}}\n  sources:\n  - name: uploads\n    persistentVolumeClaim: {{claimName: uploads}}\n  - name: db\n    command:\n      image: {}\n      command: [sh, -c]\n      args: [{:?}]\n  encryption:\n    keySecretRef: {{name: shop-key, key: passphrase}}\n{PRIVILEGED_MOVER}{extra}",
        c.shell_image, script
    )
}

impl Shop {
    /// Namespace, controller, the `uploads` claim filled with the test tree, the Secrets
    /// and StorageSet (and its claim, for a filesystem target). No BackupSet yet.
    pub async fn new(prefix: &str, target: Target) -> Shop {
        Shop::with(prefix, target, false).await
    }

    /// The same, with a controller the chart allows to run hooks (`hooks.enabled`).
    pub async fn with_hooks(prefix: &str, target: Target) -> Shop {
        Shop::with(prefix, target, true).await
    }

    async fn with(prefix: &str, target: Target, hooks: bool) -> Shop {
        let c = Cluster::connect().await;
        let ns = c.namespace(prefix).await;
        let ctl = if hooks {
            Controller::start_with_hooks(&c, &ns).await
        } else {
            Controller::start(&c, &ns).await
        };
        let data = claim(&c, &ns, "uploads").await;
        crate::tree::fill(&data, 7);
        if target == Target::Filesystem {
            claim(&c, &ns, "backups").await;
        }
        apply(&c, &ns, &storage_manifests(&c, &ns, target));
        Shop {
            c,
            ns,
            ctl,
            data,
            target,
        }
    }

    pub fn apply(&self, manifests: &str) -> String {
        apply(&self.c, &self.ns, manifests)
    }

    pub async fn get(&self, kind: &str, name: &str) -> Option<Value> {
        harness::holdfast(&self.c, &self.ns, kind, name).await
    }

    pub async fn wait<T>(
        &self,
        kind: &str,
        name: &str,
        what: &str,
        timeout: Duration,
        check: impl FnMut(&Value) -> Option<T>,
    ) -> T {
        wait_holdfast(&self.c, &self.ns, kind, name, what, timeout, check).await
    }

    pub async fn jobs(&self) -> Vec<String> {
        harness::jobs(&self.c, &self.ns).await
    }

    /// Ask for a manual run with `token` (the BackupSet must carry `extra` again, as a
    /// GitOps tool re-applies the whole object), and wait for the run that follows to end;
    /// its `lastRun`.
    pub async fn run(&self, extra: &str, token: &str, level: &str) -> Value {
        self.run_with(&set_manifest(&format!(
            "{extra}  manualRun: {{token: {token}, level: {level}}}\n"
        )))
        .await
    }

    /// Apply `manifests` (a set `shop` with a new manual token) and wait for the run that
    /// follows to end; its `lastRun`.
    pub async fn run_with(&self, manifests: &str) -> Value {
        let mut before: BTreeSet<String> = self.jobs().await.into_iter().collect();
        // The last run's Job may be gone already (a run whose pre hook failed, an abort).
        if let Some(job) = self.get("BackupSet", "shop").await.and_then(|o| {
            o.pointer("/status/lastRun/job")?
                .as_str()
                .map(str::to_owned)
        }) {
            before.insert(job);
        }
        self.apply(manifests);
        self.next_run(&before).await
    }

    /// Wait for a backup run by a Job not in `before` to end; its `lastRun`.
    pub async fn next_run(&self, before: &BTreeSet<String>) -> Value {
        self.wait("BackupSet", "shop", "a new run to end", RUN, |o| {
            let last = o.pointer("/status/lastRun")?;
            let job = last["job"].as_str()?;
            let phase = last["phase"].as_str()?;
            (!before.contains(job) && !matches!(phase, "Running" | "Queued")).then(|| last.clone())
        })
        .await
    }

    /// Wait for `Stalled=True` with `reason` on the `kind` named `name`; its message.
    pub async fn stalled(&self, kind: &str, name: &str, reason: &str) -> String {
        self.stalled_within(kind, name, reason, SOON).await
    }

    /// The same, waiting up to `timeout`.
    pub async fn stalled_within(
        &self,
        kind: &str,
        name: &str,
        reason: &str,
        timeout: Duration,
    ) -> String {
        self.wait(
            kind,
            name,
            &format!("Stalled=True ({reason})"),
            timeout,
            |o| {
                let (s, r, m) = harness::condition(o, "Stalled")?;
                (s == "True" && r == reason).then_some(m)
            },
        )
        .await
    }

    /// Wait for the set to be Ready (its status caught up with its generation).
    pub async fn ready(&self, kind: &str, name: &str) -> Value {
        self.wait(kind, name, "Ready=True", SOON, |o| {
            let (s, _, _) = harness::condition(o, "Ready")?;
            (s == "True"
                && o.pointer("/status/observedGeneration") == o.pointer("/metadata/generation"))
            .then(|| o.clone())
        })
        .await
    }

    /// Wait for a Restore to finish; its status.
    pub async fn restored(&self, name: &str) -> Value {
        self.wait("Restore", name, "the restore to finish", RUN, |o| {
            let phase = o.pointer("/status/phase")?.as_str()?;
            matches!(phase, "Completed" | "PartiallyFailed" | "Failed").then(|| o["status"].clone())
        })
        .await
    }

    /// The engine's own view of the repository, through the CLI (as an operator would
    /// check it from outside the cluster): `holdfast <args> --json` against the set's
    /// repository.
    pub fn cli(&self, args: &[&str]) -> (bool, Value, String) {
        let (url, envs) = self.repository_url();
        let bin = std::env::var("HOLDFAST_BIN").unwrap_or_else(|_| "holdfast".into());
        let out = std::process::Command::new(bin)
            .arg("--repo")
            .arg(&url)
            .arg("--json")
            .args(args)
            .env("HOLDFAST_PASSPHRASE", PASSPHRASE)
            .envs(envs)
            .output()
            .unwrap_or_else(|e| panic!("cannot run holdfast: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        (
            out.status.success(),
            serde_json::from_str(&stdout).unwrap_or(Value::Null),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// The repository of the set `shop` as the CLI addresses it, with its environment.
    pub fn repository_url(&self) -> (String, Vec<(String, String)>) {
        match self.target {
            Target::S3 => (
                format!(
                    "s3://{}/{}/{}/shop?endpoint={}&path_style=true&region=us-east-1",
                    self.c.s3_bucket, self.ns, self.ns, self.c.s3_endpoint
                ),
                vec![
                    ("AWS_ACCESS_KEY_ID".into(), self.c.s3_access_key.clone()),
                    ("AWS_SECRET_ACCESS_KEY".into(), self.c.s3_secret_key.clone()),
                ],
            ),
            Target::Filesystem => (
                self.c
                    .dir
                    .join("volumes")
                    .join(format!("{}-backups", self.ns))
                    .join("repos")
                    .join(&self.ns)
                    .join("shop")
                    .display()
                    .to_string(),
                Vec::new(),
            ),
        }
    }
}

/// Disaster recovery: the namespace `ns` is lost (its Shop dropped first) and made again
/// with only what git and the vault give back: its annotation allowing the privileged mover
/// (to give every file its owner back), a controller, and `manifests` (the key Secret, the
/// storage's Secret and StorageSet). A Restore then finds the set `shop`'s repository in
/// StorageSet `storage` and restores it into a new claim. Returns the Restore's status and
/// the claim's directory.
pub async fn recover_lost_namespace(
    c: &Cluster,
    ns: &str,
    manifests: &str,
    storage: &str,
) -> (Value, PathBuf) {
    c.kubectl_ok(
        &["delete", "namespace", ns, "--wait=true", "--timeout=90s"],
        None,
    );
    c.kubectl_ok(&["create", "namespace", ns], None);
    c.kubectl_ok(
        &[
            "annotate",
            "namespace",
            ns,
            "holdfast.io/privileged-movers=true",
        ],
        None,
    );
    let _ctl = Controller::start(c, ns).await;
    let target = harness::prepared_volume(c, ns, "uploads-recovered");
    apply(c, ns, manifests);
    apply(
        c,
        ns,
        &format!(
            "apiVersion: holdfast.io/v1alpha1\nkind: Restore\nmetadata: {{name: recovery}}\nspec:\n  storageSetRef: {{name: {storage}}}\n  repository: {ns}/shop\n  encryption:\n    keySecretRef: {{name: shop-key, key: passphrase}}\n{PRIVILEGED_MOVER}  target:\n    newPersistentVolumeClaim: {{name: uploads-recovered, size: 1Gi, storageClassName: e2e-host}}\n"
        ),
    );
    let status = wait_holdfast(c, ns, "Restore", "recovery", "the recovery", RUN, |o| {
        let phase = o.pointer("/status/phase")?.as_str()?;
        matches!(phase, "Completed" | "PartiallyFailed" | "Failed").then(|| o["status"].clone())
    })
    .await;
    (status, target)
}
