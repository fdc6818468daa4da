"""Errors of the DMP, each carrying the fields a caller needs to report it.

DmpError
 +-- InvalidDeviceId    an ID that is not a well-formed IMEI/IDFA/GAID/OAID/MAC or hash of one
 +-- UnknownTag         a tag, category or dimension code not in the taxonomy
 +-- TaxonomyError      a taxonomy file that cannot be loaded
 +-- ExpressionError    a tag expression that does not parse
 +-- IngestError        a line of an ingest file that cannot be loaded
"""


class DmpError(Exception):
    """Base of DMP errors."""


class InvalidDeviceId(DmpError):
    def __init__(self, id_type: str, value: str, reason: str) -> None:
        super().__init__(f"invalid {id_type} {value!r}: {reason}")
        self.id_type = id_type
        self.value = value
        self.reason = reason


class UnknownTag(DmpError):
    def __init__(self, code: str) -> None:
        super().__init__(f"unknown tag, category or dimension: {code!r}")
        self.code = code


class TaxonomyError(DmpError):
    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class ExpressionError(DmpError):
    def __init__(self, text: str, position: int, reason: str) -> None:
        super().__init__(f"{reason} at position {position} in {text!r}")
        self.text = text
        self.position = position
        self.reason = reason


class IngestError(DmpError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class SceneEventError(DmpError):
    """A behaviour event that cannot become scene tags: ``field`` names the culprit."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class SceneRuleError(DmpError):
    """A scene library (``scenes.json``) that cannot be loaded."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class AudienceError(DmpError):
    """Bad input to an audience operation, naming the field at fault."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class AudienceNotFound(DmpError):
    """No audience of this id for this owner (another owner's audience reads the same)."""

    def __init__(self, audience_id: str) -> None:
        super().__init__(f"no audience {audience_id!r}")
        self.audience_id = audience_id
        self.field = "id"
        self.reason = "not found"
