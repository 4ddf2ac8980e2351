"""``cti-server admin import FILE --call-center NAME``: progress on stderr, bad rows by line, exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from cti_server.cli import main
from cti_server.screenpop.cli import ProgressBar, count_records


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_import_command_end_to_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CTI_STORE__URL", f"sqlite+aiosqlite:///{tmp_path / 'store.db'}")
    monkeypatch.setenv("CTI_LOG__LEVEL", "warning")
    assert _run(["admin", "create-call-center", "Support", "--region", "GB"], capsys)[0] == 0
    csv_file = tmp_path / "contacts.csv"
    csv_file.write_text("first_name,mobile\nLiz,020 7946 0018\nBob,zz\n")
    code, out, err = _run(["admin", "import", str(csv_file), "--call-center", "Support"], capsys)
    assert code == 0
    assert "imported 1 of 2 contacts (1 rejected" in out
    assert "100% 2/2 rows" in err and "line 3: mobile:" in err

    errors_file = tmp_path / "errors.csv"
    json_file = tmp_path / "more.jsonl"
    json_file.write_text(json.dumps({"first_name": "Max", "phones": "+14155550100"}) + "\n{broken\n")
    code, out, _err = _run(
        ["admin", "import", str(json_file), "--call-center", "Support", "--errors", str(errors_file)], capsys
    )
    assert code == 0 and "imported 1 of 2" in out
    assert errors_file.read_text().splitlines()[1].startswith("2,record,not JSON")

    code, _out, err = _run(["admin", "import", str(csv_file), "--call-center", "Nowhere"], capsys)
    assert code == 1 and "no call center named 'Nowhere'" in err
    code, _out, err = _run(["admin", "import", str(tmp_path / "x.txt"), "--call-center", "Support"], capsys)
    assert code == 1 and "--format" in err


def test_progress_bar_and_record_count(tmp_path: Path) -> None:
    stream = io.StringIO()
    bar = ProgressBar(200, stream, width=10)
    bar.update(100, 3)
    bar.update(200, 3)
    assert "[#####.....]  50% 100/200 rows" in stream.getvalue()
    assert "100% 200/200 rows" in stream.getvalue() and "3 bad" in stream.getvalue()
    path = tmp_path / "c.csv"
    path.write_text("a\n1\n2\n3\n")
    assert count_records(path, "csv") == 3
    path.write_text("[\n{}\n]")
    assert count_records(path, "json") is None
