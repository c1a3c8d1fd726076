"""The conformance kit for cell plugins (``from harness.testing import check_cell``); it lives in
:mod:`harness.plugins.testing`, and this public path stays."""

from harness.plugins.testing import *  # noqa: F401,F403
from harness.plugins.testing import __all__  # noqa: F401
