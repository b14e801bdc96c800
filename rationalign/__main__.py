from rationalign.cli import entrypoint

entrypoint()
