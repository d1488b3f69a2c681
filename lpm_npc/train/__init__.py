"""lpm_npc.train"""
