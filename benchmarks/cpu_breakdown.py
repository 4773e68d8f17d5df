"""Where the CPU of a test run goes, from /proc and the containers' cgroups.

A :class:`ProcSampler` thread reads ``/proc/<pid>/stat`` of every process a
few times a second while a run goes on (and the cpuacct cgroup of every
container, when cgroup v1 accounting is mounted).  At the end every process
contributes the CPU it used inside the window:

* a process alive at the start counts from its first sample, one born during
  the window from zero; one that exits counts up to its last sample;
* short-lived helpers are never sampled (``iptables`` and the netns setup
  dockerd runs, ``runc`` and its hooks under a shim): what dockerd's and
  containerd's ``cutime + cstime`` grew by beyond the CPU of their children
  seen exiting is theirs ("unsampled children"); a shim reaps runc *and* the
  container's processes, so its runc share is what it reaped minus the
  container's cgroup usage.  Shims are re-parented to init, which nobody
  samples, so a second loop reads them (and their containers' cgroups) every
  50 ms;
* a container's CPU is its cgroup's ``cpuacct.usage`` (every process it ever
  ran, down to the last sample); the per-process container figures are kept
  only to show which programs inside used it.

Processes are classed by what they are (``dockerd``, ``containerd``,
``containerd-shim``, ``runc``, ``docker-proxy``, helpers dockerd runs), by
whether they descend from the run's root process (pytest controller, zygote,
workers, process-backend brokers and services), and containers by the role
label their creator gave them (``broker``, ``service:*``), which
``docker_ops`` records.  What the machine's ``/proc/stat`` counted as busy but
no class got is "unattributed" (interrupts and softirq, CPU of processes
between their last sample and exit).  Engine daemons are shared with every
other run on the host: their figures include other people's work.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")
CPUACCT_DOCKER = Path("/sys/fs/cgroup/cpuacct/docker")
_CONTAINER_ID = re.compile(r"/docker/([0-9a-f]{64})")
_SHIM_ID = re.compile(r"-id ([0-9a-f]{64})")

# Classes, in report order.
DAEMON_CLASSES = {
    "dockerd": "dockerd",
    "containerd": "containerd",
    "containerd-shim": "containerd-shim",
    "runc": "runc (+ hooks)",
    "docker-proxy": "docker-proxy",
}
NET_HELPERS = {"iptables", "ip6tables", "iptables-legacy", "iptables-nft", "xtables-nft-mul", "ip"}
# Whose short-lived children a parent's reaped-children CPU is (when never sampled).
_UNSAMPLED_CHILDREN = {
    "dockerd": "dockerd children (iptables, proxy, netns)",
    "containerd": "containerd",
    "containerd-shim": "runc (+ hooks)",
}
# The run's own processes and containers, then the engine's, then the rest.
OWN_CLASSES = (
    "pytest controller",
    "pytest workers",
    "zygote + launchers",
    "brokers (process)",
    "services (process)",
    "broker containers",
    "service containers",
    "task containers",
)
ENGINE_CLASSES = (
    "dockerd",
    "dockerd children (iptables, proxy, netns)",
    "containerd",
    "containerd-shim",
    "runc (+ hooks)",
    "docker-proxy",
)
ORDER = [
    *OWN_CLASSES,
    *ENGINE_CLASSES,
    "other containers (not this run)",
    "benchmark (sampler)",
    "kernel threads",
    "other processes (not this run)",
    "unattributed (irq, exited between samples)",
]


@dataclass
class Proc:
    pid: int
    start: int
    ppid: int
    comm: str
    cmdline: str
    container: str | None
    first_cpu: float  # own utime+stime at first sample (0 if born in the window)
    first_children: float  # cutime+cstime at first sample (0 if born in the window)
    cpu: float = 0.0  # last seen own CPU
    children: float = 0.0  # last seen reaped children's CPU
    alive: bool = True
    klass: str = ""
    shim_of: str | None = None  # a containerd shim: the container it runs

    @property
    def own(self) -> float:
        return max(0.0, self.cpu - self.first_cpu)

    @property
    def reaped(self) -> float:
        return max(0.0, self.children - self.first_children)


def _read_stat(pid: str) -> tuple[int, str, int, float, float] | None:
    """(start ticks, comm, ppid, own CPU s, reaped children's CPU s) or None if gone."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
    except OSError:
        return None
    try:
        raw = os.read(fd, 4096).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)
    left, right = raw.find("("), raw.rfind(")")
    comm = raw[left + 1 : right]
    fields = raw[right + 2 :].split()
    # fields[0] is state (field 3); utime is field 14 -> index 11.
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    start = int(fields[19])
    return start, comm, ppid, (utime + stime) / CLK_TCK, (cutime + cstime) / CLK_TCK


def _read_text(path: str) -> str:
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def busy_cpu_s() -> float:
    """Busy CPU seconds of the whole machine so far (all CPUs), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    ticks = [int(value) for value in fields[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLK_TCK


def _cgroup_usage() -> dict[str, float]:
    """CPU seconds of every current container (cgroup v1 cpuacct), by full id."""
    usage: dict[str, float] = {}
    try:
        entries = list(os.scandir(CPUACCT_DOCKER))
    except OSError:
        return usage
    for entry in entries:
        if len(entry.name) == 64 and entry.is_dir():
            text = _read_text(f"{entry.path}/cpuacct.usage").strip()
            if text:
                usage[entry.name] = int(text) / 1e9
    return usage


def _docker_total() -> float | None:
    text = _read_text(str(CPUACCT_DOCKER / "cpuacct.usage")).strip()
    return int(text) / 1e9 if text else None


class ProcSampler:
    """Samples every process (and container cgroup) until stopped; then :meth:`report`."""

    def __init__(
        self, root_pid: int | None = None, interval: float = 0.5, shim_interval: float = 0.05
    ) -> None:
        self.root_pid = root_pid
        self.interval = interval
        # containerd shims are re-parented to init: when one exits, nobody we sample
        # reaps it, so its CPU (and its runc children's) would be lost between
        # sweeps.  They are few; a second loop reads only them, often.
        self.shim_interval = shim_interval
        self._shims: dict[str, Proc] = {}
        self.procs: dict[tuple[int, int], Proc] = {}
        self.cgroups_first: dict[str, float] = {}
        self.cgroups_last: dict[str, float] = {}
        self.sweeps = 0
        self.sweep_s = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)
        self._started = False

    def start(self) -> ProcSampler:
        self.busy_before = busy_cpu_s()
        self.docker_before = _docker_total()
        self.wall_before = time.perf_counter()
        self.load_before = os.getloadavg()
        self.self_before = time.process_time()
        self._sweep(first=True)
        self._thread.start()
        self._started = True
        return self

    def set_root(self, pid: int) -> None:
        self.root_pid = pid

    def stop(self) -> None:
        self._stop.set()
        if self._started:
            self._thread.join(10)
        self._sweep()
        self.busy_after = busy_cpu_s()
        self.docker_after = _docker_total()
        self.wall_after = time.perf_counter()
        self.load_after = os.getloadavg()
        self.self_after = time.process_time()

    def _run(self) -> None:
        next_sweep = time.monotonic() + self.interval
        while not self._stop.wait(self.shim_interval):
            if time.monotonic() >= next_sweep:
                self._sweep()
                next_sweep = time.monotonic() + self.interval
            else:
                self._shim_sweep()

    def _shim_sweep(self) -> None:
        started = time.perf_counter()
        for pid, proc in list(self._shims.items()):
            stat = _read_stat(pid)
            if stat is None or stat[0] != proc.start:
                del self._shims[pid]
                continue
            proc.cpu, proc.children = stat[3], stat[4]
            if proc.shim_of is not None:
                text = _read_text(f"{CPUACCT_DOCKER}/{proc.shim_of}/cpuacct.usage").strip()
                if text:
                    self.cgroups_first.setdefault(proc.shim_of, 0.0)
                    self.cgroups_last[proc.shim_of] = int(text) / 1e9
        self.sweep_s += time.perf_counter() - started

    def _sweep(self, *, first: bool = False) -> None:
        started = time.perf_counter()
        seen: set[tuple[int, int]] = set()
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            stat = _read_stat(name)
            if stat is None:
                continue
            start, comm, ppid, cpu, children = stat
            key = (int(name), start)
            seen.add(key)
            proc = self.procs.get(key)
            if proc is None:
                cgroup = _CONTAINER_ID.search(_read_text(f"/proc/{name}/cgroup"))
                cmdline = _read_text(f"/proc/{name}/cmdline").replace("\0", " ").strip()
                shim_of = _SHIM_ID.search(cmdline) if comm.startswith("containerd-shim") else None
                proc = Proc(
                    pid=int(name),
                    start=start,
                    ppid=ppid,
                    comm=comm,
                    cmdline=cmdline,
                    container=cgroup.group(1) if cgroup else None,
                    first_cpu=cpu if first else 0.0,
                    first_children=children if first else 0.0,
                    shim_of=shim_of.group(1) if shim_of else None,
                )
                self.procs[key] = proc
                if comm.startswith("containerd-shim"):
                    self._shims[name] = proc
            proc.cpu, proc.children, proc.ppid = cpu, children, ppid
            if proc.comm != comm:  # after exec (runc init -> the container's program)
                proc.comm = comm
                proc.cmdline = _read_text(f"/proc/{name}/cmdline").replace("\0", " ").strip()
        for key, proc in self.procs.items():
            if proc.alive and key not in seen:
                proc.alive = False
        usage = _cgroup_usage()
        for cid, seconds in usage.items():
            if cid not in self.cgroups_first:
                self.cgroups_first[cid] = seconds if first else 0.0
            self.cgroups_last[cid] = seconds
        self.sweeps += 1
        self.sweep_s += time.perf_counter() - started

    # -- classification -----------------------------------------------------

    def _in_tree(self, proc: Proc, by_pid: dict[int, Proc]) -> bool:
        if self.root_pid is None:
            return False
        hops = 0
        current: Proc | None = proc
        while current is not None and hops < 64:
            if current.pid == self.root_pid:
                return True
            current = by_pid.get(current.ppid)
            hops += 1
        return False

    def _classify(self, proc: Proc, by_pid: dict[int, Proc], roles: dict[str, str]) -> str:
        if proc.pid == os.getpid():
            return "benchmark (sampler)"
        if proc.container is not None:
            role = roles.get(proc.container)
            if role is None:
                return "other containers (not this run)"
            return _role_class(role)
        comm = proc.comm
        if "libnetwork-setkey" in proc.cmdline:  # runc's prestart hook (the dockerd binary)
            return "runc (+ hooks)"
        if "setup-resolver" in proc.cmdline or "set-ipv6" in proc.cmdline:
            return "dockerd children (iptables, proxy, netns)"
        if comm.startswith("containerd-shim"):
            if proc.shim_of is not None and roles and proc.shim_of not in roles:
                return "other containers (not this run)"  # another run's shim and runc
            return "containerd-shim"
        if comm.startswith("runc"):
            return "runc (+ hooks)"
        if comm in DAEMON_CLASSES:
            return DAEMON_CLASSES[comm]
        if comm in NET_HELPERS:
            return "dockerd children (iptables, proxy, netns)"
        if proc.pid == 2 or proc.ppid == 2:
            return "kernel threads"
        if self._in_tree(proc, by_pid):
            if proc.pid == self.root_pid:
                return "pytest controller"
            if comm == "mosquitto" or "mqtt.embedded" in proc.cmdline:
                return "brokers (process)"
            if "-m wildfire." in proc.cmdline:
                return "services (process)"
            if "zygote.py serve" in proc.cmdline or "zygote.py launch" in proc.cmdline:
                # Forked workers keep the zygote's command line: the zygote and the
                # launchers are the controller's children, the workers the zygote's.
                parent = by_pid.get(proc.ppid)
                if parent is not None and parent.pid == self.root_pid:
                    return "zygote + launchers"
            return "pytest workers"
        return "other processes (not this run)"

    def _unsampled_children(self, proc: Proc, exited_children: dict[int, float]) -> float:
        """CPU of ``proc``'s reaped children that no sample saw (daemons only).

        For dockerd and containerd: what their ``cutime + cstime`` grew by
        minus what their children seen exiting had used.  A shim reaps runc
        and the container's own processes: its runc share is what it reaped
        minus the container's cgroup usage (which the container's line has).
        Other parents are left alone: a child's late-reaped descendants would
        be counted twice.
        """
        if proc.klass not in _UNSAMPLED_CHILDREN:
            return 0.0
        if proc.klass == "containerd-shim" and proc.shim_of is not None:
            inside = self.cgroups_last.get(proc.shim_of, 0.0) - self.cgroups_first.get(
                proc.shim_of, 0.0
            )
            return max(0.0, proc.reaped - inside)
        return max(0.0, proc.reaped - exited_children.get(proc.pid, 0.0))

    def report(self, roles: dict[str, str]) -> dict[str, Any]:
        """CPU seconds per class (and per program inside containers) for this window.

        ``roles`` maps full container ids to their role label (``broker``,
        ``service:fire_consensus``); containers not in it are someone else's.
        """
        by_pid = {p.pid: p for p in self.procs.values() if p.alive}
        for proc in self.procs.values():
            by_pid.setdefault(proc.pid, proc)
        classes: dict[str, float] = dict.fromkeys(ORDER, 0.0)
        programs: dict[str, float] = {}
        counts: dict[str, int] = dict.fromkeys(ORDER, 0)
        exited_children: dict[int, float] = {}
        for proc in self.procs.values():
            proc.klass = self._classify(proc, by_pid, roles)
            if not proc.alive:
                # The parent's cutime grows by the child's whole life, not only
                # the part inside the window.
                exited_children[proc.ppid] = exited_children.get(proc.ppid, 0.0) + (
                    proc.cpu + proc.children
                )
        for proc in self.procs.values():
            counts[proc.klass] += 1
            if proc.container is not None and proc.container in self.cgroups_last:
                # The container's cgroup counts it (below); keep the program split.
                label = f"{proc.klass}: {proc.comm}"
                programs[label] = programs.get(label, 0.0) + proc.own
            else:
                classes[proc.klass] += proc.own
            unsampled = self._unsampled_children(proc, exited_children)
            if unsampled > 0.005:
                key = _UNSAMPLED_CHILDREN[proc.klass]
                classes[key] += unsampled
                label = f"{proc.klass}: unsampled children"
                programs[label] = programs.get(label, 0.0) + unsampled
        # Containers: the cgroup's own accounting covers all of their processes.
        for cid, last in self.cgroups_last.items():
            role = roles.get(cid)
            seconds = max(0.0, last - self.cgroups_first.get(cid, 0.0))
            classes[_role_class(role) if role else "other containers (not this run)"] += seconds
        busy = self.busy_after - self.busy_before
        attributed = sum(classes.values())
        classes["unattributed (irq, exited between samples)"] = max(0.0, busy - attributed)
        docker_cgroup = (
            self.docker_after - self.docker_before
            if self.docker_after is not None and self.docker_before is not None
            else None
        )
        return {
            "wall_s": round(self.wall_after - self.wall_before, 3),
            "busy_cpu_s": round(busy, 3),
            "classes_s": {k: round(v, 3) for k, v in classes.items() if v or counts.get(k)},
            "process_counts": {k: v for k, v in counts.items() if v},
            "container_programs_s": {
                k: round(v, 3) for k, v in sorted(programs.items(), key=lambda kv: -kv[1])
            },
            "all_containers_cgroup_s": round(docker_cgroup, 3) if docker_cgroup else None,
            "containers_seen": len(self.cgroups_last),
            "load_before": [round(v, 2) for v in self.load_before],
            "load_after": [round(v, 2) for v in self.load_after],
            "sweeps": self.sweeps,
            "sweep_cost_s": round(self.sweep_s, 3),
        }


def _role_class(role: str) -> str:
    if role == "broker":
        return "broker containers"
    if role.startswith("service:"):
        return "service containers"
    return "task containers"
