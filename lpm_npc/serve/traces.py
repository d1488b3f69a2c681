"""Traces in the daemon: recording sessions into the store, and the `lpm_npc.v1.Traces` service.

`TraceStore(root, record_all=False, checkpoint_sha="")`:
- `start(session, registry, scheduler, *, seed, prompt) -> trace_id` — writes the header of
  `<root>/<session_id>.lpmtrace` and attaches a `SessionRecorder` to the scheduler
  (`Scheduler.recorders`), before the session's stream attaches, so every chunk is recorded.
  The trace id is the session id.
- `finish(session_id, reason)` — the end record; the recorder leaves the scheduler. Sessions the
  daemon closed itself (detached too long) are finished by `sweep()`, run on every start and ListTraces.
- `list()`, `path(trace_id)` — what the service serves (a bad id is `InvalidArgument`, an unknown
  one `NotFound`).

`TracesServicer` is proto <-> domain only: `ListTraces`, `GetTrace` (the file in 1 MiB pieces),
`ReplayTrace` (replay on the daemon's generator, on the generator thread, frame by frame, then a
summary; refused with RESOURCE_EXHAUSTED while the daemon cannot keep real time). The auth and
message limits are the server's interceptors and options, shared with the other services.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lpm_npc._proto import traces_pb2 as tpb
from lpm_npc._proto import traces_pb2_grpc
from lpm_npc.engine.scheduler import Scheduler
from lpm_npc.serve.errors import InvalidArgument, NotFound, ResourceExhausted, ServeError
from lpm_npc.serve.registry import CharacterRegistry
from lpm_npc.serve.sessions import ServeSession
from lpm_npc.trace.format import TraceWriter, read_trace
from lpm_npc.trace.recorder import SessionRecorder, make_header

log = logging.getLogger(__name__)

TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
SUFFIX = ".lpmtrace"
PIECE_BYTES = 1 << 20  # GetTrace chunk size


@dataclass(frozen=True)
class StoredTrace:
    trace_id: str
    character: str  # "ID@VERSION"
    size_bytes: int
    created_unix_ns: int
    complete: bool


class TraceStore:
    """Trace files of the daemon's sessions (see the module docstring)."""

    def __init__(
        self, root: str | Path, *, record_all: bool = False, checkpoint_sha: str = ""
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.record_all = record_all  # the server option: record every session
        self.checkpoint_sha = checkpoint_sha  # of the served model (headers; "" = unknown)
        self._recording: dict[str, tuple[Scheduler, SessionRecorder]] = {}

    async def start(
        self,
        session: ServeSession,
        registry: CharacterRegistry,
        scheduler: Scheduler,
        *,
        seed: int,
        prompt: str,
    ) -> str:
        """Begin recording `session` (not yet attached); returns the trace id."""
        self.sweep()
        cfg = scheduler.generator.cfg
        record = session.character
        images, roles, _ = await asyncio.to_thread(
            registry.reference_images, record, cfg.image_size
        )
        header = make_header(
            cfg,
            checkpoint_sha=self.checkpoint_sha,
            character_id=record.character_id,
            character_version=record.version,
            sheet_sha256=record.version,  # versions are the sheet's content sha256
            images=images,
            roles=roles,
            size=session.width,
            seed=seed,
            prompt=prompt,
            session_id=session.session_id,
        )
        writer = TraceWriter(self.root / f"{session.session_id}{SUFFIX}", header)
        recorder = SessionRecorder(writer)
        scheduler.recorders[session.session_id] = recorder
        self._recording[session.session_id] = (scheduler, recorder)
        return session.session_id

    def recorder(self, session_id: str) -> SessionRecorder | None:
        entry = self._recording.get(session_id)
        return entry[1] if entry else None

    def finish(self, session_id: str, reason: str = "closed") -> None:
        entry = self._recording.pop(session_id, None)
        if entry is not None:
            scheduler, recorder = entry
            scheduler.recorders.pop(session_id, None)
            recorder.close(reason)

    def sweep(self) -> None:
        """Finish the traces of sessions closed without CloseSession (the reaper's detached-
        timeout closes): their session left the scheduler."""
        for session_id, (scheduler, _) in list(self._recording.items()):
            if session_id not in scheduler.sessions:
                self.finish(session_id, "session closed by the daemon")

    def finish_all(self, reason: str = "daemon stopped") -> None:
        for session_id in list(self._recording):
            self.finish(session_id, reason)

    def path(self, trace_id: str) -> Path:
        if not TRACE_ID.match(trace_id):
            raise InvalidArgument(f"trace_id {trace_id!r}: expected 32 lowercase hex digits")
        path = self.root / f"{trace_id}{SUFFIX}"
        if not path.is_file():
            raise NotFound(f"trace {trace_id} not found")
        return path

    def list(self) -> list[StoredTrace]:
        out = []
        for path in self.root.glob(f"*{SUFFIX}"):
            try:
                trace = read_trace(path)
            except ValueError as error:
                log.warning("skipping unreadable trace %s: %s", path.name, error)
                continue
            character = trace.header["character"]
            out.append(
                StoredTrace(
                    trace_id=path.stem,
                    character=f"{character['id']}@{character['version']}",
                    size_bytes=path.stat().st_size,
                    created_unix_ns=int(trace.header["created_unix_ns"]),
                    complete=trace.end is not None,
                )
            )
        return sorted(out, key=lambda t: t.created_unix_ns)


class TracesServicer(traces_pb2_grpc.TracesServicer):
    """lpm_npc.v1.Traces over a `TraceStore` and the daemon's scheduler."""

    def __init__(self, store: TraceStore, scheduler: Scheduler) -> None:
        self._store = store
        self._scheduler = scheduler

    async def ListTraces(self, request, context):  # noqa: ANN001, N802
        self._store.sweep()  # on the event loop, like every other recorder call
        return tpb.ListTracesResponse(
            traces=[
                tpb.TraceInfo(
                    trace_id=t.trace_id,
                    character=t.character,
                    size_bytes=t.size_bytes,
                    created_unix_ns=t.created_unix_ns,
                    complete=t.complete,
                )
                for t in await asyncio.to_thread(self._store.list)
            ]
        )

    async def GetTrace(self, request, context):  # noqa: ANN001, N802
        try:
            path = self._store.path(request.trace_id)
        except ServeError as error:
            await _abort(context, error)
            return
        data = await asyncio.to_thread(path.read_bytes)
        for offset in range(0, len(data), PIECE_BYTES):
            yield tpb.TraceBytes(data=data[offset : offset + PIECE_BYTES])

    async def ReplayTrace(self, request, context):  # noqa: ANN001, N802
        try:
            path = self._store.path(request.trace_id)
            load = self._scheduler.snapshot()
            if load.degraded:
                raise ResourceExhausted(f"the daemon cannot keep real time: {load.reason}")
        except ServeError as error:
            await _abort(context, error)
            return
        from lpm_npc.trace.replayer import replay

        trace = await asyncio.to_thread(read_trace, path)
        frames: list[Any] = []

        def on_frame(seq: int, frame: Any, ok: bool) -> None:
            from lpm_npc.trace.format import frame_digest

            frames.append(
                tpb.ReplayedFrame(
                    seq=seq,
                    matches=ok,
                    sha256=frame_digest(frame),
                    pixels=frame.tobytes() if request.include_pixels else b"",
                    width=frame.shape[1],
                    height=frame.shape[0],
                )
            )

        generator = self._scheduler.generator
        result = await self._scheduler.call_in_worker(
            lambda: replay(trace, generator, on_frame=on_frame)
        )
        for frame in frames:
            yield tpb.ReplayEvent(frame=frame)
        yield tpb.ReplayEvent(
            summary=tpb.ReplaySummary(
                frames=result.frames,
                mismatches=result.mismatches,
                first_mismatch=result.first_mismatch or 0,
            )
        )


async def _abort(context: Any, error: ServeError) -> None:
    from lpm_npc.serve.servicers import _abort as abort_with_status

    await abort_with_status(context, error)
