//! `/proc/self/mountinfo` parsing (proc(5)).

/// One line of `/proc/PID/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    /// Mount ID.
    pub id: u32,
    /// Parent mount ID.
    pub parent: u32,
    /// `major:minor` of the filesystem.
    pub dev: String,
    /// The directory of the filesystem that forms this mount's root
    /// (`/null` for a bind of `/dev/null`).
    pub root: String,
    /// Mount point, relative to the reader's root.
    pub mount_point: String,
    /// Per-mount options (`rw,nosuid,nodev,noexec,relatime`).
    pub options: Vec<String>,
    /// Optional fields (`shared:N`, `master:N`, ...); empty = private.
    pub propagation: Vec<String>,
    /// Filesystem type.
    pub fstype: String,
    /// Mount source.
    pub source: String,
    /// Per-superblock options (`rw,size=65536k,mode=755`).
    pub super_options: Vec<String>,
}

impl MountInfo {
    /// Whether the per-mount options contain `opt`.
    pub fn has(&self, opt: &str) -> bool {
        self.options.iter().any(|o| o == opt)
    }

    /// Whether the superblock options contain `opt` (`mode=755`).
    pub fn has_super(&self, opt: &str) -> bool {
        self.super_options.iter().any(|o| o == opt)
    }
}

/// Undo the octal escapes (`\040` for a space) the kernel writes.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse the whole file; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountInfo> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<MountInfo> {
    let mut it = line.split(' ');
    let id = it.next()?.parse().ok()?;
    let parent = it.next()?.parse().ok()?;
    let dev = it.next()?.to_owned();
    let root = unescape(it.next()?);
    let mount_point = unescape(it.next()?);
    let options = it.next()?.split(',').map(str::to_owned).collect();
    let mut propagation = Vec::new();
    loop {
        match it.next()? {
            "-" => break,
            f => propagation.push(f.to_owned()),
        }
    }
    let fstype = it.next()?.to_owned();
    let source = unescape(it.next()?);
    let super_options = it
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::to_owned)
        .collect();
    Some(MountInfo {
        id,
        parent,
        dev,
        root,
        mount_point,
        options,
        propagation,
        fstype,
        source,
        super_options,
    })
}

/// Read and parse `/proc/self/mountinfo`.
pub(crate) fn read_self() -> std::io::Result<Vec<MountInfo>> {
    Ok(parse(&std::fs::read_to_string("/proc/self/mountinfo")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_real_lines() {
        let text = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
30 25 0:5 /null /dev/null rw,nosuid master:2 - devtmpfs udev rw,size=4k,mode=755
41 1 8:1 /a\\040b /mnt/with\\040space ro,relatime - ext4 /dev/sda1 rw
garbage line
";
        let m = parse(text);
        assert_eq!(m.len(), 3);
        assert_eq!(m[0].mount_point, "/proc");
        assert!(m[0].has("noexec") && m[0].has("nosuid") && m[0].has("nodev"));
        assert_eq!(m[0].propagation, ["shared:5"]);
        assert_eq!(m[1].root, "/null");
        assert_eq!(m[1].fstype, "devtmpfs");
        assert!(m[1].has_super("mode=755"));
        assert_eq!(m[2].mount_point, "/mnt/with space");
        assert_eq!(m[2].root, "/a b");
        assert!(m[2].propagation.is_empty());
    }
}
