"""Serve reward models over HTTP for RL trainers (batched; /v1/score, Flow-Factory, OpenRLHF).

Library: :mod:`solireward.serving` (protocols, dynamic batching, limits); design: docs/SERVING.md.
"""

from __future__ import annotations

import argparse
import logging

from solireward.commands._options import add_config_argument, add_dataclass_arguments, parse_dataclass
from solireward.errors import InputError
from solireward.serving.config import API_KEY_ENV, ServeConfig, is_loopback

logger = logging.getLogger("solireward.serve")

_REPEATABLE = ("model", "weights")  # `--model a=X --model b=Y` adds up, as does `--model a=X b=Y`


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the flags of `solireward serve`."""
    parser.epilog = ("Example: solireward serve --model phys=runs/phys/model text=runs/text/model --weights text=0.5 "
                     f"--video_root /data/rollouts. Set ${API_KEY_ENV} (or --api_key) before binding a non-loopback "
                     "address. SIGTERM stops accepting, finishes the batches in flight, then exits.")
    add_config_argument(parser)
    add_dataclass_arguments(parser, ServeConfig, "serve")
    for action in parser._actions:  # argparse has no public way to turn a declared flag into 'extend'
        if action.dest in _REPEATABLE:
            action.__class__ = argparse._ExtendAction


def run(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM or Ctrl-C; 0 after a clean shutdown, 1 when the models failed to load."""
    try:
        import uvicorn

        from solireward.serving.app import ServerState, create_app
    except ImportError as exc:
        raise InputError(f"serving needs the 'serve' extra ({exc.name} is missing): "
                         "pip install 'solireward[serve]'") from None
    config = parse_dataclass(ServeConfig, args, getattr(args, "config", None))
    holder: dict[str, uvicorn.Server] = {}
    state = ServerState(config, on_fatal=lambda: setattr(holder["server"], "should_exit", True))
    if not is_loopback(config.host) and state.api_key is None:
        logger.warning("binding %s without an API key: anyone who can reach this port can use the models "
                       "(set $%s or --api_key)", config.host, API_KEY_ENV)
    app = create_app(config, state=state)
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="info",
                                           access_log=False, timeout_graceful_shutdown=None,
                                           server_header=False))
    holder["server"] = server
    server.run()
    return 1 if state.error else 0
