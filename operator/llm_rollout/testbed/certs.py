"""Certificates and keys for the local kube-apiserver, made with the openssl CLI."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class BedCerts:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {result.stderr.strip()}")


def _signed(dir_: Path, name: str, subject: str, ca: tuple[Path, Path], ext: str) -> None:
    key, csr, crt, extfile = (dir_ / f"{name}.{s}" for s in ("key", "csr", "crt", "ext"))
    extfile.write_text(ext)
    _openssl(
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(key),
        "-subj",
        subject,
        "-out",
        str(csr),
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca[0]),
        "-CAkey",
        str(ca[1]),
        "-CAcreateserial",
        "-days",
        "30",
        "-sha256",
        "-extfile",
        str(extfile),
        "-out",
        str(crt),
    )


def make_certs(dir_: Path, extra_ips: tuple[str, ...] = ()) -> BedCerts:
    """A throwaway CA, an API server serving cert for 127.0.0.1/localhost (and
    `extra_ips`: the node's address and the first Service IP, for in-cluster
    clients), an admin client cert in group system:masters, and the service-account
    signing key pair."""
    dir_.mkdir(parents=True, exist_ok=True)
    ca_key, ca_crt = dir_ / "ca.key", dir_ / "ca.crt"
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        str(ca_key),
        "-subj",
        "/CN=llm-rollout-testbed-ca",
        "-days",
        "30",
        "-out",
        str(ca_crt),
    )
    _signed(
        dir_,
        "serving",
        "/CN=kube-apiserver",
        (ca_crt, ca_key),
        "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc,"
        "DNS:kubernetes.default.svc.cluster.local,DNS:kubernetes.default,DNS:kubernetes"
        + "".join(f",IP:{ip}" for ip in extra_ips)
        + "\n"
        "extendedKeyUsage=serverAuth\n",
    )
    _signed(
        dir_,
        "admin",
        "/O=system:masters/CN=admin",
        (ca_crt, ca_key),
        "extendedKeyUsage=clientAuth\n",
    )
    sa_key, sa_pub = dir_ / "sa.key", dir_ / "sa.pub"
    _openssl("genrsa", "-out", str(sa_key), "2048")
    _openssl("rsa", "-in", str(sa_key), "-pubout", "-out", str(sa_pub))
    return BedCerts(
        ca_crt,
        ca_key,
        dir_ / "serving.crt",
        dir_ / "serving.key",
        dir_ / "admin.crt",
        dir_ / "admin.key",
        sa_key,
        sa_pub,
    )


@dataclass(frozen=True)
class NodeCerts:
    kubelet_client_cert: Path
    kubelet_client_key: Path
    kubelet_serving_cert: Path
    kubelet_serving_key: Path


def make_node_certs(dir_: Path, node_name: str, node_ip: str) -> NodeCerts:
    """The kubelet's client cert (the Node authorizer knows it by system:node:NAME)
    and its serving cert for the node's address, signed by the bed's CA in `dir_`."""
    ca = (dir_ / "ca.crt", dir_ / "ca.key")
    _signed(
        dir_,
        "kubelet-client",
        f"/O=system:nodes/CN=system:node:{node_name}",
        ca,
        "extendedKeyUsage=clientAuth\n",
    )
    _signed(
        dir_,
        "kubelet-serving",
        f"/CN={node_name}",
        ca,
        f"subjectAltName=IP:{node_ip},DNS:{node_name}\nextendedKeyUsage=serverAuth\n",
    )
    return NodeCerts(
        dir_ / "kubelet-client.crt",
        dir_ / "kubelet-client.key",
        dir_ / "kubelet-serving.crt",
        dir_ / "kubelet-serving.key",
    )
