"""``tests/dsp/test_report_api.py``, every test, on the cluster (see this directory's conftest)."""

import pytest

from tests.dsp.test_report_api import *  # noqa: F403

pytestmark = pytest.mark.cluster
