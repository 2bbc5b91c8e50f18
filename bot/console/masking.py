"""Masking personal data in exported text: mobile numbers, 18-digit ID card numbers, email
addresses and bank card numbers — also when they sit inside a Chinese sentence
("我的身份证43012419900307001X，电话13812345678").

Numbers are recognised by their real formats, not by length alone:
  * ID card (GB 11643-1999): 6-digit region code (first digit 1–8), a real birth date
    (1900-01-01 … today-ish), 3-digit sequence, ISO 7064 MOD 11-2 check digit (0–9 or X).
    A number with a valid region and date but a wrong check digit is masked as well — a
    citizen's mistyped ID card number is still their ID card number.
  * Bank card: 13–19 digits (optionally grouped by spaces or hyphens) passing the Luhn check.
  * Mobile: mainland numbers 1[3-9]xxxxxxxxx, optionally +86/86 prefixed or grouped 3-4-4.
  * Email: local@domain.tld.
A digit run that is part of a longer digit run is never split: "2021123456789012345678"
is not an ID card followed by junk.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Callable, List, Tuple

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for the first 17 digits."""
    total = sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS))
    return ID_CHECK[total % 11]


def _valid_birth_date(digits8: str) -> bool:
    try:
        born = dt.date(int(digits8[:4]), int(digits8[4:6]), int(digits8[6:8]))
    except ValueError:
        return False
    return dt.date(1900, 1, 1) <= born <= dt.date.today() + dt.timedelta(days=366)


def id_card_structure_ok(value: str) -> bool:
    """18 characters, region 1–8xxxxx, a real birth date, last character digit or X."""
    v = value.upper()
    return (len(v) == 18 and v[:17].isdigit() and (v[17].isdigit() or v[17] == "X")
            and v[0] in "12345678" and _valid_birth_date(v[6:14]))


def is_valid_id_card(value: str) -> bool:
    """Structure and check digit both right."""
    v = value.upper()
    return id_card_structure_ok(v) and id_check_digit(v[:17]) == v[17]


def luhn_ok(digits: str) -> bool:
    if not digits.isdigit() or len(digits) < 2:
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def mask_id_card(value: str) -> str:
    return value[:6] + "*" * 8 + value[14:]  # keep region and the last 4 (incl. check digit)


def mask_bank_card(value: str) -> str:
    """Keep the first 4 and last 4 digits, and the original grouping."""
    digits_seen = 0
    total = sum(c.isdigit() for c in value)
    out = []
    for c in value:
        if c.isdigit():
            digits_seen += 1
            out.append(c if digits_seen <= 4 or digits_seen > total - 4 else "*")
        else:
            out.append(c)
    return "".join(out)


def mask_mobile(value: str) -> str:
    """+86 138-1234-5678 → +86 138-****-5678: hide the 4 digits after the 3-digit prefix."""
    digits_seen = 0
    total = sum(c.isdigit() for c in value)
    start = total - 11  # skip a 86 country code
    out = []
    for c in value:
        if c.isdigit():
            digits_seen += 1
            pos = digits_seen - start
            out.append("*" if 4 <= pos <= 7 else c)
        else:
            out.append(c)
    return "".join(out)


def mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return (local[:1] + "***@" + domain) if local else value


# Candidates for ID and bank card numbers: a compact run of 13–19 digits (or 17 digits + X),
# or a bank card grouped in fours; never part of a longer digit run.
_NUMBER_RUN = re.compile(r"(?<!\d)(\d{4}(?:[ -]\d{4}){2,3}(?:[ -]\d{1,3})?|\d{17}[Xx]|\d{13,19})(?!\d)")
_MOBILE = re.compile(r"(?<![\d+])(?:(?:\+|00)?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?!\d)")
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")


def classify_number(value: str) -> str:
    """'id_card', 'bank_card' or '' for a digit run found in text."""
    compact = re.sub(r"[ -]", "", value)
    if len(compact) == 18 and compact == value and is_valid_id_card(compact):
        return "id_card"
    if compact.isdigit() and 13 <= len(compact) <= 19 and luhn_ok(compact):
        return "bank_card"
    if len(compact) == 18 and compact == value and id_card_structure_ok(compact):
        return "id_card"
    return ""


def find_personal_data(text: str) -> List[Tuple[str, int, int]]:
    """[(kind, start, end)] of every personal datum in `text`, non-overlapping, in order."""
    if not text:
        return []
    spans: List[Tuple[str, int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for _, s, e in spans)

    for m in _EMAIL.finditer(text):
        spans.append(("email", m.start(), m.end()))
    for m in _MOBILE.finditer(text):
        if free(m.start(), m.end()):
            spans.append(("mobile", m.start(), m.end()))
    for m in _NUMBER_RUN.finditer(text):
        value = m.group(1)
        kind = classify_number(value)
        if kind and free(m.start(1), m.end(1)):
            spans.append((kind, m.start(1), m.end(1)))
    return sorted(spans, key=lambda s: s[1])


MASKERS: dict = {
    "id_card": mask_id_card,
    "bank_card": mask_bank_card,
    "mobile": mask_mobile,
    "email": mask_email,
}


def mask_text(text: str) -> str:
    """`text` with every mobile number, ID card number, email address and bank card number
    masked; everything else unchanged."""
    if not text or not isinstance(text, str):
        return text
    out = []
    pos = 0
    for kind, start, end in find_personal_data(text):
        out.append(text[pos:start])
        out.append(MASKERS[kind](text[start:end]))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def masker(enabled: bool) -> Callable[[str], str]:
    return mask_text if enabled else (lambda s: s)
