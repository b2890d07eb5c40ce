"""The cluster PKI (knet.api.tls): what the certificates say, and a real TLS
handshake between the server's and a client's contexts over a socket pair,
with the client certificate read back as Kubernetes' x509 authenticator reads it."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from knet.api import tls


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("state"))
    return tls.write_pki(d, "192.168.77.10", "10.100.0.0/16", "example.test")


def load(path: str) -> x509.Certificate:
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def test_serving_sans_cover_every_name_a_client_dials():
    dns, ips = tls.serving_sans("192.168.56.10", "10.96.0.0/12", "cluster.local")
    assert ips == ["192.168.56.10", "10.96.0.1", "127.0.0.1"]
    assert dns == ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
                   "kubernetes.default.svc.cluster.local", "localhost"]


def test_certificates(pki):
    ca, srv, adm = load(pki.ca_crt), load(pki.server_crt), load(pki.admin_crt)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for leaf in (srv, adm):
        assert leaf.issuer == ca.subject
        ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = srv.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(i) for i in san.get_values_for_type(x509.IPAddress)} == {"192.168.77.10", "10.100.0.1", "127.0.0.1"}
    assert "kubernetes.default.svc.example.test" in san.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("10.100.0.1") in san.get_values_for_type(x509.IPAddress)
    eku = srv.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert adm.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == tls.ADMIN_USER
    assert [a.value for a in adm.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)] == ["system:masters"]
    assert list(adm.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.CLIENT_AUTH]


def test_modes(pki):
    assert os.stat(pki.dir).st_mode & 0o777 == 0o700
    for key in (pki.ca_key, pki.server_key, pki.admin_key):
        assert os.stat(key).st_mode & 0o777 == 0o600


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_hostname: str):
    """Both sides of a handshake over a socket pair: (the server's view of the
    client certificate, or the exception either side raised)."""
    a, b = socket.socketpair()
    result: dict = {}

    def serve():
        try:
            with server_ctx.wrap_socket(a, server_side=True) as s:
                result["peer"] = s.getpeercert()
                s.sendall(b"x")
        except (ssl.SSLError, OSError) as e:
            result["server_error"] = e

    t = threading.Thread(target=serve)
    t.start()
    try:
        with client_ctx.wrap_socket(b, server_hostname=server_hostname) as c:
            c.recv(1)
    except (ssl.SSLError, OSError) as e:
        result["client_error"] = e
    t.join(10)
    return result


def test_client_certificate_identity_over_a_real_handshake(pki, tmp_path):
    srv = tls.server_context(pki)
    out = handshake(srv, tls.client_context(pki.ca_crt, pki.admin_crt, pki.admin_key), "127.0.0.1")
    assert "client_error" not in out and "server_error" not in out, out
    assert tls.identity(out["peer"]) == (tls.ADMIN_USER, ["system:masters"])
    # A user of our own making: CN the user, each O a group.
    ca_key, ca_crt = open(pki.ca_key, "rb").read(), open(pki.ca_crt, "rb").read()
    key, crt = tls.make_cert(ca_key, ca_crt, "jane", ("dev", "ops"))
    (tmp_path / "j.key").write_bytes(key)
    (tmp_path / "j.crt").write_bytes(crt)
    out = handshake(srv, tls.client_context(pki.ca_crt, str(tmp_path / "j.crt"), str(tmp_path / "j.key")), "10.100.0.1")
    assert tls.identity(out["peer"]) == ("jane", ["dev", "ops"])
    # No client certificate: the handshake succeeds (a bearer token may follow), with no identity.
    out = handshake(srv, tls.client_context(pki.ca_crt), "kubernetes.default.svc")
    assert "client_error" not in out and tls.identity(out.get("peer")) is None


def test_client_refuses_a_server_from_another_ca_or_for_another_name(pki, tmp_path):
    other = tls.write_pki(str(tmp_path), "192.168.77.10", "10.100.0.0/16", "example.test")
    out = handshake(tls.server_context(pki), tls.client_context(other.ca_crt), "127.0.0.1")
    assert isinstance(out.get("client_error"), ssl.SSLCertVerificationError)
    out = handshake(tls.server_context(pki), tls.client_context(pki.ca_crt), "10.0.0.99")  # not a SAN
    assert isinstance(out.get("client_error"), ssl.SSLCertVerificationError)


def test_server_refuses_a_client_certificate_from_another_ca(pki, tmp_path):
    other = tls.write_pki(str(tmp_path), "192.168.77.10", "10.100.0.0/16", "example.test")
    out = handshake(tls.server_context(pki), tls.client_context(pki.ca_crt, other.admin_crt, other.admin_key),
                    "127.0.0.1")
    assert "peer" not in out
    assert "server_error" in out


def test_identity_reads_cn_and_organizations():
    cert = {"subject": ((("organizationName", "a"),), (("organizationName", "b"),), (("commonName", "u"),))}
    assert tls.identity(cert) == ("u", ["a", "b"])
    assert tls.identity({"subject": ((("organizationName", "a"),),)}) is None  # no CN: no user
    assert tls.identity(None) is None and tls.identity({}) is None
