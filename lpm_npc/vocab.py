"""The vocabulary of a reference sheet: roles, the labels each role allows, and the expressions.

A leaf module (it imports nothing from the project), so both sides can share it without depending
on each other: `synth` validates, renders and blends faces with it; `model` embeds (role, label)
pairs with it and never imports the procedural world.

- `ROLES`: `global` (scene and lighting), `view` (the body from one side), `expression` (a face).
- `ROLE_LABELS[role]`: the labels a sheet may give an image of that role.
- `EXPRESSIONS`: the faces the renderer blends; their order is the column order of
  `synth.motion.Motion.expression` and part of the label ids of every trained checkpoint.
- `LABELS`: every label in id order; id 0 is "no label" (a global reference may have none).

Changing an order here changes the ids a checkpoint was trained with: only append.
"""

from __future__ import annotations

EXPRESSIONS: tuple[str, ...] = (
    "neutral",
    "smile",
    "laugh",
    "sad",
    "angry",
    "surprised",
    "skeptical",
)
ROLES: tuple[str, ...] = ("global", "view", "expression")
GLOBAL_LABELS: tuple[str, ...] = ("scene",)
VIEW_LABELS: tuple[str, ...] = ("front", "left", "right", "back")
ROLE_LABELS: dict[str, tuple[str, ...]] = {
    "global": GLOBAL_LABELS,
    "view": VIEW_LABELS,
    "expression": EXPRESSIONS,
}
LABELS: tuple[str, ...] = ("", *GLOBAL_LABELS, *VIEW_LABELS, *EXPRESSIONS)
