"""ServiceAccounts: the admission that gives pods their identity, the
TokenRequest API that issues their tokens, and the authenticator that reads
the tokens back.

- Admission (upstream's plugin/pkg/admission/serviceaccount): a pod gets
  spec.serviceAccountName `default`, and unless automountServiceAccountToken
  is false (on the pod, else on the ServiceAccount) the projected volume
  `kube-api-access-<5 random>` (a serviceAccountToken of 3607 s at `token`,
  the `kube-root-ca.crt` ConfigMap's ca.crt, the namespace from the
  downward API) mounted read-only at /var/run/secrets/kubernetes.io/
  serviceaccount in every container that has nothing mounted there.
- Tokens: JWTs signed ES256 with the cluster's service-account key
  (`<state>/pki/sa.key`, made by `knet up` with the CA), with upstream's
  claims (iss, sub, aud, exp, iat, nbf, jti and the private
  `kubernetes.io` claim naming the namespace, ServiceAccount, pod and
  node). A token bound to a pod is good only while that pod (same uid) and
  its ServiceAccount (same uid) exist: the authenticator checks both on
  every request, as kube-apiserver's validator does.

`cryptography` is imported on first use (the control plane's start), never
on the CLI's path.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import time
import uuid
from typing import TYPE_CHECKING

from knet.api import errors
from knet.api.authz import AUTHENTICATED, User
from knet.api.errors import FieldError

if TYPE_CHECKING:
    from knet.api.registry import Registry

VOLUME_PREFIX = "kube-api-access-"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
WARN_ONLY_SECONDS = 3607  # serviceaccount.WarnOnlyBoundTokenExpirationSeconds: the admission's tokens
EXTENDED_SECONDS = 365 * 24 * 3600  # ExpirationExtensionSeconds: what a 3607 s pod token really lasts
DEFAULT_SECONDS = 3600
MIN_SECONDS = 600
SA_PREFIX = "system:serviceaccount:"
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's rand.String alphabet


def username(namespace: str, name: str) -> str:
    return f"{SA_PREFIX}{namespace}:{name}"


def group_names(namespace: str) -> tuple[str, ...]:
    return ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")


def split_username(name: str) -> tuple[str, str] | None:
    if not name.startswith(SA_PREFIX):
        return None
    ns, _, sa = name[len(SA_PREFIX):].partition(":")
    return (ns, sa) if ns and sa and ":" not in sa else None


# -- admission ----------------------------------------------------------------------------------


def token_volume(name: str) -> dict:
    """TokenVolumeSource as the admission plugin writes it (defaultMode 0644 explicitly)."""
    return {"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": WARN_ONLY_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}


def admit_pod(reg: Registry, pod: dict) -> None:
    """The ServiceAccount admission plugin on a pod's create. A named
    ServiceAccount that does not exist is refused as upstream refuses it;
    the namespace's `default` one may still be on its way (its controller
    makes it right after the namespace), so its absence is let through."""
    from knet.api.resources import by_kind

    spec = pod.get("spec")
    if not isinstance(spec, dict):
        return
    meta = pod.get("metadata") or {}
    if (meta.get("annotations") or {}).get("kubernetes.io/config.mirror"):
        return
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = name
    ns = meta.get("namespace") or "default"
    sa = reg.find(by_kind("ServiceAccount"), ns, name)
    if sa is None and name != "default":
        raise errors.ApiError(403, "Forbidden", f'pods "{meta.get("name") or meta.get("generateName") or ""}" is '
                              f"forbidden: error looking up service account {ns}/{name}: "
                              f'serviceaccount "{name}" not found')
    automount = spec.get("automountServiceAccountToken")
    if automount is None and sa is not None:
        automount = sa.get("automountServiceAccountToken")
    if automount is False:
        return
    volumes = spec.get("volumes") if isinstance(spec.get("volumes"), list) else []
    volume_name = next((v.get("name") for v in volumes if isinstance(v, dict)
                        and str(v.get("name") or "").startswith(VOLUME_PREFIX)), None)
    has_volume = volume_name is not None
    if not has_volume:
        volume_name = VOLUME_PREFIX + "".join(secrets.choice(_NAME_CHARS) for _ in range(5))
    needs_volume = False
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if not isinstance(c, dict):
                continue
            mounts = c.get("volumeMounts") if isinstance(c.get("volumeMounts"), list) else []
            if any(isinstance(m, dict) and m.get("mountPath") == MOUNT_PATH for m in mounts):
                continue
            c["volumeMounts"] = [*mounts, {"name": volume_name, "readOnly": True, "mountPath": MOUNT_PATH}]
            needs_volume = True
    if needs_volume and not has_volume:
        spec["volumes"] = [*volumes, token_volume(volume_name)]


# -- signing ------------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_paths(state_dir: str) -> tuple[str, str]:
    """kubeadm's names: sa.key (private) and sa.pub, in the cluster's pki."""
    d = os.path.join(state_dir, "pki")
    return os.path.join(d, "sa.key"), os.path.join(d, "sa.pub")


def write_key(state_dir: str) -> str:
    """Make the service-account signing key (P-256) unless it exists."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private, public = key_paths(state_dir)
    if os.path.exists(private):
        return private
    os.makedirs(os.path.dirname(private), mode=0o700, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for path, data, mode in ((private, pem, 0o600), (public, pub, 0o644)):
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
    return private


class Signer:
    """The cluster's token issuer: signs and verifies ES256 JWTs."""

    def __init__(self, key_pem: bytes, issuer: str):
        from cryptography.hazmat.primitives import serialization

        self.key = serialization.load_pem_private_key(key_pem, None)
        self.public = self.key.public_key()
        der = self.public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        self.kid = _b64(hashlib.sha256(der).digest())  # upstream's keyIDFromPublicKey
        self.issuer = issuer
        self.audiences = [issuer]  # kube-apiserver's --api-audiences default to the issuer
        self._header = _b64(json.dumps({"alg": "ES256", "kid": self.kid}, separators=(",", ":")).encode())

    @classmethod
    def load(cls, state_dir: str, issuer: str) -> Signer:
        path = write_key(state_dir)
        with open(path, "rb") as f:
            return cls(f.read(), issuer)

    def sign(self, claims: dict) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{self._header}.{payload}".encode()
        r, s = decode_dss_signature(self.key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return f"{self._header}.{payload}.{_b64(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def verify(self, token: str) -> dict | None:
        """The claims of a token this signer made, or None."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

        try:
            header_b64, payload_b64, sig_b64 = token.split(".")
            header = json.loads(_unb64(header_b64))
            if header.get("alg") != "ES256" or header.get("kid") not in (None, self.kid):
                return None
            sig = _unb64(sig_b64)
            if len(sig) != 64:
                return None
            der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
            self.public.verify(der, f"{header_b64}.{payload_b64}".encode(), ec.ECDSA(hashes.SHA256()))
            claims = json.loads(_unb64(payload_b64))
        except (ValueError, InvalidSignature, TypeError):
            return None
        return claims if isinstance(claims, dict) else None

    def jwks(self) -> dict:
        nums = self.public.public_numbers()
        return {"keys": [{"use": "sig", "kty": "EC", "kid": self.kid, "crv": "P-256", "alg": "ES256",
                          "x": _b64(nums.x.to_bytes(32, "big")), "y": _b64(nums.y.to_bytes(32, "big"))}]}

    def openid_configuration(self, jwks_uri: str) -> dict:
        return {"issuer": self.issuer, "jwks_uri": jwks_uri, "response_types_supported": ["id_token"],
                "subject_types_supported": ["public"], "id_token_signing_alg_values_supported": ["ES256"]}


# -- the TokenRequest API -----------------------------------------------------------------------


def _invalid(name: str, path: str, value: object, detail: str) -> errors.Invalid:
    return errors.Invalid("TokenRequest", name, [FieldError(path, "Invalid value", value, detail)])


def token_request(reg: Registry, signer: Signer, namespace: str, name: str, body: dict,
                  now: float | None = None, node: str | None = None) -> dict:
    """POST serviceaccounts/NAME/token: a TokenRequest answered with its token.
    `node`: the requesting node's name when a node asks (NodeRestriction:
    only for a pod bound to it)."""
    from knet.api.objects import now_rfc3339
    from knet.api.resources import by_kind

    if body.get("kind") not in (None, "", "TokenRequest"):
        raise errors.bad_request(f"the kind {errors.render_value(body['kind'])} in the body does not match "
                                 "the subresource's kind 'TokenRequest'")
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise errors.bad_request("TokenRequest.spec: must be an object")
    seconds = spec.get("expirationSeconds", DEFAULT_SECONDS)
    if seconds is None:
        seconds = DEFAULT_SECONDS
    if isinstance(seconds, bool) or not isinstance(seconds, int):
        raise errors.bad_request("json: cannot unmarshal into Go struct field TokenRequestSpec.spec.expirationSeconds"
                                 " of type int64")
    if seconds < MIN_SECONDS:
        raise _invalid(name, "spec.expirationSeconds", seconds, "may not specify a duration less than 10 minutes")
    if seconds > 2 ** 32:
        raise _invalid(name, "spec.expirationSeconds", seconds, "may not specify a duration larger than 2^32 seconds")
    audiences = spec.get("audiences") or list(signer.audiences)
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise errors.bad_request("TokenRequest.spec.audiences: must be a list of strings")
    sa = reg.get(by_kind("ServiceAccount"), namespace, name)
    now = time.time() if now is None else now
    iat = int(now)
    exp = iat + seconds
    private: dict = {"namespace": namespace, "serviceaccount": {"name": name, "uid": sa["metadata"]["uid"]}}
    ref = spec.get("boundObjectRef")
    bound_pod = None
    if ref:
        if not isinstance(ref, dict):
            raise errors.bad_request("TokenRequest.spec.boundObjectRef: must be an object")
        kind, ref_name = ref.get("kind"), ref.get("name") or ""
        if kind not in ("Pod", "Secret", "Node"):
            raise errors.Invalid("TokenRequest", name, [FieldError("spec.boundObjectRef.kind", "Unsupported value",
                                                                   kind, 'supported values: "Node", "Pod", "Secret"')])
        res = by_kind(kind) if kind != "Node" else by_kind("Node")
        obj = reg.get(res, namespace if kind != "Node" else None, ref_name)
        uid = obj["metadata"]["uid"]
        if ref.get("uid") and ref["uid"] != uid:
            raise errors.ApiError(409, "Conflict", f"the UID in the bound object reference ({ref['uid']}) does not "
                                  f"match the UID in record. The object might have been deleted and then recreated")
        if kind == "Pod":
            bound_pod = obj
            if (obj.get("spec") or {}).get("serviceAccountName", "default") != name:
                raise errors.bad_request(f'cannot bind token for serviceaccount "{name}" to pod running with '
                                         f'different serviceaccount name.')
            private["pod"] = {"name": ref_name, "uid": uid}
            node_name = (obj.get("spec") or {}).get("nodeName")
            if node_name:
                found = reg.find(by_kind("Node"), None, node_name)
                if found is not None:
                    private["node"] = {"name": node_name, "uid": found["metadata"]["uid"]}
        elif kind == "Secret":
            private["secret"] = {"name": ref_name, "uid": uid}
        else:
            private["node"] = {"name": ref_name, "uid": uid}
        ref = {**ref, "uid": uid}
    if node is not None and (bound_pod is None or (bound_pod.get("spec") or {}).get("nodeName") != node):
        raise errors.ApiError(403, "Forbidden", f'serviceaccounts "{name}" is forbidden: node "{node}" can only '
                              "create tokens for pods bound to itself")
    if bound_pod is not None and seconds == WARN_ONLY_SECONDS:
        exp = iat + EXTENDED_SECONDS
        private["warnafter"] = iat + WARN_ONLY_SECONDS
    claims = {"aud": audiences, "exp": exp, "iat": iat, "iss": signer.issuer, "jti": str(uuid.uuid4()),
              "kubernetes.io": private, "nbf": iat, "sub": username(namespace, name)}
    out_spec: dict = {"audiences": audiences, "expirationSeconds": seconds}
    if ref:
        out_spec["boundObjectRef"] = ref
    return {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": now_rfc3339(now)},
            "spec": out_spec,
            "status": {"token": signer.sign(claims), "expirationTimestamp": now_rfc3339(iat + seconds)}}


# -- authentication -----------------------------------------------------------------------------


class TokenAuthenticator:
    """ServiceAccount JWTs to users, as kube-apiserver's service-account
    token authenticator: a good signature, our issuer, one of our
    audiences, within nbf..exp, and (for bound tokens) the pod and the
    ServiceAccount still there with the uids the token names."""

    def __init__(self, signer: Signer, store):
        self.signer = signer
        self.store = store
        self._verified: dict[str, dict] = {}  # signature checks are ~0.1 ms: once per token
        # The uid and metadata of the pods and ServiceAccounts tokens name, kept until their key changes:
        # a bound token's per-request check then costs no store read (the store's events drop an entry).
        self._objects: dict[str, tuple[str, dict] | None] = {}
        self.unsubscribe = store.subscribe(self._on_event)

    def _on_event(self, event) -> None:
        if event.key in self._objects:
            del self._objects[event.key]

    def _uid(self, key: str) -> tuple[str, dict] | None:
        if key in self._objects:
            return self._objects[key]
        found = self.store.get(key)
        out = None
        if found is not None:
            meta = json.loads(found[0]).get("metadata") or {}
            out = (meta.get("uid") or "", {"deletionTimestamp": meta.get("deletionTimestamp")})
        if len(self._objects) > 20000:
            self._objects.clear()
        self._objects[key] = out
        return out

    def authenticate(self, token: str, now: float | None = None) -> User | None:
        claims = self._verified.get(token)
        if claims is None:
            claims = self.signer.verify(token)
            if claims is None:
                return None
            if len(self._verified) > 10000:
                self._verified.clear()
            self._verified[token] = claims
        now = time.time() if now is None else now
        if claims.get("iss") != self.signer.issuer:
            return None
        aud = claims.get("aud")
        aud = [aud] if isinstance(aud, str) else aud or []
        if not set(aud) & set(self.signer.audiences):
            return None
        try:
            if now > float(claims["exp"]) or now + 60 < float(claims.get("nbf", 0)):
                return None
        except (KeyError, TypeError, ValueError):
            return None
        private = claims.get("kubernetes.io")
        if not isinstance(private, dict):
            return None
        ns = private.get("namespace") or ""
        sa = private.get("serviceaccount") or {}
        sa_name = sa.get("name") or ""
        if claims.get("sub") != username(ns, sa_name):
            return None
        found = self._uid(f"/registry/serviceaccounts/{ns}/{sa_name}")
        if found is None or found[0] != sa.get("uid") or found[1].get("deletionTimestamp"):
            return None
        extra: dict = {}
        pod = private.get("pod")
        if isinstance(pod, dict):
            found = self._uid(f"/registry/pods/{ns}/{pod.get('name')}")
            if found is None or found[0] != pod.get("uid"):
                return None
            extra["authentication.kubernetes.io/pod-name"] = [pod.get("name")]
            extra["authentication.kubernetes.io/pod-uid"] = [pod.get("uid")]
        secret = private.get("secret")
        if isinstance(secret, dict):
            found = self._uid(f"/registry/secrets/{ns}/{secret.get('name')}")
            if found is None or found[0] != secret.get("uid"):
                return None
        node = private.get("node")
        if isinstance(node, dict):
            extra["authentication.kubernetes.io/node-name"] = [node.get("name")]
            extra["authentication.kubernetes.io/node-uid"] = [node.get("uid")]
        if claims.get("jti"):
            extra["authentication.kubernetes.io/credential-id"] = [f"JTI={claims['jti']}"]
        return User(username(ns, sa_name), (*group_names(ns), AUTHENTICATED), sa.get("uid") or "", extra)


def discovery_document(signer: Signer, path: str, host: str) -> dict:
    """/.well-known/openid-configuration or /openid/v1/jwks (the issuer's keys),
    as kube-apiserver's service-account issuer discovery serves them."""
    if path == "/openid/v1/jwks":
        return signer.jwks()
    return signer.openid_configuration(f"https://{host or 'kubernetes.default.svc'}/openid/v1/jwks")
