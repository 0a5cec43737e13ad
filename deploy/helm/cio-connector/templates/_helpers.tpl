{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "cio-connector.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified name of the release's objects. */}}
{{- define "cio-connector.fullname" -}}
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

{{- define "cio-connector.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cio-connector.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cio-connector.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "cio-connector.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: connector
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels of the metrics Service: the ServiceMonitor selects on its component. */}}
{{- define "cio-connector.metricsLabels" -}}
{{ include "cio-connector.labels" . | replace "app.kubernetes.io/component: connector" "app.kubernetes.io/component: metrics" }}
{{- end }}

{{- define "cio-connector.secretName" -}}
{{- default (include "cio-connector.fullname" .) .Values.secret.existingSecret }}
{{- end }}

{{- define "cio-connector.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cio-connector.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The pod may be killed this long after SIGTERM: preStop sleep + the connector's own deadline + margin. */}}
{{- define "cio-connector.terminationGracePeriodSeconds" -}}
{{- add .Values.preStopSleepSeconds .Values.shutdownTimeoutSeconds .Values.terminationGraceMarginSeconds }}
{{- end }}

{{/* The connector container; the same in both modes. */}}
{{- define "cio-connector.container" -}}
- name: cio-connector
  image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    {{- toYaml .Values.args | nindent 4 }}
  ports:
    - name: webhook
      containerPort: {{ .Values.ports.webhook }}
      protocol: TCP
    - name: metrics
      containerPort: {{ .Values.ports.metrics }}
      protocol: TCP
  env:
    - name: KAFKA_BOOTSTRAP_SERVERS
      value: {{ .Values.kafka.bootstrapServers | quote }}
    - name: CONNECTOR_INPUT_TOPICS
      value: {{ .Values.kafka.inputTopics | quote }}
    - name: CONNECTOR_GROUP_ID
      value: {{ .Values.kafka.groupId | quote }}
    - name: CONNECTOR_DLQ_TOPIC
      value: {{ .Values.kafka.dlqTopic | quote }}
    - name: CONNECTOR_WEBHOOK_TOPIC
      value: {{ .Values.kafka.webhookTopic | quote }}
    {{- if .Values.cio.region }}
    - name: CIO_REGION
      value: {{ .Values.cio.region | quote }}
    {{- end }}
    - name: CONNECTOR_WEBHOOK_PORT
      value: {{ .Values.ports.webhook | quote }}
    - name: CONNECTOR_METRICS_PORT
      value: {{ .Values.ports.metrics | quote }}
    - name: CONNECTOR_SHUTDOWN_TIMEOUT_SECONDS
      value: {{ .Values.shutdownTimeoutSeconds | quote }}
    - name: LOG_LEVEL
      value: {{ .Values.logLevel | quote }}
    - name: CIO_SITE_ID
      valueFrom:
        secretKeyRef:
          name: {{ include "cio-connector.secretName" . }}
          key: CIO_SITE_ID
          optional: true
    - name: CIO_API_KEY
      valueFrom:
        secretKeyRef:
          name: {{ include "cio-connector.secretName" . }}
          key: CIO_API_KEY
          optional: true
    - name: CIO_APP_API_KEY
      valueFrom:
        secretKeyRef:
          name: {{ include "cio-connector.secretName" . }}
          key: CIO_APP_API_KEY
          optional: true
    - name: CIO_WEBHOOK_SIGNING_KEYS
      valueFrom:
        secretKeyRef:
          name: {{ include "cio-connector.secretName" . }}
          key: CIO_WEBHOOK_SIGNING_KEYS
          optional: true
    - name: KAFKA_SASL_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ include "cio-connector.secretName" . }}
          key: KAFKA_SASL_PASSWORD
          optional: true
    {{- if .Values.config }}
    - name: CONNECTOR_CONFIG
      value: /etc/cio-connector/config.yaml
    {{- end }}
    {{- with .Values.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.envFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: metrics
    {{- toYaml .Values.probes.liveness | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: metrics
    {{- toYaml .Values.probes.readiness | nindent 4 }}
  {{- if gt (int .Values.preStopSleepSeconds) 0 }}
  lifecycle:
    preStop:
      exec:
        command: ["sleep", "{{ .Values.preStopSleepSeconds }}"]
  {{- end }}
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    {{- if .Values.config }}
    - name: config
      mountPath: /etc/cio-connector
      readOnly: true
    {{- end }}
{{- end }}
