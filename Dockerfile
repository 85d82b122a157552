# UGEM gateway node: SMTP on 2525, admin HTTP on 8025, state under /var/lib/ugem.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    UGEM_NODE_DATA_DIR=/var/lib/ugem \
    UGEM_SMTP_LISTEN=0.0.0.0:2525 \
    UGEM_ADMIN_LISTEN=0.0.0.0:8025

WORKDIR /app
# The dependencies come from requirements.lock, exact versions checked against their
# hashes (the one lock there is: it holds the dev extra too); then the gateway itself.
COPY pyproject.toml requirements.lock README.md ugem.example.toml ./
RUN pip install --no-cache-dir --require-hashes -r requirements.lock
COPY ugem ./ugem
COPY relay ./relay
COPY anomaly ./anomaly
COPY admin ./admin
COPY loadtest ./loadtest
RUN pip install --no-cache-dir --no-deps . \
    && pip check \
    && useradd --system --uid 10025 --home-dir /var/lib/ugem ugem \
    && mkdir -p /var/lib/ugem && chown ugem:ugem /var/lib/ugem

USER ugem
VOLUME ["/var/lib/ugem"]
EXPOSE 2525 8025
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8025/healthz', timeout=4).status == 200 else 1)"
STOPSIGNAL SIGTERM
ENTRYPOINT ["ugem"]
CMD ["serve"]
