"""The SQL storage's hot-path statements, built once per storage."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from selftune.storage import _schema as S
from selftune.storage._base import RETRIED_AS_KEY
from selftune.trial import TrialState

__all__ = ["Statements"]


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
                    traceback=b("b_tb"), finished_at=b("b_now"), seq=b("b_seq"))
            .returning(t.id)
        )
        self.heartbeat = (
            sa.update(S.trials)
            .where(t.study_id == b("b_sid"), t.number.in_(b("b_numbers", expanding=True)), t.state == running)
            .values(heartbeat_at=now)
            .returning(t.number)
        )
