{{/* Chart name, truncated to the 63 characters Kubernetes allows. */}}
{{- define "sidecar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "sidecar.fullname" -}}
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

{{- define "sidecar.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's labels, without a component: each workload adds its own. */}}
{{- define "sidecar.commonLabels" -}}
helm.sh/chart: {{ include "sidecar.chart" . }}
{{ include "sidecar.releaseSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels of every pod of the release; select with a component too, or Hasura's pods match. */}}
{{- define "sidecar.releaseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The sidecar's own resources. */}}
{{- define "sidecar.labels" -}}
{{ include "sidecar.commonLabels" . }}
app.kubernetes.io/component: sidecar
{{- end }}

{{/* The sidecar's pods only (Service, Deployment, PDB, anti-affinity, ServiceMonitor): never Hasura's. */}}
{{- define "sidecar.selectorLabels" -}}
{{ include "sidecar.releaseSelectorLabels" . }}
app.kubernetes.io/component: sidecar
{{- end }}

{{- define "sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sidecar.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The in-cluster base URL of the sidecar's Service. */}}
{{- define "sidecar.url" -}}
{{- printf "http://%s.%s.svc:%d" (include "sidecar.fullname" .) .Release.Namespace (int .Values.service.port) }}
{{- end }}

{{/* SIDECAR_PUBLIC_URL: publicUrl, else the in-cluster URL (never the bind address 0.0.0.0). */}}
{{- define "sidecar.publicUrl" -}}
{{- .Values.publicUrl | default (include "sidecar.url" .) | trimSuffix "/" }}
{{- end }}

{{/* An env entry from an existing Secret, when its name is set: (list "VAR" .Values.secrets.x) */}}
{{- define "sidecar.secretEnv" -}}
{{- $var := index . 0 }}
{{- $ref := index . 1 }}
{{- if $ref.name }}
- name: {{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.name }}
      key: {{ $ref.key }}
{{- end }}
{{- end }}

{{/* More than one pod may run at once. */}}
{{- define "sidecar.multiReplica" -}}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}
