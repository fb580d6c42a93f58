//! A bounded denial-of-service load test on loopback against the real
//! `modeltrail serve` with its default limits: many concurrent large posts
//! (at the batch cap, and over it), stalled connections (half-sent heads and
//! half-sent bodies) and idle keep-alive connections, while a probe asks
//! `/healthz` every 100 ms on a new connection.
//!
//! It asserts that the server's peak RSS (`VmHWM` in /proc/<pid>/status)
//! stays within the 200 MB target and that every probe was answered 200; it
//! prints the probes' latencies (not asserted: the machine is shared).
//! Runs 4 s by default so CI stays short; `MODELTRAIL_DOS_SECS=60` by hand.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use common::{Server, scratch};

const POSTERS: usize = 40;
const OVERSIZE_POSTERS: usize = 8;
const STALLED: usize = 150;
const IDLE: usize = 150;
const RSS_LIMIT_KB: u64 = 200 * 1000;

fn vm_hwm_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

fn connect(addr: &str) -> Option<TcpStream> {
    let s = TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    s.set_write_timeout(Some(Duration::from_secs(30))).ok()?;
    Some(s)
}

/// Reads until the server closes or a whole head arrives; the status, if any.
fn status_of(stream: &mut TcpStream) -> Option<u16> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&buf)
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Posts one body of `len` bytes of JSON whitespace (or declares `len` and
/// sends nothing when `oversize`); the status, if the server answered.
fn post_large(addr: &str, len: usize, oversize: bool) -> Option<u16> {
    let mut s = connect(addr)?;
    let head = format!(
        "POST /v1/entries HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).ok()?;
    if !oversize {
        let chunk = vec![b' '; 64 << 10];
        let mut sent = 0;
        while sent < len {
            let n = chunk.len().min(len - sent);
            // The server may answer (503) and close before the body is sent.
            if s.write_all(&chunk[..n]).is_err() {
                break;
            }
            sent += n;
        }
    }
    status_of(&mut s)
}

#[test]
fn the_server_stays_small_and_healthy_under_connection_and_body_floods() {
    let secs: u64 = std::env::var("MODELTRAIL_DOS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let dir = scratch("dos");
    common::init(&dir, &["--origin", "dos.example.test/log"]);
    let server = Server::start(&dir);
    let addr = server.base.strip_prefix("http://").unwrap().to_owned();
    let pid = server.pid();
    let start_kb = vm_hwm_kb(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(AtomicU64::new(0));
    let busy = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();

    // Large posts at the cap (8 MiB) and declared over it.
    for i in 0..POSTERS + OVERSIZE_POSTERS {
        let (addr, stop, answered, busy) =
            (addr.clone(), stop.clone(), answered.clone(), busy.clone());
        threads.push(std::thread::spawn(move || {
            let oversize = i >= POSTERS;
            let len = if oversize { 1 << 30 } else { 8 << 20 };
            while !stop.load(Relaxed) {
                match post_large(&addr, len, oversize) {
                    Some(503) => busy.fetch_add(1, Relaxed),
                    Some(_) => answered.fetch_add(1, Relaxed),
                    None => 0,
                };
            }
        }));
    }
    // Stalled: half-sent heads and half-sent bodies, reopened when closed.
    for i in 0..STALLED {
        let (addr, stop) = (addr.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                let Some(mut s) = connect(&addr) else {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                let part: &[u8] = if i % 2 == 0 {
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: "
                } else {
                    b"POST /add HTTP/1.1\r\nHost: x\r\nContent-Length: 60000\r\n\r\n{\"kind\""
                };
                let _ = s.write_all(part);
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
                let mut buf = [0u8; 256];
                // Hold it until the server closes it or the test ends.
                while !stop.load(Relaxed) {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(_) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(_) => break,
                    }
                }
            }
        }));
    }
    // Idle: connections that send nothing, held open.
    let idle: Vec<TcpStream> = (0..IDLE).filter_map(|_| connect(&addr)).collect();

    // The probe.
    let mut latencies = Vec::new();
    let mut failures = Vec::new();
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        let t = Instant::now();
        let status = connect(&addr).and_then(|mut s| {
            s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .ok()?;
            status_of(&mut s)
        });
        let spent = t.elapsed();
        match status {
            Some(200) => latencies.push(spent),
            other => failures.push((t, other)),
        }
        std::thread::sleep(Duration::from_millis(100).saturating_sub(spent));
    }
    let peak_kb = vm_hwm_kb(pid);
    stop.store(true, Relaxed);
    drop(idle);
    for t in threads {
        t.join().unwrap();
    }
    latencies.sort();
    let max = latencies.last().copied().unwrap_or_default();
    let median = latencies
        .get(latencies.len() / 2)
        .copied()
        .unwrap_or_default();
    eprintln!(
        "dos: {secs} s; {} healthz probes answered, {} failed; latency median {median:?}, max {max:?}; \
         {} large posts answered, {} refused 503; server VmHWM {} kB (at start {start_kb} kB)",
        latencies.len(),
        failures.len(),
        answered.load(Relaxed),
        busy.load(Relaxed),
        peak_kb
    );
    assert!(failures.is_empty(), "healthz probes failed: {failures:?}");
    assert!(!latencies.is_empty());
    assert!(
        peak_kb <= RSS_LIMIT_KB,
        "server peak RSS {peak_kb} kB > {RSS_LIMIT_KB} kB"
    );
    // The server still serves normally afterwards.
    assert_eq!(server.client().get("/healthz").status, 200);
}
