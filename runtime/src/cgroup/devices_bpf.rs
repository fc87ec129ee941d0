//! The cgroup v2 device controller: v2 has no `devices.allow` file; a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the cgroup decides
//! each access to a device node (open for read or write, mknod), as crun
//! and runc do it. See the kernel's
//! Documentation/admin-guide/cgroup-v2.rst ("Device controller") and
//! `struct bpf_cgroup_dev_ctx` in include/uapi/linux/bpf.h.
//!
//! The rules are evaluated as the v1 `devices` cgroup would after
//! `deny a`: everything is denied unless a rule allows it, and a later
//! rule overrides an earlier one. The program makes that exact per access
//! bit: it starts from "nothing allowed", and each rule that matches the
//! device (type, major, minor) adds its bits (allow) or takes them away
//! (deny); the access is allowed if every requested bit is left. For the
//! rules podman makes (allow rules only) that is crun's and runc's
//! "some matching allow rule holds every requested bit", except that `c
//! 1:3 r` plus `c 1:3 w` together allow opening read-write, as v1's merged
//! exceptions do. A deny rule such as `c 1:3 w` after `c 1:3 rwm` denies a
//! read-write open too, where a first-match program that requires the
//! rule to hold every requested bit would skip it and allow.

use std::path::Path;

use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use std::os::fd::AsFd as _;

use super::DeviceRule;
use crate::error::{Context as _, Error, Result};
use crate::sys::{self, BpfInsn};

/// One eBPF instruction (`struct bpf_insn`).
pub(crate) type Insn = BpfInsn;

/// `BPF_DEVCG_DEV_BLOCK`, `BPF_DEVCG_DEV_CHAR` (linux/bpf.h): the low 16
/// bits of `access_type`.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
/// `BPF_DEVCG_ACC_MKNOD`, `_READ`, `_WRITE` (linux/bpf.h): the high 16 bits.
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

// eBPF opcodes (include/uapi/linux/bpf.h, bpf_common.h): class | op |
// source, where BPF_W and BPF_K are 0.
/// `BPF_LDX | BPF_MEM | BPF_W`: `dst = *(u32 *)(src + off)`.
const LDX_W: u8 = 0x01 | 0x60;
/// `BPF_ALU | BPF_MOV | BPF_X`: `(u32) dst = src`.
const MOV32_X: u8 = 0x04 | 0xb0 | 0x08;
/// `BPF_ALU | BPF_MOV | BPF_K`: `(u32) dst = imm`.
const MOV32_K: u8 = 0x04 | 0xb0;
/// `BPF_ALU | BPF_RSH | BPF_K`.
const RSH32_K: u8 = 0x04 | 0x70;
/// `BPF_ALU | BPF_AND | BPF_K`, `| BPF_X`.
const AND32_K: u8 = 0x04 | 0x50;
const AND32_X: u8 = 0x04 | 0x50 | 0x08;
/// `BPF_ALU | BPF_OR | BPF_K`.
const OR32_K: u8 = 0x04 | 0x40;
/// `BPF_ALU | BPF_XOR | BPF_K`.
const XOR32_K: u8 = 0x04 | 0xa0;
/// `BPF_JMP | BPF_JNE | BPF_K`, `BPF_JMP | BPF_JEQ | BPF_K`: compare the
/// 64-bit register with the sign-extended immediate. The registers hold
/// zero-extended u32s, so a major or minor of 2^31 or more never matches;
/// none exists (majors have 12 bits, minors 20).
const JNE_K: u8 = 0x05 | 0x50;
const JEQ_K: u8 = 0x05 | 0x10;
/// `BPF_JMP | BPF_EXIT`: return r0.
const EXIT: u8 = 0x05 | 0x90;

// The registers of the program. r1 holds the context on entry.
const R0: u8 = 0;
const CTX: u8 = 1;
const TYPE: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;
/// The access bits allowed so far.
const ALLOWED: u8 = 6;

/// The access bits of `access` (some of `r`, `w`, `m`), or `None` when it
/// has another letter.
fn access_bits(access: &str) -> Option<i32> {
    access.chars().try_fold(0, |bits, c| {
        Some(
            bits | match c {
                'r' => ACC_READ,
                'w' => ACC_WRITE,
                'm' => ACC_MKNOD,
                _ => return None,
            },
        )
    })
}

/// Why `rule` cannot be turned into a program, if it cannot.
fn invalid(rule: &DeviceRule) -> Option<String> {
    if !matches!(rule.kind, 'a' | 'b' | 'c') {
        return Some(format!("type {:?} is not a, b or c", rule.kind));
    }
    if access_bits(&rule.access).is_none() {
        return Some(format!("access {:?} is not some of r, w, m", rule.access));
    }
    None
}

/// The program's instructions for `rules` (evaluated like the v1 devices
/// cgroup after `deny a`, per access bit; see the module doc): allow (1)
/// when every requested access bit is left allowed after the rules that
/// match the device, in order; deny (0) otherwise. An `a` rule matches
/// block and char devices. A rule of another type, or with an access letter
/// other than `r`, `w`, `m`, matches nothing ([`attach`] refuses them).
pub(crate) fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let ins = Insn::new;
    let mut p = vec![
        // type = ctx->access_type & 0xffff, access = ctx->access_type >> 16
        ins(LDX_W, TYPE, CTX, 0, 0),
        ins(MOV32_X, ACCESS, TYPE, 0, 0),
        ins(RSH32_K, ACCESS, 0, 0, 16),
        ins(AND32_K, TYPE, 0, 0, 0xffff),
        ins(LDX_W, MAJOR, CTX, 4, 0),
        ins(LDX_W, MINOR, CTX, 8, 0),
        ins(MOV32_K, ALLOWED, 0, 0, 0),
    ];
    for rule in rules {
        let kind = match rule.kind {
            'a' => None,
            'b' => Some(DEV_BLOCK),
            'c' => Some(DEV_CHAR),
            _ => continue,
        };
        let bits = match access_bits(&rule.access) {
            Some(0) | None => continue,
            Some(bits) => bits,
        };
        // Each check skips the rest of the rule when the device differs.
        let checks: Vec<(u8, i32)> = [
            kind.map(|k| (TYPE, k)),
            rule.major.map(|m| (MAJOR, m as i32)),
            rule.minor.map(|m| (MINOR, m as i32)),
        ]
        .into_iter()
        .flatten()
        .collect();
        for (i, &(reg, value)) in checks.iter().enumerate() {
            let skip = (checks.len() - i) as i16; // the later checks and the update
            p.push(ins(JNE_K, reg, 0, skip, value));
        }
        p.push(if rule.allow {
            ins(OR32_K, ALLOWED, 0, 0, bits)
        } else {
            ins(AND32_K, ALLOWED, 0, 0, !bits)
        });
    }
    p.extend([
        // access &= ~allowed; return access == 0
        ins(XOR32_K, ALLOWED, 0, 0, -1),
        ins(AND32_X, ACCESS, ALLOWED, 0, 0),
        ins(MOV32_K, R0, 0, 0, 1),
        ins(JEQ_K, ACCESS, 0, 1, 0),
        ins(MOV32_K, R0, 0, 0, 0),
        ins(EXIT, 0, 0, 0, 0),
    ]);
    p
}

/// What to do when the kernel refuses to load the program.
fn load_hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) => {
            "loading a device program needs CAP_SYS_ADMIN (or CAP_BPF) in the initial user \
             namespace: run as root, or without device rules (--privileged); before Linux 5.11 \
             it may also need a higher RLIMIT_MEMLOCK"
        }
        Some(libc::EINVAL) => {
            "does this kernel have cgroup device programs (Linux 4.15, CONFIG_CGROUP_BPF)?"
        }
        // bpf_prog_load's error with the verifier's log.
        None => {
            "the kernel's verifier refused cairn's device program: a bug in cairn, please report \
             it with the device rules and the log"
        }
        Some(_) => "",
    }
}

/// What to do when the kernel refuses to attach the program.
fn attach_hint(e: &std::io::Error) -> &'static str {
    match e.raw_os_error() {
        Some(libc::EPERM) => {
            "attaching a device program needs CAP_SYS_ADMIN (or CAP_BPF and CAP_NET_ADMIN) in \
             the initial user namespace; or another manager attached one to this cgroup \
             without BPF_F_ALLOW_MULTI (see `bpftool cgroup show DIR`)"
        }
        _ => "is it a directory of a cgroup v2 hierarchy?",
    }
}

/// Load the program for `rules` (license "Apache-2.0") and attach it to
/// the v2 cgroup directory `dir` with `BPF_F_ALLOW_MULTI`; then detach the
/// programs that were attached there for devices before, so an update
/// replaces them. Between the two steps both are attached and an access
/// needs both to allow it: never more than either allows.
pub(crate) fn attach(dir: &Path, rules: &[DeviceRule]) -> Result<()> {
    if let Some((rule, why)) = rules.iter().find_map(|r| invalid(r).map(|w| (r, w))) {
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        return Err(Error::Usage(format!(
            "device rule `{} {}:{} {}` for {}: {why}",
            rule.kind,
            num(rule.major),
            num(rule.minor),
            rule.access,
            dir.display()
        )));
    }
    let insns = program(rules);
    let prog = sys::bpf_prog_load(sys::BPF_PROG_TYPE_CGROUP_DEVICE, &insns, c"Apache-2.0")
        .map_err(|e| {
            let hint = load_hint(&e);
            Error::sys("load the device cgroup program (bpf) for", dir, e).hint(hint)
        })?;
    let cgroup = open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ctx("open the cgroup directory", dir)
    .map_err(|e| e.hint("is it a directory of a cgroup v2 hierarchy?"))?;
    let before = sys::bpf_prog_query(cgroup.as_fd(), sys::BPF_CGROUP_DEVICE)
        .ctx("list the device programs (bpf) attached to", dir)
        .map_err(|e| e.hint("is it a directory of a cgroup v2 hierarchy?"))?;
    sys::bpf_prog_attach(
        cgroup.as_fd(),
        prog.as_fd(),
        sys::BPF_CGROUP_DEVICE,
        sys::BPF_F_ALLOW_MULTI,
    )
    .map_err(|e| {
        let hint = attach_hint(&e);
        Error::sys("attach the device cgroup program (bpf) to", dir, e).hint(hint)
    })?;
    for id in before {
        let old = match sys::bpf_prog_get_fd_by_id(id) {
            Ok(fd) => fd,
            // Detached and freed since the query: nothing to do.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => {
                return Err(Error::sys(
                    format!("open the earlier device program (bpf id {id}) of"),
                    dir,
                    e,
                )
                .hint(REPLACED_HINT))
            }
        };
        match sys::bpf_prog_detach2(cgroup.as_fd(), old.as_fd(), sys::BPF_CGROUP_DEVICE) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => {
                return Err(Error::sys(
                    format!("detach the earlier device program (bpf id {id}) from"),
                    dir,
                    e,
                )
                .hint(REPLACED_HINT))
            }
        }
    }
    Ok(())
}

/// What a failure to detach an earlier program leaves behind.
const REPLACED_HINT: &str = "the new rules are attached but the earlier ones still apply too \
     (a device must pass both); detach it with `bpftool cgroup detach`, or recreate the container";

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn rule(allow: bool, spec: &str) -> DeviceRule {
        // "c 1:3 rwm"
        let mut parts = spec.split(' ');
        let kind = parts.next().unwrap().chars().next().unwrap();
        let (major, minor) = parts.next().unwrap().split_once(':').unwrap();
        let num = |s: &str| (s != "*").then(|| s.parse().unwrap());
        DeviceRule {
            allow,
            kind,
            major: num(major),
            minor: num(minor),
            access: parts.next().unwrap().to_string(),
        }
    }

    fn allow(spec: &str) -> DeviceRule {
        rule(true, spec)
    }

    fn deny(spec: &str) -> DeviceRule {
        rule(false, spec)
    }

    /// podman's default device rules (crun's and runc's defaults as well).
    fn podman_defaults() -> Vec<DeviceRule> {
        [
            "c *:* m",
            "b *:* m",
            "c 1:3 rwm",
            "c 1:5 rwm",
            "c 1:7 rwm",
            "c 1:8 rwm",
            "c 1:9 rwm",
            "c 5:0 rwm",
            "c 5:2 rwm",
            "c 136:* rwm",
        ]
        .into_iter()
        .map(allow)
        .collect()
    }

    const BPF_JMP: u8 = 0x05;

    /// The shape the verifier needs: ends with an exit, every jump lands
    /// on an instruction of the program, every register is one of r0..r6.
    fn assert_well_formed(p: &[Insn]) {
        assert!(!p.is_empty());
        assert_eq!(p.last().unwrap().code, EXIT);
        for (i, insn) in p.iter().enumerate() {
            if insn.code & 0x07 == BPF_JMP && insn.code != EXIT {
                let target = i as i64 + 1 + i64::from(insn.off);
                assert!(
                    (0..p.len() as i64).contains(&target) && insn.off >= 0,
                    "jump at {i} to {target} of {}",
                    p.len()
                );
            }
        }
    }

    /// Run `p` on one access as the kernel's interpreter would, for the
    /// instructions [`program`] emits (a table test of the semantics
    /// without root; the real kernel runs it in the tests below).
    fn run(p: &[Insn], kind: i32, access: i32, major: u32, minor: u32) -> u64 {
        let ctx = [((access << 16) | kind) as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let insn = p[pc];
            let (dst, src) = (insn.dst() as usize, insn.src() as usize);
            let imm32 = insn.imm as u32;
            let imm64 = i64::from(insn.imm) as u64;
            pc += 1;
            match insn.code {
                LDX_W => {
                    assert_eq!(src, CTX as usize);
                    r[dst] = u64::from(ctx[insn.off as usize / 4]);
                }
                MOV32_X => r[dst] = u64::from(r[src] as u32),
                MOV32_K => r[dst] = u64::from(imm32),
                RSH32_K => r[dst] = u64::from((r[dst] as u32) >> imm32),
                AND32_K => r[dst] = u64::from(r[dst] as u32 & imm32),
                AND32_X => r[dst] = u64::from(r[dst] as u32 & r[src] as u32),
                OR32_K => r[dst] = u64::from(r[dst] as u32 | imm32),
                XOR32_K => r[dst] = u64::from(r[dst] as u32 ^ imm32),
                JNE_K if r[dst] != imm64 => pc = (pc as i64 + i64::from(insn.off)) as usize,
                JEQ_K if r[dst] == imm64 => pc = (pc as i64 + i64::from(insn.off)) as usize,
                JNE_K | JEQ_K => {}
                EXIT => return r[0],
                code => panic!("opcode {code:#x} at {}", pc - 1),
            }
        }
    }

    const R: i32 = ACC_READ;
    const W: i32 = ACC_WRITE;
    const M: i32 = ACC_MKNOD;
    const RW: i32 = ACC_READ | ACC_WRITE;

    #[test]
    fn programs_are_well_formed() {
        assert_well_formed(&program(&[]));
        assert_well_formed(&program(&podman_defaults()));
        assert_well_formed(&program(&[allow("a *:* rwm"), deny("c 1:1 rwm")]));
    }

    #[test]
    fn no_rules_deny_everything() {
        let p = program(&[]);
        for (kind, access) in [(DEV_CHAR, R), (DEV_BLOCK, RW), (DEV_CHAR, M)] {
            assert_eq!(run(&p, kind, access, 1, 3), 0);
        }
    }

    #[test]
    fn podman_defaults_decide_as_v1_would() {
        let p = program(&podman_defaults());
        let table = [
            // (type, access, major, minor, allowed)
            (DEV_CHAR, RW, 1, 3, 1),    // /dev/null
            (DEV_CHAR, R, 1, 9, 1),     // /dev/urandom
            (DEV_CHAR, RW, 136, 42, 1), // a pts
            (DEV_CHAR, M, 1, 1, 1),     // mknod of anything
            (DEV_BLOCK, M, 8, 0, 1),
            (DEV_CHAR, R, 1, 1, 0),  // /dev/mem
            (DEV_CHAR, RW, 5, 1, 0), // /dev/console
            (DEV_BLOCK, R, 8, 0, 0), // sda
            (DEV_BLOCK, R, 1, 3, 0), // a block device with /dev/null's numbers
        ];
        for (kind, access, major, minor, want) in table {
            assert_eq!(
                run(&p, kind, access, major, minor),
                want,
                "type {kind} access {access} {major}:{minor}"
            );
        }
    }

    #[test]
    fn every_requested_bit_must_be_allowed() {
        let p = program(&[allow("c 1:3 r"), allow("b 7:0 rw")]);
        assert_eq!(run(&p, DEV_CHAR, R, 1, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, W, 1, 3), 0);
        assert_eq!(run(&p, DEV_CHAR, RW, 1, 3), 0);
        assert_eq!(run(&p, DEV_BLOCK, RW, 7, 0), 1);
        assert_eq!(run(&p, DEV_BLOCK, M, 7, 0), 0);
        // Bits of two rules add up, as v1's merged exceptions.
        let p = program(&[allow("c 1:3 r"), allow("c 1:3 w")]);
        assert_eq!(run(&p, DEV_CHAR, RW, 1, 3), 1);
    }

    #[test]
    fn later_rules_override_earlier_ones() {
        let p = program(&[
            allow("a *:* rwm"),
            deny("c 1:1 rwm"),
            deny("c 1:3 w"),
            deny("b *:* rw"),
            allow("b 7:0 r"),
        ]);
        assert_eq!(run(&p, DEV_CHAR, RW, 1, 5), 1);
        assert_eq!(run(&p, DEV_CHAR, R, 1, 1), 0);
        assert_eq!(run(&p, DEV_CHAR, M, 1, 1), 0);
        assert_eq!(run(&p, DEV_CHAR, R, 1, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, RW, 1, 3), 0, "a deny of w denies rw");
        assert_eq!(run(&p, DEV_BLOCK, R, 8, 0), 0);
        assert_eq!(run(&p, DEV_BLOCK, M, 8, 0), 1);
        assert_eq!(run(&p, DEV_BLOCK, R, 7, 0), 1);
        assert_eq!(run(&p, DEV_BLOCK, RW, 7, 0), 0);
        // And an allow after a deny gives back what it names.
        let p = program(&[deny("a *:* rwm"), allow("c *:* r")]);
        assert_eq!(run(&p, DEV_CHAR, R, 4, 2), 1);
        assert_eq!(run(&p, DEV_CHAR, W, 4, 2), 0);
    }

    #[test]
    fn a_type_a_rule_with_numbers_matches_both_types() {
        let p = program(&[allow("a 7:* r")]);
        assert_eq!(run(&p, DEV_BLOCK, R, 7, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, R, 7, 3), 1);
        assert_eq!(run(&p, DEV_CHAR, R, 8, 3), 0);
    }

    #[test]
    fn attach_refuses_a_bad_rule_before_touching_the_kernel() {
        let e = attach(Path::new("/nonexistent"), &[allow("c 1:3 rx")]).unwrap_err();
        assert!(e.to_string().contains("`c 1:3 rx`"), "{e}");
        assert!(e.to_string().contains("not some of r, w, m"), "{e}");
        let e = attach(Path::new("/nonexistent"), &[allow("p 1:3 r")]).unwrap_err();
        assert!(e.to_string().contains("is not a, b or c"), "{e}");
    }

    // ---- the real kernel ----

    /// Set to the cgroup directory when this test binary runs as the probe
    /// of [`probe`]; the operations are in [`PROBE_OPS`].
    const PROBE_CGROUP: &str = "CAIRN_TEST_DEVICES_PROBE_CGROUP";
    const PROBE_OPS: &str = "CAIRN_TEST_DEVICES_PROBE_OPS";

    /// Not a test on its own: the body of the child process of the real
    /// tests (this test binary again, run for this test only, with
    /// [`PROBE_CGROUP`] set). It moves itself into the cgroup, then tries
    /// each operation and prints `probe: OP => ok` or the errno's name.
    #[test]
    fn probe_child() {
        let Ok(cgroup) = std::env::var(PROBE_CGROUP) else {
            return;
        };
        let pid = std::process::id().to_string();
        std::fs::write(Path::new(&cgroup).join("cgroup.procs"), pid).expect("join the cgroup");
        for op in std::env::var(PROBE_OPS).unwrap().split(';') {
            let words: Vec<&str> = op.split(' ').collect();
            let outcome = match words[..] {
                ["open", mode, path] => {
                    let flags = match mode {
                        "r" => OFlag::O_RDONLY,
                        "w" => OFlag::O_WRONLY,
                        _ => OFlag::O_RDWR,
                    };
                    open(
                        path,
                        flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
                        Mode::empty(),
                    )
                    .map(drop)
                }
                ["mknod", kind, major, minor, path] => nix::sys::stat::mknod(
                    path,
                    if kind == "b" {
                        nix::sys::stat::SFlag::S_IFBLK
                    } else {
                        nix::sys::stat::SFlag::S_IFCHR
                    },
                    Mode::from_bits_truncate(0o600),
                    nix::sys::stat::makedev(major.parse().unwrap(), minor.parse().unwrap()),
                ),
                _ => panic!("probe operation {op:?}"),
            };
            match outcome {
                Ok(()) => println!("probe: {op} => ok"),
                Err(errno) => println!("probe: {op} => {errno:?}"),
            }
        }
    }

    /// Run `ops` in a process of the cgroup `dir`: each operation's outcome
    /// (`ok`, `EPERM`, ...).
    fn probe(dir: &Path, ops: &[String]) -> HashMap<String, String> {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "cgroup::devices_bpf::tests::probe_child",
                "--nocapture",
                "--test-threads=1",
                "-q",
            ])
            .env(PROBE_CGROUP, dir)
            .env(PROBE_OPS, ops.join(";"))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "probe: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let outcomes: HashMap<String, String> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("probe: "))
            .filter_map(|l| l.split_once(" => "))
            .map(|(op, outcome)| (op.to_string(), outcome.to_string()))
            .collect();
        assert_eq!(outcomes.len(), ops.len(), "{stdout}");
        outcomes
    }

    /// A cgroup v2 hierarchy: the host's, or one mounted for the test
    /// (unmounted on drop).
    struct Hierarchy {
        root: PathBuf,
        mounted: Option<tempfile::TempDir>,
    }

    impl Hierarchy {
        fn find() -> Hierarchy {
            use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
            for dir in ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"] {
                if statfs(dir).is_ok_and(|s| s.filesystem_type() == CGROUP2_SUPER_MAGIC) {
                    return Hierarchy {
                        root: dir.into(),
                        mounted: None,
                    };
                }
            }
            let tmp = tempfile::tempdir().unwrap();
            nix::mount::mount(
                Some("cgroup2"),
                tmp.path(),
                Some("cgroup2"),
                nix::mount::MsFlags::empty(),
                None::<&str>,
            )
            .expect("mount cgroup2");
            Hierarchy {
                root: tmp.path().into(),
                mounted: Some(tmp),
            }
        }
    }

    impl Drop for Hierarchy {
        fn drop(&mut self) {
            if let Some(tmp) = &self.mounted {
                let _ = nix::mount::umount2(tmp.path(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }

    /// A test-unique cgroup `/cairn-test-PID-N`, removed on drop (its
    /// processes moved to the root first).
    struct TestCgroup {
        dir: PathBuf,
        root: PathBuf,
    }

    impl TestCgroup {
        fn new(h: &Hierarchy) -> TestCgroup {
            static N: AtomicUsize = AtomicUsize::new(0);
            let name = format!(
                "cairn-test-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            let dir = h.root.join(name);
            std::fs::create_dir(&dir).unwrap();
            TestCgroup {
                dir,
                root: h.root.clone(),
            }
        }
    }

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
                for pid in procs.lines() {
                    let _ = std::fs::write(self.root.join("cgroup.procs"), pid);
                }
            }
            if let Err(e) = std::fs::remove_dir(&self.dir) {
                eprintln!("remove {}: {e}", self.dir.display());
            }
        }
    }

    fn is_root() -> bool {
        if nix::unistd::geteuid().is_root() {
            true
        } else {
            eprintln!("skipped: device programs need root");
            false
        }
    }

    /// Device nodes made outside the cgroup, in a temporary directory (the
    /// program checks numbers, not paths).
    fn nodes(dir: &Path, list: &[(&str, char, u64, u64)]) {
        use nix::sys::stat::{makedev, mknod, SFlag};
        for &(name, kind, major, minor) in list {
            let kind = if kind == 'b' {
                SFlag::S_IFBLK
            } else {
                SFlag::S_IFCHR
            };
            mknod(
                &dir.join(name),
                kind,
                Mode::from_bits_truncate(0o600),
                makedev(major, minor),
            )
            .unwrap();
        }
    }

    fn attached(dir: &Path) -> Vec<u32> {
        let fd = open(dir, OFlag::O_RDONLY | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        sys::bpf_prog_query(fd.as_fd(), sys::BPF_CGROUP_DEVICE).unwrap()
    }

    #[test]
    fn podman_defaults_in_a_real_cgroup_and_an_update_replaces_them() {
        if !is_root() {
            return;
        }
        let h = Hierarchy::find();
        let cg = TestCgroup::new(&h);
        let tmp = tempfile::tempdir().unwrap();
        nodes(
            tmp.path(),
            &[
                ("null", 'c', 1, 3),
                ("zero", 'c', 1, 5),
                ("mem", 'c', 1, 1),
                ("loop0", 'b', 7, 0),
                ("loop1", 'b', 7, 1),
            ],
        );
        let mut rules = podman_defaults();
        rules.push(allow("b 7:0 rw"));
        attach(&cg.dir, &rules).unwrap();
        let first = attached(&cg.dir);
        assert_eq!(first.len(), 1, "{first:?}");
        expect(
            &cg.dir,
            tmp.path(),
            &[
                ("open rw {t}/null", "ok"),
                ("open r {t}/zero", "ok"),
                // Allowed by the cgroup; without the loop driver the open
                // would still fail, with ENXIO: only EPERM is the program's.
                ("open r {t}/loop0", "not EPERM"),
                ("open rw {t}/loop0", "not EPERM"),
                ("open r {t}/loop1", "EPERM"),
                ("open r {t}/mem", "EPERM"),
                ("mknod c 1 1 {t}/mem2", "ok"),
                ("open r {t}/mem2", "EPERM"),
                ("mknod b 7 1 {t}/loop1b", "ok"),
                ("mknod c 1 3 {t}/null2", "ok"),
                ("open rw {t}/null2", "ok"),
            ],
        );

        // An update: the same without loop0, replacing the first program.
        attach(&cg.dir, &podman_defaults()).unwrap();
        let second = attached(&cg.dir);
        assert_eq!(second.len(), 1, "{second:?}");
        assert_ne!(first, second);
        expect(
            &cg.dir,
            tmp.path(),
            &[("open r {t}/loop0", "EPERM"), ("open rw {t}/null", "ok")],
        );
    }

    /// Run each operation of `table` (`{t}` standing for `tmp`) in a
    /// process of the cgroup `dir`, and compare its outcome with the one
    /// given (`ok`, an errno's name, or `not EPERM`).
    fn expect(dir: &Path, tmp: &Path, table: &[(&str, &str)]) {
        let t = tmp.display().to_string();
        let ops: Vec<String> = table.iter().map(|(op, _)| op.replace("{t}", &t)).collect();
        let got = probe(dir, &ops);
        for (op, (_, want)) in ops.iter().zip(table) {
            match want.strip_prefix("not ") {
                Some(not) => assert_ne!(got[op], not, "{op}: {got:?}"),
                None => assert_eq!(got[op], *want, "{op}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_refused_program_brings_the_verifier_log() {
        if !is_root() {
            return;
        }
        // Returns without setting r0: the verifier refuses that.
        let bad = [Insn::new(EXIT, 0, 0, 0, 0)];
        let e =
            sys::bpf_prog_load(sys::BPF_PROG_TYPE_CGROUP_DEVICE, &bad, c"Apache-2.0").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
        assert!(e.to_string().contains("the verifier said: "), "{e}");
        assert!(e.to_string().contains("R0 !read_ok"), "{e}");
    }

    #[test]
    fn attaching_outside_cgroup_v2_says_where_and_what_to_check() {
        if !is_root() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let e = attach(tmp.path(), &podman_defaults()).unwrap_err();
        let text = e.to_string();
        assert!(text.contains(&tmp.path().display().to_string()), "{text}");
        assert!(text.contains("cgroup v2 hierarchy"), "{text}");
    }

    #[test]
    fn deny_rules_in_a_real_cgroup_take_bits_away() {
        if !is_root() {
            return;
        }
        let h = Hierarchy::find();
        let cg = TestCgroup::new(&h);
        let tmp = tempfile::tempdir().unwrap();
        nodes(
            tmp.path(),
            &[
                ("null", 'c', 1, 3),
                ("zero", 'c', 1, 5),
                ("mem", 'c', 1, 1),
                ("loop0", 'b', 7, 0),
            ],
        );
        let rules = [
            allow("c *:* rwm"),
            deny("c 1:1 rwm"),
            deny("c 1:3 w"),
            allow("b *:* m"),
        ];
        attach(&cg.dir, &rules).unwrap();
        expect(
            &cg.dir,
            tmp.path(),
            &[
                ("open r {t}/null", "ok"),
                ("open w {t}/null", "EPERM"),
                ("open rw {t}/null", "EPERM"),
                ("open rw {t}/zero", "ok"),
                ("open r {t}/mem", "EPERM"),
                ("open r {t}/loop0", "EPERM"),
                ("mknod b 7 0 {t}/loop0b", "ok"),
                ("mknod c 1 1 {t}/mem2", "EPERM"),
            ],
        );
    }
}
