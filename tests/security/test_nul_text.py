"""A NUL character in any text a user types: refused by name, nothing written, on both backends.

PostgreSQL text cannot hold NUL. Before the storage layer refused it, such a value reached
the driver and its ``DataError`` crashed the page or command (sign-in, user management,
accepting a plan, a follow-up correction, the episode search, an import's file name).
Each attack below sends the NUL through one of those doors and asserts a clear refusal
and an unchanged database.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from recommender.contract.csv_io import to_csv_bytes
from recommender.services import InputRejected
from recommender.services.identity import SignInFailed
from recommender.storage.database import UnstorableText, refuse_nul_text
from recommender.storage.schema import AuditEvent, DataImport, Decision, User
from tests.conftest import PASSWORD
from tests.test_course import in_care, plan_with

NUL_TEXT = "ok\x00; DROP TABLE users"


def _counts(svc) -> dict[str, int]:
    with svc.db.read() as s:
        return {table.__name__: s.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (AuditEvent, User, Decision, DataImport)}


ATTACKS = {
    "set_role": (lambda svc, ep, rec, history: svc.set_role(svc.actors["admin"], NUL_TEXT, "supervisor"),
                 "username"),
    "accept_change_reason": (lambda svc, ep, rec, history: svc.accept(
        svc.actors["therapist"], rec[0], rec[1].best.plan, change_reason=NUL_TEXT), "change_reason"),
    "accept_idempotency_key": (lambda svc, ep, rec, history: svc.accept(
        svc.actors["therapist"], rec[0], rec[1].best.plan, idempotency_key=NUL_TEXT), "idempotency_key"),
    "followup_correction_reason": (lambda svc, ep, rec, history: svc.record_followup(
        svc.actors["therapist"], ep + "-ENDED", {"followup_pain_score": 3.0},
        correction_reason=NUL_TEXT), "correction_reason"),
    "review": (lambda svc, ep, rec, history: svc.review(svc.actors["therapist"], NUL_TEXT), "episode_code"),
    "import_file_name": (lambda svc, ep, rec, history: svc.import_file(
        svc.actors["data_staff"], history, "history\x00.csv"), "file_name"),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_nul_text_is_refused_by_name_and_nothing_is_written(service, trained, attack):
    episode = "E-NULTEXT"
    in_care(service, trained, episode, plan_with("moderate"))
    rec = service.recommend(service.actors["therapist"], episode)
    in_care(service, trained, episode + "-ENDED", plan_with("moderate"))  # its follow-up is corrected
    service.record_followup(service.actors["therapist"], episode + "-ENDED", {"followup_pain_score": 4.0})
    action, column = ATTACKS[attack]
    before = _counts(service)
    with pytest.raises(ValueError) as caught:  # shown as a refusal by every page and the CLI
        action(service, episode, rec, to_csv_bytes(trained["cohort"].episodes.head(3)))
    if isinstance(caught.value, InputRejected):  # a note or reason: the free-text rule
        assert [(e.column, "\\x00" in e.value) for e in caught.value.errors] == [(column, True)]
    else:  # anything else: the storage layer's refusal
        assert isinstance(caught.value, UnstorableText)
        assert str(caught.value).startswith(f"{column}: ") and "\\x00" in str(caught.value)
    assert _counts(service) == before
    assert service.verify_audit(service.actors["supervisor"]).ok


def test_a_nul_in_the_episode_search_finds_nothing(service, trained):
    """The search box of three pages: it crashed the page with the storage refusal."""
    in_care(service, trained, "E-NULSEARCH", plan_with("moderate"))
    me = service.actors["therapist"]
    assert list(service.find_episodes(me, "E-NULSEARCH")["episode_id"]) == ["E-NULSEARCH"]
    assert service.find_episodes(me, "E-NUL\x00SEARCH").empty


def test_a_nul_sign_in_name_fails_like_any_unknown_name_and_is_audited_escaped(service):
    before = _counts(service)
    with pytest.raises(SignInFailed):
        service.sign_in("therapist\x00", PASSWORD)
    events = service.audit_events(service.actors["supervisor"])
    last = events.iloc[-1]
    assert (last["action"], last["target"], last["reason"]) == (
        "failed_login", "user:therapist\\x00", "unknown user")
    assert _counts(service)["AuditEvent"] == before["AuditEvent"] + 1
    assert service.verify_audit(service.actors["supervisor"]).ok


class _Context:
    def __init__(self, named):
        self.compiled_parameters = named


def test_the_storage_hook_checks_every_row_of_a_bulk_write():
    rows = [("a", 1), ("b", None), ("c\x00", 2)]
    named = [{"patient_code": "a"}, {"patient_code": "b"}, {"patient_code": "c\x00"}]
    with pytest.raises(UnstorableText, match=r"^patient_code: 'c\\x00' contains a NUL"):
        refuse_nul_text(None, None, "INSERT", rows, _Context(named), True)
    refuse_nul_text(None, None, "INSERT", rows[:2], _Context(named[:2]), True)  # clean rows pass
    refuse_nul_text(None, None, "SELECT 1", (), _Context([]), False)
    with pytest.raises(UnstorableText, match=r"^username: "):
        refuse_nul_text(None, None, "SELECT", {"username_1": "x\x00"}, None, False)
