"""Undecodable requests answered with INVALID_ARGUMENT naming the message type, for every method.

grpc.aio decodes a request with the handler's `request_deserializer` before any servicer code
runs, and a `DecodeError` there reaches the client as UNKNOWN ("Unexpected <class ...>").
`MalformedRequestInterceptor` swaps every handler's deserializer (ours, health, reflection) for
the identity and decodes the bytes itself:

- unary request: a `DecodeError` aborts the call with INVALID_ARGUMENT
  "malformed <full.message.Type>: <reason>" before the servicer is called;
- streaming request: each message is decoded as the servicer reads it; a bad one raises
  `MalformedMessage` (an `InvalidArgument`, so the servicers' usual mapping sends
  INVALID_ARGUMENT); if it escapes the servicer the wrapper here aborts with it.

It does not judge decodable messages: field values are the domain's business.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError

from lpm_npc.serve.errors import InvalidArgument


class MalformedMessage(InvalidArgument):
    """A request message that does not decode as its declared protobuf type."""


def _type_name(deserializer: Callable[[bytes], Any]) -> str:
    owner = getattr(deserializer, "__self__", None)
    descriptor = getattr(owner, "DESCRIPTOR", None)
    return descriptor.full_name if descriptor is not None else "request"


def _decoder(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    """bytes -> message, raising `MalformedMessage` that names the type."""
    if deserializer is None:
        return lambda raw: raw
    name = _type_name(deserializer)

    def decode(raw: bytes) -> Any:
        try:
            return deserializer(raw)
        except (DecodeError, UnicodeDecodeError, ValueError) as error:
            raise MalformedMessage(f"malformed {name}: {error}") from None

    return decode


async def _decoded(raw_iterator: AsyncIterator[bytes], decode: Callable) -> AsyncIterator[Any]:
    async for raw in raw_iterator:
        yield decode(raw)


async def _abort(context: grpc.aio.ServicerContext, error: MalformedMessage) -> None:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))


def _wrap(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    decode = _decoder(handler.request_deserializer)
    serializer = handler.response_serializer

    if handler.unary_unary is not None:
        behavior = handler.unary_unary

        async def unary_unary(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            try:
                request = decode(raw)
            except MalformedMessage as error:
                await _abort(context, error)
            return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, response_serializer=serializer)

    if handler.unary_stream is not None:
        behavior = handler.unary_stream

        async def unary_stream(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator:
            try:
                request = decode(raw)
            except MalformedMessage as error:
                await _abort(context, error)
            await_or_iterate = behavior(request, context)
            if inspect.isasyncgen(await_or_iterate):
                async for response in await_or_iterate:
                    yield response
            else:
                await await_or_iterate

        return grpc.unary_stream_rpc_method_handler(unary_stream, response_serializer=serializer)

    if handler.stream_unary is not None:
        behavior = handler.stream_unary

        async def stream_unary(raw_iterator: AsyncIterator[bytes], context: Any) -> Any:
            try:
                return await behavior(_decoded(raw_iterator, decode), context)
            except MalformedMessage as error:
                await _abort(context, error)

        return grpc.stream_unary_rpc_method_handler(stream_unary, response_serializer=serializer)

    behavior = handler.stream_stream

    async def stream_stream(raw_iterator: AsyncIterator[bytes], context: Any) -> AsyncIterator:
        try:
            await_or_iterate = behavior(_decoded(raw_iterator, decode), context)
            if inspect.isasyncgen(await_or_iterate):
                async for response in await_or_iterate:
                    yield response
            else:
                await await_or_iterate
        except MalformedMessage as error:
            await _abort(context, error)

    return grpc.stream_stream_rpc_method_handler(stream_stream, response_serializer=serializer)


class MalformedRequestInterceptor(grpc.aio.ServerInterceptor):
    """Decodes requests itself so that bad bytes get INVALID_ARGUMENT (module docstring)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        return None if handler is None else _wrap(handler)
