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

{{/* The store type read from the config itself, so the two cannot disagree. */}}
{{- define "sendguard.storeType" -}}
{{- $cfg := fromYaml (.Values.config | default "{}") -}}
{{- $store := get $cfg "store" | default dict -}}
{{- get $store "type" | default "embedded" -}}
{{- end -}}

{{- define "sendguard.standalone" -}}
{{- if or (eq .Values.mode "standalone") (eq .Values.mode "istio") -}}true{{- end -}}
{{- end -}}
