"""The Celery worker: holds the only engine instance and runs synthesis jobs."""
