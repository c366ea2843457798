"""The operator side: what the developer runs from a shell, never imported by get_app().

checking (wsgi-shim check), probe (the import in the site's own Python), control (maintenance,
restart, waiting for a new process), install, logview, preview (serve, demo), buildpython,
deploy. Each takes typed parameters and returns results; shim/cli.py parses and prints.
"""
