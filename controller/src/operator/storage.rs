//! Where a repository is, as a job pod sees it: the repository URL from a StorageSet and a
//! repository path (no credentials in it), and how the storage reaches the pod (a Secret of
//! S3 keys as environment, or a claim mounted at `/holdfast/storage`). Pure.

use crate::api::storage_set::{ServerSideEncryption, StorageSetSpec};
use crate::job::plan::paths;

/// How a job pod reaches the storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageMount {
    /// S3: keys from this Secret (None: ambient credentials, e.g. IRSA).
    S3 { credentials_secret: Option<String> },
    /// A directory on this claim.
    Filesystem { claim: String },
}

impl StorageMount {
    pub fn of(spec: &StorageSetSpec) -> Option<StorageMount> {
        if let Some(s3) = &spec.s3 {
            return Some(StorageMount::S3 {
                credentials_secret: s3.credentials_secret_ref.as_ref().map(|r| r.name.clone()),
            });
        }
        spec.filesystem.as_ref().map(|f| StorageMount::Filesystem {
            claim: f.persistent_volume_claim.claim_name.clone(),
        })
    }
}

fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// The URL of `repository` in the StorageSet (or of the StorageSet's root, for a check).
/// The keys a StorageSet's credentials Secret must have (a job pod reads them with
/// `secretKeyRef`; `AWS_SESSION_TOKEN` is optional).
pub const CREDENTIAL_KEYS: [&str; 2] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"];

pub fn url(spec: &StorageSetSpec, repository: Option<&str>) -> Result<String, String> {
    url_at(spec, repository, paths::STORAGE)
}

/// As [`url`], for a filesystem target whose claim is mounted at `mount` (a copy's target
/// sits beside the set's own).
pub fn url_at(
    spec: &StorageSetSpec,
    repository: Option<&str>,
    mount: &str,
) -> Result<String, String> {
    let repository = repository.unwrap_or("");
    if let Some(s3) = &spec.s3 {
        let path = join(&[&s3.bucket, s3.prefix.as_deref().unwrap_or(""), repository]);
        let mut params: Vec<String> = Vec::new();
        if let Some(r) = &s3.region {
            params.push(format!("region={r}"));
        }
        if let Some(e) = &s3.endpoint {
            params.push(format!("endpoint={e}"));
        }
        if s3.force_path_style == Some(true) {
            params.push("path_style=true".into());
        }
        if let Some(c) = &s3.storage_class {
            params.push(format!("storage_class={c}"));
        }
        if let Some(sse) = s3.server_side_encryption {
            params.push(format!(
                "sse={}",
                match sse {
                    ServerSideEncryption::Aes256 => "AES256",
                    ServerSideEncryption::AwsKms => "aws:kms",
                }
            ));
        }
        if let Some(t) = &spec.transfer {
            if let Some(r) = &t.max_upload_rate {
                params.push(format!("upload_rate={r}"));
            }
            if let Some(r) = &t.max_download_rate {
                params.push(format!("download_rate={r}"));
            }
        }
        let query = if params.is_empty() {
            String::new()
        } else {
            format!("?{}", params.join("&"))
        };
        return Ok(format!("s3://{path}{query}"));
    }
    if let Some(fs) = &spec.filesystem {
        let path = join(&[mount, fs.path.as_deref().unwrap_or(""), repository]);
        return Ok(format!("file:///{path}"));
    }
    Err(NO_TARGET.into())
}

/// Where a StorageSet keeps a repository: the URL the engine opens, and how a job pod
/// reaches the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    pub mount: StorageMount,
}

/// The target of `repository` in the StorageSet (of its root, for a check), or what is
/// wrong with the spec.
pub fn target(spec: &StorageSetSpec, repository: Option<&str>) -> Result<Target, String> {
    let url = url(spec, repository)?;
    // `url` has refused a spec with neither target already.
    let mount = StorageMount::of(spec).ok_or(NO_TARGET)?;
    Ok(Target { url, mount })
}

const NO_TARGET: &str = "the StorageSet names neither s3 nor filesystem";

/// Whether two repository paths of one StorageSet are the same place, or one lies inside
/// the other: either way the two repositories cannot be kept apart (the outer one's purge
/// or deletion would reach into the inner one).
pub fn repositories_overlap(a: &str, b: &str) -> bool {
    let inside = |inner: &str, outer: &str| {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('/'))
    };
    a == b || inside(a, b) || inside(b, a)
}

/// A repository path must stay inside its StorageSet.
pub fn check_repository(path: &str) -> Result<(), String> {
    if path.is_empty()
        || path
            .split('/')
            .any(|p| p == ".." || p == "." || p.is_empty())
    {
        return Err(format!(
            "repository {path:?} is not a plain relative path (no empty, `.` or `..` parts)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_overlap_when_equal_or_nested_but_not_when_merely_alike() {
        assert!(repositories_overlap("ns/outer", "ns/outer"));
        assert!(repositories_overlap("ns/outer", "ns/outer/nested"));
        assert!(repositories_overlap("ns/outer/nested/deeper", "ns/outer"));
        assert!(!repositories_overlap("ns/outer", "ns/outer2"));
        assert!(!repositories_overlap("ns/outer2/x", "ns/outer"));
        assert!(!repositories_overlap("ns/a", "ns/b"));
    }
    use crate::api::common::{ClaimReference, LocalObjectReference};
    use crate::api::storage_set::{FilesystemTarget, S3Target, TransferSettings};

    #[test]
    fn urls_of_both_kinds_of_target() {
        let s3 = StorageSetSpec {
            s3: Some(S3Target {
                bucket: "backups".into(),
                prefix: Some("prod".into()),
                region: Some("eu-west-1".into()),
                endpoint: Some("http://127.0.0.1:9000".into()),
                force_path_style: Some(true),
                credentials_secret_ref: Some(LocalObjectReference {
                    name: "creds".into(),
                }),
                storage_class: None,
                server_side_encryption: Some(ServerSideEncryption::Aes256),
            }),
            filesystem: None,
            transfer: Some(TransferSettings {
                concurrency: None,
                max_upload_rate: Some("50Mi".into()),
                max_download_rate: None,
            }),
            job_template: None,
        };
        assert_eq!(
            url(&s3, Some("shop/shop")).unwrap(),
            "s3://backups/prod/shop/shop?region=eu-west-1&endpoint=http://127.0.0.1:9000&path_style=true&sse=AES256&upload_rate=50Mi"
        );
        assert!(url(&s3, None).unwrap().starts_with("s3://backups/prod?"));
        assert_eq!(
            StorageMount::of(&s3),
            Some(StorageMount::S3 {
                credentials_secret: Some("creds".into())
            })
        );
        let fs = StorageSetSpec {
            s3: None,
            filesystem: Some(FilesystemTarget {
                persistent_volume_claim: ClaimReference {
                    claim_name: "nas".into(),
                },
                path: Some("/backups/".into()),
            }),
            transfer: None,
            job_template: None,
        };
        assert_eq!(
            url(&fs, Some("media/photos")).unwrap(),
            "file:///holdfast/storage/backups/media/photos"
        );
        assert!(check_repository("shop/shop").is_ok());
        for bad in ["", "../x", "a//b", "a/./b"] {
            assert!(check_repository(bad).is_err(), "{bad}");
        }
    }
}
