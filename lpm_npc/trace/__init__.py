"""Dialogue traces: record what the live daemon's generator consumed per chunk, replay it offline.

- `trace/format.py` — the file format (docs/trace-format.md): `TraceWriter`, `read_trace`.
- `trace/recorder.py` — `SessionRecorder`, fed by the scheduler (`Scheduler.recorders`).
- `trace/replayer.py` — `replay(trace, generator)`: re-runs the generator and checks digests.
- `trace/golden.py` — the golden traces in `samples/traces/`, driven through the real scheduler.

This package imports neither grpc nor `_proto`; the serve layer and the CLI call into it.
"""
