"""The local web page of stage=serve (FastAPI): a text box, a task selector and a rationale-decoding
toggle (free | grounded); the answer comes back as the text with each edit highlighted and its own
explanation beside it.

`create_app(assistant, ...)` takes anything with `.tasks` and `.answer([(task, text)]) -> [answer]`
(rationalign.assistant.Assistant, loaded once by the stage), so tests can also drive the page with a
scripted assistant. Requests are bounded twice: by body size before the body is read, and by the
text's length; every refusal is JSON {"error": "..."} that the page shows as it is.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel

from rationalign.assistant import PredictInputError, check_text
from rationalign.rationale.grounded import MODES


def _error(status: int, message: str) -> JSONResponse:
    # A message may quote the request (a lone surrogate in "task"): escaped, so the answer encodes.
    return JSONResponse({"error": message.encode("utf-8", "backslashreplace").decode("utf-8")}, status_code=status)


class PredictRequest(BaseModel):
    text: str
    task: str
    rationale_decoding: str | None = None  # free | grounded; None: the assistant's default (the page's toggle)


def create_app(assistant: Any, *, max_chars: int = 2000, max_request_bytes: int = 16384) -> FastAPI:
    page = files("rationalign.web").joinpath("page.html").read_text(encoding="utf-8")
    app = FastAPI(title="rationalign", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def bound_body(request: Request, call_next):
        if request.method == "POST":
            size = request.headers.get("content-length")
            if size is None:
                return _error(411, "the request needs a Content-Length header")
            if not size.isdigit() or int(size) > max_request_bytes:
                return _error(413, f"request body over {max_request_bytes} bytes")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        return _error(422, f"{where}: {first.get('msg', 'invalid')}")

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/api/tasks")
    def tasks() -> dict:
        return {"tasks": list(assistant.tasks), "max_chars": max_chars,
                "rationale_decoding": getattr(assistant, "rationale_decoding", "free")}

    @app.post("/api/predict")
    def predict(req: PredictRequest):  # sync: FastAPI runs it in a worker thread, generation blocks
        if len(req.text) > max_chars:
            return _error(422, f"text: {len(req.text)} characters, over the limit of {max_chars}")
        if not req.text.strip():
            return _error(422, "text: empty")
        if req.rationale_decoding is not None and req.rationale_decoding not in MODES:
            return _error(422, f"rationale_decoding: '{req.rationale_decoding}' is not one of {', '.join(MODES)}")
        try:
            check_text(req.text, "text")  # a lone surrogate ("\\ud800") is a bad request, not a crash
            (answer,) = assistant.answer([(req.task, req.text)], rationale_decoding=req.rationale_decoding)
        except PredictInputError as e:
            return _error(422, str(e))
        return answer

    return app
