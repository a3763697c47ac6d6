"""Storage: SQLAlchemy schema, connections, the audit chain, and Alembic migrations."""
