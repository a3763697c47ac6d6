"""The ``recommender`` command line: data commands and clinic-database (admin) commands."""

from recommender.cli.main import main

__all__ = ["main"]
