//! Real S3 servers on loopback for tests (s3s-fs, moto), and a fault-injecting proxy.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // reason: test helpers

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const ACCESS_KEY: &str = "holdfast-test";
pub const SECRET_KEY: &str = "holdfast-test-secret";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within 30 s");
}

/// An S3 server process; killed on drop.
pub struct S3Server {
    child: Child,
    pub port: u16,
    pub root: Option<tempfile::TempDir>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Directory backing the bucket (s3s-fs only).
    pub fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.root.as_ref().unwrap().path().join(bucket)
    }
}

fn find_binary(name: &str) -> Option<PathBuf> {
    let from_env = std::env::var_os("HOLDFAST_S3S_FS")
        .map(PathBuf::from)
        .filter(|p| p.exists());
    from_env.or_else(|| {
        let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin").join(name));
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .map(|d| d.join(name))
            .chain(home)
            .find(|p| p.exists())
    })
}

/// Whether S3 tests must run (CI sets this; a missing server is then a failure).
fn required() -> bool {
    std::env::var_os("HOLDFAST_REQUIRE_S3").is_some()
}

/// Start s3s-fs with one bucket, or `None` (with one line on stderr) when it is not
/// installed and not required.
pub fn s3s_fs(bucket: &str) -> Option<S3Server> {
    let Some(bin) = find_binary("s3s-fs") else {
        assert!(
            !required(),
            "HOLDFAST_REQUIRE_S3 is set but s3s-fs is not installed"
        );
        eprintln!(
            "SKIP: s3s-fs not installed (cargo install s3s-fs --version 0.14.1 --features binary --locked)"
        );
        return None;
    };
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join(bucket)).unwrap();
    let port = free_port();
    let mut child = Command::new(bin)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            SECRET_KEY,
        ])
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port, &mut child, "s3s-fs");
    Some(S3Server {
        child,
        port,
        root: Some(root),
    })
}

/// Start moto's server with one bucket, or `None` when moto is not installed.
pub fn moto(bucket: &str) -> Option<S3Server> {
    let ok = Command::new("python3")
        .args(["-c", "import moto.server"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIP: moto not installed (python3 -m pip install 'moto[server]')");
        return None;
    }
    let port = free_port();
    let mut child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port, &mut child, "moto");
    // moto accepts unsigned bucket creation.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200"),
        "bucket creation: {reply}"
    );
    Some(S3Server {
        child,
        port,
        root: None,
    })
}

/// Which fault to inject into one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    SlowDown,
    InternalError,
    /// Close the connection without answering.
    Reset,
    /// Say nothing for longer than the client's read timeout.
    Stall,
    /// Send half of the upstream response, then close.
    Truncate,
    /// Refuse with 403 AccessDenied.
    Forbidden,
}

/// A change the proxy makes to every CompleteMultipartUpload answer, as S3-compatible stores
/// with quirks would send it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    None,
    /// moto's answer: the root element is `CompleteMultipartUploadResponse` where AWS
    /// sends `CompleteMultipartUploadResult`.
    MotoCompleteRoot,
    /// A 200 whose body is not XML at all.
    GarbageCompleteBody,
}

/// Fault counters.
#[derive(Debug, Default)]
pub struct FaultStats {
    pub requests: AtomicU64,
    /// GETs of an object (listings not counted), and of those the ranged ones.
    pub object_gets: AtomicU64,
    pub ranged_gets: AtomicU64,
    pub faults: AtomicU64,
    /// Completion answers rewritten.
    pub rewritten: AtomicU64,
    /// AbortMultipartUpload requests seen.
    pub aborts: AtomicU64,
}

/// A TCP proxy speaking just enough HTTP/1.1 to fault individual requests: each request
/// goes to the server on a fresh connection (`Connection: close`), so faults hit requests,
/// not connections.
pub struct FaultProxy {
    pub port: u16,
    pub stats: Arc<FaultStats>,
    stop: Arc<AtomicBool>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

impl FaultProxy {
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Proxy to `upstream`, faulting each request with probability `rate` (0–1), choosing
    /// among `kinds` round-robin; `stall` is how long a stall lasts.
    pub fn start(upstream: u16, rate: f64, kinds: &[Fault], stall: Duration) -> Self {
        Self::start_with(upstream, rate, kinds, stall, Rewrite::None)
    }

    /// Proxy to `upstream`, rewriting completion answers (no faults).
    pub fn rewriting(upstream: u16, rewrite: Rewrite) -> Self {
        Self::start_with(upstream, 0.0, &[], Duration::ZERO, rewrite)
    }

    pub fn start_with(
        upstream: u16,
        rate: f64,
        kinds: &[Fault],
        stall: Duration,
        rewrite: Rewrite,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stats = Arc::new(FaultStats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let kinds = kinds.to_vec();
        let (st, sp) = (stats.clone(), stop.clone());
        std::thread::spawn(move || {
            let counter = Arc::new(AtomicU64::new(0));
            for conn in listener.incoming() {
                if sp.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (st, kinds, counter) = (st.clone(), kinds.clone(), counter.clone());
                std::thread::spawn(move || {
                    serve(conn, upstream, rate, &kinds, stall, rewrite, &st, &counter)
                });
            }
        });
        FaultProxy { port, stats, stop }
    }
}

/// Deterministic pseudo-random decision per request number.
fn roll(n: u64) -> f64 {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut content_length = 0usize;
    let mut chunked = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            content_length = v.trim().parse().ok()?;
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if lower.starts_with("connection:") {
            continue;
        }
        if line == "\r\n" {
            head.extend_from_slice(b"Connection: close\r\n\r\n");
            break;
        }
        head.extend_from_slice(line.as_bytes());
    }
    if chunked {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).ok()?;
            head.extend_from_slice(size_line.as_bytes());
            let size = usize::from_str_radix(size_line.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0u8; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            head.extend_from_slice(&chunk);
            if size == 0 {
                break;
            }
        }
    } else {
        let mut body = vec![0u8; content_length];
        reader.read_exact(&mut body).ok()?;
        head.extend_from_slice(&body);
    }
    Some(head)
}

fn error_response(status: &str, code: &str) -> String {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
    );
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Apply `rewrite` to a whole upstream response, fixing its Content-Length.
fn rewrite_response(resp: &[u8], rewrite: Rewrite) -> Vec<u8> {
    let Some(split) = resp.windows(4).position(|w| w == b"\r\n\r\n") else {
        return resp.to_vec();
    };
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    if !head.starts_with("HTTP/1.1 200") {
        return resp.to_vec();
    }
    let raw = &resp[split + 4..];
    let raw = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(raw)
    } else {
        raw.to_vec()
    };
    let body = String::from_utf8_lossy(&raw).into_owned();
    let body = match rewrite {
        Rewrite::None => body,
        Rewrite::MotoCompleteRoot => body.replace(
            "CompleteMultipartUploadResult",
            "CompleteMultipartUploadResponse",
        ),
        Rewrite::GarbageCompleteBody => "this is not the XML you are looking for".into(),
    };
    let mut out = String::new();
    for line in head.split("\r\n") {
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("content-length:") || lower.starts_with("transfer-encoding:") {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    out.push_str(&body);
    out.into_bytes()
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&data[..eol])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 || data.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[(eol + 4 + size).min(data.len())..];
    }
    out
}

#[allow(clippy::too_many_arguments)] // reason: test proxy, every knob is one request's
fn serve(
    client: TcpStream,
    upstream: u16,
    rate: f64,
    kinds: &[Fault],
    stall: Duration,
    rewrite: Rewrite,
    stats: &FaultStats,
    counter: &AtomicU64,
) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut client = client;
    let Some(request) = read_request(&mut reader) else {
        return;
    };
    let first_line =
        String::from_utf8_lossy(&request[..request.iter().position(|b| *b == b'\n').unwrap_or(0)])
            .into_owned();
    if first_line.starts_with("DELETE ") && first_line.contains("uploadId=") {
        stats.aborts.fetch_add(1, Ordering::Relaxed);
    }
    if rewrite != Rewrite::None
        && first_line.starts_with("POST ")
        && first_line.contains("uploadId=")
    {
        // A completion: let it complete upstream, then answer as the quirky store would.
        let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) else {
            return;
        };
        let _ = up.write_all(&request);
        let mut resp = Vec::new();
        let _ = up.read_to_end(&mut resp);
        stats.rewritten.fetch_add(1, Ordering::Relaxed);
        let _ = client.write_all(&rewrite_response(&resp, rewrite));
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let n = stats.requests.fetch_add(1, Ordering::Relaxed);
    if first_line.starts_with("GET ") && !first_line.contains("list-type") {
        stats.object_gets.fetch_add(1, Ordering::Relaxed);
        let head = String::from_utf8_lossy(&request).to_ascii_lowercase();
        if head.contains("\r\nrange:") {
            stats.ranged_gets.fetch_add(1, Ordering::Relaxed);
        }
    }
    if roll(n) < rate && !kinds.is_empty() {
        let k = counter.fetch_add(1, Ordering::Relaxed) as usize % kinds.len();
        stats.faults.fetch_add(1, Ordering::Relaxed);
        match kinds[k] {
            Fault::SlowDown => {
                let _ = client.write_all(error_response("503 Slow Down", "SlowDown").as_bytes());
            }
            Fault::InternalError => {
                let _ = client.write_all(
                    error_response("500 Internal Server Error", "InternalError").as_bytes(),
                );
            }
            Fault::Forbidden => {
                let _ =
                    client.write_all(error_response("403 Forbidden", "AccessDenied").as_bytes());
            }
            Fault::Reset => {}
            Fault::Stall => std::thread::sleep(stall),
            Fault::Truncate => {
                if let Ok(mut up) = TcpStream::connect(("127.0.0.1", upstream)) {
                    let _ = up.write_all(&request);
                    let mut resp = Vec::new();
                    let _ = up.read_to_end(&mut resp);
                    let _ = client.write_all(&resp[..resp.len() * 2 / 3]);
                }
            }
        }
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let Ok(up) = TcpStream::connect(("127.0.0.1", upstream)) else {
        return;
    };
    let mut up_reader = BufReader::new(up.try_clone().unwrap());
    let mut up = up;
    if up.write_all(&request).is_err() {
        return;
    }
    // Tell the client this connection ends with the response, so it never reuses it.
    let mut status = String::new();
    if up_reader.read_line(&mut status).is_err() {
        return;
    }
    let _ = client.write_all(status.as_bytes());
    let _ = client.write_all(b"Connection: close\r\n");
    let _ = std::io::copy(&mut up_reader, &mut client);
    let _ = client.shutdown(Shutdown::Both);
}
