"""Internal: payload bodies of an exact encoded size, in realistic shapes, from byte templates.

A :class:`PayloadPool` is made once per spec (from its seed): a few hundred *bases*, each a
JSON object in the chosen shape with realistic values (ids, emails, timestamps, numbers,
booleans, nested objects, arrays, free text) and left open at a final string field, plus a
long buffer of free text. A payload of ``size`` bytes is then three byte slices::

    base[j] + text[offset : offset + pad] + b'"}'

with ``pad`` chosen so that the encoded payload is exactly ``size`` bytes. No dict is built
and no JSON is encoded per item, which is what makes generation faster than ``orjson.dumps``
over prebuilt dicts. Sizes too small for any base fall back to ``{"p":"…"}`` (8 bytes and
up) and, below 8 bytes, to a number with that many digits.

Shapes (string forms): ``flat``, ``nested:DEPTH``, ``array:WIDTH``, ``mixed`` (all of them).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

import numpy as np
import orjson

from loadkit.errors import ConfigError

__all__ = ["COMPLETE_MAX_SIZE", "SHAPES", "PayloadPool", "Shape"]

SHAPES = "flat, nested:DEPTH (1-16), array:WIDTH (1-1000) or mixed"
_BASES = 512
COMPLETE_POOL = 4096
"""Whole payloads kept per size when sizes take few values (see PayloadPool.complete)."""
COMPLETE_POOL_BYTES = 8 << 20
COMPLETE_MAX_SIZE = 16 << 10
_TEXT_BYTES = 1 << 18
_FALLBACK_OPEN = b'{"p":"'
_CLOSE = b'"}'
_MIN_FALLBACK = len(_FALLBACK_OPEN) + len(_CLOSE)  # 8

_WORDS = (
    "order invoice customer shipment payment refund account session device region cluster "
    "queue worker batch retry timeout deploy release feature signal metric trace span "
    "event alpha bravo delta echo kilo lima sierra tango north south east west quick brown "
    "lazy report export import sync webhook stripe email notify digest summary weekly "
    "monthly pending active archived failed succeeded cancelled priority standard express"
).split()
_DOMAINS = ("example.com", "example.org", "mail.test", "corp.example", "shop.test")
_FIELD_NAMES = (
    "userId orderId accountId sessionId email createdAt updatedAt amount quantity currency "
    "status active verified score ratio count region plan source note title description"
).split()


@dataclass(frozen=True, slots=True)
class Shape:
    """The structure of generated payloads."""

    kind: str = "mixed"
    param: int = 0

    @classmethod
    def parse(cls, text: str | Shape) -> Shape:
        if isinstance(text, Shape):
            return text
        if not isinstance(text, str):
            raise ConfigError("shape", text, SHAPES)
        kind, _, rest = text.strip().lower().partition(":")
        try:
            if kind in ("flat", "mixed") and not rest:
                return cls(kind, 0)
            if kind == "nested":
                depth = int(rest) if rest else 3
                if 1 <= depth <= 16:
                    return cls(kind, depth)
            if kind == "array":
                width = int(rest) if rest else 10
                if 1 <= width <= 1000:
                    return cls(kind, width)
        except ValueError:
            pass
        raise ConfigError("shape", text, SHAPES)

    def __str__(self) -> str:
        return self.kind if self.kind in ("flat", "mixed") else f"{self.kind}:{self.param}"


class _Values:
    """Realistic scalar values drawn from a seeded ``random.Random``."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def ident(self, prefix: str) -> str:
        alphabet = string.ascii_lowercase + string.digits
        return prefix + "_" + "".join(self.rng.choices(alphabet, k=self.rng.randint(8, 20)))

    def email(self) -> str:
        name = self.rng.choice(_WORDS) + "." + self.rng.choice(_WORDS)
        return f"{name}{self.rng.randint(1, 999)}@{self.rng.choice(_DOMAINS)}"

    def timestamp(self) -> str:
        r = self.rng
        return (
            f"2026-{r.randint(1, 12):02d}-{r.randint(1, 28):02d}T"
            f"{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}."
            f"{r.randint(0, 999):03d}Z"
        )

    def text(self, words: int) -> str:
        return " ".join(self.rng.choices(_WORDS, k=words))

    def scalar(self, name: str) -> object:
        r = self.rng
        if name.endswith("Id"):
            return self.ident(name[:-2][:4])
        if name == "email":
            return self.email()
        if name.endswith("At"):
            return self.timestamp()
        if name in ("amount", "score", "ratio"):
            return round(r.uniform(0, 10_000), r.randint(0, 4))
        if name in ("quantity", "count"):
            return r.randint(0, 100_000)
        if name in ("active", "verified"):
            return r.random() < 0.5
        if name == "currency":
            return r.choice(("usd", "eur", "gbp", "jpy"))
        if name == "status":
            return r.choice(("pending", "active", "archived", "failed"))
        if name == "plan":
            return r.choice(("free", "hobby", "pro", "enterprise", None))
        return self.text(r.randint(1, 6))

    def flat(self, fields: int) -> dict[str, object]:
        names = self.rng.sample(_FIELD_NAMES, k=min(fields, len(_FIELD_NAMES)))
        return {name: self.scalar(name) for name in names}

    def nested(self, depth: int) -> dict[str, object]:
        node: dict[str, object] = self.flat(self.rng.randint(1, 3))
        for level in range(depth):
            parent = self.flat(self.rng.randint(0, 2))
            parent[f"level{depth - level}"] = node
            node = parent
        return node

    def array(self, width: int) -> dict[str, object]:
        kind = self.rng.randrange(3)
        if kind == 0:
            items: list[object] = [self.rng.randint(0, 1_000_000) for _ in range(width)]
        elif kind == 1:
            items = [self.ident("itm") for _ in range(width)]
        else:
            items = [self.flat(self.rng.randint(1, 2)) for _ in range(width)]
        return {"items": items, **self.flat(self.rng.randint(0, 2))}


class PayloadPool:
    """Byte templates for payloads of one shape, made once from a seed."""

    def __init__(self, shape: Shape, seed: int) -> None:
        rng = random.Random(f"loadkit-payloads-{seed}-{shape}")
        values = _Values(rng)
        bases: list[bytes] = []
        for i in range(_BASES):
            kind = shape.kind
            if kind == "mixed":
                kind = ("flat", "nested", "array")[i % 3]
            # spread sizes: a share of small bases keeps small payloads structured
            small = i % 4 == 0
            if kind == "flat":
                obj = values.flat(rng.randint(1, 3) if small else rng.randint(2, 12))
            elif kind == "nested":
                depth = shape.param or rng.randint(1, 4)
                obj = values.nested(1 if small and shape.kind == "mixed" else depth)
            else:
                width = shape.param or rng.randint(1, 20)
                obj = values.array(min(width, 2) if small and shape.kind == "mixed" else width)
            encoded = orjson.dumps(obj)
            key = rng.choice(("memo", "text", "comment", "body", "message"))
            sep = b"," if len(encoded) > 2 else b""
            bases.append(encoded[:-1] + sep + b'"' + key.encode() + b'":"')
        bases.sort(key=len)
        self.shape = shape
        self.bases: list[bytes] = bases
        self.base_len = np.array([len(b) for b in bases], dtype=np.int64)
        # ``opens[-1]`` is the fallback, so a planned base of -1 indexes it directly
        self.opens: list[bytes] = [*bases, _FALLBACK_OPEN]
        self.open_len = np.array([len(b) for b in self.opens], dtype=np.int64)
        words = values.text(_TEXT_BYTES // 5).encode()
        self.text_bytes = (words + b" " + words)[: 2 * _TEXT_BYTES]
        self.text = memoryview(self.text_bytes)
        self._text_len = _TEXT_BYTES
        self._complete: dict[int, list[bytes]] = {}
        self._rows: dict[int, np.ndarray] = {}

    def complete(self, size: int) -> list[bytes]:
        """A pool of whole payloads of exactly ``size`` bytes, made once per size.

        Used when the size distribution takes few values (fixed, choice): an item's payload
        is then one list lookup instead of three slices. Entries are as varied as the
        planned ones: each has its own base and text offset.
        """
        cached = self._complete.get(size)
        if cached is None:
            count = max(64, min(COMPLETE_POOL, COMPLETE_POOL_BYTES // max(size, 1)))
            rng = np.random.default_rng([size, len(self.bases)])
            base, offset = self.plan(np.full(count, size, dtype=np.int64), rng)
            cached = [self.payload(size, b, o) for b, o in zip(base.tolist(), offset.tolist(),
                                                                 strict=True)]
            self._complete[size] = cached
        return cached

    def complete_rows(self, size: int) -> np.ndarray:
        """:meth:`complete`'s payloads of ``size`` (> 0) bytes as the rows of one byte array
        (entry ``k`` is row ``k``), made once per size: the chunk encoder copies rows by
        index instead of joining one bytes object per item."""
        rows = self._rows.get(size)
        if rows is None:
            joined = b"".join(self.complete(size))
            rows = np.frombuffer(joined, dtype=np.uint8).reshape(-1, size)
            self._rows[size] = rows
        return rows

    def plan(self, sizes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Choose a base (``-1`` = fallback) and a text offset for each payload size."""
        n = len(sizes)
        fit = np.searchsorted(self.base_len, sizes - len(_CLOSE), side="right")
        choice = (rng.random(n) * fit).astype(np.int64)
        base = np.where(fit > 0, choice, -1)
        offset = rng.integers(0, self._text_len, size=n, dtype=np.int64)
        return base, offset

    def payload(self, size: int, base: int, offset: int) -> bytes:
        """The payload of exactly ``size`` bytes for one planned (base, offset)."""
        if base >= 0:
            head = self.bases[base]
        elif size >= _MIN_FALLBACK:
            head = _FALLBACK_OPEN
        elif size > 0:
            return b"1" + b"0" * (size - 1)
        else:
            return b""
        return head + self.pad(size - len(head) - len(_CLOSE), offset) + _CLOSE

    def pad(self, n: int, offset: int) -> bytes:
        """``n`` bytes of JSON-safe free text starting at ``offset`` of the text buffer."""
        if n <= self._text_len:
            return self.text[offset : offset + n].tobytes()
        whole, rest = divmod(n, self._text_len)
        block = self.text[: self._text_len].tobytes()
        return block * whole + self.text[:rest].tobytes()
