"""`lpm-npc demo`: the product in one command, driven exactly as a game engine drives it.

Starts the daemon in-process on a free port, registers a sample character (samples/characters/,
or one rendered from a seed), and plays a scripted conversation through Converse: the player's
microphone streams all the time (LISTEN), the NPC speaks two lines (SPEAK, each followed by a
segment end), and the player barges in during the second line (Interrupt). Like an engine, the
sender is clocked by what is on screen: it sends audio up to a little ahead of the newest frame,
so the demo runs in real time on a fast machine and simply takes longer on a slow one. Writes
DIR/demo.mp4 (video + both tracks as heard), DIR/contact_sheet.png (generated frames) and
DIR/truth_vs_generated.png: the procedural world's ground truth of the same conversation (the
character's seed, both tracks as heard -- the NPC cut at the barge-in -- and the script's turns,
performed and rendered as `lpm-npc synth conversation --speak --listen --character` does) above
the generated frames at the same frame indices, two speaking, two listening and two idle moments
picked from the truth (`demo_sheets.pick_moments`); `--no-truth` skips it. The backend flags
(`lpm_npc.onnx.backend`: `--backend torch|onnxruntime`, `--onnx-export`, `--ort-threads`,
`--ort-decoder`) pick the daemon's generator.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SPEAK_LINES = ("tts_sentence.wav", "babble_speak.wav")
PLAYER_AUDIO = "babble_listen.wav"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="start the daemon, register a sample character, play a conversation, write a video",
        description="Writes DIR/demo.mp4 (video with both audio tracks), DIR/contact_sheet.png "
        "and DIR/truth_vs_generated.png (ground truth above generated frames); prints where "
        "they are.",
    )
    parser.add_argument("--out", default="out/demo", help="output directory")
    parser.add_argument("--checkpoint", default=None, help="checkpoint dir (default: embedded)")
    parser.add_argument("--seed", type=int, default=1, help="session seed (and fallback character)")
    parser.add_argument(
        "--lookahead",
        type=float,
        default=0.5,
        help="seconds of audio sent ahead of the newest frame (an engine's buffer)",
    )
    parser.add_argument(
        "--no-truth",
        action="store_true",
        help="skip rendering the ground truth and DIR/truth_vs_generated.png",
    )
    parser.add_argument("--json", action="store_true", help="print a machine-readable summary")
    from lpm_npc.onnx.backend import add_backend_arguments

    add_backend_arguments(parser)
    parser.set_defaults(func=run)


@dataclass(frozen=True)
class Script:
    """A conversation as timed client events (media samples) and the audio as it is heard."""

    events: list  # [(send_at_sample, ClientEvent)], sorted
    speak: object  # float32 (N,): NPC audio as sent (the engine stops playback at the barge-in)
    listen: object  # float32 (N,)
    interrupt_at: int  # sample of the barge-in
    turns: tuple = ()  # synth.script.Turn: who talks when, as scripted (the NPC's lines in full)


def _samples_root() -> Path:
    return Path(__file__).resolve().parents[2] / "samples"


def _load_audio(seed: int):  # noqa: ANN202
    """NPC lines and player speech: samples/audio, or synthesised when missing."""
    import numpy as np

    from lpm_npc.synth.audio_io import read_wav

    root = _samples_root() / "audio"
    if all((root / name).is_file() for name in (*SPEAK_LINES, PLAYER_AUDIO)):
        lines = [read_wav(root / name) for name in SPEAK_LINES]
        return lines, read_wav(root / PLAYER_AUDIO)
    from lpm_npc.synth.director import direct_conversation

    conversation = direct_conversation(seed, 12.0, prompt="")
    half = len(conversation.speak) // 2
    player = conversation.listen[np.abs(conversation.listen) > 0][: 5 * 16000]
    return [conversation.speak[:half], conversation.speak[half:]], player


def build_script(seed: int, lookahead_s: float) -> Script:
    import numpy as np

    from lpm_npc._proto import sessions_pb2 as spb
    from lpm_npc.config import SAMPLE_RATE
    from lpm_npc.serve.client import audio_event, interrupt_event, segment_end_event
    from lpm_npc.synth.script import Turn

    sr = SAMPLE_RATE
    (line1, line2), player = _load_audio(seed)
    line1_at = int(0.5 * sr)
    reply_at = line1_at + len(line1) + int(0.5 * sr)  # the player answers
    reply = player[: 3 * sr]
    line2_at = reply_at + len(reply) + int(0.3 * sr)
    interrupt_at = line2_at + int(min(2.0 * sr, len(line2) * 0.5))  # barge-in mid-line
    barge = player[3 * sr : 5 * sr]
    total = interrupt_at + len(barge) + int(0.8 * sr)
    listen = np.zeros(total, np.float32)
    listen[reply_at : reply_at + len(reply)] = reply
    listen[interrupt_at : interrupt_at + len(barge)] = barge
    speak = np.zeros(total, np.float32)  # both lines in full; cut where the daemon stopped it
    speak[line1_at : line1_at + len(line1)] = line1
    speak[line2_at : line2_at + len(line2)] = line2[: total - line2_at]
    ahead = int(lookahead_s * sr)
    events = []
    for start in range(0, total, 1600):  # the microphone: always streaming, 100 ms pieces
        events.append((start, audio_event(spb.TRACK_LISTEN, listen[start : start + 1600], start)))
    for at, line in ((line1_at, line1), (line2_at, line2)):
        # TTS is ready before the line starts: the engine sends it whole, a little ahead.
        for offset in range(0, len(line), 8000):
            piece = line[offset : offset + 8000]
            events.append((at - ahead, audio_event(spb.TRACK_SPEAK, piece, at + offset)))
        events.append((at - ahead, segment_end_event(spb.TRACK_SPEAK)))
    events.append((interrupt_at, interrupt_event()))
    events.sort(key=lambda item: item[0])  # stable: a line's pieces keep their order
    spans = (
        ("npc", line1_at, line1_at + len(line1)),
        ("player", reply_at, reply_at + len(reply)),
        ("npc", line2_at, min(line2_at + len(line2), total)),
        ("player", interrupt_at, interrupt_at + len(barge)),
    )
    turns = tuple(Turn(who, a / sr, b / sr) for who, a, b in spans if b > a)
    return Script(events, speak, listen, interrupt_at, turns)


def _register_character(client, seed: int, work: Path):  # noqa: ANN001, ANN202
    """Register the first sample sheet (or one rendered for `seed` when samples/characters is
    empty); return its id, its front view and its folder."""
    from lpm_npc.synth.character import CharacterSpec
    from lpm_npc.synth.sheet import load_sheet, render_sheet, write_sheet

    candidates = sorted((_samples_root() / "characters").glob("*/sheet.toml"))
    if candidates:
        sheet_dir = candidates[0].parent
    else:
        sheet = render_sheet(CharacterSpec.from_seed(seed), 128, name=f"demo-{seed}")
        sheet_dir = write_sheet(sheet, work / "sheet")
    front = load_sheet(sheet_dir).find("view", "front").image
    return client.register_sheet_dir(sheet_dir).character_id, front, sheet_dir


def run(args: argparse.Namespace) -> int:
    import tempfile

    import numpy as np
    from tqdm import tqdm

    from lpm_npc.commands.demo_sheets import contact_sheet
    from lpm_npc.config import SAMPLE_RATE, SAMPLES_PER_FRAME, ServeConfig
    from lpm_npc.onnx.backend import BackendChoice, make_generator
    from lpm_npc.serve.client import (
        ConversationResult,
        EventQueue,
        LpmClient,
        ReceivedFrame,
        header_event,
        video_frames,
    )
    from lpm_npc.serve.server import ServerThread
    from lpm_npc.synth.conversation import mix_tracks, resolve_character
    from lpm_npc.synth.video_io import write_mp4

    started = time.monotonic()
    backend = BackendChoice.from_args(args)
    backend.check()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    generator = make_generator(
        backend, checkpoint=args.checkpoint, allow_random=args.checkpoint is None
    )
    script = build_script(args.seed, args.lookahead)
    total_frames = len(script.listen) // SAMPLES_PER_FRAME
    with (
        tempfile.TemporaryDirectory() as work,
        ServerThread(
            generator=generator, store_dir=str(Path(work) / "store"), config=ServeConfig()
        ) as server,
        LpmClient(server.address) as client,
    ):
        character, front, sheet_dir = _register_character(client, args.seed, Path(work))
        # The truth's character: the registered sheet's seed (read before `work` goes away).
        spec = None if args.no_truth else resolve_character(args.seed, sheet_dir)[0]
        list(client.prepare(character))
        session = client.open_session(character, seed=args.seed)
        print(
            f"daemon on {server.address}; character {character}; session {session.session_id}",
            file=sys.stderr,
        )
        queue = EventQueue()
        queue.put(header_event(session.session_id))
        shown = [0]  # newest pts on screen (samples): the engine's clock
        done = threading.Event()

        def send() -> None:
            ahead = int(args.lookahead * SAMPLE_RATE)
            for at, event in script.events:
                while shown[0] + ahead < at and not done.is_set():
                    time.sleep(0.01)
                queue.put(event)
            queue.close()

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        result = ConversationResult(session.session_id)
        with tqdm(total=total_frames, unit="frame", file=sys.stderr, desc="demo") as bar:
            for event in client.converse(queue, timeout=600):
                kind = event.WhichOneof("event")
                if kind == "frame":
                    f = event.frame
                    image = np.frombuffer(f.data, np.uint8).reshape(f.height, f.width, 3)
                    result.frames.append(ReceivedFrame.from_proto(f, image))
                    shown[0] = f.pts_samples + SAMPLES_PER_FRAME
                    bar.update(1)
                elif kind in ("playback_started", "playback_finished"):
                    p = getattr(event, kind)
                    result.playback.append(
                        {
                            "event": kind,
                            "segment": p.segment,
                            "pts_ms": round(p.pts_ms, 1),
                            "interrupted": getattr(p, "interrupted", False),
                        }
                    )
                    tqdm.write(
                        f"{kind} segment {p.segment} at {p.pts_ms / 1000:.2f}s", file=sys.stderr
                    )
        done.set()
        sender.join(timeout=5)
        client.close_session(session.session_id)
    frames = video_frames(result, len(script.listen))
    heard = script.speak.copy()
    cut = None
    for event in result.playback:
        if event["interrupted"]:  # the engine stops the NPC's audio where the daemon cut it
            cut = int(event["pts_ms"] * SAMPLE_RATE / 1000)
            heard[cut:] = 0.0
    audio = mix_tracks(heard, script.listen)
    audio = np.pad(audio, (0, max(0, len(frames) * SAMPLES_PER_FRAME - len(audio))))
    video = out / "demo.mp4"
    write_mp4(video, frames, 24, audio=audio)
    picks = np.linspace(0, len(frames) - 1, 11).round().astype(int)
    # What the frames show, from the daemon's own playback events (the cut is where it stopped).
    spoken, start = [], None
    for event in result.playback:
        pts = int(event["pts_ms"] * SAMPLE_RATE / 1000)
        if event["event"] == "playback_started":
            start = pts
        elif start is not None:
            spoken.append((start, pts))
            start = None
    labels = []
    for i in picks:
        s = min(i * SAMPLES_PER_FRAME, len(script.listen) - 1)
        speaking = any(a <= s < b for a, b in spoken)
        labels.append(
            "speaking" if speaking else "listening" if abs(script.listen[s]) > 0 else "idle"
        )
    sheet = out / "contact_sheet.png"
    contact_sheet(
        [front, *(frames[i] for i in picks)],
        [None, *(picks / 24.0)],
        ["reference (front view)", *labels],
        sheet,
    )
    truth = None
    if spec is not None:
        truth, moments = _truth_sheet(spec, script, heard, cut, frames, args, out)
    elapsed = time.monotonic() - started
    summary = {
        "video": str(video),
        "contact_sheet": str(sheet),
        "truth_vs_generated": None if truth is None else str(truth),
        "truth_moments": [] if truth is None else moments,
        "frames": len(result.frames),
        "media_seconds": round(len(script.listen) / SAMPLE_RATE, 2),
        "wall_seconds": round(elapsed, 1),
        "backend": backend.backend,
        "playback": result.playback,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        written = f"{video}, {sheet} and {truth}" if truth else f"{video} and {sheet}"
        print(
            f"wrote {written} ({len(result.frames)} frames, "
            f"{summary['media_seconds']} s of conversation in {elapsed:.0f} s)"
        )
    return 0


def _truth_sheet(spec, script: Script, heard, cut, frames, args, out: Path):  # noqa: ANN001, ANN202
    """Render the truth of the conversation as streamed (NPC audio and turn cut at `cut`, the
    barge-in) and write DIR/truth_vs_generated.png; return its path and the moments as JSON."""
    from lpm_npc.commands.demo_sheets import truth_moments, truth_vs_generated_sheet
    from lpm_npc.config import SAMPLE_RATE
    from lpm_npc.synth.script import Turn

    turns = list(script.turns)
    if cut is not None:
        cut_s = cut / SAMPLE_RATE
        turns = [
            Turn(t.speaker, t.start_s, min(t.end_s, cut_s))
            if t.speaker == "npc" and t.start_s < cut_s
            else t
            for t in turns
            if not (t.speaker == "npc" and t.start_s >= cut_s)
        ]
    start = time.monotonic()
    moments, truth = truth_moments(
        spec,
        heard,
        script.listen,
        turns,
        seed=args.seed,
        size=int(frames.shape[1]),
        n_frames=len(frames),
    )
    path = out / "truth_vs_generated.png"
    truth_vs_generated_sheet(
        moments,
        truth,
        frames[[m.frame for m in moments]],
        path,
        title=f"ground truth (procedural director + renderer, character seed {spec.seed}) "
        f"above generated ({getattr(args, 'backend', 'torch')}), same frame index",
    )
    print(f"truth: {len(moments)} moments in {time.monotonic() - start:.1f} s", file=sys.stderr)
    return path, [
        {"kind": m.kind, "frame": m.frame, "seconds": round(m.seconds, 2)} for m in moments
    ]
