"""lpm_npc.trace"""
