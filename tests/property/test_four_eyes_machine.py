"""Stateful property test of four-eyes transfers on an enforced store: random transfers, approvals,
cancellations, spending and the passing of time, against a small model of the rules (README "Operating a
registry": a pending transfer reserves its units until approved by another actor of the firm, cancelled, or
expired). After every step: the registry answers as the model predicts; no unit is spent twice (a holding
always covers what unexpired pending transfers reserve); units are conserved; and at the end the store passes
the re-execution audit."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from dataclasses import dataclass, field

import hypothesis.strategies as st
from hypothesis import note, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

from ledger.errors import Refused
from ledger.registry import Registry
from ledger.verify import verify_log

CEA = ("CEA", 2024)
DESKS = ("F1-a", "F1-b")  # two actors of firm F1, whose account needs two people
OTHERS = ("F2-desk", "MEE")


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2025, 3, 3, 9, 0, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def text(self) -> str:
        return self.now.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Pend:
    quantity: int
    initiator: str
    expires_at: str


@dataclass
class FourEyesModel:
    held: dict[str, int] = field(default_factory=lambda: {"F1": 0, "F2": 0})
    pending: dict[str, Pend] = field(default_factory=dict)
    issued: int = 0
    retired: int = 0

    def reserved(self, now: str, but: str | None = None) -> int:
        return sum(p.quantity for tid, p in self.pending.items() if now <= p.expires_at and tid != but)

    def free(self, now: str) -> int:
        return self.held["F1"] - self.reserved(now)


class FourEyesMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="four-eyes-")
        self.clock = Clock()
        self.reg = Registry(f"{self.tmp}/s.db", clock=self.clock)
        self.m = FourEyesModel()
        self.ids: list[str] = []  # every pending transfer id recorded (approved, cancelled or not)

    def teardown(self) -> None:
        try:
            res = verify_log(self.reg.recorder)
            assert res["ok"], res
        finally:
            self.reg.close()
            shutil.rmtree(self.tmp, ignore_errors=True)

    @initialize()
    def setup(self) -> None:
        r = self.reg
        r.init("MEE")
        for f in ("F1", "F2"):
            r.register_firm(f, f, "power", "Hubei", actor="MEE")
        for a, f in (("F1-a", "F1"), ("F1-b", "F1"), ("F2-desk", "F2")):
            r.add_actor(a, "firm", f, actor="MEE")
        r.open_year(2024, actor="MEE")
        r.issue("F1", *CEA, 1000, "auction", actor="MEE")
        self.m.held["F1"] = self.m.issued = 1000
        r.set_policy("F1", 2, actor="F1-a")

    def expect(self, ok: bool, fn, *args, **kw):  # noqa: ANN001, ANN202
        try:
            out = fn(*args, **kw)
        except Refused as e:
            note(f"{fn.__name__}{args} {kw} -> refused {e.code}")
            assert not ok, f"{fn.__name__}{args}: refused ({e.code}: {e}), the model accepts it"
            return None
        note(f"{fn.__name__}{args} {kw} -> ok")
        assert ok, f"{fn.__name__}{args}: accepted, the model refuses it"
        return out

    @rule(q=st.integers(1, 700), who=st.sampled_from(DESKS), minutes=st.sampled_from((None, 1, 30, 600, 2880)))
    def transfer(self, q: int, who: str, minutes: int | None) -> None:
        now = self.clock.text()
        expires = f"{minutes}m" if minutes else None
        out = self.expect(q <= self.m.free(now), self.reg.transfer, "F1", "F2", *CEA, q, expires_after=expires,
                          actor=who)
        if out is not None:
            tid, at = out.result["transfer_id"], out.result["expires_at"]
            seconds = (minutes or 7 * 24 * 60) * 60
            want = (self.clock.now + dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
            assert at == want
            self.m.pending[tid] = Pend(q, who, at)
            self.ids.append(tid)

    @rule(data=st.data(), who=st.sampled_from(DESKS + OTHERS))
    def approve(self, data: st.DataObject, who: str) -> None:
        if not self.ids:
            return
        tid = data.draw(st.sampled_from(self.ids))
        now = self.clock.text()
        p = self.m.pending.get(tid)
        ok = (p is not None and who in DESKS and who != p.initiator and now <= p.expires_at
              and self.m.held["F1"] - self.m.reserved(now, but=tid) >= p.quantity)
        if self.expect(ok, self.reg.approve_transfer, tid, actor=who) is not None:
            del self.m.pending[tid]
            self.m.held["F1"] -= p.quantity
            self.m.held["F2"] += p.quantity

    @rule(data=st.data(), who=st.sampled_from(DESKS + OTHERS))
    def cancel_pending(self, data: st.DataObject, who: str) -> None:
        if not self.ids:
            return
        tid = data.draw(st.sampled_from(self.ids))
        ok = tid in self.m.pending and who != "F2-desk"
        if self.expect(ok, self.reg.cancel_transfer, tid, actor=who) is not None:
            del self.m.pending[tid]

    @rule(q=st.integers(1, 600), who=st.sampled_from(DESKS))
    def spend(self, q: int, who: str) -> None:
        """Units leave F1 otherwise (a cancellation): only free units, never reserved ones."""
        if self.expect(q <= self.m.free(self.clock.text()), self.reg.cancel, "F1", *CEA, q, actor=who) is not None:
            self.m.held["F1"] -= q
            self.m.retired += q

    @rule(q=st.integers(1, 500))
    def issue_more(self, q: int) -> None:
        self.expect(True, self.reg.issue, "F1", *CEA, q, "auction", actor="MEE")
        self.m.held["F1"] += q
        self.m.issued += q

    @rule(minutes=st.sampled_from((1, 29, 31, 601, 2881, 7 * 24 * 60 + 1)))
    def time_passes(self, minutes: int) -> None:
        self.clock.now += dt.timedelta(minutes=minutes)

    @invariant()
    def nothing_is_spent_twice(self) -> None:
        st_ = self.reg.state
        now = self.clock.text()
        held = {a: st_.holding(a, *CEA) for a in ("F1", "F2")}
        assert held == self.m.held
        assert st_.reserved("F1", *CEA, now) == self.m.reserved(now) <= held["F1"]
        assert st_.available("F1", *CEA, now) == self.m.free(now) >= 0
        assert sum(held.values()) + self.m.retired == self.m.issued  # conserved, reserved units included
        assert set(st_.pending) == set(self.m.pending)  # approved and cancelled ones are gone; expired ones stay


def test_four_eyes_state_machine() -> None:
    run_state_machine_as_test(FourEyesMachine, settings=settings(max_examples=60, stateful_step_count=30,
                                                                 deadline=None))
