//! diff, mount, unmount, attach, healthcheck run and generate systemd.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use cairn_engine::commit::{is_whiteout, ENGINE_PATHS};
use cairn_engine::container::runtime::{self, ExecOptions};
use cairn_engine::container::{Container, Containers, Status};
use serde_json::{json, Value};

use super::args::{
    AttachArgs, DiffArgs, GenerateSystemdArgs, HealthcheckRunArgs, MountArgs, UnmountArgs,
};
use super::targets::{Selection, Targets};
use super::usage;
use crate::context::Context;
use crate::exit;

// ---------------------------------------------------------------- diff

/// A change in the container's root, as podman's `diff` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Change {
    /// `A /path`.
    Added(String),
    /// `C /path`.
    Changed(String),
    /// `D /path`.
    Deleted(String),
}

impl Change {
    fn letter_and_path(&self) -> (char, &str) {
        match self {
            Change::Added(p) => ('A', p),
            Change::Changed(p) => ('C', p),
            Change::Deleted(p) => ('D', p),
        }
    }
}

/// The changes of an overlay `upper` over `lowers` (top first), in
/// containers/storage's order: a walk of the upper directory, a parent
/// recorded as changed before the first child added or deleted in it, a
/// directory whose mode and mtime equal the lower's left out.
pub(crate) fn overlay_changes(upper: &Path, lowers: &[PathBuf], skip: &[String]) -> Vec<Change> {
    let mut changes = Vec::new();
    let mut changed_dirs: BTreeSet<String> = BTreeSet::new();
    let walk = walkdir::WalkDir::new(upper)
        .min_depth(1)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let rel = Path::new("/").join(e.path().strip_prefix(upper).unwrap_or(e.path()));
            let rel = rel.to_string_lossy();
            !skip
                .iter()
                .any(|s| *rel == **s || rel.starts_with(&format!("{s}/")))
        });
    for e in walk.filter_map(Result::ok) {
        let Ok(rel) = e.path().strip_prefix(upper) else {
            continue;
        };
        let path = Path::new("/").join(rel).to_string_lossy().into_owned();
        let Ok(meta) = e.path().symlink_metadata() else {
            continue;
        };
        let lower = lowers
            .iter()
            .find_map(|l| l.join(rel).symlink_metadata().ok());
        let change = if is_whiteout(&meta) {
            Change::Deleted(path.clone())
        } else if let Some(lower) = lower {
            if meta.is_dir()
                && lower.is_dir()
                && meta.mode() == lower.mode()
                && meta.mtime() == lower.mtime()
                && meta.mtime_nsec() == lower.mtime_nsec()
            {
                // An opaque directory (removed, then made again) is new,
                // so its mtime differs: it is listed.
                continue;
            }
            Change::Changed(path.clone())
        } else {
            Change::Added(path.clone())
        };
        if meta.is_dir() {
            changed_dirs.insert(path.clone());
        }
        if matches!(change, Change::Added(_) | Change::Deleted(_)) {
            let parent = Path::new(&path)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            if parent != "/" && changed_dirs.insert(parent.clone()) {
                changes.push(Change::Changed(parent));
            }
        }
        changes.push(change);
    }
    changes
}

/// `cairn diff`: the changes in the container's writable layer.
pub fn diff(ctx: &Context, a: DiffArgs) -> anyhow::Result<u8> {
    let containers = Containers::new(ctx.root());
    let c = match (&a.container, a.latest) {
        (Some(_), true) => return Err(usage("--latest and containers cannot be used together")),
        (None, false) => return Err(usage("diff requires one container name or id")),
        (None, true) => containers
            .list()?
            .pop()
            .ok_or_else(|| usage("no containers to diff: --latest found none"))?,
        (Some(name), false) => match containers.try_find(name)? {
            Some(c) => c,
            None => {
                let store = ctx.store()?;
                if store.find_image(name, &ctx.search_registries()?).is_ok() {
                    return Err(usage(format!(
                        "cairn does not support diff of images ({name} is an image, not a container)"
                    )));
                }
                return Err(usage(format!("{name} not found: layer not known")));
            }
        },
    };
    let mut skip: Vec<String> = ENGINE_PATHS.iter().map(|s| (*s).to_owned()).collect();
    skip.extend(c.config.mounts.iter().map(|m| m.destination.clone()));
    let changes = overlay_changes(&c.dir.join("upper"), &c.config.image.lower_dirs(), &skip);
    match a.format.as_deref() {
        None | Some("") => {
            for ch in &changes {
                let (l, p) = ch.letter_and_path();
                println!("{l} {p}");
            }
        }
        Some("json") => {
            let mut doc = serde_json::Map::new();
            for (key, letter) in [("changed", 'C'), ("added", 'A'), ("deleted", 'D')] {
                let paths: Vec<&str> = changes
                    .iter()
                    .map(Change::letter_and_path)
                    .filter(|(l, _)| *l == letter)
                    .map(|(_, p)| p)
                    .collect();
                if !paths.is_empty() {
                    doc.insert(key.into(), json!(paths));
                }
            }
            println!("{}", crate::output::json_indent(&Value::Object(doc), 5));
        }
        Some(f) => {
            return Err(usage(format!(
                "cairn does not support --format {f:?} for diff (only json)"
            )))
        }
    }
    Ok(0)
}

// ---------------------------------------------------------------- mount

fn merged_dir(c: &Container) -> PathBuf {
    c.dir.join("merged")
}

/// Whether `path` is a mount point (in our mount namespace).
fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m.replace("\\040", " ") == want)
}

/// Where the container's root can be read: a running container's own
/// mount through /proc (its root lives in its mount namespace), else the
/// overlay `mount` made at `merged/`.
fn mount_point(c: &Container) -> Option<PathBuf> {
    if c.live().status.is_alive() {
        return Some(PathBuf::from(format!("/proc/{}/root", c.state.pid)));
    }
    let m = merged_dir(c);
    is_mounted(&m).then_some(m)
}

fn need_root(verb: &str) -> anyhow::Result<()> {
    if nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    Err(usage(format!(
        "cairn does not support {verb} as a normal user (the overlay would exist only in cairn's user namespace; run it as root)"
    )))
}

/// Mounts a stopped container's overlay at `merged/` (with the mount(8)
/// tool: the CLI has no unsafe code).
fn mount_overlay(c: &Container) -> anyhow::Result<PathBuf> {
    let m = merged_dir(c);
    if is_mounted(&m) {
        return Ok(m);
    }
    std::fs::create_dir_all(&m).map_err(|e| usage(format!("create {}: {e}", m.display())))?;
    let lowers = c.config.image.lowerdir_option();
    if lowers.is_empty() {
        return Err(usage(format!(
            "container {} has no image root to mount",
            c.config.name
        )));
    }
    let opts = format!(
        "lowerdir={lowers},upperdir={},workdir={}",
        c.dir.join("upper").display(),
        c.dir.join("work").display()
    );
    let out = Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o", &opts])
        .arg(&m)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| usage(format!("run mount(8): {e}")))?;
    if !out.status.success() {
        return Err(usage(format!(
            "mount the root of {}: {}",
            c.config.name,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(m)
}

/// `cairn mount`: prints where each container's root is (mounting a
/// stopped one); without containers, lists the mounted ones.
pub fn mount(ctx: &Context, a: MountArgs) -> anyhow::Result<u8> {
    need_root("mount")?;
    let containers = Containers::new(ctx.root());
    if a.containers.is_empty() && !a.all && !a.latest {
        let mounted: Vec<(Container, PathBuf)> = containers
            .list()?
            .into_iter()
            .filter_map(|c| mount_point(&c).map(|m| (c, m)))
            .collect();
        match a.format.as_deref() {
            Some("json") => {
                let docs: Vec<Value> = mounted
                    .iter()
                    .map(|(c, m)| json!({"id": c.config.id, "Names": [c.config.name], "mountpoint": m}))
                    .collect();
                println!("{}", crate::output::json_indent(&Value::Array(docs), 1));
            }
            None | Some("") => {
                for (c, m) in &mounted {
                    let id = if a.no_trunc {
                        c.config.id.as_str()
                    } else {
                        c.config.id.short()
                    };
                    println!("{id}  {}", m.display());
                }
            }
            Some(f) => {
                return Err(usage(format!(
                    "cairn does not support --format {f:?} for mount (only json)"
                )))
            }
        }
        return Ok(0);
    }
    let Targets { found, missing } = Selection {
        names: &a.containers,
        latest: a.latest,
        all: a.all,
        ..Selection::default()
    }
    .resolve(&containers)?;
    if let Some(m) = missing.first() {
        return Err(usage(super::no_such(m)));
    }
    for c in &found {
        let path = match mount_point(c) {
            Some(p) => p,
            None => mount_overlay(c)?,
        };
        if a.all {
            println!("{}  {}", c.config.id.short(), path.display());
        } else {
            println!("{}", path.display());
        }
    }
    Ok(0)
}

/// `cairn unmount`: undoes `mount` (a running container's root stays: it
/// is its own mount namespace's).
pub fn unmount(ctx: &Context, a: UnmountArgs) -> anyhow::Result<u8> {
    need_root("unmount")?;
    let containers = Containers::new(ctx.root());
    let Targets { found, missing } = Selection {
        names: &a.containers,
        latest: a.latest,
        all: a.all,
        ..Selection::default()
    }
    .resolve(&containers)?;
    if let Some(m) = missing.first() {
        return Err(usage(super::no_such(m)));
    }
    for c in &found {
        let m = merged_dir(c);
        if is_mounted(&m) {
            let out = Command::new("umount")
                .arg(&m)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| usage(format!("run umount(8): {e}")))?;
            if !out.status.success() {
                return Err(usage(format!(
                    "unmount the root of {}: {}",
                    c.config.name,
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        } else if a.all {
            continue;
        }
        println!(
            "{}",
            if a.all {
                c.config.id.to_string()
            } else {
                super::targets::shown_name(&a.containers, c)
            }
        );
    }
    Ok(0)
}

// ---------------------------------------------------------------- attach

/// `cairn attach`: refused by name. A detached cairn container's output
/// goes to its log file and its stdin is closed at start; nothing keeps
/// a socket to re-attach to (podman's conmon attach socket).
pub fn attach(_ctx: &Context, _a: AttachArgs) -> anyhow::Result<u8> {
    Err(usage(
        "cairn does not support attach (a detached container's output goes only to its log and its stdin is closed: use `cairn logs -f` to follow it, or `cairn start -a` for a stopped one)",
    ))
}

// ---------------------------------------------------------------- healthcheck

/// The health test the image defines (`config.Healthcheck.Test` of a
/// Docker-format image), as podman runs it: `CMD` args or `CMD-SHELL` line.
fn health_test(ctx: &Context, c: &Container) -> anyhow::Result<Option<Vec<String>>> {
    let store = ctx.store()?;
    let Some(m) = c.config.image.manifest.as_ref() else {
        return Ok(None);
    };
    let Some(image) = store.image_by_manifest(m)? else {
        return Ok(None);
    };
    let (_, raw) = store.config(image.id())?;
    let test: Vec<String> = raw
        .pointer("/config/Healthcheck/Test")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(health_command(&test))
}

/// A Docker health test to the command it runs; `None` for none.
pub(crate) fn health_command(test: &[String]) -> Option<Vec<String>> {
    match test.split_first() {
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
        Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
            Some(vec!["/bin/sh".into(), "-c".into(), rest.join(" ")])
        }
        _ => None,
    }
}

/// `cairn healthcheck run`: runs the health command in the container;
/// exit 0 healthy, 1 and `unhealthy` on stdout otherwise.
pub fn healthcheck_run(ctx: &Context, a: HealthcheckRunArgs) -> anyhow::Result<u8> {
    let containers = Containers::new(ctx.root());
    let c = containers.try_find(&a.container)?.ok_or_else(|| {
        usage(format!(
            "unable to look up {} to perform a health check: {}",
            a.container,
            super::no_such(&a.container)
        ))
    })?;
    if c.live().status != Status::Running {
        return Err(usage(format!("container {} is not running", c.config.id)));
    }
    let Some(command) = health_test(ctx, &c)? else {
        return Err(usage(format!(
            "container {} has no defined healthcheck",
            c.config.id
        )));
    };
    let (mut cmd, _sealed) = runtime::exec_command(
        &c,
        c.state.pid,
        &ExecOptions {
            user: None,
            workdir: None,
            env: &[],
            privileged: false,
        },
    )?;
    cmd.arg("--").args(&command);
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| usage(format!("run the health check: {e}")))?;
    if status.success() {
        return Ok(0);
    }
    println!("unhealthy");
    Ok(1)
}

// ---------------------------------------------------------------- generate systemd

/// The create flags of `c`'s recorded command line for `run` in a unit:
/// without the program, global flags, the verb, `-d`, `--name`, `--rm`
/// and `--cidfile` (the unit sets its own). The command line is parsed
/// again to find where IMAGE is (flag values look like positionals).
fn run_flags(create_command: &[String]) -> Option<Vec<String>> {
    use clap::Parser as _;
    let cli = crate::app::Cli::try_parse_from(create_command).ok()?;
    let tail = match cli.command {
        crate::app::Command::Run(r) => r.create.args.len(),
        crate::app::Command::Create(c) => c.args.len(),
        _ => return None,
    };
    let verb = create_command
        .iter()
        .position(|w| w == "run" || w == "create")?;
    let image_at = create_command.len().checked_sub(tail)?;
    let mut out = Vec::new();
    let mut flags = create_command.get(verb + 1..image_at)?.iter();
    while let Some(w) = flags.next() {
        match w.as_str() {
            "-d" | "--detach" | "--rm" | "--replace" => {}
            "--name" | "--cidfile" => {
                flags.next();
            }
            _ if ["--name=", "--cidfile=", "--detach=", "--rm="]
                .iter()
                .any(|p| w.starts_with(p)) => {}
            _ => out.push(w.clone()),
        }
    }
    out.extend(create_command[image_at..].iter().cloned());
    Some(out)
}

/// A word for a systemd command line: `$` and `%` doubled (systemd
/// expands variables and specifiers), quoted when it has other than plain
/// characters.
fn sd_quote(w: &str) -> String {
    let w = w.replace('$', "$$").replace('%', "%%");
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%$".contains(c))
    {
        return w;
    }
    format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The unit text for `c` (see `generate_systemd`).
pub(crate) fn unit_text(
    c: &Container,
    a: &GenerateSystemdArgs,
    cairn: &str,
    root: &Path,
    now: &str,
) -> String {
    let ident = if a.name {
        c.config.name.clone()
    } else {
        c.config.id.to_string()
    };
    let unit = format!("{}{}{ident}.service", a.container_prefix, a.separator);
    let stop_t = a.stop_timeout.unwrap_or(c.config.stop_timeout);
    let cairn = format!("{cairn} --root {}", sd_quote(&root.to_string_lossy()));
    let mut t = String::new();
    let _ = writeln!(t, "# {unit}");
    if !a.no_header {
        let _ = writeln!(t, "# autogenerated by cairn {}", env!("CARGO_PKG_VERSION"));
        let _ = writeln!(t, "# {now}");
    }
    let _ = writeln!(t, "\n[Unit]\nDescription=cairn container {unit}");
    let _ = writeln!(t, "Documentation=man:podman-generate-systemd(1)");
    let _ = writeln!(
        t,
        "Wants=network-online.target\nAfter=network-online.target"
    );
    let _ = writeln!(t, "RequiresMountsFor={}", root.display());
    if !(a.wants.is_empty() && a.after.is_empty() && a.requires.is_empty()) {
        let _ = writeln!(t, "\n# User-defined dependencies");
        for (key, v) in [
            ("Wants", &a.wants),
            ("After", &a.after),
            ("Requires", &a.requires),
        ] {
            if !v.is_empty() {
                let _ = writeln!(t, "{key}={}", v.join(" "));
            }
        }
    }
    let _ = writeln!(t, "\n[Service]\nEnvironment=PODMAN_SYSTEMD_UNIT=%n");
    for e in &a.env {
        let _ = writeln!(t, "Environment={e}");
    }
    let _ = writeln!(t, "Restart={}", a.restart_policy);
    if let Some(s) = a.restart_sec {
        let _ = writeln!(t, "RestartSec={s}");
    }
    if let Some(s) = a.start_timeout {
        let _ = writeln!(t, "TimeoutStartSec={s}");
    }
    let _ = writeln!(t, "TimeoutStopSec={}", stop_t + 60);
    // cairn run/start -a stay in the foreground with the container's exit
    // status: a simple service, no PID file or conmon.
    if a.new {
        let flags: Vec<String> = run_flags(&c.config.create_command)
            .unwrap_or_default()
            .iter()
            .map(|w| sd_quote(w))
            .collect();
        let _ = writeln!(t, "ExecStartPre=/bin/rm \\\n\t-f %t/%n.ctr-id");
        let _ = writeln!(
            t,
            "ExecStart={cairn} run \\\n\t--cidfile=%t/%n.ctr-id \\\n\t--rm \\\n\t--name {} {}",
            sd_quote(&c.config.name),
            flags.join(" ")
        );
        let _ = writeln!(
            t,
            "ExecStop={cairn} stop \\\n\t--ignore -t {stop_t} \\\n\t--cidfile=%t/%n.ctr-id"
        );
        let _ = writeln!(
            t,
            "ExecStopPost={cairn} rm \\\n\t-f \\\n\t--ignore -t {stop_t} \\\n\t--cidfile=%t/%n.ctr-id"
        );
    } else {
        let _ = writeln!(t, "ExecStart={cairn} start -a {ident}");
        let _ = writeln!(t, "ExecStop={cairn} stop \\\n\t-t {stop_t} {ident}");
    }
    let _ = writeln!(t, "Type=simple");
    let _ = write!(t, "\n[Install]\nWantedBy=default.target\n");
    t
}

/// `cairn generate systemd`: a unit that runs the container (`start -a`
/// of this container, or with `--new` a fresh `run` of its command line).
pub fn generate_systemd(ctx: &Context, a: GenerateSystemdArgs) -> anyhow::Result<u8> {
    if a.template {
        return Err(usage(
            "cairn does not support --template (units with %i instances)",
        ));
    }
    if a.pod_prefix.is_some() {
        return Err(usage(
            "cairn does not support --pod-prefix (cairn has no pods)",
        ));
    }
    if let Some(f) = &a.format {
        return Err(usage(format!(
            "cairn does not support --format {f:?} (units are printed as text)"
        )));
    }
    let containers = Containers::new(ctx.root());
    let c = containers.find(&a.container)?;
    if a.new && run_flags(&c.config.create_command).is_none() {
        return Err(usage(format!(
            "container {} has no recorded run or create command line: --new needs one",
            c.config.name
        )));
    }
    let cairn = std::env::current_exe()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "cairn".into());
    let root = std::fs::canonicalize(ctx.root()).unwrap_or_else(|_| ctx.root().to_owned());
    let now = chrono::Utc::now()
        .format("%a %b %e %H:%M:%S UTC %Y")
        .to_string();
    let text = unit_text(&c, &a, &cairn, &root, &now);
    if a.files {
        let ident = if a.name {
            c.config.name.clone()
        } else {
            c.config.id.to_string()
        };
        let name = format!("{}{}{ident}.service", a.container_prefix, a.separator);
        let path = std::env::current_dir()
            .map_err(|e| usage(format!("current directory: {e}")))?
            .join(&name);
        std::fs::write(&path, &text)
            .map_err(|e| exit::with_code(exit::ENGINE, format!("write {}: {e}", path.display())))?;
        println!("{}", path.display());
    } else {
        print!("{text}");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_flags_from_a_create_command() {
        let cmd: Vec<String> = [
            "/usr/bin/cairn",
            "--root",
            "/r",
            "run",
            "-d",
            "--name",
            "web",
            "-e",
            "A=1",
            "--rm",
            "img",
            "sleep",
            "-d",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            run_flags(&cmd).unwrap(),
            ["-e", "A=1", "img", "sleep", "-d"]
        );
        assert_eq!(sd_quote("a b"), "\"a b\"");
        assert_eq!(sd_quote("echo $A 100%"), "\"echo $$A 100%%\"");
        assert_eq!(sd_quote("A=1"), "A=1");
    }

    #[test]
    fn health_tests() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(health_command(&v(&["CMD", "true"])), Some(v(&["true"])));
        assert_eq!(
            health_command(&v(&["CMD-SHELL", "test -e /x"])),
            Some(v(&["/bin/sh", "-c", "test -e /x"]))
        );
        assert_eq!(health_command(&v(&["NONE"])), None);
        assert_eq!(health_command(&[]), None);
    }

    #[test]
    fn overlay_changes_as_containers_storage() {
        let t = tempfile::tempdir().unwrap();
        let (lower, upper) = (t.path().join("lower"), t.path().join("upper"));
        for d in ["etc", "usr/bin", "var/log"] {
            std::fs::create_dir_all(lower.join(d)).unwrap();
        }
        std::fs::write(lower.join("etc/issue"), "x").unwrap();
        std::fs::write(lower.join("etc/motd"), "x").unwrap();
        // The upper: etc copied up and changed, a new file, a new tree;
        // usr copied up with the lower's metadata.
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/issue"), "y").unwrap();
        std::fs::write(upper.join("etc/new"), "y").unwrap();
        std::fs::create_dir_all(upper.join("newdir/sub")).unwrap();
        std::fs::write(upper.join("newdir/sub/f"), "y").unwrap();
        std::fs::create_dir_all(upper.join("usr/bin")).unwrap();
        std::fs::write(upper.join("usr/bin/tool"), "y").unwrap();
        std::fs::create_dir_all(upper.join("dev")).unwrap();
        std::fs::write(upper.join("dev/null"), "").unwrap();
        let same = |d: &str| {
            let m = std::fs::metadata(lower.join(d)).unwrap();
            let f = std::fs::File::open(upper.join(d)).unwrap();
            f.set_modified(m.modified().unwrap()).unwrap();
        };
        same("usr");
        // etc's mtime differs from the lower's, as a copy-up that changed
        // it leaves it (set, not left to the clock: both can fall in one
        // tick of the kernel's coarse timestamps).
        let m = std::fs::metadata(lower.join("etc")).unwrap();
        std::fs::File::open(upper.join("etc"))
            .unwrap()
            .set_modified(m.modified().unwrap() + std::time::Duration::from_secs(1))
            .unwrap();
        let out: Vec<String> = overlay_changes(&upper, &[lower], &["/dev".into()])
            .iter()
            .map(|c| {
                let (l, p) = c.letter_and_path();
                format!("{l} {p}")
            })
            .collect();
        assert_eq!(
            out,
            [
                "C /etc",
                "C /etc/issue",
                "A /etc/new",
                "A /newdir",
                "A /newdir/sub",
                "A /newdir/sub/f",
                "C /usr/bin",
                "A /usr/bin/tool",
            ]
        );
    }
}
