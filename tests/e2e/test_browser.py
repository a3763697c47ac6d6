"""End-to-end flows in a real browser against `streamlit run`."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from recommender.devtools.demo import PHLEBITIS_EPISODE

from .conftest import sign_in

pytestmark = pytest.mark.browser


def choose_episode(page, episode: str) -> None:
    page.get_by_role("textbox", name="Search by episode or patient id").fill(episode)
    page.keyboard.press("Enter")
    expect(page.get_by_role("combobox", name="Episode")).to_have_value(re.compile(f"^{episode} — patient"))


def test_therapist_gets_tunes_and_accepts_a_plan(page, app_url):
    sign_in(page, app_url, "therapist")
    choose_episode(page, "DEMO-0003")
    page.get_by_role("button", name="Recommend a plan").click()
    expect(page.get_by_text("Recommended plan")).to_be_visible()
    tuned = page.get_by_test_id("stMetric").filter(has_text="Tuned: expected reduction")
    before = tuned.inner_text()
    slider = page.get_by_role("slider").nth(1)  # muscle training / week
    slider.focus()
    page.keyboard.press("End")
    expect(tuned).not_to_have_text(before)
    reason = page.get_by_role("combobox", name="Reason for the change")
    reason.click()
    page.keyboard.type("Patient pref")
    page.keyboard.press("Enter")
    expect(reason).to_have_value("Patient preference")
    page.get_by_role("button", name="Accept plan").click()
    expect(page.get_by_text(re.compile(r"Accepted \(decision \d+\)"))).to_be_visible()
    expect(page.get_by_text("Tell your therapist if anything is uncomfortable", exact=False)).to_be_visible()
    expect(page.get_by_role("button", name="Download FHIR CarePlan")).to_be_visible()


def test_phlebitis_patient_never_gets_massage(page, app_url):
    sign_in(page, app_url, "therapist")
    choose_episode(page, PHLEBITIS_EPISODE)
    page.get_by_role("button", name="Recommend a plan").click()
    expect(page.get_by_text("CI-PHLEBITIS")).to_be_visible()
    expect(page.get_by_text("no massage", exact=False).first).to_be_visible()
    massage = page.get_by_role("slider").first
    # whatever the therapist clicks, massage stays at 0 and intensity at 'none'
    massage.click(force=True)
    page.keyboard.press("End")
    page.keyboard.press("ArrowRight")
    page.get_by_text("none", exact=True).click(force=True)
    expect(massage).to_have_value("0")
    expect(massage).to_be_disabled()
    expect(page.get_by_role("radiogroup").filter(has_text="none").get_by_role("radio")).to_have_count(1)
    page.get_by_role("button", name="Accept plan").click()
    expect(page.get_by_text(re.compile(r"Accepted \(decision \d+\): no massage"))).to_be_visible()


def test_data_staff_sees_every_bad_row(page, app_url, tmp_path):
    from recommender.contract.csv_io import write_csv
    from recommender.devtools.simulator import simulate

    episodes = simulate(30, seed=12).episodes.astype(object)
    episodes.loc[2, "age"] = 7
    episodes.loc[10, "pain_region"] = "elbow"
    episodes.loc[21, "heart_condition"] = "perhaps"
    path = tmp_path / "bad.csv"
    write_csv(episodes, path)
    sign_in(page, app_url, "datastaff")
    page.locator("input[type=file]").set_input_files(str(path))
    expect(page.get_by_text("3 error(s) in 3 of 30 row(s)", exact=False)).to_be_visible()
    table = page.get_by_test_id("stTable")
    for row, column, value in (("4", "age", "7"), ("12", "pain_region", "elbow"),
                               ("23", "heart_condition", "perhaps")):
        expect(table.get_by_role("row").filter(has_text=column).filter(has_text=value)
               ).to_contain_text(row)
    expect(page.get_by_role("button", name="Import")).to_have_count(0)


def test_supervisor_sees_acceptance_and_verified_chain(page, app_url):
    """Runs after the therapist test above, whose decision (an override) it looks for."""
    sign_in(page, app_url, "supervisor")
    expect(page.get_by_text("Chain verified", exact=False)).to_be_visible()
    page.get_by_role("textbox", name="Patient or episode").fill("DEMO-0003")
    page.keyboard.press("Enter")
    actions = page.get_by_role("combobox", name="Actions")
    actions.click()
    page.keyboard.type("override")
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    expect(page.get_by_text(re.compile(r"^1 of \d+ events$"))).to_be_visible()
