"""Live events to browsers: the socket.io server and the rooms events are forwarded to."""

from cti_server.realtime.socketio_server import AGENT_NAMESPACE, SOCKETIO_KEY, SUPERVISOR_NAMESPACE, setup

__all__ = ["AGENT_NAMESPACE", "SOCKETIO_KEY", "SUPERVISOR_NAMESPACE", "setup"]
