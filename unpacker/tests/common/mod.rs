//! Shared by the unpacker's integration tests: a raw tar writer (headers
//! built byte by byte, so names the `tar` crate would refuse to write can be
//! written), compression helpers, a "jail" whose outside is snapshotted, and
//! a readable listing of a materialized tree.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use cairn_store::media::{types, Descriptor};
use cairn_unpacker::{
    decode, materialize, DecodeOptions, Error, MaterializeOptions, Mode, ObjectStore, Ownership,
    Plan, PlanError, Stats,
};
use sha2::{Digest as _, Sha256};

pub const BLOCK: usize = 512;

/// One header's fields; `Hdr::new` fills sane defaults.
#[derive(Debug, Clone)]
pub struct Hdr {
    pub name: Vec<u8>,
    pub prefix: Vec<u8>,
    pub kind: u8,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: u64,
    pub link: Vec<u8>,
    pub major: u32,
    pub minor: u32,
    /// GNU magic (`ustar  \0`) instead of POSIX (`ustar\000`).
    pub gnu: bool,
}

impl Hdr {
    pub fn new(name: &[u8], kind: u8) -> Hdr {
        Hdr {
            name: name.to_vec(),
            prefix: Vec::new(),
            kind,
            mode: if kind == b'5' { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            size: 0,
            mtime: 1_600_000_000,
            link: Vec::new(),
            major: 0,
            minor: 0,
            gnu: false,
        }
    }

    /// The 512 header bytes, checksum included.
    pub fn to_block(&self) -> [u8; BLOCK] {
        let mut b = [0u8; BLOCK];
        put_bytes(&mut b[0..100], &self.name);
        octal(&mut b[100..108], self.mode as u64);
        octal(&mut b[108..116], self.uid);
        octal(&mut b[116..124], self.gid);
        octal(&mut b[124..136], self.size);
        octal(&mut b[136..148], self.mtime);
        b[156] = self.kind;
        put_bytes(&mut b[157..257], &self.link);
        if self.gnu {
            b[257..263].copy_from_slice(b"ustar ");
            b[263..265].copy_from_slice(b" \0");
        } else {
            b[257..263].copy_from_slice(b"ustar\0");
            b[263..265].copy_from_slice(b"00");
        }
        put_bytes(&mut b[265..297], b"root");
        put_bytes(&mut b[297..329], b"root");
        octal(&mut b[329..337], self.major as u64);
        octal(&mut b[337..345], self.minor as u64);
        if !self.gnu {
            put_bytes(&mut b[345..500], &self.prefix);
        }
        set_checksum(&mut b);
        b
    }
}

fn put_bytes(field: &mut [u8], v: &[u8]) {
    assert!(
        v.len() <= field.len(),
        "{:?} does not fit",
        String::from_utf8_lossy(v)
    );
    field[..v.len()].copy_from_slice(v);
}

/// Zero-padded octal, NUL-terminated.
pub fn octal(field: &mut [u8], v: u64) {
    let s = format!("{:0width$o}", v, width = field.len() - 1);
    assert!(
        s.len() < field.len(),
        "{v} does not fit {} bytes",
        field.len()
    );
    field[..s.len()].copy_from_slice(s.as_bytes());
    field[s.len()] = 0;
}

/// Recomputes the checksum of a header block.
pub fn set_checksum(b: &mut [u8]) {
    b[148..156].copy_from_slice(b"        ");
    let sum: u32 = b[..BLOCK].iter().map(|&x| x as u32).sum();
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
}

/// One PAX record: `<len> key=value\n`.
pub fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let rest = 1 + key.len() + 1 + value.len() + 1;
    let mut n = rest + 1;
    loop {
        let total = rest + n.to_string().len();
        if total == n {
            break;
        }
        n = total;
    }
    let mut r = format!("{n} ").into_bytes();
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

/// A tar stream written block by block.
#[derive(Debug, Clone, Default)]
pub struct Tar {
    pub buf: Vec<u8>,
}

impl Tar {
    pub fn new() -> Tar {
        Tar::default()
    }

    /// A header then `data` padded to a block.
    pub fn entry(mut self, h: &Hdr, data: &[u8]) -> Tar {
        self.buf.extend_from_slice(&h.to_block());
        self.buf.extend_from_slice(data);
        pad(&mut self.buf);
        self
    }

    pub fn raw(mut self, bytes: &[u8]) -> Tar {
        self.buf.extend_from_slice(bytes);
        self
    }

    pub fn file(self, name: impl AsRef<[u8]>, content: &[u8]) -> Tar {
        self.file_mode(name, content, 0o644)
    }

    pub fn file_mode(self, name: impl AsRef<[u8]>, content: &[u8], mode: u32) -> Tar {
        let mut h = Hdr::new(name.as_ref(), b'0');
        h.size = content.len() as u64;
        h.mode = mode;
        self.entry(&h, content)
    }

    /// A regular file with every header field chosen by the caller.
    pub fn file_hdr(self, mut h: Hdr, content: &[u8]) -> Tar {
        h.kind = b'0';
        h.size = content.len() as u64;
        self.entry(&h, content)
    }

    pub fn dir(self, name: impl AsRef<[u8]>) -> Tar {
        self.dir_mode(name, 0o755)
    }

    pub fn dir_mode(self, name: impl AsRef<[u8]>, mode: u32) -> Tar {
        let mut h = Hdr::new(name.as_ref(), b'5');
        h.mode = mode;
        self.entry(&h, &[])
    }

    pub fn symlink(self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Tar {
        let mut h = Hdr::new(name.as_ref(), b'2');
        h.mode = 0o777;
        h.link = target.as_ref().to_vec();
        self.entry(&h, &[])
    }

    pub fn hardlink(self, name: impl AsRef<[u8]>, target: impl AsRef<[u8]>) -> Tar {
        let mut h = Hdr::new(name.as_ref(), b'1');
        h.link = target.as_ref().to_vec();
        self.entry(&h, &[])
    }

    pub fn fifo(self, name: impl AsRef<[u8]>, mode: u32) -> Tar {
        let mut h = Hdr::new(name.as_ref(), b'6');
        h.mode = mode;
        self.entry(&h, &[])
    }

    pub fn device(self, name: impl AsRef<[u8]>, block: bool, major: u32, minor: u32) -> Tar {
        let mut h = Hdr::new(name.as_ref(), if block { b'4' } else { b'3' });
        h.mode = 0o640;
        h.major = major;
        h.minor = minor;
        self.entry(&h, &[])
    }

    /// A whiteout (an empty regular file named `.wh.*`).
    pub fn whiteout(self, name: impl AsRef<[u8]>) -> Tar {
        self.file(name, b"")
    }

    /// A PAX extended header (`x`) for the next entry.
    pub fn pax(self, records: &[(&[u8], &[u8])]) -> Tar {
        self.pax_kind(b'x', records)
    }

    /// A PAX global header (`g`).
    pub fn global(self, records: &[(&[u8], &[u8])]) -> Tar {
        self.pax_kind(b'g', records)
    }

    fn pax_kind(self, kind: u8, records: &[(&[u8], &[u8])]) -> Tar {
        let body: Vec<u8> = records.iter().flat_map(|(k, v)| pax_record(k, v)).collect();
        let mut h = Hdr::new(b"PaxHeaders.0/entry", kind);
        h.size = body.len() as u64;
        self.entry(&h, &body)
    }

    /// A GNU long name (`L`) for the next entry.
    pub fn gnu_long_name(self, name: &[u8]) -> Tar {
        self.gnu_long(b'L', name)
    }

    /// A GNU long link target (`K`) for the next entry.
    pub fn gnu_long_link(self, target: &[u8]) -> Tar {
        self.gnu_long(b'K', target)
    }

    fn gnu_long(self, kind: u8, value: &[u8]) -> Tar {
        let mut data = value.to_vec();
        data.push(0);
        let mut h = Hdr::new(b"././@LongLink", kind);
        h.gnu = true;
        h.size = data.len() as u64;
        self.entry(&h, &data)
    }

    /// An old-GNU sparse file (`S`): `chunks` are (offset, data) in order;
    /// every chunk but the last must be a multiple of 512 bytes long. More
    /// than 4 chunks use extension blocks.
    pub fn gnu_sparse(mut self, name: &[u8], real_size: u64, chunks: &[(u64, &[u8])]) -> Tar {
        let stored: usize = chunks.iter().map(|c| c.1.len()).sum();
        let mut h = Hdr::new(name, b'S');
        h.gnu = true;
        h.size = stored as u64;
        let mut b = h.to_block();
        let entry = |slot: &mut [u8], off: u64, len: u64| {
            octal(&mut slot[0..12], off);
            octal(&mut slot[12..24], len);
        };
        for (i, (off, data)) in chunks.iter().take(4).enumerate() {
            entry(
                &mut b[386 + i * 24..386 + (i + 1) * 24],
                *off,
                data.len() as u64,
            );
        }
        let extended = chunks.len() > 4;
        b[482] = u8::from(extended);
        octal(&mut b[483..495], real_size);
        set_checksum(&mut b);
        self.buf.extend_from_slice(&b);
        let rest: Vec<&(u64, &[u8])> = chunks.iter().skip(4).collect();
        let groups: Vec<&[&(u64, &[u8])]> = rest.chunks(21).collect();
        for (gi, group) in groups.iter().enumerate() {
            let mut ext = [0u8; BLOCK];
            for (i, (off, data)) in group.iter().enumerate() {
                entry(&mut ext[i * 24..(i + 1) * 24], *off, data.len() as u64);
            }
            ext[504] = u8::from(gi + 1 < groups.len());
            self.buf.extend_from_slice(&ext);
        }
        for (_, data) in chunks {
            self.buf.extend_from_slice(data);
        }
        pad(&mut self.buf);
        self
    }

    /// The archive with its two end blocks.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&[0u8; 2 * BLOCK]);
        self.buf
    }
}

fn pad(buf: &mut Vec<u8>) {
    let rem = buf.len() % BLOCK;
    if rem != 0 {
        buf.resize(buf.len() + BLOCK - rem, 0);
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

pub fn zstd_checksummed(data: &[u8]) -> Vec<u8> {
    let mut e = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    e.include_checksum(true).unwrap();
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

pub fn ownership() -> Ownership {
    if is_root() {
        Ownership::Apply
    } else {
        Ownership::Ignore
    }
}

/// Where a case fails, or the stats of a full run.
#[derive(Debug)]
pub enum Failure {
    Decode(usize, Error),
    Plan(PlanError),
    Materialize(Error),
}

/// The object store's files: relative path, inode, link count, content hash.
pub fn objects_snapshot(objects: &ObjectStore) -> BTreeMap<String, (u64, u64, String)> {
    let mut out = BTreeMap::new();
    for sub in fs::read_dir(objects.dir()).unwrap() {
        let sub = sub.unwrap();
        if !sub.file_type().unwrap().is_dir() {
            let name = sub.file_name().to_string_lossy().into_owned();
            out.insert(name, (0, 0, "not a fan-out directory".to_owned()));
            continue;
        }
        for e in fs::read_dir(sub.path()).unwrap() {
            let e = e.unwrap();
            let m = e.metadata().unwrap();
            let name = format!(
                "{}/{}",
                sub.file_name().to_string_lossy(),
                e.file_name().to_string_lossy()
            );
            let hash = hex::encode(Sha256::digest(fs::read(e.path()).unwrap()));
            out.insert(name, (m.ino(), m.nlink(), hash));
        }
    }
    out
}

/// decode every layer, plan, materialize into `target`. A layer that fails
/// to decode must leave the object store as it was (asserted here).
pub fn unpack(
    layers: &[Vec<u8>],
    diff_ids: &[Option<cairn_store::Digest>],
    objects: &ObjectStore,
    opts: &DecodeOptions,
    target: &Path,
    mode: Mode,
) -> Result<Stats, Failure> {
    let mut sets = Vec::new();
    for (i, blob) in layers.iter().enumerate() {
        let before = objects_snapshot(objects);
        let d = decode(
            &blob[..],
            &format!("layer{i}"),
            diff_ids.get(i).and_then(|d| d.as_ref()),
            objects,
            opts,
        );
        let d = match d {
            Ok(d) => d,
            Err(e) => {
                let after = objects_snapshot(objects);
                assert!(
                    before == after,
                    "layer {i} failed ({e}) but changed the object store:\n  before {before:?}\n  after  {after:?}"
                );
                return Err(Failure::Decode(i, e));
            }
        };
        sets.push(d.changeset);
    }
    let plan = Plan::from_layers(&sets).map_err(Failure::Plan)?;
    materialize(
        &plan,
        objects,
        target,
        MaterializeOptions {
            mode,
            ownership: objects.ownership(),
            devices: cairn_unpacker::Devices::Create,
        },
    )
    .map_err(Failure::Materialize)
}

/// The innermost error under `Error::Context`.
pub fn root_cause(e: &Error) -> &Error {
    match e {
        Error::Context { source, .. } => root_cause(source),
        other => other,
    }
}

/// A temp directory holding the unpack target, a sentinel tree the layers
/// aim at, and the object store; everything but the target and the objects
/// is snapshotted to prove nothing else was touched.
pub struct Jail {
    pub dir: tempfile::TempDir,
}

impl Jail {
    pub fn new() -> Jail {
        let dir = tempfile::Builder::new()
            .prefix("cairn-jail-")
            .tempdir()
            .unwrap();
        let j = Jail { dir };
        fs::create_dir(j.target()).unwrap();
        let s = j.sentinel();
        fs::create_dir_all(s.join("sub")).unwrap();
        fs::write(s.join("secret"), b"secret").unwrap();
        fs::write(s.join("sub/deep"), b"deep").unwrap();
        std::os::unix::fs::symlink("secret", s.join("link")).unwrap();
        fs::write(j.dir.path().join("neighbour"), b"neighbour").unwrap();
        fs::create_dir(j.store()).unwrap();
        j
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn target(&self) -> PathBuf {
        self.dir.path().join("target")
    }

    pub fn sentinel(&self) -> PathBuf {
        self.dir.path().join("sentinel")
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// The jail's absolute path as bytes, e.g. `/tmp/cairn-jail-xyz`.
    pub fn abs(&self) -> String {
        self.dir.path().to_str().unwrap().to_owned()
    }

    /// The jail path without its leading `/`, as it appears re-rooted.
    pub fn rel(&self) -> String {
        self.abs().trim_start_matches('/').to_owned()
    }

    /// Listing lines of the jail's ancestors re-rooted in the target:
    /// `tmp/ tmp/cairn-jail-xyz/`.
    pub fn rel_dirs(&self) -> String {
        let rel = self.rel();
        let mut out = Vec::new();
        let mut acc = String::new();
        for c in rel.split('/') {
            if !acc.is_empty() {
                acc.push('/');
            }
            acc.push_str(c);
            out.push(format!("{acc}/"));
        }
        out.join(" ")
    }

    /// Expands `{J}` (jail path, relative) and `{JDIRS}` in an expectation,
    /// and `{JABS}` (absolute).
    pub fn expand(&self, s: &str) -> String {
        s.replace("{JDIRS}", &self.rel_dirs())
            .replace("{JABS}", &self.abs())
            .replace("{J}", &self.rel())
    }

    /// Every path of the jail but the target's and the objects' contents,
    /// with its metadata and content.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut out = BTreeMap::new();
        let skip = [self.target(), self.store().join("objects")];
        snapshot_into(self.path(), &skip, &mut out);
        out
    }
}

fn snapshot_into(p: &Path, skip: &[PathBuf], out: &mut BTreeMap<PathBuf, String>) {
    let m = fs::symlink_metadata(p).unwrap();
    let ft = m.file_type();
    let what = if ft.is_symlink() {
        format!(
            "link {}",
            fs::read_link(p).unwrap().as_os_str().to_string_lossy()
        )
    } else if ft.is_file() {
        format!("file {}", hex::encode(Sha256::digest(fs::read(p).unwrap())))
    } else if ft.is_dir() {
        "dir".to_owned()
    } else {
        "other".to_owned()
    };
    // The target's own inode is the unpack's (its mode, owner, mtime are
    // the image root's); it only has to stay where it is, a directory.
    let is_skipped = skip.iter().any(|s| s == p);
    let line = if is_skipped {
        format!("{what} ino={}", m.ino())
    } else {
        format!(
            "{what} mode={:o} uid={} gid={} size={} mtime={}.{} ctime={}.{} ino={} nlink={} xattrs={:?}",
            m.mode(),
            m.uid(),
            m.gid(),
            m.len(),
            m.mtime(),
            m.mtime_nsec(),
            m.ctime(),
            m.ctime_nsec(),
            m.ino(),
            m.nlink(),
            xattrs(p),
        )
    };
    out.insert(p.to_owned(), line);
    if ft.is_dir() && !is_skipped {
        let mut names: Vec<_> = fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        for n in names {
            snapshot_into(&p.join(n), skip, out);
        }
    }
}

/// All xattrs of a path (not following a symlink), sorted.
pub fn xattrs(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 65536];
    let n = match rustix::fs::llistxattr(p, &mut names) {
        Ok(n) => n,
        Err(_) => return Vec::new(),
    };
    let mut out = Vec::new();
    for name in names[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        let mut val = vec![0u8; 65536];
        let len = rustix::fs::lgetxattr(p, name, &mut val).unwrap_or(0);
        val.truncate(len);
        out.push((String::from_utf8_lossy(name).into_owned(), val));
    }
    out.sort();
    out
}

/// One xattr's value, if set.
pub fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut val = vec![0u8; 65536];
    match rustix::fs::lgetxattr(p, name, &mut val) {
        Ok(n) => {
            val.truncate(n);
            Some(val)
        }
        Err(_) => None,
    }
}

/// The tree under `root` as sorted tokens: `dir/`, `file=content` (content
/// shown when short and printable, else `#<len>`), `link->target`,
/// `fifo|`, `dev!c1:3`.
pub fn listing(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    list_into(root, Path::new(""), &mut out);
    out.sort();
    out
}

fn list_into(root: &Path, rel: &Path, out: &mut Vec<String>) {
    let mut names: Vec<_> = fs::read_dir(root.join(rel))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    for n in names {
        let r = rel.join(&n);
        let p = root.join(&r);
        let shown = String::from_utf8_lossy(r.as_os_str().as_bytes()).into_owned();
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        if ft.is_dir() {
            out.push(format!("{shown}/"));
            list_into(root, &r, out);
        } else if ft.is_symlink() {
            let t = fs::read_link(&p).unwrap();
            out.push(format!(
                "{shown}->{}",
                String::from_utf8_lossy(t.as_os_str().as_bytes())
            ));
        } else if ft.is_file() {
            let c = fs::read(&p).unwrap();
            let printable = c.len() <= 40 && c.iter().all(|b| b.is_ascii_graphic());
            if printable {
                out.push(format!("{shown}={}", String::from_utf8_lossy(&c)));
            } else {
                out.push(format!("{shown}=#{}", c.len()));
            }
        } else if ft.is_fifo() {
            out.push(format!("{shown}|"));
        } else if ft.is_char_device() || ft.is_block_device() {
            let dev = m.rdev();
            out.push(format!(
                "{shown}!{}{}:{}",
                if ft.is_char_device() { 'c' } else { 'b' },
                rustix::fs::major(dev),
                rustix::fs::minor(dev)
            ));
        } else {
            out.push(format!("{shown}?"));
        }
    }
}

/// Sorted tokens of an expectation string (whitespace separated).
pub fn tokens(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
    v.sort();
    v
}

pub fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

pub fn ino_of(p: &Path) -> u64 {
    fs::symlink_metadata(p).unwrap().ino()
}

pub fn os(b: &[u8]) -> &OsStr {
    OsStr::from_bytes(b)
}

/// Whether a directory is empty (or missing).
pub fn empty_or_missing(p: &Path) -> bool {
    match fs::read_dir(p) {
        Ok(mut rd) => rd.next().is_none(),
        Err(e) => e.kind() == std::io::ErrorKind::NotFound,
    }
}

/// Stores a one-layer gzip image built from `tar` (amd64 config); named
/// `name` if given. Returns the manifest digest.
pub fn add_image(
    store: &cairn_store::Store,
    name: Option<&str>,
    tar: &[u8],
) -> cairn_store::Digest {
    add_layered_image(store, name, &[tar])
}

/// [`add_image`] with several layers, lowest first.
pub fn add_layered_image(
    store: &cairn_store::Store,
    name: Option<&str>,
    tars: &[&[u8]],
) -> cairn_store::Digest {
    let mut layers = Vec::new();
    for tar in tars {
        let layer = gzip(tar);
        let (digest, _) = store.put_blob_bytes(&layer, None).unwrap();
        layers.push(serde_json::json!({
            "mediaType": types::OCI_LAYER_GZIP, "digest": digest.to_string(), "size": layer.len(),
        }));
    }
    let diff_ids: Vec<String> = tars.iter().map(|t| sha256_digest(t)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let (config_digest, _) = store.put_blob_bytes(&config, None).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": types::OCI_MANIFEST,
        "config": {"mediaType": types::OCI_CONFIG, "digest": config_digest.to_string(), "size": config.len()},
        "layers": layers,
    }))
    .unwrap();
    let (manifest_digest, _) = store.put_blob_bytes(&manifest, None).unwrap();
    if let Some(name) = name {
        store
            .set_ref(
                &name.parse().unwrap(),
                &Descriptor::new(
                    types::OCI_MANIFEST,
                    manifest_digest.clone(),
                    manifest.len() as u64,
                ),
                None,
            )
            .unwrap();
    }
    manifest_digest
}

/// Every object file of `u`'s store, sorted.
pub fn objects(u: &cairn_unpacker::Unpacker) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for sub in fs::read_dir(u.objects().dir()).unwrap() {
        let sub = sub.unwrap().path();
        if sub.is_dir() {
            for e in fs::read_dir(&sub).unwrap() {
                out.push(e.unwrap().path());
            }
        }
    }
    out.sort();
    out
}

/// The names in `dir`, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
