//! S3 and S3-compatible object storage (AWS, MinIO, Ceph RGW, Garage, …) via aws-sdk-s3.
//!
//! Objects are written whole (a single PUT, or a multipart upload that appears only when
//! completed), so a reader never sees a partial object. The SDK retries throttling
//! (503 SlowDown), 5xx, timeouts and connection resets with exponential backoff and jitter;
//! permanent errors (403, missing bucket, bad credentials, clock skew, wrong region) fail
//! at once with a message naming the cause and the fix.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
    FinalizerInterceptorContextRef,
};
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
use crate::error_category::error_chain;

/// Files above this size are uploaded in parts.
const MULTIPART_THRESHOLD: u64 = 8 * 1024 * 1024;
/// Size of each part (S3 requires at least 5 MiB for all but the last).
const PART_SIZE: u64 = 8 * 1024 * 1024;

/// An access key pair given programmatically (never parsed from a URL, never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct StaticCredentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key (never logged or shown).
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
    /// The bucket.
    pub bucket: String,
    /// Key prefix without leading or trailing slash ("" for the bucket root).
    pub prefix: String,
    /// The bucket's region (default: the SDK's configuration, else `us-east-1`).
    pub region: Option<String>,
    /// The endpoint URL, for S3-compatible services.
    pub endpoint: Option<String>,
    /// Address buckets by path (`host/bucket`) rather than by name (`bucket.host`).
    pub path_style: bool,
    /// The storage class of new objects.
    pub storage_class: Option<String>,
    /// Server-side encryption of new objects (`AES256` or `aws:kms`).
    pub sse: Option<String>,
    /// Upload limit in bytes per second.
    pub upload_rate: Option<u64>,
    /// Download limit in bytes per second.
    pub download_rate: Option<u64>,
    /// How long to wait for a connection.
    pub connect_timeout: Duration,
    /// How long a read may wait for data.
    pub read_timeout: Duration,
    /// Attempts per request, retries included.
    pub max_attempts: u32,
    /// Explicit keys; `None` uses the standard AWS chain (environment, profile, web
    /// identity / IRSA, instance role).
    pub credentials: Option<StaticCredentials>,
}

impl S3Options {
    pub(crate) fn new(bucket: impl Into<String>) -> Self {
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

/// Counts the attempts of one request, so errors report the real number, and says on stderr
/// (a warning) when a transient failure is about to be retried: an unreachable endpoint is
/// otherwise many seconds of silence.
#[derive(Debug, Clone)]
struct Attempts {
    count: Arc<AtomicU32>,
    max: u32,
    what: Arc<str>,
}

impl Attempts {
    fn new(max: u32, op: &str, key: &str) -> Self {
        Attempts {
            count: Arc::new(AtomicU32::new(0)),
            max: max.max(1),
            what: if key.is_empty() {
                op.into()
            } else {
                format!("{op} {key}").into()
            },
        }
    }

    fn made(&self) -> u32 {
        self.count.load(Ordering::Relaxed)
    }

    fn text(&self) -> String {
        match self.made() {
            0 => "before any attempt".into(),
            1 => "after 1 attempt".into(),
            n => format!("after {n} attempts"),
        }
    }
}

impl Intercept for Attempts {
    fn name(&self) -> &'static str {
        "HoldfastAttempts"
    }

    fn read_before_attempt(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let n = self.made();
        if n >= self.max || !matches!(context.output_or_error(), Some(Err(_))) {
            return Ok(());
        }
        // Only what the retry policy retries: no answer at all, throttling, server errors.
        let status = context.response().map(|r| r.status().as_u16());
        if status.is_none_or(|s| s == 429 || s >= 500) {
            let why = match (status, context.output_or_error()) {
                (Some(s), _) => format!("HTTP {s}"),
                (None, Some(Err(e))) => error_chain(e),
                (None, _) => "no answer".into(),
            };
            tracing::warn!(
                "storage request {} failed ({why}); retrying (attempt {} of {})",
                self.what,
                n + 1,
                self.max
            );
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
    pub(crate) async fn connect(opts: S3Options) -> Self {
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

    /// Attempt tracking for one request.
    fn attempts(&self, op: &str, key: &str) -> Attempts {
        Attempts::new(self.opts.max_attempts, op, key)
    }

    fn error<E>(
        &self,
        key: &str,
        e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
        attempts: &Attempts,
    ) -> StorageError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let location = self.location();
        let tried = attempts.text();
        let request_id = |raw: &aws_sdk_s3::config::http::HttpResponse| {
            raw.headers()
                .get("x-amz-request-id")
                .map(|id| format!(", request id {id}"))
                .unwrap_or_default()
        };
        let (status, code, message, rid) = match &e {
            SdkError::ServiceError(se) => (
                Some(se.raw().status().as_u16()),
                se.err().code().map(str::to_owned),
                se.err().message().map(str::to_owned),
                request_id(se.raw()),
            ),
            // The store answered but the SDK could not read the answer: say why.
            SdkError::ResponseError(re) => (
                Some(re.raw().status().as_u16()),
                None,
                Some(error_chain(&e)),
                request_id(re.raw()),
            ),
            SdkError::TimeoutError(_) => {
                return StorageError::Unreachable {
                    location,
                    detail: format!(
                        "timed out {tried} (connect timeout {:?}, read timeout {:?}); check the endpoint and network, or raise connect_timeout/read_timeout",
                        self.opts.connect_timeout, self.opts.read_timeout
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
                    detail: format!("{what} {tried}: {}", error_chain(&e)),
                };
            }
            _ => (None, None, Some(error_chain(&e)), String::new()),
        };
        let http = status.map(|s| format!("HTTP {s}: ")).unwrap_or_default();
        let detail = match (&code, &message) {
            (Some(c), Some(m)) => format!("{http}{c}: {m}"),
            (Some(c), None) => format!("{http}{c}"),
            (None, Some(m)) => format!("{http}{m}"),
            (None, None) => status
                .map(|s| format!("HTTP {s}"))
                .unwrap_or_else(|| error_chain(&e)),
        };
        let detail = format!("{detail} ({tried}{rid})");
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
                source: std::io::Error::other(detail),
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
        let tries = self.attempts("CreateMultipartUpload", key);
        let upload = create
            .customize()
            .interceptor(tries.clone())
            .send()
            .await
            .map_err(|e| self.error(key, e, &tries))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let parts = match self.upload_parts(key, object, &upload_id, path, size).await {
            Ok(parts) => parts,
            Err(e) => {
                self.abort_upload(object, &upload_id).await;
                return Err(e);
            }
        };
        let count = parts.len();
        let tries = self.attempts("CompleteMultipartUpload", key);
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(&self.opts.bucket)
            .key(object)
            .upload_id(&upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .customize()
            .interceptor(tries.clone())
            .send()
            .await;
        let Err(e) = completed else {
            return Ok(());
        };
        // The store may have completed the upload and answered in a way the SDK refuses
        // (moto names the root element CompleteMultipartUploadResponse; other stores have
        // quirks of the same size), or the answer may have been lost. The object itself
        // says whether it is complete.
        let answered_ok = e.raw_response().is_some_and(|r| r.status().is_success());
        let quirk = error_chain(&e);
        if self.confirm_multipart(object, size, count).await {
            tracing::debug!(
                "storage quirk: CompleteMultipartUpload of {key} answered {} ({quirk});                  the object is confirmed complete by HeadObject ({size} bytes, {count} parts)",
                if answered_ok {
                    "success with a body this client cannot read"
                } else {
                    "an error"
                },
            );
            return Ok(());
        }
        // Never abort an upload the store reported complete: the object may yet appear.
        if !answered_ok {
            self.abort_upload(object, &upload_id).await;
        }
        Err(self.error(key, e, &tries))
    }

    /// Upload every part of `path`; the completed-part list in order.
    async fn upload_parts(
        &self,
        key: &str,
        object: &str,
        upload_id: &str,
        path: &Path,
        size: u64,
    ) -> Result<Vec<CompletedPart>, StorageError> {
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
            let tries = self.attempts("UploadPart", key);
            let out = self
                .client
                .upload_part()
                .bucket(&self.opts.bucket)
                .key(object)
                .upload_id(upload_id)
                .part_number(number)
                .body(body)
                .customize()
                .interceptor(tries.clone())
                .send()
                .await
                .map_err(|e| self.error(key, e, &tries))?;
            parts.push(
                CompletedPart::builder()
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .part_number(number)
                    .build(),
            );
            offset += len;
            number += 1;
        }
        Ok(parts)
    }

    /// Whether `object` exists as the completed multipart upload: the right size and, where
    /// the store uses S3's multipart ETag form (`"<md5>-<parts>"`), the right part count.
    /// Volume keys name their content's hash, so an object of that key and size is that
    /// content.
    async fn confirm_multipart(&self, object: &str, size: u64, parts: usize) -> bool {
        let head = self
            .client
            .head_object()
            .bucket(&self.opts.bucket)
            .key(object)
            .send()
            .await;
        let Ok(head) = head else {
            return false;
        };
        let size_ok = head
            .content_length()
            .is_some_and(|l| l >= 0 && l as u64 == size);
        let etag = head.e_tag().unwrap_or_default().trim_matches('"');
        let parts_ok = match etag.rsplit_once('-') {
            Some((_, n)) => n.parse::<usize>().is_ok_and(|n| n == parts),
            None => true,
        };
        size_ok && parts_ok
    }

    /// Leave no billable fragments behind; a purge also aborts stale uploads.
    async fn abort_upload(&self, object: &str, upload_id: &str) {
        let _ = self
            .client
            .abort_multipart_upload()
            .bucket(&self.opts.bucket)
            .key(object)
            .upload_id(upload_id)
            .send()
            .await;
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
        let tries = self.attempts("PutObject", key);
        req.customize()
            .interceptor(tries.clone())
            .send()
            .await
            .map_err(|e| self.error(key, e, &tries))?;
        Ok(())
    }

    /// Send a GET of an object (or of `(offset, len)` of it), retried by the SDK; the body
    /// is left to stream.
    async fn get_object(
        &self,
        key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, StorageError> {
        let mut req = self
            .client
            .get_object()
            .bucket(&self.opts.bucket)
            .key(self.object_key(key));
        if let Some((offset, len)) = range {
            req = req.range(format!("bytes={}-{}", offset, offset + len - 1));
        }
        let tries = self.attempts("GetObject", key);
        req.customize()
            .interceptor(tries.clone())
            .send()
            .await
            .map_err(|e| self.error(key, e, &tries))
    }

    /// GET an object (or a byte range). The SDK retries the request itself; a connection
    /// that breaks while the body streams in is retried here, with backoff.
    async fn fetch(&self, key: &str, range: Option<(u64, u64)>) -> Result<Bytes, StorageError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let out = self.get_object(key, range).await?;
            // Into one buffer of the expected size as the body streams in: collecting the
            // pieces and joining them held every large read twice.
            let expected = range
                .map(|(_, len)| len)
                .or(out.content_length().and_then(|l| u64::try_from(l).ok()))
                .unwrap_or(0);
            let body = match read_body(out.body, expected).await {
                Ok(b) => b,
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

/// A response body as it streams in; the download rate limit applies to each piece.
struct BodyPieces {
    body: Option<ByteStream>,
    storage: S3Storage,
    key: String,
}

impl BodyPieces {
    fn empty(storage: S3Storage, key: &str) -> Self {
        BodyPieces {
            body: None,
            storage,
            key: key.to_owned(),
        }
    }
}

#[async_trait]
impl super::Pieces for BodyPieces {
    async fn next_piece(&mut self) -> Option<Result<Bytes, StorageError>> {
        let piece = self.body.as_mut()?.next().await?;
        Some(match piece {
            Ok(b) => {
                if let Some(l) = &self.storage.download {
                    l.acquire(b.len() as u64).await;
                }
                Ok(b)
            }
            Err(e) => Err(self.storage.io(
                &self.key,
                std::io::Error::other(format!("download broke off: {e}")),
            )),
        })
    }
}

/// A response body, read into one buffer sized for `expected` bytes (more if more come).
async fn read_body(
    mut body: aws_sdk_s3::primitives::ByteStream,
    expected: u64,
) -> Result<Bytes, aws_sdk_s3::primitives::ByteStreamError> {
    let mut buf = Vec::with_capacity(usize::try_from(expected).unwrap_or(0).min(64 << 20));
    while let Some(piece) = body.next().await {
        buf.extend_from_slice(&piece?);
    }
    Ok(Bytes::from(buf))
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

    async fn get_range_pieces(
        &self,
        key: &str,
        offset: u64,
        len: u64,
    ) -> Result<Box<dyn super::Pieces>, StorageError> {
        if len == 0 {
            return Ok(Box::new(BodyPieces::empty(self.clone(), key)));
        }
        let out = self.get_object(key, Some((offset, len))).await?;
        Ok(Box::new(BodyPieces {
            body: Some(out.body),
            storage: self.clone(),
            key: key.to_owned(),
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StorageError> {
        let full = self.object_key(prefix);
        let strip = if self.opts.prefix.is_empty() {
            0
        } else {
            self.opts.prefix.len() + 1
        };
        let mut out = Vec::new();
        // Paged by hand so each page's request is counted and its retries reported.
        let mut token: Option<String> = None;
        loop {
            let tries = self.attempts("ListObjectsV2", prefix);
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.opts.bucket)
                .prefix(&full)
                .set_continuation_token(token.take())
                .customize()
                .interceptor(tries.clone())
                .send()
                .await
                .map_err(|e| self.error(prefix, e, &tries))?;
            for o in page.contents() {
                if let Some(k) = o.key() {
                    out.push(ObjectInfo {
                        key: k[strip.min(k.len())..].to_owned(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                    });
                }
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) && !t.is_empty() => {
                    token = Some(t.to_owned());
                }
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn enclosing_objects(&self, name: &str) -> Result<Vec<(String, Bytes)>, StorageError> {
        let mut found = Vec::new();
        if self.opts.prefix.is_empty() {
            return Ok(found);
        }
        // "a/b/c" is enclosed by "a/b", "a" and the bucket root.
        let parts: Vec<&str> = self.opts.prefix.split('/').collect();
        for n in (0..parts.len()).rev() {
            let outer = S3Storage {
                opts: S3Options {
                    prefix: parts[..n].join("/"),
                    ..self.opts.clone()
                },
                ..self.clone()
            };
            match outer.fetch(name, None).await {
                Ok(bytes) => found.push((outer.location(), bytes)),
                // Credentials scoped to this prefix may not read the ones around it.
                Err(StorageError::NotFound { .. } | StorageError::PermissionDenied { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(found)
    }

    async fn sample_entries(&self, limit: usize) -> Result<Vec<String>, StorageError> {
        // One page, not the whole prefix: a bucket may hold millions of objects.
        let tries = self.attempts("ListObjectsV2", "");
        let prefix = self.object_key("");
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.opts.bucket)
            .prefix(&prefix)
            .max_keys(i32::try_from(limit).unwrap_or(i32::MAX))
            .customize()
            .interceptor(tries.clone())
            .send()
            .await
            .map_err(|e| self.error("", e, &tries))?;
        Ok(out
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .map(|k| k[prefix.len().min(k.len())..].to_owned())
            .take(limit)
            .collect())
    }

    async fn stat(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let tries = self.attempts("HeadObject", key);
        match self
            .client
            .head_object()
            .bucket(&self.opts.bucket)
            .key(self.object_key(key))
            .customize()
            .interceptor(tries.clone())
            .send()
            .await
        {
            Ok(o) => Ok(Some(o.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) => match self.error(key, e, &tries) {
                StorageError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let tries = self.attempts("DeleteObject", key);
        self.client
            .delete_object()
            .bucket(&self.opts.bucket)
            .key(self.object_key(key))
            .customize()
            .interceptor(tries.clone())
            .send()
            .await
            .map_err(|e| self.error(key, e, &tries))?;
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
        let tries = self.attempts("HeadBucket", "");
        match self
            .client
            .head_bucket()
            .bucket(&self.opts.bucket)
            .customize()
            .interceptor(tries.clone())
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
            Err(e) => items.push(CheckItem::storage_error(
                "bucket",
                &self.error("", e, &tries),
            )),
        }
        if let Some(server) = self.last_server_date() {
            let skew = (chrono::Utc::now() - server).num_seconds();
            let detail = format!("local clock is {skew:+} s from the server's");
            // S3 refuses signatures more than 15 minutes off; warn well before that.
            if skew.abs() > 300 {
                items.push(CheckItem::error(
                    "clock",
                    crate::error_category::ErrorCategory::ClockSkew,
                    format!("{detail}: fix the time (NTP) before it passes 15 minutes"),
                ));
            } else {
                items.push(CheckItem::ok("clock", detail));
            }
        }
        items
    }
}
