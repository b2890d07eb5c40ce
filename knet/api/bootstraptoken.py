"""Bootstrap tokens and TLS bootstrapping, as kubeadm joins a machine to a cluster.

`knet init` makes a token `abcdef.0123456789abcdef` (kubeadm's form: a public
id and a secret) and stores it as kubeadm does, a Secret
kube-system/bootstrap-token-<id> of type bootstrap.kubernetes.io/token.
The API server authenticates a bearer token of that form against the Secret
as upstream's bootstrap authenticator does (plugin/pkg/auth/authenticator/
token/bootstrap): user system:bootstrap:<id>, groups system:bootstrappers
and the Secret's auth-extra-groups, refused once expired or being deleted.

`knet join` first reads kube-public/cluster-info without credentials (the CA
and the server's address, as kubeadm's discovery does), checks that it is
signed with the token (a detached HS256 JWS keyed by the token's secret, the
bootstrap signer's jws-kubeconfig-<id>), and trusts that CA only if its
public key hashes to the --discovery-token-ca-cert-hash the user was given:
sha256 over the DER SubjectPublicKeyInfo, kubeadm's pubkeypin (a lab may
skip the pin, as kubeadm's --discovery-token-unsafe-skip-ca-verification).
Then, with the token, it asks for its node credential: where kubelet's TLS
bootstrap posts a CertificateSigningRequest that a controller approves and
signs, knet's joiner posts the request itself to /knet/v1/nodecredentials
and gets the certificate back in the answer (CN=system:node:<name>,
O=system:nodes). The private key never leaves the joining machine.

Pure: the Secret's and ConfigMap's shapes, parsing with errors that name the
field, the hash; `cryptography` is imported only where a key is read or signed.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import re
import secrets
import string

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
TOKEN_FORM = "[a-z0-9]{6}.[a-z0-9]{16}"
HASH_RE = re.compile(r"^sha256:([0-9a-f]{64})$")
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
BOOTSTRAPPERS = "system:bootstrappers"
DEFAULT_GROUP = "system:bootstrappers:kubeadm:default-node-token"  # kubeadm's auth-extra-groups
USER_PREFIX = "system:bootstrap:"
DEFAULT_TTL = datetime.timedelta(hours=24)  # kubeadm's token TTL
CLUSTER_INFO = ("kube-public", "cluster-info")
CREDENTIALS_PATH = "/knet/v1/nodecredentials"
NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
_ALPHABET = string.ascii_lowercase + string.digits
_NODE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")


class BootstrapError(ValueError):
    """Input that cannot be used; the message names the field, as the API's errors do."""


# -- tokens ------------------------------------------------------------------------------


def generate_token() -> str:
    """A fresh token of kubeadm's form (id.secret, lowercase letters and digits)."""
    pick = lambda n: "".join(secrets.choice(_ALPHABET) for _ in range(n))  # noqa: E731
    return f"{pick(6)}.{pick(16)}"


def parse_token(text: str, field: str = "--token") -> tuple[str, str]:
    """(id, secret) of a token, or a BootstrapError naming the field."""
    m = TOKEN_RE.match(text or "")
    if not m:
        raise BootstrapError(f"{field}: Invalid value: {text!r}: must be of the form {TOKEN_FORM} "
                             "(knet init prints one)")
    return m[1], m[2]


def token_secret(token: str, now: datetime.datetime | None = None, ttl: datetime.timedelta = DEFAULT_TTL,
                 groups: tuple[str, ...] = (DEFAULT_GROUP,), description: str = "") -> dict:
    """kube-system/bootstrap-token-<id> as kubeadm writes it (data base64-encoded)."""
    token_id, secret = parse_token(token)
    now = now or datetime.datetime.now(datetime.UTC)
    data = {"token-id": token_id, "token-secret": secret,
            "expiration": (now + ttl).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "usage-bootstrap-authentication": "true", "usage-bootstrap-signing": "true",
            "auth-extra-groups": ",".join(groups)}
    if description:
        data["description"] = description
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": SECRET_PREFIX + token_id, "namespace": "kube-system"},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def secret_value(secret: dict, key: str) -> str:
    """A bootstrap-token Secret's field as the authenticator reads it (data, else stringData; '' when unreadable)."""
    raw = (secret.get("data") or {}).get(key)
    if raw is None:
        return str((secret.get("stringData") or {}).get(key) or "")
    try:
        return base64.b64decode(raw).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def authenticate(token: str, find_secret, now: datetime.datetime | None = None) -> tuple[str, list[str]] | None:
    """(user, groups) for a valid bootstrap token, else None. find_secret(name)
    returns kube-system's Secret of that name or None. Refused, as upstream:
    a Secret of another type, being deleted, expired, not for authentication,
    or a wrong secret (compared in constant time)."""
    m = TOKEN_RE.match(token or "")
    if not m:
        return None
    secret = find_secret(SECRET_PREFIX + m[1])
    if not secret or secret.get("type") != SECRET_TYPE or (secret.get("metadata") or {}).get("deletionTimestamp"):
        return None
    if secret_value(secret, "token-id") != m[1]:
        return None
    if not hmac.compare_digest(secret_value(secret, "token-secret").encode(), m[2].encode()):
        return None
    expiration = secret_value(secret, "expiration")
    if expiration:
        try:
            when = datetime.datetime.strptime(expiration, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.UTC)
        except ValueError:
            return None
        if when <= (now or datetime.datetime.now(datetime.UTC)):
            return None
    if secret_value(secret, "usage-bootstrap-authentication") != "true":
        return None
    groups = [BOOTSTRAPPERS]
    for g in secret_value(secret, "auth-extra-groups").split(","):
        g = g.strip()
        if g.startswith(BOOTSTRAPPERS + ":") and g not in groups:  # upstream allows only these
            groups.append(g)
    return USER_PREFIX + m[1], groups


# -- the CA's pin --------------------------------------------------------------------------


def ca_cert_hash(ca_pem: bytes) -> str:
    """sha256:<hex> of the CA certificate's SubjectPublicKeyInfo (DER), as
    kubeadm's --discovery-token-ca-cert-hash."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def parse_ca_hash(text: str, field: str = "--discovery-token-ca-cert-hash") -> str:
    """The pin in its canonical form (lowercase hex), or a BootstrapError naming the field."""
    value = (text or "").strip()
    if value[:7].lower() == "sha256:":
        value = "sha256:" + value[7:].lower()
    if not HASH_RE.match(value):
        raise BootstrapError(f"{field}: Invalid value: {text!r}: must be sha256:<64 hex digits> "
                             "(knet init prints it)")
    return value


def parse_server(text: str, default_port: int = 6443, field: str = "server") -> tuple[str, int]:
    """(IPv4 address, port) of `knet join`'s SERVER (an address, optionally :PORT)."""
    import ipaddress

    host, sep, port = (text or "").rpartition(":") if ":" in (text or "") else (text, "", "")
    try:
        ip = ipaddress.IPv4Address(host)
        number = int(port) if sep else default_port
        if not 1 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise BootstrapError(f"{field}: Invalid value: {text!r}: must be the control plane's IPv4 address, "
                             "optionally with :PORT (e.g. 192.168.56.10:6443)") from None
    return str(ip), number


def join_command(server: str, port: int, token: str, ca_hash: str) -> str:
    """What `knet init` prints for the workers, kubeadm's line with knet's name."""
    return f"knet join {server}:{port} --token {token} --discovery-token-ca-cert-hash {ca_hash}"


# -- discovery: kube-public/cluster-info -------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def detached_signature(payload: str, token_id: str, secret: str) -> str:
    """A detached JWS (HS256, key: the token's secret, kid: its id) over payload,
    as cluster-bootstrap's ComputeDetachedSignature: `header..signature`."""
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    signing_input = f"{header}.{_b64url(payload.encode())}".encode()
    return f"{header}..{_b64url(hmac.new(secret.encode(), signing_input, hashlib.sha256).digest())}"


def jws_detached(token: str, payload: str) -> str:
    """cluster-info's jws-kubeconfig-<id> for a token, as kubeadm's bootstrap signer writes it."""
    return detached_signature(payload, *parse_token(token))


def verify_cluster_info(configmap: dict, token: str) -> None:
    """That cluster-info was signed with this token (its JWS for the token's id):
    the token is then a shared secret with the cluster, and the CA inside is the
    cluster's even without a hash to pin it (kubeadm's token discovery)."""
    token_id, _secret = parse_token(token)
    data = configmap.get("data") or {}
    signature = data.get(f"jws-kubeconfig-{token_id}")
    if not signature:
        raise BootstrapError(f"--token: Invalid value: cluster-info has no signature for token id {token_id!r} "
                             "(an unknown or expired token)")
    if not hmac.compare_digest(signature, jws_detached(token, data.get("kubeconfig") or "")):
        raise BootstrapError(f"--token: Invalid value: cluster-info's signature for token id {token_id!r} does not "
                             "match this token's secret")


def cluster_info(server_url: str, ca_pem: bytes, token: str | None = None) -> dict:
    """kube-public/cluster-info as kubeadm publishes it: a kubeconfig holding
    only the cluster (server and CA), readable without credentials, signed
    with the bootstrap token when one is given."""
    kubeconfig = {"apiVersion": "v1", "kind": "Config", "preferences": {},
                  "clusters": [{"name": "", "cluster": {
                      "server": server_url, "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
                  "contexts": None, "current-context": "", "users": None}
    data = {"kubeconfig": json.dumps(kubeconfig, indent=2)}
    if token:
        data[f"jws-kubeconfig-{parse_token(token)[0]}"] = jws_detached(token, data["kubeconfig"])
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CLUSTER_INFO[1], "namespace": CLUSTER_INFO[0]}, "data": data}


def read_cluster_info(configmap: dict) -> tuple[str, bytes]:
    """(server URL, CA PEM) from a cluster-info ConfigMap; BootstrapError when it has neither."""
    import yaml  # the kubeconfig is YAML when kubeadm wrote it; JSON is YAML too

    try:
        doc = yaml.safe_load((configmap.get("data") or {}).get("kubeconfig") or "")
        cluster = doc["clusters"][0]["cluster"]
        return str(cluster["server"]), base64.b64decode(cluster["certificate-authority-data"])
    except (yaml.YAMLError, KeyError, IndexError, TypeError, ValueError):
        raise BootstrapError("cluster-info: Invalid value: its data.kubeconfig holds no cluster with a server "
                             "and certificate-authority-data") from None


def discovery_rbac() -> list[dict]:
    """What kubeadm grants for joining: anyone may read cluster-info (a Role and
    binding in kube-public for system:anonymous), and bootstrap tokens may ask
    for a node credential (system:node-bootstrapper's place)."""
    group = "rbac.authorization.k8s.io"
    return [
        {"apiVersion": f"{group}/v1", "kind": "Role",
         "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": CLUSTER_INFO[0]},
         "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [CLUSTER_INFO[1]],
                    "verbs": ["get"]}]},
        {"apiVersion": f"{group}/v1", "kind": "RoleBinding",
         "metadata": {"name": "kubeadm:bootstrap-signer-clusterinfo", "namespace": CLUSTER_INFO[0]},
         "roleRef": {"apiGroup": group, "kind": "Role", "name": "kubeadm:bootstrap-signer-clusterinfo"},
         "subjects": [{"apiGroup": group, "kind": "User", "name": "system:anonymous"}]},
        {"apiVersion": f"{group}/v1", "kind": "ClusterRole", "metadata": {"name": "knet:node-bootstrapper"},
         "rules": [{"nonResourceURLs": [CREDENTIALS_PATH], "verbs": ["post"]}]},
        {"apiVersion": f"{group}/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "kubeadm:kubelet-bootstrap"},
         "roleRef": {"apiGroup": group, "kind": "ClusterRole", "name": "knet:node-bootstrapper"},
         "subjects": [{"apiGroup": group, "kind": "Group", "name": DEFAULT_GROUP}]},
    ]


# -- the node credential -----------------------------------------------------------------------


def node_csr(node: str) -> tuple[bytes, bytes]:
    """(key PEM, CSR PEM) for a node's client certificate, made on the joining machine."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, NODES_GROUP),
                      x509.NameAttribute(NameOID.COMMON_NAME, NODE_PREFIX + node)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            csr.public_bytes(serialization.Encoding.PEM))


def csr_node(csr_pem: str) -> str:
    """The node a CSR asks a certificate for, as the kube-apiserver-client-kubelet
    signer checks it: signature valid, subject exactly CN=system:node:<name>,
    O=system:nodes. BootstrapError (naming `csr`) otherwise."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode() if isinstance(csr_pem, str) else b"")
    except ValueError:
        raise BootstrapError("csr: Invalid value: not a PEM certificate request") from None
    if not csr.is_signature_valid:
        raise BootstrapError("csr: Invalid value: the request's signature does not verify")
    cns = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    orgs = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if len(cns) != 1 or not str(cns[0]).startswith(NODE_PREFIX) or orgs != [NODES_GROUP]:
        raise BootstrapError(f"csr.subject: Invalid value: must be CN={NODE_PREFIX}<node name>, O={NODES_GROUP}")
    node = str(cns[0])[len(NODE_PREFIX):]
    if not _NODE_NAME.match(node):
        raise BootstrapError(f"csr.subject.commonName: Invalid value: {node!r}: a node name must be a DNS label "
                             "of at most 32 characters")
    return node


def sign_node_csr(csr_pem: str, ca_key_pem: bytes, ca_cert_pem: bytes,
                  now: datetime.datetime | None = None) -> bytes:
    """The node's client certificate for the CSR's own public key, signed by the cluster CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from knet.api.tls import CERT_DAYS, _builder

    csr_node(csr_pem)
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    ca_key = serialization.load_pem_private_key(ca_key_pem, None)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_pem)
    now = now or datetime.datetime.now(datetime.UTC)
    cert = (_builder(csr.subject, ca_cert.subject, csr.public_key(), now, CERT_DAYS, ca=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


class NodeCredentials:
    """The API server's side of joining: bootstrap-token authentication (the
    store's Secrets) and /knet/v1/nodecredentials (signing with the cluster CA).
    kubelet_token is what a node's kubelet port accepts from the API server;
    cluster_json the cluster file a joining machine runs its node with."""

    def __init__(self, registry, state_dir: str, kubelet_token: str | None, cluster_json: str):
        from knet.api.tls import pki_paths

        self.registry = registry
        self.paths = pki_paths(state_dir)
        self.kubelet_token = kubelet_token
        self.cluster_json = cluster_json

    def authenticate(self, token: str) -> tuple[str, list[str]] | None:
        if not TOKEN_RE.match(token):  # not a bootstrap token: no store read for every other bearer token
            return None
        from knet.api.resources import by_kind

        secrets_res = by_kind("Secret")
        return authenticate(token, lambda name: self.registry.find(secrets_res, "kube-system", name))

    def issue(self, user, body: dict) -> dict:
        """user: the request's (a knet.api.rbac User once authorized, or (name, groups))."""
        groups = getattr(user, "groups", None) or (user[1] if isinstance(user, tuple) else ())
        if BOOTSTRAPPERS not in groups:
            from knet.api import errors

            raise errors.ApiError(403, "Forbidden", "only a bootstrap token may ask for a node credential")
        if not isinstance(body, dict) or not isinstance(body.get("csr"), str):
            raise BootstrapError("csr: Required value: a PEM certificate request")
        node = csr_node(body["csr"])
        with open(self.paths.ca_key, "rb") as f:
            ca_key = f.read()
        with open(self.paths.ca_crt, "rb") as f:
            ca_crt = f.read()
        return {"node": node, "certificate": sign_node_csr(body["csr"], ca_key, ca_crt).decode(),
                "kubeletToken": self.kubelet_token or "", "cluster": json.loads(self.cluster_json)}
