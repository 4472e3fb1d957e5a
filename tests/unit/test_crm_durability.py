"""The CRM write path's durability cases (``crm_durability_cases.py``) on the SQLite outbox; the same
cases run on PostgreSQL in ``tests/integration/test_crm_durability_postgres.py``."""

from crm_durability_cases import *  # noqa: F403
