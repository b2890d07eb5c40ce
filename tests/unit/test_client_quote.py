"""The CLI client's own percent-encoding (knet.api.client.quote, kept off
urllib.parse for start-up time) encodes as urllib.parse.quote(safe="")."""

from __future__ import annotations

from urllib.parse import quote as urllib_quote

from knet.api.client import quote, urlencode


def test_quote_encodes_as_urllib_with_nothing_safe():
    texts = ["a b/c?d=e&f#g", "app in (a,b),tier!=x", "ünï€😀~._-", "", "metadata.name=x%y", "".join(map(chr, range(128)))]
    for text in texts:
        assert quote(text) == urllib_quote(text, safe=""), text


def test_a_query_is_encoded_key_by_key():
    assert urlencode({"labelSelector": "app in (a,b)", "limit": 5}) == "labelSelector=app%20in%20%28a%2Cb%29&limit=5"
