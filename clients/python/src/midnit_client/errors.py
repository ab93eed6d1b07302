"""Typed errors: one class per error code of contract v1, grouped by the code's first part.

Every error has ``code`` (the dotted wire code, or ``None`` when the failure is the client's:
no reply, a bad attestation), ``message`` and ``retryable`` (whether sending the same request
again may succeed).
"""
from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Type

__all__ = [
    "MidnitError",
    "NoReply",
    "AttestationError",
    "BadReply",
    "JobError",
    "RequestError",
    "InputError",
    "LimitsError",
    "RecipeError",
    "JobStateError",
    "RequestMalformed",
    "RequestUnsupportedVersion",
    "RequestTooLarge",
    "RequestInvalid",
    "RequestPresetRequired",
    "RequestSealedRequired",
    "RequestReseal",
    "RequestReplayed",
    "InputEmpty",
    "InputTooLarge",
    "InputUnsupportedFormat",
    "InputUndecodable",
    "LimitsInputs",
    "LimitsPixels",
    "LimitsFrames",
    "LimitsOutput",
    "LimitsMemory",
    "LimitsComplexity",
    "RecipeInvalid",
    "JobExpired",
    "JobTimeout",
    "Internal",
    "BY_CODE",
    "from_reply",
]


class MidnitError(Exception):
    """Any failure of a render call."""

    code: Optional[str] = None
    retryable: bool = False

    def __init__(self, message: str, *, code: Optional[str] = None, retryable: Optional[bool] = None):
        super().__init__(f"{code}: {message}" if code else message)
        self.message = message
        if code is not None:
            self.code = code
        if retryable is not None:
            self.retryable = retryable


class NoReply(MidnitError):
    """No reply arrived within the timeout (after every attempt). Retryable."""

    retryable = True


class AttestationError(MidnitError):
    """The reply's attestation is missing, not signed by the pinned key, or does not match."""


class BadReply(MidnitError):
    """The reply is not a v1 reply."""


class JobError(MidnitError):
    """The worker answered the job with an error code."""


class RequestError(JobError):
    """The request itself is wrong (``request.*``)."""


class InputError(JobError):
    """An input is not a usable image (``input.*``)."""


class LimitsError(JobError):
    """The job exceeds a limit of the worker (``limits.*``)."""


class RecipeError(JobError):
    """The recipe is invalid (``recipe.*``)."""


class JobStateError(JobError):
    """The job ran out of time (``job.*``)."""


class RequestMalformed(RequestError):
    code = "request.malformed"


class RequestUnsupportedVersion(RequestError):
    code = "request.unsupported_version"


class RequestTooLarge(RequestError):
    code = "request.too_large"


class RequestInvalid(RequestError):
    code = "request.invalid"


class RequestPresetRequired(RequestError):
    code = "request.preset_required"


class RequestSealedRequired(RequestError):
    code = "request.sealed_required"


class RequestReseal(RequestError):
    """The worker no longer (or not yet) holds the key of the epoch the request was sealed
    to: fetch the key directory again and send the request again (sealed anew)."""

    code = "request.reseal"
    retryable = True


class RequestReplayed(RequestError):
    code = "request.replayed"


class InputEmpty(InputError):
    code = "input.empty"


class InputTooLarge(InputError):
    code = "input.too_large"


class InputUnsupportedFormat(InputError):
    code = "input.unsupported_format"


class InputUndecodable(InputError):
    code = "input.undecodable"


class LimitsInputs(LimitsError):
    code = "limits.inputs"


class LimitsPixels(LimitsError):
    code = "limits.pixels"


class LimitsFrames(LimitsError):
    code = "limits.frames"


class LimitsOutput(LimitsError):
    code = "limits.output"


class LimitsMemory(LimitsError):
    code = "limits.memory"


class LimitsComplexity(LimitsError):
    code = "limits.complexity"


class RecipeInvalid(RecipeError):
    code = "recipe.invalid"


class JobExpired(JobStateError):
    code = "job.expired"


class JobTimeout(JobStateError):
    code = "job.timeout"


class Internal(JobError):
    code = "internal"
    retryable = True


#: Every error code of contract v1 and its class.
BY_CODE: Dict[str, Type[JobError]] = {
    str(cls.code): cls
    for cls in (
        RequestMalformed, RequestUnsupportedVersion, RequestTooLarge, RequestInvalid,
        RequestPresetRequired, RequestSealedRequired, RequestReseal, RequestReplayed, InputEmpty, InputTooLarge, InputUnsupportedFormat,
        InputUndecodable, LimitsInputs, LimitsPixels, LimitsFrames, LimitsOutput, LimitsMemory,
        LimitsComplexity, RecipeInvalid, JobExpired, JobTimeout, Internal,
    )
}

_GROUPS: Dict[str, Type[JobError]] = {
    "request": RequestError, "input": InputError, "limits": LimitsError,
    "recipe": RecipeError, "job": JobStateError,
}


def from_reply(error: Mapping[str, Any]) -> JobError:
    """The typed error for a reply's ``error`` map. A code newer than this package gets the
    class of its group (or ``JobError``), so ``except LimitsError`` still catches it."""
    code = str(error.get("code", ""))
    message = str(error.get("message", ""))
    retryable = bool(error.get("retryable", False))
    cls = BY_CODE.get(code) or _GROUPS.get(code.split(".", 1)[0], JobError)
    return cls(message, code=code, retryable=retryable)
