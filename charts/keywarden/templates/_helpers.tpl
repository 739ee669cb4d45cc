{{/*
The image of every component: by tag, by digest, or both (a released
chart names both; the digest is what is pulled).
*/}}
{{- define "keywarden.image" -}}
{{ .Values.image.repository }}{{ with .Values.image.tag }}:{{ . }}{{ end }}{{ with .Values.image.digest }}@{{ . }}{{ end }}
{{- end }}

{{/*
A component's ServiceAccount: (list $ "controller"|"verifier"|"console").
The bindings and the admission policies that hold its writes name it too.
*/}}
{{- define "keywarden.serviceAccountName" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $defaults := dict "controller" "keywarden-manager" "verifier" "keywarden-verifier" "console" "keywarden-console" -}}
{{- (index $root.Values $component).serviceAccount.name | default (index $defaults $component) -}}
{{- end }}

{{/*
The labels that select a component's pods: "manager", "verifier" or
"console".
*/}}
{{- define "keywarden.selectorLabels" -}}
app.kubernetes.io/component: {{ . }}
app.kubernetes.io/name: keywarden
{{- end }}

{{/*
What every component's pod template takes from its values ($v) and the
chart's: scheduling, pull secrets, the pod's security context.
Called with (list $ $v).
*/}}
{{- define "keywarden.podScheduling" -}}
{{- $root := index . 0 -}}
{{- $v := index . 1 -}}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with $v.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
A pod template's metadata: podAnnotations, and podLabels with the
selector labels, which podLabels cannot change. Called with
(list $ $v "component").
*/}}
{{- define "keywarden.podMetadata" -}}
{{- $v := index . 1 -}}
{{- with $v.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
labels:
  {{- merge (dict "app.kubernetes.io/component" (index . 2) "app.kubernetes.io/name" "keywarden") ($v.podLabels | default dict) | toYaml | nindent 2 }}
{{- end }}

{{/*
A container's image, pull policy, security context and resources.
Called with (list $ $v).
*/}}
{{- define "keywarden.container" -}}
{{- $root := index . 0 -}}
{{- $v := index . 1 -}}
image: {{ include "keywarden.image" $root | quote }}
{{- with $root.Values.image.pullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
{{- with $v.securityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
resources:
  {{- toYaml $v.resources | nindent 2 }}
{{- end }}

{{/*
The arguments every component takes from its values: the log level and
extraArgs. Called with $v.
*/}}
{{- define "keywarden.commonArgs" -}}
{{- with .logLevel }}
- --zap-log-level={{ . }}
{{- end }}
{{- range .extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
