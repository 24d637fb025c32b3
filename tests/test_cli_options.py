"""Tests for ``loadkit options``: the list of run options locust's --help cannot show."""

import dataclasses
import subprocess
import sys

import pytest

from loadkit._parse import parse_bool
from loadkit.cli import build_parser, main
from loadkit.errors import ConfigError
from loadkit.generators import BatchSpec
from loadkit.options import OPTIONS, SERVER_KNOBS, parse_options
from loadkit.server.config import ServerConfig


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


def _flags(parser, command):
    """{flag: default} of one ``loadkit`` subcommand's parser."""
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {s: a.default for a in sub._actions for s in a.option_strings}


def test_send_takes_the_spec_and_client_run_options_with_their_defaults():
    """`loadkit send` declares every spec and client option as locust does (and the run's id
    and tagging), same defaults."""
    flags = _flags(build_parser(), "send")
    for opt in OPTIONS:
        if opt.group in ("spec", "client") or opt.name in ("run_id", "tag_runs"):
            assert flags.pop(opt.flag) == opt.default, opt.flag
    assert set(flags) == {"-h", "--help", "--url", "--seq"}


@pytest.mark.parametrize(("argv", "field"), [
    (["--timeout", "0"], "timeout"), (["--seq", "-1"], "seq"),
    (["--send-buffer-bytes", "x"], "send_buffer_bytes"), (["--verify", "maybe"], "verify"),
    (["--retry-attempts", "0"], "retry_attempts"),
])
def test_send_range_checks_its_values_like_every_run(argv, field, capsys):
    """Bad send values are one ConfigError line naming the option, exit 2, nothing sent."""
    assert main(["send", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"loadkit send: error: {field}")


def test_server_knobs_are_every_server_config_field_with_its_default():
    """One table: each ServerConfig field is a knob whose default the dataclass gives."""
    assert [k.name for k in SERVER_KNOBS] == [f.name for f in dataclasses.fields(ServerConfig)]
    for knob in SERVER_KNOBS:  # the default text parses back to the dataclass default
        assert ServerConfig.parse(**{knob.name: knob.default}) == ServerConfig(), knob.name


def test_serve_flags_and_embedded_options_come_from_the_knobs():
    """`loadkit serve` has a flag per knob; each --server-* run option is a knob, same default."""
    flags = _flags(build_parser(), "serve")
    for knob in SERVER_KNOBS:
        flag = "--secret-key" if knob.name == "secret_keys" else knob.flag
        assert flag in flags, flag
        assert flags[flag] is None  # unset: ServerConfig's own default applies
    assert "--no-access-log" in flags
    by_name = {k.name: k for k in SERVER_KNOBS}
    embedded = [o for o in OPTIONS if o.group == "server"]
    assert embedded
    for opt in embedded:
        if opt.name == "server_bind":  # the embedded server's host: its own name and help
            assert by_name["host"].default == opt.default == "127.0.0.1"
            continue
        knob = by_name[opt.name.removeprefix("server_")]
        assert opt.default == knob.default
        assert opt.help.endswith(knob.help)


def test_server_bind_refuses_an_address_workers_cannot_connect_to():
    """--server-bind 0.0.0.0 is a usage error: the workers are handed that address."""
    with pytest.raises(ConfigError, match="server_bind"):
        parse_options(server_bind="0.0.0.0")
    assert parse_options(server_bind="10.1.2.3").server["host"] == "10.1.2.3"
