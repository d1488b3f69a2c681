"""Generated gRPC stubs of proto/lpm_npc/v1 (do not edit; run `python -m lpm_npc.serve.protogen`).

Only `lpm_npc.serve` imports this package.
"""
