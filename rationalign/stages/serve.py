"""stage=serve: the writing assistant on a local web page (rationalign.web.app).

The system named by `predict.system` (base, sft, aligned, quark or path:<dir>) is loaded once, for
the tasks that `task=` selects (`task=all` offers the eight), and answers with `predict.max_new_tokens`;
`predict.rationale_decoding` (free | grounded) is the page's default mode, which a toggle switches per request.
The page binds to `serve.host` (127.0.0.1: this machine only) on `serve.port` and runs until stopped.
"""

from __future__ import annotations

import logging

from rationalign.assistant import Assistant
from rationalign.stages.base import Context, register_stage

log = logging.getLogger("rationalign")


def build_app(ctx: Context):
    """The app with its assistant loaded (tests start it in a thread; the stage runs it with uvicorn)."""
    from rationalign.web.app import create_app

    cfg = ctx.cfg
    assistant = Assistant(ctx, str(cfg.predict.system), int(cfg.predict.max_new_tokens),
                          str(cfg.predict.rationale_decoding), int(cfg.predict.reason_max_new_tokens))
    return create_app(assistant, max_chars=int(cfg.serve.max_chars),
                      max_request_bytes=int(cfg.serve.max_request_bytes)), assistant


@register_stage("serve", artifacts=False, generates=True)
def run_serve(ctx: Context, out=None) -> dict:
    """Serve the assistant on a local web page until interrupted."""
    import uvicorn

    cfg = ctx.cfg
    port, max_chars = int(cfg.serve.port), int(cfg.serve.max_chars)
    if not 0 < port < 65536:
        raise ValueError(f"serve.port={port}: expected 1-65535")
    if max_chars < 1 or int(cfg.serve.max_request_bytes) < max_chars:
        raise ValueError(f"serve.max_chars={max_chars}, serve.max_request_bytes={cfg.serve.max_request_bytes}: "
                         "expected 1 <= max_chars <= max_request_bytes")
    app, assistant = build_app(ctx)
    log.info("serve: http://%s:%d (system %s, tasks %s)", cfg.serve.host, int(cfg.serve.port), assistant.system,
             ", ".join(assistant.tasks))
    try:
        uvicorn.run(app, host=str(cfg.serve.host), port=int(cfg.serve.port), log_level="info")
    finally:
        assistant.close()
    return {}
