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

/// Whether a `passwd` or `group` text has an entry named `name` or of id
/// `name`.
fn has_entry(text: &str, name: &str) -> bool {
    text.lines().any(|l| {
        let f: Vec<&str> = l.split(':').collect();
        f.len() > 2 && (f[0] == name || f[2] == name)
    })
}

/// The lines podman 4.3 adds to a container's `/etc/passwd` and
/// `/etc/group` for a numeric `--user UID[:GID]` the image does not know
/// (`generateUserPasswdEntry`, `generateUserGroupEntry`):
/// `UID:*:UID:GID:container user:WORKDIR:/bin/sh` (GID 0 without one, a
/// group name looked up) and `GID:x:GID:UID` for a numeric group (the
/// user's own number without one) that the image does not have.
pub(crate) fn user_entries(
    user: &str,
    workdir: &str,
    passwd: &str,
    group: &str,
) -> (Option<String>, Option<String>) {
    if user.is_empty() {
        return (None, None);
    }
    let (userspec, groupspec) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let passwd_line = userspec.parse::<u32>().ok().and_then(|uid| {
        if has_entry(passwd, userspec) {
            return None;
        }
        let gid = match groupspec {
            None => 0,
            Some(g) => match g.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => group.lines().find_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    (f.len() > 2 && f[0] == g)
                        .then(|| f[2].parse().ok())
                        .flatten()
                })?,
            },
        };
        let home = if workdir.is_empty() { "/" } else { workdir };
        Some(format!(
            "{uid}:*:{uid}:{gid}:container user:{home}:/bin/sh\n"
        ))
    });
    let group_name = groupspec.unwrap_or(userspec);
    let group_line = group_name
        .parse::<u32>()
        .ok()
        .filter(|_| !has_entry(group, group_name))
        .map(|gid| format!("{gid}:x:{gid}:{userspec}\n"));
    (passwd_line, group_line)
}

/// For a numeric `--user` the image does not know, the entries of
/// [`user_entries`] appended to the container's `/etc/passwd` and
/// `/etc/group`, in its upper layer (the image is never written), with the
/// image file's mode and owner. Nothing when the image has no such file.
pub(crate) fn add_user_entries(
    dir: &Path,
    image_root: &cairn_unpacker::ImageRoot,
    user: &str,
    workdir: &str,
) -> Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let etc = dir.join("upper/etc");
    // The upper layer's copy (keep-id wrote one) or the image's.
    let current = |file: &str| -> Result<Option<(String, std::fs::Metadata)>> {
        let upper = etc.join(file);
        if let Some(text) = read_resolved(&upper)? {
            let meta =
                std::fs::metadata(&upper).with_context(|| format!("stat {}", upper.display()))?;
            return Ok(Some((text, meta)));
        }
        let Some(lower) = image_root.find(&Path::new("etc").join(file)) else {
            return Ok(None);
        };
        let Ok(meta) = std::fs::metadata(&lower) else {
            return Ok(None);
        };
        Ok(read_resolved(&lower)?.map(|t| (t, meta)))
    };
    let (Some(passwd), group) = (current("passwd")?, current("group")?) else {
        return Ok(());
    };
    let group_text = group.as_ref().map_or("", |(t, _)| t.as_str());
    let (p_line, g_line) = user_entries(user, workdir, &passwd.0, group_text);
    for (file, line, old) in [("passwd", p_line, Some(passwd)), ("group", g_line, group)] {
        let (Some(line), Some((mut text, meta))) = (line, old) else {
            continue;
        };
        if !etc.is_dir() {
            let etc_meta = image_root
                .find(Path::new("etc"))
                .and_then(|p| std::fs::metadata(p).ok())
                .with_context(|| "stat the image's /etc".to_owned())?;
            std::fs::create_dir_all(&etc).with_context(|| format!("create {}", etc.display()))?;
            std::fs::set_permissions(
                &etc,
                std::fs::Permissions::from_mode(etc_meta.mode() & 0o7777),
            )
            .with_context(|| format!("chmod {}", etc.display()))?;
            chown_like(&etc, &etc_meta)?;
        }
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&line);
        let path = etc.join(file);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(meta.mode() & 0o7777))
            .with_context(|| format!("chmod {}", path.display()))?;
        chown_like(&path, &meta)?;
    }
    Ok(())
}

/// Gives `p` the owner of `m`.
fn chown_like(p: &Path, m: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::MetadataExt as _;
    nix::unistd::chown(
        p,
        Some(nix::unistd::Uid::from_raw(m.uid())),
        Some(nix::unistd::Gid::from_raw(m.gid())),
    )
    .with_context(|| format!("chown {}", p.display()))
}

/// The host's address `host.containers.internal` names, as podman 4.3's
/// `GetLocalIP` picks it: the first global unicast IPv4 address of the
/// first interface (in index order) that has one. Read from
/// `/sys/class/net/*/ifindex`, `/proc/net/route` and `/proc/net/fib_trie`
/// (no netlink socket needed); `None` when the host has none.
pub(crate) fn host_ip() -> Option<std::net::Ipv4Addr> {
    let mut ifaces: Vec<(u32, String)> = std::fs::read_dir("/sys/class/net")
        .ok()?
        .filter_map(|e| {
            let e = e.ok()?;
            let index = std::fs::read_to_string(e.path().join("ifindex")).ok()?;
            Some((
                index.trim().parse().ok()?,
                e.file_name().to_string_lossy().into_owned(),
            ))
        })
        .collect();
    ifaces.sort();
    let names: Vec<String> = ifaces.into_iter().map(|(_, n)| n).collect();
    let route = std::fs::read_to_string("/proc/net/route").ok()?;
    let fib = std::fs::read_to_string("/proc/net/fib_trie").ok()?;
    pick_host_ip(&names, &route, &fib)
}

/// [`host_ip`]'s choice from the interface names in index order, the text
/// of `/proc/net/route` (each interface's directly connected subnets) and
/// of `/proc/net/fib_trie` (the host's own addresses: `/32 host LOCAL`).
fn pick_host_ip(ifaces: &[String], route: &str, fib_trie: &str) -> Option<std::net::Ipv4Addr> {
    use std::net::Ipv4Addr;
    let mut local: Vec<Ipv4Addr> = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in fib_trie.lines() {
        let t = line.trim_start();
        if let Some(ip) = t.strip_prefix("|-- ") {
            last = ip.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(ip) = last {
                if !local.contains(&ip) {
                    local.push(ip);
                }
            }
        }
    }
    let global = |ip: &Ipv4Addr| {
        !(ip.is_loopback() || ip.is_link_local() || ip.is_unspecified() || ip.is_multicast())
    };
    // /proc/net/route writes addresses as the host-order hex of the
    // network-order bytes (little-endian here): 0102A8C0 is 192.168.2.1.
    let hex = |h: &str| {
        u32::from_str_radix(h, 16)
            .ok()
            .map(|v| Ipv4Addr::from(v.to_le_bytes()))
    };
    for iface in ifaces {
        for line in route.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 8 || f[0] != iface {
                continue;
            }
            let (Some(dest), Some(mask)) = (hex(f[1]), hex(f[7])) else {
                continue;
            };
            let gateway = u16::from_str_radix(f[3], 16).is_ok_and(|flags| flags & 0x2 != 0);
            if gateway || mask.is_unspecified() {
                continue;
            }
            let (d, m) = (u32::from(dest), u32::from(mask));
            if let Some(ip) = local
                .iter()
                .find(|ip| global(ip) && u32::from(**ip) & m == d & m)
            {
                return Some(*ip);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What podman 4.3 added here for each `--user` on the Debian image
    /// (whose files have root, daemon ... tty (5) ... nogroup).
    #[test]
    fn user_entries_as_podman() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
        let group = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n";
        let s = |v: &str| Some(v.to_owned());
        let table: &[(&str, &str, Option<String>, Option<String>)] = &[
            (
                "1000:1000",
                "/",
                s("1000:*:1000:1000:container user:/:/bin/sh\n"),
                s("1000:x:1000:1000\n"),
            ),
            (
                "1000",
                "/",
                s("1000:*:1000:0:container user:/:/bin/sh\n"),
                s("1000:x:1000:1000\n"),
            ),
            (
                "1000:5",
                "/",
                s("1000:*:1000:5:container user:/:/bin/sh\n"),
                None,
            ),
            (
                "1000:tty",
                "/srv",
                s("1000:*:1000:5:container user:/srv:/bin/sh\n"),
                None,
            ),
            ("0", "/", None, None),
            ("nobody", "/", None, None),
            ("65534:1000", "/", None, s("1000:x:1000:65534\n")),
            ("", "/", None, None),
            ("app:1000", "/", None, s("1000:x:1000:app\n")),
        ];
        for (user, workdir, p, g) in table {
            assert_eq!(
                user_entries(user, workdir, passwd, group),
                (p.clone(), g.clone()),
                "{user}"
            );
        }
    }

    /// This machine's tables: eth0 (index 4) comes before podman0 (216),
    /// so 192.0.2.2 wins over 10.88.0.1 although it sorts after it, as
    /// podman wrote in `/etc/hosts` here.
    #[test]
    fn host_ip_by_interface_order() {
        let route =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
podman0\t0000580A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";
        let fib = "Main:\n  +-- 0.0.0.0/0 3 0 5\n        +-- 10.88.0.0/16 2 0 2\n              |-- 10.88.0.1\n                 /32 host LOCAL\n     +-- 127.0.0.0/8 2 0 2\n           |-- 127.0.0.1\n              /32 host LOCAL\n        +-- 192.0.2.0/30 2 0 2\n           |-- 192.0.2.0\n              /24 link UNICAST\n           |-- 192.0.2.2\n              /32 host LOCAL\n        |-- 192.0.2.255\n           /32 link BROADCAST\n";
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            pick_host_ip(&names(&["lo", "ifb0", "eth0", "podman0"]), route, fib),
            Some([192, 0, 2, 2].into())
        );
        assert_eq!(
            pick_host_ip(&names(&["lo", "podman0", "eth0"]), route, fib),
            Some([10, 88, 0, 1].into())
        );
        assert_eq!(pick_host_ip(&names(&["lo"]), route, fib), None);
        assert_eq!(pick_host_ip(&names(&["eth0"]), route, ""), None);
    }

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
