"""Errors of the DSP, each carrying the fields a caller needs to answer with.

DspError
 +-- InvalidBidRequest   an OpenRTB request no bid can be defined for (HTTP 400)
 +-- InvalidCampaign     a campaign payload that fails validation (HTTP 422), with its field path
 +-- BadSignature        a tracking link whose signature does not match (HTTP 403)
 +-- BadNotice           a tracking link with missing or malformed fields (HTTP 400)
"""


class DspError(Exception):
    """Base of DSP errors."""


class InvalidBidRequest(DspError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidCampaign(DspError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class BadSignature(DspError):
    def __init__(self, path: str) -> None:
        super().__init__(f"signature of {path} link does not match")
        self.path = path


class BadNotice(DspError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
