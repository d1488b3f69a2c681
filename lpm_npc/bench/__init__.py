"""lpm_npc.bench"""
