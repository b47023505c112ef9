{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "cifar10.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the Knative Service's name, hence its hostname and K_SERVICE. */}}
{{- define "cifar10.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "cifar10.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Stable labels: safe on the revision template, where a changing label would cut a new revision. */}}
{{- define "cifar10.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cifar10.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Recommended labels for top-level objects, with the chart and app versions. */}}
{{- define "cifar10.labels" -}}
helm.sh/chart: {{ include "cifar10.chart" . }}
{{ include "cifar10.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: inference
app.kubernetes.io/part-of: cifar10-function
{{- end }}

{{/* Image reference: the digest wins over the tag; the tag defaults to appVersion. */}}
{{- define "cifar10.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "cifar10.replySource" -}}
{{- default (printf "/knative/%s" (include "cifar10.fullname" .)) .Values.function.replySource }}
{{- end }}

{{/* Combinations the schema cannot express fail here with a readable message. */}}
{{- define "cifar10.validate" -}}
{{- $a := .Values.autoscaling }}
{{- if and (gt (int $a.maxScale) 0) (gt (int $a.minScale) (int $a.maxScale)) }}
{{- fail (printf "autoscaling.minScale (%d) is above autoscaling.maxScale (%d): Knative would never reach a valid scale" (int $a.minScale) (int $a.maxScale)) }}
{{- end }}
{{- if and (gt (int $a.maxScale) 0) (gt (int $a.initialScale) (int $a.maxScale)) }}
{{- fail (printf "autoscaling.initialScale (%d) is above autoscaling.maxScale (%d)" (int $a.initialScale) (int $a.maxScale)) }}
{{- end }}
{{- if gt (int .Values.responseStartTimeoutSeconds) (int .Values.timeoutSeconds) }}
{{- fail (printf "responseStartTimeoutSeconds (%d) must not exceed timeoutSeconds (%d)" (int .Values.responseStartTimeoutSeconds) (int .Values.timeoutSeconds)) }}
{{- end }}
{{- if and .Values.securityContext.readOnlyRootFilesystem (not .Values.tmpVolume.enabled) }}
{{- fail "securityContext.readOnlyRootFilesystem needs tmpVolume.enabled: the workers' metrics directory and spooled uploads need a writable directory" }}
{{- end }}
{{- if and (eq .Values.function.device "gpu") (not .Values.gpu.enabled) }}
{{- fail "function.device is gpu but gpu.enabled is false: the pod would get no GPU; use device auto or cpu, or enable the GPU" }}
{{- end }}
{{- $owned := dict "MODEL_PARAMS" "modelParams" "DEVICE" "device" "LOAD_MODE" "loadMode" "LOAD_TIMEOUT_SECONDS" "loadTimeoutSeconds" "FLIP_AVERAGE" "flipAverage" "TOP_K" "topK" "MAX_BODY_BYTES" "maxBodyBytes" "MAX_IMAGE_PIXELS" "maxImagePixels" "MAX_IMAGES_PER_REQUEST" "maxImagesPerRequest" "BATCH_MAX_SIZE" "batchMaxSize" "BATCH_MAX_DELAY_MS" "batchMaxDelayMs" "QUEUE_MAX_IMAGES" "queueMaxImages" "CLOUDEVENT_REPLY" "cloudeventReply" "REPLY_TYPE" "replyType" "REPLY_SOURCE" "replySource" "WORKERS" "workers" "THREADS" "threads" "LOG_LEVEL" "logLevel" }}
{{- if .Values.function.ompThreads }}
{{- $_ := set $owned "OMP_NUM_THREADS" "ompThreads" }}
{{- end }}
{{- range .Values.extraEnv }}
{{- if or (eq .name "PORT") (hasPrefix "K_" .name) }}
{{- fail (printf "extraEnv may not set %s: Knative reserves PORT and the K_ variables" .name) }}
{{- end }}
{{- if hasKey $owned .name }}
{{- fail (printf "extraEnv may not set %s: the chart sets it from function.%s; set that value instead" .name (get $owned .name)) }}
{{- end }}
{{- if and $.Values.tmpVolume.enabled (has .name (list "TMPDIR" "PROMETHEUS_MULTIPROC_DIR")) }}
{{- fail (printf "extraEnv may not set %s: tmpVolume.enabled points it at the emptyDir" .name) }}
{{- end }}
{{- end }}
{{- if .Values.trigger.enabled }}
{{- $attrs := .Values.trigger.filter.attributes | default dict }}
{{- if not $attrs }}
{{- fail "trigger.filter.attributes is empty: the Trigger would take every event, the function's own replies included (an event loop); filter at least on type" }}
{{- end }}
{{- $reply := dict "type" .Values.function.replyType "source" (include "cifar10.replySource" .) "specversion" "1.0" "datacontenttype" "application/json" }}
{{- $matchesReply := true }}
{{- range $key, $value := $attrs }}
{{- if ne (toString (get $reply $key)) (toString $value) }}
{{- $matchesReply = false }}
{{- end }}
{{- end }}
{{- if $matchesReply }}
{{- fail (printf "trigger.filter.attributes %v would match the function's own reply events (type %s): an endless event loop; filter on the request type instead" $attrs .Values.function.replyType) }}
{{- end }}
{{- end }}
{{- end }}
