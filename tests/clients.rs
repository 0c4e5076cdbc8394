//! Slow and abusive clients, through real sockets: header deadline
//! (slowloris), idle keep-alive deadline, header size, URL length and the
//! cap on open connections; and slow but honest clients the deadlines must
//! not cut: long downloads read slowly over HTTP/1.1 and over h2c, where the
//! client's WINDOW_UPDATE frames arrive while a body is being sent, and a
//! video seek (ranges on one h2 connection). A client that stops reading
//! is cut after the idle deadline. (The body deadline of uploads is in
//! uploads.rs: `stalled_body_times_out`.)

mod common;

use std::time::{Duration, Instant};

use axum::http::Request;
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

/// Header deadline 1 s, idle deadline 30 s: a download cut by the header
/// deadline stops about a second in.
const SLOW_READS: &str = "[server]\nheader_read_timeout_secs = 1\nidle_timeout_secs = 30\n";
/// Idle deadline 1 s: a stalled download is cut about a second after it stalls.
const QUICK_IDLE: &str = "[server]\nheader_read_timeout_secs = 30\nidle_timeout_secs = 1\n";
/// Larger than anything the server keeps in memory (originals over 8 MB are
/// streamed from the store) and than the socket buffers on both sides.
const BIG: usize = 60 << 20;

/// `len` bytes that start like an MP4 file (so the server serves them as
/// `video/mp4`), the rest pseudo-random: a byte served from the wrong
/// offset does not match.
fn fake_video(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    out.extend_from_slice(b"\0\0\0\x18ftypmp42\0\0\0\0mp42isom");
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn h2_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap()
}

/// Reads `res` until `want` bytes (or the end) have arrived, at about
/// `rate` bytes a second. What arrived, or where and why it stopped.
async fn read_paced(
    res: &mut reqwest::Response,
    want: usize,
    rate: f64,
) -> Result<Vec<u8>, String> {
    let started = tokio::time::Instant::now();
    let mut got = Vec::new();
    while got.len() < want {
        match res.chunk().await {
            Ok(Some(chunk)) => got.extend_from_slice(&chunk),
            Ok(None) => break,
            Err(e) => {
                return Err(format!(
                    "stopped after {} bytes, {:?} in: {e:?}",
                    got.len(),
                    started.elapsed()
                ));
            }
        }
        let due = started + Duration::from_secs_f64(got.len() as f64 / rate);
        tokio::time::sleep_until(due).await;
    }
    Ok(got)
}

fn header<'a>(res: &'a reqwest::Response, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .unwrap_or_else(|| panic!("missing header {name}"))
        .to_str()
        .unwrap()
}

/// Compares without printing 60 MB on a mismatch.
fn assert_same(got: &[u8], want: &[u8], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!("{what}: first differing byte at {at}");
    }
}

#[tokio::test]
async fn a_large_slow_h2_download_arrives_whole() {
    // The client's WINDOW_UPDATE frames arrive while the body is being sent:
    // they are not the first bytes of a new request.
    let s = Server::builder().config(SLOW_READS).start();
    let video = fake_video(BIG);
    s.put("big.mp4", &video);
    let mut res = h2_client().get(s.url("/big.mp4")).send().await.unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    assert_eq!(res.content_length(), Some(BIG as u64));
    let started = Instant::now();
    // About 5 s in all: five times the header deadline.
    let got = read_paced(&mut res, usize::MAX, BIG as f64 / 5.0)
        .await
        .unwrap_or_else(|e| panic!("h2 download cut: {e}"));
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert_same(&got, &video, "h2 download");
}

#[tokio::test]
async fn a_video_seek_over_h2_gets_exact_ranges_while_a_slow_read_goes_on() {
    // A player: reads from the start slowly, seeks (a short range, then
    // an open range read slowly to the end) on the same h2 connection while
    // the first response is still open, then abandons the first one.
    let s = Server::builder().config(SLOW_READS).start();
    let video = fake_video(BIG);
    s.put("clip.mp4", &video);
    let client = h2_client();
    let ranged = |range: String| client.get(s.url("/clip.mp4")).header("range", range).send();

    let mut first = ranged("bytes=0-".into()).await.unwrap();
    assert_eq!(first.version(), reqwest::Version::HTTP_2);
    assert_eq!(first.status(), 206);
    assert_eq!(header(&first, "content-type"), "video/mp4");
    assert_eq!(
        header(&first, "content-range"),
        format!("bytes 0-{}/{BIG}", BIG - 1)
    );
    let head = read_paced(&mut first, 8 << 20, 5e6)
        .await
        .unwrap_or_else(|e| panic!("first read: {e}"));
    assert_same(&head, &video[..head.len()], "start of bytes=0-");

    let (from, to) = (40_000_000, 40_999_999);
    let mut seek = ranged(format!("bytes={from}-{to}")).await.unwrap();
    assert_eq!(seek.status(), 206);
    assert_eq!(
        header(&seek, "content-range"),
        format!("bytes {from}-{to}/{BIG}")
    );
    let got = read_paced(&mut seek, usize::MAX, 1e9)
        .await
        .unwrap_or_else(|e| panic!("seek: {e}"));
    assert_same(&got, &video[from..=to], "bytes={from}-{to}");

    let from = 50_000_000;
    let mut tail = ranged(format!("bytes={from}-")).await.unwrap();
    assert_eq!(tail.status(), 206);
    assert_eq!(
        header(&tail, "content-range"),
        format!("bytes {from}-{}/{BIG}", BIG - 1)
    );
    assert_eq!(tail.content_length(), Some((BIG - from) as u64));
    let started = Instant::now();
    // 12.9 MB at 5 MB/s: about 2.6 s, the first response still open.
    let got = read_paced(&mut tail, usize::MAX, 5e6)
        .await
        .unwrap_or_else(|e| panic!("bytes={from}-: {e}"));
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_same(&got, &video[from..], "bytes={from}-");
    // The abandoned first response still reads on, where it left off.
    let more = read_paced(&mut first, 1 << 20, 1e9)
        .await
        .unwrap_or_else(|e| panic!("first read, resumed: {e}"));
    let at = head.len();
    assert_same(&more, &video[at..at + more.len()], "bytes=0-, resumed");
    drop(first);
}

#[tokio::test]
async fn a_large_slow_http1_download_arrives_whole() {
    let s = Server::builder().config(SLOW_READS).start();
    let video = fake_video(BIG);
    s.put("big.mp4", &video);
    let mut res = s.get("/big.mp4").await;
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
    assert_eq!(res.status(), 200);
    let started = Instant::now();
    let got = read_paced(&mut res, usize::MAX, BIG as f64 / 5.0)
        .await
        .unwrap_or_else(|e| panic!("HTTP/1.1 download cut: {e}"));
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert_same(&got, &video, "HTTP/1.1 download");
}

#[tokio::test]
async fn an_http1_client_that_stops_reading_is_cut_after_the_idle_deadline() {
    let s = Server::builder().config(QUICK_IDLE).start();
    s.put("big.mp4", &fake_video(BIG));
    let mut c = connect(&s).await;
    c.write_all(b"GET /big.mp4 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = vec![0u8; 65536];
    let n = c.read(&mut first).await.unwrap();
    assert_eq!(parse_response(&first[..n]).0, 200);
    // Stalled: the socket buffers fill and the server's writes stop.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (rest, _) = until_closed(&mut c).await;
    assert!(
        n + rest.len() < BIG,
        "a stalled download was never cut ({} bytes arrived)",
        n + rest.len()
    );
}

#[tokio::test]
async fn an_h2_client_that_stops_reading_is_cut_after_the_idle_deadline() {
    // It stops granting flow-control window: the server's writes stop.
    let s = Server::builder().config(QUICK_IDLE).start();
    s.put("big.mp4", &fake_video(BIG));
    let mut res = h2_client().get(s.url("/big.mp4")).send().await.unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_2);
    assert!(res.chunk().await.unwrap().is_some());
    tokio::time::sleep(Duration::from_secs(4)).await;
    let rest = tokio::time::timeout(
        Duration::from_secs(20),
        read_paced(&mut res, usize::MAX, 1e12),
    )
    .await
    .expect("connection still open after 20 s");
    assert!(rest.is_err(), "a stalled h2 download was never cut");
}

/// An h2c connection made with the `h2` crate: requests on it, and the
/// moment the server closed it.
async fn h2_connect(
    s: &Server,
) -> (
    h2::client::SendRequest<bytes::Bytes>,
    tokio::task::JoinHandle<Instant>,
) {
    let (send, conn) = h2::client::handshake(connect(s).await).await.unwrap();
    let closed = tokio::spawn(async move {
        let _ = conn.await;
        Instant::now()
    });
    (send, closed)
}

/// How long after `since` the connection was closed (at most 10 s later).
async fn closed_after(closed: tokio::task::JoinHandle<Instant>, since: Instant) -> Duration {
    tokio::time::timeout(Duration::from_secs(10), closed)
        .await
        .expect("the connection is still open after 10 s")
        .unwrap()
        .saturating_duration_since(since)
}

#[tokio::test]
async fn an_h2_connection_is_closed_after_its_last_stream_ends() {
    // The stream ends on a task of its own; the connection still notices
    // and applies the idle deadline (or the header deadline, to frames the
    // client sends after the end).
    let s = server("[server]\nheader_read_timeout_secs = 1\nidle_timeout_secs = 1\n");
    let (send, closed) = h2_connect(&s).await;
    let mut send = send.ready().await.unwrap();
    let req = Request::get(s.url("/p.jpg")).body(()).unwrap();
    let (res, _) = send.send_request(req, true).unwrap();
    let res = res.await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let mut len = 0;
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        len += chunk.len();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let ended = Instant::now();
    assert_eq!(len, common::corpus_bytes(PHOTO).len());
    let after = closed_after(closed, ended).await;
    assert!(
        after >= Duration::from_millis(500) && after < Duration::from_secs(4),
        "{after:?}"
    );
    drop(send);
}

#[tokio::test]
async fn an_h2_connection_waits_for_a_handled_request_then_goes_idle() {
    // An upload whose body does not come: handled for 2.5 s, past both
    // deadlines, which do not apply meanwhile. Then the client resets the
    // stream, the handler's read fails and it answers on the stream's own
    // task; from then on the idle deadline applies.
    let s = Server::builder()
        .uploads()
        .config("[server]\nheader_read_timeout_secs = 1\nidle_timeout_secs = 1\n")
        .start();
    let presigned = s.presign(serde_json::json!({ "key": "never.jpg" })).await;
    let url = presigned.url();

    let (send, closed) = h2_connect(&s).await;
    let mut send = send.ready().await.unwrap();
    let req = Request::put(url)
        .header("content-length", "1000000")
        .body(())
        .unwrap();
    let (res, mut upload) = send.send_request(req, false).unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!closed.is_finished(), "closed while a request was handled");
    upload.send_reset(h2::Reason::CANCEL);
    let reset = Instant::now();
    drop(res);
    let after = closed_after(closed, reset).await;
    assert!(
        after >= Duration::from_millis(500) && after < Duration::from_secs(4),
        "{after:?}"
    );
    drop(send);
}
