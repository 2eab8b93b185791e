"""cxlkv.Error and one subclass per cxlkv_code (include/cxlkv/cxlkv.h). Each carries the code
and the library's message, which names the problem and the value."""

from __future__ import annotations


class Error(Exception):
    """A failed cxlkv call: `code` is the cxlkv_code, `str(e)` the library's message."""

    code: int = -1

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class InvalidArgument(Error, ValueError):
    """A bad argument: wrong dtype, shape, device, an index past the prefix, a NULL handle."""
    code = 1


class NotFound(Error):
    code = 2


class AlreadyExists(Error):
    code = 3


class Corrupt(Error):
    code = 4


class Mismatch(Error):
    code = 5


class Exhausted(Error):
    code = 6


class PermissionDenied(Error):
    code = 7


class Busy(Error):
    code = 8


class IoError(Error, OSError):
    code = 9


class Protocol(Error):
    code = 10


class Unavailable(Error):
    code = 11


class Expired(Error):
    code = 12


class Closed(Error):
    """The client was closed, or the lease released or committed, before this call."""
    code = 1


_BY_CODE = {cls.code: cls for cls in (InvalidArgument, NotFound, AlreadyExists, Corrupt, Mismatch,
                                     Exhausted, PermissionDenied, Busy, IoError, Protocol,
                                     Unavailable, Expired)}


def from_code(code: int, message: str) -> Error:
    """The Error subclass for a cxlkv_code, with the library's message."""
    cls = _BY_CODE.get(code, Error)
    return cls(message or f"cxlkv error code {code}", code)
