"""Typed domain errors of the daemon; the servicers map each to one gRPC status code.

The domain (store, registry, session manager) raises these with a message that names the field
and the allowed value or limit; nothing here imports grpc (`servicers.py` owns the mapping).
"""

from __future__ import annotations


class ServeError(Exception):
    """Base of the daemon's domain errors."""


class InvalidArgument(ServeError):
    """Malformed input: bad id, image, audio, size, order (INVALID_ARGUMENT)."""


class NotFound(ServeError):
    """Unknown character, version or session (NOT_FOUND)."""


class ResourceExhausted(ServeError):
    """A limit was hit: sessions, bytes, images, buffered audio, or the daemon is degraded."""


class FailedPrecondition(ServeError):
    """The request is valid but the state does not allow it (a stream is already attached)."""


class Unavailable(ServeError):
    """The daemon is draining (UNAVAILABLE)."""


class Internal(ServeError):
    """Generation failed inside the daemon; the stream ends with this message (INTERNAL)."""
