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

{{/* Image reference: the digest wins over the tag; the tag defaults to appVersion, with the CPU
variant's "-cpu" suffix when no GPU is requested (the GPU image cannot import mxnet-cu112 without a
driver). */}}
{{- define "cifar10.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else if .Values.image.tag }}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- else if .Values.gpu.enabled }}
{{- printf "%s:%s" .Values.image.repository .Chart.AppVersion }}
{{- else }}
{{- printf "%s:%s-cpu" .Values.image.repository .Chart.AppVersion }}
{{- end }}
{{- end }}

{{- define "cifar10.replySource" -}}
{{- default (printf "/knative/%s" (include "cifar10.fullname" .)) .Values.function.replySource }}
{{- end }}

{{/* The Trigger's name carries the broker's, because Knative refuses a changed spec.broker
(CheckImmutableFields in eventing's trigger_validation.go): a new broker means a new Trigger. */}}
{{- define "cifar10.triggerName" -}}
{{- $name := printf "%s-%s" (include "cifar10.fullname" .) .Values.trigger.broker }}
{{- if gt (len $name) 63 }}
{{- $name = printf "%s-%s" (include "cifar10.fullname" . | trunc 54 | trimSuffix "-") (sha256sum .Values.trigger.broker | trunc 8) }}
{{- end }}
{{- $name }}
{{- end }}

{{/* A number as Knative and the function parse it: values files give every number as a float,
and a float of 1,000,000 or more would print as 1e+06, which integer parsers refuse. */}}
{{- define "cifar10.number" -}}
{{- $f := float64 . }}
{{- if eq $f (floor $f) }}{{ int64 . }}{{ else }}{{ $f }}{{ end }}
{{- end }}

{{/* A Go duration (time.ParseDuration, as Knative reads its duration annotations) in nanoseconds,
the fraction of each component computed as Go computes it. */}}
{{- define "cifar10.durationNs" -}}
{{- $units := dict "ns" 1 "us" 1000 "µs" 1000 "ms" 1000000 "s" 1000000000 "m" 60000000000 "h" 3600000000000 }}
{{- $total := 0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" (toString .) -1 }}
{{- $unitName := regexFind "(ns|us|µs|ms|s|m|h)$" . }}
{{- $unit := get $units $unitName }}
{{- $number := trimSuffix $unitName . }}
{{- $parts := splitList "." $number }}
{{- $total = add $total (mul (int64 (first $parts)) $unit) }}
{{- if gt (len $parts) 1 }}
{{- $fraction := last $parts }}
{{- $scale := float64 (printf "1%s" (repeat (len $fraction) "0")) }}
{{- $total = add $total (int64 (mulf (float64 $fraction) (divf $unit $scale))) }}
{{- end }}
{{- end }}
{{- $total }}
{{- end }}

{{/* A Kubernetes quantity ("500m", "4Gi", 2, "1e3") as a float, to compare requests with limits. */}}
{{- define "cifar10.quantity" -}}
{{- $q := include "cifar10.number.or.string" . }}
{{- $number := regexFind "^[+-]?([0-9]+(\\.[0-9]*)?|\\.[0-9]+)" $q }}
{{- $suffix := trimPrefix $number $q }}
{{- $multipliers := dict "" 1 "n" 1e-9 "u" 1e-6 "m" 1e-3 "k" 1e3 "M" 1e6 "G" 1e9 "T" 1e12 "P" 1e15 "E" 1e18 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "Pi" 1125899906842624 "Ei" 1152921504606846976 }}
{{- if hasKey $multipliers $suffix }}
{{- mulf (float64 $number) (get $multipliers $suffix) }}
{{- else }}
{{- mulf (float64 $number) (float64 (printf "1%s" (lower $suffix))) }}
{{- end }}
{{- end }}

{{- define "cifar10.number.or.string" -}}
{{- if kindIs "string" . }}{{ . }}{{ else }}{{ include "cifar10.number" . }}{{ end }}
{{- end }}

{{/*
The Trigger loop guard: could the function's own reply event pass this filter? Each filter yields
"always", "never" or "maybe" (three-valued logic). A reply has type REPLY_TYPE, source
REPLY_SOURCE, specversion 1.0 and datacontenttype application/json; its id, time and subject, the
extensions requestid and requestsource, and what the Broker adds (knativearrivaltime, traceparent,
tracestate) depend on the request, so a filter on them alone may match; any other extension is
absent, which fails a filter on it. Attribute lookup follows eventing's
pkg/eventfilter/attributes/filter.go LookupAttribute (core attributes are always present).
*/}}
{{- define "cifar10.replyAttributes" -}}
{{- toJson (dict
  "known" (dict "specversion" "1.0" "type" .Values.function.replyType "source" (include "cifar10.replySource" .) "datacontenttype" "application/json" "datamediatype" "application/json" "dataschema" "" "schemaurl" "" "datacontentencoding" "")
  "unknown" (list "id" "time" "subject" "requestid" "requestsource" "knativearrivaltime" "traceparent" "tracestate")) }}
{{- end }}

{{- define "cifar10.attributeMatch" -}}
{{- $known := .reply.known }}
{{- if hasKey $known .attribute }}
{{- $actual := get $known .attribute }}
{{- $pass := or (and (eq .op "exact") (eq $actual .value)) (and (eq .op "prefix") (hasPrefix .value $actual)) (and (eq .op "suffix") (hasSuffix .value $actual)) }}
{{- ternary "always" "never" $pass }}
{{- else if has .attribute .reply.unknown }}maybe
{{- else }}never
{{- end }}
{{- end }}

{{- define "cifar10.all3" -}}
{{- if has "never" . }}never{{ else if has "maybe" . }}maybe{{ else }}always{{ end }}
{{- end }}

{{- define "cifar10.any3" -}}
{{- if has "always" . }}always{{ else if has "maybe" . }}maybe{{ else }}never{{ end }}
{{- end }}

{{/* One SubscriptionsAPIFilter (eventing's pkg/eventfilter/subscriptionsapi): exact, prefix,
suffix (every attribute must pass), all, any, not. */}}
{{- define "cifar10.filterMatch" -}}
{{- $reply := .reply }}
{{- $filter := .filter }}
{{- $results := list }}
{{- range $op := list "exact" "prefix" "suffix" }}
{{- range $attribute, $value := (get $filter $op | default dict) }}
{{- $results = append $results (include "cifar10.attributeMatch" (dict "op" $op "attribute" $attribute "value" (toString $value) "reply" $reply)) }}
{{- end }}
{{- end }}
{{- with $filter.all }}
{{- $all := list }}
{{- range . }}{{ $all = append $all (include "cifar10.filterMatch" (dict "filter" . "reply" $reply)) }}{{ end }}
{{- $results = append $results (include "cifar10.all3" $all) }}
{{- end }}
{{- with $filter.any }}
{{- $any := list }}
{{- range . }}{{ $any = append $any (include "cifar10.filterMatch" (dict "filter" . "reply" $reply)) }}{{ end }}
{{- $results = append $results (include "cifar10.any3" $any) }}
{{- end }}
{{- with $filter.not }}
{{- $inner := include "cifar10.filterMatch" (dict "filter" . "reply" $reply) }}
{{- $results = append $results (get (dict "always" "never" "never" "always" "maybe" "maybe") $inner) }}
{{- end }}
{{- include "cifar10.all3" $results }}
{{- end }}

{{/* Does the Trigger as rendered pass the function's replies? filters win over filter.attributes,
as in eventing's broker filter handler (filterEvent). */}}
{{- define "cifar10.triggerMatchesReplies" -}}
{{- $reply := include "cifar10.replyAttributes" . | fromJson }}
{{- if .Values.trigger.filters }}
{{- include "cifar10.filterMatch" (dict "filter" (dict "all" .Values.trigger.filters) "reply" $reply) }}
{{- else }}
{{- include "cifar10.filterMatch" (dict "filter" (dict "exact" (.Values.trigger.filter.attributes | default dict)) "reply" $reply) }}
{{- end }}
{{- end }}

{{/* The pods' affinity: `affinity`, with gpu.requireSupportedArchitecture's node-label rule added
to every required node selector term (terms are ORed, the expressions in a term ANDed). */}}
{{- define "cifar10.affinity" -}}
{{- $affinity := deepCopy (.Values.affinity | default dict) }}
{{- if .Values.gpu.requireSupportedArchitecture }}
{{- $majors := list }}
{{- range .Values.gpu.supportedComputeMajors }}{{ $majors = append $majors (include "cifar10.number" .) }}{{ end }}
{{- $expression := dict "key" "nvidia.com/gpu.compute.major" "operator" "In" "values" $majors }}
{{- $nodeAffinity := get $affinity "nodeAffinity" | default dict }}
{{- $required := get $nodeAffinity "requiredDuringSchedulingIgnoredDuringExecution" | default dict }}
{{- $terms := list }}
{{- range (get $required "nodeSelectorTerms" | default (list dict)) }}
{{- $term := deepCopy . }}
{{- $_ := set $term "matchExpressions" (append (get $term "matchExpressions" | default list) $expression) }}
{{- $terms = append $terms $term }}
{{- end }}
{{- $_ := set $required "nodeSelectorTerms" $terms }}
{{- $_ = set $nodeAffinity "requiredDuringSchedulingIgnoredDuringExecution" $required }}
{{- $_ = set $affinity "nodeAffinity" $nodeAffinity }}
{{- end }}
{{- if $affinity }}{{ toYaml $affinity }}{{ end }}
{{- end }}

{{/* The Knative feature flags these values need, from Serving's pkg/apis/config/features.go and the
field masks of pkg/apis/serving/fieldmask.go. */}}
{{- define "cifar10.neededFeatures" -}}
{{- $flags := list }}
{{- if .Values.nodeSelector }}{{ $flags = append $flags (list "nodeSelector" "kubernetes.podspec-nodeselector") }}{{ end }}
{{- if .Values.tolerations }}{{ $flags = append $flags (list "tolerations" "kubernetes.podspec-tolerations") }}{{ end }}
{{- if .Values.affinity }}{{ $flags = append $flags (list "affinity" "kubernetes.podspec-affinity") }}{{ end }}
{{- if .Values.gpu.requireSupportedArchitecture }}{{ $flags = append $flags (list "gpu.requireSupportedArchitecture (a node affinity)" "kubernetes.podspec-affinity") }}{{ end }}
{{- if .Values.runtimeClassName }}{{ $flags = append $flags (list "runtimeClassName" "kubernetes.podspec-runtimeclassname") }}{{ end }}
{{- if .Values.priorityClassName }}{{ $flags = append $flags (list "priorityClassName" "kubernetes.podspec-priorityclassname") }}{{ end }}
{{- range .Values.extraEnv }}
{{- if and .valueFrom (or .valueFrom.fieldRef .valueFrom.resourceFieldRef) }}{{ $flags = append $flags (list (printf "extraEnv %s's valueFrom.fieldRef/resourceFieldRef" .name) "kubernetes.podspec-fieldref") }}{{ end }}
{{- end }}
{{- with .Values.securityContext.capabilities }}
{{- if .add }}{{ $flags = append $flags (list "securityContext.capabilities.add" "kubernetes.containerspec-addcapabilities") }}{{ end }}
{{- end }}
{{- toJson $flags }}
{{- end }}

{{/* The environment variable a `function.*` value sets: its name in upper snake case (function/config.py's
field, upper-cased), except ompThreads, which is MXNet's OMP_NUM_THREADS. tests/test_settings_sources.py checks
that every such name is a setting of the function. */}}
{{- define "cifar10.envName" -}}
{{- if eq . "ompThreads" }}OMP_NUM_THREADS{{ else }}{{ . | snakecase | upper }}{{ end }}
{{- end }}

{{/* A value as an environment string: whole numbers without an exponent (1000000, not 1e+06). */}}
{{- define "cifar10.envValue" -}}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) }}{{ include "cifar10.number" . }}{{ else }}{{ . }}{{ end }}
{{- end }}
