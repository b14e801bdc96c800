"""A scriptable, fault-injecting OpenAI-compatible chat server for tests (teacher, LLM judge).

    with ChatServer() as srv:
        srv.inject("429", "500", "timeout")           # the next three requests fail, in order
        srv.rule = lambda prompt, n: "500" if "POISON" in prompt else None   # per-prompt faults
        client = ChatClient(srv.base_url, "m", timeout_s=0.2, ...)

Faults: "429" (with Retry-After: srv.retry_after), "500", "503", "400", "401",
"timeout" (sleeps srv.hang_s before answering, past the client's timeout), "disconnect"
(closes the socket without a response), "non_json", "no_choices" (JSON without choices),
"empty" (empty content), "echo_auth" (500 whose body echoes the Authorization header, to check
that clients scrub keys), "echo_auth_ok" (an answer whose content quotes it: artifacts must not). Otherwise it answers deterministically from the prompt: reply_for().
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

FAULTS = {"429", "500", "503", "400", "401", "timeout", "disconnect", "non_json", "no_choices", "empty", "echo_auth",
          "echo_auth_ok"}


def reply_for(prompt: str) -> str:
    """The deterministic answer: distinct per prompt, so mixed-up results are caught."""
    return f"Rationale: explanation {hashlib.sha256(prompt.encode()).hexdigest()[:16]}."


class ChatServer:
    def __init__(self, *, delay_s: float = 0.0, hang_s: float = 1.0, retry_after: str = "0") -> None:
        self.delay_s = delay_s  # every answer takes this long (to observe concurrency)
        self.hang_s = hang_s
        self.retry_after = retry_after
        self.rule: Callable[[str, int], str | None] | None = None  # (prompt, nth request for it)
        self.requests = 0
        self.faults_served = 0
        self.auth_headers: list[str | None] = []
        self.prompts: list[str] = []
        self.bodies: list[dict] = []
        self.per_prompt: dict[str, int] = {}
        self.inflight = 0
        self.max_inflight = 0
        self._queue: deque[str] = deque()
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- scripting -----------------------------------------------------------------------
    def inject(self, *faults: str) -> None:
        for f in faults:
            if f not in FAULTS:
                raise ValueError(f"unknown fault {f!r} (known: {sorted(FAULTS)})")
        with self._lock:
            self._queue.extend(faults)

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> ChatServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                owner._handle(self)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ChatServer:  # noqa: PYI034
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- request handling ------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length)
        if h.path.rstrip("/") != "/v1/chat/completions":
            return self._send(h, 404, {"error": {"message": f"no route {h.path}"}})
        try:
            body = json.loads(raw)
            prompt = body["messages"][-1]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            return self._send(h, 400, {"error": {"message": "bad request body"}})
        auth = h.headers.get("Authorization")
        with self._lock:
            self.requests += 1
            self.auth_headers.append(auth)
            self.prompts.append(prompt)
            self.bodies.append(body)
            n = self.per_prompt[prompt] = self.per_prompt.get(prompt, 0) + 1
            fault = self._queue.popleft() if self._queue else None
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            if fault is None and self.rule is not None:
                fault = self.rule(prompt, n)
            if fault is not None:
                with self._lock:
                    self.faults_served += 1
            if self.delay_s:
                time.sleep(self.delay_s)
            self._respond(h, fault, prompt, auth, body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout); nothing to answer
        finally:
            with self._lock:
                self.inflight -= 1

    def _respond(self, h, fault, prompt, auth, body) -> None:
        if fault == "429":
            return self._send(h, 429, {"error": {"message": "rate limited"}}, {"Retry-After": self.retry_after})
        if fault in ("500", "503", "400", "401"):
            return self._send(h, int(fault), {"error": {"message": f"injected {fault}"}})
        if fault == "echo_auth":
            return self._send(h, 500, {"error": {"message": f"server error; you sent Authorization: {auth}"}})
        if fault == "disconnect":
            h.close_connection = True
            h.connection.shutdown(2)
            return
        if fault == "non_json":
            return self._send_raw(h, 200, b"<html>502 Bad Gateway</html>", "text/html")
        if fault == "no_choices":
            return self._send(h, 200, {"id": "x", "object": "chat.completion"})
        content = "" if fault == "empty" else reply_for(prompt)
        if fault == "echo_auth_ok":
            content += f" (debug: you sent Authorization: {auth})"
        if fault == "timeout":
            time.sleep(self.hang_s)
        self._send(h, 200, {
            "id": "chatcmpl-test", "object": "chat.completion", "model": body.get("model"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": content}}],
        })

    @staticmethod
    def _send(h, status: int, obj: dict, headers: dict | None = None) -> None:
        ChatServer._send_raw(h, status, json.dumps(obj).encode(), "application/json", headers)

    @staticmethod
    def _send_raw(h, status: int, data: bytes, ctype: str, headers: dict | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        h.wfile.write(data)
