//! The README's request recipes as harness calls: the admin API with the
//! server's admin key (`Authorization: Bearer $MEDIAEDGE_ADMIN_KEY`), and
//! the two steps of a presigned upload (the backend presigns, the phone
//! PUTs). Tests that send a wrong, missing or malformed request on purpose
//! still build it themselves, so what is wrong with it stays in the test.

use std::fmt;

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::Value;

use super::Server;

/// A `201` answer to `POST /_/uploads` (README "Uploads", step 1): its
/// JSON, and a client to `PUT` to its `url` with (step 2), so a test reads
/// `s.presign(..)` then `p.put(bytes)` as the README does.
pub struct Presigned {
    pub json: Value,
    client: reqwest::Client,
}

impl Presigned {
    /// A presign answer made elsewhere (the `mediaedge presign` CLI), to
    /// upload through `server`'s client like one the server made.
    pub fn new(server: &Server, json: Value) -> Self {
        Self {
            json,
            client: server.client.clone(),
        }
    }

    pub fn url(&self) -> &str {
        self.json["url"].as_str().expect("a presigned url")
    }

    pub fn key(&self) -> &str {
        self.json["key"].as_str().expect("a presigned key")
    }

    /// Path and query of the URL, for raw requests or another node.
    pub fn target(&self) -> String {
        target(self.url())
    }

    /// Step 2: PUTs `bytes` to the URL as a phone does; the status and the
    /// body as text (JSON when stored, a one-line reason when refused).
    pub async fn put(&self, bytes: Vec<u8>) -> (StatusCode, String) {
        let res = self
            .client
            .put(self.url())
            .body(bytes)
            .send()
            .await
            .unwrap();
        (res.status(), res.text().await.unwrap())
    }
}

/// Path and query of an absolute URL (a presigned one, or one a test
/// changed), as a raw request's target.
pub fn target(url: &str) -> String {
    url.splitn(4, '/').nth(3).map(|t| format!("/{t}")).unwrap()
}

impl std::ops::Index<&str> for Presigned {
    type Output = Value;

    fn index(&self, field: &str) -> &Value {
        &self.json[field]
    }
}

impl fmt::Display for Presigned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.json.fmt(f)
    }
}

impl Server {
    /// A request to `path` carrying this server's admin key, as the
    /// README's `curl -H "Authorization: Bearer $MEDIAEDGE_ADMIN_KEY"`;
    /// the test adds the body and sends it.
    pub fn admin_request(&self, method: Method, path: &str) -> RequestBuilder {
        let key = self
            .admin_key
            .as_deref()
            .expect("this server has no admin key");
        self.client.request(method, self.url(path)).bearer_auth(key)
    }

    /// `GET path` with the admin key (`/_/metrics`, `/_/status`).
    pub async fn admin_get(&self, path: &str) -> Response {
        self.admin_request(Method::GET, path).send().await.unwrap()
    }

    /// README "Admin API": `DELETE /_/objects/{key}`, which removes an
    /// original and everything cached from it.
    pub async fn delete_object(&self, key: &str) -> Response {
        self.admin_request(Method::DELETE, &format!("/_/objects/{key}"))
            .send()
            .await
            .unwrap()
    }

    /// README "Admin API": `POST /_/purge` with `body` (`keys` or `prefix`).
    pub async fn purge(&self, body: Value) -> Response {
        self.admin_request(Method::POST, "/_/purge")
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// README "Uploads", step 1: `POST /_/uploads` with `body` and the
    /// admin key, which must answer `201` with JSON.
    pub async fn presign(&self, body: Value) -> Presigned {
        let res = self
            .admin_request(Method::POST, "/_/uploads")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::CREATED, "{body}");
        assert_eq!(res.headers()["content-type"], "application/json");
        Presigned::new(self, res.json().await.unwrap())
    }

    /// Both steps for `key`: presigns it and PUTs `bytes` to the URL; the
    /// status and JSON answer of the PUT (`null` when it is not JSON).
    pub async fn upload(&self, key: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
        let (status, body) = self
            .presign(serde_json::json!({ "key": key }))
            .await
            .put(bytes)
            .await;
        (status, serde_json::from_str(&body).unwrap_or(Value::Null))
    }
}
