"""`sbx run` (sandbox + one container, attached, removed after) and `sbx exec`."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InvalidRequest
from . import context, oci_exec
from .session import Interrupted, SignalGate, attach

if TYPE_CHECKING:  # imported when a verb runs, not to build the parser
    from ..spec import ContainerConfig, Mount, SandboxConfig


def default_env() -> dict[str, str]:
    """The environment every container gets unless told otherwise."""
    from ..spec import ContainerConfig
    return ContainerConfig(id="x").env


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("run", parents=[common], help="run a command in a new sandbox",
                       description="Create and start a sandbox and one container running "
                       "CMD, stream its output, exit with its status, then delete the "
                       "sandbox (unless --keep).")
    p.add_argument("--id", type=context.sandbox_id,
                   help="sandbox (and container) id; default run-<8 hex>")
    p.add_argument("--rootfs", help="root filesystem directory (default: the host's commands)")
    p.add_argument("--volume", "-v", action="append", default=[], metavar="SRC:DST[:ro]",
                   help="bind-mount host path SRC at DST (repeatable)")
    p.add_argument("--env", "-e", action="append", default=[], metavar="K=V")
    p.add_argument("--workdir", "-w", default="/", metavar="DIR")
    p.add_argument("--user", "-u", default="0:0", metavar="UID[:GID]")
    p.add_argument("--hostname", default="")
    p.add_argument("-t", "--tty", action="store_true", help="give the command a terminal")
    p.add_argument("-i", "--interactive", action="store_true", help="forward our stdin")
    p.add_argument("--keep", action="store_true", help="leave the sandbox when done")
    p.add_argument("command", nargs="*", help="-- CMD ARGS...")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("exec", parents=[common], help="run another process in a container")
    p.add_argument("id", type=context.sandbox_id)
    p.add_argument("-t", "--tty", action="store_true")
    p.add_argument("-i", "--interactive", action="store_true")
    p.add_argument("--env", "-e", action="append", default=[], metavar="K=V")
    p.add_argument("--workdir", "-w", metavar="DIR")
    p.add_argument("--user", "-u", metavar="UID[:GID]")
    oci_exec.add_options(p)
    p.add_argument("command", nargs="*", help="-- CMD ARGS...")
    p.set_defaults(func=cmd_exec)


def command_of(args: argparse.Namespace) -> list[str]:
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        raise InvalidRequest(f"no command given (usage: sbx {args.cmd} [options] -- CMD "
                             "ARGS...)")
    return cmd


def parse_env(items: list[str]) -> dict[str, str]:
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidRequest(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    return env


def parse_volume(spec: str) -> Mount:
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]) or parts[2:] not in ([], ["ro"], ["rw"]):
        raise InvalidRequest(f"--volume {spec!r}: expected SRC:DST or SRC:DST:ro "
                             "(absolute paths)")
    source = os.path.abspath(parts[0])
    if not os.path.exists(source):
        raise InvalidRequest(f"--volume {spec!r}: source {source!r} does not exist")
    from ..spec import Mount
    return Mount(source=source, destination=parts[1], readonly=parts[2:] == ["ro"])


def console_size() -> dict | None:
    """Our window size as the OCI process's consoleSize, so `-t` starts at the right size."""
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except OSError:
        return None
    return {"process": {"consoleSize": {"height": size.lines, "width": size.columns}}}


def configs(args: argparse.Namespace) -> tuple[SandboxConfig, ContainerConfig]:
    """Everything `sbx run` was asked for, validated before anything is written."""
    from ..spec import ContainerConfig, SandboxConfig
    sid = args.id or f"run-{secrets.token_hex(4)}"
    mounts = tuple(parse_volume(v) for v in args.volume)
    rootfs = os.path.abspath(args.rootfs) if args.rootfs else None
    env = {**default_env(), **parse_env(args.env)}
    if rootfs:
        from agent_io import convert
        from agent_io.rootfs import RootfsError, check_rootfs
        try:
            check_rootfs(Path(rootfs), command_of(args), convert.env_list(env),
                         args.workdir or "/", f"--rootfs {args.rootfs!r}:")
        except RootfsError as exc:
            raise InvalidRequest(str(exc)) from None
    container = ContainerConfig(
        id=sid, args=tuple(command_of(args)), env=env,
        cwd=args.workdir, user=args.user,
        rootfs=rootfs, mounts=mounts,
        terminal=args.tty, hostname=args.hostname, oci=console_size() if args.tty else None)
    # Unless kept, the sandbox names this `sbx run`: if it is killed before removing the
    # sandbox, the next `sbx` that opens the runtime removes it (context.reap_orphans).
    owner = {} if args.keep else {context.RUN_OWNER: context.this_process()}
    sandbox = SandboxConfig(id=sid, hostname=args.hostname, annotations=owner)
    return sandbox.validated(), container.validated()


def cmd_run(args: argparse.Namespace) -> int:
    sandbox, container = configs(args)
    sid = sandbox.id
    with context.writer(args) as rt, SignalGate() as gate:
        try:
            gate.check()
            rt.create_sandbox(sandbox)  # if this fails, no sandbox of ours exists to remove
        except Interrupted as exc:
            return 128 + exc.signum
        try:
            for step in (lambda: rt.start_sandbox(sid),
                         lambda: rt.create_container(sid, container),
                         lambda: rt.start_container(sid, sid)):
                gate.check()
                step()
            gate.check()
            return attach(rt, gate, sid, sid, interactive=args.interactive,
                          terminal=args.tty)
        except Interrupted as exc:
            return 128 + exc.signum
        finally:
            if args.keep:
                print(f"sbx: kept sandbox {sid!r}", file=sys.stderr)
            else:
                context.remove(rt, sid)


def cmd_exec(args: argparse.Namespace) -> int:
    if oci_exec.wants_shim(args):
        return oci_exec.cmd_exec_shim(args, args.command[1:] if args.command[:1] == ["--"]
                                      else args.command, parse_env(args.env))
    cmd = command_of(args)
    env = parse_env(args.env)
    # the same checks as a container's process, before anything is written
    from ..spec import ContainerConfig
    ContainerConfig(id=args.id, args=tuple(cmd), env=env, cwd=args.workdir or "/",
                    user=args.user or "0:0").validated()
    with context.writer(args) as rt, SignalGate() as gate:
        exec_id = rt.exec(args.id, args.id, cmd, env={**default_env(), **env} if env else None,
                          cwd=args.workdir, user=args.user, terminal=args.tty)
        return attach(rt, gate, args.id, args.id, exec_id, interactive=args.interactive,
                      terminal=args.tty)
