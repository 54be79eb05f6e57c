"""A docker-archive writer (the `docker save` format): one layer made from a
rootfs directory, any number of tagged image configs over it.

`docker load`, `podman load` and `ctr images import` all read this format, so
one small writer serves every engine without a registry.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

ENV_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = 0
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _layer(rootfs: Path) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for p in sorted(rootfs.rglob("*")):
            t.add(p, arcname=str(p.relative_to(rootfs)), recursive=False)
    return buf.getvalue()


def write_docker_archive(rootfs: Path, out: Path, images: dict[str, list[str]]) -> Path:
    """Write OUT: an archive of IMAGES ({"name:tag": Cmd}) sharing one layer of ROOTFS."""
    layer = _layer(Path(rootfs))
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    layer_name = hashlib.sha256(layer).hexdigest() + "/layer.tar"
    manifest = []
    with tarfile.open(out, "w") as tar:
        _add_bytes(tar, layer_name, layer)
        for tag, cmd in images.items():
            config = {
                "architecture": "amd64",
                "os": "linux",
                "created": "1970-01-01T00:00:00Z",
                "config": {"Cmd": cmd, "Env": [ENV_PATH], "WorkingDir": "/"},
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "kago tests"}],
            }
            blob = json.dumps(config, sort_keys=True).encode()
            name = hashlib.sha256(blob).hexdigest() + ".json"
            _add_bytes(tar, name, blob)
            manifest.append({"Config": name, "RepoTags": [tag], "Layers": [layer_name]})
        _add_bytes(tar, "manifest.json", json.dumps(manifest).encode())
    return out
