"""Patient features from contract intake columns, for the outcome models.

Optional fields are imputed with the training median and flagged, so a missing
sleep score is information rather than an error.  The column order is fixed
so that a saved model and new intake files always line up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recommender.contract.columns import (
    ACTIVITY_LEVELS,
    PAIN_CAUSES,
    REGIONS,
    SEXES,
    TOLERANCES,
)

NUMERIC = ("age", "pain_duration_months", "pain_score", "grip_strength_kg", "sleep_quality",
           "anxiety_score", "depression_score", "bmi")
OPTIONAL = ("grip_strength_kg", "sleep_quality", "anxiety_score", "depression_score", "bmi")
CATEGORICAL = {
    "sex": SEXES,
    "pain_region": REGIONS,
    "pain_cause": PAIN_CAUSES,
    "pain_tolerance": TOLERANCES,
    "activity_level": ACTIVITY_LEVELS,
}
FLAGS = ("heart_condition",)


@dataclass(frozen=True)
class PatientFeaturizer:
    """Fitted imputation values; turns intake frames into a numeric matrix."""

    medians: tuple[float, ...]

    @classmethod
    def fit(cls, intakes: pd.DataFrame) -> "PatientFeaturizer":
        medians = []
        for col in NUMERIC:
            values = pd.to_numeric(intakes.get(col), errors="coerce") if col in intakes else None
            med = float(np.nanmedian(values)) if values is not None and values.notna().any() else 0.0
            medians.append(med)
        return cls(tuple(medians))

    @property
    def names(self) -> list[str]:
        names = list(NUMERIC) + [f"{c}_missing" for c in OPTIONAL]
        names += [f"{col}={v}" for col, values in CATEGORICAL.items() for v in values]
        return names + list(FLAGS)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def transform(self, intakes: pd.DataFrame) -> np.ndarray:
        n = len(intakes)
        cols = []
        for col, med in zip(NUMERIC, self.medians):
            v = pd.to_numeric(intakes[col], errors="coerce").to_numpy(dtype=float) if col in intakes \
                else np.full(n, np.nan)
            if col == "pain_duration_months":
                v = np.log1p(v)
                med = np.log1p(med)
            cols.append(np.where(np.isnan(v), med, v))
        for col in OPTIONAL:
            v = pd.to_numeric(intakes[col], errors="coerce") if col in intakes else pd.Series(np.nan, index=intakes.index)
            cols.append(v.isna().to_numpy(dtype=float))
        for col, values in CATEGORICAL.items():
            raw = intakes[col].to_numpy(dtype=object)
            for v in values:
                cols.append((raw == v).astype(float))
        for col in FLAGS:
            cols.append(intakes[col].fillna(False).astype(bool).to_numpy(dtype=float) if col in intakes
                        else np.zeros(n))
        return np.column_stack(cols)
