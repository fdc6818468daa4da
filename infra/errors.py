"""Errors of the infrastructure layer.

InfraError
 +-- RedisStartError    the embedded redis-server could not be started
 +-- ConfigError        a setting has a value the platform cannot use
"""


class InfraError(Exception):
    """Base of infrastructure errors."""


class RedisStartError(InfraError):
    """The embedded redis-server could not be started."""


class ConfigError(InfraError):
    """A setting has a value the platform cannot use."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason
