"""The database-outage script, shortened: its own cluster, a crash under write load, recovery.

The full run (20 writers, 10 s outage) is `bench/outage.py`; here 5 writers and a 3 s outage
keep the suite quick while checking the same things.
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_outage_loses_no_acknowledged_write_and_recovers() -> None:
    out = subprocess.run(
        [
            sys.executable,
            "bench/outage.py",
            "--json",
            "--writers",
            "5",
            "--before-s",
            "2",
            "--outage-s",
            "3",
            "--after-s",
            "3",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert out.stdout.strip(), out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    failed = [name for name, ok in result["checks"].items() if not ok]
    assert not failed, (failed, result)
    assert result["acknowledged"] > 0
    assert result["acknowledged_found"] == result["acknowledged"]
    assert result["half_applied"] == 0
    assert set(result["statuses_while_down"]) == {"503"}
    assert out.returncode == 0
