"""The ``spikeverse`` command line (Typer). Each command lives in its own module and only parses
options and calls the library. User errors print one line on stderr and exit with code 2."""

from __future__ import annotations

import sys

import typer

from spikeverse.device import tune_cpu_allocator
from spikeverse.errors import SpikeverseError

app = typer.Typer(
    name="spikeverse",
    help="Spiking neural networks for reinforcement learning: train, convert, evaluate, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    """Import every command module of this package; each registers its commands on ``app``."""
    import importlib
    import pkgutil

    import spikeverse.cli as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if mod.name not in ("app", "__main__"):
            importlib.import_module(f"spikeverse.cli.{mod.name}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning user errors into one line + exit code 2."""
    _register()
    tune_cpu_allocator()
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="spikeverse")
        return rv if isinstance(rv, int) else 0
    except SpikeverseError as e:
        lines = str(e).strip().splitlines()  # one line, whatever the message holds
        print(f"error: {lines[0] if lines else type(e).__name__}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted (checkpoint saved)", file=sys.stderr)
        return 130
    except OSError as e:  # a path that cannot be read or written (--out naming a file, a missing folder, ...)
        where = e.filename if e.filename is not None else ""
        print(f"error: {where}{': ' if where else ''}{e.strerror or type(e).__name__}", file=sys.stderr)
        return 2
    except Exception as e:
        # usage errors of the click layer under Typer (vendored in recent Typer releases, so
        # matched by shape rather than by class): one line, their exit code (2)
        if type(e).__name__ == "NoArgsIsHelpError":
            return 0
        if type(e).__name__ == "Abort":
            print("interrupted", file=sys.stderr)
            return 130
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):
            print(f"error: {e.format_message().splitlines()[0]}", file=sys.stderr)
            return int(e.exit_code) or 2
        raise


if __name__ == "__main__":
    sys.exit(main())
