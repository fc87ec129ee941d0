//! Reading files a container or an image controls, from the host.
//!
//! An image's `/etc/passwd` may be a FIFO (a read blocks forever), a device
//! node (the host's `/dev/zero`, or a disk, opened through the image's own
//! major and minor), an absolute symlink (which `/proc/PID/root/...`
//! resolves against the host's root), or a gigabyte of text. Each read here
//! resolves symlinks inside the root only, opens without blocking and
//! without a controlling terminal, refuses anything but a regular file and
//! reads at most [`MAX_TEXT`] bytes.

use std::fs::File;
use std::io::Read as _;
use std::os::fd::AsFd;
use std::path::Path;

use nix::fcntl::{OFlag, OpenHow, ResolveFlag};

use crate::error::{bail, Context as _, Result};

/// The most read of such a file (as the runtime helpers' cap).
pub(crate) const MAX_TEXT: u64 = 16 << 20;

const OPEN: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_NOCTTY)
    .union(OFlag::O_CLOEXEC);

fn read_capped(file: File, shown: &Path) -> Result<String> {
    let meta = file
        .metadata()
        .with_context(|| format!("stat {}", shown.display()))?;
    if !meta.is_file() {
        bail!(
            "refusing to read {}: not a regular file (a device, FIFO, socket or directory); make it a regular file",
            shown.display()
        );
    }
    let mut buf = Vec::new();
    file.take(MAX_TEXT + 1)
        .read_to_end(&mut buf)
        .with_context(|| format!("read {}", shown.display()))?;
    if buf.len() as u64 > MAX_TEXT {
        bail!(
            "refusing to read {}: larger than {} MiB",
            shown.display(),
            MAX_TEXT >> 20
        );
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// `rel` inside the directory `root` (a container's `/proc/PID/root`, a
/// mounted root), symlinks resolved as if `root` were `/`; `Ok(None)` when
/// missing.
pub fn read_in_root(root: impl AsFd, rel: &Path, shown: &Path) -> Result<Option<String>> {
    let how = OpenHow::new()
        .flags(OPEN)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match nix::fcntl::openat2(root, rel, how) {
        Ok(fd) => read_capped(File::from(fd), shown).map(Some),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("open {}", shown.display())),
    }
}

/// A file of a running container, `rel` as the container sees it.
pub fn read_in_container(pid: i32, rel: &str) -> Result<Option<String>> {
    let root_path = format!("/proc/{pid}/root");
    let root = nix::fcntl::open(
        root_path.as_str(),
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .with_context(|| format!("open {root_path}"))?;
    let shown = Path::new(&root_path).join(rel.trim_start_matches('/'));
    read_in_root(&root, Path::new(rel.trim_start_matches('/')), &shown)
}

/// A path already resolved inside its root (an image root's
/// [`find`](cairn_unpacker::ImageRoot::find), or the current root after a
/// chroot): opened without following a final symlink.
pub fn read_resolved(path: &Path) -> Result<Option<String>> {
    match nix::fcntl::open(
        path,
        OPEN | OFlag::O_NOFOLLOW,
        nix::sys::stat::Mode::empty(),
    ) {
        Ok(fd) => read_capped(File::from(fd), path).map(Some),
        Err(nix::errno::Errno::ENOENT) => Ok(None),
        Err(e) => Err(e).with_context(|| format!("open {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_within_the_root() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        std::fs::write(d.path().join("secret"), "host secret").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../secret", root.join("etc/up")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", root.join("zero")).unwrap();
        nix::unistd::mkfifo(
            &root.join("fifo"),
            nix::sys::stat::Mode::from_bits_truncate(0o644),
        )
        .unwrap();
        let dir = File::open(&root).unwrap();
        let read = |rel: &str| read_in_root(&dir, Path::new(rel), Path::new(rel));
        assert!(read("etc/passwd").unwrap().unwrap().starts_with("root:"));
        // An absolute link resolves inside the root, not on the host.
        assert!(read("abs").unwrap().unwrap().starts_with("root:"));
        // `..` stops at the root: the host's file is not reached.
        assert_eq!(read("etc/up").unwrap(), None);
        assert!(read("fifo")
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
        assert_eq!(read("missing").unwrap(), None);
        // /dev/zero is not in this root.
        assert_eq!(read("zero").unwrap(), None);
        assert!(read_resolved(Path::new("/dev/zero"))
            .unwrap_err()
            .to_string()
            .contains("not a regular file"));
        assert!(read_resolved(&root.join("abs")).is_err(), "final symlink");
        let big = d.path().join("big");
        File::create(&big).unwrap().set_len(MAX_TEXT + 1).unwrap();
        assert!(read_resolved(&big)
            .unwrap_err()
            .to_string()
            .contains("larger than"));
    }
}
