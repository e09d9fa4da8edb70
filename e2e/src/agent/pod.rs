//! One pod's life on a node: volumes and environment, init containers in order, then the
//! containers (restarted per `restartPolicy`), status written as it goes, and a graceful
//! stop (SIGTERM, the grace period, SIGKILL) when the pod is deleted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Event, EventSource, ObjectReference, Pod, Secret,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use tokio::sync::watch;

use super::Agent;
use super::container::{self, Launch};
use super::env::{self, PodData};
use super::status::{ContainerState, ContainerStatus, PodStatus, exit_reason};
use super::volumes::{VolumeError, Volumes};

/// What stops a pod early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// Keep running.
    No,
    /// The pod is being deleted: stop within this grace period, then remove it.
    Delete(Duration),
}

/// Why preparing the pod failed.
enum Prepare {
    /// Not yet possible; retried (the reason shows as ContainerCreating).
    Wait(String),
    /// A volume cannot be mounted; retried, and reported as a `FailedMount` Event.
    MountFailed(String),
    /// Never possible here.
    Refuse(String),
}

/// A running container process.
struct Running {
    child: tokio::process::Child,
    pgid: i32,
    started: chrono::DateTime<Utc>,
    dir: PathBuf,
}

#[derive(Debug)]
pub struct PodRun {
    pub agent: Arc<Agent>,
    pub pod: Pod,
    pub stop: watch::Receiver<Stop>,
}

impl PodRun {
    fn api(&self) -> Api<Pod> {
        Api::namespaced(self.agent.client.clone(), self.namespace())
    }

    fn namespace(&self) -> &str {
        self.pod.metadata.namespace.as_deref().unwrap_or("default")
    }

    fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or_default()
    }

    fn dir(&self) -> PathBuf {
        self.agent
            .state_dir
            .join("pods")
            .join(self.pod.metadata.uid.as_deref().unwrap_or("unknown"))
    }

    async fn write(&self, status: &PodStatus) {
        let r = self
            .api()
            .patch_status(
                self.name(),
                &PatchParams::default(),
                &Patch::Merge(status.patch()),
            )
            .await;
        if let Err(e) = r {
            tracing::warn!(pod = self.name(), "status update failed: {e}");
        }
    }

    /// Post a Warning Event about this pod, as a kubelet does.
    async fn event(&self, reason: &str, message: &str) {
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        );
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", self.name())),
                namespace: Some(self.namespace().to_owned()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(self.name().to_owned()),
                namespace: Some(self.namespace().to_owned()),
                uid: self.pod.metadata.uid.clone(),
                ..Default::default()
            },
            reason: Some(reason.to_owned()),
            message: Some(message.to_owned()),
            type_: Some("Warning".into()),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: self.pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            }),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Default::default()
        };
        let api: Api<Event> = Api::namespaced(self.agent.client.clone(), self.namespace());
        if let Err(e) = api.create(&Default::default(), &event).await {
            tracing::warn!(pod = self.name(), "event {reason} not recorded: {e}");
        }
    }

    fn stopping(&self) -> Stop {
        *self.stop.borrow()
    }

    /// Run the pod to its end (or until it is deleted), then, if deleted, remove it.
    pub async fn run(mut self) {
        let started = Utc::now();
        let spec = self.pod.spec.clone().unwrap_or_default();
        let init_specs = spec.init_containers.clone().unwrap_or_default();
        let specs = spec.containers.clone();
        let image = |c: &Container| c.image.clone().unwrap_or_default();
        let mut status = PodStatus {
            phase: "Pending",
            started,
            init: init_specs
                .iter()
                .map(|c| ContainerStatus::waiting(&c.name, &image(c), "PodInitializing", ""))
                .collect(),
            containers: specs
                .iter()
                .map(|c| ContainerStatus::waiting(&c.name, &image(c), "ContainerCreating", ""))
                .collect(),
            condition: None,
            reason: None,
            message: None,
        };
        // Volumes and environment: retried until ready, refused if never possible.
        let mut reported: Option<String> = None;
        let prepared = loop {
            match self.prepare(&init_specs, &specs).await {
                Ok(p) => break Some(p),
                Err(Prepare::Refuse(why)) => {
                    self.refuse(&mut status, &why).await;
                    break None;
                }
                Err(Prepare::MountFailed(why)) => {
                    // A kubelet shows only ContainerCreating in the status; the reason is
                    // in an Event of the pod.
                    if reported.as_deref() != Some(why.as_str()) {
                        self.event("FailedMount", &why).await;
                        reported = Some(why);
                    }
                    self.write(&status).await;
                    if self.wait_or_stop(Duration::from_secs(1)).await {
                        break None;
                    }
                }
                Err(Prepare::Wait(why)) => {
                    for c in &mut status.containers {
                        c.state = ContainerState::Waiting {
                            reason: "ContainerCreating".into(),
                            message: why.clone(),
                        };
                    }
                    self.write(&status).await;
                    if self.wait_or_stop(Duration::from_secs(1)).await {
                        break None;
                    }
                }
            }
        };
        if let Some((init, main)) = prepared {
            self.run_containers(&mut status, init, main).await;
        }
        if let Stop::Delete(_) = self.stopping() {
            // The kubelet removes a pod once its containers are gone.
            let _ = self
                .api()
                .delete(self.name(), &DeleteParams::default().grace_period(0))
                .await;
            let _ = std::fs::remove_dir_all(self.dir());
        }
    }

    /// Sleep, or return `true` at once if the pod is being deleted.
    async fn wait_or_stop(&mut self, d: Duration) -> bool {
        if self.stopping() != Stop::No {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopping() != Stop::No,
            _ = self.stop.changed() => true,
        }
    }

    async fn refuse(&self, status: &mut PodStatus, why: &str) {
        tracing::warn!(pod = self.name(), "refused: {why}");
        let now = Utc::now();
        status.phase = "Failed";
        status.reason = Some("Unsupported".into());
        status.message = Some(format!("the e2e node agent cannot run this pod: {why}"));
        status.condition = Some((
            "HoldfastAgentSupported".into(),
            "False".into(),
            "Unsupported".into(),
            why.into(),
        ));
        for c in &mut status.containers {
            c.state = ContainerState::Terminated {
                exit_code: 128,
                reason: "Unsupported".into(),
                message: why.into(),
                started: now,
                finished: now,
            };
        }
        self.write(status).await;
    }

    async fn fetch_data(&self) -> Result<PodData, Prepare> {
        let (secrets, maps) = env::referenced(&self.pod);
        let mut data = PodData::default();
        let sapi: Api<Secret> = Api::namespaced(self.agent.client.clone(), self.namespace());
        for name in secrets {
            match sapi.get_opt(&name).await {
                Ok(Some(s)) => {
                    let mut values: BTreeMap<String, Vec<u8>> = s
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect();
                    for (k, v) in s.string_data.unwrap_or_default() {
                        values.insert(k, v.into_bytes());
                    }
                    data.secrets.insert(name, values);
                }
                Ok(None) => {}
                Err(e) => return Err(Prepare::Wait(format!("reading secret {name}: {e}"))),
            }
        }
        let mapi: Api<ConfigMap> = Api::namespaced(self.agent.client.clone(), self.namespace());
        for name in maps {
            match mapi.get_opt(&name).await {
                Ok(Some(m)) => {
                    data.config_maps.insert(name, m.data.unwrap_or_default());
                }
                Ok(None) => {}
                Err(e) => return Err(Prepare::Wait(format!("reading configmap {name}: {e}"))),
            }
        }
        Ok(data)
    }

    async fn prepare(
        &self,
        init: &[Container],
        main: &[Container],
    ) -> Result<(Vec<Launch>, Vec<Launch>), Prepare> {
        let data = self.fetch_data().await?;
        let dir = self.dir();
        std::fs::create_dir_all(&dir).map_err(|e| Prepare::Refuse(e.to_string()))?;
        let volumes = Volumes {
            client: &self.agent.client,
            pod: &self.pod,
            namespace: self.namespace(),
            pod_dir: &dir,
            data: &data,
        }
        .prepare()
        .await
        .map_err(|e| match e {
            VolumeError::NotReady(m) => Prepare::Wait(m),
            VolumeError::MountFailed(m) => Prepare::MountFailed(m),
            VolumeError::Api { .. } => Prepare::Wait(e.to_string()),
            other => Prepare::Refuse(other.to_string()),
        })?;
        let launch = |c: &Container| -> Result<Launch, Prepare> {
            let mut vars = env::resolve(&self.pod, c, &data).map_err(|e| {
                if e.is_retryable() {
                    Prepare::Wait(e.to_string())
                } else {
                    Prepare::Refuse(e.to_string())
                }
            })?;
            self.agent.defaults(&self.pod, &mut vars);
            container::plan(&self.pod, c, &volumes, vars, &self.agent.holdfast_bin)
                .map_err(|e| Prepare::Refuse(e.0))
        };
        let init = init.iter().map(launch).collect::<Result<Vec<_>, _>>()?;
        let main = main.iter().map(launch).collect::<Result<Vec<_>, _>>()?;
        Ok((init, main))
    }

    fn spawn(&self, name: &str, launch: &Launch) -> std::io::Result<Running> {
        let dir = self.dir().join("containers").join(name);
        std::fs::create_dir_all(dir.join("root"))?;
        let term = dir.join("termination-log");
        std::fs::write(&term, b"")?;
        // Writable by whatever user the container runs as, as the kubelet makes it.
        std::fs::set_permissions(&term, std::os::unix::fs::PermissionsExt::from_mode(0o666))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("log"))?;
        let script = container::script(launch, &dir.join("root"), &term);
        let mut cmd = tokio::process::Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(script)
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true);
        let child = cmd.spawn()?;
        let pgid = child.id().map(|p| p as i32).unwrap_or(0);
        Ok(Running {
            child,
            pgid,
            started: Utc::now(),
            dir,
        })
    }

    /// Signal a container's whole process group.
    fn signal(pgid: i32, sig: rustix::process::Signal) {
        if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
            let _ = rustix::process::kill_process_group(pid, sig);
        }
    }

    /// Wait for a process, or stop it if the pod is deleted meanwhile.
    async fn wait(&mut self, r: &mut Running) -> ContainerState {
        let status = tokio::select! {
            s = r.child.wait() => s,
            _ = async {
                loop {
                    if self.stopping() != Stop::No { break; }
                    if self.stop.changed().await.is_err() { std::future::pending::<()>().await; }
                }
            } => {
                let grace = match self.stopping() { Stop::Delete(g) => g, Stop::No => Duration::ZERO };
                Self::signal(r.pgid, rustix::process::Signal::TERM);
                match tokio::time::timeout(grace, r.child.wait()).await {
                    Ok(s) => s,
                    Err(_) => {
                        Self::signal(r.pgid, rustix::process::Signal::KILL);
                        r.child.wait().await
                    }
                }
            }
        };
        let finished = Utc::now();
        let code = match status {
            Ok(s) => s.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(9)
            }),
            Err(_) => 128,
        };
        ContainerState::Terminated {
            exit_code: code,
            reason: exit_reason(code).into(),
            message: String::new(),
            started: r.started,
            finished,
        }
    }

    fn with_message(
        &self,
        c: &Container,
        r: &Running,
        mut state: ContainerState,
    ) -> ContainerState {
        if let ContainerState::Terminated {
            exit_code, message, ..
        } = &mut state
        {
            let fallback = c.termination_message_policy.as_deref() == Some("FallbackToLogsOnError");
            *message = container::termination_message(
                &r.dir.join("termination-log"),
                &r.dir.join("log"),
                fallback,
                *exit_code != 0,
            );
        }
        state
    }

    async fn run_containers(
        &mut self,
        status: &mut PodStatus,
        init: Vec<Launch>,
        main: Vec<Launch>,
    ) {
        let spec = self.pod.spec.clone().unwrap_or_default();
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        let init_specs = spec.init_containers.clone().unwrap_or_default();
        // Init containers, one after another.
        for (i, launch) in init.iter().enumerate() {
            let c = &init_specs[i];
            let mut r = match self.spawn(&c.name, launch) {
                Ok(r) => r,
                Err(e) => {
                    return self
                        .refuse(status, &format!("starting {}: {e}", c.name))
                        .await;
                }
            };
            status.init[i].state = ContainerState::Running { started: r.started };
            self.write(status).await;
            let state = self.wait(&mut r).await;
            status.init[i].state = self.with_message(c, &r, state);
            if status.init[i].exit_code() != Some(0) || self.stopping() != Stop::No {
                status.phase = "Failed";
                self.write(status).await;
                return;
            }
        }
        status.phase = "Running";
        // The containers, each supervised by its own future.
        let mut running: Vec<Option<Running>> = Vec::new();
        for (i, launch) in main.iter().enumerate() {
            match self.spawn(&spec.containers[i].name, launch) {
                Ok(r) => {
                    status.containers[i].state = ContainerState::Running { started: r.started };
                    running.push(Some(r));
                }
                Err(e) => {
                    for r in running.iter_mut().flatten() {
                        Self::signal(r.pgid, rustix::process::Signal::KILL);
                    }
                    return self
                        .refuse(
                            status,
                            &format!("starting {}: {e}", spec.containers[i].name),
                        )
                        .await;
                }
            }
        }
        self.write(status).await;
        let deadline = spec
            .active_deadline_seconds
            .map(|s| tokio::time::Instant::now() + Duration::from_secs(s.max(0) as u64));
        loop {
            let live: Vec<usize> = (0..running.len())
                .filter(|i| running[*i].is_some())
                .collect();
            if live.is_empty() {
                break;
            }
            // Wait for any container (polling keeps this simple and the scenarios small).
            let mut exited = None;
            for &i in &live {
                if let Some(r) = running[i].as_mut()
                    && let Ok(Some(_)) = r.child.try_wait()
                {
                    exited = Some(i);
                    break;
                }
            }
            let stop_now = self.stopping() != Stop::No
                || deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
            if stop_now {
                if self.stopping() == Stop::No {
                    status.reason = Some("DeadlineExceeded".into());
                    status.message = Some("the pod ran longer than activeDeadlineSeconds".into());
                }
                let grace = match self.stopping() {
                    Stop::Delete(g) => g,
                    Stop::No => Duration::from_secs(
                        spec.termination_grace_period_seconds.unwrap_or(30).max(0) as u64,
                    ),
                };
                for &i in &live {
                    if let Some(r) = running[i].as_ref() {
                        Self::signal(r.pgid, rustix::process::Signal::TERM);
                    }
                }
                let until = tokio::time::Instant::now() + grace;
                for &i in &live {
                    if let Some(mut r) = running[i].take() {
                        let s = match tokio::time::timeout_at(until, r.child.wait()).await {
                            Ok(s) => s,
                            Err(_) => {
                                Self::signal(r.pgid, rustix::process::Signal::KILL);
                                r.child.wait().await
                            }
                        };
                        let code = s.ok().and_then(|s| s.code()).unwrap_or(137);
                        let state = ContainerState::Terminated {
                            exit_code: code,
                            reason: exit_reason(code).into(),
                            message: String::new(),
                            started: r.started,
                            finished: Utc::now(),
                        };
                        status.containers[i].state =
                            self.with_message(&spec.containers[i], &r, state);
                    }
                }
                status.phase = "Failed";
                self.write(status).await;
                return;
            }
            let Some(i) = exited else {
                if self.wait_or_stop(Duration::from_millis(100)).await {
                    continue;
                }
                continue;
            };
            let Some(mut r) = running[i].take() else {
                continue;
            };
            let state = self.wait(&mut r).await;
            let state = self.with_message(&spec.containers[i], &r, state);
            let failed = !matches!(state, ContainerState::Terminated { exit_code: 0, .. });
            status.containers[i].state = state;
            let restart = match policy.as_str() {
                "Always" => true,
                "OnFailure" => failed,
                _ => false,
            };
            if restart {
                let backoff =
                    Duration::from_secs(1u64 << status.containers[i].restarts.clamp(0, 4));
                self.write(status).await;
                if self.wait_or_stop(backoff).await {
                    continue;
                }
                status.containers[i].restarts += 1;
                match self.spawn(&spec.containers[i].name, &main[i]) {
                    Ok(r) => {
                        status.containers[i].state = ContainerState::Running { started: r.started };
                        running[i] = Some(r);
                    }
                    Err(e) => tracing::warn!(pod = self.name(), "restart failed: {e}"),
                }
            }
            self.write(status).await;
        }
        let all_ok = status.containers.iter().all(|c| c.exit_code() == Some(0));
        status.phase = if all_ok { "Succeeded" } else { "Failed" };
        self.write(status).await;
    }
}

/// Where a pod's files live.
pub fn pod_dir(state: &Path, uid: &str) -> PathBuf {
    state.join("pods").join(uid)
}
