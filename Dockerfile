# The hsmlab image: the whole workspace, built, with its runtime dependencies only. Every service
# of docker-compose.yml runs it (node <bin> ...; WORKDIR /app); nothing is fetched at run time.
#
#   docker build -t hsmlab:local .     (docker compose up builds it too)

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY . .
# --ignore-scripts: the native addons (node-pty for the console's terminal, pkcs11js for the
# PKCS#11 tests) would need a compiler the slim image lacks, and no service of the compose file
# uses them (the lab there runs with --no-console); msgpackr keeps its JavaScript path as on the host.
RUN npm ci --ignore-scripts --no-audit --no-fund && npm run build

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/packages ./packages
COPY --from=build /app/docker ./docker
# The workspace's packages are linked into node_modules; dev dependencies (TypeScript, vitest,
# the AWS SDK of the tests) are left out.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
ENV PATH=/app/node_modules/.bin:$PATH
# Data lives in the volumes docker-compose.yml mounts: /keys, /lab, each region's
# /lab/<region>/control-plane and each HSM container's /hsm.
CMD ["node", "packages/lab/bin/hsmlab.js", "--help"]
