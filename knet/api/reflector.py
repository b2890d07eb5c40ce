"""List-then-watch, as client-go's reflector does it: list to get the
current objects and a revision, watch from that revision, resume the watch
after a broken stream, and list again after 410 Gone. The handlers see a
full listing (`on_list`) and then each event, BOOKMARKs included
(`on_event`), so every agent loop that follows the API shares one way of
surviving API-server restarts."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from knet.api.aclient import AsyncClient
from knet.api.errors import ApiError
from knet.api.resources import Resource

log = logging.getLogger("knet.reflector")


async def reflect(api: AsyncClient, res: Resource, on_list: Callable[[list[dict], int], Awaitable[None]],
                  on_event: Callable[[str, dict, int], Awaitable[None]], **query: str) -> None:
    rv: str | None = None
    while True:
        try:
            if rv is None:
                listing = await api.list(res, **query)
                rv = listing["metadata"]["resourceVersion"]
                await on_list(listing["items"], int(rv))
            async for ev in api.watch(res, None, rv, **query):
                obj = ev["object"]
                if ev["type"] == "ERROR":
                    raise ApiError.from_status(obj)
                rv = obj["metadata"]["resourceVersion"]
                await on_event(ev["type"], obj, int(rv))
        except ApiError as e:
            if e.code == 410:
                rv = None
                continue
            log.warning("%s watch failed: %s", res.plural, e.message)
            await trio.sleep(0.5)
        except (OSError, ValueError) as e:
            log.warning("%s watch broke (%s); resuming from %s", res.plural, e, rv)
            await trio.sleep(0.2)
        except Exception:  # a handler failed (a netlink call, say): keep going from a fresh list
            log.exception("handling %s failed; listing again", res.plural)
            rv = None
            await trio.sleep(1)
