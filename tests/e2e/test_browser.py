"""End-to-end flows in a real browser against `streamlit run`, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from recommender.devtools.demo import PHLEBITIS_EPISODE
from recommender.web.navigation import ROLE_PAGES

from .conftest import CLINIC_ENV, sign_in

pytestmark = pytest.mark.browser
USERNAMES = {"therapist": "therapist", "data_staff": "datastaff", "supervisor": "supervisor",
             "admin": "admin"}


def settle(page) -> None:
    """Wait until the app has finished its script run (typing into a page that is still
    running can be overwritten by the run's result, in a browser as for a person)."""
    page.wait_for_timeout(200)
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden(timeout=60_000)


def choose_episode(page, episode: str, box: str = "Search any episode or patient id") -> None:
    settle(page)
    page.get_by_role("textbox", name=box).fill(episode)
    page.keyboard.press("Enter")
    expect(page.get_by_role("combobox", name="Episode")).to_have_value(re.compile(f"^{episode} — patient"))


def no_exception(page) -> None:
    page.wait_for_timeout(300)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    expect(page.get_by_text("Traceback")).to_have_count(0)


@pytest.mark.parametrize("role", sorted(ROLE_PAGES))
def test_every_page_of_every_role_opens_with_data(page, app_url, role):
    sign_in(page, app_url, USERNAMES[role])
    # a demo account: its password is printed in the README, and the sidebar says so
    expect(page.get_by_text("password is printed in the README")).to_be_visible()
    for spec in ROLE_PAGES[role]:
        if len(ROLE_PAGES[role]) > 1:  # a single page has no navigation menu
            page.get_by_role("link", name=spec.title).click()
        expect(page.get_by_role("heading", name=spec.title)).to_be_visible()
        settle(page)
        no_exception(page)


def open_page(page, title: str) -> None:
    page.get_by_role("link", name=title).click()
    expect(page.get_by_role("heading", name=title)).to_be_visible()


def test_therapist_plans_accepts_and_records_two_follow_ups(page, app_url, monkeypatch):
    for name, value in CLINIC_ENV[app_url].items():  # a colleague planned DEMO-0005 (a follow-up
        monkeypatch.setenv(name, value)               # needs an accepted plan)
    from recommender.devtools.demo import demo_password
    from recommender.services import open_service

    svc = open_service()
    colleague = svc.sign_in("therapist", demo_password("therapist"))
    rec_id, rec = svc.recommend(colleague, "DEMO-0005")
    svc.accept(colleague, rec_id, rec.best.plan)
    svc.sign_out(colleague)
    svc.db.dispose()

    sign_in(page, app_url, "therapist")
    open_page(page, "Plan treatment")
    choose_episode(page, "DEMO-0003")
    page.get_by_role("button", name="Recommend a plan").click()
    expect(page.get_by_text("Recommended plan")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Pain: \d+/10"))).to_be_visible()  # intake beside the plan
    tuned = page.get_by_test_id("stMetric").filter(has_text="This plan: expected reduction")
    before = tuned.inner_text()
    slider = page.get_by_role("slider").nth(1)  # muscle training / week
    slider.focus()
    page.keyboard.press("End")
    expect(tuned).not_to_have_text(before)
    expect(page.get_by_text("muscle training sessions a week", exact=False)).to_be_visible()
    reason = page.get_by_role("combobox", name="Reason for the difference")
    reason.click()
    page.keyboard.type("Patient pref")
    page.keyboard.press("Enter")
    expect(reason).to_have_value("Patient preference")
    page.get_by_role("button", name="Accept plan").click()
    expect(page.get_by_text(re.compile(r"Accepted plan \(decision \d+"))).to_be_visible()
    expect(page.get_by_text("Tell your therapist if anything is uncomfortable", exact=False)).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="FHIR CarePlan with pain scores (JSON)").click()
    bundle = open(download.value.path()).read()
    assert '"resourceType": "Bundle"' in bundle and '"resourceType": "CarePlan"' in bundle
    assert '"code": "72514-3"' in bundle  # the intake pain score, as an Observation
    no_exception(page)

    page.get_by_role("link", name="Record follow-up").click()
    for episode, pain in (("DEMO-0003", "3"), ("DEMO-0005", "6")):
        choose_episode(page, episode)
        expect(page.get_by_text(f"Follow-up for episode {episode} ")).to_be_visible()
        settle(page)
        pain_box = page.get_by_role("spinbutton", name="Follow-up pain score (0–10)")
        pain_box.fill(pain)
        expect(pain_box).to_have_value(re.compile(f"^{pain}"))
        page.get_by_role("button", name="Save follow-up").click()
        expect(page.get_by_text(f"Follow-up saved for {episode}")).to_be_visible()
        no_exception(page)


def test_tuning_a_plan_reruns_only_its_part_and_still_checks_the_session(page, app_url, monkeypatch):
    """Tuning reruns a fragment of the page, which skips app.py: a session ended elsewhere
    (here: signed out from another place) must still end at the next slider move."""
    sign_in(page, app_url, "therapist")
    open_page(page, "Plan treatment")
    choose_episode(page, "DEMO-0011")
    page.get_by_role("button", name="Recommend a plan").click()
    tuned = page.get_by_test_id("stMetric").filter(has_text="This plan: expected reduction")
    slider = page.get_by_role("slider").nth(1)  # muscle training / week
    for key in ("End", "Home"):
        settle(page)
        before = tuned.inner_text()
        slider.focus()
        page.keyboard.press(key)
        expect(tuned).not_to_have_text(before)
    no_exception(page)

    for name, value in CLINIC_ENV[app_url].items():
        monkeypatch.setenv(name, value)
    from recommender.services import open_service

    svc = open_service()
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "recommender_session")
    svc.sign_out(svc.resume(token.strip('"')))
    svc.db.dispose()
    settle(page)
    slider.focus()
    page.keyboard.press("End")
    expect(page.get_by_role("textbox", name="Username")).to_be_visible()
    expect(page.get_by_text("therapist ·")).to_have_count(0)
    no_exception(page)


def test_a_plan_accepted_elsewhere_shows_at_the_next_slider_move(page, app_url, monkeypatch):
    """The tuning fragment must not keep a stale "no plan yet" after a colleague (or another
    tab) accepted one: the next slider move redraws the page with the accepted plan."""
    sign_in(page, app_url, "therapist")
    open_page(page, "Plan treatment")
    choose_episode(page, "DEMO-0010")
    page.get_by_role("button", name="Recommend a plan").click()
    expect(page.get_by_role("button", name="Accept plan")).to_be_visible()

    for name, value in CLINIC_ENV[app_url].items():
        monkeypatch.setenv(name, value)
    from recommender.devtools.demo import demo_password
    from recommender.services import open_service

    svc = open_service()
    colleague = svc.sign_in("therapist", demo_password("therapist"))
    rec_id, rec = svc.recommend(colleague, "DEMO-0010")
    decision = svc.accept(colleague, rec_id, rec.best.plan)
    svc.db.dispose()
    settle(page)
    page.get_by_role("slider").nth(1).focus()
    page.keyboard.press("End")
    expect(page.get_by_text(re.compile(rf"Accepted plan \(decision {decision}\b"))).to_be_visible()
    expect(page.get_by_role("button", name="Accept plan")).to_be_disabled()  # tuning restarts from it
    no_exception(page)


def test_sign_in_survives_a_reload(page, app_url):
    sign_in(page, app_url, "therapist")
    open_page(page, "Plan treatment")
    choose_episode(page, "DEMO-0001")
    page.reload()
    expect(page.get_by_text("therapist ·")).to_be_visible()
    expect(page.get_by_role("heading", name="Plan treatment")).to_be_visible()
    expect(page.get_by_role("textbox", name="Username")).to_have_count(0)
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("textbox", name="Username")).to_be_visible()
    page.reload()  # signed out stays signed out
    expect(page.get_by_role("textbox", name="Username")).to_be_visible()


def test_phlebitis_patient_never_gets_massage(page, app_url):
    sign_in(page, app_url, "therapist")
    open_page(page, "Plan treatment")
    choose_episode(page, PHLEBITIS_EPISODE)
    page.get_by_role("button", name="Recommend a plan").click()
    expect(page.get_by_text("phlebitis", exact=False).first).to_be_visible()
    expect(page.get_by_text("Massage: none")).to_be_visible()
    massage = page.get_by_role("slider").first
    # whatever the therapist clicks, massage stays at 0 and intensity at 'none'
    massage.click(force=True)
    page.keyboard.press("End")
    page.keyboard.press("ArrowRight")
    expect(massage).to_have_value("0")
    expect(massage).to_be_disabled()
    expect(page.get_by_role("radiogroup").filter(has_text="none").get_by_role("radio")).to_have_count(1)
    page.get_by_role("button", name="Accept plan").click()
    expect(page.get_by_text(re.compile(r"Accepted plan \(decision \d+.*no massage"))).to_be_visible()


def pick(page, box: str, option: str) -> None:
    combo = page.get_by_role("combobox", name=box)
    combo.click()
    page.keyboard.type(option)
    page.keyboard.press("Enter")
    expect(combo).to_have_value(option)


def test_day_list_two_painful_visits_and_a_review_capped_with_the_reason(page, app_url):
    """The day list opens a patient in one click; two visits with discomfort 8/10 at moderate
    massage, then a review: massage is capped at gentle, and the screen says why."""
    from recommender.devtools.demo import IMPROVING_EPISODE

    sign_in(page, app_url, "therapist")
    expect(page.get_by_role("heading", name="My day")).to_be_visible()
    expect(page.get_by_text("Repeated high discomfort").first).to_be_visible()
    row = page.get_by_test_id("stHorizontalBlock").filter(has_text=IMPROVING_EPISODE)
    row.get_by_role("button", name="Open").click()  # one click from the list
    expect(page.get_by_role("heading", name="Course of care")).to_be_visible()
    expect(page.get_by_text(f"episode {IMPROVING_EPISODE}")).to_be_visible()
    for n in (1, 2):
        settle(page)
        page.get_by_role("spinbutton", name="Pain now (0–10)").fill("4")
        pick(page, "Massage given", "moderate")
        page.get_by_role("spinbutton", name="Discomfort during treatment (0–10)").fill("8")
        page.get_by_role("button", name="Save visit").click()
        expect(page.get_by_text(f"Visit saved for {IMPROVING_EPISODE}")).to_be_visible()
        no_exception(page)
    expect(page.get_by_text("no firmer than gentle", exact=False).first).to_be_visible()
    page.get_by_role("radio", name="Review the plan").click()
    page.get_by_role("button", name="Ask for a review").click()
    expect(page.get_by_text("Massage capped", exact=False)).to_be_visible()
    expect(page.get_by_text("Discomfort was 7/10 or more at 2 of the last 3 sessions with massage "
                            "(at moderate intensity): massage no firmer than gentle",
                            exact=False).first).to_be_visible()
    table = page.get_by_test_id("stDataFrame").first
    expect(table).to_be_visible()
    no_exception(page)


def test_data_staff_sees_every_bad_row_as_text(page, app_url, tmp_path):
    from recommender.contract.csv_io import write_csv
    from recommender.devtools.simulator import simulate

    episodes = simulate(30, seed=12).episodes.astype(object)
    episodes.loc[2, "age"] = 7
    episodes.loc[10, "pain_region"] = "[click](http://example.invalid)"
    episodes.loc[21, "heart_condition"] = "perhaps"
    path = tmp_path / "bad.csv"
    write_csv(episodes, path)
    sign_in(page, app_url, "datastaff")
    page.locator("input[type=file]").set_input_files(str(path))
    expect(page.get_by_text("3 error(s) in 3 of 30 row(s)", exact=False)).to_be_visible()
    report = page.get_by_test_id("stCode")
    for row, column, value in (("4", "age", "7"), ("12", "pain_region", "[click](http://example.invalid)"),
                               ("23", "heart_condition", "perhaps")):
        expect(report).to_contain_text(f"row {row}, column '{column}': '{value}'")
    expect(page.get_by_test_id("stMain").locator("a[href*='example.invalid']")).to_have_count(0)
    expect(page.get_by_role("button", name="Import")).to_have_count(0)


def test_supervisor_sees_the_override_and_a_verified_chain(page, app_url):
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
    expect(page.get_by_text(re.compile(r"^1 of \d+ events"))).to_be_visible()


def test_admin_resets_a_password_typed_then_tabbed_away_from(page, app_url):
    """Tab after typing moves focus to the field's show/hide button; the typed password must
    still reach the reset (it once arrived empty: "use at least 15 characters"), and the
    field must be empty afterwards, so the next user chosen is not given the same password."""
    name = f"tab{app_url.rsplit(':', 1)[-1].strip('/')}"  # one new account per app server
    sign_in(page, app_url, "admin")
    expect(page.get_by_role("heading", name="Users and roles")).to_be_visible()
    settle(page)
    page.get_by_role("textbox", name="Username").fill(name)
    page.get_by_role("textbox", name="Initial password").fill("copper-lantern-violin-harbour")
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_text(f"Added {name}.")).to_be_visible()
    settle(page)
    who = page.get_by_role("combobox", name="User")
    who.click()
    page.keyboard.type(name)
    page.get_by_role("option").filter(has_text=name).first.click()
    expect(who).to_have_value(name)  # never the signed-in admin: a reset would end this session
    settle(page)
    field = page.get_by_role("textbox", name="New password")
    field.fill("meadow-spoon-quartz-kettle-dune")
    page.keyboard.press("Tab")
    page.get_by_role("button", name="Reset password").click()
    expect(page.get_by_text(f"Password of {name} reset; their sessions have ended.")).to_be_visible()
    settle(page)
    expect(page.get_by_role("textbox", name="New password")).to_have_value("")


def test_a_refused_forced_promotion_leaves_no_tick_or_reason_behind(page, app_url):
    """Force and reason are one form, emptied on submit: a ticked box once stayed ticked (with
    its reason) for the next version chosen, which would then have been forced too."""
    sign_in(page, app_url, "supervisor")
    open_page(page, "Models")
    settle(page)
    page.get_by_text("Force despite the promotion gate").click()
    page.get_by_role("button", name=re.compile(r"^Promote v\d+$")).click()
    expect(page.get_by_text("forcing a promotion needs a reason")).to_be_visible()
    settle(page)
    expect(page.get_by_role("checkbox", name="Force despite the promotion gate")).not_to_be_checked()
    expect(page.get_by_role("textbox", name="Reason (required to force)")).to_have_value("")

