"""Internal: numbers written for people (the summary, the report, capacity step lines).

Every function takes a number (int, float, numpy scalar, None or NaN) and returns a short
string: thousands separators, about three significant figures, a unit, never scientific
notation; ``–`` where there is no value::

    rate(39_580, "items/s")  -> '39.6 k items/s'
    mb_per_s(11.94)          -> '11.9 MB/s'
    ms(4.213)                -> '4.2 ms'
    share(0.9995)            -> '99.95 %'
    count(1234567)           -> '1,234,567'
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["MISSING", "count", "duration", "mb_per_s", "ms", "number", "rate", "share", "size",
           "value"]

MISSING = "–"
"""What stands where there is no value (no data, NaN, None)."""

_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def _float(x: Any) -> float | None:
    """``x`` as a finite-or-infinite float; None for None, NaN, pandas NA or a non-number."""
    if x is None or isinstance(x, str):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def number(x: Any, digits: int = 3) -> str:
    """``x`` with about ``digits`` significant figures and thousands separators, no prefix:
    ``1,234``, ``42.5``, ``0.0123``; whole numbers stay whole."""
    v = _float(x)
    if v is None:
        return MISSING
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    if v == 0:
        return "0"
    if v.is_integer() and abs(v) >= 1:
        return f"{int(v):,}"
    magnitude = math.floor(math.log10(abs(v)))
    decimals = max(0, digits - 1 - magnitude)
    decimals = min(decimals, 12)
    text = f"{v:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _prefixed(v: float, digits: int = 3) -> tuple[str, str]:
    """(mantissa, SI prefix) of ``v``: 39,580 → ('39.6', 'k'); below 10,000 no prefix."""
    if abs(v) < 1e4:
        return number(v if abs(v) >= 100 else round(v, 2 if abs(v) < 10 else 1), digits), ""
    for scale, prefix in _PREFIXES:
        if abs(v) >= scale:
            m = v / scale
            text = f"{m:,.{max(0, digits - 1 - math.floor(math.log10(abs(m))))}f}"
            return text, prefix
    return number(v, digits), ""  # pragma: no cover - every |v| >= 1e4 has a prefix


def rate(x: Any, unit: str = "/s") -> str:
    """A rate with an SI prefix from 10,000 on: ``39.6 k items/s``, ``958 batches/s``."""
    v = _float(x)
    if v is None:
        return MISSING
    if math.isinf(v):
        return f"∞ {unit}"
    mantissa, prefix = _prefixed(v)
    return f"{mantissa} {prefix} {unit}" if prefix else f"{mantissa} {unit}"


def mb_per_s(x: Any) -> str:
    """Megabytes (10⁶ bytes) per second: ``11.9 MB/s``; kB/s below 0.1 MB/s."""
    v = _float(x)
    if v is None:
        return MISSING
    if 0 < abs(v) < 0.1:
        return f"{number(v * 1000)} kB/s"
    return f"{number(v if abs(v) >= 100 else round(v, 1 if abs(v) >= 10 else 2))} MB/s"


def size(x: Any) -> str:
    """Bytes with a decimal prefix: ``512 B``, ``64.2 kB``, ``1.19 MB``, ``3.4 GB``."""
    v = _float(x)
    if v is None:
        return MISSING
    for scale, prefix in _PREFIXES:
        if abs(v) >= scale:
            return f"{number(v / scale)} {prefix}B"
    return f"{number(v)} B"


def ms(x: Any) -> str:
    """Milliseconds: one decimal below 10 ms (``4.2 ms``), whole above (``1,234 ms``)."""
    v = _float(x)
    if v is None:
        return MISSING
    if abs(v) < 10:
        return f"{v:.1f} ms" if abs(v) >= 0.05 or v == 0 else f"{number(v, 2)} ms"
    return f"{round(v):,} ms"


def duration(x: Any) -> str:
    """Seconds for people: ``850 ms``, ``20.1 s``, ``2 min 05 s``, ``1 h 02 min``."""
    v = _float(x)
    if v is None:
        return MISSING
    if abs(v) < 1:
        return ms(v * 1000)
    if abs(v) < 100:
        return f"{number(round(v, 1))} s"
    whole = round(v)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def share(x: Any) -> str:
    """A fraction as a percentage that never rounds a non-zero part to 0 % or a not-quite-
    whole one to 100 %: ``100 %``, ``99.95 %``, ``3.1 %``, ``0.004 %``."""
    v = _float(x)
    if v is None:
        return MISSING
    p = v * 100
    if p in (0, 100) or math.isinf(p):
        return f"{number(p)} %"
    text = f"{p:,.1f}"
    for decimals in range(1, 7):
        text = f"{p:,.{decimals}f}"
        if float(text.replace(",", "")) not in (0.0, 100.0):
            break
    return f"{text.rstrip('0').rstrip('.')} %"


def count(x: Any) -> str:
    """A whole number with thousands separators: ``1,234,567``."""
    v = _float(x)
    if v is None:
        return MISSING
    return f"{round(v):,}"


def value(x: Any) -> str:
    """Any value in a table cell: ints with separators, floats by :func:`number` (4 figures),
    booleans as yes/no, None/NaN as ``–``, anything else as its text."""
    if x is None:
        return MISSING
    if isinstance(x, bool) or type(x).__name__ == "bool_":
        return "yes" if x else "no"
    if isinstance(x, numbers.Integral):
        return f"{int(x):,}"
    if isinstance(x, numbers.Real):
        return number(x, 4)
    if _float(x) is None and type(x).__name__ in ("NAType", "NaTType"):
        return MISSING
    return str(x)
