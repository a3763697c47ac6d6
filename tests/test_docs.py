"""docs/data-contract.md is generated from recommender.contract, and agrees with the shared contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender.contract.columns import CONTRACT_VERSION
from recommender.contract.document import render_markdown, render_visits_markdown

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data-contract.md"


def test_the_project_copy_is_generated_from_the_code():
    doc = (ROOT / "docs" / "data-contract.md").read_text(encoding="utf-8")
    assert doc == render_markdown(), (
        "docs/data-contract.md drifted from recommender/contract: "
        "run `recommender contract-doc --out docs/data-contract.md`")


def test_the_visits_format_document_is_generated_from_the_code():
    doc = (ROOT / "docs" / "visits-format.md").read_text(encoding="utf-8")
    assert doc == render_visits_markdown(), (
        "docs/visits-format.md drifted from recommender/contract/visits.py: "
        "run `recommender contract-doc --visits --out docs/visits-format.md`")


@pytest.mark.skipif(not SHARED.is_file(), reason="the shared contract is not beside this clone")
def test_every_shared_column_is_stated_exactly_as_the_shared_contract_states_it():
    shared = SHARED.read_text(encoding="utf-8")
    ours = render_markdown()
    assert f"(version {CONTRACT_VERSION})" in shared.splitlines()[0]
    rows = [line for line in shared.splitlines() if line.startswith("| ") and not line.startswith("| column")]
    assert len(rows) > 30
    missing = [row for row in rows if row not in ours.splitlines()]
    assert not missing, "columns stated differently from the shared contract:\n" + "\n".join(missing)


def test_the_readme_settings_table_is_the_settings_object():
    from recommender.settings import settings_table

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert settings_table() in readme, "README's settings table drifted from recommender/settings.py"


@pytest.mark.parametrize("doc", ["simulator.md", "benchmarks.md"])
def test_every_simulated_clinic_is_documented_and_benchmarked(doc):
    from recommender.devtools.simulator import SCENARIOS

    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    missing = [name for name in SCENARIOS if f"{name}" not in text]
    assert not missing, f"docs/{doc} does not cover scenario(s) {missing}"
