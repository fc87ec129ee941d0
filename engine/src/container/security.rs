//! `--security-opt`, parsed as podman 4 parses it (`parseSecurityOpt`), and
//! the masked and read-only path lists `mask=` and `unmask=` make.

use std::path::PathBuf;

use super::seccomp::Choice;

/// What the `--security-opt`s of a container ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityOpts {
    /// `seccomp=`: default, `unconfined` or a profile file.
    pub seccomp: Choice,
    /// `no-new-privileges` (`=true|false`).
    pub no_new_privs: bool,
    /// `mask=PATH[:PATH]`: hidden besides the defaults.
    pub mask: Vec<String>,
    /// `unmask=ALL|PATH[:PATH]` (globs as Go's `filepath.Match`).
    pub unmask: Vec<String>,
}

impl Default for SecurityOpts {
    fn default() -> Self {
        SecurityOpts {
            seccomp: Choice::Default,
            no_new_privs: false,
            mask: Vec::new(),
            unmask: Vec::new(),
        }
    }
}

/// The path of `/sys/module/apparmor/parameters/enabled` says `Y`.
fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim_start().starts_with('Y'))
}

/// SELinux is mounted.
fn selinux_enabled() -> bool {
    std::path::Path::new("/sys/fs/selinux/enforce").exists()
}

/// Parses every `--security-opt` value. An error starts with the value
/// (quoted): the caller names the option it came from.
pub fn parse(opts: &[String]) -> Result<SecurityOpts, String> {
    let mut s = SecurityOpts::default();
    for opt in opts {
        if opt == "no-new-privileges" {
            s.no_new_privs = true;
            continue;
        }
        // Docker's older KEY:VALUE form, which podman still takes for these.
        let (key, value) = match opt.split_once('=') {
            Some(kv) => kv,
            None => match opt.split_once(':') {
                Some((k @ ("no-new-privileges" | "seccomp" | "apparmor" | "label"), v)) => (k, v),
                _ => return Err(format!("{opt:?}: unknown option; use seccomp=FILE|unconfined, no-new-privileges[=true|false], mask=PATHS, unmask=ALL|PATHS, label=disable or apparmor=unconfined")),
            },
        };
        match key {
            "seccomp" => {
                s.seccomp = match value {
                    "unconfined" => Choice::Unconfined,
                    "" => return Err(format!("{opt:?}: give a profile file or unconfined")),
                    f => {
                        let path = PathBuf::from(f);
                        Choice::File(std::path::absolute(&path).unwrap_or(path))
                    }
                }
            }
            "no-new-privileges" => {
                s.no_new_privs = match value.to_ascii_lowercase().as_str() {
                    "true" | "1" | "t" => true,
                    "false" | "0" | "f" => false,
                    _ => return Err(format!("{opt:?}: no-new-privileges takes true or false")),
                }
            }
            "mask" => {
                for p in value.split(':') {
                    if !p.starts_with('/') {
                        return Err(format!(
                            "{opt:?}: {p:?} is not an absolute path in the container"
                        ));
                    }
                    s.mask.push(p.to_owned());
                }
            }
            "unmask" => s.unmask.push(value.to_owned()),
            // Docker's spelling of unmask=ALL.
            "systempaths" if value == "unconfined" => s.unmask.push("ALL".into()),
            "systempaths" => return Err(format!("{opt:?}: only systempaths=unconfined is supported")),
            // No AppArmor here: podman accepts "unconfined" and refuses a
            // profile it cannot apply.
            "apparmor" => {
                if value != "unconfined" && !value.is_empty() {
                    let why = if apparmor_enabled() {
                        "cairn does not load AppArmor profiles"
                    } else {
                        "AppArmor is not enabled on this host"
                    };
                    return Err(format!("{opt:?}: {why}; use apparmor=unconfined or leave it out"));
                }
            }
            // Without SELinux podman ignores label options.
            "label" => {
                if selinux_enabled() && value != "disable" {
                    return Err(format!("{opt:?}: cairn does not apply SELinux labels; use label=disable"));
                }
            }
            "proc-opts" => return Err(format!("{opt:?}: proc-opts is not supported by cairn")),
            _ => return Err(format!("{opt:?}: unknown option; use seccomp=FILE|unconfined, no-new-privileges[=true|false], mask=PATHS, unmask=ALL|PATHS, label=disable or apparmor=unconfined")),
        }
    }
    Ok(s)
}

/// `.HostConfig.SecurityOpt` as podman 4 shows it: `no-new-privileges` when
/// in force, then the last `label=`, `seccomp=` and `apparmor=` given;
/// `mask=`, `unmask=` and a `--privileged` unconfined profile are not shown.
pub fn inspect_list(security_opt: &[String], no_new_privs: bool) -> Vec<String> {
    let mut out = Vec::new();
    if no_new_privs {
        out.push("no-new-privileges".to_owned());
    }
    for key in ["label", "seccomp", "apparmor"] {
        let last = security_opt.iter().rev().find_map(|o| {
            o.strip_prefix(key)
                .and_then(|rest| rest.strip_prefix('=').or_else(|| rest.strip_prefix(':')))
        });
        if let Some(v) = last {
            out.push(format!("{key}={v}"));
        }
    }
    out
}

/// Go's `filepath.Match` for `/`-separated paths: `*` (no `/`), `?`,
/// `[...]` classes with ranges and `^`/`!` negation, `\` escapes.
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    fn class(p: &[char], c: char) -> Option<(bool, usize)> {
        // p starts after '['; returns (matched, length consumed incl. ']').
        let mut i = 0;
        let negate = matches!(p.first(), Some('^' | '!'));
        if negate {
            i += 1;
        }
        let mut matched = false;
        let mut first = true;
        while i < p.len() {
            if p[i] == ']' && !first {
                return Some((matched != negate, i + 1));
            }
            first = false;
            let mut lo = p[i];
            if lo == '\\' {
                i += 1;
                lo = *p.get(i)?;
            }
            let mut hi = lo;
            if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&h| h != ']') {
                hi = p[i + 2];
                if hi == '\\' {
                    hi = *p.get(i + 3)?;
                    i += 1;
                }
                i += 2;
            }
            if lo <= c && c <= hi {
                matched = true;
            }
            i += 1;
        }
        None
    }
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len())
                .take_while(|&k| k == 0 || n[k - 1] != '/')
                .any(|k| go(&p[1..], &n[k..])),
            Some('?') => n.first().is_some_and(|&c| c != '/') && go(&p[1..], &n[1..]),
            Some('[') => match n.first() {
                Some(&c) if c != '/' => match class(&p[1..], c) {
                    Some((true, len)) => go(&p[1 + len..], &n[1..]),
                    _ => false,
                },
                _ => false,
            },
            Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && go(&p[2..], &n[1..]),
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

/// podman's `shouldMask`: false when an `unmask` entry is `ALL` or one of
/// its `:`-separated globs matches `path`.
pub(crate) fn should_mask(path: &str, unmask: &[String]) -> bool {
    !unmask
        .iter()
        .any(|u| u.eq_ignore_ascii_case("all") || u.split(':').any(|g| glob_match(g, path)))
}

/// The masked and read-only paths: the defaults not unmasked, then `mask`.
/// `None` for both when neither option was given (cairn-mount's defaults).
pub(crate) fn path_lists(mask: &[String], unmask: &[String]) -> Option<(Vec<String>, Vec<String>)> {
    if mask.is_empty() && unmask.is_empty() {
        return None;
    }
    use cairn_runtime::protocol::{DEFAULT_MASKED, DEFAULT_READONLY};
    let mut masked: Vec<String> = DEFAULT_MASKED
        .iter()
        .filter(|p| should_mask(p, unmask))
        .map(|p| p.to_string())
        .collect();
    for m in mask {
        if !masked.contains(m) {
            masked.push(m.clone());
        }
    }
    let readonly = DEFAULT_READONLY
        .iter()
        .filter(|p| should_mask(p, unmask))
        .map(|p| p.to_string())
        .collect();
    Some((masked, readonly))
}

/// The bounding set of a container that is not privileged: `defaults`
/// (containers.conf's `default_capabilities`) with `add` and `drop` applied
/// (names with or without `CAP_`, or `all`). The error names the
/// capability refused.
pub fn bounding_set(defaults: &[String], add: &[String], drop: &[String]) -> Result<u64, String> {
    use cairn_runtime::caps;
    let base = caps::adjust(0, defaults, &[]).map_err(|e| e.to_string())?;
    caps::adjust(base, add, drop).map_err(|e| e.to_string())
}

/// The capabilities PID 1 is given, as `cap_add` over an emptied set
/// (`cap_drop` `ALL`): `defaults` less `drop` (all of them for `ALL`), then
/// `add`. A config without recorded defaults (made before cairn read
/// containers.conf) keeps its own `add` and `drop` over the runtime's 11.
pub(crate) fn process_caps(
    defaults: Option<&[String]>,
    add: &[String],
    drop: &[String],
) -> (Vec<String>, Vec<String>) {
    let Some(defaults) = defaults else {
        return (add.to_vec(), drop.to_vec());
    };
    let bare = |n: &str| {
        let up = n.trim().to_ascii_uppercase();
        up.strip_prefix("CAP_").unwrap_or(&up).to_owned()
    };
    let drop_all = drop.iter().any(|d| d.eq_ignore_ascii_case("all"));
    let dropped: Vec<String> = drop.iter().map(|d| bare(d)).collect();
    let mut keep: Vec<String> = if drop_all {
        Vec::new()
    } else {
        defaults
            .iter()
            .filter(|d| !dropped.contains(&bare(d)))
            .cloned()
            .collect()
    };
    keep.extend(add.iter().cloned());
    (keep, vec!["ALL".to_owned()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str]) -> Result<SecurityOpts, String> {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn containers_conf_capabilities() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let compiled: Vec<String> = crate::containers_conf::COMPILED_CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .collect();
        // podman 4.3 here, no capability in containers.conf: CapBnd a80425fb.
        assert_eq!(bounding_set(&compiled, &[], &[]).unwrap(), 0xa804_25fb);
        // /usr/share/containers/containers.conf's 11: 800405fb.
        let eleven = s(&cairn_runtime::caps::DEFAULT);
        assert_eq!(bounding_set(&eleven, &[], &[]).unwrap(), 0x8004_05fb);
        // default_capabilities = ["CHOWN", "NET_RAW"]: podman showed 2001.
        assert_eq!(
            bounding_set(&s(&["CHOWN", "NET_RAW"]), &[], &[]).unwrap(),
            0x2001
        );
        let table: &[(&[&str], &[&str], &[&str])] = &[
            (&[], &[], &["CHOWN", "NET_RAW"]),
            (&["sys_admin"], &["cap_chown"], &["NET_RAW", "sys_admin"]),
            (&["KILL"], &["all"], &["KILL"]),
        ];
        for (add, drop, want) in table {
            let (a, d) = process_caps(Some(&s(&["CHOWN", "NET_RAW"])), &s(add), &s(drop));
            assert_eq!((a, d), (s(want), s(&["ALL"])), "{add:?} {drop:?}");
            let via_runtime = cairn_runtime::caps::adjust(0x2001, &s(want), &s(&["ALL"])).unwrap();
            assert_eq!(
                via_runtime,
                bounding_set(&s(&["CHOWN", "NET_RAW"]), &s(add), &s(drop)).unwrap(),
                "what pivot applies is the bounding set seccomp was compiled for"
            );
        }
        assert_eq!(
            process_caps(None, &s(&["NET_ADMIN"]), &s(&["KILL"])),
            (s(&["NET_ADMIN"]), s(&["KILL"]))
        );
    }

    #[test]
    fn podman_forms() {
        assert_eq!(opts(&[]).unwrap(), SecurityOpts::default());
        let s = opts(&[
            "seccomp=unconfined",
            "no-new-privileges",
            "label=disable",
            "apparmor=unconfined",
        ])
        .unwrap();
        assert_eq!(s.seccomp, Choice::Unconfined);
        assert!(s.no_new_privs);
        assert!(!opts(&["no-new-privileges=false"]).unwrap().no_new_privs);
        assert!(opts(&["no-new-privileges:true"]).unwrap().no_new_privs);
        assert!(opts(&["no-new-privileges=maybe"]).is_err());
        assert_eq!(
            opts(&["seccomp=/p.json"]).unwrap().seccomp,
            Choice::File("/p.json".into())
        );
        let s = opts(&[
            "mask=/proc/a:/proc/b",
            "unmask=/proc/kcore",
            "systempaths=unconfined",
        ])
        .unwrap();
        assert_eq!(s.mask, ["/proc/a", "/proc/b"]);
        assert_eq!(s.unmask, ["/proc/kcore", "ALL"]);
        for bad in [
            "mask=rel",
            "bogus=1",
            "bogus",
            "proc-opts=x",
            "systempaths=x",
            "seccomp=",
        ] {
            let e = opts(&[bad]).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
    }

    #[test]
    fn inspect_as_podman() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // podman 4.3.1 here printed exactly this for these options.
        let given = s(&[
            "seccomp=/tmp/deny.json",
            "label=disable",
            "apparmor=unconfined",
            "mask=/etc/x",
            "unmask=ALL",
            "no-new-privileges=true",
        ]);
        assert_eq!(
            inspect_list(&given, true),
            s(&[
                "no-new-privileges",
                "label=disable",
                "seccomp=/tmp/deny.json",
                "apparmor=unconfined"
            ])
        );
        assert!(inspect_list(
            &s(&["no-new-privileges=false", "systempaths=unconfined"]),
            false
        )
        .is_empty());
    }

    #[test]
    fn globs_as_go() {
        assert!(glob_match("/proc/*", "/proc/kcore"));
        assert!(!glob_match("/proc/*", "/proc/a/b"));
        assert!(glob_match("/proc/k?ore", "/proc/kcore"));
        assert!(glob_match("/proc/[a-l]core", "/proc/kcore"));
        assert!(!glob_match("/proc/[^k]core", "/proc/kcore"));
        assert!(glob_match("/sys/firmware", "/sys/firmware"));
        assert!(!glob_match("/sys", "/sys/firmware"));
    }

    #[test]
    fn mask_and_unmask_lists() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(path_lists(&[], &[]), None);
        let (m, r) = path_lists(&s(&["/opt/secret"]), &s(&["/proc/kcore:/proc/sys"])).unwrap();
        assert!(!m.contains(&"/proc/kcore".to_string()));
        assert!(m.contains(&"/proc/keys".to_string()));
        assert_eq!(m.last().unwrap(), "/opt/secret");
        assert!(!r.contains(&"/proc/sys".to_string()));
        assert!(r.contains(&"/proc/bus".to_string()));
        let (m, r) = path_lists(&[], &s(&["ALL"])).unwrap();
        assert!(m.is_empty() && r.is_empty());
        let (m, _) = path_lists(&[], &s(&["/proc/*"])).unwrap();
        assert_eq!(
            m,
            [
                "/sys/devices/virtual/powercap",
                "/sys/firmware",
                "/sys/fs/selinux",
                "/sys/dev/block"
            ],
            "every /proc path unmasked, the /sys ones kept"
        );
    }
}
