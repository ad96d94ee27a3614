"""How upstream requests travel: one interface (``base.Transport``), two transports.

``raw`` (with its connection protocol ``_h1``) is the hand-written HTTP/1.1 client for
LLM calls, ``aio`` is aiohttp for everything else; ``proxies`` decides the outbound
proxy for both. ``llmproxy.http.HTTPClient`` is the front the engine uses.
"""
