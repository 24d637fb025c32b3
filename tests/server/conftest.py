"""Fixtures and a small HTTP helper for the reference server's tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import httpx
import pytest

from loadkit import wire
from loadkit.server import ReferenceServer

KEY = wire.DEFAULT_LOCAL_SECRET_KEY
OTHER_KEY = "tr_dev_other_environment"

T = TypeVar("T")


def wait_for(condition: Callable[[], T], what: str, timeout: float = 10.0) -> T:
    """Poll ``condition`` until it returns something truthy (returned), or fail after
    ``timeout`` seconds naming ``what`` was awaited: a wait on the fact, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:g} s")
        time.sleep(0.02)


class Api:
    """An httpx client speaking the batch API to one server with one key."""

    def __init__(self, url: str, key: str = KEY, timeout: float = 30) -> None:
        self.url = url
        self.client = httpx.Client(
            base_url=url, headers={"authorization": f"Bearer {key}"}, timeout=timeout
        )

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def create(self, run_count: int = 3, **fields: Any) -> httpx.Response:
        return self.client.post(wire.CREATE_PATH, json={"runCount": run_count, **fields})

    def new_batch(self, run_count: int = 3, **fields: Any) -> str:
        r = self.create(run_count, **fields)
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def stream(
        self,
        batch_id: str,
        body: bytes | Iterable[bytes],
        content_type: str = wire.NDJSON_CONTENT_TYPE,
        **kw: Any,
    ) -> httpx.Response:
        content = body if isinstance(body, bytes) else iter(body)
        return self.client.post(
            wire.stream_path(batch_id),
            content=content,
            headers={"content-type": content_type},
            **kw,
        )

    def retrieve(self, batch_id: str) -> httpx.Response:
        return self.client.get(wire.retrieve_path(batch_id))

    def stats(self) -> dict[str, Any]:
        return self.client.get(wire.STATS_PATH).json()


def lines(indices: Iterable[int], task: str = "t", **extra: Any) -> bytes:
    """NDJSON for items with the given indices."""
    import orjson  # noqa: PLC0415

    return b"".join(orjson.dumps({"index": i, "task": task, **extra}) + b"\n" for i in indices)


@pytest.fixture(scope="module")
def server() -> Iterator[ReferenceServer]:
    """A default-knob server in a thread of the test process (two environments)."""
    with ReferenceServer(
        mode="thread", secret_keys=(KEY, OTHER_KEY), item_max_bytes=4096, max_items=5000
    ) as s:
        yield s


@pytest.fixture
def api(server: ReferenceServer) -> Iterator[Api]:
    a = Api(server.url)
    yield a
    a.close()
