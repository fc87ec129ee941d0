//! Image references (`[registry/]repository[:tag][@digest]`), parsed and
//! normalized once, with docker's rules: `debian` is `docker.io/library/debian:latest`.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// The registry a name without a registry component resolves to by default.
pub const DOCKER_HUB: &str = "docker.io";

const MAX_NAME_LEN: usize = 255;
const MAX_TAG_LEN: usize = 128;

/// A fully qualified image reference: registry, repository and a tag or a digest.
///
/// Always normalized: the registry is explicit (`docker.io`, never
/// `index.docker.io`), single-component Docker Hub repositories get `library/`,
/// and a reference with neither tag nor digest has the tag `latest`. A
/// reference carrying both a tag and a digest keeps only the digest, as podman
/// does: the digest is what is fetched.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {input:?}: {reason}")]
pub struct ReferenceError {
    input: String,
    reason: String,
}

impl ReferenceError {
    fn new(input: &str, reason: impl Into<String>) -> ReferenceError {
        ReferenceError {
            input: input.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A reference as written, before a registry is chosen for a short name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    registry: Option<String>,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Name {
    /// Parses `[registry/]path[:tag][@digest]`, validating every part.
    pub fn parse(input: &str) -> Result<Name, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::new(input, "empty name"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((rest, d)) => {
                let digest = d
                    .parse::<Digest>()
                    .map_err(|e| ReferenceError::new(input, e.to_string()))?;
                (rest, Some(digest))
            }
            None => (input, None),
        };
        // A tag follows the last ':' that comes after the last '/', so a
        // registry port (`host:5000/x`) is not mistaken for one.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&rest[..i], Some(rest[i + 1..].to_owned()))
            }
            None => (rest, None),
        };
        if let Some(tag) = &tag {
            validate_tag(input, tag)?;
        }
        if name.len() > MAX_NAME_LEN {
            return Err(ReferenceError::new(
                input,
                format!("repository name longer than {MAX_NAME_LEN} characters"),
            ));
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path)) if looks_like_registry(first) => (Some(first), path),
            _ => (None, name),
        };
        if let Some(registry) = registry {
            validate_registry(input, registry)?;
        }
        validate_path(input, path)?;
        Ok(Name {
            registry: registry.map(|r| normalize_registry(r).to_owned()),
            path: path.to_owned(),
            tag,
            digest,
        })
    }

    /// Whether the name had no registry component (`debian`, `library/debian`).
    pub fn is_short(&self) -> bool {
        self.registry.is_none()
    }

    /// The reference this name denotes on `registry` (used for short names;
    /// an explicit registry in the name wins). Fails if the qualified name
    /// (`registry/repository`) is longer than 255 characters.
    pub fn qualify(&self, registry: &str) -> Result<Reference, ReferenceError> {
        let registry = normalize_registry(self.registry.as_deref().unwrap_or(registry));
        let repository = if registry == DOCKER_HUB && !self.path.contains('/') {
            format!("library/{}", self.path)
        } else {
            self.path.clone()
        };
        let tag = match (&self.tag, &self.digest) {
            (_, Some(_)) => None,
            (Some(t), None) => Some(t.clone()),
            (None, None) => Some("latest".to_owned()),
        };
        let r = Reference {
            registry: registry.to_owned(),
            repository,
            tag,
            digest: self.digest.clone(),
        };
        if r.name().len() > MAX_NAME_LEN {
            return Err(ReferenceError::new(
                &r.to_string(),
                format!("repository name longer than {MAX_NAME_LEN} characters"),
            ));
        }
        Ok(r)
    }
}

impl Reference {
    /// The registry host, with port if any (`docker.io`, `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/debian`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, unless the reference is by digest.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, for references by digest.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `registry/repository`, the REPOSITORY column of `cairn images`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag or digest as the registry API wants it in a manifest URL.
    pub fn tag_or_digest(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => "latest".to_owned(),
        }
    }

    /// The same repository at `digest`.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: None,
            digest: Some(digest),
        }
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    /// Parses with docker's normalization: a short name means Docker Hub.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Name::parse(s)?.qualify(DOCKER_HUB)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        match (&self.digest, &self.tag) {
            (Some(d), _) => write!(f, "@{d}"),
            (None, Some(t)) => write!(f, ":{t}"),
            (None, None) => Ok(()),
        }
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Docker's rule: the first component is a registry if it has a dot or a
/// port, or is `localhost`.
fn looks_like_registry(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost" || first.starts_with('[')
}

fn normalize_registry(registry: &str) -> &str {
    match registry {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB,
        r => r,
    }
}

fn validate_registry(input: &str, registry: &str) -> Result<(), ReferenceError> {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let (v6, after) = rest
            .split_once(']')
            .ok_or_else(|| ReferenceError::new(input, "unterminated IPv6 address"))?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(ReferenceError::new(input, "invalid IPv6 address"));
        }
        match after {
            "" => return Ok(()),
            p => (
                "",
                Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| ReferenceError::new(input, "invalid registry"))?,
                ),
            ),
        }
    } else {
        match registry.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (registry, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ReferenceError::new(
                input,
                format!("invalid registry port {port:?}"),
            ));
        }
    }
    if !host.is_empty() {
        let ok = host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
        if !ok {
            return Err(ReferenceError::new(
                input,
                format!("invalid registry host {host:?}"),
            ));
        }
    }
    Ok(())
}

/// Repository path: components of `[a-z0-9]+` joined by `.`, `_`, `__` or
/// runs of `-`, separated by `/`.
fn validate_path(input: &str, path: &str) -> Result<(), ReferenceError> {
    if path.is_empty() {
        return Err(ReferenceError::new(input, "empty repository name"));
    }
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ReferenceError::new(
            input,
            "repository name must be lowercase",
        ));
    }
    for component in path.split('/') {
        if !valid_component(component) {
            return Err(ReferenceError::new(
                input,
                format!("invalid repository name component {component:?}"),
            ));
        }
    }
    Ok(())
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    let alnum = |x: u8| x.is_ascii_lowercase() || x.is_ascii_digit();
    if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator run: ".", "_", "__" or one or more "-".
        let start = i;
        while i < b.len() && !alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn validate_tag(input: &str, tag: &str) -> Result<(), ReferenceError> {
    let b = tag.as_bytes();
    let word = |x: u8| x.is_ascii_alphanumeric() || x == b'_';
    let ok = !b.is_empty()
        && b.len() <= MAX_TAG_LEN
        && word(b[0])
        && b.iter().all(|&x| word(x) || x == b'.' || x == b'-');
    if ok {
        Ok(())
    } else {
        Err(ReferenceError::new(
            input,
            format!("invalid tag {tag:?} (at most {MAX_TAG_LEN} of [A-Za-z0-9_.-], not starting with . or -)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalizes_like_docker() {
        let cases = [
            ("debian", "docker.io/library/debian:latest"),
            ("debian:bookworm", "docker.io/library/debian:bookworm"),
            ("library/debian:12", "docker.io/library/debian:12"),
            ("user/app", "docker.io/user/app:latest"),
            ("docker.io/debian", "docker.io/library/debian:latest"),
            ("index.docker.io/debian:x", "docker.io/library/debian:x"),
            ("quay.io/podman/stable", "quay.io/podman/stable:latest"),
            ("localhost/app:1.0", "localhost/app:1.0"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            ("127.0.0.1:5000/a/b/c:v1", "127.0.0.1:5000/a/b/c:v1"),
            ("[::1]:5000/app:t", "[::1]:5000/app:t"),
            (
                "reg.example:443/x__y/a-b--c.d_e",
                "reg.example:443/x__y/a-b--c.d_e:latest",
            ),
            (
                &format!("debian@{D}"),
                &format!("docker.io/library/debian@{D}"),
            ),
            (
                &format!("debian:12@{D}"),
                &format!("docker.io/library/debian@{D}"),
            ),
            ("debian:My_Tag.1-x", "docker.io/library/debian:My_Tag.1-x"),
        ];
        for (input, want) in cases {
            let r: Reference = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.to_string(), want, "{input}");
        }
    }

    #[test]
    fn parts() {
        let r: Reference = "127.0.0.1:5000/a/b:v1".parse().unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "a/b");
        assert_eq!(r.tag(), Some("v1"));
        assert_eq!(r.name(), "127.0.0.1:5000/a/b");
        assert_eq!(r.tag_or_digest(), "v1");
        let d: Digest = D.parse().unwrap();
        let by = r.with_digest(d.clone());
        assert_eq!(by.tag(), None);
        assert_eq!(by.digest(), Some(&d));
        assert_eq!(by.tag_or_digest(), D);
    }

    #[test]
    fn short_names_qualify_against_search_registries() {
        let n = Name::parse("debian:12").unwrap();
        assert!(n.is_short());
        assert_eq!(
            n.qualify("quay.io").unwrap().to_string(),
            "quay.io/debian:12"
        );
        assert_eq!(
            n.qualify("docker.io").unwrap().to_string(),
            "docker.io/library/debian:12"
        );
        let q = Name::parse("quay.io/x/y").unwrap();
        assert!(!q.is_short());
        assert_eq!(
            q.qualify("docker.io").unwrap().to_string(),
            "quay.io/x/y:latest"
        );
        // The length limit holds for the qualified name (found by fuzzing:
        // a 250-character short name grows past 255 with docker.io/library/).
        let long = "a".repeat(250);
        assert!(Name::parse(&long).is_ok());
        assert!(long.parse::<Reference>().is_err());
    }

    #[test]
    fn rejects_malformed() {
        let cases = [
            ("", "empty name"),
            ("Debian", "lowercase"),
            ("debian:", "invalid tag"),
            ("debian:-x", "invalid tag"),
            ("debian:a/b", "invalid registry port"),
            ("debian@sha256:abc", "64 lowercase hex"),
            ("debian@md5:abc", "unsupported algorithm"),
            ("a//b", "invalid repository name component"),
            ("-a", "invalid repository name component"),
            ("a_", "invalid repository name component"),
            ("a___b", "invalid repository name component"),
            ("a/../b", "invalid repository name component"),
            ("host:port/app", "invalid registry port"),
            ("bad_host.com/app", "invalid registry host"),
            ("[zz]/app", "invalid IPv6"),
            ("app with space", "invalid"),
        ];
        for (input, want) in cases {
            let err = input.parse::<Reference>().unwrap_err().to_string();
            assert!(err.contains(want), "{input:?}: {err}");
            assert!(err.contains(&format!("{input:?}")), "{err}");
        }
        let long = format!("a/{}", "b".repeat(300));
        assert!(long.parse::<Reference>().is_err());
        let long_tag = format!("a:{}", "t".repeat(129));
        assert!(long_tag.parse::<Reference>().is_err());
    }
}
