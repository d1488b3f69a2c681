"""lpm_npc.serve"""
