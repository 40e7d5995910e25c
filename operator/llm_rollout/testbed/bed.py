"""Start and stop the local test bed: etcd, kube-apiserver and Prometheus.

State (ports, PIDs, directories) lives in one JSON file in the bed's directory,
so a bed started by `llm-rollout-testbed up` can be found and stopped later by
PID, and a second `up` sees the first one instead of starting another.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from llm_rollout.testbed.certs import make_certs
from llm_rollout.testbed.control_plane import (
    ApiServerAddress,
    apiserver_argv,
    etcd_argv,
    kubeconfig,
)
from llm_rollout.testbed.node import Node, NodeError, NodeState
from llm_rollout.testbed.procs import free_port, pid_alive, spawn, stop_pid, wait_until
from llm_rollout.testbed.prometheus import (
    pods_scrape_config,
    prometheus_config,
    read_targets,
    write_targets,
)

REPO_ROOT = Path(__file__).resolve().parents[3]
STATE_FILE = "bed.json"
TARGETS_FILE = "targets.json"


class TestBedError(RuntimeError):
    """The bed could not be built or started; the message says why and where to look."""


class PortTaken(TestBedError):
    """A server found its port taken: picked free a moment before, then used by someone
    else (an outgoing connection's ephemeral port, say). Starting again picks others."""


START_ATTEMPTS = 3


def tools_bin_dir(*, node: bool = False) -> Path:
    """Directory holding kube-apiserver, etcd, kubectl and helm (built once, cached);
    with `node`, also the real node's binaries."""
    override = os.environ.get("LLM_ROLLOUT_TOOLS_BIN")
    if override:
        return Path(override)
    script = REPO_ROOT / "hack" / "build-tools.sh"
    argv = ["bash", str(script), *(["--node"] if node else [])]
    result = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
    if result.returncode != 0:
        raise TestBedError(f"building the test bed binaries failed ({script}); see the log above")
    return Path(result.stdout.strip().splitlines()[-1])


def prometheus_binary(bin_dir: Path | None = None) -> str:
    """Debian's Prometheus; for a bed with a node, the one built with Kubernetes
    service discovery (Debian's lacks it) by hack/build-tools.sh --node."""
    if bin_dir is not None:
        built = bin_dir / "prometheus"
        if not built.exists():
            raise TestBedError(f"{built} is missing: run `bash hack/build-tools.sh --node`")
        return str(built)
    found = shutil.which("prometheus")
    if found is None:
        raise TestBedError(
            "prometheus is not installed: run hack/install-deps.sh (Debian package 'prometheus')"
        )
    return found


@dataclass
class BedState:
    root: str
    bin_dir: str
    etcd_port: int = 0
    etcd_peer_port: int = 0
    apiserver_port: int = 0
    prometheus_port: int = 0
    pids: dict[str, int] = field(default_factory=dict)
    owns_root: bool = True
    # The address the API server and Prometheus listen on: loopback, or the real
    # node's address (pods cannot reach the host's loopback).
    host: str = "127.0.0.1"
    node: dict[str, Any] | None = None

    @property
    def kubeconfig(self) -> str:
        return str(Path(self.root) / "kubeconfig")

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}"

    @property
    def apiserver_url(self) -> str:
        return f"https://{self.host}:{self.apiserver_port}"


def _is_server(pid: int, name: str) -> bool:
    """Is `pid` alive and running the `name` binary (not a process that reused the PID)?"""
    if not pid_alive(pid):
        return False
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
    except OSError:
        return False
    return Path(argv0.decode(errors="replace")).name == name


class TestBed:
    """A real kube-apiserver + etcd + Prometheus on free loopback ports."""

    __test__ = False  # not a pytest test class

    def __init__(self, state: BedState) -> None:
        self.state = state
        # What stop() found of the node still on the machine (empty: nothing).
        self.node_leftovers: list[str] = []

    @property
    def node(self) -> Node | None:
        """The real node, when the bed has one (`start(node=True)`)."""
        if self.state.node is None:
            return None
        return Node(
            NodeState.from_json(dict(self.state.node)),
            Path(self.state.bin_dir),
            self.state.apiserver_port,
        )

    # -- lifecycle -----------------------------------------------------------------

    @classmethod
    def start(
        cls,
        root: Path | None = None,
        *,
        detached: bool = False,
        ready_timeout: float = 90.0,
        node: bool = False,
    ) -> TestBed:
        """Start the bed; with `node`, also a real node where pods run (root only)."""
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                return cls._start_once(root, detached, ready_timeout, node)
            except PortTaken as err:
                if attempt == START_ATTEMPTS:
                    raise
                print(f"[testbed] {err.args[0].splitlines()[0]}; starting again", flush=True)
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def _start_once(
        cls, root: Path | None, detached: bool, ready_timeout: float, node: bool
    ) -> TestBed:
        bin_dir = tools_bin_dir(node=node)
        prometheus = prometheus_binary(bin_dir if node else None)
        if node:
            try:
                Node.check_host()
            except NodeError as err:
                raise TestBedError(str(err)) from None
        owns_root = root is None
        root = Path(tempfile.mkdtemp(prefix="llm-rollout-bed-")) if root is None else root
        root.mkdir(parents=True, exist_ok=True)
        state = BedState(root=str(root), bin_dir=str(bin_dir), owns_root=owns_root)
        bed = cls(state)
        the_node: Node | None = None
        try:
            if node:
                the_node = Node(NodeState(root=str(root / "node")), bin_dir, 0)
                state.host = the_node.state.net.node_ip
                state.node = the_node.state.to_json()
                bed._save()  # before anything is made, so stop() finds it
                the_node.setup_network()
                state.node = the_node.state.to_json()
                bed._save()
            bed._start_etcd(detached)
            bed._start_apiserver(detached)
            bed._start_prometheus(prometheus, detached)
            bed._save()
            bed.wait_ready(ready_timeout)
            if the_node is not None:
                the_node.apiserver_port = state.apiserver_port
                try:
                    the_node.start(Path(root) / "certs", detached=detached)
                finally:
                    state.node = the_node.state.to_json()
                    bed._save()
                bed._wait_node_ready(the_node, ready_timeout)
        except NodeError as err:
            bed.stop()
            raise TestBedError(str(err)) from None
        except BaseException:
            bed.stop()
            raise
        return bed

    @classmethod
    def recorded(cls, root: Path) -> TestBed | None:
        """The bed recorded in `root`, whatever state its processes are in."""
        path = root / STATE_FILE
        if not path.exists():
            return None
        return cls(BedState(**json.loads(path.read_text())))

    @classmethod
    def load(cls, root: Path) -> TestBed | None:
        """The bed recorded in `root`, if all its processes are still running."""
        bed = cls.recorded(root)
        return bed if bed is not None and bed.running() else None

    def alive(self) -> dict[str, bool]:
        """Each recorded process: is it still the bed's own server?"""
        pids = dict(self.state.pids)
        if self.state.node is not None:
            pids.update(self.state.node.get("pids", {}))
        return {name: _is_server(pid, name) for name, pid in pids.items()}

    def running(self) -> bool:
        alive = self.alive()
        return bool(alive) and all(alive.values())

    def stop(self) -> list[str]:
        """Stop every recorded process still alive and remove the bed's files.

        Returns the names of the processes that had already exited. A PID whose process
        is no longer the recorded server (the PID was reused) is left alone.
        """
        exited = []
        node = self.node
        if node is not None:
            alive = self.alive()
            exited += [n for n in node.state.pids if not alive.get(n, False)]
            # Only what is still the node's own process is signalled.
            node.state.pids = {n: p for n, p in node.state.pids.items() if alive.get(n, False)}
            api_up = alive.get("kube-apiserver", False)
            self.node_leftovers = node.stop(
                str(Path(self.state.bin_dir) / "kubectl") if api_up else None,
                self.state.kubeconfig if api_up else None,
            )
            self.state.node = None
        for name in ("prometheus", "kube-apiserver", "etcd"):
            pid = self.state.pids.pop(name, None)
            if pid is None:
                continue
            if _is_server(pid, name):
                stop_pid(pid)
            else:
                exited.append(name)
        root = Path(self.state.root)
        if self.state.owns_root:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for child in (
                "node",
                "etcd-data",
                "prometheus-data",
                "certs",
                STATE_FILE,
                "kubeconfig",
                TARGETS_FILE,
                "prometheus.yml",
            ):
                target = root / child
                if target.is_dir():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
        return exited

    # -- pieces -------------------------------------------------------------------

    def _log(self, name: str) -> Path:
        return Path(self.state.root) / f"{name}.log"

    def _start_etcd(self, detached: bool) -> None:
        s = self.state
        s.etcd_port, s.etcd_peer_port = free_port(), free_port()
        argv = etcd_argv(
            Path(s.bin_dir) / "etcd", Path(s.root) / "etcd-data", s.etcd_port, s.etcd_peer_port
        )
        s.pids["etcd"] = spawn(argv, self._log("etcd"), tied_to_parent=not detached).pid

    def _start_apiserver(self, detached: bool) -> None:
        s = self.state
        node = self.node
        extra_ips = (s.host, node.state.net.first_service_ip) if node is not None else ()
        certs = make_certs(Path(s.root) / "certs", extra_ips)
        s.apiserver_port = free_port()
        argv = apiserver_argv(
            Path(s.bin_dir) / "kube-apiserver",
            ApiServerAddress(s.host, s.apiserver_port, s.etcd_port),
            certs,
            node.state.net.service_cidr if node is not None else None,
        )
        s.pids["kube-apiserver"] = spawn(
            argv, self._log("kube-apiserver"), tied_to_parent=not detached
        ).pid
        config = kubeconfig(
            s.apiserver_url,
            "admin",
            certs.ca_cert,
            certs.admin_cert,
            certs.admin_key,
            namespace="default",
        )
        Path(s.kubeconfig).write_text(yaml.safe_dump(config))

    def _start_prometheus(self, binary: str, detached: bool) -> None:
        s = self.state
        s.prometheus_port = free_port()
        root = Path(s.root)
        (root / TARGETS_FILE).write_text("[]")
        pods = None
        if s.node is not None:
            pods = pods_scrape_config(s.apiserver_url, root / "certs")
        config = prometheus_config(root / TARGETS_FILE, pods)
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        argv = [
            binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'prometheus-data'}",
            f"--web.listen-address={s.host}:{s.prometheus_port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
        ]
        s.pids["prometheus"] = spawn(argv, self._log("prometheus"), tied_to_parent=not detached).pid

    def _wait_node_ready(self, node: Node, timeout: float) -> None:
        """The Node Ready, then the cluster DNS running on it."""

        def node_ready() -> bool:
            code, body = self.api_get("/api/v1/nodes", timeout=2)
            if code != 200:
                return False
            for item in json.loads(body).get("items", []):
                for cond in item.get("status", {}).get("conditions", []):
                    if cond["type"] == "Ready" and cond["status"] == "True":
                        return True
            return False

        def diagnose() -> str:
            return "\n".join(
                f"--- {name}: "
                + "\n".join(
                    (node.dir / f"{name}.log").read_text(errors="replace").splitlines()[-12:]
                )
                for name in node.state.pids
                if (node.dir / f"{name}.log").exists()
            )

        try:
            wait_until(
                functools.partial(self._ok, node_ready),
                timeout=timeout,
                what="the node",
                on_timeout=diagnose,
            )
        except TimeoutError as err:
            raise TestBedError(str(err)) from None
        self.kubectl_apply(node.coredns_manifests())
        self.kubectl(
            "-n", "kube-system", "rollout", "status", "deployment/coredns", "--timeout=90s"
        )

    def tool(
        self, name: str, *args: str, input_text: str | None = None, timeout: float = 120
    ) -> str:
        """Run one of the bed's tools (kubectl, helm) against the bed; raise with its
        output if it fails."""
        result = subprocess.run(
            [str(Path(self.state.bin_dir) / name), "--kubeconfig", self.state.kubeconfig, *args],
            input=input_text,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise TestBedError(f"{name} {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def kubectl(self, *args: str, input_text: str | None = None) -> str:
        return self.tool("kubectl", *args, input_text=input_text)

    def kubectl_apply(self, objects: list[dict[str, Any]]) -> None:
        self.kubectl("apply", "-f", "-", input_text=yaml.safe_dump_all(objects))

    def _save(self) -> None:
        (Path(self.state.root) / STATE_FILE).write_text(json.dumps(asdict(self.state), indent=2))

    # -- readiness ----------------------------------------------------------------

    def _client_ssl(self) -> ssl.SSLContext:
        certs = Path(self.state.root) / "certs"
        ctx = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        ctx.load_cert_chain(str(certs / "admin.crt"), str(certs / "admin.key"))
        return ctx

    def api_get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """GET a raw API server path as the admin user."""
        req = urllib.request.Request(self.state.apiserver_url + path)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=self._client_ssl()) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as err:
            return int(err.code), err.read().decode()

    def _ok(self, fn: Callable[[], bool]) -> bool:
        try:
            return bool(fn())
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False

    def _diagnose(self) -> str:
        lines = []
        for name, pid in self.state.pids.items():
            alive = "running" if pid_alive(pid) else "EXITED"
            tail = self._log(name).read_text(errors="replace").splitlines()[-15:]
            lines.append(f"--- {name} (pid {pid}, {alive}), last log lines:\n" + "\n".join(tail))
        return "\n".join(lines)

    def wait_ready(self, timeout: float) -> None:
        def apiserver_ready() -> bool:
            return self.api_get("/readyz", timeout=2)[0] == 200

        def prometheus_ready() -> bool:
            url = self.state.prometheus_url + "/-/ready"
            with urllib.request.urlopen(url, timeout=2) as resp:
                return int(resp.status) == 200

        checks: list[tuple[str, Callable[[], bool]]] = [
            ("kube-apiserver /readyz", apiserver_ready),
            ("prometheus /-/ready", prometheus_ready),
        ]

        def exited_early() -> None:
            # The PIDs were spawned a moment ago: gone means exited (no reuse to fear).
            for name, pid in self.state.pids.items():
                if not pid_alive(pid):
                    log = self._log(name).read_text(errors="replace")
                    kind = PortTaken if "address already in use" in log else TestBedError
                    raise kind(f"{name} exited while starting\n{self._diagnose()}")

        def ready(check: Callable[[], bool]) -> bool:
            exited_early()  # a server that died will not become ready: say so at once
            return self._ok(check)

        for what, check in checks:
            try:
                wait_until(
                    functools.partial(ready, check),
                    timeout=timeout,
                    what=what,
                    on_timeout=self._diagnose,
                )
            except TimeoutError as err:
                raise TestBedError(str(err)) from None

    # -- Prometheus helpers --------------------------------------------------------

    def set_scrape_targets(self, targets: dict[str, str]) -> None:
        """Replace the scrape targets: job label -> "host:port"."""
        write_targets(Path(self.state.root) / TARGETS_FILE, targets)

    def scrape_targets(self) -> dict[str, str]:
        return read_targets(Path(self.state.root) / TARGETS_FILE)

    def add_scrape_target(self, name: str, address: str) -> None:
        targets = self.scrape_targets()
        targets[name] = address
        self.set_scrape_targets(targets)

    def remove_scrape_target(self, name: str) -> None:
        targets = self.scrape_targets()
        targets.pop(name, None)
        self.set_scrape_targets(targets)

    def env_lines(self) -> str:
        return (
            f"export KUBECONFIG={self.state.kubeconfig}\n"
            f"export PROMETHEUS_URL={self.state.prometheus_url}\n"
            f"export PATH={self.state.bin_dir}:$PATH\n"
        )
