"""A scrubber for text sent to a remote teacher: e-mail addresses, phone numbers, card numbers, names.

It is deliberately conservative (regular expressions plus a list of common first names and the names the
caller knows about), replaces each hit with a typed placeholder, and is on by default for non-local teachers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b")
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
_PHONE = re.compile(
    r"(?<![\w.])(?<!\d[\s-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{3,4}[\s.-]\d{3,4}(?:[\s.-]\d{2,4})?"
    r"(?![\w.])(?![\s-]\d)"
)
_SURNAME = re.compile(r"<name>(?:\s+[A-Z][a-z]+)+")
_TITLED = re.compile(r"\b(?:Mr|Mrs|Ms|Miss|Dr|Prof)\.?\s+[A-Z][a-z]+(?:\s+[A-Z][a-z]+)?")

# Common given names (a short list is enough to catch the usual "my name is ..." cases).
_NAMES = """
james mary john patricia robert jennifer michael linda william elizabeth david barbara richard susan joseph jessica
thomas sarah charles karen christopher nancy daniel lisa matthew betty anthony margaret mark sandra donald ashley
steven kimberly paul emily andrew donna joshua michelle kenneth carol kevin amanda brian melissa george deborah
timothy stephanie ronald rebecca edward sharon jason laura jeffrey cynthia ryan kathleen jacob amy gary angela
nicholas shirley eric anna jonathan brenda stephen pamela larry emma justin nicole scott helen brandon samantha
benjamin katherine samuel christine gregory debra alexander rachel frank carolyn patrick janet raymond catherine
jack maria dennis heather jerry diane tyler ruth aaron julie jose olivia adam joyce nathan virginia henry victoria
douglas kelly zachary lauren peter christina kyle joan ethan evelyn walter judith noah megan jeremy andrea
christian cheryl keith hannah roger jacqueline terry martha gerald gloria harold teresa sean ann austin sara carl
madison arthur frances lawrence kathryn dylan janice jesse jean jordan abigail bryan alice billy julia joe judy
bruce sophia gabriel grace logan denise albert amber willie doris alan marilyn juan danielle wayne beverly elijah
isabella randy theresa roy diana vincent natalie ralph brittany eugene charlotte russell marie bobby kayla mason
alexis philip lori louis alice liam mia lucas yusuf fatima ahmed mohammed wei li chen priya raj
"""
COMMON_NAMES = frozenset(_NAMES.split())


def _luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


class Scrubber:
    """Callable text → text that masks personal data; ``names`` adds names known to the caller."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        extra = sorted({n.strip() for n in names if n.strip()}, key=len, reverse=True)
        self._known = re.compile(r"\b(?:" + "|".join(map(re.escape, extra)) + r")\b") if extra else None

    def __call__(self, text: str) -> str:
        text = _EMAIL.sub("<email>", text)
        text = _CARD.sub(lambda m: "<card>" if _luhn_ok(re.sub(r"\D", "", m.group())) else m.group(), text)
        text = _PHONE.sub(lambda m: "<phone>" if sum(c.isdigit() for c in m.group()) >= 7 else m.group(), text)
        text = _TITLED.sub("<name>", text)
        if self._known is not None:
            text = self._known.sub("<name>", text)
        text = re.sub(r"\b[A-Z][a-z]+\b", lambda m: "<name>" if m.group().lower() in COMMON_NAMES else m.group(), text)
        return _SURNAME.sub("<name>", text)  # "<name> Smith" -> "<name>"


def default_scrubber(teacher_model: str, enabled: bool | None = None) -> Scrubber | None:
    """On by default for non-local teachers; ``enabled`` overrides."""
    if enabled is None:
        enabled = not teacher_model.startswith("local/")
    return Scrubber() if enabled else None
