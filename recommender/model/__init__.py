"""Learning from a clinic's history: features, the plan-effect estimator, the recommender,
evaluation, training and verified artifacts.  Knows nothing of storage, services or the web."""
