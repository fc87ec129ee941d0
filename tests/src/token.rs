//! An in-process token server for distribution's `auth: token:` (the docker token protocol,
//! <https://distribution.github.io/distribution/spec/auth/token/>).
//!
//! What distribution 2.8 checks (registry/auth/token/token.go, `Token.Verify`): `iss` equals
//! the configured `issuer`; `aud` equals the configured `service` and is a JSON *string* (the
//! claim set declares `Audience string`, so an array makes the token malformed); `exp`/`nbf`
//! within 60 s of leeway; a non-empty signature; and the signing key, found here through the
//! `x5c` header: the first certificate must verify against the `rootcertbundle` pool (Go's
//! `x509.Verify` accepts a self-signed certificate that is itself in the pool), and libtrust
//! verifies the JWS signature with its public key. For ES256 libtrust wants the fixed-size
//! `r || s` signature (64 bytes), which is ring's `ECDSA_P256_SHA256_FIXED_SIGNING`. Finally the
//! `access` claim must contain every (type, name, action) the request needs.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use ring::rand::{SecureRandom as _, SystemRandom};
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

use crate::certs::SigningCert;

/// The `service` the registry is configured with and tokens are issued for.
pub(crate) const SERVICE: &str = "cairn-test-registry";
/// The `issuer` the registry trusts.
pub(crate) const ISSUER: &str = "cairn-test-token-issuer";
/// Lifetime of an issued token, reported as `expires_in`.
pub(crate) const TOKEN_TTL_SECS: u64 = 300;

/// One request the token server answered.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// The `service` query parameter, if any.
    pub service: Option<String>,
    /// Every `scope` query parameter, decoded (e.g. `repository:foo/bar:pull,push`).
    pub scopes: Vec<String>,
    /// The user named in the Basic credentials, if any were sent.
    pub user: Option<String>,
    /// Whether a token was issued (credentials and service were right).
    pub granted: bool,
    /// When the request arrived.
    pub at: Instant,
}

/// Signs tokens and checks credentials; shared by the HTTP handler and `Registry` helpers.
#[derive(Debug)]
pub(crate) struct Issuer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    x5c: String,
    user: String,
    password: String,
    log: Mutex<Vec<TokenRequest>>,
}

impl Issuer {
    pub(crate) fn new(cert: &SigningCert, user: &str, password: &str) -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &cert.key_pkcs8, &rng)
            .map_err(|e| anyhow::anyhow!("load token signing key (PKCS#8 P-256): {e}"))?;
        Ok(Self {
            key,
            rng,
            x5c: cert.cert_der_b64.clone(),
            user: user.to_owned(),
            password: password.to_owned(),
            log: Mutex::new(Vec::new()),
        })
    }

    /// The requests answered so far.
    pub(crate) fn requests(&self) -> Vec<TokenRequest> {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Mints a token for `subject` granting exactly the actions named in `scopes`
    /// (`type:name:action,action`).
    pub(crate) fn mint(&self, subject: &str, scopes: &[String]) -> anyhow::Result<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("clock before 1970")?
            .as_secs();
        let mut jti = [0u8; 16];
        self.rng
            .fill(&mut jti)
            .map_err(|_| anyhow::anyhow!("random jti"))?;
        let header = json!({ "typ": "JWT", "alg": "ES256", "x5c": [self.x5c] });
        let claims = json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + TOKEN_TTL_SECS,
            "nbf": now.saturating_sub(1),
            "iat": now,
            "jti": hex::encode(jti),
            "access": access_claim(scopes),
        });
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let signing_input = format!(
            "{}.{}",
            b64.encode(serde_json::to_vec(&header)?),
            b64.encode(serde_json::to_vec(&claims)?)
        );
        let sig = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| anyhow::anyhow!("sign token"))?;
        Ok(format!("{signing_input}.{}", b64.encode(sig.as_ref())))
    }

    fn handle(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let params = query_params(req.uri().query().unwrap_or(""));
        let service = params.get("service").and_then(|v| v.first()).cloned();
        // A scope parameter may hold several space-separated scopes.
        let scopes: Vec<String> = params
            .get("scope")
            .into_iter()
            .flatten()
            .flat_map(|s| s.split(' '))
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let creds = basic_credentials(req);
        let user = creds.as_ref().map(|(u, _)| u.clone());
        let authorized = creds
            .as_ref()
            .is_some_and(|(u, p)| *u == self.user && *p == self.password);
        let service_ok = service.as_deref().is_none_or(|s| s == SERVICE);

        let response = if req.method() != hyper::Method::GET || req.uri().path() != "/token" {
            error_response(
                StatusCode::NOT_FOUND,
                "NOT_FOUND",
                "only GET /token is served",
            )
        } else if !authorized {
            let mut r = error_response(
                StatusCode::UNAUTHORIZED,
                "UNAUTHORIZED",
                "valid Basic credentials are required",
            );
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Basic realm=\"cairn-tests token server\""),
            );
            r
        } else if !service_ok {
            error_response(StatusCode::BAD_REQUEST, "DENIED", "unknown service")
        } else {
            match self.mint(user.as_deref().unwrap_or_default(), &scopes) {
                Ok(token) => json_response(
                    StatusCode::OK,
                    &json!({
                        "token": token,
                        "access_token": token,
                        "expires_in": TOKEN_TTL_SECS,
                    }),
                ),
                Err(e) => error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "UNKNOWN",
                    &format!("{e:#}"),
                ),
            }
        };
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(TokenRequest {
                service,
                scopes,
                user,
                granted: response.status() == StatusCode::OK,
                at: Instant::now(),
            });
        response
    }
}

/// Serves `issuer` on 127.0.0.1 (port chosen by the kernel) on the current tokio runtime and
/// returns the bound address. The accept loop ends when the runtime shuts down.
pub(crate) async fn serve(issuer: Arc<Issuer>) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind((crate::util::LOCALHOST, 0))
        .await
        .context("bind token server on 127.0.0.1")?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let issuer = issuer.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let response = issuer.handle(&req);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

/// The `access` claim for `scopes`: one entry per resource, actions merged.
fn access_claim(scopes: &[String]) -> serde_json::Value {
    let mut merged: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for scope in scopes {
        // type:name:actions, where the name itself may contain ':' (a registry host:port).
        let Some((kind, rest)) = scope.split_once(':') else {
            continue;
        };
        let Some((name, actions)) = rest.rsplit_once(':') else {
            continue;
        };
        let entry = merged
            .entry((kind.to_owned(), name.to_owned()))
            .or_default();
        for action in actions.split(',').filter(|a| !a.is_empty()) {
            if !entry.iter().any(|a| a == action) {
                entry.push(action.to_owned());
            }
        }
    }
    merged
        .into_iter()
        .map(|((kind, name), actions)| json!({ "type": kind, "name": name, "actions": actions }))
        .collect()
}

fn basic_credentials(req: &Request<Incoming>) -> Option<(String, String)> {
    let value = req
        .headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_owned(), password.to_owned()))
}

/// Parses an `application/x-www-form-urlencoded` query into name -> values.
pub(crate) fn query_params(query: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.entry(percent_decode(k))
            .or_default()
            .push(percent_decode(v));
    }
    out
}

fn percent_decode(s: &str) -> String {
    fn hex_val(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_val(bytes[i + 1]), hex_val(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(status: StatusCode, code: &str, message: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &json!({ "errors": [{ "code": code, "message": message }] }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_params_decode_percent_and_repeat() {
        let p = query_params("service=reg&scope=repository%3Afoo%2Fbar%3Apull&scope=a:b:push");
        assert_eq!(p["service"], vec!["reg"]);
        assert_eq!(p["scope"], vec!["repository:foo/bar:pull", "a:b:push"]);
    }

    #[test]
    fn percent_decode_keeps_malformed_escapes() {
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%41+b"), "A b");
    }

    #[test]
    fn access_claim_merges_actions_per_resource() {
        let claim = access_claim(&[
            "repository:foo:pull".into(),
            "repository:foo:push,pull".into(),
            "repository:127.0.0.1:5000/x:pull".into(),
            "garbage".into(),
        ]);
        assert_eq!(
            claim,
            json!([
                { "type": "repository", "name": "127.0.0.1:5000/x", "actions": ["pull"] },
                { "type": "repository", "name": "foo", "actions": ["pull", "push"] },
            ])
        );
    }
}
