"""A dispatcher process starts without the libraries only other commands need."""

from __future__ import annotations

import subprocess
import sys


def test_dispatch_command_does_not_load_frames_or_pdf() -> None:
    code = (
        "import sys, arrears.cli, arrears.channels.outbox, arrears.db\n"
        "print(','.join(m for m in ('polars', 'reportlab', 'fastapi') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == ""
