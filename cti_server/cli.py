"""``cti-server`` command line: ``run`` the server, and the admin and planning tools.

Each area adds its sub-commands through a ``register(subparsers)`` function listed in ``_AREAS``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import structlog

from cti_server import admin_cli
from cti_server.config import ConfigError, load_config
from cti_server.logs import configure_logging
from cti_server.routing import simulate_cli

log = structlog.get_logger(__name__)

Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _register_run(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("run", help="run the server (SIP and HTTP) until interrupted")
    p.add_argument("--config", type=Path, default=None, help="TOML file (default config/cti-server.toml)")
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from cti_server.event_loop import run_on_event_loop
    from cti_server.server import run_until_signalled

    config = load_config(args.config)
    configure_logging(config.log, cache_loggers=True)
    run_on_event_loop(config.server.event_loop, run_until_signalled(config))
    return 0


_AREAS: list[Register] = [_register_run]
_AREAS.append(simulate_cli.register)
_AREAS.append(admin_cli.register)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cti-server", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for register in _AREAS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cti-server`` console script."""
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except ConfigError as exc:
        sys.stderr.write(f"cti-server: configuration error: {exc}\n")
        return 2
    except OSError as exc:
        # A listener that cannot bind (port taken, address not local) is an operator problem, not a bug.
        sys.stderr.write(f"cti-server: cannot start: {exc}; check the ports and hosts in the configuration\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    raise SystemExit(main())
