"""Triton kernels, installed as `lpm_npc.kernels`. Each op has a torch reference and a dispatch switch."""
