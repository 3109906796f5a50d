"""The SQL schema (SQLAlchemy Core). Tables carry a ``selftune_`` prefix so they can share a database.

Version history:
  1: studies, params, trials, trial_params, trial_values, trial_attrs.
"""

from __future__ import annotations

import sqlalchemy as sa

SCHEMA_VERSION = 1


class _SQLiteExactFloat(sa.types.UserDefinedType):
    """A float column without REAL affinity: SQLite stores integral REALs as integers, losing -0.0."""

    cache_ok = True

    def get_col_spec(self, **kw: object) -> str:
        return "BLOB"  # BLOB affinity keeps the bound double as is; it still compares and sorts as a number

    def bind_processor(self, dialect: object) -> None:
        return None

    def result_processor(self, dialect: object, coltype: object):
        return lambda v: None if v is None else float(v)


#: objective and reported values: exact doubles, ±inf and -0.0 included, on every backend
Value: sa.types.TypeEngine[float] = sa.Double().with_variant(_SQLiteExactFloat(), "sqlite")

metadata = sa.MetaData()

version = sa.Table(
    "selftune_version",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("schema_version", sa.Integer, nullable=False),
)

studies = sa.Table(
    "selftune_studies",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(2048), nullable=False, unique=True),
    sa.Column("direction", sa.String(16), nullable=False),
    sa.Column("space", sa.Text, nullable=True),
    sa.Column("attrs", sa.Text, nullable=False, default="{}"),
    sa.Column("created_at", sa.Double, nullable=False),
    # the per-study trial counter (unique numbers without count(*)) and change sequence
    sa.Column("next_number", sa.Integer, nullable=False, default=0),
    sa.Column("seq", sa.BigInteger, nullable=False, default=0),
)

params = sa.Table(
    "selftune_params",
    metadata,
    sa.Column("study_id", sa.Integer, sa.ForeignKey("selftune_studies.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(2048), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
)

trials = sa.Table(
    "selftune_trials",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("study_id", sa.Integer, sa.ForeignKey("selftune_studies.id", ondelete="CASCADE"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("value", Value, nullable=True),
    sa.Column("fixed", sa.Text, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("started_at", sa.Double, nullable=True),
    sa.Column("finished_at", sa.Double, nullable=True),
    sa.Column("heartbeat_at", sa.Double, nullable=True),
    sa.Column("worker", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("traceback", sa.Text, nullable=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("study_id", "number", name="selftune_trials_study_number"),
    sa.Index("selftune_trials_study_seq", "study_id", "seq"),
    sa.Index("selftune_trials_study_state", "study_id", "state"),
)

trial_params = sa.Table(
    "selftune_trial_params",
    metadata,
    sa.Column("trial_id", sa.Integer, sa.ForeignKey("selftune_trials.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", sa.String(2048), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

trial_values = sa.Table(
    "selftune_trial_values",
    metadata,
    sa.Column("trial_id", sa.Integer, sa.ForeignKey("selftune_trials.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("step", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("value", Value, nullable=False),
)

trial_attrs = sa.Table(
    "selftune_trial_attrs",
    metadata,
    sa.Column("trial_id", sa.Integer, sa.ForeignKey("selftune_trials.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.String(2048), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
