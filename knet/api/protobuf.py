"""Kubernetes' protobuf request bodies, decoded to the JSON object they stand for.

client-go's typed clients send built-in kinds as protobuf
(application/vnd.kubernetes.protobuf) whatever the server: `kubectl create
deployment|namespace|service`, `kubectl drain`'s evictions and deletes' DeleteOptions,
`kubectl auth can-i|whoami`'s reviews. Unlike CBOR
there is no fallback to JSON after a 415 (client-go's rest client falls
back only for CBOR), so the server has to read them. The wire form
(apimachinery's protobuf serializer): the magic "k8s\\0", then a
runtime.Unknown {typeMeta=1 {apiVersion=1, kind=2}, raw=2, contentEncoding=3,
contentType=4} whose raw is the object, a proto2 message per Go struct.

The types of the fields come from knet.api.schema (the same table the JSON
decoder uses); this module adds only what the wire form needs: each Go
struct's protobuf field numbers, `*` for a Go pointer (its zero value was
set on purpose and is kept; a non-pointer field's zero value is what JSON's
omitempty leaves out, and is dropped), and `^T` for a struct embedded
inline (its fields are the parent's in JSON). Anything this cannot map
exactly (a field number it does not know, a free-form `any` field) is
Unsupported, which the server answers with 415: refused, never half-read.
"""

from __future__ import annotations

import base64
import datetime
import struct

from knet.api import schema

MAGIC = b"k8s\x00"
MEDIA_TYPE = "application/vnd.kubernetes.protobuf"


class Unsupported(ValueError):
    """A body this decoder cannot turn into exactly its JSON object."""


class Malformed(ValueError):
    """Bytes that are not a protobuf message at all (truncated, bad UTF-8): a 400."""


# Protobuf field numbers of each Go struct, as the `protobuf:` tags of k8s.io/api and apimachinery's meta/v1 give them.
FIELDS_TEXT: dict[str, str] = {
    "ObjectMeta": "name=1 generateName=2 namespace=3 selfLink=4 uid=5 resourceVersion=6 generation=7 creationTimestamp=8 deletionTimestamp=9* deletionGracePeriodSeconds=10* labels=11 annotations=12 ownerReferences=13 finalizers=14 managedFields=17",
    "OwnerReference": "apiVersion=5 kind=1 name=3 uid=4 controller=6* blockOwnerDeletion=7*",
    "ManagedFieldsEntry": "manager=1 operation=2 apiVersion=3 time=4* fieldsType=6 fieldsV1=7* subresource=8",
    "LabelSelector": "matchLabels=1 matchExpressions=2",
    "LabelSelectorRequirement": "key=1 operator=2 values=3",
    "Condition": "type=1 status=2 observedGeneration=3 lastTransitionTime=4 reason=5 message=6",
    "ListMeta": "selfLink=1 resourceVersion=2 continue=3 remainingItemCount=4* shardInfo=5*",
    "Status": "metadata=1 status=2 message=3 reason=4 details=5* code=6",
    "StatusDetails": "name=1 group=2 kind=3 uid=6 causes=4 retryAfterSeconds=5",
    "StatusCause": "reason=1 message=2 field=3",
    "DeleteOptions": "gracePeriodSeconds=1* preconditions=2* orphanDependents=3* propagationPolicy=4* dryRun=5 ignoreStoreReadErrorWithClusterBreakingPotential=6*",
    "Preconditions": "uid=1* resourceVersion=2*",
    "Pod": "metadata=1 spec=2 status=3",
    "PodTemplateSpec": "metadata=1 spec=2",
    "PodSpec": "volumes=1 initContainers=20 containers=2 ephemeralContainers=34 restartPolicy=3 terminationGracePeriodSeconds=4* activeDeadlineSeconds=5* dnsPolicy=6 nodeSelector=7 serviceAccountName=8 serviceAccount=9 automountServiceAccountToken=21* nodeName=10 hostNetwork=11 hostPID=12 hostIPC=13 shareProcessNamespace=27* securityContext=14* imagePullSecrets=15 hostname=16 subdomain=17 affinity=18* schedulerName=19 tolerations=22 hostAliases=23 priorityClassName=24 priority=25* dnsConfig=26* readinessGates=28 runtimeClassName=29* enableServiceLinks=30* preemptionPolicy=31* overhead=32 topologySpreadConstraints=33 setHostnameAsFQDN=35* os=36* hostUsers=37* schedulingGates=38 resourceClaims=39 resources=40* hostnameOverride=41* schedulingGroup=43* evictionResponders=44",
    "Container": "name=1 image=2 command=3 args=4 workingDir=5 ports=6 envFrom=19 env=7 resources=8 resizePolicy=23 restartPolicy=24* restartPolicyRules=25 volumeMounts=9 volumeDevices=21 livenessProbe=10* readinessProbe=11* startupProbe=22* lifecycle=12* terminationMessagePath=13 terminationMessagePolicy=20 imagePullPolicy=14 securityContext=15* stdin=16 stdinOnce=17 tty=18",
    "EphemeralContainer": "^EphemeralContainerCommon=1 targetContainerName=2",
    "ContainerPort": "name=1 hostPort=2 containerPort=3 protocol=4 hostIP=5",
    "EnvVar": "name=1 value=2 valueFrom=3*",
    "EnvVarSource": "fieldRef=1* resourceFieldRef=2* configMapKeyRef=3* secretKeyRef=4* fileKeyRef=5*",
    "ObjectFieldSelector": "apiVersion=1 fieldPath=2",
    "ResourceFieldSelector": "containerName=1 resource=2 divisor=3",
    "ConfigMapKeySelector": "^LocalObjectReference=1 key=2 optional=3*",
    "SecretKeySelector": "^LocalObjectReference=1 key=2 optional=3*",
    "EnvFromSource": "prefix=1 configMapRef=2* secretRef=3*",
    "ConfigMapEnvSource": "^LocalObjectReference=1 optional=2*",
    "SecretEnvSource": "^LocalObjectReference=1 optional=2*",
    "ResourceRequirements": "limits=1 requests=2 claims=3",
    "ResourceClaim": "name=1 request=2",
    "ContainerResizePolicy": "resourceName=1 restartPolicy=2",
    "VolumeMount": "name=1 readOnly=2 recursiveReadOnly=7* mountPath=3 subPath=4 mountPropagation=5* subPathExpr=6 bindMountOptions=8",
    "VolumeDevice": "name=1 devicePath=2",
    "Probe": "^ProbeHandler=1 initialDelaySeconds=2 timeoutSeconds=3 periodSeconds=4 successThreshold=5 failureThreshold=6 terminationGracePeriodSeconds=7*",
    "ExecAction": "command=1",
    "HTTPGetAction": "path=1 port=2 host=3 scheme=4 httpHeaders=5 protocol=6*",
    "HTTPHeader": "name=1 value=2",
    "TCPSocketAction": "port=1 host=2",
    "GRPCAction": "port=1 service=2* mode=3*",
    "Lifecycle": "postStart=1* preStop=2* stopSignal=3*",
    "LifecycleHandler": "exec=1* httpGet=2* tcpSocket=3* sleep=4*",
    "SleepAction": "seconds=1",
    "SecurityContext": "capabilities=1* privileged=2* seLinuxOptions=3* windowsOptions=10* runAsUser=4* runAsGroup=8* runAsNonRoot=5* readOnlyRootFilesystem=6* allowPrivilegeEscalation=7* procMount=9* seccompProfile=11* appArmorProfile=12*",
    "Capabilities": "add=1 drop=2",
    "SELinuxOptions": "user=1 role=2 type=3 level=4",
    "WindowsSecurityContextOptions": "gmsaCredentialSpecName=1* gmsaCredentialSpec=2* runAsUserName=3* hostProcess=4*",
    "SeccompProfile": "type=1 localhostProfile=2*",
    "AppArmorProfile": "type=1 localhostProfile=2*",
    "PodSecurityContext": "seLinuxOptions=1* windowsOptions=8* runAsUser=2* runAsGroup=6* runAsNonRoot=3* supplementalGroups=4 supplementalGroupsPolicy=12* fsGroup=5* sysctls=7 fsGroupChangePolicy=9* seccompProfile=10* appArmorProfile=11* seLinuxChangePolicy=13*",
    "Sysctl": "name=1 value=2",
    "LocalObjectReference": "name=1",
    "Affinity": "nodeAffinity=1* podAffinity=2* podAntiAffinity=3*",
    "NodeAffinity": "requiredDuringSchedulingIgnoredDuringExecution=1* preferredDuringSchedulingIgnoredDuringExecution=2",
    "NodeSelector": "nodeSelectorTerms=1",
    "NodeSelectorTerm": "matchExpressions=1 matchFields=2",
    "NodeSelectorRequirement": "key=1 operator=2 values=3",
    "PreferredSchedulingTerm": "weight=1 preference=2",
    "PodAffinity": "requiredDuringSchedulingIgnoredDuringExecution=1 preferredDuringSchedulingIgnoredDuringExecution=2",
    "PodAntiAffinity": "requiredDuringSchedulingIgnoredDuringExecution=1 preferredDuringSchedulingIgnoredDuringExecution=2",
    "PodAffinityTerm": "labelSelector=1* namespaces=2 topologyKey=3 namespaceSelector=4* matchLabelKeys=5 mismatchLabelKeys=6",
    "WeightedPodAffinityTerm": "weight=1 podAffinityTerm=2",
    "Toleration": "key=1 operator=2 value=3 effect=4 tolerationSeconds=5*",
    "HostAlias": "ip=1 hostnames=2",
    "PodDNSConfig": "nameservers=1 searches=2 options=3",
    "PodDNSConfigOption": "name=1 value=2*",
    "PodReadinessGate": "conditionType=1",
    "TopologySpreadConstraint": "maxSkew=1 topologyKey=2 whenUnsatisfiable=3 labelSelector=4* minDomains=5* nodeAffinityPolicy=6* nodeTaintsPolicy=7* matchLabelKeys=8",
    "PodOS": "name=1",
    "PodSchedulingGate": "name=1",
    "PodResourceClaim": "name=1 resourceClaimName=3* resourceClaimTemplateName=4*",
    "Volume": "name=1 ^VolumeSource=2",
    "HostPathVolumeSource": "path=1 type=2*",
    "EmptyDirVolumeSource": "medium=1 sizeLimit=2* mode=3*",
    "SecretVolumeSource": "secretName=1 items=2 defaultMode=3* optional=4* defaultUser=5*",
    "ConfigMapVolumeSource": "^LocalObjectReference=1 items=2 defaultMode=3* optional=4* defaultUser=5*",
    "KeyToPath": "key=1 path=2 mode=3* user=4*",
    "PersistentVolumeClaimVolumeSource": "claimName=1 readOnly=2",
    "DownwardAPIVolumeSource": "items=1 defaultMode=2* defaultUser=3*",
    "DownwardAPIVolumeFile": "path=1 fieldRef=2* resourceFieldRef=3* mode=4* user=5*",
    "PodStatus": "observedGeneration=17 phase=1 conditions=2 message=3 reason=4 nominatedNodeName=11 hostIP=5 hostIPs=16 podIP=6 podIPs=12 startTime=7* initContainerStatuses=10 containerStatuses=8 qosClass=9 ephemeralContainerStatuses=13 resize=14 resourceClaimStatuses=15 extendedResourceClaimStatus=18* allocatedResources=19 resources=20* nodeAllocatableResourceClaimStatuses=21 volumeHealth=22",
    "PodCondition": "type=1 observedGeneration=7 status=2 lastProbeTime=3 lastTransitionTime=4 reason=5 message=6",
    "HostIP": "ip=1",
    "PodIP": "ip=1",
    "ContainerStatus": "name=1 state=2 lastState=3 ready=4 restartCount=5 image=6 imageID=7 containerID=8 started=9* allocatedResources=10 resources=11* volumeMounts=12 user=13* allocatedResourcesStatus=14 stopSignal=15*",
    "ContainerState": "waiting=1* running=2* terminated=3*",
    "ContainerStateWaiting": "reason=1 message=2",
    "ContainerStateRunning": "startedAt=1",
    "ContainerStateTerminated": "exitCode=1 signal=2 reason=3 message=4 startedAt=5 finishedAt=6 containerID=7",
    "Service": "metadata=1 spec=2 status=3",
    "ServiceSpec": "ports=1 selector=2 clusterIP=3 clusterIPs=18 type=4 externalIPs=5 sessionAffinity=7 loadBalancerIP=8 loadBalancerSourceRanges=9 externalName=10 externalTrafficPolicy=11 healthCheckNodePort=12 publishNotReadyAddresses=13 sessionAffinityConfig=14* ipFamilies=19 ipFamilyPolicy=17* allocateLoadBalancerNodePorts=20* loadBalancerClass=21* internalTrafficPolicy=22* trafficDistribution=23*",
    "ServicePort": "name=1 protocol=2 appProtocol=6* port=3 targetPort=4 nodePort=5",
    "SessionAffinityConfig": "clientIP=1*",
    "ClientIPConfig": "timeoutSeconds=1*",
    "ServiceStatus": "loadBalancer=1 conditions=2",
    "LoadBalancerStatus": "ingress=1",
    "LoadBalancerIngress": "ip=1 hostname=2 ipMode=3* ports=4",
    "PortStatus": "port=1 protocol=2 error=3*",
    "Namespace": "metadata=1 spec=2 status=3",
    "NamespaceSpec": "finalizers=1",
    "NamespaceStatus": "phase=1 conditions=2",
    "NamespaceCondition": "type=1 status=2 lastTransitionTime=4 reason=5 message=6",
    "Node": "metadata=1 spec=2 status=3",
    "NodeSpec": "podCIDR=1 podCIDRs=7 providerID=3 unschedulable=4 taints=5 configSource=6* externalID=2 podPreemptionPolicy=8*",
    "Taint": "key=1 value=2 effect=3 timeAdded=4*",
    "NodeStatus": "capacity=1 allocatable=2 phase=3 conditions=4 addresses=5 daemonEndpoints=6 nodeInfo=7 images=8 volumesInUse=9 volumesAttached=10 config=11* runtimeHandlers=12 features=13* declaredFeatures=14",
    "NodeCondition": "type=1 status=2 lastHeartbeatTime=3 lastTransitionTime=4 reason=5 message=6",
    "NodeAddress": "type=1 address=2",
    "NodeDaemonEndpoints": "kubeletEndpoint=1",
    "DaemonEndpoint": "Port=1",
    "NodeSystemInfo": "machineID=1 systemUUID=2 bootID=3 kernelVersion=4 osImage=5 containerRuntimeVersion=6 kubeletVersion=7 kubeProxyVersion=8 operatingSystem=9 architecture=10 swap=11*",
    "ContainerImage": "names=1 sizeBytes=2",
    "Event": "metadata=1 involvedObject=2 reason=3 message=4 source=5 firstTimestamp=6 lastTimestamp=7 count=8 type=9 eventTime=10 series=11* action=12 related=13* reportingComponent=14 reportingInstance=15",
    "ObjectReference": "kind=1 namespace=2 name=3 uid=4 apiVersion=5 resourceVersion=6 fieldPath=7",
    "EventSource": "component=1 host=2",
    "EventSeries": "count=1 lastObservedTime=2",
    "Deployment": "metadata=1 spec=2 status=3",
    "DeploymentSpec": "replicas=1* selector=2* template=3 strategy=4 minReadySeconds=5 revisionHistoryLimit=6* paused=7 progressDeadlineSeconds=9*",
    "DeploymentStrategy": "type=1 rollingUpdate=2*",
    "RollingUpdateDeployment": "maxUnavailable=1* maxSurge=2*",
    "DeploymentStatus": "observedGeneration=1 replicas=2 updatedReplicas=3 readyReplicas=7 availableReplicas=4 unavailableReplicas=5 terminatingReplicas=9* conditions=6 collisionCount=8*",
    "DeploymentCondition": "type=1 status=2 lastUpdateTime=6 lastTransitionTime=7 reason=4 message=5",
    "ReplicaSet": "metadata=1 spec=2 status=3",
    "ReplicaSetSpec": "replicas=1* minReadySeconds=4 selector=2* template=3",
    "ReplicaSetStatus": "replicas=1 fullyLabeledReplicas=2 readyReplicas=4 availableReplicas=5 terminatingReplicas=7* observedGeneration=3 conditions=6",
    "ReplicaSetCondition": "type=1 status=2 lastTransitionTime=3 reason=4 message=5",
    "DaemonSet": "metadata=1 spec=2 status=3",
    "DaemonSetSpec": "selector=1* template=2 updateStrategy=3 minReadySeconds=4 revisionHistoryLimit=6*",
    "DaemonSetUpdateStrategy": "type=1 rollingUpdate=2*",
    "RollingUpdateDaemonSet": "maxUnavailable=1* maxSurge=2*",
    "DaemonSetStatus": "currentNumberScheduled=1 numberMisscheduled=2 desiredNumberScheduled=3 numberReady=4 observedGeneration=5 updatedNumberScheduled=6 numberAvailable=7 numberUnavailable=8 collisionCount=9* conditions=10",
    "DaemonSetCondition": "type=1 status=2 lastTransitionTime=3 reason=4 message=5",
    "StatefulSet": "metadata=1 spec=2 status=3",
    "StatefulSetSpec": "replicas=1* selector=2* template=3 volumeClaimTemplates=4 serviceName=5 podManagementPolicy=6 updateStrategy=7 revisionHistoryLimit=8* minReadySeconds=9 persistentVolumeClaimRetentionPolicy=10* ordinals=11*",
    "StatefulSetUpdateStrategy": "type=1 rollingUpdate=2*",
    "RollingUpdateStatefulSetStrategy": "partition=1* maxUnavailable=2*",
    "StatefulSetPersistentVolumeClaimRetentionPolicy": "whenDeleted=1 whenScaled=2",
    "StatefulSetOrdinals": "start=1",
    "StatefulSetStatus": "observedGeneration=1 replicas=2 readyReplicas=3 currentReplicas=4 updatedReplicas=5 currentRevision=6 updateRevision=7 collisionCount=9* conditions=10 availableReplicas=11",
    "StatefulSetCondition": "type=1 status=2 lastTransitionTime=3 reason=4 message=5",
    "EndpointSlice": "metadata=1 addressType=4 endpoints=2 ports=3",
    "Endpoint": "addresses=1 conditions=2 hostname=3* targetRef=4* deprecatedTopology=5 nodeName=6* zone=7* hints=8*",
    "EndpointConditions": "ready=1* serving=2* terminating=3*",
    "EndpointHints": "forZones=1 forNodes=2",
    "ForZone": "name=1",
    "ForNode": "name=1",
    "EndpointPort": "name=1 port=2 protocol=3 appProtocol=4*",
    "Lease": "metadata=1 spec=2",
    "LeaseSpec": "holderIdentity=1* leaseDurationSeconds=2* acquireTime=3* renewTime=4* leaseTransitions=5* strategy=6* preferredHolder=7*",
    "NetworkPolicy": "metadata=1 spec=2",
    "NetworkPolicySpec": "podSelector=1 ingress=2 egress=3 policyTypes=4",
    "NetworkPolicyIngressRule": "ports=1 from=2",
    "NetworkPolicyEgressRule": "ports=1 to=2",
    "NetworkPolicyPort": "protocol=1* port=2* endPort=3*",
    "NetworkPolicyPeer": "podSelector=1* namespaceSelector=2* ipBlock=3*",
    "IPBlock": "cidr=1 except=2",
    "EphemeralContainerCommon": "name=1 image=2 command=3 args=4 workingDir=5 ports=6 envFrom=19 env=7 resources=8 resizePolicy=23 restartPolicy=24* restartPolicyRules=25 volumeMounts=9 volumeDevices=21 livenessProbe=10* readinessProbe=11* startupProbe=22* lifecycle=12* terminationMessagePath=13 terminationMessagePolicy=20 imagePullPolicy=14 securityContext=15* stdin=16 stdinOnce=17 tty=18",
    "ProbeHandler": "exec=1* httpGet=2* tcpSocket=3* grpc=4*",
    "Eviction": "metadata=1 deleteOptions=2*",
    # authorization.k8s.io and authentication.k8s.io reviews (`kubectl auth can-i`, `auth whoami`)
    "SelfSubjectAccessReview": "metadata=1 spec=2 status=3",
    "SelfSubjectAccessReviewSpec": "resourceAttributes=1* nonResourceAttributes=2*",
    "ResourceAttributes": "namespace=1 verb=2 group=3 version=4 resource=5 subresource=6 name=7 fieldSelector=8* "
                          "labelSelector=9*",
    "NonResourceAttributes": "path=1 verb=2",
    "SubjectAccessReviewStatus": "allowed=1 denied=4 reason=2 evaluationError=3",
    "SelfSubjectRulesReview": "metadata=1 spec=2 status=3",
    "SelfSubjectRulesReviewSpec": "namespace=1",
    "SubjectRulesReviewStatus": "resourceRules=1 nonResourceRules=2 incomplete=3 evaluationError=4",
    "FieldSelectorAttributes": "rawSelector=1 requirements=2",
    "LabelSelectorAttributes": "rawSelector=1 requirements=2",
    "FieldSelectorRequirement": "key=1 operator=2 values=3",
    "SelfSubjectReview": "metadata=1 status=2",
    "SelfSubjectReviewStatus": "userInfo=1",
    "UserInfo": "username=1 uid=2 groups=3 extra=4",
    # core/v1 configuration and identity, rbac.authorization.k8s.io/v1, authentication.k8s.io/v1 TokenRequest
    "ConfigMap": "metadata=1 data=2 binaryData=3 immutable=4*",
    "Secret": "metadata=1 data=2 type=3 stringData=4 immutable=5*",
    "ServiceAccount": "metadata=1 secrets=2 imagePullSecrets=3 automountServiceAccountToken=4*",
    "Role": "metadata=1 rules=2",
    "ClusterRole": "metadata=1 rules=2 aggregationRule=3*",
    "PolicyRule": "verbs=1 apiGroups=2 resources=3 resourceNames=4 nonResourceURLs=5",
    "AggregationRule": "clusterRoleSelectors=1",
    "RoleBinding": "metadata=1 subjects=2 roleRef=3",
    "ClusterRoleBinding": "metadata=1 subjects=2 roleRef=3",
    "Subject": "kind=1 apiGroup=2 name=3 namespace=4",
    "RoleRef": "apiGroup=1 kind=2 name=3",
    "TokenRequest": "metadata=1 spec=2 status=3",
    "TokenRequestSpec": "audiences=1 expirationSeconds=4* boundObjectRef=3*",
    "BoundObjectReference": "kind=1 apiVersion=2 name=3 uid=4",
    "TokenRequestStatus": "token=1 expirationTimestamp=2",
    "VolumeSource": "hostPath=1* emptyDir=2* gcePersistentDisk=3* awsElasticBlockStore=4* gitRepo=5* secret=6* nfs=7* iscsi=8* glusterfs=9* persistentVolumeClaim=10* rbd=11* flexVolume=12* cinder=13* cephfs=14* flocker=15* downwardAPI=16* fc=17* azureFile=18* configMap=19* vsphereVolume=20* quobyte=21* azureDisk=22* photonPersistentDisk=23* projected=26* portworxVolume=24* scaleIO=25* storageos=27* csi=28* ephemeral=29* image=30*",
}


def _parse(text: str) -> dict[int, tuple[str, bool, bool]]:
    """{number: (JSON name or inline type, pointer, inline)} of one struct."""
    out = {}
    for item in text.split():
        name, _, num = item.partition("=")
        ptr = num.endswith("*")
        inline = name.startswith("^")
        out[int(num.rstrip("*"))] = (name.lstrip("^"), ptr, inline)
    return out


FIELDS = {name: _parse(text) for name, text in FIELDS_TEXT.items()}

# Kinds a typed client sends that knet.api.schema does not list (their handlers read the JSON
# themselves): their Go types, in the schema's notation.
EXTRA_STRUCTS: dict[str, dict[str, str]] = {
    "Eviction": {"kind": "string", "apiVersion": "string", "metadata": "ObjectMeta", "deleteOptions": "DeleteOptions"},
    "SelfSubjectAccessReview": {"metadata": "ObjectMeta", "spec": "SelfSubjectAccessReviewSpec",
                                "status": "SubjectAccessReviewStatus"},
    "SelfSubjectAccessReviewSpec": {"resourceAttributes": "ResourceAttributes",
                                    "nonResourceAttributes": "NonResourceAttributes"},
    "ResourceAttributes": {"namespace": "string", "verb": "string", "group": "string", "version": "string",
                           "resource": "string", "subresource": "string", "name": "string",
                           "fieldSelector": "FieldSelectorAttributes", "labelSelector": "LabelSelectorAttributes"},
    "NonResourceAttributes": {"path": "string", "verb": "string"},
    "SubjectAccessReviewStatus": {"allowed": "bool", "denied": "bool", "reason": "string",
                                  "evaluationError": "string"},
    "SelfSubjectRulesReview": {"metadata": "ObjectMeta", "spec": "SelfSubjectRulesReviewSpec",
                               "status": "SubjectRulesReviewStatus"},
    "SelfSubjectRulesReviewSpec": {"namespace": "string"},
    "SubjectRulesReviewStatus": {"resourceRules": "any", "nonResourceRules": "any", "incomplete": "bool",
                                 "evaluationError": "string"},
    "FieldSelectorAttributes": {"rawSelector": "string", "requirements": "[]FieldSelectorRequirement"},
    "LabelSelectorAttributes": {"rawSelector": "string", "requirements": "[]LabelSelectorRequirement"},
    "FieldSelectorRequirement": {"key": "string", "operator": "string", "values": "[]string"},
    "SelfSubjectReview": {"metadata": "ObjectMeta", "status": "SelfSubjectReviewStatus"},
    "SelfSubjectReviewStatus": {"userInfo": "UserInfo"},
    "UserInfo": {"username": "string", "uid": "string", "groups": "[]string", "extra": "any"},
    "TokenRequest": {"metadata": "ObjectMeta", "spec": "TokenRequestSpec", "status": "TokenRequestStatus"},
    "TokenRequestSpec": {"audiences": "[]string", "expirationSeconds": "int64", "boundObjectRef": "BoundObjectReference"},
    "BoundObjectReference": {"kind": "string", "apiVersion": "string", "name": "string", "uid": "string"},
    "TokenRequestStatus": {"token": "string", "expirationTimestamp": "Time"},
}


def _struct(name: str) -> dict[str, str] | None:
    return schema.STRUCTS.get(name) or EXTRA_STRUCTS.get(name)


# -- the wire -------------------------------------------------------------------------------


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(data):
            raise Malformed("truncated varint")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise Malformed("varint too long")


def fields(data: bytes):
    """(number, wire type, value) of each field: an int for varints and
    fixed ones, bytes for length-delimited ones."""
    i = 0
    while i < len(data):
        key, i = _varint(data, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            value, i = _varint(data, i)
        elif wt == 2:
            n, i = _varint(data, i)
            if i + n > len(data):
                raise Malformed("truncated field")
            value, i = data[i:i + n], i + n
        elif wt == 1:
            value, i = struct.unpack_from("<Q", data, i)[0], i + 8
        elif wt == 5:
            value, i = struct.unpack_from("<I", data, i)[0], i + 4
        else:
            raise Unsupported(f"wire type {wt}")
        yield num, wt, value


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


# -- values ---------------------------------------------------------------------------------


def _time(data: bytes, micro: bool = False) -> str | None:
    seconds = nanos = 0
    for num, _, v in fields(data):
        if num == 1:
            seconds = _signed(v)
        elif num == 2:
            nanos = _signed(v)
    if seconds == 0 and nanos == 0:
        return None  # Go's zero time: JSON null, as metav1.Time marshals it
    t = datetime.datetime.fromtimestamp(seconds, datetime.UTC)
    if micro:
        return t.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(data: bytes) -> int | str:
    kind, ival, sval = 0, 0, ""
    for num, _, v in fields(data):
        if num == 1:
            kind = v
        elif num == 2:
            ival = _signed(v)
        elif num == 3:
            sval = v.decode()
    return sval if kind == 1 else ival


def _quantity(data: bytes) -> str:
    for num, _, v in fields(data):
        if num == 1:
            return v.decode()
    return "0"


def _resolve(t: str) -> str:
    t = schema.ALIASES.get(t, t)
    return "string" if t in schema.NAMED_STRINGS else t


def _scalar(t: str, wt: int, v):
    if t == "string":
        if wt != 2:
            raise Unsupported("a string that is not length-delimited")
        return v.decode()
    if t in ("int32", "int64"):
        if wt != 0:
            raise Unsupported(f"an {t} that is not a varint")
        v = _signed(v)
        return v - (1 << 32) if t == "int32" and v >= 1 << 31 else v
    if t == "bool":
        return bool(v)
    if t == "float64":
        return struct.unpack("<d", struct.pack("<Q", v))[0]
    if t == "bytes":
        return base64.b64encode(v).decode()
    if t == "IntOrString":
        return _int_or_string(v)
    if t == "Quantity":
        return _quantity(v)
    if t == "Time":
        return _time(v)
    if t == "MicroTime":
        return _time(v, micro=True)
    raise Unsupported(f"a field of type {t}")


def _packed(t: str, data: bytes) -> list:
    out, i = [], 0
    while i < len(data):
        v, i = _varint(data, i)
        out.append(_scalar(t, 0, v))
    return out


def _value(t: str, wt: int, v):
    t = _resolve(t)
    if _struct(t) is not None:
        if wt != 2:
            raise Unsupported(f"a {t} that is not a message")
        return message(t, v)
    return _scalar(t, wt, v)


def _empty(value) -> bool:
    return value in ("", 0, False, None) or value == {} or value == []


def message(struct_name: str, data: bytes, types: dict[str, str] | None = None) -> dict:
    """The JSON object of one message of the Go struct `struct_name`."""
    numbers = FIELDS.get(struct_name)
    types = types or _struct(struct_name)
    if numbers is None or types is None:
        raise Unsupported(f"no protobuf mapping for {struct_name}")
    out: dict = {}
    pointers = set()
    for num, wt, v in fields(data):
        if num not in numbers:
            raise Unsupported(f"field {num} of {struct_name}")
        name, ptr, inline = numbers[num]
        if inline:
            out.update(message(name, v, types))  # the embedded struct's fields are the parent's in JSON
            continue
        t = types.get(name)
        if t is None:
            raise Unsupported(f"{struct_name}.{name} is not in the schema")
        if ptr:
            pointers.add(name)
        if t.startswith("map[string]"):
            key, val = "", None
            for n, w, x in fields(v):
                if n == 1:
                    key = x.decode()
                elif n == 2:
                    val = _value(t[11:], w, x)
            if val is None:  # an empty value is not sent
                val = _value(t[11:], 2, b"") if _resolve(t[11:]) in ("string", "bytes", "Quantity") else 0
            out.setdefault(name, {})[key] = val
        elif t.startswith("[]"):
            et = _resolve(t[2:])
            if wt == 2 and et in ("int32", "int64", "bool"):
                out.setdefault(name, []).extend(_packed(et, v))
            else:
                out.setdefault(name, []).append(_value(et, wt, v))
        else:
            out[name] = _value(t, wt, v)
    # A non-pointer field is always on the wire, its zero value too; JSON's omitempty leaves that out.
    return {k: v for k, v in out.items() if k in pointers or not _empty(v)}


def decode(body: bytes) -> dict:
    """The JSON object a protobuf request body stands for; Unsupported when
    it is not one this module maps exactly, Malformed when it is not protobuf."""
    try:
        return _decode(body)
    except (UnicodeDecodeError, struct.error, IndexError) as e:
        raise Malformed(str(e)) from None


def _decode(body: bytes) -> dict:
    if not body.startswith(MAGIC):
        raise Unsupported("the body does not start with the protobuf magic number")
    api_version = kind = ""
    raw = b""
    for num, _, v in fields(body[len(MAGIC):]):
        if num == 1:
            for n, _, x in fields(v):
                if n == 1:
                    api_version = x.decode()
                elif n == 2:
                    kind = x.decode()
        elif num == 2:
            raw = v
        elif num == 3 and v:
            raise Unsupported("a content encoding")
    if not kind or _struct(kind) is None:
        raise Unsupported(f"kind {kind!r}")
    obj = message(kind, raw)
    return {"apiVersion": api_version, "kind": kind, **obj}
