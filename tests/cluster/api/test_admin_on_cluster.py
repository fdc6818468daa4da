"""``tests/dsp/api/test_admin.py``, every test, on the cluster (see this directory's conftest)."""

import pytest

from tests.dsp.api.test_admin import *  # noqa: F403

pytestmark = pytest.mark.cluster
