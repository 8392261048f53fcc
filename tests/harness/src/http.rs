//! The host side of the Linux workload's TCP transfers: a small HTTP/1.0 server that
//! the guest's busybox `wget` talks to over the tap.
//!
//! - `GET /blob` answers `BLOB_LEN` pseudo-random bytes (the same every run);
//! - `GET /blob.sha256` answers their sha256 in hex, so the guest can check its copy;
//! - `POST /upload` reads the body and answers its sha256 in hex.
//!
//! Every request is recorded with how long its transfer took, measured from the
//! accepted connection to the last byte (for a download: until the guest closed the
//! connection, so the bytes have left the socket buffers).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Size of `/blob`: 1 MiB.
pub const BLOB_LEN: usize = 1 << 20;

/// The sha256 of `data` in lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The contents of `/blob`: xorshift64 output, so that no compression or
/// deduplication anywhere could make the transfer cheaper than its size.
pub fn blob() -> Vec<u8> {
    let mut x: u64 = 0x5eed_5a4d_766d_0001;
    let mut out = Vec::with_capacity(BLOB_LEN);
    while out.len() < BLOB_LEN {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

/// One request the server answered.
#[derive(Clone, Debug)]
pub struct Transfer {
    pub method: String,
    pub path: String,
    /// Body bytes received (POST) or sent (GET).
    pub bytes: usize,
    /// sha256 of those bytes.
    pub sha256: String,
    pub elapsed: Duration,
}

impl Transfer {
    /// KiB/s over the whole transfer.
    pub fn kib_per_s(&self) -> f64 {
        self.bytes as f64 / 1024.0 / self.elapsed.as_secs_f64()
    }
}

/// A running server; stops on drop.
pub struct HttpServer {
    pub port: u16,
    pub transfers: Arc<Mutex<Vec<Transfer>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Serves on `listener` (already bound, possibly in another network namespace),
    /// one connection at a time, until dropped.
    pub fn start(listener: TcpListener) -> HttpServer {
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let transfers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (transfers, stop) = (transfers.clone(), stop.clone());
            thread::spawn(move || {
                let blob = blob();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => match serve(conn, &blob) {
                            Ok(t) => transfers.lock().unwrap().push(t),
                            Err(e) => eprintln!("http server: {e}"),
                        },
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(20))
                        }
                        Err(e) => panic!("accept: {e}"),
                    }
                }
            })
        };
        HttpServer {
            port,
            transfers,
            stop,
            thread: Some(thread),
        }
    }

    /// The requests answered so far.
    pub fn transfers(&self) -> Vec<Transfer> {
        self.transfers.lock().unwrap().clone()
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(conn: TcpStream, blob: &[u8]) -> std::io::Result<Transfer> {
    let start = Instant::now();
    conn.set_nonblocking(false)?;
    // A guest that stops half-way must not hang the test.
    conn.set_read_timeout(Some(Duration::from_secs(120)))?;
    conn.set_write_timeout(Some(Duration::from_secs(120)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    let mut words = request.split_whitespace();
    let method = words.next().unwrap_or_default().to_string();
    let path = words.next().unwrap_or_default().to_string();
    let mut content_length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                content_length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let (status, body, bytes, sha256) = match (method.as_str(), path.as_str()) {
        ("GET", "/blob") => ("200 OK", blob.to_vec(), blob.len(), sha256_hex(blob)),
        ("GET", "/blob.sha256") => {
            let hex = sha256_hex(blob);
            ("200 OK", hex.clone().into_bytes(), 0, hex)
        }
        ("POST", "/upload") => {
            let mut data = vec![0; content_length];
            reader.read_exact(&mut data)?;
            let hex = sha256_hex(&data);
            ("200 OK", hex.clone().into_bytes(), data.len(), hex)
        }
        _ => ("404 Not Found", Vec::new(), 0, String::new()),
    };
    let mut conn = conn;
    write!(
        conn,
        "HTTP/1.0 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    conn.write_all(&body)?;
    conn.shutdown(std::net::Shutdown::Write)?;
    // Wait for the guest to close its end: then it has read everything.
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    Ok(Transfer {
        method,
        path,
        bytes,
        sha256,
        elapsed: start.elapsed(),
    })
}
