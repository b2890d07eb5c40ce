"""What a container's spec means for the process that runs it: environment,
$(VAR) expansion, identity. Pure and light, so the CLI (`knet exec`) and the
agent compute them the same way."""

from __future__ import annotations

import re

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_VAR = re.compile(r"\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)|\$\$")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: a known variable is replaced, an unknown one
    is left as written, and $$ escapes a dollar."""
    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR.sub(sub, text)


def field_ref(pod: dict, path: str, node_ip: str) -> str:
    m, spec, status = pod.get("metadata", {}), pod.get("spec", {}), pod.get("status", {})
    simple = {
        "metadata.name": m.get("name", ""), "metadata.namespace": m.get("namespace", ""),
        "metadata.uid": m.get("uid", ""), "spec.nodeName": spec.get("nodeName", ""),
        "spec.serviceAccountName": spec.get("serviceAccountName", "default"),
        "status.hostIP": status.get("hostIP") or node_ip, "status.podIP": status.get("podIP", ""),
    }
    if path in simple:
        return simple[path]
    found = re.match(r"metadata\.(labels|annotations)\['(.+)'\]$", path)
    if found:
        return (m.get(found[1]) or {}).get(found[2], "")
    return ""


def container_env(pod: dict, container: dict, node_ip: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment kubelet gives a container: PATH and HOSTNAME, the Service
    variables (`extra`), then the container's env in order, each able to refer to
    the ones before it."""
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": pod["spec"].get("hostname") or pod["metadata"]["name"],
           "HOME": "/root"}
    env.update(extra or {})
    for item in container.get("env") or []:
        name = item.get("name")
        if "value" in item:
            env[name] = expand(str(item.get("value", "")), env)
        elif (item.get("valueFrom") or {}).get("fieldRef"):
            env[name] = field_ref(pod, item["valueFrom"]["fieldRef"].get("fieldPath", ""), node_ip)
        else:
            env[name] = ""
    return env


def security(pod: dict, container: dict) -> tuple[int | None, int | None, list[int], bool]:
    """(uid, gid, supplemental groups, no_new_privs): the container's
    securityContext overrides the pod's, as in Kubernetes."""
    psc = pod["spec"].get("securityContext") or {}
    csc = container.get("securityContext") or {}
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    gid = csc.get("runAsGroup", psc.get("runAsGroup"))
    groups = list(psc.get("supplementalGroups") or [])
    if psc.get("fsGroup") is not None:
        groups.append(psc["fsGroup"])
    no_new_privs = csc.get("allowPrivilegeEscalation") is False
    return uid, gid, groups, no_new_privs


def service_env(services: list[dict]) -> dict[str, str]:
    """The Docker-links-style variables kubelet gives every container for each
    Service it can see (FOO_SERVICE_HOST, FOO_SERVICE_PORT, FOO_PORT_80_TCP...)."""
    env: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: s["metadata"]["name"]):
        spec = svc.get("spec", {})
        ip = spec.get("clusterIP")
        ports = spec.get("ports") or []
        if not ip or ip == "None" or not ports:
            continue
        name = svc["metadata"]["name"].upper().replace("-", "_")
        env[f"{name}_SERVICE_HOST"] = ip
        env[f"{name}_SERVICE_PORT"] = str(ports[0]["port"])
        for p in ports:
            if p.get("name"):
                env[f"{name}_SERVICE_PORT_{p['name'].upper().replace('-', '_')}"] = str(p["port"])
        first = ports[0]
        env[f"{name}_PORT"] = f"{first.get('protocol', 'TCP').lower()}://{ip}:{first['port']}"
        for p in ports:
            proto = p.get("protocol", "TCP")
            prefix = f"{name}_PORT_{p['port']}_{proto}"
            env[prefix] = f"{proto.lower()}://{ip}:{p['port']}"
            env[f"{prefix}_PROTO"] = proto.lower()
            env[f"{prefix}_PORT"] = str(p["port"])
            env[f"{prefix}_ADDR"] = ip
    return env
