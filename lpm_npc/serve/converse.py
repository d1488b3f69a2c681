"""One Converse stream in domain terms: client events in, already-delivered server events out.

The servicer translates the wire to the `ConverseInput` dataclasses below and back; everything in
between happens here:

- `apply(event)`: audio bytes are decoded and validated (encoding, length, finite, in [-1, 1])
  and placed on the engine session's track (`EngineSession.feed`: the one buffer per track);
  segment ends, barge-in and prompt changes go to the engine session; the scheduler is woken.
  Bad input raises a typed `ServeError` naming the field and the allowed value, and stores nothing.
- `finish_input()`: the client half-closed: both tracks end, what is buffered is generated.
- `fail(error)`: the input side failed; `events()` raises it.
- `events()`: the engine session's outbox as `ServerEvent`s, in order. A frame is *delivered*
  before it is yielded (written to the session's SHM ring, or encoded as INLINE bytes) and its
  latency (chunk inputs complete -> delivered) is recorded in the metrics, so the servicer only
  builds the proto. It ends when the engine ends the stream, raising `Internal` when generation
  failed.
- `close()`: detaches the stream from its session (idempotent).

Nothing here imports grpc. All methods run on the serving event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from lpm_npc.config import ServeConfig
from lpm_npc.engine.events import (
    FrameOut,
    PlaybackFinishedOut,
    PlaybackStartedOut,
    StatusOut,
    StreamEndOut,
    unix_ns,
)
from lpm_npc.engine.scheduler import Scheduler
from lpm_npc.engine.session import LISTEN, SPEAK, AudioOrderError, AudioOverflowError
from lpm_npc.serve.errors import Internal, InvalidArgument, ResourceExhausted, ServeError
from lpm_npc.serve.metrics import DaemonMetrics
from lpm_npc.serve.sessions import ServeSession, SessionManager

ENCODINGS = ("pcm16", "float32")


@dataclass(frozen=True)
class AudioIn:
    track: str | None  # "speak" | "listen"; None when the wire value was not a known track
    position: int | None  # sample position on the session clock; None: after the previous piece
    pcm: bytes
    encoding: str | None  # "pcm16" | "float32"; None when unknown


@dataclass(frozen=True)
class SegmentEndIn:
    track: str | None


@dataclass(frozen=True)
class InterruptIn:
    pass


@dataclass(frozen=True)
class PromptIn:
    text: str


ConverseInput = AudioIn | SegmentEndIn | InterruptIn | PromptIn


@dataclass(frozen=True)
class StreamStarted:
    """The first server event of a stream: where the session clock stands."""

    session_id: str
    clock_origin_unix_ns: int  # wall time of sample 0
    next_sample: int  # the first sample this stream's frames will show
    width: int
    height: int
    frames_per_chunk: int
    samples_per_chunk: int
    shm_name: str  # "" for INLINE delivery


@dataclass(frozen=True)
class DeliveredFrame:
    """A frame whose pixels are already where the client reads them."""

    frame: FrameOut
    width: int
    height: int
    rgba: bool  # pixel format of `data` / the ring slot: RGBA8, else RGB8
    shm_slot: int | None  # the ring slot holding the pixels (SHM delivery)
    data: bytes | None  # the pixels (INLINE delivery)
    delivered_unix_ns: int


ServerEvent = DeliveredFrame | PlaybackStartedOut | PlaybackFinishedOut | StatusOut


class ConverseStream:
    """One attached Converse stream of one session (see the module docstring)."""

    def __init__(
        self,
        session: ServeSession,
        sessions: SessionManager,
        scheduler: Scheduler,
        metrics: DaemonMetrics,
        config: ServeConfig,
    ) -> None:
        self.session = session
        self._sessions = sessions
        self._scheduler = scheduler
        self._metrics = metrics
        self._config = config
        self._wake = asyncio.Event()
        self._failure: ServeError | None = None
        self._closed = False
        session.engine.notify = self._wake.set
        engine = session.engine
        self.started = StreamStarted(
            session_id=session.session_id,
            clock_origin_unix_ns=unix_ns(engine.clock.origin_ns),
            next_sample=engine.next_sample,
            width=session.width,
            height=session.height,
            frames_per_chunk=engine.frames_per_chunk,
            samples_per_chunk=engine.samples_per_chunk,
            shm_name=session.ring.name if session.ring else "",
        )

    # --- input ------------------------------------------------------------------------------------
    def apply(self, event: ConverseInput) -> None:
        """One client event -> the engine session. Raises InvalidArgument / ResourceExhausted."""
        engine = self.session.engine
        if isinstance(event, AudioIn):
            track = _track(event.track)
            pcm = self._decode(event)
            try:
                engine.feed(track, pcm, event.position, time.monotonic_ns())
            except AudioOrderError as error:
                raise InvalidArgument(f"audio.sample_position: {error}") from error
            except AudioOverflowError as error:
                raise ResourceExhausted(
                    f"audio buffer full: {error} (max_buffered_seconds = "
                    f"{self._config.max_buffered_seconds:g})"
                ) from error
        elif isinstance(event, SegmentEndIn):
            engine.end_segment(_track(event.track))
        elif isinstance(event, InterruptIn):
            engine.interrupt()
        elif isinstance(event, PromptIn):
            if len(event.text) > self._config.max_prompt_chars:
                raise InvalidArgument(
                    f"set_prompt.text has {len(event.text)} characters; at most "
                    f"{self._config.max_prompt_chars} are allowed"
                )
            engine.set_prompt(event.text)
        recorder = self._scheduler.recorders.get(engine.session_id)
        if recorder is not None and not isinstance(event, AudioIn):  # trace: what was applied
            recorder.record_event(_TRACE_EVENTS[type(event)], **_trace_detail(event))
        self._scheduler.wake()

    def finish_input(self) -> None:
        self.session.engine.finish_input()  # both tracks end; drain the buffers
        self._scheduler.wake()

    def fail(self, error: ServeError) -> None:
        self._failure = error
        self._wake.set()

    def _decode(self, event: AudioIn) -> np.ndarray:
        if event.encoding not in ENCODINGS:
            raise InvalidArgument("audio.encoding is invalid; allowed: PCM16, FLOAT32")
        width = 2 if event.encoding == "pcm16" else 4
        if len(event.pcm) % width:
            raise InvalidArgument(
                f"audio.pcm has {len(event.pcm)} bytes, not a whole number of "
                f"{event.encoding.upper()} samples ({width} bytes each)"
            )
        samples = len(event.pcm) // width
        if samples > self._config.max_audio_chunk_samples:
            raise InvalidArgument(
                f"audio.pcm holds {samples} samples; at most "
                f"{self._config.max_audio_chunk_samples} per AudioChunk (max_audio_chunk_samples)"
            )
        if event.position is not None and event.position < 0:
            raise InvalidArgument(f"audio.sample_position must be >= 0, got {event.position}")
        if event.encoding == "pcm16":
            return np.frombuffer(event.pcm, "<i2").astype(np.float32) / 32768.0
        pcm = np.frombuffer(event.pcm, "<f4").astype(np.float32)
        if not np.isfinite(pcm).all():
            raise InvalidArgument("audio.pcm has NaN or infinite samples; samples must be finite")
        if pcm.size and float(np.abs(pcm).max()) > 1.0:
            raise InvalidArgument(
                f"audio.pcm has a sample of magnitude {float(np.abs(pcm).max()):.3g}; FLOAT32 "
                "samples must lie in [-1, 1]"
            )
        return pcm

    # --- output -----------------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[ServerEvent]:
        outbox = self.session.engine.outbox
        while True:
            if self._failure is not None:
                raise self._failure
            if outbox:
                out = outbox.popleft()
                if isinstance(out, StreamEndOut):
                    if out.error:
                        raise Internal(out.error)
                    return
                yield self._deliver(out) if isinstance(out, FrameOut) else out
                continue
            self._wake.clear()
            if not outbox and self._failure is None:
                await self._wake.wait()

    def _deliver(self, frame: FrameOut) -> DeliveredFrame:
        """Hand the pixels over (SHM ring slot or INLINE bytes) and record the frame latency."""
        session = self.session
        slot, data, rgba = None, None, True
        if session.ring is not None:
            slot = session.ring.write(frame.seq, frame.pts_samples, frame.image)
        elif session.inline_format == "rgba8":
            alpha = np.full(frame.image.shape[:2] + (1,), 255, np.uint8)
            data = np.concatenate([frame.image, alpha], axis=2).tobytes()
        else:
            data, rgba = np.ascontiguousarray(frame.image).tobytes(), False
        delivered = time.time_ns()
        self._metrics.observe_frame_latency((delivered - frame.input_ready_unix_ns) / 1e9)
        return DeliveredFrame(frame, session.width, session.height, rgba, slot, data, delivered)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.session.engine.notify = lambda: None
        if self._sessions.sessions.get(self.session.session_id) is self.session:
            self._sessions.detach(self.session)


_TRACE_EVENTS = {SegmentEndIn: "segment_end", InterruptIn: "interrupt", PromptIn: "set_prompt"}


def _trace_detail(event: ConverseInput) -> dict[str, str]:
    if isinstance(event, PromptIn):
        return {"text": event.text}
    if isinstance(event, SegmentEndIn):
        return {"track": _track(event.track)}
    return {}


def _track(track: str | None) -> str:
    if track not in (SPEAK, LISTEN):
        raise InvalidArgument("track is invalid; allowed: TRACK_SPEAK, TRACK_LISTEN")
    return track
