"""Why a conversion postback is refused (HTTP 403), with a machine-readable ``reason``.

ConversionRefused(DspError)   forged_click, expired_click, no_token, unknown_campaign
"""

from __future__ import annotations

from dsp.errors import DspError


class ConversionRefused(DspError):
    """A postback that names a click or device it has no right to convert on."""

    status = 403

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
