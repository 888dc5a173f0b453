"""Database: async SQLAlchemy engine, declarative base, Alembic migrations."""
