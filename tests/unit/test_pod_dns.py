"""The pod's DNS files as kubelet writes them (pkg/kubelet/network/dns/dns.go
GetPodDNS, kubelet_pods.go managedHostsFileContent), from its test cases."""

import pytest

from knet.config import default_config, parse_cluster
from knet.node.podspec import (
    NSSWITCH_CONF,
    DNSConfig,
    hosts_file,
    node_dns,
    pod_dns,
    pod_hostname,
    resolv_conf,
)
from knet.node.sandbox import resolv_conf_text

CLUSTER = "10.96.0.10"
NODE = DNSConfig(["192.168.56.1"], ["lab.example"], ["timeout:2"])


def pod(ns="prod", name="web-0", **spec):
    return {"metadata": {"name": name, "namespace": ns}, "spec": spec}


def dns(p, node=NODE, cluster=CLUSTER, domain="cluster.local"):
    warnings: list[str] = []
    out = pod_dns(p, cluster_dns=cluster, domain=domain, node=node, warnings=warnings)
    return out, warnings


def test_cluster_first_is_the_default_and_puts_the_cluster_first():
    out, warnings = dns(pod())
    assert out.nameservers == [CLUSTER]  # the node's are dropped: the cluster DNS forwards
    assert out.searches == ["prod.svc.cluster.local", "svc.cluster.local", "cluster.local", "lab.example"]
    assert out.options == ["ndots:5"] and warnings == []
    assert resolv_conf(out) == ("search prod.svc.cluster.local svc.cluster.local cluster.local lab.example\n"
                                "nameserver 10.96.0.10\noptions ndots:5\n")


def test_cluster_search_paths_follow_the_namespace_and_domain():
    out, _ = dns(pod(ns="shop"), node=None, domain="corp.internal")
    assert out.searches == ["shop.svc.corp.internal", "svc.corp.internal", "corp.internal"]


def test_host_search_duplicates_are_dropped():
    out, _ = dns(pod(), node=DNSConfig(["1.1.1.1"], ["cluster.local", "x.example"], []))
    assert out.searches == ["prod.svc.cluster.local", "svc.cluster.local", "cluster.local", "x.example"]


def test_default_copies_the_node():
    out, _ = dns(pod(dnsPolicy="Default"))
    assert (out.nameservers, out.searches, out.options) == (["192.168.56.1"], ["lab.example"], ["timeout:2"])


def test_host_network_cluster_first_falls_back_to_default():
    out, _ = dns(pod(hostNetwork=True))
    assert out.nameservers == ["192.168.56.1"]
    out, _ = dns(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"))
    assert out.nameservers == [CLUSTER] and out.options == ["ndots:5"]


def test_cluster_first_with_host_net_without_host_network_is_cluster_first():
    assert dns(pod(dnsPolicy="ClusterFirstWithHostNet"))[0] == dns(pod())[0]


def test_no_cluster_dns_falls_back_to_default():
    out, _ = dns(pod(), cluster=None)
    assert out.nameservers == ["192.168.56.1"]


def test_none_starts_empty_and_takes_dns_config():
    out, _ = dns(pod(dnsPolicy="None", dnsConfig={
        "nameservers": ["1.1.1.1"], "searches": ["resolv.conf.local"], "options": [{"name": "ndots", "value": "2"}]}))
    assert resolv_conf(out) == "search resolv.conf.local\nnameserver 1.1.1.1\noptions ndots:2\n"


def test_dns_config_merges_into_cluster_first():
    """Nameservers and searches appended without duplicates, options
    overridden by name (kubelet's appendDNSConfig / mergeDNSOptions)."""
    out, _ = dns(pod(dnsConfig={
        "nameservers": [CLUSTER, "8.8.8.8"], "searches": ["cluster.local", "ns1.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}, {"name": "single-request-reopen"}]}))
    assert out.nameservers == [CLUSTER, "8.8.8.8"]
    assert out.searches == ["prod.svc.cluster.local", "svc.cluster.local", "cluster.local", "lab.example", "ns1.example"]
    assert out.options == ["ndots:2", "edns0", "single-request-reopen"]


def test_option_without_value_clears_it():
    out, _ = dns(pod(dnsConfig={"options": [{"name": "ndots"}]}))
    assert out.options == ["ndots"]


def test_nameserver_limit_cuts_to_three_with_a_warning():
    out, warnings = dns(pod(dnsConfig={"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3"]}))
    assert out.nameservers == [CLUSTER, "1.1.1.1", "2.2.2.2"]
    assert warnings == ["Nameserver limits were exceeded, some nameservers have been omitted, "
                        "the applied nameserver line is: 10.96.0.10 1.1.1.1 2.2.2.2"]


def test_search_limits_as_kubelet():
    many = [f"s{i}.example" for i in range(40)]
    out, warnings = dns(pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"], "searches": many}))
    assert out.searches == many[:32] and len(warnings) == 1 and warnings[0].startswith("Search Line limits")
    long_path = "a" * 254
    out, warnings = dns(pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"], "searches": [long_path, "ok"]}))
    assert out.searches == ["ok"] and warnings
    wide = [("x" * 60 + f".d{i}") for i in range(32)]  # 32 paths of 64 characters: over 2048 with spaces
    out, warnings = dns(pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"], "searches": wide}))
    assert len(" ".join(out.searches)) <= 2048 and out.searches == wide[:len(out.searches)]
    assert len(out.searches) == 31 and warnings


def test_node_resolv_conf_is_the_upstreams_or_kubelets_empty_default():
    assert node_dns(["192.168.56.1", "9.9.9.9"]) == DNSConfig(["192.168.56.1", "9.9.9.9"], [], [])
    assert node_dns([]) is None
    assert dns(pod(), node=None)[0].searches == ["prod.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    out, _ = dns(pod(dnsPolicy="Default", dnsConfig={"nameservers": ["1.1.1.1"]}), node=None)
    assert (out.nameservers, out.searches) == (["127.0.0.1", "1.1.1.1"], ["."])


def test_sandbox_resolv_conf_uses_the_cluster_file():
    cfg = parse_cluster({"networking": {"serviceSubnet": "10.100.0.0/16", "dnsDomain": "lab.test",
                                        "dnsUpstreams": ["192.168.56.1"]}})
    assert resolv_conf_text(cfg, pod(ns="a")) == (
        "search a.svc.lab.test svc.lab.test lab.test\nnameserver 10.100.0.10\noptions ndots:5\n")
    assert resolv_conf_text(cfg, pod(dnsPolicy="Default")) == "nameserver 192.168.56.1\n"
    assert resolv_conf_text(default_config(), pod(dnsPolicy="Default")) == "search .\nnameserver 127.0.0.1\n"


HEADER = ("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
          "fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n")


def test_hosts_file_with_the_pods_own_name_and_ip():
    assert hosts_file(pod(), ["10.244.1.5"], "cluster.local") == HEADER + "10.244.1.5\tweb-0\n"
    assert hosts_file(pod(), [], "cluster.local") == HEADER  # before the network is up


def test_hosts_file_with_hostname_subdomain_and_aliases():
    p = pod(hostname="db-1", subdomain="db", hostAliases=[
        {"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]}, {"ip": "10.1.2.3", "hostnames": ["foo.remote"]}])
    assert hosts_file(p, ["10.244.2.7"], "cluster.local") == (
        HEADER + "10.244.2.7\tdb-1.db.prod.svc.cluster.local\tdb-1\n"
        "\n# Entries added by HostAliases.\n127.0.0.1\tfoo.local\tbar.local\n10.1.2.3\tfoo.remote\n")


def test_host_network_pod_gets_the_node_hosts_and_aliases():
    p = pod(hostNetwork=True, hostAliases=[{"ip": "1.2.3.4", "hostnames": ["a"]}])
    assert hosts_file(p, ["192.168.56.11"], "cluster.local", node_hosts="127.0.0.1\tlocalhost") == (
        "127.0.0.1\tlocalhost\n\n# Entries added by HostAliases.\n1.2.3.4\ta\n")


@pytest.mark.parametrize("name,expected", [
    ("web-0", "web-0"), ("a" * 70, "a" * 63), ("a" * 62 + "-b", "a" * 62), ("a" * 61 + ".-x", "a" * 61)])
def test_hostname_truncated_as_kubelet(name, expected):
    assert pod_hostname(pod(name=name)) == expected


def test_nsswitch_consults_files_then_dns():
    hosts = [line.split() for line in NSSWITCH_CONF.splitlines() if line.startswith("hosts:")]
    assert hosts == [["hosts:", "files", "dns"]]


# -- what the API refuses (validatePodDNSConfig, validateHostAliases) -------------------------

def api_errors(**spec):
    from knet.api.defaults import apply_defaults
    from knet.api.validation import validation_errors

    spec.setdefault("containers", [{"name": "c", "image": "agnhost"}])
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"}, "spec": spec}
    return [str(e) for e in validation_errors(apply_defaults(obj))]


def test_valid_dns_settings_pass():
    assert api_errors(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1"], "searches": ["a.example."],
                                                   "options": [{"name": "ndots", "value": "2"}]},
                      hostAliases=[{"ip": "10.1.2.3", "hostnames": ["foo.local"]}]) == []


@pytest.mark.parametrize("spec,expected", [
    ({"dnsPolicy": "None"}, "spec.dnsConfig: Required value: must provide `dnsConfig` when `dnsPolicy` is None"),
    ({"dnsPolicy": "None", "dnsConfig": {"searches": ["a"]}},
     "spec.dnsConfig.nameservers: Required value: must provide at least one DNS nameserver when `dnsPolicy` is None"),
    ({"dnsConfig": {"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"]}},
     "spec.dnsConfig.nameservers: Invalid value: "),
    ({"dnsConfig": {"nameservers": ["1.2.3.c"]}}, "spec.dnsConfig.nameservers[0]: Invalid value: \"1.2.3.c\""),
    ({"dnsConfig": {"searches": [f"s{i}" for i in range(33)]}}, "spec.dnsConfig.searches: Invalid value: "),
    ({"dnsConfig": {"searches": ["a" * 60 + f".x{i}" for i in range(32)]}},
     "spec.dnsConfig.searches: Invalid value: "),
    ({"dnsConfig": {"searches": ["Bad_Domain"]}}, "spec.dnsConfig.searches[0]: Invalid value: \"Bad_Domain\""),
    ({"dnsConfig": {"options": [{"value": "2"}]}}, "spec.dnsConfig.options[0]: Required value: must not be empty"),
    ({"hostAliases": [{"ip": "nope", "hostnames": ["a"]}]}, "spec.hostAliases[0].ip: Invalid value: \"nope\""),
    ({"hostAliases": [{"ip": "1.2.3.4", "hostnames": ["ok", "NOT OK"]}]},
     "spec.hostAliases[0].hostnames[1]: Invalid value: \"NOT OK\""),
])
def test_bad_dns_settings_name_the_field(spec, expected):
    errors = api_errors(**spec)
    assert len(errors) == 1 and errors[0].startswith(expected), errors
