"""The cluster's PKI and the TLS contexts of its API server and clients.

kubectl and client-go send credentials only over TLS, so the API server
serves HTTPS as kubeadm sets it up: one cluster CA, a serving certificate
whose SANs cover every name a client dials (the control-plane's LAN address,
the `kubernetes` Service's ClusterIP and DNS names, 127.0.0.1 for the host
listener), and an admin client certificate (O=system:masters) for the
kubeconfig. Client certificates authenticate as Kubernetes' x509
authenticator does: the CN is the user, each O a group.

Generating keys needs `cryptography` (imported only there: `knet up` pays
for it, the control plane and the CLI's `knet get` never do). Loading them
needs only the standard library's ssl, which the CLI's unix-socket path
never imports either (this module imports ssl lazily too).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import ssl

CA_DAYS = 3650  # kubeadm's CA lifetime
CERT_DAYS = 365  # kubeadm's leaf certificates
ADMIN_USER = "kubernetes-admin"  # kubeadm's admin.conf user (CN); its group gives every right
MASTERS = "system:masters"


class PkiPaths(NamedTuple):
    dir: str
    ca_crt: str
    ca_key: str
    server_crt: str
    server_key: str
    admin_crt: str
    admin_key: str


def pki_paths(state_dir: str) -> PkiPaths:
    """Where a cluster keeps its PKI: <state>/pki, root-only, the names kubeadm uses."""
    d = os.path.join(state_dir, "pki")
    return PkiPaths(d, *(os.path.join(d, n) for n in (
        "ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key")))


def serving_sans(control_plane_ip: str, service_subnet: str, dns_domain: str) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) of the API server's certificate, as kubeadm
    lists them: a client may reach it by its LAN address, by the `kubernetes`
    Service (the serviceSubnet's first address, and its DNS names), or on the
    host's loopback (the listener kubectl dials)."""
    service_ip = str(ipaddress.ip_network(service_subnet, strict=False)[1])
    dns = ["kubernetes", "kubernetes.default", "kubernetes.default.svc",
           f"kubernetes.default.svc.{dns_domain}", "localhost"]
    ips = []
    for ip in (control_plane_ip, service_ip, "127.0.0.1"):
        if ip not in ips:
            ips.append(ip)
    return dns, ips


# -- generation (cryptography) -----------------------------------------------------------


def _name(cn: str, orgs: tuple[str, ...] = ()):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    # P-256: what Go, OpenSSL and every client speak, and milliseconds to make (RSA-2048 is ~50 ms).
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _builder(subject, issuer, public_key, now: datetime.datetime, days: int, *, ca: bool):
    """What a CA and a leaf certificate share (kubeadm's pkiutil): a random serial, valid from five
    minutes ago (a clock a little behind still accepts it) for `days`, basic constraints and key
    usage, certSign only for the CA."""
    from cryptography import x509

    return (x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=ca,
                                         crl_sign=False, encipher_only=False, decipher_only=False), critical=True))


def make_ca(cn: str = "kubernetes", now: datetime.datetime | None = None) -> tuple[bytes, bytes]:
    """A self-signed CA: (key PEM, certificate PEM). kubeadm names its CA "kubernetes"."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = now or datetime.datetime.now(datetime.UTC)
    key = _key()
    name = _name(cn)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (_builder(name, name, key.public_key(), now, CA_DAYS, ca=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return _pem_key(key), _pem_cert(cert)


def make_cert(ca_key_pem: bytes, ca_cert_pem: bytes, cn: str, orgs: tuple[str, ...] = (), *,
              dns: list[str] | tuple[str, ...] = (), ips: list[str] | tuple[str, ...] = (), server: bool = False,
              now: datetime.datetime | None = None) -> tuple[bytes, bytes]:
    """A leaf certificate signed by the CA: (key PEM, certificate PEM). A
    serving one carries the SANs and serverAuth; a client one clientAuth
    with the user as CN and its groups as O, which is how the API server
    reads who it is."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = now or datetime.datetime.now(datetime.UTC)
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    key = _key()
    b = (_builder(_name(cn, orgs), ca_cert.subject, key.public_key(), now, CERT_DAYS, ca=False)
         .add_extension(x509.ExtendedKeyUsage(
             [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False))
    if dns or ips:
        b = b.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]), critical=False)
    return _pem_key(key), _pem_cert(b.sign(ca_key, hashes.SHA256()))


def _write(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def write_pki(state_dir: str, control_plane_ip: str, service_subnet: str, dns_domain: str) -> PkiPaths:
    """Make the cluster's CA, serving and admin certificates under <state>/pki
    (0700; keys 0600, certificates 0644 as kubeadm leaves them)."""
    p = pki_paths(state_dir)
    os.makedirs(p.dir, mode=0o700, exist_ok=True)
    os.chmod(p.dir, 0o700)
    ca_key, ca_crt = make_ca()
    dns, ips = serving_sans(control_plane_ip, service_subnet, dns_domain)
    srv_key, srv_crt = make_cert(ca_key, ca_crt, "kube-apiserver", dns=dns, ips=ips, server=True)
    adm_key, adm_crt = make_cert(ca_key, ca_crt, ADMIN_USER, (MASTERS,))
    for path, data, mode in ((p.ca_key, ca_key, 0o600), (p.ca_crt, ca_crt, 0o644),
                             (p.server_key, srv_key, 0o600), (p.server_crt, srv_crt, 0o644),
                             (p.admin_key, adm_key, 0o600), (p.admin_crt, adm_crt, 0o644)):
        _write(path, data, mode)
    return p


# -- contexts (ssl) ----------------------------------------------------------------------


def server_context(paths: PkiPaths) -> ssl.SSLContext:
    """The API server's: its certificate, and client certificates asked for
    but optional (a bearer token is the other credential), checked against
    the cluster CA when given."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(paths.server_crt, paths.server_key)
    ctx.load_verify_locations(paths.ca_crt)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    # HTTP/1.1 only: said so in ALPN, Go's client then never tries HTTP/2 on this connection.
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def client_context(ca_file: str, cert_file: str | None = None, key_file: str | None = None) -> ssl.SSLContext:
    """A client's: the server must prove itself with a certificate from the
    cluster CA for the address dialled (no system roots: only the cluster's CA
    can vouch for its API server)."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(ca_file)
    if cert_file:
        ctx.load_cert_chain(cert_file, key_file)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def identity(peer_cert: dict | None) -> tuple[str, list[str]] | None:
    """(user, groups) of a verified client certificate (ssl's getpeercert()
    form): CN and each O, as Kubernetes' x509 authenticator reads them."""
    if not peer_cert:
        return None
    user, groups = None, []
    for rdn in peer_cert.get("subject") or ():
        for key, value in rdn:
            if key == "commonName":
                user = value
            elif key == "organizationName":
                groups.append(value)
    return (user, groups) if user else None


# -- identities beyond the admin (issue 15) ----------------------------------------------------

NODES_GROUP = "system:nodes"


def node_cert_paths(state_dir: str, node: str) -> tuple[str, str]:
    """A node agent's client certificate and key: <state>/pki/nodes/<node>.{crt,key}
    (kubelet's kubelet-client-current.pem)."""
    d = os.path.join(state_dir, "pki", "nodes")
    return os.path.join(d, f"{node}.crt"), os.path.join(d, f"{node}.key")


def kubelet_token_path(state_dir: str) -> str:
    """The credential the API server shows kubelets (its apiserver-kubelet-client),
    so the agents need not hold the admin's token to check it."""
    return os.path.join(state_dir, "pki", "apiserver-kubelet-client.token")


def user_cert(state_dir: str, user: str, groups: tuple[str, ...] = ()) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) for a user: CN=user, O=each group, signed by
    the cluster CA (what `knet kubeconfig --user` embeds)."""
    p = pki_paths(state_dir)
    with open(p.ca_key, "rb") as f:
        ca_key = f.read()
    with open(p.ca_crt, "rb") as f:
        ca_crt = f.read()
    return make_cert(ca_key, ca_crt, user, tuple(groups))


def write_identities(state_dir: str, nodes: list[str]) -> None:
    """Each node's client certificate (CN=system:node:<name>, O=system:nodes),
    the kubelet client token and the ServiceAccount signing key, each made
    once (a restarted cluster keeps them)."""
    import secrets

    from knet.api.serviceaccounts import write_key

    os.makedirs(os.path.join(state_dir, "pki", "nodes"), mode=0o700, exist_ok=True)
    for node in nodes:
        crt, key = node_cert_paths(state_dir, node)
        if not os.path.exists(crt):
            k, c = user_cert(state_dir, f"system:node:{node}", (NODES_GROUP,))
            _write(key, k, 0o600)
            _write(crt, c, 0o644)
    path = kubelet_token_path(state_dir)
    if not os.path.exists(path):
        _write(path, (secrets.token_urlsafe(32) + "\n").encode(), 0o600)
    write_key(state_dir)
