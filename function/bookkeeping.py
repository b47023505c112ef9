"""Per-request bookkeeping (metrics, the access-log line), held back until the front would wait anyway.

Done right after an answer is written, a request's bookkeeping (about 40 us here, most of it the
access-log line) sits between that answer and the next request on the same connection, where a
client at concurrency 1 waits for it. Held back, it runs once the next batch is handed to a worker
(the front then waits a forward pass), when metrics are scraped, at shutdown, or after
`DELAY_SECONDS` when nothing else comes (health checks, an idle server). The values are taken when
the request ends, so a late run changes when a line is written, not what it says.
"""

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)

DELAY_SECONDS = 0.05  # at most this late when no batch follows: a log line still reads as live


class Bookkeeping:
    def __init__(self, delay: float = DELAY_SECONDS) -> None:
        self.delay = delay
        self._held: list[tuple[Callable[..., None], tuple]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def defer(self, action: Callable[..., None], *args: object) -> None:
        """Run `action(*args)` at the next `flush`, or within `delay` seconds (at once with no event loop)."""
        self._held.append((action, args))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        # One timer per `delay`, not one per request (it is not cancelled on flush); armed again on a
        # new loop, since a timer of a loop that closed never fires.
        if self._timer is None or self._timer_loop is not loop:
            self._timer, self._timer_loop = loop.call_later(self.delay, self._backstop), loop

    def flush(self) -> None:
        """Run everything held, in the order it came. A flush runs inside another request's work (a
        batch handed out, a scrape): an action that fails is logged, never that request's error."""
        held, self._held = self._held, []
        for action, args in held:
            try:
                action(*args)
            except Exception:
                log.exception("bookkeeping failed: %s", getattr(action, "__qualname__", action))

    def _backstop(self) -> None:
        self._timer = None
        self.flush()
