"""knet token create|list|delete: bootstrap tokens after knet init's, as kubeadm token.

knet init's token expires after 24 h (kubeadm's TTL); a machine that joins
later needs a new one. A token is the Secret kube-system/bootstrap-token-<id>
(knet.api.bootstraptoken) plus its signature in kube-public/cluster-info
(jws-kubeconfig-<id>): upstream's bootstrap signer controller adds and drops
that signature as tokens come and go; knet has no such controller, so this
command does both, and deleting a token removes its signature, after which
`knet join` with it is refused ("cluster-info has no signature for token id").

The pure parts (the TTL, the list's rows, the signed ConfigMap) are
functions here that the unit tests call.
"""

from __future__ import annotations

import argparse
import datetime
import re

from knet.cli.common import CliError, Connect

TYPE_CHECKING = False
if TYPE_CHECKING:
    from knet.api.client import Client

_DURATION = re.compile(r"(\d+(?:\.\d*)?)(h|ms|m|s)")


def parse_ttl(text: str) -> datetime.timedelta | None:
    """A Go duration (24h, 1h30m, 90s; 0 for never), as kubeadm's --ttl; None for never."""
    value = (text or "").strip()
    if value == "0":
        return None
    pos, total = 0, 0.0
    unit = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    for m in _DURATION.finditer(value):
        if m.start() != pos:
            break
        total += float(m[1]) * unit[m[2]]
        pos = m.end()
    if not value or pos != len(value):
        raise CliError(f"--ttl: Invalid value: {text!r}: must be a duration such as 24h, 1h30m or 0 (never expires)")
    if total <= 0:
        return None
    return datetime.timedelta(seconds=total)


def _human(delta: datetime.timedelta) -> str:
    """kubeadm's TTL column: duration.ShortHumanDuration."""
    s = int(delta.total_seconds())
    if s < 0:
        return "<invalid>"
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 48 * 3600:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def token_rows(secrets: list[dict], now: datetime.datetime) -> list[list[str]]:
    """kubeadm token list's rows for the bootstrap-token Secrets (others skipped), by token."""
    from knet.api import bootstraptoken as bt

    _value = bt.secret_value  # the authenticator's reading, so the list shows what it sees
    rows = []
    for s in secrets:
        if s.get("type") != bt.SECRET_TYPE:
            continue
        token_id, secret = _value(s, "token-id"), _value(s, "token-secret")
        if not bt.TOKEN_RE.match(f"{token_id}.{secret}"):
            continue
        expiration = _value(s, "expiration")
        ttl, expires = "<forever>", "<never>"
        if expiration:
            try:
                when = datetime.datetime.strptime(expiration, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
            except ValueError:
                continue
            ttl, expires = _human(when - now), expiration
        usages = ",".join(u for u in ("authentication", "signing") if _value(s, f"usage-bootstrap-{u}") == "true")
        rows.append([f"{token_id}.{secret}", ttl, expires, usages or "<none>", _value(s, "description") or "<none>",
                     _value(s, "auth-extra-groups") or "<none>"])
    return sorted(rows)


def signed_cluster_info(configmap: dict, token: str | None = None, drop_id: str | None = None) -> dict:
    """cluster-info with the token's signature added (or drop_id's removed), as the bootstrap signer keeps it."""
    from knet.api import bootstraptoken as bt

    data = dict(configmap.get("data") or {})
    if token:
        data[f"jws-kubeconfig-{bt.parse_token(token)[0]}"] = bt.jws_detached(token, data.get("kubeconfig") or "")
    if drop_id:
        data.pop(f"jws-kubeconfig-{drop_id}", None)
    return {**configmap, "data": data}


def _token_id(text: str) -> str:
    from knet.api import bootstraptoken as bt

    if re.fullmatch(r"[a-z0-9]{6}", text or ""):
        return text
    return bt.parse_token(text, field="TOKEN")[0]


def _cluster_info(client: Client) -> dict:
    from knet.api.errors import ApiError
    from knet.api.resources import by_kind

    try:
        return client.get(by_kind("ConfigMap"), "kube-public", "cluster-info")
    except ApiError as e:
        if e.code == 404:
            raise CliError("this cluster publishes no kube-public/cluster-info: bootstrap tokens are for a "
                           "cluster made with knet init") from None
        raise


def cmd_token_create(args: argparse.Namespace, connect: Connect) -> int:
    from knet.api import bootstraptoken as bt
    from knet.api.resources import by_kind

    try:
        token = args.token or bt.generate_token()
        if args.token:
            bt.parse_token(args.token, field="TOKEN")
        ttl = parse_ttl(args.ttl)
        groups = tuple(g.strip() for g in (args.groups or bt.DEFAULT_GROUP).split(",") if g.strip())
        for g in groups:
            if not g.startswith(bt.BOOTSTRAPPERS + ":"):
                raise CliError(f"--groups: Invalid value: {g!r}: must start with {bt.BOOTSTRAPPERS}:")
    except bt.BootstrapError as e:
        raise CliError(str(e)) from None
    client = connect()
    info = _cluster_info(client)  # before the Secret: a cluster without it gets nothing made
    secret = bt.token_secret(token, ttl=ttl or datetime.timedelta(0), groups=groups, description=args.description)
    if ttl is None:
        secret["data"].pop("expiration")
    client.create(by_kind("Secret"), "kube-system", secret)
    client.update(by_kind("ConfigMap"), "kube-public", "cluster-info", signed_cluster_info(info, token))
    if not args.print_join_command:
        print(token)
        return 0
    server, ca = bt.read_cluster_info(info)
    host, port = bt.parse_server(server.removeprefix("https://"), field="cluster-info server")
    print(bt.join_command(host, port, token, bt.ca_cert_hash(ca)))
    return 0


def cmd_token_list(args: argparse.Namespace, connect: Connect) -> int:
    from knet.api.resources import by_kind

    items = connect().list(by_kind("Secret"), "kube-system")["items"]
    rows = token_rows(items, datetime.datetime.now(datetime.UTC))
    if not rows:
        return 0
    head = ["TOKEN", "TTL", "EXPIRES", "USAGES", "DESCRIPTION", "EXTRA GROUPS"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return 0


def cmd_token_delete(args: argparse.Namespace, connect: Connect) -> int:
    from knet.api import bootstraptoken as bt
    from knet.api.errors import ApiError
    from knet.api.resources import by_kind

    try:
        ids = [_token_id(t) for t in args.tokens]
    except bt.BootstrapError as e:
        raise CliError(f"{e} (or its id, [a-z0-9]{{6}})") from None
    client = connect()
    for token_id in ids:
        try:
            client.delete(by_kind("Secret"), "kube-system", bt.SECRET_PREFIX + token_id)
        except ApiError as e:
            if e.code == 404:
                raise CliError(f'bootstrap token "{token_id}" not found') from None
            raise
        info = _cluster_info(client)
        client.update(by_kind("ConfigMap"), "kube-public", "cluster-info", signed_cluster_info(info, drop_id=token_id))
        print(f'bootstrap token "{token_id}" deleted')
    return 0
