//! Read-your-writes for reconcilers. The object a reconcile receives comes from the
//! watch cache, which can lag the status this controller wrote a moment ago; reconciling
//! from it would take in a finished Job twice (a second Event, a second run in history) or
//! write an older status back over a newer one. One GET per reconcile is cheap next to that.

use std::sync::Arc;

use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::error::{Error, code};

/// The object as the API server has it now; `None` once it is gone.
pub async fn latest<K>(api: &Api<K>, cached: &Arc<K>) -> Result<Option<Arc<K>>, Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.get(&cached.name_any()).await {
        Ok(k) => Ok(Some(Arc::new(k))),
        Err(e) if code(&e) == Some(404) => Ok(None),
        Err(e) => Err(Error::api(format!("reading {}", cached.name_any()))(e)),
    }
}
