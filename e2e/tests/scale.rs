//! What the controller costs with 100 scheduled BackupSets: API requests to reach Ready
//! and per reconcile, reconciles per set, watch streams, the estimated requests of an
//! idle hour, and its memory. Measured on the real API server; the numbers are printed
//! (and kept in target/e2e-measurements/) and bounded so a regression fails.
#![allow(clippy::unwrap_used)] // reason: tests

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use holdfast_e2e::controller::Controller;
use holdfast_e2e::harness::{Cluster, apply, claim, holdfast_api, repo_root};
use holdfast_e2e::scenario::{Target, storage_manifests};

const SETS: usize = 100;

async fn requests(ctl: &Controller) -> (f64, f64) {
    let text = ctl.get("/metrics").await.unwrap_or_default();
    let mut all = 0.0;
    let mut watches = 0.0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("holdfast_kubernetes_requests_total{") {
            let v: f64 = rest.rsplit(' ').next().unwrap().parse().unwrap();
            all += v;
            if rest.starts_with("method=\"WATCH\"") {
                watches += v;
            }
        }
    }
    (all, watches)
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test]
#[ignore = "needs the local control plane: bash e2e/run.sh"]
async fn a_hundred_scheduled_sets_cost_few_requests_and_little_memory() {
    let c = Cluster::connect().await;
    let ns = c.namespace("scale").await;
    claim(&c, &ns, "uploads").await;
    apply(&c, &ns, &storage_manifests(&c, &ns, Target::S3));
    let mut manifests = String::from(
        "apiVersion: holdfast.io/v1alpha1\nkind: Schedule\nmetadata: {name: nightly}\nspec:\n  timeZone: Europe/Paris\n  full: \"0 1 * * 6\"\n  incremental: \"0 1 * * 0-5\"\n  purge: \"0 4 * * *\"\n  jitter: 30m\n",
    );
    for i in 0..SETS {
        write!(
            manifests,
            "---\napiVersion: holdfast.io/v1alpha1\nkind: BackupSet\nmetadata: {{name: app-{i:03}}}\nspec:\n  storageSetRef: {{name: offsite}}\n  scheduleRef: {{name: nightly}}\n  sources:\n  - name: data\n    persistentVolumeClaim: {{claimName: uploads}}\n  encryption:\n    keySecretRef: {{name: shop-key, key: passphrase}}\n"
        )
        .unwrap();
    }
    apply(&c, &ns, &manifests);

    let started = Instant::now();
    let ctl = Controller::start(&c, &ns).await;
    let sets = holdfast_api(&c, &ns, "BackupSet");
    loop {
        let list = sets.list(&Default::default()).await.unwrap();
        let ready = list
            .items
            .iter()
            .filter(|o| {
                let v = serde_json::to_value(o).unwrap();
                holdfast_e2e::harness::condition(&v, "Ready").is_some_and(|(s, _, _)| s == "True")
            })
            .count();
        if ready == SETS {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "{ready}/{SETS} Ready after 2 minutes"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let to_ready = started.elapsed();
    // Let the follow-ups (each status write wakes the StorageSet and Schedule) settle.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (sync_requests, sync_watches) = requests(&ctl).await;
    let reconciles = ctl
        .metric("holdfast_reconciles_total{kind=\"BackupSet\"}")
        .await
        .unwrap_or(0.0);
    let all_reconciles: f64 = {
        let text = ctl.get("/metrics").await.unwrap_or_default();
        text.lines()
            .filter(|l| l.starts_with("holdfast_reconciles_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };

    // Idle: nothing changes; what does the controller still ask?
    let idle = Duration::from_secs(60);
    tokio::time::sleep(idle).await;
    let (after_requests, after_watches) = requests(&ctl).await;
    let idle_requests = after_requests - sync_requests;
    let pid = ctl.pid().unwrap();
    let (rss, hwm) = rss_kib(pid);

    // An idle hour: every set and the StorageSet and Schedule reconcile on their hourly
    // timer at the measured cost per reconcile, and every watch stream reconnects every
    // 290 s (kube-runtime's watch timeout); the storage check runs every 6 h.
    let per_reconcile = (sync_requests - sync_watches) / all_reconciles.max(1.0);
    let streams = sync_watches;
    let idle_hour = (SETS as f64 + 2.0) * per_reconcile + streams * 3600.0 / 290.0;
    let report = serde_json::json!({
        "backupSets": SETS,
        "secondsToAllReady": to_ready.as_secs_f64(),
        "requestsToAllReady": sync_requests,
        "watchStreams": streams,
        "reconcilesToAllReady": {"backupSet": reconciles, "all": all_reconciles},
        "requestsPerReconcile": per_reconcile,
        "requestsIn60sIdle": idle_requests,
        "watchRequestsIn60sIdle": after_watches - sync_watches,
        "estimatedRequestsPerIdleHour": idle_hour.round(),
        "controllerRssKiB": rss,
        "controllerPeakRssKiB": hwm,
    });
    eprintln!("scale: {report:#}");
    let out = repo_root().join("target/e2e-measurements");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("controller-scale.json"), format!("{report:#}\n")).unwrap();

    assert!(reconciles <= SETS as f64 * 4.0, "{report:#}");
    assert!(per_reconcile < 15.0, "{report:#}");
    assert!(
        idle_requests <= streams * 2.0,
        "idle means (almost) silent: {report:#}"
    );
    assert!(hwm < 200 * 1024, "{report:#}");
}
