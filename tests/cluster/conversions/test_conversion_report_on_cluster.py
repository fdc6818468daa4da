"""``tests/dsp/conversions/test_conversion_report.py``, every test, on the cluster (see this
directory's conftest)."""

import pytest

from tests.dsp.conversions.test_conversion_report import *  # noqa: F403

pytestmark = pytest.mark.cluster
