//! Repository URLs: `file:///abs/path`, or a plain path.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use super::{LocalStorage, Storage, StorageError};

/// A parsed repository location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoUrl {
    Local(PathBuf),
}

impl RepoUrl {
    pub fn parse(url: &str) -> Result<Self, StorageError> {
        let invalid = |reason: &str| StorageError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(invalid(
                    "file URLs need an absolute path, e.g. file:///var/backups/repo",
                ));
            }
            return Ok(RepoUrl::Local(PathBuf::from(rest)));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(invalid(&format!(
                "unsupported scheme {scheme:?}; use file:///path"
            )));
        }
        if url.is_empty() {
            return Err(invalid("empty; pass --repo or set HOLDFAST_REPO"));
        }
        Ok(RepoUrl::Local(PathBuf::from(url)))
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepoUrl::Local(p) => write!(f, "file://{}", p.display()),
        }
    }
}

/// Open the backend a URL names.
pub fn open_url(url: &RepoUrl) -> Arc<dyn Storage> {
    match url {
        RepoUrl::Local(path) => Arc::new(LocalStorage::new(path.clone())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_urls_and_paths() {
        assert_eq!(
            RepoUrl::parse("file:///var/b").unwrap(),
            RepoUrl::Local("/var/b".into())
        );
        assert_eq!(
            RepoUrl::parse("rel/dir").unwrap(),
            RepoUrl::Local("rel/dir".into())
        );
        assert!(RepoUrl::parse("file://relative").is_err());
        assert!(RepoUrl::parse("ftp://x/y").is_err());
        assert!(RepoUrl::parse("").is_err());
    }
}
