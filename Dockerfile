FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pictograph ./pictograph
COPY migrations ./migrations
RUN pip install . && useradd --system --create-home pictograph
USER pictograph
EXPOSE 8000
CMD ["pictograph", "serve", "--host", "0.0.0.0", "--port", "8000", "--no-workers"]
