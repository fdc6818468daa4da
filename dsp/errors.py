"""Errors of the DSP, each carrying the fields a caller needs to answer with.

DspError
 +-- InvalidBidRequest   an OpenRTB request no bid can be defined for (HTTP 400)
 +-- InvalidCampaign     a campaign payload that fails validation (HTTP 422), with its field path
 +-- BadSignature        a tracking link whose signature does not match (HTTP 403)
 +-- BadNotice           a tracking link with missing or malformed fields (HTTP 400)
      +-- UnknownAuction  a signed money notice naming a bid we never made (HTTP 400)
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


class UnknownAuction(BadNotice):
    """A win or billing notice whose budget lease was never granted: no bid of ours."""

    def __init__(self, auction_id: str, imp_id: str) -> None:
        super().__init__("k", "no bid of this DSP was reserved for this auction")
        self.auction_id = auction_id
        self.imp_id = imp_id


# Errors of the advertiser API (dsp/api), each answered with its own status:
#
# ApiError(DspError)
#  +-- InvalidPayload        a body or parameter that fails validation (422), with its field path
#  +-- ObjectNotFound        no such object for this advertiser, whoever else owns one (404)
#  +-- PreconditionFailed    If-Match does not carry the current ETag (412)
#  +-- PreconditionRequired  a change without If-Match (428)
#  +-- ObjectConflict        a change the object's state forbids: archived, still in use (409)
#  +-- Forbidden             the token lacks the scope the endpoint needs (403)


class ApiError(DspError):
    """Base of the advertiser API's errors; ``status`` is the HTTP answer."""

    status = 400


class InvalidPayload(ApiError):
    status = 422

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class ObjectNotFound(ApiError):
    status = 404

    def __init__(self, kind: str, object_id: str) -> None:
        super().__init__(f"no such {kind}: {object_id}")
        self.kind = kind
        self.object_id = object_id


class PreconditionFailed(ApiError):
    status = 412

    def __init__(self, current_etag: str) -> None:
        super().__init__("If-Match does not match the current ETag: re-read and retry")
        self.current_etag = current_etag


class PreconditionRequired(ApiError):
    status = 428

    def __init__(self) -> None:
        super().__init__("a change needs If-Match with the ETag of the version it edits")


class ObjectConflict(ApiError):
    status = 409

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Forbidden(ApiError):
    status = 403

    def __init__(self, scope: str) -> None:
        super().__init__(f"the token lacks the {scope!r} scope")
        self.scope = scope
