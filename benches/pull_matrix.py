#!/usr/bin/env python3
"""Pull matrix (issue 24): cairn vs podman vs this machine's floor, per filesystem, registry, compression, user.

For each filesystem (--fs: a fresh journaled loop ext4, or /var/tmp on the
root filesystem; see pull.py's FS_HELP) and each registry placement
(--registry-storage: blobs in /dev/shm or on that filesystem), a CNCF
distribution registry on 127.0.0.1 serves the 4-layer bench image as
`bench-four:gz` (the gzip layers of tests/support/build-images.sh --bench)
and `bench-four:zst` (the same image pushed by cairn with
--compression-format zstd). For each compression and each user (root, or
rootless as $CAIRN_TEST_USER as rootless.py runs both tools), timed with the
page cache dropped before every run, fresh storage each run, the tools
interleaved:

  cairn   cairn pull -q --tls-verify=false REF   (download, decode, image root)
  podman  podman pull -q --tls-verify=false REF  (download, apply every layer)

and per (filesystem, registry, compression) the floor of the same work, in
the same run, each part after dropping the page cache:

  download    every blob (layers and config) fetched at once by one curl
              --parallel to /dev/null
  decompress  `pull-floor decompress`: every layer decoded to a sink, the
              layers split over the cores, read from the registry's storage
              (wall time of the process)
  create      `pull-floor create`: the image's final tree written into a
              fresh directory on the filesystem under test (its own timer:
              the layers are decoded into memory beforehand, untimed)
  floor       the largest of the three (the issue's floor)
  work        the work floor: the CPU seconds of `pull-floor verify` (every
              layer decompressed with its blob digest and diff id, the
              SHA-256s a puller must check) plus those of `pull-floor
              create`, divided by the cores

plus the download-only pull, as root: `cairn pull --unpack=false` vs
`skopeo copy docker://REF oci:DIR`. Targets (issue 24): cairn <= 0.15x
podman on every row, cairn <= 1.5x the floor, download-only <= 0.4x skopeo,
cairn's peak RSS < 200 MB. Writes a Markdown report (default
benches/results/pull-matrix.md).

Run as root: benches/pull_matrix.py [--runs 3] [--cairn PATH] [--fs here] [--registry-storage ram]
  [--users root] [--compressions gz,zst]
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
from rootless import User, cairn_env, podman_env  # noqa: E402
from unpack import podman_reset, rm  # noqa: E402

IMAGE = "bench-four"
REGISTRY_DESC = {"ram": "registry blobs in /dev/shm", "fs": "registry blobs on the same filesystem"}


def comma_list(allowed):
    def parse(s):
        items = [x for x in s.split(",") if x]
        bad = [x for x in items if x not in allowed]
        if bad or not items:
            raise argparse.ArgumentTypeError(f"want a comma list of {', '.join(allowed)}")
        return items
    return parse


def blob_path(root, digest):
    algo, hexd = digest.split(":")
    return root / "docker/registry/v2/blobs" / algo / hexd[:2] / hexd / "data"


def push_images(cairn, layout, reg, work):
    """bench-four as :gz (skopeo, as built) and :zst (cairn push --compression-format zstd)."""
    gz, zst = f"{reg.host}/{IMAGE}:gz", f"{reg.host}/{IMAGE}:zst"
    sh("skopeo", "copy", "--quiet", "--insecure-policy", "--dest-tls-verify=false",
       f"oci:{layout}:{IMAGE}", f"docker://{gz}")
    scratch = work / "zstd-src"
    env = dict(os.environ, CAIRN_ROOT=str(scratch))
    try:
        sh(cairn, "pull", "-q", "--tls-verify=false", gz, env=env)
        sh(cairn, "push", "-q", "--tls-verify=false", "--compression-format", "zstd", gz, zst, env=env)
    finally:
        rm(scratch)
    manifests = {}
    for comp, ref in (("gz", gz), ("zst", zst)):
        m = json.loads(sh("skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}").stdout)
        want = "gzip" if comp == "gz" else "zstd"
        kinds = {l["mediaType"] for l in m["layers"]}
        if not all(k.endswith(want) for k in kinds):
            sys.exit(f"{ref}: layers are {kinds}, want {want}")
        manifests[comp] = m
    return manifests


def floor_parts(floor, reg, root, manifest, work):
    """Wall seconds of the download, decompression and creation floors, page cache dropped before each."""
    digests = [manifest["config"]["digest"]] + [l["digest"] for l in manifest["layers"]]
    curl = ["curl", "-sSf", "--parallel", "--parallel-max", str(len(digests))]
    for d in digests:
        curl += ["-o", "/dev/null", f"http://{reg.host}/v2/{IMAGE}/blobs/{d}"]
    drop_caches()
    download, _ = timed(curl)
    blobs = [str(blob_path(root, l["digest"])) for l in manifest["layers"]]
    drop_caches()
    decompress, _ = timed([floor, "decompress", *blobs])
    # The same with the two SHA-256s a puller must compute (blob digest,
    # diff id): its CPU seconds, with create's, make the work floor.
    drop_caches()
    v = sh(floor, "verify", *blobs).stdout.split()
    verify_cpu = float(v[2].removeprefix("cpu="))
    out = work / "floor-out"
    rm(out)
    drop_caches()
    p = subprocess.run([floor, "create", str(out), *blobs], text=True, capture_output=True)
    if p.returncode != 0:
        sys.exit(f"pull-floor create failed:\n{p.stderr}")
    words = p.stdout.split()
    create = float(words[1])
    create_cpu = float(words[-1].removeprefix("cpu="))
    counts = " ".join(w for w in words[2:] if not w.startswith("cpu="))
    rm(out)
    # The work floor: the CPU seconds of what cannot be skipped (decompress
    # and verify every layer, create the tree) spread perfectly over the cores.
    work_floor = (verify_cpu + create_cpu) / (os.cpu_count() or 1)
    return {"download": download, "decompress": decompress, "create": create,
            "work": work_floor}, counts


def pull_once(tool, user, ref, cairn, work, runroot, tag):
    """One timed pull into fresh storage; (wall, peak RSS MiB)."""
    dest = work / f"pull-{tool}-{tag}"
    rm(dest)
    dest.mkdir()
    if user is None:
        env = dict(os.environ, CAIRN_ROOT=str(dest))
        if tool == "cairn":
            cmd = [cairn, "pull", "-q", "--tls-verify=false", ref]
        elif tool == "cairn-download":
            cmd = [cairn, "pull", "-q", "--unpack=false", "--tls-verify=false", ref]
        elif tool == "skopeo":
            cmd = ["skopeo", "copy", "--quiet", "--insecure-policy", "--src-tls-verify=false",
                   f"docker://{ref}", f"oci:{dest}/oci:{IMAGE}"]
        else:
            cmd = ["podman", "--root", str(dest / "root"), "--runroot", runroot,
                   "pull", "-q", "--tls-verify=false", ref]
    else:
        uenv = cairn_env(dest) if tool == "cairn" else podman_env(dest)
        user.own(dest)
        argv = ([cairn, "pull", "-q", "--tls-verify=false", ref] if tool == "cairn"
                else ["podman", "pull", "-q", "--tls-verify=false", ref])
        cmd, env = user.cmd(uenv, argv), None
    drop_caches()
    wall, rss = timed(cmd, env)
    if tool == "podman":
        if user is None:
            podman_reset(dest / "root", runroot)
        else:
            subprocess.run(user.cmd(uenv, ["podman", "system", "reset", "-f"]), capture_output=True)
    rm(dest)
    shutil.rmtree(runroot, ignore_errors=True)
    return wall, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fs", type=comma_list(["ext4", "here"]), default=["ext4", "here"], help=FS_HELP)
    ap.add_argument("--registry-storage", type=comma_list(["ram", "fs"]), default=["ram", "fs"],
                    help=REGISTRY_HELP)
    ap.add_argument("--users", type=comma_list(["root", "rootless"]), default=["root", "rootless"])
    ap.add_argument("--compressions", type=comma_list(["gz", "zst"]), default=["gz", "zst"])
    ap.add_argument("--out", default=str(REPO / "benches/results/pull-matrix.md"))
    add_build_args(ap)
    args = ap.parse_args()
    require_root()
    cairn, (floor,) = release_binaries(args, ["cairn-bench-floor"], ["pull-floor"])
    layout = sh(str(REPO / "tests/support/build-images.sh"), "--bench").stdout.strip().splitlines()[-1]
    user = None
    if "rootless" in args.users:
        subprocess.run([str(REPO / "tests/support/test-user.sh")], check=True)
        user = User(os.environ.get("CAIRN_TEST_USER", "cairntest"))

    load_start = os.getloadavg()
    results = {}  # (fs, reg, comp, user, tool) -> [(wall, rss)]
    floors = {}  # (fs, reg, comp) -> {part: [secs]}
    counts = {}
    loads = {}
    sizes = {}
    fs_descs = {}
    runroot = f"/run/cairn-pm-{os.getpid()}"
    for fs_kind in args.fs:
        with contextlib.ExitStack() as stack:
            work, fs_descs[fs_kind] = stack.enter_context(bench_fs(fs_kind, "cairn-pm-"))
            # The test user walks into the work directory (mkdtemp makes it 0700).
            for d in (work, work.parent):
                if d != Path("/var/tmp"):
                    os.chmod(d, 0o755)
            stack.callback(rm, work)
            for storage in args.registry_storage:
                reg = Registry(work, storage)
                try:
                    root = reg.ram or work / "registry"
                    manifests = push_images(cairn, layout, reg, work)
                    for comp in args.compressions:
                        key = (fs_kind, storage, comp)
                        m = manifests[comp]
                        sizes[comp] = sum(l["size"] for l in m["layers"])
                        loads[key] = os.getloadavg()[0]
                        ref = f"{reg.host}/{IMAGE}:{comp}"
                        print(f"{fs_kind} / {storage} / {comp} (load {loads[key]:.2f})", file=sys.stderr)
                        for run in range(args.runs):
                            parts, counts[comp] = floor_parts(floor, reg, root, m, work)
                            for part, secs in parts.items():
                                floors.setdefault(key, {}).setdefault(part, []).append(secs)
                            for who in args.users:
                                tools = ("cairn", "podman") if run % 2 == 0 else ("podman", "cairn")
                                for tool in tools:
                                    r = pull_once(tool, user if who == "rootless" else None, ref, cairn,
                                                  work, runroot, f"{who}-{run}")
                                    results.setdefault((*key, who, tool), []).append(r)
                            for tool in (("cairn-download", "skopeo") if run % 2 == 0
                                         else ("skopeo", "cairn-download")):
                                r = pull_once(tool, None, ref, cairn, work, runroot, f"dl-{run}")
                                results.setdefault((*key, "root", tool), []).append(r)
                finally:
                    reg.stop()
    load_end = os.getloadavg()
    text = report(args, cairn, floor, results, floors, counts, loads, sizes, fs_descs, load_start, load_end)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


def report(args, cairn, floor, results, floors, counts, loads, sizes, fs_descs, load_start, load_end):
    med = lambda key: statistics.median(w for w, _ in results[key])
    fmt_load = lambda la: " ".join(f"{x:.1f}" for x in la)
    rev = sh("git", "rev-parse", "--short", "HEAD", cwd=REPO).stdout.strip()
    lines = ["# Pull matrix (issue 24)\n",
             f"Command: `benches/pull_matrix.py {' '.join(sys.argv[1:])}`  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
             f"{args.runs} run(s) per figure (medians); page cache dropped before every timed run, fresh "
             "storage each run, cairn and podman interleaved. Load average (1, 5, 15 min) at the start "
             f"{fmt_load(load_start)}, at the end {fmt_load(load_end)} (other processes share the "
             "machine; the 1-minute load at the start of each configuration is in the table).\n",
             "Filesystems (stores, floor output, and the registry's blobs when `registry` is `fs`):\n"]
    for k, d in fs_descs.items():
        lines.append(f"- `{k}`: {d}")
    lines += ["",
              "Registry: CNCF distribution on 127.0.0.1; `ram`: its blobs in /dev/shm (a remote registry's "
              "disk is not the client's); `fs`: its blobs in the work directory on the filesystem under "
              f"test. Image `{IMAGE}`: 4 layers, "
              + ", ".join(f"{c} {s / 1e6:.1f} MB compressed" for c, s in sizes.items())
              + "; final tree per `pull-floor create`: "
              + "; ".join(f"{c}: {n}" for c, n in counts.items()) + ".\n",
              "Tools: " + "; ".join([sh(cairn, "--version").stdout.strip(),
                                     sh("podman", "--version").stdout.strip(),
                                     sh("skopeo", "--version").stdout.strip(),
                                     sh("curl", "--version").stdout.splitlines()[0],
                                     f"pull-floor (benches/floor at {rev})"]) + "\n",
              "Floor parts (seconds): `download` one curl --parallel fetching every blob to /dev/null; "
              "`decompress` pull-floor decoding every layer to a sink over the cores (process wall time, "
              "layers read from the registry's storage); `create` pull-floor writing the final tree "
              "(directories, files over the cores with owner, mode and mtime, symlinks, hard links, "
              "directory metadata; its own timer). `floor` is the largest (the issue's floor). `work` is "
              "the work floor: the CPU seconds (user + system) of `pull-floor verify` (every layer "
              "decompressed, its blob digest and its diff id computed: the SHA-256s a puller must check) "
              "plus those of `pull-floor create`, divided by the cores, i.e. that work spread perfectly "
              "over every core with nothing else to do. Rootless rows share their configuration's floor "
              "(measured as root).\n",
              "| fs | registry | comp | user | cairn s | podman s | cairn/podman | download | decompress "
              "| create | floor | cairn/floor | work | cairn/work | cairn RSS MiB | load 1m |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ratios, floor_ratios, work_ratios, dl_ratios, rss_all = [], [], [], [], []
    for (fs_kind, storage, comp), parts in floors.items():
        pm = {p: statistics.median(v) for p, v in parts.items()}
        fl = max(pm["download"], pm["decompress"], pm["create"])
        wf = pm["work"]
        for who in args.users:
            key = (fs_kind, storage, comp, who)
            c, p = med((*key, "cairn")), med((*key, "podman"))
            rss = max(r for _, r in results[(*key, "cairn")])
            rss_all.append(rss)
            ratios.append(c / p)
            floor_ratios.append(c / fl)
            work_ratios.append(c / wf)
            lines.append(f"| {fs_kind} | {storage} | {comp} | {who} | {c:.3f} | {p:.3f} | {c / p:.2f}x | "
                         f"{pm['download']:.3f} | {pm['decompress']:.3f} | {pm['create']:.3f} | {fl:.3f} | "
                         f"{c / fl:.2f}x | {wf:.3f} | {c / wf:.2f}x | {rss:.1f} | "
                         f"{loads[(fs_kind, storage, comp)]:.2f} |")
    lines += ["", "Download only, as root: `cairn pull --unpack=false` vs `skopeo copy docker://REF oci:DIR`:\n",
              "| fs | registry | comp | cairn --unpack=false s | skopeo s | ratio | cairn RSS MiB |",
              "|---|---|---|---|---|---|---|"]
    for fs_kind, storage, comp in floors:
        key = (fs_kind, storage, comp, "root")
        c, s = med((*key, "cairn-download")), med((*key, "skopeo"))
        rss = max(r for _, r in results[(*key, "cairn-download")])
        rss_all.append(rss)
        dl_ratios.append(c / s)
        lines.append(f"| {fs_kind} | {storage} | {comp} | {c:.3f} | {s:.3f} | {c / s:.2f}x | {rss:.1f} |")
    peak = max(rss_all)
    targets = [
        ("cairn pull / podman pull, worst row", max(ratios), 0.15, "x"),
        ("cairn pull / floor, worst row", max(floor_ratios), 1.5, "x"),
        ("cairn pull --unpack=false / skopeo copy, worst row", max(dl_ratios), 0.4, "x"),
    ]
    lines += ["", f"cairn / work floor over the rows above: {min(work_ratios):.2f}x to {max(work_ratios):.2f}x "
              "(informational: the issue's floor takes the largest part, the work floor their sum over "
              "the cores).", "", "Targets (issue 24), over the rows above:\n",
              "| target | measured | limit | rows met | met |", "|---|---|---|---|---|"]
    for (what, got, limit, unit), rs in zip(targets, (ratios, floor_ratios, dl_ratios)):
        n = sum(r <= limit for r in rs)
        lines.append(f"| {what} | {got:.2f}{unit} | {limit}{unit} | {n}/{len(rs)} | {'yes' if got <= limit else 'no'} |")
    lines.append(f"| cairn peak RSS (GNU time %M), any run | {peak:.1f} MiB | 200 MB | "
                 f"{sum(r * 1.048576 < 200 for r in rss_all)}/{len(rss_all)} | "
                 f"{'yes' if peak * 1.048576 < 200 else 'no'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
