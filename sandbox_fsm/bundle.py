"""An OCI bundle (a directory with config.json) as the configs `Runtime` takes.

Like kata's single-container pod, one bundle gives a sandbox and a container with the
same id. Bind mounts become volumes; everything else in the spec (other mounts, linux
namespaces and resources) is kept in the `oci` dict that reaches the guest. Every
error is an `InvalidRequest` naming the file and the field, raised before anything is
written.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent_io.rootfs import RootfsError, check_rootfs

from .errors import InvalidRequest

if TYPE_CHECKING:  # imported when a bundle is read: `sbx state` needs only the annotation
    from .spec import ContainerConfig, Mount, SandboxConfig

BUNDLE_ANNOTATION = "io.katacontainers.pkg.oci.bundle_path"   # where kata keeps it too
RESERVED_ANNOTATIONS = ("io.sbx.", BUNDLE_ANNOTATION)
"""Annotations `sbx` itself sets and acts on (a run's owner): never taken from a bundle."""
MAX_CONFIG_BYTES = 16 * 1024 * 1024   # far above what the agent protocol can carry


def load_bundle(bundle: str | os.PathLike[str], container_id: str
                ) -> tuple[SandboxConfig, ContainerConfig]:
    """Read `<bundle>/config.json`; return the sandbox and container configs for it."""
    root = os.path.abspath(bundle)
    if not os.path.isdir(root):
        raise InvalidRequest(f"bundle {root!r} is not a directory")
    path = os.path.join(root, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_CONFIG_BYTES:
                raise InvalidRequest(f"{path!r} is {size} bytes; limit {MAX_CONFIG_BYTES}")
            spec = json.load(f)
    except FileNotFoundError:
        raise InvalidRequest(f"bundle {root!r} has no config.json") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"cannot read {path!r}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"{path!r} is not valid JSON: {exc}") from None
    return configs_from_spec(spec, root, container_id, where=path)


def configs_from_spec(spec: Any, bundle: str, container_id: str, *, where: str
                      ) -> tuple[SandboxConfig, ContainerConfig]:
    """The pure part of `load_bundle`: spec dict -> configs (paths relative to bundle)."""
    from .spec import ContainerConfig, SandboxConfig
    if not isinstance(spec, dict):
        raise InvalidRequest(f"{where}: the top level must be a JSON object")
    process = _field(spec, "process", dict, where)
    args = process.get("args")
    if not isinstance(args, list) or not args or not all(isinstance(a, str) for a in args):
        raise InvalidRequest(f"{where}: process.args must be a non-empty list of strings")
    annotations = _annotations(spec, where)
    hostname = _field(spec, "hostname", str, where, "")
    container = ContainerConfig(
        id=container_id, args=tuple(args), env=_env(process, where),
        cwd=_field(process, "cwd", str, where, "/", prefix="process."),
        user=_user(process, where), rootfs=_rootfs(spec, bundle, process, where),
        mounts=_binds(spec, bundle, where),
        terminal=bool(process.get("terminal", False)), hostname=hostname,
        annotations=annotations,
        oci={k: v for k, v in spec.items() if k in ("ociVersion", "linux")})
    # The sandbox needs only the mounts (its DNS file); `linux` is kept once, with the
    # container, and everything is validated before either config is used.
    sandbox = SandboxConfig(id=container_id, hostname=hostname,
                            annotations={**container.annotations, BUNDLE_ANNOTATION: bundle},
                            oci={"mounts": spec["mounts"]} if "mounts" in spec else None)
    return sandbox.validated(), container.validated()


def _annotations(spec: dict, where: str) -> dict[str, str]:
    annotations = _field(spec, "annotations", dict, where, {})
    for key, value in annotations.items():
        if not isinstance(value, str):
            raise InvalidRequest(f"{where}: annotation {key!r} must be a string, "
                                 f"got {type(value).__name__}")
        if key.startswith(RESERVED_ANNOTATIONS):
            raise InvalidRequest(f"{where}: annotation {key!r} is reserved for sbx itself")
    return dict(annotations)


def _field(d: dict, key: str, kind: type, where: str, default: Any = ..., *,
           prefix: str = "") -> Any:
    if key not in d:
        if default is ...:
            raise InvalidRequest(f"{where}: {prefix}{key} is missing")
        return default
    if not isinstance(d[key], kind):
        raise InvalidRequest(f"{where}: {prefix}{key} must be a {kind.__name__}, "
                             f"got {type(d[key]).__name__}")
    return d[key]


def _env(process: dict, where: str) -> dict[str, str]:
    env = {}
    for item in _field(process, "env", list, where, [], prefix="process."):
        if not isinstance(item, str) or "=" not in item:
            raise InvalidRequest(f"{where}: process.env entry {item!r} is not KEY=VALUE")
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _user(process: dict, where: str) -> str:
    user = _field(process, "user", dict, where, {}, prefix="process.")
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    for name, value in (("uid", uid), ("gid", gid)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InvalidRequest(f"{where}: process.user.{name} must be an integer >= 0, "
                                 f"got {value!r}")
    return f"{uid}:{gid}"


def _rootfs(spec: dict, bundle: str, process: dict, where: str) -> str | None:
    """The bundle's root, which must be able to run process.args[0] (looked up inside it)."""
    if "root" not in spec:
        return None
    path = _field(_field(spec, "root", dict, where), "path", str, where, prefix="root.")
    full = os.path.normpath(os.path.join(bundle, path))
    try:
        check_rootfs(Path(full), process["args"], process.get("env") or [],
                     process.get("cwd") or "/", f"{where}: root.path {path!r}:")
    except RootfsError as exc:
        raise InvalidRequest(str(exc)) from None
    return full


def _binds(spec: dict, bundle: str, where: str) -> tuple[Mount, ...]:
    from .spec import Mount
    binds = []
    for i, m in enumerate(_field(spec, "mounts", list, where, [])):
        if not isinstance(m, dict):
            raise InvalidRequest(f"{where}: mounts[{i}] must be an object")
        options = m.get("options") or []
        if m.get("type") != "bind" and not {"bind", "rbind"} & set(options):
            continue
        source, destination = m.get("source"), m.get("destination")
        if not isinstance(source, str) or not isinstance(destination, str):
            raise InvalidRequest(f"{where}: mounts[{i}] needs string source and destination")
        binds.append(Mount(source=os.path.normpath(os.path.join(bundle, source)),
                           destination=destination, readonly="ro" in options))
    return tuple(binds)
