//! Registry credentials in podman's and docker's auth files
//! (containers-auth.json(5)), and docker credential helpers.
//!
//! Read order, first match wins: `--authfile` or `$REGISTRY_AUTH_FILE`; else
//! `$XDG_RUNTIME_DIR/containers/auth.json` (or `/run/containers/<uid>/auth.json`);
//! then `$XDG_CONFIG_HOME/containers/auth.json`, then
//! `$DOCKER_CONFIG/config.json` (or `~/.docker/config.json`). `login` and
//! `logout` write the first of these, as podman does.

use std::fmt;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use cairn_fsutil::{Durability, IoContext as _, PathError};
use serde_json::{json, Map, Value};

use crate::error::Error;
use cairn_store::{Reference, DOCKER_HUB};

/// A username and password (or token) for one registry.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Credentials {
    /// Parses `user:password` as `--creds` takes it.
    pub fn parse(s: &str) -> Result<Credentials, String> {
        match s.split_once(':') {
            Some((u, p)) if !u.is_empty() => Ok(Credentials {
                username: u.to_owned(),
                password: p.to_owned(),
            }),
            _ => Err("credentials must be given as USERNAME:PASSWORD".to_owned()),
        }
    }
}

/// The auth files in effect.
#[derive(Debug, Clone)]
pub struct AuthFiles {
    files: Vec<PathBuf>,
}

impl AuthFiles {
    /// The files podman would use; `explicit` (`--authfile`) replaces the
    /// primary one.
    pub fn discover(explicit: Option<&Path>) -> AuthFiles {
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let home = env("HOME");
        let primary = explicit
            .map(Path::to_path_buf)
            .or_else(|| env("REGISTRY_AUTH_FILE"))
            .unwrap_or_else(|| match env("XDG_RUNTIME_DIR") {
                Some(d) => d.join("containers/auth.json"),
                None => PathBuf::from(format!(
                    "/run/containers/{}/auth.json",
                    nix::unistd::getuid()
                )),
            });
        let mut files = vec![primary];
        if explicit.is_none() {
            if let Some(cfg) =
                env("XDG_CONFIG_HOME").or_else(|| home.as_ref().map(|h| h.join(".config")))
            {
                files.push(cfg.join("containers/auth.json"));
            }
            match env("DOCKER_CONFIG") {
                Some(d) => files.push(d.join("config.json")),
                None => {
                    if let Some(h) = &home {
                        files.push(h.join(".docker/config.json"));
                    }
                }
            }
        }
        files.dedup();
        AuthFiles { files }
    }

    /// Exactly these files, the first being written by login.
    pub fn from_files(files: Vec<PathBuf>) -> AuthFiles {
        AuthFiles { files }
    }

    /// The file `login` writes.
    pub fn primary(&self) -> &Path {
        &self.files[0]
    }

    /// Credentials for a reference: the most specific key (`registry/repo`,
    /// then its parents, then `registry`) in the first file that has one,
    /// credential helpers included.
    pub fn credentials_for(&self, reference: &Reference) -> Result<Option<Credentials>, Error> {
        let mut keys = Vec::new();
        let mut path = reference.name();
        loop {
            keys.push(path.clone());
            match path.rfind('/') {
                Some(i) => path.truncate(i),
                None => break,
            }
        }
        self.lookup(reference.registry(), &keys)
    }

    /// Credentials stored for a registry host (what `login` wrote).
    pub fn credentials_for_registry(&self, registry: &str) -> Result<Option<Credentials>, Error> {
        self.lookup(registry, &[registry.to_owned()])
    }

    fn lookup(&self, registry: &str, keys: &[String]) -> Result<Option<Credentials>, Error> {
        for file in &self.files {
            let Some(doc) = read_json(file)? else {
                continue;
            };
            if let Some(helper) = doc
                .get("credHelpers")
                .and_then(|h| h.get(registry))
                .and_then(Value::as_str)
            {
                if let Some(c) = run_helper(helper, registry, file)? {
                    return Ok(Some(c));
                }
            }
            if let Some(auths) = doc.get("auths").and_then(Value::as_object) {
                for key in keys {
                    for (k, v) in auths {
                        if normalize_key(k) == *key {
                            if let Some(c) = decode_entry(v, file, k)? {
                                return Ok(Some(c));
                            }
                        }
                    }
                }
            }
            if let Some(helper) = doc.get("credsStore").and_then(Value::as_str) {
                if let Some(c) = run_helper(helper, registry, file)? {
                    return Ok(Some(c));
                }
            }
        }
        Ok(None)
    }

    /// Stores credentials for `key` (a registry, or `registry/namespace`) in
    /// the primary file, atomically, mode 0600.
    pub fn store(&self, key: &str, creds: &Credentials) -> Result<PathBuf, Error> {
        let file = self.primary().to_owned();
        let mut doc = read_json(&file)?.unwrap_or_else(|| json!({}));
        let obj = doc.as_object_mut().ok_or_else(|| Error::Config {
            path: file.clone(),
            message: "auth file is not a JSON object".into(),
        })?;
        let auths = obj
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| Error::Config {
                path: file.clone(),
                message: "\"auths\" is not a JSON object".into(),
            })?;
        auths.retain(|k, _| normalize_key(k) != key);
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", creds.username, creds.password));
        auths.insert(key.to_owned(), json!({ "auth": encoded }));
        write_json(&file, &doc)?;
        Ok(file)
    }

    /// Removes the entry for `key` from the primary file. Returns whether
    /// there was one.
    pub fn remove(&self, key: &str) -> Result<bool, Error> {
        let file = self.primary().to_owned();
        let Some(mut doc) = read_json(&file)? else {
            return Ok(false);
        };
        let Some(auths) = doc.get_mut("auths").and_then(Value::as_object_mut) else {
            return Ok(false);
        };
        let before = auths.len();
        auths.retain(|k, _| normalize_key(k) != key);
        if auths.len() == before {
            return Ok(false);
        }
        write_json(&file, &doc)?;
        Ok(true)
    }

    /// Removes every entry from the primary file (`logout --all`).
    pub fn remove_all(&self) -> Result<(), Error> {
        let file = self.primary().to_owned();
        let Some(mut doc) = read_json(&file)? else {
            return Ok(());
        };
        if let Some(obj) = doc.as_object_mut() {
            obj.insert("auths".into(), Value::Object(Map::new()));
        }
        write_json(&file, &doc)
    }
}

/// `https://index.docker.io/v1/` → `docker.io`; `http://host:5000` →
/// `host:5000`; plain keys unchanged.
fn normalize_key(key: &str) -> String {
    let (stripped, had_scheme) = match key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
    {
        Some(s) => (s, true),
        None => (key, false),
    };
    // Legacy docker keys are URLs whose path is an API version, not a repository.
    let host_or_path = if had_scheme {
        stripped.split('/').next().unwrap_or(stripped)
    } else {
        stripped.trim_end_matches('/')
    };
    let (host, rest) = match host_or_path.split_once('/') {
        Some((h, r)) => (h, Some(r)),
        None => (host_or_path, None),
    };
    let host = match host {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
        h => h,
    };
    match rest {
        Some(r) => format!("{host}/{r}"),
        None => host.to_owned(),
    }
}

fn decode_entry(v: &Value, file: &Path, key: &str) -> Result<Option<Credentials>, Error> {
    let bad = |m: &str| Error::Config {
        path: file.to_owned(),
        message: format!("entry {key:?}: {m}"),
    };
    if let Some(auth) = v
        .get("auth")
        .and_then(Value::as_str)
        .filter(|a| !a.is_empty())
    {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad("\"auth\" is not base64"))?;
        let s = String::from_utf8(raw).map_err(|_| bad("\"auth\" is not UTF-8"))?;
        let (u, p) = s
            .split_once(':')
            .ok_or_else(|| bad("\"auth\" must encode user:password"))?;
        return Ok(Some(Credentials {
            username: u.to_owned(),
            password: p.to_owned(),
        }));
    }
    if let (Some(u), Some(p)) = (
        v.get("username").and_then(Value::as_str),
        v.get("password").and_then(Value::as_str),
    ) {
        return Ok(Some(Credentials {
            username: u.to_owned(),
            password: p.to_owned(),
        }));
    }
    Ok(None)
}

fn run_helper(helper: &str, registry: &str, file: &Path) -> Result<Option<Credentials>, Error> {
    let program = format!("docker-credential-{helper}");
    let child = Command::new(&program)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            return Err(Error::Config {
                path: file.to_owned(),
                message: format!(
                    "credential helper {program} configured for {registry} cannot run: {e}"
                ),
            })
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(registry.as_bytes());
    }
    let out = child.wait_with_output().map_err(|e| Error::Config {
        path: file.to_owned(),
        message: format!("credential helper {program}: {e}"),
    })?;
    if !out.status.success() {
        // "credentials not found" is the helper's way of saying none.
        return Ok(None);
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| Error::Config {
        path: file.to_owned(),
        message: format!("credential helper {program} printed invalid JSON: {e}"),
    })?;
    match (
        v.get("Username").and_then(Value::as_str),
        v.get("Secret").and_then(Value::as_str),
    ) {
        (Some(u), Some(s)) => Ok(Some(Credentials {
            username: u.to_owned(),
            password: s.to_owned(),
        })),
        _ => Ok(None),
    }
}

fn read_json(file: &Path) -> Result<Option<Value>, Error> {
    match fs::read(file) {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(None),
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Config {
                path: file.to_owned(),
                message: format!("invalid auth file: {e}"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(PathError::new("read auth file", file, e).into()),
    }
}

/// Replaces `file` with `doc`, mode 0600, durably
/// ([`cairn_fsutil::write_atomic`]: a temp file beside it, created without
/// following a planted symlink, fsynced and renamed over it). A crash
/// leaves the old file or the new one. A missing directory is created
/// private (0700).
fn write_json(file: &Path, doc: &Value) -> Result<(), Error> {
    let dir = file.parent().unwrap_or(Path::new("."));
    if !dir.exists() {
        fs::create_dir_all(dir).io_context("create directory", dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).io_context("chmod", dir)?;
    }
    let mut bytes = serde_json::to_vec_pretty(doc).expect("JSON values serialize");
    bytes.push(b'\n');
    cairn_fsutil::write_atomic(file, &bytes, 0o600, Durability::Durable)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(u: &str, p: &str) -> Credentials {
        Credentials {
            username: u.into(),
            password: p.into(),
        }
    }

    #[test]
    fn keys_normalize() {
        assert_eq!(normalize_key("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(normalize_key("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(normalize_key("quay.io/org/repo"), "quay.io/org/repo");
        assert_eq!(normalize_key("registry-1.docker.io"), "docker.io");
    }

    #[test]
    fn most_specific_key_and_file_order_win() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.json");
        let b = dir.path().join("b.json");
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        fs::write(
            &a,
            json!({"auths": {
                "quay.io": {"auth": enc("host:h")},
                "quay.io/org": {"auth": enc("org:o")},
            }})
            .to_string(),
        )
        .unwrap();
        fs::write(
            &b,
            json!({"auths": {
                "https://index.docker.io/v1/": {"auth": enc("hub:x")},
                "quay.io/org/repo": {"auth": enc("later-file:r")},
            }})
            .to_string(),
        )
        .unwrap();
        let files = AuthFiles::from_files(vec![a, b]);
        let get = |r: &str| files.credentials_for(&r.parse().unwrap()).unwrap();
        assert_eq!(get("quay.io/org/repo"), Some(creds("org", "o")));
        assert_eq!(get("quay.io/other/x"), Some(creds("host", "h")));
        assert_eq!(get("debian"), Some(creds("hub", "x")));
        assert_eq!(get("ghcr.io/x"), None);
    }

    #[test]
    fn login_logout_round_trip_keeps_other_fields() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/auth.json");
        let files = AuthFiles::from_files(vec![f.clone()]);
        files.store("127.0.0.1:5000", &creds("u", "p:w")).unwrap();
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut doc: Value = serde_json::from_slice(&fs::read(&f).unwrap()).unwrap();
        doc["credHelpers"] = json!({});
        fs::write(&f, doc.to_string()).unwrap();
        assert_eq!(
            files.credentials_for_registry("127.0.0.1:5000").unwrap(),
            Some(creds("u", "p:w"))
        );
        files.store("127.0.0.1:5000", &creds("u2", "q")).unwrap();
        assert_eq!(
            files.credentials_for_registry("127.0.0.1:5000").unwrap(),
            Some(creds("u2", "q"))
        );
        assert!(files.remove("127.0.0.1:5000").unwrap());
        assert!(!files.remove("127.0.0.1:5000").unwrap());
        let doc: Value = serde_json::from_slice(&fs::read(&f).unwrap()).unwrap();
        assert!(doc.get("credHelpers").is_some());
        assert_eq!(
            files.credentials_for_registry("127.0.0.1:5000").unwrap(),
            None
        );
    }

    #[test]
    fn malformed_files_name_themselves() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("auth.json");
        fs::write(&f, r#"{"auths": {"x.io": {"auth": "%%%"}}}"#).unwrap();
        let files = AuthFiles::from_files(vec![f.clone()]);
        let err = files
            .credentials_for(&"x.io/a".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&f.display().to_string()) && err.contains("base64"),
            "{err}"
        );
        fs::write(&f, "{").unwrap();
        let err = files
            .credentials_for(&"x.io/a".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid auth file"), "{err}");
    }

    #[test]
    fn creds_flag() {
        assert_eq!(Credentials::parse("a:b:c").unwrap(), creds("a", "b:c"));
        assert!(Credentials::parse("nocolon").is_err());
        assert!(Credentials::parse(":x").is_err());
        assert!(!format!("{:?}", creds("a", "secret")).contains("secret"));
    }

    #[test]
    fn write_json_never_writes_through_a_planted_temp_path() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        // A symlink at the temp name write_json used to use.
        std::os::unix::fs::symlink(&victim, dir.path().join(".auth.json.tmp")).unwrap();
        let file = dir.path().join("auth.json");
        for i in 0..3 {
            write_json(&file, &json!({"auths": {"r": {"auth": i.to_string()}}})).unwrap();
        }
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        let meta = fs::symlink_metadata(&file).unwrap();
        assert!(meta.is_file());
        assert_eq!(meta.mode() & 0o777, 0o600);
        assert!(fs::read_to_string(&file).unwrap().contains("\"2\""));
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 3, "no temp file left: {names:?}");
    }
}
