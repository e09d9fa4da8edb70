//! What the scenario tests share: the cluster `e2e/cluster.sh` started (found through the
//! `env` file its directory holds), `kubectl`, fresh namespaces, and waiting on conditions
//! with a deadline (never on sleeps).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, PostParams};
use serde::de::DeserializeOwned;

/// The running control plane.
#[derive(Clone)]
pub struct Cluster {
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
        Cluster {
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

    /// A new namespace named `<prefix>-<n>`, unique within the run.
    pub async fn namespace(&self, prefix: &str) -> String {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id() % 10_000);
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))
        .unwrap_or_default();
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        name
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
