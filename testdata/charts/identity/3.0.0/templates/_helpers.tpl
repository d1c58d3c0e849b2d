{{/*
Names. The resource names are those of the real chart: the Keycloak StatefulSet and Service
<release>-id-keycloak, the PostgreSQL StatefulSet and Service <release>-postgresql-id.
*/}}
{{- define "identity.keycloak.fullname" -}}
{{- printf "%s-id-keycloak" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "identity.postgresql.fullname" -}}
{{- printf "%s-postgresql-id" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "identity.db.secretName" -}}
{{- printf "%s-id-keycloak-db" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "identity.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "identity.db.host" -}}
{{- .Values.postgresql.host | default (include "identity.postgresql.fullname" .) -}}
{{- end -}}

{{/* Labels of every object (3.0.0 moved to the app.kubernetes.io/* style). */}}
{{- define "identity.labels" -}}
helm.sh/chart: {{ include "identity.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* Keycloak selector labels (the same in 2.1.0 and 3.0.0). */}}
{{- define "identity.keycloak.selectorLabels" -}}
app.kubernetes.io/name: keycloak
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{/*
PostgreSQL selector labels of 3.0.0. 2.1.0 had {app, release, role}: spec.selector is immutable,
so a plain upgrade from 2.1.0 (or a rollback to it) fails on this StatefulSet.
*/}}
{{- define "identity.postgresql.selectorLabels" -}}
app.kubernetes.io/name: postgresql-id
app.kubernetes.io/instance: {{ .Release.Name | quote }}
role: master
{{- end -}}

{{/*
identity.fault checks the fault values and returns the fault name ("" for none). It stops the
rendering for fault=template-error and for values it does not know.
*/}}
{{- define "identity.fault" -}}
{{- $fault := .Values.fault | default "" | toString -}}
{{- $known := list "" "crash-after-ready" "crashloop" "image-pull" "create-container-config-error" "unschedulable" "template-error" "pre-upgrade-hook" -}}
{{- if not (has $fault $known) -}}
{{- fail (printf "values: fault %q is unknown; use one of crash-after-ready, crashloop, image-pull, create-container-config-error, unschedulable, template-error, pre-upgrade-hook" $fault) -}}
{{- end -}}
{{- if not (has (toString .Values.faultTarget) (list "keycloak" "postgresql")) -}}
{{- fail (printf "values: faultTarget %q is unknown; use keycloak or postgresql" (toString .Values.faultTarget)) -}}
{{- end -}}
{{- if eq $fault "template-error" -}}
{{- fail "fault template-error: this chart was asked to fail rendering (values: fault=template-error)" -}}
{{- end -}}
{{- $fault -}}
{{- end -}}

{{/*
identity.faultFor returns the fault that applies to the workload named by .target ("keycloak" or
"postgresql"), or "". Call with (dict "root" $ "target" "keycloak").
*/}}
{{- define "identity.faultFor" -}}
{{- $fault := include "identity.fault" .root -}}
{{- if eq (toString .root.Values.faultTarget) .target -}}
{{- $fault -}}
{{- end -}}
{{- end -}}

{{/* The image of a workload whose fault is image-pull: a registry that never resolves. */}}
{{- define "identity.fault.image" -}}
registry.invalid/identity-upgrade/does-not-exist:0
{{- end -}}

{{/*
identity.fault.podLabels: the pod template label the kwok stages of testdata/kwok select on.
Same argument as identity.faultFor. Renders nothing without a kwok-driven fault.
*/}}
{{- define "identity.fault.podLabels" -}}
{{- $fault := include "identity.faultFor" . -}}
{{- if has $fault (list "crash-after-ready" "crashloop" "image-pull" "create-container-config-error") -}}
identity-upgrade.test/fault: {{ $fault }}
{{- end -}}
{{- end -}}

{{/* identity.fault.podAnnotations: the crash delay for crash-after-ready, if set. */}}
{{- define "identity.fault.podAnnotations" -}}
{{- $fault := include "identity.faultFor" . -}}
{{- if and (eq $fault "crash-after-ready") .root.Values.faultDelay -}}
identity-upgrade.test/fault-delay: {{ .root.Values.faultDelay | quote }}
{{- end -}}
{{- end -}}

{{/*
identity.scheduling: tolerations for every pod, plus, for fault=unschedulable on this workload, a
nodeSelector that no node matches. Same argument as identity.faultFor.
*/}}
{{- define "identity.scheduling" -}}
{{- if eq (include "identity.faultFor" .) "unschedulable" }}
nodeSelector:
  identity-upgrade.test/unschedulable: "true"
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
identity.fault.env: for create-container-config-error, an env var read from a Secret that does
not exist (what causes CreateContainerConfigError on a real kubelet). Same argument as
identity.faultFor.
*/}}
{{- define "identity.fault.env" -}}
{{- if eq (include "identity.faultFor" .) "create-container-config-error" }}
- name: IDENTITY_UPGRADE_TEST_FAULT
  valueFrom:
    secretKeyRef:
      name: {{ printf "%s-fault-missing" .root.Release.Name | trunc 63 | trimSuffix "-" }}
      key: value
{{- end }}
{{- end -}}

{{/*
identity.keycloak.replicas: the replicas of Keycloak's own settings .kc when given, else
replicaCount. Call with (dict "root" $ "kc" <Keycloak's settings>).
*/}}
{{- define "identity.keycloak.replicas" -}}
{{- if kindIs "invalid" .kc.replicas -}}
{{- .root.Values.replicaCount -}}
{{- else -}}
{{- .kc.replicas -}}
{{- end -}}
{{- end -}}

{{/*
identity.extra renders a list that is given either as a list or, as the real charts' Keycloak
subcharts take it, as YAML text (templated). Call with (dict "root" $ "value" <list or text>).
*/}}
{{- define "identity.extra" -}}
{{- if kindIs "string" .value -}}
{{- tpl .value .root -}}
{{- else -}}
{{- toYaml .value -}}
{{- end -}}
{{- end -}}

{{/*
identity.postgresql.deploy: "true" when the chart deploys its own PostgreSQL
(keycloak.postgresql.enabled; 2.1.0 read keycloak.keycloak.persistence.deployPostgres).
*/}}
{{- define "identity.postgresql.deploy" -}}
{{- if dig "postgresql" "enabled" true (.Values.keycloak | default dict) -}}true{{- end -}}
{{- end -}}
