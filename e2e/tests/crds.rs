//! The custom resources against the real kube-apiserver: the CRDs install (CEL rules
//! compiled and cost-checked by the server), every example applies, every invalid fixture of
//! the API tests is refused with its message, transition rules hold, and `kubectl get`
//! shows the printer columns.
#![allow(clippy::unwrap_used)] // reason: tests

use holdfast_e2e::harness::{Cluster, repo_root};
use serde_json::Value;

fn yaml_docs(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple(text).unwrap()
}

/// A valid object to mutate, as the API tests take it: the quick start's, or the
/// point-in-time Restore.
fn base(kind: &str) -> Value {
    let file = if kind == "Restore" {
        "restore-point-in-time.yaml"
    } else {
        "quickstart.yaml"
    };
    let text = std::fs::read_to_string(repo_root().join("examples").join(file)).unwrap();
    yaml_docs(&text)
        .into_iter()
        .find(|d| d["kind"] == kind && d["apiVersion"] == "holdfast.io/v1alpha1")
        .unwrap()
}

fn set(mut v: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').unwrap();
    let target = v.pointer_mut(parent).unwrap();
    if value.is_null() {
        target.as_object_mut().unwrap().remove(key);
    } else if key == "-" {
        target.as_array_mut().unwrap().push(value);
    } else if let Ok(i) = key.parse::<usize>() {
        target[i] = value;
    } else {
        target[key] = value;
    }
    v
}

fn install_crds(c: &Cluster) {
    c.kubectl_ok(
        &[
            "apply",
            "--server-side",
            "-f",
            &repo_root().join("crds").display().to_string(),
        ],
        None,
    );
    c.kubectl_ok(
        &[
            "wait",
            "--for",
            "condition=established",
            "--timeout",
            "60s",
            "crd/backupsets.holdfast.io",
            "crd/storagesets.holdfast.io",
            "crd/schedules.holdfast.io",
            "crd/restores.holdfast.io",
        ],
        None,
    );
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn crds_install_examples_apply_and_invalid_objects_are_refused() {
    let c = Cluster::connect().await;
    install_crds(&c);

    // Every example, as a server-side dry run, in the namespaces it names.
    let mut files: Vec<_> = std::fs::read_dir(repo_root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for d in yaml_docs(&text) {
            if let Some(ns) = d["metadata"]["namespace"].as_str() {
                let _ = c.kubectl(&["create", "namespace", ns], None);
            }
        }
        let (ok, out, err) = c.kubectl(
            &[
                "apply",
                "--server-side",
                "--dry-run=server",
                "-f",
                &f.display().to_string(),
            ],
            None,
        );
        assert!(ok, "{} does not apply: {err}{out}", f.display());
    }

    // Every invalid fixture of the API tests, refused with its message.
    let fixtures =
        std::fs::read_to_string(repo_root().join("controller/tests/fixtures/invalid-objects.yaml"))
            .unwrap();
    let cases: Vec<Value> = serde_saphyr::from_str(&fixtures).unwrap();
    assert!(cases.len() >= 14);
    for case in &cases {
        let kind = case["kind"].as_str().unwrap();
        let mut obj = base(kind);
        for (pointer, value) in case["set"].as_object().unwrap() {
            obj = set(obj, pointer, value.clone());
        }
        let want = case["message"].as_str().unwrap();
        let (ok, _, err) = c.kubectl(
            &["apply", "--server-side", "--dry-run=server", "-f", "-"],
            Some(&obj.to_string()),
        );
        assert!(!ok, "{kind} {case} was accepted");
        assert!(err.contains(want), "{kind}: expected {want:?} in:\n{err}");
    }

    // A jobTemplate cannot set what the controller decides: kubectl's strict field
    // validation makes the API server refuse a field the schema does not declare.
    for (field, value) in [
        ("image", serde_json::json!("evil:latest")),
        ("securityContext", serde_json::json!({"privileged": true})),
        ("serviceAccountName", serde_json::json!("admin")),
    ] {
        let obj = set(
            base("BackupSet"),
            "/spec/jobTemplate",
            serde_json::json!({ field: value }),
        );
        let (ok, _, err) = c.kubectl(
            &["apply", "--server-side", "--dry-run=server", "-f", "-"],
            Some(&obj.to_string()),
        );
        assert!(!ok, "jobTemplate.{field} was accepted");
        assert!(err.contains(field), "jobTemplate.{field}: {err}");
    }

    // Transition rules, on objects that exist.
    let ns = c.namespace("crds").await;
    let mut bset = base("BackupSet");
    bset["metadata"]["namespace"] = Value::from(ns.clone());
    c.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&bset.to_string()),
    );
    let moved = set(
        bset.clone(),
        "/spec/storageSetRef/name",
        Value::from("elsewhere"),
    );
    let (ok, _, err) = c.kubectl(
        &["apply", "--server-side", "-f", "-"],
        Some(&moved.to_string()),
    );
    assert!(!ok && err.contains("storageSetRef is immutable"), "{err}");
    let suspended = set(bset.clone(), "/spec/suspend", Value::from(true));
    c.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&suspended.to_string()),
    );
    let mut restore = base("Restore");
    restore["metadata"]["namespace"] = Value::from(ns.clone());
    c.kubectl_ok(
        &["apply", "--server-side", "-f", "-"],
        Some(&restore.to_string()),
    );
    let edited = set(restore, "/spec/overwrite", Value::from("Always"));
    let (ok, _, err) = c.kubectl(
        &["apply", "--server-side", "-f", "-"],
        Some(&edited.to_string()),
    );
    assert!(!ok && err.contains("one-shot"), "{err}");

    // Printer columns and `kubectl explain` from the field docs.
    let table = c.kubectl_ok(&["get", "bset", "-n", &ns], None);
    let header = table.lines().next().unwrap();
    for col in [
        "NAME", "STORAGE", "SCHEDULE", "LAST RUN", "RESULT", "NEXT RUN", "AGE",
    ] {
        assert!(header.contains(col), "{col} missing from {header:?}");
    }
    let wide = c.kubectl_ok(&["get", "hfbs", "-n", &ns, "-o", "wide"], None);
    assert!(
        wide.lines().next().unwrap().contains("RESTORE POINTS"),
        "{wide}"
    );
    assert!(wide.contains("true"), "suspended shows: {wide}");
    let explained = c.kubectl_ok(&["explain", "backupset.spec.retention.keepDaily"], None);
    assert!(explained.contains("newest restore point"), "{explained}");
    let cats = c.kubectl_ok(&["get", "holdfast", "-n", &ns, "-o", "name"], None);
    assert!(cats.contains("backupset.holdfast.io/shop"), "{cats}");
}
