"""The API server's identity parts assembled at the control plane's start:
the default RBAC policy, the ServiceAccount admission, the token signer and
authenticator, the Node and RBAC authorizers, the kubelet client credential.
One call for controlplane.py, so its start-up reads as before."""

from __future__ import annotations

import os

from knet.api import bootstrappolicy
from knet.api.nodeauthz import NodeAuthorizer
from knet.api.rbac import Authorizer
from knet.api.serviceaccounts import Signer, TokenAuthenticator
from knet.api.tls import kubelet_token_path, pki_paths, write_identities


class Identity:
    def __init__(self, reg, signer: Signer, authorizer: Authorizer, kubelet_token: str | None, ca_pem: str,
                 state_dir: str = ""):
        self.reg = reg
        self.state_dir = state_dir
        self.signer = signer
        self.authorizer = authorizer
        self.kubelet_token = kubelet_token
        self.ca_pem = ca_pem

    @classmethod
    def start(cls, reg, state_dir: str, dns_domain: str, nodes: list[str]) -> Identity:
        write_identities(state_dir, nodes)  # a cluster made before them gets them now
        bootstrappolicy.bootstrap(reg)
        reg.service_accounts = True
        signer = Signer.load(state_dir, f"https://kubernetes.default.svc.{dns_domain}")
        with open(pki_paths(state_dir).ca_crt) as f:
            ca_pem = f.read()
        token = None
        if os.path.exists(kubelet_token_path(state_dir)):
            with open(kubelet_token_path(state_dir)) as f:
                token = f.read().strip()
        return cls(reg, signer, Authorizer(reg.store, NodeAuthorizer(reg.store)), token, ca_pem, state_dir)

    def configure(self, server) -> None:
        server.authorizer = self.authorizer
        server.signer = self.signer
        server.token_authenticator = TokenAuthenticator(self.signer, self.reg.store)
        server.kubelet_token = self.kubelet_token
        if self.state_dir and os.path.exists(os.path.join(self.state_dir, "cluster.json")):  # bootstrap tokens and node credentials for `knet join` (knet/api/bootstraptoken.py)
            from knet.api.bootstraptoken import NodeCredentials

            with open(os.path.join(self.state_dir, "cluster.json")) as f:
                server.node_credentials = NodeCredentials(self.reg, self.state_dir, self.kubelet_token, f.read())
