"""Errors of the ADX simulator, each carrying the fields a caller needs to report it.

AdxMockError
 +-- ConfigError        a run or population setting the simulator cannot use
 +-- PopulationError    a population file line that cannot be loaded
 +-- BidResponseError   a DSP answer that is not a usable OpenRTB bid response
 +-- MarkupError        ad markup that cannot be parsed for trackers and clicks
"""


class AdxMockError(Exception):
    """Base of ADX simulator errors."""


class ConfigError(AdxMockError):
    """A setting has a value the simulator cannot use."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason


class PopulationError(AdxMockError):
    """A line of a population file is not a usable device record."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}:{line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


class BidResponseError(AdxMockError):
    """A DSP answered 200 with a body that is not a usable bid response."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"bid response from {source}: {reason}")
        self.source = source
        self.reason = reason


class MarkupError(AdxMockError):
    """Ad markup in a format the simulator cannot read."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(f"{kind} markup: {reason}")
        self.kind = kind
        self.reason = reason
