//! Writing objects the same way for every kind: a status by server-side apply under the
//! controller's one field manager, and objects named by their slot created at most once.

use std::fmt::Debug;

use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::Error;
use super::names::MANAGER;

/// Write the status subresource of `name` (server-side apply, forced: the controller owns
/// status), unless it is what the object already has. Each reconcile calls this once, with
/// the status its stages built.
pub async fn status<K, S>(api: &Api<K>, name: &str, old: Option<&S>, new: &S) -> Result<(), Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    S: Serialize + PartialEq,
{
    if old == Some(new) {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "status": new,
    });
    api.patch_status(
        name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map_err(Error::api(format!("writing {} status", K::kind(&()))))?;
    Ok(())
}

/// Create `obj`, or find that it exists: its name is its slot's, so an existing one was made
/// by an earlier reconcile of the same slot and must not be made twice. `Ok(Some(created))`
/// when this call created it, `Ok(None)` when it already existed.
pub async fn create_once<K>(api: &Api<K>, obj: &K) -> Result<Option<K>, kube::Error>
where
    K: Resource + Clone + DeserializeOwned + Serialize + Debug,
{
    match api.create(&PostParams::default(), obj).await {
        Ok(created) => Ok(Some(created)),
        Err(e) if is_conflict(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The server answered 409: the object exists, or changed since it was read.
pub fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}
