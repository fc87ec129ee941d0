//! The podman compatibility table (`docs/podman-compat.md`) against the
//! built binary: regenerated from the stored podman help snapshot and
//! `target/debug/cairn`, it must equal the committed file; every row that
//! says "refused" must really be refused (exit 125, a line naming the flag,
//! nothing created), and every "implemented" or "no-op" flag must be known
//! to cairn's parser. podman itself is not needed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

const REGENERATE: &str = "cargo build -p cairn-cli --bins && scripts/compat-table";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repository")
        .to_owned()
}

/// One row of the table: podman's verb path, the flag cell (`-a, --all`,
/// empty for a verb row), the status, the note.
#[derive(Debug, Clone)]
struct Row {
    verb: String,
    flag: String,
    status: String,
    line: String,
}

fn rows(text: &str) -> Vec<Row> {
    text.lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| {
            let cells: Vec<&str> = l.trim_matches('|').split(" | ").map(str::trim).collect();
            // The verb and flag table has four columns (the list of cairn's
            // own verbs, two).
            if cells.len() < 4 {
                return None;
            }
            Some(Row {
                verb: cells[0].trim_matches('`').to_owned(),
                flag: cells[1].trim_matches('`').to_owned(),
                status: cells[2].to_owned(),
                line: l.to_owned(),
            })
        })
        .collect()
}

fn committed() -> String {
    std::fs::read_to_string(repo().join("docs/podman-compat.md"))
        .expect("docs/podman-compat.md is committed")
}

/// The long flag of a flag cell (`-a, --all` → `all`).
fn long_of(flag: &str) -> &str {
    flag.rsplit("--").next().unwrap_or(flag)
}

/// podman's flags per verb path, from the stored snapshot: long name → the
/// value type (None for a boolean).
fn snapshot_flags() -> BTreeMap<String, BTreeMap<String, Option<String>>> {
    let dir = repo().join("docs/compat");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("docs/compat")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with("-help.json"))
        .collect();
    files.sort();
    let doc: Value = serde_json::from_slice(
        &std::fs::read(files.last().expect("a podman help snapshot")).expect("read snapshot"),
    )
    .expect("snapshot is JSON");
    let mut out = BTreeMap::new();
    for v in doc["verbs"].as_array().expect("verbs") {
        let path: Vec<&str> = v["path"]
            .as_array()
            .expect("path")
            .iter()
            .map(|p| p.as_str().expect("word"))
            .collect();
        let flags = v["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .filter_map(|f| {
                Some((
                    f["long"].as_str()?.to_owned(),
                    f["value"].as_str().map(str::to_owned),
                ))
            })
            .collect();
        out.insert(
            if path.is_empty() {
                "(global)".to_owned()
            } else {
                path.join(" ")
            },
            flags,
        );
    }
    out
}

/// A value of podman's type for a probe.
fn value_for(kind: &str) -> &'static str {
    let k = kind.to_ascii_lowercase();
    let numeric = ["int", "uint", "float"]
        .iter()
        .any(|p| k.starts_with(p) && k[p.len()..].chars().all(|c| c.is_ascii_digit()));
    if numeric {
        "1"
    } else if k == "duration" {
        "1s"
    } else {
        "x"
    }
}

/// cairn with an empty store and home in `dir`, stdin from /dev/null.
fn cairn(dir: &Path, args: &[String]) -> (i32, String) {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let out = Command::new(cairn_tests::cairn::binary())
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_RUNTIME_DIR", home.join("run"))
        .env("CAIRN_ROOT", dir.join("root"))
        .env("REGISTRY_AUTH_FILE", dir.join("auth.json"))
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run cairn");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn flag_arg(long: &str, kind: Option<&String>) -> String {
    match kind {
        Some(k) => format!("--{long}={}", value_for(k)),
        None => format!("--{long}"),
    }
}

/// Runs `cairn VERB --FLAG[=VALUE] [DUMMY...]` (as many positionals as
/// the verb needs to reach its handler): whether it was refused with exit
/// 125 and a line `cairn does not support --FLAG`, and what happened.
fn probe_refusal(dir: &Path, verb: &str, long: &str, kind: Option<&String>) -> (bool, String) {
    let mut args: Vec<String> = if verb == "(global)" {
        Vec::new()
    } else {
        verb.split(' ').map(str::to_owned).collect()
    };
    args.push(flag_arg(long, kind));
    if verb == "(global)" {
        // A global flag needs a verb after it: one that changes nothing.
        args.push("version".to_owned());
    }
    let mut result = (0, String::new());
    for extra in 0..3 {
        let mut a = args.clone();
        a.extend(std::iter::repeat_n(
            "localhost:1/cairn-compat-probe".to_owned(),
            extra,
        ));
        result = cairn(dir, &a);
        if !result.1.contains("required arguments were not provided") {
            break;
        }
    }
    let (code, stderr) = result;
    let want = format!("cairn does not support --{long}");
    (
        code == 125 && stderr.lines().any(|l| l.contains(&want)),
        format!("`cairn {}`: exit {code}: {stderr}", args.join(" ")),
    )
}

#[test]
fn the_committed_table_matches_the_binary() {
    let out = Command::new("python3")
        .arg(repo().join("scripts/compat-table"))
        .arg("--cairn")
        .arg(cairn_tests::cairn::binary())
        .args(["--output", "-"])
        .output()
        .expect("python3 runs scripts/compat-table");
    assert!(
        out.status.success(),
        "scripts/compat-table failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = String::from_utf8(out.stdout).expect("utf-8 table");
    let old = committed();
    if fresh == old {
        return;
    }
    let (old_rows, new_rows) = (rows(&old), rows(&fresh));
    let old_lines: Vec<&str> = old_rows.iter().map(|r| r.line.as_str()).collect();
    let new_lines: Vec<&str> = new_rows.iter().map(|r| r.line.as_str()).collect();
    let mut diff = String::new();
    for l in old_lines.iter().filter(|l| !new_lines.contains(l)) {
        diff.push_str(&format!("  committed: {l}\n"));
    }
    for l in new_lines.iter().filter(|l| !old_lines.contains(l)) {
        diff.push_str(&format!("  binary:    {l}\n"));
    }
    if diff.is_empty() {
        diff.push_str("  (rows equal; the text around them differs)\n");
    }
    panic!(
        "docs/podman-compat.md disagrees with the binary:\n{diff}regenerate it with `{REGENERATE}` and commit it"
    );
}

#[test]
fn refused_rows_are_refused_before_anything_is_created() {
    let flags = snapshot_flags();
    let mut checked = 0;
    for row in rows(&committed())
        .into_iter()
        .filter(|r| r.status == "refused" && !r.flag.is_empty())
    {
        let long = long_of(&row.flag);
        let kind = flags
            .get(&row.verb)
            .and_then(|f| f.get(long))
            .unwrap_or_else(|| panic!("{}: --{long} is not in podman's snapshot", row.verb));
        let dir = tempfile::tempdir().expect("temp dir");
        // As podman takes the flag, then in the other form (a boolean given
        // a value, a value flag given none), as scripts/compat-table probes.
        let other = match kind {
            Some(_) => None,
            None => Some("string".to_owned()),
        };
        let tries: Vec<(bool, String)> = [kind.clone(), other]
            .iter()
            .map(|k| probe_refusal(dir.path(), &row.verb, long, k.as_ref()))
            .collect();
        assert!(
            tries.iter().any(|(refused, _)| *refused),
            "{}: --{long} should be refused with exit 125 and a line naming it; got\n{}",
            row.verb,
            tries
                .iter()
                .map(|(_, t)| t.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
        let containers = dir.path().join("root/containers");
        let created = std::fs::read_dir(&containers)
            .map(|d| d.count())
            .unwrap_or(0);
        assert_eq!(
            created, 0,
            "{}: a refused --{long} created a container",
            row.verb
        );
        checked += 1;
    }
    assert!(
        checked > 0,
        "the table has refused rows (pull --all-tags at least)"
    );
}

#[test]
fn implemented_and_noop_flags_are_known_to_the_parser() {
    let flags = snapshot_flags();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut unknown = Vec::new();
    let mut checked = 0;
    for row in rows(&committed())
        .into_iter()
        .filter(|r| (r.status == "implemented" || r.status == "no-op") && !r.flag.is_empty())
    {
        let long = long_of(&row.flag);
        let kind = flags
            .get(&row.verb)
            .and_then(|f| f.get(long))
            .cloned()
            .flatten();
        let mut args: Vec<String> = if row.verb == "(global)" {
            Vec::new()
        } else {
            row.verb.split(' ').map(str::to_owned).collect()
        };
        args.push(flag_arg(long, kind.as_ref()));
        // --help: the parser reads the flag, nothing runs.
        args.push("--help".to_owned());
        let (code, stderr) = cairn(dir.path(), &args);
        if stderr.contains("unknown flag") || stderr.contains("unexpected argument") {
            unknown.push(format!("{} ({code}): {}", args.join(" "), stderr.trim()));
        }
        checked += 1;
    }
    assert!(checked > 100, "only {checked} implemented/no-op rows");
    assert!(
        unknown.is_empty(),
        "flags the table calls implemented or no-op that cairn's parser does not know:\n{}",
        unknown.join("\n")
    );
}
