"""Settings for a minimal Django site with no database.

The secret key comes from a protected file when [secret_files] DJANGO_SECRET_KEY_FILE is set in
config.toml (wsgi-shim puts the file's *path* into the environment, never its contents).
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

_key_file = os.environ.get("DJANGO_SECRET_KEY_FILE")
SECRET_KEY = (Path(_key_file).read_text().strip() if _key_file
              else "example-only-key-set-DJANGO_SECRET_KEY_FILE-in-production")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")

INSTALLED_APPS: list[str] = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"
DATABASES: dict = {}
USE_TZ = True
STATIC_URL = "static/"
