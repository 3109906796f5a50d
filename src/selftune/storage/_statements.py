"""The SQL storage's hot-path statements, built once per storage."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from selftune.storage import _schema as S
from selftune.storage._base import RETRIED_AS_KEY
from selftune.trial import TrialState

__all__ = ["Statements", "PostgresOneShot"]


class Statements:
    """The hot-path statements, built once (building SQLAlchemy expressions per call costs more than running them)."""

    def __init__(self, now: Any) -> None:
        st, t = S.studies.c, S.trials.c
        b = sa.bindparam
        running = TrialState.RUNNING.value
        self.bump = (
            sa.update(S.studies).where(st.id == b("b_sid")).values(seq=st.seq + 1).returning(st.seq, st.next_number)
        )
        self.bump_number = (
            sa.update(S.studies)
            .where(st.id == b("b_sid"))
            .values(seq=st.seq + 1, next_number=st.next_number + 1)
            .returning(st.seq, st.next_number)
        )
        self.touch = (
            sa.update(S.trials)
            .where(t.study_id == b("b_sid"), t.number == b("b_number"), t.state == running)
            .values(seq=b("b_seq"))
            .returning(t.id)
        )
        a = S.trial_attrs.c
        # trials that do not count against a budget: WAITING ones, and FAILED ones a retry replaces
        self.unstarted = sa.select(
            sa.select(sa.func.count())
            .where(t.study_id == b("b_sid"), t.state == TrialState.WAITING.value)
            .scalar_subquery(),
            sa.select(sa.func.count())
            .select_from(S.trials.join(S.trial_attrs, a.trial_id == t.id))
            .where(t.study_id == b("b_sid"), t.state == TrialState.FAILED.value, a.key == RETRIED_AS_KEY)
            .scalar_subquery(),
        )
        self.first_waiting = (
            sa.select(t.id)
            .where(t.study_id == b("b_sid"), t.state == TrialState.WAITING.value)
            .order_by(t.number)
            .limit(1)
        )
        self.claim = (
            sa.update(S.trials)
            .where(t.id == b("b_id"), t.state == TrialState.WAITING.value)
            .values(state=running, started_at=b("b_now"), worker=b("b_worker"), heartbeat_at=now, seq=b("b_seq"))
        )
        self.insert_trial = (
            sa.insert(S.trials)
            .values(
                study_id=b("b_sid"), number=b("b_number"), state=b("b_state"), seq=b("b_seq"),
                created_at=b("b_created"), started_at=b("b_started"), worker=b("b_worker"), fixed=b("b_fixed"),
                heartbeat_at=sa.case((b("b_beat", type_=sa.Boolean), now), else_=sa.null()),
            )
            .returning(t.id)
        )
        self.finish = (
            sa.update(S.trials)
            .where(t.study_id == b("b_sid"), t.number == b("b_number"), t.state.in_(b("b_allowed", expanding=True)))
            .values(state=b("b_state"), value=b("b_value", type_=S.Value), reason=b("b_reason"),
                    traceback=b("b_tb"), finished_at=now, seq=b("b_seq"))
            .returning(t.id)
        )
        self.heartbeat = (
            sa.update(S.trials)
            .where(t.study_id == b("b_sid"), t.number.in_(b("b_numbers", expanding=True)), t.state == running)
            .values(heartbeat_at=now)
            .returning(t.number)
        )


class PostgresOneShot:
    """PostgreSQL hot paths as single statements (data-modifying CTEs), run in autocommit mode.

    A write that bumps the study's ``seq`` holds the study row's lock until it commits. In a multi-statement
    transaction that is several client round trips (BEGIN, bump, write, COMMIT): on busy cores a worker that
    is descheduled while holding the lock stalls every other worker. As one statement, the lock is taken and
    released inside the server. Each returns no row when its fast path does not apply (the trial is not
    RUNNING, WAITING trials exist, the budget is spent, no such study); the caller then takes the general
    multi-statement path, which raises the right error or claims the WAITING trial.
    """

    def __init__(self) -> None:
        st, tr, tv, ta, tp = (S.studies.name, S.trials.name, S.trial_values.name, S.trial_attrs.name,
                              S.trial_params.name)
        now = "CAST(extract(epoch FROM clock_timestamp()) AS double precision)"
        # the budget check sees the study row after its lock (EvalPlanQual) but counts with the statement's
        # snapshot: exact as long as no WAITING trial exists (one could be claimed meanwhile), hence the guard
        self.start = sa.text(
            f"""
            WITH b AS (
                UPDATE {st} SET seq = seq + 1, next_number = next_number + 1
                WHERE id = :b_sid AND (
                    CAST(:b_budget AS integer) IS NULL OR (
                        NOT EXISTS (SELECT 1 FROM {tr} WHERE study_id = :b_sid AND state = 'WAITING')
                        AND next_number - (
                            SELECT count(*) FROM {tr} t JOIN {ta} a ON a.trial_id = t.id
                            WHERE t.study_id = :b_sid AND t.state = 'FAILED' AND a.key = :b_retried
                        ) < CAST(:b_budget AS integer)
                    )
                )
                RETURNING seq, next_number
            ), t AS (
                INSERT INTO {tr} (study_id, number, state, seq, created_at, started_at, worker, heartbeat_at)
                SELECT :b_sid, b.next_number - 1, 'RUNNING', b.seq, :b_now, :b_now, :b_worker, {now} FROM b
                RETURNING id, number
            ), p AS (
                INSERT INTO {tp} (trial_id, name, value)
                SELECT t.id, v.name, v.value
                FROM t CROSS JOIN unnest(CAST(:b_names AS text[]), CAST(:b_values AS text[])) AS v(name, value)
            ), a AS (
                INSERT INTO {ta} (trial_id, key, value)
                SELECT t.id, v.key, v.value
                FROM t CROSS JOIN unnest(CAST(:b_keys AS text[]), CAST(:b_attrs AS text[])) AS v(key, value)
            )
            SELECT number FROM t
            """
        )
        self.finish = sa.text(
            f"""
            WITH b AS (UPDATE {st} SET seq = seq + 1 WHERE id = :b_sid RETURNING seq)
            UPDATE {tr} SET state = :b_state, value = :b_value, reason = :b_reason, traceback = :b_tb,
                finished_at = {now}, seq = b.seq
            FROM b
            WHERE {tr}.study_id = :b_sid AND {tr}.number = :b_number AND {tr}.state = ANY(CAST(:b_allowed AS text[]))
            RETURNING {tr}.id
            """
        )
        # bump the study's seq (its lock) and touch trial :b_number if RUNNING: `t` holds its row id, else nothing
        touch_running = f"""
            WITH b AS (UPDATE {st} SET seq = seq + 1 WHERE id = :b_sid RETURNING seq),
            t AS (
                UPDATE {tr} SET seq = b.seq FROM b
                WHERE {tr}.study_id = :b_sid AND {tr}.number = :b_number AND {tr}.state = 'RUNNING'
                RETURNING {tr}.id
            )
        """
        self.set_params = sa.text(
            f"""
            {touch_running}
            INSERT INTO {tp} (trial_id, name, value)
            SELECT t.id, v.name, v.value
            FROM t CROSS JOIN unnest(CAST(:b_names AS text[]), CAST(:b_values AS text[])) AS v(name, value)
            RETURNING trial_id
            """
        )
        # a trial's children in one round trip: kind 0 parameters, 1 reported values (as exact text), 2 attributes
        self.children = sa.text(
            f"""
            SELECT trial_id, 0, name, value FROM {tp} WHERE trial_id = ANY(CAST(:b_ids AS integer[]))
            UNION ALL
            SELECT trial_id, 1, CAST(step AS text), CAST(value AS text) FROM {tv}
            WHERE trial_id = ANY(CAST(:b_ids AS integer[]))
            UNION ALL
            SELECT trial_id, 2, key, value FROM {ta} WHERE trial_id = ANY(CAST(:b_ids AS integer[]))
            """
        )
        self.report = sa.text(
            f"""
            {touch_running}
            INSERT INTO {tv} (trial_id, step, value) SELECT t.id, :b_step, :b_value FROM t
            RETURNING trial_id
            """
        )
