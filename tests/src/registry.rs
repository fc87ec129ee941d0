//! A real CNCF distribution registry (`docker-registry serve`, 2.8) on 127.0.0.1, with its own
//! config and filesystem storage in a temp dir, optionally behind TLS and htpasswd or token auth.
//!
//! ```no_run
//! use cairn_tests::registry::{Auth, Registry, RegistryOptions};
//! # fn main() -> anyhow::Result<()> {
//! let reg = Registry::start(RegistryOptions::default().with_auth(Auth::htpasswd("u", "p")))?;
//! reg.push("oci:/path/to/layout:tag", "library/hello:1", &[])?;
//! let digest = reg.manifest_digest("library/hello:1")?;
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use base64::Engine as _;

use crate::certs::{self, TlsFiles};
use crate::token::{self, Issuer};
use crate::util::{self, ServerSpec};

pub use crate::token::TokenRequest;

/// How long [`Registry::start`] waits for `GET /v2/` to answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How many ports [`Registry::start`] tries when another process grabs the one it picked.
const PORT_ATTEMPTS: usize = 5;
/// bcrypt cost for the htpasswd file. The registry runs bcrypt on every request, so the
/// minimum cost keeps tests fast; nothing here protects a real secret.
const BCRYPT_COST: u32 = 4;
/// Environment variable naming the registry binary (default `docker-registry` from `$PATH`).
pub const REGISTRY_BIN_ENV: &str = "CAIRN_TEST_REGISTRY_BIN";

/// Media types asked for when fetching a manifest, so the registry returns what was pushed.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.docker.distribution.manifest.v2+json";

/// Client authentication the registry demands.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// Anonymous pull and push.
    #[default]
    None,
    /// HTTP Basic auth against a bcrypt htpasswd file holding this one user.
    Htpasswd {
        /// The only user.
        user: String,
        /// Its password.
        password: String,
    },
    /// Bearer tokens (docker token protocol) from an in-process token server that grants every
    /// requested scope to this one user, authenticated with Basic credentials.
    Token {
        /// The only user.
        user: String,
        /// Its password.
        password: String,
    },
}

impl Auth {
    /// `Auth::Htpasswd` for `user`/`password`.
    pub fn htpasswd(user: &str, password: &str) -> Self {
        Auth::Htpasswd {
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    /// `Auth::Token` for `user`/`password`.
    pub fn token(user: &str, password: &str) -> Self {
        Auth::Token {
            user: user.to_owned(),
            password: password.to_owned(),
        }
    }

    /// The user and password, unless anonymous.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        match self {
            Auth::None => None,
            Auth::Htpasswd { user, password } | Auth::Token { user, password } => {
                Some((user, password))
            }
        }
    }
}

impl fmt::Debug for Auth {
    // Passwords here are throwaway, but keep them out of test logs anyway.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Htpasswd { user, .. } => write!(f, "Htpasswd {{ user: {user:?}, .. }}"),
            Auth::Token { user, .. } => write!(f, "Token {{ user: {user:?}, .. }}"),
        }
    }
}

/// How to start a [`Registry`]. The default is plain HTTP without auth.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Serve HTTPS with a fresh CA and a server certificate for 127.0.0.1 and localhost.
    pub tls: bool,
    /// Client authentication.
    pub auth: Auth,
}

impl RegistryOptions {
    /// Turns TLS on.
    pub fn with_tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Sets the authentication mode.
    pub fn with_auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }
}

/// A raw manifest as served by the registry.
#[derive(Debug, Clone)]
pub struct RawManifest {
    /// The exact bytes.
    pub bytes: Vec<u8>,
    /// The `Content-Type` the registry answered with.
    pub media_type: String,
    /// `sha256:<hex>` of `bytes` (checked against `Docker-Content-Digest`).
    pub digest: String,
}

/// A running registry; killed and reaped on drop, its temp dir removed.
///
/// Do not keep one in a `static`: statics are never dropped. (If that happens anyway the
/// process still dies with the test binary, see `util::spawn_server`.)
pub struct Registry {
    child: Child,
    host: String,
    options: RegistryOptions,
    storage: PathBuf,
    log_path: PathBuf,
    tls: Option<TlsFiles>,
    issuer: Option<Arc<Issuer>>,
    token_realm: Option<String>,
    client: reqwest::Client,
    // Dropped explicitly in Drop (after the child is dead); Option only for that.
    runtime: Option<tokio::runtime::Runtime>,
    // Last: removed after everything that uses it is gone.
    _dir: tempfile::TempDir,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("host", &self.host)
            .field("pid", &self.child.id())
            .field("options", &self.options)
            .field("storage", &self.storage)
            .field("token_realm", &self.token_realm)
            .finish_non_exhaustive()
    }
}

impl Registry {
    /// Starts a registry and waits until `GET /v2/` answers (200, or 401 with auth on).
    ///
    /// Fails with the registry's log if it exits or does not answer within 20 s.
    pub fn start(options: RegistryOptions) -> anyhow::Result<Registry> {
        util::install_crypto_provider();
        let dir = util::temp_dir("registry")?;
        let storage = dir.path().join("storage");
        std::fs::create_dir(&storage).with_context(|| format!("create {}", storage.display()))?;
        let tls = if options.tls {
            Some(certs::make_tls(&dir.path().join("tls"))?)
        } else {
            None
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cairn-registry-rt")
            .enable_all()
            .build()
            .context("build tokio runtime for the registry helper")?;

        let AuthSetup {
            yaml: auth_yaml,
            issuer,
            token_realm,
        } = AuthSetup::new(&options.auth, dir.path(), &runtime)?;
        let client = api_client(tls.as_ref())?;

        let log_path = dir.path().join("registry.log");
        let mut last_error = None;
        for attempt in 1..=PORT_ATTEMPTS {
            let port = util::free_port()?;
            let host = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            util::write_file(
                &config,
                config_yaml(&host, &storage, tls.as_ref(), &auth_yaml),
            )?;
            let log = std::fs::File::create(&log_path)
                .with_context(|| format!("create {}", log_path.display()))?;
            let mut child = util::spawn_server(ServerSpec {
                argv: vec![registry_bin().into(), "serve".into(), config.into()],
                log,
                env_remove: std::env::vars_os()
                    .map(|(k, _)| k)
                    .filter(|k| k.to_string_lossy().starts_with("REGISTRY_"))
                    .collect(),
            })?;
            let url = format!(
                "{}://{host}/v2/",
                if tls.is_some() { "https" } else { "http" }
            );
            match wait_ready(&mut child, &runtime, &client, &url, &log_path) {
                Ok(()) => {
                    return Ok(Registry {
                        child,
                        host,
                        options,
                        storage,
                        log_path,
                        tls,
                        issuer,
                        token_realm,
                        client,
                        runtime: Some(runtime),
                        _dir: dir,
                    })
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    if !read_log(&log_path).contains("address already in use")
                        || attempt == PORT_ATTEMPTS
                    {
                        return Err(e);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("registry did not start")))
    }

    /// `127.0.0.1:PORT`, the registry part of an image reference.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// `http://127.0.0.1:PORT` or `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host)
    }

    /// The options this registry was started with.
    pub fn options(&self) -> &RegistryOptions {
        &self.options
    }

    /// The user and password clients must present, unless anonymous.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.options.auth.credentials()
    }

    /// The storage driver's root directory (filesystem driver).
    pub fn storage_dir(&self) -> &Path {
        &self.storage
    }

    /// Where the registry keeps the bytes of blob `digest` (`sha256:<hex>`, or bare hex taken as
    /// sha256): `<storage>/docker/registry/v2/blobs/<alg>/<hex[..2]>/<hex>/data`. Overwrite it
    /// to make the registry serve corrupt content.
    pub fn blob_data_path(&self, digest: &str) -> PathBuf {
        let (alg, hex) = digest.split_once(':').unwrap_or(("sha256", digest));
        self.storage
            .join("docker/registry/v2/blobs")
            .join(alg)
            .join(&hex[..hex.len().min(2)])
            .join(hex)
            .join("data")
    }

    /// Everything the registry wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// The CA certificate (PEM) that signed the registry's TLS certificate, when TLS is on.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.ca_cert.as_path())
    }

    /// A directory holding only `ca.crt`, for `skopeo --src-cert-dir`/`--dest-cert-dir` or a
    /// containers `certs.d/<host>` entry, when TLS is on.
    pub fn cert_dir(&self) -> Option<&Path> {
        self.tls.as_ref().map(|t| t.cert_dir.as_path())
    }

    /// The token realm (`http://127.0.0.1:PORT/token`) with [`Auth::Token`].
    pub fn token_realm(&self) -> Option<&str> {
        self.token_realm.as_deref()
    }

    /// The requests the token server answered so far (empty without [`Auth::Token`]); tokens
    /// this helper mints for itself are not included.
    pub fn token_requests(&self) -> Vec<TokenRequest> {
        self.issuer
            .as_ref()
            .map(|i| i.requests())
            .unwrap_or_default()
    }

    /// Copies `src` (any skopeo transport, e.g. `oci:/layout:tag`) to `docker://HOST/dest`,
    /// with `--dest-tls-verify=false` and `--dest-creds` when auth is on. `extra_args` go before
    /// the positional arguments, e.g. `&["--all"]` to push a whole index.
    pub fn push(&self, src: &str, dest_repo_tag: &str, extra_args: &[&str]) -> anyhow::Result<()> {
        let dest = format!("docker://{}/{dest_repo_tag}", self.host);
        let creds = self.creds_arg();
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        if let Some(c) = &creds {
            args.extend(["--dest-creds", c]);
        }
        args.extend_from_slice(extra_args);
        args.extend([src, &dest]);
        util::skopeo(&args)
            .with_context(|| format!("push {src} to {dest}"))
            .map(drop)
    }

    /// Pushes the fixture image `fixture` (one of [`crate::fixtures::refs`]) as `dest_repo_tag`
    /// and returns the reference cairn pulls it by, `HOST/dest_repo_tag`. Panics when the push
    /// fails, with skopeo's error.
    pub fn push_fixture(&self, fixture: &str, dest_repo_tag: &str) -> String {
        self.push(&crate::fixtures::oci_ref(fixture), dest_repo_tag, &[])
            .unwrap_or_else(|e| panic!("push {fixture}: {e:#}"));
        format!("{}/{dest_repo_tag}", self.host)
    }

    /// Copies `docker://HOST/src_repo_tag` to `dest` (e.g. `oci:/layout:tag`), with
    /// `--src-tls-verify=false` and `--src-creds` when auth is on.
    pub fn pull(&self, src_repo_tag: &str, dest: &str, extra_args: &[&str]) -> anyhow::Result<()> {
        let src = format!("docker://{}/{src_repo_tag}", self.host);
        let creds = self.creds_arg();
        let mut args = vec!["copy", "--src-tls-verify=false"];
        if let Some(c) = &creds {
            args.extend(["--src-creds", c]);
        }
        args.extend_from_slice(extra_args);
        args.extend([&src, dest]);
        util::skopeo(&args)
            .with_context(|| format!("pull {src} to {dest}"))
            .map(drop)
    }

    /// Fetches the manifest of `repo_ref` (`repo:tag` or `repo@sha256:...`) over the registry
    /// API, authenticating as the configured user.
    pub fn manifest(&self, repo_ref: &str) -> anyhow::Result<RawManifest> {
        let (repo, reference) = split_repo_ref(repo_ref)?;
        let url = format!("{}/v2/{repo}/manifests/{reference}", self.url());
        let mut req = self
            .client
            .get(&url)
            .header(reqwest::header::ACCEPT, MANIFEST_ACCEPT);
        if let Some(value) = self.authorization(&format!("repository:{repo}:pull"))? {
            req = req.header(reqwest::header::AUTHORIZATION, value);
        }
        let runtime = self.runtime.as_ref().context("registry runtime is gone")?;
        let (status, header_digest, media_type, bytes) = runtime.block_on(async {
            let resp = req.send().await.with_context(|| format!("GET {url}"))?;
            let header = |name: &str| {
                resp.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let digest = header("docker-content-digest");
            let media_type = header("content-type").unwrap_or_default();
            let status = resp.status();
            let bytes = resp.bytes().await.with_context(|| format!("read {url}"))?;
            anyhow::Ok((status, digest, media_type, bytes))
        })?;
        if !status.is_success() {
            bail!(
                "GET {url}: {status}: {}",
                String::from_utf8_lossy(&bytes).trim()
            );
        }
        let digest = util::sha256_digest(&bytes);
        if let Some(h) = header_digest {
            if h != digest {
                bail!("GET {url}: Docker-Content-Digest {h} but the body hashes to {digest}");
            }
        }
        Ok(RawManifest {
            bytes: bytes.to_vec(),
            media_type,
            digest,
        })
    }

    /// The digest (`sha256:<hex>`) of the manifest `repo_ref` (`repo:tag` or `repo@digest`)
    /// points to, hashed from the bytes the registry serves.
    pub fn manifest_digest(&self, repo_ref: &str) -> anyhow::Result<String> {
        Ok(self.manifest(repo_ref)?.digest)
    }

    fn creds_arg(&self) -> Option<String> {
        self.credentials().map(|(u, p)| format!("{u}:{p}"))
    }

    /// The `Authorization` value for one API call needing `scope`.
    fn authorization(&self, scope: &str) -> anyhow::Result<Option<String>> {
        Ok(match &self.options.auth {
            Auth::None => None,
            Auth::Htpasswd { user, password } => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            Auth::Token { user, .. } => {
                let issuer = self.issuer.as_ref().context("token issuer missing")?;
                Some(format!(
                    "Bearer {}",
                    issuer.mint(user, &[scope.to_owned()])?
                ))
            }
        })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // SIGKILL then wait: nothing of the registry's state matters after a test, and wait()
        // reaps it so no zombie is left.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// The `auth:` section of the config and, for token auth, the running token server.
struct AuthSetup {
    yaml: String,
    issuer: Option<Arc<Issuer>>,
    token_realm: Option<String>,
}

impl AuthSetup {
    /// Writes what `auth` needs under `dir` (htpasswd file, token signing certificate) and, for
    /// token auth, starts the token server on `runtime`.
    fn new(auth: &Auth, dir: &Path, runtime: &tokio::runtime::Runtime) -> anyhow::Result<Self> {
        Ok(match auth {
            Auth::None => AuthSetup {
                yaml: String::new(),
                issuer: None,
                token_realm: None,
            },
            Auth::Htpasswd { user, password } => {
                let path = dir.join("htpasswd");
                let hash = bcrypt::hash(password, BCRYPT_COST).context("bcrypt the password")?;
                util::write_file(&path, format!("{user}:{hash}\n"))?;
                AuthSetup {
                    yaml: format!(
                        "auth:\n  htpasswd:\n    realm: cairn-tests\n    path: {}\n",
                        yaml_str(&path)
                    ),
                    issuer: None,
                    token_realm: None,
                }
            }
            Auth::Token { user, password } => {
                let cert = certs::make_signing_cert(&dir.join("token"))?;
                let issuer = Arc::new(Issuer::new(&cert, user, password)?);
                let addr = runtime.block_on(token::serve(issuer.clone()))?;
                let realm = format!("http://{addr}/token");
                AuthSetup {
                    yaml: format!(
                        "auth:\n  token:\n    realm: {}\n    service: {}\n    issuer: {}\n    \
                         rootcertbundle: {}\n",
                        yaml_str(&realm),
                        token::SERVICE,
                        token::ISSUER,
                        yaml_str(&cert.cert_pem)
                    ),
                    issuer: Some(issuer),
                    token_realm: Some(realm),
                }
            }
        })
    }
}

/// The client for readiness probes and API helpers: no proxy, no redirects, and with TLS only
/// the test CA as trust root (so it also proves the certificate satisfies rustls).
fn api_client(tls: Option<&TlsFiles>) -> anyhow::Result<reqwest::Client> {
    let mut client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10));
    if let Some(tls) = tls {
        let pem = std::fs::read(&tls.ca_cert)
            .with_context(|| format!("read {}", tls.ca_cert.display()))?;
        let ca = reqwest::Certificate::from_pem(&pem).context("parse the test CA")?;
        client = client.tls_certs_only([ca]);
    }
    client.build().context("build reqwest client")
}

/// Polls until `GET url` answers 200 or 401, the child exits, or [`START_TIMEOUT`] passes.
fn wait_ready(
    child: &mut Child,
    runtime: &tokio::runtime::Runtime,
    client: &reqwest::Client,
    url: &str,
    log_path: &Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    let mut last;
    loop {
        if let Some(status) = child.try_wait().context("poll registry process")? {
            bail!(
                "registry exited ({status}) before answering {url}; log:\n{}",
                read_log(log_path)
            );
        }
        // send() arms its timeout immediately, so it must run inside the runtime.
        let probe = runtime
            .block_on(async { client.get(url).timeout(Duration::from_secs(2)).send().await });
        match probe {
            Ok(resp) if resp.status().is_success() || resp.status().as_u16() == 401 => {
                return Ok(())
            }
            Ok(resp) => last = format!("status {}", resp.status()),
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() >= deadline {
            bail!(
                "registry at {url} not ready after {START_TIMEOUT:?} (last: {last}); log:\n{}",
                read_log(log_path)
            );
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()))
}

fn registry_bin() -> String {
    std::env::var(REGISTRY_BIN_ENV).unwrap_or_else(|_| "docker-registry".to_owned())
}

/// A YAML double-quoted scalar (JSON strings are valid YAML).
fn yaml_str(s: impl AsRef<std::ffi::OsStr>) -> String {
    serde_json::Value::String(s.as_ref().to_string_lossy().into_owned()).to_string()
}

fn config_yaml(host: &str, storage: &Path, tls: Option<&TlsFiles>, auth_yaml: &str) -> String {
    let tls_yaml = tls
        .map(|t| {
            format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                yaml_str(&t.server_cert),
                yaml_str(&t.server_key)
            )
        })
        .unwrap_or_default();
    // `secret` is set so the registry does not warn and pick a random one; upload purging is
    // off so no background walker touches storage mid-test; the storage health check would add
    // periodic requests to the driver.
    format!(
        "version: 0.1\n\
         log:\n  level: info\n  formatter: text\n  accesslog:\n    disabled: false\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n  \
         maintenance:\n    uploadpurging:\n      enabled: false\n\
         http:\n  addr: {host}\n  secret: cairn-tests-not-secret\n{tls_yaml}\
         {auth_yaml}\
         health:\n  storagedriver:\n    enabled: false\n",
        storage = yaml_str(storage),
    )
}

/// Splits `repo:tag` / `repo@digest` into (repo, reference).
fn split_repo_ref(repo_ref: &str) -> anyhow::Result<(&str, &str)> {
    if let Some((repo, digest)) = repo_ref.split_once('@') {
        return Ok((repo, digest));
    }
    match repo_ref.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => Ok((repo, tag)),
        _ => bail!("{repo_ref:?} is not repo:tag or repo@digest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_repo_ref_handles_tags_and_digests() {
        assert_eq!(split_repo_ref("a/b:1").unwrap(), ("a/b", "1"));
        assert_eq!(split_repo_ref("a@sha256:00").unwrap(), ("a", "sha256:00"));
        assert!(split_repo_ref("a/b").is_err());
    }

    #[test]
    fn auth_debug_hides_passwords() {
        let s = format!("{:?}", Auth::token("alice", "hunter2"));
        assert!(s.contains("alice") && !s.contains("hunter2"), "{s}");
    }
}
