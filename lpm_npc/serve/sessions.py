"""Sessions as the daemon sees them: admission, delivery targets, streams attached or not.

`SessionManager` opens a session (validate the request, admit it against the limits and the load,
get the character's prepared references, open the generator state on the generator's thread,
create the SHM ring), attaches and detaches Converse streams (one at a time per session; what a
stream does is `serve/converse.py`), and closes sessions (including ones left detached too long).

Admission counts *active* sessions: those with a stream attached, those opened and not yet
attached (their stream is expected), and those still loading. A session whose stream ended or
vanished (client crash: keepalive notices within seconds) stops counting at once; it may be
reattached within `detached_timeout_s` if an active slot is free, and is closed after it (its SHM
ring unlinked). Opening a session closes the oldest detached ones beyond `max_sessions`, so a
crash-looping client cannot pile them up.
Every domain error is a typed `ServeError` that names the field and the allowed value. Nothing
here imports grpc.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

from lpm_npc.config import FPS, ServeConfig
from lpm_npc.engine.events import StreamEndOut
from lpm_npc.engine.scheduler import Scheduler
from lpm_npc.engine.session import EngineSession
from lpm_npc.serve.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
)
from lpm_npc.serve.registry import CharacterRegistry
from lpm_npc.serve.shm_ring import FrameRingWriter
from lpm_npc.serve.store import StoredCharacter

log = logging.getLogger(__name__)

DELIVERIES = ("inline", "shm")
IDLE_POLICIES = ("animate", "priority")
INLINE_FORMATS = ("rgb8", "rgba8")
RING_PREFIX = "lpmnpc-"  # SHM ring names: RING_PREFIX + session id
MIN_SIDE, MAX_SIDE = 32, 1024  # allowed frame side; the generator resizes from its native size


@dataclass(frozen=True)
class OpenRequest:
    """OpenSession in domain terms (the servicer maps enums to these strings)."""

    character: str  # "ID" or "ID@VERSION"
    width: int = 0  # 0: native
    height: int = 0
    fps: int = 0  # 0: 24
    delivery: str = "inline"
    seed: int = 0
    prompt: str = ""
    idle_policy: str = "animate"
    shm_slots: int = 0  # 0: config default
    inline_format: str = "rgb8"


@dataclass
class ServeSession:
    """A session with its delivery target."""

    session_id: str
    character: StoredCharacter
    engine: EngineSession
    width: int
    height: int
    delivery: str
    inline_format: str
    ring: FrameRingWriter | None
    stream_attached: bool = False
    ever_attached: bool = False  # a stream was attached once (it is "detached" when it is not now)
    detached_since_ns: int = field(default_factory=time.monotonic_ns)

    @property
    def active(self) -> bool:
        """Counts against admission: streaming now, or opened and its first stream expected."""
        return self.stream_attached or not self.ever_attached


class SessionManager:
    """Open sessions of one daemon (see the module docstring)."""

    def __init__(
        self,
        scheduler: Scheduler,
        registry: CharacterRegistry,
        config: ServeConfig,
        *,
        native_size: int,
        frames_per_chunk: int,
    ) -> None:
        self.scheduler = scheduler
        self.registry = registry
        self.config = config
        self.native_size = native_size
        self.frames_per_chunk = frames_per_chunk
        self.sessions: dict[str, ServeSession] = {}
        self.draining = False
        self._opening = 0  # admitted sessions still loading (they count against the limit)
        self.measured_capacity: int | None = None  # set by the daemon when it measured one

    @property
    def session_limit(self) -> int:
        """Active sessions admitted at most: the measured capacity, capped by max_sessions."""
        if self.measured_capacity is None:
            return self.config.max_sessions
        return min(self.measured_capacity, self.config.max_sessions)

    def _limit_reason(self) -> str:
        if self.measured_capacity is not None and self.measured_capacity < self.config.max_sessions:
            return (
                f"measured capacity = {self.measured_capacity} sessions in real time on this "
                f"machine (max_sessions = {self.config.max_sessions})"
            )
        return f"max_sessions = {self.config.max_sessions}"

    # --- open / close ------------------------------------------------------------------------
    def _validate(self, request: OpenRequest) -> int:
        if request.fps not in (0, FPS):
            raise InvalidArgument(f"fps {request.fps} is not supported: the allowed value is {FPS}")
        width = request.width or self.native_size
        height = request.height or self.native_size
        if width != height or not MIN_SIDE <= width <= MAX_SIDE or width % 2:
            raise InvalidArgument(
                f"size {width}x{height} is not supported: frames are square with an even side "
                f"in [{MIN_SIDE}, {MAX_SIDE}] px (0 = native {self.native_size})"
            )
        for name, value, allowed in (
            ("delivery", request.delivery, DELIVERIES),
            ("idle_policy", request.idle_policy, IDLE_POLICIES),
            ("inline_format", request.inline_format, INLINE_FORMATS),
        ):
            if value not in allowed:
                raise InvalidArgument(f"{name} {value!r} is invalid; allowed: {', '.join(allowed)}")
        if len(request.prompt) > self.config.max_prompt_chars:
            raise InvalidArgument(
                f"prompt has {len(request.prompt)} characters; at most "
                f"{self.config.max_prompt_chars} are allowed"
            )
        if request.shm_slots and not 2 <= request.shm_slots <= self.config.max_shm_slots:
            raise InvalidArgument(
                f"shm_slots {request.shm_slots} is out of range: 2..{self.config.max_shm_slots}"
            )
        if not 0 <= request.seed < 2**63:
            raise InvalidArgument(f"seed {request.seed} is out of range: 0..2**63-1")
        return width

    @property
    def active_count(self) -> int:
        """Sessions counted against admission (module docstring), loading ones included."""
        return sum(s.active for s in self.sessions.values()) + self._opening

    def _admit(self) -> None:
        if self.draining:
            raise Unavailable("the daemon is draining (shutting down); no new sessions")
        if self.active_count >= self.session_limit:
            raise ResourceExhausted(
                f"session limit reached: {self.active_count} active sessions, "
                f"{self._limit_reason()}"
            )
        load = self.scheduler.snapshot()
        if load.degraded:
            raise ResourceExhausted(f"the daemon cannot keep real time: {load.reason}")

    async def _evict_detached(self) -> None:
        """Keep at most `max_sessions` detached sessions: close the oldest ones."""
        detached = sorted(
            (s for s in self.sessions.values() if not s.active), key=lambda s: s.detached_since_ns
        )
        for session in detached[: max(0, len(detached) - self.config.max_sessions)]:
            log.info("closing detached session %s: too many detached sessions", session.session_id)
            await self.close(session.session_id)

    async def open(self, request: OpenRequest) -> ServeSession:
        size = self._validate(request)
        self._admit()
        await self._evict_detached()
        self._opening += 1
        try:
            record = self.registry.get(request.character)
            prepared = await self.registry.prepared(
                record, self.scheduler.call_in_worker, self.scheduler.generator
            )
            state = await self.scheduler.call_in_worker(
                lambda: self.scheduler.generator.open(
                    prepared, prompt=request.prompt, seed=request.seed, size=size
                )
            )
        finally:
            self._opening -= 1
        session_id = uuid.uuid4().hex
        engine = EngineSession(
            session_id,
            state,
            samples_per_chunk=self.scheduler.samples_per_chunk,
            frames_per_chunk=self.frames_per_chunk,
            config=self.config,
            sheddable=request.idle_policy == "animate",
        )
        ring = None
        if request.delivery == "shm":
            slots = request.shm_slots or self.config.shm_slots
            ring = FrameRingWriter(f"{RING_PREFIX}{session_id}", size, size, slots)
        session = ServeSession(
            session_id, record, engine, size, size, request.delivery, request.inline_format, ring
        )
        self.sessions[session_id] = session
        self.scheduler.add(engine)
        log.info("session %s opened: %s@%s", session_id, record.character_id, record.version[:12])
        return session

    def get(self, session_id: str) -> ServeSession:
        session = self.sessions.get(session_id)
        if session is None:
            raise NotFound(f"session {session_id!r} not found")
        return session

    async def close(self, session_id: str) -> ServeSession:
        session = self.get(session_id)
        del self.sessions[session_id]
        self.scheduler.remove(session_id)
        if session.stream_attached:
            session.engine.outbox.append(StreamEndOut())
            session.engine.notify()
        # The generator's thread runs this after any step still using the state.
        await self.scheduler.call_in_worker(self.scheduler.generator.close, session.engine.state)
        if session.ring is not None:
            session.ring.close()
        log.info("session %s closed after %d frames", session_id, session.engine.counters.frames)
        return session

    async def close_stale(self, now_ns: int) -> list[str]:
        """Close sessions left without a stream longer than `detached_timeout_s`."""
        limit = int(self.config.detached_timeout_s * 1e9)
        stale = [
            s.session_id
            for s in self.sessions.values()
            if not s.stream_attached and now_ns - s.detached_since_ns > limit
        ]
        for session_id in stale:
            log.info("closing session %s: no stream for %.0f s", session_id, limit / 1e9)
            await self.close(session_id)
        return stale

    # --- streams ------------------------------------------------------------------------------
    def attach(self, session_id: str) -> ServeSession:
        if self.draining:
            raise Unavailable("the daemon is draining (shutting down)")
        session = self.get(session_id)
        if session.stream_attached:
            raise FailedPrecondition(f"session {session_id} already has a Converse stream")
        if not session.active and self.active_count >= self.session_limit:
            raise ResourceExhausted(
                f"cannot reattach session {session_id}: {self.active_count} active sessions, "
                f"{self._limit_reason()}"
            )
        session.stream_attached = True
        session.ever_attached = True
        session.engine.outbox.clear()
        session.engine.attach(time.monotonic_ns())
        self.scheduler.wake()
        return session

    def detach(self, session: ServeSession) -> None:
        session.stream_attached = False
        session.detached_since_ns = time.monotonic_ns()
        session.engine.detach()
