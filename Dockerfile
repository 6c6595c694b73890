# syntax=docker/dockerfile:1
# Herald's container image: `docker build -t herald .` in the checkout; docs/deployment.md, "Docker".
# The build stage compiles the checkout and packs it exactly as `npm pack` does for a tarball install; the runtime
# stage installs that tarball with its production dependencies only, so the image holds what the npm package holds
# (the packaging tests install and run that same tarball).

FROM node:20-slim AS build
WORKDIR /src
# Dependencies first, so a source change does not invalidate this layer. No scripts yet: the sources are not here.
COPY package.json package-lock.json ./
COPY client/package.json client/
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY . .
# prepack empties dist/ and builds the client and the server; then the tarball, as for a tarball install.
RUN mkdir /pkg && npm pack --pack-destination /pkg

FROM node:20-slim
ENV NODE_ENV=production \
    HERALD_HOST=0.0.0.0 \
    HERALD_PORT=8080
COPY --from=build /pkg/herald-*.tgz /tmp/
# --ignore-scripts: the package's own prepare is for checkouts; its dependencies have no install scripts.
RUN npm install --global --omit=dev --ignore-scripts --no-audit --no-fund /tmp/herald-*.tgz \
    && rm /tmp/herald-*.tgz && npm cache clean --force
# A dedicated unprivileged user; Herald writes no files.
RUN groupadd --system herald && useradd --system --gid herald --no-create-home --shell /usr/sbin/nologin herald
USER herald
EXPOSE 8080
# docker stop sends SIGTERM: the node drains (tells its clients to reconnect elsewhere) and exits 0 within
# HERALD_DRAIN_TIMEOUT_MS (5 s); give `docker stop -t` / compose's stop_grace_period more than that.
STOPSIGNAL SIGTERM
# node:20-slim has no curl: node's own fetch asks /healthz (alive; point balancers at /readyz).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.HERALD_PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Settings come from the environment (HERALD_SECRET, REDIS_URL, ...: docs/configuration.md) or arguments after the
# image name, e.g. `docker run herald serve --dev --host 0.0.0.0`.
ENTRYPOINT ["herald"]
CMD ["serve"]
