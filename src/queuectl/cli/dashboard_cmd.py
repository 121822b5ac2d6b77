"""`queuectl dashboard`: the web dashboard, JSON API and /metrics in one process."""

from __future__ import annotations

import signal
import socket

import click

from ..errors import InvalidInput, QueueError
from .context import read_only


@read_only
@click.command(short_help="The web dashboard, JSON API and /metrics.")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback needs a token.")  # fmt: skip
@click.option("--port", default=8700, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0: any free port).")  # fmt: skip
@click.option("--token", envvar="QUEUECTL_DASHBOARD_TOKEN", show_envvar=True, metavar="TOKEN",
              help="Every request must present it: Bearer header or the sign-in form.")  # fmt: skip
@click.option("--open", "open_browser", is_flag=True, help="Open it in a web browser.")
@click.pass_obj
def dashboard(obj, host, port, token, open_browser):
    """Serve the web dashboard, the JSON API (/api/, /openapi.json) and /metrics.

    \b
    queuectl dashboard --open
    export QUEUECTL_DASHBOARD_TOKEN=$(openssl rand -hex 16)
    queuectl dashboard --host 0.0.0.0
    """
    try:
        import uvicorn

        from ..web.app import create_app
        from ..web.security import is_loopback
    except ImportError as exc:
        raise QueueError(
            f"the dashboard needs the web extra ({exc.name} is missing):"
            " pip install 'queuectl[web]'"
        ) from None
    if token is not None and not token.strip():
        raise InvalidInput("the token must not be empty")
    if not is_loopback(host) and token is None:
        raise InvalidInput(
            f"listening on {host} (not loopback) needs --token or QUEUECTL_DASHBOARD_TOKEN"
        )
    obj.open().close()  # says so on stderr when no database exists yet
    app = create_app(obj.db, token=token)
    sock = _listen(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    url = f"http://{shown}:{bound_port}/"
    click.echo(f"queuectl dashboard on {url} ({'token required' if token else 'no token'});"
               " Ctrl-C stops it", err=False)  # fmt: skip
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(0.5, webbrowser.open, (url,)).start()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    _server_class()(config).run(sockets=[sock])


def _server_class():
    import uvicorn

    class Server(uvicorn.Server):
        """Stops gracefully on SIGTERM or Ctrl-C and then exits 0, as `worker start`
        does (uvicorn's own raises the signal again once it has stopped)."""

        def handle_exit(self, sig, frame) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True  # a second Ctrl-C: stop waiting for requests
            self.should_exit = True

    return Server


def _listen(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise QueueError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


COMMANDS = [dashboard]
