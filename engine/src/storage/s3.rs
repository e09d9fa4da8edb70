//! S3 and S3-compatible object storage (AWS, MinIO, Ceph RGW, Garage, …) via aws-sdk-s3.
//!
//! Objects are written whole (a single PUT, or a multipart upload that appears only when
//! completed), so a reader never sees a partial object. The SDK retries throttling
//! (503 SlowDown), 5xx, timeouts and connection resets with exponential backoff and jitter;
//! permanent errors (403, missing bucket, bad credentials, clock skew, wrong region) fail
//! at once with a message naming the cause and the fix.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_s3::config::{
    ConfigBag, Intercept, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    RuntimeComponents,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ServerSideEncryption, StorageClass,
};
use bytes::Bytes;

use super::check::CheckItem;
use super::rate::RateLimiter;
use super::{ObjectInfo, Storage, StorageError};

/// Files above this size are uploaded in parts.
const MULTIPART_THRESHOLD: u64 = 8 * 1024 * 1024;
/// Size of each part (S3 requires at least 5 MiB for all but the last).
const PART_SIZE: u64 = 8 * 1024 * 1024;

/// An access key pair given programmatically (never parsed from a URL, never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for StaticCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StaticCredentials({}, <secret>)", self.access_key_id)
    }
}

/// Everything an `s3://` URL can say.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct S3Options {
    pub bucket: String,
    /// Key prefix without leading or trailing slash ("" for the bucket root).
    pub prefix: String,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub path_style: bool,
    pub storage_class: Option<String>,
    pub sse: Option<String>,
    /// Upload limit in bytes per second.
    pub upload_rate: Option<u64>,
    /// Download limit in bytes per second.
    pub download_rate: Option<u64>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub max_attempts: u32,
    /// Explicit keys; `None` uses the standard AWS chain (environment, profile, web
    /// identity / IRSA, instance role).
    pub credentials: Option<StaticCredentials>,
}

impl S3Options {
    pub fn new(bucket: impl Into<String>) -> Self {
        S3Options {
            bucket: bucket.into(),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(60),
            max_attempts: 10,
            ..S3Options::default()
        }
    }
}

/// Records the server's `Date` header, to measure clock skew.
#[derive(Debug, Clone, Default)]
struct ServerDate(Arc<Mutex<Option<String>>>);

impl Intercept for ServerDate {
    fn name(&self) -> &'static str {
        "HoldfastServerDate"
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        if let Some(d) = context.response().headers().get("date") {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(d.to_owned());
        }
        Ok(())
    }
}

/// A repository in an S3 bucket under a prefix.
#[derive(Debug, Clone)]
pub struct S3Storage {
    client: Client,
    opts: S3Options,
    upload: Option<Arc<RateLimiter>>,
    download: Option<Arc<RateLimiter>>,
    server_date: ServerDate,
}

impl S3Storage {
    /// Build a client from the standard AWS chain (environment, profile, web identity /
    /// IRSA, instance role) and the URL's options. No request is made yet.
    pub async fn connect(opts: S3Options) -> Self {
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(opts.connect_timeout)
            .read_timeout(opts.read_timeout)
            .build();
        let retry = aws_config::retry::RetryConfig::standard()
            .with_max_attempts(opts.max_attempts.max(1))
            .with_initial_backoff(Duration::from_millis(100))
            .with_max_backoff(Duration::from_secs(20));
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .timeout_config(timeouts)
            .retry_config(retry);
        if let Some(r) = &opts.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(c) = &opts.credentials {
            loader = loader.credentials_provider(aws_credential_types::Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                None,
                None,
                "holdfast",
            ));
        }
        let shared = loader.load().await;
        let server_date = ServerDate::default();
        let mut b = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(opts.path_style)
            // S3-compatible stores vary in their support of streaming checksums; the data is
            // authenticated end to end by the repository format anyway.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .interceptor(server_date.clone());
        if shared.region().is_none() {
            // Custom endpoints often have no region; signing still needs one.
            b = b.region(Region::new("us-east-1"));
        }
        if let Some(ep) = &opts.endpoint {
            b = b.endpoint_url(ep);
        }
        let client = Client::from_conf(b.build());
        S3Storage {
            client,
            upload: opts.upload_rate.map(|r| Arc::new(RateLimiter::new(r))),
            download: opts.download_rate.map(|r| Arc::new(RateLimiter::new(r))),
            opts,
            server_date,
        }
    }

    fn object_key(&self, key: &str) -> String {
        if self.opts.prefix.is_empty() {
            key.to_owned()
        } else {
            format!("{}/{key}", self.opts.prefix)
        }
    }

    fn error<E>(
        &self,
        key: &str,
        e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let location = self.location();
        let (status, code, message) = match &e {
            SdkError::ServiceError(se) => (
                Some(se.raw().status().as_u16()),
                se.err().code().map(str::to_owned),
                se.err().message().map(str::to_owned),
            ),
            SdkError::ResponseError(re) => (Some(re.raw().status().as_u16()), None, None),
            SdkError::TimeoutError(_) => {
                return StorageError::Unreachable {
                    location,
                    detail: format!(
                        "timed out after {} attempts (connect timeout {:?}, read timeout {:?}); check the endpoint and network, or raise connect_timeout/read_timeout",
                        self.opts.max_attempts, self.opts.connect_timeout, self.opts.read_timeout
                    ),
                };
            }
            SdkError::DispatchFailure(_) if error_chain(&e).contains("loading credentials") => {
                return StorageError::InvalidCredentials {
                    location,
                    detail: format!(
                        "no usable credentials ({}); set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, \
                         or a role (IRSA / instance role)",
                        error_chain(&e)
                    ),
                };
            }
            SdkError::DispatchFailure(d) => {
                let what = if d.is_timeout() {
                    "timed out"
                } else if d.is_io() {
                    "connection failed"
                } else {
                    "request failed"
                };
                return StorageError::Unreachable {
                    location,
                    detail: format!(
                        "{what} after {} attempts: {}",
                        self.opts.max_attempts,
                        error_chain(&e)
                    ),
                };
            }
            _ => (None, None, None),
        };
        let detail = match (&code, &message) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (Some(c), None) => c.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => status
                .map(|s| format!("HTTP {s}"))
                .unwrap_or_else(|| error_chain(&e)),
        };
        let bucket = self.opts.bucket.clone();
        match (status, code.as_deref()) {
            (_, Some("NoSuchBucket")) => StorageError::BucketNotFound { location, bucket },
            (_, Some("NoSuchKey" | "NotFound")) | (Some(404), _) => StorageError::NotFound {
                location,
                key: key.to_owned(),
            },
            (
                _,
                Some(
                    "InvalidAccessKeyId"
                    | "SignatureDoesNotMatch"
                    | "InvalidToken"
                    | "ExpiredToken",
                ),
            ) => StorageError::InvalidCredentials { location, detail },
            (_, Some("RequestTimeTooSkewed")) => StorageError::ClockSkew { location, detail },
            (
                _,
                Some(
                    "PermanentRedirect"
                    | "AuthorizationHeaderMalformed"
                    | "IllegalLocationConstraintException",
                ),
            )
            | (Some(301), _) => StorageError::WrongRegion { location, detail },
            (Some(403), _) => StorageError::PermissionDenied { location, detail },
            (_, Some("PreconditionFailed")) | (Some(412), _) => StorageError::AlreadyExists {
                location,
                key: key.to_owned(),
            },
            _ => StorageError::Io {
                location,
                key: key.to_owned(),
                source: std::io::Error::other(format!(
                    "{detail} (after {} attempts)",
                    self.opts.max_attempts
                )),
            },
        }
    }

    async fn put_multipart(
        &self,
        key: &str,
        object: &str,
        path: &Path,
        size: u64,
    ) -> Result<(), StorageError> {
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(&self.opts.bucket)
            .key(object);
        if let Some(sc) = &self.opts.storage_class {
            create = create.storage_class(StorageClass::from(sc.as_str()));
        }
        if let Some(sse) = &self.opts.sse {
            create = create.server_side_encryption(ServerSideEncryption::from(sse.as_str()));
        }
        let upload = create.send().await.map_err(|e| self.error(key, e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let result = async {
            let mut parts = Vec::new();
            let mut offset = 0u64;
            let mut number = 1;
            while offset < size {
                let len = PART_SIZE.min(size - offset);
                if let Some(l) = &self.upload {
                    l.acquire(len).await;
                }
                let body = ByteStream::read_from()
                    .path(path)
                    .offset(offset)
                    .length(Length::Exact(len))
                    .build()
                    .await
                    .map_err(|e| self.io(key, std::io::Error::other(e)))?;
                let out = self
                    .client
                    .upload_part()
                    .bucket(&self.opts.bucket)
                    .key(object)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| self.error(key, e))?;
                parts.push(
                    CompletedPart::builder()
                        .set_e_tag(out.e_tag().map(str::to_owned))
                        .part_number(number)
                        .build(),
                );
                offset += len;
                number += 1;
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.opts.bucket)
                .key(object)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.error(key, e))?;
            Ok(())
        }
        .await;
        if result.is_err() {
            // Leave no billable fragments behind; a purge also aborts stale uploads.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.opts.bucket)
                .key(object)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    fn io(&self, key: &str, source: std::io::Error) -> StorageError {
        StorageError::Io {
            location: self.location(),
            key: key.to_owned(),
            source,
        }
    }

    async fn put_body(
        &self,
        key: &str,
        body: ByteStream,
        len: u64,
        if_absent: bool,
    ) -> Result<(), StorageError> {
        if let Some(l) = &self.upload {
            l.acquire(len).await;
        }
        let mut req = self
            .client
            .put_object()
            .bucket(&self.opts.bucket)
            .key(self.object_key(key))
            .body(body);
        if let Some(sc) = &self.opts.storage_class {
            req = req.storage_class(StorageClass::from(sc.as_str()));
        }
        if let Some(sse) = &self.opts.sse {
            req = req.server_side_encryption(ServerSideEncryption::from(sse.as_str()));
        }
        if if_absent {
            req = req.if_none_match("*");
        }
        req.send().await.map_err(|e| self.error(key, e))?;
        Ok(())
    }

    /// GET an object (or a byte range). The SDK retries the request itself; a connection
    /// that breaks while the body streams in is retried here, with backoff.
    async fn fetch(&self, key: &str, range: Option<(u64, u64)>) -> Result<Bytes, StorageError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self
                .client
                .get_object()
                .bucket(&self.opts.bucket)
                .key(self.object_key(key));
            if let Some((offset, len)) = range {
                req = req.range(format!("bytes={}-{}", offset, offset + len - 1));
            }
            let out = req.send().await.map_err(|e| self.error(key, e))?;
            let body = match out.body.collect().await {
                Ok(b) => b.into_bytes(),
                Err(_) if attempt < self.opts.max_attempts => {
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(7))).await;
                    continue;
                }
                Err(e) => {
                    return Err(self.io(
                        key,
                        std::io::Error::other(format!(
                            "download broke off after {attempt} attempts: {e}"
                        )),
                    ));
                }
            };
            if let Some((offset, len)) = range
                && body.len() as u64 != len
            {
                if attempt < self.opts.max_attempts {
                    continue;
                }
                return Err(self.io(
                    key,
                    std::io::Error::other(format!(
                        "asked for {len} bytes at {offset}, got {}",
                        body.len()
                    )),
                ));
            }
            if let Some(l) = &self.download {
                l.acquire(body.len() as u64).await;
            }
            return Ok(body);
        }
    }

    /// The last `Date` header the server sent.
    fn last_server_date(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let d = self
            .server_date
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()?;
        chrono::DateTime::parse_from_rfc2822(&d)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[async_trait]
impl Storage for S3Storage {
    fn location(&self) -> String {
        let ep = self
            .opts
            .endpoint
            .as_deref()
            .map(|e| format!(" at {e}"))
            .unwrap_or_default();
        if self.opts.prefix.is_empty() {
            format!("s3://{}{ep}", self.opts.bucket)
        } else {
            format!("s3://{}/{}{ep}", self.opts.bucket, self.opts.prefix)
        }
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<(), StorageError> {
        let len = data.len() as u64;
        self.put_body(key, ByteStream::from(data), len, false).await
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<(), StorageError> {
        let result = async {
            let size = tokio::fs::metadata(path)
                .await
                .map_err(|e| self.io(key, e))?
                .len();
            if size > MULTIPART_THRESHOLD {
                self.put_multipart(key, &self.object_key(key), path, size)
                    .await
            } else {
                let body = ByteStream::from_path(path)
                    .await
                    .map_err(|e| self.io(key, std::io::Error::other(e)))?;
                self.put_body(key, body, size, false).await
            }
        }
        .await;
        let _ = tokio::fs::remove_file(path).await;
        result
    }

    async fn put_new(&self, key: &str, data: Bytes) -> Result<bool, StorageError> {
        // The HEAD covers stores that ignore If-None-Match; the condition covers races on
        // stores that honour it.
        if self.stat(key).await?.is_some() {
            return Ok(false);
        }
        let len = data.len() as u64;
        match self.put_body(key, ByteStream::from(data), len, true).await {
            Ok(()) => Ok(true),
            Err(StorageError::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn get(&self, key: &str) -> Result<Bytes, StorageError> {
        self.fetch(key, None).await
    }

    async fn get_range(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StorageError> {
        if len == 0 {
            return Ok(Bytes::new());
        }
        self.fetch(key, Some((offset, len))).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let full = self.object_key(prefix);
        let strip = if self.opts.prefix.is_empty() {
            0
        } else {
            self.opts.prefix.len() + 1
        };
        let mut out = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.opts.bucket)
            .prefix(&full)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| self.error(prefix, e))?;
            for o in page.contents() {
                if let Some(k) = o.key() {
                    out.push(ObjectInfo {
                        key: k[strip.min(k.len())..].to_owned(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn stat(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self
            .client
            .head_object()
            .bucket(&self.opts.bucket)
            .key(self.object_key(key))
            .send()
            .await
        {
            Ok(o) => Ok(Some(o.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) => match self.error(key, e) {
                StorageError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        self.client
            .delete_object()
            .bucket(&self.opts.bucket)
            .key(self.object_key(key))
            .send()
            .await
            .map_err(|e| self.error(key, e))?;
        Ok(())
    }

    async fn remove_stale_temporaries(
        &self,
        older_than: std::time::SystemTime,
    ) -> Result<u64, StorageError> {
        // The object-store analogue of temporary files: multipart uploads never completed.
        let prefix = self.object_key("");
        let out = match self
            .client
            .list_multipart_uploads()
            .bucket(&self.opts.bucket)
            .prefix(&prefix)
            .send()
            .await
        {
            Ok(o) => o,
            // Some S3-compatible stores do not list uploads; nothing to clean then.
            Err(_) => return Ok(0),
        };
        let cutoff = aws_smithy_types::DateTime::from(older_than);
        let mut removed = 0;
        for u in out.uploads() {
            let stale = u.initiated().is_some_and(|t| t.secs() < cutoff.secs());
            if let (true, Some(key), Some(id)) = (stale, u.key(), u.upload_id()) {
                let aborted = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.opts.bucket)
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await;
                if aborted.is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    async fn diagnose(&self) -> Vec<CheckItem> {
        let mut items = Vec::new();
        match self
            .client
            .head_bucket()
            .bucket(&self.opts.bucket)
            .send()
            .await
        {
            Ok(out) => {
                let region = out
                    .bucket_region()
                    .map(str::to_owned)
                    .unwrap_or_else(|| "not reported".into());
                items.push(CheckItem::ok(
                    "bucket",
                    format!("{} exists (region {region})", self.opts.bucket),
                ));
            }
            Err(e) => items.push(CheckItem::failed("bucket", self.error("", e).to_string())),
        }
        if let Some(server) = self.last_server_date() {
            let skew = (chrono::Utc::now() - server).num_seconds();
            let detail = format!("local clock is {skew:+} s from the server's");
            // S3 refuses signatures more than 15 minutes off; warn well before that.
            if skew.abs() > 300 {
                items.push(CheckItem::failed(
                    "clock",
                    format!("{detail}: fix the time (NTP) before it passes 15 minutes"),
                ));
            } else {
                items.push(CheckItem::ok("clock", detail));
            }
        }
        items
    }
}
