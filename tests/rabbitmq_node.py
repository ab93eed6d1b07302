#!/usr/bin/env python3
"""The Python half of tests/rabbitmq-node.sh (which starts and stops the nodes).

    rabbitmq_node.py compose-prepare STATE BASE COMPOSE_FILE
        Reads the broker service of compose.yaml and lays out in STATE what a node needs to run
        with its settings: its rabbitmq.conf (the conf.d files compose mounts, the image's
        defaults first, container paths mapped to STATE), the definitions written by running
        the service's entrypoint script with the service's environment, and check.json for
        compose-probe (the worker's URL and queue, the admin user).
    rabbitmq_node.py compose-probe STATE NODE
        AMQP and HTTP checks against that node (and its paging ratio).
    rabbitmq_node.py cluster-probe STATE SCRIPT
        A quorum queue's failover and a classic queue's loss on the cluster in STATE.

Failures raise Failed: one line on stderr, exit 1.
"""

import base64
import json
import os
import pathlib
import re
import secrets
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import pika
import pika.exceptions
import yaml

# What the rabbitmq image adds itself (its /etc/rabbitmq/conf.d/10-defaults.conf): guest may
# log in from anywhere — so only its absence keeps guest out of compose's broker.
IMAGE_DEFAULTS = "loopback_users.guest = false\n"
# The -management image enables the management plugin (and Prometheus, not needed here).
IMAGE_PLUGINS = "[rabbitmq_management].\n"


class Failed(Exception):
    pass


# --- compose --------------------------------------------------------------------------------

INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<arg>[^}]*)\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value, env):
    """Compose's variable interpolation: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
    ${VAR:?error}, ${VAR?error}."""
    if not isinstance(value, str):
        return value

    def sub(m):
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("named")
        op, arg = m.group("op"), m.group("arg") or ""
        v = env.get(name)
        if op in (":-", ":?"):
            missing = not v
        else:
            missing = v is None
        if missing and op and op.endswith("-"):
            return arg
        if missing and op and op.endswith("?"):
            raise Failed(f"compose: {name} is required: {arg}")
        return v or ""

    return INTERPOLATION.sub(sub, value)


def required_variables(service):
    """Variables a service requires (${VAR:?…} or ${VAR?…})."""
    text = json.dumps(service)
    return sorted({m.group("braced") for m in INTERPOLATION.finditer(text) if m.group("op") in (":?", "?")})


def environment_of(service, env):
    e = service.get("environment") or {}
    if isinstance(e, list):
        e = dict(item.split("=", 1) if "=" in item else (item, env.get(item, "")) for item in e)
    return {k: interpolate(str(v), env) for k, v in e.items()}


def mounts_of(service, compose_dir, state):
    """Container path → local path, for every bind mount and tmpfs of the service."""
    mounts = {}
    for v in service.get("volumes") or []:
        if isinstance(v, dict):
            source, target = v.get("source", ""), v["target"]
        else:
            parts = v.split(":")
            if len(parts) < 2:
                continue
            source, target = parts[0], parts[1]
        if source.startswith((".", "/")):
            mounts[target] = str((compose_dir / source).resolve())
        # Named volumes are not used by the broker service; nothing to map.
    tmpfs = service.get("tmpfs") or []
    for t in [tmpfs] if isinstance(tmpfs, str) else tmpfs:
        target = t.split(":", 1)[0]
        local = state / "tmpfs" / target.strip("/").replace("/", "_")
        mounts[target] = str(local)
    return mounts


def map_paths(text, mounts):
    """Replaces container paths (longest first) by their local paths."""
    for target in sorted(mounts, key=len, reverse=True):
        text = re.sub(re.escape(target) + r"(?=$|[/\s\"'])", mounts[target], text)
    return text


def compose_prepare(state, base, compose_file):
    state = pathlib.Path(state)
    base = int(base)
    compose_file = pathlib.Path(compose_file).resolve()
    compose = yaml.safe_load(compose_file.read_text())
    services = compose.get("services", {})
    broker = next(
        (s for s in services.values() if str(s.get("image", "")).startswith("rabbitmq")), None
    )
    if broker is None:
        raise Failed(f"{compose_file}: no service runs a rabbitmq image")
    worker = services.get("worker")
    if worker is None:
        raise Failed(f"{compose_file}: no worker service")

    # The variables compose requires, as an operator's .env would set them: taken from the
    # environment when set there, random otherwise (hex, as compose.yaml says to make them).
    env = dict(os.environ)
    generated = []
    for name in sorted(set(required_variables(broker)) | set(required_variables(worker))):
        if not env.get(name):
            env[name] = secrets.token_hex(16)
            generated.append(name)

    mounts = mounts_of(broker, compose_file.parent, state)
    for local in mounts.values():
        if not os.path.exists(local) and local.startswith(str(state)):
            os.makedirs(local, exist_ok=True)
    broker_env = {k: map_paths(v, mounts) for k, v in environment_of(broker, env).items()}

    # 1. The service's entrypoint, without its command: it writes the definitions.
    entrypoint = broker.get("entrypoint")
    if entrypoint:
        if isinstance(entrypoint, str):
            entrypoint = ["sh", "-c", entrypoint]
        argv = [map_paths(a, mounts) for a in entrypoint]
        run_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **broker_env}
        out = subprocess.run(argv, env=run_env, cwd=state, capture_output=True, text=True)
        if out.returncode != 0:
            last = (out.stderr.strip().splitlines() or ["(no output)"])[-1]
            raise Failed(f"the broker's entrypoint {' '.join(entrypoint)} failed: {last}")

    # 2. rabbitmq.conf: the image's defaults, then the conf.d files in name order, then
    # /etc/rabbitmq/rabbitmq.conf if mounted, then this node's listeners.
    conf = ["# the rabbitmq image's defaults", IMAGE_DEFAULTS]
    confd = sorted(t for t in mounts if t.startswith("/etc/rabbitmq/conf.d/"))
    for target in confd + [t for t in mounts if t == "/etc/rabbitmq/rabbitmq.conf"]:
        conf.append(f"# {target}")
        conf.append(map_paths(pathlib.Path(mounts[target]).read_text(), mounts))
    conf.append("# this node")
    conf.append(f"listeners.tcp.default = 127.0.0.1:{base}")
    conf.append(f"management.tcp.port = {base + 20}")
    conf.append("management.tcp.ip = 127.0.0.1")
    (state / "rabbitmq.conf").write_text("\n".join(conf) + "\n")
    if "/etc/rabbitmq/advanced.config" in mounts:
        advanced = pathlib.Path(mounts["/etc/rabbitmq/advanced.config"]).read_text()
        (state / "advanced.config").write_text(map_paths(advanced, mounts))
    (state / "enabled_plugins").write_text(IMAGE_PLUGINS)
    # The service's own RABBITMQ_* variables (this node's names, ports and paths win).
    (state / "service.env").write_text(
        "".join(
            f"export {k}={shlex.quote(v)}\n"
            for k, v in sorted(broker_env.items())
            if k.startswith("RABBITMQ_")
        )
    )

    # 3. What the worker uses, pointed at this node.
    worker_env = environment_of(worker, env)
    url = worker_env.get("MIDNIT_AMQP_URL", "")
    parsed = urllib.parse.urlsplit(url.split(",")[0].strip())
    if not parsed.username:
        raise Failed("the worker's MIDNIT_AMQP_URL has no user")
    local_url = parsed._replace(netloc=f"{parsed.username}:{parsed.password}@127.0.0.1:{base}")
    check = {
        "url": urllib.parse.urlunsplit(local_url),
        "user": urllib.parse.unquote(parsed.username),
        "queue": worker_env.get("MIDNIT_QUEUE", "midnit.render"),
        "topology": worker_env.get("MIDNIT_TOPOLOGY", "transient"),
        "delivery_limit": int(worker_env.get("MIDNIT_DELIVERY_LIMIT", "3")),
        "broker_user": broker_env.get("MIDNIT_BROKER_USER"),
        "admin_user": broker_env.get("MIDNIT_BROKER_ADMIN_USER"),
        "admin_password": broker_env.get("MIDNIT_BROKER_ADMIN_PASSWORD"),
        "management": f"http://127.0.0.1:{base + 20}",
        "generated": generated,
    }
    (state / "check.json").write_text(json.dumps(check))
    os.chmod(state / "check.json", 0o600)


def connect(url, attempts=1):
    params = pika.URLParameters(url)
    params.connection_attempts = attempts
    params.retry_delay = 0.5
    params.socket_timeout = 5
    params.blocked_connection_timeout = 10
    return pika.BlockingConnection(params)


def refused(url):
    """True if the broker refuses this login (ACCESS_REFUSED)."""
    try:
        connect(url).close()
    except pika.exceptions.ProbableAuthenticationError:
        return True
    except pika.exceptions.ConnectionClosedByBroker as e:
        return e.reply_code == 403
    return False


def http_status(url, user, password):
    req = urllib.request.Request(url)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None


def node_setting(node, app, key):
    out = subprocess.run(
        ["rabbitmqctl", "-q", "-n", node, "eval", f"application:get_env({app}, {key})."],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return out.stdout.strip()


def compose_probe(state, node):
    state = pathlib.Path(state)
    c = json.loads((state / "check.json").read_text())
    url, user, queue = c["url"], c["user"], c["queue"]
    if c["broker_user"] and c["broker_user"] != user:
        raise Failed(
            f"the worker connects as {user!r} but the broker's MIDNIT_BROKER_USER is {c['broker_user']!r}"
        )

    # The workers' user: declare the jobs queue as the worker of this topology does (the
    # definitions' queue must match: RabbitMQ refuses other arguments), publish with
    # confirms, get it back.
    if c["topology"] == "durable":
        arguments = {"x-queue-type": "quorum", "x-delivery-limit": c["delivery_limit"]}
    else:
        arguments = {}
    try:
        conn = connect(url, attempts=3)
    except pika.exceptions.AMQPError as e:
        raise Failed(f"the worker's user {user!r} cannot connect: {e!r}") from None
    ch = conn.channel()
    ch.confirm_delivery()
    try:
        ch.queue_declare(queue, durable=True, arguments=arguments)
    except pika.exceptions.ChannelClosedByBroker as e:
        raise Failed(f"declaring {queue} as a {c['topology']} worker does failed: {e}") from None
    # Only what this check publishes may be taken off the queue.
    depth = ch.queue_declare(queue, passive=True).method.message_count
    if depth:
        raise Failed(f"{queue} already holds {depth} messages")
    body = secrets.token_bytes(32)
    token = secrets.token_hex(8)
    ch.basic_publish(
        "",
        queue,
        body,
        pika.BasicProperties(
            correlation_id=token,
            content_type="application/octet-stream",
            delivery_mode=2 if c["topology"] == "durable" else 1,
        ),
        mandatory=True,
    )
    got = None
    for _ in range(50):
        method, props, got_body = ch.basic_get(queue, auto_ack=False)
        if method:
            ch.basic_ack(method.delivery_tag)
            got = (props.correlation_id, got_body)
            break
        time.sleep(0.1)
    if got != (token, body):
        raise Failed(f"the message published to {queue} did not come back: {got!r}")
    conn.close()

    # Nobody else gets in.
    if not refused(re.sub(r"//[^@]*@", "//guest:guest@", url)):
        raise Failed("guest/guest is let in")
    if not refused(re.sub(r"//([^:]*):[^@]*@", r"//\1:wrong-password@", url)):
        raise Failed(f"{user!r} is let in with a wrong password")

    # The management UI: the admin user only.
    mgmt = c["management"] + "/api/whoami"
    status, who = http_status(mgmt, c["admin_user"], c["admin_password"])
    if status != 200 or "administrator" not in str(who.get("tags")):
        raise Failed(f"the management UI refuses {c['admin_user']!r} (HTTP {status})")
    for u, p in (("guest", "guest"), (c["admin_user"], "wrong-password")):
        status, _ = http_status(mgmt, u, p)
        if status != 401:
            raise Failed(f"the management UI lets {u!r} in (HTTP {status})")
    status, _ = http_status(mgmt, user, urllib.parse.unquote(urllib.parse.urlsplit(url).password))
    if status != 401:
        raise Failed(f"the workers' user {user!r} can use the management UI (HTTP {status})")

    # advanced.config is read: no paging of transient messages before the memory alarm.
    ratio = node_setting(node, "rabbit", "vm_memory_high_watermark_paging_ratio")
    m = re.fullmatch(r"\{ok,([0-9.]+)\}", ratio)
    if not m or float(m.group(1)) <= 1:
        raise Failed(f"vm_memory_high_watermark_paging_ratio is {ratio}, not above 1")

    print(
        f"compose-check ok: {user!r} declared ({c['topology']}), published to and got from "
        f"{queue}; guest and a wrong password refused; management UI: {c['admin_user']!r} in, "
        f"guest and {user!r} out; paging ratio {m.group(1)}"
    )


# --- the cluster ----------------------------------------------------------------------------


def script(sh, *args):
    out = subprocess.run(["bash", sh, *args], capture_output=True, text=True)
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or [f"{args} failed"])[-1]
        raise Failed(last.removeprefix("rabbitmq-node: "))
    return out.stdout.strip()


def cluster_probe(state, sh):
    state = pathlib.Path(state)
    nodes = {}
    for line in (state / "nodes").read_text().splitlines():
        short, name, amqp, _ = line.split()
        nodes[short] = (name, f"amqp://guest:guest@127.0.0.1:{amqp}/%2f")
    name_to_short = {n: s for s, (n, _) in nodes.items()}
    url = lambda s: nodes[s][1]  # noqa: E731
    say = lambda *a: print("cluster-check:", *a, file=sys.stderr)  # noqa: E731

    # --- a quorum queue: declared via c1, published via c2, consumed via c3.
    q = "midnit.failover." + secrets.token_hex(4)
    c1 = connect(url("c1"), attempts=3)
    c1.channel().queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
    c1.close()
    c2 = connect(url("c2"), attempts=3)
    ch2 = c2.channel()
    ch2.confirm_delivery()
    total = 20
    for i in range(total):
        ch2.basic_publish("", q, f"job-{i}".encode(), pika.BasicProperties(delivery_mode=2))
    c2.close()
    c3 = connect(url("c3"), attempts=3)
    ch3 = c3.channel()
    m, _, body = ch3.basic_get(q)
    if not m:
        raise Failed(f"nothing to get from {q} via c3")
    ch3.basic_ack(m.delivery_tag)
    acked = {body}
    leader = script(sh, "leader", q)
    lead = name_to_short.get(leader)
    if lead is None:
        raise Failed(f"{q}'s leader {leader} is not one of the nodes")
    survivors = [s for s in nodes if s != lead]
    say(f"{q}: {total} published via c2, 1 consumed via c3; leader {leader}")

    # One job in flight on a connection to the leader (it dies with it); a consumer on a
    # survivor, as a worker consumes (prefetch 1, manual acks), holding another one.
    on_leader = connect(url(lead), attempts=3)
    m_lost, _, lost_body = on_leader.channel().basic_get(q)
    if not m_lost:
        raise Failed("could not take a job in flight on the leader")
    s_conn = connect(url(survivors[0]), attempts=3)
    s_ch = s_conn.channel()
    s_ch.basic_qos(prefetch_count=1)
    held = next(s_ch.consume(q, inactivity_timeout=10))
    if held[0] is None:
        raise Failed(f"the consumer on {survivors[0]} got nothing")

    t0 = time.monotonic()
    say(script(sh, "kill", lead))
    # The consumer's job is acked after the leader died: the ack must reach the new leader.
    s_ch.basic_ack(held[0].delivery_tag)
    acked.add(held[2])

    # The same consumer takes the rest, the job that was in flight on the killed node among
    # them (redelivered), once a new leader is elected.
    got, redelivered, first = [], [], None
    want = total - len(acked)
    deadline = time.monotonic() + 60
    counts = {}
    for m, props, body in s_ch.consume(q, inactivity_timeout=0.5):
        if m is not None:
            if first is None:
                first = time.monotonic() - t0
            s_ch.basic_ack(m.delivery_tag)
            got.append(body)
            if m.redelivered:
                redelivered.append(body)
                counts[body] = (props.headers or {}).get("x-delivery-count")
        if len(got) >= want or time.monotonic() > deadline:
            break
    s_ch.cancel()
    if first is None:
        raise Failed(f"the consumer on {survivors[0]} got nothing after the leader was killed")
    failover_get = first
    # basic.get through the other survivor, now that a leader is elected.
    other = connect(url(survivors[1]), attempts=3)
    if other.channel().basic_get(q)[0] is not None:
        raise Failed("a job was delivered twice to the same consumer run")
    new_leader = script(sh, "leader", q)
    expected = {f"job-{i}".encode() for i in range(total)} - acked
    if set(got) != expected or len(got) != len(expected):
        missing = sorted(expected - set(got))
        raise Failed(
            f"after the kill got {len(got)} jobs, expected {len(expected)} (missing {missing[:5]})"
        )
    if lost_body not in redelivered:
        raise Failed("the job in flight on the killed node was not redelivered")
    if name_to_short.get(new_leader) == lead:
        raise Failed(f"the leader is still the killed node {new_leader}")
    say(
        f"killed the leader {leader}: the consumer on {survivors[0]} got its next job "
        f"{failover_get:.2f} s later and all {len(got)} remaining jobs, the one in flight on the "
        f"killed node redelivered (x-delivery-count {counts.get(lost_body)}), its own in-flight "
        f"ack kept; new leader {new_leader}"
    )
    for c in (s_conn, other, c3):
        try:
            c.close()
        except Exception:
            pass

    # The killed node comes back and rejoins.
    t1 = time.monotonic()
    script(sh, "start", lead)
    restart = time.monotonic() - t1
    say(f"{lead} started again in {restart:.1f} s: {script(sh, 'status').replace(chr(10), '; ')}")

    # --- a graceful stop and start of another node, with the queue in use.
    stop_me = survivors[0]
    t2 = time.monotonic()
    script(sh, "stop", stop_me)
    stop_t = time.monotonic() - t2
    conn = connect(url(survivors[1]), attempts=3)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", q, b"after-stop", pika.BasicProperties(delivery_mode=2))
    m, _, body = ch.basic_get(q)
    if body != b"after-stop":
        raise Failed(f"publish/get with {stop_me} stopped returned {body!r}")
    ch.basic_ack(m.delivery_tag)
    conn.close()
    t3 = time.monotonic()
    script(sh, "start", stop_me)
    say(
        f"stopped {stop_me} in {stop_t:.1f} s, the queue served on, started it again in "
        f"{time.monotonic() - t3:.1f} s"
    )

    # --- a classic queue lives on one node: its jobs go when that node goes.
    cq = "midnit.classic." + secrets.token_hex(4)
    home = "c2"
    conn = connect(url(home), attempts=3)
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare(cq, durable=True)
    for i in range(5):
        ch.basic_publish("", cq, f"transient-{i}".encode(), pika.BasicProperties(delivery_mode=1))
    conn.close()
    say(script(sh, "kill", home))
    conn = connect(url("c1"), attempts=3)
    ch = conn.channel()
    try:
        ch.queue_declare(cq, passive=True)
        down_msg = "still declared passively"
    except pika.exceptions.ChannelClosedByBroker as e:
        down_msg = f"{e.reply_code} {e.reply_text}"
    conn.close()
    script(sh, "start", home)
    conn = connect(url("c1"), attempts=3)
    left = conn.channel().queue_declare(cq, passive=True).method.message_count
    conn.channel().queue_delete(cq)
    conn.channel().queue_delete(q)
    conn.close()
    if left != 0:
        raise Failed(f"the classic queue kept {left} non-persistent jobs across its node's death")
    say(f"classic queue {cq} on {home}: 5 non-persistent jobs; {home} killed: via c1 \"{down_msg}\"; "
        f"{home} back: 0 jobs left")
    print(
        f"cluster-check ok: quorum queue survived killing its leader (first get {failover_get:.2f} s "
        f"after the kill, nothing lost, the in-flight job redelivered); classic queue's jobs lost "
        f"with its node"
    )


def main(argv):
    try:
        if argv[:1] == ["compose-prepare"] and len(argv) == 4:
            compose_prepare(*argv[1:])
        elif argv[:1] == ["compose-probe"] and len(argv) == 3:
            compose_probe(*argv[1:])
        elif argv[:1] == ["cluster-probe"] and len(argv) == 3:
            cluster_probe(*argv[1:])
        else:
            raise Failed(f"usage: {__doc__.strip().splitlines()[0]}")
    except Failed as e:
        print(f"rabbitmq-node: {e}", file=sys.stderr)
        return 1
    except (pika.exceptions.AMQPError, OSError) as e:
        print(f"rabbitmq-node: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
