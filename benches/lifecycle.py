#!/usr/bin/env python3
"""Container lifecycle latency: cairn vs podman (crun), in one run.

On the same one-layer Debian image (debian-min from the fixture layout,
imported into both stores), medians of --runs runs of:

  run     `cairn run --rm IMG true`    vs `podman run --rm --network host IMG true`
  create  `cairn create IMG true`      vs `podman create --network host IMG true`
          (each container removed after its timed create, untimed)
  exec    `cairn exec CTR true`        vs `podman exec CTR true`, CTR running `sleep`

plus `create` on the four-layer bench image (bench-four, 470 MB unpacked) to
show create does not depend on the image's size. `--network host` because
cairn has no network stack and uses the host's by default.

The tools alternate run by run, after 3 untimed warm-up runs each. The page
cache is not dropped: these are latencies of warm binaries and stores for
both tools (DESIGN.md's drop-caches rule is about extraction benchmarks).
podman is isolated (own root, run root, tmp dir, containers.conf as this
host needs; see DESIGN.md "This machine's quirks"). Release builds of cairn
and its helpers, from $CARGO_TARGET_DIR (default target/).

Targets (issue 5): run <= 0.2x podman; exec <= 0.2x podman and < 10 ms
median; create < 20 ms median whatever the image size.

Run as root: benches/lifecycle.py [--runs 30] [--out benches/results/lifecycle.md]
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

REPO = Path(__file__).resolve().parent.parent
IMAGE = "localhost/debian-min:latest"
BIG = "localhost/bench-four:latest"


def run_ok(argv, env=None):
    p = subprocess.run(argv, text=True, capture_output=True, env=env)
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(argv)}\n{p.stderr}")
    return p.stdout


def wall(argv, env=None):
    t = time.perf_counter()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    elapsed = time.perf_counter() - t
    if p.returncode != 0:
        sys.exit(f"failed ({p.returncode}): {' '.join(argv)}\n{p.stderr.decode()}")
    return elapsed, p.stdout.decode().strip()


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
    """Unmounts what is still mounted under `path`, deepest first: podman's
    overlay driver keeps a private bind mount of its storage/overlay, which
    would make the temp dir impossible to remove."""
    prefix = str(path) + "/"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for m in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False)


class Podman:
    def __init__(self, d):
        self.d = d
        for sub in ("storage", "run", "tmp"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / "containers.conf").write_text(
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n"
            "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
            f"events_logfile_path = \"{d}/events.log\"\nruntime = \"crun\"\n"
            f"image_copy_tmp_dir = \"{d}/tmp\"\n")
        (d / "registries.conf").write_text("")
        self.env = {"PATH": os.environ["PATH"], "HOME": str(d), "TMPDIR": str(d / "tmp"),
                    "CONTAINERS_CONF": str(d / "containers.conf"),
                    "CONTAINERS_REGISTRIES_CONF": str(d / "registries.conf")}

    def argv(self, *args):
        return ["podman", "--root", str(self.d / "storage"), "--runroot", str(self.d / "run"),
                "--tmpdir", str(self.d / "tmp"), "--storage-driver", "overlay", *args]


class Cairn:
    def __init__(self, binary, d):
        self.binary = binary
        (d / "home").mkdir(parents=True, exist_ok=True)
        (d / "registries.conf").write_text("")
        self.env = {"PATH": os.environ["PATH"], "HOME": str(d / "home"), "CAIRN_ROOT": str(d / "store"),
                    "CONTAINERS_REGISTRIES_CONF": str(d / "registries.conf")}

    def argv(self, *args):
        return [self.binary, *args]


def import_image(tool, layout, ref, name):
    image_id = run_ok(tool.argv("pull", "-q", f"oci:{layout}:{ref}"), tool.env).strip()
    run_ok(tool.argv("tag", image_id, name), tool.env)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--out", default=str(REPO / "benches/results/lifecycle.md"))
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if args.runs < 20:
        sys.exit("--runs must be at least 20")
    if os.geteuid() != 0:
        sys.exit("run as root (podman and cairn as root, hugetlb cgroup mount)")
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "cairn-cli", "-p", "cairn-runtime"],
                       cwd=REPO, check=True)
    binary = str(target / "release/cairn")
    layout = run_ok([str(REPO / "tests/support/build-images.sh"), "--bench"]).strip().splitlines()[-1]
    ensure_hugetlb_v1()
    load_start = os.getloadavg()[0]

    # A short path: podman's run root must stay under 50 characters.
    work = Path(tempfile.mkdtemp(prefix="cairn-lc-", dir="/tmp"))
    cairn, podman = Cairn(binary, work / "c"), Podman(work / "p")
    tools = {"cairn": cairn, "podman": podman}
    results = {}
    try:
        for tool in tools.values():
            import_image(tool, layout, "debian-min", IMAGE)
            import_image(tool, layout, "bench-four", BIG)
        net = {"cairn": [], "podman": ["--network", "host"]}
        for name, tool in tools.items():
            run_ok(tool.argv("run", "-d", *net[name], "--name", "sleeper", IMAGE, "sleep", "1000000"),
                   tool.env)
        measurements = {
            "run": lambda n: ["run", "--rm", *net[n], IMAGE, "true"],
            "create": lambda n: ["create", *net[n], IMAGE, "true"],
            "create-big": lambda n: ["create", *net[n], BIG, "true"],
            "exec": lambda n: ["exec", "sleeper", "true"],
        }
        for what, argv in measurements.items():
            for name, tool in tools.items():
                for _ in range(3):
                    _, out = wall(tool.argv(*argv(name)), tool.env)
                    if what.startswith("create"):
                        run_ok(tool.argv("rm", out), tool.env)
            for i in range(args.runs):
                order = ("cairn", "podman") if i % 2 == 0 else ("podman", "cairn")
                for name in order:
                    tool = tools[name]
                    seconds, out = wall(tool.argv(*argv(name)), tool.env)
                    results.setdefault((what, name), []).append(seconds)
                    if what.startswith("create"):
                        run_ok(tool.argv("rm", out), tool.env)
    finally:
        for tool in tools.values():
            subprocess.run(tool.argv("rm", "-a", "-f", "-t", "0"), env=tool.env, capture_output=True)
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in results.items()}
    load = os.getloadavg()
    # The working tree is shared with other work in progress: say what was built.
    commit = run_ok(["git", "-C", str(REPO), "describe", "--always", "--dirty"]).strip()
    cairn_version = run_ok([binary, "--version"]).strip() + f" at {commit}"
    podman_version = run_ok(["podman", "--version"]).strip()
    crun_version = run_ok(["crun", "--version"]).splitlines()[0]
    lines = [
        "# Lifecycle benchmark\n",
        f"Command: `benches/lifecycle.py --runs {args.runs}`"
        + (f" (CARGO_TARGET_DIR={os.environ['CARGO_TARGET_DIR']})" if "CARGO_TARGET_DIR" in os.environ else "")
        + "  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores "
        f"(1-minute load average {load_start:.1f} at the start, {load[0]:.1f} at the end: other "
        "work shares this VM), root; "
        f"{cairn_version} (release); {podman_version} with {crun_version}, overlay, cgroupfs, "
        "`--network host`. Warm caches, tools alternating, 3 warm-up runs each.\n",
        "| measurement | tool | median ms | min ms | p90 ms | max ms | runs | cairn/podman |",
        "|---|---|---|---|---|---|---|---|",
    ]
    labels = {
        "run": "`run --rm debian-min true`",
        "create": "`create debian-min true`",
        "create-big": "`create bench-four true` (4 layers, 470 MB)",
        "exec": "`exec CTR true` (CTR runs `sleep`)",
    }
    for what, label in labels.items():
        for name in ("cairn", "podman"):
            v = sorted(results[(what, name)])
            p90 = v[min(len(v) - 1, int(round(0.9 * (len(v) - 1))))]
            ratio = f"{med[(what, 'cairn')] / med[(what, 'podman')]:.3f}x" if name == "cairn" else ""
            lines.append(f"| {label} | {name} | {med[(what, name)] * 1e3:.1f} | {v[0] * 1e3:.1f} | "
                         f"{p90 * 1e3:.1f} | {v[-1] * 1e3:.1f} | {len(v)} | {ratio} |")
    ms = {k: v * 1e3 for k, v in med.items()}

    def verdict(ok):
        return "met" if ok else "NOT met"

    lines += [
        "",
        "Targets (issue 5):",
        f"- run <= 0.2x podman: {ms[('run', 'cairn')] / ms[('run', 'podman')]:.3f}x, "
        f"{verdict(ms[('run', 'cairn')] <= 0.2 * ms[('run', 'podman')])}",
        f"- exec <= 0.2x podman and < 10 ms median: {ms[('exec', 'cairn')] / ms[('exec', 'podman')]:.3f}x, "
        f"{ms[('exec', 'cairn')]:.1f} ms, "
        f"{verdict(ms[('exec', 'cairn')] <= 0.2 * ms[('exec', 'podman')] and ms[('exec', 'cairn')] < 10)}",
        f"- create < 20 ms median whatever the image size: {ms[('create', 'cairn')]:.1f} ms (1 layer), "
        f"{ms[('create-big', 'cairn')]:.1f} ms (4 layers), "
        f"{verdict(ms[('create', 'cairn')] < 20 and ms[('create-big', 'cairn')] < 20)}",
    ]
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
