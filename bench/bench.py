#!/usr/bin/env python3
"""How fast the deployer is, measured the same way every time (run it with bench/run).

Every measurement starts fresh test hosts (systemd containers named bench-h*, on the docker
network bench-net with fixed addresses) on this machine, and each deploy is timed against a
floor measured in the same run: bench/floor.sh on identical fresh hosts doing the least work
that gives the same healthy stack. The results go to bench/results/<timestamp>.{json,md}.
"""

import argparse
import concurrent.futures
import datetime
import importlib.util
import json
import os
import pathlib
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
WORK = BENCH / ".work"
TEMPLATE_CACHE = WORK / "template-cache"
# Where the deployer keeps the image archives cut down to a host's images (container_image_cut_dir).
IMAGE_CUTS = WORK / "image-cuts"
RESULTS = BENCH / "results"
ARCHIVE = REPO / ".cache/images/stack-images.tar"
HOST_IMAGE = "deployer-test/host:trixie"
# BENCH_PREFIX and BENCH_SUBNET let two benches run side by side (their figures then disturb
# each other: say so with the results).
PREFIX = os.environ.get("BENCH_PREFIX", "bench-h")
NETWORK = PREFIX + "-net"
SUBNET = os.environ.get("BENCH_SUBNET", "10.213.7.0/24")
STACK = "shop"
RELEASE_COMMAND = ["python3", "-m", "sample_app.migrate"]

# Targets from issue #11.
COLD_RATIO_TARGET = 1.5
NOOP_SECONDS_TARGET = 30

# The options every systemd test host gets (as molecule/resources/tasks/start-test-host.yml).
HOST_RUN_OPTIONS = [
    "--cap-add=ALL", "--cap-drop=SYS_RESOURCE", "--cap-drop=SYS_TIME",
    "--cap-drop=SYS_MODULE", "--cap-drop=SYS_BOOT",
    "--security-opt", "seccomp=unconfined", "--security-opt", "apparmor=unconfined",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "--tmpfs", "/var/lib/docker:exec",
]

# The inventory settings of the bench: the sandbox's, with test-only secrets and the
# per-client rate limit off (with it on, a load generator measures nginx's 429 answers).
GROUP_VARS = {
    "stack_name": STACK,
    "stack_domains": ["localhost"],
    "vault_postgres_password": "bench-only-postgres-password",
    "vault_redis_password": "bench-only-redis-password",
    "vault_app_secret_key": "bench-only-secret-key",
    **{f"{role}_image_source": "archive" for role in ("postgres", "redis", "nginx", "app")},
    **{f"{role}_image_archive": str(ARCHIVE) for role in ("postgres", "redis", "nginx", "app")},
    "postgres_image": "deployer-test/postgres:17",
    "redis_image": "deployer-test/redis:8",
    "nginx_image": "deployer-test/nginx:1.26",
    "app_image": "deployer-sample/app:1",
    "app_module": "sample_app.wsgi:app",
    "app_celery_app": "sample_app.tasks:celery",
    "app_release_command": RELEASE_COMMAND,
    "tls_mode": "selfsigned",
    "nginx_rate_limit_enabled": False,
    "container_image_cut_dir": str(IMAGE_CUTS),
}


def log(message):
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def sh(*argv, check=True, capture=True, **kwargs):
    result = subprocess.run(argv, check=False, text=True,
                            stdout=subprocess.PIPE if capture else None,
                            stderr=subprocess.STDOUT if capture else None, **kwargs)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({result.returncode}):\n"
                           f"{(result.stdout or '')[-3000:]}")
    return result.stdout or ""


def load_average():
    return [float(x) for x in pathlib.Path("/proc/loadavg").read_text().split()[:3]]


def measured(function, *args, **kwargs):
    """Runs function and returns its result dict with wall time and load before and after."""
    before = load_average()
    start = time.monotonic()
    result = function(*args, **kwargs) or {}
    result["seconds"] = round(time.monotonic() - start, 1)
    result["load_before"] = before
    result["load_after"] = load_average()
    return result


# --- test hosts -------------------------------------------------------------------------

def host_names(count):
    return [f"{PREFIX}{i}" for i in range(1, count + 1)]


def host_address(name):
    return SUBNET.rsplit(".", 1)[0] + "." + str(10 + int(name.removeprefix(PREFIX)))


def remove_hosts():
    names = sh("docker", "ps", "-aq", "--filter", f"name=^{PREFIX}[0-9]+$").split()
    if names:
        sh("docker", "rm", "-f", "-v", *names)


def start_hosts(names):
    """Fresh test hosts with fixed addresses: the floor reuses the deployer's rendered files."""
    remove_hosts()
    if sh("docker", "network", "ls", "-q", "--filter", f"name=^{NETWORK}$").strip() == "":
        sh("docker", "network", "create", "--subnet", SUBNET, NETWORK)
    for name in names:
        sh("docker", "run", "-d", "--name", name, "--hostname", name, "--network", NETWORK,
           "--ip", host_address(name), *HOST_RUN_OPTIONS, HOST_IMAGE, "/sbin/init")
    for name in names:
        for _ in range(60):
            state = sh("docker", "exec", name, "timeout", "60", "systemctl",
                       "is-system-running", "--wait", check=False).strip()
            if state in ("running", "degraded"):
                break
            time.sleep(1)
        else:
            raise RuntimeError(f"{name} did not finish booting: {state}")


def wait_ready(lb, timeout=120):
    """The stack is healthy when /ready (app + PostgreSQL + Redis) answers through nginx."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["docker", "exec", lb, "curl", "-fsk", "-o", "/dev/null", "--max-time", "5",
                           "https://127.0.0.1/ready"], capture_output=True).returncode == 0:
            return
        time.sleep(0.5)
    raise RuntimeError(f"https://127.0.0.1/ready on {lb} did not answer within {timeout} s")


# --- the deployer -----------------------------------------------------------------------

def write_inventory(path, names, connection="docker", ssh_key=None):
    """names[0] holds every tier; the others are further app hosts."""
    shutil.rmtree(path, ignore_errors=True)
    (path / "group_vars/all").mkdir(parents=True)
    first = names[0]
    hosts = {}
    for name in names:
        if connection == "docker":
            hosts[name] = {"ansible_connection": "docker"}
        else:
            hosts[name] = {"ansible_connection": "ssh", "ansible_host": host_address(name),
                           "ansible_user": "deploy", "ansible_become": True,
                           "ansible_ssh_private_key_file": str(ssh_key)}
    inventory = {"all": {"hosts": hosts, "children": {
        "lb": {"hosts": {first: None}},
        "app": {"hosts": {name: None for name in names}},
        "worker": {"hosts": {first: None}},
        "db": {"hosts": {first: None}},
        "cache": {"hosts": {first: None}},
    }}}
    (path / "hosts.json").write_text(json.dumps(inventory, indent=2) + "\n")
    group_vars = dict(GROUP_VARS)
    group_vars["base_deploy_authorized_keys"] = [ssh_key.with_suffix(".pub").read_text().strip()]
    (path / "group_vars/all/main.json").write_text(json.dumps(group_vars, indent=2) + "\n")


VARIANTS = {
    # name: (connection, environment). ansible.cfg's strategy is mitogen_linear; the others
    # are Ansible's own linear strategy, as the fallback runs.
    "docker-exec, linear, no pipelining": ("docker", {"ANSIBLE_STRATEGY": "linear", "ANSIBLE_PIPELINING": "false"}),
    "docker-exec, linear, pipelining": ("docker", {"ANSIBLE_STRATEGY": "linear", "ANSIBLE_PIPELINING": "true"}),
    "docker-exec, mitogen_linear (default)": ("docker", {"ANSIBLE_STRATEGY": "mitogen_linear"}),
    "ssh, linear, no pipelining, no connection reuse": ("ssh", {
        "ANSIBLE_STRATEGY": "linear", "ANSIBLE_PIPELINING": "false", "ANSIBLE_SSH_ARGS": "-o ControlMaster=no"}),
    "ssh, linear, pipelining + ControlPersist": ("ssh", {"ANSIBLE_STRATEGY": "linear", "ANSIBLE_PIPELINING": "true"}),
    "ssh, mitogen_linear (default)": ("ssh", {"ANSIBLE_STRATEGY": "mitogen_linear"}),
}


def run_site(inventory, log_name, env_extra=None):
    env = dict(os.environ, ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_NOCOLOR="1", ANSIBLE_SSH_CONTROL_PATH_DIR=str(WORK / f"cp-{os.getpid()}"),
               # Per-task times in the log, and the slowest tasks in the results.
               ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks",
               PROFILE_TASKS_TASK_OUTPUT_LIMIT="8",
               # The bench's own (plugins/speedups/template_cache.py): deploy() empties it.
               DEPLOYER_TEMPLATE_CACHE_DIR=str(TEMPLATE_CACHE))
    if env_extra:
        env.update(env_extra)
    log_path = WORK / "logs" / f"{PREFIX}-{log_name}.log"
    # The control node's CPU time for the run (ansible-playbook and its workers): it varies less
    # than wall time when other work shares this machine's cores.
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "w") as out:
        rc = subprocess.run(["ansible-playbook", "site.yml", "-i", str(inventory)],
                            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT).returncode
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    controller_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    text = log_path.read_text()
    if rc != 0:
        raise RuntimeError(f"site.yml failed (rc {rc}); see {log_path}:\n{text[-3000:]}")
    recap = {}
    for host, fields in re.findall(rf"^({re.escape(PREFIX)}\d+)\s*:\s*(ok=.*)$", text, re.M):
        recap[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", fields)}
    slowest = re.findall(r"^(.+?) -+ (\d+\.\d+)s$", text.split("PLAY RECAP")[-1], re.M)
    return {"recap": recap, "changed": sum(r.get("changed", 0) for r in recap.values()),
            "tasks": sum(1 for line in text.splitlines() if line.startswith("TASK [")),
            "slowest_tasks": [[name.strip(), float(sec)] for name, sec in slowest],
            "controller_cpu_seconds": round(controller_cpu, 1),
            "log": str(log_path.relative_to(REPO))}


def deploy(names, ssh_key, log_name):
    inventory = WORK / f"inventory-{PREFIX}{len(names)}"
    write_inventory(inventory, names, ssh_key=ssh_key)
    # A cold deploy compiles every template, as on a control node that never ran site.yml;
    # the no-op runs after it find them compiled, as a user's next run does.
    shutil.rmtree(TEMPLATE_CACHE, ignore_errors=True)
    # Nor has it cut the image archive down to each host's images yet.
    shutil.rmtree(IMAGE_CUTS, ignore_errors=True)
    result = run_site(inventory, log_name)
    # Part of the measured time: a stack that answers only after site.yml ends is not done.
    ready_start = time.monotonic()
    wait_ready(names[0])
    result["ready_wait_seconds"] = round(time.monotonic() - ready_start, 1)
    return result


def image_archive_plugin():
    """The deployer's image_archive action plugin, whose cut the floor's archives come from."""
    spec = importlib.util.spec_from_file_location("image_archive", REPO / "plugins/action/image_archive.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def capture_bundles(names, bundle_dir, baseline_packages):
    """What the deployer left on each host that the floor reuses: rendered files, packages,
    and the tags it gave archive images (the app's release tag, which its compose file names)."""
    shutil.rmtree(bundle_dir, ignore_errors=True)
    bundle_dir.mkdir(parents=True)
    archived = set(pathlib.Path(f"{ARCHIVE}.ids").read_text().split())  # tests/images/build.sh
    for name in names:
        images = [line.split() for line in sh("docker", "exec", name, "docker", "images", "--no-trunc",
                                              "--format", "{{.Repository}}:{{.Tag}} {{.ID}}").splitlines()]
        (bundle_dir / f"{name}.tags").write_text("".join(
            f"{image_id} {tag}\n" for tag, image_id in images
            if image_id in archived))
        # The archive cut down to the images the deployer shipped to this host, as it ships them.
        shipped = sorted({image_id for _, image_id in images if image_id in archived})
        cut = image_archive_plugin().inspect(str(ARCHIVE), shipped, str(bundle_dir / "cuts"))
        if cut["cut"]:
            os.link(cut["path"], bundle_dir / f"{name}.images")
        with open(bundle_dir / f"{name}.tar", "wb") as out:
            subprocess.run(["docker", "exec", name, "sh", "-c",
                            f"cd / && tar --numeric-owner -cpf - $(ls -d opt/{STACK} etc/{STACK} 2>/dev/null)"],
                           stdout=out, check=True)
        manual = set(sh("docker", "exec", name, "apt-mark", "showmanual").split())
        (bundle_dir / f"{name}.packages").write_text("\n".join(sorted(manual - baseline_packages)) + "\n")


def floor(names, bundle_dir):
    env = dict(os.environ, FLOOR_STACK=STACK, FLOOR_RELEASE_COMMAND=" ".join(RELEASE_COMMAND))
    sh(str(BENCH / "floor.sh"), str(ARCHIVE), str(bundle_dir), *names, env=env)
    wait_ready(names[0])
    return {}


def summarize_pairs(entry):
    """The figures of a host count from its site.yml/floor pairs: the ratio is the median of
    the pairs' ratios (each pair ran back to back, so a drift of this machine's speed moves
    both of a pair's runs), and deployer and floor are those of the first pair, whose site.yml
    converged the hosts the no-op runs and the HTTP load used (kept at the entry's top level,
    where results written before --pairs have them)."""
    entry["deployer"] = entry["pairs"][0]["deployer"]
    ratios = [pair["ratio"] for pair in entry["pairs"] if "ratio" in pair]
    if ratios:
        entry["floor"] = entry["pairs"][0]["floor"]
        entry["ratio"] = round(statistics.median(ratios), 2)
    return entry


def deploy_against_floor(count, ssh_key, baseline_packages, label, results, save, converged=None, pairs=1):
    """site.yml on `count` fresh hosts, then the floor on `count` fresh hosts, `pairs` times in
    turn, appended to results as soon as each is known. converged(names) runs after the first
    site.yml, on the hosts it converged."""
    names = host_names(count)
    entry = {"hosts": count, "pairs": []}
    results.append(entry)
    bundle_dir = WORK / f"bundle-{PREFIX}{count}"
    for number in range(1, pairs + 1):
        name = label if pairs == 1 else f"{label} (pair {number}/{pairs})"
        suffix = "" if number == 1 else f"-{number}"
        log(f"{name}: fresh hosts {', '.join(names)}, site.yml")
        start_hosts(names)
        deployer = measured(deploy, names, ssh_key, f"{label}-site{suffix}")
        log(f"{name}: site.yml {deployer['seconds']} s, changed={deployer['changed']}")
        pair = {"deployer": deployer}
        entry["pairs"].append(pair)
        summarize_pairs(entry)
        save()
        if number == 1:
            capture_bundles(names, bundle_dir, baseline_packages)
            if converged:
                converged(names)
        log(f"{name}: fresh hosts, floor")
        start_hosts(names)
        bare = measured(floor, names, bundle_dir)
        log(f"{name}: floor {bare['seconds']} s")
        pair.update({"floor": bare, "ratio": round(deployer["seconds"] / bare["seconds"], 2)})
        summarize_pairs(entry)
        save()


# --- no-op re-runs ----------------------------------------------------------------------

def noop_runs(names, ssh_key, variants, repeats, results, save):
    """Appends one result per variant to results, calling save() after each. Each variant runs
    `repeats` times in a row: the seconds are the median, with every run's figure kept, because
    one run of the same code on this shared machine varies by several seconds."""
    for variant in variants:
        connection, env = VARIANTS[variant]
        inventory = WORK / f"inventory-noop-{PREFIX}{len(names)}-{connection}"
        write_inventory(inventory, names, connection=connection, ssh_key=ssh_key)
        slug = re.sub(r"[^a-z0-9]+", "-", variant.lower()).strip("-")
        runs = []
        for attempt in range(1, repeats + 1):
            # A new control path directory: each run opens its own SSH connections.
            shutil.rmtree(WORK / f"cp-{os.getpid()}", ignore_errors=True)
            (WORK / f"cp-{os.getpid()}").mkdir()
            name = f"noop-{slug}" if attempt == 1 else f"noop-{slug}-{attempt}"
            runs.append(measured(run_site, inventory, name, env))
            log(f"no-op [{variant}] run {attempt}/{repeats}: {runs[-1]['seconds']} s, "
                f"changed={runs[-1]['changed']}")
        result = {
            "variant": variant,
            "seconds": round(statistics.median(r["seconds"] for r in runs), 1),
            "runs_seconds": [r["seconds"] for r in runs],
            "controller_cpu_seconds": round(statistics.median(r["controller_cpu_seconds"] for r in runs), 1),
            # Each run must leave everything unchanged, so the largest count is the one to report.
            "changed": max(r["changed"] for r in runs),
            "load_before": runs[0]["load_before"],
            "load_after": runs[-1]["load_after"],
        }
        results.append(result)
        save()


# --- HTTP -------------------------------------------------------------------------------

def parse_wrk(text):
    def ms(value, unit):
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[unit]
    rps = re.search(r"Requests/sec:\s*([\d.]+)", text)
    latency = {p: ms(v, u) for p, v, u in re.findall(r"^\s*(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)}
    requests = re.search(r"(\d+) requests in", text)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
    errors = re.search(r"Socket errors:(.*)", text)
    timeouts = re.search(r"timeout (\d+)", errors.group(1)) if errors else None
    if requests and timeouts and int(timeouts.group(1)) >= int(requests.group(1)):
        latency = {}  # every request timed out (wrk gives up after 2 s): wrk prints 0 latencies
    return {"requests_per_second": float(rps.group(1)) if rps else None,
            "p50_ms": round(latency.get("50"), 2) if "50" in latency else None,
            "p99_ms": round(latency.get("99"), 2) if "99" in latency else None,
            "requests": int(requests.group(1)) if requests else None,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": errors.group(1).strip() if errors else ""}


def http_bench(host, duration, connections):
    """wrk inside the host (loopback and the host's own docker network only): through nginx
    with TLS on 127.0.0.1:443, and straight to the web container's port."""
    sh("docker", "exec", host, "sh", "-c",
       "command -v wrk >/dev/null || (apt-get update -qq && "
       "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null)")
    web = sh("docker", "exec", host, "docker", "inspect", "-f",
             "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", f"{STACK}-app-web-a-1").strip()
    results = []
    for path in ("/health", "/ready"):
        for target, base in (("nginx (TLS, HTTP/1.1)", "https://127.0.0.1"), ("app direct", f"http://{web}:8000")):
            def run():
                out = sh("docker", "exec", host, "wrk", "-t", "2", "-c", str(connections), "-d", f"{duration}s",
                         "--latency", base + path)
                return parse_wrk(out)
            result = measured(run)
            result.update({"path": path, "target": target, "connections": connections, "duration_s": duration})
            log(f"http {target} {path}: {result['requests_per_second']} req/s, p99 {result['p99_ms']} ms")
            results.append(result)
    return results


# --- report -----------------------------------------------------------------------------

def machine():
    cpu = re.search(r"model name\s*:\s*(.*)", pathlib.Path("/proc/cpuinfo").read_text())
    mem = re.search(r"MemTotal:\s*(\d+)", pathlib.Path("/proc/meminfo").read_text())
    return {
        "cores": os.cpu_count(),
        "cpu": cpu.group(1) if cpu else "",
        "memory_gib": round(int(mem.group(1)) / 1048576, 1) if mem else None,
        "docker_server": sh("docker", "version", "-f", "{{.Server.Version}}", check=False).strip(),
        "ansible_core": next(line for line in sh("ansible", "--version").splitlines() if line.startswith("ansible ")),
        "mitogen": sh(sys.executable, "-c", "import mitogen; print('.'.join(map(str, mitogen.__version__)))", check=False).strip(),
        "host_image": HOST_IMAGE,
    }


def calibration():
    """How fast this machine is right now, by two fixed pieces of work, each the median of 3
    runs in ms: a pure Python loop (the interpreter, as Ansible's own code) and 100 forks of
    this process that exit at once (the kernel's share of each Ansible worker). This machine's
    speed has varied about 2x within a day: compare runs by these, not only by the clock."""
    def loop():
        started = time.perf_counter()
        sum(i * i for i in range(2_000_000))
        return (time.perf_counter() - started) * 1000

    def forks():
        started = time.perf_counter()
        for _ in range(100):
            pid = os.fork()
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
        return (time.perf_counter() - started) * 1000

    return {"python_loop_ms": round(statistics.median(loop() for _ in range(3))),
            "fork_100_ms": round(statistics.median(forks() for _ in range(3)))}


def fmt_calibration(data):
    parts = [f"{when}: Python loop {c['python_loop_ms']} ms, 100 forks {c['fork_100_ms']} ms"
             for when, c in (("at the start", data.get("calibration_start")),
                             ("at the end", data.get("calibration_end"))) if c]
    return ("Machine speed (`calibration()` in bench/bench.py; lower is faster), " + "; ".join(parts) + ".") if parts else ""


def fmt_load(result):
    return f"{result['load_before'][0]:.2f} → {result['load_after'][0]:.2f}"


def markdown(data):
    m = data["machine"]
    lines = [f"# Bench run {data['started']}", "",
             f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB, Docker {m['docker_server']}, "
             f"{m['ansible_core']}, mitogen {m['mitogen']}. Load average (1 min) before → after each "
             "measurement is in the tables: this machine is shared, so figures are under load.", ""]
    if fmt_calibration(data):
        lines += [fmt_calibration(data), ""]
    if data.get("deploys"):
        lines += ["## Converge from fresh hosts against the floor", "",
                  f"Target: ratio ≤ {COLD_RATIO_TARGET}. Floor: `bench/floor.sh` on identical fresh hosts.", "",
                  "| hosts | site.yml (s) | of which /ready after it (s) | changed | floor (s) | ratio "
                  "| site.yml control node CPU s | load site.yml | load floor |",
                  "|---:|---:|---:|---:|---:|---:|---:|---|---|"]
        for d in data["deploys"]:
            floor_s, ratio, floor_load = ((d["floor"]["seconds"], f"**{d['ratio']}**", fmt_load(d["floor"]))
                                          if "floor" in d else ("(not reached)", "", ""))
            lines.append(f"| {d['hosts']} | {d['deployer']['seconds']} | {d['deployer'].get('ready_wait_seconds', '')} "
                         f"| {d['deployer']['changed']} | "
                         f"{floor_s} | {ratio} | {d['deployer']['controller_cpu_seconds']} "
                         f"| {fmt_load(d['deployer'])} | {floor_load} |")
        lines.append("")
        if any(len(d.get("pairs", [])) > 1 for d in data["deploys"]):
            lines += ["The ratio is the median of the pairs' ratios; site.yml and the floor above are the first "
                      "pair's. Each pair, site.yml then the floor on fresh hosts, back to back:", "",
                      "| hosts | pair | site.yml (s) | floor (s) | ratio | site.yml control node CPU s |",
                      "|---:|---:|---:|---:|---:|---:|"]
            for d in data["deploys"]:
                for number, pair in enumerate(d.get("pairs", []), 1):
                    lines.append(f"| {d['hosts']} | {number} | {pair['deployer']['seconds']} "
                                 f"| {pair['floor']['seconds'] if 'floor' in pair else '(not reached)'} "
                                 f"| {pair.get('ratio', '')} | {pair['deployer']['controller_cpu_seconds']} |")
            lines.append("")
        for d in data["deploys"]:
            if d["deployer"].get("slowest_tasks"):
                lines += [f"Slowest tasks of site.yml on {d['hosts']} host(s) (seconds): " + "; ".join(
                    f"{name} {sec}" for name, sec in d["deployer"]["slowest_tasks"]), ""]
    if data.get("noop"):
        lines += ["## No-op re-run of site.yml on the converged single host", "",
                  f"Target: changed=0 and ≤ {NOOP_SECONDS_TARGET} s.", "",
                  "| connection and strategy | seconds (median) | each run | control node CPU s (median) "
                  "| changed (most) | load |",
                  "|---|---:|---|---:|---:|---|"]
        for n in data["noop"]:
            runs = ", ".join(str(r) for r in n["runs_seconds"])
            lines.append(f"| {n['variant']} | {n['seconds']} | {runs} | {n['controller_cpu_seconds']} "
                         f"| {n['changed']} | {fmt_load(n)} |")
        lines.append("")
    if data.get("http"):
        h = data["http"][0]
        lines += ["## The deployed stack: nginx with TLS against the app directly", "",
                  f"wrk, 2 threads, {h['connections']} keep-alive connections, {h['duration_s']} s each, run "
                  "inside the single host (it shares the host's CPUs with the stack). Gunicorn, default workers.", "",
                  "| path | target | req/s | p50 (ms) | p99 (ms) | non-2xx | load |", "|---|---|---:|---:|---:|---:|---|"]
        for h in data["http"]:
            lines.append(f"| {h['path']} | {h['target']} | {h['requests_per_second']} | {h['p50_ms']} | "
                         f"{h['p99_ms']} | {h['non_2xx']} | {fmt_load(h)} |")
        lines.append("")
    if data.get("floor_only"):
        f = data["floor_only"]
        lines += ["## Floor only", "", f"`bench/floor.sh` on {f['hosts']} fresh host(s) from the files of an earlier "
                  f"site.yml run ({f['bundle']}): **{f['seconds']} s**, load {fmt_load(f)}.", ""]
    lines.append(f"Finished {data['finished']}; wall time of the whole bench {data['total_seconds']} s.")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="1,2,4", help="host counts to converge (default 1,2,4)")
    parser.add_argument("--variants", default=",".join(str(i) for i in range(len(VARIANTS))),
                        help="no-op variants by index: " + "; ".join(f"{i}={v}" for i, v in enumerate(VARIANTS)))
    parser.add_argument("--noop-repeats", type=int, default=3,
                        help="runs of each no-op variant; the median is reported (default 3)")
    parser.add_argument("--pairs", type=int, default=1,
                        help="site.yml/floor pairs per host count, run in turn; the median of their "
                             "ratios is reported with each pair's (default 1)")
    parser.add_argument("--http-seconds", type=int, default=10)
    parser.add_argument("--http-connections", type=int, default=16)
    parser.add_argument("--keep", action="store_true", help="leave the test hosts running at the end")
    parser.add_argument("--floor-only", metavar="BUNDLE_DIR", type=pathlib.Path,
                        help="only the floor, on fresh hosts, from the files an earlier run's site.yml "
                             "left in BUNDLE_DIR (bench/.work/bundle-*); single-host bundles hold no address")
    parser.add_argument("--http-only", action="store_true",
                        help="only the HTTP load, on bench-h1 as an earlier run left it (with --keep)")
    parser.add_argument("--noop-only", action="store_true",
                        help="only the no-op variants, on bench-h1 as an earlier run left it converged "
                             "(with --keep); the host is kept")
    args = parser.parse_args()

    # ansible.cfg makes mitogen_linear the default (plugins/strategy/mitogen_linear.py).
    if not ARCHIVE.exists():
        sys.exit(f"{ARCHIVE} is missing: run scripts/setup-control-node first")
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(exist_ok=True)
    ssh_key = WORK / "id_ed25519"
    if not ssh_key.exists():
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench-only", "-f", str(ssh_key))
    baseline = set(sh("docker", "run", "--rm", HOST_IMAGE, "apt-mark", "showmanual").split())

    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    data = {"started": stamp, "machine": machine(), "calibration_start": calibration(), "host_prefix": PREFIX,
            "deploys": [], "noop": [], "http": []}
    start = time.monotonic()
    out_json, out_md = RESULTS / f"{stamp}.json", RESULTS / f"{stamp}.md"

    def save(final=False):
        if final:
            data["calibration_end"] = calibration()
        data["finished"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        data["total_seconds"] = round(time.monotonic() - start)
        out_json.write_text(json.dumps(data, indent=2) + "\n")
        out_md.write_text(markdown(data))

    if args.noop_repeats < 1:
        parser.error("--noop-repeats must be at least 1")
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    variants = [list(VARIANTS)[int(i)] for i in args.variants.split(",") if i != ""]
    counts = [int(c) for c in args.scale.split(",") if c]
    if args.floor_only:
        sources = sorted(args.floor_only.glob("*.tar"))
        names = host_names(len(sources))
        bundle_dir = WORK / f"bundle-{PREFIX}-floor-only"
        shutil.rmtree(bundle_dir, ignore_errors=True)
        bundle_dir.mkdir(parents=True)
        for name, source in zip(names, sources):
            shutil.copy(source, bundle_dir / f"{name}.tar")
            shutil.copy(source.with_suffix(".packages"), bundle_dir / f"{name}.packages")
            shutil.copy(source.with_suffix(".tags"), bundle_dir / f"{name}.tags")
            if source.with_suffix(".images").exists():
                shutil.copy(source.with_suffix(".images"), bundle_dir / f"{name}.images")
        try:
            log(f"floor only: fresh hosts {', '.join(names)}")
            start_hosts(names)
            entry = measured(floor, names, bundle_dir)
            entry.update({"hosts": len(names), "bundle": str(args.floor_only)})
            data["floor_only"] = entry
            log(f"floor only: {entry['seconds']} s")
            save()
        finally:
            if not args.keep:
                remove_hosts()
                sh("docker", "network", "rm", NETWORK, check=False)
        return
    if args.http_only:
        data["http"] = http_bench(host_names(1)[0], args.http_seconds, args.http_connections)
        save()
        log(f"wrote {out_md.relative_to(REPO)} and {out_json.relative_to(REPO)}")
        return
    if args.noop_only:
        names = host_names(1)
        noop_runs(names, ssh_key, variants, args.noop_repeats, data["noop"], save)
        log(f"wrote {out_md.relative_to(REPO)} and {out_json.relative_to(REPO)}")
        print(out_md.read_text())
        return
    try:
        # The single host first: between its site.yml and its floor, the converged host
        # serves the no-op re-runs and the HTTP load.
        if 1 in counts:
            def converged(names):
                noop_runs(names, ssh_key, variants, args.noop_repeats, data["noop"], save)
                if args.http_seconds > 0:
                    data["http"] = http_bench(names[0], args.http_seconds, args.http_connections)
                    save()
            deploy_against_floor(1, ssh_key, baseline, "hosts-1", data["deploys"], save, converged, args.pairs)
        for count in counts:
            if count == 1:
                continue
            deploy_against_floor(count, ssh_key, baseline, f"hosts-{count}", data["deploys"], save, pairs=args.pairs)
    finally:
        save(final=True)
        if not args.keep:
            remove_hosts()
            sh("docker", "network", "rm", NETWORK, check=False)
    log(f"wrote {out_md.relative_to(REPO)} and {out_json.relative_to(REPO)}")
    print(out_md.read_text())


if __name__ == "__main__":
    main()
