{{/* The release's full name, at most 52 characters (room for suffixes). */}}
{{- define "holdfast.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "holdfast.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "holdfast.labels" -}}
{{ include "holdfast.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: holdfast
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "holdfast.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "holdfast.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "holdfast.fullname" .) -}}
{{- end -}}

{{- define "holdfast.jobServiceAccountName" -}}
{{- .Values.jobServiceAccount.name | default (printf "%s-job" (include "holdfast.fullname" .)) -}}
{{- end -}}

{{/* The controller's rules: files/clusterrole-rules.yaml, plus Secret lookups if allowed. */}}
{{- define "holdfast.rules" -}}
{{ .Files.Get "files/clusterrole-rules.yaml" }}
{{- if .Values.rbac.secretLookups }}
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}
{{- end -}}

{{/* What hooks need: commands in pods. The API server authorizes an exec over a websocket
as `get` or `create` depending on its version and feature gates: both are granted. */}}
{{- define "holdfast.hookRules" -}}
- apiGroups: [""]
  resources: [pods/exec]
  verbs: [get, create]
{{- end -}}

{{/* A duration such as 90s, 15m, 1h or 2d in seconds. */}}
{{- define "holdfast.seconds" -}}
{{- $d := toString . -}}
{{- $n := trimSuffix "s" (trimSuffix "m" (trimSuffix "h" (trimSuffix "d" $d))) | int -}}
{{- if hasSuffix "d" $d -}}{{ mul $n 86400 }}
{{- else if hasSuffix "h" $d -}}{{ mul $n 3600 }}
{{- else if hasSuffix "m" $d -}}{{ mul $n 60 }}
{{- else -}}{{ $n }}
{{- end -}}
{{- end -}}

{{/* What every job pod carries (the controller's --job-pod-defaults): the non-empty
values of `jobs`, with the chart's imagePullSecrets, as JSON. */}}
{{- define "holdfast.jobPodDefaults" -}}
{{- $j := dict -}}
{{- range $k, $v := .Values.jobs -}}
{{- if and $v (ne $k "imagePullSecrets") -}}{{- $_ := set $j $k $v -}}{{- end -}}
{{- end -}}
{{- $secrets := concat .Values.imagePullSecrets .Values.jobs.imagePullSecrets -}}
{{- if $secrets -}}{{- $_ := set $j "imagePullSecrets" $secrets -}}{{- end -}}
{{- toJson $j -}}
{{- end -}}
