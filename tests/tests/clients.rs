//! The real clients of podman's CLI run against cairn, as their users run them: distrobox (as
//! `lilipod` and as `podman`), the Dev Containers CLI (`--docker-path cairn`, as root and as a
//! normal user) and toolbox, with cairn first on `PATH` under the name each looks for and the
//! fixture image `clients` in the store (see `cairn_tests::clients`). Each test asserts what the
//! user sees: the client's exit code, the output of the command run inside, the user it runs
//! as, and the containers left in cairn's store.
//!
//! Nothing here is fetched from a network: the image carries what distrobox-init and toolbox's
//! init-container would otherwise install.

use std::fs;
use std::time::Duration;

use cairn_tests::clients::{self, Clients, Engine, IMAGE};
use cairn_tests::Run;

/// A client's whole step (distrobox-enter waits for the container's init, for one).
const STEP: Duration = Duration::from_secs(240);

/// What a client printed, for a failing assertion.
fn show(what: &str, r: &Run) -> String {
    format!(
        "{what}: exit {}\n--- stdout\n{}\n--- stderr\n{}",
        r.code, r.stdout, r.stderr
    )
}

/// The names of every container in the store.
fn container_names(env: &Clients) -> Vec<String> {
    env.engine_ok(["ps", "-a", "--format", "{{.Names}}"])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What a distrobox user sees of one life cycle, compared between engines.
#[derive(Debug, PartialEq, Eq)]
struct DistroboxTranscript {
    /// stdout of `distrobox-enter NAME -- sh -c 'id -un; cat /etc/os-release; exit 3'`.
    enter: String,
    /// The `distrobox-list` row of the container: name, status up to its first word, image.
    listed: Vec<String>,
}

/// distrobox's whole life cycle as the rootless test user, `engine` on `PATH` as every name and
/// distrobox told to use `manager` (`DBX_CONTAINER_MANAGER`).
fn distrobox_lifecycle(manager: &str, engine: Engine) -> DistroboxTranscript {
    clients::require("distrobox-create");
    let mut env = Clients::rootless_with(engine).expect("rootless clients environment");
    env.env("DBX_CONTAINER_MANAGER", manager);
    let user = env.cairn().user().expect("rootless").name.clone();
    let name = format!("dbx-{manager}");

    // --no-entry: no desktop entry (distrobox 1.4's generate-entry knows podman and docker
    // only, and fetches an icon from the network).
    let create = env.run(
        STEP,
        "distrobox-create",
        ["--yes", "--no-entry", "-i", IMAGE, "-n", &name],
    );
    assert_eq!(create.code, 0, "{}", show("distrobox-create", &create));
    // distrobox 1.4 exits 0 when the engine's `create` fails: look at the engine's store.
    let label = env.run(
        STEP,
        "cairn",
        [
            "inspect",
            "--format",
            "{{index .Config.Labels \"manager\"}}",
            &name,
        ],
    );
    assert_eq!(
        (label.code, label.stdout.trim()),
        (0, "distrobox"),
        "no container made: {}",
        show("distrobox-create", &create)
    );

    let enter = env.run(
        STEP,
        "distrobox-enter",
        [
            &name,
            "--",
            "sh",
            "-c",
            "id -un; cat /etc/os-release; exit 3",
        ],
    );
    assert_eq!(
        enter.code,
        3,
        "exit 3 propagated: {}",
        show("distrobox-enter", &enter)
    );
    assert_eq!(
        enter.stdout.lines().next(),
        Some(user.as_str()),
        "the caller inside: {}",
        show("distrobox-enter", &enter)
    );
    assert!(
        enter
            .stdout
            .contains("PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\""),
        "{}",
        show("distrobox-enter", &enter)
    );
    // A second enter finds the container running, the caller's home at its own path.
    let home = env.home().display().to_string();
    let again = env.run(
        STEP,
        "distrobox-enter",
        [&name, "--", "sh", "-c", "echo $HOME; pwd"],
    );
    assert_eq!(again.code, 0, "{}", show("distrobox-enter (again)", &again));
    assert_eq!(
        again.stdout.lines().collect::<Vec<_>>(),
        [home.as_str(), home.as_str()],
        "{}",
        show("distrobox-enter (again)", &again)
    );

    let list = env.run(STEP, "distrobox-list", [] as [&str; 0]);
    assert_eq!(list.code, 0, "{}", show("distrobox-list", &list));
    let row: Vec<String> = list
        .stdout
        .lines()
        .map(|l| {
            l.split('|')
                .map(|f| f.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .find(|f| f.get(1).map(String::as_str) == Some(name.as_str()))
        .unwrap_or_else(|| panic!("{name} not listed: {}", show("distrobox-list", &list)));
    assert!(
        row[2].starts_with("Up "),
        "status: {}",
        show("distrobox-list", &list)
    );
    assert_eq!(row[3], IMAGE, "{}", show("distrobox-list", &list));
    let listed = vec![
        row[1].clone(),
        row[2]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned(),
        row[3].clone(),
    ];

    let stop = env.run(STEP, "distrobox-stop", ["--yes", &name]);
    assert_eq!(stop.code, 0, "{}", show("distrobox-stop", &stop));
    assert_eq!(
        env.engine_ok(["inspect", "--format", "{{.State.Status}}", &name])
            .trim(),
        "exited"
    );

    let rm = env.run(STEP, "distrobox-rm", ["--yes", &name]);
    assert_eq!(rm.code, 0, "{}", show("distrobox-rm", &rm));
    assert!(
        !container_names(&env).contains(&name),
        "{name} still there after distrobox-rm: {}",
        show("distrobox-rm", &rm)
    );
    DistroboxTranscript {
        enter: enter.stdout,
        listed,
    }
}

#[test]
fn distrobox_as_lilipod_creates_enters_lists_stops_and_removes() {
    distrobox_lifecycle("lilipod", Engine::Cairn);
}

#[test]
fn distrobox_as_podman_creates_enters_lists_stops_and_removes() {
    distrobox_lifecycle("podman", Engine::Cairn);
}

/// The same life cycle through the host's rootless podman: what the user sees is the same.
#[test]
fn distrobox_as_podman_shows_what_real_podman_shows() {
    let podman = distrobox_lifecycle("podman", Engine::Podman);
    let cairn = distrobox_lifecycle("podman", Engine::Cairn);
    assert_eq!(cairn, podman);
}

/// A workspace `DIR/NAME` whose devcontainer.json names [`IMAGE`], with containerEnv,
/// remoteEnv, a bind mount of `DIR/extra`, a postCreateCommand and `remote_user`.
fn workspace(env: &Clients, name: &str, remote_user: &str) -> std::path::PathBuf {
    let dir = env.cairn().scratch().join("work");
    let ws = dir.join(name);
    fs::create_dir_all(ws.join(".devcontainer")).unwrap();
    fs::create_dir_all(dir.join("extra")).unwrap();
    fs::write(dir.join("extra/f"), "from the extra mount\n").unwrap();
    fs::write(ws.join("marker.txt"), "workspace marker\n").unwrap();
    let config = serde_json::json!({
        "image": IMAGE,
        "containerEnv": {"CAIRN_CENV": "from-containerEnv"},
        "remoteEnv": {"CAIRN_RENV": "from-remoteEnv"},
        "mounts": [format!("type=bind,source={},target=/extra", dir.join("extra").display())],
        "postCreateCommand": "echo created >> /tmp/post-create-runs",
        "remoteUser": remote_user,
        // No image build to change dev's uid: cairn has no `build` yet.
        "updateRemoteUserUID": false,
    });
    fs::write(
        ws.join(".devcontainer/devcontainer.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    env.own(&dir).unwrap();
    ws
}

/// The JSON result line `devcontainer up` prints last.
fn up_result(up: &Run) -> serde_json::Value {
    let last = up.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {}", show("devcontainer up", up)))
}

fn devcontainer_lifecycle(env: &Clients, remote_user: &str) {
    let cli = clients::devcontainer_cli();
    let ws = workspace(env, "proj-dc", remote_user);
    let ws_arg = ws.display().to_string();
    let dc = |args: &[&str]| -> Run {
        let mut all = vec![
            args[0],
            "--docker-path",
            "cairn",
            "--workspace-folder",
            &ws_arg,
        ];
        all.extend_from_slice(&args[1..]);
        env.run(STEP, &cli, &all)
    };

    let up = dc(&["up"]);
    assert_eq!(up.code, 0, "{}", show("devcontainer up", &up));
    let result = up_result(&up);
    assert_eq!(
        result["outcome"],
        "success",
        "{}",
        show("devcontainer up", &up)
    );
    assert_eq!(result["remoteUser"], remote_user);
    assert_eq!(result["remoteWorkspaceFolder"], "/workspaces/proj-dc");
    let id = result["containerId"]
        .as_str()
        .expect("containerId")
        .to_owned();

    let exec = dc(&[
        "exec",
        "sh",
        "-c",
        "echo $CAIRN_CENV $CAIRN_RENV; id -un; pwd; cat marker.txt /extra/f /tmp/post-create-runs; exit 7",
    ]);
    assert_eq!(exec.code, 7, "{}", show("devcontainer exec", &exec));
    assert_eq!(
        exec.stdout.lines().collect::<Vec<_>>(),
        [
            "from-containerEnv from-remoteEnv",
            remote_user,
            "/workspaces/proj-dc",
            "workspace marker",
            "from the extra mount",
            "created",
        ],
        "{}",
        show("devcontainer exec", &exec)
    );

    // up again: the same container, the postCreateCommand not run a second time
    let up2 = dc(&["up"]);
    assert_eq!(up2.code, 0, "{}", show("devcontainer up (again)", &up2));
    assert_eq!(up_result(&up2)["containerId"], id.as_str());
    let runs = dc(&["exec", "cat", "/tmp/post-create-runs"]);
    assert_eq!(runs.code, 0, "{}", show("devcontainer exec", &runs));
    assert_eq!(runs.stdout, "created\n");

    // removal by label, as the CLI's documentation says
    let label = format!("label=devcontainer.local_folder={ws_arg}");
    let ids = env.engine_ok(["ps", "-aq", "--filter", &label]);
    let ids: Vec<&str> = ids.split_whitespace().collect();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(id.starts_with(ids[0]), "{} is not {id}", ids[0]);
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids);
    env.engine_ok(rm);
    assert_eq!(env.engine_ok(["ps", "-aq", "--filter", &label]), "");
}

#[test]
fn devcontainer_up_exec_and_remove_as_root() {
    assert!(
        cairn_tests::util::is_root(),
        "this test runs as root (scripts/test runs the suite as root)"
    );
    let env = Clients::root().expect("clients environment");
    devcontainer_lifecycle(&env, "root");
}

#[test]
fn devcontainer_up_exec_and_remove_as_a_normal_user() {
    let env = Clients::rootless().expect("rootless clients environment");
    devcontainer_lifecycle(&env, "dev");
}

/// `devcontainer up` of a workspace whose devcontainer.json names a
/// Containerfile: the CLI calls the engine's `build` (and, for a non-root
/// remote user, builds its own uid-updating image on top), then runs it.
fn devcontainer_build(env: &Clients, remote_user: &str) {
    let cli = clients::devcontainer_cli();
    let dir = env.cairn().scratch().join("work");
    let ws = dir.join("proj-build");
    fs::create_dir_all(ws.join(".devcontainer")).unwrap();
    fs::write(
        ws.join(".devcontainer/Containerfile"),
        format!(
            "FROM {IMAGE}\nARG NOTE=default\nRUN echo \"built by the engine: $NOTE\" > /built\nENV FROM_BUILD=yes\n"
        ),
    )
    .unwrap();
    let config = serde_json::json!({
        "build": {"dockerfile": "Containerfile", "args": {"NOTE": "from devcontainer.json"}},
        "remoteUser": remote_user,
    });
    fs::write(
        ws.join(".devcontainer/devcontainer.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    env.own(&dir).unwrap();
    let ws_arg = ws.display().to_string();
    let dc = |args: &[&str]| -> Run {
        let mut all = vec![
            args[0],
            "--docker-path",
            "cairn",
            "--workspace-folder",
            &ws_arg,
        ];
        all.extend_from_slice(&args[1..]);
        env.run(STEP, &cli, &all)
    };
    let up = dc(&["up"]);
    assert_eq!(up.code, 0, "{}", show("devcontainer up", &up));
    assert_eq!(
        up_result(&up)["outcome"],
        "success",
        "{}",
        show("devcontainer up", &up)
    );
    let exec = dc(&["exec", "sh", "-c", "cat /built; echo $FROM_BUILD; id -un"]);
    assert_eq!(exec.code, 0, "{}", show("devcontainer exec", &exec));
    assert_eq!(
        exec.stdout.lines().collect::<Vec<_>>(),
        [
            "built by the engine: from devcontainer.json",
            "yes",
            remote_user
        ],
        "{}",
        show("devcontainer exec", &exec)
    );
    let label = format!("label=devcontainer.local_folder={ws_arg}");
    let ids = env.engine_ok(["ps", "-aq", "--filter", &label]);
    let mut rm = vec!["rm", "-f"];
    rm.extend(ids.split_whitespace());
    env.engine_ok(rm);
}

#[test]
fn devcontainer_builds_its_dockerfile_as_root() {
    assert!(
        cairn_tests::util::is_root(),
        "this test runs as root (scripts/test runs the suite as root)"
    );
    let env = Clients::root().expect("clients environment");
    devcontainer_build(&env, "root");
}

#[test]
fn devcontainer_builds_its_dockerfile_as_a_normal_user() {
    let env = Clients::rootless().expect("rootless clients environment");
    devcontainer_build(&env, "dev");
}

#[test]
fn toolbox_creates_runs_lists_and_removes_as_a_normal_user() {
    clients::require("toolbox");
    let mut env = Clients::rootless().expect("rootless clients environment");
    env.start_system_bus().expect("a private system bus");
    let user = env.cairn().user().expect("rootless").name.clone();

    let create = env.run(STEP, "toolbox", ["create", "--image", IMAGE, "tbx"]);
    assert_eq!(create.code, 0, "{}", show("toolbox create", &create));
    assert!(
        create.stdout.contains("Created container: tbx"),
        "{}",
        show("toolbox create", &create)
    );

    let run = env.run(STEP, "toolbox", ["run", "-c", "tbx", "id", "-un"]);
    assert_eq!(run.code, 0, "{}", show("toolbox run", &run));
    assert_eq!(run.stdout.trim(), user, "{}", show("toolbox run", &run));
    let fails = env.run(STEP, "toolbox", ["run", "-c", "tbx", "sh", "-c", "exit 3"]);
    assert_eq!(fails.code, 3, "{}", show("toolbox run (exit 3)", &fails));

    let list = env.run(STEP, "toolbox", ["list"]);
    assert_eq!(list.code, 0, "{}", show("toolbox list", &list));
    assert!(
        list.stdout
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("tbx") && l.contains(IMAGE)),
        "{}",
        show("toolbox list", &list)
    );

    let rm = env.run(STEP, "toolbox", ["rm", "-f", "tbx"]);
    assert_eq!(rm.code, 0, "{}", show("toolbox rm", &rm));
    assert!(!container_names(&env).contains(&"tbx".to_owned()));
}

/// distrobox (as podman) and toolbox create rootless containers with `--userns keep-id
/// --user root:root` and then `exec --user CALLER` into them: the container's process runs as
/// a subordinate id the caller cannot read /proc of before joining its user namespace. Before
/// the fix, exec failed with "open /proc/PID/environ: Permission denied".
#[test]
fn exec_into_a_rootless_keep_id_container_running_as_root() {
    let env = Clients::rootless().expect("rootless clients environment");
    let user = env.cairn().user().expect("rootless").name.clone();
    env.engine_ok([
        "run",
        "-d",
        "--name",
        "kid",
        "--userns",
        "keep-id",
        "--user",
        "root:root",
        "-e",
        "FROM_RUN=1",
        IMAGE,
        "sleep",
        "600",
    ]);
    assert_eq!(
        env.engine_ok(["exec", "kid", "sh", "-c", "id -un; echo $FROM_RUN"]),
        "root\n1\n"
    );
    assert_eq!(
        env.engine_ok(["exec", "--user", &user, "kid", "id", "-un"]),
        format!("{user}\n")
    );
}
