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


def test_a_run_without_the_scale_part_keeps_the_measured_scale_section(tmp_path):
    from bench_engine import SCALE_HEADING, write_keeping_scale

    out = tmp_path / "benchmarks.md"
    out.write_text(f"# Benchmarks\n\nold\n\n## Summary\n\nold rows\n\n{SCALE_HEADING}\n\n"
                   "| 20,000 | 3 | 24.5 | 847 |\n")
    write_keeping_scale(out, "# Benchmarks\n\nnew\n\n## Summary\n\nnew rows\n")
    text = out.read_text()
    assert "new rows" in text and "old rows" not in text
    assert "| 20,000 | 3 | 24.5 | 847 |" in text
    assert text.count("Kept from an earlier run") == 1
    write_keeping_scale(out, "# Benchmarks\n\nnewer\n\n## Summary\n\nnewer rows\n")
    assert out.read_text().count("Kept from an earlier run") == 1  # not stacked run after run
    # a run with the scale part replaces the section, note and all
    write_keeping_scale(out, f"# Benchmarks\n\n## Summary\n\nrows\n\n{SCALE_HEADING}\n\n"
                             "| 20,000 | 3 | 20.0 | 800 |\n")
    text = out.read_text()
    assert "| 20,000 | 3 | 20.0 | 800 |" in text and "24.5" not in text
    assert "Kept from an earlier run" not in text
