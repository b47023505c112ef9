"""The function's ASGI app in this process, with its real worker processes: for fast fuzzing.

`InProcess(**env)` starts the app's lifespan on an event loop in a thread; `post` sends one request
through the app's ASGI adapter, which hands it to `App.respond` as the server's own protocol does
(header joining and body limits alike; the HTTP parsing and framing are the raw-socket tests'), and
returns the status, the headers and the body.
"""

import asyncio
import threading

from function.app import App
from function.config import Settings
from function.lifecycle import Function


class InProcess:
    def __init__(self, **env: str) -> None:
        self.app = App(Function(Settings.from_env(env)))
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="asgi", daemon=True).start()
        self._lifespan = asyncio.Queue()
        self._call(self._start())

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(120)

    async def _start(self) -> None:
        started = asyncio.Event()
        inbox: asyncio.Queue = asyncio.Queue()
        self._inbox = inbox

        async def send(message: dict) -> None:
            if message["type"] == "lifespan.startup.complete":
                started.set()

        await inbox.put({"type": "lifespan.startup"})
        self._task = self.loop.create_task(self.app({"type": "lifespan"}, inbox.get, send))
        await started.wait()
        await self.app.fn.batcher._wait_for_model()

    def post(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        return self._call(self._request("POST", path, headers, body))

    async def _request(self, method: str, path: str, headers: dict[str, str], body: bytes):
        path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "method": method,
            "path": path,
            "query_string": query.encode(),
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        }
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        answer: dict = {}

        async def receive() -> dict:
            return messages.pop(0) if messages else {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                answer["headers"] = {k.decode(): v.decode() for k, v in message["headers"]}
            else:
                answer["body"] = message["body"]

        await self.app(scope, receive, send)
        return answer["status"], answer["headers"], answer["body"]

    def close(self) -> None:
        self._call(self._inbox.put({"type": "lifespan.shutdown"}))
        self._call(asyncio.wait_for(self._task, 60))
        self.loop.call_soon_threadsafe(self.loop.stop)
