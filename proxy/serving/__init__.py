"""Serving LLM requests: the Channels consumers, the LLM route table, the per-process engine
(gateway + reloader), the snapshot builder, the usage writer, metrics, the live feed's
sending side, and the routing state as Django sees it. No database work on the request
path: the snapshot and the usage writer do theirs on the engine's own thread."""
