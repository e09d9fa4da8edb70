//! A container's environment, resolved as the kubelet would: literals (with `$(VAR)`
//! expansion), `secretKeyRef`, `configMapKeyRef`, the downward API (`fieldRef`), and
//! `envFrom`. Pure over the pod and the Secrets and ConfigMaps it references, which the
//! caller fetched first.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

/// The Secrets and ConfigMaps of the pod's namespace that the pod references.
#[derive(Debug, Default, Clone)]
pub struct PodData {
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    pub config_maps: BTreeMap<String, BTreeMap<String, String>>,
}

/// Something the pod references that does not exist (the kubelet retries; so do we).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    #[error("secret {0:?} not found")]
    SecretMissing(String),
    #[error("key {1:?} not found in secret {0:?}")]
    SecretKeyMissing(String, String),
    #[error("configmap {0:?} not found")]
    ConfigMapMissing(String),
    #[error("key {1:?} not found in configmap {0:?}")]
    ConfigMapKeyMissing(String, String),
    #[error("unsupported environment source for {0}: {1}")]
    Unsupported(String, String),
}

impl EnvError {
    /// Missing objects may appear later; unsupported sources never will.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, EnvError::Unsupported(..))
    }
}

/// Names of the Secrets and ConfigMaps the pod's environment and volumes reference.
pub fn referenced(pod: &Pod) -> (Vec<String>, Vec<String>) {
    let mut secrets = Vec::new();
    let mut maps = Vec::new();
    let Some(spec) = &pod.spec else {
        return (secrets, maps);
    };
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for c in containers {
        for e in c.env.iter().flatten() {
            if let Some(vf) = &e.value_from {
                if let Some(s) = &vf.secret_key_ref {
                    secrets.push(s.name.clone());
                }
                if let Some(m) = &vf.config_map_key_ref {
                    maps.push(m.name.clone());
                }
            }
        }
        for ef in c.env_from.iter().flatten() {
            if let Some(s) = &ef.secret_ref {
                secrets.push(s.name.clone());
            }
            if let Some(m) = &ef.config_map_ref {
                maps.push(m.name.clone());
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            secrets.push(s);
        }
        if let Some(m) = &v.config_map {
            maps.push(m.name.clone());
        }
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(s) = &p.secret {
                secrets.push(s.name.clone());
            }
            if let Some(m) = &p.config_map {
                maps.push(m.name.clone());
            }
        }
    }
    secrets.sort();
    secrets.dedup();
    maps.sort();
    maps.dedup();
    (secrets, maps)
}

/// The downward API fields the agent can give.
fn field(pod: &Pod, path: &str) -> Option<String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    match path {
        "metadata.name" => m.name.clone(),
        "metadata.namespace" => m.namespace.clone(),
        "metadata.uid" => m.uid.clone(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.hostIP" | "status.podIP" => Some("127.0.0.1".into()),
        p => {
            let (kind, key) = p.split_once('[')?;
            let key = key.strip_suffix(']')?.trim_matches('\'').trim_matches('"');
            match kind {
                "metadata.labels" => m.labels.as_ref()?.get(key).cloned(),
                "metadata.annotations" => m.annotations.as_ref()?.get(key).cloned(),
                _ => None,
            }
        }
    }
}

/// Expand `$(NAME)` from variables defined before; `$$(NAME)` stays literal.
fn expand(value: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find("$(") {
        if rest[..i].ends_with('$') {
            out.push_str(&rest[..i]);
            out.push('(');
            rest = &rest[i + 2..];
            continue;
        }
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(end) => {
                let name = &after[..end];
                match env.iter().rev().find(|(k, _)| k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push_str("$(");
                        out.push_str(name);
                        out.push(')');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The container's environment, in order (later entries win, as in Kubernetes).
pub fn resolve(
    pod: &Pod,
    container: &Container,
    data: &PodData,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut env: Vec<(String, String)> = Vec::new();
    for ef in container.env_from.iter().flatten() {
        let prefix = ef.prefix.clone().unwrap_or_default();
        if let Some(s) = &ef.secret_ref {
            match data.secrets.get(&s.name) {
                Some(values) => {
                    for (k, v) in values {
                        env.push((format!("{prefix}{k}"), String::from_utf8_lossy(v).into()));
                    }
                }
                None if s.optional == Some(true) => {}
                None => return Err(EnvError::SecretMissing(s.name.clone())),
            }
        }
        if let Some(m) = &ef.config_map_ref {
            match data.config_maps.get(&m.name) {
                Some(values) => {
                    for (k, v) in values {
                        env.push((format!("{prefix}{k}"), v.clone()));
                    }
                }
                None if m.optional == Some(true) => {}
                None => return Err(EnvError::ConfigMapMissing(m.name.clone())),
            }
        }
    }
    for e in container.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => Some(expand(v, &env)),
            (None, None) => Some(String::new()),
            (None, Some(vf)) => {
                if let Some(s) = &vf.secret_key_ref {
                    match data.secrets.get(&s.name) {
                        None if s.optional == Some(true) => None,
                        None => return Err(EnvError::SecretMissing(s.name.clone())),
                        Some(values) => match values.get(&s.key) {
                            Some(v) => Some(String::from_utf8_lossy(v).into_owned()),
                            None if s.optional == Some(true) => None,
                            None => {
                                return Err(EnvError::SecretKeyMissing(
                                    s.name.clone(),
                                    s.key.clone(),
                                ));
                            }
                        },
                    }
                } else if let Some(m) = &vf.config_map_key_ref {
                    match data.config_maps.get(&m.name) {
                        None if m.optional == Some(true) => None,
                        None => return Err(EnvError::ConfigMapMissing(m.name.clone())),
                        Some(values) => match values.get(&m.key) {
                            Some(v) => Some(v.clone()),
                            None if m.optional == Some(true) => None,
                            None => {
                                return Err(EnvError::ConfigMapKeyMissing(
                                    m.name.clone(),
                                    m.key.clone(),
                                ));
                            }
                        },
                    }
                } else if let Some(f) = &vf.field_ref {
                    Some(field(pod, &f.field_path).ok_or_else(|| {
                        EnvError::Unsupported(e.name.clone(), format!("fieldRef {}", f.field_path))
                    })?)
                } else {
                    return Err(EnvError::Unsupported(
                        e.name.clone(),
                        "resourceFieldRef or another source".into(),
                    ));
                }
            }
        };
        if let Some(v) = value {
            env.push((e.name.clone(), v));
        }
    }
    // Later definitions of a name replace earlier ones.
    let mut seen = std::collections::HashSet::new();
    let mut out: Vec<(String, String)> = env
        .into_iter()
        .rev()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect();
    out.reverse();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource, ObjectFieldSelector, PodSpec,
        SecretEnvSource, SecretKeySelector,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                labels: Some(BTreeMap::from([("app".into(), "shop".into())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-a".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn data() -> PodData {
        PodData {
            secrets: BTreeMap::from([(
                "key".into(),
                BTreeMap::from([("passphrase".into(), b"s3cret".to_vec())]),
            )]),
            config_maps: BTreeMap::from([(
                "cfg".into(),
                BTreeMap::from([("LEVEL".into(), "debug".into())]),
            )]),
        }
    }

    fn var(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    fn from(name: &str, src: EnvVarSource) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(src),
        }
    }

    #[test]
    fn every_supported_source_resolves_in_order() {
        let c = Container {
            name: "c".into(),
            env_from: Some(vec![EnvFromSource {
                prefix: Some("K_".into()),
                secret_ref: Some(SecretEnvSource {
                    name: "key".into(),
                    optional: None,
                }),
                ..Default::default()
            }]),
            env: Some(vec![
                var("A", "1"),
                var("B", "$(A)-$$(A)-$(NOPE)"),
                from(
                    "PASS",
                    EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "key".into(),
                            key: "passphrase".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                ),
                from(
                    "LEVEL",
                    EnvVarSource {
                        config_map_key_ref: Some(ConfigMapKeySelector {
                            name: "cfg".into(),
                            key: "LEVEL".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                ),
                from(
                    "NODE",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "spec.nodeName".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    },
                ),
                from(
                    "APP",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.labels['app']".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    },
                ),
                var("A", "2"),
            ]),
            ..Default::default()
        };
        let env = resolve(&pod(), &c, &data()).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("K_passphrase"), Some("s3cret"));
        assert_eq!(get("B"), Some("1-$(A)-$(NOPE)"));
        assert_eq!(get("PASS"), Some("s3cret"));
        assert_eq!(get("LEVEL"), Some("debug"));
        assert_eq!(get("NODE"), Some("node-a"));
        assert_eq!(get("APP"), Some("shop"));
        assert_eq!(get("A"), Some("2"), "the later definition wins");
        assert_eq!(env.iter().filter(|(k, _)| k == "A").count(), 1);
    }

    #[test]
    fn missing_references_are_retryable_and_unsupported_ones_are_not() {
        let missing = Container {
            env: Some(vec![from(
                "PASS",
                EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "nope".into(),
                        key: "k".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
            )]),
            ..Default::default()
        };
        let err = resolve(&pod(), &missing, &data()).unwrap_err();
        assert_eq!(err, EnvError::SecretMissing("nope".into()));
        assert!(err.is_retryable());
        let optional = Container {
            env: Some(vec![from(
                "PASS",
                EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "nope".into(),
                        key: "k".into(),
                        optional: Some(true),
                    }),
                    ..Default::default()
                },
            )]),
            ..Default::default()
        };
        assert!(resolve(&pod(), &optional, &data()).unwrap().is_empty());
        let unsupported = Container {
            env: Some(vec![from(
                "X",
                EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        field_path: "status.podIPs".into(),
                        api_version: None,
                    }),
                    ..Default::default()
                },
            )]),
            ..Default::default()
        };
        assert!(
            !resolve(&pod(), &unsupported, &data())
                .unwrap_err()
                .is_retryable()
        );
    }
}
