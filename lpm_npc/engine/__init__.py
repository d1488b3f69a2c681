"""lpm_npc.engine"""
