//! Who a job pod runs as (its "mover"): chosen from the set's or the restore's `mover`, the
//! running pods that mount the claims, the kind of storage and the namespace's consent.
//! Pure, table-tested; `job.rs` turns the choice into security contexts.
//!
//! The default mover is unprivileged (it passes the `restricted` Pod Security level) and
//! runs as the data's owner, as far as the application's pods say who that is. A
//! privileged mover (root with the capabilities that read every file or set every owner)
//! needs the set to ask for it and the namespace to consent with an annotation that only
//! whoever may edit the Namespace sets: a tenant who may create BackupSets cannot give
//! itself a pod that reads every file of every claim. A set whose repository is a
//! filesystem claim keeps a root mover for now: the files of its repository belong to
//! root.

use std::fmt;
use std::time::Duration;

use super::error::Problem;
use crate::api::common::Mover;

/// The namespace annotation that allows privileged movers.
pub const PRIVILEGED_MOVERS: &str = "holdfast.io/privileged-movers";
/// User and group of a mover that no pod and no spec names (the image's own user).
pub const DEFAULT_ID: i64 = 65532;

/// What a running pod's security context says about the identity it runs as, for the
/// container that mounts the claim (its own settings over the pod's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodIdentity {
    pub user: Option<i64>,
    pub group: Option<i64>,
    pub fs_group: Option<i64>,
    pub supplemental: Vec<i64>,
}

/// Where an unprivileged mover's identity came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The set's or the restore's `mover.securityContext`.
    Spec,
    /// A running pod that mounts one of the claims.
    Pod(String),
    /// Nothing said: the image's user.
    Default,
}

/// An unprivileged mover's user and groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: i64,
    pub group: i64,
    pub fs_group: Option<i64>,
    pub supplemental: Vec<i64>,
    pub origin: Origin,
}

impl Identity {
    /// The image's user: for pods that touch only an S3 repository.
    pub fn default_user() -> Identity {
        Identity {
            user: DEFAULT_ID,
            group: DEFAULT_ID,
            fs_group: None,
            supplemental: Vec::new(),
            origin: Origin::Default,
        }
    }
}

/// Who a job pod runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoverPlan {
    /// Not root, no capability: passes the `restricted` Pod Security level.
    Restricted(Identity),
    /// Root with its operation's capabilities: the spec asked and the namespace consents.
    Privileged,
    /// Root with its operation's capabilities, because the repository is a filesystem
    /// claim whose files belong to root (as before movers could be chosen).
    FilesystemRepository,
}

impl MoverPlan {
    /// Whether the pod runs as root.
    pub fn is_root(&self) -> bool {
        !matches!(self, MoverPlan::Restricted(_))
    }
}

impl fmt::Display for MoverPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MoverPlan::Restricted(id) => {
                write!(f, "restricted uid {} gid {}", id.user, id.group)?;
                if let Some(g) = id.fs_group {
                    write!(f, " fsGroup {g}")?;
                }
                match &id.origin {
                    Origin::Spec => write!(f, " (from mover.securityContext)"),
                    Origin::Pod(p) => write!(f, " (from pod {p})"),
                    Origin::Default => write!(
                        f,
                        " (default: no pod that mounts the claims names its user)"
                    ),
                }
            }
            MoverPlan::Privileged => write!(f, "privileged (root, allowed by the namespace)"),
            MoverPlan::FilesystemRepository => write!(f, "root (filesystem repository)"),
        }
    }
}

/// Whether the namespace allows privileged movers: its annotation, or `None` when the
/// controller may not read Namespaces.
pub type Consent = Option<bool>;

/// Why a mover cannot be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

impl From<Refusal> for Problem {
    /// The set or the restore stalls. The Namespace is not watched: its annotation is
    /// looked for again after a while.
    fn from(Refusal(why): Refusal) -> Problem {
        Problem::new("PrivilegedMoverNotAllowed", why).recheck(Duration::from_secs(30))
    }
}

/// The mover of a set's or a restore's pods: `spec` first (its identity, or privileged
/// where `consent` allows); a filesystem repository's root mover (only a spec's identity
/// replaces it, as the repository's files may belong to root); the first of `users`
/// (sorted by pod name) that names a user other than root; the image's user.
pub fn choose(
    spec: Option<&Mover>,
    users: &[(&str, &PodIdentity)],
    filesystem_repository: bool,
    namespace: &str,
    consent: Consent,
) -> Result<MoverPlan, Refusal> {
    if let Some(m) = spec {
        if m.privileged {
            return match consent {
                Some(true) => Ok(MoverPlan::Privileged),
                Some(false) => Err(Refusal(format!(
                    "mover.privileged asks for a root mover, which namespace {namespace} does not allow: \
                     a cluster admin allows it with `kubectl annotate namespace {namespace} {PRIVILEGED_MOVERS}=true` \
                     (backups then also need the privileged Pod Security level), or remove mover.privileged \
                     to run as the data's owner"
                ))),
                None => Err(Refusal(format!(
                    "mover.privileged asks for a root mover, but the controller may not read namespace \
                     {namespace} to see whether its annotation {PRIVILEGED_MOVERS}=true allows it: give \
                     the controller `get` on namespaces (the chart's cluster-wide installation does), \
                     or remove mover.privileged"
                ))),
            };
        }
        if let Some(sc) = &m.security_context {
            return Ok(MoverPlan::Restricted(Identity {
                user: sc.run_as_user,
                group: sc.run_as_group.unwrap_or(sc.run_as_user),
                fs_group: sc.fs_group,
                supplemental: sc.supplemental_groups.clone(),
                origin: Origin::Spec,
            }));
        }
    }
    if filesystem_repository {
        return Ok(MoverPlan::FilesystemRepository);
    }
    let mut named: Vec<&(&str, &PodIdentity)> = users
        .iter()
        .filter(|(_, id)| id.user.is_some_and(|u| u > 0))
        .collect();
    named.sort_by_key(|(pod, _)| *pod);
    if let Some((pod, id)) = named.first() {
        let user = id.user.unwrap_or(DEFAULT_ID);
        return Ok(MoverPlan::Restricted(Identity {
            user,
            group: id.group.unwrap_or(user),
            fs_group: id.fs_group,
            supplemental: id.supplemental.clone(),
            origin: Origin::Pod((*pod).to_owned()),
        }));
    }
    Ok(MoverPlan::Restricted(Identity::default_user()))
}

/// Whether `annotations` (a Namespace's) allow privileged movers.
pub fn consents<'a>(mut annotations: impl Iterator<Item = (&'a String, &'a String)>) -> bool {
    annotations.any(|(k, v)| k == PRIVILEGED_MOVERS && v == "true")
}

#[cfg(test)]
mod tests;
