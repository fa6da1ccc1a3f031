"""The embedded PostgreSQL's bookkeeping survives an interrupted command."""

from __future__ import annotations

import json
from pathlib import Path

from deploy.embedded_pg import handle_list_repair


def test_an_empty_or_broken_handle_list_is_started_afresh(tmp_path: Path) -> None:
    pids = tmp_path / ".handle_pids.json"
    assert not handle_list_repair(tmp_path)  # no file: nothing to do
    for broken in ["", "[12, 1", "{}"]:
        pids.write_text(broken)
        assert handle_list_repair(tmp_path)
        assert json.loads(pids.read_text()) == []
    pids.write_text("[123, 456]")
    assert not handle_list_repair(tmp_path)
    assert json.loads(pids.read_text()) == [123, 456]
