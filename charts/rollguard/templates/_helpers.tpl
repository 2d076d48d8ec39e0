{{/* The chart name, overridable. */}}
{{- define "rollguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's objects: the release name, plus "-rollguard" unless the
release name already contains it. With the usual release name "rollguard" this is simply
"rollguard".
*/}}
{{- define "rollguard.fullname" -}}
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

{{- define "rollguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "rollguard.labels" -}}
helm.sh/chart: {{ include "rollguard.chart" . }}
{{ include "rollguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: rollguard
{{- end }}

{{/* Labels that select the operator pods (immutable once installed). */}}
{{- define "rollguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rollguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "rollguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rollguard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator's user name as the API server authenticates it. */}}
{{- define "rollguard.username" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "rollguard.serviceAccountName" .) }}
{{- end }}

{{/* The operator image reference. */}}
{{- define "rollguard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The namespaces the operator watches, as a JSON list: watchNamespaces plus watchNamespace,
without repeats; empty means every namespace.
*/}}
{{- define "rollguard.watchNamespaces" -}}
{{- $ns := .Values.watchNamespaces | default list -}}
{{- if .Values.watchNamespace -}}
{{- $ns = append $ns .Values.watchNamespace -}}
{{- end -}}
{{- $ns | uniq | toJson -}}
{{- end }}

{{/*
A namespaceSelector for the admission policies' bindings: the watched namespaces, when the
operator watches a list.
*/}}
{{- define "rollguard.namespaceSelector" -}}
{{- $ns := include "rollguard.watchNamespaces" . | fromJsonArray -}}
{{- if $ns -}}
matchResources:
  namespaceSelector:
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: In
        values: {{ toJson $ns }}
{{- end -}}
{{- end }}
