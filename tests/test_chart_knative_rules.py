"""Knative's admission rules, enforced when the chart renders: for each rule a render that must fail
with a message naming the value, and a boundary render that must pass.

Each case names the Knative source file and function the rule comes from: knative/serving just after
knative-v1.23.0 (commit 98e5ef9, August 2026), knative/eventing of June 2026 (commit 8cf4c4b),
knative/pkg of July 2026 (commit 521cb33), and Kubernetes' own pod validation where Knative's
Deployment would be refused. Values that need a cluster setting fail with a message naming it.
"""

from dataclasses import dataclass, field

import pytest

from tests.chart_render import by_kind, render, template, values_file

SERVING_ANNOTATIONS = "serving pkg/apis/autoscaling/annotation_validation.go"
SERVING_K8S = "serving pkg/apis/serving/k8s_validation.go"
SERVING_MASKS = "serving pkg/apis/serving/fieldmask.go"
SERVING_REVISION = "serving pkg/apis/serving/v1/revision_validation.go"
SERVING_METADATA = "serving pkg/apis/serving/metadata_validation.go"
PKG_METADATA = "pkg apis/metadata_validation.go"
PKG_DESTINATION = "pkg apis/duck/v1/destination.go"
EVENTING_TRIGGER = "eventing pkg/apis/eventing/v1/trigger_validation.go"
EVENTING_DELIVERY = "eventing pkg/apis/duck/v1/delivery_types.go"
GGCR = "go-containerregistry pkg/name (ParseReference, called from " + SERVING_K8S + " validate)"
KUBERNETES = "kubernetes pkg/apis/core/validation (the Deployment Knative creates)"


def sets(*assignments: str) -> list[str]:
    """helm's `--set` arguments, one per assignment."""
    return [arg for assignment in assignments for arg in ("--set", assignment)]


TRIGGER = sets("trigger.enabled=true")


@dataclass
class Rule:
    """A failing render (args, message) and the boundary render that passes (ok)."""

    source: str
    function: str
    args: list[str]
    message: str
    ok: list[str] = field(default_factory=list)
    yaml: str = ""  # a values file for the failing render (--set turns 0.5 into a string)
    ok_yaml: str = ""  # a values file for the boundary render

    @property
    def id(self) -> str:
        return f"{self.function}:{self.message}"


def flag(name: str) -> list[str]:
    return sets(f"knative.features={{{name}}}")


RULES = [
    # Scale annotations.
    Rule(
        SERVING_ANNOTATIONS,
        "validateMinMaxScale",
        sets("autoscaling.activationScale=1"),
        "autoscaling.activationScale (1) must be at least 2",
        sets("autoscaling.activationScale=2"),
    ),
    Rule(
        SERVING_ANNOTATIONS,
        "validateMinMaxScale",
        sets("autoscaling.minScale=3", "autoscaling.activationScale=2"),
        "autoscaling.activationScale (2) is below autoscaling.minScale (3)",
        sets("autoscaling.minScale=3", "autoscaling.activationScale=3"),
    ),
    Rule(
        SERVING_ANNOTATIONS,
        "validateMinMaxScale",
        sets("autoscaling.maxScale=4", "autoscaling.activationScale=5"),
        "autoscaling.activationScale (5) is above autoscaling.maxScale (4)",
        sets("autoscaling.maxScale=0", "autoscaling.activationScale=5"),
    ),
    Rule(
        SERVING_ANNOTATIONS,
        "validateMinMaxScale",
        sets("autoscaling.minScale=5", "autoscaling.maxScale=4"),
        "autoscaling.minScale (5) is above autoscaling.maxScale (4)",
        sets("autoscaling.minScale=4", "autoscaling.maxScale=4"),
    ),
    Rule(
        SERVING_ANNOTATIONS,
        "getIntGE0",
        sets("autoscaling.maxScale=2147483648"),
        "maxScale",
        sets("autoscaling.maxScale=2147483647"),
    ),
    Rule(
        SERVING_ANNOTATIONS,
        "validateMaxScaleWithinLimit",
        sets("knative.maxScaleLimit=10", "autoscaling.maxScale=11"),
        "max-scale-limit",
        sets("knative.maxScaleLimit=10", "autoscaling.maxScale=10"),
    ),
    Rule(
        SERVING_ANNOTATIONS,
        "validateMaxScaleWithinLimit",
        sets("knative.maxScaleLimit=10", "autoscaling.maxScale=0"),
        "refuses 0 (unlimited)",
        sets("knative.maxScaleLimit=10", "autoscaling.maxScale=1"),
    ),
    Rule(
        SERVING_ANNOTATIONS,
        "validateInitialScale",
        sets("autoscaling.initialScale=0"),
        "allow-zero-initial-scale",
        sets("autoscaling.initialScale=0", "knative.allowZeroInitialScale=true"),
    ),
    Rule(
        SERVING_ANNOTATIONS,
        "validateFloats (TargetMin)",
        [],
        "/autoscaling/target",
        [],
        yaml="autoscaling: {target: 0.0099}\n",
        ok_yaml="autoscaling: {target: 0.01}\n",
    ),
    Rule(
        SERVING_ANNOTATIONS,
        "validateFloats",
        [],
        "/autoscaling/targetUtilizationPercentage",
        [],
        yaml="autoscaling: {targetUtilizationPercentage: 0.99}\n",
        ok_yaml="autoscaling: {targetUtilizationPercentage: 1.0}\n",
    ),
    Rule(
        SERVING_ANNOTATIONS,
        "validateFloats",
        [],
        "/autoscaling/targetUtilizationPercentage",
        [],
        yaml="autoscaling: {targetUtilizationPercentage: 100.5}\n",
        ok_yaml="autoscaling: {targetUtilizationPercentage: 100}\n",
    ),
    Rule(
        SERVING_ANNOTATIONS,
        "validateScaleDownDelay",
        sets("autoscaling.scaleDownDelay=1h0m1s"),
        'autoscaling.scaleDownDelay "1h0m1s" is above 1h',
        sets("autoscaling.scaleDownDelay=60m"),
    ),
    Rule(
        SERVING_ANNOTATIONS,
        "validateScaleDownDelay",
        sets("autoscaling.scaleDownDelay=1500ms"),
        "is not whole seconds",
        sets("autoscaling.scaleDownDelay=1.5m"),
    ),
    Rule(
        SERVING_ANNOTATIONS,
        "validateScaleDownDelay",
        sets("autoscaling.scaleDownDelay=5 minutes"),
        "scaleDownDelay",
        ["--set-string", "autoscaling.scaleDownDelay=0"],
    ),
    Rule(
        SERVING_ANNOTATIONS,
        "validateLastPodRetention",
        sets("autoscaling.scaleToZeroPodRetentionPeriod=3600.001s"),
        "is above 1h",
        sets("autoscaling.scaleToZeroPodRetentionPeriod=3599.5s"),
    ),
    Rule(
        "serving pkg/reconciler/autoscaling/resources/target.go",
        "ResolveMetricTarget",
        [],
        "autoscaling.target (32.5) is above containerConcurrency (32)",
        sets("autoscaling.target=32"),
        yaml="autoscaling: {target: 32.5}\n",
    ),
    Rule(
        "serving pkg/reconciler/autoscaling/resources/target.go",
        "ResolveMetricTarget",
        sets("autoscaling.target=100", "containerConcurrency=0"),
        "",
        sets("autoscaling.target=100", "autoscaling.metric=rps"),
    ),
    # Revision spec.
    Rule(
        SERVING_REVISION,
        "validateProgressDeadlineAnnotation",
        sets("progressDeadline=90.5s"),
        'progressDeadline "90.5s" is not whole seconds',
        sets("progressDeadline=1m30s"),
    ),
    Rule(
        SERVING_REVISION + " and " + KUBERNETES,
        "validateProgressDeadlineAnnotation",
        sets("progressDeadline=0s"),
        "progressDeadlineSeconds 0",
        sets("progressDeadline=1s"),
    ),
    Rule(
        KUBERNETES + " (queue-proxy's container: serving pkg/reconciler/revision/resources/queue.go)",
        "createQueueResources",
        sets("queueProxy.cpuLimit=10m"),
        "below queue-proxy's CPU request 25m",
        sets("queueProxy.cpuLimit=25m"),
    ),
    Rule(
        KUBERNETES + " (queue-proxy's container: serving pkg/reconciler/revision/resources/queue.go)",
        "createQueueResources",
        sets("knative.queueSidecarCPURequest=2", "queueProxy.cpuLimit=1500m"),
        "below queue-proxy's CPU request 2",
        sets("knative.queueSidecarCPURequest=2", "queueProxy.cpuLimit=2"),
    ),
    Rule(
        SERVING_REVISION,
        "validateTimeoutSeconds",
        sets("timeoutSeconds=601"),
        "max-revision-timeout-seconds",
        sets("timeoutSeconds=600"),
    ),
    Rule(
        SERVING_REVISION,
        "validateTimeoutSeconds",
        sets("timeoutSeconds=900"),
        "knative.maxRevisionTimeoutSeconds (600)",
        sets("timeoutSeconds=900", "knative.maxRevisionTimeoutSeconds=900"),
    ),
    Rule(
        SERVING_METADATA,
        "ValidateContainerConcurrency",
        sets("containerConcurrency=1001"),
        "container-concurrency-max-limit",
        sets("containerConcurrency=1000"),
    ),
    Rule(
        SERVING_METADATA,
        "ValidateContainerConcurrency",
        sets("containerConcurrency=0", "knative.allowContainerConcurrencyZero=false"),
        "allow-container-concurrency-zero",
        sets("containerConcurrency=0"),
    ),
    Rule(
        SERVING_K8S,
        "validateReadinessProbe",
        sets("probes.readiness.periodSeconds=0"),
        "failureThreshold is disallowed when periodSeconds is zero",
        sets("probes.readiness.periodSeconds=0", "probes.readiness.failureThreshold=0"),
    ),
    # Feature flags behind the field masks.
    Rule(
        SERVING_MASKS,
        "PodSpecMask",
        sets("nodeSelector.gpu=a10"),
        "kubernetes.podspec-nodeselector",
        [*sets("nodeSelector.gpu=a10"), *flag("kubernetes.podspec-nodeselector")],
    ),
    Rule(
        SERVING_MASKS,
        "PodSpecMask",
        sets("tolerations[0].key=gpu", "tolerations[0].operator=Exists"),
        "kubernetes.podspec-tolerations",
        [*sets("tolerations[0].key=gpu", "tolerations[0].operator=Exists"), *flag("kubernetes.podspec-tolerations")],
    ),
    Rule(
        SERVING_MASKS,
        "PodSpecMask",
        sets("gpu.requireSupportedArchitecture=true"),
        "gpu.requireSupportedArchitecture (a node affinity) needs Knative's kubernetes.podspec-affinity",
        [*sets("gpu.requireSupportedArchitecture=true"), *flag("kubernetes.podspec-affinity")],
    ),
    Rule(
        SERVING_MASKS,
        "PodSpecMask",
        sets("runtimeClassName=nvidia"),
        "kubernetes.podspec-runtimeclassname",
        [*sets("runtimeClassName=nvidia"), *flag("kubernetes.podspec-runtimeclassname")],
    ),
    Rule(
        SERVING_MASKS,
        "PodSpecMask",
        sets("priorityClassName=gpu"),
        "kubernetes.podspec-priorityclassname",
        [*sets("priorityClassName=gpu"), *flag("kubernetes.podspec-priorityclassname")],
    ),
    Rule(
        SERVING_MASKS,
        "EnvVarSourceMask",
        sets("extraEnv[0].name=NODE", "extraEnv[0].valueFrom.fieldRef.fieldPath=spec.nodeName"),
        "kubernetes.podspec-fieldref",
        [
            *sets("extraEnv[0].name=NODE", "extraEnv[0].valueFrom.fieldRef.fieldPath=spec.nodeName"),
            *flag("kubernetes.podspec-fieldref"),
        ],
    ),
    Rule(
        SERVING_MASKS,
        "EnvVarSourceMask",
        sets("extraEnv[0].name=CPUS", "extraEnv[0].valueFrom.resourceFieldRef.resource=limits.cpu"),
        "kubernetes.podspec-fieldref",
        sets(
            "extraEnv[0].name=TOKEN",
            "extraEnv[0].valueFrom.secretKeyRef.name=api",
            "extraEnv[0].valueFrom.secretKeyRef.key=token",
        ),
    ),
    Rule(
        SERVING_MASKS,
        "CapabilitiesMask",
        sets("securityContext.capabilities.add={NET_ADMIN}"),
        "kubernetes.containerspec-addcapabilities",
        [*sets("securityContext.capabilities.add={NET_ADMIN}"), *flag("kubernetes.containerspec-addcapabilities")],
    ),
    Rule(
        SERVING_MASKS,
        "SecurityContextMask",
        sets("securityContext.appArmorProfile.type=RuntimeDefault"),
        "appArmorProfile",
        sets("securityContext.readOnlyRootFilesystem=false"),
    ),
    Rule(
        SERVING_MASKS,
        "SecurityContextMask",
        sets("securityContext.seLinuxOptions.level=s0"),
        "seLinuxOptions",
        sets("securityContext.runAsGroup=1000"),
    ),
    Rule(
        SERVING_MASKS,
        "SecurityContextMask",
        sets("securityContext.procMount=Unmasked"),
        "procMount",
        sets("securityContext.runAsUser=1000"),
    ),
    Rule(
        SERVING_MASKS,
        "SecurityContextMask",
        sets("securityContext.windowsOptions.runAsUserName=x"),
        "windowsOptions",
        sets("securityContext.allowPrivilegeEscalation=false"),
    ),
    Rule(
        SERVING_MASKS,
        "SecurityContextMask",
        sets("securityContext.privileged=true"),
        "privileged",
        sets("securityContext.privileged=false"),
    ),
    Rule(
        SERVING_K8S,
        "validateSecurityContext",
        sets("securityContext.runAsUser=2147483648"),
        "runAsUser",
        sets("securityContext.runAsUser=2147483647"),
    ),
    Rule(
        SERVING_K8S,
        "validateSecurityContext",
        sets("securityContext.runAsUser=-1"),
        "runAsUser",
        sets("securityContext.runAsUser=0", "securityContext.runAsNonRoot=false"),
    ),
    Rule(
        KUBERNETES,
        "ValidateSeccompProfileField",
        sets("securityContext.seccompProfile.type=Localhost"),
        "localhostProfile",
        sets(
            "securityContext.seccompProfile.type=Localhost",
            "securityContext.seccompProfile.localhostProfile=profiles/cifar.json",
        ),
    ),
    Rule(
        KUBERNETES,
        "ValidateSecurityContext",
        [*sets("securityContext.capabilities.add={SYS_ADMIN}"), *flag("kubernetes.containerspec-addcapabilities")],
        "allowPrivilegeEscalation false",
        [
            *sets("securityContext.capabilities.add={SYS_ADMIN}", "securityContext.allowPrivilegeEscalation=true"),
            *flag("kubernetes.containerspec-addcapabilities"),
        ],
    ),
    # Environment.
    Rule(
        SERVING_K8S,
        "validateEnvVar",
        ["--set", "extraEnv[0].name=PORT", "--set-string", "extraEnv[0].value=9"],
        "reserves PORT",
        ["--set", "extraEnv[0].name=PORTS", "--set-string", "extraEnv[0].value=9"],
    ),
    Rule(
        SERVING_K8S,
        "validateEnvVar",
        sets("extraEnv[0].name=K_SERVICE", "extraEnv[0].value=x"),
        "K_SERVICE",
        sets("extraEnv[0].name=KSERVICE", "extraEnv[0].value=x"),
    ),
    Rule(
        KUBERNETES,
        "validateEnvVarValueFrom",
        sets(
            "extraEnv[0].name=A",
            "extraEnv[0].value=x",
            "extraEnv[0].valueFrom.secretKeyRef.name=s",
            "extraEnv[0].valueFrom.secretKeyRef.key=k",
        ),
        "extraEnv",
        ["--set", "extraEnv[0].name=A", "--set-string", "extraEnv[0].value=5"],
    ),
    Rule(
        KUBERNETES,
        "EnvVar.value is a string",
        [],
        "at '/extraEnv/0/value': got number, want string",
        [],
        yaml="extraEnv: [{name: A, value: 5}]\n",
        ok_yaml='extraEnv: [{name: A, value: "5"}]\n',
    ),
    # Names.
    Rule(
        SERVING_K8S,
        "ValidatePodSpec (IsDNS1123Subdomain)",
        sets("serviceAccountName=Inference_SA"),
        "serviceAccountName",
        sets("serviceAccountName=inference.sa-1"),
    ),
    Rule(
        KUBERNETES,
        "ValidatePodSpec (runtimeClassName)",
        sets("runtimeClassName=Nvidia"),
        "runtimeClassName",
        [*sets("runtimeClassName=nvidia.gpu"), *flag("kubernetes.podspec-runtimeclassname")],
    ),
    Rule(
        KUBERNETES,
        "ValidatePodSpec (priorityClassName)",
        sets("priorityClassName=GPU"),
        "priorityClassName",
        [*sets("priorityClassName=gpu.high"), *flag("kubernetes.podspec-priorityclassname")],
    ),
    Rule(
        PKG_METADATA,
        "ValidateObjectMetadata",
        sets("nameOverride=Cifar_10"),
        "is not a DNS-1035 label",
        sets("nameOverride=cifar-10"),
    ),
    Rule(
        PKG_METADATA,
        "ValidateObjectMetadata",
        sets("fullnameOverride=1st"),
        "fullnameOverride",
        sets("fullnameOverride=first"),
    ),
    # Image references.
    Rule(
        GGCR,
        "checkRepository",
        sets("image.repository=ghcr.io/Example/cifar"),
        "repository",
        sets("image.repository=ghcr.io/example/cifar"),
    ),
    Rule(GGCR, "checkTag", sets("image.tag=1.0+build.5"), "tag", sets("image.tag=1.0_build.5")),
    Rule(
        GGCR,
        "NewTag",
        sets("image.repository=ghcr.io/x/y:1.0"),
        "repository",
        sets("image.repository=localhost:5000/x/y"),
    ),
    Rule(
        GGCR,
        "checkRepository",
        sets("image.repository=ghcr.io/a"),
        "2 to 255 characters",
        sets("image.repository=ghcr.io/ab"),
    ),
    # Scheduling fields, passed to the pod as given: Kubernetes validates them in the Deployment.
    Rule(
        KUBERNETES,
        "validateTolerations",
        [],
        "/tolerations/0",
        [],
        yaml="tolerations: [{key: nvidia.com/gpu, operator: Exists, value: present}]\n",
        ok_yaml="tolerations: [{key: nvidia.com/gpu, operator: Exists}]\n"
        "knative: {features: [kubernetes.podspec-tolerations]}\n",
    ),
    Rule(
        KUBERNETES,
        "validateTolerations",
        [],
        "/tolerations/0",
        [],
        yaml="tolerations: [{key: gpu, operator: Equal, value: a, effect: NoSchedule, tolerationSeconds: 60}]\n",
        ok_yaml="tolerations: [{key: gpu, operator: Equal, value: a, effect: NoExecute, tolerationSeconds: 60}]\n"
        "knative: {features: [kubernetes.podspec-tolerations]}\n",
    ),
    Rule(
        KUBERNETES,
        "validateTolerations",
        [],
        "/tolerations/0",
        [],
        yaml="tolerations: [{operator: Equal, value: a}]\n",
        ok_yaml="tolerations: [{operator: Exists}]\nknative: {features: [kubernetes.podspec-tolerations]}\n",
    ),
    Rule(
        KUBERNETES,
        "ValidateNodeSelector (label names)",
        sets("nodeSelector.gpu_type/x=a10"),
        "invalid propertyName 'gpu_type/x'",
        [*sets("nodeSelector.nvidia\\.com/gpu\\.product=NVIDIA-A10G"), *flag("kubernetes.podspec-nodeselector")],
    ),
    Rule(
        KUBERNETES,
        "ValidateNodeSelector (label values)",
        sets("nodeSelector.gpu=a 10"),
        "/nodeSelector/gpu",
        [*sets("nodeSelector.gpu=a-10"), *flag("kubernetes.podspec-nodeselector")],
    ),
    Rule(
        KUBERNETES,
        "validateNodeSelectorRequirement",
        [],
        "/affinity/nodeAffinity",
        [],
        yaml="affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: "
        "[{matchExpressions: [{key: zone, operator: Within, values: [a]}]}]}}}\n",
        ok_yaml="affinity: {nodeAffinity: {requiredDuringSchedulingIgnoredDuringExecution: {nodeSelectorTerms: "
        "[{matchExpressions: [{key: zone, operator: In, values: [a]}]}]}}}\n"
        "knative: {features: [kubernetes.podspec-affinity]}\n",
    ),
    Rule(
        KUBERNETES,
        "ValidateAffinity",
        [],
        "/affinity",
        [],
        yaml="affinity: {nodeAfinity: {}}\n",
        ok_yaml="affinity: {podAntiAffinity: {preferredDuringSchedulingIgnoredDuringExecution: []}}\n"
        "knative: {features: [kubernetes.podspec-affinity]}\n",
    ),
    Rule(
        KUBERNETES,
        "ValidateLabels (app.kubernetes.io/name)",
        sets("nameOverride=cifar 10", "fullnameOverride=cifar"),
        "/nameOverride",
        sets("nameOverride=Cifar_10", "fullnameOverride=cifar"),
    ),
    # Resources.
    Rule(
        KUBERNETES,
        "ValidateResourceRequirements",
        sets("resources.requests.cpu=4100m"),
        "resources.requests.cpu (4100m) is above resources.limits.cpu (4)",
        sets("resources.requests.cpu=4000m"),
    ),
    Rule(
        KUBERNETES,
        "ValidateResourceRequirements",
        sets("resources.requests.memory=8.5Gi"),
        "resources.requests.memory",
        sets("resources.requests.memory=8192Mi"),
    ),
    Rule(
        KUBERNETES,
        "ValidateResourceRequirements",
        sets("resources.requests.memory=9e9"),
        "resources.requests.memory",
        sets("resources.requests.memory=8e9"),
    ),
    Rule(
        KUBERNETES,
        "ValidateResourceQuantityValue",
        sets("resources.requests.memory=-1Gi"),
        "/resources/requests/memory",
        sets("resources.requests.memory=0"),
    ),
    Rule(
        KUBERNETES,
        "validateContainerResourceName",
        sets("gpu.resourceName=gpu"),
        "resourceName",
        sets("gpu.resourceName=nvidia.com/gpu.shared"),
    ),
    Rule(
        "the chart's schema",
        "quantity anyOf",
        sets("resources.limits.cpu=lots"),
        "cpu",
        sets("resources.limits.cpu=4", "resources.requests.cpu=2"),
    ),
    # Eventing.
    Rule(
        EVENTING_TRIGGER,
        "ValidateAttributesNames",
        [*TRIGGER, *sets("trigger.filter.attributes.Camera_ID=x")],
        "Camera_ID",
        [*TRIGGER, *sets("trigger.filter.attributes.cameraid2=x")],
    ),
    Rule(
        EVENTING_TRIGGER,
        "ValidateAttributesNames",
        [*TRIGGER, *sets("trigger.filter.attributes=null", "trigger.filters[0].exact.Type=x")],
        "Type",
        [
            *TRIGGER,
            *sets("trigger.filter.attributes=null", "trigger.filters[0].exact.type=dev.cifar10.classify.request"),
        ],
    ),
    Rule(
        EVENTING_TRIGGER,
        "ValidateOneOf (hasMultipleDialects)",
        [
            *TRIGGER,
            *sets(
                "trigger.filter.attributes=null",
                "trigger.filters[0].exact.type=dev.cifar10.classify.request",
                "trigger.filters[0].prefix.source=/cameras/",
            ),
        ],
        "filters",
        [
            *TRIGGER,
            *sets(
                "trigger.filter.attributes=null",
                "trigger.filters[0].exact.type=dev.cifar10.classify.request",
                "trigger.filters[1].prefix.source=/cameras/",
            ),
        ],
    ),
    Rule(
        EVENTING_DELIVERY,
        "DeliverySpec.Validate (period.Parse)",
        [*TRIGGER, *sets("trigger.delivery.backoffDelay=P1S")],
        "backoffDelay",
        [*TRIGGER, *sets("trigger.delivery.backoffDelay=PT1S")],
    ),
    Rule(
        EVENTING_DELIVERY,
        "DeliverySpec.Validate (period.Parse)",
        [*TRIGGER, *sets("trigger.delivery.backoffDelay=PT")],
        "backoffDelay",
        [*TRIGGER, *sets("trigger.delivery.backoffDelay=P1DT")],
    ),
    Rule(
        EVENTING_DELIVERY,
        "DeliverySpec.Validate (period.Parse keeps one decimal)",
        [*TRIGGER, *sets("trigger.delivery.backoffDelay=PT0.25S")],
        "backoffDelay",
        [*TRIGGER, *sets("trigger.delivery.backoffDelay=PT0.2S")],
    ),
    Rule(
        EVENTING_DELIVERY,
        "DeliverySpec.Validate (retryAfterMax needs delivery-retryafter)",
        [*TRIGGER, *sets("trigger.delivery.retryAfterMax=PT30S")],
        "knative.eventingFeatures: [delivery-retryafter]",
        [*TRIGGER, *sets("trigger.delivery.retryAfterMax=PT30S", "knative.eventingFeatures={delivery-retryafter}")],
    ),
    Rule(
        EVENTING_DELIVERY,
        "DeliverySpec.Validate (retryAfterMax, period.Parse)",
        [*TRIGGER, *sets("trigger.delivery.retryAfterMax=30s", "knative.eventingFeatures={delivery-retryafter}")],
        "retryAfterMax",
        [*TRIGGER, *sets("trigger.delivery.retryAfterMax=PT0.5S", "knative.eventingFeatures={delivery-retryafter}")],
    ),
    Rule(
        EVENTING_DELIVERY,
        "DeliverySpec.Validate (timeout not zero)",
        [*TRIGGER, *sets("trigger.delivery.timeout=PT0S")],
        "timeout",
        [*TRIGGER, *sets("trigger.delivery.timeout=PT0.1S")],
    ),
    Rule(
        EVENTING_DELIVERY,
        "DeliverySpec.Validate (timeout)",
        [*TRIGGER, *sets("trigger.delivery.timeout=2m")],
        "timeout",
        [*TRIGGER, *sets("trigger.delivery.timeout=PT2M")],
    ),
    Rule(
        EVENTING_DELIVERY,
        "DeliverySpec.Validate (retry int32)",
        [*TRIGGER, *sets("trigger.delivery.retry=2147483648")],
        "retry",
        [*TRIGGER, *sets("trigger.delivery.retry=2147483647")],
    ),
    Rule(
        "pkg apis/duck/v1/knative_reference.go",
        "KReference.Validate",
        [
            *TRIGGER,
            *sets("trigger.delivery.deadLetterSink.ref.kind=Service", "trigger.delivery.deadLetterSink.ref.name=dlq"),
        ],
        "apiVersion",
        [
            *TRIGGER,
            *sets(
                "trigger.delivery.deadLetterSink.ref.kind=Service",
                "trigger.delivery.deadLetterSink.ref.name=dlq",
                "trigger.delivery.deadLetterSink.ref.apiVersion=serving.knative.dev/v1",
            ),
        ],
    ),
    Rule(
        PKG_DESTINATION,
        "ValidateDestination",
        [*TRIGGER, *sets("trigger.delivery.deadLetterSink.uri=/dlq")],
        "must be an absolute URL with a host",
        [*TRIGGER, *sets("trigger.delivery.deadLetterSink.uri=http://dlq.ml.svc")],
    ),
    Rule(
        PKG_DESTINATION,
        "ValidateDestination",
        [
            *TRIGGER,
            *sets(
                "trigger.delivery.deadLetterSink.ref.kind=Service",
                "trigger.delivery.deadLetterSink.ref.name=dlq",
                "trigger.delivery.deadLetterSink.ref.apiVersion=serving.knative.dev/v1",
                "trigger.delivery.deadLetterSink.uri=http://dlq.ml.svc/dead",
            ),
        ],
        "is absolute while a ref is set",
        [
            *TRIGGER,
            *sets(
                "trigger.delivery.deadLetterSink.ref.kind=Service",
                "trigger.delivery.deadLetterSink.ref.name=dlq",
                "trigger.delivery.deadLetterSink.ref.apiVersion=serving.knative.dev/v1",
                "trigger.delivery.deadLetterSink.uri=/dead",
            ),
        ],
    ),
    Rule(
        PKG_DESTINATION,
        "ValidateDestination",
        [],
        "/trigger/delivery/deadLetterSink/ref",
        [*TRIGGER],
        yaml="trigger: {enabled: true, delivery: {deadLetterSink: {ref: null}}}\n",
    ),
]


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_rule_refuses_at_render_time_and_passes_at_its_boundary(rule: Rule, tmp_path) -> None:
    args = ["-f", values_file(tmp_path / "refused", rule.yaml)] if rule.yaml else []
    if rule.message:
        refused = template(*args, *rule.args)
        assert refused.returncode != 0, f"{rule.source} {rule.function}: rendered\n{refused.stdout[:2000]}"
        assert rule.message in refused.stderr, refused.stderr
    else:
        assert template(*rule.args).returncode == 0, f"{rule.source} {rule.function}: the rule does not apply here"
    ok_args = ["-f", values_file(tmp_path / "passed", rule.ok_yaml)] if rule.ok_yaml else []
    passed = template(*ok_args, *rule.ok)
    assert passed.returncode == 0, f"{rule.source} {rule.function}: boundary refused\n{passed.stderr}"


def test_the_service_name_follows_the_release_name() -> None:
    """knative/pkg ValidateObjectMetadata: a DNS-1035 label, so no leading digit and no dot."""
    for release in ("1st", "my.rel"):
        refused = template(release=release)
        assert refused.returncode != 0 and "fullnameOverride" in refused.stderr, release
    (named,) = by_kind(render("--set", "fullnameOverride=first", release="1st"), "Service")
    assert named["metadata"]["name"] == "first"
    (plain,) = by_kind(render(release="a1"), "Service")
    assert plain["metadata"]["name"] == "a1-cifar10-function"


def test_a_values_file_quantity_may_be_an_unquoted_number(tmp_path) -> None:
    """`cpu: 2` is an integer and a number at once: the schema's anyOf takes it where oneOf refused it."""
    values = values_file(tmp_path, "resources: {requests: {cpu: 2, memory: 1073741824}, limits: {cpu: 2.5}}\n")
    (rendered,) = by_kind(render("-f", values), "Service")
    resources = rendered["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert resources["requests"] == {"cpu": "2", "memory": "1073741824"}
    assert resources["limits"]["cpu"] == "2.5"


def test_readiness_period_zero_renders_no_failure_threshold() -> None:
    """k8s_validation.go validateReadinessProbe: periodSeconds 0 takes no failureThreshold."""
    (rendered,) = by_kind(
        render("--set", "probes.readiness.periodSeconds=0", "--set", "probes.readiness.failureThreshold=0"), "Service"
    )
    probe = rendered["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["periodSeconds"] == 0 and "failureThreshold" not in probe


def test_a_changed_broker_is_a_new_trigger() -> None:
    """trigger_validation.go CheckImmutableFields refuses a changed spec.broker: the name carries it."""
    names = {}
    for broker in ("default", "images", "b" * 60):
        (trigger,) = by_kind(render(*TRIGGER, "--set", f"trigger.broker={broker}"), "Trigger")
        assert trigger["spec"]["broker"] == broker
        names[broker] = trigger["metadata"]["name"]
    assert names["default"] == "cifar-cifar10-function-default"
    assert len(set(names.values())) == 3 and all(len(n) <= 63 for n in names.values())


def test_failure_messages_name_the_cluster_setting_a_refused_install_needs() -> None:
    """Helm prints NOTES only after a successful install: the refusal itself names the setting."""
    cases = {
        ("autoscaling.initialScale=0",): "config-autoscaler",
        ("nodeSelector.gpu=a10",): "config-features",
        ("timeoutSeconds=601",): "config-defaults max-revision-timeout-seconds",
    }
    for assignments, setting in cases.items():
        refused = template(*sets(*assignments))
        assert refused.returncode != 0 and setting in refused.stderr, refused.stderr
