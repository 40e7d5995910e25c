"""A real node for the test bed: containerd, the kubelet, kube-proxy, the controllers,
the scheduler and CoreDNS, so that pods really run.

Everything the node makes on the machine is kept apart from anything else there and
recorded, so `stop()` undoes exactly that and nothing more:
- a bridge of its own (`llmbr0`) holding the node's address, with the pod and Service
  ranges routed onto it (ClusterIP traffic never follows the default route);
- containerd with its own root, state, socket and CNI configuration, so it never
  clashes with a Docker engine's containerd;
- iptables chains (kube-proxy's KUBE-*, the CNI firewall's CNI-*): only the ones that
  were not there before the node started are removed;
- mounts under the node's directory and the network namespaces of its pods;
- the kubepods cgroups, the sysctls the kubelet and the node change (restored).

Requires root, cgroups, and Debian's containerd, runc, containernetworking-plugins and
iptables (hack/install-deps.sh --node).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llm_rollout.testbed.certs import make_node_certs
from llm_rollout.testbed.control_plane import kubeconfig
from llm_rollout.testbed.images import (
    COREDNS_IMAGE,
    PAUSE_IMAGE,
    import_image,
    write_image_archive,
)
from llm_rollout.testbed.node_config import (
    CNI_BIN_DIR,
    NODE_NAME,
    KubeletFiles,
    NodeNetwork,
    cni_conflist,
    containerd_config,
    coredns_manifests,
    kube_proxy_config,
    kubelet_config,
)
from llm_rollout.testbed.procs import free_port, spawn, stop_pid
from llm_rollout.testbed.system import (
    NETNS_DIR,
    NodeError,
    bridge_exists,
    iptables_chains,
    kubepods_cgroups,
    mounts_under,
    netns_names,
    read_sysctl,
    run,
    veth_names,
    veths_on,
    which,
    write_sysctl,
)

__all__ = ["Node", "NodeError", "NodeNetwork", "NodeState"]

# The sysctls the kubelet sets at start (and the forwarding the node needs): saved
# before, restored by stop().
SAVED_SYSCTLS = (
    "net/ipv4/ip_forward",
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
)
CONTAINER_LOGS_DIR = Path("/var/log/containers")


@dataclass
class NodeState:
    """What the node made: enough for stop() to undo it, from another process too."""

    root: str
    net: NodeNetwork = field(default_factory=NodeNetwork)
    pids: dict[str, int] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)
    chains_before: dict[str, list[str]] = field(default_factory=dict)
    netns_before: list[str] = field(default_factory=list)
    veths_before: list[str] = field(default_factory=list)
    kubelet_port: int = 0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> NodeState:
        net = NodeNetwork(**data.pop("net", {}))
        return cls(net=net, **data)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def containerd_socket(self) -> Path:
        return Path(self.root) / "containerd" / "containerd.sock"


# -- the node ---------------------------------------------------------------------------


class Node:
    """The node's processes and what they made; `start` brings it up, `stop` undoes it."""

    def __init__(self, state: NodeState, bin_dir: Path, apiserver_port: int) -> None:
        self.state = state
        self.bin_dir = bin_dir
        self.apiserver_port = apiserver_port
        self.dir = Path(state.root)

    @property
    def apiserver_url(self) -> str:
        return f"https://{self.state.net.node_ip}:{self.apiserver_port}"

    def _log(self, name: str) -> Path:
        return self.dir / f"{name}.log"

    def _bin(self, name: str) -> str:
        path = self.bin_dir / name
        if not path.exists():
            raise NodeError(f"{path} is missing: run `bash hack/build-tools.sh --node`")
        return str(path)

    # -- before the API server: the network ----------------------------------------------

    @staticmethod
    def check_host() -> None:
        if os.geteuid() != 0:
            raise NodeError("the real node needs root (it runs containerd and the kubelet)")
        for name, package in (
            ("containerd", "containerd"),
            ("runc", "runc"),
            ("iptables", "iptables"),
            ("ip", "iproute2"),
        ):
            which(name, package)
        if not (CNI_BIN_DIR / "bridge").exists():
            raise NodeError(
                f"no CNI plugins in {CNI_BIN_DIR}: run `bash hack/install-deps.sh --node` "
                "(Debian package 'containernetworking-plugins')"
            )

    def setup_network(self) -> None:
        """The bridge and routes; the API server listens on the node's address."""
        net, s = self.state.net, self.state
        if bridge_exists(net.bridge):
            raise NodeError(
                f"bridge {net.bridge} already exists: another node of the bed is running, or a "
                "previous one was not stopped (make cluster-down, or `ip link del "
                f"{net.bridge}`)"
            )
        s.sysctls = {key: read_sysctl(key) for key in SAVED_SYSCTLS}
        s.chains_before = iptables_chains()
        s.netns_before = netns_names()
        s.veths_before = veth_names()
        run("ip", "link", "add", net.bridge, "type", "bridge")
        run("ip", "addr", "add", f"{net.node_ip}/{net.pod_cidr.split('/')[1]}", "dev", net.bridge)
        run("ip", "link", "set", net.bridge, "up")
        # ClusterIP traffic from the host (kube-proxy DNATs it) must never leave by
        # the default route, even for an address no Service has.
        run("ip", "route", "replace", net.service_cidr, "dev", net.bridge, "src", net.node_ip)
        write_sysctl("net/ipv4/ip_forward", "1")

    # -- after the API server: the node's processes --------------------------------------

    def start(self, certs_dir: Path, *, detached: bool) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        node_certs = make_node_certs(certs_dir, NODE_NAME, self.state.net.node_ip)
        admin = self._kubeconfig(
            "admin", certs_dir / "ca.crt", certs_dir / "admin.crt", certs_dir / "admin.key"
        )
        kubelet_kc = self._kubeconfig(
            "kubelet",
            certs_dir / "ca.crt",
            node_certs.kubelet_client_cert,
            node_certs.kubelet_client_key,
        )
        self._start_containerd(detached)
        self._import_system_images()
        self._spawn(
            "kube-controller-manager",
            [
                "--kubeconfig", str(admin),
                "--authentication-kubeconfig", str(admin),
                "--authorization-kubeconfig", str(admin),
                "--service-account-private-key-file", str(certs_dir / "sa.key"),
                "--root-ca-file", str(certs_dir / "ca.crt"),
                "--cluster-cidr", self.state.net.pod_cidr,
                "--service-cluster-ip-range", self.state.net.service_cidr,
                "--leader-elect=false",
                "--use-service-account-credentials=true",
                "--bind-address", "127.0.0.1",
                "--secure-port", str(free_port()),
                "--controllers", "*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller",
                "--concurrent-deployment-syncs", "5",
                "-v", "1",
            ],
            detached,
        )  # fmt: skip
        self._spawn(
            "kube-scheduler",
            [
                "--kubeconfig", str(admin),
                "--authentication-kubeconfig", str(admin),
                "--authorization-kubeconfig", str(admin),
                "--leader-elect=false",
                "--bind-address", "127.0.0.1",
                "--secure-port", str(free_port()),
                "-v", "1",
            ],
            detached,
        )  # fmt: skip
        self._start_kubelet(certs_dir, kubelet_kc, node_certs.kubelet_serving_cert, detached)
        self._start_kube_proxy(admin, detached)

    def _kubeconfig(self, user: str, ca: Path, cert: Path, key: Path) -> Path:
        path = self.dir / f"{user}.kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig(self.apiserver_url, user, ca, cert, key)))
        return path

    def _spawn(self, name: str, args: list[str], detached: bool, binary: str = "") -> None:
        argv = [binary or self._bin(name), *args]
        self.state.pids[name] = spawn(argv, self._log(name), tied_to_parent=not detached).pid

    def _start_containerd(self, detached: bool) -> None:
        base = self.dir / "containerd"
        for sub in ("root", "state", "opt"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        cni_conf = self.dir / "cni" / "net.d"
        cni_conf.mkdir(parents=True, exist_ok=True)
        conflist = cni_conflist(self.state.net, self.dir / "cni" / "ipam")
        (cni_conf / "10-bed.conflist").write_text(json.dumps(conflist, indent=2))
        sock = self.state.containerd_socket
        (base / "config.toml").write_text(containerd_config(base, sock, cni_conf))
        self._spawn(
            "containerd",
            ["--config", str(base / "config.toml"), "--log-level", "warn"],
            detached,
            binary=which("containerd", "containerd"),
        )
        deadline = time.monotonic() + 30
        while not sock.exists():
            if time.monotonic() > deadline:
                raise NodeError(f"containerd did not open {sock}; see {self._log('containerd')}")
            time.sleep(0.1)

    def _import_system_images(self) -> None:
        ctr = which("ctr", "containerd")
        images = self.dir / "images"
        pause = write_image_archive(
            images / "pause.tar", PAUSE_IMAGE, Path(self._bin("pause")), ["/pause"]
        )
        coredns = write_image_archive(
            images / "coredns.tar",
            COREDNS_IMAGE,
            Path(self._bin("coredns")),
            ["/coredns"],
            user="65532:65532",
        )
        for archive in (pause, coredns):
            import_image(ctr, self.state.containerd_socket, archive)

    def _start_kubelet(
        self, certs_dir: Path, kubeconfig: Path, serving: Path, detached: bool
    ) -> None:
        net = self.state.net
        self.state.kubelet_port = free_port()
        (self.dir / "resolv.conf").write_text("# pods resolve cluster names only\n")
        files = KubeletFiles(
            ca=certs_dir / "ca.crt",
            serving_cert=serving,
            containerd_socket=self.state.containerd_socket,
            resolv_conf=self.dir / "resolv.conf",
            pod_logs=self.dir / "pod-logs",
        )
        path = self.dir / "kubelet-config.yaml"
        config = kubelet_config(net, files, self.state.kubelet_port, free_port())
        path.write_text(yaml.safe_dump(config))
        self._spawn(
            "kubelet",
            [
                "--config", str(path),
                "--kubeconfig", str(kubeconfig),
                "--root-dir", str(self.dir / "kubelet"),
                "--hostname-override", NODE_NAME,
                "--node-ip", net.node_ip,
                "-v", "1",
            ],
            detached,
        )  # fmt: skip

    def _start_kube_proxy(self, kubeconfig: Path, detached: bool) -> None:
        config = kube_proxy_config(self.state.net, kubeconfig, free_port(), free_port())
        path = self.dir / "kube-proxy-config.yaml"
        path.write_text(yaml.safe_dump(config))
        self._spawn("kube-proxy", ["--config", str(path), "-v", "1"], detached)

    # -- in the cluster -------------------------------------------------------------------

    def coredns_manifests(self) -> list[dict[str, Any]]:
        """CoreDNS as the cluster DNS: its RBAC, Corefile, Deployment and Service."""
        return coredns_manifests(self.state.net)

    # -- stop -------------------------------------------------------------------------

    def stop(self, kubectl: str | None, kubeconfig: str | None) -> list[str]:
        """Undo everything the node made, in the order that leaves nothing behind.

        Returns what could not be undone (empty when the machine is as before)."""
        problems: list[str] = []
        pids = self.state.pids
        # 1. Workloads first, so the kubelet tears their sandboxes down (CNI DEL).
        if kubectl and kubeconfig and "kubelet" in pids:
            self._drain(kubectl, kubeconfig)
        for name in ("kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy"):
            pid = pids.pop(name, None)
            if pid is not None:
                stop_pid(pid)
        # 2. Whatever sandboxes are left, through containerd, then containerd itself.
        if "containerd" in pids:
            self._remove_containers()
            stop_pid(pids.pop("containerd"))
        self._kill_shims()
        # 3. iptables: kube-proxy's own clean-up, then any node chain that is new.
        proxy = self.bin_dir / "kube-proxy"
        if proxy.exists():
            run(str(proxy), "--cleanup", "--proxy-mode", "iptables", check=False)
        self._remove_new_chains()
        # Network namespaces of pods the kubelet did not get to.
        for name in set(netns_names()) - set(self.state.netns_before):
            if name.startswith("cni-"):
                run("umount", str(NETNS_DIR / name), check=False)
                with contextlib.suppress(OSError):
                    (NETNS_DIR / name).unlink()
        # 4. Mounts under the node's directory, deepest first.
        for point in mounts_under(self.dir):
            run("umount", "-l", point, check=False)
        # 5. The kubepods cgroups (empty once their processes are gone).
        for cgroup in kubepods_cgroups():
            with contextlib.suppress(OSError):
                cgroup.rmdir()
        # 6. The bridge (its routes go with it).
        if bridge_exists(self.state.net.bridge):
            run("ip", "link", "del", self.state.net.bridge, check=False)
        # 7. The sysctls, as they were.
        for key, value in self.state.sysctls.items():
            with contextlib.suppress(OSError):
                if read_sysctl(key) != value:
                    write_sysctl(key, value)
        for link in CONTAINER_LOGS_DIR.glob("*.log") if CONTAINER_LOGS_DIR.is_dir() else []:
            with contextlib.suppress(OSError):
                if os.readlink(link).startswith(str(self.dir)):
                    link.unlink()
        problems = self.leftovers()
        return problems

    def _drain(self, kubectl: str, kubeconfig: str) -> None:
        env = {**os.environ, "KUBECONFIG": kubeconfig}

        def kc(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [kubectl, *args], capture_output=True, text=True, check=False, env=env, timeout=60
            )

        # Stop the controllers recreating pods, then delete every pod.
        for name in ("kube-controller-manager",):
            pid = self.state.pids.pop(name, None)
            if pid is not None:
                stop_pid(pid)
        kc("delete", "pods", "--all", "--all-namespaces", "--grace-period=1", "--wait=false")
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            out = kc("get", "pods", "-A", "-o", "name")
            if out.returncode != 0 or not out.stdout.strip():
                break
            time.sleep(0.5)
        # The kubelet has stopped the sandboxes when none is left in containerd's list.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and self._sandboxes():
            time.sleep(0.5)

    def _ctr(self, *args: str) -> subprocess.CompletedProcess[str]:
        ctr = shutil.which("ctr") or "ctr"
        return run(
            ctr, "--address", str(self.state.containerd_socket), "-n", "k8s.io", *args, check=False
        )

    def _sandboxes(self) -> list[str]:
        out = self._ctr("tasks", "ls", "-q")
        return [line for line in out.stdout.split() if line] if out.returncode == 0 else []

    def _remove_containers(self) -> None:
        for task in self._sandboxes():
            self._ctr("tasks", "kill", "-s", "SIGKILL", task)
        time.sleep(0.5)
        for task in self._sandboxes():
            self._ctr("tasks", "rm", "-f", task)
        out = self._ctr("containers", "ls", "-q")
        for container in out.stdout.split():
            self._ctr("containers", "rm", container)

    def _kill_shims(self) -> None:
        """containerd's shims outlive it by design; the node's own are ended here."""
        marker = str(self.state.containerd_socket).encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                cmdline = (proc / "cmdline").read_bytes()
                if b"containerd-shim" in cmdline.split(b"\0", 1)[0] and marker in cmdline:
                    stop_pid(int(proc.name), grace=3)

    def _remove_new_chains(self) -> None:
        now = iptables_chains()
        for table, chains in now.items():
            new = [c for c in chains if c not in self.state.chains_before.get(table, [])]
            if not new:
                continue
            # Jumps into the new chains from any chain, then the chains themselves.
            rules = run("iptables", "-w", "-t", table, "-S", check=False).stdout.splitlines()
            for rule in rules:
                words = shlex.split(rule)  # comments are quoted: "CNI firewall plugin rules"
                if words[:1] == ["-A"] and any(w in new for w in words[2:]):
                    run("iptables", "-w", "-t", table, "-D", *words[1:], check=False)
            for chain in new:
                run("iptables", "-w", "-t", table, "-F", chain, check=False)
            for chain in new:
                run("iptables", "-w", "-t", table, "-X", chain, check=False)

    def leftovers(self) -> list[str]:
        """What of the node is still on the machine (empty: nothing)."""
        found: list[str] = []
        for name, pid in self.state.pids.items():
            if Path(f"/proc/{pid}").exists():
                found.append(f"process {name} (pid {pid})")
        marker = str(self.dir).encode()
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    if marker in (proc / "cmdline").read_bytes():
                        found.append(
                            f"process {proc.name}: {(proc / 'cmdline').read_bytes()[:80]!r}"
                        )
        found += [f"mount {p}" for p in mounts_under(self.dir)]
        if bridge_exists(self.state.net.bridge):
            found.append(
                f"bridge {self.state.net.bridge} (veths: {veths_on(self.state.net.bridge)})"
            )
        new_netns = set(netns_names()) - set(self.state.netns_before)
        found += [f"network namespace {n}" for n in sorted(new_netns)]
        found += [f"veth {v}" for v in veth_names() if v not in self.state.veths_before]
        for table, chains in iptables_chains().items():
            before = set(self.state.chains_before.get(table, []))
            found += [f"iptables chain {table}/{c}" for c in chains if c not in before]
        found += [f"cgroup {c}" for c in kubepods_cgroups()]
        for key, value in self.state.sysctls.items():
            with contextlib.suppress(OSError):
                if read_sysctl(key) != value:
                    found.append(f"sysctl {key} = {read_sysctl(key)} (was {value})")
        return found
