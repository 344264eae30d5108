{{/* Name of the chart, or nameOverride. */}}
{{- define "konfig.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the release's objects: <release> or <release>-<chart>, at most 63 characters. */}}
{{- define "konfig.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "konfig.selectorLabels" -}}
app.kubernetes.io/name: {{ include "konfig.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "konfig.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "konfig.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "konfig.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "konfig.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The image reference: repository@digest when a digest is set, else repository:tag. */}}
{{- define "konfig.image" -}}
{{- $repository := required "image.repository is required: the image built from this repository" .Values.image.repository -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "konfig.systemNamespace" -}}
{{- default .Release.Namespace .Values.systemNamespace -}}
{{- end -}}

{{/* The kinds of konfig.dev, as the CRDs in crds/ serve them (a test keeps the two equal). */}}
{{- define "konfig.kinds" -}}
[controlplanes, platforms, domains, workloads, resourcetemplates]
{{- end -}}

{{/* ClusterRoles the operator may bind in domain-environment namespaces. */}}
{{- define "konfig.bindableClusterRoles" -}}
{{- $names := list .Values.rbac.clusterRoles.workloadDeployer .Values.rbac.clusterRoles.viewer .Values.rbac.clusterRoles.definitionsReader -}}
{{- concat $names .Values.rbac.extraBindableClusterRoles | uniq | toJson -}}
{{- end -}}

{{/* Replicas that run: replicaCount with peering or unit leases, else exactly one. */}}
{{- define "konfig.replicas" -}}
{{- if or .Values.peering.enabled .Values.leases.enabled }}{{ .Values.replicaCount }}{{ else }}1{{ end }}
{{- end }}
