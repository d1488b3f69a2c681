"""ONNX export of Online LPM's streaming step and an onnxruntime-backed generator.

- `wrappers`: the audio encoder step, the backbone chunk pass, the refiner and the VAE decode step
  as modules whose caches (reference K/V, history ring, audio and VAE conv caches) are plain named
  tensor inputs and `*_out` outputs.
- `export`: `export_onnx(model, out_dir, ...)` writes the four graphs and `manifest.json`
  (`manifest`: names, shapes, dtypes, weights digests).
- `runtime`: onnxruntime sessions (CUDA execution provider on a GPU, CPU otherwise) and options.
- `generator`: `OnnxStreamingGenerator`, the same public methods as
  `engine.generator.StreamingGenerator`, with every per-chunk pass in onnxruntime.
- `backend`: the `--backend torch|onnxruntime` flags of render / serve / demo / bench generator
  and `make_generator`, with the export cache keyed by the weights' digest.
- `bench`: onnxruntime vs eager torch, interleaved (`python -m lpm_npc.onnx.bench`).

Nothing here is imported by the rest of the package unless an ONNX backend is asked for, so
`onnx`, `onnxscript` and `onnxruntime` stay optional (the `[onnx]` extra).
"""
