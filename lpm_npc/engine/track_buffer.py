"""Audio of one track (SPEAK or LISTEN) placed on a session's sample clock.

A `TrackBuffer` holds the samples from the session's generation point (`start`, the first sample
of the next chunk to generate) to the end of what has arrived (`end`). Audio is appended at a
sample position: a gap before it is silence, samples before `start` arrived too late (their chunk
was already generated) and are dropped and counted, and a position before the end of the previous
append is an ordering error. `take(n)` hands the scheduler exactly `n` samples (silence where
nothing arrived) and advances the generation point. `drop()` discards everything buffered (barge-in).

It also remembers when each append arrived, so a chunk can report when its inputs were complete
(the end-to-end latency of a frame starts there). It does not decode PCM bytes, know about
segments, or decide when a chunk is due (see `session.py` and `pacing.py`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


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
