"""Optional token authentication: metadata `authorization: Bearer <token>` on every call.

When the daemon is started with a token, `TokenAuthInterceptor` rejects calls without the
matching header with UNAUTHENTICATED before they reach a servicer. The standard health service
is exempt (load balancers and orchestrators probe it without credentials); reflection is not, and
neither is `Sessions.GetServerStatus` (capacity, counts and the checkpoint are for callers that
hold the token).
The comparison is constant-time. Without a token the daemon binds 127.0.0.1 by default, which is
its access control. A token is sent in clear text without TLS: a daemon that leaves the host
should also serve TLS (`serve/tls.py`).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

import grpc

_EXEMPT_PREFIXES = ("/grpc.health.v1.Health/",)


def _deny(request_streaming: bool, response_streaming: bool) -> grpc.RpcMethodHandler:
    async def abort(request_or_iterator, context: grpc.aio.ServicerContext):  # noqa: ANN001
        await context.abort(
            grpc.StatusCode.UNAUTHENTICATED,
            "missing or wrong token: send metadata 'authorization: Bearer <token>'",
        )

    async def abort_stream(request_or_iterator, context: grpc.aio.ServicerContext):  # noqa: ANN001
        await abort(request_or_iterator, context)
        yield  # pragma: no cover - abort raises; this makes the function a generator

    if request_streaming and response_streaming:
        return grpc.stream_stream_rpc_method_handler(abort_stream)
    if request_streaming:
        return grpc.stream_unary_rpc_method_handler(abort)
    if response_streaming:
        return grpc.unary_stream_rpc_method_handler(abort_stream)
    return grpc.unary_unary_rpc_method_handler(abort)


class TokenAuthInterceptor(grpc.aio.ServerInterceptor):
    """Requires `authorization: Bearer <token>` (see the module docstring)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ValueError("token must be non-empty")
        self._expected = f"Bearer {token}".encode()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        if handler_call_details.method.startswith(_EXEMPT_PREFIXES):
            return await continuation(handler_call_details)
        given = b""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
        if hmac.compare_digest(given, self._expected):
            return await continuation(handler_call_details)
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return _deny(handler.request_streaming, handler.response_streaming)
