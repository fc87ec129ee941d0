//! The image and network verbs beside podman (4.3) on the same image:
//! `rmi -f` of a missing image, `image prune`'s question, `untag`,
//! `images --sort/-a/--history`, `image prune --filter`, `inspect -l`, and
//! `network ls|inspect|exists` on the default network and a missing one. Outputs and exit
//! codes are compared with podman's; where they differ by design (podman's
//! `podman` bridge network) the test says so.

use std::io::Write as _;
use std::process::{Command, Stdio};

use cairn_tests::fixtures::refs;
use cairn_tests::podman::Podman;
use cairn_tests::{Cairn, Run};

/// The fixture image's name on both sides.
const IMAGE: &str = "localhost/debian-min:latest";

struct Pair {
    cairn: Cairn,
    podman: Podman,
    id: String,
}

fn pair() -> Pair {
    let podman = Podman::new().unwrap_or_else(|e| panic!("podman is needed here: {e:#}"));
    let podman_id = podman
        .import_fixture(refs::DEBIAN_MIN, IMAGE)
        .expect("podman imports the image");
    let cairn = Cairn::new().expect("cairn environment");
    let id = cairn.pull_fixture_as(refs::DEBIAN_MIN, IMAGE);
    assert_eq!(id, podman_id, "the same image id on both sides");
    Pair { cairn, podman, id }
}

/// Runs `cmd` with `input` on stdin.
fn with_stdin(mut cmd: Command, input: &str) -> Run {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Pair {
    fn both(&self, args: &[&str]) -> (Run, Run) {
        (self.cairn.run(args), self.podman.run(args))
    }

    /// Runs `args` on both and requires the same exit code, stdout and
    /// stderr.
    fn same(&self, args: &[&str]) -> Run {
        let (c, p) = self.both(args);
        assert_eq!(
            (c.code, &c.stdout, &c.stderr),
            (p.code, &p.stdout, &p.stderr),
            "{args:?}: cairn (left) and podman (right) differ"
        );
        c
    }

    /// Image names on each side, sorted (`images` lists them in an order
    /// of its own).
    fn names(&self) -> (Vec<String>, Vec<String>) {
        let args = ["images", "--format", "{{.Repository}}:{{.Tag}}"];
        let sorted = |s: String| {
            let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
            v.sort();
            v
        };
        (sorted(self.cairn.ok(args)), sorted(self.podman.ok(args)))
    }
}

#[test]
fn rmi_force_of_a_missing_image_is_silent_and_succeeds() {
    let p = pair();
    let r = p.same(&["rmi", "-f", "nosuch"]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
    let r = p.same(&["rmi", "nosuch"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr, "Error: nosuch: image not known\n");
    // -f with a missing and a present image: the present one goes.
    p.cairn.ok(["tag", IMAGE, "gone:1"]);
    p.podman.ok(["tag", IMAGE, "gone:1"]);
    p.same(&["rmi", "-f", "nosuch", "gone:1"]);
    let (c, pm) = p.names();
    assert_eq!(c, pm);
    assert_eq!(c, vec!["localhost/debian-min:latest"]);
}

#[test]
fn image_prune_asks_on_stdout_and_keeps_everything_unless_yes() {
    let p = pair();
    // A dangling image on both sides: the only name removed.
    p.same(&["untag", &p.id]);
    for (flags, answer) in [(&[][..], "n\n"), (&["-a"][..], "\n"), (&[][..], " y\n")] {
        let mut args = vec!["image", "prune"];
        args.extend_from_slice(flags);
        let c = with_stdin(p.cairn.command(&args), answer);
        let pm = with_stdin(p.podman.command(&args), answer);
        assert_eq!(
            (c.code, &c.stdout),
            (pm.code, &pm.stdout),
            "{args:?} answered {answer:?}: cairn (left), podman (right)"
        );
        assert!(
            c.stdout
                .ends_with("Are you sure you want to continue? [y/N] "),
            "the question is on stdout: {:?}",
            c.stdout
        );
        assert!(
            !c.stderr.contains("Are you sure"),
            "not on stderr: {}",
            c.stderr
        );
        assert_eq!(
            p.cairn.ok(["images", "-q"]).trim(),
            &p.id[..12],
            "anything but y keeps the dangling image"
        );
    }
    // podman takes an answer that starts with y as yes.
    let c = with_stdin(p.cairn.command(["image", "prune"]), "yes please\n");
    let pm = with_stdin(p.podman.command(["image", "prune"]), "yes please\n");
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert_eq!(pm.code, 0, "{}", pm.stderr);
    assert!(
        c.stdout.contains(&p.id),
        "prune prints the removed id: {}",
        c.stdout
    );
    assert!(pm.stdout.contains(&p.id), "{}", pm.stdout);
    assert_eq!(p.cairn.ok(["images", "-q"]), "");
    assert_eq!(p.podman.ok(["images", "-q"]), "");
}

#[test]
fn image_prune_filters_as_podmans() {
    let p = pair();
    p.same(&["untag", &p.id]);
    let r = p.same(&["image", "prune", "-f", "--filter", "foo=bar"]);
    assert_eq!(r.code, 125);
    // until=: only images created before; the fixture is younger than 2000.
    let r = p.same(&[
        "image",
        "prune",
        "-f",
        "--filter",
        "until=2000-01-01T00:00:00Z",
    ]);
    assert_eq!(r.code, 0);
    assert_eq!(p.cairn.ok(["images", "-q"]).trim(), &p.id[..12]);
    // A label the image does not have: kept; label!= of it: pruned.
    p.same(&["image", "prune", "-f", "--filter", "label=cairn.test=yes"]);
    assert_eq!(p.cairn.ok(["images", "-q"]).trim(), &p.id[..12]);
    assert_eq!(p.podman.ok(["images", "-q"]).trim(), &p.id[..12]);
    let (c, pm) = p.both(&["image", "prune", "-f", "--filter", "label!=cairn.test=yes"]);
    assert_eq!((c.code, pm.code), (0, 0), "{}\n{}", c.stderr, pm.stderr);
    assert_eq!(p.cairn.ok(["images", "-q"]), "");
    assert_eq!(p.podman.ok(["images", "-q"]), "");
}

#[test]
fn untag_removes_names_and_keeps_the_image() {
    let p = pair();
    for side in [
        &p.cairn.ok(["tag", IMAGE, "foo", "bar:1"]),
        &p.podman.ok(["tag", IMAGE, "foo", "bar:1"]),
    ] {
        assert_eq!(side, "");
    }
    let r = p.same(&["untag", IMAGE, "nosuch"]);
    assert_eq!(r.code, 125);
    assert_eq!(r.stderr, "Error: localhost/nosuch:latest: tag not known\n");
    let r = p.same(&["untag", "nosuch"]);
    assert_eq!(r.code, 125);
    p.same(&["untag", IMAGE, "bar:1"]);
    let (c, pm) = p.names();
    assert_eq!(c, pm);
    assert_eq!(
        c,
        vec!["localhost/debian-min:latest", "localhost/foo:latest"]
    );
    p.same(&["image", "untag", &p.id]);
    p.same(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    assert_eq!(
        p.cairn
            .ok(["images", "--format", "{{.Repository}}:{{.Tag}}"]),
        "<none>:<none>\n"
    );
}

#[test]
fn images_all_sort_and_history() {
    let p = pair();
    p.cairn.ok(["tag", IMAGE, "zeta:1", "alpha:2"]);
    p.podman.ok(["tag", IMAGE, "zeta:1", "alpha:2"]);
    // -a lists what the default lists: no intermediate images on either side.
    assert_eq!(p.cairn.ok(["images", "-a"]), p.cairn.ok(["images"]));
    p.same(&[
        "images",
        "-a",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "--sort",
        "repository",
    ]);
    for key in ["repository", "tag"] {
        p.same(&[
            "images",
            "--sort",
            key,
            "--format",
            "{{.Repository}}:{{.Tag}}",
        ]);
    }
    // podman lists the keys in Go's random map order: compared as a set.
    let (c, pm) = p.both(&["images", "--sort", "nosuch"]);
    assert_eq!((c.code, pm.code), (125, 125));
    let keys = |stderr: &str| {
        let rest = stderr
            .trim_end()
            .strip_prefix("Error: \"nosuch\" is not a valid field for sorting. Choose from: ")
            .unwrap_or_else(|| panic!("podman's words: {stderr}"))
            .to_owned();
        let mut k: Vec<String> = rest.split(", ").map(str::to_owned).collect();
        k.sort();
        k
    };
    assert_eq!(keys(&c.stderr), keys(&pm.stderr));
    let history = p.cairn.ok(["images", "--history", "--sort", "tag"]);
    let header = history.lines().next().expect("a header");
    assert!(header.ends_with("HISTORY"), "{header}");
    assert!(
        history
            .lines()
            .nth(1)
            .expect("a row")
            .ends_with("localhost/alpha:2, localhost/debian-min:latest, localhost/zeta:1"),
        "{history}"
    );
}

#[test]
fn inspect_latest_is_the_newest_container() {
    let p = pair();
    let r = p.same(&["inspect", "-l"]);
    assert_eq!(r.code, 125);
    assert_eq!(r.stdout, "[]\n");
    for name in ["first", "second"] {
        p.cairn.ok(["create", "--name", name, IMAGE, "true"]);
        p.podman
            .ok(["create", "--network", "host", "--name", name, IMAGE, "true"]);
    }
    let r = p.same(&["inspect", "-l", "--format", "{{.Name}}"]);
    assert_eq!(r.stdout, "second\n");
    let r = p.same(&["container", "inspect", "--latest", "--format", "{{.Name}}"]);
    assert_eq!(r.stdout, "second\n");
    p.cairn.ok(["rm", "-a", "-f"]);
}

#[test]
fn network_verbs_answer_as_podman_does_for_a_missing_network() {
    let p = pair();
    for args in [
        &["network", "inspect", "nosuch"][..],
        &["network", "inspect", "host"][..],
        &["network", "ls", "-f", "foo=bar"][..],
        &["network", "ls", "--filter", "nokey"][..],
        &["network", "exists", "nosuch"][..],
    ] {
        let (c, pm) = p.both(args);
        assert_eq!(
            (c.code, &c.stdout, c.stderr.lines().next()),
            (pm.code, &pm.stdout, pm.stderr.lines().next()),
            "{args:?}: cairn (left), podman (right)"
        );
    }
    // Both have the default `podman` bridge network, with podman's id
    // (cairn's on its own bridge and subnet, so both engines run side by
    // side); host, none, pasta, ... are modes, not listed.
    // (podman's networks are machine-wide: other tests' come and go, so
    // the listings are of the default one, by id.)
    let default = ["--filter", "id=2f259bab93aa"];
    for args in [
        &["network", "exists", "podman"][..],
        &["network", "ls", default[0], default[1]],
        &["network", "ls", "-q", default[0], default[1]],
        &["network", "ls", "--no-trunc", default[0], default[1]],
        &[
            "network",
            "ls",
            default[0],
            default[1],
            "--format",
            "table {{.ID}}\t{{.Name}}\t{{.Driver}}",
        ],
    ] {
        let (c, pm) = p.both(args);
        assert_eq!(
            (c.code, &c.stdout),
            (pm.code, &pm.stdout),
            "{args:?}: cairn (left), podman (right)"
        );
    }
    let v: serde_json::Value =
        serde_json::from_str(&p.cairn.ok(["network", "inspect", "podman"])).unwrap();
    assert_eq!(v[0]["network_interface"], "cairn0");
    assert_eq!(v[0]["subnets"][0]["subnet"], "10.87.0.0/16");
}

/// `network create|inspect|rm|exists|connect|disconnect` beside podman on
/// the same steps: the same outputs, errors and exit codes (podman keeps
/// its networks machine-wide, so the names are this process's own).
#[test]
fn network_verbs_create_use_and_remove_as_podman() {
    /// Removes podman's (machine-wide) networks of this test, pass or fail.
    struct Cleanup(Vec<String>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            for n in &self.0 {
                let _ = Command::new("podman")
                    .args(["network", "rm", "-f", n])
                    .output();
            }
        }
    }
    let p = pair();
    let net = format!("ivnet{}", std::process::id());
    let labeled = format!("{net}l");
    let _cleanup = Cleanup(vec![net.clone(), labeled.clone()]);
    let (c, pm) = p.both(&["network", "create", &net]);
    assert_eq!((c.code, &c.stdout), (0, &format!("{net}\n")), "{c:?}");
    assert_eq!(pm.code, 0, "{pm:?}");
    for args in [
        &["network", "create", net.as_str()][..],
        &["network", "exists", net.as_str()],
        &[
            "network",
            "create",
            "--subnet",
            "10.99.7.0/24",
            "--gateway",
            "10.98.0.1",
            "x1",
        ],
        &["network", "create", "-d", "macvlan2", "x2"],
        &["network", "create", "b@d"],
        &["network", "rm", "podman"],
        &["network", "rm", "nosuch-net"],
        &["network", "rm", "-f", "nosuch-net"],
    ] {
        let (c, pm) = p.both(args);
        assert_eq!(
            (c.code, &c.stdout, c.stderr.lines().next()),
            (pm.code, &pm.stdout, pm.stderr.lines().next()),
            "{args:?}: cairn (left), podman (right)"
        );
    }
    let (c, pm) = p.both(&[
        "network",
        "create",
        "--internal",
        "--disable-dns",
        "--label",
        "k=v",
        &labeled,
    ]);
    assert_eq!((c.code, pm.code), (0, 0), "{c:?} {pm:?}");
    let keys = "{{.Name}} {{.Driver}} {{.Internal}} {{.DNSEnabled}} {{.Labels}} {{.IPAMOptions}}";
    p.same(&["network", "inspect", &labeled, "--format", keys]);
    p.same(&[
        "network",
        "ls",
        "--filter",
        "label=k=v",
        "--filter",
        &format!("name={net}"),
        "--format",
        "{{.Name}}",
    ]);
    // A container on it: rm refuses (2), connect/disconnect edit the
    // created container, rm -f removes both.
    let create = [
        "create",
        "--name",
        "netuser",
        "--network",
        net.as_str(),
        IMAGE,
        "true",
    ];
    assert_eq!(p.cairn.run(create).code, 0);
    assert_eq!(p.podman.run(create).code, 0);
    p.same(&["network", "rm", &net]);
    p.same(&["network", "connect", "--alias", "web", &labeled, "netuser"]);
    // Each network's aliases: the given ones, then the short id.
    let aliases = "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}:{{len $v.Aliases}} {{end}}";
    let (c, pm) = p.both(&["inspect", "netuser", "--format", aliases]);
    assert_eq!(c.stdout, pm.stdout);
    let web = format!("{{{{index (index .NetworkSettings.Networks \"{labeled}\").Aliases 0}}}}");
    assert_eq!(
        p.cairn.ok(["inspect", "netuser", "--format", &web]),
        "web\n"
    );
    p.same(&["network", "disconnect", &labeled, "netuser"]);
    p.same(&["network", "connect", &net, "nosuch-ctr"]);
    let (c, pm) = p.both(&["network", "rm", "-f", &net, &labeled]);
    assert_eq!((c.code, &c.stdout), (pm.code, &pm.stdout), "{c:?} {pm:?}");
    assert_eq!(p.cairn.run(["ps", "-a", "-q"]).stdout, "");
    let _ = p.podman.run(["rm", "-f", "netuser"]);
}

#[test]
fn login_verbose_names_the_auth_file_as_podman_does() {
    use cairn_tests::registry::{Auth, Registry, RegistryOptions};
    let reg =
        Registry::start(RegistryOptions::default().with_auth(Auth::htpasswd("alice", "s3cret")))
            .expect("registry");
    let podman = Podman::new().unwrap_or_else(|e| panic!("podman is needed here: {e:#}"));
    let cairn = Cairn::new().expect("cairn environment");
    let dir = tempfile::tempdir().expect("temp dir");
    let mut outs = Vec::new();
    for (who, mut cmd) in [
        ("cairn", cairn.command(["login"])),
        ("podman", podman.command(["login"])),
    ] {
        let file = dir.path().join(format!("{who}.json"));
        cmd.args([
            "--tls-verify=false",
            "-u",
            "alice",
            "-p",
            "s3cret",
            "-v",
            "--authfile",
        ])
        .arg(&file)
        .arg(reg.host());
        let out = cmd.output().expect("login runs");
        assert!(
            out.status.success(),
            "{who}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text =
            String::from_utf8_lossy(&out.stdout).replace(&file.display().to_string(), "FILE");
        assert!(file.exists(), "{who} wrote {}", file.display());
        outs.push(text);
    }
    assert_eq!(outs[0], outs[1], "cairn (left), podman (right)");
    assert_eq!(outs[0], "Used:  FILE\nLogin Succeeded!\n");
}
