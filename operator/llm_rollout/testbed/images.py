"""Images for the real node, made here: no registry is needed or reached.

The pod sandbox (pause) and the cluster DNS (CoreDNS) are single static binaries,
so their images are one layer holding one file, written as a `docker save` archive
that containerd imports (`ctr images import`). The project's own image is built by
`make image` (hack/image.sh) and imported the same way.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path

PAUSE_IMAGE = "llm-rollout.local/pause:bed"
COREDNS_IMAGE = "llm-rollout.local/coredns:bed"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def single_binary_layer(binary: Path, path_in_image: str) -> bytes:
    """A layer tar holding `binary` at `path_in_image`, owned by root, mode 0755.

    Fixed metadata (mtime 0) makes the layer, and so the image ID, reproducible.
    """
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        data = binary.read_bytes()
        info = tarfile.TarInfo(path_in_image.lstrip("/"))
        info.size, info.mode, info.mtime = len(data), 0o755, 0
        tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def write_image_archive(
    archive: Path, image: str, binary: Path, entrypoint: Sequence[str], *, user: str = ""
) -> Path:
    """Write a one-layer image holding `binary` as a `docker save` archive."""
    layer = single_binary_layer(binary, entrypoint[0])
    layer_id = _sha256(layer)
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": list(entrypoint), "User": user},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_id}"]},
        "history": [{"created_by": f"llm-rollout testbed: {binary.name}"}],
    }
    config_bytes = json.dumps(config, sort_keys=True).encode()
    config_name = f"{_sha256(config_bytes)}.json"
    manifest = [{"Config": config_name, "RepoTags": [image], "Layers": [f"{layer_id}/layer.tar"]}]
    members = {
        f"{layer_id}/layer.tar": layer,
        config_name: config_bytes,
        "manifest.json": json.dumps(manifest).encode(),
    }
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    return archive


def import_image(ctr: str, socket: Path, archive: Path) -> None:
    """Import an image archive into the node's containerd, where the kubelet finds it."""
    result = subprocess.run(
        [ctr, "--address", str(socket), "-n", "k8s.io", "images", "import", str(archive)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"importing {archive.name} into containerd failed: {result.stderr}")
