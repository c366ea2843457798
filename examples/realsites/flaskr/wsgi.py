# wsgi.py, beside the flaskr/ package: flaskr is an application factory, and wsgi-shim loads
# a module attribute ([wsgi] app = "wsgi.application").
from flaskr import create_app

application = create_app()
