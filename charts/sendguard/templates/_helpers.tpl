{{- define "sendguard.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sendguard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "sendguard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "sendguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* selectorLabels takes (dict "ctx" $ "component" "injector") */}}
{{- define "sendguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sendguard.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "sendguard.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "sendguard.envoyImage" -}}
{{ .Values.envoyImage.repository }}:{{ .Values.envoyImage.tag }}
{{- end -}}

{{- define "sendguard.injectorService" -}}
{{ include "sendguard.fullname" . }}-injector
{{- end -}}

{{- define "sendguard.redisName" -}}
{{ include "sendguard.fullname" . }}-redis
{{- end -}}

{{/* The Redis address the chart wires (the bundled Redis's Service, or
     redis.addr); empty when it wires none. */}}
{{- define "sendguard.redisAddr" -}}
{{- if and .Values.redis.bundled .Values.redis.addr -}}
{{- fail "redis.bundled and redis.addr: choose one (the bundled Redis, or an external address)" -}}
{{- end -}}
{{- if .Values.redis.bundled -}}
{{ include "sendguard.redisName" . }}.{{ .Release.Namespace }}.svc:6379
{{- else -}}
{{ .Values.redis.addr }}
{{- end -}}
{{- end -}}

{{/* The Secret holding the Redis password (key redis-password): the named
     one, or the one generated for the bundled Redis; empty: none. */}}
{{- define "sendguard.redisSecret" -}}
{{- if .Values.redis.passwordSecret -}}
{{ .Values.redis.passwordSecret }}
{{- else if .Values.redis.bundled -}}
{{ include "sendguard.redisName" . }}
{{- end -}}
{{- end -}}

{{/* sendguard.yaml as standalone/istio run it: the config value, with the
     store section appended when the chart wires Redis. Appended as text, so
     the config's own formatting and numbers stay exactly as written. */}}
{{- define "sendguard.config" -}}
{{- $addr := include "sendguard.redisAddr" . -}}
{{- if $addr -}}
{{- $cfg := fromYaml (.Values.config | default "{}") -}}
{{- if hasKey $cfg "Error" -}}
{{- fail (printf "config is not YAML: %s" (get $cfg "Error")) -}}
{{- end -}}
{{- if hasKey $cfg "store" -}}
{{- fail "config sets store, and redis.bundled or redis.addr makes the chart write it: leave store out of config, or leave redis.bundled and redis.addr unset" -}}
{{- end -}}
{{ .Values.config | trimSuffix "\n" }}
# Written by the chart (redis.{{ if .Values.redis.bundled }}bundled{{ else }}addr{{ end }}).
store:
  type: redis
  redis:
    addr: {{ $addr | quote }}
{{- else -}}
{{ .Values.config }}
{{- end -}}
{{- end -}}

{{/* The store type of the rendered config, so the two cannot disagree. */}}
{{- define "sendguard.storeType" -}}
{{- $cfg := fromYaml (include "sendguard.config" . | default "{}") -}}
{{- $store := get $cfg "store" | default dict -}}
{{- get $store "type" | default "embedded" -}}
{{- end -}}

{{- define "sendguard.standalone" -}}
{{- if or (eq .Values.mode "standalone") (eq .Values.mode "istio") -}}true{{- end -}}
{{- end -}}

{{/* The injector webhooks' namespaceSelector: the values', never
     kube-system or the release namespace. */}}
{{- define "sendguard.injectorNamespaceSelector" -}}
namespaceSelector:
  {{- with .Values.injector.namespaceSelector.matchLabels }}
  matchLabels:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: [kube-system, {{ .Release.Namespace }}]
  {{- with .Values.injector.namespaceSelector.matchExpressions }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}
