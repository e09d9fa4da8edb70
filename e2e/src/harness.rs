//! What the scenario tests share: the cluster `e2e/cluster.sh` started (found through the
//! `env` file its directory holds), `kubectl`, fresh namespaces, and waiting on conditions
//! with a deadline (never on sleeps).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim};
use kube::api::{Api, PostParams};
use serde::de::DeserializeOwned;

/// Which cluster the scenarios run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The loopback control plane with the node agent standing in for the kubelet
    /// (`e2e/run.sh`).
    Loopback,
    /// A kind cluster: real kubelets, containerd, images (`e2e/kind/run.sh`).
    Kind,
}

/// The running control plane.
#[derive(Clone)]
pub struct Cluster {
    pub backend: Backend,
    /// The image job pods run (the controller's `--job-image`).
    pub job_image: String,
    /// An image with a POSIX shell and `wget`, for dumps and test pods.
    pub shell_image: String,
    /// The address pods reach the test host at (see [`crate::link`]).
    pub host_ip: String,
    pub client: kube::Client,
    pub dir: PathBuf,
    pub bin: PathBuf,
    pub s3_endpoint: String,
    pub s3_bucket: String,
    pub s3_dir: PathBuf,
    pub s3_access_key: String,
    pub s3_secret_key: String,
    pub api: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the scenarios with `bash e2e/run.sh`, which starts the control plane")
    })
}

impl Cluster {
    /// Connect to the control plane `e2e/run.sh` started (its variables are in the
    /// environment).
    pub async fn connect() -> Cluster {
        crate::install_crypto_provider();
        let client = kube::Client::try_default()
            .await
            .unwrap_or_else(|e| panic!("cannot reach the control plane: {e}"));
        let backend = match std::env::var("HOLDFAST_E2E_BACKEND").as_deref() {
            Ok("kind") => Backend::Kind,
            _ => Backend::Loopback,
        };
        let or = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        Cluster {
            backend,
            job_image: or("HOLDFAST_E2E_JOB_IMAGE", "ghcr.io/holdfast-io/holdfast:e2e"),
            shell_image: or("HOLDFAST_E2E_SHELL_IMAGE", "docker.io/library/busybox:1"),
            host_ip: or("HOLDFAST_E2E_HOST_IP", "127.0.0.1"),
            client,
            dir: PathBuf::from(var("HOLDFAST_E2E_DIR")),
            bin: PathBuf::from(var("HOLDFAST_E2E_BIN")),
            s3_endpoint: var("HOLDFAST_E2E_S3_ENDPOINT"),
            s3_bucket: var("HOLDFAST_E2E_S3_BUCKET"),
            s3_dir: PathBuf::from(var("HOLDFAST_E2E_S3_DIR")),
            s3_access_key: var("HOLDFAST_E2E_S3_ACCESS_KEY"),
            s3_secret_key: var("HOLDFAST_E2E_S3_SECRET_KEY"),
            api: var("HOLDFAST_E2E_API"),
        }
    }

    /// Run kubectl (as admin) with `stdin` as its input, returning (success, stdout, stderr).
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
        let mut cmd = Command::new(self.bin.join("kubectl"));
        cmd.args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run kubectl: {e}"));
        if let Some(input) = stdin {
            use std::io::Write as _;
            if let Some(mut s) = child.stdin.take() {
                let _ = s.write_all(input.as_bytes());
            }
        } else {
            drop(child.stdin.take());
        }
        let out = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("kubectl did not finish: {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// kubectl that must succeed; its stdout.
    pub fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let (ok, out, err) = self.kubectl(args, stdin);
        assert!(ok, "kubectl {args:?} failed:\n{err}\n{out}");
        out
    }

    /// A new namespace named `<prefix>-<n>`, unique within the run, enforcing the
    /// `privileged` Pod Security level: the level the README documents for backups (their
    /// pods add `DAC_READ_SEARCH`), which every scenario runs.
    pub async fn namespace(&self, prefix: &str) -> String {
        self.namespace_at(prefix, "privileged").await
    }

    /// A new namespace enforcing the Pod Security `level` (`privileged`, `baseline`,
    /// `restricted`); a privileged one also allows privileged movers.
    pub async fn namespace_at(&self, prefix: &str, level: &str) -> String {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id() % 10_000);
        let movers = if level == "privileged" {
            "true"
        } else {
            "false"
        };
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": {
                "pod-security.kubernetes.io/enforce": level,
                "pod-security.kubernetes.io/enforce-version": "latest",
            }, "annotations": {"holdfast.io/privileged-movers": movers}}
        }))
        .unwrap_or_default();
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        name
    }

    /// The nodes pods run on, by name (the agent's `node-a`, `node-b`; kind's control
    /// plane and worker).
    pub async fn nodes(&self) -> Vec<String> {
        let mut names: Vec<String> =
            Api::<k8s_openapi::api::core::v1::Node>::all(self.client.clone())
                .list(&Default::default())
                .await
                .unwrap_or_else(|e| panic!("listing nodes: {e}"))
                .items
                .into_iter()
                .filter_map(|n| n.metadata.name)
                .collect();
        names.sort();
        names
    }

    /// The host link of a scenario: flags and files its pods reach.
    pub async fn link(&self) -> crate::link::Link {
        crate::link::Link::start(&self.host_ip).await
    }

    /// A directory for host-path volumes of this run.
    pub fn host_dir(&self, name: &str) -> PathBuf {
        let d = self.dir.join("volumes").join(name);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        d
    }
}

/// Wait until `check` returns `Some`, polling the object every 200 ms, for at most
/// `timeout`; on timeout, panic with `what` and the object's last state.
pub async fn wait_for<K, T>(
    api: &Api<K>,
    name: &str,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut(&K) -> Option<T>,
) -> T
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug + serde::Serialize,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last: Option<K> = None;
    loop {
        if let Ok(Some(obj)) = api.get_opt(name).await {
            if let Some(v) = check(&obj) {
                return v;
            }
            last = Some(obj);
        }
        if tokio::time::Instant::now() >= deadline {
            let shown = last
                .map(|o| serde_json::to_string_pretty(&o).unwrap_or_default())
                .unwrap_or_else(|| "(not found)".into());
            panic!("timed out after {timeout:?} waiting for {what} ({name}); last seen:\n{shown}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Wait until the object is gone.
pub async fn wait_gone<K>(api: &Api<K>, name: &str, timeout: Duration)
where
    K: kube::Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Ok(None) = api.get_opt(name).await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{name} still exists after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Wait until a file appears on the host (a container's sign that it got somewhere); panic
/// with `what` after `timeout`.
pub async fn wait_for_file(path: &Path, what: &str, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !path.exists() {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An object from a JSON literal.
pub fn obj<K: DeserializeOwned>(v: serde_json::Value) -> K {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("test object does not parse: {e}"))
}

/// A namespaced API.
pub fn api<K>(c: &Cluster, ns: &str) -> Api<K>
where
    K: kube::Resource<Scope = NamespaceResourceScope>,
    <K as kube::Resource>::DynamicType: Default,
{
    Api::namespaced(c.client.clone(), ns)
}

/// The repository's root directory.
pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A hostPath PV and a claim `name` bound to it (by the real PV binder); the host
/// directory, writable by every user as a freshly provisioned volume usually is.
pub async fn claim(c: &Cluster, ns: &str, name: &str) -> PathBuf {
    let dir = prepared_volume(c, ns, name);
    let pvc: PersistentVolumeClaim = obj(serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "e2e-host",
                 "resources": {"requests": {"storage": "1Gi"}}},
    }));
    let pvcs: Api<PersistentVolumeClaim> = api(c, ns);
    pvcs.create(&PostParams::default(), &pvc)
        .await
        .unwrap_or_else(|e| panic!("creating claim {name}: {e}"));
    wait_for(
        &pvcs,
        name,
        "the claim to bind",
        Duration::from_secs(60),
        |p| (p.status.as_ref()?.phase.as_deref() == Some("Bound")).then_some(()),
    )
    .await;
    dir
}

/// A hostPath PV reserved for a claim `name` that something else (a Restore) will create;
/// its host directory.
pub fn prepared_volume(c: &Cluster, ns: &str, name: &str) -> PathBuf {
    let dir = c.host_dir(&format!("{ns}-{name}"));
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let pv = serde_json::json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": format!("{ns}-{name}")},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                 "storageClassName": "e2e-host", "hostPath": {"path": dir},
                 "persistentVolumeReclaimPolicy": "Retain",
                 "claimRef": {"namespace": ns, "name": name}},
    });
    c.kubectl_ok(&["create", "-f", "-"], Some(&pv.to_string()));
    dir
}

/// Server-side apply of YAML or JSON manifests (several, `---` separated) with the field
/// manager a GitOps tool would use.
pub fn apply(c: &Cluster, ns: &str, manifests: &str) -> String {
    c.kubectl_ok(
        &[
            "apply",
            "--server-side",
            "--field-manager",
            "gitops",
            "--namespace",
            ns,
            "-f",
            "-",
        ],
        Some(manifests),
    )
}

/// One Holdfast object as JSON, if it exists.
pub async fn holdfast(c: &Cluster, ns: &str, kind: &str, name: &str) -> Option<serde_json::Value> {
    let api = holdfast_api(c, ns, kind);
    api.get_opt(name)
        .await
        .unwrap_or_else(|e| panic!("reading {kind} {name}: {e}"))
        .map(|o| serde_json::to_value(o).unwrap_or_default())
}

/// The API of one Holdfast kind (`BackupSet`, `StorageSet`, `Schedule`, `Restore`) as
/// untyped objects: the scenarios read status as a user's tool would, by its JSON fields.
pub fn holdfast_api(c: &Cluster, ns: &str, kind: &str) -> Api<kube::api::DynamicObject> {
    let gvk = kube::api::GroupVersionKind::gvk("holdfast.io", "v1alpha1", kind);
    let ar = kube::api::ApiResource::from_gvk(&gvk);
    Api::namespaced_with(c.client.clone(), ns, &ar)
}

/// Wait until `check` finds what it wants in a Holdfast object's JSON.
pub async fn wait_holdfast<T>(
    c: &Cluster,
    ns: &str,
    kind: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut(&serde_json::Value) -> Option<T>,
) -> T {
    let api = holdfast_api(c, ns, kind);
    wait_for(&api, name, what, timeout, |o| {
        check(&serde_json::to_value(o).unwrap_or_default())
    })
    .await
}

/// The condition `type` of an object's status: (status, reason, message).
pub fn condition(obj: &serde_json::Value, type_: &str) -> Option<(String, String, String)> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

/// The Jobs of a namespace, by name.
pub async fn jobs(c: &Cluster, ns: &str) -> Vec<String> {
    let api: Api<k8s_openapi::api::batch::v1::Job> = api(c, ns);
    let mut names: Vec<String> = api
        .list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("listing jobs: {e}"))
        .items
        .into_iter()
        .filter_map(|j| j.metadata.name)
        .collect();
    names.sort();
    names
}

/// The Events of a namespace about one object: (type, reason, note).
pub async fn events(c: &Cluster, ns: &str, name: &str) -> Vec<(String, String, String)> {
    let api: Api<k8s_openapi::api::events::v1::Event> = api(c, ns);
    api.list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("listing events: {e}"))
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.note.unwrap_or_default(),
            )
        })
        .collect()
}
