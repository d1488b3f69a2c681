"""gRPC servicers of `lpm_npc.v1.Characters` and `lpm_npc.v1.Sessions` (grpc.aio).

They only translate proto <-> domain (`Daemon`, `SessionManager`, `ConverseStream`) and map the
typed domain errors of `serve/errors.py` to status codes with `context.abort`. All behaviour
lives in the domain: `Converse` feeds `ClientEvent`s to a `ConverseStream` as `ConverseInput`s and
turns the already-delivered events it yields into `ServerEvent`s.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable

import grpc

from lpm_npc._proto import characters_pb2 as cpb
from lpm_npc._proto import characters_pb2_grpc, sessions_pb2_grpc
from lpm_npc._proto import sessions_pb2 as spb
from lpm_npc.config import FPS, SAMPLE_RATE
from lpm_npc.engine.events import PlaybackFinishedOut, PlaybackStartedOut, StatusOut
from lpm_npc.serve.converse import (
    AudioIn,
    ConverseInput,
    ConverseStream,
    DeliveredFrame,
    InterruptIn,
    PromptIn,
    SegmentEndIn,
    ServerEvent,
    StreamStarted,
)
from lpm_npc.serve.daemon import Daemon, DaemonStatus
from lpm_npc.serve.errors import (
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    ServeError,
    Unavailable,
)
from lpm_npc.serve.registry import ImageIn
from lpm_npc.serve.sessions import OpenRequest
from lpm_npc.serve.store import StoredCharacter
from lpm_npc.serve.traces import TraceStore

log = logging.getLogger(__name__)

_CODES: dict[type[ServeError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    Internal: grpc.StatusCode.INTERNAL,
    ServeError: grpc.StatusCode.INTERNAL,
}
_MS_PER_SAMPLE = 1000.0 / SAMPLE_RATE
_TRACKS = {spb.TRACK_SPEAK: "speak", spb.TRACK_LISTEN: "listen"}
_ENCODINGS = {
    spb.AUDIO_ENCODING_UNSPECIFIED: "pcm16",
    spb.AUDIO_ENCODING_PCM16: "pcm16",
    spb.AUDIO_ENCODING_FLOAT32: "float32",
}
_DELIVERY = {
    spb.DELIVERY_UNSPECIFIED: "inline",
    spb.DELIVERY_INLINE: "inline",
    spb.DELIVERY_SHM: "shm",
}
_IDLE = {
    spb.IDLE_POLICY_UNSPECIFIED: "animate",
    spb.IDLE_POLICY_ANIMATE: "animate",
    spb.IDLE_POLICY_ANIMATE_PRIORITY: "priority",
}
_FORMATS = {
    spb.PIXEL_FORMAT_UNSPECIFIED: "rgb8",
    spb.PIXEL_FORMAT_RGB8: "rgb8",
    spb.PIXEL_FORMAT_RGBA8: "rgba8",
}
_SERVING_STATES = {
    "serving": spb.SERVING_STATE_SERVING,
    "degraded": spb.SERVING_STATE_DEGRADED,
    "draining": spb.SERVING_STATE_DRAINING,
}
_STAGES = {
    "loading": cpb.PREPARE_STAGE_LOADING,
    "encoding": cpb.PREPARE_STAGE_ENCODING,
    "done": cpb.PREPARE_STAGE_DONE,
}


async def _abort(context: grpc.aio.ServicerContext, error: ServeError) -> None:
    # The nearest mapped base class decides (MalformedMessage is an InvalidArgument).
    code = next(_CODES[k] for k in type(error).__mro__ if k in _CODES or k is ServeError)
    await context.abort(code, str(error))


def _unary(method: Callable) -> Callable:
    """Map domain errors of a unary handler to status codes."""

    @functools.wraps(method)
    async def wrapper(self, request, context):  # noqa: ANN001
        try:
            return await method(self, request, context)
        except ServeError as error:
            await _abort(context, error)

    return wrapper


def _character(record: StoredCharacter, prepared: bool) -> cpb.Character:
    return cpb.Character(
        character_id=record.character_id,
        version=record.version,
        display_name=record.display_name,
        registered_at_unix_ns=record.registered_at_unix_ns,
        references=[
            cpb.ReferenceInfo(
                role=r.role, label=r.label, width=r.width, height=r.height, sha256=r.sha256
            )
            for r in record.references
        ],
        size_bytes=record.size_bytes,
        prepared=prepared,
    )


class CharactersServicer(characters_pb2_grpc.CharactersServicer):
    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    def _proto(self, record: StoredCharacter) -> cpb.Character:
        return _character(record, self._daemon.registry.is_prepared(record.version))

    @_unary
    async def RegisterCharacter(self, request, context):  # noqa: ANN001, N802
        kind = request.WhichOneof("sheet")
        if kind == "images":
            images = [
                ImageIn(i.role, i.label, i.filename, i.content) for i in request.images.images
            ]
            record, created = await self._daemon.register(
                request.character_id, request.display_name, images=images
            )
        elif kind == "manifest":
            files: dict[str, bytes] = {}
            for f in request.manifest.files:
                if f.filename in files:
                    raise InvalidArgument(f"manifest.files: {f.filename!r} appears twice")
                files[f.filename] = f.content
            record, created = await self._daemon.register(
                request.character_id,
                request.display_name,
                manifest=request.manifest.manifest,
                files=files,
            )
        else:
            raise InvalidArgument("sheet is missing: set `images` or `manifest`")
        return cpb.RegisterCharacterResponse(
            character_id=record.character_id,
            version=record.version,
            created=created,
            character=self._proto(record),
        )

    @_unary
    async def GetCharacter(self, request, context):  # noqa: ANN001, N802
        return self._proto(await asyncio.to_thread(self._daemon.registry.get, request.ref))

    @_unary
    async def ListCharacters(self, request, context):  # noqa: ANN001, N802
        records = await asyncio.to_thread(self._daemon.registry.list, request.character_id)
        return cpb.ListCharactersResponse(characters=[self._proto(r) for r in records])

    @_unary
    async def DeleteCharacter(self, request, context):  # noqa: ANN001, N802
        versions = await asyncio.to_thread(self._daemon.registry.delete, request.ref)
        return cpb.DeleteCharacterResponse(versions=versions)

    async def PrepareCharacter(self, request, context):  # noqa: ANN001, N802
        try:
            async for step in self._daemon.prepare(request.ref):
                yield cpb.PrepareProgress(
                    stage=_STAGES[step.stage],
                    fraction=step.fraction,
                    message=step.message,
                    character=self._proto(step.character) if step.character else None,
                )
        except ServeError as error:
            await _abort(context, error)


def _client_event(event: spb.ClientEvent) -> ConverseInput:
    kind = event.WhichOneof("event")
    if kind == "audio":
        audio = event.audio
        return AudioIn(
            track=_TRACKS.get(audio.track),
            position=audio.sample_position if audio.HasField("sample_position") else None,
            pcm=audio.pcm,
            encoding=_ENCODINGS.get(audio.encoding),
        )
    if kind == "segment_end":
        return SegmentEndIn(_TRACKS.get(event.segment_end.track))
    if kind == "interrupt":
        return InterruptIn()
    if kind == "set_prompt":
        return PromptIn(event.set_prompt.text)
    if kind == "header":
        raise InvalidArgument("header is only allowed as the first event of the stream")
    raise InvalidArgument("ClientEvent has no event set")


def _status(out: StatusOut) -> spb.Status:
    return spb.Status(
        rtf=out.load.rtf,
        queue_depth=out.queue_depth,
        sessions=out.sessions,
        degraded=out.load.degraded,
        degraded_reason=out.load.reason,
        dropped_chunks=out.dropped_chunks,
        late_samples=out.late_samples,
        speak_buffered_samples=out.speak_buffered,
        listen_buffered_samples=out.listen_buffered,
        draining=out.draining,
    )


def _server_status(status: DaemonStatus) -> spb.ServerStatus:
    return spb.ServerStatus(
        state=_SERVING_STATES[status.state],
        degraded_reason=status.degraded_reason,
        capacity_sessions=status.capacity_sessions,
        capacity_source=status.capacity_source,
        session_limit=status.session_limit,
        max_sessions=status.max_sessions,
        open_sessions=status.open_sessions,
        active_sessions=status.active_sessions,
        attached_sessions=status.attached_sessions,
        detached_sessions=status.detached_sessions,
        model=status.model,
        checkpoint_sha256=status.checkpoint_sha256,
        step_times=[
            spb.BatchStepTime(sessions=n, step_ms=ms) for n, ms in enumerate(status.step_ms, 1)
        ],
        chunk_ms=status.chunk_ms,
        headroom=status.headroom,
        version=status.version,
        uptime_s=status.uptime_s,
        rtf=status.rtf,
    )


class SessionsServicer(sessions_pb2_grpc.SessionsServicer):
    def __init__(self, daemon: Daemon, traces: TraceStore | None = None) -> None:
        self._daemon = daemon
        self._sessions = daemon.sessions
        self._traces = traces  # records sessions that ask (record_trace) or all (record_all)

    @_unary
    async def OpenSession(self, request, context):  # noqa: ANN001, N802
        for name, table, value in (
            ("delivery", _DELIVERY, request.delivery),
            ("idle_policy", _IDLE, request.idle_policy),
            ("inline_format", _FORMATS, request.inline_format),
        ):
            if value not in table:
                raise InvalidArgument(f"{name} {value} is not a known enum value")
        session = await self._sessions.open(
            OpenRequest(
                character=request.character,
                width=request.width,
                height=request.height,
                fps=request.fps,
                delivery=_DELIVERY[request.delivery],
                seed=request.seed,
                prompt=request.prompt,
                idle_policy=_IDLE[request.idle_policy],
                shm_slots=request.shm_slots,
                inline_format=_FORMATS[request.inline_format],
            )
        )
        ring = session.ring
        trace_id = ""
        if self._traces is not None and (request.record_trace or self._traces.record_all):
            trace_id = await self._traces.start(
                session,
                self._daemon.registry,
                self._daemon.scheduler,
                seed=request.seed,
                prompt=request.prompt,
            )
        return spb.OpenSessionResponse(
            session_id=session.session_id,
            character_version=session.character.version,
            width=session.width,
            height=session.height,
            fps=FPS,
            frames_per_chunk=session.engine.frames_per_chunk,
            samples_per_chunk=session.engine.samples_per_chunk,
            delivery=spb.DELIVERY_SHM if ring else spb.DELIVERY_INLINE,
            shm_name=ring.name if ring else "",
            shm_path=str(ring.path) if ring else "",
            shm_slots=ring.geometry.slot_count if ring else 0,
            trace_id=trace_id,
        )

    @_unary
    async def CloseSession(self, request, context):  # noqa: ANN001, N802
        session = await self._sessions.close(request.session_id)
        if self._traces is not None:
            self._traces.finish(request.session_id)
        counters = session.engine.counters
        return spb.CloseSessionResponse(
            frames=counters.frames, dropped_chunks=counters.dropped_chunks
        )

    @_unary
    async def GetServerStatus(self, request, context):  # noqa: ANN001, N802
        return _server_status(self._daemon.status())

    async def Converse(self, request_iterator, context):  # noqa: ANN001, N802
        try:
            first = await anext(aiter(request_iterator), None)
            if first is None or first.WhichOneof("event") != "header":
                raise InvalidArgument("the first ClientEvent of a stream must be a header")
            stream = self._daemon.converse(first.header.session_id)
        except ServeError as error:
            await _abort(context, error)
            return
        reader = asyncio.create_task(_read_input(request_iterator, stream))
        try:
            yield spb.ServerEvent(header=_started(stream.started))
            async for event in stream.events():
                yield _server_event(event)
        except ServeError as error:
            await _abort(context, error)
        finally:
            reader.cancel()
            stream.close()


async def _read_input(
    request_iterator: AsyncIterator[spb.ClientEvent], stream: ConverseStream
) -> None:
    """ClientEvents -> the stream, until the client half-closes (or sends something invalid)."""
    try:
        async for event in request_iterator:
            stream.apply(_client_event(event))
        stream.finish_input()
    except ServeError as error:
        stream.fail(error)


def _started(started: StreamStarted) -> spb.ConverseStarted:
    return spb.ConverseStarted(
        session_id=started.session_id,
        clock_origin_unix_ns=started.clock_origin_unix_ns,
        next_sample=started.next_sample,
        width=started.width,
        height=started.height,
        fps=FPS,
        frames_per_chunk=started.frames_per_chunk,
        samples_per_chunk=started.samples_per_chunk,
        delivery=spb.DELIVERY_SHM if started.shm_name else spb.DELIVERY_INLINE,
        shm_name=started.shm_name,
    )


def _server_event(out: ServerEvent) -> spb.ServerEvent:
    if isinstance(out, DeliveredFrame):
        f = out.frame
        frame = spb.Frame(
            seq=f.seq,
            chunk_index=f.chunk_index,
            pts_samples=f.pts_samples,
            pts_ms=f.pts_samples * _MS_PER_SAMPLE,
            input_ready_unix_ns=f.input_ready_unix_ns,
            step_started_unix_ns=f.step_started_unix_ns,
            step_finished_unix_ns=f.step_finished_unix_ns,
            generated_at_unix_ns=out.delivered_unix_ns,
            width=out.width,
            height=out.height,
            speaking=f.speaking,
            idle=f.idle,
            format=spb.PIXEL_FORMAT_RGBA8 if out.rgba else spb.PIXEL_FORMAT_RGB8,
        )
        if out.shm_slot is not None:
            frame.shm_slot = out.shm_slot
        else:
            frame.data = out.data
        return spb.ServerEvent(frame=frame)
    if isinstance(out, PlaybackStartedOut):
        return spb.ServerEvent(
            playback_started=spb.PlaybackStarted(
                segment=out.segment,
                pts_samples=out.pts_samples,
                pts_ms=out.pts_samples * _MS_PER_SAMPLE,
            )
        )
    if isinstance(out, PlaybackFinishedOut):
        return spb.ServerEvent(
            playback_finished=spb.PlaybackFinished(
                segment=out.segment,
                pts_samples=out.pts_samples,
                pts_ms=out.pts_samples * _MS_PER_SAMPLE,
                interrupted=out.interrupted,
            )
        )
    assert isinstance(out, StatusOut)
    return spb.ServerEvent(status=_status(out))
