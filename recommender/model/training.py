"""Training from a contract file to a saved, carded model artifact."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from recommender.contract.columns import CONTRACT_VERSION
from recommender.contract.csv_io import EpisodeFile
from recommender.model.artifacts import save_model, sha256_file
from recommender.model.engine import TreatmentRecommender
from recommender.safety import gate


def train_model(parsed: EpisodeFile, seed: int = 0, progress=None) -> TreatmentRecommender:
    return TreatmentRecommender(random_state=seed).fit(parsed.valid_rows(), progress=progress)


def model_card(model: TreatmentRecommender, parsed: EpisodeFile, source: str | Path | None,
               file_sha256: str | None, seed: int, fitted_ids: list[str] | None = None) -> dict:
    """The metadata record saved beside an artifact.

    ``training_episode_ids`` (default: every valid row) lets the promotion gate evaluate
    on episodes the model was never fitted on."""
    if fitted_ids is None:
        fitted_ids = list(parsed.valid_rows()["episode_id"])
    est = model.estimator_
    summary = dataclasses.asdict(model.summary_)
    resid = est.oof_residual_
    return {
        "kind": "TreatmentRecommender",
        "training_file": None if source is None else Path(source).name,
        "training_file_sha256": file_sha256,
        "training_episode_ids": sorted(fitted_ids),
        "training": {
            **summary,
            "file_rows": parsed.report.n_rows,
            "valid_rows": len(parsed.valid_rows()),
            "skipped_invalid_rows": len(parsed.report.bad_rows),
        },
        "contract_version": CONTRACT_VERSION,
        "ruleset_version": gate.RULESET_VERSION,
        "seed": seed,
        "hyperparameters": {**model.get_params(), "ridge_alpha": est.alpha_,
                            "n_folds": est.n_folds, "n_coefficients": int(len(est.coef_))},
        # which effect model the data chose, and the cross-fitted policy values behind it
        "effect_model": est.selection_,
        "stacking": getattr(est, "stack_selection_", None),
        "metrics": {
            "oof_mae": float(np.mean(np.abs(resid))),
            "oof_rmse": float(np.sqrt(np.mean(resid**2))),
            "interval_quantiles": list(est.normalised_quantiles(model.coverage)),
        },
    }


def train_from_file(path: str | Path, parsed: EpisodeFile, out: str | Path, seed: int = 0,
                    progress=None) -> dict:
    model = train_model(parsed, seed=seed, progress=progress)
    card = model_card(model, parsed, path, sha256_file(path), seed)
    return save_model(model, out, card)
