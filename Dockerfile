# syntax=docker/dockerfile:1
# Gantry's image: one image, two programs. The controller runs as the image's non-root user
# (65532); the agent runs the same image as root, because containerd's socket is root's (the
# chart's DaemonSet sets runAsUser: 0 and drops every capability).
#   docker build -t localhost:5001/gantry:0.1.0 .
#   docker run --rm localhost:5001/gantry:0.1.0 dist/cmd/controller.js --help   # its flags

# The bases, as build arguments so a machine that cannot pull them can pass equivalent ones
# (`npm run image:build` does: src/localcluster/image.ts). Node.js 20, as package.json's engines.
ARG BUILD_IMAGE=docker.io/library/node:20-bookworm-slim
ARG RUN_IMAGE=gcr.io/distroless/nodejs20-debian12:nonroot

# Build: compile the TypeScript (`npm run build`), then keep only the runtime dependencies.
FROM ${BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Run: distroless Node.js - no shell, no package manager - as a numeric non-root user, so
# Kubernetes can check runAsNonRoot.
FROM ${RUN_IMAGE}
LABEL org.opencontainers.image.title="gantry" \
      org.opencontainers.image.description="Gantry controller and node agent" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY LICENSE ./LICENSE
USER 65532:65532
# Controller: /metrics 8080, probes 8081. Agent: /metrics 9090, probes 9091.
EXPOSE 8080 8081 9090 9091
ENTRYPOINT ["/nodejs/bin/node", "--enable-source-maps"]
CMD ["dist/cmd/controller.js"]
