"""Reading and changing the machine for the node: commands, sysctls, iptables chains,
network namespaces, mounts, kubepods cgroups, links."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

NETNS_DIR = Path("/run/netns")
CGROUP_ROOT = Path("/sys/fs/cgroup")
KUBEPODS = "kubepods"
IPTABLES_TABLES = ("filter", "nat", "mangle")
# The chains the node's parts make (kube-proxy KUBE-*, the CNI firewall CNI-*).
NODE_CHAIN_PREFIXES = ("KUBE-", "CNI-")


class NodeError(RuntimeError):
    """The node could not be started; the message says why and where to look."""


def run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NodeError(f"{' '.join(argv)} failed: {result.stderr.strip() or result.stdout}")
    return result


def which(name: str, package: str) -> str:
    found = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if found is None:
        raise NodeError(
            f"{name} is not installed: run `bash hack/install-deps.sh --node` (Debian package "
            f"{package!r})"
        )
    return found


def _sysctl_path(key: str) -> Path:
    return Path("/proc/sys") / key


def read_sysctl(key: str) -> str:
    return _sysctl_path(key).read_text().strip()


def write_sysctl(key: str, value: str) -> None:
    _sysctl_path(key).write_text(value + "\n")


def iptables_chains() -> dict[str, list[str]]:
    """The node-owned-looking chains (KUBE-*, CNI-*) of each table, as they are now."""
    chains: dict[str, list[str]] = {}
    for table in IPTABLES_TABLES:
        out = run("iptables", "-w", "-t", table, "-S", check=False).stdout
        chains[table] = sorted(
            line.split()[1]
            for line in out.splitlines()
            if line.startswith("-N ") and line.split()[1].startswith(NODE_CHAIN_PREFIXES)
        )
    return chains


def netns_names() -> list[str]:
    return sorted(p.name for p in NETNS_DIR.iterdir()) if NETNS_DIR.is_dir() else []


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root` (deepest first), from /proc/self/mountinfo."""
    prefix = str(root.resolve())
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(set(points), key=len, reverse=True)


def kubepods_cgroups() -> list[Path]:
    """The kubepods cgroup directories in every hierarchy (deepest first)."""
    found: list[Path] = []
    if not CGROUP_ROOT.is_dir():
        return found
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / KUBEPODS
        if top.is_dir():
            found.extend(p for p in top.rglob("*") if p.is_dir())
            found.append(top)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def veth_names() -> list[str]:
    out = run("ip", "-o", "link", "show", "type", "veth", check=False).stdout
    return sorted(
        line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if ":" in line
    )


def bridge_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def veths_on(bridge: str) -> list[str]:
    brif = Path(f"/sys/class/net/{bridge}/brif")
    return sorted(p.name for p in brif.iterdir()) if brif.is_dir() else []
