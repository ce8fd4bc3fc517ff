{{/* Labels on every object; Helm's own only when Helm manages the release. */}}
{{- define "ballast.labels" -}}
app.kubernetes.io/name: ballast
app.kubernetes.io/part-of: ballast
{{- if not .Values.plainManifests }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}
{{- end }}

{{/* The operator pods' selector (deploy/'s, so a kustomize install can move to Helm). */}}
{{- define "ballast.selector" -}}
app.kubernetes.io/name: ballast
app.kubernetes.io/component: operator
{{- end }}

{{- define "ballast.image" -}}
{{- $tag := .Values.image.tag | default (printf "v%s" .Chart.AppVersion) -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end }}
{{- end }}

{{- define "ballast.certManager" -}}
{{- if not (has .Values.webhook.certificates (list "self" "cert-manager")) -}}
{{- fail (printf "webhook.certificates: %q is not one of self, cert-manager" .Values.webhook.certificates) -}}
{{- end -}}
{{- and .Values.webhook.enabled (eq .Values.webhook.certificates "cert-manager") -}}
{{- end }}
