# syntax=docker/dockerfile:1
# CloudNet images. Stages:
#   build     - full `npm ci` (TypeScript is a devDependency) and `tsc -p tsconfig.build.json` -> dist/
#   prod-deps - `npm ci --omit=dev`: only the runtime dependencies, so neither TypeScript nor the
#               `node` devDependency (a second Node binary) reaches the image
#   gateway   - the site gateway: runtime files plus wireguard-go, wireguard-tools, iproute2
#   runtime   - the operator (default target): node:24-slim, numeric non-root user, nothing
#               writable under /app, so it runs with readOnlyRootFilesystem: true (HOME and TMPDIR
#               point at /tmp, an emptyDir in the chart)
# Build: docker build -t ghcr.io/cloudnet-io/cloudnet:0.1.0 . (.github/workflows/release.yml builds and pushes both targets)
# test/unit/dockerfile.test.ts lints this file statically (the project's machines cannot pull images).
ARG NODE_IMAGE=node:24
ARG RUNTIME_IMAGE=node:24-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The base image's node runs tsc; dist/ keeps ESM with relative imports rewritten from .ts to .js.
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json

FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /src
COPY package.json package-lock.json ./
# No runtime dependency has an install script; skipping scripts keeps the stage hermetic.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error \
 && npm cache clean --force

# `docker build --target gateway -t ghcr.io/cloudnet-io/cloudnet-gateway .`: the site data plane:
# the gateway (`cloudnet gateway`: WireGuard through wireguard-go, wg and ip), the relay pair with
# its nftables interception (`cloudnet relay send --intercept nft`, `relay receive`) and the route
# agent (`cloudnet route-agent`). The gateway, the sender and the route agent run as root with only
# NET_ADMIN (the chart), so it has no USER line; the operator image below does.
FROM ${RUNTIME_IMAGE} AS gateway
RUN apt-get update \
 && apt-get install -y --no-install-recommends wireguard-go wireguard-tools iproute2 nftables \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    HOME=/tmp \
    TMPDIR=/tmp \
    NODE_OPTIONS=--enable-source-maps
WORKDIR /app
COPY --from=prod-deps --chown=0:0 /src/node_modules ./node_modules
COPY --from=build --chown=0:0 /src/dist ./dist
COPY --chown=0:0 package.json ./
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["gateway", "--help"]

# The default target (last stage): the operator.
FROM ${RUNTIME_IMAGE} AS runtime
ENV NODE_ENV=production \
    HOME=/tmp \
    TMPDIR=/tmp \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NODE_OPTIONS=--enable-source-maps
WORKDIR /app
# Owned by root and not writable by the runtime user: the app cannot modify itself.
COPY --from=prod-deps --chown=0:0 /src/node_modules ./node_modules
COPY --from=build --chown=0:0 /src/dist ./dist
COPY --chown=0:0 package.json ./
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["operator", "--leader-elect", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081"]
