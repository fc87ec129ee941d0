//! Capability names and sets (capabilities(7)).

use crate::error::{Error, Result};

/// Capability names by number (`CAP_CHOWN` = 0 ... `CAP_CHECKPOINT_RESTORE` = 40).
pub const NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// podman's default set (containers.conf `default_capabilities`): 11
/// capabilities, `CapEff: 00000000800405fb` for root in the container.
pub const DEFAULT: [&str; 11] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// A capability number from `CAP_NET_ADMIN`, `net_admin` or `12`.
pub(crate) fn parse(name: &str) -> Result<u32> {
    let upper = name.to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
    if let Some(i) = NAMES.iter().position(|n| *n == bare) {
        return Ok(i as u32);
    }
    match bare.parse::<u32>() {
        Ok(n) if n < 64 => Ok(n),
        _ => Err(Error::Usage(format!("unknown capability {name:?}: use a name from capabilities(7) such as CAP_NET_ADMIN, or ALL"))),
    }
}

/// The mask of the given names.
pub fn mask(names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| 1u64 << parse(n).expect("known capability"))
        .fold(0, |a, b| a | b)
}

/// The highest capability this kernel knows.
pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            (0..64)
                .take_while(|&c| crate::sys::capbset_has(c))
                .last()
                .unwrap_or(40)
        })
}

/// Every capability of this kernel.
pub(crate) fn all() -> u64 {
    let last = last_cap().min(63);
    if last == 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    }
}

/// `base`, minus `drop`, plus `add` (Docker's order: an explicit add wins);
/// `ALL` in `drop` empties the set, in `add` fills it.
pub fn adjust(base: u64, add: &[String], drop: &[String]) -> Result<u64> {
    let is_all = |s: &String| s.eq_ignore_ascii_case("all");
    let mut set = base;
    for d in drop {
        set &= if is_all(d) { 0 } else { !(1u64 << parse(d)?) };
    }
    for a in add {
        set |= if is_all(a) { all() } else { 1u64 << parse(a)? };
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn podman_default_mask() {
        assert_eq!(mask(&DEFAULT), 0x8004_05fb);
        assert_eq!(mask(&DEFAULT).count_ones(), 11);
    }

    #[test]
    fn parse_and_adjust() {
        assert_eq!(parse("CAP_NET_ADMIN").unwrap(), 12);
        assert_eq!(parse("net_admin").unwrap(), 12);
        assert_eq!(parse("Sys_Admin").unwrap(), 21);
        assert_eq!(parse("40").unwrap(), 40);
        assert!(parse("CAP_FLY").is_err());
        assert!(parse("64").is_err());
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let base = mask(&DEFAULT);
        assert_eq!(adjust(base, &[], &[]).unwrap(), base);
        assert_eq!(
            adjust(base, &s(&["NET_ADMIN"]), &s(&["KILL"])).unwrap(),
            (base | 1 << 12) & !(1 << 5)
        );
        assert_eq!(adjust(base, &s(&["CHOWN"]), &s(&["ALL"])).unwrap(), 1);
        assert_eq!(
            adjust(base, &s(&["KILL"]), &s(&["KILL"])).unwrap(),
            base,
            "add wins"
        );
        assert_eq!(adjust(0, &s(&["all"]), &[]).unwrap(), all());
        assert!(adjust(base, &s(&["nope"]), &[]).is_err());
    }
}
