"""A local provider server: the simulated Claude, fal.ai and Unsplash in their real wire formats.

``cfopt serve`` (or ``serve_in_thread`` in a test or notebook) runs the simulated providers
behind a real HTTP server (starlette under uvicorn) on 127.0.0.1, on the real clock sped up by
``time_scale``. Anything that speaks the real APIs works against it: the official ``anthropic``
SDK with ``base_url=``, ``cfopt.latency.client``, curl. See ``app`` for the routes.

>>> ServerConfig(time_scale=50, seed=7)
ServerConfig(seed=7, profile='list-2026', time_scale=50)
"""
from .app import LOGGER_NAME, create_app
from .config import DEFAULT_BACKLOG, DEFAULT_HOST, DEFAULT_MAX_BODY_BYTES, ServerConfig, check_host, is_loopback
from .run import bind_socket, make_server, serve, serve_in_thread
from .state import FAULT_KINDS, FaultPlan, ServerState, ServerStats
from .wire import WireError

__all__ = ["ServerConfig", "ServerState", "ServerStats", "FaultPlan", "FAULT_KINDS", "WireError",
           "create_app", "serve", "serve_in_thread", "make_server", "bind_socket", "check_host",
           "is_loopback", "DEFAULT_HOST", "DEFAULT_BACKLOG", "DEFAULT_MAX_BODY_BYTES", "LOGGER_NAME"]
