"""The ops side of the hub: recipient API, signed links, ops API, metrics and dashboard.

``hub.ops.api.build_api`` builds the FastAPI app; ``hub.ops.keys`` holds the per-unit keys;
``hub.ops.views`` computes what is shown (framework-free); ``hub.ops.server.serve`` runs the app
under uvicorn until an event is set.
"""
