//! Users and groups from the container's own `/etc/passwd` and `/etc/group`
//! (parsed here: the host's NSS, LDAP or sssd has no say inside an image).

use crate::error::{Error, Result};

/// One `/etc/passwd` entry (the fields cairn uses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passwd {
    /// Login name.
    pub name: String,
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Home directory.
    pub home: String,
}

/// One `/etc/group` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Group name.
    pub name: String,
    /// Group id.
    pub gid: u32,
    /// Member login names.
    pub members: Vec<String>,
}

/// Parse `/etc/passwd` text; malformed lines and comments are skipped.
pub fn parse_passwd(text: &str) -> Vec<Passwd> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 7 || f[0].is_empty() {
                return None;
            }
            Some(Passwd {
                name: f[0].into(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].into(),
            })
        })
        .collect()
}

/// Parse `/etc/group` text; malformed lines and comments are skipped.
pub fn parse_group(text: &str) -> Vec<Group> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 || f[0].is_empty() {
                return None;
            }
            Some(Group {
                name: f[0].into(),
                gid: f[2].parse().ok()?,
                members: f[3]
                    .split(',')
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect(),
            })
        })
        .collect()
}

/// Who the command runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (the primary one first).
    pub groups: Vec<u32>,
    /// Home directory from `/etc/passwd`, if the user is listed.
    pub home: Option<String>,
}

fn number(s: &str) -> Option<u32> {
    // (uid_t)-1 means "unchanged" to setresuid: never a real id.
    s.parse::<u32>().ok().filter(|&n| n != u32::MAX)
}

/// Resolve `USER[:GROUP]` (names or numbers) plus extra groups, Docker's way:
/// a name must exist in `/etc/passwd`; a number need not (primary gid 0 then);
/// supplementary groups are the primary gid, every group listing the user as a
/// member, and `extra`.
pub fn resolve(
    user: &str,
    extra: &[String],
    passwd: Option<&str>,
    group: Option<&str>,
) -> Result<Identity> {
    let users = passwd.map(parse_passwd).unwrap_or_default();
    let groups = group.map(parse_group).unwrap_or_default();
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    if u.is_empty() {
        return Err(Error::User(format!(
            "user {user:?}: empty user name; give USER[:GROUP], names or numbers"
        )));
    }
    let entry = match number(u) {
        Some(uid) => users.iter().find(|p| p.uid == uid).cloned().unwrap_or(Passwd {
            name: String::new(),
            uid,
            gid: 0,
            home: String::new(),
        }),
        None => users.iter().find(|p| p.name == u).cloned().ok_or_else(|| {
            let place = if passwd.is_some() { "the container's /etc/passwd" } else { "the container (it has no /etc/passwd)" };
            Error::User(format!("user {u:?} not found in {place}: add it to the image or give a numeric uid (such as 1000:1000)"))
        })?,
    };
    let group_id = |name: &str| -> Result<u32> {
        if let Some(n) = number(name) {
            return Ok(n);
        }
        groups.iter().find(|gr| gr.name == name).map(|gr| gr.gid).ok_or_else(|| {
            let place = if group.is_some() { "the container's /etc/group" } else { "the container (it has no /etc/group)" };
            Error::User(format!("group {name:?} not found in {place}: add it to the image or give a numeric gid"))
        })
    };
    let gid = match g {
        Some("") => return Err(Error::User(format!("user {user:?}: empty group after ':'"))),
        Some(g) => group_id(g)?,
        None => entry.gid,
    };
    let mut supplementary = vec![gid];
    if !entry.name.is_empty() {
        for gr in groups.iter().filter(|gr| gr.members.contains(&entry.name)) {
            if !supplementary.contains(&gr.gid) {
                supplementary.push(gr.gid);
            }
        }
    }
    for e in extra {
        let id = group_id(e)?;
        if !supplementary.contains(&id) {
            supplementary.push(id);
        }
    }
    Ok(Identity {
        uid: entry.uid,
        gid,
        groups: supplementary,
        home: (!entry.home.is_empty()).then_some(entry.home),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken line\napp:x:1000:1000:App:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\nwheel:x:10:app,other\napp:x:1000:\nstaff:x:50:\nnogroup:x:65534:\naudio:x:29:app\n";

    #[test]
    fn table() {
        /// uid, gid, groups, home
        type Want = (u32, u32, &'static [u32], Option<&'static str>);
        let cases: &[(&str, &[&str], Result<Want, &str>)] = &[
            ("root", &[], Ok((0, 0, &[0], Some("/root")))),
            ("0", &[], Ok((0, 0, &[0], Some("/root")))),
            (
                "app",
                &[],
                Ok((1000, 1000, &[1000, 10, 29], Some("/home/app"))),
            ),
            (
                "app:staff",
                &[],
                Ok((1000, 50, &[50, 10, 29], Some("/home/app"))),
            ),
            (
                "1000:50",
                &["nogroup"],
                Ok((1000, 50, &[50, 10, 29, 65534], Some("/home/app"))),
            ),
            ("4242", &[], Ok((4242, 0, &[0], None))),
            ("4242:4343", &["7"], Ok((4242, 4343, &[4343, 7], None))),
            (
                "nobody:nogroup",
                &[],
                Ok((65534, 65534, &[65534], Some("/nonexistent"))),
            ),
            (
                "ghost",
                &[],
                Err("user \"ghost\" not found in the container's /etc/passwd"),
            ),
            ("app:ghosts", &[], Err("group \"ghosts\" not found")),
            ("app", &["ghosts"], Err("group \"ghosts\" not found")),
            ("", &[], Err("empty user")),
            ("app:", &[], Err("empty group")),
            ("4294967295", &[], Err("not found")),
        ];
        for (spec, extra, want) in cases {
            let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
            let got = resolve(spec, &extra, Some(PASSWD), Some(GROUP));
            match (got, want) {
                (Ok(id), Ok((uid, gid, groups, home))) => {
                    assert_eq!(
                        (id.uid, id.gid, id.groups.as_slice(), id.home.as_deref()),
                        (*uid, *gid, *groups, *home),
                        "{spec}"
                    );
                }
                (Err(e), Err(msg)) => assert!(e.to_string().contains(msg), "{spec}: {e}"),
                (got, want) => panic!("{spec}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn missing_files() {
        assert_eq!(resolve("0:0", &[], None, None).unwrap().uid, 0);
        let e = resolve("app", &[], None, None).unwrap_err().to_string();
        assert!(e.contains("it has no /etc/passwd"), "{e}");
    }
}
