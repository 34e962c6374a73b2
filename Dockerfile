# MapLibre for the /map page comes from the npm registry at build time (no CDN at run time).
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /srv
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY migrations ./migrations
COPY --from=web /web/node_modules/maplibre-gl/dist ./web/node_modules/maplibre-gl/dist
# Editable: the app finds alembic.ini, migrations/ and web/ next to its package.
RUN pip install --no-cache-dir -e . && useradd --system --home /srv incidents
USER incidents
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')" || exit 1
# Admin-1 boundaries need data/boundaries/world_map.gpkg (scripts/fetch_boundaries.sh); mount
# it at /srv/data/boundaries to have them, countries load either way.
CMD ["sh", "-c", "incidents migrate && incidents places load && incidents areas load-boundaries && incidents seed && incidents serve --host 0.0.0.0 --port 8000 --workers ${WEB_CONCURRENCY:-1}"]
