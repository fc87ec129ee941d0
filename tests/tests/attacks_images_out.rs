//! Attacks on the verbs that read a container's files on the host's side:
//! `commit` (walks the container's upper directory) and `export` (its merged
//! root). The container is running and hostile: root in it swaps, by
//! `rename(2)` in a tight loop, a directory of decoy files with a symlink to
//! a host directory of secrets, and a decoy file with a symlink to a host
//! secret, a FIFO and (root mode, `--cap-add MKNOD`) a block device node of
//! a loop device of the test's own. A walker that resolves a path twice (a
//! stat then an open by name, or a directory listed by name) reads the host's
//! file, blocks on the FIFO or reads the disk.
//!
//! Defence expected: the walk holds descriptors and never follows a symlink,
//! and a file is checked to be regular on the descriptor it reads. Asserted,
//! after 8 commits and 8 exports during the race: none hung (60 s each), no
//! exported tar and no blob in the store holds the host secret or the loop
//! device's pattern, the loop device's backing file is unchanged, and at
//! least one commit and one export succeeded and hold the decoys (the walk
//! really read the raced tree).

use std::fs;
use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use cairn_tests::attack::{self, LoopDevice};
use cairn_tests::cairn::Cairn;
use cairn_tests::fixtures::{self, refs};

/// PID 1 of the hostile container: `race.pl HOSTDIR MAJOR MINOR` (MAJOR `-`: no device).
const RACE_PL: &str = r#"
use strict;
use POSIX qw(mkfifo);
my ($hostdir, $major, $minor) = @ARGV;
mkdir "/race" or die "mkdir /race: $!";
mkdir "/race/d" or die "mkdir /race/d: $!";
for my $i (0..199) {
    open(my $f, ">", "/race/d/f$i") or die "decoy: $!"; print $f "CAIRN-DECOY\n"; close $f;
}
open(my $f, ">", "/race/file") or die "decoy: $!"; print $f "CAIRN-DECOY\n"; close $f;
symlink($hostdir, "/race/link") or die "symlink: $!";
symlink("$hostdir/f0", "/race/flink") or die "symlink: $!";
mkfifo("/race/fifo", 0644) or die "mkfifo: $!";
my @evil = ("/race/flink", "/race/fifo");
if ($major ne "-") {
    system("mknod", "/race/dev", "b", $major, $minor) == 0 or die "mknod";
    push @evil, "/race/dev";
}
open(my $r, ">", "/ready") or die; close $r;
while (1) {
    rename "/race/d", "/race/d.x"; rename "/race/link", "/race/d";
    rename "/race/d", "/race/link"; rename "/race/d.x", "/race/d";
    for my $e (@evil) {
        rename "/race/file", "/race/file.x"; rename $e, "/race/file";
        rename "/race/file", $e; rename "/race/file.x", "/race/file";
    }
}
"#;

const ROUNDS: usize = 8;

/// Whether `needle` occurs in `hay`.
fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

/// A blob's bytes, decompressed when it is gzip or zstd.
fn decompressed(path: &Path) -> Vec<u8> {
    let raw = fs::read(path).unwrap_or_default();
    let mut out = Vec::new();
    if raw.starts_with(&[0x1f, 0x8b]) {
        let _ = flate2::read::MultiGzDecoder::new(&raw[..]).read_to_end(&mut out);
    } else if raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        if let Ok(mut d) = zstd::stream::read::Decoder::new(&raw[..]) {
            let _ = d.read_to_end(&mut out);
        }
    } else {
        out = raw;
    }
    out
}

/// Searches the exported tars and every blob of the store for the host's
/// secret and the loop device's pattern (findings), and says whether the
/// decoys are in the exports and in the blobs.
fn search_outputs(
    c: &Cairn,
    exported: &[std::path::PathBuf],
    secret: &str,
    pattern: &str,
    findings: &mut Vec<String>,
) -> (bool, bool) {
    let mut decoys_in_exports = false;
    for tar in exported {
        let bytes = fs::read(tar).unwrap();
        decoys_in_exports |= contains(&bytes, b"CAIRN-DECOY");
        if contains(&bytes, secret.as_bytes()) {
            findings.push(format!("{} holds the host's secret", tar.display()));
        }
        if contains(&bytes, pattern.as_bytes()) {
            findings.push(format!("{} holds the loop device's data", tar.display()));
        }
    }
    let mut decoys_in_blobs = false;
    for blob in c.blobs() {
        let bytes = decompressed(&c.root().join("blobs/sha256").join(&blob));
        decoys_in_blobs |= contains(&bytes, b"CAIRN-DECOY");
        if contains(&bytes, secret.as_bytes()) {
            findings.push(format!(
                "blob {blob} (a committed layer) holds the host's secret"
            ));
        }
        if contains(&bytes, pattern.as_bytes()) {
            findings.push(format!("blob {blob} holds the loop device's data"));
        }
    }
    (decoys_in_exports, decoys_in_blobs)
}

fn commit_and_export_during_a_swap_race(rootless: bool) {
    let tag = attack::unique_tag("imgout");
    let c = if rootless {
        Cairn::rootless().expect("rootless environment (tests/support/test-user.sh)")
    } else {
        Cairn::new().expect("cairn environment")
    };
    let image = c
        .ok(["pull", "-q", &fixtures::oci_ref(refs::DEBIAN_MIN)])
        .trim()
        .to_owned();
    // The host's secrets: readable by the store's user, as what an attacker wants would be.
    let secret = format!("CAIRN-HOST-SECRET-{tag}");
    let hostdir = attack::user_dir(&c, &format!("secret-{tag}")).unwrap();
    for i in 0..200 {
        fs::write(hostdir.join(format!("f{i}")), format!("{secret}\n")).unwrap();
        fs::set_permissions(
            hostdir.join(format!("f{i}")),
            fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    let lo = (!rootless).then(|| LoopDevice::new(&tag).expect("a loop device (root, losetup)"));
    let script_dir = attack::user_dir(&c, &format!("script-{tag}")).unwrap();
    fs::write(script_dir.join("race.pl"), RACE_PL).unwrap();
    fs::set_permissions(
        script_dir.join("race.pl"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let out_dir = attack::user_dir(&c, &format!("out-{tag}")).unwrap();

    let name = format!("race-{tag}");
    let vol = format!("{}:/attack:ro", script_dir.display());
    let hostdir_s = hostdir.display().to_string();
    let (major, minor) = lo.as_ref().map_or(("-".to_owned(), "-".to_owned()), |l| {
        (l.major.to_string(), l.minor.to_string())
    });
    let mut args = vec!["run", "-d", "--name", &name, "-v", &vol];
    if !rootless {
        args.extend(["--cap-add", "MKNOD"]);
    }
    args.extend([
        image.as_str(),
        "perl",
        "/attack/race.pl",
        &hostdir_s,
        &major,
        &minor,
    ]);
    c.ok(&args);
    let pid: i32 = c
        .ok(["inspect", "-f", "{{.State.Pid}}", &name])
        .trim()
        .parse()
        .expect("a pid");
    attack::wait_for_file(
        Path::new(&format!("/proc/{pid}/root/ready")),
        Duration::from_secs(60),
    )
    .unwrap_or_else(|e| panic!("{name}: the racing PID 1 did not set up: {e}"));

    let mut findings = Vec::new();
    let (mut commits, mut exports) = (0, 0);
    let mut exported = Vec::new();
    for i in 0..ROUNDS {
        let img = format!("localhost/race-{tag}:{i}");
        let m = attack::run_measured(
            &c.command(["commit", "-q", &name, &img]),
            Duration::from_secs(60),
            4 << 30,
        )
        .expect("run commit");
        if m.timed_out {
            findings.push(format!("commit {i} hung for 60 s (a FIFO opened?)"));
        } else if m.code == 0 {
            commits += 1;
        }
        let tar = out_dir.join(format!("export-{i}.tar"));
        let tar_s = tar.display().to_string();
        let m = attack::run_measured(
            &c.command(["export", "-o", &tar_s, &name]),
            Duration::from_secs(60),
            4 << 30,
        )
        .expect("run export");
        if m.timed_out {
            findings.push(format!("export {i} hung for 60 s (a FIFO opened?)"));
        } else if m.code == 0 {
            exports += 1;
            exported.push(tar);
        }
    }
    let _ = c.run(["rm", "-f", "-t", "0", &name]);

    let pattern = lo.as_ref().map(|l| l.pattern.clone()).unwrap_or_default();
    let (decoys_in_exports, decoys_in_blobs) =
        search_outputs(&c, &exported, &secret, &pattern, &mut findings);
    if let Some(l) = &lo {
        if !l.unchanged() {
            findings.push("the loop device's backing file changed".into());
        }
    }
    assert!(
        findings.is_empty(),
        "{} finding(s):\n  - {}",
        findings.len(),
        findings.join("\n  - ")
    );
    // The attack was real: the walks read the raced tree.
    assert!(commits > 0, "no commit of the racing container succeeded");
    assert!(exports > 0, "no export of the racing container succeeded");
    assert!(decoys_in_blobs, "no committed layer holds the decoy files");
    assert!(decoys_in_exports, "no exported tar holds the decoy files");
    // Nothing of the failed runs is left half-written.
    c.assert_clean_after("after commits and exports during the race");
}

#[test]
fn commit_and_export_never_follow_a_swapped_symlink_fifo_or_device_root() {
    commit_and_export_during_a_swap_race(false);
}

#[test]
fn commit_and_export_never_follow_a_swapped_symlink_or_fifo_rootless() {
    commit_and_export_during_a_swap_race(true);
}
