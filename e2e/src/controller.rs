//! The controller under test, as the scenarios run it: a separate `holdfast controller`
//! process that watches only the scenario's namespace and authenticates with a
//! ServiceAccount token bound to the RBAC the Helm chart renders for that namespace (never
//! as admin), so a verb missing from the chart fails the scenario.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::harness::{Cluster, repo_root};

/// The chart's release name in namespace-scoped scenarios; objects are `hf-holdfast…`.
pub const RELEASE: &str = "hf";
/// The controller's ServiceAccount, Lease and role name the chart gives that release.
pub const FULLNAME: &str = "hf-holdfast";

/// How the chart was installed for one controller.
#[derive(Debug, Clone)]
struct Install {
    /// Where the controller's ServiceAccount and Lease live.
    release_namespace: String,
    /// The chart's full name for the release (ServiceAccount, Lease, roles).
    fullname: String,
    /// Namespace-scoped: job pods run as the chart's job ServiceAccount.
    job_service_account: Option<String>,
    /// Installed with `hooks.enabled` (the controller may exec into pods).
    hooks: bool,
}

/// One running controller process.
pub struct Controller {
    child: Option<Child>,
    pub namespace: String,
    pub identity: String,
    /// `127.0.0.1:port` of /metrics, /healthz, /readyz.
    pub listen: String,
    pub log: PathBuf,
    kubeconfig: PathBuf,
    lease: bool,
    install: Install,
    job_image: String,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("namespace", &self.namespace)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// The helm binary built beside the control plane.
pub fn helm(c: &Cluster) -> PathBuf {
    c.bin.join("helm")
}

/// Render the chart for `namespace` (namespace-scoped install) and apply its
/// ServiceAccounts and RBAC as admin, as `helm install` would.
pub fn install_rbac(c: &Cluster, namespace: &str) {
    render_and_apply(
        c,
        RELEASE,
        namespace,
        &["--set", &format!("watchNamespaces={{{namespace}}}")],
    );
}

/// The same, with `hooks.enabled`: the chart's `pods/exec` Role too.
fn install_rbac_with_hooks(c: &Cluster, namespace: &str) {
    render_and_apply(
        c,
        RELEASE,
        namespace,
        &[
            "--set",
            &format!("watchNamespaces={{{namespace}}}"),
            "--set",
            "hooks.enabled=true",
        ],
    );
}

/// Render the chart cluster-wide (a ClusterRole) for release `release` in
/// `release_namespace`, and apply its ServiceAccount and RBAC.
fn install_cluster_rbac(c: &Cluster, release: &str, release_namespace: &str) {
    render_and_apply(c, release, release_namespace, &[]);
}

fn render_and_apply(c: &Cluster, release: &str, namespace: &str, values: &[&str]) {
    let chart = repo_root().join("helm/holdfast");
    let out = Command::new(helm(c))
        .args(["template", release])
        .arg(&chart)
        .args(["--namespace", namespace])
        .args(values)
        .args(["--show-only", "templates/rbac.yaml"])
        .args(["--show-only", "templates/serviceaccount.yaml"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}"));
    assert!(
        out.status.success(),
        "helm template failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rendered = String::from_utf8_lossy(&out.stdout).into_owned();
    c.kubectl_ok(&["apply", "-f", "-"], Some(&rendered));
}

/// A kubeconfig holding a fresh token of the chart's ServiceAccount.
fn kubeconfig(c: &Cluster, install: &Install, identity: &str) -> PathBuf {
    let namespace = &install.release_namespace;
    let token = c.kubectl_ok(
        &[
            "create",
            "token",
            &install.fullname,
            "--namespace",
            namespace,
            "--duration",
            "3h",
        ],
        None,
    );
    let ca = std::env::var("HOLDFAST_E2E_CA").unwrap_or_default();
    let config = serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {"server": c.api, "certificate-authority": ca}}],
        "users": [{"name": "holdfast", "user": {"token": token.trim()}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "holdfast", "namespace": namespace}}],
        "current-context": "e2e",
    });
    let path = c
        .dir
        .join(format!("controller-{namespace}-{identity}.kubeconfig"));
    std::fs::write(&path, config.to_string()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

fn namespaced(namespace: &str) -> Install {
    Install {
        release_namespace: namespace.to_owned(),
        fullname: FULLNAME.to_owned(),
        job_service_account: Some(format!("{FULLNAME}-job")),
        hooks: false,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

fn holdfast_bin() -> PathBuf {
    PathBuf::from(std::env::var("HOLDFAST_BIN").unwrap_or_else(|_| {
        panic!("HOLDFAST_BIN is not set: run the scenarios with `bash e2e/run.sh`")
    }))
}

impl Controller {
    /// Install the chart's RBAC for `namespace` and start one controller there.
    pub async fn start(c: &Cluster, namespace: &str) -> Controller {
        install_rbac(c, namespace);
        Controller::spawn(c, namespace, "a", false, namespaced(namespace)).await
    }

    /// The same, installed with the chart's `hooks.enabled` (RBAC and the controller's
    /// `--allow-hooks`).
    pub async fn start_with_hooks(c: &Cluster, namespace: &str) -> Controller {
        install_rbac_with_hooks(c, namespace);
        let install = Install {
            hooks: true,
            ..namespaced(namespace)
        };
        Controller::spawn(c, namespace, "a", false, install).await
    }

    /// Start a replica that leads through the chart's Lease (RBAC already installed).
    pub async fn replica(c: &Cluster, namespace: &str, identity: &str) -> Controller {
        Controller::spawn(c, namespace, identity, true, namespaced(namespace)).await
    }

    /// Install the chart cluster-wide (its ClusterRole, with the ServiceAccount in a
    /// namespace of its own, `<namespace>-ctl`) and start a controller that watches only
    /// `namespace`: what a cluster-wide install does, confined to the scenario, and
    /// untouched when `namespace` is deleted.
    pub async fn start_outside(c: &Cluster, namespace: &str) -> Controller {
        let release_namespace = format!("{namespace}-ctl");
        c.kubectl_ok(&["create", "namespace", &release_namespace], None);
        let release = format!("hf-{namespace}");
        install_cluster_rbac(c, &release, &release_namespace);
        let install = Install {
            release_namespace,
            fullname: format!("{release}-holdfast"),
            job_service_account: None,
            hooks: false,
        };
        Controller::spawn(c, namespace, "a", false, install).await
    }

    async fn spawn(
        c: &Cluster,
        namespace: &str,
        identity: &str,
        lease: bool,
        install: Install,
    ) -> Controller {
        let kubeconfig = kubeconfig(c, &install, identity);
        let mut ctl = Controller {
            child: None,
            namespace: namespace.to_owned(),
            identity: identity.to_owned(),
            listen: String::new(),
            log: c
                .dir
                .join("logs")
                .join(format!("controller-{namespace}-{identity}.log")),
            kubeconfig,
            lease,
            install,
            job_image: c.job_image.clone(),
        };
        ctl.restart().await;
        ctl
    }

    /// Start the process (again, after [`Controller::kill`] or [`Controller::stop`]).
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "the controller is running already");
        self.listen = format!("127.0.0.1:{}", free_port());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("{}: {e}", self.log.display()));
        let mut cmd = Command::new(holdfast_bin());
        cmd.arg("controller")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--namespace", &self.namespace])
            .args(["--listen", &self.listen])
            .args(["--identity", &self.identity])
            .args(["--job-image", &self.job_image])
            .args(["--log-format", "text"])
            // Short enough for the scenarios to see a purge reclaim space.
            .args(["--purge-grace", "0s"])
            .env("HOLDFAST_LOG", "info,holdfast=debug")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap_or_else(|e| panic!("log: {e}")))
            .stderr(log);
        if let Some(sa) = &self.install.job_service_account {
            cmd.args(["--job-service-account", sa]);
        }
        if self.install.hooks {
            cmd.arg("--allow-hooks");
        }
        if self.lease {
            let lease = format!(
                "{}/{}",
                self.install.release_namespace, self.install.fullname
            );
            cmd.args(["--leader-lease", &lease]);
        }
        self.child = Some(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("cannot start the controller: {e}")),
        );
        // Up once it serves /healthz.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if self.get("/healthz").await.is_some() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "the controller exited at start ({status}); its log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the controller did not serve /healthz in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GET a path of the controller's HTTP port: the body of a 200 answer.
    pub async fn get(&self, path: &str) -> Option<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&self.listen).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).await.ok()?;
        let (head, body) = out.split_once("\r\n\r\n")?;
        head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
    }

    /// The value of one metric series (`name{labels}` as printed), if present.
    pub async fn metric(&self, series_prefix: &str) -> Option<f64> {
        let text = self.get("/metrics").await?;
        text.lines()
            .find(|l| l.starts_with(series_prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no graceful anything, as when a node dies.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait, as on a rollout.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = i32::try_from(child.id())
                .ok()
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            panic!("the controller did not stop within 30 s of SIGTERM");
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}
