//! A registry connection: `oci-client` for manifests, blobs and the auth
//! flows, plus what it lacks — retries with backoff that honor
//! `Retry-After`, resumable blob downloads into the store, credentials from
//! auth files, plain-HTTP fallback for insecure registries.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;

use super::auth::{AuthFiles, Credentials};
use super::conf::RegistriesConf;
use super::tls::Roots;
use crate::digest::Digest;
use crate::error::{Error, RegistryError};
use crate::layout::BlobWriter;
use crate::media::{types, Descriptor};
use crate::reference::Reference;

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

/// Something that failed and may be worth another attempt.
#[derive(Debug)]
enum Failure {
    Retry {
        detail: String,
        rate_limited: bool,
        fatal_if_exhausted: Option<Error>,
    },
    Fatal(Error),
}

/// Called before each retry with what failed, the attempt number and the delay.
pub(crate) type RetryHook = Box<dyn Fn(&str, u32, Duration) + Send + Sync>;

/// A connection to one registry for one image.
pub(crate) struct RegistryClient {
    client: oci_client::Client,
    raw: reqwest::Client,
    auth: RegistryAuth,
    scheme: &'static str,
    reference: Reference,
    insecure: bool,
    retries: u32,
    retry_delay: Option<Duration>,
    auth_file: String,
    on_retry: RetryHook,
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
        let protocol = if scheme == "http" {
            ClientProtocol::HttpsExcept(vec![host.clone()])
        } else {
            ClientProtocol::Https
        };
        let (tls_certs_only, extra_root_certificates) = if roots.exclusive {
            (roots.oci(), Vec::new())
        } else {
            (Vec::new(), roots.oci())
        };
        let config = ClientConfig {
            protocol,
            accept_invalid_certificates: insecure,
            tls_certs_only,
            extra_root_certificates,
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("cairn/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        let client = oci_client::Client::try_from(config).map_err(|e| Error::Registry {
            reference: reference.to_string(),
            kind: RegistryError::Other(format!("cannot set up the registry client: {e}")),
        })?;
        let creds = match &opts.credentials {
            Some(c) => Some(c.clone()),
            None => opts.auth_files.credentials_for(reference)?,
        };
        let auth = match creds {
            Some(c) => RegistryAuth::Basic(c.username, c.password),
            None => RegistryAuth::Anonymous,
        };
        Ok(RegistryClient {
            client,
            raw,
            auth,
            scheme,
            reference: reference.clone(),
            insecure,
            retries: opts.retries,
            retry_delay: opts.retry_delay,
            auth_file: opts.auth_files.primary().display().to_string(),
            on_retry,
        })
    }

    /// Fetches a manifest or index by the reference's tag or digest: exact
    /// bytes, their digest (verified against a digest reference), size-capped.
    pub(crate) async fn manifest(&self, reference: &Reference) -> Result<(Bytes, Digest), Error> {
        let oci_ref = reference.to_oci();
        let what = format!("manifest {}", reference.tag_or_digest());
        let (bytes, _) = self
            .with_retries(&what, "manifests", &reference.tag_or_digest(), || async {
                self.client
                    .pull_manifest_raw(&oci_ref, &self.auth, types::ACCEPTED_MANIFESTS)
                    .await
                    .map_err(|e| self.classify(e))
            })
            .await?;
        if bytes.len() as u64 > crate::images::MAX_MANIFEST_SIZE {
            return Err(self.error(RegistryError::Other(format!(
                "manifest is {} bytes, more than the {} allowed",
                bytes.len(),
                crate::images::MAX_MANIFEST_SIZE
            ))));
        }
        let actual = Digest::sha256_of(&bytes);
        if let Some(want) = reference.digest() {
            let ok = match want.algorithm() {
                crate::digest::Algorithm::Sha256 => &actual == want,
                alg => {
                    let mut h = crate::digest::Hasher::new(alg);
                    h.update(&bytes);
                    &h.finish() == want
                }
            };
            if !ok {
                return Err(Error::DigestMismatch {
                    what: format!("manifest of {reference}"),
                    expected: want.clone(),
                    actual,
                });
            }
            return Ok((bytes, want.clone()));
        }
        Ok((bytes, actual))
    }

    /// Downloads a blob into `writer`, continuing from what it already holds
    /// (a resumed partial) with a Range request, retrying and resuming
    /// after connection drops, 429s and 5xx. Calls `progress` with the total
    /// bytes held after each chunk. The caller commits the writer.
    pub(crate) async fn blob(
        &self,
        desc: &Descriptor,
        writer: &mut BlobWriter,
        progress: &(dyn Fn(u64) + Send + Sync),
    ) -> Result<(), Error> {
        let oci_ref = self.reference.to_oci();
        let digest = desc.digest.to_string();
        let layer = oci_client::client::LayerDescriptor {
            digest: &digest,
            urls: &None,
        };
        let mut attempt = 0u32;
        loop {
            let offset = writer.written();
            let result: Result<(), Failure> = async {
                if offset == desc.size && desc.size > 0 {
                    return Ok(());
                }
                let response = self
                    .client
                    .pull_blob_stream_partial(&oci_ref, &layer, offset, None)
                    .await
                    .map_err(|e| self.classify(e))?;
                let mut stream = match response {
                    BlobResponse::Partial(s) => s,
                    BlobResponse::Full(s) => {
                        if offset > 0 {
                            // The server ignored the Range: start over.
                            writer.restart().map_err(Failure::Fatal)?;
                        }
                        s
                    }
                };
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| Failure::Retry {
                        detail: format!("reading blob {digest}: {}", chain(&e)),
                        rate_limited: false,
                        fatal_if_exhausted: Some(Error::SizeMismatch {
                            what: format!(
                                "blob from {} (connection lost: {})",
                                self.reference.registry(),
                                chain(&e)
                            ),
                            digest: desc.digest.clone(),
                            expected: desc.size,
                            got: writer.written(),
                        }),
                    })?;
                    writer.write(&chunk).map_err(Failure::Fatal)?;
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
                        fatal_if_exhausted: Some(Error::SizeMismatch {
                            what: format!("blob from {}", self.reference.registry()),
                            digest: desc.digest.clone(),
                            expected: desc.size,
                            got: writer.written(),
                        }),
                    });
                }
                Ok(())
            }
            .await;
            match result {
                Ok(()) => return Ok(()),
                Err(Failure::Fatal(e)) => return Err(self.rename_blob_error(e)),
                Err(Failure::Retry {
                    detail,
                    rate_limited,
                    fatal_if_exhausted,
                }) => {
                    if attempt >= self.retries {
                        // Part of the blob arrived and the rest never did.
                        let truncated = (writer.written() > 0).then(|| Error::SizeMismatch {
                            what: format!(
                                "blob from {} (gave up after {} attempts: {detail})",
                                self.reference.registry(),
                                attempt + 1
                            ),
                            digest: desc.digest.clone(),
                            expected: desc.size,
                            got: writer.written(),
                        });
                        return Err(fatal_if_exhausted.or(truncated).unwrap_or_else(|| {
                            self.error(RegistryError::GaveUp {
                                registry: self.reference.registry().to_owned(),
                                attempts: attempt + 1,
                                detail,
                            })
                        }));
                    }
                    let delay = self.delay(attempt, rate_limited, "blobs", &digest).await?;
                    (self.on_retry)(&detail, attempt + 1, delay);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    fn rename_blob_error(&self, e: Error) -> Error {
        match e {
            Error::SizeMismatch {
                digest,
                expected,
                got,
                ..
            } => Error::SizeMismatch {
                what: format!("blob from {}", self.reference.registry()),
                digest,
                expected,
                got,
            },
            other => other,
        }
    }

    async fn with_retries<T, F, Fut>(
        &self,
        what: &str,
        kind: &str,
        id: &str,
        mut op: F,
    ) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut attempt = 0u32;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry {
                    detail,
                    rate_limited,
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
                    let delay = self.delay(attempt, rate_limited, kind, id).await?;
                    (self.on_retry)(&format!("{what}: {detail}"), attempt + 1, delay);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
            }
        }
    }

    /// The wait before the next attempt: the registry's `Retry-After` after
    /// a 429 (asked for again with a HEAD, since oci-client does not keep
    /// response headers), else `--retry-delay`, else exponential backoff.
    async fn delay(
        &self,
        attempt: u32,
        rate_limited: bool,
        kind: &str,
        id: &str,
    ) -> Result<Duration, Error> {
        let backoff = self.retry_delay.unwrap_or_else(|| {
            RegistryOptions::BASE_DELAY
                .saturating_mul(1 << attempt.min(16))
                .min(RegistryOptions::MAX_DELAY)
        });
        if !rate_limited {
            return Ok(backoff);
        }
        match self.retry_after(kind, id).await {
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

    async fn retry_after(&self, kind: &str, id: &str) -> Option<Duration> {
        let url = format!(
            "{}://{}/v2/{}/{kind}/{id}",
            self.scheme,
            api_host(self.reference.registry()),
            self.reference.repository()
        );
        let mut req = self.raw.head(&url);
        match &self.auth {
            RegistryAuth::Basic(u, p) => {
                let token = self
                    .client
                    .auth(
                        &self.reference.to_oci(),
                        &self.auth,
                        RegistryOperation::Pull,
                    )
                    .await
                    .ok()
                    .flatten();
                req = match token {
                    Some(t) => req.bearer_auth(t),
                    None => req.basic_auth(u, Some(p)),
                };
            }
            RegistryAuth::Bearer(t) => req = req.bearer_auth(t),
            RegistryAuth::Anonymous => {
                if let Ok(Some(t)) = self
                    .client
                    .auth(
                        &self.reference.to_oci(),
                        &self.auth,
                        RegistryOperation::Pull,
                    )
                    .await
                {
                    req = req.bearer_auth(t);
                }
            }
        }
        let resp = req.send().await.ok()?;
        let value = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)?
            .to_str()
            .ok()?;
        parse_retry_after(value, std::time::SystemTime::now())
    }

    fn error(&self, kind: RegistryError) -> Error {
        Error::Registry {
            reference: self.reference.to_string(),
            kind,
        }
    }

    fn classify(&self, e: OciDistributionError) -> Failure {
        let registry = self.reference.registry().to_owned();
        let unauthorized = |detail: String| {
            Failure::Fatal(self.error(RegistryError::Unauthorized {
                registry: registry.clone(),
                detail,
                auth_file: self.auth_file.clone(),
            }))
        };
        let retry = |detail: String, rate_limited: bool| Failure::Retry {
            detail,
            rate_limited,
            fatal_if_exhausted: None,
        };
        match e {
            OciDistributionError::RequestError(re) => {
                let detail = chain(&re);
                let tls = looks_like_tls(&detail);
                if tls {
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
                        fatal_if_exhausted: Some(self.error(RegistryError::Unreachable {
                            registry,
                            detail,
                            tls_hint: false,
                        })),
                    };
                }
                retry(detail, false)
            }
            OciDistributionError::IoError(io) => retry(chain(&io), false),
            OciDistributionError::ServerError { code, message, .. } => {
                let detail = format!("HTTP {code}: {}", message.trim());
                match code {
                    429 => retry(detail, true),
                    408 | 500..=599 => retry(detail, false),
                    401 | 403 => unauthorized(detail),
                    404 => Failure::Fatal(self.error(RegistryError::NotFound(detail))),
                    _ => Failure::Fatal(self.error(RegistryError::Other(detail))),
                }
            }
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                let detail = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect::<Vec<_>>()
                    .join("; ");
                if codes.iter().any(|c| matches!(c, OciErrorCode::Toomanyrequests)) {
                    return retry(detail, true);
                }
                if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    return unauthorized(detail);
                }
                if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                            | OciErrorCode::NotFound
                    )
                }) {
                    return Failure::Fatal(self.error(RegistryError::NotFound(detail)));
                }
                Failure::Fatal(self.error(RegistryError::Other(detail)))
            }
            OciDistributionError::UnauthorizedError { .. } => {
                unauthorized("HTTP 401 Unauthorized".into())
            }
            OciDistributionError::AuthenticationFailure(m) => {
                unauthorized(format!("token request refused: {}", m.trim()))
            }
            OciDistributionError::DigestError(d) => {
                Failure::Fatal(self.error(RegistryError::Other(format!(
                    "content does not match its digest ({d}); the registry serves corrupt or tampered data"
                ))))
            }
            other => Failure::Fatal(self.error(RegistryError::Other(chain(&other)))),
        }
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
