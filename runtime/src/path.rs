//! Paths inside the container root.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// An absolute, normalised path inside the container root, such as
/// `/dev/shm`. It is never joined to a host path as a string: the real
/// implementation resolves it with `openat2(RESOLVE_IN_ROOT)` against a file
/// descriptor of the root, so neither `..` nor a symlink can leave the root.
///
/// Parsing rejects relative paths, NUL bytes and `..` components (a mount
/// target has no business climbing), and folds `//` and `.`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InRoot(String);

impl InRoot {
    /// Validate and normalise `path`.
    pub fn new(path: &str) -> Result<Self> {
        if !path.starts_with('/') {
            return Err(Error::Usage(format!(
                "container path {path:?} is not absolute: write it as seen from inside the container, starting with /"
            )));
        }
        if path.contains('\0') {
            return Err(Error::Usage(format!(
                "container path {path:?} contains a NUL byte"
            )));
        }
        let mut out = String::with_capacity(path.len());
        for comp in path.split('/') {
            match comp {
                "" | "." => {}
                ".." => {
                    return Err(Error::Refused {
                        path: path.into(),
                        reason: "it contains a '..' component; give the path without '..'".into(),
                    })
                }
                c => {
                    out.push('/');
                    out.push_str(c);
                }
            }
        }
        if out.is_empty() {
            out.push('/');
        }
        Ok(InRoot(out))
    }

    /// The root itself (`/`).
    pub fn root() -> Self {
        InRoot("/".into())
    }

    /// The path as a string, always starting with `/`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components after the leading `/` (none for the root).
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// `self` followed by `name` (one component, no `/`).
    pub fn join(&self, name: &str) -> Self {
        debug_assert!(!name.contains('/') && name != ".." && !name.is_empty());
        if self.0 == "/" {
            InRoot(format!("/{name}"))
        } else {
            InRoot(format!("{}/{name}", self.0))
        }
    }

    /// The path relative to the root (`dev/shm`; `.` for the root), for
    /// `openat2` against the root's descriptor.
    pub fn relative(&self) -> &str {
        if self.0 == "/" {
            "."
        } else {
            &self.0[1..]
        }
    }

    /// Whether `self` is `other` or below it.
    pub fn starts_with(&self, other: &InRoot) -> bool {
        other.0 == "/"
            || self.0 == other.0
            || (self.0.starts_with(&other.0) && self.0.as_bytes()[other.0.len()] == b'/')
    }
}

impl fmt::Display for InRoot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for InRoot {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        InRoot::new(&s).map_err(|e| e.to_string())
    }
}

impl From<InRoot> for String {
    fn from(p: InRoot) -> String {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_rejects() {
        let cases: &[(&str, Option<&str>)] = &[
            ("/", Some("/")),
            ("//", Some("/")),
            ("/dev/shm", Some("/dev/shm")),
            ("/dev//shm/", Some("/dev/shm")),
            ("/./etc/./hosts", Some("/etc/hosts")),
            ("dev/shm", None),
            ("", None),
            ("/../etc", None),
            ("/a/../../b", None),
            ("/a\0b", None),
        ];
        for (input, want) in cases {
            let got = InRoot::new(input).ok().map(|p| p.as_str().to_owned());
            assert_eq!(got.as_deref(), *want, "input {input:?}");
        }
    }

    #[test]
    fn relative_join_prefix() {
        assert_eq!(InRoot::root().relative(), ".");
        assert_eq!(InRoot::new("/dev/shm").unwrap().relative(), "dev/shm");
        assert_eq!(InRoot::root().join("dev").as_str(), "/dev");
        assert_eq!(
            InRoot::new("/dev").unwrap().join("pts").as_str(),
            "/dev/pts"
        );
        let dev = InRoot::new("/dev").unwrap();
        assert!(InRoot::new("/dev/pts").unwrap().starts_with(&dev));
        assert!(dev.starts_with(&dev));
        assert!(!InRoot::new("/devices").unwrap().starts_with(&dev));
        assert!(dev.starts_with(&InRoot::root()));
    }
}
