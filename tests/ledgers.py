"""The append-only ledgers the kill tests' workers and drivers write, one fsynced line per finished trial."""

from __future__ import annotations

from pathlib import Path


def ledger_lines(path: Path) -> list[list[str]]:
    """The whitespace-separated fields of each line of the ledger at ``path`` ([] if it was never written);
    a torn last line (a write cut short) fails the test."""
    if not path.exists():
        return []
    text = path.read_text()
    assert not text or text.endswith("\n"), f"{path.name}: a torn last line: {text[-80:]!r}"
    return [line.split() for line in text.splitlines()]
