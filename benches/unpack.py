#!/usr/bin/env python3
"""Unpack throughput: cairn vs umoci vs podman vs sequential tar, one run.

For each image (real Debian content from tests/support/build-images.sh
--bench), timed with the page cache dropped before every run, fresh output
each run, medians over several runs:

  cairn unpack IMAGE DIR        decode from the stored blobs (no cached
                                changesets or objects) + copy-mode root
  cairn unpack --mode hardlink  the same into a hardlinked read-only root
  umoci unpack                  from the same OCI layout
  tar (sequential)              `tar -xzf` of each layer in order: the
                                naive floor (no whiteouts, no diff ids)
  podman load                   podman's layer application, from an
                                oci-archive of the image (its own decode
                                and apply path, no network)

Then, against a local registry: `cairn pull` (download + decode + image
root) vs `podman pull` of bench-four, and cairn's pull of an image sharing
all but its top layer with one already pulled (multi-sibling after multi;
podman cannot apply multi's hardlinks into lower layers). Reports ratios,
peak RSS and the issue's targets; writes benches/results/unpack.md.

Run as root: benches/unpack.py [--runs 5] [--cairn PATH]
"""

import argparse
import contextlib
import json
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


def layer_blobs(layout, ref):
    index = json.loads((Path(layout) / "index.json").read_text())
    desc = next(m for m in index["manifests"]
                if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref)
    blob = lambda d: Path(layout) / "blobs" / "sha256" / d.split(":")[1]
    manifest = json.loads(blob(desc["digest"]).read_text())
    return [blob(l["digest"]) for l in manifest["layers"]], manifest


def rm(path):
    unmount_under(path)
    subprocess.run(["rm", "-rf", str(path)], check=True)


def unmount_under(path):
    """Unmounts what is mounted under `path`, deepest first: podman's overlay
    driver leaves its home bind-mounted on itself."""
    prefix = str(Path(path).resolve())
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for m in sorted((m for m in points if m == prefix or m.startswith(prefix + "/")), reverse=True):
        subprocess.run(["umount", "-l", m], check=True)


def podman_reset(root, runroot):
    subprocess.run(["podman", "--root", str(root), "--runroot", runroot, "system", "reset", "-f"],
                   capture_output=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--images", default="bench-four,bench-one")
    ap.add_argument("--out", default=str(REPO / "benches/results/unpack.md"))
    ap.add_argument("--fs", default="ext4", choices=["ext4", "here"], help=FS_HELP)
    ap.add_argument("--registry-storage", default="ram", choices=["ram", "fs"], help=REGISTRY_HELP)
    add_build_args(ap)
    args = ap.parse_args()
    require_root()
    cairn, _ = release_binaries(args)
    cache = sh(str(REPO / "tests/support/build-images.sh"), "--bench").stdout.strip().splitlines()[-1]

    load_start = os.getloadavg()
    fs = contextlib.ExitStack()
    work, fs_desc = fs.enter_context(bench_fs(args.fs, "cairn-ubench-"))
    results = {}
    sizes = {}
    runroot = f"/run/cairn-ubench-{os.getpid()}"
    try:
        # Every tool reads the layers from, and writes to, the same filesystem.
        layout = str(work / "layout")
        for img in sorted(set(args.images.split(",")) | {"bench-four", "multi", "multi-sibling"}):
            sh("skopeo", "copy", "--quiet", "--insecure-policy", f"oci:{cache}:{img}", f"oci:{layout}:{img}")
        for img in args.images.split(","):
            blobs, manifest = layer_blobs(layout, img)
            sizes[img] = (len(blobs), sum(b.stat().st_size for b in blobs))
            store = work / f"store-{img}"
            env = dict(os.environ, CAIRN_ROOT=str(store))
            # Import the blobs once; the timed runs decode them from scratch.
            sh(cairn, "pull", "-q", f"oci:{layout}:{img}", env=env)
            image_id = sh(cairn, "images", "-q", env=env).stdout.split()[0]
            archive = work / f"{img}.tar"
            sh("skopeo", "copy", "--quiet", "--insecure-policy", f"oci:{layout}:{img}",
               f"oci-archive:{archive}:{img}")
            for run in range(args.runs):
                cases = []
                for mode in ("copy", "hardlink"):
                    def prep(store=store):
                        for d in ("objects", "layers", "images"):
                            rm(store / d)
                    cases.append((f"cairn unpack ({mode})", prep,
                                  [cairn, "unpack", "--mode", mode, image_id], env))
                cases.append(("umoci unpack", None,
                              ["umoci", "unpack", "--image", f"{layout}:{img}"], None))
                script = " && ".join(f"tar -xzf {b} -C \"$1\"" for b in blobs)
                cases.append(("tar -xzf, layers in order", None, ["sh", "-c", script, "tar"], None))
                cases.append(("podman load", None,
                              ["podman", "--root", "ROOT", "--runroot", runroot, "load", "-q", "-i", str(archive)],
                              None))
                order = cases[run % len(cases):] + cases[: run % len(cases)]
                for name, prep, cmd, cenv in order:
                    out = work / "out"
                    rm(out)
                    if prep:
                        prep()
                    if name.startswith("podman"):
                        cmd = [str(out / "root") if c == "ROOT" else c for c in cmd]
                    elif name.startswith("tar"):
                        out.mkdir()
                        cmd = cmd + [str(out)]
                    else:
                        cmd = cmd + [str(out)]
                    drop_caches()
                    wall, rss = timed(cmd, cenv)
                    results.setdefault((img, name), []).append((wall, rss))
                    if name.startswith("podman"):
                        podman_reset(out / "root", runroot)
                    rm(out)
                    shutil.rmtree(runroot, ignore_errors=True)

        # Pull including unpack, against a registry, vs podman pull. podman
        # cannot apply `multi` (its edge-case layer hardlinks files of lower
        # layers: "processing tar file(no such file or directory)"), so the
        # sibling image is timed for cairn only.
        reg = Registry(work, args.registry_storage)
        try:
            pulls = {"cairn": ["bench-four", "multi", "multi-sibling"], "podman": ["bench-four"]}
            for img in pulls["cairn"]:
                sh("skopeo", "copy", "--quiet", "--insecure-policy", "--dest-tls-verify=false",
                   f"oci:{layout}:{img}", f"docker://{reg.host}/{img}:latest")
            for run in range(args.runs):
                for tool in ("cairn", "podman") if run % 2 == 0 else ("podman", "cairn"):
                    dest = work / f"pull-{tool}"
                    rm(dest)
                    env = dict(os.environ, CAIRN_ROOT=str(dest))
                    def pull_cmd(img):
                        ref = f"{reg.host}/{img}:latest"
                        if tool == "cairn":
                            return [cairn, "pull", "-q", "--tls-verify=false", ref]
                        return ["podman", "--root", str(dest / "root"), "--runroot", runroot,
                                "pull", "-q", "--tls-verify=false", ref]
                    for img in pulls[tool]:
                        drop_caches()
                        wall, rss = timed(pull_cmd(img), env)
                        results.setdefault((f"pull {img}", tool), []).append((wall, rss))
                    if tool == "podman":
                        podman_reset(dest / "root", runroot)
                    rm(dest)
                    shutil.rmtree(runroot, ignore_errors=True)
        finally:
            reg.stop()
    finally:
        shutil.rmtree(runroot, ignore_errors=True)
        rm(work)
        fs.close()

    med = lambda key: statistics.median(w for w, _ in results[key])
    lines = ["# Unpack benchmark\n",
             f"Command: `benches/unpack.py {' '.join(sys.argv[1:])}`  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores; page cache "
             "dropped before every timed run; fresh output (and, for cairn, no cached changesets or objects) "
             f"each run. Layouts, stores and outputs on {fs_desc}. Load average (1, 5, 15 min) at the start "
             f"{' '.join(f'{x:.1f}' for x in load_start)}, at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
             " (other processes share the machine).\n",
             "Tools: " + "; ".join([sh(cairn, "--version").stdout.strip(), sh("umoci", "--version").stdout.strip(),
                                    sh("podman", "--version").stdout.strip(),
                                    sh("tar", "--version").stdout.splitlines()[0]]) + "\n",
             "| image | layers | compressed | tool | median s | min s | max s | peak RSS MiB | vs umoci | vs tar |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for img in args.images.split(","):
        base_u = med((img, "umoci unpack"))
        base_t = med((img, "tar -xzf, layers in order"))
        for name in ["cairn unpack (copy)", "cairn unpack (hardlink)", "umoci unpack",
                     "tar -xzf, layers in order", "podman load"]:
            runs = results[(img, name)]
            walls = [w for w, _ in runs]
            m = statistics.median(walls)
            n, size = sizes[img]
            lines.append(f"| {img} | {n} | {size / 1e6:.1f} MB | {name} | {m:.3f} | {min(walls):.3f} | "
                         f"{max(walls):.3f} | {max(r for _, r in runs):.1f} | {m / base_u:.2f}x | {m / base_t:.2f}x |")
    lines += ["", "Pull from a local registry into fresh storage, image ready to run (podman pull also "
              "applies the layers into its storage); the registry's storage "
              + ("in /dev/shm (a remote registry's disk is not the client's):\n" if args.registry_storage == "ram"
                 else "on the same filesystem:\n"),
              "| image | tool | median s | peak RSS MiB | cairn vs podman |", "|---|---|---|---|---|"]
    for img in ["bench-four", "multi", "multi-sibling"]:
        key = f"pull {img}"
        for tool in ("cairn", "podman"):
            if (key, tool) not in results:
                continue
            runs = results[(key, tool)]
            m = med((key, tool))
            ratio = f"{m / med((key, 'podman')):.2f}x" if tool == "cairn" and (key, "podman") in results else ""
            lines.append(f"| {img}{' (after multi)' if img == 'multi-sibling' else ''} | {tool} | {m:.3f} | "
                         f"{max(r for _, r in runs):.1f} | {ratio} |")
    lines.append("")
    sibling = med(('pull multi-sibling', 'cairn')) / med(('pull multi', 'cairn'))
    lines.append(f"cairn: pulling multi-sibling after multi (shares 3 of 4 layers) took "
                 f"{sibling:.2f}x of pulling multi.")
    # The targets, on the multi-layer image.
    multi = args.images.split(",")[0]
    rss = max(r for (key, name), runs in results.items()
              if name.startswith("cairn") for _, r in runs)
    targets = [
        (f"cairn unpack (copy) vs umoci unpack, {multi}", med((multi, "cairn unpack (copy)")) / med((multi, "umoci unpack")), 0.25),
        (f"cairn unpack (hardlink) vs umoci unpack, {multi}", med((multi, "cairn unpack (hardlink)")) / med((multi, "umoci unpack")), 0.25),
        (f"cairn unpack (copy) vs sequential tar, {multi}", med((multi, "cairn unpack (copy)")) / med((multi, "tar -xzf, layers in order")), 0.7),
        (f"cairn unpack (hardlink) vs sequential tar, {multi}", med((multi, "cairn unpack (hardlink)")) / med((multi, "tar -xzf, layers in order")), 0.7),
        ("cairn pull vs podman pull, bench-four", med(("pull bench-four", "cairn")) / med(("pull bench-four", "podman")), 0.25),
        ("cairn pull of multi-sibling after multi vs of multi", sibling, 0.1),
    ]
    lines += ["", "Targets (issue 3):\n", "| target | measured | limit | met |", "|---|---|---|---|"]
    for what, got, limit in targets:
        lines.append(f"| {what} | {got:.3f}x | {limit}x | {'yes' if got <= limit else 'no'} |")
    lines.append(f"| cairn peak RSS, any run above | {rss:.1f} MiB | 200 MiB | {'yes' if rss < 200 else 'no'} |")
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
