#!/usr/bin/env python3
"""Rootless: cairn vs podman as the same non-root user, in one run.

1. `run --rm IMG true` latency: cairn (re-enters its user namespace via
   newuidmap/newgidmap, overlay with userxattr) against rootless podman
   (crun, overlay driver, `--network host` as cairn's default), on the same
   one-layer Debian image imported into both; medians of --runs runs,
   alternating the tools.
2. pull + unpack of the four-layer bench image from a local registry
   (127.0.0.1): `cairn pull` (decodes and builds the image root) against
   `podman pull` (applies every layer), fresh storage each run, page cache
   dropped before each timed run.

The user is $CAIRN_TEST_USER (default cairntest, made by
tests/support/test-user.sh). Release builds.

Targets (issue 6, as for root): run <= 0.2x podman.

Run as root: benches/rootless.py [--runs 20] [--pull-runs 3] [--out benches/results/rootless.md]
"""

import argparse
import os
import pwd
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pull import Registry, drop_caches, sh  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


class User:
    def __init__(self, name):
        pw = pwd.getpwnam(name)
        self.name, self.uid, self.gid = name, pw.pw_uid, pw.pw_gid

    def cmd(self, env, argv):
        envs = [f"{k}={v}" for k, v in env.items()]
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups",
                "env", "-i", "PATH=/usr/bin:/bin", *envs, *argv]

    def own(self, path):
        subprocess.run(["chown", "-R", f"{self.uid}:{self.gid}", str(path)], check=True)


def podman_env(d):
    """An isolated rootless podman under `d` (containers.conf as this host needs)."""
    for sub in ("run", "tmp"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "containers.conf").write_text(
        "[containers]\ndefault_ulimits = []\n[engine]\ncgroup_manager = \"cgroupfs\"\n"
        f"events_logger = \"file\"\nevents_logfile_path = \"{d}/events.log\"\nruntime = \"crun\"\n")
    (d / "storage.conf").write_text(
        f"[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/storage\"\nrunroot = \"{d}/run\"\n")
    return {"HOME": str(d), "XDG_RUNTIME_DIR": str(d / "run"),
            "CONTAINERS_CONF": str(d / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(d / "storage.conf"), "TMPDIR": str(d / "tmp")}


def cairn_env(d):
    (d / "home").mkdir(parents=True, exist_ok=True)
    (d / "run").mkdir(parents=True, exist_ok=True)
    return {"HOME": str(d / "home"), "XDG_RUNTIME_DIR": str(d / "run"), "CAIRN_ROOT": str(d / "store")}


def run_ok(argv):
    p = subprocess.run(argv, text=True, capture_output=True)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(argv)}\n{p.stderr}")
    return p


def wall(argv):
    t = time.perf_counter()
    run_ok(argv)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--pull-runs", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "benches/results/rootless.md"))
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (it switches to the test user and drops the page cache)")
    subprocess.run([str(REPO / "tests/support/test-user.sh")], check=True)
    user = User(os.environ.get("CAIRN_TEST_USER", "cairntest"))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "cairn-cli", "-p", "cairn-runtime"],
                       cwd=REPO, check=True)
    cairn = str(REPO / "target/release/cairn")
    layout = sh(str(REPO / "tests/support/build-images.sh"), "--bench").stdout.strip().splitlines()[-1]
    work = Path(tempfile.mkdtemp(prefix="cairn-rl-", dir="/tmp"))
    os.chmod(work, 0o755)
    reg = Registry(work)
    results = {}
    try:
        # 1. run latency on the one-layer image.
        image = "debian-min"
        cdir, pdir = work / "cairn", work / "podman"
        cenv, penv = cairn_env(cdir), podman_env(pdir)
        user.own(cdir)
        user.own(pdir)
        ref = f"oci:{layout}:{image}"
        run_ok(user.cmd(cenv, [cairn, "pull", "-q", ref]))
        run_ok(user.cmd(penv, ["podman", "pull", "-q", ref]))
        name = "localhost" + layout + ":latest"
        cairn_run = user.cmd(cenv, [cairn, "run", "--rm", name, "true"])
        podman_run = user.cmd(penv, ["podman", "run", "--rm", "--network", "host", name, "true"])
        for cmd in (cairn_run, podman_run):
            for _ in range(3):
                wall(cmd)
        for i in range(args.runs):
            for tool, cmd in ((("cairn", cairn_run), ("podman", podman_run))[:: 1 if i % 2 else -1]):
                results.setdefault(("run", tool), []).append(wall(cmd))
        # 2. pull + unpack of the four-layer image from a registry.
        big = "bench-four"
        sh("skopeo", "copy", "--quiet", "--insecure-policy", "--dest-tls-verify=false",
           f"oci:{layout}:{big}", f"docker://{reg.host}/{big}:latest")
        bref = f"{reg.host}/{big}:latest"
        for i in range(args.pull_runs):
            for tool in (("cairn", "podman") if i % 2 == 0 else ("podman", "cairn")):
                d = work / f"pull-{tool}-{i}"
                d.mkdir()
                env = cairn_env(d) if tool == "cairn" else podman_env(d)
                user.own(d)
                argv = ([cairn, "pull", "-q", "--tls-verify=false", bref] if tool == "cairn"
                        else ["podman", "pull", "-q", "--tls-verify=false", bref])
                drop_caches()
                results.setdefault(("pull", tool), []).append(wall(user.cmd(env, argv)))
                if tool == "podman":
                    subprocess.run(user.cmd(env, ["podman", "system", "reset", "-f"]), capture_output=True)
                else:
                    subprocess.run(user.cmd(env, [cairn, "system", "prune", "-a", "-f"]), capture_output=True)
                shutil.rmtree(d, ignore_errors=True)
        subprocess.run(user.cmd(penv, ["podman", "system", "reset", "-f"]), capture_output=True)
    finally:
        reg.stop()
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    lines = ["# Rootless benchmark\n",
             f"Command: `benches/rootless.py --runs {args.runs} --pull-runs {args.pull_runs}`  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
             f"user `{user.name}` (uid {user.uid}, two subordinate ranges) for both tools; "
             f"{sh(cairn, '--version').stdout.strip()}; {sh('podman', '--version').stdout.strip()} "
             "(crun, overlay, cgroupfs).\n",
             "| measurement | tool | median s | min s | max s | runs | cairn/podman |",
             "|---|---|---|---|---|---|---|"]
    for what, label in (("run", "`run --rm debian-min true`"),
                        ("pull", "pull + unpack bench-four (4 layers) from 127.0.0.1")):
        for tool in ("cairn", "podman"):
            v = results[(what, tool)]
            ratio = f"{med[(what, 'cairn')] / med[(what, 'podman')]:.2f}x" if tool == "cairn" else ""
            lines.append(f"| {label} | {tool} | {med[(what, tool)]:.3f} | {min(v):.3f} | {max(v):.3f} | "
                         f"{len(v)} | {ratio} |")
    lines.append("")
    lines.append("Target (issue 6): rootless `run` <= 0.2x podman's: "
                 + ("met" if med[("run", "cairn")] <= 0.2 * med[("run", "podman")] else "NOT met") + ".")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
