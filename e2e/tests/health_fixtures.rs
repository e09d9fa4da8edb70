//! The chart's Argo CD health script under Lua 5.1, over objects captured from end-to-end
//! runs (`helm/holdfast/argocd/testdata/`, refreshed from `target/e2e-statuses/` after
//! `bash e2e/run.sh`) and over the edges a capture cannot pin down. Runs without a cluster.
#![allow(clippy::unwrap_used)] // reason: tests

use holdfast_e2e::harness::repo_root;
use holdfast_e2e::health::argocd;
use serde_json::{Value, json};

#[test]
fn captured_objects_have_the_health_their_scenario_expected() {
    let dir = repo_root().join("helm/holdfast/argocd/testdata");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 10,
        "{} captures in {}",
        files.len(),
        dir.display()
    );
    let mut seen = std::collections::BTreeSet::new();
    for f in files {
        let record: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let want = record["expect"]["argocd"].as_str().unwrap();
        let (got, message) = argocd(&record["object"]);
        assert_eq!(got, want, "{}: {message}", f.display());
        assert!(!message.is_empty(), "{}: a message", f.display());
        seen.insert(got);
    }
    for status in ["Healthy", "Degraded", "Progressing", "Suspended"] {
        assert!(seen.contains(status), "no capture is {status}");
    }
}

#[test]
fn objects_the_controller_has_not_seen_yet_are_progressing() {
    let fresh = json!({"kind": "BackupSet", "metadata": {"name": "a", "generation": 1},
                       "spec": {"suspend": false}});
    assert_eq!(argocd(&fresh).0, "Progressing");
    let behind = json!({"kind": "StorageSet", "metadata": {"name": "a", "generation": 3},
        "status": {"observedGeneration": 2, "conditions": [
            {"type": "Ready", "status": "True", "reason": "Ready", "message": "ok"}]}});
    let (status, message) = argocd(&behind);
    assert_eq!(status, "Progressing");
    assert!(message.contains('3'), "{message}");
    // Stalled wins over an older Ready, and its message is shown.
    let stalled = json!({"kind": "BackupSet", "metadata": {"name": "a", "generation": 1},
        "status": {"observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "True", "reason": "Ready", "message": "ok"},
            {"type": "Stalled", "status": "True", "reason": "KeySecretNotFound",
             "message": "Secret shop-key does not exist \"quoted\" é"}]}});
    let (status, message) = argocd(&stalled);
    assert_eq!(status, "Degraded");
    assert_eq!(message, "Secret shop-key does not exist \"quoted\" é");
}
