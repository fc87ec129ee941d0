//! Synthetic layers for the micro-benchmarks: deterministic, shaped like a
//! distribution layer (many small files, a few large ones, text-like
//! content that compresses about 3x), small enough that a run takes seconds.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;

use cairn_unpacker::{ObjectStore, Ownership};

/// A tiny deterministic generator (xorshift64*).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

const WORDS: [&str; 32] = [
    "lib",
    "usr",
    "share",
    "config",
    "static",
    "const",
    "return",
    "value",
    "ELF",
    "\0\0\0\0",
    "symbol",
    "table",
    "section",
    "debug",
    "linux",
    "gnu",
    "x86_64",
    "init",
    "main",
    "printf",
    "malloc",
    "free",
    "strlen",
    "errno",
    "\x7fELF",
    "pthread",
    "mutex",
    "locale",
    "UTF-8",
    "copyright",
    "license",
    "Debian",
];

/// `len` bytes of word salad with random numbers mixed in.
pub fn content(rng: &mut Rng, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(WORDS[rng.below(WORDS.len() as u64) as usize].as_bytes());
        if rng.below(4) == 0 {
            write!(out, "{}", rng.next_u64() >> 40).unwrap();
        }
        out.push(b' ');
    }
    out.truncate(len);
    out
}

/// A plain tar of `files` regular files in 20 directories: 95% of 0.5 to
/// 16 KiB, 5% of 64 to 512 KiB (streamed rather than queued by the decoder).
pub fn layer(seed: u64, files: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut b = tar::Builder::new(Vec::new());
    for d in 0..20 {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        h.set_cksum();
        b.append_data(&mut h, format!("usr/lib/d{d}/"), &[][..])
            .unwrap();
    }
    for i in 0..files {
        let len = if rng.below(20) == 0 {
            (64 << 10) + rng.below(448 << 10) as usize
        } else {
            512 + rng.below(16 << 10) as usize
        };
        let data = content(&mut rng, len);
        let mut h = tar::Header::new_gnu();
        h.set_mode(if i % 10 == 0 { 0o755 } else { 0o644 });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(len as u64);
        h.set_cksum();
        b.append_data(
            &mut h,
            format!("usr/lib/d{}/f{i}-{seed}", i % 20),
            &data[..],
        )
        .unwrap();
    }
    b.into_inner().unwrap()
}

/// A layer on top of [`layer`]`(seed, files)`: whiteouts for every tenth
/// file, an opaque directory, and `files / 10` new files.
pub fn upper_layer(seed: u64, files: usize) -> Vec<u8> {
    let mut rng = Rng::new(seed + 1000);
    let mut b = tar::Builder::new(Vec::new());
    let empty = |b: &mut tar::Builder<Vec<u8>>, path: String| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(0);
        h.set_cksum();
        b.append_data(&mut h, path, &[][..]).unwrap();
    };
    for i in (0..files).step_by(10) {
        empty(&mut b, format!("usr/lib/d{}/.wh.f{i}-{seed}", i % 20));
    }
    empty(&mut b, "usr/lib/d19/.wh..wh..opq".to_owned());
    for i in 0..files / 10 {
        let len = 512 + rng.below(8 << 10) as usize;
        let data = content(&mut rng, len);
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append_data(&mut h, format!("usr/lib/d{}/new{i}", i % 20), &data[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}

/// A temp directory in `$CAIRN_BENCH_DIR`, else `/dev/shm`: these time the
/// code, not the disk (on this VM's ext4, creating and deleting thousands
/// of files run after run slows each run down 3-6x; `benches/unpack.py`
/// times whole unpacks on disk with the page cache dropped).
pub fn scratch() -> tempfile::TempDir {
    let base = std::env::var_os("CAIRN_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let shm = Path::new("/dev/shm");
            if shm.is_dir() {
                shm.to_owned()
            } else {
                std::env::temp_dir()
            }
        });
    tempfile::Builder::new()
        .prefix("cairn-bench-")
        .tempdir_in(base)
        .unwrap()
}

pub fn ownership() -> Ownership {
    if rustix::process::geteuid().is_root() {
        Ownership::Apply
    } else {
        Ownership::Ignore
    }
}

/// A fresh object store in a fresh scratch directory.
pub fn store() -> (tempfile::TempDir, ObjectStore) {
    let dir = scratch();
    let objects = ObjectStore::open(dir.path(), ownership()).unwrap();
    (dir, objects)
}

/// Files and directories under `p` (to check a run did its work).
pub fn count(p: &Path) -> usize {
    let mut n = 0;
    let mut todo = vec![p.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            n += 1;
            if e.file_type().unwrap().is_dir() {
                todo.push(e.path());
            }
        }
    }
    n
}
