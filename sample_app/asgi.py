"""ASGI entry point: `uvicorn sample_app.asgi:app` (the same Flask app, run in a thread pool)."""
from asgiref.wsgi import WsgiToAsgi

from sample_app.wsgi import app as wsgi_app

app = WsgiToAsgi(wsgi_app)
