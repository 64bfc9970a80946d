{{/* Names, labels and small computed values shared by the templates. */}}

{{- define "gantry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-gantry, or the release name alone when it already says gantry. */}}
{{- define "gantry.fullname" -}}
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

{{- define "gantry.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gantry.labels" -}}
helm.sh/chart: {{ include "gantry.chart" . }}
app.kubernetes.io/name: {{ include "gantry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gantry
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "gantry.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gantry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gantry.controller.name" -}}
{{- printf "%s-controller" (include "gantry.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gantry.agent.name" -}}
{{- printf "%s-agent" (include "gantry.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Gantry's aggregated API server (subresources.gantry.dev): its Deployment, Service and ServiceAccount. */}}
{{- define "gantry.subresources.name" -}}
{{- printf "%s-subresources" (include "gantry.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gantry.controller.selectorLabels" -}}
{{ include "gantry.selectorLabels" . }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "gantry.agent.selectorLabels" -}}
{{ include "gantry.selectorLabels" . }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "gantry.subresources.selectorLabels" -}}
{{ include "gantry.selectorLabels" . }}
app.kubernetes.io/component: subresources
{{- end }}

{{- define "gantry.controller.serviceAccountName" -}}
{{- default (include "gantry.controller.name" .) .Values.controller.serviceAccount.name }}
{{- end }}

{{- define "gantry.agent.serviceAccountName" -}}
{{- default (include "gantry.agent.name" .) .Values.agent.serviceAccount.name }}
{{- end }}

{{- define "gantry.subresources.serviceAccountName" -}}
{{- default (include "gantry.subresources.name" .) .Values.subresources.serviceAccount.name }}
{{- end }}

{{/*
The APIService of the aggregated API: one per cluster, named as Kubernetes names them
(<version>.<group>), whatever the release.
*/}}
{{- define "gantry.subresources.apiService" -}}
v1alpha1.subresources.gantry.dev
{{- end }}

{{/* The Secret (release namespace) where the aggregated API server keeps its CA and certificates. */}}
{{- define "gantry.subresources.pkiSecret" -}}
{{- printf "%s-pki" (include "gantry.subresources.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The agents' TLS identity for their stream endpoint (agents' namespace), issued by that server. */}}
{{- define "gantry.agent.tlsSecret" -}}
{{- printf "%s-tls" (include "gantry.agent.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The agents' namespace: agent.namespace.name, or <release namespace>-agent. */}}
{{- define "gantry.agent.namespace" -}}
{{- default (printf "%s-agent" .Release.Namespace) .Values.agent.namespace.name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* repository:tag, or repository@digest when a digest is given. */}}
{{- define "gantry.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The heartbeat Lease of an agent is gantry-host-<node> (src/agent/host.ts, hostLeaseName). */}}
{{- define "gantry.hostLeasePrefix" -}}
gantry-host-
{{- end }}
