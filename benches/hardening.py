#!/usr/bin/env python3
"""What isolation costs: `run --rm` and `exec` before and after issue 17, and podman's, in one run.

Issue 17 added to every container start and exec: helpers re-executed from a
sealed memfd copy (cairn-mount and cairn-pivot at start, cairn-enter at
exec), non-dumpable helpers, descriptors closed before the fork, a nodev
root, and the default seccomp profile (compiled at create, installed before
the command's exec). This benchmark builds the tree before those changes
(`--before`, a git revision, into its own worktree and target directory
under /var/tmp) and the current tree, both release, and times on the same
one-layer Debian image (debian-min, imported into each store):

  run   `cairn run --rm IMG true`  vs `podman run --rm --network host IMG true`
  exec  `cairn exec CTR true`      vs `podman exec CTR true`, CTR running `sleep`

The three tools alternate run by run (rotating order) after 3 warm-up runs
each; warm caches. Target (issue 17): the hardening costs at most 2 ms median
on each (after - before). Stores and podman's storage are in a temp dir
under /tmp (the root filesystem, ext4).

Run as root: benches/hardening.py [--runs 40] [--before e9dbf5a] [--out benches/results/hardening.md]
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


def build(tree, target):
    subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "cairn-cli", "-p", "cairn-runtime"],
                   cwd=tree, check=True, env={**os.environ, "CARGO_TARGET_DIR": str(target)})
    return str(target / "release/cairn")


def before_binary(rev, keep):
    """Release build of `rev` in a worktree (reused across runs when kept)."""
    commit = lifecycle.run_ok(["git", "-C", str(REPO), "rev-parse", "--short", rev]).strip()
    base = Path(keep) / f"cairn-before-{commit}"
    tree, target = base / "tree", base / "target"
    if not tree.exists():
        base.mkdir(parents=True, exist_ok=True)
        lifecycle.run_ok(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit])
    return build(tree, target), commit


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--before", default="e9dbf5a", help="git revision before the hardening")
    ap.add_argument("--keep", default="/var/tmp", help="where the before-build's worktree and target live")
    ap.add_argument("--before-bin", help="a release `cairn` already built from --before (its helpers beside it)")
    ap.add_argument("--out", default=str(REPO / "benches/results/hardening.md"))
    args = ap.parse_args()
    if args.runs < 20:
        sys.exit("--runs must be at least 20")
    if os.geteuid() != 0:
        sys.exit("run as root (podman and cairn as root)")
    after = build(REPO, Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target")))
    if args.before_bin:
        before = args.before_bin
        before_commit = lifecycle.run_ok(["git", "-C", str(REPO), "rev-parse", "--short", args.before]).strip()
    else:
        before, before_commit = before_binary(args.before, args.keep)
    layout = lifecycle.run_ok([str(REPO / "tests/support/build-images.sh")]).strip().splitlines()[-1]
    lifecycle.ensure_hugetlb_v1()
    load_start = os.getloadavg()[0]

    work = Path(tempfile.mkdtemp(prefix="cairn-hd-", dir="/tmp"))
    tools = {
        "cairn-before": lifecycle.Cairn(before, work / "b"),
        "cairn-after": lifecycle.Cairn(after, work / "a"),
        "podman": lifecycle.Podman(work / "p"),
    }
    names = list(tools)
    net = {n: (["--network", "host"] if n == "podman" else []) for n in names}
    results = {}
    try:
        for tool in tools.values():
            lifecycle.import_image(tool, layout, "debian-min", IMAGE)
        for name, tool in tools.items():
            lifecycle.run_ok(tool.argv("run", "-d", *net[name], "--name", "sleeper", IMAGE, "sleep", "1000000"),
                             tool.env)
        # The after-build really is hardened (a benchmark of the wrong binary proves nothing).
        status = lifecycle.run_ok(tools["cairn-after"].argv("exec", "sleeper", "grep", "Seccomp:", "/proc/self/status"),
                                  tools["cairn-after"].env)
        measurements = {
            "run": lambda n: ["run", "--rm", *net[n], IMAGE, "true"],
            "exec": lambda n: ["exec", "sleeper", "true"],
        }
        for what, argv in measurements.items():
            for name, tool in tools.items():
                for _ in range(3):
                    lifecycle.wall(tool.argv(*argv(name)), tool.env)
            for i in range(args.runs):
                order = names[i % 3:] + names[:i % 3]
                for name in order:
                    tool = tools[name]
                    seconds, _ = lifecycle.wall(tool.argv(*argv(name)), tool.env)
                    results.setdefault((what, name), []).append(seconds)
    finally:
        for tool in tools.values():
            subprocess.run(tool.argv("rm", "-a", "-f", "-t", "0"), env=tool.env, capture_output=True)
        lifecycle.unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) * 1e3 for k, v in results.items()}
    load = os.getloadavg()
    commit = lifecycle.run_ok(["git", "-C", str(REPO), "describe", "--always", "--dirty"]).strip()
    lines = [
        "# Hardening cost benchmark\n",
        f"Command: `benches/hardening.py --runs {args.runs} --before {args.before}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores "
        f"(1-minute load average {load_start:.1f} at the start, {load[0]:.1f} at the end), root; "
        f"cairn-before = {before_commit}, cairn-after = {commit} (release builds; in the after-build's "
        f"exec: `{status.strip()}`); {lifecycle.run_ok(['podman', '--version']).strip()} with crun, "
        "`--network host`. Stores in /tmp (ext4). Warm caches, tools rotating, 3 warm-up runs each.\n",
        "| measurement | tool | median ms | min ms | p90 ms | runs | vs podman |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = {"run": "`run --rm debian-min true`", "exec": "`exec CTR true` (CTR runs `sleep`)"}
    for what, label in labels.items():
        for name in names:
            v = sorted(results[(what, name)])
            p90 = v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]
            ratio = "" if name == "podman" else f"{med[(what, name)] / med[(what, 'podman')]:.3f}x"
            lines.append(f"| {label} | {name} | {med[(what, name)]:.1f} | {v[0] * 1e3:.1f} | "
                         f"{p90 * 1e3:.1f} | {len(v)} | {ratio} |")
    lines += ["", "Target (issue 17): the hardening costs at most 2 ms median on each."]
    for what in labels:
        delta = med[(what, "cairn-after")] - med[(what, "cairn-before")]
        lines.append(f"- {what}: after - before = {delta:+.1f} ms, {'met' if delta <= 2 else 'NOT met'}")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
