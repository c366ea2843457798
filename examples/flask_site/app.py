"""A small Flask site. Passenger serves `app` through wsgi-shim ([wsgi] app = "app.app")."""

import os

from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/")
def index():
    greeting = os.environ.get("GREETING", "Hello")
    return f"<!DOCTYPE html>\n<title>flask_site example</title>\n<h1>{greeting} from Flask</h1>\n"


@app.route("/health")
def health():
    return jsonify(status="ok", framework="flask")
