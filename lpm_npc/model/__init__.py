"""lpm_npc.model: pure nn.Modules of Online LPM (no I/O, no sessions, no gRPC).

- `vae` / `vae_cache`: causal video VAE (stride 8 x 8 x 4) with a streaming decode cache.
- `audio`: shared SPEAK / LISTEN audio encoder (causal log-mel front end, pluggable).
- `text`: built-in hashed-word prompt encoder and the `PromptEncoder` interface.
- `flow`: rectified-flow schedule, shifted timesteps and samplers.
- `block`, `backbone`, `refiner`, `caches`, `lpm`: the DiT and its streaming caches.

Import the submodules directly; this package re-exports nothing so importing it stays cheap.
"""
