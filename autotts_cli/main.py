"""The ``autotts`` command line.

Each module in :mod:`autotts_cli.commands` adds its own subcommands through a
``register(subparsers)`` function; heavy imports (torch, anthropic) happen only inside the
command that needs them.

One error path: a failure ends in one line ``autotts CMD: error: WHAT: PROBLEM`` on stderr
and exit 1 (exit 2 for a bad flag or argument: :class:`~autotts_gym.errors.UsageError`,
argparse errors), never a traceback unless ``--debug`` is given (anywhere on the line) or
``AUTOTTS_DEBUG=1`` is set.

A command whose results go into ``--out`` declares it with ``set_defaults(out_policy=...)``:
``"lock"`` checks the directory before the work starts and holds its run lock while the
command runs (:func:`autotts_gym.outputs.prepare_out`); ``"check"`` only checks it (the
command manages its own directory, e.g. a resumable run).
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import pkgutil
import sys

from autotts_gym import __version__
from autotts_gym.errors import AutoTTSError, UsageError

from . import commands

_NO_HELP = "\0"  # set on flags registered without help, so that their default still shows


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Shows every value flag's default, unless its help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = "" if action.help in (None, _NO_HELP) else action.help
        no_value = action.nargs == 0 or isinstance(action, argparse._SubParsersAction)
        if (no_value or action.required or not action.option_strings
                or action.default is argparse.SUPPRESS or "default" in text.lower()):
            return text
        value = action.default
        if isinstance(value, (list, tuple)):
            value = ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
        elif value is None or value == "":
            value = "none"
        shown = str(value).replace("%", "%%")
        return f"{text} (default: {shown})" if text else f"default: {shown}"


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: ``autotts CMD: error: ...; see autotts CMD --help``."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _style(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = HelpFormatter
    for action in parser._actions:
        if action.option_strings and action.nargs != 0 and not action.help:
            action.help = _NO_HELP
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _style(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="autotts",
        description="Test-time scaling of reasoning LLMs as a Gymnasium environment.",
    )
    parser.add_argument("--version", action="version", version=f"autotts-gym {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of a failure (also after the command)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    _style(parser)
    return parser


def _command_name(args: argparse.Namespace) -> str:
    words = [args.command] + [str(getattr(args, k)) for k in ("data_command",)
                              if getattr(args, k, None)]
    return "autotts " + " ".join(words)


def _url_of(e: BaseException) -> str | None:
    """The URL a connection error was about, searched along the exception chain."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        request = getattr(e, "request", None)
        url = getattr(request, "url", None) or getattr(e, "url", None)
        if url:
            return str(url)
        e = e.__cause__ or e.__context__
    return None


def _root_cause(e: BaseException) -> BaseException:
    seen = {id(e)}
    while (nxt := e.__cause__ or e.__context__) is not None and id(nxt) not in seen:
        seen.add(id(nxt))
        e = nxt
    return e


def _is_connection_error(e: BaseException) -> bool:
    import urllib.error

    if isinstance(e, (ConnectionError, TimeoutError, urllib.error.URLError)):
        return True
    names = {c.__name__ for c in type(e).__mro__}
    return bool(names & {"APIConnectionError", "APITimeoutError", "ConnectError",
                         "ConnectTimeout", "ReadTimeout"})


def describe_failure(e: BaseException, args: argparse.Namespace | None = None
                     ) -> tuple[str, int]:
    """``(one-line message, exit code)`` for a failure the user can act on; the message
    names the thing (path, URL, flag) and the problem."""

    def one_line(text: object) -> str:
        return " ".join(str(text).split())

    if isinstance(e, UsageError):
        return one_line(e), 2
    if isinstance(e, AutoTTSError):
        return one_line(e), 1
    if _is_connection_error(e):
        url = _url_of(e) or getattr(args, "base_url", None) or "the server"
        why = one_line(getattr(e, "reason", None) or e) or type(e).__name__
        root = _root_cause(e)
        if root is not e and one_line(root) and one_line(root) not in why:
            why += f" ({one_line(root)})"
        return f"cannot reach {url}: {why}", 1
    if isinstance(e, OSError):
        what = e.filename if e.filename is not None else None
        why = {errno.ENOSPC: "no space left on device (disk full)",
               errno.EDQUOT: "disk quota exceeded"}.get(e.errno or 0,
                                                        e.strerror or one_line(e))
        if isinstance(e, PermissionError):
            why = f"permission denied ({e.strerror})" if e.strerror else "permission denied"
        return (f"{what}: {why}" if what else why), 1
    if isinstance(e, RecursionError):
        return "input nested too deeply to read (recursion limit)", 1
    if isinstance(e, MemoryError):
        return "out of memory; use fewer seeds, betas or workers", 1
    if isinstance(e, ValueError):  # a bad option value found by a command or a library
        return one_line(e) or type(e).__name__, 2
    name = type(e).__name__
    if "AuthenticationError" in name or "PermissionDeniedError" in name:
        return f"authentication failed: {one_line(e)} (is the API key set?)", 1
    return (f"unexpected {name}: {one_line(e)} (run again with --debug for the traceback "
            "and please report it)"), 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("AUTOTTS_DEBUG") == "1"
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help and --version (0) and argparse's usage errors (2)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    name = _command_name(args)
    try:
        policy = getattr(args, "out_policy", None)
        if policy and getattr(args, "out", None) is not None:
            from autotts_gym.outputs import check_out, prepare_out

            if policy == "lock":
                with prepare_out(args.out, name):
                    return int(args.func(args) or 0)
            check_out(args.out)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as e:
        if debug:
            raise
        message, code = describe_failure(e, args)
        print(f"{name}: error: {message}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
