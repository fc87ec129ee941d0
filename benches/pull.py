#!/usr/bin/env python3
"""Pull throughput: cairn vs skopeo vs podman, same registry, images and disk.

Starts a CNCF distribution registry on 127.0.0.1, pushes the project's
benchmark images (real Debian content built by tests/support/build-images.sh
--bench), then times, for each image and each tool, a pull into fresh storage,
with the page cache dropped before every timed run. Tools:

  cairn-download  cairn pull --unpack=false: the blobs only, as skopeo copy
  skopeo          skopeo copy docker://... oci:...
  cairn           cairn pull: download, decode and image root (ready to run)
  podman          podman pull: download and apply every layer

Reports medians, ratios against skopeo and podman (same run) and peak RSS,
plus cairn's re-pull of a present image. Issue 2's target is
cairn-download <= 0.5x skopeo; issue 3's is cairn <= 0.25x podman. Writes a
Markdown report (default benches/results/pull.md).

Run as root (drop_caches): benches/pull.py [--runs 5]
"""

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def sh(*args, **kw):
    return subprocess.run(args, check=True, text=True, capture_output=True, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


FS_HELP = ("where the work directory (registry, stores, outputs) lives: 'ext4' (default) a fresh "
           "ext4 made with mkfs.ext4's defaults (journaled, as a Debian install has) on a loop device "
           "with direct I/O over a sparse file in /var/tmp, i.e. the same disk; 'here' a plain "
           "directory in /var/tmp. This VM's root filesystem is ext4 without a journal, where the "
           "inode allocator checks every free inode against its deletion time (recently_deleted()), "
           "so creating files right after deleting a tree costs several times what it costs on a "
           "journaled ext4")


@contextlib.contextmanager
def bench_fs(kind, prefix, size="24G"):
    """A work directory on the filesystem `kind` names (see FS_HELP); removed afterwards."""
    if kind == "here":
        work = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp"))
        try:
            yield work, "a directory in /var/tmp (this VM's root ext4, no journal)"
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return
    if kind != "ext4":
        sys.exit(f"--fs {kind}: want ext4 or here")
    image = Path(tempfile.mkdtemp(prefix=prefix, dir="/var/tmp")) / "fs.ext4"
    mnt = Path(tempfile.mkdtemp(prefix=prefix, dir="/mnt" if Path("/mnt").is_dir() else "/tmp"))
    loop = None
    try:
        subprocess.run(["truncate", "-s", size, str(image)], check=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
        loop = sh("losetup", "--find", "--show", "--direct-io=on", str(image)).stdout.strip()
        subprocess.run(["mount", loop, str(mnt)], check=True)
        work = mnt / "work"
        work.mkdir()
        yield work, f"a fresh journaled ext4 (mkfs.ext4 defaults) on {loop}, direct I/O, backed by /var/tmp"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)
        if loop:
            subprocess.run(["losetup", "-d", loop], capture_output=True)
        shutil.rmtree(image.parent, ignore_errors=True)
        shutil.rmtree(mnt, ignore_errors=True)


def timed(cmd, env=None):
    """Wall seconds and peak RSS (MiB) of one command, via GNU time."""
    start = time.perf_counter()
    p = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *cmd],
        env=env,
        text=True,
        capture_output=True,
    )
    wall = time.perf_counter() - start
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr}")
    rss_kib = int(p.stderr.strip().splitlines()[-1])
    return wall, rss_kib / 1024


def add_build_args(ap):
    """--no-build and --cairn, as every bench timing a release cairn takes them."""
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--cairn", help="the cairn binary to time (default: a release build of this "
                    "tree, in $CARGO_TARGET_DIR or target/)")


def require_root():
    if os.geteuid() != 0:
        sys.exit("run as root: the page cache is dropped before every timed run")


def release_binaries(args, packages=(), names=()):
    """The cairn binary (--cairn, else this tree's release build) and the release binaries
    `names`, building `packages` (and cairn-cli unless --cairn) first unless --no-build."""
    target = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")
    pkgs = [*packages] + ([] if args.cairn else ["cairn-cli"])
    if not args.no_build and pkgs:
        subprocess.run(["cargo", "build", "--release", "--quiet", *(a for p in pkgs for a in ("-p", p))],
                       cwd=REPO, check=True)
    cairn = str(Path(args.cairn).resolve()) if args.cairn else str(target / "release/cairn")
    return cairn, [str(target / "release" / n) for n in names]


REGISTRY_HELP = ("where the registry keeps its blobs: 'ram' (default) a directory in /dev/shm, as a "
                 "remote registry whose disk is not the client's; 'fs' the work directory, so the "
                 "registry's cold reads and the client's writes share one disk")


class Registry:
    def __init__(self, work, storage="fs"):
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.ram = None
        if storage == "ram":
            self.ram = Path(tempfile.mkdtemp(prefix="cairn-bench-registry-", dir="/dev/shm"))
            root = self.ram
        else:
            root = work / "registry"
        cfg = work / "registry.yml"
        cfg.write_text(
            "version: 0.1\nlog:\n  level: error\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root}\n"
            f"http:\n  addr: {self.host}\n"
        )
        self.log = open(work / "registry.log", "w")
        self.proc = subprocess.Popen(
            ["docker-registry", "serve", str(cfg)], stdout=self.log, stderr=self.log
        )
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        sys.exit("registry did not start")

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        if self.ram:
            shutil.rmtree(self.ram, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--images", default="bench-one,bench-four")
    ap.add_argument("--out", default=str(REPO / "benches/results/pull.md"))
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--tools", default="cairn-download,skopeo,cairn,podman")
    ap.add_argument("--fs", default="ext4", choices=["ext4", "here"], help=FS_HELP)
    ap.add_argument("--registry-storage", default="ram", choices=["ram", "fs"], help=REGISTRY_HELP)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the page cache is dropped before every timed run")

    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--bins", "--quiet"], cwd=REPO, check=True)
    cairn = str(REPO / "target/release/cairn")
    layout = sh(str(REPO / "tests/support/build-images.sh"), "--bench").stdout.strip().splitlines()[-1]

    fs = contextlib.ExitStack()
    work, fs_desc = fs.enter_context(bench_fs(args.fs, "cairn-bench-"))
    reg = Registry(work, args.registry_storage)
    results = {}
    repull = {}
    sizes = {}
    try:
        images = args.images.split(",")
        for img in images:
            sh("skopeo", "copy", "--quiet", "--insecure-policy", "--dest-tls-verify=false",
               f"oci:{layout}:{img}", f"docker://{reg.host}/{img}:latest")
            raw = sh("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{reg.host}/{img}:latest").stdout
            m = json.loads(raw)
            sizes[img] = (len(m["layers"]), sum(l["size"] for l in m["layers"]))
        tools = args.tools.split(",")
        for img in images:
            ref = f"{reg.host}/{img}:latest"
            for run in range(args.runs):
                # Rotate the order so no tool always runs first after a push.
                order = tools[run % len(tools):] + tools[: run % len(tools)]
                for tool in order:
                    dest = work / f"{tool}-{img}-{run}"
                    dest.mkdir()
                    env = dict(os.environ)
                    if tool in ("cairn", "cairn-download"):
                        env["CAIRN_ROOT"] = str(dest)
                        cmd = [cairn, "pull", "-q", "--tls-verify=false", ref]
                        if tool == "cairn-download":
                            cmd.insert(3, "--unpack=false")
                    elif tool == "skopeo":
                        cmd = ["skopeo", "copy", "--quiet", "--insecure-policy", "--src-tls-verify=false",
                               f"docker://{ref}", f"oci:{dest}:{img}"]
                    else:
                        # podman refuses a runroot path longer than 50 characters.
                        runroot = f"/run/cairn-bench-{os.getpid()}"
                        cmd = ["podman", "--root", str(dest / "root"), "--runroot", runroot,
                               "pull", "-q", "--tls-verify=false", ref]
                    drop_caches()
                    wall, rss = timed(cmd, env)
                    results.setdefault((img, tool), []).append((wall, rss))
                    if tool == "cairn" and run == args.runs - 1:
                        # Re-pull of a present image: warm cache, as a user would see it.
                        for _ in range(max(args.runs, 10)):
                            w, _ = timed(cmd, env)
                            repull.setdefault(img, []).append(w)
                    if tool == "podman":
                        subprocess.run(["podman", "--root", str(dest / "root"), "--runroot", runroot,
                                        "system", "reset", "-f"], capture_output=True)
                        shutil.rmtree(runroot, ignore_errors=True)
                    shutil.rmtree(dest, ignore_errors=True)
    finally:
        reg.stop()
        fs.close()

    lines = []
    lines.append("# Pull benchmark\n")
    lines.append(f"Command: `benches/pull.py {' '.join(sys.argv[1:])}`  ")
    lines.append(f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
                 f"{os.cpu_count()} cores, same registry (127.0.0.1), images and disk for every tool; "
                 "page cache dropped before every timed run; fresh storage each run. "
                 f"Every store on {fs_desc}; the registry's storage "
                 + ("in /dev/shm (a remote registry's disk is not the client's)" if args.registry_storage == "ram"
                    else "there too (its cold reads share the disk with the stores' writes)") + ".\n")
    versions = {
        "cairn": sh(cairn, "--version").stdout.strip(),
        "cairn-download": sh(cairn, "--version").stdout.strip() + " (--unpack=false)",
        "skopeo": sh("skopeo", "--version").stdout.strip(),
        "podman": sh("podman", "--version").stdout.strip(),
    }
    lines.append("Tools: " + "; ".join(versions[t] for t in args.tools.split(",")) + "\n")
    lines.append("`cairn-download` (`pull --unpack=false`) and skopeo copy store the compressed "
                 "blobs; `cairn` (plain `pull`) also decodes every layer and builds the image root, "
                 "and podman pull applies every layer into its storage.\n")
    lines.append("| image | layers | compressed | tool | median s | min s | max s | peak RSS MiB | vs skopeo | vs podman |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")

    def median_of(img, tool):
        return statistics.median(w for w, _ in results[(img, tool)]) if (img, tool) in results else None

    for img in args.images.split(","):
        skopeo, podman = median_of(img, "skopeo"), median_of(img, "podman")
        for tool in args.tools.split(","):
            runs = results[(img, tool)]
            walls = [w for w, _ in runs]
            med = statistics.median(walls)
            rss = max(r for _, r in runs)
            vs_skopeo = f"{med / skopeo:.2f}x" if skopeo and tool in ("cairn-download", "skopeo") else "-"
            vs_podman = f"{med / podman:.2f}x" if podman and tool in ("cairn", "podman") else "-"
            n, size = sizes[img]
            lines.append(f"| {img} | {n} | {size / 1e6:.1f} MB | {tool} | {med:.3f} | {min(walls):.3f} | "
                         f"{max(walls):.3f} | {rss:.1f} | {vs_skopeo} | {vs_podman} |")
    lines.append("")
    for img, walls in repull.items():
        lines.append(f"cairn re-pull of present `{img}` (one manifest request): median "
                     f"{statistics.median(walls) * 1000:.1f} ms over {len(walls)} runs")
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
