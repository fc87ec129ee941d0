#!/usr/bin/env python3
"""What cgroups cost: `run --rm IMG true` with and without a cgroup and limits, and podman's, in one run.

Issue 23 puts every container in its own cgroup (created with its limits by
cairn-monitor before the command runs, removed when it ends). This benchmark
times, on the one-layer Debian image (debian-min, imported into each store),
with the current release build:

  cairn, no cgroup        `cairn run --rm --cgroups disabled IMG true`
  cairn, default          `cairn run --rm IMG true` (podman's default pids limit, 2048; device rules)
  cairn, limits           `cairn run --rm --memory 256m --cpus 1 --pids-limit 100 IMG true`
  podman, default         `podman run --rm IMG true`
  podman, limits          the same limits
  cairn v2, no cgroup /   the first two, each cairn started by `unshare -m` and a
  cairn v2, default       shell that mounts the unified (v2) hierarchy on
                          /sys/fs/cgroup first (this host is v1; both v2 cases
                          pay that wrapper, so compare them with each other)

On v1 the container's first process is moved into its cgroup (a write to
cgroup.procs), and the first migration after a quiet spell waits for an RCU
grace period (the kernel's cgroup_threadgroup_rwsem); on v2 it is born in it
(clone3 with CLONE_INTO_CGROUP) and nothing waits.

Both run with `--network host` (the bridge both default to as root costs
~100 ms of netavark, which is not what is measured here). The
five alternate run by run (rotating order) after 3 warm-up runs each; warm
caches. Targets (issue 23): a cgroup with limits adds at most 3 ms median
(cairn limits - cairn no cgroup, and default - no cgroup), and `run` stays at
most 0.2x podman's with the same limits. Stores and podman's storage are in a
temp dir under /tmp (the root filesystem, ext4); cgroups are this host's v1
controllers.

Run as root: benches/cgroups.py [--runs 40] [--out benches/results/cgroups.md] [--no-build]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lifecycle  # noqa: E402  (Podman, Cairn, import_image, wall, run_ok, ...)

REPO = lifecycle.REPO
IMAGE = lifecycle.IMAGE
LIMITS = ["--memory", "256m", "--cpus", "1", "--pids-limit", "100"]


class V2:
    """cairn in a private mount namespace with cgroup v2 on /sys/fs/cgroup."""

    def __init__(self, cairn):
        self.cairn, self.env = cairn, cairn.env

    def argv(self, *args):
        return ["unshare", "-m", "--propagation", "private", "sh", "-c",
                'mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec "$0" "$@"', *self.cairn.argv(*args)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--no-build", action="store_true", help="use the release build already in target/")
    ap.add_argument("--out", default=str(REPO / "benches/results/cgroups.md"))
    args = ap.parse_args()
    if args.runs < 20:
        sys.exit("--runs must be at least 20")
    if os.geteuid() != 0:
        sys.exit("run as root (podman and cairn as root)")
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "cairn-cli", "-p", "cairn-runtime"],
                       cwd=REPO, check=True)
    binary = str(target / "release/cairn")
    layout = lifecycle.run_ok([str(REPO / "tests/support/build-images.sh")]).strip().splitlines()[-1]
    lifecycle.ensure_hugetlb_v1()
    load_start = os.getloadavg()[0]

    work = Path(tempfile.mkdtemp(prefix="cairn-cg-", dir="/tmp"))
    cairn = lifecycle.Cairn(binary, work / "c")
    podman = lifecycle.Podman(work / "p")
    cases = {
        "cairn, no cgroup": (cairn, ["run", "--rm", "--network", "host", "--cgroups", "disabled", IMAGE, "true"]),
        "cairn, default": (cairn, ["run", "--rm", "--network", "host", IMAGE, "true"]),
        "cairn, limits": (cairn, ["run", "--rm", "--network", "host", *LIMITS, IMAGE, "true"]),
        "podman, default": (podman, ["run", "--rm", "--network", "host", IMAGE, "true"]),
        "podman, limits": (podman, ["run", "--rm", "--network", "host", *LIMITS, IMAGE, "true"]),
        "cairn v2, no cgroup": (V2(cairn), ["run", "--rm", "--network", "host", "--cgroups", "disabled", IMAGE, "true"]),
        "cairn v2, default": (V2(cairn), ["run", "--rm", "--network", "host", IMAGE, "true"]),
    }
    names = list(cases)
    results = {}
    try:
        for tool in (cairn, podman):
            lifecycle.import_image(tool, layout, "debian-min", IMAGE)
        # The limits really are applied (a benchmark of a no-op proves nothing).
        probe = lifecycle.run_ok(cairn.argv("run", "--rm", *LIMITS, IMAGE, "sh", "-c",
                                            "cat /proc/self/cgroup | grep -E ':(pids|memory):'"), cairn.env)
        for line in probe.split():
            if not line.split(":", 2)[2].startswith("/cairn/libpod-"):
                sys.exit(f"not in a container cgroup: {probe}")
        for name, (tool, argv) in cases.items():
            for _ in range(3):
                lifecycle.wall(tool.argv(*argv), tool.env)
        for i in range(args.runs):
            k = i % len(names)
            for name in names[k:] + names[:k]:
                tool, argv = cases[name]
                seconds, _ = lifecycle.wall(tool.argv(*argv), tool.env)
                results.setdefault(name, []).append(seconds)
    finally:
        for tool in (cairn, podman):
            subprocess.run(tool.argv("rm", "-a", "-f", "-t", "0"), env=tool.env, capture_output=True)
        lifecycle.unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) * 1e3 for k, v in results.items()}
    load = os.getloadavg()
    commit = lifecycle.run_ok(["git", "-C", str(REPO), "describe", "--always", "--dirty"]).strip()
    lines = [
        "# Cgroup cost benchmark\n",
        f"Command: `benches/cgroups.py --runs {args.runs}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores "
        f"(1-minute load average {load_start:.1f} at the start, {load[0]:.1f} at the end), root; "
        f"cairn {commit} (release build); {lifecycle.run_ok(['podman', '--version']).strip()} with crun "
        "and the cgroupfs manager; both `--network host`. cgroup v1 controllers (the host's); stores in /tmp (ext4). "
        "Warm caches, the five cases rotating, 3 warm-up runs each. Limits: `" + " ".join(LIMITS) + "`.\n",
        f"Probe (cairn with the limits, its own /proc/self/cgroup): `{' '.join(probe.split())}`\n",
        "| case | median ms | min ms | p90 ms | runs |",
        "|---|---|---|---|---|",
    ]
    for name in names:
        v = sorted(results[name])
        p90 = v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]
        lines.append(f"| {name} | {med[name]:.1f} | {v[0] * 1e3:.1f} | {p90 * 1e3:.1f} | {len(v)} |")
    d_v2 = med["cairn v2, default"] - med["cairn v2, no cgroup"]
    d_default = med["cairn, default"] - med["cairn, no cgroup"]
    d_limits = med["cairn, limits"] - med["cairn, no cgroup"]
    r_default = med["cairn, default"] / med["podman, default"]
    r_limits = med["cairn, limits"] / med["podman, limits"]
    ok = lambda b: "met" if b else "NOT met"  # noqa: E731
    lines += [
        "",
        "Targets (issue 23): cgroups add at most 3 ms median; `run` at most 0.2x podman's.",
        f"- v1, default cgroup (pids limit, device rules) - no cgroup: {d_default:+.1f} ms, {ok(d_default <= 3)}",
        f"- v2, default cgroup (device program) - no cgroup: {d_v2:+.1f} ms, {ok(d_v2 <= 3)}",
        f"- v1, limits - no cgroup: {d_limits:+.1f} ms, {ok(d_limits <= 3)}",
        f"- cairn / podman, default: {r_default:.3f}x, {ok(r_default <= 0.2)}",
        f"- cairn / podman, same limits: {r_limits:.3f}x, {ok(r_limits <= 0.2)}",
    ]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
