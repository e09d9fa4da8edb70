//! Leader election on a `coordination.k8s.io/v1` Lease: one active replica; a standby takes
//! over when the lease is not renewed for its duration, and at once when the leader steps
//! down on shutdown (it gives the lease up). Updates use the lease's resourceVersion, so two
//! candidates never both win.

use crate::operator::write;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};

/// The lease of this replica.
#[derive(Clone)]
pub struct Election {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl std::fmt::Debug for Election {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Election")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Whether a lease held by someone else has run out.
pub fn expired(lease: &Lease, now: Timestamp) -> bool {
    let Some(spec) = &lease.spec else { return true };
    if spec.holder_identity.as_deref().is_none_or(str::is_empty) {
        return true;
    }
    let (Some(renewed), Some(secs)) = (&spec.renew_time, spec.lease_duration_seconds) else {
        return true;
    };
    renewed.0 + jiff::SignedDuration::from_secs(i64::from(secs)) < now
}

impl Election {
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        Election {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            duration,
        }
    }

    fn spec(&self, acquired: Option<MicroTime>) -> k8s_openapi::api::coordination::v1::LeaseSpec {
        let now = MicroTime(Timestamp::now());
        k8s_openapi::api::coordination::v1::LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.duration.as_secs() as i32),
            acquire_time: Some(acquired.unwrap_or(now.clone())),
            renew_time: Some(now),
            ..Default::default()
        }
    }

    /// Take the lease if it is free, expired or ours. `Ok(true)` when this replica leads.
    pub async fn try_acquire(&self) -> Result<bool, kube::Error> {
        match self.api.get_opt(&self.name).await? {
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(self.spec(None)),
                };
                Ok(write::create_once(&self.api, &lease).await?.is_some())
            }
            Some(mut lease) => {
                let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.clone());
                let mine = holder.as_deref() == Some(self.identity.as_str());
                if !mine && !expired(&lease, Timestamp::now()) {
                    return Ok(false);
                }
                let acquired = if mine {
                    lease.spec.as_ref().and_then(|s| s.acquire_time.clone())
                } else {
                    None
                };
                let transitions = lease
                    .spec
                    .as_ref()
                    .and_then(|s| s.lease_transitions)
                    .unwrap_or(0);
                let mut spec = self.spec(acquired);
                spec.lease_transitions = Some(if mine { transitions } else { transitions + 1 });
                lease.spec = Some(spec);
                // The resourceVersion read above makes this a compare-and-swap.
                match self
                    .api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(e) if write::is_conflict(&e) => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Wait until this replica leads.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::warn!("leader election: {e}"),
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// Renew until the lease is lost (someone else took it, or renewing failed for longer
    /// than the lease lasts); returns then.
    pub async fn hold(&self) {
        let every = self.duration / 3;
        let mut last_ok = std::time::Instant::now();
        loop {
            tokio::time::sleep(every).await;
            match self.try_acquire().await {
                Ok(true) => last_ok = std::time::Instant::now(),
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!("renewing the leader lease: {e}");
                    if last_ok.elapsed() >= self.duration {
                        return;
                    }
                }
            }
        }
    }

    /// Give the lease up, so a standby takes over at once.
    pub async fn step_down(&self) {
        if let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await
            && lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                == Some(self.identity.as_str())
        {
            if let Some(spec) = lease.spec.as_mut() {
                spec.holder_identity = None;
                spec.lease_duration_seconds = Some(1);
            }
            let _ = self
                .api
                .replace(&self.name, &PostParams::default(), &lease)
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_expires_after_its_duration_without_renewal() {
        let t: Timestamp = "2026-12-01T01:00:00Z".parse().unwrap();
        let lease = |holder: Option<&str>, renewed: Timestamp| Lease {
            metadata: ObjectMeta::default(),
            spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
                holder_identity: holder.map(String::from),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(renewed)),
                ..Default::default()
            }),
        };
        assert!(!expired(
            &lease(Some("a"), t),
            t + jiff::SignedDuration::from_secs(10)
        ));
        assert!(expired(
            &lease(Some("a"), t),
            t + jiff::SignedDuration::from_secs(16)
        ));
        assert!(expired(&lease(None, t), t), "a released lease is free");
    }
}
