"""CLI subcommand groups. Each module exposes `register(subparsers)` and imports heavy deps lazily."""
