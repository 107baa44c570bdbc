# syntax=docker/dockerfile:1
#
# Kanmon gateway image: the esbuild bundle of runtime/ on a slim Node base, run as a non-root
# user on a read-only root filesystem (the stack mounts a scratch volume at /tmp).
#
# The base is pinned by digest so every build of a given commit gets the same bytes. To move
# to the latest Node 22 patch release (do this when patching; see README, "Updating and
# patching"), look up the current multi-arch index digest and replace it in all three stages:
#   docker buildx imagetools inspect node:22-bookworm-slim   # the "Digest:" line
ARG NODE_IMAGE=node:22-bookworm-slim@sha256:43ac6c60b8f89723f746e8a92ce91abd5017e627ce1ddfe4238355d3a30b772c

# --- build: all dependencies, then the bundle -------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY runtime ./runtime
RUN npm run build

# --- deps: production dependencies only (better-sqlite3 is native, so it is not bundled) --
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# Compilers only in this stage, for when no prebuilt better-sqlite3 binary fits the platform.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force

# --- runtime ---------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# Writable scratch space next to the read-only root filesystem. Declared as a volume so the
# empty task volume mounted here inherits /tmp's permissions (1777) and the node user can write.
VOLUME ["/tmp"]
# 8443: TLS (or offloaded HTTP) behind the NLB; 8080: ACME HTTP-01 and the https redirect;
# 8081: /healthz and /readyz for health checks only.
EXPOSE 8443 8080 8081
USER node
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "/app/dist/healthcheck.mjs"]
CMD ["node", "--enable-source-maps", "/app/dist/kanmon.mjs"]
