{{/* Names, labels and shared pieces of the llm-rollout-operator chart. */}}

{{- define "llm-rollout.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llm-rollout.fullname" -}}
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

{{- define "llm-rollout.operator.fullname" -}}
{{- include "llm-rollout.fullname" . | trunc 54 | trimSuffix "-" -}}
{{- end -}}

{{- define "llm-rollout.router.fullname" -}}
{{- printf "%s-router" (include "llm-rollout.fullname" . | trunc 56 | trimSuffix "-") -}}
{{- end -}}

{{- define "llm-rollout.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llm-rollout.labels" -}}
helm.sh/chart: {{ include "llm-rollout.chart" . }}
app.kubernetes.io/name: {{ include "llm-rollout.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llm-rollout-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: include with (list $ "operator"). */}}
{{- define "llm-rollout.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "llm-rollout.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "llm-rollout.componentLabels" -}}
{{ include "llm-rollout.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "llm-rollout.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "llm-rollout.operator.serviceAccountName" -}}
{{- if .Values.operator.serviceAccount.create -}}
{{- default (include "llm-rollout.operator.fullname" .) .Values.operator.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.operator.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "llm-rollout.router.serviceAccountName" -}}
{{- if .Values.router.serviceAccount.create -}}
{{- default (include "llm-rollout.router.fullname" .) .Values.router.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.router.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The namespaces the operator watches in namespace scope (default: the release's). */}}
{{- define "llm-rollout.watchNamespaces" -}}
{{- if .Values.rbac.namespaces -}}
{{- toJson .Values.rbac.namespaces -}}
{{- else -}}
{{- toJson (list .Release.Namespace) -}}
{{- end -}}
{{- end -}}

{{- define "llm-rollout.router.watchNamespace" -}}
{{- if .Values.router.watchNamespace -}}
{{- .Values.router.watchNamespace -}}
{{- else if eq .Values.rbac.scope "namespace" -}}
{{- first (include "llm-rollout.watchNamespaces" . | fromJsonArray) -}}
{{- end -}}
{{- end -}}

{{- define "llm-rollout.router.tokenSecret" -}}
{{- default (printf "%s-feedback-keys" (include "llm-rollout.router.fullname" .)) .Values.router.feedbackTokenKeys.existingSecret -}}
{{- end -}}

{{/* The pod-level parts shared by the operator and router Deployments. */}}
{{- define "llm-rollout.podPlacement" -}}
{{- with .priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Default topology spread over nodes: include with (list $ "operator" .Values.operator). */}}
{{- define "llm-rollout.topologySpread" -}}
{{- $root := index . 0 -}}
{{- $values := index . 2 -}}
{{- if $values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml $values.topologySpreadConstraints | nindent 2 }}
{{- else if gt (int $values.replicas) 1 }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- include "llm-rollout.selectorLabels" (list $root (index . 1)) | nindent 8 }}
{{- end }}
{{- end -}}
