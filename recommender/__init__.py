"""Personalised treatment-plan recommender for pain therapy clinics."""

__version__ = "0.1.0"
