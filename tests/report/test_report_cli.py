"""`sbx report` on the command line: refusals before anything is written, the anchor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from incident import SID, IncidentLog

pytestmark = pytest.mark.root


def test_report_refuses_bad_input_and_writes_nothing(incident_log: IncidentLog,
                                                     tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    for args, code, words in [
            (["nope"], 4, "no sandbox 'nope'"),
            (["../x"], 2, "id"),
            ([SID, "-o", str(tmp_path)], 2, "is a directory"),
            ([SID, "-o", str(tmp_path / "no" / "r.html")], 2, "does not exist")]:
        out = incident_log.sbx("report", *args, *([] if "-o" in args else ["-o", str(page)]))
        assert out.returncode == code, (args, out.stderr)
        assert words in out.stderr.strip().splitlines()[-1]       # after argparse's usage
        assert "Traceback" not in out.stderr
    assert list(tmp_path.iterdir()) == []
    empty = IncidentLog(tmp_path / "empty")
    out = empty.sbx("report", "-o", str(page))
    assert out.returncode == 4 and "no event log" in out.stderr and not page.exists()


def test_report_against_an_anchor(incident_log: IncidentLog, tmp_path: Path) -> None:
    anchor = tmp_path / "anchor.json"
    anchor.write_text(incident_log.ok("checkpoint"))
    page = tmp_path / "r.html"
    out = incident_log.sbx("report", "-o", str(page), "--anchor", str(anchor))
    assert out.returncode == 0, out.stderr
    html = page.read_text()
    assert 'data-anchored="true"' in html and "it matches" in html
    assert html.count('class="sandbox"') == 2      # every sandbox in the log

    position = json.loads(anchor.read_text())["position"]
    anchor.write_text(json.dumps({"position": position, "hash": "0" * 64}))
    out = incident_log.sbx("report", SID, "-o", str(page), "--anchor", str(anchor))
    assert out.returncode == 1 and "BROKEN" in out.stderr
    html = page.read_text()
    assert 'data-ok="false"' in html and "Hash chain BROKEN" in html
