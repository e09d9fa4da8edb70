//! The node agent against the real control plane: it must behave like a kubelet where the
//! scenarios rely on it (binding, volumes, environment, security context, status,
//! termination messages, graceful deletion, Jobs) and refuse what it cannot emulate.
#![allow(clippy::unwrap_used)] // reason: tests

use std::time::Duration;

use holdfast_e2e::harness::{Cluster, api, claim, obj, wait_for, wait_for_file, wait_gone};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

const T: Duration = Duration::from_secs(60);

async fn finished(pods: &Api<Pod>, name: &str) -> Pod {
    wait_for(pods, name, "the pod to finish", T, |p| {
        let phase = p.status.as_ref()?.phase.clone()?;
        (phase == "Succeeded" || phase == "Failed").then(|| p.clone())
    })
    .await
}

fn terminated(p: &Pod, container: &str) -> (i32, String) {
    let s = p
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .iter()
        .flatten()
        .find(|s| s.name == container)
        .unwrap();
    let t = s.state.as_ref().unwrap().terminated.as_ref().unwrap();
    (t.exit_code, t.message.clone().unwrap_or_default())
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_pod_gets_its_volumes_environment_and_security_context_and_reports_like_a_kubelet() {
    let c = Cluster::connect().await;
    let ns = c.namespace("agent").await;
    let data = claim(&c, &ns, "data").await;
    c.kubectl_ok(
        &[
            "create",
            "secret",
            "generic",
            "key",
            "-n",
            &ns,
            "--from-literal=passphrase=hunter2",
        ],
        None,
    );
    c.kubectl_ok(
        &[
            "create",
            "configmap",
            "cfg",
            "-n",
            &ns,
            "--from-literal=level=debug",
        ],
        None,
    );
    let pods: Api<Pod> = api(&c, &ns);
    let script = r#"set -e
echo "$PASS $LEVEL $NODE $POD" > /data/out
id -u >> /data/out
cat /etc/key/passphrase >> /data/out
echo >> /data/out
echo shared > /scratch/x
if touch /rootfs-write 2>/dev/null; then echo "root writable" >> /data/out; fi
if touch /ro/x 2>/dev/null; then echo "read-only volume writable" >> /data/out; fi
grep CapEff /proc/self/status >> /data/out
printf '{"done": true}' > /dev/termination-log
exit 7"#;
    let pod: Pod = obj(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": ns, "labels": {"app": "e2e"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": false,
            "securityContext": {"runAsUser": 1000},
            "initContainers": [{"name": "first", "image": "busybox",
                "command": ["sh", "-c", "echo init > /scratch/init"],
                "volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]}],
            "containers": [{
                "name": "main", "image": "busybox", "command": ["sh", "-c", script],
                "env": [
                    {"name": "PASS", "valueFrom": {"secretKeyRef": {"name": "key", "key": "passphrase"}}},
                    {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "level"}}},
                    {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                    {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "securityContext": {"readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false,
                                    "capabilities": {"drop": ["ALL"], "add": ["DAC_READ_SEARCH"]}},
                "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "key", "mountPath": "/etc/key", "readOnly": true},
                    {"name": "scratch", "mountPath": "/scratch"},
                    {"name": "data", "mountPath": "/ro", "readOnly": true}],
            }],
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "key", "secret": {"secretName": "key"}},
                {"name": "scratch", "emptyDir": {}}],
        },
    }));
    pods.create(&PostParams::default(), &pod).await.unwrap();
    let done = finished(&pods, "p").await;
    assert_eq!(
        done.status.as_ref().unwrap().phase.as_deref(),
        Some("Failed")
    );
    let (code, message) = terminated(&done, "main");
    assert_eq!((code, message.as_str()), (7, r#"{"done": true}"#));
    let init = &done
        .status
        .as_ref()
        .unwrap()
        .init_container_statuses
        .as_ref()
        .unwrap()[0];
    assert_eq!(
        init.state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        0
    );
    let out = std::fs::read_to_string(data.join("out")).unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "hunter2 debug node-a p", "{out}");
    assert_eq!(lines[1], "1000", "{out}");
    assert_eq!(lines[2], "hunter2", "secret volume: {out}");
    assert!(!out.contains("root writable"), "{out}");
    assert!(!out.contains("read-only volume writable"), "{out}");
    assert!(
        out.contains("CapEff:\t0000000000000004"),
        "only DAC_READ_SEARCH: {out}"
    );
    assert!(!data.join("x").exists());
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn deleting_a_running_pod_stops_it_with_sigterm_within_its_grace_period() {
    let c = Cluster::connect().await;
    let ns = c.namespace("agent-delete").await;
    let data = claim(&c, &ns, "data").await;
    let pods: Api<Pod> = api(&c, &ns);
    let pod: Pod = obj(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "sleeper", "namespace": ns},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": false,
                 "terminationGracePeriodSeconds": 10,
                 "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c",
                    "trap 'echo term > /data/signal; exit 0' TERM; echo up > /data/up; while true; do sleep 0.1; done"],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]},
    }));
    pods.create(&PostParams::default(), &pod).await.unwrap();
    wait_for(&pods, "sleeper", "the pod to run", T, |p| {
        (p.status.as_ref()?.phase.as_deref() == Some("Running")).then_some(())
    })
    .await;
    wait_for_file(&data.join("up"), "the container never started", T).await;
    pods.delete("sleeper", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&pods, "sleeper", Duration::from_secs(15)).await;
    assert_eq!(
        std::fs::read_to_string(data.join("signal")).unwrap(),
        "term\n"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn pods_are_bound_by_selector_and_affinity_and_unschedulable_ones_say_why() {
    let c = Cluster::connect().await;
    let ns = c.namespace("agent-bind").await;
    let pods: Api<Pod> = api(&c, &ns);
    let spec = |name: &str, extra: serde_json::Value| -> Pod {
        let mut v = json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"restartPolicy": "Never", "automountServiceAccountToken": false,
                     "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]},
        });
        for (k, val) in extra.as_object().unwrap() {
            v["spec"][k] = val.clone();
        }
        obj(v)
    };
    let cases = [
        (
            "selected",
            json!({"nodeSelector": {"kubernetes.io/hostname": "node-b"}}),
            Some("node-b"),
        ),
        (
            "affine",
            json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution":
            {"nodeSelectorTerms": [{"matchExpressions": [{"key": "kubernetes.io/hostname",
              "operator": "In", "values": ["node-b"]}]}]}}}}),
            Some("node-b"),
        ),
        ("anywhere", json!({}), Some("node-a")),
        ("nowhere", json!({"nodeSelector": {"disk": "ssd"}}), None),
    ];
    for (name, extra, _) in &cases {
        pods.create(&PostParams::default(), &spec(name, extra.clone()))
            .await
            .unwrap();
    }
    for (name, _, want) in &cases {
        match want {
            Some(node) => {
                let p = finished(&pods, name).await;
                assert_eq!(p.spec.unwrap().node_name.as_deref(), Some(*node), "{name}");
            }
            None => {
                let why = wait_for(&pods, name, "an Unschedulable condition", T, |p| {
                    p.status
                        .as_ref()?
                        .conditions
                        .as_ref()?
                        .iter()
                        .find_map(|c| {
                            (c.type_ == "PodScheduled" && c.status == "False")
                                .then(|| c.message.clone().unwrap_or_default())
                        })
                })
                .await;
                assert!(why.contains("nodeSelector"), "{why}");
            }
        }
    }
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_job_runs_through_the_job_controller_and_what_cannot_be_emulated_is_refused() {
    let c = Cluster::connect().await;
    let ns = c.namespace("agent-job").await;
    let jobs: Api<Job> = api(&c, &ns);
    let job: Job = obj(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "once", "namespace": ns},
        "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 600, "template": {"spec": {
            "restartPolicy": "Never", "automountServiceAccountToken": false,
            "containers": [{"name": "c", "image": "busybox",
                            "command": ["sh", "-c", "echo ok > /dev/termination-log"]}]}}},
    }));
    jobs.create(&PostParams::default(), &job).await.unwrap();
    wait_for(&jobs, "once", "the Job to complete", T, |j| {
        j.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "Complete" && c.status == "True")
            .map(|_| ())
    })
    .await;

    let pods: Api<Pod> = api(&c, &ns);
    let nfs: Pod = obj(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nfs", "namespace": ns},
        "spec": {"restartPolicy": "Never", "automountServiceAccountToken": false,
                 "containers": [{"name": "c", "image": "busybox", "command": ["true"],
                                 "volumeMounts": [{"name": "share", "mountPath": "/share"}]}],
                 "volumes": [{"name": "share", "nfs": {"server": "nas", "path": "/export"}}]},
    }));
    pods.create(&PostParams::default(), &nfs).await.unwrap();
    let p = finished(&pods, "nfs").await;
    let cond = p
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "HoldfastAgentSupported")
        .cloned()
        .unwrap();
    assert_eq!(cond.status, "False");
    assert!(cond.message.unwrap_or_default().contains("only emptyDir"));
}
