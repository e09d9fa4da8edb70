//! Include/exclude patterns over paths relative to a source root.
//!
//! Paths are matched as `/dir/file` (leading slash, raw bytes). A pattern with no `/` matches
//! a name at any depth (`*.tmp` is `**/*.tmp`); one with a `/` is anchored at the source root.
//! A pattern that matches a directory covers everything below it.

use globset::{Glob, GlobBuilder, GlobSet, GlobSetBuilder};

use crate::{Error, Result};

/// Compiled include and exclude patterns.
#[derive(Debug, Clone)]
pub struct PathFilter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

fn glob(pattern: &str) -> Result<Glob> {
    let anchored = if pattern.contains('/') {
        if pattern.starts_with('/') {
            pattern.to_owned()
        } else {
            format!("/{pattern}")
        }
    } else {
        format!("/**/{pattern}")
    };
    let anchored = anchored.trim_end_matches('/').to_owned();
    let anchored = if anchored.is_empty() {
        "/**".to_owned()
    } else {
        anchored
    };
    GlobBuilder::new(&anchored)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .map_err(|e| Error::InvalidArgument(format!("invalid pattern {pattern:?}: {e}")))
}

fn set(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        b.add(glob(p)?);
    }
    b.build()
        .map(Some)
        .map_err(|e| Error::InvalidArgument(format!("invalid patterns: {e}")))
}

fn matches(set: &GlobSet, rel: &[u8]) -> bool {
    set.is_match(crate::fsmeta::path_from_bytes(rel))
}

impl PathFilter {
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Result<Self> {
        Ok(PathFilter {
            include: set(include)?,
            exclude: set(exclude)?,
        })
    }

    /// Whether `rel` (e.g. `/a/b`) is excluded; callers skip the whole subtree.
    pub(crate) fn is_excluded(&self, rel: &[u8]) -> bool {
        self.exclude.as_ref().is_some_and(|s| matches(s, rel))
    }

    /// Whether `rel` itself matches an include pattern (true when there are none).
    pub(crate) fn is_included(&self, rel: &[u8]) -> bool {
        self.include.as_ref().is_none_or(|s| matches(s, rel))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(inc: &[&str], exc: &[&str]) -> PathFilter {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PathFilter::new(&v(inc), &v(exc)).unwrap()
    }

    #[test]
    fn bare_names_match_at_any_depth() {
        let p = f(&[], &["*.tmp"]);
        assert!(p.is_excluded(b"/a.tmp"));
        assert!(p.is_excluded(b"/x/y/a.tmp"));
        assert!(!p.is_excluded(b"/x/a.txt"));
    }

    #[test]
    fn slashed_patterns_are_anchored() {
        let p = f(&["/images/**"], &["cache/"]);
        assert!(p.is_included(b"/images/a.png"));
        assert!(!p.is_included(b"/other/images/a.png"));
        assert!(p.is_excluded(b"/cache"));
        assert!(!p.is_excluded(b"/x/cache"));
        assert!(f(&["images"], &[]).is_included(b"/deep/images"));
    }

    #[test]
    fn star_does_not_cross_directories() {
        let p = f(&["/a/*"], &[]);
        assert!(p.is_included(b"/a/b"));
        assert!(!p.is_included(b"/a/b/c"));
    }

    #[test]
    fn non_utf8_paths_match() {
        let p = f(&[], &["*.bin"]);
        assert!(p.is_excluded(b"/\xff\xfe.bin"));
    }

    #[test]
    fn invalid_pattern_is_an_argument_error() {
        let err = PathFilter::new(&["a[".to_string()], &[]).unwrap_err();
        assert!(err.to_string().contains("invalid pattern"), "{err}");
    }
}
