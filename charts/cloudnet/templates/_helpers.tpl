{{/* Chart name, truncated to the 63-character DNS label limit. */}}
{{- define "cloudnet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name; the release name alone when it already contains the chart name. */}}
{{- define "cloudnet.fullname" -}}
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

{{- define "cloudnet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object of the operator; the selector labels are the stable subset. */}}
{{- define "cloudnet.labels" -}}
{{ include "cloudnet.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{/* Labels without a component, for objects of other components (the site gateways). */}}
{{- define "cloudnet.commonLabels" -}}
helm.sh/chart: {{ include "cloudnet.chart" . }}
app.kubernetes.io/name: {{ include "cloudnet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cloudnet
{{- end }}

{{- define "cloudnet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cloudnet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "cloudnet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cloudnet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cloudnet.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The identities of peer sites' operators in this cluster (rbac.peer), as RBAC subjects. */}}
{{- define "cloudnet.peerSubjects" -}}
{{- if .Values.rbac.peer.enabled -}}
- kind: ServiceAccount
  name: {{ include "cloudnet.fullname" . }}-peer
  namespace: {{ .Release.Namespace }}
{{- with .Values.rbac.peer.extraSubjects }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end }}
