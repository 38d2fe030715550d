{{/*
Chart name, at most 63 characters.
*/}}
{{- define "gemmaft.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name: <release>-<chart> (or fullnameOverride), at most 63 characters; the release name alone when it
already contains the chart name.
*/}}
{{- define "gemmaft.fullname" -}}
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

{{/*
Chart label value: <name>-<version>.
*/}}
{{- define "gemmaft.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels that select the operator pod; they never change across upgrades.
*/}}
{{- define "gemmaft.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gemmaft.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/*
Labels of the operator's objects.
*/}}
{{- define "gemmaft.labels" -}}
{{ include "gemmaft.baseLabels" . }}
app.kubernetes.io/component: operator
{{- end -}}

{{/*
Labels of every object, without the component.
*/}}
{{- define "gemmaft.baseLabels" -}}
helm.sh/chart: {{ include "gemmaft.chart" . }}
app.kubernetes.io/name: {{ include "gemmaft.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gemma-finetune-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Name of the operator's ServiceAccount.
*/}}
{{- define "gemmaft.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gemmaft.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Operator image: registry/repository@digest, or registry/repository:tag (tag defaults to appVersion).
*/}}
{{- define "gemmaft.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .Values.image.registry) .Values.image.repository -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Namespaces that get the trainer ServiceAccount, as a list.
*/}}
{{- define "gemmaft.trainerNamespaces" -}}
{{- $ns := .Values.trainerServiceAccount.namespaces -}}
{{- if not $ns -}}{{- $ns = .Values.watchNamespaces -}}{{- end -}}
{{- if not $ns -}}{{- $ns = list .Release.Namespace -}}{{- end -}}
{{- toJson $ns -}}
{{- end -}}

{{/*
RBAC rules on namespaced resources, the same in cluster-wide and namespaced mode. Deliberately independent of
values: no wildcards and no Secrets (trainer pods read the Hugging Face token through a secretKeyRef; the
operator never reads it).
*/}}
{{- define "gemmaft.namespacedRules" -}}
{{- /* Exactly the calls gemma_operator.runtime makes (reconciler.py, kube.py, events.py) and kopf's watches (the Job and pod indexes). */}}
- apiGroups: ["gemmaft.dev"]
  resources: ["gemmafinetunes"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["gemmaft.dev"]
  resources: ["gemmafinetunes/status"]
  verbs: ["patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["create", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["create", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "list", "watch"]
{{- end }}

{{/*
Cluster-scoped reads kopf uses to notice CRDs and namespaces appearing or going.
*/}}
{{- define "gemmaft.clusterScopedRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["get", "list", "watch"]
{{- end -}}

{{/*
Image prefixes trainer images must be under (GEMMAFT_ALLOWED_IMAGE_PREFIXES): allowedImagePrefixes, or when it is
empty the repositories of the three trainerImages (tag and digest removed). Never empty.
*/}}
{{- define "gemmaft.allowedImagePrefixes" -}}
{{- if .Values.allowedImagePrefixes -}}
{{- join "," .Values.allowedImagePrefixes -}}
{{- else -}}
{{- $repos := list -}}
{{- range $image := list .Values.trainerImages.gpu .Values.trainerImages.tpu .Values.trainerImages.cpu -}}
{{- $repo := regexReplaceAll ":[^:/]*$" (regexReplaceAll "@.*$" $image "") "" -}}
{{- $repos = append $repos $repo -}}
{{- end -}}
{{- join "," ($repos | uniq) -}}
{{- end -}}
{{- end }}
