# One image for the API and the worker; docker-compose.yml picks the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 10001 app
WORKDIR /app

# Dependencies first (read from pyproject.toml, no dev or embedded extras), so a code change reuses this layer.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the project itself. The code stays root-owned: the app user can read it, not change it.
COPY . .
RUN pip install --no-deps . && pip check && rm -rf build *.egg-info

USER app
EXPOSE 8000
ENV API_HOST=0.0.0.0 API_PORT=8000
CMD ["python", "-m", "service.server"]
