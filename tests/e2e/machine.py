"""What the bed's node can leave on the machine, read straight from the kernel and the
tools (independently of the node's own bookkeeping), to compare before and after."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

SYSCTLS = ("net/ipv4/ip_forward", "vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")


def _out(*argv: str) -> str:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False).stdout


def _iptables(table: str) -> list[str]:
    # Rules and chains, without packet counters (they change on their own).
    lines = _out("iptables-save", "-t", table).splitlines()
    return sorted(
        re.sub(r"\[\d+:\d+\]", "", line) for line in lines if line and not line.startswith("#")
    )


@dataclass(frozen=True)
class MachineSnapshot:
    links: tuple[str, ...]
    iptables: tuple[str, ...]
    netns: tuple[str, ...]
    mounts: tuple[str, ...]
    processes: tuple[str, ...]
    cgroups: tuple[str, ...]
    sysctls: tuple[tuple[str, str], ...]

    @classmethod
    def take(cls, bed_root: Path) -> MachineSnapshot:
        root = str(bed_root.resolve())
        links = tuple(
            sorted(
                line.split(":")[1].strip().split("@")[0]
                for line in _out("ip", "-o", "link").splitlines()
            )
        )
        rules = tuple(f"{t}: {r}" for t in ("filter", "nat", "mangle") for r in _iptables(t))
        netns_dir = Path("/run/netns")
        netns = tuple(sorted(p.name for p in netns_dir.iterdir())) if netns_dir.is_dir() else ()
        mounts = tuple(
            sorted(
                line.split()[4]
                for line in Path("/proc/self/mountinfo").read_text().splitlines()
                if root in line.split()[4] or "/run/netns/" in line.split()[4]
            )
        )
        processes = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                if root in cmdline or "containerd-shim" in cmdline:
                    processes.append(cmdline[:120])
        cgroups = tuple(sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/kubepods*")))
        sysctls = tuple((k, Path("/proc/sys", k).read_text().strip()) for k in SYSCTLS)
        return cls(links, rules, netns, mounts, tuple(sorted(processes)), cgroups, sysctls)

    def difference(self, later: MachineSnapshot) -> dict[str, tuple[list[str], list[str]]]:
        """Per kind: (what is new, what is gone) from this snapshot to `later`."""
        diff = {}
        for name in self.__dataclass_fields__:
            before, after = set(map(str, getattr(self, name))), set(map(str, getattr(later, name)))
            if before != after:
                diff[name] = (sorted(after - before), sorted(before - after))
        return diff
