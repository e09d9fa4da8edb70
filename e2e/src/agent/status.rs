//! Pod status as a kubelet writes it: phase, conditions and container states.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

/// The state of one container, as the agent knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Waiting {
        reason: String,
        message: String,
    },
    Running {
        started: DateTime<Utc>,
    },
    Terminated {
        exit_code: i32,
        reason: String,
        message: String,
        started: DateTime<Utc>,
        finished: DateTime<Utc>,
    },
}

/// One container's status entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    pub name: String,
    pub image: String,
    pub state: ContainerState,
    pub restarts: i32,
}

impl ContainerStatus {
    pub fn waiting(name: &str, image: &str, reason: &str, message: &str) -> Self {
        ContainerStatus {
            name: name.into(),
            image: image.into(),
            state: ContainerState::Waiting {
                reason: reason.into(),
                message: message.into(),
            },
            restarts: 0,
        }
    }

    pub fn is_terminated(&self) -> bool {
        matches!(self.state, ContainerState::Terminated { .. })
    }

    pub fn exit_code(&self) -> Option<i32> {
        match self.state {
            ContainerState::Terminated { exit_code, .. } => Some(exit_code),
            _ => None,
        }
    }

    fn to_json(&self) -> Value {
        let t = |d: &DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let (state, ready, started) = match &self.state {
            ContainerState::Waiting { reason, message } => (
                json!({"waiting": {"reason": reason, "message": message}}),
                false,
                false,
            ),
            ContainerState::Running { started } => {
                (json!({"running": {"startedAt": t(started)}}), true, true)
            }
            ContainerState::Terminated {
                exit_code,
                reason,
                message,
                started,
                finished,
            } => {
                let mut term = json!({"exitCode": exit_code, "reason": reason,
                    "startedAt": t(started), "finishedAt": t(finished)});
                if !message.is_empty() {
                    term["message"] = json!(message);
                }
                (json!({"terminated": term}), false, false)
            }
        };
        json!({"name": self.name, "image": self.image, "imageID": "", "ready": ready,
               "started": started, "restartCount": self.restarts, "state": state})
    }
}

/// The whole status the agent writes for a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodStatus {
    pub phase: &'static str,
    pub started: DateTime<Utc>,
    pub init: Vec<ContainerStatus>,
    pub containers: Vec<ContainerStatus>,
    /// An extra condition: (type, status, reason, message).
    pub condition: Option<(String, String, String, String)>,
    pub reason: Option<String>,
    pub message: Option<String>,
}

impl PodStatus {
    /// The status as a merge patch for the status subresource.
    pub fn patch(&self) -> Value {
        let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let cond = |t: &str, ok: bool| json!({"type": t, "status": if ok { "True" } else { "False" }, "lastTransitionTime": now});
        let initialized = self.init.iter().all(|c| c.exit_code() == Some(0));
        let ready = self.phase == "Running"
            && self
                .containers
                .iter()
                .all(|c| matches!(c.state, ContainerState::Running { .. }));
        let mut conditions = vec![
            cond("PodScheduled", true),
            cond("Initialized", initialized),
            cond("ContainersReady", ready),
            cond("Ready", ready),
        ];
        if let Some((t, s, r, m)) = &self.condition {
            conditions.push(json!({"type": t, "status": s, "reason": r, "message": m,
                                   "lastTransitionTime": now}));
        }
        let mut status = json!({
            "phase": self.phase,
            "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "conditions": conditions,
            "containerStatuses": self.containers.iter().map(ContainerStatus::to_json).collect::<Vec<_>>(),
        });
        if !self.init.is_empty() {
            status["initContainerStatuses"] =
                self.init.iter().map(ContainerStatus::to_json).collect();
        }
        if let Some(r) = &self.reason {
            status["reason"] = json!(r);
        }
        if let Some(m) = &self.message {
            status["message"] = json!(m);
        }
        json!({ "status": status })
    }
}

/// The kubelet's reason for a terminated container.
pub fn exit_reason(code: i32) -> &'static str {
    match code {
        0 => "Completed",
        137 => "Error",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_pod_reports_exit_codes_messages_and_readiness() {
        let now = Utc::now();
        let s = PodStatus {
            phase: "Failed",
            started: now,
            init: vec![ContainerStatus {
                name: "tools".into(),
                image: "holdfast".into(),
                state: ContainerState::Terminated {
                    exit_code: 0,
                    reason: "Completed".into(),
                    message: String::new(),
                    started: now,
                    finished: now,
                },
                restarts: 0,
            }],
            containers: vec![ContainerStatus {
                name: "job".into(),
                image: "holdfast".into(),
                state: ContainerState::Terminated {
                    exit_code: 3,
                    reason: exit_reason(3).into(),
                    message: "{\"status\":\"Partial\"}".into(),
                    started: now,
                    finished: now,
                },
                restarts: 0,
            }],
            condition: None,
            reason: None,
            message: None,
        };
        let p = s.patch();
        let c = &p["status"]["containerStatuses"][0];
        assert_eq!(c["state"]["terminated"]["exitCode"], 3);
        assert_eq!(
            c["state"]["terminated"]["message"],
            "{\"status\":\"Partial\"}"
        );
        assert_eq!(p["status"]["phase"], "Failed");
        let ready = p["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap();
        assert_eq!(ready["status"], "False");
        assert_eq!(
            p["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"],
            0
        );
    }
}
