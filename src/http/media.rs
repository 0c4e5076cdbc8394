//! `GET`/`HEAD /{key}`: originals and derivatives.
//!
//! Reads top to bottom: key (400) → route access (401/403, before any cache
//! or store) → transform parameters (400, before any I/O) → metadata (404)
//! → derivative, media information (`fmt=json`) or original → conditional
//! and range answers (304, 412,
//! 206, 416) → headers with the route's `Cache-Control`.
//!
//! Every media answer (200, 206, 304, 412, 416) says it is not a document
//! (`Content-Security-Policy: default-src 'none'; sandbox`: a stored HTML or
//! SVG file opened directly runs no script on our origin) and who may embed
//! it (`Cross-Origin-Resource-Policy`, per route); what sniffs as no known
//! type is a download (`Content-Disposition: attachment`).

use std::net::IpAddr;
use std::ops::Range;
use std::time::SystemTime;

use axum::Extension;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::conditional::{self, Outcome, Validators};
use super::response::RequestInfo;
use crate::auth::Route;
use crate::cache::CacheStatus;
use crate::client::Peer;
use crate::header_values::HeaderValues;
use crate::http::error::Error;
use crate::key::ObjectKey;
use crate::media_type::MediaType;
use crate::metrics;
use crate::pipeline::OriginalBody;
use crate::store::StoreError;
use crate::variant::Ask;

const X_CACHE: HeaderName = HeaderName::from_static("x-cache");
const CROSS_ORIGIN_RESOURCE_POLICY: HeaderName =
    HeaderName::from_static("cross-origin-resource-policy");
const MEDIA_CSP: &str = "default-src 'none'; sandbox";

/// Takes the request whole: separate `Method`, `Uri` and `HeaderMap`
/// extractors would clone each (the header map is several allocations on
/// every cache hit). The answer carries what the request log needs (route,
/// cache, variant, access) whether it is a success or an error.
pub async fn serve(
    State(app): State<AppState>,
    req: Request,
) -> (Extension<RequestInfo>, Result<Response, Error>) {
    let mut info = RequestInfo {
        route: "media",
        ..Default::default()
    };
    let (parts, _body) = req.into_parts();
    let client = parts.extensions.get::<Peer>().map(|Peer(addr)| addr.ip());
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    let res = respond(&app, client, method, uri, headers, &mut info).await;
    (Extension(info), res)
}

async fn respond(
    app: &AppState,
    peer: Option<IpAddr>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    info: &mut RequestInfo,
) -> Result<Response, Error> {
    if method != Method::GET && method != Method::HEAD {
        return Err(Error::MethodNotAllowed);
    }
    let key = ObjectKey::from_request_path(uri.path())?;
    // Access before anything is looked up: no cache, no store, no 404.
    let route = app.access.route(&key);
    info.access = route.access.as_str();
    if let Err(e) = app.access.check(route, &key, uri.query(), headers).await {
        info.denied = Some(e.reason());
        return Err(e.into());
    }
    let cfg = &app.config.transform.variants;
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let ask = Ask::parse(uri.query(), accept, cfg)?;
    info.variant = ask.clone();
    info.route = match ask {
        None => "original",
        Some(Ask::Image(_)) => "derivative",
        Some(Ask::Info(_)) => "info",
    };

    // A store read that finds the object replaced since its metadata was
    // cached forgets the metadata and tries once more.
    let mut retried = false;
    loop {
        let result = match &ask {
            None => original(app, method, headers, &key, route, info).await,
            Some(ask) => {
                // Whom a transform is charged to (behind a trusted proxy,
                // the address it forwards for).
                let client = peer.map(|p| app.config.server.trusted_proxies.client_ip(p, headers));
                let request = DerivativeRequest {
                    key: &key,
                    ask,
                    client,
                    route,
                };
                derivative(app, method, headers, &request, info).await
            }
        };
        match result {
            Err(Error::Store(StoreError::Changed)) if !retried => {
                retried = true;
                app.pipeline.forget(&key).await;
            }
            other => return other,
        }
    }
}

async fn original(
    app: &AppState,
    method: &Method,
    headers: &HeaderMap,
    key: &ObjectKey,
    route: &Route,
    info: &mut RequestInfo,
) -> Result<Response, Error> {
    let (meta, meta_status) = app.pipeline.meta(key).await?;
    let rep = Representation {
        route,
        media: meta.media,
        etag: &meta.etag,
        last_modified: meta.last_modified,
        headers: &meta.headers,
        len: meta.size,
        vary_accept: false,
    };
    info.cache = Some(meta_status);
    let range = match conditional::evaluate(method, headers, &rep.validators()) {
        Outcome::Full => None,
        Outcome::Partial(r) => Some(r),
        short => return Ok(rep.short_answer(short, meta_status)),
    };
    if method == Method::HEAD {
        return Ok(rep.answer(range, Body::empty(), meta_status));
    }
    let (body, status) = app.pipeline.original(key, &meta, range.clone()).await?;
    let status = status.or_stale(meta_status);
    info.cache = Some(status);
    let body = match body {
        OriginalBody::Bytes(b) => Body::from(b),
        OriginalBody::Stream(s) => Body::from_stream(s),
    };
    Ok(rep.answer(range, body, status))
}

/// What a derivative (or media information) request asks for, besides the
/// request itself.
struct DerivativeRequest<'a> {
    key: &'a ObjectKey,
    ask: &'a Ask,
    client: Option<IpAddr>,
    route: &'a Route,
}

async fn derivative(
    app: &AppState,
    method: &Method,
    headers: &HeaderMap,
    request: &DerivativeRequest<'_>,
    info: &mut RequestInfo,
) -> Result<Response, Error> {
    let DerivativeRequest {
        key,
        ask,
        client,
        route,
    } = *request;
    let (meta, meta_status) = app.pipeline.meta(key).await?;
    let (d, status) = app.pipeline.derivative(key, &meta, ask, client).await?;
    let status = status.or_stale(meta_status);
    info.cache = Some(status);
    let rep = Representation {
        route,
        media: d.media,
        etag: &d.etag,
        last_modified: d.last_modified,
        headers: &d.headers,
        len: d.body.len() as u64,
        vary_accept: ask.negotiated(),
    };
    let range = match conditional::evaluate(method, headers, &rep.validators()) {
        Outcome::Full => None,
        Outcome::Partial(r) => Some(r),
        short => return Ok(rep.short_answer(short, status)),
    };
    let body = match (method == Method::HEAD, &range) {
        (true, _) => Body::empty(),
        (false, None) => {
            if let Ask::Image(v) = ask {
                metrics::derivative_sent(v.width, v.height, rep.len, meta.size);
            }
            Body::from(d.body.clone())
        }
        (false, Some(r)) => Body::from(d.body.slice(r.start as usize..r.end as usize)),
    };
    Ok(rep.answer(range, body, status))
}

/// What the response headers describe, original or derivative alike.
struct Representation<'a> {
    /// The route: its `Cache-Control` and `Cross-Origin-Resource-Policy`.
    route: &'a Route,
    media: MediaType,
    etag: &'a str,
    last_modified: SystemTime,
    /// `ETag` and `Last-Modified` as header values, made when cached.
    headers: &'a HeaderValues,
    len: u64,
    vary_accept: bool,
}

impl Representation<'_> {
    fn validators(&self) -> Validators<'_> {
        Validators {
            etag: self.etag,
            last_modified: self.last_modified,
            len: self.len,
        }
    }

    /// 200 or 206 with `body` (already the right bytes, or empty for HEAD).
    fn answer(&self, range: Option<Range<u64>>, body: Body, cache: CacheStatus) -> Response {
        let (status, len) = match &range {
            None => (StatusCode::OK, self.len),
            Some(r) => (StatusCode::PARTIAL_CONTENT, r.end - r.start),
        };
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.reserve(16); // ours, plus the request id and room: no regrowth
        self.common_headers(h, cache);
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.media.mime()),
        );
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        h.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if self.media == MediaType::Other {
            // Not a type we know (HTML, SVG, a script...): a browser saves it
            // rather than showing it.
            h.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment"),
            );
        }
        if let Some(r) = range {
            set(
                h,
                header::CONTENT_RANGE,
                &format!("bytes {}-{}/{}", r.start, r.end - 1, self.len),
            );
        }
        res
    }

    /// 304, 412 or 416. A 304 carries the validators, caching and policy
    /// headers a cache uses to refresh its copy (the policy ones so a
    /// refreshed copy keeps them), and nothing else (no `Content-Type`: the
    /// stored image must not be relabelled). 412 and 416 are one-line errors
    /// without caching headers, so no shared cache keeps them, but with the
    /// policy headers like every other answer about the object.
    fn short_answer(&self, outcome: Outcome, cache: CacheStatus) -> Response {
        let (status, body) = match outcome {
            Outcome::NotModified => {
                let mut res = StatusCode::NOT_MODIFIED.into_response();
                self.common_headers(res.headers_mut(), cache);
                return res;
            }
            Outcome::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, "Precondition Failed"),
            Outcome::Unsatisfiable | Outcome::Full | Outcome::Partial(_) => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "Range Not Satisfiable")
            }
        };
        let mut res = (status, body).into_response();
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(X_CACHE, HeaderValue::from_static(cache.as_str()));
        self.policy_headers(h);
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            set(h, header::CONTENT_RANGE, &format!("bytes */{}", self.len));
        }
        res
    }

    fn common_headers(&self, h: &mut HeaderMap, cache: CacheStatus) {
        if let Some(etag) = &self.headers.etag {
            h.insert(header::ETAG, etag.clone());
        }
        h.insert(header::LAST_MODIFIED, self.headers.last_modified.clone());
        h.insert(header::CACHE_CONTROL, self.route.cache_control.clone());
        if self.vary_accept {
            h.insert(header::VARY, HeaderValue::from_static("Accept"));
        }
        h.insert(X_CACHE, HeaderValue::from_static(cache.as_str()));
        self.policy_headers(h);
    }

    /// No script, no document (the media sandbox), and who may embed it.
    /// Static values: nothing is formatted on a cache hit.
    fn policy_headers(&self, h: &mut HeaderMap) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(MEDIA_CSP),
        );
        h.insert(
            CROSS_ORIGIN_RESOURCE_POLICY,
            self.route.resource_policy.clone(),
        );
    }
}

/// Inserts a header built from our own (always valid) text; a value that is
/// somehow not a valid header is left out rather than panicking.
fn set(h: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}
