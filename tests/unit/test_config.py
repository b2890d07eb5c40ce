import pytest

from knet.config import ConfigError, default_config, parse_cluster


def test_default_is_three_plus_one():
    cfg = default_config()
    assert [(n.name, n.role, n.ip) for n in cfg.nodes] == [
        ("control-plane", "control-plane", "192.168.56.10"), ("worker-1", "worker", "192.168.56.11"),
        ("worker-2", "worker", "192.168.56.12"), ("worker-3", "worker", "192.168.56.13")]
    assert cfg.ext_ip == "192.168.56.1"
    assert cfg.control_plane.taints == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    assert cfg.fabric_netns == "knet-knet-fabric" and cfg.node_netns("worker-1") == "knet-knet-worker-1"


def test_kind_style_file():
    cfg = parse_cluster({"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4",
                         "networking": {"podSubnet": "10.10.0.0/16", "lanSubnet": "10.0.5.0/24"},
                         "nodes": [{"role": "control-plane"}, {"role": "worker", "name": "edge",
                                                               "labels": {"zone": "x"}}],
                         "knet": {"nodeGracePeriodSeconds": 3}}, "lab")
    assert cfg.name == "lab" and cfg.pod_subnet == "10.10.0.0/16"
    assert [n.ip for n in cfg.nodes] == ["10.0.5.10", "10.0.5.11"]
    assert cfg.node("edge").labels["zone"] == "x" and cfg.node_grace_seconds == 3
    assert cfg.node_status_report_seconds == 300  # kubelet's nodeStatusReportFrequency
    assert parse_cluster({"knet": {"nodeStatusReportSeconds": 60}}).node_status_report_seconds == 60


@pytest.mark.parametrize("doc,field", [
    ({"kind": "Pod"}, "kind"),
    ({"nodes": [{"role": "worker"}]}, "nodes"),
    ({"nodes": [{"role": "control-plane"}, {"role": "boss"}]}, "nodes[1].role"),
    ({"nodes": [{"role": "control-plane"}, {"name": "a"}, {"name": "a"}]}, "nodes[2].name"),
    ({"nodes": [{"role": "control-plane", "name": "Bad_Name"}]}, "nodes[0].name"),
    ({"networking": {"serviceSubnet": "10.96.0.1/12"}}, "networking.serviceSubnet"),
    ({"networking": {"nodePortRange": "40000-30000"}}, "networking.nodePortRange"),
    ({"knet": {"heartbeatSeconds": -1}}, "knet.heartbeatSeconds"),
    ({"knet": {"nodeStatusReportSeconds": 0}}, "knet.nodeStatusReportSeconds"),
    ({"networking": {"dnsDomain": "Cluster_Local"}}, "networking.dnsDomain"),
    ({"networking": {"dnsDomain": ""}}, "networking.dnsDomain"),
    ({"networking": {"dnsUpstreams": "192.168.56.1"}}, "networking.dnsUpstreams"),
    ({"networking": {"dnsUpstreams": ["192.168.56.1", "dns.google"]}}, "networking.dnsUpstreams[1]"),
    ({"networking": {"dnsUpstreams": ["0.0.0.0"]}}, "networking.dnsUpstreams[0]"),
    ({"networking": {"dnsUpstreams": ["1.1.1.1", "1.1.1.1"]}}, "networking.dnsUpstreams[1]"),
    ({"networking": {"nodeCIDRMaskSize": 15}}, "networking.nodeCIDRMaskSize"),
    ({"networking": {"nodeCIDRMaskSize": 31}}, "networking.nodeCIDRMaskSize"),
    ({"networking": {"nodeCIDRMaskSize": "23"}}, "networking.nodeCIDRMaskSize"),
    ({"networking": {"podSubnet": "10.244.0.0/24"}}, "networking.nodeCIDRMaskSize"),
    ({"networking": {"podSubnet": "10.244.0.0/22", "nodeCIDRMaskSize": 23}}, "networking.nodeCIDRMaskSize"),
])
def test_bad_cluster_files_name_the_field(doc, field):
    with pytest.raises(ConfigError) as e:
        parse_cluster(doc)
    assert str(e.value).startswith(field + ":")


def test_cluster_name_rules():
    with pytest.raises(ConfigError, match="^name:"):
        default_config("Has_Caps")
    with pytest.raises(ConfigError, match="^name:"):
        default_config("x" * 21)


def test_dns_settings():
    cfg = default_config()
    assert (cfg.dns_domain, cfg.dns_upstreams, cfg.dns_service_ip) == ("cluster.local", [], "10.96.0.10")
    cfg = parse_cluster({"networking": {"dnsDomain": "lab.test.", "dnsUpstreams": ["192.168.56.1", "2001:db8::53"],
                                        "serviceSubnet": "10.100.0.0/16"}})
    assert (cfg.dns_domain, cfg.dns_upstreams, cfg.dns_service_ip) == (
        "lab.test", ["192.168.56.1", "2001:db8::53"], "10.100.0.10")
    assert type(cfg).from_json(cfg.to_json()).dns_upstreams == cfg.dns_upstreams


def test_node_cidr_mask_size():
    """kube-controller-manager's --node-cidr-mask-size: a /23 per node holds the 300 pods a raised
    maxPods allows (a /24 runs out at 253)."""
    assert default_config().node_cidr_mask_size == 24
    cfg = parse_cluster({"networking": {"nodeCIDRMaskSize": 23},
                         "nodes": [{"role": "control-plane"}, {"maxPods": 300}]})
    assert cfg.node_cidr_mask_size == 23 and cfg.nodes[1].max_pods == 300
    assert parse_cluster({"networking": {"podSubnet": "10.244.0.0/22", "nodeCIDRMaskSize": 24}}).nodes
