//! What a list of sources puts under a `COPY`/`ADD` destination, as one
//! ordered list of entries, and its two renderings: a tar stream and a
//! checksum.
//!
//! Rules (BuildKit's, checked against buildah 1.28 where it shows them): a
//! directory source contributes its contents, a file source one entry under
//! its name; entries are uid/gid 0 with the mode and mtime on disk (or
//! `--chmod` for files and directories); symlinks are kept as symlinks,
//! hard links between copied files as tar hard links, FIFOs and devices as
//! such; sockets are left out (buildah does too); no xattrs. Within a
//! directory entries come in byte order of their names, parents first.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;

use rustix::fs::{FileType, OFlags, Stat};
use sha2::{Digest, Sha256};

use super::{archive, join, Context, ContextError, Source, SourceKind};
use crate::ignore::Ignore;

/// How a `COPY`/`ADD` writes its sources.
#[derive(Debug, Clone, Default)]
pub struct TarOptions {
    /// `--chmod`: the mode of every copied file and directory.
    pub chmod: Option<u32>,
    /// `ADD`: extract [`SourceKind::Archive`] sources instead of copying
    /// them.
    pub extract_archives: bool,
    /// `--exclude` patterns, `.dockerignore` syntax, matched against the
    /// paths relative to the destination.
    pub exclude: Vec<String>,
}

/// What [`tar_sources`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TarStats {
    /// Entries written (directories, files, links...).
    pub entries: u64,
    /// Bytes of file content written (not counting tar headers).
    pub bytes: u64,
}

/// The type of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink,
    Hardlink,
    Fifo,
    Char,
    Block,
}

/// One entry under the destination.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// Relative to the destination, slash-separated, never empty.
    pub(crate) name: String,
    pub(crate) kind: Kind,
    pub(crate) mode: u32,
    pub(crate) uid: u64,
    pub(crate) gid: u64,
    pub(crate) mtime: u64,
    /// Content bytes (files only).
    pub(crate) size: u64,
    /// A symlink's target, or the entry name a hard link points to.
    pub(crate) link: String,
    pub(crate) dev: (u32, u32),
}

/// A step of the plan: a context entry (with the context path to read a
/// file from) or an archive to extract in place.
enum Item {
    Ctx(Entry, String),
    Archive(String),
}

/// Where entries go.
pub(crate) trait Sink {
    /// Takes one entry; `data` yields exactly `e.size` bytes of a file.
    fn put(&mut self, e: &Entry, data: Option<&mut dyn Read>) -> io::Result<()>;
}

/// Writes the tar stream of what `sources` put under the destination:
/// entries relative to the destination directory, deterministic (the same
/// context gives the same bytes).
pub fn tar_sources(
    ctx: &Context,
    sources: &[Source],
    opts: &TarOptions,
    out: &mut dyn Write,
) -> Result<TarStats, ContextError> {
    let mut sink = TarSink {
        b: tar::Builder::new(out),
        stats: TarStats::default(),
    };
    emit(ctx, sources, opts, &mut sink)?;
    sink.b.finish().map_err(ContextError::Write)?;
    Ok(sink.stats)
}

/// `sha256:HEX` of exactly what [`tar_sources`] writes, without mtimes:
/// per entry its name, type, mode, owner, size, content digest, link
/// target and device numbers (archives to extract: their entries). Each
/// file is read once.
pub fn checksum(
    ctx: &Context,
    sources: &[Source],
    opts: &TarOptions,
) -> Result<String, ContextError> {
    let mut sink = HashSink { h: Sha256::new() };
    emit(ctx, sources, opts, &mut sink)?;
    Ok(format!("sha256:{}", hex::encode(sink.h.finalize())))
}

fn emit(
    ctx: &Context,
    sources: &[Source],
    opts: &TarOptions,
    sink: &mut dyn Sink,
) -> Result<(), ContextError> {
    for item in plan(ctx, sources, opts)? {
        match item {
            Item::Ctx(e, path) if e.kind == Kind::File => {
                let fd = ctx.open_resolved(&path, OFlags::RDONLY)?;
                let mut r = Exact::new(std::fs::File::from(fd), e.size);
                if let Err(err) = sink.put(&e, Some(&mut r)) {
                    return Err(match r.failed.take() {
                        Some(ReadFailure::Short) => ContextError::Changed {
                            path,
                            expected: e.size,
                        },
                        Some(ReadFailure::Io(source)) => ctx.io("reading", &path, source),
                        None => ContextError::Write(err),
                    });
                }
            }
            Item::Ctx(e, _) => sink.put(&e, None).map_err(ContextError::Write)?,
            Item::Archive(path) => {
                let fd = ctx.open_resolved(&path, OFlags::RDONLY)?;
                archive::extract_entries(std::fs::File::from(fd), &path, sink)?;
            }
        }
    }
    Ok(())
}

/// Lists every entry the sources put under the destination, in order.
fn plan(ctx: &Context, sources: &[Source], opts: &TarOptions) -> Result<Vec<Item>, ContextError> {
    let exclude = Ignore::parse_named(&opts.exclude.join("\n"), "COPY --exclude")?;
    let mut w = Walker {
        ctx,
        exclude: &exclude,
        chmod: opts.chmod,
        inodes: HashMap::new(),
        out: Vec::new(),
    };
    for src in sources {
        match src.kind {
            SourceKind::Dir => {
                let fd = ctx.open_dir(&src.path)?;
                w.walk(&fd, &src.path, "")?;
            }
            SourceKind::Archive if opts.extract_archives => {
                w.out.push(Item::Archive(src.path.clone()));
            }
            SourceKind::File | SourceKind::Archive => {
                if exclude.is_excluded(&src.name) {
                    continue;
                }
                let fd = ctx.open_resolved(&src.path, OFlags::PATH)?;
                let st = rustix::fs::fstat(&fd).map_err(|e| ctx.io("looking up", &src.path, e))?;
                w.push(&src.name, &src.path, &st, None)?;
            }
        }
    }
    Ok(w.out)
}

struct Walker<'a> {
    ctx: &'a Context,
    exclude: &'a Ignore,
    chmod: Option<u32>,
    /// (device, inode) of a multiply-linked file → its first entry name.
    inodes: HashMap<(u64, u64), String>,
    out: Vec<Item>,
}

impl Walker<'_> {
    /// Adds the entries under the directory `dir` (context path `cpath`),
    /// named under `dest`.
    fn walk(&mut self, dir: &OwnedFd, cpath: &str, dest: &str) -> Result<(), ContextError> {
        for (name, st) in self.ctx.list(dir, cpath)? {
            let cp = join(cpath, &name);
            let dp = join(dest, &name);
            let ignored = self.ctx.ignore.is_excluded(&cp);
            let excluded = self.exclude.is_excluded(&dp);
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
                if !ignored && !excluded {
                    self.push(&dp, &cp, &st, Some(dir))?;
                }
                continue;
            }
            // An excluded directory is entered only when an exception may
            // re-include something under it, and kept only if one did.
            if (ignored && !self.ctx.ignore.may_include_under(&cp))
                || (excluded && !self.exclude.may_include_under(&dp))
            {
                continue;
            }
            let sub = rustix::fs::openat(
                dir,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .map_err(|e| self.ctx.io("opening", &cp, e))?;
            let mark = self.out.len();
            self.push(&dp, &cp, &st, None)?;
            self.walk(&sub, &cp, &dp)?;
            if (ignored || excluded) && self.out.len() == mark + 1 {
                self.out.pop();
            }
        }
        Ok(())
    }

    /// Adds one entry from its `lstat`; `dir` holds it (for `readlinkat`).
    fn push(
        &mut self,
        name: &str,
        cpath: &str,
        st: &Stat,
        dir: Option<&OwnedFd>,
    ) -> Result<(), ContextError> {
        let ft = FileType::from_raw_mode(st.st_mode);
        let mut e = Entry {
            name: name.to_string(),
            kind: Kind::File,
            mode: st.st_mode & 0o7777,
            uid: 0,
            gid: 0,
            mtime: u64::try_from(st.st_mtime).unwrap_or(0),
            size: 0,
            link: String::new(),
            dev: (0, 0),
        };
        match ft {
            FileType::RegularFile => {
                let key = (st.st_dev, st.st_ino);
                match self.inodes.get(&key) {
                    Some(first) if st.st_nlink > 1 => {
                        e.kind = Kind::Hardlink;
                        e.link = first.clone();
                    }
                    _ => {
                        if st.st_nlink > 1 {
                            self.inodes.insert(key, name.to_string());
                        }
                        e.size = u64::try_from(st.st_size).unwrap_or(0);
                    }
                }
                if let Some(m) = self.chmod {
                    e.mode = m & 0o7777;
                }
            }
            FileType::Directory => {
                e.kind = Kind::Dir;
                if let Some(m) = self.chmod {
                    e.mode = m & 0o7777;
                }
            }
            FileType::Symlink => {
                e.kind = Kind::Symlink;
                e.mode = 0o777;
                let Some(parent) = dir else {
                    // A source was resolved to a non-symlink: it has been
                    // replaced since. Following it now could leave the root.
                    return Err(self.ctx.io(
                        "reading",
                        cpath,
                        io::Error::other("it became a symlink after it was resolved"),
                    ));
                };
                let leaf = cpath.rsplit('/').next().unwrap_or(cpath);
                let t = rustix::fs::readlinkat(parent, leaf, Vec::new())
                    .map_err(|err| self.ctx.io("reading the symlink", cpath, err))?;
                e.link = String::from_utf8(t.into_bytes()).map_err(|_| ContextError::NotUtf8 {
                    path: cpath.to_string(),
                })?;
            }
            FileType::Fifo => e.kind = Kind::Fifo,
            FileType::CharacterDevice | FileType::BlockDevice => {
                e.kind = if ft == FileType::CharacterDevice {
                    Kind::Char
                } else {
                    Kind::Block
                };
                e.dev = (rustix::fs::major(st.st_rdev), rustix::fs::minor(st.st_rdev));
            }
            // Sockets (and anything unknown) are not copied.
            _ => return Ok(()),
        }
        self.out.push(Item::Ctx(e, cpath.to_string()));
        Ok(())
    }
}

/// Why an [`Exact`] reader stopped.
pub(crate) enum ReadFailure {
    Short,
    Io(io::Error),
}

/// Yields exactly `left` bytes of a file or fails, remembering why (so a
/// read error is told apart from a write error of the sink).
pub(crate) struct Exact<R> {
    inner: R,
    left: u64,
    pub(crate) failed: Option<ReadFailure>,
}

impl<R: Read> Exact<R> {
    pub(crate) fn new(inner: R, left: u64) -> Self {
        Exact {
            inner,
            left,
            failed: None,
        }
    }
}

impl<R: Read> Read for Exact<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        match self.inner.read(&mut buf[..max]) {
            Ok(0) => {
                self.failed = Some(ReadFailure::Short);
                Err(io::ErrorKind::UnexpectedEof.into())
            }
            Ok(n) => {
                self.left -= n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let kind = e.kind();
                self.failed = Some(ReadFailure::Io(e));
                Err(kind.into())
            }
        }
    }
}

struct TarSink<'a> {
    b: tar::Builder<&'a mut dyn Write>,
    stats: TarStats,
}

impl Sink for TarSink<'_> {
    fn put(&mut self, e: &Entry, data: Option<&mut dyn Read>) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(match e.kind {
            Kind::Dir => tar::EntryType::Directory,
            Kind::File => tar::EntryType::Regular,
            Kind::Symlink => tar::EntryType::Symlink,
            Kind::Hardlink => tar::EntryType::Link,
            Kind::Fifo => tar::EntryType::Fifo,
            Kind::Char => tar::EntryType::Char,
            Kind::Block => tar::EntryType::Block,
        });
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(e.mtime);
        h.set_size(if e.kind == Kind::File { e.size } else { 0 });
        if matches!(e.kind, Kind::Char | Kind::Block) {
            h.set_device_major(e.dev.0)?;
            h.set_device_minor(e.dev.1)?;
        }
        self.stats.entries += 1;
        match (e.kind, data) {
            (Kind::Symlink | Kind::Hardlink, _) => self.b.append_link(&mut h, &e.name, &e.link),
            (Kind::File, Some(r)) => {
                self.stats.bytes += e.size;
                self.b.append_data(&mut h, &e.name, r)
            }
            _ => self.b.append_data(&mut h, &e.name, io::empty()),
        }
    }
}

struct HashSink {
    h: Sha256,
}

impl Sink for HashSink {
    fn put(&mut self, e: &Entry, data: Option<&mut dyn Read>) -> io::Result<()> {
        let content = match data {
            Some(r) => {
                let mut c = Sha256::new();
                io::copy(r, &mut HashWriter(&mut c))?;
                hex::encode(c.finalize())
            }
            None => String::new(),
        };
        // NUL never occurs in a path or link target: fields cannot run
        // into each other.
        let rec = format!(
            "{}\0{:?}\0{:o}\0{}\0{}\0{}\0{}\0{}\0{}\0{}\n",
            e.name, e.kind, e.mode, e.uid, e.gid, e.size, e.link, e.dev.0, e.dev.1, content
        );
        self.h.update(rec.as_bytes());
        Ok(())
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
