"""Bad input: one clear line on stderr, the documented exit code, never a traceback, and
nothing appended to the log."""

from __future__ import annotations

import pytest

BAD = [
    # (argv, exit code, a piece of the message)
    (["state", "../etc"], 2, "invalid id '../etc'"),
    (["run", "--id", "a/b", "--", "true"], 2, "invalid id 'a/b'"),
    (["run", "--id", "..", "--", "true"], 2, "invalid id '..'"),
    (["audit", "-x"], 2, "arguments are required"),
    (["state", "nosuch"], 4, "no sandbox 'nosuch'"),
    (["start", "nosuch"], 4, "no sandbox 'nosuch'"),
    (["audit", "nosuch"], 4, "no sandbox 'nosuch'"),
    (["kill", "nosuch", "TERM"], 4, "no sandbox 'nosuch'"),
    (["delete", "nosuch"], 4, "no sandbox 'nosuch'"),
    (["kill", "base", "NOPE"], 2, "unknown signal 'NOPE'"),
    (["run", "--bogus", "--", "true"], 2, "unrecognized arguments: --bogus"),
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    (["run", "-v", "nocolon", "--", "true"], 2, "--volume 'nocolon'"),
    (["run", "-v", "/a:/b:zz", "--", "true"], 2, "--volume '/a:/b:zz'"),
    (["run", "-v", "/nonexistent-src:/x", "--", "true"], 2, "'/nonexistent-src' does not exist"),
    (["run", "-u", "bob", "--", "true"], 2, "user 'bob'"),
    (["run", "-u", "1:2:3", "--", "true"], 2, "user '1:2:3'"),
    (["run", "-e", "=x", "--", "true"], 2, "--env '=x'"),
    (["run", "-w", "relative", "--", "true"], 2, "cwd 'relative' is not absolute"),
    (["run", "--rootfs", "/nonexistent-root", "--", "true"], 2, "'/nonexistent-root'"),
    (["run"], 2, "no command given"),
    (["create", "x", "--bundle", "/nonexistent-bundle"], 2, "'/nonexistent-bundle'"),
    (["--config", "/nonexistent.toml", "list"], 2, "/nonexistent.toml"),
    (["verify", "--anchor", "/nonexistent.json"], 2, "--anchor '/nonexistent.json'"),
    (["audit", "base", "--at", "never"], 2, "--at 'never'"),
]


@pytest.fixture(scope="module")
def base(module_sbx):
    """A log with one deleted sandbox, so 'nothing appended' is a real comparison."""
    module_sbx.ok("run", "--id", "base", "--", "true")
    return module_sbx


@pytest.mark.parametrize(("argv", "code", "message"), BAD, ids=[" ".join(b[0]) for b in BAD])
def test_bad_input(base, argv, code, message):
    before = base.checkpoint()
    out = base(*argv)
    assert out.returncode == code, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith(("sbx: error:", "sbx ")), out.stderr
    assert base.checkpoint() == before


def test_ids_are_reusable_once_deleted_but_not_while_alive(sbx):
    sbx.ok("run", "--id", "again", "--", "true")
    assert sbx.ok("run", "--id", "again", "--", "echo", "second").stdout == "second\n"
    sbx.ok("run", "--id", "kept", "--keep", "--", "true")
    before = sbx.checkpoint()
    out = sbx("run", "--id", "kept", "--", "true")
    assert out.returncode == 2 and "cannot create sandbox 'kept'" in out.stderr, out.stderr
    assert sbx.checkpoint() == before
    sbx.ok("delete", "--force", "kept")


@pytest.mark.parametrize(("content", "message"), [
    (None, "has no config.json"),
    ("{not json", "is not valid JSON"),
    ('{"process": {"cwd": "/"}}', "process.args must be a non-empty list"),
    ('{"process": {"args": ["true"]}, "root": {"path": "missing"}}', "root.path 'missing'"),
    ('{"process": {"args": ["true"], "user": {"uid": "root"}}}', "process.user.uid"),
    ('[1, 2]', "must be a JSON object"),
])
def test_bad_bundles(base, tmp_path, content, message):
    bundle = tmp_path / "bad-bundle"
    bundle.mkdir()
    if content is not None:
        (bundle / "config.json").write_text(content)
    before = base.checkpoint()
    out = base("create", "x", "--bundle", str(bundle))
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert str(bundle) in out.stderr and "Traceback" not in out.stderr
    assert base.checkpoint() == before


def test_debug_adds_the_traceback(base):
    out = base("--debug", "state", "nosuch")
    assert out.returncode == 4 and "Traceback" in out.stderr
    assert base("state", "nosuch").stderr.count("\n") == 1


def test_agent_serve_passes_its_arguments_to_the_guest_agent(base):
    out = base("agent", "serve", "--help")
    assert out.returncode == 0 and "--listen" in out.stdout
    out = base("agent", "serve")
    assert out.returncode == 2 and "--listen" in out.stderr and "Traceback" not in out.stderr
