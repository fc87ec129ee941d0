//! `login`: checking credentials against a registry before they are stored.

use std::time::Duration;

use crate::auth::Credentials;
use crate::client::{api_host, chain, install_crypto_provider, RegistryOptions};
use crate::error::{Error, RegistryError};
use crate::tls;

/// Checks `creds` against `registry` the way `podman login` does: ping
/// `/v2/`, then answer its challenge (Basic, or a token request for Bearer).
pub async fn verify_login(
    registry: &str,
    creds: &Credentials,
    opts: &RegistryOptions,
) -> Result<(), Error> {
    install_crypto_provider();
    let fail = |kind| Error::Registry {
        reference: registry.to_owned(),
        kind,
    };
    let probe: cairn_store::Reference = format!("{registry}/cairn-login-probe").parse()?;
    let insecure = match opts.tls_verify {
        Some(v) => !v,
        None => opts.conf.is_insecure(&probe),
    };
    let roots = if insecure {
        tls::Roots::default()
    } else {
        tls::Roots::for_registry(registry, opts.cert_dir.as_deref())?
    };
    let builder = reqwest::Client::builder()
        .danger_accept_invalid_certs(insecure)
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(60));
    let builder = if roots.exclusive {
        builder.tls_certs_only(roots.reqwest())
    } else {
        builder.tls_certs_merge(roots.reqwest())
    };
    let http = builder.build().map_err(|e| {
        fail(RegistryError::Other(format!(
            "cannot set up an HTTP client: {e}"
        )))
    })?;
    let host = api_host(registry);
    let mut url = format!("https://{host}/v2/");
    let mut resp = http.get(&url).send().await;
    if resp.is_err() && insecure {
        url = format!("http://{host}/v2/");
        resp = http.get(&url).send().await;
    }
    let resp = resp.map_err(|e| {
        let detail = chain(&e);
        fail(RegistryError::Unreachable {
            registry: registry.to_owned(),
            tls_hint: !insecure,
            detail,
        })
    })?;
    if resp.status().is_success() {
        return Ok(());
    }
    let denied = |detail: String| {
        fail(RegistryError::Unauthorized {
            registry: registry.to_owned(),
            detail,
            auth_file: opts.auth_files.primary().display().to_string(),
        })
    };
    let challenge = resp
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let status = if let Some(params) = challenge.strip_prefix("Bearer ") {
        let realm = param(params, "realm").ok_or_else(|| {
            fail(RegistryError::Other(format!(
                "bearer challenge without realm: {challenge}"
            )))
        })?;
        let mut req = http
            .get(&realm)
            .basic_auth(&creds.username, Some(&creds.password))
            .query(&[("account", creds.username.as_str())]);
        if let Some(service) = param(params, "service") {
            req = req.query(&[("service", service.as_str())]);
        }
        req.send()
            .await
            .map_err(|e| {
                fail(RegistryError::Unreachable {
                    registry: realm.clone(),
                    tls_hint: false,
                    detail: chain(&e),
                })
            })?
            .status()
    } else {
        http.get(&url)
            .basic_auth(&creds.username, Some(&creds.password))
            .send()
            .await
            .map_err(|e| {
                fail(RegistryError::Unreachable {
                    registry: registry.to_owned(),
                    tls_hint: false,
                    detail: chain(&e),
                })
            })?
            .status()
    };
    if status.is_success() {
        Ok(())
    } else {
        Err(denied(format!(
            "invalid username or password (HTTP {})",
            status.as_u16()
        )))
    }
}

/// A `key="value"` parameter of a WWW-Authenticate challenge.
pub(crate) fn param(params: &str, key: &str) -> Option<String> {
    let mut rest = params;
    while let Some(i) = rest.find(&format!("{key}=\"")) {
        let before_ok = i == 0 || matches!(rest.as_bytes()[i - 1], b',' | b' ');
        let value_start = i + key.len() + 2;
        let end = rest[value_start..].find('"')? + value_start;
        if before_ok {
            return Some(rest[value_start..end].to_owned());
        }
        rest = &rest[end..];
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn challenge_params() {
        let c = r#"realm="https://auth.example/token",service="registry.example",scope="repository:a:pull""#;
        assert_eq!(
            crate::login::param(c, "realm").unwrap(),
            "https://auth.example/token"
        );
        assert_eq!(
            crate::login::param(c, "service").unwrap(),
            "registry.example"
        );
        assert_eq!(crate::login::param(c, "missing"), None);
        assert_eq!(
            crate::login::param(r#"xrealm="a",realm="b""#, "realm").unwrap(),
            "b"
        );
    }
}
