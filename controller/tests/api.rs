//! The custom resources: generated CRDs match `crds/`, every example validates against the
//! schemas and CEL rules, invalid objects are rejected with the intended message, and every
//! example round-trips through the Rust types without losing a field.
#![allow(clippy::unwrap_used, clippy::expect_used)] // reason: tests

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use holdfast::api::{self, BackupSet, Restore, Schedule, StorageSet};
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// kind → openAPIV3Schema of the generated CRDs.
fn schemas() -> BTreeMap<String, Value> {
    api::crds()
        .into_iter()
        .map(|(_, crd)| {
            let v = serde_json::to_value(&crd).unwrap();
            let kind = v["spec"]["names"]["kind"].as_str().unwrap().to_owned();
            (
                kind,
                v["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone(),
            )
        })
        .collect()
}

/// Every YAML document of every example file, with where it came from.
fn example_documents() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(root().join("examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "examples/ holds the documented examples");
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
        for (i, d) in docs.into_iter().enumerate() {
            out.push((
                format!("{}#{}", f.file_name().unwrap().to_string_lossy(), i + 1),
                d,
            ));
        }
    }
    out
}

fn cel_errors(schema: &Value, object: &Value, old: Option<&Value>) -> Vec<String> {
    match kube_cel::Validator::new().validate_with_defaults(schema, object, old) {
        Ok(()) => Vec::new(),
        Err(errs) => errs
            .into_vec()
            .into_iter()
            .map(|e| format!("{}: {}", e.field_path, e.message))
            .collect(),
    }
}

fn schema_errors(schema: &Value, object: &Value) -> Vec<String> {
    let validator = jsonschema::validator_for(schema).unwrap();
    validator
        .iter_errors(object)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn crds_in_the_repository_and_the_chart_match_the_rust_types() {
    // The chart installs its own copy (Helm reads CRDs only from the chart's `crds/`).
    for dir in ["crds", "helm/holdfast/crds"] {
        for (file, crd) in api::crds() {
            let generated = api::crd_yaml(&crd).unwrap();
            let path = root().join(dir).join(file);
            let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                generated == checked_in,
                "{} is out of date: run `cargo run -p holdfast -- crd --out-dir {dir}` and commit",
                path.display()
            );
        }
    }
}

#[test]
fn crds_are_well_formed_apiextensions_v1_objects() {
    for (file, crd) in api::crds() {
        let v = serde_json::to_value(&crd).unwrap();
        assert_eq!(v["apiVersion"], "apiextensions.k8s.io/v1", "{file}");
        let names = &v["spec"]["names"];
        assert_eq!(
            v["metadata"]["name"],
            format!("{}.holdfast.io", names["plural"].as_str().unwrap())
        );
        assert_eq!(names["categories"], json!(["holdfast"]), "{file}");
        assert!(
            !names["shortNames"].as_array().unwrap().is_empty(),
            "{file}"
        );
        let version = &v["spec"]["versions"][0];
        assert_eq!(version["served"], true);
        assert_eq!(version["storage"], true);
        assert_eq!(
            version["subresources"]["status"],
            json!({}),
            "{file}: status subresource"
        );
        assert!(
            version["additionalPrinterColumns"]
                .as_array()
                .unwrap()
                .len()
                >= 4,
            "{file}"
        );
        // Structural schema: every property has a type, and conditions are a list-map by type.
        fn walk(path: &str, s: &Value) {
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, p) in props {
                    let here = format!("{path}.{k}");
                    assert!(
                        p.get("type").is_some()
                            || p.get("x-kubernetes-int-or-string").is_some()
                            || p.get("x-kubernetes-preserve-unknown-fields").is_some(),
                        "{here} has no type"
                    );
                    walk(&here, p);
                }
            }
            if let Some(items) = s.get("items") {
                walk(&format!("{path}[]"), items);
            }
        }
        let schema = &version["schema"]["openAPIV3Schema"];
        walk(file, schema);
        let conditions = &schema["properties"]["status"]["properties"]["conditions"];
        assert_eq!(conditions["x-kubernetes-list-type"], "map", "{file}");
        assert_eq!(
            conditions["x-kubernetes-list-map-keys"],
            json!(["type"]),
            "{file}"
        );
    }
}

#[test]
fn every_spec_field_is_documented_for_kubectl_explain() {
    fn walk(path: &str, s: &Value, missing: &mut Vec<String>) {
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for (k, p) in props {
                let here = format!("{path}.{k}");
                if p.get("description")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                    && !here.contains(".resources.")
                    && !here.contains(".env[]")
                    && !here.contains(".conditions[]")
                {
                    missing.push(here.clone());
                }
                walk(&here, p, missing);
            }
        }
        if let Some(items) = s.get("items") {
            walk(&format!("{path}[]"), items, missing);
        }
    }
    let mut missing = Vec::new();
    for (kind, schema) in schemas() {
        walk(&kind, &schema["properties"]["spec"], &mut missing);
        walk(
            &format!("{kind}.status"),
            &schema["properties"]["status"],
            &mut missing,
        );
    }
    assert!(
        missing.is_empty(),
        "fields without a description: {missing:#?}"
    );
}

#[test]
fn every_example_validates_against_schema_and_cel_rules() {
    let schemas = schemas();
    let mut checked = 0;
    for (name, doc) in example_documents() {
        let kind = doc["kind"].as_str().unwrap();
        if doc["apiVersion"] != "holdfast.io/v1alpha1" {
            // Core kinds are checked by kubernetes-validate --strict in scripts/test.sh.
            continue;
        }
        let schema = schemas
            .get(kind)
            .unwrap_or_else(|| panic!("{name}: unknown kind {kind}"));
        let errors = schema_errors(schema, &doc);
        assert!(errors.is_empty(), "{name}: schema errors {errors:#?}");
        let errors = cel_errors(schema, &doc, None);
        assert!(errors.is_empty(), "{name}: CEL errors {errors:#?}");
        // Re-applying the same manifest is an allowed update (GitOps re-sync).
        let errors = cel_errors(schema, &doc, Some(&doc));
        assert!(
            errors.is_empty(),
            "{name}: CEL errors on re-apply {errors:#?}"
        );
        checked += 1;
    }
    assert!(checked >= 8, "checked {checked} Holdfast documents");
}

/// `superset` has every field of `subset` with the same value (it may add defaults).
fn contains(superset: &Value, subset: &Value, path: &str) -> Result<(), String> {
    match (superset, subset) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                let here = format!("{path}.{k}");
                let got = a.get(k).ok_or_else(|| format!("{here} was dropped"))?;
                contains(got, v, &here)?;
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .try_for_each(|(i, (x, y))| contains(x, y, &format!("{path}[{i}]"))),
        (a, b) if a == b => Ok(()),
        (Value::String(a), Value::String(b))
            if a.trim_end_matches('Z') == b.trim_end_matches('Z') =>
        {
            Ok(())
        }
        (a, b) => Err(format!("{path}: {b} became {a}")),
    }
}

#[test]
fn every_example_round_trips_through_the_rust_types() {
    for (name, doc) in example_documents() {
        let back = match doc["kind"].as_str().unwrap() {
            _ if doc["apiVersion"] != "holdfast.io/v1alpha1" => continue,
            "StorageSet" => {
                serde_json::to_value(serde_json::from_value::<StorageSet>(doc.clone()).unwrap())
                    .unwrap()
            }
            "Schedule" => {
                serde_json::to_value(serde_json::from_value::<Schedule>(doc.clone()).unwrap())
                    .unwrap()
            }
            "BackupSet" => {
                serde_json::to_value(serde_json::from_value::<BackupSet>(doc.clone()).unwrap())
                    .unwrap()
            }
            "Restore" => {
                serde_json::to_value(serde_json::from_value::<Restore>(doc.clone()).unwrap())
                    .unwrap()
            }
            other => panic!("{name}: unexpected kind {other}"),
        };
        if let Err(e) = contains(&back, &doc, "") {
            panic!("{name}: {e}");
        }
    }
}

#[test]
fn a_misspelled_field_is_refused_by_the_rust_types() {
    let doc = json!({
        "apiVersion": "holdfast.io/v1alpha1", "kind": "StorageSet", "metadata": {"name": "x"},
        "spec": {"s3": {"bucket": "b", "forcePathstyle": true}}
    });
    let err = serde_json::from_value::<StorageSet>(doc)
        .unwrap_err()
        .to_string();
    assert!(err.contains("forcePathstyle"), "{err}");
}

#[test]
fn a_job_template_offers_placement_and_metadata_but_nothing_the_controller_decides() {
    // The API server refuses fields a schema does not declare (kubectl's strict field
    // validation, the e2e suite's crds scenario): the property list is the whole surface.
    let schemas = schemas();
    let allowed = [
        "affinity",
        "imagePullSecrets",
        "nodeSelector",
        "podAnnotations",
        "podLabels",
        "priorityClassName",
        "resources",
        "tolerations",
    ];
    for (kind, pointer) in [
        ("BackupSet", "/properties/spec/properties/jobTemplate"),
        ("Restore", "/properties/spec/properties/jobTemplate"),
        ("StorageSet", "/properties/spec/properties/jobTemplate"),
    ] {
        let t = schemas[kind].pointer(pointer).unwrap();
        let mut names: Vec<&str> = t["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        names.sort();
        assert_eq!(names, allowed, "{kind}");
        assert!(t.get("additionalProperties").is_none(), "{kind}");
    }
    // The Rust types refuse the same (the controller's --job-pod-defaults too).
    let mut set = base("BackupSet");
    for field in [
        "image",
        "securityContext",
        "serviceAccountName",
        "volumes",
        "command",
    ] {
        set["spec"]["jobTemplate"] = json!({field: "x"});
        let err = serde_json::from_value::<BackupSet>(set.clone())
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{field}: {err}");
    }
    // And a whole template is valid.
    set["spec"]["jobTemplate"] = json!({
        "podLabels": {"team": "shop"}, "podAnnotations": {"linkerd.io/inject": "disabled"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}],
        "nodeSelector": {"pool": "backup"}, "priorityClassName": "backup",
        "imagePullSecrets": [{"name": "registry"}], "resources": {"limits": {"memory": "1Gi"}}
    });
    let errs = cel_errors(&schemas["BackupSet"], &set, None);
    assert!(errs.is_empty(), "{errs:#?}");
    let errs = schema_errors(&schemas["BackupSet"], &set);
    assert!(errs.is_empty(), "{errs:#?}");
    serde_json::from_value::<BackupSet>(set).unwrap();
}

/// A valid object to mutate: the quick start's, or the point-in-time Restore.
fn base(kind: &str) -> Value {
    let file = if kind == "Restore" {
        "restore-point-in-time.yaml"
    } else {
        "quickstart.yaml"
    };
    example_documents()
        .into_iter()
        .find(|(name, d)| {
            name.starts_with(file) && d["kind"] == kind && d["apiVersion"] == "holdfast.io/v1alpha1"
        })
        .unwrap()
        .1
}

fn with(mut v: Value, pointer: &str, value: Value) -> Value {
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

/// `tests/fixtures/invalid-objects.yaml`: (kind, object, expected message).
fn invalid_fixtures() -> Vec<(String, Value, String)> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid-objects.yaml"),
    )
    .unwrap();
    let cases: Vec<Value> = serde_saphyr::from_str(&text).unwrap();
    cases
        .into_iter()
        .map(|c| {
            let kind = c["kind"].as_str().unwrap().to_owned();
            let mut obj = base(&kind);
            for (pointer, value) in c["set"].as_object().unwrap() {
                obj = with(obj, pointer, value.clone());
            }
            (kind, obj, c["message"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[test]
fn cel_rules_reject_invalid_objects_with_clear_messages() {
    let schemas = schemas();
    let bset = base("BackupSet");
    let cases = invalid_fixtures();
    assert!(
        cases.len() >= 14,
        "the fixture file lists the invalid objects"
    );
    for (i, (kind, obj, want)) in cases.iter().enumerate() {
        let errs = cel_errors(&schemas[kind.as_str()], obj, None);
        assert!(
            errs.iter().any(|e| e.contains(want.as_str())),
            "case {} ({kind}): expected {want:?}, got {errs:#?}",
            i + 1
        );
    }

    // GFS alone, or beside the cycle rules, is a valid retention.
    for retention in [
        json!({"keepDaily": 7, "keepWeekly": 4, "keepMonthly": 12, "keepYearly": 3}),
        json!({"keepFulls": 0, "keepMonthly": 6}),
        json!({"keepFulls": 2, "maxAge": "90d", "keepDaily": 7}),
    ] {
        let ok = with(bset.clone(), "/spec/retention", retention.clone());
        let errs = cel_errors(&schemas["BackupSet"], &ok, None);
        assert!(errs.is_empty(), "{retention}: {errs:#?}");
    }

    // Transition rules: immutable fields.
    let moved = with(bset.clone(), "/spec/storageSetRef/name", json!("elsewhere"));
    let errs = cel_errors(&schemas["BackupSet"], &moved, Some(&bset));
    assert!(
        errs.iter()
            .any(|e| e.contains("storageSetRef is immutable")),
        "{errs:#?}"
    );
    let added_repo = with(bset.clone(), "/spec/repository", json!("other/repo"));
    let errs = cel_errors(&schemas["BackupSet"], &added_repo, Some(&bset));
    assert!(
        errs.iter().any(|e| e.contains("repository is immutable")),
        "{errs:#?}"
    );
    let suspended = with(bset.clone(), "/spec/suspend", json!(true));
    assert!(
        cel_errors(&schemas["BackupSet"], &suspended, Some(&bset)).is_empty(),
        "other fields stay editable"
    );
    let restore = base("Restore");
    let edited = with(restore.clone(), "/spec/overwrite", json!("Always"));
    let errs = cel_errors(&schemas["Restore"], &edited, Some(&restore));
    assert!(errs.iter().any(|e| e.contains("one-shot")), "{errs:#?}");
}

#[test]
fn cron_entries_are_range_checked_at_admission() {
    let schema = &schemas()["Schedule"];
    let cron = |c: &str| schema_errors(schema, &with(base("Schedule"), "/spec/full", json!(c)));
    for good in [
        "0 2 * * *",
        "*/15 * * * 1-5",
        "30 3 1,15 * SUN",
        "0 0 * JAN-MAR mon",
        "5-55/10 0-23/2 1-31 1-12 0-7",
        "0 1 * * 6",
        "@daily",
        "@hourly",
    ] {
        assert!(
            cron(good).is_empty(),
            "{good:?} was refused: {:?}",
            cron(good)
        );
    }
    for bad in [
        "60 * * * *",
        "0 24 * * *",
        "0 0 0 * *",
        "0 0 32 * *",
        "0 0 * 13 *",
        "0 0 * * 8",
        "0 0 * * MOO",
        "* * * *",
        "* * * * * *",
        "*/0 * * * *",
        "0 0 * * 1,",
        "@fortnightly",
    ] {
        assert!(!cron(bad).is_empty(), "{bad:?} was accepted");
    }
}

#[test]
fn schema_constraints_reject_bad_values() {
    let schemas = schemas();
    let cases: Vec<(&str, Value)> = vec![
        (
            "Schedule",
            with(base("Schedule"), "/spec/full", json!("every saturday")),
        ),
        (
            "Schedule",
            with(base("Schedule"), "/spec/startingDeadline", json!("1 hour")),
        ),
        (
            "BackupSet",
            with(base("BackupSet"), "/spec/compression/level", json!("20")),
        ),
        (
            "BackupSet",
            with(base("BackupSet"), "/spec/sources/0/name", json!("Uploads!")),
        ),
        (
            "BackupSet",
            with(
                base("BackupSet"),
                "/spec/retention/maxAge",
                json!("90 days"),
            ),
        ),
        (
            "BackupSet",
            with(base("BackupSet"), "/spec/sources", json!([])),
        ),
        (
            "StorageSet",
            with(base("StorageSet"), "/spec/transfer/concurrency", json!(0)),
        ),
        (
            "StorageSet",
            with(base("StorageSet"), "/spec/s3/bucket", json!("Bad_Bucket")),
        ),
        (
            "Restore",
            with(base("Restore"), "/spec/overwrite", json!("Sometimes")),
        ),
        (
            "Restore",
            with(base("Restore"), "/spec/target/path", json!("relative")),
        ),
    ];
    for (i, (kind, obj)) in cases.iter().enumerate() {
        assert!(
            !schema_errors(&schemas[*kind], obj).is_empty(),
            "case {} ({kind}) was accepted: {obj}",
            i + 1
        );
    }
}
