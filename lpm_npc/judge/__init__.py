"""The judge: a small CNN that reads motion parameters back from frames, to score generated video.

Bench and train import it; `lpm_npc.model` and `lpm_npc.engine` never do.
"""

from lpm_npc.judge.net import JudgeNet
from lpm_npc.judge.reader import Judge, JudgeReading, load_judge, save_judge

__all__ = ["Judge", "JudgeNet", "JudgeReading", "load_judge", "save_judge"]
