"""Old import path of :mod:`loadkit.client.retry` (the same module object, so attributes set
on either are seen by both). New code imports from :mod:`loadkit.client`."""

import sys

from loadkit.client import retry as _module

sys.modules[__name__] = _module
