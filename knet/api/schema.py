"""The fields of every kind knet serves, as the Go types of k8s.io/api declare them.

The API server decodes request bodies against this table (knet/api/decode.py)
the way kube-apiserver decodes JSON into its Go structs: a value of the wrong
JSON type is a decode error, an unknown field is pruned (and reported under
strict field validation). It is data, one entry per Go struct, so that adding
a field is adding a line.

A type expression is one of:
  string int32 int64 bool float64      Go scalars (bytes: []byte, a base64 string in JSON)
  IntOrString Quantity Time MicroTime  apimachinery types with their own JSON form
  any                                  free-form JSON (RawExtension, FieldsV1, ...)
  []T  map[string]T                    slices and maps
  Name                                 a struct in STRUCTS, a named string in
                                       NAMED_STRINGS, or an alias in ALIASES
Go's error messages name types as `v1.Name` (core, apps, discovery, networking
and meta are all packages called "v1"; network-policy-api's are `v1alpha1.Name`,
listed in V1ALPHA1), so the table keeps Go's names.
Volume sources and the few fields knet never reads and nobody hand-writes
(PersistentVolumeClaim templates, Node config sources) are `any`: accepted as
they come, never reported as unknown.
"""

from __future__ import annotations

S, I32, I64, B = "string", "int32", "int64", "bool"

# Named string types (`type Protocol string`): decoded as strings, named in errors.
NAMED_STRINGS = frozenset({
    "Protocol", "ServiceType", "ServiceAffinity", "ServiceExternalTrafficPolicy", "ServiceInternalTrafficPolicy",
    "IPFamily", "IPFamilyPolicy", "RestartPolicy", "ContainerRestartPolicy", "DNSPolicy", "PullPolicy",
    "TerminationMessagePolicy", "URIScheme", "Capability", "ProcMountType", "SeccompProfileType",
    "AppArmorProfileType", "TaintEffect", "TolerationOperator", "NodeSelectorOperator",
    "LabelSelectorOperator", "UnsatisfiableConstraintAction", "NodeInclusionPolicy", "PreemptionPolicy",
    "OSName", "PodFSGroupChangePolicy", "SupplementalGroupsPolicy", "PodSELinuxChangePolicy",
    "MountPropagationMode", "RecursiveReadOnlyMode", "ResourceName", "ResourceResizeRestartPolicy",
    "HostPathType", "StorageMedium", "PodPhase", "PodConditionType", "ConditionStatus", "PodQOSClass",
    "PodResizeStatus", "DeploymentStrategyType", "DeploymentConditionType", "ReplicaSetConditionType",
    "DaemonSetUpdateStrategyType", "DaemonSetConditionType", "PodManagementPolicyType",
    "StatefulSetUpdateStrategyType", "StatefulSetConditionType",
    "PersistentVolumeClaimRetentionPolicyType", "AddressType", "PolicyType", "FinalizerName",
    "NamespacePhase", "NamespaceConditionType", "NodePhase", "NodeConditionType", "NodeAddressType",
    "UniqueVolumeName", "LoadBalancerIPMode", "ManagedFieldsOperationType", "UID", "Signal",
    "AdminNetworkPolicyRuleAction", "BaselineAdminNetworkPolicyRuleAction", "CIDR", "DomainName",
    "DeletionPropagation", "SecretType",
})

# Named non-struct types: Go's name in errors, and what they decode as.
ALIASES = {
    "ResourceList": "map[string]Quantity",
}

_OBJECT = {"kind": S, "apiVersion": S, "metadata": "ObjectMeta"}

_CONTAINER = {
    "name": S, "image": S, "command": "[]string", "args": "[]string", "workingDir": S,
    "ports": "[]ContainerPort", "envFrom": "[]EnvFromSource", "env": "[]EnvVar",
    "resources": "ResourceRequirements", "resizePolicy": "[]ContainerResizePolicy",
    "restartPolicy": "ContainerRestartPolicy", "restartPolicyRules": "any",
    "volumeMounts": "[]VolumeMount", "volumeDevices": "[]VolumeDevice",
    "livenessProbe": "Probe", "readinessProbe": "Probe", "startupProbe": "Probe", "lifecycle": "Lifecycle",
    "terminationMessagePath": S, "terminationMessagePolicy": "TerminationMessagePolicy",
    "imagePullPolicy": "PullPolicy", "securityContext": "SecurityContext",
    "stdin": B, "stdinOnce": B, "tty": B,
}

_PROBE_HANDLER = {"exec": "ExecAction", "httpGet": "HTTPGetAction", "tcpSocket": "TCPSocketAction",
                  "grpc": "GRPCAction"}

STRUCTS: dict[str, dict[str, str]] = {
    # -- meta/v1 ----------------------------------------------------------------------
    "ObjectMeta": {
        "name": S, "generateName": S, "namespace": S, "selfLink": S, "uid": "UID", "resourceVersion": S,
        "generation": I64, "creationTimestamp": "Time", "deletionTimestamp": "Time",
        "deletionGracePeriodSeconds": I64, "labels": "map[string]string", "annotations": "map[string]string",
        "ownerReferences": "[]OwnerReference", "finalizers": "[]string", "managedFields": "[]ManagedFieldsEntry",
    },
    "OwnerReference": {"apiVersion": S, "kind": S, "name": S, "uid": "UID", "controller": B,
                       "blockOwnerDeletion": B},
    "ManagedFieldsEntry": {"manager": S, "operation": "ManagedFieldsOperationType", "apiVersion": S,
                           "time": "Time", "fieldsType": S, "fieldsV1": "any", "subresource": S},
    "LabelSelector": {"matchLabels": "map[string]string", "matchExpressions": "[]LabelSelectorRequirement"},
    "LabelSelectorRequirement": {"key": S, "operator": "LabelSelectorOperator", "values": "[]string"},
    "Condition": {"type": S, "status": "ConditionStatus", "observedGeneration": I64,
                  "lastTransitionTime": "Time", "reason": S, "message": S},
    # What lists, errors, deletes and patches carry (OpenAPI's paths name them).
    "ListMeta": {"selfLink": S, "resourceVersion": S, "continue": S, "remainingItemCount": I64},
    "Status": {"kind": S, "apiVersion": S, "metadata": "ListMeta", "status": S, "message": S, "reason": S,
               "details": "StatusDetails", "code": I32},
    "StatusDetails": {"name": S, "group": S, "kind": S, "uid": "UID", "causes": "[]StatusCause",
                      "retryAfterSeconds": I32},
    "StatusCause": {"reason": S, "message": S, "field": S},
    "DeleteOptions": {"kind": S, "apiVersion": S, "gracePeriodSeconds": I64, "preconditions": "Preconditions",
                      "orphanDependents": B, "propagationPolicy": "DeletionPropagation", "dryRun": "[]string",
                      "ignoreStoreReadErrorWithClusterBreakingPotential": B},
    "Preconditions": {"uid": "UID", "resourceVersion": S},
    "Patch": {},
    # What subresources take and answer (pods/binding, pods/eviction, */scale).
    "Binding": {**_OBJECT, "target": "ObjectReference"},
    "Eviction": {**_OBJECT, "deleteOptions": "DeleteOptions"},
    "Scale": {**_OBJECT, "spec": "ScaleSpec", "status": "ScaleStatus"},
    "ScaleSpec": {"replicas": I32},
    "ScaleStatus": {"replicas": I32, "selector": S},

    # -- core/v1: Pod -------------------------------------------------------------------
    "Pod": {**_OBJECT, "spec": "PodSpec", "status": "PodStatus"},
    "PodTemplateSpec": {"metadata": "ObjectMeta", "spec": "PodSpec"},
    "PodSpec": {
        "volumes": "[]Volume", "initContainers": "[]Container", "containers": "[]Container",
        "ephemeralContainers": "[]EphemeralContainer", "restartPolicy": "RestartPolicy",
        "terminationGracePeriodSeconds": I64, "activeDeadlineSeconds": I64, "dnsPolicy": "DNSPolicy",
        "nodeSelector": "map[string]string", "serviceAccountName": S, "serviceAccount": S,
        "automountServiceAccountToken": B, "nodeName": S, "hostNetwork": B, "hostPID": B, "hostIPC": B,
        "shareProcessNamespace": B, "securityContext": "PodSecurityContext",
        "imagePullSecrets": "[]LocalObjectReference", "hostname": S, "subdomain": S, "affinity": "Affinity",
        "schedulerName": S, "tolerations": "[]Toleration", "hostAliases": "[]HostAlias",
        "priorityClassName": S, "priority": I32, "dnsConfig": "PodDNSConfig",
        "readinessGates": "[]PodReadinessGate", "runtimeClassName": S, "enableServiceLinks": B,
        "preemptionPolicy": "PreemptionPolicy", "overhead": "ResourceList",
        "topologySpreadConstraints": "[]TopologySpreadConstraint", "setHostnameAsFQDN": B, "os": "PodOS",
        "hostUsers": B, "schedulingGates": "[]PodSchedulingGate", "resourceClaims": "[]PodResourceClaim",
        "resources": "ResourceRequirements", "hostnameOverride": S,
    },
    "Container": _CONTAINER,
    "EphemeralContainer": {**_CONTAINER, "targetContainerName": S},
    "ContainerPort": {"name": S, "hostPort": I32, "containerPort": I32, "protocol": "Protocol", "hostIP": S},
    "EnvVar": {"name": S, "value": S, "valueFrom": "EnvVarSource"},
    "EnvVarSource": {"fieldRef": "ObjectFieldSelector", "resourceFieldRef": "ResourceFieldSelector",
                     "configMapKeyRef": "ConfigMapKeySelector", "secretKeyRef": "SecretKeySelector",
                     "fileKeyRef": "any"},
    "ObjectFieldSelector": {"apiVersion": S, "fieldPath": S},
    "ResourceFieldSelector": {"containerName": S, "resource": S, "divisor": "Quantity"},
    "ConfigMapKeySelector": {"name": S, "key": S, "optional": B},
    "SecretKeySelector": {"name": S, "key": S, "optional": B},
    "EnvFromSource": {"prefix": S, "configMapRef": "ConfigMapEnvSource", "secretRef": "SecretEnvSource"},
    "ConfigMapEnvSource": {"name": S, "optional": B},
    "SecretEnvSource": {"name": S, "optional": B},
    "ResourceRequirements": {"limits": "ResourceList", "requests": "ResourceList", "claims": "[]ResourceClaim"},
    "ResourceClaim": {"name": S, "request": S},
    "ContainerResizePolicy": {"resourceName": "ResourceName", "restartPolicy": "ResourceResizeRestartPolicy"},
    "VolumeMount": {"name": S, "readOnly": B, "recursiveReadOnly": "RecursiveReadOnlyMode", "mountPath": S,
                    "subPath": S, "mountPropagation": "MountPropagationMode", "subPathExpr": S},
    "VolumeDevice": {"name": S, "devicePath": S},
    "Probe": {**_PROBE_HANDLER, "initialDelaySeconds": I32, "timeoutSeconds": I32, "periodSeconds": I32,
              "successThreshold": I32, "failureThreshold": I32, "terminationGracePeriodSeconds": I64},
    "ExecAction": {"command": "[]string"},
    "HTTPGetAction": {"path": S, "port": "IntOrString", "host": S, "scheme": "URIScheme",
                      "httpHeaders": "[]HTTPHeader"},
    "HTTPHeader": {"name": S, "value": S},
    "TCPSocketAction": {"port": "IntOrString", "host": S},
    "GRPCAction": {"port": I32, "service": S},
    "Lifecycle": {"postStart": "LifecycleHandler", "preStop": "LifecycleHandler", "stopSignal": "Signal"},
    "LifecycleHandler": {"exec": "ExecAction", "httpGet": "HTTPGetAction", "tcpSocket": "TCPSocketAction",
                         "sleep": "SleepAction"},
    "SleepAction": {"seconds": I64},
    "SecurityContext": {
        "capabilities": "Capabilities", "privileged": B, "seLinuxOptions": "SELinuxOptions",
        "windowsOptions": "WindowsSecurityContextOptions", "runAsUser": I64, "runAsGroup": I64,
        "runAsNonRoot": B, "readOnlyRootFilesystem": B, "allowPrivilegeEscalation": B,
        "procMount": "ProcMountType", "seccompProfile": "SeccompProfile", "appArmorProfile": "AppArmorProfile",
    },
    "Capabilities": {"add": "[]Capability", "drop": "[]Capability"},
    "SELinuxOptions": {"user": S, "role": S, "type": S, "level": S},
    "WindowsSecurityContextOptions": {"gmsaCredentialSpecName": S, "gmsaCredentialSpec": S,
                                      "runAsUserName": S, "hostProcess": B},
    "SeccompProfile": {"type": "SeccompProfileType", "localhostProfile": S},
    "AppArmorProfile": {"type": "AppArmorProfileType", "localhostProfile": S},
    "PodSecurityContext": {
        "seLinuxOptions": "SELinuxOptions", "windowsOptions": "WindowsSecurityContextOptions",
        "runAsUser": I64, "runAsGroup": I64, "runAsNonRoot": B, "supplementalGroups": "[]int64",
        "supplementalGroupsPolicy": "SupplementalGroupsPolicy", "fsGroup": I64, "sysctls": "[]Sysctl",
        "fsGroupChangePolicy": "PodFSGroupChangePolicy", "seccompProfile": "SeccompProfile",
        "appArmorProfile": "AppArmorProfile", "seLinuxChangePolicy": "PodSELinuxChangePolicy",
    },
    "Sysctl": {"name": S, "value": S},
    "LocalObjectReference": {"name": S},
    "Affinity": {"nodeAffinity": "NodeAffinity", "podAffinity": "PodAffinity", "podAntiAffinity": "PodAntiAffinity"},
    "NodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": "NodeSelector",
                     "preferredDuringSchedulingIgnoredDuringExecution": "[]PreferredSchedulingTerm"},
    "NodeSelector": {"nodeSelectorTerms": "[]NodeSelectorTerm"},
    "NodeSelectorTerm": {"matchExpressions": "[]NodeSelectorRequirement",
                         "matchFields": "[]NodeSelectorRequirement"},
    "NodeSelectorRequirement": {"key": S, "operator": "NodeSelectorOperator", "values": "[]string"},
    "PreferredSchedulingTerm": {"weight": I32, "preference": "NodeSelectorTerm"},
    "PodAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": "[]PodAffinityTerm",
                    "preferredDuringSchedulingIgnoredDuringExecution": "[]WeightedPodAffinityTerm"},
    "PodAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": "[]PodAffinityTerm",
                        "preferredDuringSchedulingIgnoredDuringExecution": "[]WeightedPodAffinityTerm"},
    "PodAffinityTerm": {"labelSelector": "LabelSelector", "namespaces": "[]string", "topologyKey": S,
                        "namespaceSelector": "LabelSelector", "matchLabelKeys": "[]string",
                        "mismatchLabelKeys": "[]string"},
    "WeightedPodAffinityTerm": {"weight": I32, "podAffinityTerm": "PodAffinityTerm"},
    "Toleration": {"key": S, "operator": "TolerationOperator", "value": S, "effect": "TaintEffect",
                   "tolerationSeconds": I64},
    "HostAlias": {"ip": S, "hostnames": "[]string"},
    "PodDNSConfig": {"nameservers": "[]string", "searches": "[]string", "options": "[]PodDNSConfigOption"},
    "PodDNSConfigOption": {"name": S, "value": S},
    "PodReadinessGate": {"conditionType": "PodConditionType"},
    "TopologySpreadConstraint": {
        "maxSkew": I32, "topologyKey": S, "whenUnsatisfiable": "UnsatisfiableConstraintAction",
        "labelSelector": "LabelSelector", "minDomains": I32, "nodeAffinityPolicy": "NodeInclusionPolicy",
        "nodeTaintsPolicy": "NodeInclusionPolicy", "matchLabelKeys": "[]string",
    },
    "PodOS": {"name": "OSName"},
    "PodSchedulingGate": {"name": S},
    "PodResourceClaim": {"name": S, "resourceClaimName": S, "resourceClaimTemplateName": S},
    "Volume": {
        "name": S, "hostPath": "HostPathVolumeSource", "emptyDir": "EmptyDirVolumeSource",
        "secret": "SecretVolumeSource", "configMap": "ConfigMapVolumeSource",
        "persistentVolumeClaim": "PersistentVolumeClaimVolumeSource", "downwardAPI": "DownwardAPIVolumeSource",
        "projected": "any", "ephemeral": "any", "csi": "any", "image": "any", "nfs": "any", "iscsi": "any",
        "gcePersistentDisk": "any", "awsElasticBlockStore": "any", "gitRepo": "any", "glusterfs": "any",
        "rbd": "any", "flexVolume": "any", "cinder": "any", "cephfs": "any", "flocker": "any", "fc": "any",
        "azureFile": "any", "azureDisk": "any", "vsphereVolume": "any", "quobyte": "any",
        "photonPersistentDisk": "any", "portworxVolume": "any", "scaleIO": "any", "storageos": "any",
    },
    "HostPathVolumeSource": {"path": S, "type": "HostPathType"},
    "EmptyDirVolumeSource": {"medium": "StorageMedium", "sizeLimit": "Quantity"},
    "SecretVolumeSource": {"secretName": S, "items": "[]KeyToPath", "defaultMode": I32, "optional": B},
    "ConfigMapVolumeSource": {"name": S, "items": "[]KeyToPath", "defaultMode": I32, "optional": B},
    "KeyToPath": {"key": S, "path": S, "mode": I32},
    "PersistentVolumeClaimVolumeSource": {"claimName": S, "readOnly": B},
    "DownwardAPIVolumeSource": {"items": "[]DownwardAPIVolumeFile", "defaultMode": I32},
    "DownwardAPIVolumeFile": {"path": S, "fieldRef": "ObjectFieldSelector",
                              "resourceFieldRef": "ResourceFieldSelector", "mode": I32},
    "PodStatus": {
        "observedGeneration": I64, "phase": "PodPhase", "conditions": "[]PodCondition", "message": S,
        "reason": S, "nominatedNodeName": S, "hostIP": S, "hostIPs": "[]HostIP", "podIP": S,
        "podIPs": "[]PodIP", "startTime": "Time", "initContainerStatuses": "[]ContainerStatus",
        "containerStatuses": "[]ContainerStatus", "ephemeralContainerStatuses": "[]ContainerStatus",
        "qosClass": "PodQOSClass", "resize": "PodResizeStatus", "resourceClaimStatuses": "any",
        "extendedResourceClaimStatus": "any", "allocatedResources": "ResourceList",
        "resources": "ResourceRequirements",
    },
    "PodCondition": {"type": "PodConditionType", "observedGeneration": I64, "status": "ConditionStatus",
                     "lastProbeTime": "Time", "lastTransitionTime": "Time", "reason": S, "message": S},
    "HostIP": {"ip": S},
    "PodIP": {"ip": S},
    "ContainerStatus": {
        "name": S, "state": "ContainerState", "lastState": "ContainerState", "ready": B, "restartCount": I32,
        "image": S, "imageID": S, "containerID": S, "started": B, "allocatedResources": "ResourceList",
        "resources": "ResourceRequirements", "volumeMounts": "any", "user": "any",
        "allocatedResourcesStatus": "any", "stopSignal": "Signal",
    },
    "ContainerState": {"waiting": "ContainerStateWaiting", "running": "ContainerStateRunning",
                       "terminated": "ContainerStateTerminated"},
    "ContainerStateWaiting": {"reason": S, "message": S},
    "ContainerStateRunning": {"startedAt": "Time"},
    "ContainerStateTerminated": {"exitCode": I32, "signal": I32, "reason": S, "message": S,
                                 "startedAt": "Time", "finishedAt": "Time", "containerID": S},

    # -- core/v1: Service ------------------------------------------------------------------
    "Service": {**_OBJECT, "spec": "ServiceSpec", "status": "ServiceStatus"},
    "ServiceSpec": {
        "ports": "[]ServicePort", "selector": "map[string]string", "clusterIP": S, "clusterIPs": "[]string",
        "type": "ServiceType", "externalIPs": "[]string", "sessionAffinity": "ServiceAffinity",
        "loadBalancerIP": S, "loadBalancerSourceRanges": "[]string", "externalName": S,
        "externalTrafficPolicy": "ServiceExternalTrafficPolicy", "healthCheckNodePort": I32,
        "publishNotReadyAddresses": B, "sessionAffinityConfig": "SessionAffinityConfig",
        "ipFamilies": "[]IPFamily", "ipFamilyPolicy": "IPFamilyPolicy", "allocateLoadBalancerNodePorts": B,
        "loadBalancerClass": S, "internalTrafficPolicy": "ServiceInternalTrafficPolicy",
        "trafficDistribution": S,
    },
    "ServicePort": {"name": S, "protocol": "Protocol", "appProtocol": S, "port": I32,
                    "targetPort": "IntOrString", "nodePort": I32},
    "SessionAffinityConfig": {"clientIP": "ClientIPConfig"},
    "ClientIPConfig": {"timeoutSeconds": I32},
    "ServiceStatus": {"loadBalancer": "LoadBalancerStatus", "conditions": "[]Condition"},
    "LoadBalancerStatus": {"ingress": "[]LoadBalancerIngress"},
    "LoadBalancerIngress": {"ip": S, "hostname": S, "ipMode": "LoadBalancerIPMode", "ports": "[]PortStatus"},
    "PortStatus": {"port": I32, "protocol": "Protocol", "error": S},

    # -- core/v1: Namespace, Node, Event ------------------------------------------------
    "Namespace": {**_OBJECT, "spec": "NamespaceSpec", "status": "NamespaceStatus"},
    "NamespaceSpec": {"finalizers": "[]FinalizerName"},
    "NamespaceStatus": {"phase": "NamespacePhase", "conditions": "[]NamespaceCondition"},
    "NamespaceCondition": {"type": "NamespaceConditionType", "status": "ConditionStatus",
                           "lastTransitionTime": "Time", "reason": S, "message": S},
    "Node": {**_OBJECT, "spec": "NodeSpec", "status": "NodeStatus"},
    "NodeSpec": {"podCIDR": S, "podCIDRs": "[]string", "providerID": S, "unschedulable": B,
                 "taints": "[]Taint", "configSource": "any", "externalID": S},
    "Taint": {"key": S, "value": S, "effect": "TaintEffect", "timeAdded": "Time"},
    "NodeStatus": {
        "capacity": "ResourceList", "allocatable": "ResourceList", "phase": "NodePhase",
        "conditions": "[]NodeCondition", "addresses": "[]NodeAddress", "daemonEndpoints": "NodeDaemonEndpoints",
        "nodeInfo": "NodeSystemInfo", "images": "[]ContainerImage", "volumesInUse": "[]UniqueVolumeName",
        "volumesAttached": "any", "config": "any", "runtimeHandlers": "any", "features": "any",
        "declaredFeatures": "any",
    },
    "NodeCondition": {"type": "NodeConditionType", "status": "ConditionStatus", "lastHeartbeatTime": "Time",
                      "lastTransitionTime": "Time", "reason": S, "message": S},
    "NodeAddress": {"type": "NodeAddressType", "address": S},
    "NodeDaemonEndpoints": {"kubeletEndpoint": "DaemonEndpoint"},
    "DaemonEndpoint": {"Port": I32},
    "NodeSystemInfo": {"machineID": S, "systemUUID": S, "bootID": S, "kernelVersion": S, "osImage": S,
                       "containerRuntimeVersion": S, "kubeletVersion": S, "kubeProxyVersion": S,
                       "operatingSystem": S, "architecture": S, "swap": "any"},
    "ContainerImage": {"names": "[]string", "sizeBytes": I64},
    "Event": {
        **_OBJECT, "involvedObject": "ObjectReference", "reason": S, "message": S, "source": "EventSource",
        "firstTimestamp": "Time", "lastTimestamp": "Time", "count": I32, "type": S, "eventTime": "MicroTime",
        "series": "EventSeries", "action": S, "related": "ObjectReference", "reportingComponent": S,
        "reportingInstance": S,
    },
    "ObjectReference": {"kind": S, "namespace": S, "name": S, "uid": "UID", "apiVersion": S,
                        "resourceVersion": S, "fieldPath": S},
    "EventSource": {"component": S, "host": S},
    "EventSeries": {"count": I32, "lastObservedTime": "MicroTime"},

    # -- apps/v1 ------------------------------------------------------------------------
    "Deployment": {**_OBJECT, "spec": "DeploymentSpec", "status": "DeploymentStatus"},
    "DeploymentSpec": {"replicas": I32, "selector": "LabelSelector", "template": "PodTemplateSpec",
                       "strategy": "DeploymentStrategy", "minReadySeconds": I32, "revisionHistoryLimit": I32,
                       "paused": B, "progressDeadlineSeconds": I32},
    "DeploymentStrategy": {"type": "DeploymentStrategyType", "rollingUpdate": "RollingUpdateDeployment"},
    "RollingUpdateDeployment": {"maxUnavailable": "IntOrString", "maxSurge": "IntOrString"},
    "DeploymentStatus": {"observedGeneration": I64, "replicas": I32, "updatedReplicas": I32,
                         "readyReplicas": I32, "availableReplicas": I32, "unavailableReplicas": I32,
                         "terminatingReplicas": I32, "conditions": "[]DeploymentCondition",
                         "collisionCount": I32},
    "DeploymentCondition": {"type": "DeploymentConditionType", "status": "ConditionStatus",
                            "lastUpdateTime": "Time", "lastTransitionTime": "Time", "reason": S, "message": S},
    "ReplicaSet": {**_OBJECT, "spec": "ReplicaSetSpec", "status": "ReplicaSetStatus"},
    "ReplicaSetSpec": {"replicas": I32, "minReadySeconds": I32, "selector": "LabelSelector",
                       "template": "PodTemplateSpec"},
    "ReplicaSetStatus": {"replicas": I32, "fullyLabeledReplicas": I32, "readyReplicas": I32,
                         "availableReplicas": I32, "terminatingReplicas": I32, "observedGeneration": I64,
                         "conditions": "[]ReplicaSetCondition"},
    "ReplicaSetCondition": {"type": "ReplicaSetConditionType", "status": "ConditionStatus",
                            "lastTransitionTime": "Time", "reason": S, "message": S},
    "DaemonSet": {**_OBJECT, "spec": "DaemonSetSpec", "status": "DaemonSetStatus"},
    "DaemonSetSpec": {"selector": "LabelSelector", "template": "PodTemplateSpec",
                      "updateStrategy": "DaemonSetUpdateStrategy", "minReadySeconds": I32,
                      "revisionHistoryLimit": I32},
    "DaemonSetUpdateStrategy": {"type": "DaemonSetUpdateStrategyType", "rollingUpdate": "RollingUpdateDaemonSet"},
    "RollingUpdateDaemonSet": {"maxUnavailable": "IntOrString", "maxSurge": "IntOrString"},
    "DaemonSetStatus": {"currentNumberScheduled": I32, "numberMisscheduled": I32, "desiredNumberScheduled": I32,
                        "numberReady": I32, "observedGeneration": I64, "updatedNumberScheduled": I32,
                        "numberAvailable": I32, "numberUnavailable": I32, "collisionCount": I32,
                        "conditions": "[]DaemonSetCondition"},
    "DaemonSetCondition": {"type": "DaemonSetConditionType", "status": "ConditionStatus",
                           "lastTransitionTime": "Time", "reason": S, "message": S},
    "StatefulSet": {**_OBJECT, "spec": "StatefulSetSpec", "status": "StatefulSetStatus"},
    "StatefulSetSpec": {
        "replicas": I32, "selector": "LabelSelector", "template": "PodTemplateSpec",
        "volumeClaimTemplates": "[]any", "serviceName": S, "podManagementPolicy": "PodManagementPolicyType",
        "updateStrategy": "StatefulSetUpdateStrategy", "revisionHistoryLimit": I32, "minReadySeconds": I32,
        "persistentVolumeClaimRetentionPolicy": "StatefulSetPersistentVolumeClaimRetentionPolicy",
        "ordinals": "StatefulSetOrdinals",
    },
    "StatefulSetUpdateStrategy": {"type": "StatefulSetUpdateStrategyType",
                                  "rollingUpdate": "RollingUpdateStatefulSetStrategy"},
    "RollingUpdateStatefulSetStrategy": {"partition": I32, "maxUnavailable": "IntOrString"},
    "StatefulSetPersistentVolumeClaimRetentionPolicy": {
        "whenDeleted": "PersistentVolumeClaimRetentionPolicyType",
        "whenScaled": "PersistentVolumeClaimRetentionPolicyType"},
    "StatefulSetOrdinals": {"start": I32},
    "StatefulSetStatus": {"observedGeneration": I64, "replicas": I32, "readyReplicas": I32,
                          "currentReplicas": I32, "updatedReplicas": I32, "currentRevision": S,
                          "updateRevision": S, "collisionCount": I32, "conditions": "[]StatefulSetCondition",
                          "availableReplicas": I32},
    "StatefulSetCondition": {"type": "StatefulSetConditionType", "status": "ConditionStatus",
                             "lastTransitionTime": "Time", "reason": S, "message": S},

    # -- discovery/v1 -------------------------------------------------------------------------
    "EndpointSlice": {**_OBJECT, "addressType": "AddressType", "endpoints": "[]Endpoint",
                      "ports": "[]EndpointPort"},
    "Endpoint": {"addresses": "[]string", "conditions": "EndpointConditions", "hostname": S,
                 "targetRef": "ObjectReference", "deprecatedTopology": "map[string]string", "nodeName": S,
                 "zone": S, "hints": "EndpointHints"},
    "EndpointConditions": {"ready": B, "serving": B, "terminating": B},
    "EndpointHints": {"forZones": "[]ForZone", "forNodes": "[]ForNode"},
    "ForZone": {"name": S},
    "ForNode": {"name": S},
    "EndpointPort": {"name": S, "protocol": "Protocol", "port": I32, "appProtocol": S},

    # -- coordination/v1 --------------------------------------------------------------------
    "Lease": {**_OBJECT, "spec": "LeaseSpec"},
    "LeaseSpec": {"holderIdentity": S, "leaseDurationSeconds": I32, "acquireTime": "MicroTime",
                  "renewTime": "MicroTime", "leaseTransitions": I32, "strategy": S, "preferredHolder": S},

    # -- core/v1 configuration and identity (ConfigMap, Secret, ServiceAccount) -------------
    # []byte values are base64 strings in JSON: "bytes" (validation checks the encoding).
    "ConfigMap": {**_OBJECT, "data": "map[string]string", "binaryData": "map[string]bytes", "immutable": B},
    "Secret": {**_OBJECT, "data": "map[string]bytes", "stringData": "map[string]string", "type": "SecretType",
               "immutable": B},
    "ServiceAccount": {**_OBJECT, "secrets": "[]ObjectReference", "imagePullSecrets": "[]LocalObjectReference",
                       "automountServiceAccountToken": B},

    # -- rbac.authorization.k8s.io/v1 -------------------------------------------------------
    "Role": {**_OBJECT, "rules": "[]PolicyRule"},
    "ClusterRole": {**_OBJECT, "rules": "[]PolicyRule", "aggregationRule": "AggregationRule"},
    "PolicyRule": {"verbs": "[]string", "apiGroups": "[]string", "resources": "[]string",
                   "resourceNames": "[]string", "nonResourceURLs": "[]string"},
    "AggregationRule": {"clusterRoleSelectors": "[]LabelSelector"},
    "RoleBinding": {**_OBJECT, "subjects": "[]Subject", "roleRef": "RoleRef"},
    "ClusterRoleBinding": {**_OBJECT, "subjects": "[]Subject", "roleRef": "RoleRef"},
    "Subject": {"kind": S, "apiGroup": S, "name": S, "namespace": S},
    "RoleRef": {"apiGroup": S, "kind": S, "name": S},

    # -- networking/v1 ----------------------------------------------------------------------
    "NetworkPolicy": {**_OBJECT, "spec": "NetworkPolicySpec"},
    "NetworkPolicySpec": {"podSelector": "LabelSelector", "ingress": "[]NetworkPolicyIngressRule",
                          "egress": "[]NetworkPolicyEgressRule", "policyTypes": "[]PolicyType"},
    "NetworkPolicyIngressRule": {"ports": "[]NetworkPolicyPort", "from": "[]NetworkPolicyPeer"},
    "NetworkPolicyEgressRule": {"ports": "[]NetworkPolicyPort", "to": "[]NetworkPolicyPeer"},
    "NetworkPolicyPort": {"protocol": "Protocol", "port": "IntOrString", "endPort": I32},
    "NetworkPolicyPeer": {"podSelector": "LabelSelector", "namespaceSelector": "LabelSelector",
                          "ipBlock": "IPBlock"},
    "IPBlock": {"cidr": S, "except": "[]string"},

    # -- policy.networking.k8s.io/v1alpha1 (kubernetes-sigs/network-policy-api) -------------
    # CRDs upstream, but typed here like the built-in kinds: the Go types in
    # apis/v1alpha1 decide what decodes, and Go names them `v1alpha1.X` (V1ALPHA1).
    "AdminNetworkPolicy": {**_OBJECT, "spec": "AdminNetworkPolicySpec", "status": "AdminNetworkPolicyStatus"},
    "AdminNetworkPolicyStatus": {"conditions": "[]Condition"},
    "AdminNetworkPolicySpec": {"priority": I32, "subject": "AdminNetworkPolicySubject",
                               "ingress": "[]AdminNetworkPolicyIngressRule",
                               "egress": "[]AdminNetworkPolicyEgressRule"},
    "AdminNetworkPolicySubject": {"namespaces": "LabelSelector", "pods": "NamespacedPod"},
    "NamespacedPod": {"namespaceSelector": "LabelSelector", "podSelector": "LabelSelector"},
    "AdminNetworkPolicyIngressRule": {"name": S, "action": "AdminNetworkPolicyRuleAction",
                                      "from": "[]AdminNetworkPolicyIngressPeer", "ports": "[]AdminNetworkPolicyPort"},
    "AdminNetworkPolicyEgressRule": {"name": S, "action": "AdminNetworkPolicyRuleAction",
                                     "to": "[]AdminNetworkPolicyEgressPeer", "ports": "[]AdminNetworkPolicyPort"},
    "AdminNetworkPolicyIngressPeer": {"namespaces": "LabelSelector", "pods": "NamespacedPod"},
    "AdminNetworkPolicyEgressPeer": {"namespaces": "LabelSelector", "pods": "NamespacedPod",
                                     "nodes": "LabelSelector", "networks": "[]CIDR",
                                     "domainNames": "[]DomainName"},
    "AdminNetworkPolicyPort": {"portNumber": "Port", "namedPort": S, "portRange": "PortRange"},
    "Port": {"protocol": "Protocol", "port": I32},
    "PortRange": {"protocol": "Protocol", "start": I32, "end": I32},
    "BaselineAdminNetworkPolicy": {**_OBJECT, "spec": "BaselineAdminNetworkPolicySpec",
                                   "status": "BaselineAdminNetworkPolicyStatus"},
    "BaselineAdminNetworkPolicyStatus": {"conditions": "[]Condition"},
    "BaselineAdminNetworkPolicySpec": {"subject": "AdminNetworkPolicySubject",
                                       "ingress": "[]BaselineAdminNetworkPolicyIngressRule",
                                       "egress": "[]BaselineAdminNetworkPolicyEgressRule"},
    "BaselineAdminNetworkPolicyIngressRule": {"name": S, "action": "BaselineAdminNetworkPolicyRuleAction",
                                              "from": "[]AdminNetworkPolicyIngressPeer",
                                              "ports": "[]AdminNetworkPolicyPort"},
    "BaselineAdminNetworkPolicyEgressRule": {"name": S, "action": "BaselineAdminNetworkPolicyRuleAction",
                                             "to": "[]BaselineAdminNetworkPolicyEgressPeer",
                                             "ports": "[]AdminNetworkPolicyPort"},
    "BaselineAdminNetworkPolicyEgressPeer": {"namespaces": "LabelSelector", "pods": "NamespacedPod",
                                             "nodes": "LabelSelector", "networks": "[]CIDR"},
}

# The types of package v1alpha1 (network-policy-api); every other struct and
# named string lives in a package Go calls "v1".
V1ALPHA1 = frozenset({
    *(k for k in STRUCTS if "AdminNetworkPolicy" in k),
    "NamespacedPod", "Port", "PortRange",
    "AdminNetworkPolicyRuleAction", "BaselineAdminNetworkPolicyRuleAction", "CIDR", "DomainName",
})

SCALARS = frozenset({"string", "bytes", "int32", "int64", "bool", "float64", "IntOrString", "Quantity", "Time",
                     "MicroTime", "any"})


def go_name(t: str) -> str:
    """The type as Go's reflect prints it in an UnmarshalTypeError."""
    if t.startswith("[]"):
        return "[]" + go_name(t[2:])
    if t.startswith("map[string]"):
        return "map[string]" + go_name(t[11:])
    if t in V1ALPHA1:
        return "v1alpha1." + t
    if t in STRUCTS or t in NAMED_STRINGS or t in ALIASES:
        return "v1." + t
    if t == "IntOrString":
        return "intstr.IntOrString"
    if t == "Quantity":
        return "resource.Quantity"
    if t in ("Time", "MicroTime"):
        return "v1." + t
    return t


# =============================================================================
# What OpenAPI publishes beyond the types (knet/api/openapi.py reads these)
# =============================================================================

# The Go package of the structs that do not live in the package of the kinds
# that use them (OpenAPI names a definition by its package: io.k8s.api.core.v1.PodTemplateSpec).
# Any other struct lives in its kinds' group's package, or core/v1 if kinds of
# several groups share it.
GO_PACKAGES: dict[str, str] = {
    **dict.fromkeys(("ObjectMeta", "OwnerReference", "ManagedFieldsEntry", "LabelSelector",
                     "LabelSelectorRequirement", "Condition", "ListMeta", "Status", "StatusDetails",
                     "StatusCause", "DeleteOptions", "Preconditions", "Patch"), "meta/v1"),
    **dict.fromkeys(("PodTemplateSpec", "ObjectReference", "Binding"), "core/v1"),
    **dict.fromkeys(("Scale", "ScaleSpec", "ScaleStatus"), "autoscaling/v1"),
    "Eviction": "policy/v1",
}
