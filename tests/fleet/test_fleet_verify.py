"""`fleet verify` from the stream alone: a forged republish, a gap, and host checkpoints."""

from __future__ import annotations

import asyncio
import json

import msgpack
import nats

from eventstore import ANY, EventStore, NewEvent


def _append(host, n: int) -> None:
    (host.state / "events").mkdir(parents=True, exist_ok=True)
    with EventStore.open(host.state / "events") as store:
        for i in range(n):
            store.append(f"sandbox-s{i % 3}", [NewEvent("Tick", {"i": i, "who": "ops"})], ANY)


def _forge(url: str, host_id: str, position: int, *, delete: int | None = None) -> None:
    """Copy the message at `position`, change its data, publish it under a new msg id;
    and delete the message at position `delete` from the stream."""
    async def run() -> None:
        msg = None
        nc = await nats.connect(url, allow_reconnect=False)
        try:
            js = nc.jetstream()
            sub = await js.subscribe(f"sbx.events.{host_id}.>", ordered_consumer=True)
            seqs = {}
            while len(seqs) <= max(position, delete or 0):
                m = await sub.next_msg(timeout=5)
                seqs[int(m.headers["Sbx-Position"])] = m.metadata.sequence.stream
                msg = m if int(m.headers["Sbx-Position"]) == position else msg
            await sub.unsubscribe()
            record = msgpack.unpackb(msg.data)
            record[6]["who"] = "mallory"
            headers = {**msg.headers, "Nats-Msg-Id": f"{host_id}:{position}-again"}
            await js.publish(msg.subject, msgpack.packb(record), headers=headers)
            if delete is not None:
                await js.delete_msg("SBX_EVENTS", seqs[delete])
        finally:
            await nc.close()
    asyncio.run(run())


def test_verify_reports_a_forged_republish_a_gap_and_a_checkpoint_mismatch(hosts, nats_server,
                                                                          tmp_path):
    url = nats_server.url
    a, b = hosts[0], hosts[1]
    for h in (a, b):
        _append(h, 40)
        h.ok("ship", "--nats", url, "--until-caught-up")
    anchor = tmp_path / "a.json"
    anchor.write_text(a.ok("checkpoint").stdout)
    hid, other = a.host_id(), b.host_id()
    ok = a.ok("fleet", "verify", "--nats", url, "--anchor", f"{hid}={anchor}").stdout
    assert f"host {hid}: 40 messages, through position 39" in ok and ok.count(": ok") == 2

    _forge(url, hid, 7)
    out = a("fleet", "verify", "--nats", url)
    assert out.returncode == 1
    assert f"host {hid} position 7" in out.stdout and "republished with different data" \
        in out.stdout and f"{hid}:7-again" in out.stdout
    assert f"host {other}: 40 messages" in out.stdout and f"host {other} position" \
        not in out.stdout
    assert out.stderr.count("\n") == 1 and "fleet verification FAILED" in out.stderr
    # the views keep the first copy: the host's own data
    rows = a.json("fleet", "audit", "--nats", url, hid, "s1")
    assert len(rows) == 13

    _forge(url, other, 3, delete=1)      # and a hole in b's part of the stream
    out = b("--json", "fleet", "verify", "--nats", url, "--host", other)
    assert out.returncode == 1
    problems = "\n".join(json.loads(out.stdout)["problems"])
    assert f"host {other} position 1: missing positions 1..1" in problems
    assert f"host {other} position 3 (stream seq" in problems

    _append(a, 2)                       # checkpoint taken after what was shipped
    anchor.write_text(a.ok("checkpoint").stdout)
    out = a("fleet", "verify", "--nats", url, "--host", hid, "--anchor", f"{hid}={anchor}")
    assert out.returncode == 1 and f"host {hid} position 41: the host's checkpoint" in out.stdout
