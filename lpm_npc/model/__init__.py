"""lpm_npc.model"""
