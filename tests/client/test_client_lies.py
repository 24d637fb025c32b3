"""Every contract check of the client fires on a real server that tells exactly one lie.

Each case runs the real client against a :class:`~tests.client.conftest.WrongServer` on
127.0.0.1 in one of its modes (one lie each) and asserts the batch's record holds exactly the
violation that lie must cause, word for word, and nothing else. The honest mode of the same
server gives no violation on the same batches, so each violation comes from its lie.

The batches (seeds checked once, and guarded below): ``CLEAN`` is 20 plain items; ``GAP``
leaves out indices 6 and 19 (a first stream of 18 lines, not sealed); ``MALFORMED`` has its
8th line cut short (400 ``Invalid JSON at line 8``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import loadkit.client
from loadkit.generators import BatchSpec

from .conftest import LIES

CLEAN = BatchSpec.parse(items="20", seed="0")
GAP = BatchSpec.parse(items="20", faults="gap=0.1", seed="0")
MALFORMED = BatchSpec.parse(items="20", faults="malformed=1", seed="1")
SENT_MORE = "itemsAccepted + itemsDeduplicated ≠ lines sent"
SUMMED = "itemsAccepted summed over the answers"


@dataclass(frozen=True)
class Lie:
    mode: str
    spec: BatchSpec
    outcome: str
    texts: tuple[str, ...]
    """The record's violations, each as the client words it (``; ``-joined in the record;
    ``{url}``: the server's)."""
    verify: bool = False


CASES = [
    # phase 1: the create answer
    Lie("create_run_count", CLEAN, "sealed",
        ("create_run_count_mismatch: expected 20, got 21",)),
    Lie("cached_without_key", CLEAN, "cached",
        ("cached_mismatch: expected False, got True: isCached without an idempotency key",)),
    # the first stream's 200 answer
    Lie("wrong_id", CLEAN, "sealed",
        ("id_mismatch (attempt 1): expected 'batch_wrong0', got 'batch_someoneelse'",)),
    Lie("sealed_run_count", CLEAN, "sealed",
        ("run_count_mismatch (attempt 1): expected 20, got 21",)),
    Lie("expected_count", GAP, "sealed",
        ("expected_count_mismatch (attempt 1): expected 20, got 21",)),
    Lie("enqueued_count", GAP, "sealed", ("enqueued_mismatch (attempt 1): expected 18, got 19",)),
    Lie("shifted_accepted", GAP, "sealed", ("accepted_mismatch (attempt 1): expected 18, got 17",)),
    Lie("first_dedup", CLEAN, "sealed", ("dedup_mismatch (attempt 1): expected 0, got 1",)),
    Lie("late_seal", CLEAN, "sealed", ("sealed_mismatch (attempt 1): expected True, got False",)),
    # the first stream's bad line
    Lie("lenient", MALFORMED, "sealed",
        ("status_mismatch (attempt 1): expected 400, got 200: expected "
         "'Invalid JSON at line 8: Unexpected end of JSON input'",)),
    Lie("wrong_message", MALFORMED, "failed",
        ("error_message_mismatch (attempt 1): expected 'Invalid JSON at line 8', "
         "got 'Invalid JSON at line 9: Unexpected end of JSON input'",)),
    Lie("wrong_status", MALFORMED, "failed",
        ("status_mismatch (attempt 1): expected 400, got 422: "
         "Invalid JSON at line 8: Unexpected end of JSON input",)),
    Lie("reject_clean", CLEAN, "failed",
        ("status_mismatch (attempt 1): expected 200, got 422: "
         "Invalid item at index 0: refused for no reason",)),
    # retries (the default resend is full: 20 clean lines, 2 of them new)
    Lie("reject_retry", GAP, "failed",
        ("status_mismatch (attempt 2): expected 200, got 422: "
         "clean lines rejected: Invalid item at index 0: refused for no reason",)),
    Lie("retry_dedup", GAP, "sealed",
        ("dedup_mismatch (attempt 2): expected 18, got 19: retry sent full",)),
    Lie("retry_unsealed", GAP, "sealed",
        ("sealed_mismatch (attempt 2): expected True, got False: retry sent full",)),
    # a retry's wrong itemsAccepted also breaks the batch's sum: it cannot come alone (the sum
    # is checked against runCount whenever every attempt was answered, as here)
    Lie("retry_accepted", GAP, "sealed",
        ("accepted_mismatch (attempt 2): expected 2, got 1: retry sent full",
         f"total_accepted_mismatch: expected 20, got 19: {SUMMED}")),
    # after a 503 what the server holds is unknown: only lines sent and the sum are checked
    Lie("count_after_503", CLEAN, "sealed",
        (f"count_mismatch (attempt 2): expected 20, got 21: {SENT_MORE}",)),
    Lie("total_after_503", GAP, "sealed",
        (f"total_accepted_mismatch: expected 20, got 21: {SUMMED} "
         "(some attempts unanswered: at most runCount)",)),
    # verify=True: the retrieved batch
    Lie("lie_sealed", CLEAN, "sealed", ("runs_count_mismatch: expected 20, got 19",), True),
    Lie("duplicate_run", CLEAN, "sealed", ("runs_duplicate: expected 20, got 19",), True),
    Lie("too_large_error", CLEAN, "sealed",
        ("too_large_mismatch: expected 'a subset of []', got [0]",), True),
    Lie("retrieve_malformed", CLEAN, "sealed",
        ("retrieve_malformed: expected 'a Batch', got '{url}/api/v2/batches/batch_wrong0 "
         "answered 200 with JSON that is not the batch API\\'s answer (runs: expected an "
         "array of strings, received string): \\'{{\"id\":\"batch_wrong0\",\"status\":"
         "\"COMPLETED\",\"runCount\":20,\"runs\":\"all of them\",\"processing\":"
         "{{\"errors\":[]}}}}\\'; check the URL points at a Trigger.dev API'",), True),
    Lie("retrieve_error", CLEAN, "sealed",
        ("retrieve_failed: expected 200, got 'status': {url}/api/v2/batches/batch_wrong0 "
         "answered 500: retrieve broke",), True),
]


def test_the_batches_have_the_shapes_the_cases_rely_on():
    """CLEAN, GAP and MALFORMED generate the batches the expected texts describe."""
    assert CLEAN.batch(0).expected.missing == ()
    gap = GAP.batch(0).expected
    assert (gap.missing, gap.items_accepted, gap.sealed) == ((6, 19), 18, False)
    bad = MALFORMED.batch(0).expected
    assert (bad.status, bad.error_line) == (400, 8)


@pytest.mark.parametrize("lie", CASES, ids=[c.mode for c in CASES])
def test_each_lie_is_recorded_as_exactly_its_violation(wrong_server, make_client, lie):
    """The record of a batch sent to a one-lie server holds that lie's violation and no other."""
    url = wrong_server(lie.mode)
    client = make_client(url, verify=lie.verify)
    result = client.send(lie.spec.batch(0))
    record = result.to_record(run_id="r", worker_id="w", user_id=0)
    assert record.outcome == lie.outcome, result.error
    assert record.violations == len(lie.texts)
    assert record.violation_text == "; ".join(t.format(url=url) for t in lie.texts)
    assert [v.name for v in result.violations] == [t.split(" ")[0].rstrip(":")
                                                   for t in lie.texts]


@pytest.mark.parametrize("spec", [CLEAN, GAP, MALFORMED], ids=["clean", "gap", "malformed"])
def test_the_honest_mode_gives_no_violation(wrong_server, make_client, spec):
    """Without a lie the same server seals each batch with zero violations, verified."""
    result = make_client(wrong_server("honest"), verify=True).send(spec.batch(0))
    assert (result.outcome, result.violations, result.verified) == ("sealed", [], True)


def test_every_violation_the_client_can_name_has_a_lie():
    """Each violation name written in the client's source is caused by some case above."""
    source = Path(loadkit.client.__file__).parent
    names = set()
    for path in source.glob("*.py"):
        names |= set(re.findall(r'Violation\(\s*"(\w+)"', path.read_text()))
    assert len(names) >= 15
    caused = {t.split(" ")[0].rstrip(":") for c in CASES for t in c.texts}
    assert names <= caused, names - caused
    assert {c.mode for c in CASES} | {"lose", "double_count"} == set(LIES)
