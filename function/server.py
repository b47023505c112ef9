"""The HTTP server: uvicorn's server (binding, signals, lifespan, graceful drain) around the
function's own HTTP/1.1 protocol (`function.connection`), on one uvloop event loop.

An event loop holds a slow or stalled connection for the price of a coroutine, so slow clients
cannot take the server's capacity away (a thread per connection would be held).
"""

import logging
import signal
import sys

import uvicorn

from function.app import App
from function.config import Settings
from function.connection import protocol_class
from function.lifecycle import Function

log = logging.getLogger("function.access")


def run(settings: Settings) -> None:
    """Bind first (a busy port fails before any worker starts), then serve until SIGTERM."""
    fn = Function(settings)
    app = App(fn)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=protocol_class(app, settings),
        loop="uvloop",
        ws="none",
        lifespan="on",
        timeout_keep_alive=int(max(1, settings.keepalive_timeout_seconds)),
        timeout_graceful_shutdown=int(settings.shutdown_timeout_seconds),
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,
    )
    try:
        sock = config.bind_socket()
    except (OSError, SystemExit) as exc:
        log.error("cannot listen on %s:%d: %s", settings.host, settings.port, exc)
        sys.exit(2)
    log.info("listening on http://%s:%d", settings.host, settings.port)
    # uvicorn drains on SIGTERM and SIGINT, then raises the signal again under the handlers it found:
    # make those no-ops, so a drained shutdown exits 0 (as Knative expects), not killed by the signal.
    for drained in (signal.SIGTERM, signal.SIGINT):
        signal.signal(drained, lambda *_: None)
    uvicorn.Server(config).run(sockets=[sock])


def main() -> None:
    from function.config import ConfigError

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        sys.exit(f"configuration error: {exc}")
    logging.basicConfig(
        stream=sys.stdout, level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    run(settings)
