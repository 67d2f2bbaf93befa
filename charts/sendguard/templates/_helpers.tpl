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

{{/* How the chart wires Redis: bundled, addr, cluster (redis.addrs) or
     sentinel; empty when it wires none. Fails when more than one is set,
     and on TLS or waitReplicas with nothing to apply them to. */}}
{{- define "sendguard.redisMode" -}}
{{- $r := .Values.redis -}}
{{- $sentinel := or $r.sentinel.masterName $r.sentinel.addrs -}}
{{- $modes := list -}}
{{- if $r.bundled }}{{ $modes = append $modes "bundled" }}{{ end -}}
{{- if $r.addr }}{{ $modes = append $modes "addr" }}{{ end -}}
{{- if $r.addrs }}{{ $modes = append $modes "cluster" }}{{ end -}}
{{- if $sentinel }}{{ $modes = append $modes "sentinel" }}{{ end -}}
{{- if gt (len $modes) 1 -}}
{{- fail (printf "redis: %s: choose one (redis.bundled, redis.addr, redis.addrs for a Redis Cluster, or redis.sentinel)" (join " and " $modes)) -}}
{{- end -}}
{{- if and $sentinel (not (and $r.sentinel.masterName $r.sentinel.addrs)) -}}
{{- fail "redis.sentinel needs both masterName and addrs" -}}
{{- end -}}
{{- if and (or $r.tls.enabled $r.tls.caSecret $r.tls.serverName) (or $r.bundled (not $modes)) -}}
{{- fail "redis.tls is for an external Redis (redis.addr, redis.addrs or redis.sentinel); the bundled one has no TLS" -}}
{{- end -}}
{{- if and (gt (int $r.waitReplicas) 0) (or $r.bundled (not $modes)) -}}
{{- fail "redis.waitReplicas needs a Redis with replicas (redis.addr, redis.addrs or redis.sentinel); the bundled one has none" -}}
{{- end -}}
{{- first $modes | default "" -}}
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
{{- $mode := include "sendguard.redisMode" . -}}
{{- $r := .Values.redis -}}
{{- if $mode -}}
{{- $cfg := fromYaml (.Values.config | default "{}") -}}
{{- if hasKey $cfg "Error" -}}
{{- fail (printf "config is not YAML: %s" (get $cfg "Error")) -}}
{{- end -}}
{{- if hasKey $cfg "store" -}}
{{- fail "config sets store, and redis.bundled, redis.addr, redis.addrs or redis.sentinel makes the chart write it: leave store out of config, or leave those unset" -}}
{{- end -}}
{{ .Values.config | trimSuffix "\n" }}
# Written by the chart (redis.{{ get (dict "bundled" "bundled" "addr" "addr" "cluster" "addrs" "sentinel" "sentinel") $mode }}).
store:
  type: redis
  redis:
    {{- if eq $mode "cluster" }}
    addrs: {{ toJson $r.addrs }}
    {{- else if eq $mode "sentinel" }}
    sentinel:
      master_name: {{ $r.sentinel.masterName | quote }}
      addrs: {{ toJson $r.sentinel.addrs }}
      {{- if $r.sentinel.passwordSecret }}
      password_env: SENDGUARD_REDIS_SENTINEL_PASSWORD
      {{- end }}
    {{- else }}
    addr: {{ $addr | quote }}
    {{- end }}
    {{- if or $r.tls.enabled $r.tls.caSecret $r.tls.serverName }}
    tls:
      enabled: true
      {{- if $r.tls.caSecret }}
      ca_file: /etc/sendguard-redis-ca/ca.crt
      {{- end }}
      {{- with $r.tls.serverName }}
      server_name: {{ . | quote }}
      {{- end }}
    {{- end }}
    {{- if gt (int $r.waitReplicas) 0 }}
    wait_replicas: {{ int $r.waitReplicas }}
    {{- end }}
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
