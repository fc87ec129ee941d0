//! The build context: a directory (or a tar stream unpacked into one) that
//! `COPY` and `ADD` read from, with the ignore rules applied.
//!
//! Every lookup is relative to a descriptor of the context root and walks
//! one path element at a time without following symlinks through the
//! kernel: a symlink met on the way is read and its target resolved as if
//! the context were `/` (what BuildKit does for sources, and what
//! `openat2(RESOLVE_IN_ROOT)` does), so no source can name a file outside
//! the context.
//!
//! What a set of sources puts under a destination is described once (one
//! list of entries relative to the destination) and then either written as
//! a tar stream ([`tar_sources`]) or hashed ([`checksum`]), so the cache key
//! covers exactly what the tar holds.
//!
//! For the side that extracts the stream (chrooted in the container): every
//! name and every hard link target is relative to the destination
//! directory; a directory comes before its contents; sources come in the
//! order given, so a later entry of the same name replaces an earlier one
//! (as a later source overwrites an earlier one in BuildKit); owners are 0
//! for context files (`--chown` is the extractor's) and the archive's own
//! for extracted `ADD` archives; a single [`SourceKind::File`] source is one
//! entry named [`Source::name`], which `COPY a.txt /dest/b.txt` renames.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Stat};

use crate::ignore::{clean, has_glob_meta, ElementGlob, Ignore, IgnoreError};

mod archive;
mod tree;
mod untar;

pub use tree::{checksum, tar_sources, TarOptions, TarStats};

/// An open build context.
#[derive(Debug)]
pub struct Context {
    root: PathBuf,
    fd: OwnedFd,
    ignore: Ignore,
}

/// What one `COPY`/`ADD` source names in the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The source as written (after variable expansion).
    pub pattern: String,
    /// The resolved path: context-relative, slash-separated, no symlinks;
    /// `""` is the context root.
    pub path: String,
    /// The name the source is copied under: the last element of the path
    /// as written or matched, before a symlink there is followed (BuildKit
    /// and buildah copy a symlink source's target under the link's name).
    pub name: String,
    /// What it is.
    pub kind: SourceKind,
}

/// The kind of a resolved source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A file (or another non-directory: a FIFO, a device).
    File,
    /// A directory: its contents are copied.
    Dir,
    /// A local tar archive, plain or gzip/bzip2/xz/zstd compressed, found
    /// by its magic bytes; only [`Context::sources_for_add`] reports it.
    Archive,
}

/// Why a context could not be read or a source not resolved.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    /// The context directory cannot be opened.
    #[error("opening the build context {path}: {source}; check that it is a readable directory")]
    Open {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A source names nothing in the context.
    #[error("COPY source \"{pattern}\" not found in the build context {context} ({hint})")]
    NotFound {
        /// The source as written.
        pattern: String,
        /// The context directory.
        context: PathBuf,
        /// What to check.
        hint: &'static str,
    },
    /// A source is a malformed glob.
    #[error("COPY source \"{pattern}\" is not a valid pattern: {reason}")]
    BadPattern {
        /// The source as written.
        pattern: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// Too many symlinks on the way (a loop).
    #[error(
        "COPY source \"{pattern}\": more than 40 symlinks met resolving it (a loop?); fix the links in the build context"
    )]
    SymlinkLoop {
        /// The source as written.
        pattern: String,
    },
    /// A file of the context cannot be read.
    #[error("{op} {path} in the build context {context}: {source}; make it readable or exclude it in .containerignore")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The context-relative path.
        path: String,
        /// The context directory.
        context: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A name is not UTF-8.
    #[error("{path:?} in the build context is not a UTF-8 name; rename it or exclude it in .containerignore")]
    NotUtf8 {
        /// The path, lossily shown.
        path: String,
    },
    /// A file changed size between its stat and its read.
    #[error("{path} in the build context changed while being read (expected {expected} bytes); build again when nothing writes to the context")]
    Changed {
        /// The context-relative path.
        path: String,
        /// Its size when listed.
        expected: u64,
    },
    /// An `ADD` archive cannot be read.
    #[error("ADD archive {path}: {reason}; check the archive (or COPY it to keep it packed)")]
    Archive {
        /// The context-relative path.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A tar context has an entry that cannot be unpacked safely.
    #[error("build context tar entry \"{entry}\": {reason}; rebuild the archive with plain relative names")]
    TarEntry {
        /// The entry's name.
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// The tar context stream cannot be read or unpacked.
    #[error("reading the build context tar stream into {scratch}: {source}; check the archive")]
    TarStream {
        /// Where it was being unpacked.
        scratch: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The output stream failed.
    #[error(
        "writing the COPY tar stream: {0}; the extracting side has probably failed, see its error"
    )]
    Write(io::Error),
    /// The ignore file is bad.
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
}

/// The hint of a "not found" error.
const HINT_EXCLUDED: &str = "excluded by .containerignore or .dockerignore? check it";
const HINT_INSIDE: &str =
    "sources are resolved inside the context: \"..\" and symlinks cannot leave it";

/// Linux's limit on symlinks followed in one lookup.
const MAX_SYMLINKS: usize = 40;

/// A path resolved inside the context.
struct Resolved {
    path: String,
    stat: Stat,
    /// Whether `..` or a symlink tried to climb above the root on the way.
    clamped: bool,
}

impl Context {
    /// Opens a context directory; `ignore` says which of its files a build
    /// does not see.
    pub fn open(dir: &Path, ignore: Ignore) -> Result<Context, ContextError> {
        let fd = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ContextError::Open {
            path: dir.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Context {
            root: dir.to_path_buf(),
            fd,
            ignore,
        })
    }

    /// Unpacks a tar context (plain, gzip, bzip2, xz or zstd, by magic bytes)
    /// into `scratch`, a new empty directory the caller owns and removes,
    /// and opens it. No entry lands outside `scratch`: absolute names are
    /// made relative, a `..` that climbs out and a path through a symlink
    /// or a file are refused, hard links must point inside. Its own
    /// `.containerignore`/`.dockerignore` apply when `ignore_from_tar`.
    pub fn from_tar(
        r: impl io::Read,
        scratch: &Path,
        ignore_from_tar: bool,
    ) -> Result<Context, ContextError> {
        untar::unpack(r, scratch)?;
        let ignore = if ignore_from_tar {
            Ignore::read_for(scratch, None)?
        } else {
            Ignore::default()
        };
        Context::open(scratch, ignore)
    }

    /// The context directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ignore rules in force.
    pub fn ignore(&self) -> &Ignore {
        &self.ignore
    }

    /// Resolves `COPY` sources (already variable-expanded) in order. A
    /// glob (`*`, `?`, `[...]`, `\` per path element, as Go's
    /// `filepath.Match`) expands to the context entries it matches, in name
    /// order; a glob matching nothing and a path that does not exist (or is
    /// excluded) are errors. `..` and symlinks are resolved inside the
    /// context; a symlink source (also the last element) is followed.
    pub fn sources(&self, patterns: &[String]) -> Result<Vec<Source>, ContextError> {
        self.resolve_sources(patterns, false)
    }

    /// [`Context::sources`] for `ADD`: a file that is a local tar archive
    /// (plain or compressed, by magic bytes) is reported as
    /// [`SourceKind::Archive`], to be extracted at the destination.
    pub fn sources_for_add(&self, patterns: &[String]) -> Result<Vec<Source>, ContextError> {
        self.resolve_sources(patterns, true)
    }

    fn resolve_sources(
        &self,
        patterns: &[String],
        detect_archives: bool,
    ) -> Result<Vec<Source>, ContextError> {
        let mut out = Vec::new();
        for pattern in patterns {
            // BuildKit joins the source to "/" and cleans: `..` stops at
            // the root.
            let rel = clean(&format!("/{pattern}"))[1..].to_string();
            let lexical = clean(pattern);
            let climbs = lexical == ".." || lexical.starts_with("../") || lexical.starts_with('/');
            let not_found = |clamped: bool| ContextError::NotFound {
                pattern: pattern.clone(),
                context: self.root.clone(),
                hint: if clamped || climbs {
                    HINT_INSIDE
                } else {
                    HINT_EXCLUDED
                },
            };
            let candidates = if has_glob_meta(&rel) {
                self.glob(pattern, &rel)?
            } else {
                vec![rel]
            };
            let before = out.len();
            let mut clamped_any = false;
            for cand in candidates {
                let Some(res) = self.resolve(pattern, &cand)? else {
                    continue;
                };
                clamped_any |= res.clamped;
                let ft = FileType::from_raw_mode(res.stat.st_mode);
                if ft == FileType::Socket || !self.visible(&res.path, ft == FileType::Directory) {
                    continue;
                }
                let kind = if ft == FileType::Directory {
                    SourceKind::Dir
                } else if detect_archives
                    && ft == FileType::RegularFile
                    && self.is_archive(&res.path)?
                {
                    SourceKind::Archive
                } else {
                    SourceKind::File
                };
                let name = cand.rsplit('/').next().unwrap_or("").to_string();
                out.push(Source {
                    pattern: pattern.clone(),
                    path: res.path,
                    name,
                    kind,
                });
            }
            if out.len() == before {
                return Err(not_found(clamped_any));
            }
        }
        Ok(out)
    }

    /// Whether the transferred context would hold `path`: not excluded, or
    /// a directory an exception may re-include something under.
    fn visible(&self, path: &str, is_dir: bool) -> bool {
        path.is_empty()
            || !self.ignore.is_excluded(path)
            || (is_dir && self.ignore.may_include_under(path))
    }

    /// Expands a glob source element by element, in name order; symlinked
    /// directories on the way are followed inside the context.
    fn glob(&self, pattern: &str, rel: &str) -> Result<Vec<String>, ContextError> {
        let mut cands = vec![String::new()];
        for elem in rel.split('/') {
            let mut next = Vec::new();
            if !has_glob_meta(elem) {
                for c in cands {
                    next.push(join(&c, elem));
                }
                cands = next;
                continue;
            }
            let glob = ElementGlob::new(elem).map_err(|reason| ContextError::BadPattern {
                pattern: pattern.to_string(),
                reason,
            })?;
            for c in cands {
                let Some(res) = self.resolve(pattern, &c)? else {
                    continue;
                };
                if FileType::from_raw_mode(res.stat.st_mode) != FileType::Directory {
                    continue;
                }
                let dir = self.open_dir(&res.path)?;
                for (name, st) in self.list(&dir, &res.path)? {
                    let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                    if glob.matches(&name) && self.visible(&join(&res.path, &name), is_dir) {
                        next.push(join(&c, &name));
                    }
                }
            }
            cands = next;
        }
        Ok(cands)
    }

    /// Resolves a context-relative path one element at a time, symlinks
    /// (the last element's too) read and resolved inside the root. `None`: it does not exist (or
    /// goes through an excluded symlink, which the build does not see).
    fn resolve(&self, pattern: &str, rel: &str) -> Result<Option<Resolved>, ContextError> {
        let mut todo: std::collections::VecDeque<String> =
            rel.split('/').map(str::to_string).collect();
        let mut stack: Vec<(String, OwnedFd)> = Vec::new();
        let mut hops = 0;
        let mut clamped = false;
        let mut last: Option<(String, Stat)> = None;
        while let Some(elem) = todo.pop_front() {
            if elem.is_empty() || elem == "." {
                continue;
            }
            if last.is_some() {
                // A non-directory with more elements after it: ENOTDIR.
                return Ok(None);
            }
            if elem == ".." {
                clamped |= stack.pop().is_none();
                continue;
            }
            let parent: BorrowedFd<'_> = stack.last().map_or(self.fd.as_fd(), |(_, fd)| fd.as_fd());
            let here = join(&stack_path(&stack), &elem);
            let st = match rustix::fs::statat(parent, elem.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::NOTDIR) => return Ok(None),
                Err(e) => return Err(self.io("looking up", &here, e)),
            };
            let ft = FileType::from_raw_mode(st.st_mode);
            if ft == FileType::Symlink {
                if self.ignore.is_excluded(&here) {
                    return Ok(None);
                }
                hops += 1;
                if hops > MAX_SYMLINKS {
                    return Err(ContextError::SymlinkLoop {
                        pattern: pattern.to_string(),
                    });
                }
                let target = rustix::fs::readlinkat(parent, elem.as_str(), Vec::new())
                    .map_err(|e| self.io("reading the symlink", &here, e))?;
                let target = String::from_utf8(target.into_bytes())
                    .map_err(|_| ContextError::NotUtf8 { path: here.clone() })?;
                if target.starts_with('/') {
                    stack.clear();
                }
                for (i, t) in target.split('/').enumerate() {
                    todo.insert(i, t.to_string());
                }
                // `..` past the root in the target counts as climbing.
                let depth = stack.len() as isize;
                if climbs_above(&target, depth) {
                    clamped = true;
                }
                continue;
            }
            if ft == FileType::Directory {
                let fd = rustix::fs::openat(
                    parent,
                    elem.as_str(),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.io("opening", &here, e))?;
                stack.push((elem, fd));
            } else {
                last = Some((here, st));
            }
        }
        if let Some((path, stat)) = last {
            return Ok(Some(Resolved {
                path,
                stat,
                clamped,
            }));
        }
        let path = stack_path(&stack);
        let fd = stack.last().map_or(self.fd.as_fd(), |(_, fd)| fd.as_fd());
        let stat = rustix::fs::fstat(fd).map_err(|e| self.io("looking up", &path, e))?;
        Ok(Some(Resolved {
            path,
            stat,
            clamped,
        }))
    }

    /// Opens a resolved (symlink-free) context path for reading; the
    /// kernel refuses any symlink on the way, so a path changed into a
    /// symlink after it was listed is not followed.
    fn open_resolved(&self, path: &str, flags: OFlags) -> Result<OwnedFd, ContextError> {
        let p = if path.is_empty() { "." } else { path };
        rustix::fs::openat2(
            &self.fd,
            p,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .map_err(|e| self.io("opening", path, e))
    }

    fn open_dir(&self, path: &str) -> Result<OwnedFd, ContextError> {
        self.open_resolved(path, OFlags::RDONLY | OFlags::DIRECTORY)
    }

    /// The entries of a directory (not `.`/`..`), sorted by name, each
    /// with its `lstat`.
    fn list(&self, dir: &OwnedFd, path: &str) -> Result<Vec<(String, Stat)>, ContextError> {
        let d = rustix::fs::Dir::read_from(dir).map_err(|e| self.io("listing", path, e))?;
        let mut out = Vec::new();
        for ent in d {
            let ent = ent.map_err(|e| self.io("listing", path, e))?;
            let raw = ent.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let name = std::str::from_utf8(raw)
                .map_err(|_| ContextError::NotUtf8 {
                    path: join(path, &String::from_utf8_lossy(raw)),
                })?
                .to_string();
            let st = rustix::fs::statat(dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
                .map_err(|e| self.io("looking up", &join(path, &name), e))?;
            out.push((name, st));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    fn is_archive(&self, path: &str) -> Result<bool, ContextError> {
        let fd = self.open_resolved(path, OFlags::RDONLY)?;
        archive::is_archive(std::fs::File::from(fd)).map_err(|e| self.io("reading", path, e))
    }

    fn io(&self, op: &'static str, path: &str, e: impl Into<io::Error>) -> ContextError {
        ContextError::Io {
            op,
            path: if path.is_empty() {
                ".".to_string()
            } else {
                path.to_string()
            },
            context: self.root.clone(),
            source: e.into(),
        }
    }
}

/// `a/b` from `a` and `b`; `b` from `""` and `b`.
pub(crate) fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}/{b}")
    }
}

fn stack_path(stack: &[(String, OwnedFd)]) -> String {
    stack
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether a relative symlink target, met at `depth` directories below
/// the root, climbs above the root (an absolute one does not: it is
/// context-relative).
fn climbs_above(target: &str, depth: isize) -> bool {
    if target.starts_with('/') {
        return false;
    }
    let mut d = depth;
    for e in target.split('/') {
        match e {
            ".." => {
                d -= 1;
                if d < 0 {
                    return true;
                }
            }
            "" | "." => {}
            _ => d += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests;
