//! A registry connection over the distribution API (reqwest): manifests,
//! blobs and the token flow, every response body bounded while it streams
//! (see [`Caps`]), retries with backoff that honor `Retry-After`, resumable
//! blob downloads into the store, credentials from auth files, plain-HTTP
//! fallback for insecure registries.
//!
//! Nothing a registry sends is buffered before its size is known to be
//! within a cap: a body is read chunk by chunk and the read stops at the
//! first byte over the cap (a `Content-Length` over it fails before any
//! byte is read). Blobs are written to the store, never held, and the
//! writer refuses a byte past the descriptor's size.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, RANGE, RETRY_AFTER, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

use crate::auth::{AuthFiles, Credentials};
use crate::conf::RegistriesConf;
use crate::tls::Roots;
use cairn_store::Digest;
use cairn_store::Error as StoreError;

use crate::error::{Error, RegistryError};
use cairn_store::media::{types, Descriptor};
use cairn_store::BlobWriter;
use cairn_store::Reference;

/// How to talk to registries.
#[derive(Debug, Clone)]
pub struct RegistryOptions {
    /// `--tls-verify`: `Some(false)` allows plain HTTP and unverified TLS,
    /// `Some(true)` forbids both even for registries marked insecure, `None`
    /// follows registries.conf.
    pub tls_verify: Option<bool>,
    /// `--creds`: overrides the auth files.
    pub credentials: Option<Credentials>,
    /// Where stored credentials are read from.
    pub auth_files: AuthFiles,
    /// registries.conf.
    pub conf: RegistriesConf,
    /// Attempts after the first for a failing request (`--retry`).
    pub retries: u32,
    /// Fixed delay between attempts (`--retry-delay`); default is
    /// exponential from [`RegistryOptions::BASE_DELAY`].
    pub retry_delay: Option<Duration>,
    /// `--cert-dir`: CA certificates (`*.crt`) to trust for the registry,
    /// instead of the `certs.d` directories.
    pub cert_dir: Option<std::path::PathBuf>,
}

impl RegistryOptions {
    /// First backoff delay; doubles per attempt up to [`Self::MAX_DELAY`].
    pub const BASE_DELAY: Duration = Duration::from_millis(250);
    /// Longest backoff delay.
    pub const MAX_DELAY: Duration = Duration::from_secs(10);
    /// Longest `Retry-After` honored; a registry asking for more fails the pull.
    pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
    /// Default `--retry`, podman's.
    pub const DEFAULT_RETRIES: u32 = 3;

    /// Defaults from the environment: auth files and registries.conf as podman finds them.
    pub fn from_env() -> Result<RegistryOptions, Error> {
        Ok(RegistryOptions {
            tls_verify: None,
            credentials: None,
            auth_files: AuthFiles::discover(None),
            conf: RegistriesConf::load()?,
            retries: Self::DEFAULT_RETRIES,
            retry_delay: None,
            cert_dir: None,
        })
    }
}

/// The most cairn reads of each kind of registry response, as
/// containers/image's `iolimits` (the manifest cap is also what the store
/// accepts, [`cairn_store::images::MAX_MANIFEST_SIZE`]).
pub struct Caps;

impl Caps {
    /// A manifest or index.
    pub const MANIFEST: u64 = cairn_store::images::MAX_MANIFEST_SIZE;
    /// A token endpoint's answer (`iolimits.MaxAuthTokenBodySize`).
    pub const TOKEN: u64 = 1 << 20;
    /// The body of an error response: only read for its message, and
    /// whatever is past this is dropped, not an error (`MaxErrorBodySize`).
    pub const ERROR_BODY: u64 = 1 << 20;
}

/// Something that failed and may be worth another attempt.
#[derive(Debug)]
pub(crate) enum Failure {
    Retry {
        detail: String,
        /// A 429: wait `retry_after` (the registry's `Retry-After`) if it
        /// said, else the backoff.
        rate_limited: bool,
        retry_after: Option<Duration>,
        fatal_if_exhausted: Option<Error>,
    },
    Fatal(Error),
    /// A 416 to a Range request: the registry holds nothing past the
    /// offset asked for (only blob downloads send a Range).
    RangeNotSatisfiable(String),
}

impl Failure {
    pub(crate) fn retry(detail: String) -> Failure {
        Failure::Retry {
            detail,
            rate_limited: false,
            retry_after: None,
            fatal_if_exhausted: None,
        }
    }
}

/// Called before each retry with what failed, the attempt number and the delay.
pub(crate) type RetryHook = Box<dyn Fn(&str, u32, Duration) + Send + Sync>;

/// How requests are authorized, learnt from the registry's first 401.
#[derive(Debug, Clone)]
enum Authorization {
    /// Nothing sent (yet).
    None,
    /// `Authorization: Basic` with the credentials (a Basic challenge).
    Basic,
    /// `Authorization: Bearer` with a token from the challenge's realm.
    Bearer(String),
}

/// A connection to one registry for one image.
pub(crate) struct RegistryClient {
    raw: reqwest::Client,
    creds: Option<Credentials>,
    authorization: Mutex<Authorization>,
    scheme: &'static str,
    reference: Reference,
    insecure: bool,
    retries: u32,
    retry_delay: Option<Duration>,
    auth_file: String,
    on_retry: RetryHook,
    /// The actions asked of the token endpoint for the repository
    /// (`pull`, or `pull,push` for a push).
    actions: &'static str,
    /// Other repositories (on the same registry) to ask `pull` on: the
    /// sources of cross-repository mounts.
    also_pull: Vec<String>,
}

/// Installs rustls' ring provider once (reqwest is built without one; see
/// DESIGN.md: aws-lc-sys costs a minute of build time).
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The host an API request goes to (`docker.io` is served by `index.docker.io`).
pub(crate) fn api_host(registry: &str) -> &str {
    match registry {
        "docker.io" => "index.docker.io",
        r => r,
    }
}

/// A body read no further than its cap.
#[derive(Debug)]
pub(crate) enum Capped {
    /// The whole body, at most the cap.
    Whole(Bytes),
    /// The body (or its `Content-Length`) is longer than the cap; reading
    /// stopped at the first byte past it.
    TooLarge,
}

/// Reads `resp`'s body, stopping at `cap + 1` bytes: a body is never held
/// whole before its size is known to be within `cap`.
pub(crate) async fn read_capped(
    mut resp: reqwest::Response,
    cap: u64,
) -> Result<Capped, reqwest::Error> {
    if resp.content_length().is_some_and(|n| n > cap) {
        return Ok(Capped::TooLarge);
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() as u64 + chunk.len() as u64 > cap {
            return Ok(Capped::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Capped::Whole(body.freeze()))
}

/// Up to [`Caps::ERROR_BODY`] of an error response, lossily as text; the
/// rest is not read.
async fn error_body(mut resp: reqwest::Response) -> String {
    let mut body = BytesMut::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = Caps::ERROR_BODY as usize - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() as u64 >= Caps::ERROR_BODY {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

/// The error codes of a response that is not a success, and its words
/// in one line (`CODE: message; ...`, or `HTTP STATUS: body`); the body is
/// read at most [`Caps::ERROR_BODY`].
pub(crate) async fn error_codes(resp: reqwest::Response) -> (Vec<String>, String) {
    let status = resp.status();
    let body = error_body(resp).await;
    let envelope: Envelope = serde_json::from_str(&body).unwrap_or_default();
    if envelope.errors.is_empty() {
        return (
            Vec::new(),
            format!("HTTP {}: {}", status.as_u16(), shorten(&body)),
        );
    }
    let detail = shorten(
        &envelope
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.code, e.message))
            .collect::<Vec<_>>()
            .join("; "),
    );
    (
        envelope.errors.into_iter().map(|e| e.code).collect(),
        detail,
    )
}

/// The error envelope of the distribution spec.
#[derive(Debug, Default, serde::Deserialize)]
struct Envelope {
    #[serde(default)]
    errors: Vec<EnvelopeError>,
}

#[derive(Debug, serde::Deserialize)]
struct EnvelopeError {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// A token endpoint's answer (docker token spec: `token`, or OAuth2's `access_token`).
#[derive(Debug, serde::Deserialize)]
struct TokenResponse {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
}

/// At most this many characters of a registry's words go into an error line.
const MAX_DETAIL_CHARS: usize = 300;

fn shorten(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(MAX_DETAIL_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

impl RegistryClient {
    /// Sets up a client for `reference`'s registry: TLS policy, plain-HTTP
    /// probe for insecure registries, credentials.
    pub(crate) async fn connect(
        reference: &Reference,
        opts: &RegistryOptions,
        on_retry: RetryHook,
    ) -> Result<RegistryClient, Error> {
        install_crypto_provider();
        let entry = opts.conf.entry_for(reference);
        if entry.is_some_and(|e| e.blocked) {
            return Err(Error::Registry {
                reference: reference.to_string(),
                kind: RegistryError::Other(format!(
                    "registry {} is blocked in registries.conf ({})",
                    reference.registry(),
                    opts.conf
                        .sources
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            });
        }
        let insecure = match opts.tls_verify {
            Some(v) => !v,
            None => entry.is_some_and(|e| e.insecure),
        };
        // Without verification there is nothing to trust: loading roots
        // would only cost time.
        let roots = if insecure {
            Roots::default()
        } else {
            Roots::for_registry(reference.registry(), opts.cert_dir.as_deref())?
        };
        let mut builder = reqwest::Client::builder()
            .danger_accept_invalid_certs(insecure)
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("cairn/", env!("CARGO_PKG_VERSION")))
            // reqwest drops `Authorization` on a redirect to another host.
            .redirect(reqwest::redirect::Policy::limited(5));
        builder = if roots.exclusive {
            builder.tls_certs_only(roots.reqwest())
        } else {
            builder.tls_certs_merge(roots.reqwest())
        };
        let raw = builder.build().map_err(|e| Error::Registry {
            reference: reference.to_string(),
            kind: RegistryError::Other(format!("cannot set up an HTTP client: {e}")),
        })?;
        let host = api_host(reference.registry()).to_owned();
        let scheme = if insecure {
            probe_scheme(&raw, &host).await
        } else {
            "https"
        };
        let creds = match &opts.credentials {
            Some(c) => Some(c.clone()),
            None => opts.auth_files.credentials_for(reference)?,
        };
        Ok(RegistryClient {
            raw,
            creds,
            authorization: Mutex::new(Authorization::None),
            scheme,
            reference: reference.clone(),
            insecure,
            retries: opts.retries,
            retry_delay: opts.retry_delay,
            auth_file: opts.auth_files.primary().display().to_string(),
            on_retry,
            actions: "pull",
            also_pull: Vec::new(),
        })
    }

    /// Asks tokens for `pull,push` on the repository and `pull` on
    /// `mount_from` (repositories a blob may be mounted from).
    pub(crate) fn for_push(mut self, mount_from: Vec<String>) -> RegistryClient {
        self.actions = "pull,push";
        self.also_pull = mount_from;
        self
    }

    /// The reference this client talks about.
    pub(crate) fn reference(&self) -> &Reference {
        &self.reference
    }

    /// `SCHEME://HOST/v2/REPOSITORY/TAIL`.
    pub(crate) fn repo_url(&self, tail: &str) -> String {
        format!(
            "{}://{}/v2/{}/{tail}",
            self.scheme,
            api_host(self.reference.registry()),
            self.reference.repository()
        )
    }

    /// A `Location` header made absolute (registries may answer with a
    /// path only).
    pub(crate) fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!(
                "{}://{}/{}",
                self.scheme,
                api_host(self.reference.registry()),
                location.trim_start_matches('/')
            )
        }
    }

    fn url(&self, kind: &str, id: &str) -> String {
        format!(
            "{}://{}/v2/{}/{kind}/{id}",
            self.scheme,
            api_host(self.reference.registry()),
            self.reference.repository()
        )
    }

    /// Fetches a manifest or index by the reference's tag or digest: exact
    /// bytes, their digest (verified against a digest reference), read no
    /// further than [`Caps::MANIFEST`].
    pub(crate) async fn manifest(&self, reference: &Reference) -> Result<(Bytes, Digest), Error> {
        let id = reference.tag_or_digest();
        let what = format!("manifest {id}");
        let url = self.url("manifests", &id);
        let accept = types::ACCEPTED_MANIFESTS.join(", ");
        let bytes = self
            .with_retries(&what, || async {
                let resp = self.get(&url, Some(&accept), None).await?;
                match read_capped(resp, Caps::MANIFEST).await {
                    Ok(Capped::Whole(b)) => Ok(b),
                    Ok(Capped::TooLarge) => Err(Failure::Fatal(self.too_large(
                        &format!("{what} from {}", self.reference.registry()),
                        Caps::MANIFEST,
                    ))),
                    Err(e) => Err(self.classify_transport(&e)),
                }
            })
            .await?;
        let actual = Digest::sha256_of(&bytes);
        if let Some(want) = reference.digest() {
            let ok = match want.algorithm() {
                cairn_store::Algorithm::Sha256 => &actual == want,
                alg => {
                    let mut h = cairn_store::Hasher::new(alg);
                    h.update(&bytes);
                    &h.finish() == want
                }
            };
            if !ok {
                return Err(StoreError::DigestMismatch {
                    what: format!("manifest of {reference}"),
                    expected: want.clone(),
                    actual,
                }
                .into());
            }
            return Ok((bytes, want.clone()));
        }
        Ok((bytes, actual))
    }

    /// The one-line error for a response over its cap.
    fn too_large(&self, what: &str, cap: u64) -> Error {
        self.error(RegistryError::TooLarge {
            what: what.to_owned(),
            registry: self.reference.registry().to_owned(),
            cap,
        })
    }

    /// GET `url` with the authorization learnt so far; on a 401 with a
    /// challenge, authorizes (Basic, or a token from the realm) and asks
    /// once more. A success comes back unread; anything else is a
    /// [`Failure`] (its body read at most [`Caps::ERROR_BODY`]).
    async fn get(
        &self,
        url: &str,
        accept: Option<&str>,
        range_from: Option<u64>,
    ) -> Result<reqwest::Response, Failure> {
        let mut headers = HeaderMap::new();
        if let Some(a) = accept.and_then(|a| HeaderValue::from_str(a).ok()) {
            headers.insert(ACCEPT, a);
        }
        if let Some(from) = range_from {
            headers.insert(
                RANGE,
                HeaderValue::from_str(&format!("bytes={from}-")).expect("ascii"),
            );
        }
        let resp = self.send(Method::GET, url, headers, None).await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        Err(self.rejected(resp).await)
    }

    /// The [`Failure`] a response that is not a success stands for (its
    /// body read at most [`Caps::ERROR_BODY`]).
    pub(crate) async fn rejected(&self, resp: reqwest::Response) -> Failure {
        self.classify_status(resp.status(), resp.headers().clone(), resp)
            .await
    }

    /// Sends a request with the authorization learnt so far; on a 401 with
    /// a challenge, authorizes (Basic, or a token from the realm) and sends
    /// it once more (`body` makes the body afresh for each). Whatever status comes
    /// back is returned unread, but a 401 that could not be answered is a
    /// [`Failure`]; so is a request that got no response.
    pub(crate) async fn send(
        &self,
        method: Method,
        url: &str,
        headers: HeaderMap,
        body: Option<&(dyn Fn() -> reqwest::Body + Sync)>,
    ) -> Result<reqwest::Response, Failure> {
        let mut challenged = false;
        loop {
            let mut req = self
                .raw
                .request(method.clone(), url)
                .headers(headers.clone());
            if let Some(b) = body {
                req = req.body(b());
            }
            let authorization = self.authorization.lock().expect("not poisoned").clone();
            req = match (&authorization, &self.creds) {
                (Authorization::Basic, Some(c)) => req.basic_auth(&c.username, Some(&c.password)),
                (Authorization::Bearer(t), _) => req.bearer_auth(t),
                _ => req,
            };
            let resp = req.send().await.map_err(|e| self.classify_transport(&e))?;
            let status = resp.status();
            if status == StatusCode::UNAUTHORIZED {
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                if let Some(challenge) = challenge.filter(|_| !challenged) {
                    if self.authorize(&challenge).await? {
                        challenged = true;
                        continue;
                    }
                }
                return Err(self.rejected(resp).await);
            }
            return Ok(resp);
        }
    }

    /// Answers a `WWW-Authenticate` challenge; false if there is nothing
    /// to answer it with (a Basic challenge and no credentials).
    async fn authorize(&self, challenge: &str) -> Result<bool, Failure> {
        if let Some(params) = challenge.strip_prefix("Bearer ") {
            let token = self.token(params).await?;
            *self.authorization.lock().expect("not poisoned") = Authorization::Bearer(token);
            return Ok(true);
        }
        if challenge.starts_with("Basic") && self.creds.is_some() {
            *self.authorization.lock().expect("not poisoned") = Authorization::Basic;
            return Ok(true);
        }
        Ok(false)
    }

    /// A token (for the actions this client asks) from a Bearer challenge's realm (the docker token
    /// protocol), with the credentials if there are any; the answer is read
    /// no further than [`Caps::TOKEN`].
    async fn token(&self, params: &str) -> Result<String, Failure> {
        let realm = crate::login::param(params, "realm").ok_or_else(|| {
            Failure::Fatal(self.error(RegistryError::Other(format!(
                "bearer challenge without realm: {}",
                shorten(params)
            ))))
        })?;
        let scope = format!(
            "repository:{}:{}",
            self.reference.repository(),
            self.actions
        );
        let mut req = self.raw.get(&realm).query(&[("scope", scope.as_str())]);
        for from in &self.also_pull {
            let from = format!("repository:{from}:pull");
            req = req.query(&[("scope", from.as_str())]);
        }
        if let Some(service) = crate::login::param(params, "service") {
            req = req.query(&[("service", service.as_str())]);
        }
        if let Some(c) = &self.creds {
            req = req
                .basic_auth(&c.username, Some(&c.password))
                .query(&[("account", c.username.as_str())]);
        }
        let resp = req.send().await.map_err(|e| self.classify_transport(&e))?;
        let status = resp.status();
        if !status.is_success() {
            let headers = resp.headers().clone();
            return Err(match status.as_u16() {
                401 | 403 => {
                    let body = error_body(resp).await;
                    self.unauthorized(format!("token request refused: {}", shorten(&body)))
                }
                _ => self.classify_status(status, headers, resp).await,
            });
        }
        let what = format!("token response from {realm}");
        let body = match read_capped(resp, Caps::TOKEN).await {
            Ok(Capped::Whole(b)) => b,
            Ok(Capped::TooLarge) => return Err(Failure::Fatal(self.too_large(&what, Caps::TOKEN))),
            Err(e) => return Err(self.classify_transport(&e)),
        };
        let t: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            Failure::Fatal(self.error(RegistryError::Other(format!(
                "the {what} is not a token: {e}"
            ))))
        })?;
        match (t.token, t.access_token) {
            (t, _) if !t.is_empty() => Ok(t),
            (_, t) if !t.is_empty() => Ok(t),
            _ => Err(Failure::Fatal(self.error(RegistryError::Other(format!(
                "the {what} holds no token"
            ))))),
        }
    }

    /// Downloads a blob into `writer`, continuing from what it already holds
    /// (a resumed partial) with a Range request, retrying and resuming
    /// after connection drops, 429s and 5xx. Calls `progress` with the total
    /// bytes held after each chunk. The caller commits the writer, which
    /// refuses any byte past `desc.size`: an endless blob fails there.
    pub(crate) async fn blob(
        &self,
        desc: &Descriptor,
        writer: &mut BlobWriter,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), Error> {
        let digest = desc.digest.to_string();
        let url = self.url("blobs", &digest);
        let mut attempt = 0u32;
        loop {
            let offset = writer.written();
            let result: Result<(), Failure> = async {
                if offset == desc.size && desc.size > 0 {
                    return Ok(());
                }
                let mut response = self.get(&url, None, Some(offset)).await?;
                if offset > 0 && response.status() != StatusCode::PARTIAL_CONTENT {
                    // The server ignored the Range: start over.
                    writer.restart().map_err(|e| Failure::Fatal(e.into()))?;
                }
                loop {
                    let chunk = match response.chunk().await {
                        Ok(Some(c)) => c,
                        Ok(None) => break,
                        Err(e) => {
                            return Err(Failure::Retry {
                                detail: format!("reading blob {digest}: {}", chain(&e)),
                                rate_limited: false,
                                retry_after: None,
                                fatal_if_exhausted: Some(
                                    StoreError::SizeMismatch {
                                        what: format!(
                                            "blob from {} (connection lost: {})",
                                            self.reference.registry(),
                                            chain(&e)
                                        ),
                                        digest: desc.digest.clone(),
                                        expected: desc.size,
                                        got: writer.written(),
                                    }
                                    .into(),
                                ),
                            })
                        }
                    };
                    writer.write(&chunk).map_err(|e| Failure::Fatal(e.into()))?;
                    progress(writer.written());
                }
                if writer.written() < desc.size {
                    return Err(Failure::Retry {
                        detail: format!(
                            "blob {digest}: connection closed after {} of {} bytes",
                            writer.written(),
                            desc.size
                        ),
                        rate_limited: false,
                        retry_after: None,
                        fatal_if_exhausted: Some(
                            StoreError::SizeMismatch {
                                what: format!("blob from {}", self.reference.registry()),
                                digest: desc.digest.clone(),
                                expected: desc.size,
                                got: writer.written(),
                            }
                            .into(),
                        ),
                    });
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => return Ok(()),
                Err(Failure::Fatal(e)) => return Err(self.rename_blob_error(e)),
                Err(Failure::RangeNotSatisfiable(detail)) => {
                    // Asked to resume at `offset`, the registry says there
                    // is nothing there: its blob is shorter than declared.
                    return Err(StoreError::SizeMismatch {
                        what: format!(
                            "blob from {} (it has nothing past byte {offset}: {detail})",
                            self.reference.registry()
                        ),
                        digest: desc.digest.clone(),
                        expected: desc.size,
                        got: writer.written(),
                    }
                    .into());
                }
                Err(Failure::Retry {
                    detail,
                    rate_limited,
                    retry_after,
                    fatal_if_exhausted,
                }) => {
                    if attempt >= self.retries {
                        // Part of the blob arrived and the rest never did.
                        let truncated = (writer.written() > 0).then(|| {
                            Error::from(StoreError::SizeMismatch {
                                what: format!(
                                    "blob from {} (gave up after {} attempts: {detail})",
                                    self.reference.registry(),
                                    attempt + 1
                                ),
                                digest: desc.digest.clone(),
                                expected: desc.size,
                                got: writer.written(),
                            })
                        });
                        return Err(fatal_if_exhausted.or(truncated).unwrap_or_else(|| {
                            self.error(RegistryError::GaveUp {
                                registry: self.reference.registry().to_owned(),
                                attempts: attempt + 1,
                                detail,
                            })
                        }));
                    }
                    let delay = self.delay(attempt, rate_limited, retry_after)?;
                    (self.on_retry)(&detail, attempt + 1, delay);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    /// A size error from the blob writer, said to come from the registry.
    fn rename_blob_error(&self, e: Error) -> Error {
        match e {
            Error::Store(StoreError::SizeMismatch {
                digest,
                expected,
                got,
                ..
            }) => StoreError::SizeMismatch {
                what: format!("blob from {}", self.reference.registry()),
                digest,
                expected,
                got,
            }
            .into(),
            other => other,
        }
    }

    pub(crate) async fn with_retries<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut attempt = 0u32;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::RangeNotSatisfiable(detail)) => {
                    return Err(self.error(RegistryError::Other(detail)))
                }
                Err(Failure::Retry {
                    detail,
                    rate_limited,
                    retry_after,
                    fatal_if_exhausted,
                }) => {
                    if attempt >= self.retries {
                        return Err(fatal_if_exhausted.unwrap_or_else(|| {
                            self.error(RegistryError::GaveUp {
                                registry: self.reference.registry().to_owned(),
                                attempts: attempt + 1,
                                detail,
                            })
                        }));
                    }
                    let delay = self.delay(attempt, rate_limited, retry_after)?;
                    (self.on_retry)(&format!("{what}: {detail}"), attempt + 1, delay);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    /// After `failure` at `attempt` (0 for the first try): waits before the
    /// next attempt (reported through the retry hook as `what`), or gives
    /// up with the error to report when the failure is fatal or the
    /// attempts are spent.
    pub(crate) async fn backoff(
        &self,
        what: &str,
        failure: Failure,
        attempt: u32,
    ) -> Result<(), Error> {
        match failure {
            Failure::Fatal(e) => Err(e),
            Failure::RangeNotSatisfiable(detail) => Err(self.error(RegistryError::Other(detail))),
            Failure::Retry {
                detail,
                rate_limited,
                retry_after,
                fatal_if_exhausted,
            } => {
                if attempt >= self.retries {
                    return Err(fatal_if_exhausted.unwrap_or_else(|| {
                        self.error(RegistryError::GaveUp {
                            registry: self.reference.registry().to_owned(),
                            attempts: attempt + 1,
                            detail: format!("{what}: {detail}"),
                        })
                    }));
                }
                let delay = self.delay(attempt, rate_limited, retry_after)?;
                (self.on_retry)(&format!("{what}: {detail}"), attempt + 1, delay);
                tokio::time::sleep(delay).await;
                Ok(())
            }
        }
    }

    /// The wait before the next attempt: the registry's `Retry-After` after
    /// a 429, else `--retry-delay`, else exponential backoff.
    fn delay(
        &self,
        attempt: u32,
        rate_limited: bool,
        retry_after: Option<Duration>,
    ) -> Result<Duration, Error> {
        let backoff = self.retry_delay.unwrap_or_else(|| {
            RegistryOptions::BASE_DELAY
                .saturating_mul(1 << attempt.min(16))
                .min(RegistryOptions::MAX_DELAY)
        });
        if !rate_limited {
            return Ok(backoff);
        }
        match retry_after {
            Some(d) if d > RegistryOptions::MAX_RETRY_AFTER => {
                Err(self.error(RegistryError::Other(format!(
                    "rate limited (429): the registry asks to retry after {}s, longer than the {}s cairn waits; try again later",
                    d.as_secs(),
                    RegistryOptions::MAX_RETRY_AFTER.as_secs()
                ))))
            }
            Some(d) => Ok(d),
            None => Ok(backoff),
        }
    }

    pub(crate) fn error(&self, kind: RegistryError) -> Error {
        Error::Registry {
            reference: self.reference.to_string(),
            kind,
        }
    }

    fn unauthorized(&self, detail: String) -> Failure {
        Failure::Fatal(self.error(RegistryError::Unauthorized {
            registry: self.reference.registry().to_owned(),
            detail,
            auth_file: self.auth_file.clone(),
        }))
    }

    /// A request that got no (complete) response.
    pub(crate) fn classify_transport(&self, re: &reqwest::Error) -> Failure {
        let registry = self.reference.registry().to_owned();
        let detail = chain(re);
        if looks_like_tls(&detail) {
            return Failure::Fatal(self.error(RegistryError::Unreachable {
                registry,
                detail,
                tls_hint: !self.insecure,
            }));
        }
        if re.is_connect() {
            return Failure::Retry {
                detail: detail.clone(),
                rate_limited: false,
                retry_after: None,
                fatal_if_exhausted: Some(self.error(RegistryError::Unreachable {
                    registry,
                    detail,
                    tls_hint: false,
                })),
            };
        }
        Failure::retry(detail)
    }

    /// A response that is not a success: its status, `Retry-After` and
    /// error envelope (read at most [`Caps::ERROR_BODY`]).
    async fn classify_status(
        &self,
        status: StatusCode,
        headers: HeaderMap,
        resp: reqwest::Response,
    ) -> Failure {
        let body = error_body(resp).await;
        let envelope: Envelope = serde_json::from_str(&body).unwrap_or_default();
        let codes: Vec<&str> = envelope.errors.iter().map(|e| e.code.as_str()).collect();
        let detail = if envelope.errors.is_empty() {
            format!("HTTP {}: {}", status.as_u16(), shorten(&body))
        } else {
            shorten(
                &envelope
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", e.code, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        };
        let fatal = |kind| Failure::Fatal(self.error(kind));
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            return Failure::RangeNotSatisfiable(detail);
        }
        if status == StatusCode::TOO_MANY_REQUESTS || codes.contains(&"TOOMANYREQUESTS") {
            return Failure::Retry {
                detail,
                rate_limited: true,
                retry_after: headers
                    .get(RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| parse_retry_after(v, std::time::SystemTime::now())),
                fatal_if_exhausted: None,
            };
        }
        if status == StatusCode::REQUEST_TIMEOUT || status.is_server_error() {
            return Failure::retry(detail);
        }
        if matches!(status.as_u16(), 401 | 403)
            || codes
                .iter()
                .any(|c| matches!(*c, "UNAUTHORIZED" | "DENIED"))
        {
            return self.unauthorized(detail);
        }
        if status == StatusCode::NOT_FOUND
            || codes.iter().any(|c| {
                matches!(
                    *c,
                    "MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN" | "NOT_FOUND"
                )
            })
        {
            return fatal(RegistryError::NotFound(detail));
        }
        fatal(RegistryError::Other(detail))
    }
}

/// With `--tls-verify=false`, podman tries HTTPS without verification and
/// falls back to plain HTTP; so does this, with one probe per connection.
async fn probe_scheme(raw: &reqwest::Client, host: &str) -> &'static str {
    let probe = raw
        .get(format!("https://{host}/v2/"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match probe {
        Ok(_) => "https",
        Err(_) => "http",
    }
}

/// An error and its sources, `: `-joined (reqwest's own Display drops the cause).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let part = c.to_string();
        if !s.contains(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        cur = c.source();
    }
    s
}

fn looks_like_tls(detail: &str) -> bool {
    let d = detail.to_ascii_lowercase();
    [
        "certificate",
        "invalidcontenttype",
        "corrupt message",
        "handshake",
        "tls",
        "ssl",
    ]
    .iter()
    .any(|k| d.contains(k))
}

/// `Retry-After` is seconds or an HTTP date.
fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let when = std::time::UNIX_EPOCH + Duration::from_secs(when.timestamp().max(0) as u64);
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    /// Serves one HTTP response on 127.0.0.1: `head`, then `body_len`
    /// bytes of spaces (`None`: until the client hangs up). Returns the
    /// URL and a handle yielding how many body bytes were written.
    async fn serve(head: String, body_len: Option<u64>) -> (String, tokio::task::JoinHandle<u64>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut req = [0u8; 4096];
            let _ = conn.read(&mut req).await;
            conn.write_all(head.as_bytes()).await.unwrap();
            let chunk = vec![b' '; 64 << 10];
            let mut sent = 0u64;
            loop {
                let n = match body_len {
                    Some(len) if sent >= len => break,
                    Some(len) => (len - sent).min(chunk.len() as u64) as usize,
                    None => chunk.len(),
                };
                if conn.write_all(&chunk[..n]).await.is_err() {
                    break;
                }
                sent += n as u64;
            }
            sent
        });
        (url, task)
    }

    async fn get(url: &str) -> reqwest::Response {
        install_crypto_provider();
        reqwest::Client::new().get(url).send().await.unwrap()
    }

    #[tokio::test]
    async fn an_endless_body_is_read_no_further_than_the_cap() {
        let (url, server) =
            serve("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".into(), None).await;
        let cap = 1 << 20;
        let r = read_capped(get(&url).await, cap).await.unwrap();
        assert!(matches!(r, Capped::TooLarge), "{r:?}");
        // The server could write what the socket buffers hold, no more.
        let sent = server.await.unwrap();
        assert!(
            sent < cap + (16 << 20),
            "the client kept reading: {sent} bytes"
        );
    }

    #[tokio::test]
    async fn a_content_length_over_the_cap_fails_before_the_body_is_read() {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            5u64 << 30
        );
        let (url, server) = serve(head, Some(5 << 30)).await;
        let r = read_capped(get(&url).await, 4 << 20).await.unwrap();
        assert!(matches!(r, Capped::TooLarge), "{r:?}");
        server.abort();
    }

    #[tokio::test]
    async fn bodies_up_to_the_cap_are_read_whole() {
        for len in [0u64, 1, 4 << 20] {
            let head =
                format!("HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
            let (url, _server) = serve(head, Some(len)).await;
            match read_capped(get(&url).await, 4 << 20).await.unwrap() {
                Capped::Whole(b) => assert_eq!(b.len() as u64, len),
                Capped::TooLarge => panic!("{len} bytes refused"),
            }
        }
        // No length (the body ends when the connection closes): one byte over is refused.
        let (url, _server) = serve(
            "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".into(),
            Some((4 << 20) + 1),
        )
        .await;
        let r = read_capped(get(&url).await, 4 << 20).await.unwrap();
        assert!(matches!(r, Capped::TooLarge), "{r:?}");
    }

    #[tokio::test]
    async fn an_endless_error_body_yields_at_most_its_cap() {
        let (url, server) = serve(
            "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\n\r\n".into(),
            None,
        )
        .await;
        let body = error_body(get(&url).await).await;
        assert_eq!(body.len() as u64, Caps::ERROR_BODY);
        server.abort();
        assert!(shorten(&format!("x{body}x")).chars().count() <= MAX_DETAIL_CHARS + 1);
    }

    #[test]
    fn retry_after_forms() {
        let now = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        // 1_700_000_000 is Tue, 14 Nov 2023 22:13:20 GMT.
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:13:25 GMT", now),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:13:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn tls_errors_are_recognized() {
        assert!(looks_like_tls(
            "error sending request: client error (Connect): invalid peer certificate: UnknownIssuer"
        ));
        assert!(looks_like_tls(
            "received corrupt message of type InvalidContentType"
        ));
        assert!(!looks_like_tls(
            "tcp connect error: Connection refused (os error 111)"
        ));
    }
}
