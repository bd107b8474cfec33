{{/*
Names are fixed, as in config/ (prefix m2m-): the components find each other by them (Service
m2m-tokenserver, Secrets m2m-ca and m2m-tokenserver-tls, the issuer).
*/}}

{{- define "m2m.systemNamespace" -}}{{ .Values.namespaces.system }}{{- end -}}
{{- define "m2m.credentialsNamespace" -}}{{ .Values.namespaces.credentials }}{{- end -}}

{{/* The issuer: the value, else the token server's Service in the system namespace. */}}
{{- define "m2m.issuer" -}}
{{- if .Values.issuer -}}
{{ .Values.issuer }}
{{- else -}}
{{ ternary "https" "http" .Values.tls.enabled }}://m2m-tokenserver.{{ include "m2m.systemNamespace" . }}.svc
{{- end -}}
{{- end -}}

{{/* The labels every object carries: those of config/ (part-of), Helm's, and commonLabels. */}}
{{- define "m2m.labels" -}}
app.kubernetes.io/part-of: m2m-operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The selector of a component's pods (as in config/: never the release, so it never changes). */}}
{{- define "m2m.selectorLabels" -}}
app.kubernetes.io/name: m2m-operator
app.kubernetes.io/component: {{ . }}
{{- end -}}

{{/* Labels of a component's objects: selector labels and the common ones. Argument: (list $ "controller"). */}}
{{- define "m2m.componentLabels" -}}
{{ include "m2m.selectorLabels" (index . 1) }}
{{ include "m2m.labels" (index . 0) }}
{{- end -}}

{{/* metadata.annotations from commonAnnotations, if any, indented for metadata (a leading newline). */}}
{{- define "m2m.annotations" -}}
{{- with .Values.commonAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
{{- end }}
{{- end -}}

{{/* The image of a component: repository, then @digest or :tag (default the appVersion). */}}
{{- define "m2m.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{ $img.repository }}@{{ $img.digest }}
{{- else -}}
{{ $img.repository }}:{{ $img.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* The common part of a pod spec. Argument: (list $ .Values.controller). */}}
{{- define "m2m.podScheduling" -}}
{{- $ := index . 0 -}}
{{- $c := index . 1 -}}
{{- with $.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $c.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The logging flags of both components. */}}
{{- define "m2m.loggingArgs" -}}
{{- with .Values.logging.level }}
- --zap-log-level={{ . }}
{{- end }}
{{- with .Values.logging.encoder }}
- --zap-encoder={{ . }}
{{- end }}
{{- end -}}

{{/* Rules of a generated RBAC file (files/rbac, copied from config/rbac by hack/chart-sync.sh):
the document of the given kind. Argument: (list $ "files/rbac/tokenserver.yaml" "Role"). */}}
{{- define "m2m.rbacRules" -}}
{{- $ := index . 0 -}}
{{- $file := index . 1 -}}
{{- $kind := index . 2 -}}
{{- $rules := list -}}
{{- $found := false -}}
{{- range splitList "\n---" ($.Files.Get $file) }}
{{- $doc := fromYaml . }}
{{- if eq (get $doc "kind" | toString) $kind }}
{{- $rules = get $doc "rules" }}
{{- $found = true }}
{{- end }}
{{- end }}
{{- if not $found }}
{{- fail (printf "%s holds no %s: run make generate" $file $kind) }}
{{- end }}
{{- toYaml $rules }}
{{- end -}}
