//! Support for the attack suite (`tests/tests/attacks.rs`): the attacker's probe program, hostile
//! images (device nodes, symlinks, FIFOs in a layer), the host files an escape would touch, and
//! measured runs (peak RSS, time limits).
//!
//! The attacks themselves run inside real containers through the real `cairn` binary; this module
//! only builds what they need and reads back what they left, so a test can state what escaped.
//!
//! - [`probe`]: `tests/support/attack-probe.c`, compiled once with `cc -static` and copied into a
//!   test's directory to be bind-mounted into containers (`-v DIR:/attack:ro`).
//! - [`RaceLog`]: what the probe's `race` mode logged (directories reached through
//!   `/proc/*/fd`, `cwd`, `root`; binaries reached through `/proc/*/exe`).
//! - [`HostBinaries`]: cairn's binaries on the host, fingerprinted before an attack and checked
//!   (and repaired, when an attack only appended to them) after.
//! - [`derive_image`]: an image made of a fixture image plus one hostile layer ([`Entry`]).
//! - [`LoopDevice`]: a loop device over a temp file holding a known pattern.
//! - [`run_measured`]: a command under `/usr/bin/time -v`, an address-space cap and a timeout.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::cairn::Cairn;
use crate::util::{run, sha256_digest, write_file};

/// The probe's C source (see its header comment for its modes and log format).
pub const PROBE_SOURCE: &str = include_str!("../support/attack-probe.c");

/// The probe, compiled once per test process with `cc -static` (so it runs in any image).
fn probe_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = crate::util::temp_dir("probe-build").expect("temp dir for the probe build");
        let src = dir.path().join("attack-probe.c");
        let bin = dir.path().join("probe");
        fs::write(&src, PROBE_SOURCE).expect("write the probe source");
        let out = Command::new("cc")
            .args(["-static", "-O2", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .unwrap_or_else(|e| {
                panic!("run cc: {e}: the attack suite needs a C compiler with a static libc (Debian: gcc, libc6-dev)")
            });
        assert!(
            out.status.success(),
            "cc -static attack-probe.c failed (Debian: install gcc and libc6-dev):\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        fs::read(&bin).expect("read the compiled probe")
    })
}

/// Writes the probe to `dir/probe` (mode 0755, `dir` created 0755), ready to be bind-mounted
/// into a container; returns its path.
pub fn probe(dir: &Path) -> anyhow::Result<PathBuf> {
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", dir.display()))?;
    let path = dir.join("probe");
    write_file(&path, probe_bytes())?;
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", path.display()))?;
    Ok(path)
}

/// A fresh directory `name` under the environment's scratch dir, owned by the user the runs are
/// made as (so a rootless container's root, that user, can write into it as a volume).
pub fn user_dir(c: &Cairn, name: &str) -> anyhow::Result<PathBuf> {
    let dir = c.scratch().join(name);
    fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", dir.display()))?;
    if let Some(u) = c.user() {
        run(Command::new("chown")
            .arg(format!("{}:{}", u.uid, u.gid))
            .arg(&dir))?;
    }
    Ok(dir)
}

/// A string no other test run uses: `<label>-<pid>-<nanoseconds>`.
pub fn unique_tag(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{label}-{}-{nanos}", std::process::id())
}

/// One `(dev, ino)` identity of a file.
pub type FileId = (u64, u64);

/// What the probe's `race` mode logged (see `tests/support/attack-probe.c`).
#[derive(Debug, Default, Clone)]
pub struct RaceLog {
    /// The probe's own root, `(dev, ino)`.
    pub root: Option<FileId>,
    /// Every directory a walk reached, first time each: `(pid, what, id, link)`.
    pub reached: Vec<(u32, String, FileId, String)>,
    /// `ESCAPE`, `MARKER`, `CWD`, `LS` lines: a walk that left the container root, with what
    /// the probe did there.
    pub escapes: Vec<String>,
    /// Foreign binaries reached through `/proc/P/exe`: `(pid, id, size, link)`.
    pub exes: Vec<(u32, FileId, u64, String)>,
    /// `EXEREAD` results: `(id, bytes read or the error)`.
    pub exe_reads: Vec<(FileId, String)>,
    /// `EXEWRITE` results: `(id, "ok" or the error)`.
    pub exe_writes: Vec<(FileId, String)>,
    /// The `DONE` line, if the probe finished.
    pub done: Option<String>,
    /// Processes the probe saw (from `DONE`).
    pub pids_seen: u64,
    /// Walks it made (from `DONE`).
    pub walks: u64,
    /// Walks that left its root (from `DONE`; only the first few are logged).
    pub escape_count: u64,
}

impl RaceLog {
    /// Parses the log text.
    pub fn parse(text: &str) -> RaceLog {
        let mut log = RaceLog::default();
        let id = |d: &str, i: &str| -> FileId { (d.parse().unwrap_or(0), i.parse().unwrap_or(0)) };
        for line in text.lines() {
            let f: Vec<&str> = line.splitn(7, ' ').collect();
            match f.as_slice() {
                ["ROOT", d, i] => log.root = Some(id(d, i)),
                ["REACH", pid, what, d, i, rest @ ..] => log.reached.push((
                    pid.parse().unwrap_or(0),
                    (*what).to_owned(),
                    id(d, i),
                    rest.join(" "),
                )),
                ["EXE", pid, d, i, size, rest @ ..] => log.exes.push((
                    pid.parse().unwrap_or(0),
                    id(d, i),
                    size.parse().unwrap_or(0),
                    rest.join(" "),
                )),
                ["EXEREAD", d, i, rest @ ..] => log.exe_reads.push((id(d, i), rest.join(" "))),
                ["EXEWRITE", d, i, rest @ ..] => log.exe_writes.push((id(d, i), rest.join(" "))),
                ["DONE", ..] => {
                    log.done = Some(line.to_owned());
                    for kv in line.split_whitespace().skip(1) {
                        match kv.split_once('=') {
                            Some(("pids", n)) => log.pids_seen = n.parse().unwrap_or(0),
                            Some(("walks", n)) => log.walks = n.parse().unwrap_or(0),
                            Some(("escapes", n)) => log.escape_count = n.parse().unwrap_or(0),
                            _ => {}
                        }
                    }
                }
                [first, ..] if ["ESCAPE", "MARKER", "CWD", "LS"].contains(first) => {
                    log.escapes.push(line.to_owned())
                }
                _ => {}
            }
        }
        log
    }

    /// Reached directories that are not the probe's own root.
    pub fn foreign_dirs(&self) -> Vec<String> {
        self.reached
            .iter()
            .filter(|(_, _, id, _)| Some(*id) != self.root)
            .map(|(pid, what, (d, i), link)| {
                format!("/proc/{pid}/{what} -> {link:?} reached dev {d} ino {i}")
            })
            .collect()
    }
}

/// Waits until the probe's `race` log in `out` has its `DONE` line (after `out/stop` was
/// created), at most `timeout`; returns the parsed log either way.
pub fn finish_race(out: &Path, timeout: Duration) -> RaceLog {
    let _ = fs::write(out.join("stop"), b"");
    let deadline = Instant::now() + timeout;
    loop {
        let text = fs::read_to_string(out.join("log")).unwrap_or_default();
        let log = RaceLog::parse(&text);
        if log.done.is_some() || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until `path` exists, at most `timeout`.
pub fn wait_for_file(path: &Path, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        if Instant::now() > deadline {
            bail!("{} did not appear within {timeout:?}", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// One of cairn's binaries on the host, as it was before an attack.
#[derive(Debug, Clone)]
pub struct HostBinary {
    /// Its path (`target/<profile>/cairn-enter`, ...).
    pub path: PathBuf,
    /// `(dev, ino)`.
    pub id: FileId,
    /// Length in bytes.
    pub len: u64,
    /// `sha256:<hex>` of its content.
    pub digest: String,
}

/// cairn's binaries on the host (`cairn` and the helpers next to it), fingerprinted.
#[derive(Debug, Clone)]
pub struct HostBinaries {
    /// One per binary.
    pub files: Vec<HostBinary>,
}

/// The helper binaries found next to `cairn`.
pub const HELPERS: &[&str] = &["cairn-enter", "cairn-pivot", "cairn-mount", "cairn-monitor"];

impl HostBinaries {
    /// Fingerprints `cairn` and [`HELPERS`] next to it.
    pub fn snapshot() -> anyhow::Result<HostBinaries> {
        let cairn = crate::cairn::binary();
        let dir = cairn
            .parent()
            .context("cairn binary has a parent")?
            .to_owned();
        let mut files = Vec::new();
        for path in std::iter::once(cairn).chain(HELPERS.iter().map(|h| dir.join(h))) {
            let bytes = fs::read(&path).with_context(|| format!("read {}", path.display()))?;
            let meta = fs::metadata(&path).with_context(|| format!("stat {}", path.display()))?;
            files.push(HostBinary {
                id: (meta.dev(), meta.ino()),
                len: bytes.len() as u64,
                digest: sha256_digest(&bytes),
                path,
            });
        }
        Ok(HostBinaries { files })
    }

    /// The binary with this identity.
    pub fn by_id(&self, id: FileId) -> Option<&HostBinary> {
        self.files.iter().find(|f| f.id == id)
    }

    /// The binary with this content.
    pub fn by_digest(&self, digest: &str) -> Option<&HostBinary> {
        self.files.iter().find(|f| f.digest == digest)
    }

    /// Compares every binary with its fingerprint; returns one line per changed binary. A binary
    /// that only grew (an attacker appended to it) is truncated back to its old length, so the
    /// tests after this one still run the real code; anything else needs a rebuild, as said.
    pub fn check_and_repair(&self) -> Vec<String> {
        let mut changed = Vec::new();
        for f in &self.files {
            let bytes = match fs::read(&f.path) {
                Ok(b) => b,
                Err(e) => {
                    changed.push(format!(
                        "{}: unreadable after the attack: {e}",
                        f.path.display()
                    ));
                    continue;
                }
            };
            let digest = sha256_digest(&bytes);
            if digest == f.digest {
                continue;
            }
            let prefix_same =
                bytes.len() as u64 > f.len && sha256_digest(&bytes[..f.len as usize]) == f.digest;
            let tail = String::from_utf8_lossy(&bytes[(f.len as usize).min(bytes.len())..])
                .chars()
                .take(80)
                .collect::<String>();
            let repair = if prefix_same {
                match fs::OpenOptions::new()
                    .write(true)
                    .open(&f.path)
                    .and_then(|file| file.set_len(f.len))
                {
                    Ok(()) => "truncated back to its old length".to_owned(),
                    Err(e) => format!("could not truncate it back ({e}): rebuild with cargo build --workspace --bins"),
                }
            } else {
                "rebuild it: cargo build --workspace --bins".to_owned()
            };
            changed.push(format!(
                "host binary {} was modified from inside a container ({} -> {} bytes, {} appended {:?}; {repair})",
                f.path.display(),
                f.len,
                bytes.len(),
                if prefix_same { "only" } else { "content changed," },
                tail
            ));
        }
        changed
    }
}

/// Serializes the tests that may modify cairn's host binaries (they fingerprint and repair them;
/// two at once would see each other's damage).
pub fn host_binaries_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a race probe reached of cairn's host binaries: one line per finding.
pub fn exe_findings(log: &RaceLog, host: &HostBinaries, out: &Path) -> Vec<String> {
    let mut findings = Vec::new();
    for (pid, id, size, link) in &log.exes {
        let dump = out.join(format!("exe-{}-{}", id.0, id.1));
        let content = fs::read(&dump).ok().map(|b| sha256_digest(&b));
        let read = log
            .exe_reads
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, r)| r.as_str())
            .unwrap_or("not tried");
        let write = log
            .exe_writes
            .iter()
            .find(|(i, _)| i == id)
            .map(|(_, r)| r.as_str())
            .unwrap_or("not tried");
        if let Some(h) = host.by_id(*id) {
            findings.push(format!(
                "the container opened the host binary {} through /proc/{pid}/exe (dev {} ino {}, {size} bytes); reopened read-only: {read}{}; reopened for writing: {write}",
                h.path.display(),
                id.0,
                id.1,
                match &content {
                    Some(d) if *d == h.digest => " (its sha256 is the host file's)",
                    _ => "",
                }
            ));
        } else if let Some(h) = content.as_deref().and_then(|d| host.by_digest(d)) {
            if !link.starts_with("/memfd:") {
                findings.push(format!(
                    "through /proc/{pid}/exe the container read a copy of {} that is not a sealed memfd: {link:?} (dev {} ino {})",
                    h.path.display(),
                    id.0,
                    id.1
                ));
            }
        }
        if write == "ok" {
            findings.push(format!(
                "the container wrote to the binary of /proc/{pid}/exe ({link:?}, dev {} ino {}): a helper's executable must be sealed",
                id.0, id.1
            ));
        }
    }
    findings
}

/// Files named `name` in `dirs` (not recursive) and anywhere below `trees`.
pub fn find_named(name: &str, dirs: &[&Path], trees: &[&Path]) -> Vec<PathBuf> {
    let mut found = BTreeSet::new();
    for d in dirs {
        let p = d.join(name);
        if fs::symlink_metadata(&p).is_ok() {
            found.insert(p);
        }
    }
    let mut stack: Vec<PathBuf> = trees.iter().map(|t| t.to_path_buf()).collect();
    while let Some(dir) = stack.pop() {
        let Ok(rd) = fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            if e.file_name() == name {
                found.insert(e.path());
            }
            if ft.is_dir() {
                stack.push(e.path());
            }
        }
    }
    found.into_iter().collect()
}

/// One entry of a hostile layer.
#[derive(Debug, Clone)]
pub enum Entry {
    /// A directory.
    Dir(String),
    /// A regular file with its mode and content.
    File(String, u32, Vec<u8>),
    /// A block device node `major:minor`, mode 0666.
    Block(String, u32, u32),
    /// A character device node `major:minor`, mode 0666.
    Char(String, u32, u32),
    /// A symbolic link and its target.
    Symlink(String, String),
    /// A FIFO.
    Fifo(String),
}

/// The tar of `entries`, in order, with fixed metadata (owner 0, mtime 0).
pub fn layer_tar(entries: &[Entry]) -> anyhow::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_ustar();
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        let (path, data): (&str, &[u8]) = match e {
            Entry::Dir(p) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                (p, &[])
            }
            Entry::File(p, mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                (p, data)
            }
            Entry::Block(p, major, minor) | Entry::Char(p, major, minor) => {
                h.set_entry_type(if matches!(e, Entry::Block(..)) {
                    tar::EntryType::Block
                } else {
                    tar::EntryType::Char
                });
                h.set_mode(0o666);
                h.set_device_major(*major).context("device major")?;
                h.set_device_minor(*minor).context("device minor")?;
                (p, &[])
            }
            Entry::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_link_name(target)
                    .with_context(|| format!("link name {target}"))?;
                (p, &[])
            }
            Entry::Fifo(p) => {
                h.set_entry_type(tar::EntryType::Fifo);
                h.set_mode(0o644);
                (p, &[])
            }
        };
        b.append_data(&mut h, path, data)
            .with_context(|| format!("tar entry {path}"))?;
    }
    b.into_inner().context("finish the layer tar")
}

/// Writes into the OCI layout `out` (created if needed) an image `tag` made of the image
/// `base_tag` of the layout `base` plus one more layer holding `entries`; returns its
/// `oci:<out>:<tag>` reference. Blobs of the base are hard-linked (copied across file systems).
pub fn derive_image(
    base: &Path,
    base_tag: &str,
    out: &Path,
    tag: &str,
    entries: &[Entry],
) -> anyhow::Result<String> {
    let read_json = |p: &Path| -> anyhow::Result<Value> {
        serde_json::from_slice(&fs::read(p).with_context(|| format!("read {}", p.display()))?)
            .with_context(|| format!("parse {}", p.display()))
    };
    let blob = |root: &Path, digest: &str| {
        root.join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let index = read_json(&base.join("index.json"))?;
    let desc = index["manifests"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == base_tag)
        })
        .with_context(|| format!("no image {base_tag} in {}", base.display()))?;
    let manifest_digest = desc["digest"].as_str().context("manifest digest")?;
    let mut manifest = read_json(&blob(base, manifest_digest))?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .context("config digest")?
        .to_owned();
    let mut config = read_json(&blob(base, &config_digest))?;

    fs::create_dir_all(out.join("blobs/sha256"))
        .with_context(|| format!("create {}", out.display()))?;
    write_file(&out.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let put = |bytes: &[u8]| -> anyhow::Result<String> {
        let digest = sha256_digest(bytes);
        write_file(&blob(out, &digest), bytes)?;
        Ok(digest)
    };
    for layer in manifest["layers"].as_array().context("layers")? {
        let d = layer["digest"].as_str().context("layer digest")?;
        let (src, dst) = (blob(base, d), blob(out, d));
        if !dst.exists() && fs::hard_link(&src, &dst).is_err() {
            fs::copy(&src, &dst)
                .with_context(|| format!("copy {} to {}", src.display(), dst.display()))?;
        }
    }
    let tar = layer_tar(entries)?;
    let diff_id = sha256_digest(&tar);
    let mut gz = flate2::GzBuilder::new().write(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).context("gzip the layer")?;
    let gz = gz.finish().context("gzip the layer")?;
    let layer_digest = put(&gz)?;
    manifest["layers"]
        .as_array_mut()
        .context("layers")?
        .push(json!({
            "mediaType": crate::image::MEDIA_TYPE_LAYER_GZIP,
            "digest": layer_digest,
            "size": gz.len(),
        }));
    config["rootfs"]["diff_ids"]
        .as_array_mut()
        .context("diff_ids")?
        .push(json!(diff_id));
    let config_bytes = serde_json::to_vec(&config)?;
    let config_digest = put(&config_bytes)?;
    manifest["config"]["digest"] = json!(config_digest);
    manifest["config"]["size"] = json!(config_bytes.len());
    let manifest_bytes = serde_json::to_vec(&manifest)?;
    let manifest_digest = put(&manifest_bytes)?;
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": crate::image::MEDIA_TYPE_MANIFEST,
            "digest": manifest_digest,
            "size": manifest_bytes.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }],
    });
    write_file(&out.join("index.json"), serde_json::to_vec(&index)?)?;
    // Readable by the rootless user too.
    run(Command::new("chmod").arg("-R").arg("a+rX").arg(out))?;
    Ok(format!("oci:{}:{tag}", out.display()))
}

/// A loop device over a 1 MiB temp file filled with a known pattern; detached on drop.
#[derive(Debug)]
pub struct LoopDevice {
    /// `/dev/loopN`.
    pub device: PathBuf,
    /// Its major number.
    pub major: u32,
    /// Its minor number.
    pub minor: u32,
    /// The backing file.
    pub backing: PathBuf,
    /// The pattern the backing file repeats.
    pub pattern: String,
    /// `sha256:<hex>` of the backing file when set up.
    pub digest: String,
    _dir: tempfile::TempDir,
}

impl LoopDevice {
    /// Sets one up with `losetup --find --show` (root only).
    pub fn new(tag: &str) -> anyhow::Result<LoopDevice> {
        let dir = crate::util::temp_dir("loop")?;
        let backing = dir.path().join("disk.img");
        let pattern = format!("CAIRN-LOOP-SECRET-{tag}|");
        let mut data = Vec::with_capacity(1 << 20);
        while data.len() < 1 << 20 {
            data.extend_from_slice(pattern.as_bytes());
        }
        data.truncate(1 << 20);
        write_file(&backing, &data)?;
        let device = run(Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&backing))
        .context("losetup --find --show (the device tests need root and a free loop device)")?;
        let device = PathBuf::from(device.trim());
        let rdev = fs::metadata(&device)
            .with_context(|| format!("stat {}", device.display()))?
            .rdev();
        // Linux's dev_t encoding (glibc's major()/minor()).
        let major = (((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff)) as u32;
        let minor = (((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff)) as u32;
        Ok(LoopDevice {
            device,
            major,
            minor,
            backing,
            pattern,
            digest: sha256_digest(&data),
            _dir: dir,
        })
    }

    /// Whether the backing file still holds what it was set up with.
    pub fn unchanged(&self) -> bool {
        fs::read(&self.backing)
            .map(|b| sha256_digest(&b) == self.digest)
            .unwrap_or(false)
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.device).status();
    }
}

/// A command run by [`run_measured`].
#[derive(Debug)]
pub struct Measured {
    /// Exit code of the command (137 when the timeout killed it, -1 if unknown).
    pub code: i32,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Peak resident set size of the command and its descendants, in KiB (`time -v`'s
    /// "Maximum resident set size").
    pub max_rss_kib: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Whether the timeout killed it.
    pub timed_out: bool,
}

/// Runs `cmd` (program, arguments and environment taken from it) under
/// `/usr/bin/time -v prlimit --as=AS_LIMIT timeout -s KILL TIMEOUT`, so a runaway read can
/// neither take the machine's memory nor hang the test.
pub fn run_measured(cmd: &Command, timeout: Duration, as_limit: u64) -> anyhow::Result<Measured> {
    let wrappers: Vec<OsString> = [
        "prlimit".to_owned(),
        format!("--as={as_limit}"),
        "--".to_owned(),
        "timeout".to_owned(),
        "-s".to_owned(),
        "KILL".to_owned(),
        format!("{}", timeout.as_secs_f64()),
    ]
    .into_iter()
    .map(OsString::from)
    .collect();
    let run = crate::util::run_timed(cmd, &wrappers)?;
    let code = run.output.status.code().unwrap_or(-1);
    Ok(Measured {
        code,
        stdout: String::from_utf8_lossy(&run.output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&run.output.stderr).into_owned(),
        max_rss_kib: run.max_rss_kib.unwrap_or(0),
        elapsed: run.elapsed,
        timed_out: code == 137 && run.elapsed >= timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_tar_writes_each_entry_kind() {
        let tar = layer_tar(&[
            Entry::Dir("devs/".into()),
            Entry::File("devs/f".into(), 0o600, b"hi".to_vec()),
            Entry::Block("devs/disk".into(), 7, 3),
            Entry::Char("devs/zero".into(), 1, 5),
            Entry::Symlink("etc/passwd".into(), "/dev/zero".into()),
            Entry::Fifo("etc/group".into()),
        ])
        .unwrap();
        let mut archive = tar::Archive::new(&tar[..]);
        // (path, type, device major, device minor, link target)
        type Seen = (
            String,
            tar::EntryType,
            Option<u32>,
            Option<u32>,
            Option<String>,
        );
        let got: Vec<Seen> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    String::from_utf8(e.path_bytes().to_vec()).unwrap(),
                    h.entry_type(),
                    h.device_major().ok().flatten(),
                    h.device_minor().ok().flatten(),
                    h.link_name()
                        .unwrap()
                        .map(|l| l.to_string_lossy().into_owned()),
                )
            })
            .collect();
        use tar::EntryType as T;
        assert_eq!(got[0].0, "devs/");
        assert_eq!(got[0].1, T::Directory);
        assert_eq!(got[1].1, T::Regular);
        assert_eq!((got[2].1, got[2].2, got[2].3), (T::Block, Some(7), Some(3)));
        assert_eq!((got[3].1, got[3].2, got[3].3), (T::Char, Some(1), Some(5)));
        assert_eq!(
            (got[4].1, got[4].4.as_deref()),
            (T::Symlink, Some("/dev/zero"))
        );
        assert_eq!(got[5].1, T::Fifo);
    }

    #[test]
    fn race_log_parses_every_line_kind() {
        let log = RaceLog::parse(
            "ROOT 42 7\n\
             REACH 4 cwd 42 7 /\n\
             REACH 9 fd/4 65024 2 /proc/7621\n\
             ESCAPE 9 fd/4 65024 2 /proc/7621\n\
             MARKER /cairn-attack-x ok\n\
             CWD (unreachable)/\n\
             LS etc proc\n\
             EXE 8 65024 5 14070832 /work/target/debug/cairn-enter (deleted)\n\
             EXEREAD 65024 5 14070832\n\
             EXEWRITE 65024 5 Text file busy\n\
             DONE pids=36 walks=370 escapes=12 exes=1\n",
        );
        assert_eq!(log.root, Some((42, 7)));
        assert_eq!(log.reached.len(), 2);
        assert_eq!(log.foreign_dirs().len(), 1, "only the host's / is foreign");
        assert_eq!(log.escapes.len(), 4);
        assert_eq!(
            log.exes,
            vec![(
                8,
                (65024, 5),
                14070832,
                "/work/target/debug/cairn-enter (deleted)".to_owned()
            )]
        );
        assert_eq!(log.exe_reads, vec![((65024, 5), "14070832".to_owned())]);
        assert_eq!(
            log.exe_writes,
            vec![((65024, 5), "Text file busy".to_owned())]
        );
        assert_eq!((log.pids_seen, log.walks, log.escape_count), (36, 370, 12));
    }
}

/// A host directory an escape from `cairn build` would write into (`/tmp/cairn-hostdir-TAG`),
/// holding one planted secret file; owned by the user the build runs as (so a rootless escape
/// could write there too). Removed on drop.
#[derive(Debug)]
pub struct HostDir {
    /// The directory.
    pub path: PathBuf,
    /// The planted file's content: a string no image holds.
    pub secret: String,
    mtime: std::time::SystemTime,
    allowed: Vec<String>,
}

impl HostDir {
    /// Creates `/tmp/cairn-hostdir-<label>-<unique>` (0755) with `secret` (0644) in it.
    pub fn new(label: &str, owner: Option<&crate::cairn::TestUser>) -> anyhow::Result<HostDir> {
        let tag = unique_tag(label);
        let path = PathBuf::from(format!("/tmp/cairn-hostdir-{tag}"));
        fs::create_dir(&path).with_context(|| format!("create {}", path.display()))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755))?;
        let secret = format!("CAIRN-HOST-SECRET-{tag}");
        let file = path.join("secret");
        write_file(&file, &secret)?;
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644))?;
        if let Some(u) = owner {
            run(Command::new("chown")
                .arg("-R")
                .arg(format!("{}:{}", u.uid, u.gid))
                .arg(&path))?;
        }
        let mtime = fs::metadata(&file)?.modified()?;
        Ok(HostDir {
            path,
            secret,
            mtime,
            allowed: vec!["secret".to_owned()],
        })
    }

    /// Makes `name` in the directory part of what the test itself put there (not a finding).
    pub fn allow(&mut self, name: &str) {
        self.allowed.push(name.to_owned());
    }

    /// The planted file's path.
    pub fn secret_file(&self) -> PathBuf {
        self.path.join("secret")
    }

    /// What changed: a name other than `secret` in the directory, or the secret's content or
    /// mtime. Empty: untouched.
    pub fn findings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for n in crate::util::dir_names(&self.path) {
            if !self.allowed.contains(&n) {
                out.push(format!(
                    "{} appeared on the host",
                    self.path.join(n).display()
                ));
            }
        }
        match fs::read_to_string(self.secret_file()) {
            Ok(t) if t == self.secret => {}
            Ok(t) => out.push(format!("host secret rewritten: {t:?}")),
            Err(e) => out.push(format!("host secret gone: {e}")),
        }
        if fs::metadata(self.secret_file())
            .and_then(|m| m.modified())
            .is_ok_and(|m| m != self.mtime)
        {
            out.push("host secret's mtime changed".to_owned());
        }
        out
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Every file under the store root `c.root()` (layer directories: the unpacked image trees,
/// containers' upper directories, build cache mounts, blobs: gzip and zstd ones decompressed)
/// that holds one of `needles`, as findings. Searched with grep (this crate is built without
/// optimizations).
pub fn store_holding(c: &Cairn, needles: &[&str]) -> Vec<String> {
    let needles: Vec<&str> = needles.iter().copied().filter(|n| !n.is_empty()).collect();
    if needles.is_empty() {
        return Vec::new();
    }
    let mut pattern = Command::new("grep");
    pattern.args(["-F", "--binary-files=text"]);
    for n in &needles {
        pattern.arg("-e").arg(n);
    }
    let mut found = Vec::new();
    let out = Command::new(pattern.get_program())
        .args(pattern.get_args())
        .arg("-rl")
        .arg(c.root())
        .output()
        .expect("run grep");
    found.extend(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| format!("{l} holds a host secret")),
    );
    for blob in crate::util::dir_names(&c.root().join("blobs/sha256")) {
        // The test images' own blobs hold no secret of a test's.
        if crate::fixtures::blob_path(&format!("sha256:{blob}")).exists() {
            continue;
        }
        let path = c.root().join("blobs/sha256").join(&blob);
        let mut head = [0u8; 4];
        let n = fs::File::open(&path)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .unwrap_or(0);
        let cat = if n >= 2 && head[..2] == [0x1f, 0x8b] {
            "zcat"
        } else if n == 4 && head == [0x28, 0xb5, 0x2f, 0xfd] {
            "zstdcat"
        } else {
            continue;
        };
        let script = format!(
            "{cat} \"$1\" | {}",
            std::iter::once(pattern.get_program())
                .chain(pattern.get_args())
                .map(|a| format!("'{}'", a.to_string_lossy().replace('\'', "'\\''")))
                .collect::<Vec<_>>()
                .join(" ")
                + " -c"
        );
        let out = Command::new("sh")
            .args(["-c", &script, "sh"])
            .arg(&path)
            .output()
            .expect("run sh");
        let count = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if count != "0" && !count.is_empty() {
            found.push(format!(
                "{} (decompressed) holds a host secret",
                path.display()
            ));
        }
    }
    found
}

/// One entry of a hostile tar written byte by byte (names and link targets as given: `..`,
/// absolute paths), which the `tar` crate's builder refuses to write.
#[derive(Debug, Clone)]
pub enum RawEntry {
    /// A directory.
    Dir(String),
    /// A regular file (mode 0644) and its content.
    File(String, Vec<u8>),
    /// A symlink and its target.
    Symlink(String, String),
    /// A hard link and the name it links to.
    Hardlink(String, String),
    /// A character device `major:minor`.
    Char(String, u32, u32),
    /// A block device `major:minor`.
    Block(String, u32, u32),
}

/// The tar (old-style headers, owner 0, mtime 0) of `entries`, in order.
pub fn raw_tar(entries: &[RawEntry]) -> Vec<u8> {
    fn octal(field: &mut [u8], v: u64) {
        let s = format!("{v:0w$o}", w = field.len() - 1);
        field[..s.len()].copy_from_slice(s.as_bytes());
        field[s.len()] = 0;
    }
    let mut out = Vec::new();
    for e in entries {
        let mut h = [0u8; 512];
        let (name, kind, link, data, dev): (&str, u8, &str, &[u8], (u32, u32)) = match e {
            RawEntry::Dir(n) => (n, b'5', "", &[], (0, 0)),
            RawEntry::File(n, d) => (n, b'0', "", d, (0, 0)),
            RawEntry::Symlink(n, t) => (n, b'2', t, &[], (0, 0)),
            RawEntry::Hardlink(n, t) => (n, b'1', t, &[], (0, 0)),
            RawEntry::Char(n, a, b) => (n, b'3', "", &[], (*a, *b)),
            RawEntry::Block(n, a, b) => (n, b'4', "", &[], (*a, *b)),
        };
        h[..name.len()].copy_from_slice(name.as_bytes());
        octal(&mut h[100..108], if kind == b'5' { 0o755 } else { 0o644 });
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], data.len() as u64);
        octal(&mut h[136..148], 0);
        h[156] = kind;
        h[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        octal(&mut h[329..337], u64::from(dev.0));
        octal(&mut h[337..345], u64::from(dev.1));
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        octal(&mut h[148..155], u64::from(sum));
        h[155] = b' ';
        out.extend_from_slice(&h);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}
