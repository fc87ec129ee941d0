#!/usr/bin/env python3
"""Real clients on cairn vs podman (crun), in one run.

Medians of --runs runs (at least 10) of:

  devcontainer-up  `devcontainer up --docker-path ENGINE --workspace-folder W` on a fresh
                   workspace W each run (an image-based devcontainer.json naming the fixture
                   image `clients`, already in the store; the container is removed by its
                   devcontainer.local_folder label after each run, untimed). As root.
  distrobox-enter  `distrobox-enter NAME -- true` on a distrobox made once per engine by
                   `distrobox-create --yes --no-entry -i IMAGE -n NAME` and entered once
                   (its init) before timing. As the rootless test user (distrobox refuses
                   root), DBX_CONTAINER_MANAGER=podman, the engine being `podman` on PATH.

The engines alternate run by run, after 2 untimed warm-up runs each. podman is isolated (own
storage, run root and containers.conf as this host needs; see DESIGN.md "This machine's
quirks"); rootless podman gets the same containers.conf in the user's temp HOME. Release builds
of cairn and its helpers, from $CARGO_TARGET_DIR (default target/). The clients come from
tests/support/install-deps.sh, the user from tests/support/test-user.sh, the image from
tests/support/build-images.sh.

Targets (issue 19): <= 0.3x podman for both.

Run as root: benches/clients.py [--runs 10] [--out benches/results/clients.md]
                                [--only podman]   (measure podman alone: checks this script)
"""

import argparse
import json
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGE = "localhost/clients:latest"
DEVCONTAINER = Path(os.environ.get("CAIRN_DEVCONTAINER_CLI",
                                   "/opt/devcontainers/node_modules/.bin/devcontainer"))
USER = os.environ.get("CAIRN_TEST_USER", "cairntest")
CONTAINERS_CONF = ("[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n"
                   "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
                   "runtime = \"crun\"\n")


def run_ok(argv, env=None, cwd=None):
    p = subprocess.run(argv, text=True, capture_output=True, env=env, cwd=cwd)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(map(str, argv))}\n{p.stdout[-2000:]}\n{p.stderr[-4000:]}")
    return p.stdout


def wall(argv, env=None, cwd=None):
    t = time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
                       stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(map(str, argv))}\n{p.stdout.decode()[-2000:]}\n"
                 f"{p.stderr.decode()[-4000:]}")
    return elapsed


def ensure_hugetlb_v1():
    """crun 1.8 refuses this hybrid cgroup host while hugetlb is on cgroup2."""
    if not Path("/sys/fs/cgroup/unified").exists():
        return
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ", 1)[1].split() if " - " in line else []
        if fields and fields[0] == "cgroup" and "hugetlb" in fields[2].split(","):
            return
    os.makedirs("/sys/fs/cgroup/hugetlb", exist_ok=True)
    run_ok(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", "/sys/fs/cgroup/hugetlb"])


def unmount_under(path):
    """Unmounts what is still mounted under `path`, deepest first (podman's overlay driver)."""
    prefix = str(path) + "/"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for m in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False)


class Engine:
    """One engine (cairn or podman) for one user: `bin/` first on PATH holds `podman` and
    `cairn`, both the engine; `env` is the whole environment the clients run with."""

    def __init__(self, name, target, d, user=None):
        self.name, self.d, self.user = name, d, user
        self.bin = d / "bin"
        for sub in ("bin", "home", "run", "tmp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        for link in ("podman", "cairn"):
            (self.bin / link).symlink_to(target)
        self.env = {"PATH": f"{self.bin}:{os.environ['PATH']}", "HOME": str(d / "home"),
                    "SHELL": "/bin/bash", "XDG_RUNTIME_DIR": str(d / "run"), "TMPDIR": str(d / "tmp")}
        (d / "registries.conf").write_text("")
        self.env["CONTAINERS_REGISTRIES_CONF"] = str(d / "registries.conf")
        if name == "cairn":
            self.env["CAIRN_ROOT"] = str(d / "store")
        elif user is None:
            (d / "storage").mkdir(exist_ok=True)
            (d / "containers.conf").write_text(CONTAINERS_CONF + f"image_copy_tmp_dir = \"{d}/tmp\"\n")
            (d / "storage.conf").write_text(
                f"[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/storage\"\nrunroot = \"{d}/run\"\n")
            self.env["CONTAINERS_CONF"] = str(d / "containers.conf")
            self.env["CONTAINERS_STORAGE_CONF"] = str(d / "storage.conf")
        else:
            conf = d / "home/.config/containers"
            conf.mkdir(parents=True)
            (conf / "containers.conf").write_text(CONTAINERS_CONF)
        if user is not None:
            self.env.update({"USER": user.pw_name, "LOGNAME": user.pw_name})
            (d / "run").chmod(0o700)
            run_ok(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(d)])
        else:
            self.env.update({"USER": "root", "LOGNAME": "root"})

    def argv(self, *args):
        if self.user is None:
            return [str(a) for a in args]
        return ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
                "--init-groups", "--", *map(str, args)]

    def engine(self, *args):
        return run_ok(self.argv("cairn", *args), self.env, cwd=self.d / "home")

    def import_image(self, layout):
        image_id = self.engine("pull", "-q", f"oci:{layout}:clients").strip()
        self.engine("tag", image_id, IMAGE)

    def cleanup(self):
        ids = subprocess.run(self.argv("cairn", "ps", "-aq", "--no-trunc"), env=self.env,
                             capture_output=True, text=True).stdout.split()
        for i in ids:
            pid = subprocess.run(self.argv("cairn", "inspect", "--format", "{{.State.Pid}}", i),
                                 env=self.env, capture_output=True, text=True).stdout.strip()
            if pid not in ("", "0"):
                subprocess.run(["kill", "-9", pid], check=False)
        subprocess.run(self.argv("cairn", "rm", "-a", "-f", "-t", "0"), env=self.env, capture_output=True)
        pause = self.d / "run/libpod/tmp/pause.pid"
        if pause.exists():
            subprocess.run(["kill", "-9", pause.read_text().strip()], check=False)


def devcontainer_up(engine, n):
    """A fresh workspace; returns (its path, the argv of `devcontainer up`)."""
    ws = engine.d / "ws" / f"proj{n}"
    (ws / ".devcontainer").mkdir(parents=True)
    (ws / ".devcontainer/devcontainer.json").write_text(json.dumps(
        {"image": IMAGE, "containerEnv": {"BENCH": "1"}, "postCreateCommand": "true"}))
    return ws, engine.argv(DEVCONTAINER, "up", "--docker-path", engine.bin / "cairn", "--workspace-folder", ws)


def remove_devcontainer(engine, ws):
    ids = engine.engine("ps", "-aq", "--filter", f"label=devcontainer.local_folder={ws}").split()
    if ids:
        engine.engine("rm", "-f", "-t", "0", *ids)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--out", default=str(REPO / "benches/results/clients.md"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--only", choices=["cairn", "podman"], help="measure one engine (no ratio, no file)")
    args = ap.parse_args()
    if args.runs < 10:
        sys.exit("--runs must be at least 10")
    if os.geteuid() != 0:
        sys.exit("run as root (podman and cairn as root and as the test user, hugetlb cgroup mount)")
    for tool in (DEVCONTAINER, shutil.which("distrobox-enter")):
        if not tool or not Path(tool).exists():
            sys.exit("a client is missing: run tests/support/install-deps.sh")
    user = pwd.getpwnam(USER)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not args.no_build and args.only != "podman":
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "cairn-cli", "-p", "cairn-runtime"],
                       cwd=REPO, check=True)
    binary = target / "release/cairn"
    layout = run_ok([str(REPO / "tests/support/build-images.sh")]).strip().splitlines()[-1]
    ensure_hugetlb_v1()
    load_start = os.getloadavg()[0]
    names = [args.only] if args.only else ["cairn", "podman"]
    targets = {"cairn": binary, "podman": Path("/usr/bin/podman")}

    # short paths: podman's run root must stay short (sun_path)
    work = Path(tempfile.mkdtemp(prefix="cairn-cl-", dir="/tmp"))
    work.chmod(0o755)
    root = {n: Engine(n, targets[n], work / f"{n}-root") for n in names}
    rootless = {n: Engine(n, targets[n], work / f"{n}-user", user) for n in names}
    results = {}
    try:
        for e in [*root.values(), *rootless.values()]:
            e.import_image(layout)
        # devcontainer up, fresh workspace each run
        count = 0
        for i in range(args.runs + 2):
            order = names if i % 2 == 0 else names[::-1]
            for n in order:
                count += 1
                ws, argv = devcontainer_up(root[n], count)
                seconds = wall(argv, root[n].env, cwd=root[n].d / "home")
                remove_devcontainer(root[n], ws)
                if i >= 2:
                    results.setdefault(("devcontainer-up", n), []).append(seconds)
        # distrobox-enter NAME -- true
        for n in names:
            e = rootless[n]
            env = dict(e.env, DBX_CONTAINER_MANAGER="podman")
            run_ok(e.argv("distrobox-create", "--yes", "--no-entry", "-i", IMAGE, "-n", "bench"), env,
                   cwd=e.d / "home")
            run_ok(e.argv("distrobox-enter", "bench", "--", "true"), env, cwd=e.d / "home")
        for i in range(args.runs + 2):
            order = names if i % 2 == 0 else names[::-1]
            for n in order:
                e = rootless[n]
                env = dict(e.env, DBX_CONTAINER_MANAGER="podman")
                seconds = wall(e.argv("distrobox-enter", "bench", "--", "true"), env, cwd=e.d / "home")
                if i >= 2:
                    results.setdefault(("distrobox-enter", n), []).append(seconds)
    finally:
        for e in [*root.values(), *rootless.values()]:
            e.cleanup()
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    load = os.getloadavg()
    commit = run_ok(["git", "-C", str(REPO), "describe", "--always", "--dirty"]).strip()
    versions = []
    if "cairn" in names:
        versions.append("cairn " + run_ok([str(binary), "version", "--format",
                                           "{{.Client.CairnVersion}}"]).strip()
                        + f" at {commit} (release)")
    if "podman" in names:
        versions.append(run_ok(["podman", "--version"]).strip() + " with "
                        + run_ok(["crun", "--version"]).splitlines()[0])
    client_versions = (f"@devcontainers/cli {run_ok([str(DEVCONTAINER), '--version']).strip()}, "
                       f"distrobox {run_ok(['distrobox', 'version']).strip().split(':')[-1].strip()}")
    lines = [
        "# Real clients benchmark\n",
        f"Command: `benches/clients.py --runs {args.runs}`"
        + (f" (CARGO_TARGET_DIR={os.environ['CARGO_TARGET_DIR']})" if "CARGO_TARGET_DIR" in os.environ else "")
        + "  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores "
        f"(1-minute load average {load_start:.1f} at the start, {load[0]:.1f} at the end: other "
        f"work shares this VM); {'; '.join(versions)}; {client_versions}. Warm caches, engines "
        "alternating, 2 warm-up runs each.\n",
        "| measurement | engine | median ms | min ms | p90 ms | max ms | runs | cairn/podman |",
        "|---|---|---|---|---|---|---|---|",
    ]
    labels = {
        "devcontainer-up": "`devcontainer up` of a fresh workspace (root)",
        "distrobox-enter": "`distrobox-enter NAME -- true` (rootless)",
    }
    for what, label in labels.items():
        for n in names:
            v = sorted(results[(what, n)])
            p90 = v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]
            ratio = ""
            if n == "cairn" and len(names) == 2:
                ratio = f"{med[(what, 'cairn')] / med[(what, 'podman')]:.3f}x"
            lines.append(f"| {label} | {n} | {med[(what, n)] * 1e3:.1f} | {v[0] * 1e3:.1f} | "
                         f"{p90 * 1e3:.1f} | {v[-1] * 1e3:.1f} | {len(v)} | {ratio} |")
    if len(names) == 2:
        lines += ["", "Targets (issue 19):"]
        for what, label in labels.items():
            r = med[(what, "cairn")] / med[(what, "podman")]
            lines.append(f"- {label} <= 0.3x podman: {r:.3f}x, {'met' if r <= 0.3 else 'NOT met'}")
    text = "\n".join(lines) + "\n"
    if not args.only:
        Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
