#!/usr/bin/env bash
# The Vagrant lab end to end, from the host: `vagrant up` (the control plane's knet init,
# the workers' knet join), every node Ready, then packets across the VMs: a pod on worker-1
# reaches a pod on worker-2 over the VXLAN overlay with its own address (no NAT), a ClusterIP
# answers, a NodePort answers the control-plane VM on every worker; then `knet reset` on
# each VM must leave no knet device, and `vagrant destroy` (KNET_KEEP=1 keeps the VMs).
# Each phase's seconds are printed; the last line is one JSON object with all of them.
#
#   KNET_PROVIDER=libvirt KNET_BOX=knet-debian12 ./check.sh
#
# Settings: those of the Vagrantfile (KNET_WORKERS, KNET_BOX, KNET_SUBNET, ...), and
# KNET_PROVIDER (virtualbox or libvirt; default: Vagrant's), KNET_KEEP.
set -euo pipefail
cd "$(dirname "$0")"
WORKERS=${KNET_WORKERS:-2}
SUBNET=${KNET_SUBNET:-192.168.56}
KUBECTL="kubectl --kubeconfig /run/knet/knet/admin.conf"  # the Vagrantfile puts kubectl on PATH
(( WORKERS >= 2 )) || { echo "check.sh needs KNET_WORKERS >= 2 (pods on two workers)" >&2; exit 2; }

declare -A took
start=$(date +%s)
mark=$start
phase() {  # phase NAME: the seconds since the previous phase
  local now; now=$(date +%s); took[$1]=$((now - mark)); mark=$now
  echo "== $1: ${took[$1]}s"
}
fail() { echo "FAIL: $*" >&2; exit 1; }
on() { local vm=$1; shift; vagrant ssh "$vm" -c "sudo $*" -- -q 2>/dev/null; }
cleanup() {
  local rc=$?
  if [[ -z "${KNET_KEEP:-}" ]]; then vagrant destroy -f >/dev/null 2>&1 || true; fi
  exit $rc
}
trap cleanup EXIT

vagrant up --no-parallel ${KNET_PROVIDER:+--provider="$KNET_PROVIDER"}
phase up

want=$((WORKERS + 1))
for _ in $(seq 1 60); do
  ready=$(on cp knet get nodes --no-headers | awk '$2 == "Ready"' | wc -l || true)
  (( ready == want )) && break
  sleep 5
done
(( ready == want )) || fail "$ready of $want nodes Ready"
on cp knet get nodes -o wide
phase nodes_ready

on cp "sh -c 'cat > /tmp/knet-check.yaml'" <<'EOF'
apiVersion: v1
kind: Pod
metadata: {name: a, labels: {app: a}}
spec:
  nodeSelector: {kubernetes.io/hostname: worker-1}
  containers:
  - {name: srv, image: agnhost, ports: [{containerPort: 80}]}
  - {name: tools, image: agnhost, command: [sleep, "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: b, labels: {app: b}}
spec:
  nodeSelector: {kubernetes.io/hostname: worker-2}
  containers:
  - {name: srv, image: agnhost, ports: [{containerPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: b}
spec:
  selector: {app: b}
  ports: [{port: 8080, targetPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: b-np}
spec:
  type: NodePort
  selector: {app: b}
  ports: [{port: 80, targetPort: 80}]
EOF
on cp knet apply -f /tmp/knet-check.yaml
on cp $KUBECTL wait --for=condition=Ready pod/a pod/b --timeout=900s  # software-emulated VMs start pods slowly
phase pods_ready

a_ip=$(on cp $KUBECTL get pod a -o "jsonpath={.status.podIP}")
b_ip=$(on cp $KUBECTL get pod b -o "jsonpath={.status.podIP}")
from_a() { on cp $KUBECTL exec a -c tools -- sh -c "'echo $1 | nc -w3 $2 $3'"; }
seen=$(from_a clientip "$b_ip" 80 | tr -d '\r')
[[ "${seen%%:*}" == "$a_ip" ]] || fail "pod a ($a_ip) to pod b ($b_ip) across the VMs: b saw '$seen'"
echo "PASS pod a ($a_ip, worker-1) -> pod b ($b_ip, worker-2) over VXLAN, source kept"
phase pod_to_pod

cluster_ip=$(on cp $KUBECTL get service b -o "jsonpath={.spec.clusterIP}")
seen=$(from_a hostname "$cluster_ip" 8080 | tr -d '\r')
[[ "$seen" == "b" ]] || fail "ClusterIP $cluster_ip:8080 from pod a answered '$seen'"
echo "PASS ClusterIP $cluster_ip:8080 -> b"
node_port=$(on cp $KUBECTL get service b-np -o "jsonpath={.spec.ports[0].nodePort}")
for i in $(seq 1 "$WORKERS"); do
  ip="$SUBNET.$((10 + i))"
  seen=$(on cp "sh -c 'echo hostname | nc -w3 $ip $node_port'" | tr -d '\r')
  [[ "$seen" == "b" ]] || fail "NodePort $ip:$node_port from the control-plane VM answered '$seen'"
  echo "PASS NodePort $ip:$node_port from cp -> b"
done
phase services

# Throughput, pod to pod across VMs against VM to VM (iperf3 is in scripts/setup's packages).
on worker-2 "sh -c 'iperf3 -s -D -1 >/dev/null'"
vm_bps=$(on worker-1 iperf3 -c "$SUBNET.12" -t 3 -J | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))')
on cp $KUBECTL exec b -c srv -- sh -c "'iperf3 -s -D -1 >/dev/null'" || true
pod_bps=$(on cp $KUBECTL exec a -c tools -- iperf3 -c "$b_ip" -t 3 -J \
  | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))' || echo 0)
echo "throughput: VM to VM $((vm_bps / 1000000)) Mbit/s, pod to pod across VMs $((pod_bps / 1000000)) Mbit/s"
phase throughput

for vm in cp $(seq -f "worker-%g" 1 "$WORKERS"); do
  on "$vm" knet reset
  left=$(on "$vm" ip -br link | awk '{print $1}' | grep -E '^(cni0|knet\.1|veth)' || true)
  [[ -z "$left" ]] || fail "knet reset on $vm left: $left"
  tables=$(on "$vm" nft list tables | grep knet- || true)
  [[ -z "$tables" ]] || fail "knet reset on $vm left nftables tables: $tables"
done
echo "PASS knet reset on every VM"
phase reset

total=$(( $(date +%s) - start ))
printf '{"workers": %d, "up_s": %d, "nodes_ready_s": %d, "pods_ready_s": %d, "pod_to_pod_s": %d, "services_s": %d, "reset_s": %d, "total_s": %d, "vm_to_vm_bps": %d, "pod_to_pod_bps": %d}\n' \
  "$WORKERS" "${took[up]}" "${took[nodes_ready]}" "${took[pods_ready]}" "${took[pod_to_pod]}" "${took[services]}" \
  "${took[reset]}" "$total" "$vm_bps" "$pod_bps"
