"""`lpm-npc synth ...`: the procedural world (characters, speech, conversations)."""

from __future__ import annotations

import argparse

from lpm_npc.commands.synth_conversation import register_conversation_commands


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("synth", help="procedural characters, speech and conversations")
    group = parser.add_subparsers(dest="synth_command", metavar="SYNTH_COMMAND")
    parser.set_defaults(func=lambda args: parser.print_help() or 1)
    register_conversation_commands(group)  # visemes, conversation (helper B)
