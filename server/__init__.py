"""Puffer-style media server: publishes prompt ladders over WebSocket (see docs/server.md)."""
