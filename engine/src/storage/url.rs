//! Repository URLs: `file:///abs/path` (or a plain path), and
//! `s3://bucket/prefix?region=…&endpoint=…&path_style=true&…`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::s3::{S3Options, S3Storage};
use super::{LocalStorage, Storage, StorageError};

/// A parsed repository location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepoUrl {
    /// A directory on this machine (or a mounted one).
    Local(PathBuf),
    /// An S3 bucket and prefix.
    S3(Box<S3Options>),
}

fn parse_rate(v: &str) -> Option<u64> {
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().ok()?;
    let mult = match unit {
        "" => 1,
        "K" | "k" => 1000,
        "Ki" => 1 << 10,
        "M" => 1_000_000,
        "Mi" => 1 << 20,
        "G" => 1_000_000_000,
        "Gi" => 1 << 30,
        _ => return None,
    };
    Some(n * mult)
}

fn parse_secs(v: &str) -> Option<Duration> {
    let v = v.strip_suffix('s').unwrap_or(v);
    v.parse::<u64>().ok().map(Duration::from_secs)
}

/// Percent-decoding for query values (endpoints contain `:` and `/`, often escaped).
fn decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(x) = u8::from_str_radix(&v[i + 1..i + 3], 16)
        {
            out.push(x);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl RepoUrl {
    /// Parse a repository URL: a path, `file://…` or `s3://bucket/prefix?…`.
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
        if let Some(rest) = url.strip_prefix("s3://") {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
            if bucket.is_empty() {
                return Err(invalid("no bucket: use s3://bucket/prefix"));
            }
            let mut o = S3Options::new(bucket);
            o.prefix = prefix.trim_matches('/').to_owned();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let v = decode(v);
                let bad = |what: &str| invalid(&format!("{k}={v}: {what}"));
                match k {
                    "region" => o.region = Some(v),
                    "endpoint" => {
                        if !(v.starts_with("http://") || v.starts_with("https://")) {
                            return Err(bad("the endpoint needs http:// or https://"));
                        }
                        o.endpoint = Some(v);
                    }
                    "path_style" | "force_path_style" => {
                        o.path_style = matches!(v.as_str(), "true" | "1" | "yes")
                    }
                    "storage_class" => o.storage_class = Some(v),
                    "sse" => {
                        if v != "AES256" && v != "aws:kms" {
                            return Err(bad("use sse=AES256 or sse=aws:kms"));
                        }
                        o.sse = Some(v);
                    }
                    "upload_rate" => {
                        o.upload_rate = Some(
                            parse_rate(&v).ok_or_else(|| bad("use bytes per second, e.g. 50Mi"))?,
                        )
                    }
                    "download_rate" => {
                        o.download_rate = Some(
                            parse_rate(&v)
                                .ok_or_else(|| bad("use bytes per second, e.g. 100Mi"))?,
                        )
                    }
                    "connect_timeout" => {
                        o.connect_timeout =
                            parse_secs(&v).ok_or_else(|| bad("use seconds, e.g. 10s"))?
                    }
                    "read_timeout" => {
                        o.read_timeout =
                            parse_secs(&v).ok_or_else(|| bad("use seconds, e.g. 60s"))?
                    }
                    "max_attempts" => {
                        o.max_attempts = v
                            .parse()
                            .ok()
                            .filter(|n| *n >= 1)
                            .ok_or_else(|| bad("use a number of attempts, at least 1"))?
                    }
                    _ => {
                        return Err(bad(
                            "unknown option; known: region, endpoint, path_style, storage_class, sse, upload_rate, \
                             download_rate, connect_timeout, read_timeout, max_attempts",
                        ));
                    }
                }
            }
            return Ok(RepoUrl::S3(Box::new(o)));
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(invalid(&format!(
                "unsupported scheme {scheme:?}; use file:///path or s3://bucket/prefix"
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
            RepoUrl::S3(o) if o.prefix.is_empty() => write!(f, "s3://{}", o.bucket),
            RepoUrl::S3(o) => write!(f, "s3://{}/{}", o.bucket, o.prefix),
        }
    }
}

/// Build the backend a URL names (no request is made yet).
pub(super) async fn connect(url: &RepoUrl) -> Arc<dyn Storage> {
    match url {
        RepoUrl::Local(path) => Arc::new(LocalStorage::new(path.clone())),
        RepoUrl::S3(o) => Arc::new(S3Storage::connect((**o).clone()).await),
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

    #[test]
    fn parses_s3_urls() {
        let u = RepoUrl::parse("s3://backups/prod/shop?region=eu-west-1&endpoint=http%3A%2F%2F127.0.0.1%3A9000&path_style=true&upload_rate=50Mi&sse=AES256").unwrap();
        let RepoUrl::S3(o) = u else { panic!() };
        assert_eq!(o.bucket, "backups");
        assert_eq!(o.prefix, "prod/shop");
        assert_eq!(o.region.as_deref(), Some("eu-west-1"));
        assert_eq!(o.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(o.path_style);
        assert_eq!(o.upload_rate, Some(50 << 20));
        let RepoUrl::S3(o) = RepoUrl::parse("s3://b").unwrap() else {
            panic!()
        };
        assert_eq!((o.bucket.as_str(), o.prefix.as_str()), ("b", ""));
        assert!(RepoUrl::parse("s3:///prefix").is_err());
        assert!(RepoUrl::parse("s3://b?endpoint=127.0.0.1:9000").is_err());
        assert!(
            RepoUrl::parse("s3://b?colour=blue")
                .unwrap_err()
                .to_string()
                .contains("unknown option")
        );
        assert!(RepoUrl::parse("s3://b?sse=rot13").is_err());
    }
}
