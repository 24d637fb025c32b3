"""Tests for ``loadkit options``: the list of run options locust's --help cannot show."""

import subprocess
import sys

import pytest

from loadkit._parse import parse_bool
from loadkit.errors import ConfigError
from loadkit.generators import BatchSpec
from loadkit.options import OPTIONS, parse_options


def test_options_lists_every_run_option_with_its_default():
    """Every option of the OPTIONS table appears as a flag with its help text."""
    out = subprocess.run([sys.executable, "-m", "loadkit", "options"], capture_output=True,
                         text=True, check=True).stdout
    for opt in OPTIONS:
        assert f"  {opt.flag}" in out
        assert opt.help in out
    assert "--payload-bytes (default 256)" in out


def test_options_group_filter():
    """--group shows one group only."""
    out = subprocess.run([sys.executable, "-m", "loadkit", "options", "--group", "server"],
                         capture_output=True, text=True, check=True).stdout
    assert "--server-ingest-rate" in out
    assert "--payload-bytes" not in out


@pytest.mark.parametrize(("value", "expected"), [
    (True, True), ("1", True), (" Yes ", True), ("ON", True), ("true", True),
    (False, False), ("0", False), ("no", False), ("Off", False), ("", False),
])
def test_one_bool_parser_for_spec_and_client_options(value, expected):
    """The spec's idempotency and the client's verify read booleans the same way."""
    assert parse_bool("x", value, empty=False) is expected
    assert BatchSpec.parse(idempotency=value).idempotency is expected
    opts = parse_options(verify=value, keep_chunk_timings=value)
    assert opts.client.verify is expected
    assert opts.client.keep_chunk_timings is expected


def test_bool_parser_errors_name_the_setting():
    """A word that is not a boolean is a ConfigError naming the setting; '' only when allowed."""
    for call, field in ((lambda: BatchSpec.parse(idempotency="maybe"), "idempotency"),
                        (lambda: parse_options(verify="maybe"), "verify"),
                        (lambda: parse_bool("jitter", ""), "jitter")):
        with pytest.raises(ConfigError) as info:
            call()
        assert info.value.field == field
        assert info.value.expected == "true or false"
