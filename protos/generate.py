"""Regenerate the committed Python code from the .proto files, always the same way.

Run ``python -m protos.generate [--out DIR]`` from anywhere. Protos are compiled with
``-I <repo root>`` and named ``protos/x.proto`` so generated imports read
``from protos import x_pb2``. Pin: grpcio-tools 1.85.1 (generated code newer than the
runtime fails at import, so the version is checked, not assumed).
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata, resources
from pathlib import Path

REQUIRED_TOOLS = "1.85.1"
PROTO_NAMES = ("types", "oci", "health", "agent")
REPO_ROOT = Path(__file__).resolve().parent.parent


def proto_files() -> list[str]:
    """The .proto files, as paths relative to the repo root (how protoc must see them)."""
    return [f"protos/{name}.proto" for name in PROTO_NAMES]


def generate(out_dir: Path) -> list[Path]:
    """Compile every proto into ``out_dir/protos/``; return the generated files."""
    installed = metadata.version("grpcio-tools")
    if installed != REQUIRED_TOOLS:
        raise RuntimeError(
            f"protos.generate needs grpcio-tools=={REQUIRED_TOOLS}, found {installed}"
        )
    from grpc_tools import protoc

    if out_dir.name == "grpc" or "grpc" in out_dir.parts:
        raise ValueError(f"refusing to generate into {out_dir}: a 'grpc' folder shadows grpcio")
    (out_dir / "protos").mkdir(parents=True, exist_ok=True)
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "protoc",
        f"-I{REPO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *proto_files(),
    ]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code} for {proto_files()}")
    return sorted((out_dir / "protos").glob("*_pb2*"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO_ROOT,
                        help="output root; files land in OUT/protos/ (default: repo root)")
    ns = parser.parse_args(argv)
    for path in generate(ns.out.resolve()):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
