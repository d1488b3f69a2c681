"""Bad input against a real daemon: each case gets its status code, a message naming the field or
limit, and leaves the character store byte-identical."""

from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pytest

from lpm_npc._proto import characters_pb2 as cpb
from lpm_npc._proto import sessions_pb2 as spb
from lpm_npc.cli import main as cli_main
from lpm_npc.config import ServeConfig, SheetLimits
from lpm_npc.engine.generator import StreamingGenerator
from lpm_npc.serve.client import EventQueue, LpmClient, audio_event, header_event
from lpm_npc.serve.server import ServerThread
from lpm_npc.serve.testing import png_bytes, sheet_images

INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
NOT_FOUND = grpc.StatusCode.NOT_FOUND

CONFIG = ServeConfig(
    max_message_bytes=1_000_000,
    max_buffered_seconds=2.0,
    degrade_lag_chunks=1e6,
    recover_lag_chunks=1e6,
    shed_lag_chunks=1e6,
)
LIMITS = SheetLimits(max_images=6, max_file_bytes=60_000, max_total_bytes=150_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    store = tmp_path_factory.mktemp("store")
    with ServerThread(
        generator=StreamingGenerator.from_checkpoint(random_weights=True, preset="test-tiny"),
        store_dir=str(store),
        config=CONFIG,
        sheet_limits=LIMITS,
    ) as running:
        with LpmClient(running.address, timeout=30) as client:
            client.register_images("ann", sheet_images(seed=1))
        yield running


@pytest.fixture(scope="module")
def client(server):
    with LpmClient(server.address, timeout=30) as c:
        yield c


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def _noise_png(side: int, seed: int = 0) -> bytes:
    return png_bytes(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8))


def _images(*overrides: tuple[str, str, str, bytes]) -> list[tuple[str, str, str, bytes]]:
    return [*sheet_images(seed=5)[1:2], *overrides]  # the front view plus the given images


def _register(client: LpmClient, images, character_id: str = "newbie") -> None:
    client.register_images(character_id, images)


def _manifest(client: LpmClient, manifest: str, files: dict[str, bytes]) -> None:
    request = cpb.RegisterCharacterRequest(
        character_id="newbie",
        manifest=cpb.SheetManifest(
            manifest=manifest.encode(),
            files=[cpb.SheetFile(filename=k, content=v) for k, v in files.items()],
        ),
    )
    client.characters.RegisterCharacter(request, timeout=30)


def _converse(client: LpmClient, events_after_header, *, header: bool = True) -> None:
    """Open a session, stream the events, read the stream to its end, close the session."""
    session = client.open_session("ann")
    try:
        events = ([header_event(session.session_id)] if header else []) + list(events_after_header)
        for _ in client.converse(iter(events), timeout=30):
            pass
    finally:
        client.close_session(session.session_id)


def _pcm(n: int, value: float = 0.1) -> np.ndarray:
    return np.full(n, value, np.float32)


def _float_audio(values: np.ndarray, track=spb.TRACK_SPEAK) -> spb.ClientEvent:
    chunk = spb.AudioChunk(
        track=track, pcm=values.astype("<f4").tobytes(), encoding=spb.AUDIO_ENCODING_FLOAT32
    )
    return spb.ClientEvent(audio=chunk)


def _second_stream(client: LpmClient) -> None:
    session = client.open_session("ann")
    queue = EventQueue()
    queue.put(header_event(session.session_id))
    first = client.converse(queue, timeout=30)
    next(first)  # attached
    try:
        for _ in client.converse(iter([header_event(session.session_id)]), timeout=30):
            pass
    finally:
        queue.close()
        first.cancel()
        client.close_session(session.session_id)


@dataclass(frozen=True)
class Case:
    name: str
    run: object  # (client) -> None, expected to raise grpc.RpcError
    code: grpc.StatusCode
    mentions: str  # a fragment the error message must contain (the field or limit)


TRUNCATED_PNG = _noise_png(64)[:200]
CASES = [
    # --- characters ------------------------------------------------------------------------
    Case(
        "id looks like a path",
        lambda c: _register(c, _images(), "../../etc/passwd"),
        INVALID,
        "character_id",
    ),
    Case("id with a slash", lambda c: _register(c, _images(), "a/b"), INVALID, "character_id"),
    Case("id too long", lambda c: _register(c, _images(), "x" * 65), INVALID, "character_id"),
    Case("images form without id", lambda c: _register(c, _images(), ""), INVALID, "character_id"),
    Case(
        "no sheet at all",
        lambda c: c.characters.RegisterCharacter(
            cpb.RegisterCharacterRequest(character_id="x"), timeout=9
        ),
        INVALID,
        "sheet",
    ),
    Case("empty image list", lambda c: _register(c, []), INVALID, "images"),
    Case(
        "truncated png",
        lambda c: _register(c, _images(("view", "left", "l.png", TRUNCATED_PNG))),
        INVALID,
        "l.png",
    ),
    Case(
        "not an image",
        lambda c: _register(c, _images(("view", "left", "l.png", b"hello world"))),
        INVALID,
        "l.png",
    ),
    Case(
        "image too large",
        lambda c: _register(
            c, _images(("view", "left", "l.png", png_bytes(np.zeros((1100, 64, 3), np.uint8))))
        ),
        INVALID,
        "l.png",
    ),
    Case(
        "image too small",
        lambda c: _register(c, _images(("view", "left", "l.png", _noise_png(16)))),
        INVALID,
        "l.png",
    ),
    Case(
        "too many images",
        lambda c: _register(
            c, [("view", "front", f"{i}.png", _noise_png(64, i)) for i in range(7)]
        ),
        EXHAUSTED,
        "max_images",
    ),
    Case(
        "file over the byte limit",
        lambda c: _register(c, _images(("view", "left", "l.png", _noise_png(160)))),
        EXHAUSTED,
        "max_file_bytes",
    ),
    Case(
        "sheet over the byte limit",
        lambda c: _register(
            c,
            _images(
                *[
                    ("expression", e, f"{e}.png", _noise_png(130, i))
                    for i, e in enumerate(("smile", "sad", "angry"))
                ]
            ),
        ),
        EXHAUSTED,
        "max_total_bytes",
    ),
    Case(
        "unknown role",
        lambda c: _register(c, _images(("hat", "", "h.png", _noise_png(64)))),
        INVALID,
        "role",
    ),
    Case(
        "bad view label",
        lambda c: _register(c, _images(("view", "top", "t.png", _noise_png(64)))),
        INVALID,
        "label",
    ),
    Case(
        "no front view",
        lambda c: _register(c, [("view", "left", "l.png", _noise_png(64))]),
        INVALID,
        "front",
    ),
    Case(
        "duplicate file name",
        lambda c: _register(c, _images(("view", "left", "front.png", _noise_png(64)))),
        INVALID,
        "front.png",
    ),
    Case("manifest not toml", lambda c: _manifest(c, "name = [unclosed", {}), INVALID, "toml"),
    Case(
        "manifest names a missing file",
        lambda c: _manifest(
            c, 'name = "x"\n[[image]]\nfile = "f.png"\nrole = "view"\nlabel = "front"\n', {}
        ),
        INVALID,
        "f.png",
    ),
    Case(
        "manifest path traversal",
        lambda c: _manifest(
            c,
            'name = "x"\n[[image]]\nfile = "../f.png"\nrole = "view"\nlabel = "front"\n',
            {"../f.png": _noise_png(64)},
        ),
        INVALID,
        "f.png",
    ),
    Case(
        "message over max_message_bytes",
        lambda c: _register(c, _images(("view", "left", "l.png", b"\0" * 1_200_000))),
        EXHAUSTED,
        "1000000",
    ),
    Case("get unknown id", lambda c: c.get("nobody"), NOT_FOUND, "nobody"),
    Case("get path-like ref", lambda c: c.get("../objects"), INVALID, "ref"),
    Case("get bad version", lambda c: c.get("ann@not-hex"), INVALID, "version"),
    Case("get unknown version", lambda c: c.get("ann@" + "0" * 64), NOT_FOUND, "version"),
    Case("delete unknown id", lambda c: c.delete("nobody"), NOT_FOUND, "nobody"),
    Case("delete path-like ref", lambda c: c.delete("ann/../../x"), INVALID, "ref"),
    Case("prepare unknown id", lambda c: list(c.prepare("nobody")), NOT_FOUND, "nobody"),
    # --- sessions --------------------------------------------------------------------------
    Case("open unknown character", lambda c: c.open_session("nobody"), NOT_FOUND, "nobody"),
    Case("open fps 30", lambda c: c.open_session("ann", fps=30), INVALID, "24"),
    Case(
        "open non-square size",
        lambda c: c.open_session("ann", width=100, height=50),
        INVALID,
        "size",
    ),
    Case(
        "open huge size", lambda c: c.open_session("ann", width=4096, height=4096), INVALID, "1024"
    ),
    Case("open unknown delivery", lambda c: c.open_session("ann", delivery=7), INVALID, "delivery"),
    Case("open prompt too long", lambda c: c.open_session("ann", prompt="x" * 600), INVALID, "512"),
    Case(
        "open too many shm slots",
        lambda c: c.open_session("ann", delivery=spb.DELIVERY_SHM, shm_slots=1000),
        INVALID,
        "shm_slots",
    ),
    Case("close unknown session", lambda c: c.close_session("f" * 32), NOT_FOUND, "session"),
    Case(
        "converse without header",
        lambda c: _converse(c, [audio_event(spb.TRACK_SPEAK, _pcm(160))], header=False),
        INVALID,
        "header",
    ),
    Case(
        "converse empty stream", lambda c: list(c.converse(iter([]), timeout=9)), INVALID, "header"
    ),
    Case(
        "converse unknown session",
        lambda c: list(c.converse(iter([header_event("0" * 32)]), timeout=9)),
        NOT_FOUND,
        "session",
    ),
    Case(
        "bad track enum",
        lambda c: _converse(c, [audio_event(spb.TRACK_UNSPECIFIED, _pcm(160))]),
        INVALID,
        "track",
    ),
    Case(
        "truncated pcm sample",
        lambda c: _converse(
            c, [spb.ClientEvent(audio=spb.AudioChunk(track=spb.TRACK_SPEAK, pcm=b"\0\0\0"))]
        ),
        INVALID,
        "PCM16",
    ),
    Case(
        "NaN audio",
        lambda c: _converse(c, [_float_audio(np.array([0.1, np.nan], np.float32))]),
        INVALID,
        "NaN",
    ),
    Case(
        "float audio out of range",
        lambda c: _converse(c, [_float_audio(np.array([0.5, 2.0], np.float32))]),
        INVALID,
        "[-1, 1]",
    ),
    Case(
        "out-of-order chunks",
        lambda c: _converse(
            c,
            [
                audio_event(spb.TRACK_SPEAK, _pcm(160), 8000),
                audio_event(spb.TRACK_SPEAK, _pcm(160), 4000),
            ],
        ),
        INVALID,
        "sample_position",
    ),
    Case(
        "overlapping chunks",
        lambda c: _converse(
            c,
            [
                audio_event(spb.TRACK_LISTEN, _pcm(1600), 0),
                audio_event(spb.TRACK_LISTEN, _pcm(1600), 800),
            ],
        ),
        INVALID,
        "sample_position",
    ),
    Case(
        "negative position",
        lambda c: _converse(c, [audio_event(spb.TRACK_SPEAK, _pcm(160), -5)]),
        INVALID,
        "sample_position",
    ),
    Case(
        "oversize audio chunk",
        lambda c: _converse(c, [audio_event(spb.TRACK_SPEAK, _pcm(40_000))]),
        INVALID,
        "max_audio_chunk_samples",
    ),
    Case(
        "second header mid-stream", lambda c: _converse(c, [header_event("x")]), INVALID, "header"
    ),
    Case("empty client event", lambda c: _converse(c, [spb.ClientEvent()]), INVALID, "no event"),
    Case(
        "set_prompt too long",
        lambda c: _converse(c, [spb.ClientEvent(set_prompt=spb.SetPrompt(text="y" * 600))]),
        INVALID,
        "512",
    ),
    Case(
        "audio beyond the buffer limit",
        lambda c: _converse(
            c, [audio_event(spb.TRACK_SPEAK, _pcm(16_000), i * 16_000) for i in range(3)]
        ),
        EXHAUSTED,
        "max_buffered_seconds",
    ),
    Case(
        "second stream on a session", _second_stream, grpc.StatusCode.FAILED_PRECONDITION, "already"
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, client: LpmClient, server) -> None:
    store = server.daemon.store.root
    before = _snapshot(store)
    with pytest.raises(grpc.RpcError) as error:
        case.run(client)
    assert error.value.code() == case.code, error.value.details()
    assert case.mentions in error.value.details()
    assert _snapshot(store) == before, "the store changed"
    assert client.get("ann").character_id == "ann"  # nothing already stored was lost


def test_unauthenticated(tmp_path: Path) -> None:
    with ServerThread(
        generator=StreamingGenerator.from_checkpoint(random_weights=True, preset="test-tiny"),
        store_dir=str(tmp_path),
        token="t0k",
    ) as running:
        before = _snapshot(tmp_path)
        with LpmClient(running.address, timeout=10) as anonymous:
            with pytest.raises(grpc.RpcError) as error:
                anonymous.register_images("ann", sheet_images(seed=1))
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert _snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "wav, mentions",
    [("truncated", "truncated"), ("rate", "sample_rate"), ("nan", "NaN")],
)
def test_client_rejects_bad_wav_files(tmp_path: Path, capsys, wav: str, mentions: str) -> None:
    import soundfile as sf

    path = tmp_path / f"{wav}.wav"
    if wav == "truncated":
        sf.write(path, np.zeros(16000, np.float32), 16000, subtype="PCM_16")
        path.write_bytes(path.read_bytes()[:-4000])
    elif wav == "rate":
        sf.write(path, np.zeros(8000, np.float32), 8000, subtype="PCM_16")
    else:
        sf.write(path, np.array([0.0, np.nan, 0.1], np.float32), 16000, subtype="FLOAT")
    code = cli_main(
        [
            "client",
            "--address",
            "127.0.0.1:1",
            "stream",
            "--character",
            "ann",
            "--speak",
            str(path),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert mentions in capsys.readouterr().err
