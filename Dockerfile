# The service and its workers: one image, `briefing serve` or `briefing worker`.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 LITELLM_LOCAL_MODEL_COST_MAP=True
WORKDIR /app
COPY pyproject.toml README.md ./
COPY briefing ./briefing
COPY prompts ./prompts
RUN pip install --no-cache-dir . && useradd --create-home briefing
USER briefing
ENTRYPOINT ["briefing"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
