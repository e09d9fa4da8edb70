//! What the controller asks of a namespace: whether it allows privileged movers (its
//! annotation, read only when a set or a restore asks for one), and whether it is being
//! deleted. Kubernetes creates nothing new in a terminating
//! namespace, and its Secrets may go before the objects that use them, so advice such as
//! "create the Secret" cannot be followed there; the reconcilers say what can be done
//! instead.
//!
//! Asked with the rights the controller already has: a dry-run create of an Event, which
//! the API server's namespace admission refuses in a terminating namespace (and which
//! persists nothing). Reading the Namespace would need a cluster-wide rule that a
//! namespace-scoped installation does not have.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Api;
use kube::api::PostParams;

use super::error::{Error, code};
use super::mover::{Consent, consents};

/// Whether an API error says the namespace is being deleted.
pub fn refuses_as_terminating(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 403 && s.message.contains("being terminated"))
}

/// `true` when the API server says the namespace is being deleted; any other answer counts
/// as "no", and the caller gives its usual advice.
pub async fn terminating(client: &kube::Client, namespace: &str) -> bool {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let probe = Event {
        metadata: ObjectMeta {
            generate_name: Some("holdfast-probe-".into()),
            ..Default::default()
        },
        event_time: Some(MicroTime(jiff::Timestamp::now())),
        action: Some("Probe".into()),
        reason: Some("Probe".into()),
        note: Some("is the namespace being deleted? (dry run, never stored)".into()),
        reporting_controller: Some("holdfast.io/controller".into()),
        reporting_instance: Some("probe".into()),
        type_: Some("Normal".into()),
        ..Default::default()
    };
    let params = PostParams {
        dry_run: true,
        ..Default::default()
    };
    match api.create(&params, &probe).await {
        Ok(_) => false,
        Err(e) => {
            let terminating = refuses_as_terminating(&e);
            if !terminating {
                tracing::debug!(namespace, "namespace probe: {e}");
            }
            terminating
        }
    }
}

/// What a BackupSet in a terminating namespace can still do, after `what` went wrong.
pub fn advice(namespace: &str, what: &str, purge: bool) -> String {
    let then = if purge {
        "Its deletionPolicy is Purge, so its deletion waits for the repository to be deleted, \
         which cannot happen from inside this namespace any more: annotate the set \
         holdfast.io/release=true (or set deletionPolicy: Retain) to let it go and keep the \
         repository, then delete the repository from any machine with its passphrase: \
         `holdfast destroy --repo <its URL> --yes`"
    } else {
        "It goes with the namespace; its repository is kept (deletionPolicy Retain), and a \
         Restore with storageSetRef can still restore it"
    };
    format!(
        "the namespace {namespace} is being deleted, and Kubernetes creates nothing new in it \
         ({what}). {then}"
    )
}

/// Whether the namespace allows privileged movers (`mover.rs`): `None` where the controller
/// may not read Namespaces (a namespace-scoped installation), which the caller reports.
pub async fn privileged_movers(client: &kube::Client, namespace: &str) -> Result<Consent, Error> {
    let api: Api<Namespace> = Api::all(client.clone());
    match api.get_opt(namespace).await {
        Ok(found) => {
            Ok(Some(found.is_some_and(|n| {
                consents(n.metadata.annotations.iter().flatten())
            })))
        }
        Err(e) if code(&e) == Some(403) => Ok(None),
        Err(e) => Err(Error::api(format!("reading namespace {namespace}"))(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(
            serde_json::from_value(serde_json::json!({"code": code, "message": message}))
                .expect("a Status"),
        ))
    }

    #[test]
    fn only_the_admission_refusal_of_a_terminating_namespace_counts() {
        assert!(refuses_as_terminating(&api_error(
            403,
            "events.events.k8s.io \"holdfast-probe-x\" is forbidden: unable to create new content in namespace shop because it is being terminated"
        )));
        assert!(!refuses_as_terminating(&api_error(
            403,
            "events is forbidden: User cannot create"
        )));
        assert!(!refuses_as_terminating(&api_error(500, "being terminated")));
    }

    #[test]
    fn the_advice_in_a_terminating_namespace_never_asks_to_create_anything() {
        let purge = advice("shop", "Secret shop-key is gone", true);
        assert!(purge.contains("holdfast.io/release=true") && purge.contains("holdfast destroy"));
        assert!(!purge.contains("create it"));
        assert!(advice("shop", "x", false).contains("repository is kept"));
    }
}
