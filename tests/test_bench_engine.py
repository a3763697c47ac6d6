"""The wording ``benchmarks/bench_engine.py`` puts beside its timings."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_engine import load_note  # noqa: E402


def test_load_note_says_the_machine_was_shared_only_when_the_load_exceeds_the_cores():
    assert "shared" not in load_note(1.1, 2)
    assert "within the 2 cores" in load_note(2.0, 2)
    assert "above the 2 cores: other work shared the machine" in load_note(2.6, 2)
