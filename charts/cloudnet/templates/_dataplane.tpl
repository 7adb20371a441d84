{{/* The data plane's names: relay TLS and API Secrets, the per-peer relay API Service, the API URLs. */}}

{{- define "cloudnet.gatewayName" -}}
{{- printf "%s-gateway" (include "cloudnet.fullname" .) -}}
{{- end }}

{{- define "cloudnet.relayTLSSecret" -}}
{{- default (printf "%s-relay-tls" (include "cloudnet.fullname" .)) .Values.gateway.relay.tls.secretName -}}
{{- end }}

{{- define "cloudnet.relayAPISecret" -}}
{{- default (printf "%s-relay-api" (include "cloudnet.fullname" .)) .Values.gateway.relay.apiTokenSecret -}}
{{- end }}

{{/* The relay is deployed by this chart (gateway and relay both enabled). */}}
{{- define "cloudnet.relayDeployed" -}}
{{- if and .Values.gateway.enabled .Values.gateway.relay.enabled }}true{{ end -}}
{{- end }}

{{/* Service of the relay API for one peer; call with (dict "root" $ "peer" $peer). */}}
{{- define "cloudnet.relayAPIService" -}}
{{- printf "%s-relay-%s" (include "cloudnet.fullname" .root) .peer.site | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* CLOUDNET_RELAY_API for the operator: SITE=https://<service>.<ns>.svc:443 per peer. */}}
{{- define "cloudnet.relayAPIURLs" -}}
{{- $root := . }}
{{- $urls := list }}
{{- range .Values.gateway.peers }}
{{- $urls = append $urls (printf "%s=https://%s.%s.svc:443" .site (include "cloudnet.relayAPIService" (dict "root" $root "peer" .)) $root.Release.Namespace) }}
{{- end }}
{{- join "," $urls -}}
{{- end }}

{{/* nftables table of one peer's interception (table names allow [A-Za-z0-9_]). */}}
{{- define "cloudnet.interceptTable" -}}
{{- printf "cloudnet_%s" (. | replace "-" "_" | replace "." "_") | trunc 31 -}}
{{- end }}

{{/* The server name of a site's relay certificates (the sender checks its peer's against it). */}}
{{- define "cloudnet.relayServerName" -}}
{{- printf "relay.%s.cloudnet" . -}}
{{- end }}

{{- define "cloudnet.gatewayImage" -}}
{{- printf "%s:%s" .Values.gateway.image.repository (default .Chart.AppVersion .Values.gateway.image.tag) -}}
{{- end }}

{{/* The site gateways' HTTP bind address: authenticated HTTPS on all addresses, plain HTTP on loopback only. */}}
{{- define "cloudnet.gatewayMetricsBind" -}}
{{- if .Values.gateway.metricsBindAddress }}
{{- .Values.gateway.metricsBindAddress }}
{{- else if .Values.metrics.secure }}
{{- printf ":%d" (int .Values.gateway.metricsPort) }}
{{- else }}
{{- printf "127.0.0.1:%d" (int .Values.gateway.metricsPort) }}
{{- end }}
{{- end }}
