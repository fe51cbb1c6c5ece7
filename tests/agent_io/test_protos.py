"""The committed protos match the Kata v1 wire contract and their generated code is fresh."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from google.protobuf import descriptor as d

from protos import agent_pb2, generate, health_pb2, oci_pb2, types_pb2

REPO = Path(generate.__file__).resolve().parent.parent
# The contract, as data: a copy of the shared wire description kept beside the .protos.
WIRE = REPO / "protos" / "kata-agent-v1-wire.json"
FILES = (agent_pb2, health_pb2, oci_pb2, types_pb2)

SCALARS = {
    d.FieldDescriptor.TYPE_STRING: "string",
    d.FieldDescriptor.TYPE_BOOL: "bool",
    d.FieldDescriptor.TYPE_BYTES: "bytes",
    d.FieldDescriptor.TYPE_INT32: "int32",
    d.FieldDescriptor.TYPE_INT64: "int64",
    d.FieldDescriptor.TYPE_UINT32: "uint32",
    d.FieldDescriptor.TYPE_UINT64: "uint64",
}


@pytest.fixture(scope="module")
def wire() -> dict:
    return json.loads(WIRE.read_text())


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    generated = generate.generate(tmp_path)
    assert generated, "protos.generate produced no files"
    for fresh in generated:
        committed = REPO / "protos" / fresh.name
        assert committed.exists(), f"{fresh.name} is generated but not committed"
        assert committed.read_bytes() == fresh.read_bytes(), (
            f"protos/{fresh.name} differs from a fresh `python -m protos.generate`"
        )
    names = {p.name for p in generated}
    stale = {p.name for p in (REPO / "protos").glob("*_pb2*")} - names
    assert not stale, f"committed generated files with no .proto: {sorted(stale)}"


def _type_name(fd: d.FieldDescriptor, package: str) -> str:
    """Spell a field's type the way the wire JSON does (relative to the message's package)."""
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        key, value = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
        return f"map<{_type_name(key, package)},{_type_name(value, package)}>"
    target = fd.message_type or fd.enum_type
    if target is None:
        return SCALARS[fd.type]
    name = target.full_name
    if name.startswith(package + "."):
        return name[len(package) + 1:]
    return name


def _label(fd: d.FieldDescriptor) -> str:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        return "map"
    return "repeated" if fd.is_repeated else "singular"


def _compiled_messages() -> dict[str, d.Descriptor]:
    out: dict[str, d.Descriptor] = {}
    for module in FILES:
        for msg in module.DESCRIPTOR.message_types_by_name.values():
            out[msg.name] = msg
    return out


def _compiled_enums() -> dict[str, list[list]]:
    out: dict[str, list[list]] = {}
    for module in FILES:
        enums = list(module.DESCRIPTOR.enum_types_by_name.values())
        for msg in module.DESCRIPTOR.message_types_by_name.values():
            enums += msg.enum_types
        for enum in enums:
            key = enum.full_name.split(".", 1)[1]
            out[key] = [[v.name, v.number] for v in enum.values]
    return out


def test_packages_match_wire(wire: dict) -> None:
    packages = {f: p for f, p in wire["meta"]["files"].items()}
    by_base = {Path(f).stem: p for f, p in packages.items()}
    for module in FILES:
        base = Path(module.DESCRIPTOR.name).stem
        assert module.DESCRIPTOR.package == by_base[base], f"{base}.proto package"


def test_services_match_wire(wire: dict) -> None:
    for service_name, rpcs in wire["services"].items():
        owner = agent_pb2 if service_name == "AgentService" else health_pb2
        service = owner.DESCRIPTOR.services_by_name.get(service_name)
        assert service is not None, f"service grpc.{service_name} missing"
        assert service.full_name == f"grpc.{service_name}"
        compiled = {
            m.name: [_relative(m.input_type.full_name), _relative(m.output_type.full_name)]
            for m in service.methods
        }
        assert compiled == {r: list(io) for r, io in rpcs.items()}, f"rpcs of {service_name}"
        assert len(compiled) == wire["meta"]["rpc_counts"][service_name]


def _relative(full_name: str) -> str:
    return full_name[len("grpc."):] if full_name.startswith("grpc.") else full_name


def test_every_message_and_field_matches_wire(wire: dict) -> None:
    compiled = _compiled_messages()
    defined_in = wire["meta"]["definition_file"]
    files = wire["meta"]["files"]
    missing = sorted(set(wire["messages"]) - set(compiled))
    extra = sorted(set(compiled) - set(wire["messages"]))
    assert not missing, f"messages missing from the protos: {missing}"
    assert not extra, f"messages not in the wire contract: {extra}"
    for name, fields in wire["messages"].items():
        msg = compiled[name]
        package = files[defined_in[name]]
        assert msg.full_name == f"{package}.{name}", f"{name} is in the wrong package"
        got = [[f.name, f.number, _type_name(f, package), _label(f)] for f in msg.fields]
        want = [list(f) for f in fields]
        for g, w in zip(sorted(got, key=lambda x: x[1]), sorted(want, key=lambda x: x[1]),
                        strict=False):
            assert g == w, f"{name}: field {g} differs from wire {w}"
        assert len(got) == len(want), f"{name}: {len(got)} fields, wire has {len(want)}"


def test_every_enum_matches_wire(wire: dict) -> None:
    assert _compiled_enums() == wire["enums"]
