"""The status rules, pinned as tables: a change to any cell is a change of the contract."""

from __future__ import annotations

import itertools

import pytest

from caisse.domain.states import (
    CLOSED_DISPUTE_STATUSES,
    DISPUTE_TIE_RANK,
    TERMINAL_PHASES,
    TIE_RANK,
    DisputeStatus,
    OrderStatus,
    PaymentPhase,
    PaymentStatus,
    derive_status,
    dispute_wins,
    phase_for,
    phase_wins,
    refund_wins,
)

P = PaymentPhase
S = PaymentStatus
D = DisputeStatus

# -- phase_for ------------------------------------------------------------------------------------

# status -> (no failure, with failure); amounts received == due.
PHASE_FOR: dict[PaymentStatus, tuple[PaymentPhase, PaymentPhase]] = {
    S.REQUIRES_PAYMENT_METHOD: (P.OPEN, P.FAILED),
    S.REQUIRES_CONFIRMATION: (P.OPEN, P.FAILED),
    S.REQUIRES_ACTION: (P.REQUIRES_ACTION, P.REQUIRES_ACTION),
    S.PROCESSING: (P.PROCESSING, P.PROCESSING),
    S.REQUIRES_CAPTURE: (P.PROCESSING, P.PROCESSING),
    S.PARTIALLY_FUNDED: (P.PARTIALLY_PAID, P.PARTIALLY_PAID),
    S.SUCCEEDED: (P.PAID, P.PAID),
    S.FAILED: (P.FAILED, P.FAILED),
    S.CANCELED: (P.CANCELED, P.CANCELED),
}


def test_phase_for_table_covers_every_status() -> None:
    assert set(PHASE_FOR) == set(PaymentStatus)


@pytest.mark.parametrize("status", list(PaymentStatus))
@pytest.mark.parametrize("has_failure", [False, True])
def test_phase_for_every_status(status: PaymentStatus, has_failure: bool) -> None:
    expected = PHASE_FOR[status][has_failure]
    got = phase_for(status, has_failure=has_failure, amount_covered=2000, amount_due=2000)
    assert got is expected


@pytest.mark.parametrize(
    ("covered", "due", "expected"),
    [
        (2000, 2000, P.PAID),  # a partial capture still asked for it all: final, paid
        (2500, 2000, P.PAID),  # more than due (e.g. two intents) is still paid
        (1999, 2000, P.PARTIALLY_PAID),  # an intent for part of the order (an instalment)
        (500, 2000, P.PARTIALLY_PAID),
    ],
)
def test_phase_for_succeeded_is_paid_unless_the_intent_asked_for_less(
    covered: int, due: int, expected: PaymentPhase
) -> None:
    got = phase_for(S.SUCCEEDED, has_failure=False, amount_covered=covered, amount_due=due)
    assert got is expected


@pytest.mark.parametrize("status", [s for s in PaymentStatus if s is not S.SUCCEEDED])
@pytest.mark.parametrize("covered", [0, 1000, 2000])
def test_phase_for_ignores_amounts_except_for_succeeded(
    status: PaymentStatus, covered: int
) -> None:
    got = phase_for(status, has_failure=False, amount_covered=covered, amount_due=2000)
    assert got is PHASE_FOR[status][False]


# -- phase_wins -----------------------------------------------------------------------------------

PHASES = [P.OPEN, P.REQUIRES_ACTION, P.PROCESSING, P.FAILED, P.PARTIALLY_PAID, P.PAID, P.CANCELED]
T = 1_767_225_600.0

# current -> {timing of candidate: one Y/N per candidate, in PHASES order}.
# older: candidate_at < current_at; same: equal (Stripe's one-second resolution); newer: >.
PHASE_WINS: dict[PaymentPhase, dict[str, str]] = {
    #                      o ra pr f pp p c
    P.OPEN: {"older": "NNNNNYY", "same": "NYYYYYY", "newer": "YYYYYYY"},
    P.REQUIRES_ACTION: {"older": "NNNNNYY", "same": "NNYYYYY", "newer": "YYYYYYY"},
    P.PROCESSING: {"older": "NNNNNYY", "same": "NNNYYYY", "newer": "YYYYYYY"},
    P.FAILED: {"older": "NNNNNYY", "same": "NNNNYYY", "newer": "YYYYYYY"},
    P.PARTIALLY_PAID: {"older": "NNNNNYY", "same": "NNNNNYY", "newer": "YYYYYYY"},
    P.PAID: {"older": "NNNNNNN", "same": "NNNNNNN", "newer": "NNNNNNN"},
    P.CANCELED: {"older": "NNNNNNN", "same": "NNNNNNN", "newer": "NNNNNNN"},
}
OFFSET = {"older": -1.0, "same": 0.0, "newer": 1.0}

PHASE_WINS_CASES = [
    pytest.param(current, timing, candidate, row[i] == "Y", id=f"{current}-{timing}-{candidate}")
    for current, rows in PHASE_WINS.items()
    for timing, row in rows.items()
    for i, candidate in enumerate(PHASES)
]


def test_phase_wins_table_is_complete() -> None:
    assert list(PaymentPhase) == PHASES
    assert len(PHASE_WINS_CASES) == 7 * 7 * 3


@pytest.mark.parametrize(("current", "timing", "candidate", "expected"), PHASE_WINS_CASES)
def test_phase_wins_matrix(
    current: PaymentPhase, timing: str, candidate: PaymentPhase, expected: bool
) -> None:
    assert phase_wins(current, T, candidate, T + OFFSET[timing]) is expected


@pytest.mark.parametrize("current", PHASES)
@pytest.mark.parametrize("candidate", PHASES)
def test_phase_wins_without_a_current_time(current: PaymentPhase, candidate: PaymentPhase) -> None:
    """A fresh order (no snapshot yet) takes anything, unless its phase is already terminal."""
    assert phase_wins(current, None, candidate, T) is (current not in TERMINAL_PHASES)


def test_tie_rank_follows_a_real_flow() -> None:
    order = [P.OPEN, P.REQUIRES_ACTION, P.PROCESSING, P.FAILED, P.PARTIALLY_PAID]
    ranks = [TIE_RANK[p] for p in order]
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(ranks)
    assert TIE_RANK[P.PAID] == TIE_RANK[P.CANCELED] > max(ranks)
    assert set(TIE_RANK) == set(PaymentPhase)


def _fold(
    snaps: tuple[tuple[PaymentPhase, float], ...],
) -> PaymentPhase:
    phase, at = P.OPEN, None
    for candidate, candidate_at in snaps:
        if phase_wins(phase, at, candidate, candidate_at):
            phase, at = candidate, candidate_at
    return phase


def test_phase_outcome_does_not_depend_on_arrival_order() -> None:
    """Any three snapshots at t or t+1, in any order, end in the same phase — except paid and
    canceled together, which one payment object never says (the first terminal one stays)."""
    snapshots = list(itertools.product(PHASES, (T, T + 1)))
    for trio in itertools.combinations_with_replacement(snapshots, 3):
        phases = {p for p, _ in trio}
        if phases >= TERMINAL_PHASES:
            continue
        outcomes = {_fold(perm) for perm in itertools.permutations(trio)}
        assert len(outcomes) == 1, trio


def test_paid_and_canceled_first_terminal_stays() -> None:
    assert _fold(((P.PAID, T), (P.CANCELED, T + 1))) is P.PAID
    assert _fold(((P.CANCELED, T), (P.PAID, T + 1))) is P.CANCELED


# -- derive_status --------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", PHASES)
def test_derive_status_is_the_phase_without_refunds_or_disputes(phase: PaymentPhase) -> None:
    got = derive_status(phase, amount_paid=2000, amount_refunded=0, dispute_open=False)
    assert got == OrderStatus(phase.value)


@pytest.mark.parametrize(
    ("phase", "paid", "refunded", "dispute_open", "expected"),
    [
        # an open dispute hides everything else
        (P.PAID, 2000, 0, True, OrderStatus.DISPUTED),
        (P.PAID, 2000, 2000, True, OrderStatus.DISPUTED),
        (P.PAID, 2000, 500, True, OrderStatus.DISPUTED),
        (P.OPEN, 0, 0, True, OrderStatus.DISPUTED),
        # refunds over the phase
        (P.PAID, 2000, 500, False, OrderStatus.PARTIALLY_REFUNDED),
        (P.PAID, 2000, 1999, False, OrderStatus.PARTIALLY_REFUNDED),
        (P.PAID, 2000, 2000, False, OrderStatus.REFUNDED),
        (P.PAID, 2000, 2500, False, OrderStatus.REFUNDED),
        (P.PARTIALLY_PAID, 1500, 500, False, OrderStatus.PARTIALLY_REFUNDED),
        (P.PARTIALLY_PAID, 1500, 1500, False, OrderStatus.REFUNDED),
        (P.CANCELED, 2000, 2000, False, OrderStatus.REFUNDED),
        # a refund seen before any payment does not show
        (P.OPEN, 0, 500, False, OrderStatus.OPEN),
        (P.PROCESSING, 0, 2000, False, OrderStatus.PROCESSING),
        # a closed dispute leaves the payment/refund status
        (P.PAID, 2000, 0, False, OrderStatus.PAID),
    ],
)
def test_derive_status_precedence(
    phase: PaymentPhase, paid: int, refunded: int, dispute_open: bool, expected: OrderStatus
) -> None:
    got = derive_status(
        phase, amount_paid=paid, amount_refunded=refunded, dispute_open=dispute_open
    )
    assert got is expected


# -- dispute_wins / refund_wins ------------------------------------------------------------------

DISPUTES = [
    D.WARNING_NEEDS_RESPONSE,
    D.WARNING_UNDER_REVIEW,
    D.NEEDS_RESPONSE,
    D.UNDER_REVIEW,
    D.WARNING_CLOSED,
    D.WON,
    D.LOST,
    D.PREVENTED,
]
# current -> {timing: Y/N per candidate in DISPUTES order}; an equal status on a tie is a no-op.
DISPUTE_WINS: dict[DisputeStatus, dict[str, str]] = {
    #                              wnr wur nr ur wc won lost prev
    D.WARNING_NEEDS_RESPONSE: {"older": "NNNNYYYY", "same": "YYYYYYYY", "newer": "YYYYYYYY"},
    D.WARNING_UNDER_REVIEW: {"older": "NNNNYYYY", "same": "NYYYYYYY", "newer": "YYYYYYYY"},
    D.NEEDS_RESPONSE: {"older": "NNNNYYYY", "same": "NNYYYYYY", "newer": "YYYYYYYY"},
    D.UNDER_REVIEW: {"older": "NNNNYYYY", "same": "NNNYYYYY", "newer": "YYYYYYYY"},
    **{closed: dict.fromkeys(OFFSET, "NNNNNNNN") for closed in DISPUTES[4:]},
}
DISPUTE_WINS_CASES = [
    pytest.param(current, timing, candidate, row[i] == "Y", id=f"{current}-{timing}-{candidate}")
    for current, rows in DISPUTE_WINS.items()
    for timing, row in rows.items()
    for i, candidate in enumerate(DISPUTES)
]


def test_dispute_tables_are_complete() -> None:
    assert set(DISPUTES) == set(DisputeStatus)
    assert set(DISPUTES[4:]) == CLOSED_DISPUTE_STATUSES
    assert set(DISPUTE_TIE_RANK) == set(DisputeStatus) - CLOSED_DISPUTE_STATUSES


@pytest.mark.parametrize(("current", "timing", "candidate", "expected"), DISPUTE_WINS_CASES)
def test_dispute_wins_matrix(
    current: DisputeStatus, timing: str, candidate: DisputeStatus, expected: bool
) -> None:
    assert dispute_wins(current, T, candidate, T + OFFSET[timing]) is expected


@pytest.mark.parametrize("current", DISPUTES)
def test_dispute_wins_without_a_current_time(current: DisputeStatus) -> None:
    for candidate in DISPUTES:
        assert dispute_wins(current, None, candidate, T) is (current not in CLOSED_DISPUTE_STATUSES)


REFUNDS = ["pending", "requires_action", "succeeded", "failed", "canceled"]
# current -> Y/N per candidate on a same-second tie (older never wins, newer always does).
REFUND_TIE: dict[str, str] = {
    "pending": "YYYYY",
    "requires_action": "YYYYY",
    "succeeded": "NNYYY",
    "failed": "NNYYY",
    "canceled": "NNYYY",
}


@pytest.mark.parametrize("current", REFUNDS)
@pytest.mark.parametrize("candidate", REFUNDS)
def test_refund_wins(current: str, candidate: str) -> None:
    assert refund_wins(current, None, candidate, T) is True
    assert refund_wins(current, T, candidate, T + 1) is True
    assert refund_wins(current, T, candidate, T - 1) is False
    tie = REFUND_TIE[current][REFUNDS.index(candidate)] == "Y"
    assert refund_wins(current, T, candidate, T) is tie


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["warning_needs_response"], True),
        (["warning_under_review", "warning_needs_response"], True),
        (["warning_needs_response", "needs_response"], False),  # one real chargeback
        (["needs_response"], False),
        (["under_review"], False),
        ([], False),
    ],
)
def test_refundable_while_disputed_only_during_inquiries(
    statuses: list[str], expected: bool
) -> None:
    from caisse.domain.states import refundable_while_disputed

    assert refundable_while_disputed(statuses) is expected
