"""Old import path of :mod:`loadkit.client.result` (the same module object, so attributes set
on either are seen by both). New code imports from :mod:`loadkit.client`."""

import sys

from loadkit.client import result as _module

sys.modules[__name__] = _module
