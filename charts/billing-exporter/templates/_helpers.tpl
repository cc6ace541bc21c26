{{/*
The chart's name, truncated to 63 characters (a DNS label).
*/}}
{{- define "billing-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The full name of the release's objects: the release name, with the chart's
unless it contains it.
*/}}
{{- define "billing-exporter.fullname" -}}
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

{{- define "billing-exporter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "billing-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "billing-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "billing-exporter.labels" -}}
helm.sh/chart: {{ include "billing-exporter.chart" . }}
{{ include "billing-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ include "billing-exporter.tag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: billing-monitoring
{{- end -}}

{{- define "billing-exporter.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion -}}
{{- end -}}

{{- define "billing-exporter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "billing-exporter.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Refuses values that would render a pod that cannot work.
*/}}
{{- define "billing-exporter.validate" -}}
{{- if not (has .Values.mode (list "sidecar" "standalone")) -}}
{{- fail (printf "mode must be sidecar or standalone, not %q" .Values.mode) -}}
{{- end -}}
{{- if and (eq .Values.mode "standalone") (not .Values.redis.addr) -}}
{{- fail "mode standalone needs redis.addr, the Redis to read" -}}
{{- end -}}
{{- if and .Values.postgres.dsn .Values.postgres.dsnSecret.name -}}
{{- fail "set postgres.dsn or postgres.dsnSecret.name, not both" -}}
{{- end -}}
{{- if and .Values.postgres.passwordSecret.name (not .Values.postgres.dsn) -}}
{{- fail "postgres.passwordSecret needs postgres.dsn, the DSN without its password" -}}
{{- end -}}
{{- if regexMatch "://[^/@]*:[^/@]*@" .Values.postgres.dsn -}}
{{- fail "postgres.dsn carries a password: use postgres.passwordSecret or postgres.dsnSecret" -}}
{{- end -}}
{{- if regexMatch "://[^/@]*:[^/@]*@" .Values.redis.addr -}}
{{- fail "redis.addr carries a password: use redis.passwordSecret" -}}
{{- end -}}
{{- end -}}

{{/*
A probe of the exporter: as given, with tcpSocket on the same port in
place of httpGet when the web config may require basic auth.
*/}}
{{- define "billing-exporter.probe" -}}
{{- $probe := deepCopy .probe -}}
{{- if and .root.Values.webConfig.secret.name (hasKey $probe "httpGet") -}}
{{- $port := $probe.httpGet.port -}}
{{- $_ := unset $probe "httpGet" -}}
{{- $_ := set $probe "tcpSocket" (dict "port" $port) -}}
{{- end -}}
{{- toYaml $probe -}}
{{- end -}}

{{/*
The relabelings of a ServiceMonitor or PodMonitor endpoint: the job set to
jobName, then the values' own.
*/}}
{{- define "billing-exporter.relabelings" -}}
- action: replace
  targetLabel: job
  replacement: {{ .root.Values.jobName | quote }}
{{- with .monitor.relabelings }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
The settings shared by a ServiceMonitor endpoint and a PodMonitor one.
*/}}
{{- define "billing-exporter.endpoint" -}}
port: metrics
path: /metrics
{{- with .monitor.interval }}
interval: {{ . }}
{{- end }}
{{- with .monitor.scrapeTimeout }}
scrapeTimeout: {{ . }}
{{- end }}
{{- with .monitor.scheme }}
scheme: {{ . }}
{{- end }}
{{- with .monitor.tlsConfig }}
tlsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .monitor.basicAuth }}
basicAuth:
  {{- toYaml . | nindent 2 }}
{{- end }}
relabelings:
  {{- include "billing-exporter.relabelings" . | nindent 2 }}
{{- with .monitor.metricRelabelings }}
metricRelabelings:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
