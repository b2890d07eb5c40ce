"""ServiceAccount tokens and admission: the JWTs the TokenRequest API signs
(upstream's claims, ES256, the 3607 s extension), the authenticator that
refuses a token once its pod or ServiceAccount is gone (or recreated), the
admission's token volume exactly as upstream writes it, and the controllers
that give each namespace its `default` ServiceAccount and kube-root-ca.crt."""

from __future__ import annotations

import base64
import json

import pytest

from knet.api import serviceaccounts as sa
from knet.api.errors import ApiError
from knet.api.registry import Registry
from knet.api.resources import by_kind
from knet.controllers.identity import IdentityControllers
from knet.store.sqlite import SqliteStore

ISSUER = "https://kubernetes.default.svc.cluster.local"
NOW = 1.8e9


@pytest.fixture(scope="module")
def signer(tmp_path_factory):
    return sa.Signer.load(str(tmp_path_factory.mktemp("state")), ISSUER)


@pytest.fixture
def reg(tmp_path):
    reg = Registry(SqliteStore(str(tmp_path / "s.db")))
    reg.bootstrap()
    reg.service_accounts = True
    reg.create(by_kind("Node"), None, {"metadata": {"name": "worker-1"}})
    reg.create(by_kind("ServiceAccount"), "default", {"metadata": {"name": "default"}})
    return reg


def pod(reg, name="web", **spec):
    body = {"nodeName": "worker-1", "containers": [{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]}
    body.update(spec)
    return reg.create(by_kind("Pod"), "default", {"metadata": {"name": name}, "spec": body})


def claims_of(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))


def request(reg, signer, p, seconds=None, now=NOW):
    spec = {"boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": p["metadata"]["name"],
                               "uid": p["metadata"]["uid"]}}
    if seconds:
        spec["expirationSeconds"] = seconds
    return sa.token_request(reg, signer, "default", "default", {"spec": spec}, now=now)


def test_a_token_carries_upstreams_claims_and_is_signed_es256(reg, signer):
    p = pod(reg)
    out = request(reg, signer, p, 3600)
    assert out["kind"] == "TokenRequest" and out["status"]["expirationTimestamp"] == "2027-01-15T09:00:00Z"
    token = out["status"]["token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header == {"alg": "ES256", "kid": signer.kid}
    c = claims_of(token)
    node_uid = reg.get(by_kind("Node"), None, "worker-1")["metadata"]["uid"]
    sa_uid = reg.get(by_kind("ServiceAccount"), "default", "default")["metadata"]["uid"]
    assert c["sub"] == "system:serviceaccount:default:default" and c["iss"] == ISSUER and c["aud"] == [ISSUER]
    assert c["iat"] == c["nbf"] == int(NOW) and c["exp"] == int(NOW) + 3600
    assert c["kubernetes.io"] == {"namespace": "default",
                                  "serviceaccount": {"name": "default", "uid": sa_uid},
                                  "pod": {"name": "web", "uid": p["metadata"]["uid"]},
                                  "node": {"name": "worker-1", "uid": node_uid}}
    assert signer.verify(token) == c
    forged = token.split(".")
    forged[1] = base64.urlsafe_b64encode(json.dumps({**c, "sub": "system:admin"}).encode()).rstrip(b"=").decode()
    assert signer.verify(".".join(forged)) is None
    key = signer.jwks()["keys"][0]
    assert (key["kty"], key["crv"], key["alg"], key["kid"]) == ("EC", "P-256", "ES256", signer.kid)


def test_the_admissions_3607_second_token_lasts_a_year_and_warns_after_3607(reg, signer):
    c = claims_of(request(reg, signer, pod(reg), sa.WARN_ONLY_SECONDS)["status"]["token"])
    assert c["exp"] == int(NOW) + 365 * 24 * 3600 and c["kubernetes.io"]["warnafter"] == int(NOW) + 3607


def test_token_requests_are_refused_as_upstream_refuses_them(reg, signer):
    p = pod(reg)
    with pytest.raises(ApiError) as e:
        request(reg, signer, p, 599)
    assert e.value.code == 422 and e.value.message == ('TokenRequest "default" is invalid: spec.expirationSeconds: '
                                                       'Invalid value: 599: may not specify a duration less than '
                                                       '10 minutes')
    with pytest.raises(ApiError) as e:
        sa.token_request(reg, signer, "default", "nobody", {})
    assert e.value.code == 404 and e.value.message == 'serviceaccounts "nobody" not found'
    stale = {"spec": {"boundObjectRef": {"kind": "Pod", "name": "web", "uid": "not-its-uid"}}}
    with pytest.raises(ApiError) as e:
        sa.token_request(reg, signer, "default", "default", stale)
    assert e.value.code == 409 and "does not match the UID in record" in e.value.message
    with pytest.raises(ApiError) as e:
        sa.token_request(reg, signer, "default", "default", {}, node="worker-1")
    assert e.value.code == 403 and "can only create tokens for pods bound to itself" in e.value.message


def test_the_authenticator_maps_a_token_to_its_serviceaccount_while_its_pod_lives(reg, signer):
    auth = sa.TokenAuthenticator(signer, reg.store)
    p = pod(reg)
    token = request(reg, signer, p, now=None)["status"]["token"]
    user = auth.authenticate(token)
    assert user.name == "system:serviceaccount:default:default"
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated")
    assert user.extra["authentication.kubernetes.io/pod-name"] == ["web"]
    reg.delete(by_kind("Pod"), "default", "web", grace=0)
    assert auth.authenticate(token) is None  # its pod is gone
    pod(reg)  # the same name again: another uid
    assert auth.authenticate(token) is None
    fresh = request(reg, signer, reg.get(by_kind("Pod"), "default", "web"), now=None)["status"]["token"]
    assert auth.authenticate(fresh) is not None
    reg.delete(by_kind("ServiceAccount"), "default", "default")
    assert auth.authenticate(fresh) is None  # its ServiceAccount is gone
    assert auth.authenticate("not.a.token") is None and auth.authenticate("x") is None


def test_an_expired_or_foreign_token_is_refused(reg, signer, tmp_path):
    auth = sa.TokenAuthenticator(signer, reg.store)
    token = sa.token_request(reg, signer, "default", "default", {"spec": {"expirationSeconds": 600}},
                             now=NOW)["status"]["token"]
    assert auth.authenticate(token, now=NOW + 10) is not None
    assert auth.authenticate(token, now=NOW + 601) is None
    other = sa.Signer.load(str(tmp_path), ISSUER)
    foreign = sa.token_request(reg, other, "default", "default", {}, now=NOW)["status"]["token"]
    assert auth.authenticate(foreign, now=NOW + 10) is None
    wrong_aud = sa.token_request(reg, signer, "default", "default", {"spec": {"audiences": ["vault"]}},
                                 now=NOW)["status"]["token"]
    assert auth.authenticate(wrong_aud, now=NOW + 10) is None


def test_admission_mounts_the_token_volume_in_every_container(reg):
    p = pod(reg)["spec"]
    assert p["serviceAccountName"] == "default"
    [vol] = p["volumes"]
    assert vol == sa.token_volume(vol["name"])
    assert vol["name"][:16] == "kube-api-access-" and len(vol["name"]) == 21
    assert set(vol["name"][16:]) <= set("bcdfghjklmnpqrstvwxz2456789")
    mount = {"name": vol["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    assert [c["volumeMounts"] for c in p["containers"]] == [[mount], [mount]]


def test_admission_honours_automount_and_existing_mounts(reg):
    assert "volumes" not in pod(reg, "off", automountServiceAccountToken=False)["spec"]
    reg.create(by_kind("ServiceAccount"), "default", {"metadata": {"name": "quiet"},
                                                      "automountServiceAccountToken": False})
    assert "volumes" not in pod(reg, "quiet", serviceAccountName="quiet")["spec"]
    on = pod(reg, "on", serviceAccountName="quiet", automountServiceAccountToken=True)["spec"]
    assert on["volumes"][0]["name"].startswith("kube-api-access-")
    own = {"name": "mine", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    mixed = pod(reg, "mixed", volumes=[{"name": "mine", "emptyDir": {}}],
                containers=[{"name": "a", "image": "i", "volumeMounts": [own]}, {"name": "b", "image": "i"}])["spec"]
    assert mixed["containers"][0]["volumeMounts"] == [own]
    assert mixed["containers"][1]["volumeMounts"][0]["name"].startswith("kube-api-access-")
    with pytest.raises(ApiError) as e:
        pod(reg, "lost", serviceAccountName="nobody")
    assert e.value.code == 403 and e.value.message == ('pods "lost" is forbidden: error looking up service account '
                                                       'default/nobody: serviceaccount "nobody" not found')


def test_each_namespace_gets_its_default_serviceaccount_and_root_ca(reg):
    ctl = IdentityControllers(reg, "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n")
    unsubscribe = reg.store.subscribe(ctl.on_event)
    try:
        ctl.sync_all()
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            assert reg.find(by_kind("ServiceAccount"), ns, "default") is not None
            assert reg.get(by_kind("ConfigMap"), ns, "kube-root-ca.crt")["data"] == {"ca.crt": ctl.ca_pem}
        reg.create(by_kind("Namespace"), None, {"metadata": {"name": "team-a"}})
        reg.delete(by_kind("ServiceAccount"), "default", "default")
        cm = reg.get(by_kind("ConfigMap"), "kube-system", "kube-root-ca.crt")
        cm["data"] = {"ca.crt": "tampered"}
        reg.update(by_kind("ConfigMap"), "kube-system", "kube-root-ca.crt", cm)
        ctl.drain()
        assert reg.find(by_kind("ServiceAccount"), "team-a", "default") is not None
        assert reg.find(by_kind("ServiceAccount"), "default", "default") is not None
        assert reg.get(by_kind("ConfigMap"), "kube-system", "kube-root-ca.crt")["data"] == {"ca.crt": ctl.ca_pem}
    finally:
        unsubscribe()


def test_the_issuer_publishes_its_key_for_token_reviewers(signer):
    conf = sa.discovery_document(signer, "/.well-known/openid-configuration", "192.168.56.10:6443")
    assert conf == {"issuer": ISSUER, "jwks_uri": "https://192.168.56.10:6443/openid/v1/jwks",
                    "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["ES256"]}
    [key] = sa.discovery_document(signer, "/openid/v1/jwks", "")["keys"]
    from cryptography.hazmat.primitives.asymmetric import ec

    nums = signer.public.public_numbers()
    assert ec.EllipticCurvePublicNumbers(
        int.from_bytes(base64.urlsafe_b64decode(key["x"] + "=="), "big"),
        int.from_bytes(base64.urlsafe_b64decode(key["y"] + "=="), "big"), ec.SECP256R1()) == nums
