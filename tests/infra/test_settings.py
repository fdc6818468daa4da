"""Settings from the environment: values read, bad ones refused naming their variable."""

from __future__ import annotations

import pytest

from infra.errors import ConfigError
from infra.settings import Settings


def test_the_listen_backlog_comes_from_the_environment() -> None:
    assert Settings.from_env({}).listen_backlog == 4096
    assert Settings.from_env({"DSP_LISTEN_BACKLOG": "512"}).listen_backlog == 512


@pytest.mark.parametrize("raw", ["0", "-5", "many"])
def test_a_bad_listen_backlog_is_refused_naming_its_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match="DSP_LISTEN_BACKLOG"):
        Settings.from_env({"DSP_LISTEN_BACKLOG": raw})
