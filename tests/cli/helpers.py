"""Running the ``rlsuite`` command in-process from a test."""

from __future__ import annotations

from typing import Any

from rlsuite.cli import main


def run_cli(capsys: Any, *argv: Any) -> tuple[int, str, str]:
    """``(exit status, stdout, stderr)`` of ``rlsuite *argv`` (arguments passed through ``str``).

    The option parser's own exit (``--help``: 0; a malformed command line: 2) is returned as the status.
    """
    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err
