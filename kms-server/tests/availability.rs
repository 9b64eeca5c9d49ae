//! The service under hostile clients: slow headers (slowloris), slow bodies, idle keep-alive
//! connections, more connections than allowed, oversized heads and parameter floods. Each
//! failure mode is bounded by a limit, and a well-behaved client is still served.
#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use kms_server::config::ConnectionLimits;

fn server_with(limits: ConnectionLimits) -> TestServer {
    TestServer::start_with(move |s, _| s.connections = limits)
}

fn short_limits() -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_secs(2),
        body_read_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(2),
        ..ConnectionLimits::default()
    }
}

/// Reads until the server closes the connection (or `limit` passes); true when it closed.
fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true, // reset
        }
    }
}

fn key(server: &TestServer) -> String {
    call_ok(server, "CreateKey", &[])["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn slow_headers_are_cut_off_and_do_not_starve_other_clients() {
    let server = server_with(short_limits());
    let key = key(&server);
    // 2,000 connections each sending half a request head and then nothing.
    let mut slow: Vec<TcpStream> = (0..2000)
        .map(|_| {
            let mut s = TcpStream::connect(server.addr).unwrap();
            s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    // A well-behaved client is served meanwhile.
    let started = Instant::now();
    let r = V3Request::new("Encrypt", &[("KeyId", &key), ("Plaintext", "aGk=")]).send(&server);
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    eprintln!("Encrypt beside 2,000 slow-header connections: {took:?}");
    // The slow ones are closed once their headers are overdue.
    for s in slow.iter_mut().take(20) {
        assert!(closed_by_server(s, Duration::from_secs(15)));
    }
}

#[test]
fn a_slow_body_is_answered_408_when_overdue() {
    let server = server_with(short_limits());
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 100\r\n\r\nAction=",
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let r = parse_response(&raw);
    assert_eq!(r.status, 408);
    assert_eq!(r.error_code(), "RequestTimeout");
}

#[test]
fn an_idle_keep_alive_connection_is_closed() {
    let server = server_with(short_limits());
    // Never sends a byte.
    let mut silent = TcpStream::connect(server.addr).unwrap();
    assert!(closed_by_server(&mut silent, Duration::from_secs(15)));
    // Idle after a request: closed too.
    let mut used = TcpStream::connect(server.addr).unwrap();
    let req = V3Request::new("DescribeRegions", &[]);
    let mut head = format!("POST {} HTTP/1.1\r\n", req.target());
    for (n, v) in req.signed_headers(&server.host()) {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("content-length: 0\r\n\r\n");
    used.write_all(head.as_bytes()).unwrap();
    assert!(closed_by_server(&mut used, Duration::from_secs(15)));
}

#[test]
fn connections_past_the_maximum_are_closed_at_once() {
    let server = server_with(ConnectionLimits {
        max_connections: 8,
        ..ConnectionLimits::default()
    });
    let held: Vec<TcpStream> = (0..8)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    // Let the server accept them all.
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = TcpStream::connect(server.addr).unwrap();
    assert!(closed_by_server(&mut extra, Duration::from_secs(5)));
    drop(held);
    std::thread::sleep(Duration::from_millis(300));
    call_ok(&server, "DescribeRegions", &[]);
}

#[test]
fn an_oversized_head_is_refused() {
    let server = server_with(ConnectionLimits::default());
    let mut s = TcpStream::connect(server.addr).unwrap();
    let big = "a".repeat(100 * 1024);
    let _ = s.write_all(format!("POST / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes());
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    assert!(
        raw.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{}",
        &text[..text.len().min(200)]
    );
    // Just over the limit, in one piece.
    let mut s = TcpStream::connect(server.addr).unwrap();
    let limit = ConnectionLimits::default().max_header_bytes;
    let pad = "b".repeat(limit);
    s.write_all(format!("POST / HTTP/1.1\r\nHost: x\r\nX-Pad: {pad}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").as_bytes())
        .unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert!(
        raw.is_empty() || raw.starts_with(b"HTTP/1.1 431"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
}

#[test]
fn a_parameter_flood_is_refused_before_authentication() {
    let server = TestServer::start();
    // Far more names than any request needs, well within the body limit.
    let body: String = (0..5_000)
        .map(|i| format!("p{i}="))
        .collect::<Vec<_>>()
        .join("&");
    let headers = vec![(
        "content-type".to_owned(),
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let r = send(server.addr, "POST", "/", &headers, body.as_bytes());
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "InvalidParameter");
    assert!(r.json()["Message"]
        .as_str()
        .unwrap()
        .contains(&kms_server::request::MAX_PARAMETERS.to_string()));
}

#[test]
fn a_rate_limited_key_is_throttled_and_other_keys_are_not() {
    let server = TestServer::start_with(|s, _| {
        s.rate_limits = kms_server::ratelimit::RateLimits {
            management: Some(3.0),
            ..Default::default()
        };
    });
    let mut codes = Vec::new();
    for _ in 0..6 {
        let r = V3Request::new("ListKeys", &[]).send(&server);
        codes.push(r.status);
        if r.status == 429 {
            assert_eq!(r.error_code(), "Throttling.User");
        }
    }
    assert!(codes.contains(&429), "{codes:?}");
    assert_eq!(codes[0], 200);
    // Symmetric cryptography has no quota here, and another key has buckets of its own.
    let mut other = V3Request::new("DescribeRegions", &[]);
    other.access_key_id = "ak-alice".into();
    other.secret = "sk-alice".into();
    assert_ne!(other.send(&server).status, 429);
}

#[test]
fn health_answers_without_authentication_and_metrics_only_when_enabled() {
    let server = TestServer::start();
    let r = send(server.addr, "GET", "/health", &[], b"");
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["store"], "ok");
    assert_eq!(v["rootKey"], "loaded");
    let r = send(server.addr, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 404, "metrics are off by default");
    drop(server);

    let server = TestServer::start_with(|s, _| s.metrics = true);
    call_ok(&server, "CreateKey", &[]);
    let r = V3Request::new("MakeCoffee", &[]).send(&server);
    assert_eq!(r.status, 404);
    let r = send(server.addr, "GET", "/metrics", &[], b"");
    assert_eq!(r.status, 200);
    let text = String::from_utf8(r.body).unwrap();
    for needle in [
        "kms_requests_total{action=\"CreateKey\",code=\"OK\"} 1",
        // A name the client made up is not a label value.
        "kms_requests_total{action=\"unknown\",code=\"InvalidAction.NotFound\"} 1",
        "kms_request_duration_seconds_bucket{",
        "kms_open_connections ",
        "kms_key_cache_keys ",
        "kms_maintenance_runs_total ",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
    assert!(!text.contains("MakeCoffee"));
}

#[test]
fn the_header_timeout_counts_from_the_first_byte_even_when_the_idle_timeout_is_longer() {
    let server = server_with(ConnectionLimits {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(60),
        ..ConnectionLimits::default()
    });
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n").unwrap();
    // Well before the idle timeout (and hyper's backstop of both together).
    assert!(closed_by_server(&mut s, Duration::from_secs(20)));
}
