"""Tests of the SQL store (hub/store) on SQLite and PostgreSQL."""
