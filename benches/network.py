#!/usr/bin/env python3
"""Container networking: cairn vs podman (4.3, crun), root and rootless, in one run.

Each engine on its DEFAULT network (no --network flag), on the `net` fixture image (debian-min
plus python3, iperf3, the udp-echo and tcp-echo scripts), imported into every store:

  throughput  TCP through a published port: `iperf3 -s` in a container published on
              127.0.0.1:PORT, the host's `iperf3 -c 127.0.0.1 -p PORT -t SECONDS`; the
              receiver's bits/s. --runs runs per engine, median.
  latency     small request/response pairs through a published port: the image's tcp-echo in a
              container, a host client (this script, TCP_NODELAY) sending 32 bytes and reading
              them back --requests times on one connection; per run the median round trip,
              then the median of the runs (and the runs' p99s).
  run         `run --rm net true` on the default network, --run-runs runs, median.

Root: cairn's `podman` bridge (netavark, cairn0) vs podman's (netavark, podman0). Rootless (the
test user $CAIRN_TEST_USER, default cairntest): cairn's pasta vs podman 4.3's default, which is
slirp4netns with its rootlessport forwarder (read back from each container's
`.HostConfig.NetworkMode` and printed). The engines alternate run by run after a warm-up.
Everything is on 127.0.0.1 and in the containers' own namespaces.

A cairn measurement that fails (no private network namespace, a port that does not answer, an
error) is printed and recorded as FAILED with the reason; no number stands in for it.

Targets (issue 20): throughput >= 1.0x podman's in each mode; run <= 0.3x podman's.

Run as root: benches/network.py [--runs 5] [--seconds 3] [--requests 2000] [--run-runs 15]
  [--modes root,rootless] [--no-build] [--out benches/results/network.md]
Images: $CAIRN_TEST_IMAGES when set, else tests/support/build-images.sh's layout.
"""

import argparse
import json
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IMAGE = "localhost/net:latest"
UP_SECONDS = 30


class Failed(Exception):
    """A measurement that could not be made; the message says why."""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_hugetlb_v1():
    """crun 1.8 refuses this hybrid cgroup host while hugetlb is on cgroup2."""
    if not Path("/sys/fs/cgroup/unified").exists():
        return
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" - ", 1)[1].split() if " - " in line else []
        if fields and fields[0] == "cgroup" and "hugetlb" in fields[2].split(","):
            return
    os.makedirs("/sys/fs/cgroup/hugetlb", exist_ok=True)
    subprocess.run(["mount", "-t", "cgroup", "-o", "hugetlb", "cgroup", "/sys/fs/cgroup/hugetlb"],
                   check=True)


def unmount_under(path):
    prefix = str(path) + "/"
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for m in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", m], check=False)


class Engine:
    """One engine (cairn or podman) in one mode (root or rootless), isolated under `d`."""

    def __init__(self, name, mode, d, cairn_bin, user):
        self.name, self.mode, self.d, self.user = name, mode, d, user
        d.mkdir(parents=True)
        if name == "podman":
            for sub in ("storage", "run", "tmp", "networks"):
                (d / sub).mkdir()
            limits = ('["nofile=20000:20000", "nproc=32768:32768"]' if mode == "root" else "[]")
            (d / "containers.conf").write_text(
                f"[containers]\ndefault_ulimits = {limits}\n"
                "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
                f"events_logfile_path = \"{d}/events.log\"\nruntime = \"crun\"\n"
                f"image_copy_tmp_dir = \"{d}/tmp\"\n"
                f"[network]\nnetwork_config_dir = \"{d}/networks\"\n")
            (d / "storage.conf").write_text(
                f"[storage]\ndriver = \"overlay\"\ngraphroot = \"{d}/storage\"\n"
                f"runroot = \"{d}/run\"\n")
            (d / "registries.conf").write_text("")
            self.env = {"HOME": str(d), "TMPDIR": str(d / "tmp"), "XDG_RUNTIME_DIR": str(d / "run"),
                        "CONTAINERS_CONF": str(d / "containers.conf"),
                        "CONTAINERS_STORAGE_CONF": str(d / "storage.conf"),
                        "CONTAINERS_REGISTRIES_CONF": str(d / "registries.conf")}
            self.base = ["podman", "--root", str(d / "storage"), "--runroot", str(d / "run"),
                         "--tmpdir", str(d / "tmp"), "--storage-driver", "overlay"]
        else:
            for sub in ("home", "run"):
                (d / sub).mkdir()
            (d / "registries.conf").write_text("")
            self.env = {"HOME": str(d / "home"), "XDG_RUNTIME_DIR": str(d / "run"),
                        "CAIRN_ROOT": str(d / "store"),
                        "CONTAINERS_REGISTRIES_CONF": str(d / "registries.conf")}
            self.base = [cairn_bin]
        if mode == "rootless":
            subprocess.run(["chown", "-R", f"{user.pw_uid}:{user.pw_gid}", str(d)], check=True)
            self.env.update({"USER": user.pw_name, "LOGNAME": user.pw_name})

    def argv(self, *args):
        env = [f"{k}={v}" for k, v in self.env.items()]
        full = ["env", "-i", f"PATH={os.environ['PATH']}", *env, *self.base, *args]
        if self.mode == "rootless":
            return ["setpriv", f"--reuid={self.user.pw_uid}", f"--regid={self.user.pw_gid}",
                    "--init-groups", "--", *full]
        return full

    def run(self, *args, timeout=120):
        return subprocess.run(self.argv(*args), text=True, capture_output=True, timeout=timeout)

    def ok(self, *args):
        p = self.run(*args)
        if p.returncode != 0:
            raise Failed(f"{self.name} {' '.join(args)}: exit {p.returncode}: "
                         f"{(p.stderr or p.stdout).strip()}")
        return p.stdout

    def label(self):
        return f"{self.name} ({self.mode})"


def import_image(e, layout):
    image_id = e.ok("pull", "-q", f"oci:{layout}:net").strip()
    e.ok("tag", image_id, IMAGE)


def start_server(e, name, container_port, argv):
    """`run -d` of a server published on 127.0.0.1:PORT (default network); checks the
    container has a network namespace of its own; returns PORT and the network mode."""
    port = free_port()
    e.ok("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:{container_port}", IMAGE, *argv)
    pid = e.ok("inspect", "--format", "{{.State.Pid}}", name).strip()
    mode = e.run("inspect", "--format", "{{.HostConfig.NetworkMode}}", name).stdout.strip() or "?"
    try:
        theirs = os.readlink(f"/proc/{pid}/ns/net")
    except OSError as err:
        raise Failed(f"{e.label()}: container process {pid}: {err}") from err
    if theirs == os.readlink("/proc/self/ns/net"):
        raise Failed(f"{e.label()}: the container shares the host's network namespace "
                     f"(network mode {mode!r}): nothing to measure")
    return port, mode


def iperf(port, seconds):
    p = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
                       text=True, capture_output=True, timeout=seconds + 30)
    try:
        out = json.loads(p.stdout)
    except ValueError as err:
        raise Failed(f"iperf3 -c 127.0.0.1 -p {port}: exit {p.returncode}: {p.stderr.strip()}") from err
    if p.returncode != 0 or "error" in out:
        raise Failed(f"iperf3 -c 127.0.0.1 -p {port}: {out.get('error', p.stderr.strip())}")
    return out["end"]["sum_received"]["bits_per_second"]


def wait_iperf(port):
    deadline = time.monotonic() + UP_SECONDS
    while True:
        try:
            return iperf(port, 1)
        except (Failed, subprocess.TimeoutExpired) as err:
            if time.monotonic() > deadline:
                raise Failed(f"no iperf3 server on 127.0.0.1:{port} within {UP_SECONDS} s: {err}") from err
            time.sleep(0.5)


def echo_round_trips(port, requests):
    """Round trips (seconds) of `requests` 32-byte request/response pairs on one connection."""
    msg = b"x" * 32
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for _ in range(requests):
            t = time.perf_counter()
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                chunk = s.recv(len(msg) - len(got))
                if not chunk:
                    raise Failed(f"127.0.0.1:{port} closed the connection")
                got += chunk
            times.append(time.perf_counter() - t)
    return times


def wait_echo(port):
    deadline = time.monotonic() + UP_SECONDS
    while True:
        try:
            return echo_round_trips(port, 1)
        except (Failed, OSError) as err:
            if time.monotonic() > deadline:
                raise Failed(f"no echo on 127.0.0.1:{port} within {UP_SECONDS} s: {err}") from err
            time.sleep(0.2)


def timed_run(e):
    t = time.perf_counter()
    p = e.run("run", "--rm", IMAGE, "true")
    if p.returncode != 0:
        raise Failed(f"{e.label()} run --rm true: exit {p.returncode}: {p.stderr.strip()}")
    return time.perf_counter() - t


def p99(v):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(0.99 * (len(v) - 1))))]


def check_private_run(e):
    """`run --rm IMAGE` on the default network must get a network namespace of its own."""
    ns = e.ok("run", "--rm", IMAGE, "readlink", "/proc/self/ns/net").strip()
    if ns == os.readlink("/proc/self/ns/net"):
        raise Failed(f"{e.label()}: `run` on the default network shares the host's network "
                     "namespace: nothing to compare")


def bench_mode(mode, engines, args, results, modes, failures):
    """Measures every engine of `mode`; fills results[(mode, what, engine)] and
    failures[(mode, engine, part)] (part: "ports" for throughput and latency, "run")."""
    def fail(e, part, err):
        failures[(mode, e.name, part)] = str(err)
        print(f"FAILED {e.label()} {part}: {err}", file=sys.stderr)

    ports, runs = {}, {}
    for e in engines:
        try:
            import_image(e, args.layout)
        except Failed as err:
            fail(e, "ports", err)
            fail(e, "run", err)
            continue
        try:
            ip, mode_name = start_server(e, "ipf", 5201, ["iperf3", "-s"])
            ep, _ = start_server(e, "echo", 9001, ["tcp-echo", "9001"])
            modes[(mode, e.name)] = mode_name
            wait_iperf(ip)
            wait_echo(ep)
            ports[e.name] = (e, ip, ep)
        except (Failed, subprocess.TimeoutExpired) as err:
            fail(e, "ports", err)
            got = e.run("inspect", "--format", "{{.HostConfig.NetworkMode}}", "ipf").stdout.strip()
            modes.setdefault((mode, e.name), got or "?")
        try:
            check_private_run(e)
            for _ in range(2):
                timed_run(e)
            runs[e.name] = e
        except (Failed, subprocess.TimeoutExpired) as err:
            fail(e, "run", err)
    order = ("cairn", "podman")
    for i in range(args.runs):
        for n in order if i % 2 == 0 else order[::-1]:
            if n not in ports or (mode, n, "ports") in failures:
                continue
            e, ip, ep = ports[n]
            try:
                results.setdefault((mode, "throughput", n), []).append(iperf(ip, args.seconds))
                rt = echo_round_trips(ep, args.requests)
                results.setdefault((mode, "latency", n), []).append(statistics.median(rt))
                results.setdefault((mode, "latency-p99", n), []).append(p99(rt))
            except (Failed, OSError, subprocess.TimeoutExpired) as err:
                fail(e, "ports", err)
    for i in range(args.run_runs):
        for n in order if i % 2 == 0 else order[::-1]:
            if n not in runs or (mode, n, "run") in failures:
                continue
            try:
                results.setdefault((mode, "run", n), []).append(timed_run(runs[n]))
            except (Failed, subprocess.TimeoutExpired) as err:
                fail(runs[n], "run", err)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="throughput and latency runs per engine")
    ap.add_argument("--seconds", type=int, default=3, help="iperf3 seconds per run")
    ap.add_argument("--requests", type=int, default=2000, help="round trips per latency run")
    ap.add_argument("--run-runs", type=int, default=15, help="`run --rm true` runs per engine")
    ap.add_argument("--modes", default="root,rootless")
    ap.add_argument("--out", default=str(REPO / "benches/results/network.md"))
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (root engines, the test user's rootless ones, hugetlb mount)")
    modes_wanted = [m for m in args.modes.split(",") if m]
    if not set(modes_wanted) <= {"root", "rootless"}:
        sys.exit("--modes: root and/or rootless")
    for tool in ("iperf3", "podman", "setpriv"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found: run tests/support/install-deps.sh")
    subprocess.run([str(REPO / "tests/support/install-deps.sh")], check=True)  # /dev/net/tun 0666
    subprocess.run([str(REPO / "tests/support/test-user.sh")], check=True)
    user = pwd.getpwnam(os.environ.get("CAIRN_TEST_USER", "cairntest"))
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    if not args.no_build:
        subprocess.run(["cargo", "build", "--release", "--quiet", "-p", "cairn-cli", "-p", "cairn-runtime"],
                       cwd=REPO, check=True)
    cairn_bin = str(target / "release/cairn")
    args.layout = os.environ.get("CAIRN_TEST_IMAGES") or subprocess.run(
        [str(REPO / "tests/support/build-images.sh")], check=True, text=True,
        capture_output=True).stdout.strip().splitlines()[-1]
    ensure_hugetlb_v1()
    load_start = os.getloadavg()[0]

    work = Path(tempfile.mkdtemp(prefix="cairn-nb-", dir="/tmp"))
    os.chmod(work, 0o755)
    results, modes, failures = {}, {}, {}
    engines = []
    try:
        for mode in modes_wanted:
            es = [Engine(n, mode, work / f"{mode[0] if mode == 'root' else 'u'}-{n[0]}", cairn_bin, user)
                  for n in ("cairn", "podman")]
            engines += es
            bench_mode(mode, es, args, results, modes, failures)
            for e in es:
                e.run("rm", "-a", "-f", "-t", "0")
    finally:
        for e in engines:
            try:
                e.run("rm", "-a", "-f", "-t", "0")
            except subprocess.TimeoutExpired:
                pass
        unmount_under(work)
        shutil.rmtree(work, ignore_errors=True)

    load = os.getloadavg()
    commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                            text=True, capture_output=True).stdout.strip()
    cv = subprocess.run([cairn_bin, "--version"], text=True, capture_output=True).stdout.strip()
    pv = subprocess.run(["podman", "--version"], text=True, capture_output=True).stdout.strip()
    lines = [
        "# Network benchmark\n",
        f"Command: `benches/network.py --runs {args.runs} --seconds {args.seconds} "
        f"--requests {args.requests} --run-runs {args.run_runs} --modes {args.modes}`"
        + (f" (CARGO_TARGET_DIR={os.environ['CARGO_TARGET_DIR']})" if "CARGO_TARGET_DIR" in os.environ else "")
        + "  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores "
        f"(1-minute load average {load_start:.1f} at the start, {load[0]:.1f} at the end: other work "
        f"shares this VM); {cv or 'cairn ?'} at {commit} ({Path(cairn_bin).resolve()}); {pv} (crun, netavark 1.4); "
        f"rootless as `{user.pw_name}`. Each engine on its default network, image `net`; engines "
        "alternating, after a warm-up.\n",
        "Default networks (`.HostConfig.NetworkMode` of the server containers): "
        + ", ".join(f"{n} {m}: {modes.get((m, n), '?')}" for m in modes_wanted for n in ("cairn", "podman"))
        + ".\n",
        "| mode | measurement | engine | median | min | max | runs | cairn/podman |",
        "|---|---|---|---|---|---|---|---|",
    ]
    units = {"throughput": (1e-9, "Gbit/s", 2), "latency": (1e6, "µs", 1),
             "latency-p99": (1e6, "µs", 1), "run": (1e3, "ms", 1)}
    labels = {"throughput": "TCP throughput, iperf3 through 127.0.0.1:PORT",
              "latency": f"round trip, 32 B, median of {args.requests}",
              "latency-p99": f"round trip, 32 B, p99 of {args.requests}",
              "run": "`run --rm net true`"}
    med = {k: statistics.median(v) for k, v in results.items() if v}
    for mode in modes_wanted:
        for what in ("throughput", "latency", "latency-p99", "run"):
            scale, unit, digits = units[what]
            for n in ("cairn", "podman"):
                v = results.get((mode, what, n), [])
                part = "run" if what == "run" else "ports"
                if (mode, n, part) in failures:
                    lines.append(f"| {mode} | {labels[what]} | {n} | FAILED | | | {len(v)} | |")
                    continue
                if not v:
                    continue
                ratio = ""
                if n == "cairn" and (mode, what, "podman") in med:
                    ratio = f"{med[(mode, what, 'cairn')] / med[(mode, what, 'podman')]:.2f}x"
                lines.append(f"| {mode} | {labels[what]} | {n} | {med[(mode, what, n)] * scale:.{digits}f} {unit} | "
                             f"{min(v) * scale:.{digits}f} | {max(v) * scale:.{digits}f} | {len(v)} | {ratio} |")
    lines.append("")
    if failures:
        lines.append("Failures (no number is given for these):")
        for (mode, n, part), why in sorted(failures.items()):
            lines.append(f"- {n} ({mode}), {'throughput and latency' if part == 'ports' else 'run'}: {why}")
        lines.append("")
    lines.append("Targets (issue 20):")
    for mode in modes_wanted:
        for what, want, cmp in (("throughput", 1.0, ">="), ("run", 0.3, "<=")):
            part = "run" if what == "run" else "ports"
            c, p = med.get((mode, what, "cairn")), med.get((mode, what, "podman"))
            if (mode, "cairn", part) in failures:
                c = None
            if (mode, "podman", part) in failures:
                p = None
            if c is None or p is None:
                lines.append(f"- {mode} {what} {cmp} {want}x podman's: not measured "
                             f"({'cairn failed' if c is None else 'podman failed'})")
                continue
            r = c / p
            met = r >= want if cmp == ">=" else r <= want
            lines.append(f"- {mode} {what} {cmp} {want}x podman's: {r:.2f}x, {'met' if met else 'NOT met'}")
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
