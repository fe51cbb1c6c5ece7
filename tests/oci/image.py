"""A small image built from busybox-static with tar and sha256, no registry.

One archive serves both clients: an OCI image layout (`index.json`, `oci-layout`,
`blobs/sha256/...`) for `ctr image import`, plus the `manifest.json` that `docker load`
reads, pointing at the same blobs.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

BUSYBOX = "/bin/busybox"
APPLETS = ("sh", "echo", "cat", "sleep", "true", "false", "ps", "top", "ls", "id", "head", "mv",
           "tty", "stty", "kill", "wc", "seq", "env", "yes", "dd", "hostname", "mount")


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", *, mode: int = 0o644,
         kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.mode, info.type, info.linkname, info.size = mode, kind, link, len(data)
    tar.addfile(info, io.BytesIO(data) if data else None)


def _layer() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "dev", "etc", "proc", "sys", "tmp", "root"):
            _add(tar, d, mode=0o1777 if d == "tmp" else 0o755, kind=tarfile.DIRTYPE)
        _add(tar, "bin/busybox", Path(BUSYBOX).read_bytes(), mode=0o755)
        for applet in APPLETS:
            _add(tar, f"bin/{applet}", kind=tarfile.SYMTYPE, link="busybox")
        _add(tar, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        _add(tar, "etc/group", b"root:x:0:\n")
    return buf.getvalue()


def _blob(tar: tarfile.TarFile, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    _add(tar, f"blobs/sha256/{digest}", data)
    return digest


def build_image(path: Path, ref: str) -> Path:
    """Write the archive for image `ref` (e.g. `docker.io/sbx/busybox:1`) at `path`."""
    layer = _layer()
    layer_digest = hashlib.sha256(layer).hexdigest()
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_digest}"]},
        "history": [{"created_by": "tests/oci/image.py"}]}).encode()
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
        _add(tar, "blobs", mode=0o755, kind=tarfile.DIRTYPE)
        _add(tar, "blobs/sha256", mode=0o755, kind=tarfile.DIRTYPE)
        _blob(tar, layer)
        config_digest = _blob(tar, config)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": f"sha256:{config_digest}", "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": f"sha256:{layer_digest}", "size": len(layer)}]}).encode()
        manifest_digest = _blob(tar, manifest)
        _add(tar, "oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
        _add(tar, "index.json", json.dumps({"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": f"sha256:{manifest_digest}", "size": len(manifest),
            "annotations": {"io.containerd.image.name": ref,
                            "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1]}}]}
                                           ).encode())
        _add(tar, "manifest.json", json.dumps([{
            "Config": f"blobs/sha256/{config_digest}", "RepoTags": [ref],
            "Layers": [f"blobs/sha256/{layer_digest}"]}]).encode())
    return path
