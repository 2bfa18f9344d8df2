"""Stands in for healthchecks.io on the offsite test host: records each request's method, path
and body in /srv/pings.log, one JSON object a line, and answers 200."""
import json
from http.server import BaseHTTPRequestHandler, HTTPServer


class Recorder(BaseHTTPRequestHandler):
    def record(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode(errors="replace")
        with open("/srv/pings.log", "a", encoding="utf-8") as log:
            log.write(json.dumps({"method": self.command, "path": self.path, "body": body}) + "\n")
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    do_GET = do_POST = do_HEAD = record


HTTPServer(("", 8080), Recorder).serve_forever()
