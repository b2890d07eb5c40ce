"""List-then-watch, as client-go's reflector does it: list to get the
current objects and a revision, watch from that revision, resume the watch
after a broken stream, and list again after 410 Gone. The handlers see a
full listing (`on_list`) and then each event, BOOKMARKs included
(`on_event`), so every agent loop that follows the API shares one way of
surviving API-server restarts."""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable

import trio

from knet.api.aclient import AsyncClient
from knet.api.errors import ApiError
from knet.api.resources import Resource

log = logging.getLogger("knet.reflector")

# After a failure the next attempt waits FIRST_RETRY, doubling up to MAX_RETRY, each wait
# stretched by up to as much again at random (client-go's reflector backs off the same way,
# 800 ms to 30 s with jitter). Fixed short retries made fifty node agents, nine watches
# each, re-dial a busy API server in lockstep until its accept queue overflowed and no new
# connection got through. A watch that delivered events starts the count again.
FIRST_RETRY = 0.2
MAX_RETRY = 5.0


def retry_delay(failures: int) -> float:
    """The wait before attempt `failures` + 1 (failures >= 1), jitter included."""
    base = min(MAX_RETRY, FIRST_RETRY * 2 ** (failures - 1))
    return base * (1 + random.random())


async def reflect(api: AsyncClient, res: Resource, on_list: Callable[[list[dict], int], Awaitable[None]],
                  on_event: Callable[[str, dict, int], Awaitable[None]], **query: str) -> None:
    rv: str | None = None
    failures = 0
    while True:
        try:
            if rv is None:
                listing = await api.list(res, **query)
                rv = listing["metadata"]["resourceVersion"]
                await on_list(listing["items"], int(rv))
                failures = 0
            async for ev in api.watch(res, None, rv, **query):
                obj = ev["object"]
                if ev["type"] == "ERROR":
                    raise ApiError.from_status(obj)
                rv = obj["metadata"]["resourceVersion"]
                await on_event(ev["type"], obj, int(rv))
                failures = 0
        except ApiError as e:
            if e.code == 410:
                rv = None
                continue
            failures += 1
            log.warning("%s watch failed: %s", res.plural, e.message)
            await trio.sleep(max(0.5, retry_delay(failures)))
        except (OSError, ValueError) as e:
            failures += 1
            log.warning("%s watch broke (%s); resuming from %s", res.plural, e, rv)
            await trio.sleep(retry_delay(failures))
        except Exception:  # a handler failed (a netlink call, say): keep going from a fresh list
            log.exception("handling %s failed; listing again", res.plural)
            rv = None
            failures += 1
            await trio.sleep(max(1.0, retry_delay(failures)))
