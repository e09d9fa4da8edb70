//! Whether a referenced Secret exists. Only its metadata is requested, never its data: the
//! controller hands Secrets to job pods by reference. RBAC cannot grant "metadata only", so
//! an installation may withhold `get` on Secrets altogether; then this check is skipped
//! and a missing Secret shows as the job pod's `CreateContainerConfigError` instead.

use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::error::{Error, code};

/// `false` only when the API server says the Secret does not exist.
pub async fn exists(client: &kube::Client, namespace: &str, name: &str) -> Result<bool, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    match api.get_metadata_opt(name).await {
        Ok(found) => Ok(found.is_some()),
        Err(e) if code(&e) == Some(403) => {
            tracing::debug!(
                namespace,
                name,
                "not allowed to look up secrets; skipping the check"
            );
            Ok(true)
        }
        Err(e) => Err(Error::api(format!("looking up secret {name}"))(e)),
    }
}
