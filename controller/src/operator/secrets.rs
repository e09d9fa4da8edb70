//! Whether a referenced Secret exists, and which keys it has. Only its metadata is
//! requested, never its data: the controller hands Secrets to job pods by reference. The
//! key names come from the metadata's `managedFields`, which record every field a client
//! wrote (`f:data` → `f:<key>`), so a Secret without the key a set names is reported before
//! any Job instead of leaving a pod that cannot mount it. RBAC cannot grant "metadata
//! only", so an installation may withhold `get` on Secrets altogether; then these checks are
//! skipped and a missing Secret or key shows as the job pod's mount or config error.

use std::collections::BTreeSet;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::Api;

use super::error::{Error, code};

/// What the API server says of a Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    Missing,
    /// It exists; its key names when `managedFields` tell them (`None`: cannot tell, e.g.
    /// the fields were cleared, or the lookup is not allowed).
    Present(Option<BTreeSet<String>>),
}

/// Look a Secret up by its metadata.
pub async fn lookup(client: &kube::Client, namespace: &str, name: &str) -> Result<Found, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match api.get_metadata_opt(name).await {
        Ok(None) => Ok(Found::Missing),
        Ok(Some(meta)) => Ok(Found::Present(key_names(
            meta.metadata.managed_fields.as_deref().unwrap_or_default(),
        ))),
        Err(e) if code(&e) == Some(403) => {
            tracing::debug!(
                namespace,
                name,
                "not allowed to look up secrets; skipping the check"
            );
            Ok(Found::Present(None))
        }
        Err(e) => Err(Error::api(format!("looking up secret {name}"))(e)),
    }
}

/// `false` only when the API server says the Secret does not exist.
pub async fn exists(client: &kube::Client, namespace: &str, name: &str) -> Result<bool, Error> {
    Ok(lookup(client, namespace, name).await? != Found::Missing)
}

/// The data keys the managers of an object wrote, or `None` when no entry mentions data
/// (nothing to go by: an empty Secret looks the same as one whose fields were cleared, and
/// only the first is a problem, which the job pod then reports).
pub fn key_names(entries: &[ManagedFieldsEntry]) -> Option<BTreeSet<String>> {
    let mut keys = BTreeSet::new();
    for entry in entries {
        let Some(fields) = entry.fields_v1.as_ref().map(|f| &f.0) else {
            continue;
        };
        for section in ["f:data", "f:stringData"] {
            if let Some(map) = fields.get(section).and_then(|d| d.as_object()) {
                keys.extend(
                    map.keys()
                        .filter_map(|k| k.strip_prefix("f:"))
                        .map(str::to_owned),
                );
            }
        }
    }
    (!keys.is_empty()).then_some(keys)
}

/// Why `secret` cannot serve `key`, if the names are known and it lacks it.
pub fn missing_key(secret: &str, key: &str, keys: Option<&BTreeSet<String>>) -> Option<String> {
    let keys = keys?;
    if keys.contains(key) {
        return None;
    }
    let has: Vec<&str> = keys.iter().map(String::as_str).collect();
    Some(format!(
        "Secret {secret} has no key {key:?} (it has {}): add the key, or name one it has",
        has.join(", ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;
    use serde_json::json;

    fn entry(fields: serde_json::Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            fields_v1: Some(FieldsV1(fields)),
            ..Default::default()
        }
    }

    #[test]
    fn key_names_come_from_every_manager_and_are_unknown_without_data_fields() {
        let entries = [
            entry(json!({"f:data": {".": {}, "f:pass": {}}, "f:type": {}})),
            entry(json!({"f:data": {"f:extra": {}}})),
        ];
        let keys = key_names(&entries);
        assert_eq!(
            keys,
            Some(
                ["extra".to_owned(), "pass".to_owned()]
                    .into_iter()
                    .collect()
            )
        );
        assert_eq!(
            missing_key("shop-key", "passphrase", keys.as_ref()).as_deref(),
            Some(
                "Secret shop-key has no key \"passphrase\" (it has extra, pass): add the key, or name one it has"
            )
        );
        assert_eq!(missing_key("shop-key", "pass", keys.as_ref()), None);
        assert_eq!(key_names(&[entry(json!({"f:metadata": {}}))]), None);
        assert_eq!(missing_key("shop-key", "passphrase", None), None);
    }
}
