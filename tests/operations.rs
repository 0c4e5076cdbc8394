//! Health, metrics, request logs, request ids, graceful shutdown.

mod common;

use std::time::Duration;

use common::Server;
use reqwest::StatusCode;

#[tokio::test]
async fn health() {
    let s = Server::start();
    let res = s.get("/_/health").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn metrics_in_prometheus_text() {
    let s = Server::start();
    s.put_corpus("photo_4032x3024_orient1.jpg", "p.jpg");
    s.get("/p.jpg?w=64").await;
    s.get("/p.jpg?w=64").await;
    s.get("/missing").await;
    let res = s.admin_get("/_/metrics").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    for name in [
        "mediaedge_http_requests_total{",
        "mediaedge_http_request_duration_seconds_bucket{",
        "mediaedge_cache_hits_total{",
        "mediaedge_cache_misses_total{",
        "mediaedge_transforms_total{",
        "mediaedge_transform_duration_seconds_bucket{",
        "# TYPE mediaedge_transform_duration_seconds histogram",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
    assert_eq!(
        common::parse_metric(
            &text,
            "mediaedge_http_requests_total",
            &[("route", "derivative"), ("status", "200")]
        ),
        2.0
    );
    assert_eq!(
        common::parse_metric(
            &text,
            "mediaedge_http_requests_total",
            &[("route", "original"), ("status", "404")]
        ),
        1.0
    );
    assert_eq!(
        common::parse_metric(&text, "mediaedge_transform_duration_seconds_count", &[]),
        1.0
    );
}

/// SPEC "Operations": `/_/metrics` needs the admin key on the public
/// listener (its auth-failure reasons would otherwise tell an attacker why
/// a forged token failed), and is open only on `server.metrics_listen`,
/// where Prometheus scrapes it.
#[tokio::test]
async fn metrics_need_the_admin_key_unless_on_the_metrics_listener() {
    let s = Server::builder()
        .config("[server]\nmetrics_listen = \"127.0.0.1:0\"\n")
        .start();
    let res = s.get("/_/metrics").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    assert!(!res.text().await.unwrap().contains("mediaedge_"));
    let res = s
        .get_with(
            "/_/metrics",
            &[("authorization", "Bearer not-the-admin-key-0123")],
        )
        .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(!res.text().await.unwrap().contains("mediaedge_"));
    assert!(
        s.metrics_text()
            .await
            .contains("mediaedge_http_requests_total")
    );
    let open = s.stdout_after("mediaedge metrics on ");
    let res = s.client.get(&open).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("mediaedge_http_requests_total")
    );
    // Without an admin key configured, the public listener never shows them.
    let bare = Server::builder().without_admin_key().start();
    let res = bare.get("/_/metrics").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn one_json_log_line_per_request_with_request_id() {
    let s = Server::builder().arg("--log-format").arg("json").start();
    s.put_corpus("photo_4032x3024_orient1.jpg", "p.jpg");
    let res = s
        .get_with("/p.jpg?w=64", &[("x-request-id", "test-123")])
        .await;
    assert_eq!(res.headers()["x-request-id"], "test-123");
    let generated = s.get("/p.jpg?w=64").await.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(generated.len() >= 16);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let lines: Vec<serde_json::Value> = s
        .stderr_lines()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .filter(|v: &serde_json::Value| v["message"] == "request")
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first = &lines[0];
    assert_eq!(first["status"], 200);
    assert_eq!(first["cache"], "MISS");
    assert_eq!(first["path"], "/p.jpg");
    assert!(first["latency_ms"].as_f64().unwrap() > 0.0);
    assert!(first["variant"].as_str().unwrap().starts_with("w=64"));
    assert_eq!(first["span"]["request_id"], "test-123");
    assert_eq!(lines[1]["cache"], "HIT");
    assert_eq!(lines[1]["span"]["request_id"], generated.as_str());
}

/// Issue 14 item 16: a client's `X-Request-Id` with quotes or `=` (and,
/// were it let through, spaces) could forge fields in the text log
/// (`status=500`, a second `request_id=`). The request id in logs and in
/// the answer is the client's only when it is `[A-Za-z0-9._:-]{1,128}`;
/// otherwise it is one the server made, and the client's text is logged as
/// its own quoted field, `client_request_id` (a string in JSON logs).
#[tokio::test]
async fn client_request_ids_cannot_forge_log_fields() {
    const SPACED: &str = "abc\" status=500 request_id=evil x=\"";
    const GRAPHIC: &str = "x\"route=\"admin";
    // Each as the text format writes it: quoted, escaped, one field.
    const QUOTED: [&str; 2] = [
        r#"client_request_id="abc\" status=500 request_id=evil x=\"""#,
        r#"client_request_id="x\"route=\"admin""#,
    ];
    for format in ["text", "json"] {
        let s = Server::builder().arg("--log-format").arg(format).start();
        s.put_corpus("photo_4032x3024_orient1.jpg", "p.jpg");
        let mut generated = Vec::new();
        for id in [SPACED, GRAPHIC] {
            let res = s.get_with("/p.jpg", &[("x-request-id", id)]).await;
            assert_eq!(res.status(), StatusCode::OK);
            let answered = res.headers()["x-request-id"].to_str().unwrap().to_owned();
            assert!(
                answered.len() == 32 && answered.bytes().all(|b| b.is_ascii_hexdigit()),
                "{id}: answered {answered}"
            );
            generated.push(answered);
        }
        // A safe id is still the request id, echoed.
        let res = s
            .get_with("/p.jpg", &[("x-request-id", "req-42.a:b_C")])
            .await;
        assert_eq!(res.headers()["x-request-id"], "req-42.a:b_C");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let lines = s.stderr_lines();
        if format == "text" {
            for (id, quoted) in generated.iter().zip(QUOTED) {
                let request = lines
                    .iter()
                    .find(|l| l.contains(&format!("request_id={id}")))
                    .unwrap_or_else(|| panic!("no line with the generated id: {lines:#?}"));
                assert!(request.contains(quoted), "{request}");
                assert!(request.contains(" status=200"), "{request}");
            }
            // Outside those fields, none of it reads as a field of its own.
            for line in &lines {
                let rest = QUOTED
                    .iter()
                    .fold(line.clone(), |rest, q| rest.replace(q, ""));
                for forged in ["request_id=abc", "status=500", "request_id=evil", "admin"] {
                    assert!(!rest.contains(forged), "{line}");
                }
            }
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains("request_id=req-42.a:b_C")
                        && !l.contains("client_request_id")),
                "{lines:#?}"
            );
        } else {
            let logged: Vec<serde_json::Value> = lines
                .iter()
                .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
                .filter(|v: &serde_json::Value| v["message"] == "request")
                .collect();
            assert_eq!(logged.len(), 3, "{logged:?}");
            for (i, id) in [SPACED, GRAPHIC].into_iter().enumerate() {
                assert_eq!(logged[i]["span"]["request_id"], generated[i].as_str());
                assert_eq!(logged[i]["span"]["client_request_id"], id);
                assert_eq!(logged[i]["status"], 200);
                assert_eq!(logged[i]["route"], "original");
            }
            assert_eq!(logged[2]["span"]["request_id"], "req-42.a:b_C");
            assert!(logged[2]["span"].get("client_request_id").is_none());
        }
    }
}

/// SIGTERM: the listener closes, the request in flight completes, exit 0.
#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let mut s = Server::start();
    s.put_corpus("photo_4032x3024_orient1.jpg", "p.jpg");
    // A full-size PNG re-encode takes long enough to be in flight.
    let (client, url) = (s.client.clone(), s.url("/p.jpg?w=4000&fmt=png"));
    let slow = tokio::spawn(async move {
        let res = client.get(url).send().await.unwrap();
        (res.status(), res.bytes().await.unwrap().len())
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.signal(libc::SIGTERM);
    // New connections are refused at once ...
    tokio::time::sleep(Duration::from_millis(100)).await;
    let addr = s.base.trim_start_matches("http://").to_owned();
    assert!(
        tokio::net::TcpStream::connect(&addr).await.is_err(),
        "still accepting after SIGTERM"
    );
    // ... while the request in flight completes.
    let (status, len) = slow.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(len > 1_000_000);
    let exit = s.wait_exit(Duration::from_secs(20)).expect("exited");
    assert!(exit.success(), "{exit:?}");
}
