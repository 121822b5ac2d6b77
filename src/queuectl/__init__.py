"""queuectl: a durable background job queue for shell commands.

The Python API is `queuectl.Queue`; the command line is `queuectl` (see `queuectl --help`).
"""

__version__ = "0.1.0"
__all__ = ["Queue", "__version__"]


def __getattr__(name):
    # Lazy, so `import queuectl` (and the CLI's start) stays cheap.
    if name == "Queue":
        from .queue import Queue

        return Queue
    raise AttributeError(name)
