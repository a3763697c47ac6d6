"""Streamlit AppTest: every page of every role with demo data, the therapist's paths, and the
negatives (pages a role cannot reach)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from recommender.devtools.demo import PHLEBITIS_EPISODE, demo_password
from recommender.web.navigation import ROLE_PAGES

APP = str(Path(__file__).resolve().parents[1] / "app.py")
USERNAMES = {"therapist": "therapist", "data_staff": "datastaff", "supervisor": "supervisor",
             "admin": "admin"}


def signed_in(role: str):
    from recommender.web.ui import service

    username = USERNAMES[role]
    return service().sign_in(username, demo_password(username))


def app_as(role: str | None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    if role is not None:
        at.session_state["actor"] = signed_in(role)
        at.session_state["last_active"] = time.time()
    return at.run()


def on_page(role: str, script: str) -> AppTest:
    """Signed in as ``role`` and on the page ``script`` (as a click in the sidebar does)."""
    at = app_as(role)
    spec = next(p for p in ROLE_PAGES[role] if p.script == script)
    return at.switch_page(page(spec)).run()


def titles(at: AppTest) -> list[str]:
    return [t.value for t in at.title]


def page(spec) -> str:
    return str(spec.path.relative_to(Path(APP).parent))


def shown(element) -> str:
    """An element's text as the user reads it (Markdown escapes of user data removed)."""
    return element.value.replace("\\", "").replace("\u200b", "")


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_sign_in_wrong_then_right(demo_env):
    at = app_as(None)
    at.text_input[0].input("therapist")
    at.text_input[1].input("not-the-password")
    at.button[0].click().run()
    assert "Unknown username or wrong password" in at.error[0].value
    assert "locked until an administrator unlocks it" in at.error[0].value
    at.text_input[1].input(demo_password("therapist"))
    at.button[0].click().run()
    assert at.session_state["actor"].username == "therapist"
    assert at.session_state["actor"].session_token
    assert "My day" in titles(at)


def test_idle_session_is_signed_out(demo_env):
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["actor"] = signed_in("therapist")
    at.session_state["last_active"] = time.time() - 3600
    at.run()
    assert "actor" not in at.session_state
    assert "without activity" in at.info[0].value


@pytest.mark.parametrize("role", sorted(ROLE_PAGES))
def test_every_page_of_every_role_renders_with_data(demo_env, role):
    at = app_as(role)
    for spec in ROLE_PAGES[role]:
        at.switch_page(page(spec)).run()
        no_exception(at)
        assert spec.title in titles(at) or spec.title == "Plan treatment"


def test_a_demo_account_is_warned_on_every_page_and_the_admin_told_which(demo_env):
    """The demo's passwords are printed in the README: whoever signs in with one is warned,
    and the admin's users page names every account that still has one."""
    at = app_as("therapist")
    assert any("password is printed in the README" in w.value for w in at.warning)
    at.switch_page(page(ROLE_PAGES["therapist"][-1])).run()
    assert any("password is printed in the README" in w.value for w in at.warning)
    at = on_page("admin", "users.py")
    named = next(w.value for w in at.warning if "README prints for them" in w.value)
    assert "for them: admin, datastaff, supervisor, therapist." in named
    table = at.dataframe[0].value
    assert list(table.columns) == ["Username", "Role", "Enabled", "Locked", "Failed sign-ins"]
    assert "Data staff" in set(table["Role"])


def test_therapist_recommend_tune_accept_and_change(demo_env):
    from recommender.web.ui import service

    at = on_page("therapist", "plan.py")
    next(s for s in at.selectbox if s.label == "Episode").select("DEMO-0002").run()
    at.button(key="recommend").click().run()
    assert any("Recommended plan" in s.value for s in at.subheader)
    assert any(t.value.startswith("Pain: ") for t in at.text)  # the intake summary beside it
    metrics = {m.label: m.value for m in at.metric}
    assert "points" in metrics["Expected pain reduction"]
    training = next(s for s in at.select_slider if s.label == "Muscle training / week")
    before = metrics["This plan: expected reduction"]
    training.set_value(4 if training.value != 4 else 0).run()
    after = {m.label: m.value for m in at.metric}["This plan: expected reduction"]
    assert after != before  # the prediction follows the slider
    assert any("muscle training sessions a week" in i.value for i in at.info)  # a label, no code
    assert not any("muscle_training" in i.value for i in at.info)
    next(b for b in at.button if b.label == "Accept plan").click().run()
    assert any("choose a reason" in e.value for e in at.error)
    next(s for s in at.selectbox if s.label == "Reason for the difference").select("patient_preference").run()
    next(b for b in at.button if b.label == "Accept plan").click().run()
    no_exception(at)
    assert any("Accepted plan (decision" in s.value for s in at.success)
    # moving a slider after accepting: the screen says the accepted plan stays until replaced
    minutes = next(s for s in at.select_slider if s.label == "Minutes per session")
    minutes.set_value(45 if minutes.value != 45 else 20).run()
    replace = next(b for b in at.button if b.label == "Replace the accepted plan")
    assert any("already has an accepted plan" in w.value for w in at.warning)
    next(s for s in at.selectbox if s.label == "Reason for the difference").select("schedule").run()
    replace.click().run()
    assert any("needs a reason" in e.value for e in at.error)
    next(s for s in at.selectbox if s.label == "Why change the accepted plan?").select("patient_preference").run()
    next(t for t in at.text_input if t.label == "Note on the change").input("patient works shifts").run()
    next(b for b in at.button if b.label == "Replace the accepted plan").click().run()
    no_exception(at)
    supervisor = signed_in("supervisor")
    decisions = service().decisions_frame(supervisor)
    mine = decisions[decisions["episode_id"] == "DEMO-0002"]
    assert len(mine) == 2 and mine["supersedes_decision"].notna().sum() == 1
    banner = next(s.value for s in at.success if "Accepted plan (decision" in s.value)
    assert f"decision {int(mine['decision_id'].max())}" in banner
    # one "tune" per slider the therapist moved: none for the redraw after each accept, which
    # starts tuning from the accepted plan (it once logged a tune nobody made)
    events = service().audit_events(supervisor)
    tunes = events[(events["action"] == "tune") & (events["target"] == "episode:DEMO-0002")]
    assert len(tunes) == 2, tunes[["seq", "after"]].to_string()


def test_phlebitis_patient_has_massage_locked(demo_env):
    at = on_page("therapist", "plan.py")
    next(s for s in at.selectbox if s.label == "Episode").select(PHLEBITIS_EPISODE).run()
    at.button(key="recommend").click().run()
    sessions = next(s for s in at.select_slider if s.label == "Massage sessions / week")
    assert sessions.options == ["0"] and sessions.disabled
    intensity = next(r for r in at.radio if r.label == "Massage intensity")
    assert intensity.options == ["none"]
    assert any("phlebitis" in c.value for c in at.caption)


def test_a_plan_recommended_before_a_visit_found_a_contraindication_is_not_shown_as_current(demo_env):
    """The plan page keeps a recommendation while the therapist works; a visit recorded
    meanwhile (another tab, a colleague) that finds an infectious disease makes a massage
    plan unsafe: the page drops it and asks to recommend again, which gives no massage."""
    import datetime as dt

    from recommender.devtools.simulator import simulate
    from recommender.web.ui import service
    from tests.conftest import intake_dict

    me, today = signed_in("therapist"), dt.date.today()
    cohort = simulate(3, seed=41)
    service().save_intake(me, intake_dict(
        cohort, 0, episode_id="W-STALE-1", patient_id="P-STALE", heart_condition="false",
        infectious_disease="false", phlebitis="false", inflamed_skin_regions="", infected_regions="",
        fever="false", deep_vein_thrombosis="false", anticoagulant_therapy="false",
        recent_fracture_regions="", intake_date=(today - dt.timedelta(days=3)).isoformat()))
    rec_id, rec = service().recommend(me, "W-STALE-1")  # visits need an accepted plan
    service().accept(me, rec_id, rec.best.plan)
    at = on_page("therapist", "plan.py")
    next(t for t in at.text_input if t.label == "Search any episode or patient id").input("W-STALE-1").run()
    at.button(key="recommend").click().run()
    assert any(h.value == "Recommended plan" for h in at.subheader)
    assert next(s for s in at.select_slider if s.label == "Massage sessions / week").options != ["0"]

    service().record_visit(me, "W-STALE-1", {
        "visit_date": today.isoformat(), "kind": "session", "pain_score": 6, "discomfort": 2,
        "massage_intensity": "none", "training_given": True, "exercise_days_last_week": 2,
        "adverse_event": False, "note": "", "infectious_disease": True})
    at.run()
    no_exception(at)
    assert any("changed after this plan was recommended" in i.value for i in at.info)
    assert not any(h.value == "Recommended plan" for h in at.subheader)
    assert not any(s.label == "Massage sessions / week" for s in at.select_slider)
    at.button(key="recommend").click().run()
    assert any(t.value == "Massage: none" for t in at.text)
    sessions = next(s for s in at.select_slider if s.label == "Massage sessions / week")
    assert sessions.options == ["0"] and sessions.disabled
    assert any("infectious" in t.value for t in at.text if t.value.startswith("Contraindications"))


def test_an_ended_programme_offers_no_new_recommendation(demo_env):
    import datetime as dt

    from recommender.devtools.simulator import simulate
    from recommender.web.ui import service
    from tests.conftest import intake_dict

    me = signed_in("therapist")
    service().save_intake(me, intake_dict(simulate(2, seed=43), 0, episode_id="W-ENDED-1",
                                          patient_id="P-ENDED",
                                          intake_date=(dt.date.today() - dt.timedelta(days=5)).isoformat()))
    rec_id, rec = service().recommend(me, "W-ENDED-1")
    service().accept(me, rec_id, rec.best.plan)
    at = on_page("therapist", "plan.py")
    next(t for t in at.text_input if t.label == "Search any episode or patient id").input("W-ENDED-1").run()
    assert any(b.key == "recommend" for b in at.button)
    service().record_followup(me, "W-ENDED-1", {"followup_pain_score": 2})
    at.run()
    no_exception(at)
    assert any("programme has ended" in i.value for i in at.info)
    assert not any(b.key == "recommend" for b in at.button)
    assert any("Accepted plan (decision" in s.value for s in at.success)  # still there to read


def test_the_discomfort_cap_limits_tuning_on_the_plan_page(demo_env):
    """The demo patient's accepted plan has firm massage, which hurt twice: the plan page says
    so, offers no intensity above the cap, and does not start tuning from the capped plan."""
    from recommender.devtools.demo import DISCOMFORT_EPISODE

    at = on_page("therapist", "plan.py")
    next(t for t in at.text_input if t.label == "Search any episode or patient id").input(DISCOMFORT_EPISODE).run()
    assert any("Massage capped" in w.value for w in at.warning)
    at.button(key="recommend").click().run()
    no_exception(at)
    intensity = next(r for r in at.radio if r.label == "Massage intensity")
    assert "firm" not in intensity.options and intensity.value != "firm"
    assert any("no firmer than" in c.value for c in at.caption)  # the reason beside the lock
    assert not any("not allowed for the patient now" in e.value for e in at.error)
    # tuning starts from the (capped) recommendation, and replacing the firm plan asks why
    assert not any(s.label == "Reason for the difference" for s in at.selectbox)
    replace = next(b for b in at.button if b.label == "Replace the accepted plan")
    assert not replace.disabled


def test_new_intake_errors_beside_fields_then_saved_and_opened(demo_env):
    at = on_page("therapist", "plan.py")
    at.radio(key="patient_mode").set_value("New intake").run()
    at.text_input(key="f_episode_id").input("NEW APPTEST")  # a space: not a contract identifier
    at.text_input(key="f_patient_id").input("-P-minus")
    next(b for b in at.button if b.label == "Save intake").click().run()
    assert any("letters, digits" in e.value for e in at.error)
    # the contraindication questions start unanswered, and an unanswered one is refused
    assert at.radio(key="f_heart_condition").value is None
    assert sum("a value (required): true or false" in e.value for e in at.error) == 3
    at.text_input(key="f_episode_id").input("-E-minus")
    for column in ("heart_condition", "infectious_disease", "phlebitis"):
        at.radio(key=f"f_{column}").set_value("No")
    at.radio(key="f_fever").set_value("Yes")  # an optional one, answered
    # required choices start unchosen, and the region lists ask "any?" first
    assert at.selectbox(key="f_pain_region").value is None
    assert sum("an answer: any such region" in e.value for e in at.error) == 2
    for column, value in (("sex", "F"), ("pain_region", "knee"), ("pain_cause", "strain"),
                          ("pain_tolerance", "medium"), ("activity_level", "light")):
        at.selectbox(key=f"f_{column}").set_value(value)
    at.radio(key="f_inflamed_skin_regions_any").set_value("No")
    at.radio(key="f_infected_regions_any").set_value("Yes")  # yes, but no region chosen
    next(b for b in at.button if b.label == "Save intake").click().run()
    assert any("the regions (you answered yes)" in e.value for e in at.error)
    at.multiselect(key="f_infected_regions").set_value(["hip"])
    next(b for b in at.button if b.label == "Save intake").click().run()
    no_exception(at)
    assert at.session_state["episode"] == "-E-minus"
    from recommender.web.ui import service

    stored = service().intake(signed_in("therapist"), "-E-minus")
    assert stored["episode_id"] == "-E-minus" and stored["patient_id"] == "-P-minus"  # exactly as given
    assert (stored["heart_condition"], stored["fever"], stored.get("deep_vein_thrombosis")) == (
        "false", "true", None)  # answered no, answered yes, not recorded
    assert (stored["pain_region"], stored["infected_regions"], stored["inflamed_skin_regions"]) == (
        "knee", "hip", None)


def test_followups_for_two_patients_in_a_row_stay_with_their_patient(demo_env):
    from recommender.web.ui import service

    me = signed_in("therapist")
    for episode in ("DEMO-0003", PHLEBITIS_EPISODE):  # a follow-up needs an accepted plan
        rec_id, rec = service().recommend(me, episode)
        service().accept(me, rec_id, rec.best.plan)
    at = on_page("therapist", "followup.py")
    next(s for s in at.selectbox if s.label == "Episode").select("DEMO-0003").run()
    form = {n.label: n for n in at.number_input}
    form["Follow-up pain score (0–10)"].set_value(3.0)
    form["Adherence (share of planned sessions, 0–1)"].set_value(0.8)
    form["Sleep quality 0–10 (optional)"].set_value(7)
    next(b for b in at.button if b.label == "Save follow-up").click().run()
    assert any("Follow-up saved for DEMO-0003" in shown(s) for s in at.success)
    next(s for s in at.selectbox if s.label == "Episode").select(PHLEBITIS_EPISODE).run()
    form = {n.label: n for n in at.number_input}
    assert form["Adherence (share of planned sessions, 0–1)"].value is None  # nothing carried over
    next(c for c in at.checkbox if c.label == "Lost to follow-up").check()
    form["Follow-up pain score (0–10)"].set_value(5.0)
    next(b for b in at.button if b.label == "Save follow-up").click().run()
    assert any("lost to follow-up has no follow-up pain score" in shown(e) for e in at.error)
    form = {n.label: n for n in at.number_input}
    form["Follow-up pain score (0–10)"].set_value(None)
    next(b for b in at.button if b.label == "Save follow-up").click().run()
    no_exception(at)
    from sqlalchemy import select

    from recommender.storage.schema import Episode, FollowUp

    with service().db.read() as s:
        stored = dict(s.execute(select(Episode.episode_code, FollowUp.outcome).join(
            FollowUp, FollowUp.episode_id == Episode.id).where(
            Episode.episode_code.in_(["DEMO-0003", PHLEBITIS_EPISODE]))).all())
    assert stored["DEMO-0003"] == {"followup_pain_score": 3, "adherence": 0.8,
                                   "followup_sleep_quality": 7, "adverse_event": "false"}
    assert stored[PHLEBITIS_EPISODE] == {"adverse_event": "false", "followup_pain_score": None}


def test_imported_history_stays_out_of_the_therapists_list(demo_env):
    at = on_page("therapist", "plan.py")
    episodes = next(s for s in at.selectbox if s.label == "Episode").options
    assert any("DEMO-0004" in e for e in episodes) and not any("(imported history)" in e for e in episodes)
    at.text_input(key="search").input("S1-E00001").run()
    hits = next(s for s in at.selectbox if s.label == "Episode").options
    assert hits and all("imported history" in h for h in hits)
    assert any("cannot be planned again" in i.value for i in at.info)
    at.text_input(key="search").input("%").run()
    assert any("No matching episodes" in i.value for i in at.info)  # % matches itself only


def test_navigation_follows_role(demo_env):
    for role, pages in ROLE_PAGES.items():
        at = app_as(role)
        assert titles(at)[:1] == [pages[0].title]
        others = [s for r, specs in ROLE_PAGES.items() if r != role for s in specs]
        for spec in others:  # not registered for this role: there is no way to open it
            with pytest.raises(ValueError, match="Could not find a navigation page"):
                at.switch_page(page(spec))


def test_data_staff_sees_the_new_version_after_retraining_and_cannot_accept(demo_env):
    from recommender.safety.plans import GUIDELINE_PLAN
    from recommender.services.permissions import PermissionDenied
    from recommender.services.worker import Worker
    from recommender.web.ui import service

    at = app_as("data_staff")
    at.switch_page(page(ROLE_PAGES["data_staff"][1])).run()
    labels = [m.label for m in at.metric]
    assert "90% interval coverage" in labels and "Mean absolute error" in labels
    at.button(key="retrain").click().run()  # queues a job: the page does not train
    no_exception(at)
    assert any("Retraining: waiting for the worker" in p.text for p in at.get("progress"))
    assert Worker(service()).run_once()  # the worker trains (slow on a busy machine)
    at.run()
    no_exception(at)
    assert any("Trained model version" in shown(s) for s in at.success)
    box = next(s for s in at.selectbox if s.label == "Model version")
    versions = service().model_versions(signed_in("data_staff"))
    assert box.value == int(versions["version"].max())  # not stuck on the old version
    with pytest.raises(PermissionDenied):
        service().accept(signed_in("data_staff"), 1, GUIDELINE_PLAN)


def test_day_list_opens_a_patient_whose_review_is_capped_by_discomfort(demo_env):
    from recommender.devtools.demo import DISCOMFORT_EPISODE, NOT_IMPROVING_EPISODE

    at = app_as("therapist")
    assert titles(at)[:1] == ["My day"]
    flags = " ".join(e.value for e in at.error)
    for flag in ("Not improving", "Repeated high discomfort", "Adverse event reported"):
        assert flag in flags  # the demo shows every flag at once
    at.button(key=f"open-{NOT_IMPROVING_EPISODE}").click().run()
    no_exception(at)
    assert "Course of care" in titles(at)
    assert any("Not improving" in e.value for e in at.error)
    assert any("Adverse event reported" in e.value for e in at.error)

    at = app_as("therapist")
    at.button(key=f"open-{DISCOMFORT_EPISODE}").click().run()
    no_exception(at)
    assert any("no firmer than moderate" in w.value for w in at.warning)
    assert any("Repeated high discomfort" in e.value for e in at.error)
    # a visit with high discomfort, then a review: intensity capped, the reason shown
    form = {n.label: n for n in at.number_input}
    form["Pain now (0–10)"].set_value(5)
    form["Discomfort during treatment (0–10)"].set_value(8)
    next(s for s in at.selectbox if s.label == "Massage given").select("moderate")
    next(b for b in at.button if b.label == "Save visit").click().run()
    no_exception(at)
    assert any("Visit saved" in shown(s) for s in at.success)
    assert any("no firmer than gentle" in w.value for w in at.warning)  # moderate hurt too
    at.session_state[f"section-{DISCOMFORT_EPISODE}"] = "Review the plan"
    at.run()
    at.button(key=f"review-{DISCOMFORT_EPISODE}").click().run()
    no_exception(at)
    assert any("Massage capped" in w.value and "no firmer than gentle" in w.value for w in at.warning)
    table = at.dataframe[0].value
    reviewed = dict(zip(table[""], table["reviewed plan"]))
    assert reviewed["Massage intensity"] in ("none", "gentle")
    accept = [b for b in at.button if b.label == "Accept the reviewed plan"]
    if accept:  # the review changed the plan (it must: the current one is above the cap)
        next(s for s in at.selectbox if s.label == "Reason for the change").select("discomfort").run()
        next(b for b in at.button if b.label == "Accept the reviewed plan").click().run()
        no_exception(at)
        assert any("Reviewed plan accepted" in shown(s) for s in at.success)
    else:
        pytest.fail("the review kept a plan above the discomfort cap")


def test_a_new_search_on_the_course_page_selects_its_own_patient(demo_env):
    """Opened from My day on one patient, a search for another kept the first selected, and a
    visit saved after the search went to the first patient."""
    from recommender.devtools.demo import DISCOMFORT_EPISODE, IMPROVING_EPISODE

    at = app_as("therapist")
    at.button(key=f"open-{DISCOMFORT_EPISODE}").click().run()
    assert next(s for s in at.selectbox if s.label == "Episode").value == DISCOMFORT_EPISODE
    next(t for t in at.text_input if t.label == "Search any episode or patient id").input(
        IMPROVING_EPISODE).run()
    no_exception(at)
    assert next(s for s in at.selectbox if s.label == "Episode").value == IMPROVING_EPISODE
    assert any("IMPROVING" in h.value and "DISCOMFORT" not in h.value for h in at.subheader)
    at.run()  # and it stays on the searched patient
    assert next(s for s in at.selectbox if s.label == "Episode").value == IMPROVING_EPISODE


def test_data_staff_compares_a_new_version_with_the_current_one_on_the_same_patients(demo_env):
    """Compare runs as a job; the page then shows both values and their paired difference,
    and the gate's verdict in words."""
    from recommender.services.identity import SYSTEM
    from recommender.services.worker import Worker
    from recommender.web.ui import service

    svc = service()
    current = svc.current_version()
    if int(svc.model_versions(signed_in("data_staff"))["version"].max()) == current.version:
        svc.register_artifact(SYSTEM, current.artifact_path)  # a newer, not yet promoted version
    at = app_as("data_staff")
    at.switch_page(page(ROLE_PAGES["data_staff"][1])).run()
    at.button(key="compare").click().run()
    assert Worker(svc).run_once()
    at.run()
    no_exception(at)
    table = next(d.value for d in at.dataframe if "policy value" in d.value.columns)
    assert list(table["model"])[1:] == ["current", "difference (same patients)"]
    assert any("cohort:" in c.value and "difference" in c.value for c in at.caption)


def test_the_audit_export_says_it_holds_the_whole_trail_and_when_it_was_made(demo_env):
    at = on_page("supervisor", "audit_log.py")
    at.text_input(key="au_patient").input("DEMO-PHLEBITIS").run()
    at.button(key="au_export").click().run()
    no_exception(at)
    assert at.button(key="au_export").label == "Prepare CSV export of the whole trail"
    events = at.session_state["audit_csv"][1]
    assert events > 0 and "events" in at.caption[0].value


def test_an_imported_patients_id_finds_their_episodes_audit_trail(demo_env):
    """Demo patients came in by import: no event names their patient id, yet a supervisor
    typing it wants their episodes' trail (the filter once showed '0 of N events')."""
    from recommender.web.ui import service

    me = signed_in("therapist")
    patient = service().find_episodes(me, "DEMO-0006")["patient_id"].iloc[0]
    service().recommend(me, "DEMO-0006")
    at = on_page("supervisor", "audit_log.py")
    at.text_input(key="au_patient").input(patient).run()
    no_exception(at)
    table = at.dataframe[0].value
    assert "episode:DEMO-0006" in set(table["target"]) and "recommend" in set(table["action"])
    assert not at.caption[0].value.startswith("0 of")
