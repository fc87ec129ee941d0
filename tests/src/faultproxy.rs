//! An HTTP/1.1 reverse proxy on 127.0.0.1 that injects the faults a real registry never
//! produces: throttling and server errors, truncated and corrupted bodies, stalls, dropped
//! connections, ignored `Range` headers. Every request is logged for assertions.
//!
//! ```no_run
//! use cairn_tests::faultproxy::{Action, FaultProxy, Rule};
//! # fn main() -> anyhow::Result<()> {
//! # let registry_host = "127.0.0.1:5000";
//! let proxy = FaultProxy::start(registry_host)?;
//! let rule = proxy.add_rule(
//!     Rule::new(Action::Status { code: 429, retry_after: Some("1".into()), body: String::new() })
//!         .method("GET")
//!         .path_contains("/blobs/")
//!         .times(1),
//! );
//! // ... pull through proxy.host() ...
//! assert_eq!(proxy.rule_hits(rule), 1);
//! let blob_gets = proxy.requests_matching("GET", "/blobs/");
//! # Ok(()) }
//! ```
//!
//! Requests are forwarded unchanged (method, path, query, headers including `Host`,
//! `Authorization` and `Range`, bodies streamed both ways) except for hop-by-hop headers; a
//! `Location` pointing at the upstream is rewritten to point at the proxy.

use std::collections::HashMap;
use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use http_body_util::{combinators::BoxBody, BodyExt as _, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::util::LOCALHOST;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

/// How long a truncated response stalls after its last byte before the connection is dropped.
/// While the body is pending hyper flushes its write buffer, so the bytes before the cut reach
/// the client whatever hyper does with unflushed data when the body then fails.
const TRUNCATE_FLUSH_DELAY: Duration = Duration::from_millis(100);

/// What the proxy does to a request matched by a [`Rule`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Answer with this status without contacting the upstream.
    Status {
        /// HTTP status code, e.g. 429, 500, 503.
        code: u16,
        /// Value of a `Retry-After` header (seconds or an HTTP date), if any.
        retry_after: Option<String>,
        /// Response body (sent as `application/json` when it starts with `{`).
        body: String,
    },
    /// Forward, send the upstream's headers (full `Content-Length` included), then drop the
    /// connection after this many body bytes. A body no longer than that is sent whole.
    Truncate {
        /// Body bytes delivered before the cut.
        after_bytes: u64,
    },
    /// Forward, but flip every bit of the body byte at this offset (length unchanged).
    CorruptByte {
        /// Offset into the response body.
        offset: u64,
    },
    /// Wait this long before forwarding.
    Delay {
        /// Milliseconds to wait.
        ms: u64,
    },
    /// Drop the connection without any response.
    CloseConnection,
    /// Remove `Range` and `If-Range` before forwarding, so the upstream answers 200 with the
    /// full body.
    IgnoreRange,
    /// Answer with this status and a body of spaces (valid JSON whitespace, so a parser
    /// never finds its end) without contacting the upstream: endless (chunked, no
    /// `Content-Length`) when `length` is `None`, else exactly `length` bytes with that
    /// `Content-Length`. What a hostile registry sends to exhaust a client's memory.
    Flood {
        /// HTTP status code.
        code: u16,
        /// `Content-Type` of the response.
        content_type: String,
        /// Body length; `None` for a body that never ends.
        length: Option<u64>,
    },
    /// Answer 401 with `WWW-Authenticate: Bearer realm="<realm>",service="cairn-hostile"`
    /// without contacting the upstream: sends the client to a token endpoint of the test's
    /// choosing (e.g. one on this proxy that floods).
    BearerChallenge {
        /// The token endpoint's URL.
        realm: String,
    },
    /// Read this many bytes of the request body (all of a shorter one), then drop the
    /// connection without forwarding anything: an upload cut mid-body, of which the upstream
    /// never sees a byte.
    DropRequestBody {
        /// Request body bytes read before the cut.
        after_bytes: u64,
    },
    /// Forward without the query string: e.g. a registry that ignores `?mount=&from=` and
    /// starts a plain upload (202) instead of mounting.
    StripQuery,
    /// Forward only this many bytes of the request body to the upstream, then drop both
    /// connections: an upload cut midway of which the upstream got a part.
    CutRequestBody {
        /// Request body bytes forwarded before the cut.
        after_bytes: u64,
    },
}

impl Action {
    /// `Status` with no `Retry-After` and an empty body.
    pub fn status(code: u16) -> Action {
        Action::Status {
            code,
            retry_after: None,
            body: String::new(),
        }
    }

    /// 429 Too Many Requests with `Retry-After: <retry_after>` and a registry-style error body.
    pub fn too_many_requests(retry_after: &str) -> Action {
        Action::Status {
            code: 429,
            retry_after: Some(retry_after.to_owned()),
            body: r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}"#.to_owned(),
        }
    }

    /// Whether this action answers the request itself (later rules are then not consulted).
    fn is_terminal(&self) -> bool {
        matches!(
            self,
            Action::Status { .. }
                | Action::CloseConnection
                | Action::Flood { .. }
                | Action::BearerChallenge { .. }
                | Action::DropRequestBody { .. }
        )
    }
}

/// Which requests get an [`Action`], and how many times.
///
/// A rule matches a request when the method (if set) is equal, ignoring case, and the path
/// (without query) contains the substring (if set). A request gets the actions of every
/// matching rule with budget left, in the order the rules were added, up to and including the
/// first `Status` or `CloseConnection`; each of those rules spends one unit of budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    method: Option<String>,
    path_contains: Option<String>,
    times: Option<usize>,
    skip: usize,
    action: Action,
}

impl Rule {
    /// A rule applying `action` to every request, without limit.
    pub fn new(action: Action) -> Rule {
        Rule {
            method: None,
            path_contains: None,
            times: None,
            skip: 0,
            action,
        }
    }

    /// Only requests with this method (`GET`, `HEAD`, ...).
    pub fn method(mut self, method: &str) -> Rule {
        self.method = Some(method.to_owned());
        self
    }

    /// Only requests whose path contains `substring` (e.g. `/blobs/`, `/manifests/`).
    pub fn path_contains(mut self, substring: &str) -> Rule {
        self.path_contains = Some(substring.to_owned());
        self
    }

    /// Only the first `n` matching requests.
    pub fn times(mut self, n: usize) -> Rule {
        self.times = Some(n);
        self
    }

    /// Let the first `n` matching requests pass untouched (they spend no budget): e.g. the
    /// third chunk of an upload with `.skip(2).times(1)`.
    pub fn skip(mut self, n: usize) -> Rule {
        self.skip = n;
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method))
            && self
                .path_contains
                .as_deref()
                .is_none_or(|s| path.contains(s))
    }
}

/// Identifies a rule added with [`FaultProxy::add_rule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleId(u64);

/// One request seen by the proxy.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// Request method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Query string, without `?`.
    pub query: Option<String>,
    /// The `Range` header as the client sent it.
    pub range: Option<String>,
    /// The `Authorization` header as the client sent it.
    pub authorization: Option<String>,
    /// The `Content-Length` header as the client sent it.
    pub content_length: Option<u64>,
    /// The `Content-Range` header as the client sent it.
    pub content_range: Option<String>,
    /// Status sent to the client; `None` while in flight, or when the connection was dropped
    /// without a response.
    pub status: Option<u16>,
    /// The actions applied, in order.
    pub faults: Vec<Action>,
    /// When the request arrived.
    pub at: Instant,
}

#[derive(Debug)]
struct RuleSlot {
    id: RuleId,
    rule: Rule,
    used: usize,
    skipped: usize,
}

#[derive(Debug, Default)]
struct Rules {
    next_id: u64,
    active: Vec<RuleSlot>,
    hits: HashMap<RuleId, usize>,
}

#[derive(Debug)]
struct Shared {
    upstream: String,
    host: String,
    rules: Mutex<Rules>,
    log: Mutex<Vec<RequestRecord>>,
}

impl Shared {
    fn rules(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log(&self) -> std::sync::MutexGuard<'_, Vec<RequestRecord>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Picks the actions for a request and spends the budgets of the rules that supplied them.
    fn take_actions(&self, method: &str, path: &str) -> Vec<Action> {
        let mut rules = self.rules();
        let Rules { active, hits, .. } = &mut *rules;
        let mut actions = Vec::new();
        for slot in active.iter_mut() {
            let budget_left = slot.rule.times.is_none_or(|n| slot.used < n);
            if !budget_left || !slot.rule.matches(method, path) {
                continue;
            }
            if slot.skipped < slot.rule.skip {
                slot.skipped += 1;
                continue;
            }
            slot.used += 1;
            *hits.entry(slot.id).or_default() += 1;
            actions.push(slot.rule.action.clone());
            if slot.rule.action.is_terminal() {
                break;
            }
        }
        actions
    }

    fn set_status(&self, index: usize, status: u16) {
        if let Some(r) = self.log().get_mut(index) {
            r.status = Some(status);
        }
    }
}

/// A running fault-injecting proxy; stopped (listener and every connection closed) on drop.
pub struct FaultProxy {
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("host", &self.shared.host)
            .field("upstream", &self.shared.upstream)
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy on a free 127.0.0.1 port forwarding to the plain-HTTP server at
    /// `upstream_host` (`127.0.0.1:PORT`). It accepts connections once this returns.
    pub fn start(upstream_host: &str) -> anyhow::Result<FaultProxy> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-faultproxy")
            .enable_all()
            .build()
            .context("build tokio runtime for the fault proxy")?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind((LOCALHOST, 0)))
            .context("bind fault proxy on 127.0.0.1")?;
        let host = listener.local_addr()?.to_string();
        let shared = Arc::new(Shared {
            upstream: upstream_host.to_owned(),
            host,
            rules: Mutex::new(Rules::default()),
            log: Mutex::new(Vec::new()),
        });
        runtime.spawn(accept_loop(listener, shared.clone()));
        Ok(FaultProxy {
            shared,
            runtime: Some(runtime),
        })
    }

    /// `127.0.0.1:PORT` of the proxy.
    pub fn host(&self) -> &str {
        &self.shared.host
    }

    /// `http://127.0.0.1:PORT` of the proxy.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.host)
    }

    /// The upstream this proxy forwards to.
    pub fn upstream(&self) -> &str {
        &self.shared.upstream
    }

    /// Adds a rule after the existing ones; it applies to requests arriving from now on.
    pub fn add_rule(&self, rule: Rule) -> RuleId {
        let mut rules = self.shared.rules();
        let id = RuleId(rules.next_id);
        rules.next_id += 1;
        rules.active.push(RuleSlot {
            id,
            rule,
            used: 0,
            skipped: 0,
        });
        id
    }

    /// Removes one rule (its hit count stays readable).
    pub fn remove_rule(&self, id: RuleId) {
        self.shared.rules().active.retain(|s| s.id != id);
    }

    /// Removes every rule: from now on requests pass through untouched.
    pub fn clear_rules(&self) {
        self.shared.rules().active.clear();
    }

    /// How many requests rule `id` has applied to so far.
    pub fn rule_hits(&self, id: RuleId) -> usize {
        self.shared.rules().hits.get(&id).copied().unwrap_or(0)
    }

    /// Every request seen so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log().clone()
    }

    /// The requests with `method` (ignoring case; empty for any) whose path contains
    /// `path_contains`, in arrival order.
    pub fn requests_matching(&self, method: &str, path_contains: &str) -> Vec<RequestRecord> {
        self.shared
            .log()
            .iter()
            .filter(|r| method.is_empty() || r.method.eq_ignore_ascii_case(method))
            .filter(|r| r.path.contains(path_contains))
            .cloned()
            .collect()
    }

    /// Forgets the requests logged so far.
    pub fn clear_requests(&self) {
        self.shared.log().clear();
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Drops every task: the listener and all client and upstream sockets close.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // EMFILE and the like: back off instead of spinning.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            // Errors here are the injected ones (CloseConnection, Truncate) or client hang-ups.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// The error a service returns to make hyper drop the connection without a response.
#[derive(Debug)]
struct InjectedClose;

impl fmt::Display for InjectedClose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection closed by fault proxy")
    }
}

impl std::error::Error for InjectedClose {}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, InjectedClose> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let header = |name: HeaderName| {
        req.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let actions = shared.take_actions(&method, &path);
    let index = {
        let mut log = shared.log();
        log.push(RequestRecord {
            method: method.clone(),
            path: path.clone(),
            query: req.uri().query().map(str::to_owned),
            range: header(hyper::header::RANGE),
            authorization: header(hyper::header::AUTHORIZATION),
            content_length: header(hyper::header::CONTENT_LENGTH).and_then(|v| v.parse().ok()),
            content_range: header(hyper::header::CONTENT_RANGE),
            status: None,
            faults: actions.clone(),
            at: Instant::now(),
        });
        log.len() - 1
    };

    let mut truncate = None;
    let mut corrupt = None;
    let mut ignore_range = false;
    let mut strip_query = false;
    let mut cut_request = None;
    let mut req = req;
    for action in actions {
        match action {
            Action::Delay { ms } => tokio::time::sleep(Duration::from_millis(ms)).await,
            Action::IgnoreRange => ignore_range = true,
            Action::StripQuery => strip_query = true,
            Action::CutRequestBody { after_bytes } => cut_request = Some(after_bytes),
            Action::DropRequestBody { after_bytes } => {
                read_request_body(req.body_mut(), after_bytes).await;
                return Err(InjectedClose);
            }
            Action::Truncate { after_bytes } => truncate = Some(after_bytes),
            Action::CorruptByte { offset } => corrupt = Some(offset),
            Action::CloseConnection => return Err(InjectedClose),
            Action::Status {
                code,
                retry_after,
                body,
            } => {
                shared.set_status(index, code);
                return Ok(status_response(code, retry_after.as_deref(), body));
            }
            Action::Flood {
                code,
                content_type,
                length,
            } => {
                shared.set_status(index, code);
                return Ok(flood_response(code, &content_type, length));
            }
            Action::BearerChallenge { realm } => {
                shared.set_status(index, 401);
                return Ok(bearer_challenge(&realm));
            }
        }
    }

    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    if strip_query {
        if let Ok(uri) = parts.uri.path().parse() {
            parts.uri = uri;
        }
    }
    if ignore_range {
        parts.headers.remove(hyper::header::RANGE);
        parts.headers.remove(hyper::header::IF_RANGE);
    }
    parts.version = hyper::Version::HTTP_11;
    let body = FaultBody {
        inner: body,
        pos: 0,
        truncate_at: cut_request,
        corrupt_at: None,
        stall: None,
    };
    let upstream_req = Request::from_parts(parts, body.boxed());
    let response = match forward(&shared.upstream, upstream_req).await {
        Ok(r) => r,
        Err(_) if cut_request.is_some() => return Err(InjectedClose),
        Err(e) => {
            shared.set_status(index, 502);
            return Ok(status_response(
                502,
                None,
                format!("fault proxy: upstream {}: {e:#}", shared.upstream),
            ));
        }
    };
    let (mut parts, body) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    rewrite_location(&mut parts.headers, &shared.upstream, &shared.host);
    shared.set_status(index, parts.status.as_u16());
    let body = FaultBody {
        inner: body,
        pos: 0,
        truncate_at: truncate,
        corrupt_at: corrupt,
        stall: None,
    };
    Ok(Response::from_parts(parts, body.boxed()))
}

/// Reads (and drops) up to `limit` bytes of a request body, less if it ends first.
async fn read_request_body(body: &mut Incoming, limit: u64) {
    let mut read = 0u64;
    while read < limit {
        match body.frame().await {
            Some(Ok(frame)) => read += frame.data_ref().map_or(0, |d| d.len() as u64),
            _ => break,
        }
    }
}

/// A 401 sending the client to the token endpoint `realm`.
fn bearer_challenge(realm: &str) -> Response<ProxyBody> {
    let mut r = status_response(
        401,
        None,
        r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_owned(),
    );
    if let Ok(v) = HeaderValue::from_str(&format!(
        r#"Bearer realm="{realm}",service="cairn-hostile""#
    )) {
        r.headers_mut().insert(hyper::header::WWW_AUTHENTICATE, v);
    }
    r
}

/// Sends `req` to `upstream` over a fresh connection (no pooling: every request is independent,
/// which keeps faults on one request from leaking into the next).
async fn forward(upstream: &str, req: Request<ProxyBody>) -> anyhow::Result<Response<Incoming>> {
    let stream = tokio::net::TcpStream::connect(upstream)
        .await
        .context("connect")?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("handshake")?;
    tokio::spawn(conn);
    sender.send_request(req).await.context("send request")
}

fn status_response(code: u16, retry_after: Option<&str>, body: String) -> Response<ProxyBody> {
    let content_type = if body.starts_with('{') {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = r.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if let Some(v) = retry_after.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(hyper::header::RETRY_AFTER, v);
    }
    r
}

fn flood_response(code: u16, content_type: &str, length: Option<u64>) -> Response<ProxyBody> {
    let mut r = Response::new(Flood { left: length }.boxed());
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// Spaces, 64 KiB a frame, forever or until `left` runs out.
struct Flood {
    left: Option<u64>,
}

/// One frame of a [`Flood`].
static FLOOD_FRAME: [u8; 64 << 10] = [b' '; 64 << 10];

impl Body for Flood {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let frame = FLOOD_FRAME.len() as u64;
        let n = match self.left {
            Some(0) => return Poll::Ready(None),
            Some(left) => left.min(frame),
            None => frame,
        };
        if let Some(left) = self.left.as_mut() {
            *left -= n;
        }
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(
            &FLOOD_FRAME[..n as usize],
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.left == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.left {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// Removes the headers that describe one hop (RFC 9110 section 7.6.1); hyper frames the body
/// again on each side from `Content-Length` or chunked encoding.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(hyper::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(name);
    }
}

fn rewrite_location(headers: &mut HeaderMap, upstream: &str, proxy: &str) {
    let Some(location) = headers
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
    else {
        return;
    };
    for scheme in ["http://", "https://"] {
        if let Some(rest) = location.strip_prefix(&format!("{scheme}{upstream}")) {
            if rest.is_empty() || rest.starts_with('/') || rest.starts_with('?') {
                if let Ok(v) = HeaderValue::from_str(&format!("http://{proxy}{rest}")) {
                    headers.insert(hyper::header::LOCATION, v);
                }
                return;
            }
        }
    }
}

/// The upstream body with `Truncate` and `CorruptByte` applied.
struct FaultBody {
    inner: Incoming,
    pos: u64,
    truncate_at: Option<u64>,
    corrupt_at: Option<u64>,
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for FaultBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(stall) = self.stall.as_mut() {
            return match stall.as_mut().poll(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(()) => Poll::Ready(Some(Err("body truncated by fault proxy".into()))),
            };
        }
        if self.truncate_at == Some(self.pos) {
            // Pending first so hyper flushes what it has, then the error drops the connection.
            self.stall = Some(Box::pin(tokio::time::sleep(TRUNCATE_FLUSH_DELAY)));
            return self.poll_frame(cx);
        }
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        let mut data = match frame.into_data() {
            Ok(data) => data,
            Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
        };
        let start = self.pos;
        if let Some(cut) = self.truncate_at {
            let keep = usize::try_from(cut - start).unwrap_or(usize::MAX);
            data.truncate(keep);
        }
        let end = start + data.len() as u64;
        if let Some(offset) = self.corrupt_at.filter(|o| (start..end).contains(o)) {
            let mut bytes = BytesMut::from(&data[..]);
            bytes[(offset - start) as usize] ^= 0xff;
            data = bytes.freeze();
        }
        self.pos = end;
        Poll::Ready(Some(Ok(Frame::data(data))))
    }

    fn is_end_stream(&self) -> bool {
        self.stall.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_match_method_and_path_substring() {
        let r = Rule::new(Action::CloseConnection)
            .method("get")
            .path_contains("/blobs/");
        assert!(r.matches("GET", "/v2/a/blobs/sha256:00"));
        assert!(!r.matches("HEAD", "/v2/a/blobs/sha256:00"));
        assert!(!r.matches("GET", "/v2/a/manifests/latest"));
        assert!(Rule::new(Action::IgnoreRange).matches("PUT", "/anything"));
    }

    #[test]
    fn take_actions_spends_budget_and_stops_at_terminal() {
        let shared = Shared {
            upstream: String::new(),
            host: String::new(),
            rules: Mutex::new(Rules::default()),
            log: Mutex::new(Vec::new()),
        };
        let add = |rule| {
            let mut rules = shared.rules();
            let id = RuleId(rules.next_id);
            rules.next_id += 1;
            rules.active.push(RuleSlot {
                id,
                rule,
                used: 0,
                skipped: 0,
            });
        };
        add(Rule::new(Action::Delay { ms: 1 }).times(1));
        add(Rule::new(Action::status(503)).path_contains("/m").times(2));
        add(Rule::new(Action::IgnoreRange));
        assert_eq!(
            shared.take_actions("GET", "/m"),
            vec![Action::Delay { ms: 1 }, Action::status(503)]
        );
        assert_eq!(shared.take_actions("GET", "/m"), vec![Action::status(503)]);
        assert_eq!(shared.take_actions("GET", "/m"), vec![Action::IgnoreRange]);
        assert_eq!(shared.take_actions("GET", "/x"), vec![Action::IgnoreRange]);
    }

    #[test]
    fn location_is_rewritten_only_for_the_upstream() {
        let mut h = HeaderMap::new();
        h.insert(
            hyper::header::LOCATION,
            HeaderValue::from_static("http://127.0.0.1:5000/v2/a/blobs/uploads/u?x=1"),
        );
        rewrite_location(&mut h, "127.0.0.1:5000", "127.0.0.1:6000");
        assert_eq!(
            h[hyper::header::LOCATION],
            "http://127.0.0.1:6000/v2/a/blobs/uploads/u?x=1"
        );
        let mut h = HeaderMap::new();
        h.insert(
            hyper::header::LOCATION,
            HeaderValue::from_static("http://127.0.0.1:50001/x"),
        );
        rewrite_location(&mut h, "127.0.0.1:5000", "127.0.0.1:6000");
        assert_eq!(h[hyper::header::LOCATION], "http://127.0.0.1:50001/x");
    }

    #[test]
    fn hop_by_hop_headers_are_stripped() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("keep-alive, x-hop"));
        h.insert("x-hop", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("range", HeaderValue::from_static("bytes=0-"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("range"));
    }
}
