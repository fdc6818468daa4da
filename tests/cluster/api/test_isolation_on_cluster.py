"""``tests/dsp/api/test_isolation.py``, every test, on the cluster (see this directory's conftest)."""

import pytest

from tests.dsp.api.test_isolation import *  # noqa: F403

pytestmark = pytest.mark.cluster
