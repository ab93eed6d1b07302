#!/usr/bin/env python3
"""Checks the deploy files without a container engine or a cluster.

Every YAML and JSON file must parse; then each file is checked for what the worker relies on:
the Dockerfile's stages, user, health check and stop signal; the Kubernetes Deployment's
security context, memory-backed spill volume, probes and grace period (above the drain
timeout); the disruption budget and KEDA object pointing at the Deployment and the jobs queue;
compose's read-only worker with a tmpfs; the RabbitMQ definitions matching what the worker
declares for each topology; the systemd unit. Run by .ci/run:

    python3 deploy/check.py
"""

import json
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent
problems = []


def check(ok, what):
    if not ok:
        problems.append(what)


def env_of(container):
    return {e["name"]: e.get("value") for e in container.get("env", [])}


# The example configuration: the queue and drain timeout the other files must agree with.
example = tomllib.loads((DEPLOY / "worker.example.toml").read_text())
QUEUE = example["broker"]["queue"]
DRAIN = example["worker"]["drain_timeout_secs"]

# 1. Every YAML and JSON file parses.
docs = {}
for path in sorted(DEPLOY.rglob("*")):
    try:
        if path.suffix in (".yaml", ".yml"):
            docs[path.relative_to(DEPLOY).as_posix()] = [
                d for d in yaml.safe_load_all(path.read_text()) if d is not None
            ]
        elif path.suffix == ".json":
            docs[path.relative_to(DEPLOY).as_posix()] = json.loads(path.read_text())
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        problems.append(f"{path.name}: does not parse: {e}")

# 2. The Dockerfile's structure.
lines = [
    l.strip()
    for l in (DEPLOY / "Dockerfile").read_text().splitlines()
    if l.strip() and not l.strip().startswith("#")
]
# Join continuation lines so each instruction is one string.
instructions, current = [], ""
for l in lines:
    current += " " + l.rstrip("\\").strip()
    if not l.endswith("\\"):
        instructions.append(current.strip())
        current = ""
ops = [i.split()[0].upper() for i in instructions]
stages = [i for i in instructions if i.upper().startswith("FROM ")]
check(len(stages) >= 2, "Dockerfile: needs a build stage and a runtime stage")
check(" AS " in stages[0].upper(), "Dockerfile: the build stage must be named")
final = instructions[instructions.index(stages[-1]) :]
users = [i.split()[1] for i in final if i.upper().startswith("USER ")]
check(
    users and users[-1].split(":")[0] not in ("root", "0"),
    "Dockerfile: the runtime stage must run as a non-root user",
)
check(
    any(i.upper().startswith("COPY --FROM=") for i in final),
    "Dockerfile: the runtime stage copies the binary from the build stage",
)
check("HEALTHCHECK" in ops, "Dockerfile: needs a HEALTHCHECK")
check("STOPSIGNAL SIGTERM" in instructions, "Dockerfile: STOPSIGNAL SIGTERM")
check("EXPOSE 9464" in instructions, "Dockerfile: EXPOSE 9464 (health and metrics)")
for i in instructions:
    if i.upper().startswith(("ENTRYPOINT", "CMD", "HEALTHCHECK")):
        body = i.split(" CMD ", 1)[-1] if i.upper().startswith("HEALTHCHECK") else i.split(None, 1)[1]
        check(body.strip().startswith("["), f"Dockerfile: exec form (JSON array) for: {i}")
    check(not re.match(r"ADD\s+https?://", i, re.I), f"Dockerfile: no remote ADD: {i}")
check(
    any("MIDNIT_SPILL_DIR=/spill" in i for i in final),
    "Dockerfile: MIDNIT_SPILL_DIR=/spill (the tmpfs mount point)",
)

# 3. Kubernetes.
k8s = {}
for name, ds in docs.items():
    if name.startswith("k8s/"):
        for d in ds:
            k8s[(d["kind"], d["metadata"]["name"])] = d
deploy = k8s.get(("Deployment", "midnit-worker"))
check(deploy is not None, "k8s: a Deployment named midnit-worker")
if deploy:
    spec = deploy["spec"]["template"]["spec"]
    labels = deploy["spec"]["template"]["metadata"]["labels"]
    check(
        deploy["spec"]["selector"]["matchLabels"].items() <= labels.items(),
        "k8s: the Deployment's selector matches its pods",
    )
    pod_sc = spec.get("securityContext", {})
    check(pod_sc.get("runAsNonRoot") is True, "k8s: runAsNonRoot")
    (c,) = spec["containers"]
    sc = c.get("securityContext", {})
    check(sc.get("readOnlyRootFilesystem") is True, "k8s: readOnlyRootFilesystem")
    check(sc.get("allowPrivilegeEscalation") is False, "k8s: allowPrivilegeEscalation false")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], "k8s: drop all capabilities")
    env = env_of(c)
    drain = int(env.get("MIDNIT_DRAIN_TIMEOUT_SECS", DRAIN))
    check(
        spec.get("terminationGracePeriodSeconds", 30) > drain,
        "k8s: terminationGracePeriodSeconds above the drain timeout",
    )
    spill = env.get("MIDNIT_SPILL_DIR")
    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    vol = volumes.get(mounts.get(spill, ""), {})
    check(
        vol.get("emptyDir", {}).get("medium") == "Memory",
        "k8s: the spill directory is a memory-backed emptyDir",
    )
    check(env.get("MIDNIT_SEALED") == "required", "k8s: production workers take only sealed jobs")
    state = env.get("MIDNIT_KEY_STATE_FILE", "")
    key_mount = next((m for m in mounts if state.startswith(m + "/")), None)
    check(
        key_mount is not None and "secret" in volumes.get(mounts[key_mount], {}),
        "k8s: the key state file is in a mounted Secret (tmpfs)",
    )
    rotate = k8s.get(("CronJob", "midnit-keys-rotate"))
    check(rotate is not None, "k8s: a CronJob keeps the key state at the current epoch")
    if rotate:
        script = json.dumps(rotate["spec"]["jobTemplate"]["spec"]["template"]["spec"])
        check("keys rotate" in script, "k8s: the CronJob runs `keys rotate`")
    port = env.get("MIDNIT_HTTP_ADDR", "").rsplit(":", 1)[-1]
    ports = {p["name"]: str(p["containerPort"]) for p in c.get("ports", [])}
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path, f"k8s: {probe} on {path}")
        check(
            ports.get(get.get("port"), str(get.get("port"))) == port,
            f"k8s: {probe} on the MIDNIT_HTTP_ADDR port",
        )
    pdb = k8s.get(("PodDisruptionBudget", "midnit-worker"))
    check(
        pdb is not None and pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(),
        "k8s: a PodDisruptionBudget selecting the workers",
    )
    scaled = k8s.get(("ScaledObject", "midnit-worker"))
    check(scaled is not None, "k8s: a KEDA ScaledObject")
    if scaled:
        check(
            scaled["spec"]["scaleTargetRef"]["name"] == deploy["metadata"]["name"],
            "KEDA: scales the worker Deployment",
        )
        trigger = scaled["spec"]["triggers"][0]
        check(trigger["type"] == "rabbitmq", "KEDA: a rabbitmq trigger")
        check(trigger["metadata"]["queueName"] == QUEUE, "KEDA: on the jobs queue")
        auth = trigger.get("authenticationRef", {}).get("name")
        check(("TriggerAuthentication", auth) in k8s, "KEDA: its TriggerAuthentication exists")

# 4. compose.
compose = docs.get("compose.yaml", [{}])[0]
worker = compose.get("services", {}).get("worker", {})
check(worker.get("read_only") is True, "compose: the worker's root filesystem is read-only")
check(
    any(t.startswith("/spill") for t in worker.get("tmpfs", [])),
    "compose: a tmpfs for /spill",
)
grace = int(str(worker.get("stop_grace_period", "10s")).rstrip("s"))
check(grace > DRAIN, "compose: stop_grace_period above the drain timeout")
check(
    "management" in compose.get("services", {}).get("rabbitmq", {}).get("image", ""),
    "compose: RabbitMQ with the management plugin",
)

# 5. RabbitMQ definitions match what the worker declares for each topology.
for topology in ("transient", "durable"):
    d = docs.get(f"rabbitmq/definitions.{topology}.json")
    check(d is not None, f"rabbitmq: definitions.{topology}.json")
    if not d:
        continue
    queues = {q["name"]: q for q in d["queues"]}
    jobs, dead = queues.get(QUEUE), queues.get(f"{QUEUE}.dead")
    check(jobs is not None and dead is not None, f"{topology}: jobs and dead-letter queues")
    if not (jobs and dead):
        continue
    args = jobs["arguments"]
    check(
        "x-dead-letter-exchange" not in args,
        f"{topology}: the jobs queue dead-letters nothing (a broker dead letter holds a photo)",
    )
    is_quorum = args.get("x-queue-type") == "quorum"
    check(is_quorum == (topology == "durable"), f"{topology}: queue type")
    check(
        ("x-delivery-limit" in args) == (topology == "durable"),
        f"{topology}: delivery limit only on the quorum queue",
    )
    check("x-message-ttl" in dead["arguments"], f"{topology}: dead letters expire")
    check(
        any(
            b["source"] == f"{QUEUE}.dlx" and b["destination"] == f"{QUEUE}.dead"
            for b in d["bindings"]
        ),
        f"{topology}: the dead-letter queue is bound to the exchange",
    )
    check(
        any(re.fullmatch(p["pattern"], QUEUE) for p in d.get("policies", [])),
        f"{topology}: a policy bounds the jobs queue",
    )

# 6. The systemd unit.
unit = (DEPLOY / "midnit-worker.service").read_text()
for needed in ("[Unit]", "[Service]", "[Install]", "ExecStart=", "KillSignal=SIGTERM", "LimitCORE=0"):
    check(needed in unit, f"systemd: {needed}")
stop = re.search(r"TimeoutStopSec=(\d+)", unit)
check(stop and int(stop.group(1)) > DRAIN, "systemd: TimeoutStopSec above the drain timeout")
if shutil.which("systemd-analyze"):
    out = subprocess.run(
        ["systemd-analyze", "verify", str(DEPLOY / "midnit-worker.service")],
        capture_output=True,
        text=True,
    )
    # The binary is not installed here; every other complaint is a problem.
    complaints = [
        l
        for l in out.stderr.splitlines()
        if l.strip() and "midnit-worker" not in l.split(":")[-1] and "not executable" not in l
        and "No such file" not in l
    ]
    check(not complaints, f"systemd-analyze verify: {complaints}")

if problems:
    print("deploy check FAILED:")
    for p in problems:
        print("  -", p)
    sys.exit(1)
print(f"deploy check ok: {len(docs)} YAML/JSON files, Dockerfile, systemd unit")
