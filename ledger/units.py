"""Value types: whole tonnes, exact prices and money, vintages, unit kinds, sectors.

Every parser here either returns a clean value or raises BadInput with one line
naming what was wrong. Limits are named constants.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from ledger.errors import BadInput

MAX_QUANTITY_T = 10_000_000_000  # 10 Gt: more than any single movement in any ETS
MAX_PRICE_YUAN = Decimal("100000.00")  # a sanity bound, 1,000x the market's highest price
MIN_VINTAGE = 2013
MAX_VINTAGE = 2100
MAX_ID_LENGTH = 64
MAX_TEXT_LENGTH = 200
MAX_COMMAND_ID_LENGTH = 128

CENT = Decimal("0.01")

UNIT_KINDS = ("CEA", "CCER")
SECTORS = ("power", "steel", "cement", "aluminium", "chemicals", "paper", "aviation", "other")
ACCOUNT_KINDS = ("compliance", "trading", "government")
ISSUE_BASES = ("pre-allocation", "true-up", "auction", "offset", "reserve")
TRADE_MODES = ("listed", "block", "auction")
CANCEL_REASONS = ("voluntary", "correction", "expiry")
ROLES = ("regulator", "exchange", "verifier", "firm")
FREEZE_REASONS = ("judicial", "investigation", "default")
_DURATION_RE = re.compile(r"([1-9][0-9]{0,7})([dhms])")
_SECONDS = {"d": 86_400, "h": 3_600, "m": 60, "s": 1}
MAX_PENDING_SECONDS = 366 * 86_400
ALLOCATION_STEPS = ("pre", "true-up")
OUTPUT_UNITS = ("MWh", "GJ", "t")

_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]*")  # whole string (fullmatch: no newline slips past a $)
_PRICE_RE = re.compile(r"[0-9]+(\.[0-9]{1,2})?")  # ASCII digits only, whole string


def parse_id(value: object, what: str = "id") -> str:
    """An identifier: letters, digits, '_', '.', ':', '-', at most MAX_ID_LENGTH characters."""
    if not isinstance(value, str) or not value:
        raise BadInput(f"{what} must be a non-empty string")
    if len(value) > MAX_ID_LENGTH:
        raise BadInput(f"{what} {value[:20]!r}... is longer than {MAX_ID_LENGTH} characters")
    if not _ID_RE.fullmatch(value):
        raise BadInput(f"{what} {value!r} may hold only letters, digits and _ . : -")
    return value


def parse_command_id(value: object) -> str:
    """A command id (the idempotency key): printable text, no control characters, at most 128 characters."""
    if not isinstance(value, str) or not value:
        raise BadInput("command id must be a non-empty string")
    if len(value) > MAX_COMMAND_ID_LENGTH:
        raise BadInput(f"command id is longer than {MAX_COMMAND_ID_LENGTH} characters")
    if not value.isprintable() or value != value.strip():
        raise BadInput(f"command id {value!r} may not hold control characters or surrounding spaces")
    return value


def parse_text(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadInput(f"{what} must be non-empty text")
    if len(value) > MAX_TEXT_LENGTH:
        raise BadInput(f"{what} is longer than {MAX_TEXT_LENGTH} characters")
    text = value.strip()
    if not text.isprintable():
        raise BadInput(f"{what} {text[:40]!r} may not hold control characters (newlines, tabs, ...)")
    return text


# Ed25519 (RFC 8032): a public key is the 32-byte encoding of a point of the curve. A key that does not
# decode, or that decodes to a point of small order (the identity, all zeros, ...), verifies no signature
# (or, for small order, forgeable ones): it is refused where it is given.
_P = 2**255 - 19
_D = -121665 * pow(121666, _P - 2, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)


def _ed25519_point(raw: bytes) -> tuple[int, int] | None:
    y = int.from_bytes(raw, "little") & ((1 << 255) - 1)
    sign = raw[31] >> 7
    if y >= _P:
        return None
    u, v = (y * y - 1) % _P, (_D * y * y + 1) % _P
    x = u * pow(v, 3, _P) * pow(u * pow(v, 7, _P), (_P - 5) // 8, _P) % _P
    if (v * x * x - u) % _P != 0:
        if (v * x * x + u) % _P != 0:
            return None
        x = x * _SQRT_M1 % _P
    if x == 0 and sign:
        return None
    if x % 2 != sign:
        x = _P - x
    return x, y


def _ed25519_double(pt: tuple[int, int]) -> tuple[int, int]:
    x, y = pt
    t = _D * x * x * y * y % _P
    return (2 * x * y * pow(1 + t, _P - 2, _P) % _P, (y * y + x * x) * pow(1 - t, _P - 2, _P) % _P)


def parse_public_key(value: object, what: str = "public key") -> str:
    """An Ed25519 public key as 64 hex digits (returned lower-case): a valid point, not of small order."""
    try:
        raw = bytes.fromhex(value.strip()) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise BadInput(f"{what} must be 64 hex digits (a raw Ed25519 key)")
    pt = _ed25519_point(raw)
    if pt is None:
        raise BadInput(f"{what} is not a point of the Ed25519 curve")
    for _ in range(3):
        pt = _ed25519_double(pt)
    if pt == (0, 1):  # 8P is the identity: P is of small order (the identity itself, all zeros, ...)
        raise BadInput(f"{what} is a point of small order (such as the identity): no key")
    return raw.hex()


def parse_quantity(value: object, what: str = "quantity") -> int:
    """Whole tonnes, 1..MAX_QUANTITY_T. Accepts an int or a string of ASCII digits; never a float or a fraction."""
    if isinstance(value, bool):
        raise BadInput(f"{what} must be a whole number of tonnes")
    if isinstance(value, int):
        q = value
    elif isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        q = int(value.strip())
    else:  # a float (even 12.0) is refused: quantities are JSON integers
        raise BadInput(f"{what} {value!r} is not a whole number of tonnes")
    if q <= 0:
        raise BadInput(f"{what} must be positive, got {q}")
    if q > MAX_QUANTITY_T:
        raise BadInput(f"{what} {q} exceeds the limit of {MAX_QUANTITY_T} t")
    return q


def parse_tonnes_nonnegative(value: object, what: str = "tonnes") -> int:
    """Whole tonnes that may be zero (verified emissions of an idle plant)."""
    if isinstance(value, (int, str)) and not isinstance(value, bool) and str(value).strip() == "0":
        return 0
    return parse_quantity(value, what)


def parse_price(value: object, what: str = "price") -> Decimal:
    """Yuan per tonne: positive, at most 2 decimal places (the tick is 0.01), never a float."""
    if isinstance(value, (bool, float)):
        raise BadInput(f"{what} must be given as a decimal string such as \"88.50\", not a float")
    if isinstance(value, Decimal):
        text = format(value, "f")
    elif isinstance(value, (int, str)):
        text = str(value).strip()
    else:
        raise BadInput(f"{what} {value!r} is not a price")
    if not _PRICE_RE.fullmatch(text):
        raise BadInput(f"{what} {text!r} must be a positive decimal with at most 2 decimal places")
    try:
        p = Decimal(text).quantize(CENT)
    except InvalidOperation:
        raise BadInput(f"{what} {text!r} is not a number") from None
    if p <= 0:
        raise BadInput(f"{what} must be positive, got {text}")
    if p > MAX_PRICE_YUAN:
        raise BadInput(f"{what} {text} exceeds the limit of {MAX_PRICE_YUAN} yuan")
    return p


def money(value: Decimal) -> Decimal:
    """Round an exact amount of yuan to fen (2 places), half up."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def fmt_money(value: Decimal) -> str:
    """The JSON form of a price or an amount: a string with exactly two places."""
    return str(money(value))


def parse_positive_decimal(value: object, what: str) -> str:
    """A positive exact decimal (rated MW, an intensity), normalized: "600.0" -> "600"."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadInput(f"{what} must be a positive number, not {value!r}")
    try:
        d = Decimal(str(value).strip())
    except ArithmeticError:
        raise BadInput(f"{what} must be a positive number, not {value!r}") from None
    if not d.is_finite() or d <= 0 or d > 1_000_000:
        raise BadInput(f"{what} must be a positive number up to 1,000,000, not {value!r}")
    if d.as_tuple().exponent < -6:
        raise BadInput(f"{what} has at most 6 decimal places, not {value!r}")
    return format(d.normalize(), "f")


def parse_load_factor(value: object, what: str = "load factor") -> str:
    """A unit's load (output) factor as a fraction from 0 to 1, at most 4 places: "0.50" -> "0.5"."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadInput(f"{what} must be a fraction from 0 to 1, not {value!r}")
    try:
        d = Decimal(str(value).strip())
    except ArithmeticError:
        raise BadInput(f"{what} must be a fraction from 0 to 1, not {value!r}") from None
    if not d.is_finite() or not 0 <= d <= 1:
        raise BadInput(f"{what} must be a fraction from 0 to 1 (0.50 for 50%), not {value!r}")
    if d.as_tuple().exponent < -4:
        raise BadInput(f"{what} has at most 4 decimal places, not {value!r}")
    return format(d.normalize(), "f") if d else "0"


def parse_vintage(value: object, what: str = "vintage") -> int:
    if isinstance(value, bool):
        raise BadInput(f"{what} must be a year")
    try:
        v = int(str(value).strip()) if isinstance(value, (int, str)) else None
    except ValueError:
        v = None
    if v is None or not (MIN_VINTAGE <= v <= MAX_VINTAGE):
        raise BadInput(f"{what} {value!r} must be a year from {MIN_VINTAGE} to {MAX_VINTAGE}")
    return v


def parse_year(value: object, what: str = "year") -> int:
    return parse_vintage(value, what)


def parse_period(value: object) -> tuple[int, int]:
    """A compliance period: '2024' or a multi-year cycle '2021-2022'."""
    text = str(value).strip()
    m = re.fullmatch(r"(\d{4})(?:-(\d{4}))?", text)
    if not m:
        raise BadInput(f"year {text!r} must be YYYY or a cycle YYYY-YYYY")
    first = parse_year(m.group(1))
    last = parse_year(m.group(2)) if m.group(2) else first
    if last < first or last - first > 4:
        raise BadInput(f"cycle {text!r} must run forwards over at most 5 years")
    return first, last


def period_label(first: int, last: int) -> str:
    return str(first) if first == last else f"{first}-{last}"


def parse_choice(value: object, choices: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise BadInput(f"{what} {value!r} must be one of: {', '.join(choices)}")
    return value


def parse_date(value: object, what: str = "date") -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise BadInput(f"{what} {value!r} must be a date YYYY-MM-DD") from None


def parse_duration(value: object, what: str = "duration") -> str:
    """A duration such as 7d, 36h, 90m or 3600s, normalized to whole seconds ("604800s"), at most 366 days."""
    m = _DURATION_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise BadInput(f"{what} {value!r} must be a whole number of days, hours, minutes or seconds (7d, 36h, 90m)")
    seconds = int(m.group(1)) * _SECONDS[m.group(2)]
    if not 60 <= seconds <= MAX_PENDING_SECONDS:
        raise BadInput(f"{what} {value!r} must be from 1 minute to 366 days")
    return f"{seconds}s"
