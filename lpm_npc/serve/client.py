"""The reference client for engine authors (synchronous grpc): what a game engine does.

`LpmClient` wraps the two services (register a sheet directory or images, list, get, delete,
prepare, open / close sessions, Converse, the server status). `EventQueue` is a request stream you can push events
into from any thread (barge-in while frames arrive). `stream_conversation()` plays a speak and a
listen track through Converse exactly as an engine would — header first, audio in real-time-sized
chunks with explicit sample positions (or as fast as the daemon accepts with `fast=True`),
segment ends, half-close — and collects the frames (reading the SHM ring for SHM delivery) and the
playback and status events. `write_outputs()` turns that into `frames.json` and `video.mp4`.

This module holds no daemon logic; it only speaks the public proto.
"""

from __future__ import annotations

import json
import logging
import queue
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np

from lpm_npc._proto import characters_pb2 as cpb
from lpm_npc._proto import characters_pb2_grpc, sessions_pb2_grpc, traces_pb2_grpc
from lpm_npc._proto import sessions_pb2 as spb
from lpm_npc._proto import traces_pb2 as tpb
from lpm_npc.config import FPS, SAMPLE_RATE
from lpm_npc.serve.shm_ring import FrameRingReader
from lpm_npc.serve.tls import ClientTls

log = logging.getLogger(__name__)

MESSAGE_BYTES = 64 * 1024 * 1024  # the client accepts what any daemon config may send
SEND_SAMPLES = 1600  # 100 ms of audio per AudioChunk: real-time-sized


# --- event builders ------------------------------------------------------------------------------
def header_event(session_id: str) -> spb.ClientEvent:
    return spb.ClientEvent(header=spb.ConverseHeader(session_id=session_id))


def audio_event(track: int, pcm: np.ndarray, position: int | None = None) -> spb.ClientEvent:
    """float32 [-1, 1] samples -> a PCM16 AudioChunk event."""
    pcm16 = (np.clip(pcm, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()
    chunk = spb.AudioChunk(track=track, pcm=pcm16, encoding=spb.AUDIO_ENCODING_PCM16)
    if position is not None:
        chunk.sample_position = position
    return spb.ClientEvent(audio=chunk)


def segment_end_event(track: int) -> spb.ClientEvent:
    return spb.ClientEvent(segment_end=spb.SegmentEnd(track=track))


def interrupt_event() -> spb.ClientEvent:
    return spb.ClientEvent(interrupt=spb.Interrupt())


def prompt_event(text: str) -> spb.ClientEvent:
    return spb.ClientEvent(set_prompt=spb.SetPrompt(text=text))


class EventQueue:
    """A Converse request stream fed from any thread; `close()` half-closes it."""

    _END = object()

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()

    def put(self, event: spb.ClientEvent) -> None:
        self._queue.put(event)

    def close(self) -> None:
        self._queue.put(self._END)

    def __iter__(self) -> Iterator[spb.ClientEvent]:
        while True:
            event = self._queue.get()
            if event is self._END:
                return
            yield event


class LpmClient:
    """Synchronous client of one daemon."""

    def __init__(
        self,
        address: str,
        token: str | None = None,
        timeout: float = 120.0,
        tls: ClientTls | None = None,
    ) -> None:
        """`tls`: talk TLS (trusting `tls.root_ca`, presenting a client certificate for mutual
        TLS); without it the channel is plain text (loopback, or a daemon run `--insecure`)."""
        options = [
            ("grpc.max_receive_message_length", MESSAGE_BYTES),
            ("grpc.max_send_message_length", MESSAGE_BYTES),
            # Notice a dead daemon within seconds, even on an idle stream (the daemon allows it).
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.keepalive_timeout_ms", 5_000),
        ]
        if tls is not None:
            self.channel = grpc.secure_channel(address, tls.credentials(), options=options)
        else:
            self.channel = grpc.insecure_channel(address, options=options)
        self.characters = characters_pb2_grpc.CharactersStub(self.channel)
        self.sessions = sessions_pb2_grpc.SessionsStub(self.channel)
        self.traces = traces_pb2_grpc.TracesStub(self.channel)
        self.metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.timeout = timeout

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> LpmClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: Callable, request: Any) -> Any:
        return method(request, timeout=self.timeout, metadata=self.metadata)

    # --- characters --------------------------------------------------------------------------
    def register_sheet_dir(
        self, sheet_dir: str | Path, character_id: str = ""
    ) -> cpb.RegisterCharacterResponse:
        """Upload a sheet directory (sheet.toml + the files beside it) in the manifest form."""
        sheet_dir = Path(sheet_dir)
        manifest = sheet_dir / "sheet.toml"
        if not manifest.is_file():
            raise FileNotFoundError(f"{manifest} not found: a sheet directory holds sheet.toml")
        files = [
            cpb.SheetFile(filename=p.name, content=p.read_bytes())
            for p in sorted(sheet_dir.iterdir())
            if p.is_file() and p.name != "sheet.toml" and not p.name.startswith(".")
        ]
        request = cpb.RegisterCharacterRequest(
            character_id=character_id,
            manifest=cpb.SheetManifest(manifest=manifest.read_bytes(), files=files),
        )
        return self._call(self.characters.RegisterCharacter, request)

    def register_images(
        self, character_id: str, images: Iterable[tuple[str, str, str, bytes]]
    ) -> cpb.RegisterCharacterResponse:
        """Upload (role, label, filename, content) images in the images form."""
        sheet = cpb.SheetImages(
            images=[
                cpb.SheetImage(role=r, label=lab, filename=f, content=c) for r, lab, f, c in images
            ]
        )
        request = cpb.RegisterCharacterRequest(character_id=character_id, images=sheet)
        return self._call(self.characters.RegisterCharacter, request)

    def list(self, character_id: str = "") -> list[cpb.Character]:
        request = cpb.ListCharactersRequest(character_id=character_id)
        return list(self._call(self.characters.ListCharacters, request).characters)

    def get(self, ref: str) -> cpb.Character:
        return self._call(self.characters.GetCharacter, cpb.GetCharacterRequest(ref=ref))

    def delete(self, ref: str) -> list[str]:
        request = cpb.DeleteCharacterRequest(ref=ref)
        return list(self._call(self.characters.DeleteCharacter, request).versions)

    def prepare(self, ref: str) -> Iterator[cpb.PrepareProgress]:
        request = cpb.PrepareCharacterRequest(ref=ref)
        return self.characters.PrepareCharacter(
            request, timeout=self.timeout, metadata=self.metadata
        )

    # --- sessions ----------------------------------------------------------------------------
    def open_session(self, character: str, **fields: Any) -> spb.OpenSessionResponse:
        """OpenSession; `fields` are OpenSessionRequest fields (delivery=spb.DELIVERY_SHM, ...)."""
        request = spb.OpenSessionRequest(character=character, **fields)
        return self._call(self.sessions.OpenSession, request)

    def close_session(self, session_id: str) -> spb.CloseSessionResponse:
        return self._call(
            self.sessions.CloseSession, spb.CloseSessionRequest(session_id=session_id)
        )

    def server_status(self) -> spb.ServerStatus:
        """Sessions.GetServerStatus: state, capacity, session counts, model."""
        return self._call(self.sessions.GetServerStatus, spb.GetServerStatusRequest())

    def get_trace(self, trace_id: str) -> bytes:
        """The whole trace file (Traces.GetTrace)."""
        pieces = self.traces.GetTrace(
            tpb.GetTraceRequest(trace_id=trace_id), timeout=self.timeout, metadata=self.metadata
        )
        return b"".join(piece.data for piece in pieces)

    def converse(self, events: Iterable[spb.ClientEvent], timeout: float | None = None):
        """The raw bidirectional stream: an iterator of ServerEvent (also a grpc.Call)."""
        return self.sessions.Converse(iter(events), timeout=timeout, metadata=self.metadata)


# --- a conversation, as an engine plays it ---------------------------------------------------------
@dataclass
class ReceivedFrame:
    seq: int
    chunk_index: int
    pts_samples: int
    pts_ms: float
    image: np.ndarray | None  # uint8 (H, W, 3); None if an SHM slot was overwritten before reading
    input_ready_unix_ns: int
    step_started_unix_ns: int
    step_finished_unix_ns: int
    generated_at_unix_ns: int
    received_at_unix_ns: int
    speaking: bool
    idle: bool

    @classmethod
    def from_proto(cls, f: spb.Frame, image: np.ndarray | None) -> ReceivedFrame:
        """A Frame event as received now, with its decoded image (copied by the caller if needed)."""
        return cls(
            f.seq,
            f.chunk_index,
            f.pts_samples,
            f.pts_ms,
            image,
            f.input_ready_unix_ns,
            f.step_started_unix_ns,
            f.step_finished_unix_ns,
            f.generated_at_unix_ns,
            time.time_ns(),
            f.speaking,
            f.idle,
        )


@dataclass
class ConversationResult:
    session_id: str
    header: spb.ConverseStarted | None = None
    frames: list[ReceivedFrame] = field(default_factory=list)
    playback: list[dict] = field(default_factory=list)  # started/finished events in order
    statuses: list[spb.Status] = field(default_factory=list)
    overwritten: int = 0  # SHM frames lost to slow reading


def decode_frame(event: spb.Frame, ring: FrameRingReader | None) -> np.ndarray | None:
    """Pixels of a Frame event as uint8 (H, W, 3), from the message or the SHM ring."""
    if event.WhichOneof("pixels") == "shm_slot":
        if ring is None:
            raise ValueError("frame names an SHM slot but no ring is open")
        copy = ring.read_slot(event.shm_slot)
        if copy is None or copy.frame_seq != event.seq:
            return None
        return copy.rgba[..., :3]
    channels = 4 if event.format == spb.PIXEL_FORMAT_RGBA8 else 3
    image = np.frombuffer(event.data, np.uint8).reshape(event.height, event.width, channels)
    return image[..., :3]


def conversation_events(
    session_id: str,
    speak: np.ndarray | None,
    listen: np.ndarray | None,
    *,
    fast: bool = False,
    prompt: str | None = None,
    send_samples: int = SEND_SAMPLES,
) -> Iterator[spb.ClientEvent]:
    """Header, then both tracks interleaved in `send_samples` pieces — paced to real time unless
    `fast` — then a segment end per track; the caller's iteration end is the half-close.

    Positions are left unset: the first piece of each track lands at the daemon's generation
    point and the rest follow contiguously, which also works when re-attaching a session."""
    yield header_event(session_id)
    if prompt:
        yield prompt_event(prompt)
    tracks = [(spb.TRACK_SPEAK, speak), (spb.TRACK_LISTEN, listen)]
    tracks = [(t, np.asarray(p, np.float32)) for t, p in tracks if p is not None and len(p)]
    total = max((len(p) for _, p in tracks), default=0)
    started = time.monotonic()
    for position in range(0, total, send_samples):
        if not fast:
            # Audio reaches the daemon as a microphone or a TTS player would deliver it.
            delay = started + position / SAMPLE_RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        for track, pcm in tracks:
            piece = pcm[position : position + send_samples]
            if len(piece):
                yield audio_event(track, piece)
    for track, _ in tracks:
        yield segment_end_event(track)


def stream_conversation(
    client: LpmClient,
    session: spb.OpenSessionResponse,
    speak: np.ndarray | None,
    listen: np.ndarray | None,
    *,
    fast: bool = False,
    prompt: str | None = None,
    on_frame: Callable[[ReceivedFrame], None] | None = None,
    timeout: float | None = None,
) -> ConversationResult:
    """Play the tracks through Converse and collect everything the daemon sends back."""
    ring = FrameRingReader(session.shm_name) if session.shm_name else None
    result = ConversationResult(session.session_id)
    events = conversation_events(session.session_id, speak, listen, fast=fast, prompt=prompt)
    try:
        for event in client.converse(events, timeout=timeout):
            kind = event.WhichOneof("event")
            if kind == "header":
                result.header = event.header
            elif kind == "frame":
                f = event.frame
                image = decode_frame(f, ring)
                result.overwritten += image is None
                frame = ReceivedFrame.from_proto(f, None if image is None else image.copy())
                result.frames.append(frame)
                if on_frame is not None:
                    on_frame(frame)
            elif kind == "playback_started":
                p = event.playback_started
                result.playback.append(
                    {"event": "started", "segment": p.segment, "pts_ms": p.pts_ms}
                )
            elif kind == "playback_finished":
                p = event.playback_finished
                result.playback.append(
                    {
                        "event": "finished",
                        "segment": p.segment,
                        "pts_ms": p.pts_ms,
                        "interrupted": p.interrupted,
                    }
                )
            elif kind == "status":
                result.statuses.append(event.status)
    finally:
        if ring is not None:
            ring.close()
    return result


def video_frames(result: ConversationResult, n_samples: int) -> np.ndarray:
    """Frames on the audio clock: frame i shows pts i * 666; a gap repeats the previous frame."""
    if not result.frames:
        raise ValueError("the daemon sent no frames")
    by_seq = {f.seq: f.image for f in result.frames if f.image is not None}
    n = max(max(by_seq) + 1, int(np.ceil(n_samples * FPS / SAMPLE_RATE)))
    first = by_seq[min(by_seq)]
    out, last = [], first
    for seq in range(n):
        last = by_seq.get(seq, last)
        out.append(last)
    return np.stack(out)


def write_outputs(
    result: ConversationResult,
    out_dir: str | Path,
    speak: np.ndarray | None,
    listen: np.ndarray | None,
    *,
    video_name: str = "video.mp4",
) -> dict[str, Path]:
    """`frames.json` (seq, pts and timing per frame, playback events) and the video with audio."""
    from lpm_npc.synth.conversation import mix_tracks
    from lpm_npc.synth.video_io import write_mp4

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n = max(len(speak) if speak is not None else 0, len(listen) if listen is not None else 0)
    zeros = np.zeros(n, np.float32)
    speak_full = zeros.copy() if speak is None else np.pad(speak, (0, n - len(speak)))
    listen_full = zeros.copy() if listen is None else np.pad(listen, (0, n - len(listen)))
    frames = video_frames(result, n)
    audio = mix_tracks(speak_full, listen_full)
    audio = np.pad(audio, (0, max(0, int(len(frames) * SAMPLE_RATE / FPS) + 1 - len(audio))))
    video = out_dir / video_name
    write_mp4(video, frames, FPS, audio=audio)
    listing = {
        "session_id": result.session_id,
        "frames": [
            {
                "seq": f.seq,
                "chunk_index": f.chunk_index,
                "pts_samples": f.pts_samples,
                "pts_ms": f.pts_ms,
                "speaking": f.speaking,
                "idle": f.idle,
                "latency_ms": (f.received_at_unix_ns - f.input_ready_unix_ns) / 1e6,
            }
            for f in result.frames
        ],
        "playback": result.playback,
        "overwritten_shm_frames": result.overwritten,
    }
    listing_path = out_dir / "frames.json"
    listing_path.write_text(json.dumps(listing, indent=1))
    return {"frames": listing_path, "video": video}
