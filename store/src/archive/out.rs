//! Where an archive is written: a tar stream with exact sizes, and files
//! that only appear at their name once complete.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_fsutil::{IoContext as _, PathError};

use crate::error::Error;

/// A file written under a temporary name beside `path` (`.NAME.cairn-PID-N`,
/// created exclusively, never through a planted link) and renamed over
/// `path` by [`AtomicFile::commit`] after an fsync. Dropped uncommitted
/// (an error, a panic), the temporary file is removed; a crash may leave
/// it, never a partial file at `path`.
#[derive(Debug)]
pub(crate) struct AtomicFile {
    tmp: PathBuf,
    path: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    pub(crate) fn create(path: &Path, mode: u32) -> Result<AtomicFile, Error> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let tmp = dir.join(format!(".{name}.cairn-{}-{n}", std::process::id()));
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
                .open(&tmp)
            {
                Ok(f) => {
                    return Ok(AtomicFile {
                        tmp,
                        path: path.to_owned(),
                        file: Some(f),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(PathError::new("create", &tmp, e).into()),
            }
        }
    }

    pub(crate) fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("an uncommitted file is open")
    }

    /// The temporary path (for error messages about writes).
    pub(crate) fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    pub(crate) fn commit(mut self) -> Result<(), Error> {
        let f = self.file.take().expect("committed once");
        f.sync_all().io_context("fsync", &self.tmp)?;
        drop(f);
        std::fs::rename(&self.tmp, &self.path).io_context("rename into place", &self.path)?;
        self.tmp = PathBuf::new();
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .io_context("fsync directory", dir)?;
        }
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// A file removed when dropped (decompressed layers on their way into a
/// docker archive).
#[derive(Debug)]
pub(crate) struct TempFile {
    pub(crate) path: PathBuf,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A tar stream written entry by entry, each with its exact size known
/// before its data (so nothing is buffered whole).
pub(crate) struct TarOut<W: Write> {
    w: W,
    /// What the stream is (for errors).
    name: PathBuf,
    mtime: u64,
}

impl<W: Write> std::fmt::Debug for TarOut<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TarOut").field("name", &self.name).finish()
    }
}

const BLOCK: usize = 512;

impl<W: Write> TarOut<W> {
    pub(crate) fn new(w: W, name: &Path, mtime: u64) -> TarOut<W> {
        TarOut {
            w,
            name: name.to_owned(),
            mtime,
        }
    }

    fn header(
        &mut self,
        path: &str,
        kind: tar::EntryType,
        size: u64,
        mode: u32,
        link: Option<&str>,
    ) -> Result<(), Error> {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        let named = h
            .set_path(path)
            .and_then(|()| link.map_or(Ok(()), |l| h.set_link_name(l)));
        named.map_err(|e| PathError::new("name tar entry", path, e))?;
        h.set_device_major(0)
            .and_then(|()| h.set_device_minor(0))
            .map_err(|e| PathError::new("write tar entry", path, e))?;
        // Go's archive/tar checksum form (`%06o\0 `), so that an archive
        // of the same image is byte for byte the one podman writes.
        let bytes = h.as_mut_bytes();
        bytes[148..156].fill(b' ');
        let sum: u32 = bytes.iter().map(|&b| u32::from(b)).sum();
        bytes[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        self.put(h.as_bytes())
    }

    fn put(&mut self, data: &[u8]) -> Result<(), Error> {
        Ok(self.w.write_all(data).io_context("write", &self.name)?)
    }

    fn pad(&mut self, size: u64) -> Result<(), Error> {
        let rem = (size % BLOCK as u64) as usize;
        if rem != 0 {
            self.put(&[0u8; BLOCK][..BLOCK - rem])?;
        }
        Ok(())
    }

    pub(crate) fn dir(&mut self, path: &str) -> Result<(), Error> {
        self.header(path, tar::EntryType::Directory, 0, 0o755, None)
    }

    pub(crate) fn bytes(&mut self, path: &str, data: &[u8], mode: u32) -> Result<(), Error> {
        self.header(path, tar::EntryType::Regular, data.len() as u64, mode, None)?;
        self.put(data)?;
        self.pad(data.len() as u64)
    }

    pub(crate) fn symlink(&mut self, path: &str, target: &str) -> Result<(), Error> {
        self.header(path, tar::EntryType::Symlink, 0, 0, Some(target))
    }

    /// An entry of `size` bytes read from `r` (`from` names it in errors):
    /// exactly `size`, or an error if it ends early.
    pub(crate) fn file(
        &mut self,
        path: &str,
        size: u64,
        mode: u32,
        r: &mut impl Read,
        from: &Path,
    ) -> Result<(), Error> {
        self.header(path, tar::EntryType::Regular, size, mode, None)?;
        // File to File (or stdout) lets std use copy_file_range/splice.
        let copied = std::io::copy(&mut r.take(size), &mut self.w).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WriteZero {
                PathError::new("write", &self.name, e)
            } else {
                PathError::new("read", from, e)
            }
        })?;
        if copied != size {
            return Err(PathError::new(
                "read",
                from,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("{copied} bytes where {size} were expected"),
                ),
            )
            .into());
        }
        self.pad(size)
    }

    /// The two zero blocks that end a tar; returns the writer.
    pub(crate) fn finish(mut self) -> Result<W, Error> {
        self.put(&[0u8; 2 * BLOCK])?;
        self.w.flush().io_context("write", &self.name)?;
        Ok(self.w)
    }
}

/// Removes the temporary files of `save` (`save-PID-N.tar` in the store's
/// `tmp/`, decompressed layers on their way into a docker archive) whose
/// process is gone: what a killed run left.
pub(crate) fn sweep_stale(store: &crate::layout::Store) {
    let dir = store.dir(crate::dirs::StoreDir::Tmp);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix("save-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
