"""The ``autotts`` command line.

Each module in :mod:`autotts_cli.commands` adds its own subcommands through a
``register(subparsers)`` function; heavy imports (torch, anthropic) happen only inside the
command that needs them.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from . import commands
from autotts_gym.harness import HarnessError
from autotts_gym.store import StoreError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autotts",
        description="Test-time scaling of reasoning LLMs as a Gymnasium environment.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (StoreError, FileNotFoundError, ValueError, HarnessError) as e:
        print(f"autotts {args.command}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        print(f"autotts {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
