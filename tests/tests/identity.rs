//! What cairn says it is, beside podman 4.3: `-v`, `version`, `info` (their
//! JSON keys and podman's Go field names in templates), template errors,
//! `system migrate|renumber|reset`, `completion` and the man pages.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::Stdio;

use cairn_tests::fixtures::refs;
use cairn_tests::podman::Podman;
use cairn_tests::{Cairn, Run};
use serde_json::Value;

/// The podman version cairn reports for clients that gate on it.
const PODMAN_COMPAT: &str = "4.3.1";

fn podman() -> Podman {
    Podman::new().unwrap_or_else(|e| panic!("podman is needed here: {e:#}"))
}

/// Every key path of `v` (`host.ociRuntime.name`), objects only; the
/// members of maps podman fills from the host (`registries`,
/// `store.graphStatus`, `store.graphOptions`) are not keys of a type.
fn key_paths(v: &Value, prefix: &str, out: &mut BTreeSet<String>) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            let path = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            out.insert(path.clone());
            if !matches!(
                path.as_str(),
                "registries" | "store.graphStatus" | "store.graphOptions"
            ) {
                key_paths(child, &path, out);
            }
        }
    }
}

/// `-v` and `--version`: podman's shape (`podman version 4.3.1`: the third
/// word is the version), with "podman" in it (the Dev Containers CLI picks
/// its podman mode by that word) and cairn's own version last; exit 0.
#[test]
fn dash_v_reads_as_podmans() {
    let c = Cairn::new().unwrap();
    let p = podman().ok(["-v"]);
    for flag in ["-v", "--version"] {
        let out = c.ok([flag]);
        let line = out.trim_end();
        assert_eq!(out.lines().count(), 1, "{out:?}");
        let words: Vec<&str> = line.split_whitespace().collect();
        let pwords: Vec<&str> = p.split_whitespace().collect();
        assert_eq!(pwords[..3], ["podman", "version", PODMAN_COMPAT]);
        assert_eq!(words[..3], ["cairn", "version", PODMAN_COMPAT], "{line}");
        assert!(line.to_lowercase().contains("podman"), "{line}");
        let own = c.ok(["version", "--format", "{{.Client.CairnVersion}}"]);
        assert!(line.ends_with(&format!("cairn {})", own.trim())), "{line}");
    }
}

/// `version --format json`: podman's keys (Client, and in it every field of
/// podman's define.Version), compact on one line as podman prints it; the
/// Client's Version is the podman version clients compare against, and the
/// templates toolbox and the Dev Containers CLI use give it.
#[test]
fn version_json_and_templates_as_podmans() {
    let c = Cairn::new().unwrap();
    let p = podman();
    let cj = c.ok(["version", "--format", "json"]);
    let pj = p.ok(["version", "--format", "json"]);
    assert_eq!(cj.lines().count(), 1, "one line as podman's: {cj}");
    let cv: Value = serde_json::from_str(&cj).unwrap();
    let pv: Value = serde_json::from_str(&pj).unwrap();
    let (mut ck, mut pk) = (BTreeSet::new(), BTreeSet::new());
    key_paths(&cv, "", &mut ck);
    key_paths(&pv, "", &mut pk);
    let missing: Vec<_> = pk.difference(&ck).collect();
    assert!(missing.is_empty(), "podman's keys cairn lacks: {missing:?}");
    // cairn's own version is its one addition.
    let extra: Vec<_> = ck.difference(&pk).collect();
    assert_eq!(extra, ["Client.CairnVersion"]);
    assert_eq!(cv["Client"]["Version"], PODMAN_COMPAT);
    assert_eq!(cv["Client"]["OsArch"], pv["Client"]["OsArch"]);
    for t in [
        "{{.Client.Version}}",
        "{{.Server.Version}}",
        "{{.Version}}",
        "{{.Client.APIVersion}}",
        "{{.Client.OsArch}}",
        "{{.Server}}",
    ] {
        assert_eq!(
            c.ok(["version", "--format", t]),
            p.ok(["version", "--format", t]),
            "{t}"
        );
    }
    let text = c.ok(["version"]);
    assert!(
        text.contains(&format!("Version:        {PODMAN_COMPAT}\n")),
        "{text}"
    );
}

/// `info --format json`: at each level, the keys of podman's info that
/// cairn claims, and nothing podman lacks. cairn leaves out, having no
/// counterpart: host.buildahVersion (no buildah), host.cgroupManager (no
/// cgroup of its own per container), host.networkBackend and
/// host.slirp4netns (host/none/private networks, no backend),
/// host.remoteSocket (no service), store.configFile, store.graphOptions,
/// store.graphStatus (no storage.conf, one driver),
/// plugins.volume|network|authorization.
#[test]
fn info_json_keys_are_podmans() {
    const LEFT_OUT: &[&str] = &[
        "host.buildahVersion",
        "host.cgroupManager",
        "host.networkBackend",
        "host.remoteSocket",
        "host.remoteSocket.path",
        "host.slirp4netns",
        "host.slirp4netns.executable",
        "host.slirp4netns.package",
        "host.slirp4netns.version",
        "store.configFile",
        "store.graphOptions",
        "store.graphStatus",
        "plugins.volume",
        "plugins.network",
        "plugins.authorization",
    ];
    let c = Cairn::new().unwrap();
    let p = podman();
    let cv: Value = serde_json::from_str(&c.ok(["info", "--format", "json"])).unwrap();
    let pv: Value = serde_json::from_str(&p.ok(["info", "--format", "json"])).unwrap();
    let (mut ck, mut pk) = (BTreeSet::new(), BTreeSet::new());
    key_paths(&cv, "", &mut ck);
    key_paths(&pv, "", &mut pk);
    // Keys only a rootless podman's or another host's info has are not
    // compared: the same user runs both here.
    let lacking: Vec<_> = pk
        .difference(&ck)
        .filter(|k| !LEFT_OUT.contains(&k.as_str()))
        .collect();
    assert!(
        lacking.is_empty(),
        "podman's info keys cairn lacks: {lacking:?}"
    );
    let extra: Vec<_> = ck.difference(&pk).collect();
    assert_eq!(extra, ["version.CairnVersion"], "keys podman does not have");
    // Values read from the system agree with podman's.
    for path in [
        "/host/arch",
        "/host/os",
        "/host/kernel",
        "/host/hostname",
        "/host/cgroupVersion",
        "/host/cgroupControllers",
        "/host/cpus",
        "/host/distribution",
        "/host/memTotal",
        "/host/swapTotal",
        "/host/security/rootless",
        "/host/security/seccompEnabled",
        "/host/idMappings",
        "/version/Version",
        "/version/OsArch",
    ] {
        assert_eq!(cv.pointer(path), pv.pointer(path), "{path}");
    }
    assert_eq!(
        cv["store"]["graphRoot"].as_str(),
        c.root().to_str(),
        "graphRoot is the store"
    );
}

/// podman's Go field names resolve in `info` templates, including those
/// whose JSON key differs (`CgroupsVersion` is `cgroupVersion`), with
/// podman's output; JSON's lowercase keys do not, as in podman.
#[test]
fn info_templates_use_podmans_go_names() {
    let c = Cairn::new().unwrap();
    let p = podman();
    for t in [
        "{{.Host.Arch}}",
        "{{.Host.CgroupsVersion}}",
        "{{.Host.Security.Rootless}}",
        "{{.Host.Security.SELinuxEnabled}}",
        "{{.Host.Distribution.Distribution}}",
        "{{range .Host.CgroupControllers}}{{.}} {{end}}",
        "{{.Host.OS}}/{{.Host.Arch}}",
        "{{.Version.Version}}",
        "{{.Store.ImageStore.Number}}",
        "{{.Store.ContainerStore.Number}}",
    ] {
        assert_eq!(
            c.ok(["info", "--format", t]),
            p.ok(["info", "--format", t]),
            "{t}"
        );
    }
    assert_eq!(
        c.ok(["info", "--format", "{{.Host.OCIRuntime.Name}}"]),
        "cairn\n"
    );
    assert_eq!(
        c.ok(["info", "--format", "{{.Store.GraphRoot}}"])
            .trim_end(),
        c.root().to_str().unwrap()
    );
    // Every field the JSON has resolves by its Go name: a field podman
    // has and cairn leaves out still resolves (to no value), so no podman
    // template fails on it.
    for t in [
        "{{.Host.BuildahVersion}}",
        "{{.Store.ConfigFile}}",
        "{{.Host.Slirp4NetNS.Executable}}",
    ] {
        p.ok(["info", "--format", t]);
        c.ok(["info", "--format", t]);
    }
}

/// An unknown field is podman's template error, exit 125, for info,
/// version, ps, images and inspect; lowercase JSON keys are unknown fields.
#[test]
fn unknown_fields_are_podmans_errors() {
    let c = Cairn::new().unwrap();
    let p = podman();
    let image = "localhost/debian-min:latest";
    c.pull_fixture_as(refs::DEBIAN_MIN, image);
    p.import_fixture(refs::DEBIAN_MIN, image).unwrap();
    c.ok(["create", "--name", "idt", image, "true"]);
    p.ok([
        "create",
        "--network",
        "host",
        "--name",
        "idt",
        image,
        "true",
    ]);
    let cases: &[&[&str]] = &[
        &["info", "--format", "{{.Host.Foo}}"],
        &["info", "--format", "{{.host.arch}}"],
        &["info", "--format", "{{.Foo}}"],
        &["version", "--format", "{{.Client.Foo}}"],
        &["version", "--format", "{{.Foo}}"],
        &["ps", "-a", "--format", "{{.Foo}}"],
        &["images", "--format", "{{.Foo}}"],
        &["system", "df", "--format", "{{.Foo}}"],
    ];
    for args in cases {
        let cr = c.run(*args);
        let pr: Run = p.run(*args);
        assert_eq!(pr.code, 125, "podman {args:?}: {}", pr.stderr);
        assert_eq!(cr.code, 125, "cairn {args:?}: {} {}", cr.stdout, cr.stderr);
        assert_eq!(cr.stderr, pr.stderr, "{args:?}");
        assert_eq!(cr.stdout, "", "{args:?}");
    }
    // inspect: podman puts its words before the template's error.
    let cr = c.fails(125, ["inspect", "--format", "{{.Foo}}", "idt"]);
    assert!(
        cr.stderr.contains(
            r#"template: inspect:1:13: executing "inspect" at <.Foo>: can't evaluate field Foo in type interface {}"#
        ),
        "{}",
        cr.stderr
    );
    // The fields distrobox-list reads still resolve.
    let t = "{{.ID}}|{{.Image}}|{{.Names}}|{{.State}}|{{.Labels}}{{.Mounts}}";
    let out = c.ok(["ps", "-a", "--no-trunc", "--format", t]);
    assert!(out.contains("|localhost/debian-min:latest|idt|"), "{out}");
    c.ok(["rm", "-f", "idt"]);
}

/// `system migrate` and `system renumber` exit 0 without changing the
/// store; `migrate --new-runtime crun` (toolbox's, on cgroup v2) is a
/// no-op, another runtime is refused by name.
#[test]
fn migrate_and_renumber_are_noops() {
    let c = Cairn::new().unwrap();
    let id = c.pull_fixture_as(refs::DEBIAN_MIN, "localhost/mig:1");
    c.ok(["create", "--name", "mig", "localhost/mig:1", "true"]);
    let before = c.ok(["ps", "-a", "--format", "{{.Names}} {{.ImageID}}"]);
    assert_eq!(c.ok(["system", "migrate"]), "");
    assert_eq!(c.ok(["system", "renumber"]), "");
    assert_eq!(
        c.ok(["ps", "-a", "--format", "{{.Names}} {{.ImageID}}"]),
        before
    );
    assert!(before.contains(&id[..12]), "{before}");
    assert_eq!(c.ok(["system", "migrate", "--new-runtime", "crun"]), "");
    let r = c.fails(125, ["system", "migrate", "--new-runtime", "kata"]);
    assert!(
        r.stderr
            .starts_with("Error: cairn does not support --new-runtime kata"),
        "{}",
        r.stderr
    );
    c.ok(["rm", "-f", "mig"]);
}

/// Runs `cairn ARGS` with `answer` on stdin.
fn answering(c: &Cairn, answer: &str, args: &[&str]) -> Run {
    let mut cmd = c.command(args);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `system reset` asks podman's question on stdout: "n" (or nothing)
/// keeps every container and image; "y" removes the store from disk; `-f`
/// does not ask.
#[test]
fn reset_asks_then_removes_everything() {
    let c = Cairn::new().unwrap();
    c.pull_fixture_as(refs::DEBIAN_MIN, "localhost/rst:1");
    c.ok(["create", "--name", "rst", "localhost/rst:1", "true"]);
    let p = podman();
    let pq = answering_podman(&p, "n\n");
    for answer in ["n\n", "\n", "no\n"] {
        let r = answering(&c, answer, &["system", "reset"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            r.stdout
                .starts_with("WARNING! This will remove:\n        - all containers\n"),
            "{}",
            r.stdout
        );
        assert!(
            r.stdout
                .ends_with("Are you sure you want to continue? [y/N] "),
            "{:?}",
            r.stdout
        );
        assert!(
            pq.ends_with("Are you sure you want to continue? [y/N] "),
            "{pq:?}"
        );
        assert_eq!(c.ok(["ps", "-a", "--format", "{{.Names}}"]), "rst\n");
        assert!(c
            .ok(["images", "--format", "{{.Repository}}"])
            .contains("localhost/rst"));
    }
    let r = answering(&c, "y\n", &["system", "reset"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!c.root().exists(), "the store is gone from disk");
    assert_eq!(c.ok(["ps", "-a", "-q"]), "");
    assert_eq!(c.ok(["images", "-q"]), "");
    // -f: no question.
    c.pull_fixture_as(refs::DEBIAN_MIN, "localhost/rst:1");
    let r = answering(&c, "", &["system", "reset", "-f"]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);
    assert!(!c.root().exists());
}

/// podman's question for `system reset`, answered `answer` (its store is
/// the test's own, so nothing else is touched).
fn answering_podman(p: &Podman, answer: &str) -> String {
    let mut cmd = p.command(["system", "reset"]);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(answer.as_bytes())
        .unwrap();
    String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
}

/// The verbs (and `system`, `image`, `container` sub-verbs) cairn has,
/// from its own `--help`.
fn verbs(c: &Cairn, path: &[&str]) -> Vec<String> {
    let mut args: Vec<&str> = path.to_vec();
    args.push("--help");
    let help = c.ok(args);
    let section = help
        .split("Commands:\n")
        .nth(1)
        .expect("help lists commands");
    section
        .lines()
        .take_while(|l| l.starts_with("  "))
        // A verb's line; deeper indentation continues a description.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|v| *v != "help")
        .map(str::to_owned)
        .collect()
}

/// `completion bash` is valid bash (`bash -n`) naming every verb; zsh,
/// fish and powershell scripts name them too; an unknown shell is 125.
#[test]
fn completion_scripts_name_every_verb() {
    let c = Cairn::new().unwrap();
    let top = verbs(&c, &[]);
    assert!(top.len() > 20, "{top:?}");
    for needed in ["run", "ps", "system", "completion", "info", "version"] {
        assert!(top.iter().any(|v| v == needed), "{needed} in {top:?}");
    }
    let bash = c.ok(["completion", "bash"]);
    let file = c.scratch().join("cairn.bash");
    std::fs::write(&file, &bash).unwrap();
    let check = std::process::Command::new("bash")
        .arg("-n")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Loading it defines the completion function for cairn.
    let loaded = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p cairn", file.display()))
        .output()
        .unwrap();
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
    let system = verbs(&c, &["system"]);
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let script = c.ok(["completion", shell]);
        for v in top.iter().chain(&system) {
            assert!(script.contains(v.as_str()), "{shell} lacks {v}");
        }
    }
    c.fails(125, ["completion", "tcsh"]);
    // Installed as `podman`, the script completes `podman`.
    let link = c.scratch().join("podman");
    std::os::unix::fs::symlink(cairn_tests::cairn::binary(), &link).unwrap();
    let out = std::process::Command::new(&link)
        .args(["completion", "bash"])
        .output()
        .unwrap();
    let script = String::from_utf8_lossy(&out.stdout);
    assert!(
        script
            .lines()
            .any(|l| l.trim().starts_with("complete -F") && l.ends_with(" podman")),
        "{script}"
    );
}

/// `system generate-man DIR` writes a page for every verb, nested ones
/// included, each a roff page naming its command.
#[test]
fn man_pages_for_every_verb() {
    let c = Cairn::new().unwrap();
    let dir = c.scratch().join("man");
    let listed = c.ok(["system", "generate-man", dir.to_str().unwrap()]);
    let mut expected = vec!["cairn".to_owned()];
    for v in verbs(&c, &[]) {
        expected.push(format!("cairn-{v}"));
    }
    for group in ["system", "image", "container"] {
        for v in verbs(&c, &[group]) {
            expected.push(format!("cairn-{group}-{v}"));
        }
    }
    for name in &expected {
        let page = dir.join(format!("{name}.1"));
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(
            text.starts_with(".ie \\n(.g .ds Aq") || text.contains(".TH"),
            "{name}"
        );
        assert!(
            text.contains(&format!(".TH {name}")),
            "{name}: {}",
            &text[..200.min(text.len())]
        );
        assert!(
            listed.contains(&page.display().to_string()),
            "{name} listed"
        );
    }
    assert!(
        !dir.join("cairn-__cp.1").exists(),
        "hidden verbs have no page"
    );
}

/// `system df` counts containers (running ones active), volumes (in use
/// active) and sizes uncompressed: a container's writable layer and a
/// volume's data as written, the image as unpacked; `-v` lists each.
#[test]
fn system_df_counts_containers_and_volumes() {
    let c = Cairn::new().unwrap();
    let image = "localhost/df:1";
    c.pull_fixture_as(refs::DEBIAN_MIN, image);
    c.ok([
        "run",
        "--rm",
        "-v",
        "dfvol:/data",
        image,
        "sh",
        "-c",
        "head -c 1000000 /dev/zero > /data/f",
    ]);
    c.ok(["create", "--name", "idle", image, "true"]);
    c.ok([
        "run",
        "-d",
        "--name",
        "busy",
        image,
        "sh",
        "-c",
        "head -c 2000000 /dev/zero > /big && sleep 300",
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let json = loop {
        let v: Value = serde_json::from_str(&c.ok(["system", "df", "--format", "json"])).unwrap();
        if v[1]["Size"] == 2_000_000 || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(json[0]["Type"], "Images");
    assert_eq!(
        (json[0]["Total"].as_u64(), json[0]["Active"].as_u64()),
        (Some(1), Some(1))
    );
    // Uncompressed: more than the compressed blobs.
    assert!(
        json[0]["Size"].as_u64() > json[0]["StoredSize"].as_u64(),
        "{json}"
    );
    assert_eq!(json[1]["Type"], "Containers");
    assert_eq!(
        (json[1]["Total"].as_u64(), json[1]["Active"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(json[1]["Size"], 2_000_000, "{json}");
    assert_eq!(json[1]["Reclaimable"], 0, "the idle one wrote nothing");
    assert_eq!(json[2]["Type"], "Local Volumes");
    assert_eq!(
        (json[2]["Total"].as_u64(), json[2]["Active"].as_u64()),
        (Some(1), Some(0))
    );
    assert_eq!(json[2]["Size"], 1_000_000);
    assert_eq!(
        json[2]["Reclaimable"], 1_000_000,
        "no container uses it now"
    );
    let table = c.ok(["system", "df"]);
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| {
            l.split("  ")
                .map(str::trim)
                .filter(|w| !w.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(rows[0], ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    assert_eq!(
        rows[2],
        ["Containers", "2", "1", "2MB", "0B (0%)"],
        "{table}"
    );
    assert_eq!(
        rows[3],
        ["Local Volumes", "1", "0", "1MB", "1MB (100%)"],
        "{table}"
    );
    let t = "{{.Type}}|{{.Total}}|{{.Active}}|{{.Size}}|{{.Reclaimable}}|{{.RawSize}}";
    assert_eq!(
        c.ok(["system", "df", "--format", t]).lines().nth(2),
        Some("Local Volumes|1|0|1MB|1MB (100%)|1000000")
    );
    let v = c.ok(["system", "df", "-v"]);
    assert!(v.contains("Containers space usage:"), "{v}");
    let busy = v
        .lines()
        .find(|l| l.ends_with(" busy"))
        .expect("busy listed");
    assert!(
        busy.contains(" 2MB ") && busy.contains(" running "),
        "{busy}"
    );
    let vol = v
        .lines()
        .find(|l| l.starts_with("dfvol "))
        .expect("volume listed");
    assert_eq!(
        vol.split_whitespace().collect::<Vec<_>>(),
        ["dfvol", "0", "1MB"]
    );
    c.ok(["rm", "-f", "-t", "0", "busy", "idle"]);
}

/// `system prune` asks podman's question on stdout, and "n" keeps a
/// stopped container.
#[test]
fn system_prune_asks_on_stdout() {
    let c = Cairn::new().unwrap();
    c.pull_fixture_as(refs::DEBIAN_MIN, "localhost/pr:1");
    c.ok(["create", "--name", "keep", "localhost/pr:1", "true"]);
    let r = answering(&c, "n\n", &["system", "prune"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .starts_with("WARNING! This command removes:\n\t- all stopped containers\n"),
        "{:?}",
        r.stdout
    );
    assert!(
        r.stdout
            .ends_with("\n\nAre you sure you want to continue? [y/N] "),
        "{:?}",
        r.stdout
    );
    assert_eq!(r.stderr, "");
    assert_eq!(c.ok(["ps", "-a", "--format", "{{.Names}}"]), "keep\n");
    let r = answering(&c, "y\n", &["system", "prune"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(c.ok(["ps", "-a", "-q"]), "");
}
