# mysite/settings/local.py: the production settings of a site made by `wagtail start`.
# settings/production.py imports it last; every value comes from config.toml's [environment]
# and [secret_files], which wsgi-shim puts into the app's environment (and the release
# commands', so `manage.py migrate` and `collectstatic` see the same).
import os

SECRET_KEY = open(os.environ["DJANGO_SECRET_KEY_FILE"]).read().strip()
ALLOWED_HOSTS = os.environ["DJANGO_ALLOWED_HOSTS"].split(",")
# collectstatic writes here: the document root, which Apache serves without asking the app.
STATIC_ROOT = os.environ["DJANGO_STATIC_ROOT"]
