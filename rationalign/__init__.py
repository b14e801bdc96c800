"""rationalign: Rationalize & Align experiment framework."""

__version__ = "0.1.0"
