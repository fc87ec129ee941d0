//! Local tar archives for `ADD`: told by magic bytes (as BuildKit's
//! auto-extraction: plain, gzip, bzip2, xz, zstd), decompressed, their entries normalized under the
//! destination.

use std::io::{self, BufRead, BufReader, Read};

use super::tree::{Entry, Exact, Kind, ReadFailure, Sink};
use super::ContextError;
use crate::ignore::clean;

/// A compression told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Bzip2,
    Xz,
    Zstd,
}

impl Compression {
    pub(crate) fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(b"BZh") {
            Compression::Bzip2
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
            Compression::Xz
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// A reader of the decompressed stream (concatenated gzip, bzip2 and xz
/// members are read through, as GNU tar does).
pub(crate) fn decoder<'a>(r: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let head = r.fill_buf()?;
    Ok(match Compression::detect(head) {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Bzip2 => Box::new(bzip2::bufread::MultiBzDecoder::new(r)),
        Compression::Xz => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
    })
}

/// Whether a file is a tar archive, plain or compressed: its (decompressed)
/// first 512 bytes are a tar header with a valid checksum, which is what
/// BuildKit's "can a tar reader read a header" test comes to. Anything else
/// (a lone `.gz` of a text file, a corrupt stream) is copied as a file.
pub(crate) fn is_archive(f: impl Read) -> io::Result<bool> {
    let mut d = decoder(f)?;
    let mut block = [0u8; 512];
    match read_full(&mut d, &mut block) {
        Ok(512) => Ok(header_checksum_ok(&block)),
        _ => Ok(false),
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The tar header checksum: the byte sum with the checksum field as
/// spaces, stored as octal at offset 148. An all-zero block is no header.
fn header_checksum_ok(b: &[u8; 512]) -> bool {
    if b.iter().all(|&x| x == 0) {
        return false;
    }
    let sum: u32 = b
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            if (148..156).contains(&i) {
                32
            } else {
                u32::from(x)
            }
        })
        .sum();
    let field = std::str::from_utf8(&b[148..156]).unwrap_or("");
    let digits = field.trim_matches(|c: char| c == ' ' || c == '\0');
    u32::from_str_radix(digits, 8).is_ok_and(|v| v == sum)
}

/// A tar entry name made relative and `..`-free: joined to `/` and
/// cleaned, as BuildKit does; `None` for the root itself.
pub(crate) fn normalize(name: &str) -> Option<String> {
    let c = clean(&format!("/{name}"));
    let rel = &c[1..];
    (!rel.is_empty()).then(|| rel.to_string())
}

/// Hands every entry of the archive at context path `path` to `sink`,
/// names normalized, owners, modes and mtimes as in the archive. Global
/// headers, sparse files and other exotic types are skipped.
pub(crate) fn extract_entries(
    f: std::fs::File,
    path: &str,
    sink: &mut dyn Sink,
) -> Result<(), ContextError> {
    let bad = |reason: String| ContextError::Archive {
        path: path.to_string(),
        reason,
    };
    let d = decoder(f).map_err(|e| bad(e.to_string()))?;
    let mut ar = tar::Archive::new(d);
    for ent in ar.entries().map_err(|e| bad(e.to_string()))? {
        let mut ent = ent.map_err(|e| bad(e.to_string()))?;
        let Some(e) = entry_of(&ent).map_err(|e| bad(e.to_string()))? else {
            continue;
        };
        let res = if e.kind == Kind::File {
            let mut r = Exact::new(&mut ent, e.size);
            sink.put(&e, Some(&mut r))
                .map_err(|err| match r.failed.take() {
                    Some(ReadFailure::Short) => bad(format!("entry \"{}\" is truncated", e.name)),
                    Some(ReadFailure::Io(io)) => bad(format!("entry \"{}\": {io}", e.name)),
                    None => ContextError::Write(err),
                })
        } else {
            sink.put(&e, None).map_err(ContextError::Write)
        };
        res?;
    }
    Ok(())
}

/// The entry as it goes under the destination, or `None` to skip it.
fn entry_of<R: Read>(ent: &tar::Entry<'_, R>) -> io::Result<Option<Entry>> {
    let h = ent.header();
    let kind = match h.entry_type() {
        tar::EntryType::Regular | tar::EntryType::Continuous => Kind::File,
        tar::EntryType::Directory => Kind::Dir,
        tar::EntryType::Symlink => Kind::Symlink,
        tar::EntryType::Link => Kind::Hardlink,
        tar::EntryType::Fifo => Kind::Fifo,
        tar::EntryType::Char => Kind::Char,
        tar::EntryType::Block => Kind::Block,
        _ => return Ok(None),
    };
    let path = ent.path_bytes();
    let Some(name) = normalize(&String::from_utf8_lossy(&path)) else {
        return Ok(None);
    };
    let link = match kind {
        Kind::Symlink => ent
            .link_name_bytes()
            .map(|l| String::from_utf8_lossy(&l).into_owned())
            .unwrap_or_default(),
        Kind::Hardlink => {
            let raw = ent.link_name_bytes().unwrap_or_default();
            match normalize(&String::from_utf8_lossy(&raw)) {
                Some(t) => t,
                None => return Ok(None),
            }
        }
        _ => String::new(),
    };
    let dev = if matches!(kind, Kind::Char | Kind::Block) {
        (
            h.device_major()?.unwrap_or(0),
            h.device_minor()?.unwrap_or(0),
        )
    } else {
        (0, 0)
    };
    Ok(Some(Entry {
        name,
        kind,
        mode: h.mode()? & 0o7777,
        uid: h.uid()?,
        gid: h.gid()?,
        mtime: h.mtime()?,
        size: if kind == Kind::File { ent.size() } else { 0 },
        link,
        dev,
    }))
}
