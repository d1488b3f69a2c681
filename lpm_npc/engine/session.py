"""The engine side of one conversation session: tracks, segments, clock and output events.

An `EngineSession` wraps the generator's per-session state with what the scheduler needs: the
SPEAK and LISTEN `TrackBuffer`s on one sample clock, the SPEAK segments (utterances) whose
playback is announced, barge-in, live prompt changes, and an outbox of typed events
(`FrameOut`, `PlaybackStartedOut`, `PlaybackFinishedOut`, `StatusOut`, `StreamEndOut`) that the
serving layer turns into wire messages.

Contracts:
- Frames of chunk k have pts `k * samples_per_chunk + i * SAMPLES_PER_FRAME` and seq
  `k * frames_per_chunk + i`; a skipped (shed) chunk leaves a gap in both.
- Every `interrupt()` is answered by at least one `PlaybackFinishedOut(interrupted=True)`: at once
  when no chunk of this session is being generated, else right after that chunk's frames (so no
  frame showing the cut speech follows the answer).
- `PlaybackStartedOut` precedes the first frame of the chunk holding a segment's first sample;
  `PlaybackFinishedOut` follows the frames of the chunk holding its last sample.

All methods run on one thread (the serving event loop); the generator is called only by the
scheduler. This module knows nothing of gRPC or of how frames are delivered.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lpm_npc.config import SAMPLE_RATE, SAMPLES_PER_FRAME, ServeConfig
from lpm_npc.engine.pacing import NS_PER_SAMPLE, ChunkOutlook, LoadSnapshot, MediaClock
from lpm_npc.engine.track_buffer import AppendResult, TrackBuffer

SPEAK = "speak"
LISTEN = "listen"
TRACKS = (SPEAK, LISTEN)

# Monotonic -> Unix epoch, fixed once so converted times stay ordered.
_UNIX_OFFSET_NS = time.time_ns() - time.monotonic_ns()


def unix_ns(monotonic_ns: int) -> int:
    return monotonic_ns + _UNIX_OFFSET_NS


@dataclass(frozen=True)
class FrameOut:
    seq: int
    chunk_index: int
    pts_samples: int
    image: np.ndarray  # uint8 (H, W, 3) RGB
    input_ready_unix_ns: int
    step_started_unix_ns: int
    step_finished_unix_ns: int
    speaking: bool  # the chunk had SPEAK audio
    idle: bool  # the chunk had no audio on either track


@dataclass(frozen=True)
class PlaybackStartedOut:
    segment: int
    pts_samples: int


@dataclass(frozen=True)
class PlaybackFinishedOut:
    segment: int  # 0: an interrupt arrived while nothing was playing
    pts_samples: int
    interrupted: bool


@dataclass(frozen=True)
class StatusOut:
    load: LoadSnapshot
    queue_depth: int
    sessions: int
    dropped_chunks: int
    late_samples: int
    speak_buffered: int
    listen_buffered: int
    draining: bool


@dataclass(frozen=True)
class StreamEndOut:
    """The stream this session was attached to is finished (drained, closed, or failed)."""

    error: str = ""  # non-empty: generation failed with this message


SessionEvent = FrameOut | PlaybackStartedOut | PlaybackFinishedOut | StatusOut | StreamEndOut


@dataclass(frozen=True)
class ChunkInput:
    """One chunk's inputs, taken from the tracks by the scheduler."""

    chunk_index: int
    start_sample: int
    speak: np.ndarray  # float32 (samples_per_chunk,)
    listen: np.ndarray  # float32 (samples_per_chunk,)
    speaking: bool
    idle: bool
    input_ready_ns: int  # monotonic: latest contributing audio arrival, or the decision time
    lateness_ns: int  # how far past its deadline the chunk was taken (0 if early)


@dataclass
class _Segment:
    number: int
    start: int  # first sample on the clock
    end: int | None = None  # one past the last sample; None while the segment is open
    started: bool = False


@dataclass
class SessionCounters:
    chunks: int = 0
    frames: int = 0
    dropped_chunks: int = 0
    late_samples: int = 0


class EngineSession:
    """One session's engine state (see the module docstring)."""

    def __init__(
        self,
        session_id: str,
        state: Any,
        *,
        samples_per_chunk: int,
        frames_per_chunk: int,
        config: ServeConfig,
        sheddable: bool = True,
    ) -> None:
        self.session_id = session_id
        self.state = state  # the generator's SessionState (opaque here)
        self.samples_per_chunk = samples_per_chunk
        self.frames_per_chunk = frames_per_chunk
        self.sheddable = sheddable
        self._config = config
        max_samples = int(config.max_buffered_seconds * SAMPLE_RATE)
        self.tracks = {name: TrackBuffer(max_samples) for name in TRACKS}
        self.clock = MediaClock(origin_ns=time.monotonic_ns())
        self.counters = SessionCounters()
        self.outbox: deque[SessionEvent] = deque()
        self.notify: Callable[[], None] = lambda: None  # set by the serving layer
        self.attached = False
        self.draining = False  # input ended: generate what is buffered, then end the stream
        self.in_flight = False  # a chunk of this session is inside a generator step
        self.pending_prompt: str | None = None
        self._segments: deque[_Segment] = deque()  # SPEAK utterances not yet finished
        self._next_segment = 1
        self._listen_open = False
        self._interrupts_pending = 0
        self._chunks_since_status = 0
        self._last_degraded = False

    # --- clock -----------------------------------------------------------------------------
    @property
    def next_chunk(self) -> int:
        return self.tracks[SPEAK].start // self.samples_per_chunk

    @property
    def next_sample(self) -> int:
        return self.tracks[SPEAK].start

    def attach(self, now_ns: int) -> None:
        """A stream attached: the next chunk becomes due one chunk of real time from now."""
        self.clock.resume(self.next_sample, now_ns)
        self.attached = True
        self.draining = False

    def detach(self) -> None:
        self.attached = False
        self.draining = False

    # --- input -----------------------------------------------------------------------------
    def feed(self, track: str, pcm: np.ndarray, position: int | None, now_ns: int) -> AppendResult:
        """Place audio on a track; opens a segment when none is open. Raises AudioOrderError or
        AudioOverflowError (nothing is stored then)."""
        result = self.tracks[track].append(pcm, position, now_ns)
        self.counters.late_samples += result.late
        if result.accepted:
            if track == LISTEN:
                self._listen_open = True
            elif not self._segments or self._segments[-1].end is not None:
                self._segments.append(_Segment(self._next_segment, result.first_sample))
                self._next_segment += 1
        return result

    def end_segment(self, track: str) -> None:
        """The current utterance on `track` is complete (no-op when none is open)."""
        if track == LISTEN:
            self._listen_open = False
        elif self._segments and self._segments[-1].end is None:
            self._segments[-1].end = self.tracks[SPEAK].appended_end

    def finish_input(self) -> None:
        """The client closed its side: end both tracks and drain what is buffered."""
        self.end_segment(SPEAK)
        self.end_segment(LISTEN)
        self.draining = True

    def set_prompt(self, text: str) -> None:
        self.pending_prompt = text  # applied by the scheduler before this session's next step

    def interrupt(self) -> None:
        """Barge-in: drop buffered speech and answer with PlaybackFinished(interrupted)."""
        self.tracks[SPEAK].drop()
        if self.in_flight:
            self._interrupts_pending += 1  # answered right after the chunk being generated
        else:
            self._answer_interrupt()
        self.notify()

    def _answer_interrupt(self) -> None:
        cut = self.next_sample
        answered = False
        for segment in self._segments:
            if segment.started:
                self.outbox.append(PlaybackFinishedOut(segment.number, cut, interrupted=True))
                answered = True
        if not answered:
            self.outbox.append(PlaybackFinishedOut(0, cut, interrupted=True))
        self._segments.clear()  # unstarted utterances were dropped with the buffer

    # --- scheduling ------------------------------------------------------------------------
    def outlook(self) -> ChunkOutlook:
        start = self.next_sample
        end = start + self.samples_per_chunk
        speak, listen = self.tracks[SPEAK], self.tracks[LISTEN]
        speak_open = bool(self._segments) and self._segments[-1].end is None
        open_covered = (not speak_open or speak.end >= end) and (
            not self._listen_open or listen.end >= end
        )
        return ChunkOutlook(
            chunk_end_ns=self.clock.time_of(end),
            chunk_ns=self.samples_per_chunk * NS_PER_SAMPLE,
            has_audio=speak.has_audio_before(end) or listen.has_audio_before(end),
            open_tracks_covered=open_covered,
            any_track_open=speak_open or self._listen_open,
            sheddable=self.sheddable,
        )

    def take_chunk(self, now_ns: int) -> ChunkInput:
        """Remove the next chunk's audio from both tracks for a generator step."""
        index, start = self.next_chunk, self.next_sample
        deadline = self.clock.time_of(start + self.samples_per_chunk)
        speak = self.tracks[SPEAK].take(self.samples_per_chunk)
        listen = self.tracks[LISTEN].take(self.samples_per_chunk)
        arrivals = [t for t in (speak.arrived_ns, listen.arrived_ns) if t is not None]
        self.in_flight = True
        return ChunkInput(
            chunk_index=index,
            start_sample=start,
            speak=speak.pcm,
            listen=listen.pcm,
            speaking=speak.received > 0,
            idle=speak.received == 0 and listen.received == 0,
            input_ready_ns=max(arrivals) if arrivals else min(now_ns, deadline),
            lateness_ns=max(0, now_ns - deadline),
        )

    def skip_chunk(self) -> None:
        """Shed the next (pure idle) chunk: the clock advances, no frames are made."""
        for track in self.tracks.values():
            track.take(self.samples_per_chunk)
        self.counters.dropped_chunks += 1

    def is_drained(self) -> bool:
        """Draining and nothing left to show: buffers empty and every segment finished."""
        return (
            self.draining
            and not self.in_flight
            and all(t.end <= t.start for t in self.tracks.values())
            and not self._segments
        )

    # --- output ----------------------------------------------------------------------------
    def complete_chunk(
        self,
        chunk: ChunkInput,
        images: np.ndarray,
        started_ns: int,
        finished_ns: int,
        status: Callable[[], StatusOut],
    ) -> None:
        """Queue the events of a generated chunk: playback starts, frames, playback ends."""
        self.in_flight = False
        chunk_end = chunk.start_sample + self.samples_per_chunk
        for segment in self._segments:
            if not segment.started and segment.start < chunk_end:
                segment.started = True
                self.outbox.append(PlaybackStartedOut(segment.number, segment.start))
        for i, image in enumerate(images):
            self.outbox.append(
                FrameOut(
                    seq=chunk.chunk_index * self.frames_per_chunk + i,
                    chunk_index=chunk.chunk_index,
                    pts_samples=chunk.start_sample + i * SAMPLES_PER_FRAME,
                    image=image,
                    input_ready_unix_ns=unix_ns(chunk.input_ready_ns),
                    step_started_unix_ns=unix_ns(started_ns),
                    step_finished_unix_ns=unix_ns(finished_ns),
                    speaking=chunk.speaking,
                    idle=chunk.idle,
                )
            )
        while self._segments and self._segments[0].started:
            end = self._segments[0].end
            if end is None or end > chunk_end:
                break
            self.outbox.append(PlaybackFinishedOut(self._segments.popleft().number, end, False))
        for _ in range(self._interrupts_pending):
            self._answer_interrupt()
        self._interrupts_pending = 0
        self.counters.chunks += 1
        self.counters.frames += len(images)
        self._chunks_since_status += 1
        report = status()
        if (
            self._chunks_since_status >= self._config.status_interval_chunks
            or report.load.degraded != self._last_degraded
        ):
            self.outbox.append(report)
            self._chunks_since_status = 0
            self._last_degraded = report.load.degraded
        self.notify()

    def fail_chunk(self, message: str) -> None:
        """The generator failed on this session's chunk: end its stream with an error."""
        self.in_flight = False
        self.outbox.append(StreamEndOut(error=message))
        self.notify()
