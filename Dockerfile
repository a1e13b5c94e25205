# reachwatch worker image: `docker build -t reachwatch:0.1.0 .` (compose.yaml builds it).
# Pinned dependencies come from constraints.txt; the worker runs as an unprivileged user.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/reachwatch --create-home reachwatch

WORKDIR /opt/reachwatch
COPY pyproject.toml constraints.txt README.md ./
COPY streams ./streams
COPY models ./models
RUN pip install -c constraints.txt .

USER 10001:10001
# Inside a container the web server must listen beyond loopback for Prometheus and
# Grafana to reach /metrics and /alerts/recent, so the worker refuses to start unless
# REACHWATCH_WEB_TOKEN_FILE names its bearer token (compose.yaml mounts it as a secret).
ENV REACHWATCH_WEB_HOST=0.0.0.0 \
    REACHWATCH_WEB_PORT=6066 \
    REACHWATCH_DATA_DIR=/var/lib/reachwatch/data \
    REACHWATCH_REGISTRY_DIR=/models
EXPOSE 6066
ENTRYPOINT ["reachwatch"]
CMD ["run"]
