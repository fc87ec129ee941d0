//! `pull-floor`: this machine's floor for the work of a pull (issue 24).
//!
//! `pull-floor decompress BLOB...` decompresses every blob (gzip or zstd, by
//! magic bytes) to a sink, the blobs split over the cores (largest first,
//! greedy), and prints `decompress <wall seconds> cpu=<CPU seconds>`.
//! `pull-floor verify BLOB...` does the same and computes the SHA-256 of
//! each blob and of its decompressed stream (the blob digest and the diff
//! id a puller checks): `verify <wall seconds> cpu=<CPU seconds>`.
//!
//! `pull-floor create OUTDIR BLOB...` (layers lowest first) decodes every
//! layer into memory and computes the image's final tree (later entries
//! replace earlier ones, OCI whiteouts and opaque directories apply to the
//! layers below, hard links share their target's content), untimed. Then,
//! timed, it writes that tree and nothing more: every directory, parents
//! first; the regular files split over the cores (create exclusive, write,
//! owner when root, mode, mtime); symlinks; hard links; then directory
//! owner, mode and mtime, deepest first. It prints
//! `create <secs> files=N dirs=N symlinks=N bytes=N hardlinks=N cpu=<CPU secs>`.
//! Device nodes and FIFOs are skipped, as cairn skips them in image roots.

use sha2::{Digest as _, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, FileTimes, OpenOptions, Permissions};
use std::io::{self, BufReader, Read, Write};
use std::ops::Bound;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const USAGE: &str =
    "usage: pull-floor decompress BLOB...\n       pull-floor verify BLOB...\n       \
                     pull-floor create OUTDIR BLOB...";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let res = match args.split_first() {
        Some((cmd, blobs)) if cmd == "decompress" && !blobs.is_empty() => decompress(blobs, false),
        Some((cmd, blobs)) if cmd == "verify" && !blobs.is_empty() => decompress(blobs, true),
        Some((cmd, rest)) if cmd == "create" && rest.len() >= 2 => {
            create(Path::new(&rest[0]), &rest[1..])
        }
        _ => Err(USAGE.into()),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pull-floor: {e}");
            ExitCode::FAILURE
        }
    }
}

/// CPU seconds (user + system) this process has used so far, all its
/// threads (`/proc/self/stat`, in clock ticks of 10 ms).
fn cpu_secs() -> Result<f64> {
    let stat = fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which may hold spaces), from field 3.
    let rest = &stat[stat.rfind(')').ok_or("/proc/self/stat: no command name")? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    Ok(ticks as f64 / 100.0)
}

/// A reader that feeds what it reads to a SHA-256.
struct Hashing<R> {
    inner: R,
    sha: Sha256,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }
}

fn cores() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// A decoder for `blob`, chosen by its magic bytes; with `verify`, the
/// compressed bytes go through a SHA-256 too (the blob's digest).
fn open_decoder(blob: &str, verify: bool) -> Result<Box<dyn Read>> {
    let file: Box<dyn Read> = Box::new(File::open(blob).map_err(|e| format!("{blob}: {e}"))?);
    let file: Box<dyn Read> = if verify {
        Box::new(Hashing {
            inner: file,
            sha: Sha256::new(),
        })
    } else {
        file
    };
    let mut file = BufReader::with_capacity(1 << 20, file);
    let mut magic = [0u8; 4];
    let head = {
        let buf = io::BufRead::fill_buf(&mut file)?;
        let n = buf.len().min(4);
        magic[..n].copy_from_slice(&buf[..n]);
        n
    };
    if head >= 2 && magic[..2] == [0x1f, 0x8b] {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(file)))
    } else if head == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(file)?))
    } else {
        Err(format!("{blob}: neither gzip nor zstd").into())
    }
}

/// Splits `items` (with their weights) over `n` bins, largest first, each to
/// the lightest bin so far.
fn greedy<T>(mut items: Vec<(u64, T)>, n: usize) -> Vec<Vec<T>> {
    items.sort_by_key(|(w, _)| std::cmp::Reverse(*w));
    let mut bins: Vec<(u64, Vec<T>)> = (0..n).map(|_| (0, Vec::new())).collect();
    for (w, item) in items {
        let lightest = bins
            .iter_mut()
            .min_by_key(|(total, _)| *total)
            .expect("n >= 1");
        lightest.0 += w;
        lightest.1.push(item);
    }
    bins.into_iter()
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
        .collect()
}

/// Every layer decompressed to a sink, the layers split over the cores;
/// with `verify` also the SHA-256 of each blob and of its decompressed
/// stream (its diff id), the two digests OCI asks a puller to check.
fn decompress(blobs: &[String], verify: bool) -> Result<()> {
    let mut items = Vec::new();
    for b in blobs {
        items.push((
            fs::metadata(b).map_err(|e| format!("{b}: {e}"))?.len(),
            b.as_str(),
        ));
    }
    let bins = greedy(items, cores());
    let (start, cpu) = (Instant::now(), cpu_secs()?);
    thread::scope(|s| {
        let handles: Vec<_> = bins
            .into_iter()
            .map(|bin| {
                s.spawn(move || -> Result<()> {
                    let mut buf = vec![0u8; 1 << 20];
                    for blob in bin {
                        let mut dec = open_decoder(blob, verify)?;
                        let mut diff_id = verify.then(Sha256::new);
                        loop {
                            match dec.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    if let Some(h) = diff_id.as_mut() {
                                        h.update(&buf[..n]);
                                    }
                                }
                                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                                Err(e) => return Err(format!("{blob}: {e}").into()),
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().map_err(|_| "a decoder panicked")?)
    })?;
    println!(
        "{} {:.6} cpu={:.2}",
        if verify { "verify" } else { "decompress" },
        start.elapsed().as_secs_f64(),
        cpu_secs()? - cpu
    );
    Ok(())
}

#[derive(Clone, Copy)]
struct Meta {
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

#[derive(Clone)]
enum Kind {
    Dir,
    /// Hard links to one file share the `Arc` (and the metadata).
    File(Arc<Vec<u8>>),
    Symlink(PathBuf),
}

#[derive(Clone)]
struct Node {
    kind: Kind,
    meta: Meta,
}

/// One decoded layer entry, before it is applied.
enum Item {
    Whiteout(PathBuf),
    Opaque(PathBuf),
    Node(PathBuf, Node),
    Hardlink(PathBuf, PathBuf),
}

/// A tar path made relative and plain; `None` for the root itself, an error
/// for `..`.
fn clean(p: &Path) -> Result<Option<PathBuf>> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("unsafe path {}", p.display()).into())
            }
        }
    }
    Ok(if out.as_os_str().is_empty() {
        None
    } else {
        Some(out)
    })
}

fn decode_layer(blob: &str) -> Result<Vec<Item>> {
    let mut ar = tar::Archive::new(open_decoder(blob, false)?);
    let mut items = Vec::new();
    for entry in ar.entries()? {
        let mut entry = entry?;
        let Some(path) = clean(&entry.path()?)? else {
            continue;
        };
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name == ".wh..wh..opq" {
            items.push(Item::Opaque(
                path.parent().map(Path::to_path_buf).unwrap_or_default(),
            ));
            continue;
        }
        if let Some(hidden) = name.strip_prefix(".wh.") {
            items.push(Item::Whiteout(path.with_file_name(hidden)));
            continue;
        }
        let h = entry.header();
        let meta = Meta {
            mode: h.mode()? & 0o7777,
            uid: h.uid()?,
            gid: h.gid()?,
            mtime: h.mtime()?,
        };
        let kind = h.entry_type();
        let link = entry.link_name()?.map(|l| l.into_owned());
        let kind = if kind.is_dir() {
            Kind::Dir
        } else if kind.is_symlink() {
            Kind::Symlink(link.ok_or("symlink without target")?)
        } else if kind.is_hard_link() {
            let target =
                clean(&link.ok_or("hard link without target")?)?.ok_or("hard link to /")?;
            items.push(Item::Hardlink(path, target));
            continue;
        } else if kind.is_file() || kind.is_contiguous() || kind.is_gnu_sparse() {
            let mut data = Vec::with_capacity(usize::try_from(entry.size()).unwrap_or(0));
            entry.read_to_end(&mut data)?;
            Kind::File(Arc::new(data))
        } else {
            continue; // devices, FIFOs
        };
        items.push(Item::Node(path, Node { kind, meta }));
    }
    Ok(items)
}

/// The image's final tree, keyed by relative path: a path's descendants
/// follow it directly in this order.
#[derive(Default)]
struct Tree(BTreeMap<PathBuf, Node>);

impl Tree {
    fn remove_below(&mut self, dir: &Path) {
        let below: Vec<PathBuf> = self
            .0
            .range::<Path, _>((Bound::Excluded(dir), Bound::Unbounded))
            .map(|(p, _)| p)
            .take_while(|p| p.starts_with(dir))
            .cloned()
            .collect();
        for p in below {
            self.0.remove(&p);
        }
    }

    fn remove(&mut self, path: &Path) {
        self.0.remove(path);
        self.remove_below(path);
    }

    /// Makes every ancestor of `path` a directory.
    fn parents(&mut self, path: &Path) {
        let implicit = Node {
            kind: Kind::Dir,
            meta: Meta {
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: 0,
            },
        };
        let mut missing: Vec<&Path> = path
            .ancestors()
            .skip(1)
            .filter(|a| !a.as_os_str().is_empty())
            .collect();
        missing.reverse();
        for a in missing {
            match self.0.get(a) {
                Some(Node {
                    kind: Kind::Dir, ..
                }) => {}
                Some(_) => {
                    self.remove(a);
                    self.0.insert(a.to_path_buf(), implicit.clone());
                }
                None => {
                    self.0.insert(a.to_path_buf(), implicit.clone());
                }
            }
        }
    }

    fn insert(&mut self, path: PathBuf, node: Node) {
        self.parents(&path);
        let keep_children = matches!(node.kind, Kind::Dir)
            && matches!(
                self.0.get(&path),
                Some(Node {
                    kind: Kind::Dir,
                    ..
                })
            );
        if !keep_children {
            self.remove_below(&path);
        }
        self.0.insert(path, node);
    }

    /// Applies one layer: its whiteouts to the layers below, then its entries in order.
    fn apply(&mut self, items: Vec<Item>) -> Result<()> {
        for item in &items {
            match item {
                Item::Whiteout(p) => self.remove(p),
                Item::Opaque(d) => self.remove_below(d),
                _ => {}
            }
        }
        for item in items {
            match item {
                Item::Node(p, n) => self.insert(p, n),
                Item::Hardlink(p, target) => match self.0.get(&target) {
                    Some(
                        n @ Node {
                            kind: Kind::File(_),
                            ..
                        },
                    ) => {
                        let n = n.clone();
                        self.insert(p, n);
                    }
                    _ => {
                        return Err(format!(
                            "hard link {} to missing {}",
                            p.display(),
                            target.display()
                        )
                        .into())
                    }
                },
                Item::Whiteout(_) | Item::Opaque(_) => {}
            }
        }
        Ok(())
    }
}

fn is_root() -> Result<bool> {
    let status = fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .ok_or("no Uid in /proc/self/status")?;
    Ok(line.split_whitespace().nth(2) == Some("0"))
}

fn time_of(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn id(n: u64) -> Result<u32> {
    Ok(u32::try_from(n)?)
}

struct Plan<'a> {
    dirs: Vec<(PathBuf, Meta)>,
    files: Vec<(PathBuf, &'a [u8], Meta)>,
    symlinks: Vec<(PathBuf, &'a Path, Meta)>,
    hardlinks: Vec<(PathBuf, PathBuf)>,
}

fn plan<'a>(out: &Path, tree: &'a Tree) -> Plan<'a> {
    let mut p = Plan {
        dirs: Vec::new(),
        files: Vec::new(),
        symlinks: Vec::new(),
        hardlinks: Vec::new(),
    };
    let mut first: HashMap<*const Vec<u8>, PathBuf> = HashMap::new();
    for (rel, node) in &tree.0 {
        let path = out.join(rel);
        match &node.kind {
            Kind::Dir => p.dirs.push((path, node.meta)),
            Kind::Symlink(t) => p.symlinks.push((path, t, node.meta)),
            Kind::File(data) => match first.get(&Arc::as_ptr(data)) {
                Some(target) => p.hardlinks.push((target.clone(), path)),
                None => {
                    first.insert(Arc::as_ptr(data), path.clone());
                    p.files.push((path, data.as_slice(), node.meta));
                }
            },
        }
    }
    p
}

fn write_file(path: &Path, data: &[u8], meta: Meta, root: bool) -> Result<()> {
    let wrap = |e: io::Error| format!("{}: {e}", path.display());
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(wrap)?;
    f.write_all(data).map_err(wrap)?;
    if root {
        std::os::unix::fs::fchown(&f, Some(id(meta.uid)?), Some(id(meta.gid)?)).map_err(wrap)?;
    }
    f.set_permissions(Permissions::from_mode(meta.mode))
        .map_err(wrap)?;
    f.set_times(FileTimes::new().set_modified(time_of(meta.mtime)))
        .map_err(wrap)?;
    Ok(())
}

/// The timed part: writes the planned tree.
fn materialize(p: &Plan<'_>, root: bool) -> Result<()> {
    for (d, _) in &p.dirs {
        fs::create_dir(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let next = AtomicUsize::new(0);
    thread::scope(|s| {
        let workers: Vec<_> = (0..cores())
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((path, data, meta)) = p.files.get(i) else {
                            return Ok(());
                        };
                        write_file(path, data, *meta, root)?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| "a writer panicked")?)
    })?;
    for (path, target, meta) in &p.symlinks {
        std::os::unix::fs::symlink(target, path).map_err(|e| format!("{}: {e}", path.display()))?;
        if root {
            std::os::unix::fs::lchown(path, Some(id(meta.uid)?), Some(id(meta.gid)?))?;
        }
    }
    for (target, path) in &p.hardlinks {
        fs::hard_link(target, path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    for (d, meta) in p.dirs.iter().rev() {
        let wrap = |e: io::Error| format!("{}: {e}", d.display());
        let f = File::open(d).map_err(wrap)?;
        if root {
            std::os::unix::fs::fchown(&f, Some(id(meta.uid)?), Some(id(meta.gid)?))
                .map_err(wrap)?;
        }
        f.set_permissions(Permissions::from_mode(meta.mode))
            .map_err(wrap)?;
        f.set_times(FileTimes::new().set_modified(time_of(meta.mtime)))
            .map_err(wrap)?;
    }
    Ok(())
}

fn create(out: &Path, blobs: &[String]) -> Result<()> {
    match fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(format!("{}: not empty", out.display()).into());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(out)?,
        Err(e) => return Err(format!("{}: {e}", out.display()).into()),
    }
    let mut tree = Tree::default();
    for blob in blobs {
        tree.apply(decode_layer(blob).map_err(|e| format!("{blob}: {e}"))?)?;
    }
    let root = is_root()?;
    let p = plan(out, &tree);
    let (start, cpu) = (Instant::now(), cpu_secs()?);
    materialize(&p, root)?;
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu_secs()? - cpu;
    let bytes: usize = p.files.iter().map(|(_, d, _)| d.len()).sum();
    println!(
        "create {secs:.6} files={} dirs={} symlinks={} bytes={bytes} hardlinks={} cpu={cpu:.2}",
        p.files.len(),
        p.dirs.len(),
        p.symlinks.len(),
        p.hardlinks.len()
    );
    Ok(())
}
