"""The LedgerError hierarchy: every refusal has a stable code and maps to a stable exit code.

Exit codes (the CLI contract): 1 refused by a ledger rule, 2 bad input or usage,
3 store or integrity failure.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Base of every error the ledger reports to a user."""

    exit_code = 3
    code = "ledger_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return self.message


class Refused(LedgerError):
    """A well-formed command that a ledger rule does not allow (exit 1)."""

    exit_code = 1
    code = "refused"


class BadInput(LedgerError):
    """Input that is malformed: wrong type, out of range, unknown name (exit 2)."""

    exit_code = 2
    code = "bad_input"


class StoreError(LedgerError):
    """The store cannot be opened, read or written (exit 3)."""

    exit_code = 3
    code = "store_error"


class IntegrityFailure(StoreError):
    """The stored history does not verify: a changed, missing, inserted or reordered event."""

    code = "integrity"

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message)
        self.position = position


class Conflict(StoreError):
    """Another writer appended first; the command is retried on the new state."""

    code = "conflict"
