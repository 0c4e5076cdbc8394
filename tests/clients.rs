//! Slow and abusive clients, through real sockets: header deadline
//! (slowloris), idle keep-alive deadline, header size, URL length and the
//! cap on open connections. (The body deadline of uploads is in uploads.rs:
//! `stalled_body_times_out`.)

mod common;

use std::time::{Duration, Instant};

use common::{Server, parse_response, raw_request};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PHOTO: &str = "photo_4032x3024_orient1.jpg";

fn server(config: &str) -> Server {
    let s = Server::builder().config(config).start();
    s.put_corpus(PHOTO, "p.jpg");
    s
}

async fn connect(s: &Server) -> TcpStream {
    TcpStream::connect(s.base.trim_start_matches("http://"))
        .await
        .unwrap()
}

/// Reads until the peer closes (or 20 s pass); how long that took.
async fn until_closed(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let started = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(20), stream.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => panic!("connection still open after 20 s"),
        }
    }
    (buf, started.elapsed())
}

#[tokio::test]
async fn slowloris_headers_are_cut_off_at_the_header_deadline() {
    let s = server("[server]\nheader_read_timeout_secs = 1\nidle_timeout_secs = 30\n");
    let mut c = connect(&s).await;
    // One header line every 300 ms, never finishing: closed after ~1 s,
    // although the connection is never idle for long.
    c.write_all(b"GET /p.jpg HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    for i in 0..20 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if c.write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
            .await
            .is_err()
        {
            closed = true;
            break;
        }
        let mut probe = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(1), c.read(&mut probe)).await
        {
            closed = true;
            break;
        }
    }
    assert!(closed, "slow headers were never cut off");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // The server itself is fine.
    assert_eq!(s.get("/p.jpg?w=32").await.status(), 200);
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed_after_the_idle_deadline() {
    let s = server("[server]\nheader_read_timeout_secs = 30\nidle_timeout_secs = 1\n");
    let mut c = connect(&s).await;
    c.write_all(b"GET /p.jpg?w=16 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (buf, took) = until_closed(&mut c).await;
    assert_eq!(parse_response(&buf).0, 200);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );

    // A connection that never sends anything is idle too.
    let mut silent = connect(&s).await;
    let (buf, took) = until_closed(&mut silent).await;
    assert!(buf.is_empty());
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn a_keep_alive_connection_in_use_is_not_cut_by_the_header_deadline() {
    // Header deadline 1 s, idle 30 s: a client that pauses 1.5 s between
    // requests keeps its connection (hyper's own timer would have closed it).
    let s = server("[server]\nheader_read_timeout_secs = 1\nidle_timeout_secs = 30\n");
    let mut c = connect(&s).await;
    for _ in 0..2 {
        c.write_all(b"HEAD /p.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(parse_response(&buf[..n]).0, 200);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
}

#[tokio::test]
async fn oversized_headers_answer_431() {
    let s = server("[server]\nmax_header_bytes = 8192\n");
    let big = "a".repeat(9000);
    let (status, _) = raw_request(
        &s.base,
        &format!("GET /p.jpg HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 431);
    // Just under the limit is fine.
    let ok = "a".repeat(7000);
    let (status, _) = raw_request(
        &s.base,
        &format!("HEAD /p.jpg HTTP/1.1\r\nHost: x\r\nX-Big: {ok}\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn long_urls_answer_414() {
    let s = server("[server]\nmax_url_bytes = 1024\n");
    let res = s
        .get(&format!("/p.jpg?w=16&pad={}", "x".repeat(1100)))
        .await;
    assert_eq!(res.status(), 414);
    assert_eq!(res.text().await.unwrap(), "URI Too Long");
    let res = s.get(&format!("/p.jpg?w=16&pad={}", "x".repeat(900))).await;
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn connections_over_the_cap_get_503_and_the_rest_keep_working() {
    let s = server("[server]\nmax_connections = 3\n");
    // Three open keep-alive connections, each with one answered request.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut c = connect(&s).await;
        c.write_all(b"HEAD /p.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = c.read(&mut buf).await.unwrap();
        assert_eq!(parse_response(&buf[..n]).0, 200);
        held.push(c);
    }
    // A fourth is refused with a complete 503 answer.
    let mut extra = connect(&s).await;
    extra
        .write_all(b"GET /p.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (buf, _) = until_closed(&mut extra).await;
    let text = String::from_utf8_lossy(&buf);
    assert_eq!(parse_response(&buf), (503, "Too Many Connections".into()));
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1"),
        "{text}"
    );
    // The held ones still work; closing one frees a place.
    held[0]
        .write_all(b"HEAD /p.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = held[0].read(&mut buf).await.unwrap();
    assert_eq!(parse_response(&buf[..n]).0, 200);
    drop(held.pop());
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (status, _) = raw_request(
            &s.base,
            "HEAD /p.jpg HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
        .await;
        if status == 200 {
            ok = true;
            break;
        }
    }
    assert!(ok, "a freed place was never reused");
    drop(held);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(s.metric("mediaedge_connections_refused_total", &[]).await >= 1.0);
}

/// A connection from `source` (any 127.x address is this machine) to the server.
async fn connect_from(s: &Server, source: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    socket
        .connect(s.base.trim_start_matches("http://").parse().unwrap())
        .await
        .unwrap()
}

/// One request on `c` (kept open), its status.
async fn head_on(c: &mut TcpStream) -> u16 {
    if c.write_all(b"HEAD /p.jpg HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return 0;
    }
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(5), c.read(&mut buf)).await {
        Ok(Ok(n)) if n > 0 => parse_response(&buf[..n]).0,
        _ => 0,
    }
}

/// Issue 14, item 7: 40 sockets from one address, each sending a cheap
/// request now and then, kept every other client on `503 Too Many
/// Connections` with `max_connections = 40`. Now one address holds at most
/// `max_connections_per_ip`; its next one is refused and the others (the
/// legitimate client, a trusted proxy speaking for many) still get in.
#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let s = server(
        "[server]\nmax_connections = 40\nmax_connections_per_ip = 10\ntrusted_proxies = [\"127.0.0.3\"]\n",
    );
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..40 {
        let mut c = connect_from(&s, "127.0.0.2").await;
        match head_on(&mut c).await {
            200 => held.push(c),
            _ => refused += 1,
        }
    }
    assert_eq!((held.len(), refused), (10, 30));
    // The attacker keeps its ten busy; a legitimate client still gets in.
    for c in held.iter_mut() {
        assert_eq!(head_on(c).await, 200);
    }
    assert_eq!(s.get("/p.jpg?w=32").await.status(), 200);
    // A trusted proxy is not one client: 15 connections from it are fine.
    let mut proxy = Vec::new();
    for _ in 0..15 {
        let mut c = connect_from(&s, "127.0.0.3").await;
        assert_eq!(head_on(&mut c).await, 200);
        proxy.push(c);
    }
    assert_eq!(
        s.metric("mediaedge_connections_refused_total", &[("cap", "per_ip")])
            .await,
        30.0
    );
}
