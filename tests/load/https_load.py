"""Continuous HTTPS requests for release tests and benchmarks (test and bench tooling, not
part of the deployer). Runs on a host with python3 only:

    python3 https_load.py URL STOPFILE RESULT [THREADS]

Each thread sends one GET at a time, each on a new connection (as independent clients
arrive), certificate unchecked, until STOPFILE exists; then RESULT gets a JSON summary:
requests sent, answered 200, failed (anything else, with the first 20 reasons), the count
per `release` field of the JSON answers, and the longest time between two successful
answers (any thread)."""
import json
import os
import ssl
import sys
import threading
import time
import urllib.request

url, stopfile, result = sys.argv[1:4]
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 1
context = ssl.create_default_context()
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
lock = threading.Lock()
state = {"sent": 0, "ok": 0, "failures": [], "releases": {}, "last_ok": time.monotonic(), "longest_gap": 0.0}


def run():
    while not os.path.exists(stopfile):
        try:
            with urllib.request.urlopen(url, timeout=10, context=context) as answer:
                release = json.load(answer).get("release", "?")
            failure = None
        except Exception as error:  # every kind of failure counts
            failure = f"{time.strftime('%H:%M:%S')} {type(error).__name__}: {error}"
        with lock:
            state["sent"] += 1
            if failure:
                state["failures"].append(failure)
                continue
            state["ok"] += 1
            state["releases"][release] = state["releases"].get(release, 0) + 1
            now = time.monotonic()
            state["longest_gap"] = max(state["longest_gap"], now - state["last_ok"])
            state["last_ok"] = now


started = time.monotonic()
workers = [threading.Thread(target=run) for _ in range(threads)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
summary = {"sent": state["sent"], "ok": state["ok"], "failed": len(state["failures"]),
           "failures": state["failures"][:20], "releases": state["releases"],
           "longest_gap_s": round(state["longest_gap"], 3), "threads": threads,
           "seconds": round(time.monotonic() - started, 1)}
with open(result + ".part", "w") as handle:
    json.dump(summary, handle)
os.rename(result + ".part", result)
