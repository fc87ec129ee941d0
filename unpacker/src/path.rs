//! Layer entry names, made safe once: relative, no `.` or `..`, no empty
//! components, so nothing downstream ever has to think about escaping.

use std::fmt;

/// A normalized path inside an image root: zero or more non-empty byte
/// components, none of them `.`, `..`, or containing `/` or NUL. The empty
/// path is the root itself.
#[derive(
    Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize, serde::Deserialize,
)]
pub struct RootPath(Vec<Vec<u8>>);

impl RootPath {
    /// The root.
    pub fn root() -> RootPath {
        RootPath(Vec::new())
    }

    /// Normalizes a name as found in a tar header or link target, lexically:
    /// leading `/` dropped, `.` and empty components skipped, `..` removes
    /// the previous component and never climbs above the root (it is
    /// re-rooted, the way a chroot would see it). Names with NUL bytes are
    /// refused.
    pub fn normalize(raw: &[u8]) -> Result<RootPath, PathError> {
        if raw.contains(&0) {
            return Err(PathError::Nul);
        }
        let mut parts: Vec<Vec<u8>> = Vec::new();
        for c in raw.split(|&b| b == b'/') {
            match c {
                b"" | b"." => {}
                b".." => {
                    parts.pop();
                }
                c => parts.push(c.to_vec()),
            }
        }
        Ok(RootPath(parts))
    }

    /// Builds from components that are already valid (used by the planner
    /// when it joins a resolved directory and a name).
    pub(crate) fn from_components(parts: Vec<Vec<u8>>) -> RootPath {
        debug_assert!(parts.iter().all(|p| valid_component(p)));
        RootPath(parts)
    }

    /// The components.
    pub fn components(&self) -> &[Vec<u8>] {
        &self.0
    }

    /// Whether this is the root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The last component, unless root.
    pub fn file_name(&self) -> Option<&[u8]> {
        self.0.last().map(Vec::as_slice)
    }

    /// Everything but the last component (the root's parent is the root).
    pub fn parent(&self) -> RootPath {
        let mut p = self.0.clone();
        p.pop();
        RootPath(p)
    }

    /// This path with one more component.
    pub fn join(&self, name: &[u8]) -> RootPath {
        let mut p = self.0.clone();
        p.push(name.to_vec());
        RootPath(p)
    }

    /// `a/b/c` as bytes (empty for the root).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.join(&b'/')
    }
}

pub(crate) fn valid_component(c: &[u8]) -> bool {
    !c.is_empty() && c != b"." && c != b".." && !c.contains(&b'/') && !c.contains(&0)
}

impl fmt::Debug for RootPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "/{}", String::from_utf8_lossy(&self.to_bytes()))
    }
}

impl fmt::Display for RootPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A name that cannot be made safe.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A NUL byte inside a name.
    #[error("entry name contains a NUL byte")]
    Nul,
}

/// The whiteout meaning of a name's last component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Whiteout {
    /// `.wh..wh..opq`: the directory's lower contents are hidden.
    Opaque,
    /// `.wh.<name>`: `<name>` from lower layers is removed.
    Remove(Vec<u8>),
}

/// Recognizes OCI whiteout names. `.wh.` alone, `.wh..` and `.wh...` (which
/// would name nothing, the directory itself or its parent) are refused.
pub fn whiteout(name: &[u8]) -> Option<Result<Whiteout, Vec<u8>>> {
    let rest = name.strip_prefix(b".wh.")?;
    if rest == b".wh..opq" {
        return Some(Ok(Whiteout::Opaque));
    }
    if valid_component(rest) {
        Some(Ok(Whiteout::Remove(rest.to_vec())))
    } else {
        Some(Err(name.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> String {
        String::from_utf8(RootPath::normalize(s.as_bytes()).unwrap().to_bytes()).unwrap()
    }

    #[test]
    fn normalization_table() {
        let cases = [
            ("etc/passwd", "etc/passwd"),
            ("./etc/passwd", "etc/passwd"),
            ("/etc/passwd", "etc/passwd"),
            ("etc//passwd/", "etc/passwd"),
            ("./", ""),
            (".", ""),
            ("/", ""),
            ("", ""),
            ("../etc/passwd", "etc/passwd"),
            ("../../../../etc/shadow", "etc/shadow"),
            ("a/../../b", "b"),
            ("a/b/../c", "a/c"),
            ("a/./b/.", "a/b"),
            ("usr/..", ""),
            ("...", "..."),
            ("a/.../b", "a/.../b"),
        ];
        for (raw, want) in cases {
            assert_eq!(n(raw), want, "{raw:?}");
        }
        assert_eq!(RootPath::normalize(b"a\0b"), Err(PathError::Nul));
    }

    #[test]
    fn whiteout_names() {
        assert_eq!(whiteout(b"file"), None);
        assert_eq!(
            whiteout(b".wh.file"),
            Some(Ok(Whiteout::Remove(b"file".to_vec())))
        );
        assert_eq!(whiteout(b".wh..wh..opq"), Some(Ok(Whiteout::Opaque)));
        assert_eq!(whiteout(b".wh.."), Some(Err(b".wh..".to_vec())));
        assert_eq!(whiteout(b".wh..."), Some(Err(b".wh...".to_vec())));
        assert_eq!(whiteout(b".wh."), Some(Err(b".wh.".to_vec())));
        assert_eq!(
            whiteout(b".wh...."),
            Some(Ok(Whiteout::Remove(b"...".to_vec())))
        );
    }

    #[test]
    fn parent_and_join() {
        let p = RootPath::normalize(b"a/b/c").unwrap();
        assert_eq!(p.parent().to_bytes(), b"a/b");
        assert_eq!(p.file_name(), Some(&b"c"[..]));
        assert_eq!(RootPath::root().parent(), RootPath::root());
        assert_eq!(p.parent().join(b"d").to_bytes(), b"a/b/d");
        assert_eq!(format!("{p}"), "/a/b/c");
    }
}
