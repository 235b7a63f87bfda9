"""The ``spikeverse`` command line (Typer). Each command lives in its own module and only parses
options and calls the library. User errors print one line on stderr and exit with code 2."""

from __future__ import annotations

import sys

import click
import typer

from spikeverse.errors import SpikeverseError

app = typer.Typer(
    name="spikeverse",
    help="Spiking neural networks for reinforcement learning: train, convert, evaluate, report.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from spikeverse.cli import evaluate, run, train  # noqa: F401  (commands register on import)


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning user errors into one line + exit code 2."""
    _register()
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="spikeverse")
        return rv if isinstance(rv, int) else 0
    except SpikeverseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except click.exceptions.NoArgsIsHelpError:
        return 0
    except click.UsageError as e:
        print(f"error: {e.format_message().splitlines()[0]}", file=sys.stderr)
        return 2
    except click.exceptions.Abort:
        print("interrupted", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("interrupted (checkpoint saved)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
