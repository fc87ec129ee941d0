//! Atomic file replacement.
//!
//! Crash rule: the data goes to a new temporary file beside the target
//! (`.NAME.PID-N.tmp`, created with `O_EXCL|O_NOFOLLOW`, so a planted link
//! is never followed), which is renamed over the target. A crash at any
//! point leaves the old file or the new one at the target's path, never a
//! partial one. A failed write removes its temporary file; a crash may
//! leave one, which nothing reads (owners sweep `.*.tmp` beside their files
//! where that matters). With [`Durability::Durable`] the file is fsynced
//! before the rename and the directory after it, so the new content also
//! survives a power cut once the call returns.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{IoContext as _, PathError};

/// Whether a replacement must survive a power cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Fsync the file before the rename and the directory after it.
    Durable,
    /// Atomic against crashes of the process only (state that is rebuilt
    /// after a reboot anyway).
    Volatile,
}

/// Replaces `path` with `data` (file mode `mode`, before the umask).
pub fn write_atomic(
    path: &Path,
    data: &[u8],
    mode: u32,
    durability: Durability,
) -> Result<(), PathError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let (tmp, mut file) = create_temp(dir, path, mode)?;
    let written = file
        .write_all(data)
        .and_then(|()| match durability {
            Durability::Durable => file.sync_all(),
            Durability::Volatile => Ok(()),
        })
        .io_context("write", &tmp)
        .and_then(|()| std::fs::rename(&tmp, path).io_context("rename into place", path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if durability == Durability::Durable {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .io_context("fsync directory", dir)?;
    }
    Ok(())
}

fn create_temp(dir: &Path, target: &Path, mode: u32) -> Result<(PathBuf, File), PathError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            // Left by a crashed process whose pid we now have.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(PathError::new("create", tmp, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt as _};

    fn leftovers(dir: &Path) -> Vec<String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn replaces_content_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        for (content, durability) in [
            (&b"one"[..], Durability::Durable),
            (b"two", Durability::Volatile),
        ] {
            write_atomic(&p, content, 0o600, durability).unwrap();
            assert_eq!(std::fs::read(&p).unwrap(), content);
        }
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        assert!(leftovers(dir.path()).is_empty());
    }

    #[test]
    fn a_planted_temp_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let p = dir.path().join("state");
        // Every name this process would try first.
        for n in 0..64 {
            let _ = symlink(
                &victim,
                dir.path()
                    .join(format!(".state.{}-{n}.tmp", std::process::id())),
            );
        }
        write_atomic(&p, b"new", 0o644, Durability::Durable).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
    }

    #[test]
    fn a_failed_rename_leaves_the_old_file_and_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        // The target is a non-empty directory: rename(2) fails.
        let p = dir.path().join("busy");
        std::fs::create_dir(&p).unwrap();
        std::fs::write(p.join("inside"), b"x").unwrap();
        let e = write_atomic(&p, b"new", 0o644, Durability::Durable).unwrap_err();
        assert_eq!(e.op, "rename into place");
        assert!(p.join("inside").exists());
        assert!(leftovers(dir.path()).is_empty());
    }
}
