"""Supervisor statistics: overrides, contraindication blocks, follow-up, and audit filters."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import altair as alt
import pandas as pd


def override_stats(decisions: pd.DataFrame) -> pd.DataFrame:
    """Per therapist: decisions, overrides, override rate, massage blocks, follow-up rate."""
    if decisions.empty:
        return pd.DataFrame(columns=["therapist", "decisions", "overrides", "override_rate",
                                     "massage_blocked", "followup_rate"])
    g = decisions.groupby("therapist")
    out = pd.DataFrame({
        "decisions": g.size(),
        "overrides": g["overridden"].sum(),
        "massage_blocked": g["massage_blocked"].sum(),
        "followed_up": g["followed_up"].sum(),
    })
    out["override_rate"] = out["overrides"] / out["decisions"]
    out["followup_rate"] = out["followed_up"] / out["decisions"]
    return out.drop(columns=["followed_up"]).reset_index()


def weekly(decisions: pd.DataFrame) -> pd.DataFrame:
    """Decisions, overrides and blocks per ISO week (for charts over time)."""
    if decisions.empty:
        return pd.DataFrame(columns=["week", "decisions", "overrides", "massage_blocked"])
    frame = decisions.assign(week=pd.to_datetime(decisions["decided_at"], utc=True)
                             .dt.tz_localize(None).dt.to_period("W").dt.start_time)
    g = frame.groupby("week")
    return pd.DataFrame({"decisions": g.size(), "overrides": g["overridden"].sum(),
                         "massage_blocked": g["massage_blocked"].sum()}).reset_index()


WEEKLY_SERIES = {"decisions": "Decisions", "overrides": "Departed from the recommendation",
                 "massage_blocked": "Massage blocked by the gate"}


def weekly_chart(weeks: pd.DataFrame):
    """:func:`weekly` as grouped bars, one group per week labelled with its Monday: a line
    needs two weeks to show anything, and stacked bars would add overrides to decisions."""
    long = weeks.assign(week=pd.to_datetime(weeks["week"]).dt.strftime("week of %d %b %Y")).melt(
        id_vars="week", value_vars=list(WEEKLY_SERIES), var_name="series", value_name="count")
    long["series"] = long["series"].map(WEEKLY_SERIES)
    order = list(WEEKLY_SERIES.values())
    return alt.Chart(long).mark_bar().encode(
        x=alt.X("week:O", title=None, sort=None, axis=alt.Axis(labelAngle=0)),
        xOffset=alt.XOffset("series:N", sort=order),
        y=alt.Y("count:Q", title="Count"),
        color=alt.Color("series:N", sort=order, title=None, legend=alt.Legend(orient="bottom")),
        tooltip=["week:O", "series:N", "count:Q"])


def filter_events(events: pd.DataFrame, start: dt.date | None = None, end: dt.date | None = None,
                  users: list[str] | None = None, actions: list[str] | None = None,
                  patient: str = "", zone: dt.tzinfo | str = "UTC",
                  episodes: Iterable[str] = ()) -> pd.DataFrame:
    """The audit log narrowed by date range (days in ``zone``, the clinic's, as the table shows
    them), users, actions and a patient/episode text.

    The text finds the events that mention it and every event of the episodes those name, and
    of ``episodes`` (the episodes whose episode or patient id holds the text, from the
    database): a patient id is named only by an intake, and by no event at all for a patient
    who came in by import, yet the patient's trail is all their episodes'."""
    out = events
    if len(out) == 0:
        return out
    if patient:
        mentions = (out["target"].str.contains(patient, case=False, regex=False)
                    | out["after"].fillna("").str.contains(patient, case=False, regex=False))
        named = out.loc[mentions, "target"]
        targets = set(named[named.str.startswith("episode:")]) | {f"episode:{e}" for e in episodes}
        out = out[mentions | out["target"].isin(targets)]
    days = pd.to_datetime(out["ts"], utc=True, format="mixed").dt.tz_convert(zone).dt.date
    if start is not None:
        out, days = out[days >= start], days[days >= start]
    if end is not None:
        out, days = out[days <= end], days[days <= end]
    if users:
        out = out[out["actor"].isin(users)]
    if actions:
        out = out[out["action"].isin(actions)]
    return out


def card_summary(card: dict) -> list[tuple[str, str]]:
    """A model card as readable (label, value) lines: data, metrics, evaluation, rule set."""
    t = card.get("training", {})
    m = card.get("metrics", {})
    h = card.get("holdout", {})
    lines = [
        ("Trained on", f"{t.get('followed_up', '?')} followed-up episodes of {t.get('valid_rows', '?')} "
                       f"valid rows ({t.get('lost_to_followup', 0)} lost to follow-up, "
                       f"{t.get('skipped_invalid_rows', 0)} invalid rows skipped)"),
        ("Training data", f"{card.get('training_file') or 'recorded episodes'} "
                          f"(SHA-256 {str(card.get('training_file_sha256', ''))[:12]}…)"),
        ("Prediction error", f"{m['oof_mae']:.2f} points on average (cross-validated)"
         if "oof_mae" in m else "not recorded"),
    ]
    if h.get("value") is not None:
        lines.append(("Held-out evaluation", f"{h.get('rows', '?')} episodes: mean pain reduction "
                                             f"{h['value']:.2f} (95 % CI {h['ci_low']:.2f}–{h['ci_high']:.2f}), "
                                             f"{h.get('violations', 0)} gate violations"))
    lines += [
        ("Safety rule set", str(card.get("ruleset_version", "?"))),
        ("Data contract", str(card.get("contract_version", "?"))),
        ("Created", str(card.get("created_at", "?"))),
        ("Artifact", f"SHA-256 {str(card.get('artifact_sha256', ''))[:12]}…, signed by this installation"),
        ("Libraries", ", ".join(f"{k} {v}" for k, v in card.get("library_versions", {}).items())),
    ]
    for note in t.get("notes", []):
        lines.append(("Note", note))
    return lines
