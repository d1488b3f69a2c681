"""lpm_npc.synth"""
