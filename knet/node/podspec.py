"""What a pod's spec means for the processes that run in it: environment,
$(VAR) expansion, identity, and its DNS files (resolv.conf, hosts,
nsswitch.conf) as kubelet composes them. Pure and light, so the CLI (`knet
exec`) and the agent compute them the same way."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

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


# -- DNS: the pod's resolv.conf, hosts and nsswitch.conf, as kubelet writes them ----------

# Kubernetes' limits (pkg/apis/core/validation: MaxDNSNameservers, and the
# ExpandedDNSConfig limits kubelet applies since 1.28): kubelet cuts a
# composed config down to them and says so in a DNSConfigForming event.
MAX_NAMESERVERS = 3
MAX_SEARCH_PATHS = 32
MAX_SEARCH_CHARS = 2048
MAX_SEARCH_PATH_LEN = 253

# What the pod's glibc reads to decide where names come from: its own
# /etc/hosts, then the resolv.conf's nameservers. The host's own file may say
# `mdns4_minimal [NOTFOUND=return]` (which ends every *.local lookup, the
# cluster domain's included) or `resolve` (systemd-resolved, which would
# ignore the pod's resolv.conf): a pod must not inherit either. This is the
# file Debian's base image ships.
NSSWITCH_CONF = """\
# knet: the pod's name service switch (as a Debian container image ships it).
passwd:         files
group:          files
shadow:         files
gshadow:        files

hosts:          files dns
networks:       files

protocols:      db files
services:       db files
ethers:         db files
rpc:            db files

netgroup:       nis
"""


@dataclass
class DNSConfig:
    """What kubelet hands the runtime (runtimeapi.DNSConfig); the runtime writes it."""
    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)


def node_dns(upstreams: list[str] | tuple[str, ...]) -> DNSConfig | None:
    """The node's own resolv.conf, which kubelet's --resolv-conf names and
    dnsPolicy Default copies. A knet node has no file of its own (it shares the
    host's /etc, which must not leak into the cluster), so its resolv.conf is
    the cluster file's `networking.dnsUpstreams`: the servers the cluster DNS
    forwards to are the ones the node would ask. Without upstreams there is no
    file (None): kubelet's empty --resolv-conf, so Default pods get the
    localhost and search "." (no name resolution beyond files)."""
    return DNSConfig(list(upstreams), [], []) if upstreams else None


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _merge_options(existing: list[str], extra: list[dict]) -> list[str]:
    """kubelet's mergeDNSOptions: by name, the pod's dnsConfig wins. (kubelet goes
    through a Go map, so its order is random; here it is first-seen order.)"""
    opts: dict[str, str] = {}
    for op in existing:
        name, _, value = op.partition(":")
        opts[name] = value
    for op in extra:
        value = op.get("value")
        opts[str(op.get("name", ""))] = "" if value is None else str(value)
    return [f"{k}:{v}" if v else k for k, v in opts.items()]


def _fit_limits(cfg: DNSConfig, warnings: list[str]) -> DNSConfig:
    """kubelet's formDNSConfigFitsLimits: too many nameservers or search paths,
    paths over 253 characters and a search line over 2048 are cut, with a
    warning each (the DNSConfigForming event's message)."""
    if len(cfg.nameservers) > MAX_NAMESERVERS:
        cfg.nameservers = cfg.nameservers[:MAX_NAMESERVERS]
        warnings.append("Nameserver limits were exceeded, some nameservers have been omitted, "
                        "the applied nameserver line is: " + " ".join(cfg.nameservers))
    search, exceeded = cfg.searches, False
    if len(search) > MAX_SEARCH_PATHS:
        search, exceeded = search[:MAX_SEARCH_PATHS], True
    kept = [s for s in search if len(s) <= MAX_SEARCH_PATH_LEN]
    exceeded = exceeded or len(kept) != len(search)
    while kept and len(" ".join(kept)) > MAX_SEARCH_CHARS:
        kept.pop()
        exceeded = True
    if exceeded:
        warnings.append("Search Line limits were exceeded, some search paths have been omitted, "
                        "the applied search line is: " + " ".join(kept))
    cfg.searches = kept
    return cfg


def pod_dns(pod: dict, *, cluster_dns: str | None, domain: str, node: DNSConfig | None,
            warnings: list[str] | None = None) -> DNSConfig:
    """kubelet's GetPodDNS. ClusterFirst: the cluster DNS only (it forwards
    the rest), the three cluster search paths before the node's, ndots:5;
    a hostNetwork pod with ClusterFirst falls back to Default (the node's
    file) unless it asks for ClusterFirstWithHostNet; None starts empty. Then
    dnsConfig is merged in: nameservers and searches appended without
    duplicates, options overridden by name; then the limits. `node` None is
    a kubelet without --resolv-conf."""
    spec = pod.get("spec") or {}
    policy = spec.get("dnsPolicy") or "ClusterFirst"
    host_network = spec.get("hostNetwork") is True
    warn = warnings if warnings is not None else []
    if policy == "None":
        cfg = DNSConfig()
    elif (policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not host_network)) and cluster_dns:
        ns_name = (pod.get("metadata") or {}).get("namespace") or "default"
        cluster_search = [f"{ns_name}.svc.{domain}", f"svc.{domain}", domain] if domain else []
        cfg = DNSConfig([cluster_dns], _unique(cluster_search + (node.searches if node else [])), ["ndots:5"])
    elif node is not None:  # Default, ClusterFirst on the host network, or no cluster DNS configured
        cfg = DNSConfig(list(node.nameservers), list(node.searches), list(node.options))
    else:
        cfg = DNSConfig(["127.0.0.1"], ["."], [])
    dns_config = spec.get("dnsConfig")
    if isinstance(dns_config, dict):
        cfg.nameservers = _unique(cfg.nameservers + [str(x) for x in dns_config.get("nameservers") or []])
        cfg.searches = _unique(cfg.searches + [str(x) for x in dns_config.get("searches") or []])
        cfg.options = _merge_options(cfg.options, [o for o in dns_config.get("options") or [] if isinstance(o, dict)])
    return _fit_limits(cfg, warn)


def resolv_conf(cfg: DNSConfig) -> str:
    """The file as the runtime writes it (containerd: search, nameservers, options)."""
    lines = []
    if cfg.searches:
        lines.append("search " + " ".join(cfg.searches))
    lines += [f"nameserver {n}" for n in cfg.nameservers]
    if cfg.options:
        lines.append("options " + " ".join(cfg.options))
    return "\n".join(lines) + "\n" if lines else ""


def pod_hostname(pod: dict) -> str:
    """kubelet's GeneratePodHostNameAndDomain, the hostname half: spec.hostname
    or the pod's name, cut to 63 characters without a trailing '-' or '.'."""
    name = (pod.get("spec") or {}).get("hostname") or pod["metadata"]["name"]
    if len(name) > 63:
        name = name[:63].rstrip("-.")
    return name


def pod_domain(pod: dict, domain: str) -> str:
    """The other half: `<subdomain>.<namespace>.svc.<domain>` when the pod has a
    subdomain (its name under a headless Service), else none."""
    sub = (pod.get("spec") or {}).get("subdomain")
    if not sub or not domain:
        return ""
    return f"{sub}.{pod['metadata'].get('namespace') or 'default'}.svc.{domain}"


HOSTS_HEADER = "# Kubernetes-managed hosts file.\n"


def hosts_file(pod: dict, pod_ips: list[str], domain: str, node_hosts: str | None = None) -> str:
    """kubelet's managedHostsFileContent: localhost and the IPv6 names, the
    pod's own IPs with its FQDN (when it has a subdomain) and hostname, then
    hostAliases under their own header. A hostNetwork pod gets the node's
    hosts file (`node_hosts`) and the aliases instead."""
    spec = pod.get("spec") or {}
    aliases = [a for a in spec.get("hostAliases") or [] if isinstance(a, dict)]
    if spec.get("hostNetwork") is True and node_hosts is not None:
        out = node_hosts if node_hosts.endswith("\n") or not node_hosts else node_hosts + "\n"
    else:
        out = (HOSTS_HEADER + "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
               "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")
        hostname, fqdn_domain = pod_hostname(pod), pod_domain(pod, domain)
        for ip in pod_ips:
            out += f"{ip}\t{hostname}.{fqdn_domain}\t{hostname}\n" if fqdn_domain else f"{ip}\t{hostname}\n"
    if aliases:
        out += "\n# Entries added by HostAliases.\n"
        for a in aliases:
            out += f"{a.get('ip', '')}\t" + "\t".join(str(h) for h in a.get("hostnames") or []) + "\n"
    return out
