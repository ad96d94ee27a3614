"""The live feed's watching side: the WebSocket an admin's dashboard opens to see requests as they finish.

Active staff only. The sending side, which the serving engine's usage sink feeds, is
``proxy.serving.live_feed``; this module turns its channel-layer messages into frames
``{"events": [...], "dropped": n}`` and adds each user's name from a small cache.
"""

from __future__ import annotations

import asyncio
from typing import Any

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.security.websocket import AllowedHostsOriginValidator, WebsocketDenier

from accounts.models import User
from proxy.serving import live_feed

_usernames: dict[int, str] = {}


def _load_username(user_id: int) -> str:
    name = User.objects.filter(pk=user_id).values_list("username", flat=True).first()
    return name or f"#{user_id}"


async def username(user_id: int | None) -> str:
    """A user's name for the feed, from a small per-process cache (one query per new user)."""
    if user_id is None:
        return ""
    if user_id not in _usernames:
        if len(_usernames) > 10_000:
            _usernames.clear()
        _usernames[user_id] = await database_sync_to_async(_load_username)(user_id)
    return _usernames[user_id]


class LiveFeedConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """One admin's feed: active staff only; frames are ``{"events": [...], "dropped": n}``."""

    counted = False
    marker: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not (user.is_active and user.is_staff):
            await self.close(code=4403)
            return
        await self.channel_layer.group_add(live_feed.GROUP, self.channel_name)
        live_feed.FEED.local += 1
        self.counted = True
        if live_feed.FEED.crosses_processes:
            self.marker = asyncio.get_running_loop().create_task(live_feed.FEED.mark_watching())
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if not self.counted:
            return
        self.counted = False
        live_feed.FEED.local -= 1
        if self.marker is not None:
            self.marker.cancel()
        await self.channel_layer.group_discard(live_feed.GROUP, self.channel_name)

    async def usage_events(self, message: dict[str, Any]) -> None:
        events = []
        for ev in message["events"]:
            events.append({**ev, "user": await username(ev.get("user_id"))})
        await self.send_json({"events": events, "dropped": message.get("dropped", 0)})


_feed_app = AuthMiddlewareStack(LiveFeedConsumer.as_asgi())
_deny_app = WebsocketDenier.as_asgi()


async def _route(scope: dict[str, Any], receive: Any, send: Any) -> None:
    app = _feed_app if scope.get("path") == live_feed.PATH else _deny_app
    await app(scope, receive, send)


#: Mounted by ``llmproxy_site.asgi`` for every WebSocket connection. Origins outside
#: ALLOWED_HOSTS are refused, so another site cannot open the feed with an admin's cookie.
websocket_application = AllowedHostsOriginValidator(_route)
