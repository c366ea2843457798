
# ---- wsgi-shim: production values, from config.toml's [environment] and [secret_files] ----
# (added at the end of the settings.py that `django-admin startproject` wrote). wsgi-shim puts
# them into the app's environment and into the release commands' (migrate, collectstatic);
# without them (your laptop's `manage.py runserver`) the startproject values stay.
import os  # noqa: E402

if "DJANGO_SECRET_KEY_FILE" in os.environ:
    with open(os.environ["DJANGO_SECRET_KEY_FILE"]) as key_file:
        SECRET_KEY = key_file.read().strip()
    DEBUG = False
if "DJANGO_ALLOWED_HOSTS" in os.environ:
    ALLOWED_HOSTS = os.environ["DJANGO_ALLOWED_HOSTS"].split(",")
# collectstatic writes here: the document root, which Apache serves without asking the app.
if "DJANGO_STATIC_ROOT" in os.environ:
    STATIC_ROOT = os.environ["DJANGO_STATIC_ROOT"]
