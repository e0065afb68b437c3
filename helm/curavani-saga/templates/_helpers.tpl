{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "curavani-saga.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Release-wide name prefix of every object.
*/}}
{{- define "curavani-saga.fullname" -}}
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

{{/*
Name of one component's objects. Call with (dict "root" $ "component" "coordinator").
*/}}
{{- define "curavani-saga.componentName" -}}
{{- printf "%s-%s" (include "curavani-saga.fullname" .root | trunc 50 | trimSuffix "-") .component }}
{{- end }}

{{/*
Labels that select one component's pods. Call with (dict "root" $ "component" "...").
*/}}
{{- define "curavani-saga.selectorLabels" -}}
app.kubernetes.io/name: {{ include "curavani-saga.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Labels of every object of one component. Call with (dict "root" $ "component" "...").
*/}}
{{- define "curavani-saga.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "curavani-saga.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: curavani-saga
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/*
Image reference: repository with digest when set, else with tag or the chart's appVersion.
*/}}
{{- define "curavani-saga.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Name of the Secret with the database URLs.
*/}}
{{- define "curavani-saga.databaseSecretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else }}
{{- printf "%s-database" (include "curavani-saga.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Checksum of where the database URLs come from, so that pods roll when the Secret name or a key
changes. The URLs themselves stay out of it because they contain passwords: after changing
the URLs, restart the Deployments (kubectl rollout restart).
*/}}
{{- define "curavani-saga.databaseChecksum" -}}
{{- dict "secret" (include "curavani-saga.databaseSecretName" .) "keys" .Values.database.secretKeys | toJson | sha256sum }}
{{- end }}

{{/*
Name of the ServiceAccount the pods run as.
*/}}
{{- define "curavani-saga.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "curavani-saga.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
URL the coordinator calls for one participant: its `url` value, else the chart's Service.
Call with (dict "root" $ "participant" "patient" "port" 8081).
*/}}
{{- define "curavani-saga.participantUrl" -}}
{{- $values := index .root.Values.participants .participant }}
{{- if $values.url }}
{{- $values.url }}
{{- else }}
{{- printf "http://%s:%v" (include "curavani-saga.componentName" (dict "root" .root "component" .participant)) .port }}
{{- end }}
{{- end }}

{{/*
Environment of the coordinator, one key per variable; rendered into its ConfigMap and hashed
into its pod annotations so that a change rolls the pods.
*/}}
{{- define "curavani-saga.coordinatorConfig" -}}
{{- $coordinator := .Values.coordinator }}
{{- $participants := $coordinator.participants }}
BIND_ADDR: "0.0.0.0:8080"
LOG_FORMAT: {{ .Values.logging.format | quote }}
RUST_LOG: {{ .Values.logging.level | quote }}
MAX_BODY_BYTES: {{ .Values.maxBodyBytes | int64 | quote }}
PATIENT_SERVICE_URL: {{ include "curavani-saga.participantUrl" (dict "root" . "participant" "patient" "port" 8081) | quote }}
THERAPIST_SERVICE_URL: {{ include "curavani-saga.participantUrl" (dict "root" . "participant" "therapist" "port" 8082) | quote }}
MATCHING_SERVICE_URL: {{ include "curavani-saga.participantUrl" (dict "root" . "participant" "matching" "port" 8083) | quote }}
COMMAND_WAIT_MS: {{ $coordinator.commandWaitMs | int64 | quote }}
LEASE_DURATION_MS: {{ $coordinator.leaseDurationMs | int64 | quote }}
SWEEP_INTERVAL_MS: {{ $coordinator.sweepIntervalMs | int64 | quote }}
RETRY_MIN_INTERVAL_MS: {{ $coordinator.retryMinIntervalMs | int64 | quote }}
RETRY_MAX_INTERVAL_MS: {{ $coordinator.retryMaxIntervalMs | int64 | quote }}
ROUND_BACKOFF_BASE_MS: {{ $coordinator.roundBackoffBaseMs | int64 | quote }}
ROUND_BACKOFF_MAX_MS: {{ $coordinator.roundBackoffMaxMs | int64 | quote }}
ATTENTION_AFTER_ROUNDS: {{ $coordinator.attentionAfterRounds | int64 | quote }}
PATIENT_TIMEOUT_MS: {{ $participants.patient.timeoutMs | int64 | quote }}
THERAPIST_TIMEOUT_MS: {{ $participants.therapist.timeoutMs | int64 | quote }}
MATCHING_TIMEOUT_MS: {{ $participants.matching.timeoutMs | int64 | quote }}
PATIENT_MAX_RETRIES: {{ $participants.patient.maxRetries | int64 | quote }}
THERAPIST_MAX_RETRIES: {{ $participants.therapist.maxRetries | int64 | quote }}
MATCHING_MAX_RETRIES: {{ $participants.matching.maxRetries | int64 | quote }}
{{- end }}

{{/*
Environment of one participant service. Call with (dict "root" $ "participant" "..." "port" N).
*/}}
{{- define "curavani-saga.participantConfig" -}}
BIND_ADDR: {{ printf "0.0.0.0:%v" .port | quote }}
LOG_FORMAT: {{ .root.Values.logging.format | quote }}
RUST_LOG: {{ .root.Values.logging.level | quote }}
MAX_BODY_BYTES: {{ .root.Values.maxBodyBytes | int64 | quote }}
{{- if eq .participant "communication" }}
COORDINATOR_URL: {{ printf "http://%s:%v" (include "curavani-saga.componentName" (dict "root" .root "component" "coordinator")) .root.Values.coordinator.service.port | quote }}
OUTBOX_POLL_INTERVAL_MS: {{ .root.Values.participants.communication.outboxPollIntervalMs | int64 | quote }}
{{- end }}
{{- end }}

{{/*
Port, probes and security settings every container shares. Call with
(dict "root" $ "port" N).
*/}}
{{- define "curavani-saga.containerCommon" -}}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
ports:
  - name: http
    containerPort: {{ .port }}
    protocol: TCP
# The port opens after the migrations are applied. The startup probe allows five minutes
# for that, including the wait for another replica that holds the migration lock.
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 5
  failureThreshold: 60
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: 10
  timeoutSeconds: 3
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
securityContext:
  {{- toYaml .root.Values.securityContext | nindent 2 }}
{{- end }}

{{/*
Pod settings every Deployment shares. Call with (dict "root" $ "affinity" {...}).
*/}}
{{- define "curavani-saga.podCommon" -}}
serviceAccountName: {{ include "curavani-saga.serviceAccountName" .root }}
# The processes never call the Kubernetes API.
automountServiceAccountToken: false
enableServiceLinks: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
