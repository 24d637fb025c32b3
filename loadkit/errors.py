"""Every exception loadkit raises, in one place.

The tree::

    LoadkitError                    base of everything below
    ├── ConfigError (ValueError)    a spec string, flag, keyword or file that does not parse
    │                               or is out of range; the message names the field, the
    │                               value given and the accepted form
    ├── TargetError                 talking to a batch API went wrong; the client never lets
    │   │                           these escape ``send``: they are recorded on the result
    │   ├── AuthError               401: no key, or a key the target does not accept
    │   ├── ConnectError            the target could not be reached or dropped the connection
    │   ├── TargetTimeout           the target did not answer in time
    │   ├── ProtocolError           the target answered something that is not the batch API
    │   │   │                       (HTML, truncated JSON, not a JSON object)
    │   │   └── MalformedAnswer     a JSON object, but not the answer the API defines
    │   │                           (missing fields, wrong types)
    │   └── StatusError             any other unexpected HTTP status
    ├── ServerError                 the reference server could not start or stop
    ├── RecordsError                a results directory that cannot be written or read
    └── ThresholdError (ValueError) a threshold expression that does not parse or names an
                                    unknown metric

Every message says what was wrong and what to do about it.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "ConnectError",
    "LoadkitError",
    "MalformedAnswer",
    "ProtocolError",
    "RecordsError",
    "ServerError",
    "StatusError",
    "TargetError",
    "TargetTimeout",
    "ThresholdError",
]


class LoadkitError(Exception):
    """Base class of every error loadkit raises on purpose."""


class ConfigError(LoadkitError, ValueError):
    """A configuration value that does not parse or is out of range.

    ``field`` names the setting (``items``, ``payload_bytes``, ``faults.duplicate`` …),
    ``value`` is what was given and ``expected`` says what is accepted.
    """

    def __init__(self, field: str, value: object, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"{field}: {value!r} is not valid; expected {expected}")


class TargetError(LoadkitError):
    """Talking to the batch API failed; ``kind`` is a short stable name for records."""

    kind = "target"


class AuthError(TargetError):
    """The target answered 401: the secret key is missing or not accepted."""

    kind = "auth"


class ConnectError(TargetError):
    """The target could not be reached, or closed the connection part-way."""

    kind = "connect"


class TargetTimeout(TargetError):
    """The target did not answer within the client's timeout."""

    kind = "timeout"


class ProtocolError(TargetError):
    """The target answered something that is not the batch API's JSON."""

    kind = "protocol"


class MalformedAnswer(ProtocolError):
    """The target answered a JSON object that is not the batch API's answer."""


class StatusError(TargetError):
    """The target answered an HTTP status the protocol does not expect here."""

    kind = "status"


class ServerError(LoadkitError):
    """The reference server could not be started or stopped."""


class RecordsError(LoadkitError):
    """A results directory or record file that cannot be written or read."""


class ThresholdError(LoadkitError, ValueError):
    """A threshold expression that does not parse or names an unknown metric."""
