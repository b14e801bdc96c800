"""rationalign: Rationalize & Align experiment framework."""

from rationalign import hub_guard

__version__ = "0.1.0"

hub_guard.install()  # before anything imports peft (and with it bitsandbytes): no hub lookup on load
