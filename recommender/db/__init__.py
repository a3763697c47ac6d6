"""Storage: SQLAlchemy schema, connections, and Alembic migrations."""

from .database import Database, DatabaseOutOfDate, database_url

__all__ = ["Database", "DatabaseOutOfDate", "database_url"]
