"""Realtime: the WebSocket stream, the bus that carries events between node processes, presence."""
