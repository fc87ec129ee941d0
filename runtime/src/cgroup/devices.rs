//! Device rules: their text form (`devices.allow`, `--device-cgroup-rule`)
//! and how each version applies them: v1 writes `devices.deny` then
//! `devices.allow`, v2 attaches an eBPF program to the cgroup.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::DeviceRule;
use crate::error::{Error, Result};

impl FromStr for DeviceRule {
    type Err = Error;

    /// `TYPE MAJOR:MINOR ACCESS` (`c 1:3 rwm`, `b *:* m`), or `a` alone
    /// (every device, `a *:* rwm`). The rule is an allow rule.
    fn from_str(text: &str) -> Result<DeviceRule> {
        let bad = |why: &str| {
            Error::Usage(format!(
                "device cgroup rule {text:?}: {why} (expected TYPE MAJOR:MINOR ACCESS, as \"c 1:3 rwm\" or \"b *:* m\", or \"a\")"
            ))
        };
        let fields: Vec<&str> = text.split_whitespace().collect();
        let kind = match fields.first().copied() {
            Some("a") => 'a',
            Some("b") => 'b',
            Some("c") => 'c',
            Some(_) => return Err(bad("the type must be a, b or c")),
            None => return Err(bad("empty")),
        };
        if kind == 'a' && fields.len() == 1 {
            return Ok(DeviceRule {
                allow: true,
                kind,
                major: None,
                minor: None,
                access: "rwm".into(),
            });
        }
        if fields.len() != 3 {
            return Err(bad("three fields needed"));
        }
        let number = |s: &str, what: &str| -> Result<Option<u32>> {
            if s == "*" {
                return Ok(None);
            }
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(&format!("the {what} must be a number or *")));
            }
            s.parse()
                .map(Some)
                .map_err(|_| bad(&format!("the {what} is too large")))
        };
        let (major, minor) = fields[1]
            .split_once(':')
            .ok_or_else(|| bad("MAJOR:MINOR needs a colon"))?;
        let (major, minor) = (number(major, "major")?, number(minor, "minor")?);
        if kind == 'a' && (major.is_some() || minor.is_some()) {
            return Err(bad("type a covers every device: give *:*"));
        }
        let mut access = String::new();
        for want in ['r', 'w', 'm'] {
            if fields[2].contains(want) {
                access.push(want);
            }
        }
        if access.is_empty()
            || access.len() != fields[2].len()
            || fields[2].chars().any(|c| !"rwm".contains(c))
        {
            return Err(bad("the access must be some of r, w and m, each once"));
        }
        Ok(DeviceRule {
            allow: true,
            kind,
            major,
            minor,
            access,
        })
    }
}

impl fmt::Display for DeviceRule {
    /// The `devices.allow` form: `c 1:3 rwm`, `a *:* rwm`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |v: Option<u32>| v.map_or_else(|| "*".to_owned(), |v| v.to_string());
        write!(
            f,
            "{} {}:{} {}",
            self.kind,
            n(self.major),
            n(self.minor),
            self.access
        )
    }
}

/// The v1 writes for `rules`, in order: everything denied, then each rule
/// to `devices.allow` (or `devices.deny`).
pub(crate) fn v1_writes(rules: &[DeviceRule]) -> Vec<(&'static str, String)> {
    let mut w = vec![("devices.deny", "a".to_owned())];
    for r in rules {
        let file = if r.allow {
            "devices.allow"
        } else {
            "devices.deny"
        };
        w.push((file, r.to_string()));
    }
    w
}

/// v2: the eBPF device program for `rules` (see `devices_bpf`), attached
/// to `dir`, replacing any earlier one.
pub(crate) fn attach_v2_devices(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    super::devices_bpf::attach(dir, rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_parse_and_print() {
        for (text, shown) in [
            ("c 1:3 rwm", "c 1:3 rwm"),
            ("b *:* m", "b *:* m"),
            ("a", "a *:* rwm"),
            ("a *:* rwm", "a *:* rwm"),
            ("c 136:* rw", "c 136:* rw"),
            ("c 10:200 mwr", "c 10:200 rwm"),
            ("  b   8:0   r ", "b 8:0 r"),
            ("c 4294967295:0 w", "c 4294967295:0 w"),
        ] {
            let r: DeviceRule = text.parse().unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert!(r.allow);
            assert_eq!(r.to_string(), shown, "{text:?}");
            assert_eq!(shown.parse::<DeviceRule>().unwrap(), r, "{shown:?}");
        }
        let r: DeviceRule = "c 1:3 rw".parse().unwrap();
        assert_eq!(
            (r.kind, r.major, r.minor, r.access.as_str()),
            ('c', Some(1), Some(3), "rw")
        );
    }

    #[test]
    fn bad_rules_name_themselves() {
        for bad in [
            "",
            "x 1:3 rwm",
            "c",
            "c 1:3",
            "c 1 rwm",
            "c 1:3 rwx",
            "c 1:3 rrw",
            "c a:3 rwm",
            "c -1:3 r",
            "c 1:3 rwm extra",
            "c 4294967296:0 r",
            "a 1:3 rwm",
            "c :3 r",
        ] {
            let e = bad.parse::<DeviceRule>().unwrap_err().to_string();
            assert!(e.contains(&format!("{bad:?}")), "{bad:?}: {e}");
        }
    }

    #[test]
    fn v1_denies_all_then_allows() {
        let rules = vec![
            "c 1:3 rwm".parse().unwrap(),
            DeviceRule {
                allow: false,
                kind: 'b',
                major: Some(8),
                minor: None,
                access: "w".into(),
            },
        ];
        assert_eq!(
            v1_writes(&rules),
            [
                ("devices.deny", "a".to_owned()),
                ("devices.allow", "c 1:3 rwm".to_owned()),
                ("devices.deny", "b 8:* w".to_owned()),
            ]
        );
    }
}
