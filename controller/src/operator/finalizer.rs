//! Adding or removing one of our finalizers, the same way for every kind.

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

/// Give `obj` the finalizer `name` (`on`) or take it away, keeping every other finalizer.
/// Nothing is written when it already is so. The patch carries the object's
/// resourceVersion, so a change made meanwhile fails it (and the reconcile retries) instead
/// of being overwritten.
pub async fn set<K>(api: &Api<K>, obj: &K, name: &str, on: bool) -> Result<(), kube::Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let has = obj.finalizers().iter().any(|f| f == name);
    if has == on {
        return Ok(());
    }
    let mut finalizers: Vec<String> = obj
        .finalizers()
        .iter()
        .filter(|f| *f != name)
        .cloned()
        .collect();
    if on {
        finalizers.push(name.to_owned());
    }
    let patch = json!({"metadata": {"finalizers": finalizers,
        "resourceVersion": obj.resource_version()}});
    api.patch(
        &obj.name_any(),
        &PatchParams::default(),
        &Patch::Merge(patch),
    )
    .await?;
    Ok(())
}
