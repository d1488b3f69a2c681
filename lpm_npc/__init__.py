"""lpm-npc: Online LPM served to game engines."""

__version__ = "0.1.0"
