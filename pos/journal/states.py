"""The journal's state machine: kinds, tenders, states and the ONE transition table.

Every state change of a journaled transaction goes through :data:`TRANSITIONS`;
anything not listed raises :class:`IllegalTransition`. ``sending -> queued`` is
only legitimate when the request provably never left the terminal (the
connection could not be opened); the caller is responsible for that proof.
"""

from __future__ import annotations

from enum import StrEnum

from pos.errors import PosError


class Kind(StrEnum):
    card_debit = "card_debit"
    card_credit = "card_credit"  # top-up
    card_refund = "card_refund"  # automatic credit-back after a failed card-paid vend
    gift_activation = "gift_activation"
    sente_activation = "sente_activation"
    card_lock = "card_lock"
    card_unlock = "card_unlock"
    vend = "vend"  # prepaid electricity token
    postpaid = "postpaid"  # electricity bill


class Tender(StrEnum):
    cash = "cash"
    card = "card"
    none = "none"


class State(StrEnum):
    created = "created"  # journaled, nothing sent
    queued = "queued"  # accepted offline; waits for sync
    sending = "sending"  # a request may have left: resolve by query before any resend
    unknown = "unknown"  # send failed ambiguously
    pending = "pending"  # provider says pending: poll by ref
    done = "done"  # settled, success
    declined = "declined"  # refused online, nothing moved
    declined_offline = "declined_offline"  # accepted offline, refused at sync: flagged
    failed = "failed"  # provider says failed after acceptance: flagged
    expired = "expired"  # offline item older than max age, never sent: flagged
    review = "review"  # the outcome could not be settled by asking: a person decides
    resolved = "resolved"  # a flagged item a supervisor resolved, with a note
    cancelled = "cancelled"  # created but abandoned before sending


S = State

#: The one table of allowed transitions. Keys absent from a value set are illegal.
TRANSITIONS: dict[State, frozenset[State]] = {
    S.created: frozenset({S.queued, S.sending, S.cancelled, S.declined}),
    S.queued: frozenset({S.sending, S.expired, S.cancelled, S.review, S.failed}),
    S.sending: frozenset(
        {S.done, S.declined, S.declined_offline, S.pending, S.unknown, S.failed, S.queued,
         S.review, S.cancelled}
    ),
    S.unknown: frozenset(
        {S.sending, S.done, S.declined, S.declined_offline, S.pending, S.failed, S.queued,
         S.review, S.cancelled}
    ),
    S.pending: frozenset({S.pending, S.done, S.failed, S.unknown, S.review}),
    S.declined_offline: frozenset({S.resolved}),
    S.expired: frozenset({S.resolved}),
    S.failed: frozenset({S.resolved}),
    # A person settles it: what the provider did after all (done / cancelled), send it
    # again (queued), or a note (resolved).
    S.review: frozenset({S.resolved, S.done, S.cancelled, S.queued, S.failed}),
    S.done: frozenset(),
    S.declined: frozenset(),
    S.cancelled: frozenset(),
    S.resolved: frozenset(),
}

#: States a new journal row may start in (``queued`` = accepted offline).
INITIAL_STATES: frozenset[State] = frozenset({S.created, S.queued})

FINAL_STATES: frozenset[State] = frozenset({S.done, S.declined, S.cancelled, S.resolved})
SYNC_STATES: frozenset[State] = frozenset({S.queued, S.sending, S.unknown, S.pending})
FLAGGED_STATES: frozenset[State] = frozenset({S.declined_offline, S.expired, S.failed, S.review})


class IllegalTransition(PosError):
    """A state change the transition table does not allow (a programming error)."""

    def __init__(self, ref: str, old: State, new: State) -> None:
        super().__init__(f"Transaction {ref}: illegal state change {old} -> {new}")
        self.ref = ref
        self.old = old
        self.new = new


def can_transition(old: State, new: State) -> bool:
    return new in TRANSITIONS[State(old)]


def check_transition(ref: str, old: State, new: State) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is in the table."""
    if not can_transition(old, new):
        raise IllegalTransition(ref, State(old), State(new))


def is_final(state: State) -> bool:
    return State(state) in FINAL_STATES


def needs_sync(state: State) -> bool:
    """Outstanding work for the sync worker (send, resolve by query, or poll)."""
    return State(state) in SYNC_STATES


def is_flagged(state: State) -> bool:
    """Shown to the merchant until a supervisor resolves it."""
    return State(state) in FLAGGED_STATES


def holds_pin(state: State) -> bool:
    """Whether a card debit in this state may still need its encrypted PIN."""
    return State(state) in SYNC_STATES or State(state) in (S.created, S.review)
