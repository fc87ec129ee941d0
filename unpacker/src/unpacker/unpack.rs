//! `cairn unpack`: an image, or raw layer files, written to a directory of
//! the caller's, built beside it and renamed into place.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use cairn_fsutil::{IoContext as _, PathError};
use cairn_store::Image;
use rayon::prelude::*;

use super::cache::decode_with_digest;
use super::dirs::remove_tree;
use super::Unpacker;
use crate::changeset::Changeset;
use crate::error::Error;
use crate::materialize::{materialize, Devices, MaterializeOptions, Mode, Stats};
use crate::objects::ObjectStore;
use crate::plan::Plan;

impl Unpacker {
    /// `cairn unpack IMAGE DIR`: the image's root written to `target` (which
    /// must not exist or be empty) in `mode`.
    pub fn unpack_image(&self, image: &Image, target: &Path, mode: Mode) -> Result<Stats, Error> {
        let layers = self.layers_of(image)?;
        let plan = Plan::from_layers(&layers)?;
        self.write_plan(&plan, target, mode)
    }

    /// `cairn unpack --layer FILE... DIR`: raw layer blobs applied in order.
    pub fn unpack_files(
        &self,
        files: &[PathBuf],
        target: &Path,
        mode: Mode,
    ) -> Result<Stats, Error> {
        let decoded: Vec<Result<Changeset, Error>> = files
            .par_iter()
            .map(|f| {
                let file = fs::File::open(f).io_context("open layer", f)?;
                decode_with_digest(
                    file,
                    &f.display().to_string(),
                    &self.objects,
                    &self.opts.decode,
                )
                .map(|(cs, _)| cs)
            })
            .collect();
        let layers: Vec<Changeset> = decoded.into_iter().collect::<Result<_, _>>()?;
        let plan = Plan::from_layers(&layers)?;
        self.write_plan(&plan, target, mode)
    }

    /// Writes `plan` into `target`, which must be missing or an empty
    /// directory. The tree is built in a hidden sibling,
    /// `.<name>.unpack-<pid>`, and renamed onto `target` when complete
    /// (`rename(2)` replaces an empty directory), so a crash leaves `target`
    /// as it was, and the next unpack into `target` sweeps the dead
    /// sibling and completes. A target that cannot be renamed onto (a mount
    /// point) is written in place, as before: there a crash leaves a partial
    /// tree that must be removed by hand.
    fn write_plan(&self, plan: &Plan, target: &Path, mode: Mode) -> Result<Stats, Error> {
        let exists = match fs::read_dir(target) {
            Ok(mut rd) => {
                if rd.next().is_some() {
                    return Err(Error::Io(PathError::new(
                        "unpack into",
                        target,
                        io::Error::new(io::ErrorKind::AlreadyExists, "directory not empty"),
                    )));
                }
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => return Err(e).io_context("open", target).map_err(Error::from),
        };
        let opts = MaterializeOptions {
            mode,
            ownership: self.opts.ownership,
            devices: Devices::Create,
        };
        let Some(tmp) = self.unpack_temp(target, exists)? else {
            return write_in_place(plan, &self.objects, target, opts);
        };
        let result = materialize(plan, &self.objects, &tmp, opts)
            .map_err(|e| under_target(e, &tmp, target))
            .and_then(|stats| {
                fs::rename(&tmp, target)
                    .io_context("rename the unpacked tree into place", target)?;
                Ok(stats)
            });
        if result.is_err() {
            let _ = remove_tree(&tmp);
        }
        result
    }

    /// An empty hidden sibling of `target` to build in, after sweeping the
    /// ones of unpacks into `target` that died; `None` when `target` (an
    /// existing empty directory) cannot be replaced by rename.
    fn unpack_temp(&self, target: &Path, exists: bool) -> Result<Option<PathBuf>, Error> {
        let Some(name) = target.file_name() else {
            return Ok(None);
        };
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).io_context("create", &parent)?;
        let prefix = format!(".{}.unpack-", name.to_string_lossy());
        if let Ok(rd) = fs::read_dir(&parent) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                let dead = n
                    .strip_prefix(&prefix)
                    .and_then(|pid| pid.parse::<u32>().ok())
                    .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
                if dead {
                    let _ = remove_tree(&e.path());
                }
            }
        }
        let tmp = parent.join(format!("{prefix}{}", std::process::id()));
        let _ = remove_tree(&tmp);
        fs::create_dir(&tmp).io_context("create", &tmp)?;
        if exists {
            // Can an empty directory replace `target`? Not if it is a mount
            // point (EBUSY) or on another filesystem (EXDEV).
            match fs::rename(&tmp, target) {
                Ok(()) => fs::create_dir(&tmp).io_context("create", &tmp)?,
                Err(e)
                    if [rustix::io::Errno::BUSY, rustix::io::Errno::XDEV]
                        .iter()
                        .any(|x| e.raw_os_error() == Some(x.raw_os_error())) =>
                {
                    let _ = fs::remove_dir(&tmp);
                    return Ok(None);
                }
                Err(e) => {
                    let _ = fs::remove_dir(&tmp);
                    return Err(e).io_context("replace", target).map_err(Error::from);
                }
            }
        }
        Ok(Some(tmp))
    }
}

/// An error about a path in the hidden build directory `tmp`, told about
/// the same path under `target`: what the user asked for.
fn under_target(e: Error, tmp: &Path, target: &Path) -> Error {
    match e {
        Error::Io(mut e) => {
            if let Ok(rel) = e.path.strip_prefix(tmp) {
                e.path = target.join(rel);
            }
            Error::Io(e)
        }
        other => other,
    }
}

/// Materializes into `target` itself; on failure removes what was written.
fn write_in_place(
    plan: &Plan,
    objects: &ObjectStore,
    target: &Path,
    opts: MaterializeOptions,
) -> Result<Stats, Error> {
    fs::create_dir_all(target).io_context("create", target)?;
    let result = materialize(plan, objects, target, opts);
    if result.is_err() {
        // Leave no half-built tree behind.
        if let Ok(rd) = fs::read_dir(target) {
            for e in rd.flatten() {
                let _ = remove_tree(&e.path());
            }
        }
    }
    result
}
