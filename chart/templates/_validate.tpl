{{/*
Rules the schema cannot express, each failing with a message that names the value and the rule.
They follow the admission webhooks' code, read from knative/serving just after knative-v1.23.0
(August 2026), knative/eventing of June 2026 and knative/pkg of July 2026: the Knative function
named in each message is where the rule lives. Helm prints NOTES only after a successful install,
so a message here says which cluster setting a refused value needs.
*/}}
{{- define "cifar10.validate" -}}
{{- $v := .Values }}
{{- $k := $v.knative }}

{{- /* Names: knative/pkg apis/metadata_validation.go ValidateObjectMetadata. */}}
{{- $name := include "cifar10.fullname" . }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $name) }}
{{- fail (printf "the Service name %q (from the release name %q, nameOverride and fullnameOverride) is not a DNS-1035 label: Knative's ValidateObjectMetadata needs lower-case letters, digits and '-', starting with a letter and ending with a letter or digit; set fullnameOverride" $name .Release.Name) }}
{{- end }}

{{- /* Image: go-containerregistry's name.ParseReference, called by Serving's k8s_validation.go validate. */}}
{{- $repository := $v.image.repository }}
{{- $first := regexFind "^[^/]*" $repository }}
{{- $path := $repository }}
{{- if and (contains "/" $repository) (or (contains "." $first) (contains ":" $first)) }}{{ $path = trimPrefix (printf "%s/" $first) $repository }}{{ end }}
{{- if or (lt (len $path) 2) (gt (len $path) 255) }}
{{- fail (printf "image.repository %q: the path after the registry must be 2 to 255 characters (go-containerregistry's checkRepository, used by Knative's image validation)" $repository) }}
{{- end }}

{{- /* Scale: Serving pkg/apis/autoscaling/annotation_validation.go validateMinMaxScale and validateInitialScale. */}}
{{- $a := $v.autoscaling }}
{{- $min := int64 $a.minScale }}
{{- $max := int64 $a.maxScale }}
{{- if and (gt $max 0) (gt $min $max) }}
{{- fail (printf "autoscaling.minScale (%d) is above autoscaling.maxScale (%d): Knative's validateMinMaxScale refuses it" $min $max) }}
{{- end }}
{{- if and (gt $max 0) (gt (int64 $a.initialScale) $max) }}
{{- fail (printf "autoscaling.initialScale (%d) is above autoscaling.maxScale (%d)" (int64 $a.initialScale) $max) }}
{{- end }}
{{- $activation := int64 $a.activationScale }}
{{- if gt $activation 0 }}
{{- if lt $activation 2 }}
{{- fail (printf "autoscaling.activationScale (%d) must be at least 2, or 0 to leave it unset: Knative's validateMinMaxScale refuses activation-scale 1" $activation) }}
{{- end }}
{{- if gt $min $activation }}
{{- fail (printf "autoscaling.activationScale (%d) is below autoscaling.minScale (%d): Knative's validateMinMaxScale refuses it" $activation $min) }}
{{- end }}
{{- if and (gt $max 0) (gt $activation $max) }}
{{- fail (printf "autoscaling.activationScale (%d) is above autoscaling.maxScale (%d): Knative's validateMinMaxScale refuses it" $activation $max) }}
{{- end }}
{{- end }}
{{- $limit := int64 $k.maxScaleLimit }}
{{- if and (gt $limit 0) (or (eq $max 0) (gt $max $limit)) }}
{{- fail (printf "autoscaling.maxScale (%d) must be between 1 and knative.maxScaleLimit (%d), the cluster's config-autoscaler max-scale-limit: Knative's validateMaxScaleWithinLimit refuses 0 (unlimited) and anything above" $max $limit) }}
{{- end }}
{{- if and (eq (int64 $a.initialScale) 0) (not $k.allowZeroInitialScale) }}
{{- fail "autoscaling.initialScale 0 needs allow-zero-initial-scale: \"true\" in the cluster's config-autoscaler ConfigMap (namespace knative-serving), declared here as knative.allowZeroInitialScale: true; Knative's validateInitialScale refuses it otherwise" }}
{{- end }}

{{- /* The function's own rules (function/config.py validate), which would stop every pod at start. */}}
{{- $f := $v.function }}
{{- if gt (int64 $f.maxImagesPerRequest) (int64 $f.queueMaxImages) }}
{{- fail (printf "function.maxImagesPerRequest (%d) is above function.queueMaxImages (%d): such a request could never be queued, and the function refuses to start with it" (int64 $f.maxImagesPerRequest) (int64 $f.queueMaxImages)) }}
{{- end }}

{{- /* Shutdown: Knative's termination grace period is timeoutSeconds (Serving deploy.go), and the
function's SIGTERM comes only after queue-proxy's drain (pkg/queue/sharedmain drainSleepDuration, 30 s). */}}
{{- $grace := float64 $v.timeoutSeconds }}
{{- if lt $grace (addf 30 $f.shutdownTimeoutSeconds) }}
{{- fail (printf "timeoutSeconds (%s) must leave 30 s for queue-proxy's drain, which comes before the function's SIGTERM, plus function.shutdownTimeoutSeconds (%s): Knative's termination grace period is timeoutSeconds" (include "cifar10.number" $v.timeoutSeconds) (include "cifar10.number" $f.shutdownTimeoutSeconds)) }}
{{- end }}
{{- if ge (float64 $f.workerTimeoutSeconds) $grace }}
{{- fail (printf "function.workerTimeoutSeconds (%s) must be below timeoutSeconds (%s): a stuck worker must be replaced within a request's time" (include "cifar10.number" $f.workerTimeoutSeconds) (include "cifar10.number" $v.timeoutSeconds)) }}
{{- end }}

{{- /* GPU sharing: NVIDIA's device plugin (api/config/v1 config.go) refuses an MPS request for more than one
share unless told not to, and shares of one GPU give no more of it. */}}
{{- if and $v.gpu.enabled $v.gpu.mps (gt (int64 $v.gpu.count) 1) }}
{{- fail (printf "gpu.count %d with gpu.mps: under MPS a count is shares of one GPU, not GPUs, and NVIDIA's device plugin refuses more than one (sharing.mps.failRequestsGreaterThanOne defaults to true); use gpu.count 1 and more workers" (int64 $v.gpu.count)) }}
{{- end }}

{{- /* Target: Serving pkg/reconciler/autoscaling/resources/target.go ResolveMetricTarget lowers a concurrency target to containerConcurrency. */}}
{{- $cc := int64 $v.containerConcurrency }}
{{- if and (eq $a.metric "concurrency") (gt $cc 0) (gt (float64 $a.target) (float64 $cc)) }}
{{- fail (printf "autoscaling.target (%s) is above containerConcurrency (%d): with metric concurrency Knative's ResolveMetricTarget silently uses %d; lower the target or raise containerConcurrency" (include "cifar10.number" $a.target) $cc $cc) }}
{{- end }}

{{- /* Concurrency and timeouts: Serving pkg/apis/serving/metadata_validation.go ValidateContainerConcurrency, v1/revision_validation.go validateTimeoutSeconds. */}}
{{- if gt $cc (int64 $k.containerConcurrencyMaxLimit) }}
{{- fail (printf "containerConcurrency (%d) is above knative.containerConcurrencyMaxLimit (%d), the cluster's config-defaults container-concurrency-max-limit: Knative's ValidateContainerConcurrency refuses it" $cc (int64 $k.containerConcurrencyMaxLimit)) }}
{{- end }}
{{- if and (eq $cc 0) (not $k.allowContainerConcurrencyZero) }}
{{- fail "containerConcurrency 0 (unlimited) is refused where config-defaults sets allow-container-concurrency-zero: \"false\" (knative.allowContainerConcurrencyZero: false): Knative's ValidateContainerConcurrency" }}
{{- end }}
{{- if gt (int64 $v.timeoutSeconds) (int64 $k.maxRevisionTimeoutSeconds) }}
{{- fail (printf "timeoutSeconds (%d) is above knative.maxRevisionTimeoutSeconds (%d), the cluster's config-defaults max-revision-timeout-seconds (600 unless raised): Knative's validateTimeoutSeconds refuses it" (int64 $v.timeoutSeconds) (int64 $k.maxRevisionTimeoutSeconds)) }}
{{- end }}
{{- if gt (int64 $v.responseStartTimeoutSeconds) (int64 $v.timeoutSeconds) }}
{{- fail (printf "responseStartTimeoutSeconds (%d) must not exceed timeoutSeconds (%d)" (int64 $v.responseStartTimeoutSeconds) (int64 $v.timeoutSeconds)) }}
{{- end }}

{{- /* Durations: annotation_validation.go validateScaleDownDelay and validateLastPodRetention (at most WindowMax, 1h), revision_validation.go validateProgressDeadlineAnnotation. */}}
{{- $second := 1000000000 }}
{{- $hour := 3600000000000 }}
{{- $delay := int64 (include "cifar10.durationNs" $a.scaleDownDelay) }}
{{- if gt $delay $hour }}
{{- fail (printf "autoscaling.scaleDownDelay %q is above 1h: Knative's validateScaleDownDelay refuses it" $a.scaleDownDelay) }}
{{- end }}
{{- if ne (mod $delay $second) 0 }}
{{- fail (printf "autoscaling.scaleDownDelay %q is not whole seconds: Knative's validateScaleDownDelay refuses it" $a.scaleDownDelay) }}
{{- end }}
{{- if gt (int64 (include "cifar10.durationNs" $a.scaleToZeroPodRetentionPeriod)) $hour }}
{{- fail (printf "autoscaling.scaleToZeroPodRetentionPeriod %q is above 1h: Knative's validateLastPodRetention refuses it" $a.scaleToZeroPodRetentionPeriod) }}
{{- end }}
{{- $deadline := int64 (include "cifar10.durationNs" $v.progressDeadline) }}
{{- if ne (mod $deadline $second) 0 }}
{{- fail (printf "progressDeadline %q is not whole seconds: Knative's validateProgressDeadlineAnnotation refuses it" $v.progressDeadline) }}
{{- end }}
{{- if lt $deadline $second }}
{{- fail (printf "progressDeadline %q must be at least 1s: the Deployment Knative makes from it would have progressDeadlineSeconds 0, which Kubernetes refuses (it must exceed minReadySeconds)" $v.progressDeadline) }}
{{- end }}

{{- /* queue-proxy's CPU: Kubernetes refuses a container whose limit is below its request. */}}
{{- with $v.queueProxy.cpuLimit }}
{{- if lt (float64 (include "cifar10.quantity" .)) (float64 (include "cifar10.quantity" $k.queueSidecarCPURequest)) }}
{{- fail (printf "queueProxy.cpuLimit %v is below queue-proxy's CPU request %v (knative.queueSidecarCPURequest, the cluster's config-deployment queue-sidecar-cpu-request): Kubernetes refuses a container whose limit is below its request" . $k.queueSidecarCPURequest) }}
{{- end }}
{{- end }}

{{- /* Probes: Serving k8s_validation.go validateReadinessProbe. */}}
{{- if and (eq (int64 $v.probes.readiness.periodSeconds) 0) (ne (int64 $v.probes.readiness.failureThreshold) 0) }}
{{- fail "probes.readiness.periodSeconds 0 (Knative's aggressive probing) takes no failureThreshold: set probes.readiness.failureThreshold to 0 too (Knative's validateReadinessProbe: \"failureThreshold is disallowed when periodSeconds is zero\")" }}
{{- end }}

{{- /* Feature flags: Serving pkg/apis/serving/fieldmask.go PodSpecMask, EnvVarSourceMask, CapabilitiesMask. */}}
{{- range (include "cifar10.neededFeatures" . | fromJsonArray) }}
{{- if not (has (index . 1) $k.features) }}
{{- fail (printf "%s needs Knative's %s feature flag: set %s: \"enabled\" in the config-features ConfigMap (namespace knative-serving), then list it in knative.features" (index . 0) (index . 1) (index . 1)) }}
{{- end }}
{{- end }}

{{- /* Security context: Kubernetes refuses allowPrivilegeEscalation false with CAP_SYS_ADMIN. */}}
{{- $sc := $v.securityContext | default dict }}
{{- with $sc.capabilities }}
{{- if and (eq (toString $sc.allowPrivilegeEscalation) "false") (or (has "SYS_ADMIN" (.add | default list)) (has "CAP_SYS_ADMIN" (.add | default list))) }}
{{- fail "securityContext.capabilities.add SYS_ADMIN with allowPrivilegeEscalation false: Kubernetes refuses the pod" }}
{{- end }}
{{- end }}
{{- if and $sc.readOnlyRootFilesystem (not $v.tmpVolume.enabled) }}
{{- fail "securityContext.readOnlyRootFilesystem needs tmpVolume.enabled: spooled uploads and temporary files need a writable directory" }}
{{- end }}

{{- /* Resources: Kubernetes refuses a request above its limit when Knative creates the Deployment. */}}
{{- $requests := $v.resources.requests | default dict }}
{{- $limits := $v.resources.limits | default dict }}
{{- range $resource, $request := $requests }}
{{- if hasKey $limits $resource }}
{{- $limit := get $limits $resource }}
{{- if gt (float64 (include "cifar10.quantity" $request)) (float64 (include "cifar10.quantity" $limit)) }}
{{- fail (printf "resources.requests.%s (%v) is above resources.limits.%s (%v): Kubernetes refuses the pod" $resource $request $resource $limit) }}
{{- end }}
{{- end }}
{{- end }}

{{- /* GPU. */}}
{{- if and (eq $v.function.device "gpu") (not $v.gpu.enabled) }}
{{- fail "function.device is gpu but gpu.enabled is false: the pod would get no GPU; use device auto or cpu, or enable the GPU" }}
{{- end }}
{{- if and $v.gpu.requireSupportedArchitecture (not $v.gpu.enabled) }}
{{- fail "gpu.requireSupportedArchitecture needs gpu.enabled: without a GPU there is no GPU architecture to select nodes by" }}
{{- end }}

{{- /* Environment: Serving k8s_validation.go validateEnvVar (reserved names); the chart's own names. */}}
{{- $owned := dict "GPU_MPS" "gpu.mps" "REPLY_SOURCE" "function.replySource" }}
{{- range $key, $_ := $v.function }}{{ $_ := set $owned (include "cifar10.envName" $key) (printf "function.%s" $key) }}{{ end }}
{{- if $v.tmpVolume.enabled }}{{ $_ := set $owned "TMPDIR" "tmpVolume.enabled (it points TMPDIR at the emptyDir)" }}{{ end }}
{{- range $v.extraEnv }}
{{- if or (eq .name "PORT") (hasPrefix "K_" .name) }}
{{- fail (printf "extraEnv may not set %s: Knative reserves PORT and the K_ variables" .name) }}
{{- end }}
{{- if hasKey $owned .name }}
{{- fail (printf "extraEnv may not set %s: the chart sets it from %s; set that value instead" .name (get $owned .name)) }}
{{- end }}
{{- end }}

{{- /* Trigger: eventing pkg/apis/eventing/v1/trigger_validation.go, pkg/apis/duck/v1/delivery_types.go, knative/pkg apis/duck/v1/destination.go. */}}
{{- if $v.trigger.enabled }}
{{- $attributes := $v.trigger.filter.attributes | default dict }}
{{- if and $attributes $v.trigger.filters }}
{{- fail "trigger.filter.attributes and trigger.filters are both set: Knative applies only filters and ignores the attributes (filterEvent in eventing's broker filter handler); set trigger.filter.attributes to null" }}
{{- end }}
{{- if not (or $attributes $v.trigger.filters) }}
{{- fail "trigger.filter.attributes and trigger.filters are empty: the Trigger would take every event, the function's own replies included (an event loop); filter at least on type" }}
{{- end }}
{{- if $v.function.cloudeventReply }}
{{- $match := include "cifar10.triggerMatchesReplies" . }}
{{- if ne $match "never" }}
{{- $filter := ternary (toJson $v.trigger.filters) (toJson $attributes) (not (empty $v.trigger.filters)) }}
{{- fail (printf "the Trigger's filter %s %s match the function's own reply events (type %s, source %s; their id, time, subject, requestid and requestsource vary with the request): an endless event loop; filter on something replies never carry, e.g. type %s" $filter (ternary "would" "could" (eq $match "always")) $v.function.replyType (include "cifar10.replySource" .) "dev.cifar10.classify.request") }}
{{- end }}
{{- end }}
{{- if and ($v.trigger.delivery | default dict).retryAfterMax (not (has "delivery-retryafter" $k.eventingFeatures)) }}
{{- fail "trigger.delivery.retryAfterMax needs Eventing's delivery-retryafter flag (config-features in namespace knative-eventing), declared here as knative.eventingFeatures: [delivery-retryafter]; Eventing's DeliverySpec.Validate refuses the field otherwise" }}
{{- end }}
{{- with ($v.trigger.delivery | default dict).deadLetterSink }}
{{- if .uri }}
{{- $uri := urlParse .uri }}
{{- if and .ref $uri.scheme }}
{{- fail (printf "trigger.delivery.deadLetterSink.uri %q is absolute while a ref is set: with a ref the uri is a relative path (knative/pkg ValidateDestination)" .uri) }}
{{- end }}
{{- if and (not .ref) (or (not $uri.scheme) (not $uri.host)) }}
{{- fail (printf "trigger.delivery.deadLetterSink.uri %q must be an absolute URL with a host when no ref is set (knative/pkg ValidateDestination)" .uri) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
