//! The Helm chart with a real Helm (built from its Go module by `e2e/build.sh`): lint,
//! rendering under every option that changes its shape, the rendered objects against the
//! Kubernetes schemas (`kubernetes-validate --strict`), `values.schema.json` refusing bad
//! values, the controller accepting every flag the chart gives it, and the chart's CRDs
//! being the generated ones. Installing it for real is `helm.rs`.
#![allow(clippy::unwrap_used)] // reason: tests

use std::path::PathBuf;
use std::process::Command;

use holdfast_e2e::harness::repo_root;

fn helm() -> PathBuf {
    PathBuf::from(
        std::env::var("HOLDFAST_E2E_BIN")
            .unwrap_or_else(|_| panic!("HOLDFAST_E2E_BIN is not set: run with `bash e2e/run.sh`")),
    )
    .join("helm")
}

fn chart() -> String {
    repo_root().join("helm/holdfast").display().to_string()
}

/// `helm <args>`: (success, stdout, stderr).
fn run(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(helm()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn template(values: &[&str]) -> String {
    let c = chart();
    let mut args = vec!["template", "hf", &c, "--namespace", "holdfast-system"];
    for v in values {
        args.push("--set");
        args.push(v);
    }
    let (ok, out, err) = run(&args);
    assert!(ok, "helm template {values:?}: {err}");
    out
}

/// The value sets that change what the chart renders.
const SHAPES: &[&[&str]] = &[
    &[],
    &["watchNamespaces={shop,billing}"],
    &["replicaCount=1", "podDisruptionBudget.enabled=false"],
    &[
        "metrics.serviceMonitor.enabled=true",
        "prometheusRule.enabled=true",
        "grafanaDashboard.enabled=true",
    ],
    &[
        "rbac.secretLookups=false",
        "image.digest=sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ],
    &[
        "serviceAccount.create=false",
        "serviceAccount.name=existing",
        "rbac.create=false",
    ],
    &[
        "imagePullSecrets[0].name=registry",
        "jobs.tolerations[0].key=backup-pool",
        "jobs.tolerations[0].operator=Exists",
        "jobs.priorityClassName=backup",
        "jobs.resources.limits.memory=1Gi",
    ],
];

/// The `--job-pod-defaults` the chart renders into the controller's arguments, as JSON.
fn job_pod_defaults(rendered: &str) -> serde_json::Value {
    let line = rendered
        .lines()
        .map(str::trim)
        .filter_map(|l| l.strip_prefix("- "))
        .find(|l| l.contains("--job-pod-defaults="))
        .unwrap_or_else(|| panic!("no --job-pod-defaults in:\n{rendered}"));
    // A YAML double-quoted scalar: JSON's string syntax.
    let arg: String = serde_json::from_str(line).unwrap();
    serde_json::from_str(arg.strip_prefix("--job-pod-defaults=").unwrap()).unwrap()
}

#[test]
#[ignore = "needs helm from e2e/build.sh: bash e2e/run.sh"]
fn job_pods_get_the_charts_pull_secrets_and_job_settings_and_no_mesh_sidecar() {
    // By default: only what keeps mesh sidecars out of job pods (a Job's pod whose proxy
    // keeps running never finishes).
    let plain = job_pod_defaults(&template(&[]));
    assert_eq!(
        plain,
        serde_json::json!({
            "podLabels": {"sidecar.istio.io/inject": "false"},
            "podAnnotations": {"sidecar.istio.io/inject": "false", "linkerd.io/inject": "disabled"}
        })
    );
    // The controller's pull secrets are the job pods' too (same image), with the jobs' own.
    let set = job_pod_defaults(&template(&[
        "imagePullSecrets[0].name=registry",
        "jobs.imagePullSecrets[0].name=jobs-registry",
        "jobs.tolerations[0].key=backup-pool",
        "jobs.tolerations[0].operator=Exists",
        "jobs.nodeSelector.pool=backup",
        "jobs.priorityClassName=backup",
        "jobs.resources.limits.memory=1Gi",
        "jobs.podAnnotations.linkerd\\.io/inject=null",
    ]));
    assert_eq!(
        set["imagePullSecrets"],
        serde_json::json!([{"name": "registry"}, {"name": "jobs-registry"}])
    );
    assert_eq!(set["tolerations"][0]["key"], "backup-pool");
    assert_eq!(set["nodeSelector"]["pool"], "backup");
    assert_eq!(set["priorityClassName"], "backup");
    assert_eq!(set["resources"]["limits"]["memory"], "1Gi");
    assert!(
        set.get("affinity").is_none(),
        "empty values are left out: {set}"
    );
    assert!(
        set["podAnnotations"].get("linkerd.io/inject").is_none(),
        "a default can be removed: {set}"
    );
    // The controller takes it: it gets as far as the (unreachable) API server.
    let dir = std::env::temp_dir().join(format!("hf-chart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("config");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}\nusers:\n- name: u\n  user: {token: abc}\ncontexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\n",
    )
    .unwrap();
    let out = Command::new(std::env::var("HOLDFAST_BIN").unwrap())
        .args(["controller", "--listen", "127.0.0.1:0", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg(format!("--job-pod-defaults={set}"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the Kubernetes API"), "{err}");
    // And the schema refuses a field a job template does not have.
    let (ok, _, err) = run(&["template", "hf", &chart(), "--set", "jobs.image=evil"]);
    assert!(!ok && err.contains("image"), "{err}");
}

#[test]
#[ignore = "needs helm from e2e/build.sh: bash e2e/run.sh"]
fn the_chart_lints_strictly_under_every_shape() {
    for shape in SHAPES {
        let mut args = vec!["lint", "--strict"];
        let c = chart();
        args.push(&c);
        for v in *shape {
            args.push("--set");
            args.push(v);
        }
        let (ok, out, err) = run(&args);
        assert!(ok, "helm lint {shape:?}:\n{out}\n{err}");
    }
}

#[test]
#[ignore = "needs helm from e2e/build.sh: bash e2e/run.sh"]
fn rendered_objects_pass_the_kubernetes_schemas_strictly() {
    let dir = tempfile::tempdir().unwrap();
    for (i, shape) in SHAPES.iter().enumerate() {
        let rendered = template(shape);
        // Monitoring kinds are CRDs of the Prometheus operator, unknown to the validator:
        // checked by their own test below.
        let core: Vec<&str> = rendered
            .split("\n---")
            .filter(|d| !d.contains("kind: ServiceMonitor") && !d.contains("kind: PrometheusRule"))
            .collect();
        let file = dir.path().join(format!("shape-{i}.yaml"));
        std::fs::write(&file, core.join("\n---")).unwrap();
        let out = Command::new("kubernetes-validate")
            .args(["--strict", "--quiet", "--no-warn"])
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("kubernetes-validate ({e}): scripts/test.sh installs it"));
        assert!(
            out.status.success(),
            "{shape:?}:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
#[ignore = "needs helm from e2e/build.sh: bash e2e/run.sh"]
fn the_values_schema_refuses_bad_values_and_names_them() {
    let cases: &[(&str, &str)] = &[
        ("replicaCount=0", "replicaCount"),
        ("logFormat=yaml", "logFormat"),
        ("image.pullPolicy=Sometimes", "pullPolicy"),
        ("image.digest=latest", "digest"),
        ("controller.jobTTL=1 day", "jobTTL"),
        ("controller.purgeGrace=forever", "purgeGrace"),
        ("metrics.port=80", "port"),
        ("watchNamespaces={Shop}", "watchNamespaces"),
        ("prometheusRule.overdueFactor=0.5", "overdueFactor"),
        (
            "prometheusRule.consecutiveFailures=0",
            "consecutiveFailures",
        ),
        ("rbac.secretLookups=maybe", "secretLookups"),
        ("unknownKey=1", "unknownKey"),
        ("metrics.serviceMonitor.scrape=true", "scrape"),
    ];
    for (value, key) in cases {
        let c = chart();
        let (ok, _, err) = run(&["template", "hf", &c, "--set", value]);
        assert!(!ok, "{value} was accepted");
        assert!(err.contains(key), "{value}: the error names {key}: {err}");
    }
    // And the documented good values pass.
    for good in [
        "controller.jobTTL=90m",
        "metrics.port=9090",
        "replicaCount=3",
        "prometheusRule.overdueFactor=2",
    ] {
        template(&[good]);
    }
}

#[test]
#[ignore = "needs helm from e2e/build.sh: bash e2e/run.sh"]
fn the_controller_accepts_every_flag_the_chart_gives_it() {
    let help = Command::new(std::env::var("HOLDFAST_BIN").unwrap())
        .args(["controller", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    for shape in SHAPES {
        let rendered = template(shape);
        let args: Vec<&str> = rendered
            .lines()
            .map(str::trim)
            .filter_map(|l| l.strip_prefix("- --").or_else(|| l.strip_prefix("- \"--")))
            .map(|a| a.split('=').next().unwrap())
            .collect();
        assert!(args.len() >= 6, "{shape:?}: {args:?}");
        for a in args {
            assert!(
                help.contains(&format!("--{a}")),
                "{shape:?}: --{a} is not a controller flag"
            );
        }
    }
    // Namespace-scoped: the namespaces and the job account reach the controller.
    let scoped = template(&["watchNamespaces={shop,billing}"]);
    assert!(scoped.contains("--namespace=shop,billing"));
    assert!(scoped.contains("--job-service-account=hf-holdfast-job"));
    // Scoped: the ClusterRoles read the served Namespaces by name (the privileged movers'
    // consent) and VolumeSnapshotClasses (`get`), and are left out on request.
    let cluster_roles: Vec<&str> = scoped
        .split("\n---")
        .filter(|d| d.contains("\nkind: ClusterRole\n"))
        .collect();
    assert_eq!(cluster_roles.len(), 2, "{cluster_roles:?}");
    assert!(
        cluster_roles[1].contains("resources: [volumesnapshotclasses]")
            && cluster_roles[1].contains("verbs: [get]"),
        "{}",
        cluster_roles[1]
    );
    for want in [
        "resources: [namespaces]",
        "- shop",
        "- billing",
        "verbs: [get]",
    ] {
        assert!(
            cluster_roles[0].contains(want),
            "{want}: {}",
            cluster_roles[0]
        );
    }
    let without = template(&[
        "watchNamespaces={shop}",
        "rbac.namespaceReads=false",
        "rbac.snapshotClassReads=false",
    ]);
    assert!(
        !without.contains("kind: ClusterRole\n"),
        "no ClusterRole when scoped without namespace and snapshot class reads"
    );
    // Leader election only with more than one replica.
    assert!(template(&[]).contains("--leader-lease=holdfast-system/hf-holdfast"));
    assert!(!template(&["replicaCount=1"]).contains("--leader-lease"));
}

#[test]
#[ignore = "needs helm from e2e/build.sh: bash e2e/run.sh"]
fn the_chart_ships_the_generated_crds_and_its_alerts_and_dashboard_parse() {
    for f in [
        "backupset.yaml",
        "restore.yaml",
        "schedule.yaml",
        "storageset.yaml",
    ] {
        let a = std::fs::read_to_string(repo_root().join("crds").join(f)).unwrap();
        let b = std::fs::read_to_string(repo_root().join("helm/holdfast/crds").join(f)).unwrap();
        assert_eq!(a, b, "{f}: the chart's copy drifted");
    }
    let rendered = template(&[
        "prometheusRule.enabled=true",
        "grafanaDashboard.enabled=true",
    ]);
    let rule = rendered
        .split("\n---")
        .find(|d| d.contains("kind: PrometheusRule"))
        .unwrap();
    let rule: serde_json::Value = serde_saphyr::from_str(rule).unwrap();
    let alerts: Vec<&str> = rule["spec"]["groups"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    for a in [
        "HoldfastBackupOverdue",
        "HoldfastBackupNeverSucceeded",
        "HoldfastBackupFailing",
        "HoldfastStorageNotReady",
        "HoldfastMissedRuns",
        "HoldfastRestoreFailed",
    ] {
        assert!(alerts.contains(&a), "{a} missing: {alerts:?}");
    }
    // Every metric an alert uses is one the controller exports.
    let metrics =
        std::fs::read_to_string(repo_root().join("controller/src/operator/metrics.rs")).unwrap();
    for r in rule["spec"]["groups"][0]["rules"].as_array().unwrap() {
        let expr = r["expr"].as_str().unwrap();
        for word in expr.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if let Some(name) = word.strip_prefix("holdfast_") {
                let name = name.trim_end_matches("_total");
                assert!(
                    metrics.contains(&format!("\"{name}\"")),
                    "{word} in {expr} is not exported"
                );
            }
        }
    }
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("helm/holdfast/dashboards/holdfast.json"))
            .unwrap(),
    )
    .unwrap();
    assert!(dashboard["panels"].as_array().unwrap().len() >= 8);
}
