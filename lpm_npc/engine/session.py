"""The engine side of one conversation session: its two audio tracks on one clock, segments,
barge-in, and the events it emits.

`TrackBuffer` holds one track's samples from the session's generation point (`start`, the first
sample of the next chunk to generate) to the end of what has arrived (`end`): the only audio
buffer between the wire and the model. Audio is appended at a sample position: a gap before it is
silence, samples before `start` arrived too late (their chunk was already generated) and are
dropped and counted, and a position before the end of the previous append is an ordering error.
`take(n)` hands out exactly `n` samples (silence where nothing arrived) and advances the
generation point; `drop()` discards everything buffered (barge-in). It remembers when each append
arrived, so a chunk can report when its inputs were complete (a frame's latency starts there).

`EngineSession` wraps the generator's per-session state with what the scheduler needs: the SPEAK
and LISTEN tracks, the SPEAK segments (utterances) whose playback is announced, barge-in, live
prompt changes, and an outbox of typed events (`engine/events.py`) for the serving layer.
`take_chunk` gives the scheduler a `ChunkInput` (its `ChunkAudio` is what the generator steps on);
`complete_chunk` turns the generator's `ChunkFrames` into events.

Contracts:
- Frames of chunk k have seq `k * frames_per_chunk + i` and the pts of `ChunkFrames` (computed
  once, in `protocol.frame_pts`); a skipped (shed) chunk leaves a gap in both.
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

from lpm_npc.config import SAMPLE_RATE, ServeConfig
from lpm_npc.engine.events import (
    FrameOut,
    PlaybackFinishedOut,
    PlaybackStartedOut,
    SessionEvent,
    StatusOut,
    StreamEndOut,
    unix_ns,
)
from lpm_npc.engine.pacing import NS_PER_SAMPLE, ChunkOutlook, MediaClock
from lpm_npc.engine.protocol import ChunkAudio, ChunkFrames

SPEAK = "speak"
LISTEN = "listen"
TRACKS = (SPEAK, LISTEN)


class AudioOrderError(ValueError):
    """An append went back before the end of the previous append on the same track."""


class AudioOverflowError(ValueError):
    """An append would buffer more audio ahead of the generation point than allowed."""


@dataclass(frozen=True)
class AppendResult:
    """What an append did: samples accepted, dropped as late, and silence inserted for a gap."""

    accepted: int  # samples stored
    late: int  # samples dropped because their chunk was already generated
    gap: int  # silent samples inserted before the append
    first_sample: int  # clock position of the first stored sample (meaningless if accepted == 0)


@dataclass(frozen=True)
class TakenAudio:
    """`n` samples from the generation point, and facts about where they came from."""

    pcm: np.ndarray  # float32 (n,), silence where nothing arrived
    received: int  # how many of the n samples arrived (the rest is padding)
    arrived_ns: int | None  # latest arrival time among the appends that contributed, or None


class TrackBuffer:
    """Samples of one track from the generation point onward (see the module docstring)."""

    def __init__(self, max_samples: int) -> None:
        if max_samples <= 0:
            raise ValueError(f"max_samples must be > 0, got {max_samples}")
        self.max_samples = max_samples  # buffered ahead of `start` at most
        self.start = 0  # clock position of the next sample to generate
        self._data = np.zeros(0, np.float32)  # samples [start, start + len(_data))
        self._appended_end = 0  # end of the latest append (ordering is checked against this)
        self._arrivals: deque[tuple[int, int, int]] = deque()  # (first, end, arrived_ns)

    @property
    def end(self) -> int:
        """Clock position after the last buffered sample (== start when empty)."""
        return self.start + len(self._data)

    @property
    def buffered(self) -> int:
        return len(self._data)

    @property
    def appended_end(self) -> int:
        """End of the latest append; the next append must not start before it."""
        return self._appended_end

    def append(self, pcm: np.ndarray, position: int | None, arrived_ns: int) -> AppendResult:
        """Place `pcm` (float32 mono) at clock `position` (None: right after the previous append,
        or at the generation point if that is later)."""
        pcm = np.asarray(pcm, np.float32).reshape(-1)
        if position is None:
            position = max(self._appended_end, self.start)
        if position < 0:
            raise AudioOrderError(f"sample_position must be >= 0, got {position}")
        if position < self._appended_end:
            raise AudioOrderError(
                f"sample_position {position} overlaps or precedes the previous audio of this "
                f"track (which ends at {self._appended_end}); positions must not go back"
            )
        stop = position + len(pcm)
        late = max(0, min(stop, self.start) - position)
        kept = pcm[late:]
        first = position + late
        gap = max(0, first - self.end) if len(kept) else 0
        if stop - self.start > self.max_samples and len(kept):
            raise AudioOverflowError(
                f"audio would reach {stop - self.start} samples ahead of generation; at most "
                f"{self.max_samples} may be buffered per track"
            )
        self._appended_end = stop
        if len(kept):
            pieces = [self._data]
            if gap:
                pieces.append(np.zeros(gap, np.float32))
            pieces.append(kept)
            self._data = np.concatenate(pieces)
            self._arrivals.append((first, stop, arrived_ns))
        return AppendResult(accepted=len(kept), late=late, gap=gap, first_sample=first)

    def take(self, n: int) -> TakenAudio:
        """Remove the next `n` samples (padding with silence) and advance the generation point."""
        chunk_end = self.start + n
        received = min(n, len(self._data))
        pcm = np.zeros(n, np.float32)
        pcm[:received] = self._data[:received]
        self._data = self._data[received:]
        arrived: int | None = None
        while self._arrivals and self._arrivals[0][0] < chunk_end:
            first, stop, when = self._arrivals[0]
            arrived = when if arrived is None else max(arrived, when)
            if stop <= chunk_end:
                self._arrivals.popleft()
            else:
                break  # the append continues into the next chunk: it contributes there too
        self.start = chunk_end
        return TakenAudio(pcm=pcm, received=received, arrived_ns=arrived)

    def drop(self) -> int:
        """Discard every buffered sample (barge-in); return how many were dropped.

        The next append may start anywhere from the generation point on: what was dropped no
        longer constrains the order.
        """
        dropped = len(self._data)
        self._data = np.zeros(0, np.float32)
        self._arrivals.clear()
        self._appended_end = self.start
        return dropped

    def has_audio_before(self, position: int) -> bool:
        """Whether any buffered sample lies before clock `position`."""
        return len(self._data) > 0 and self.start < position


@dataclass(frozen=True)
class ChunkInput:
    """One chunk's inputs, taken from the tracks by the scheduler."""

    audio: ChunkAudio  # exactly the chunk's samples of both tracks: what the generator steps on
    speaking: bool  # some SPEAK sample of the chunk arrived (the rest is silence)
    idle: bool  # nothing arrived on either track
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
        start = self.next_sample
        deadline = self.clock.time_of(start + self.samples_per_chunk)
        speak = self.tracks[SPEAK].take(self.samples_per_chunk)
        listen = self.tracks[LISTEN].take(self.samples_per_chunk)
        arrivals = [t for t in (speak.arrived_ns, listen.arrived_ns) if t is not None]
        self.in_flight = True
        return ChunkInput(
            audio=ChunkAudio(start_sample=start, speak=speak.pcm, listen=listen.pcm),
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
        frames: ChunkFrames,
        status: Callable[[], StatusOut],
    ) -> None:
        """Queue the events of a generated chunk: playback starts, frames, playback ends."""
        self.in_flight = False
        chunk_end = chunk.audio.start_sample + self.samples_per_chunk
        for segment in self._segments:
            if not segment.started and segment.start < chunk_end:
                segment.started = True
                self.outbox.append(PlaybackStartedOut(segment.number, segment.start))
        for i, (image, pts) in enumerate(zip(frames.frames, frames.pts_samples, strict=True)):
            self.outbox.append(
                FrameOut(
                    seq=frames.chunk_index * self.frames_per_chunk + i,
                    chunk_index=frames.chunk_index,
                    pts_samples=int(pts),
                    image=image,
                    input_ready_unix_ns=unix_ns(chunk.input_ready_ns),
                    step_started_unix_ns=unix_ns(frames.started_ns),
                    step_finished_unix_ns=unix_ns(frames.finished_ns),
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
        self.counters.frames += len(frames.frames)
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
