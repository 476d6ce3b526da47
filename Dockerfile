# syntax=docker/dockerfile:1
# Two stages: install production dependencies, then copy them with the source into a slim
# non-root image. The bot runs TypeScript directly (Node's type stripping): no build step.

FROM node:26-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev: no test tooling and no `node` package (the image has its own Node 26).
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:26-bookworm-slim
ENV NODE_ENV=production
# V8's young generation capped at 4 MB per semi-space (the default grows to 16 MB): under a burst
# of jobs it is much of what the resident memory grows by, not the jobs themselves (about half
# the RSS per in-flight job of Node's defaults, within issue 13's 50 KB), and against 2 MB it
# halves the scavenges that pushed back Discord acknowledgements in bursts. docs/benchmarks.md,
# "Jobs end to end" ("In the evening", 2026-12-07), has the side-by-side figures.
# `npm run bench -- jobs` reads this line; `npm start` passes the same flags (package.json), and
# test/unit/ops/compose.test.ts checks that the two agree.
ENV NODE_OPTIONS="--max-semi-space-size=4"
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
COPY commands ./commands
# The SQLite store and downloaded images live in /app/data: mount a volume there.
RUN mkdir -p /app/data && chown node:node /app/data
USER node
VOLUME ["/app/data"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "src/main.ts"]
