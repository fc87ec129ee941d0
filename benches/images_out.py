#!/usr/bin/env python3
"""Images out: cairn push, commit, save and load vs skopeo and podman.

In one run, on the same filesystem, the same image (bench-four: 4 gzip
layers of real Debian content, built by tests/support/build-images.sh
--bench) and with the page cache dropped before every timed command:

  push     cairn push of bench-four to an empty repository of a local
           registry (a fresh registry per timed push, so nothing is there
           and no cross-repository mount applies) vs skopeo copy from an OCI
           layout of the same image, and podman push from podman's storage
  commit   cairn commit of a container that changed ~100 MB (a copy of
           /usr/share, ~80 MB of small files, plus 20 MB of random bytes, in
           its upper directory) vs
           podman commit of the same change in a podman container
  save     cairn save -o FILE (docker-archive, the default, and oci-archive)
  load     cairn load -i FILE into an empty store, of the archive cairn saved
           vs podman save / podman load of the same image, the same way

A part whose cairn verb is missing in the binary (`cairn VERB --help` fails)
is reported as not run; the peers' parts run regardless. Reports medians,
min/max, peak RSS, ratios against the peers of the same run and the issue's
targets (push <= 0.5x skopeo, commit <= 0.3x podman, save+load <= 0.5x
podman). Writes Markdown (default benches/results/images_out.md).

Run as root: benches/images_out.py [--runs 5] [--parts push,commit,save]
"""

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pull import (FS_HELP, REGISTRY_HELP, REPO, Registry, add_build_args, bench_fs, drop_caches,  # noqa: E402
                  release_binaries, require_root, sh, timed)
from unpack import podman_reset, rm  # noqa: E402

IMAGE = "localhost/bench-four:latest"
# What the committed container changes: ~100 MB in its upper directory.
CHANGE = ("cp -a /usr/share /opt/share-copy && head -c 20000000 /dev/urandom > /opt/random && "
          "du -sm /opt | cut -f1")


def has_verb(cairn, verb):
    return subprocess.run([cairn, verb, "--help"], capture_output=True).returncode == 0


class Podman:
    """podman with a root, a run root and a containers.conf of its own under the work directory
    (cgroupfs, file events, crun, ulimits this VM allows: as benches/lifecycle.py)."""

    def __init__(self, work, name):
        self.d = work / f"podman-{name}"
        self.root = self.d / "storage"
        self.runroot = f"/run/cairn-ibench-{os.getpid()}-{name}"
        self.setup()

    def setup(self):
        (self.d / "tmp").mkdir(parents=True, exist_ok=True)
        (self.d / "containers.conf").write_text(
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n"
            "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
            f"events_logfile_path = \"{self.d}/events.log\"\nruntime = \"crun\"\n"
            f"image_copy_tmp_dir = \"{self.d}/tmp\"\n")
        (self.d / "registries.conf").write_text("")
        self.env = dict(os.environ, TMPDIR=str(self.d / "tmp"),
                        CONTAINERS_CONF=str(self.d / "containers.conf"),
                        CONTAINERS_REGISTRIES_CONF=str(self.d / "registries.conf"))

    def cmd(self, *args):
        return ["podman", "--root", str(self.root), "--runroot", self.runroot, "--tmpdir", str(self.d / "tmp"),
                "--storage-driver", "overlay", *args]

    def sh(self, *args):
        return sh(*self.cmd(*args), env=self.env)

    def reset(self):
        podman_reset(self.root, self.runroot)
        rm(self.d)
        shutil.rmtree(self.runroot, ignore_errors=True)
        self.setup()


def cairn_env(root):
    return dict(os.environ, CAIRN_ROOT=str(root))


def record(results, key, cmd, env=None):
    drop_caches()
    wall, rss = timed(cmd, env)
    results.setdefault(key, []).append((wall, rss))
    return wall


def bench_push(args, cairn, work, layout, results, notes):
    cairn_store = work / "push-cairn"
    env = cairn_env(cairn_store)
    sh(cairn, "pull", "-q", f"oci:{layout}:bench-four", env=env)
    sh(cairn, "tag", sh(cairn, "images", "-q", env=env).stdout.split()[0], IMAGE, env=env)
    pod = Podman(work, "push")
    pod.sh("pull", "-q", f"oci:{layout}:bench-four")
    pod.sh("tag", pod.sh("images", "-q").stdout.split()[0], IMAGE)
    tools = ["skopeo", "podman"]
    if has_verb(cairn, "push"):
        tools.insert(0, "cairn")
    else:
        notes.append("push: this cairn has no `push` verb; its rows are missing")
    try:
        for run in range(args.runs):
            order = tools[run % len(tools):] + tools[: run % len(tools)]
            for tool in order:
                reg = Registry(work, args.registry_storage)
                try:
                    dest = f"docker://{reg.host}/bench-{tool}:latest"
                    if tool == "cairn":
                        cmd, cenv = [cairn, "push", "-q", "--tls-verify=false", IMAGE, dest], env
                    elif tool == "skopeo":
                        cmd, cenv = ["skopeo", "copy", "-q", "--insecure-policy", "--dest-tls-verify=false",
                                     f"oci:{layout}:bench-four", dest], None
                    else:
                        cmd, cenv = pod.cmd("push", "-q", "--tls-verify=false", IMAGE, dest), pod.env
                    record(results, ("push", tool), cmd, cenv)
                finally:
                    reg.stop()
                    if reg.ram:
                        shutil.rmtree(reg.ram, ignore_errors=True)
                    shutil.rmtree(work / "registry", ignore_errors=True)
    finally:
        pod.reset()
        rm(cairn_store)


def bench_commit(args, cairn, work, layout, results, notes):
    if not has_verb(cairn, "commit"):
        notes.append("commit: this cairn has no `commit` verb; only podman's rows were timed")
    tools = ["cairn", "podman"] if has_verb(cairn, "commit") else ["podman"]
    store = work / "commit-cairn"
    env = cairn_env(store)
    pod = Podman(work, "commit")
    try:
        sizes = {}
        if "cairn" in tools:
            sh(cairn, "pull", "-q", f"oci:{layout}:bench-four", env=env)
            image = sh(cairn, "images", "-q", env=env).stdout.split()[0]
            sizes["cairn"] = sh(cairn, "run", "--name", "changed", "--network", "none", image, "sh", "-c",
                                CHANGE, env=env).stdout.strip()
        pod.sh("pull", "-q", f"oci:{layout}:bench-four")
        pimage = pod.sh("images", "-q").stdout.split()[0]
        sizes["podman"] = pod.sh("run", "--name", "changed", "--network", "none", pimage, "sh", "-c",
                                  CHANGE).stdout.strip()
        notes.append("commit: the container's change, MB (du of /opt inside): "
                     + ", ".join(f"{t} {s}" for t, s in sizes.items()))
        for run in range(args.runs):
            for tool in tools if run % 2 == 0 else list(reversed(tools)):
                name = f"localhost/committed:{run}"
                if tool == "cairn":
                    record(results, ("commit", "cairn"), [cairn, "commit", "-q", "changed", name], env)
                    sh(cairn, "rmi", name, env=env)
                    sh(cairn, "image", "prune", "-f", env=env)
                else:
                    record(results, ("commit", "podman"), pod.cmd("commit", "-q", "changed", name), pod.env)
                    pod.sh("rmi", name)
    finally:
        if "cairn" in tools:
            subprocess.run([cairn, "rm", "-f", "changed"], env=env, capture_output=True)
        pod.reset()
        rm(store)


def bench_save_load(args, cairn, work, layout, results, notes):
    store = work / "save-cairn"
    env = cairn_env(store)
    sh(cairn, "pull", "-q", f"oci:{layout}:bench-four", env=env)
    sh(cairn, "tag", sh(cairn, "images", "-q", env=env).stdout.split()[0], IMAGE, env=env)
    pod = Podman(work, "save")
    pod.sh("pull", "-q", f"oci:{layout}:bench-four")
    pod.sh("tag", pod.sh("images", "-q").stdout.split()[0], IMAGE)
    loader = Podman(work, "load")
    has = has_verb(cairn, "save") and has_verb(cairn, "load")
    if not has:
        notes.append("save/load: this cairn has no `save`/`load`; only podman's rows were timed")
    tools = ["cairn", "podman"] if has else ["podman"]
    try:
        for fmt in args.formats.split(","):
            for run in range(args.runs):
                for tool in tools if run % 2 == 0 else list(reversed(tools)):
                    out = work / "out.tar"
                    rm(out)
                    fresh = work / "load-cairn"
                    if tool == "cairn":
                        record(results, (f"save {fmt}", tool),
                               [cairn, "save", "-q", "--format", fmt, "-o", str(out), IMAGE], env)
                        sizes = results.setdefault(("size", fmt, tool), [])
                        sizes.append(out.stat().st_size)
                        record(results, (f"load {fmt}", tool),
                               [cairn, "load", "-q", "-i", str(out)], cairn_env(fresh))
                        rm(fresh)
                    else:
                        record(results, (f"save {fmt}", tool),
                               pod.cmd("save", "-q", "--format", fmt, "-o", str(out), IMAGE), pod.env)
                        results.setdefault(("size", fmt, tool), []).append(out.stat().st_size)
                        record(results, (f"load {fmt}", tool), loader.cmd("load", "-q", "-i", str(out)), loader.env)
                        loader.reset()
                    rm(out)
    finally:
        loader.reset()
        pod.reset()
        rm(store)


def report(args, cairn, results, notes, fs_desc, load_start):
    med = lambda key: statistics.median(w for w, _ in results[key])
    have = lambda key: key in results
    lines = ["# Images out: push, commit, save, load\n",
             f"Command: `benches/images_out.py {' '.join(sys.argv[1:])}`  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores; page cache "
             f"dropped before every timed command; {args.runs} runs each, tools alternating. Stores, layouts "
             f"and archives on {fs_desc}; the registry's storage "
             + ("in /dev/shm" if args.registry_storage == "ram" else "on the same filesystem")
             + f". Load average (1, 5, 15 min) at the start {' '.join(f'{x:.1f}' for x in load_start)}, "
             f"at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())} (other processes share the machine).\n",
             "Tools: " + "; ".join([sh(cairn, "--version").stdout.strip(),
                                    sh("podman", "--version").stdout.strip(),
                                    sh("skopeo", "--version").stdout.strip()]) + "\n",
             "| operation | tool | median s | min s | max s | peak RSS MiB | vs peer |",
             "|---|---|---|---|---|---|---|"]
    peers = {"push": "skopeo"}
    ops = ["push", "commit"] + [f"{v} {f}" for f in args.formats.split(",") for v in ("save", "load")]
    for op in ops:
        peer = peers.get(op, "podman")
        for tool in ("cairn", "skopeo", "podman"):
            key = (op, tool)
            if not have(key):
                continue
            walls = [w for w, _ in results[key]]
            ratio = ""
            if tool == "cairn" and have((op, peer)):
                ratio = f"{med(key) / med((op, peer)):.2f}x {peer}"
            elif op == "push" and tool == "podman" and have(("push", "skopeo")):
                ratio = f"{med(key) / med(('push', 'skopeo')):.2f}x skopeo"
            lines.append(f"| {op} | {tool} | {med(key):.3f} | {min(walls):.3f} | {max(walls):.3f} | "
                         f"{max(r for _, r in results[key]):.1f} | {ratio} |")
    for f in args.formats.split(","):
        sizes = [f"{t} {statistics.median(results[('size', f, t)]) / 1e6:.1f} MB"
                 for t in ("cairn", "podman") if have(("size", f, t))]
        if sizes:
            notes.append(f"{f} archive size: " + ", ".join(sizes))
    lines += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    lines += ["- cairn load stores the blobs (verified) and leaves the image root to the first container, "
              "as a pull does; podman load also applies every layer into its overlay storage.",
              "", "Targets (issue 21):", "", "| target | measured | limit | met |", "|---|---|---|---|"]
    targets = []
    if have(("push", "cairn")):
        targets.append(("cairn push vs skopeo copy", med(("push", "cairn")) / med(("push", "skopeo")), 0.5))
    if have(("commit", "cairn")):
        targets.append(("cairn commit vs podman commit", med(("commit", "cairn")) / med(("commit", "podman")), 0.3))
    for f in args.formats.split(","):
        if have((f"save {f}", "cairn")):
            c = med((f"save {f}", "cairn")) + med((f"load {f}", "cairn"))
            p = med((f"save {f}", "podman")) + med((f"load {f}", "podman"))
            targets.append((f"cairn save + load vs podman's, {f}", c / p, 0.5))
    for what, got, limit in targets:
        lines.append(f"| {what} | {got:.3f}x | {limit}x | {'yes' if got <= limit else 'no'} |")
    if not targets:
        lines.append("| (no cairn part ran) | | | |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--parts", default="push,commit,save", help="which parts: push, commit, save (save+load)")
    ap.add_argument("--formats", default="docker-archive,oci-archive", help="save/load archive formats")
    ap.add_argument("--out", default=str(REPO / "benches/results/images_out.md"))
    ap.add_argument("--fs", default="ext4", choices=["ext4", "here"], help=FS_HELP)
    ap.add_argument("--registry-storage", default="ram", choices=["ram", "fs"], help=REGISTRY_HELP)
    add_build_args(ap)
    args = ap.parse_args()
    require_root()
    cairn, _ = release_binaries(args, [] if args.cairn else ["cairn-runtime"])
    cache = sh(str(REPO / "tests/support/build-images.sh"), "--bench").stdout.strip().splitlines()[-1]
    load_start = os.getloadavg()
    results, notes = {}, []
    with contextlib.ExitStack() as fs:
        work, fs_desc = fs.enter_context(bench_fs(args.fs, "cairn-ibench-"))
        try:
            layout = str(work / "layout")
            sh("skopeo", "copy", "--quiet", "--insecure-policy", f"oci:{cache}:bench-four",
               f"oci:{layout}:bench-four")
            parts = args.parts.split(",")
            if "push" in parts:
                bench_push(args, cairn, work, layout, results, notes)
            if "commit" in parts:
                bench_commit(args, cairn, work, layout, results, notes)
            if "save" in parts:
                bench_save_load(args, cairn, work, layout, results, notes)
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
