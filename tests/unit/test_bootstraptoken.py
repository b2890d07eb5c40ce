"""Bootstrap tokens, the CA pin and node credentials (knet/api/bootstraptoken.py): kubeadm's
forms, upstream's authenticator rules, and errors that name the flag or field."""

from __future__ import annotations

import base64
import datetime
import hashlib
import shlex

import pytest

from knet.api import bootstraptoken as bt
from knet.api.tls import make_ca, make_cert

NOW = datetime.datetime(2026, 12, 7, 12, 0, tzinfo=datetime.UTC)


def test_generated_tokens_have_kubeadms_form_and_differ():
    tokens = {bt.generate_token() for _ in range(20)}
    assert len(tokens) == 20
    for t in tokens:
        assert bt.TOKEN_RE.match(t), t
        assert bt.parse_token(t) == tuple(t.split("."))


@pytest.mark.parametrize("bad", ["", "abcdef", "abcdef.0123456789abcde", "ABCDEF.0123456789abcdef",
                                 "abcdef:0123456789abcdef", "abcdef.0123456789abcdef "])
def test_a_malformed_token_is_refused_naming_the_flag(bad):
    with pytest.raises(bt.BootstrapError) as e:
        bt.parse_token(bad)
    assert str(e.value).startswith(f"--token: Invalid value: {bad!r}: must be of the form")


def _der_items(data: bytes, pos: int, end: int):
    """(tag, start of the whole item, start of its content, end) of each DER item in data[pos:end]."""
    while pos < end:
        tag, length, head = data[pos], data[pos + 1], 2
        if length & 0x80:
            n = length & 0x7F
            length, head = int.from_bytes(data[pos + 2:pos + 2 + n], "big"), 2 + n
        yield tag, pos, pos + head, pos + head + length
        pos += head + length


def test_the_ca_hash_is_sha256_of_the_subject_public_key_info_read_from_the_der():
    # kubeadm pins sha256(SubjectPublicKeyInfo): taken here straight from the certificate's DER
    # (Certificate > TBSCertificate > its 7th field, after the [0] version), not through cryptography.
    _key, ca = make_ca()
    der = base64.b64decode(b"".join(ca.splitlines()[1:-1]))
    (_t, _s, cert_body, cert_end), = _der_items(der, 0, len(der))
    _t, _s, tbs_body, tbs_end = next(_der_items(der, cert_body, cert_end))
    fields = list(_der_items(der, tbs_body, tbs_end))
    assert fields[0][0] == 0xA0  # the explicit version
    _tag, spki_start, _body, spki_end = fields[6]
    assert bt.ca_cert_hash(ca) == "sha256:" + hashlib.sha256(der[spki_start:spki_end]).hexdigest()
    assert bt.ca_cert_hash(make_ca()[1]) != bt.ca_cert_hash(ca)


def test_ca_hash_parsing_is_canonical_and_errors_name_the_flag():
    h = "sha256:" + "AB" * 32
    assert bt.parse_ca_hash(h) == "sha256:" + "ab" * 32
    for bad in ("", "sha256:abc", "md5:" + "ab" * 16, "ab" * 32):
        with pytest.raises(bt.BootstrapError, match=r"^--discovery-token-ca-cert-hash: Invalid value"):
            bt.parse_ca_hash(bad)


def test_server_parsing():
    assert bt.parse_server("192.168.56.10") == ("192.168.56.10", 6443)
    assert bt.parse_server("192.168.56.10:7443") == ("192.168.56.10", 7443)
    for bad in ("", "cp.example:6443", "192.168.56.10:0", "192.168.56.10:x", "300.1.1.1"):
        with pytest.raises(bt.BootstrapError, match=r"^server: Invalid value"):
            bt.parse_server(bad)


def test_the_join_command_parses_back_with_the_cli():
    from knet.cli.main import build_parser

    token, pin = "abcdef.0123456789abcdef", "sha256:" + "0f" * 32
    line = bt.join_command("192.168.56.10", 6443, token, pin)
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert (args.cmd, args.server, args.token, args.ca_cert_hash) == ("join", "192.168.56.10:6443", token, pin)
    assert bt.parse_server(args.server) == ("192.168.56.10", 6443)


def _secrets(*objs):
    table = {o["metadata"]["name"]: o for o in objs}
    return lambda name: table.get(name)


def test_a_valid_token_authenticates_as_kubeadms_bootstrap_user():
    token = "abcdef.0123456789abcdef"
    secret = bt.token_secret(token, now=NOW)
    assert secret["metadata"] == {"name": "bootstrap-token-abcdef", "namespace": "kube-system"}
    assert secret["type"] == "bootstrap.kubernetes.io/token"
    assert base64.b64decode(secret["data"]["expiration"]).decode() == "2026-12-08T12:00:00Z"
    user = bt.authenticate(token, _secrets(secret), now=NOW)
    assert user == ("system:bootstrap:abcdef",
                    ["system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token"])


def test_tokens_that_must_not_authenticate():
    token = "abcdef.0123456789abcdef"
    ok = bt.token_secret(token, now=NOW)
    later = NOW + datetime.timedelta(days=2)
    assert bt.authenticate(token, _secrets(ok), now=later) is None  # expired
    assert bt.authenticate("abcdef.0123456789abcdee", _secrets(ok), now=NOW) is None  # wrong secret
    assert bt.authenticate("zzzzzz.0123456789abcdef", _secrets(ok), now=NOW) is None  # no such Secret
    other = {**ok, "type": "Opaque"}
    assert bt.authenticate(token, _secrets(other), now=NOW) is None
    deleting = {**ok, "metadata": {**ok["metadata"], "deletionTimestamp": "2026-12-07T11:00:00Z"}}
    assert bt.authenticate(token, _secrets(deleting), now=NOW) is None
    no_auth = {**ok, "data": {**ok["data"], "usage-bootstrap-authentication": base64.b64encode(b"false").decode()}}
    assert bt.authenticate(token, _secrets(no_auth), now=NOW) is None
    # extra groups outside system:bootstrappers: are dropped, as upstream's authenticator does
    wide = bt.token_secret(token, now=NOW, groups=("system:masters", "system:bootstrappers:x"))
    assert bt.authenticate(token, _secrets(wide), now=NOW)[1] == ["system:bootstrappers", "system:bootstrappers:x"]


def test_cluster_info_round_trips_the_server_and_ca():
    _key, ca = make_ca()
    cm = bt.cluster_info("https://192.168.56.10:6443", ca)
    assert cm["metadata"] == {"name": "cluster-info", "namespace": "kube-public"}
    assert bt.read_cluster_info(cm) == ("https://192.168.56.10:6443", ca)
    with pytest.raises(bt.BootstrapError, match=r"^cluster-info: Invalid value"):
        bt.read_cluster_info({"data": {"kubeconfig": "clusters: []"}})


def test_a_node_csr_is_signed_for_its_own_key_with_the_node_identity():
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    ca_key, ca = make_ca()
    key, csr = bt.node_csr("worker-1")
    assert bt.csr_node(csr.decode()) == "worker-1"
    cert = x509.load_pem_x509_certificate(bt.sign_node_csr(csr.decode(), ca_key, ca, now=NOW))
    assert cert.subject.rfc4514_string() == "CN=system:node:worker-1,O=system:nodes"
    assert cert.issuer == x509.load_pem_x509_certificate(ca).subject
    ours = serialization.load_pem_private_key(key, None).public_key()
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert cert.public_key().public_bytes(serialization.Encoding.DER, spki) == \
        ours.public_bytes(serialization.Encoding.DER, spki)


def test_a_csr_for_anything_but_a_node_is_refused_naming_the_field():
    ca_key, ca = make_ca()
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def csr(cn: str, org: str | None) -> str:
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
        name = x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        req = x509.CertificateSigningRequestBuilder().subject_name(name).sign(ec.generate_private_key(ec.SECP256R1()),
                                                                              hashes.SHA256())
        return req.public_bytes(serialization.Encoding.PEM).decode()

    with pytest.raises(bt.BootstrapError, match=r"^csr.subject: Invalid value"):
        bt.sign_node_csr(csr("kubernetes-admin", "system:masters"), ca_key, ca)
    with pytest.raises(bt.BootstrapError, match=r"^csr.subject: Invalid value"):
        bt.csr_node(csr("system:node:w1", "system:masters"))
    with pytest.raises(bt.BootstrapError, match=r"^csr.subject.commonName: Invalid value: 'W_1'"):
        bt.csr_node(csr("system:node:W_1", "system:nodes"))
    with pytest.raises(bt.BootstrapError, match=r"^csr: Invalid value"):
        bt.csr_node("not a csr")
    # a certificate is not a request either
    _k, leaf = make_cert(ca_key, ca, "system:node:w1", ("system:nodes",))
    with pytest.raises(bt.BootstrapError, match=r"^csr: Invalid value"):
        bt.csr_node(leaf.decode())


def test_only_a_bootstrap_token_may_ask_for_a_node_credential(tmp_path):
    from knet.api.errors import ApiError
    from knet.api.tls import write_pki

    write_pki(str(tmp_path), "192.168.56.10", "10.96.0.0/12", "cluster.local")
    creds = bt.NodeCredentials(None, str(tmp_path), "kubelet-token", '{"name": "knet"}')
    _key, csr = bt.node_csr("w1")
    with pytest.raises(ApiError) as e:
        creds.issue(("system:node:w1", ["system:nodes"]), {"csr": csr.decode()})
    assert e.value.code == 403
    with pytest.raises(bt.BootstrapError, match=r"^csr: Required value"):
        creds.issue(("system:bootstrap:abcdef", ["system:bootstrappers"]), {})
    answer = creds.issue(("system:bootstrap:abcdef", ["system:bootstrappers"]), {"csr": csr.decode()})
    assert answer["node"] == "w1" and answer["kubeletToken"] == "kubelet-token" and answer["cluster"] == {"name": "knet"}
    assert answer["certificate"].startswith("-----BEGIN CERTIFICATE-----")


def test_the_detached_jws_matches_cluster_bootstraps_own_vectors():
    # k8s.io/cluster-bootstrap/token/jws's test vectors
    content = "Hello from the other side. I must have called a thousand times."
    assert bt.detached_signature(content, "joshua", "my voice is my passcode") == \
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..VShe2taLd-YTrmWuRkcL_8QTNDHYxQIEBsAYYiIj1_8"
    assert bt.detached_signature("", "joshua", "my voice is my passcode") == \
        "eyJhbGciOiJIUzI1NiIsImtpZCI6Impvc2h1YSJ9..7Ui1ALizW4jXphVUB7xUqC9vLYLL9RZeOFfVLoB7Tgk"


def test_cluster_info_signed_with_the_token_verifies_only_with_that_token():
    _key, ca = make_ca()
    token = "abcdef.0123456789abcdef"
    cm = bt.cluster_info("https://192.168.56.10:6443", ca, token)
    assert set(cm["data"]) == {"kubeconfig", "jws-kubeconfig-abcdef"}
    bt.verify_cluster_info(cm, token)
    with pytest.raises(bt.BootstrapError, match=r"^--token: Invalid value: cluster-info's signature"):
        bt.verify_cluster_info(cm, "abcdef.0123456789abcdee")
    with pytest.raises(bt.BootstrapError, match=r"^--token: Invalid value: cluster-info has no signature"):
        bt.verify_cluster_info(cm, "zzzzzz.0123456789abcdef")
    forged = {"data": {**cm["data"], "kubeconfig": cm["data"]["kubeconfig"].replace("192.168.56.10", "10.0.0.9")}}
    with pytest.raises(bt.BootstrapError, match=r"does not match"):
        bt.verify_cluster_info(forged, token)
