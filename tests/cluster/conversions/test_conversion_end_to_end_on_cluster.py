"""``tests/dsp/conversions/test_conversion_end_to_end.py``, every test, on the cluster (see this
directory's conftest)."""

import pytest

from tests.dsp.conversions.test_conversion_end_to_end import *  # noqa: F403

pytestmark = pytest.mark.cluster
