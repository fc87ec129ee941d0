#!/usr/bin/env python3
"""Builds: cairn build vs buildah bud and podman build, the same Containerfile.

In one run, on the same filesystem, with the page cache dropped before every
timed build, the Containerfile below (three stages over the Debian test
image: one makes ~10k small files and ~150 MB, one COPYs a 50 MB context,
the last copies both in and counts them; no network) is built by each tool
with a per-step cache (`--layers` for buildah), three ways:

  cold     an empty store (the base image imported, untimed), nothing cached
  cached   the same build again: every step from the cache
  changed  one 1 MB context file rewritten, then built: the steps from the
           COPY of the context on run again

Reports medians, min/max, peak RSS, ratios against buildah of the same run
and the issue's targets (cold <= 0.5x buildah, cached <= 0.1x, one-file
change <= 0.3x). Writes Markdown (default benches/results/build.md).

Run as root: benches/build.py [--runs 3] [--fs ext4|here]
"""

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pull import FS_HELP, REPO, bench_fs, drop_caches, sh, timed  # noqa: E402
from unpack import rm  # noqa: E402
from images_out import Podman  # noqa: E402

BASE = "localhost/bench-base:latest"
CONTAINERFILE = f"""FROM {BASE} AS gen
RUN mkdir -p /gen && cd /gen && for d in $(seq 1 100); do mkdir d$d; \\
    for f in $(seq 1 100); do echo "$d $f" > d$d/f$f; done; done
RUN head -c 150000000 /dev/urandom > /gen/big.bin

FROM {BASE} AS assets
COPY ctx/ /assets/
RUN du -sk /assets > /assets.du

FROM {BASE}
COPY --from=gen /gen /opt/gen
COPY --from=assets /assets /opt/assets
COPY --from=assets /assets.du /opt/assets.du
RUN find /opt | wc -l > /opt/count
CMD ["cat", "/opt/count"]
"""


def make_context(work):
    ctx = work / "context"
    (ctx / "ctx").mkdir(parents=True)
    (ctx / "Containerfile").write_text(CONTAINERFILE)
    for i in range(50):
        (ctx / "ctx" / f"blob{i:02}.bin").write_bytes(os.urandom(1 << 20))
    return ctx


class Peer(Podman):
    """images_out.py's isolated podman (its own root, run root and containers.conf), and Debian's
    buildah on the same storage."""

    def tool(self, tool, *args):
        if tool == "podman":
            return self.cmd(*args)
        return ["buildah", "--root", str(self.root), "--runroot", self.runroot,
                "--storage-driver", "overlay", *args]


def build_cmd(tool, cairn, peer, ctx, tag):
    if tool == "cairn":
        return [cairn, "build", "-q", "--network", "none", "-t", tag, str(ctx)]
    if tool == "buildah":
        return peer.tool("buildah", "bud", "-q", "--layers", "--network", "none", "-t", tag, str(ctx))
    return peer.tool("podman", "build", "-q", "--layers", "--network", "none", "-t", tag, str(ctx))


def bench(args, cairn, work, layout, results, notes):
    ctx = make_context(work)
    tools = ["cairn", "buildah", "podman"]
    for run in range(args.runs):
        order = tools[run % len(tools):] + tools[: run % len(tools)]
        for tool in order:
            # A fresh store with the base image; the context as it started.
            (ctx / "ctx" / "blob00.bin").write_bytes(b"\0" * (1 << 20))
            env, peer, store = None, None, work / "cairn-store"
            if tool == "cairn":
                env = dict(os.environ, CAIRN_ROOT=str(store))
                sh(cairn, "pull", "-q", f"oci:{layout}:debian-min", env=env)
                sh(cairn, "tag", sh(cairn, "images", "-q", env=env).stdout.split()[0], BASE, env=env)
            else:
                peer = Peer(work, tool)
                env = peer.env
                sh(*peer.tool("podman", "pull", "-q", f"oci:{layout}:debian-min"), env=env)
                pid = sh(*peer.tool("podman", "images", "-q"), env=env).stdout.split()[0]
                sh(*peer.tool("podman", "tag", pid, BASE), env=env)
            try:
                cmd = build_cmd(tool, cairn, peer, ctx, "localhost/built:latest")
                for phase in ("cold", "cached", "changed"):
                    if phase == "changed":
                        (ctx / "ctx" / "blob00.bin").write_bytes(os.urandom(1 << 20))
                    drop_caches()
                    wall, rss = timed(cmd, env)
                    results.setdefault((phase, tool), []).append((wall, rss))
                if run == 0:
                    runner = [cairn] if tool == "cairn" else peer.tool("podman")
                    count = sh(*runner, "run", "--rm", "--network", "none", "localhost/built:latest",
                               env=env).stdout.strip()
                    notes.append(f"{tool}: the built image's /opt holds {count} entries")
            finally:
                if tool == "cairn":
                    rm(store)
                else:
                    peer.reset()
                    rm(peer.d)


def report(args, cairn, results, notes, fs_desc, load_start):
    med = lambda key: statistics.median(w for w, _ in results[key])
    lines = ["# Builds: cairn build vs buildah bud and podman build\n",
             f"Command: `benches/build.py {' '.join(sys.argv[1:])}`  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores; page cache "
             f"dropped before every timed build; {args.runs} runs each, tools rotating. Stores and the "
             f"context on {fs_desc}; no registry (the base image is imported before each cold build, "
             f"untimed). Load average (1, 5, 15 min) at the start {' '.join(f'{x:.1f}' for x in load_start)}, "
             f"at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}.\n",
             "Tools: " + "; ".join([sh(cairn, "--version").stdout.strip(),
                                    sh("buildah", "--version").stdout.strip(),
                                    sh("podman", "--version").stdout.strip()]) + "\n",
             "The Containerfile:\n", "```dockerfile", CONTAINERFILE.strip(), "```\n",
             "| build | tool | median s | min s | max s | peak RSS MiB | vs buildah |",
             "|---|---|---|---|---|---|---|"]
    for phase in ("cold", "cached", "changed"):
        for tool in ("cairn", "buildah", "podman"):
            key = (phase, tool)
            if key not in results:
                continue
            walls = [w for w, _ in results[key]]
            ratio = "" if tool == "buildah" else f"{med(key) / med((phase, 'buildah')):.2f}x"
            lines.append(f"| {phase} | {tool} | {med(key):.3f} | {min(walls):.3f} | {max(walls):.3f} | "
                         f"{max(r for _, r in results[key]):.1f} | {ratio} |")
    counts = {n.split(":")[0]: n.rsplit(" ", 2)[-2] for n in notes if "entries" in n}
    if len(set(counts.values())) > 1:
        sys.exit(f"the tools built different images: {counts}")
    lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    lines += ["", "Targets (issue 22):", "", "| target | measured | limit | met |", "|---|---|---|---|"]
    for phase, limit in (("cold", 0.5), ("cached", 0.1), ("changed", 0.3)):
        got = med((phase, "cairn")) / med((phase, "buildah"))
        lines.append(f"| {phase} build vs buildah | {got:.3f}x | {limit}x | {'yes' if got <= limit else 'no'} |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "benches/results/build.md"))
    ap.add_argument("--fs", default="ext4", choices=["ext4", "here"], help=FS_HELP)
    ap.add_argument("--layout", default="/var/cache/cairn-tests/oci",
                    help="the OCI layout with the debian-min test image (tests/support/build-images.sh)")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--cairn", help="the cairn binary to time (default: a release build of this tree)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the page cache is dropped before every timed run")
    if args.cairn:
        cairn = str(Path(args.cairn).resolve())
    else:
        if not args.no_build:
            subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "cairn-cli", "-p", "cairn-runtime"],
                           cwd=REPO, check=True)
        target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
        cairn = str(target / "release/cairn")
    load_start = os.getloadavg()
    results, notes = {}, []
    with contextlib.ExitStack() as fs:
        work, fs_desc = fs.enter_context(bench_fs(args.fs, "cairn-bbench-"))
        try:
            layout = str(work / "layout")
            sh("skopeo", "copy", "--quiet", "--insecure-policy", f"oci:{args.layout}:debian-min",
               f"oci:{layout}:debian-min")
            bench(args, cairn, work, layout, results, notes)
        finally:
            rm(work)
    text = report(args, cairn, results, notes, fs_desc, load_start)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as e:
        sys.exit(f"failed ({e.returncode}): {' '.join(map(str, e.cmd))}\n{e.stderr}")
