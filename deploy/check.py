#!/usr/bin/env python3
"""Checks the deploy files without a container engine or a cluster.

Every YAML and JSON file must parse; then each file is checked for what the worker relies on:

- the Dockerfile: its stages, user, health check and stop signal; that its build stage copies
  everything `cargo build` reads (the manifests and lock file, every workspace member and path
  dependency, every target Cargo.toml names, and every file the sources embed with
  include_bytes!/include_str!/include!) and that .dockerignore lets all of it into the build
  context; that the runtime stage declares no VOLUME (a volume is disk-backed; /spill must be
  a tmpfs) and requires a tmpfs spill directory;
- Kubernetes: every manifest against the Kubernetes API schemas (kubernetes-validate,
  strict); the Deployment's security context, memory-backed spill volume, probes and grace
  period (above the drain timeout), no `replicas` under KEDA, no service links; a disruption
  budget that lets a drain through at KEDA's minimum; the KEDA objects' structure, queue and
  TLS settings for an amqps:// broker;
- compose's read-only worker with a tmpfs; the RabbitMQ definitions matching what the worker
  declares for each topology;
- the systemd units: `systemd-analyze verify`, `systemd-analyze security` at or below 2.5,
  configuration and keys reachable by the dynamic user (LoadCredential=), the system calls
  the worker and its renderers make allowed by the filter.

Needs PyYAML, kubernetes-validate and systemd-analyze. Run by .ci/run:

    python3 deploy/check.py
"""

import base64
import fnmatch
import json
import os
import pathlib
import re
import shlex
import shutil
import subprocess
import sys
import tomllib

import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent
REPO = DEPLOY.parent
problems = []


def check(ok, what):
    if not ok:
        problems.append(what)
    return ok


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


# 2. The Dockerfile.
def dockerfile_instructions(text):
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    instructions, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not current):
            continue
        if line.endswith("\\"):
            current += line[:-1].strip() + " "
            continue
        current += line
        if current.strip():
            instructions.append(current.strip())
        current = ""
    if current.strip():
        instructions.append(current.strip())
    return instructions


def split_flags(args):
    """`--flag=value` words at the start of an instruction's arguments, and the rest."""
    words = shlex.split(args) if not args.lstrip().startswith("[") else None
    if words is None:  # JSON (exec) form: ["src", ..., "dest"]
        return {}, json.loads(args)
    flags = {}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        flags.setdefault(name, []).append(value)
    return flags, words


def env_pairs(args):
    words = shlex.split(args)
    if words and "=" not in words[0]:  # legacy `ENV key value`
        return {words[0]: " ".join(words[1:])}
    return dict(w.split("=", 1) for w in words if "=" in w)


class Stage:
    def __init__(self, line):
        words = line.split()
        self.base = words[1]
        self.name = words[3] if len(words) >= 4 and words[2].upper() == "AS" else None
        self.instructions = []


dockerfile_text = (DEPLOY / "Dockerfile").read_text()
instructions = dockerfile_instructions(dockerfile_text)
ops = [i.split()[0].upper() for i in instructions]
stages = []
for i in instructions:
    if i.upper().startswith("FROM "):
        stages.append(Stage(i))
    elif stages:
        stages[-1].instructions.append(i)
check(len(stages) >= 2, "Dockerfile: needs a build stage and a runtime stage")
check(stages and stages[0].name, "Dockerfile: the build stage must be named")
final = stages[-1].instructions if stages else []
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
        body = (
            i.split(" CMD ", 1)[-1] if i.upper().startswith("HEALTHCHECK") else i.split(None, 1)[1]
        )
        check(body.strip().startswith("["), f"Dockerfile: exec form (JSON array) for: {i}")
    check(not re.match(r"ADD\s+https?://", i, re.I), f"Dockerfile: no remote ADD: {i}")

# The runtime stage: /spill is a tmpfs the operator mounts, never a volume.
final_env = {}
for i in final:
    if i.upper().startswith("ENV "):
        final_env.update(env_pairs(i.split(None, 1)[1]))
check(
    final_env.get("MIDNIT_SPILL_DIR") == "/spill",
    "Dockerfile: MIDNIT_SPILL_DIR=/spill (the tmpfs mount point)",
)
check(
    final_env.get("MIDNIT_SPILL_REQUIRE_TMPFS") == "true",
    "Dockerfile: MIDNIT_SPILL_REQUIRE_TMPFS=true (the worker refuses a disk-backed /spill)",
)
check(
    not any(i.upper().startswith("VOLUME") for i in final),
    "Dockerfile: no VOLUME in the runtime stage (a plain `docker run` would spill photos onto "
    "a disk-backed volume; /spill must be a tmpfs: --tmpfs)",
)
check(
    any(i.upper().startswith("LABEL ") and "tmpfs" in i and "/spill" in i for i in final),
    "Dockerfile: a LABEL saying /spill must be a tmpfs",
)
check(
    re.search(r"--tmpfs\s+/spill", dockerfile_text) is not None,
    "Dockerfile: the header's `docker run` mounts a tmpfs at /spill (--tmpfs /spill)",
)


# 2b. The build stage copies everything the build reads.
def dockerignore_matcher(path):
    """A predicate: is a context path excluded by this .dockerignore (Docker's rules: the last
    matching pattern wins, `!` re-includes, a pattern matching a directory matches all in it)."""
    patterns = []
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
            patterns.append((exclusion, re.compile(glob_regex(pattern))))

    def excluded(rel):
        parts = rel.split("/")
        parents = ["/".join(parts[: k + 1]) for k in range(len(parts) - 1)]
        matched = False
        for exclusion, rx in patterns:
            if exclusion != matched:
                continue
            if rx.match(rel) or any(rx.match(p) for p in parents):
                matched = not exclusion
        return matched

    return excluded


def glob_regex(pattern):
    """Go's filepath.Match syntax plus `**`, as Docker reads .dockerignore, as a regex."""
    out, i = "^", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out += "(.*/)?"
            i += 3
            continue
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            continue
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[":
            end = pattern.find("]", i)
            if end < 0:
                out += re.escape(c)
            else:
                body = pattern[i + 1 : end]
                out += "[" + ("^" + body[1:] if body.startswith("^") else body) + "]"
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out += re.escape(pattern[i])
        else:
            out += re.escape(c)
        i += 1
    return out + "$"


def copied_to(stage_chain, required, workdir_of_build):
    """Where in the build stage a context file lands, or None when no COPY/ADD brings it."""
    for stage in stage_chain:
        workdir = "/"
        for i in stage.instructions:
            op, _, args = i.partition(" ")
            op = op.upper()
            if op == "WORKDIR":
                workdir = os.path.normpath(os.path.join(workdir, args.strip()))
                continue
            if op not in ("COPY", "ADD"):
                continue
            flags, words = split_flags(args)
            if "from" in flags or len(words) < 2:
                continue
            *sources, dest = words
            dest_dir = dest.endswith("/") or len(sources) > 1
            dest = os.path.normpath(os.path.join(workdir, dest))
            excludes = flags.get("exclude", [])
            for source in sources:
                if re.match(r"[a-z]+://", source):
                    continue
                source = os.path.normpath(source).lstrip("/")
                s_parts = [] if source == "." else source.split("/")
                r_parts = required.split("/")
                if len(s_parts) > len(r_parts):
                    continue
                if not all(
                    fnmatch.fnmatchcase(r, s) for r, s in zip(r_parts, s_parts, strict=False)
                ):
                    continue
                if any(fnmatch.fnmatchcase(required, e) for e in excludes):
                    continue
                is_glob = any(ch in source for ch in "*?[")
                if "parents" in flags:
                    target = os.path.join(dest, required)
                elif len(s_parts) < len(r_parts):  # a directory: its contents go into dest
                    target = os.path.join(dest, *r_parts[len(s_parts) :])
                elif dest_dir or is_glob:
                    target = os.path.join(dest, r_parts[-1])
                else:
                    target = dest
                if os.path.normpath(target) == os.path.normpath(
                    os.path.join(workdir_of_build, required)
                ):
                    return target
    return None


def blank_comments(text):
    """The source with comments blanked (offsets kept) and, separately, with string and
    character literals blanked too (for matching braces)."""
    code, skeleton = list(text), list(text)
    i, n = 0, len(text)

    def blank(buf, a, b):
        for k in range(a, b):
            if buf[k] != "\n":
                buf[k] = " "

    while i < n:
        if text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            blank(code, i, end), blank(skeleton, i, end)
            i = end
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif text.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            blank(code, i, j), blank(skeleton, i, j)
            i = j
        elif (m := re.compile(r'b?r(#*)"').match(text, i)) and (
            i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")
        ):
            close = '"' + m.group(1)
            end = text.find(close, m.end())
            end = n if end < 0 else end + len(close)
            blank(skeleton, m.end(), end - len(close))
            i = end
        elif text[i] == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            blank(skeleton, i + 1, j)
            i = j + 1
        elif m := re.compile(r"'(\\.[^']*|[^\\'\n])'").match(text, i):
            blank(skeleton, i + 1, m.end() - 1)
            i = m.end()
        else:
            i += 1
    return "".join(code), "".join(skeleton)


def rust_string(literal):
    """The value of a Rust string literal ("..." or r#"..."#)."""
    m = re.fullmatch(r'r(#*)"(.*)"\1', literal, re.S)
    if m:
        return m.group(2)
    m = re.fullmatch(r'"(.*)"', literal, re.S)
    if m is None:
        return None
    return re.sub(r"\\\n\s*", "", m.group(1)).encode().decode("unicode_escape")


def macro_argument(code, skeleton, start):
    """The text between the parenthesis at `start` and its match."""
    depth = 0
    for j in range(start, len(skeleton)):
        if skeleton[j] in "([{":
            depth += 1
        elif skeleton[j] in ")]}":
            depth -= 1
            if depth == 0:
                return code[start + 1 : j]
    return None


def resolve_include(argument, source, crate_dir):
    """The file an include macro's argument names, an error string, or None for a file the
    build makes itself (OUT_DIR)."""
    argument = argument.strip().rstrip(",").strip()
    literal = rust_string(argument)
    if literal is not None:
        return (source.parent / literal).resolve()
    m = re.fullmatch(r"concat!\s*\((.*)\)", argument, re.S)
    if m:
        pieces, path = (
            re.findall(r'env!\s*\(\s*"([^"]*)"\s*\)|((?:r#*)?"(?:[^"\\]|\\.)*"#*)', m.group(1)),
            "",
        )
        leftover = re.sub(
            r'env!\s*\(\s*"[^"]*"\s*\)|(?:r#*)?"(?:[^"\\]|\\.)*"#*|[\s,]', "", m.group(1)
        )
        if leftover:
            return f"cannot resolve {argument!r}"
        for env, lit in pieces:
            if env == "CARGO_MANIFEST_DIR":
                path += str(crate_dir)
            elif env == "OUT_DIR":  # made by a build script during the build
                return None
            elif env:
                return f"cannot resolve env!({env!r}) in {argument!r}"
            else:
                path += rust_string(lit)
        return pathlib.Path(path).resolve()
    return f"cannot resolve {argument!r}"


MOD_DECL = re.compile(
    r"((?:#!?\[[^\]]*\]\s*)*)(?:pub(?:\s*\([^)]*\))?\s+)?mod\s+(?:r#)?(\w+)\s*(;|\{)"
)
INCLUDE = re.compile(r"\b(include_bytes|include_str|include)\s*!\s*\(")


def build_files(root_file, crate_dir):
    """The files the crate rooted at `root_file` compiles outside tests, and the files they
    embed: [(file, None | embedded path | error)]."""
    found, todo, seen = [], [(root_file, True)], set()
    while todo:
        path, mod_rs = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        found.append((path, None))
        code, skeleton = blank_comments(path.read_text())
        test_spans = []
        for m in MOD_DECL.finditer(code):
            attrs, name, end = m.group(1), m.group(2), m.group(3)
            test_only = re.search(r"#\[\s*cfg\s*\(\s*test\s*\)\s*\]", attrs) is not None
            if end == "{":
                if test_only:
                    body = macro_argument(code, skeleton, m.end() - 1)
                    test_spans.append((m.start(), m.end() + len(body or "")))
                continue
            if test_only or any(a <= m.start() < b for a, b in test_spans):
                continue
            base = path.parent if mod_rs else path.parent / path.stem
            custom = re.search(r'#\[\s*path\s*=\s*"([^"]*)"\s*\]', attrs)
            if custom:
                todo.append(((path.parent / custom.group(1)).resolve(), True))
                continue
            for candidate, candidate_mod_rs in (
                (base / f"{name}.rs", False),
                (base / name / "mod.rs", True),
            ):
                if candidate.exists():
                    todo.append((candidate.resolve(), candidate_mod_rs))
                    break
        for m in INCLUDE.finditer(code):
            if any(a <= m.start() < b for a, b in test_spans):
                continue
            argument = macro_argument(code, skeleton, m.end() - 1)
            embedded = resolve_include(argument or "", path, crate_dir)
            if embedded is not None:
                found.append((path, embedded))
    return found


def crate_requirements(crate_dir, required, roots, seen):
    """Adds to `required` everything cargo reads of the crate at `crate_dir` (and of its
    members and path dependencies); `roots` gets its library and binary roots."""
    crate_dir = crate_dir.resolve()
    if crate_dir in seen:
        return
    seen.add(crate_dir)
    manifest_path = crate_dir / "Cargo.toml"
    if not check(manifest_path.exists(), f"Cargo: no manifest at {manifest_path}"):
        return
    required.add(manifest_path)
    manifest = tomllib.loads(manifest_path.read_text())
    workspace = manifest.get("workspace", {})
    for member in workspace.get("members", []):
        globbed = any(c in member for c in "*?[")
        for d in sorted(crate_dir.glob(member)) if globbed else [crate_dir / member]:
            if (d / "Cargo.toml").exists() or not globbed:
                crate_requirements(d, required, roots, seen)
    tables = [manifest, workspace, *manifest.get("target", {}).values()]
    for table in tables:
        for kind in ("dependencies", "dev-dependencies", "build-dependencies"):
            for dep in table.get(kind, {}).values():
                if isinstance(dep, dict) and "path" in dep:
                    crate_requirements(crate_dir / dep["path"], required, roots, seen)
    for patches in manifest.get("patch", {}).values():
        for dep in patches.values():
            if isinstance(dep, dict) and "path" in dep:
                crate_requirements(crate_dir / dep["path"], required, roots, seen)
    package = manifest.get("package")
    if package is None:
        return
    build = package.get("build", "build.rs" if (crate_dir / "build.rs").exists() else False)
    if build:
        required.add(crate_dir / build)
    lib = manifest.get("lib", {}).get("path", "src/lib.rs")
    if (crate_dir / lib).exists():
        roots.append((crate_dir / lib, crate_dir))
    elif "lib" in manifest:
        check(False, f"Cargo: {manifest_path}: no library at {lib}")
    if package.get("autobins", True):
        for bin_root in [crate_dir / "src/main.rs", *sorted((crate_dir / "src/bin").glob("*.rs"))]:
            if bin_root.exists():
                roots.append((bin_root, crate_dir))
    defaults = {"bin": "src/bin", "bench": "benches", "test": "tests", "example": "examples"}
    for kind, folder in defaults.items():
        for target in manifest.get(kind, []):
            name = target.get("name", "")
            candidates = (
                [target["path"]]
                if "path" in target
                else [f"{folder}/{name}.rs", f"{folder}/{name}/main.rs"]
                + (["src/main.rs"] if kind == "bin" else [])
            )
            path = next((crate_dir / c for c in candidates if (crate_dir / c).exists()), None)
            if check(
                path is not None,
                f"Cargo: {manifest_path}: [[{kind}]] {name!r} has no file ({candidates[0]})",
            ):
                required.add(path)
                if kind == "bin":
                    roots.append((path, crate_dir))


def build_context_check():
    build_stage = stages[0] if stages else None
    if build_stage is None:
        return
    # The stage that runs `cargo build`, with the stages it is built on.
    by_name = {s.name: s for s in stages if s.name}
    builder = next(
        (
            s
            for s in stages
            if any(i.upper().startswith("RUN ") and "cargo build" in i for i in s.instructions)
        ),
        None,
    )
    if not check(builder is not None, "Dockerfile: no stage runs `cargo build`"):
        return
    chain, s = [], builder
    while s is not None:
        chain.insert(0, s)
        s = by_name.get(s.base)
    workdir = "/"
    for st in chain:
        for i in st.instructions:
            if i.upper().startswith("WORKDIR "):
                workdir = os.path.normpath(os.path.join(workdir, i.split(None, 1)[1]))
            if i.upper().startswith("RUN ") and "cargo build" in i and st is builder:
                break

    required, roots = {REPO / "Cargo.lock"}, []
    crate_requirements(REPO, required, roots, set())
    embedded = []
    for root_file, crate_dir in roots:
        for source, embeds in build_files(root_file.resolve(), crate_dir):
            if embeds is None:
                required.add(source)
            elif isinstance(embeds, str):
                problems.append(f"Dockerfile: {source.relative_to(REPO)}: {embeds}")
            else:
                embedded.append((source, embeds))
                required.add(embeds)
    excluded = dockerignore_matcher(REPO / ".dockerignore")
    for path in sorted(required):
        if not check(
            path.is_relative_to(REPO),
            f"Dockerfile: the build reads {path}, outside the build context (the repository)",
        ):
            continue
        rel = path.relative_to(REPO).as_posix()
        why = next((f" (embedded by {s.relative_to(REPO)})" for s, e in embedded if e == path), "")
        if not check(path.exists(), f"Cargo: {rel} is missing{why}"):
            continue
        check(
            copied_to(chain, rel, workdir) is not None,
            f"Dockerfile: the build stage does not COPY {rel} to {workdir}/{rel}{why}",
        )
        check(not excluded(rel), f".dockerignore: excludes {rel}, which the build reads{why}")
    for big in ("target", ".git"):
        check(
            excluded(big) or not (REPO / big).exists(),
            f".dockerignore: should keep {big}/ out of the build context",
        )
    return len(required), len(embedded)


context_counts = build_context_check()

# 3. Kubernetes.
# 3a. Every manifest against the API schemas (strict: no unknown fields), for the oldest
# Kubernetes version these files are written for and the newest kubernetes-validate knows.
# KEDA's kinds are custom resources it has no schema for: 3c checks their structure.
K8S_OLDEST = "1.30.0"
k8s_docs = [(name, d) for name, ds in docs.items() if name.startswith("k8s/") for d in ds]
try:
    import kubernetes_validate
except ImportError:
    kubernetes_validate = None
    problems.append(
        "k8s: kubernetes-validate is not installed, so the manifests cannot be checked "
        "against the Kubernetes schemas: python3 -m pip install kubernetes-validate"
    )
if kubernetes_validate is not None:
    newest = kubernetes_validate.latest_version()
    newest = newest if newest.count(".") == 2 else newest + ".0"
    versions = sorted({K8S_OLDEST, newest}, key=lambda v: tuple(map(int, v.split("."))))
    for name, d in k8s_docs:
        if not isinstance(d, dict) or str(d.get("apiVersion", "")).startswith("keda.sh/"):
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(d, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(
                    f"{name}: no Kubernetes {version} schema for {d.get('apiVersion')} {d.get('kind')}"
                )
            except kubernetes_validate.ValidationError as e:
                where = ".".join(str(p) for p in e.path) or "(top)"
                kind = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
                problems.append(
                    f"{name}: {kind} is not valid Kubernetes {version}: {where}: {e.message}"
                )
            except Exception as e:  # a schema the package cannot load is a failure too
                problems.append(f"{name}: kubernetes-validate {version}: {type(e).__name__}: {e}")

# 3b. What the worker relies on.
k8s = {}
for _, d in k8s_docs:
    k8s[(d["kind"], d["metadata"]["name"])] = d


def pod_specs():
    for (kind, name), d in k8s.items():
        if kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield f"{kind}/{name}", d["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield f"{kind}/{name}", d["spec"]["jobTemplate"]["spec"]["template"]["spec"]


for where, spec in pod_specs():
    # A Service named like the worker would inject MIDNIT_WORKER_* variables (service links).
    check(spec.get("enableServiceLinks") is False, f"k8s: {where}: enableServiceLinks: false")


def secret_value(name, key):
    """A key of a Secret defined in these manifests, or None."""
    secret = k8s.get(("Secret", name))
    if secret is None:
        return None
    if key in secret.get("stringData", {}):
        return str(secret["stringData"][key])
    if key in secret.get("data", {}):
        return base64.b64decode(secret["data"][key]).decode()
    return None


deploy = k8s.get(("Deployment", "midnit-worker"))
scaled = k8s.get(("ScaledObject", "midnit-worker"))
check(deploy is not None, "k8s: a Deployment named midnit-worker")
container = None
mounts, volumes = {}, {}
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
    container = c
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
    check(
        env.get("MIDNIT_SPILL_REQUIRE_TMPFS") == "true",
        'k8s: MIDNIT_SPILL_REQUIRE_TMPFS: "true" (the worker refuses a disk-backed spill directory)',
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
    # KEDA owns the number of workers: `replicas` in the manifest would reset it on each apply.
    if scaled is not None:
        check(
            "replicas" not in deploy["spec"],
            "k8s: no `replicas` in a Deployment KEDA scales (each apply would reset KEDA's count)",
        )
    pdb = k8s.get(("PodDisruptionBudget", "midnit-worker"))
    check(
        pdb is not None and pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(),
        "k8s: a PodDisruptionBudget selecting the workers",
    )
    if pdb is not None:
        # The fewest workers there can be: KEDA's minimum, else the Deployment's replicas.
        fewest = (
            (scaled or {}).get("spec", {}).get("minReplicaCount", deploy["spec"].get("replicas", 1))
        )
        fewest = max(int(fewest), 1)

        def count(value):  # an int or a percentage of `fewest`, rounded up as Kubernetes does
            if isinstance(value, str) and value.endswith("%"):
                return -(-int(value[:-1]) * fewest // 100)
            return int(value)

        p = pdb["spec"]
        if "maxUnavailable" in p:
            allowed = count(p["maxUnavailable"])
        elif "minAvailable" in p:
            allowed = fewest - count(p["minAvailable"])
        else:
            allowed = fewest
        check(
            allowed >= 1,
            f"k8s: the PodDisruptionBudget allows {allowed} disruption(s) at {fewest} worker(s) "
            "(KEDA's minimum): node drains would block; use maxUnavailable: 1",
        )

# 3c. KEDA's custom resources: structure, target, queue, authentication, TLS.
SCALED_SPEC = {
    "scaleTargetRef",
    "pollingInterval",
    "cooldownPeriod",
    "initialCooldownPeriod",
    "idleReplicaCount",
    "minReplicaCount",
    "maxReplicaCount",
    "fallback",
    "advanced",
    "triggers",
}
TRIGGER_KEYS = {"type", "name", "metadata", "authenticationRef", "metricType", "useCachedMetrics"}
AUTH_SPEC = {
    "secretTargetRef",
    "env",
    "configMapTargetRef",
    "hashiCorpVault",
    "azureKeyVault",
    "awsSecretManager",
    "gcpSecretManager",
    "podIdentity",
    "boundServiceAccountToken",
    "filePath",
}
# What KEDA's RabbitMQ scaler reads from a TriggerAuthentication (its authParams).
RABBITMQ_AUTH = set(
    "host username password protocol vhostName tls ca cert key keyPassword "
    "workloadIdentityResource".split()
)
for (kind, name), d in k8s.items():
    if not d.get("apiVersion", "").startswith("keda.sh/"):
        continue
    check(
        d["apiVersion"] == "keda.sh/v1alpha1", f"KEDA: {kind}/{name}: apiVersion keda.sh/v1alpha1"
    )
    check(kind in ("ScaledObject", "TriggerAuthentication"), f"KEDA: unexpected kind {kind}")
    if not check(isinstance(d.get("spec"), dict), f"KEDA: {kind}/{name}: spec is a mapping"):
        continue
    spec = d["spec"]
    if kind == "ScaledObject":
        unknown = set(spec) - SCALED_SPEC
        check(not unknown, f"KEDA: {name}: unknown spec fields {sorted(unknown)}")
        for field in ("pollingInterval", "cooldownPeriod", "minReplicaCount", "maxReplicaCount"):
            if field in spec:
                check(
                    type(spec[field]) is int and spec[field] >= 0,
                    f"KEDA: {name}: {field} is a non-negative integer",
                )
        lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
        check(
            type(lo) is int and type(hi) is int and 1 <= hi and lo <= hi,
            f"KEDA: {name}: minReplicaCount <= maxReplicaCount",
        )
        ref = spec.get("scaleTargetRef", {})
        check(isinstance(ref.get("name"), str), f"KEDA: {name}: scaleTargetRef.name")
        check(ref.get("kind", "Deployment") == "Deployment", f"KEDA: {name}: scales a Deployment")
        check(("Deployment", ref.get("name")) in k8s, f"KEDA: {name}: its target Deployment exists")
        triggers = spec.get("triggers")
        if not check(
            isinstance(triggers, list) and triggers, f"KEDA: {name}: triggers is a non-empty list"
        ):
            continue
        for t in triggers:
            unknown = set(t) - TRIGGER_KEYS
            check(not unknown, f"KEDA: {name}: unknown trigger fields {sorted(unknown)}")
            check(
                isinstance(t.get("type"), str) and "metadata" in t,
                f"KEDA: {name}: every trigger has a type and metadata",
            )
            meta = t.get("metadata") or {}
            check(
                isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values()),
                f"KEDA: {name}: trigger metadata values are strings (the CRD's map[string]string)",
            )
            auth_ref = t.get("authenticationRef", {})
            auth_kind = auth_ref.get("kind", "TriggerAuthentication")
            auth = k8s.get((auth_kind, auth_ref.get("name")))
            if t.get("type") != "rabbitmq":
                continue
            check(meta.get("queueName") == QUEUE, "KEDA: on the jobs queue")
            check(
                meta.get("mode") in ("QueueLength", "MessageRate"),
                "KEDA: mode QueueLength or MessageRate",
            )
            check(
                re.fullmatch(r"\d+(\.\d+)?", str(meta.get("value", ""))) is not None,
                "KEDA: a numeric value",
            )
            check(
                meta.get("protocol", "auto") in ("amqp", "http", "auto"),
                "KEDA: protocol amqp, http or auto",
            )
            check(
                "@" not in meta.get("host", ""),
                "KEDA: no credentials in trigger metadata (host comes from the TriggerAuthentication)",
            )
            if not check(auth is not None, "KEDA: its TriggerAuthentication exists"):
                continue
            refs = auth["spec"].get("secretTargetRef", [])
            params = {r.get("parameter"): r for r in refs if isinstance(r, dict)}
            check(
                "host" in params or "host" in meta or "hostFromEnv" in meta,
                "KEDA: the rabbitmq trigger gets a host",
            )
            unknown = set(params) - RABBITMQ_AUTH
            check(
                not unknown, f"KEDA: unknown rabbitmq authentication parameters {sorted(unknown)}"
            )
            # amqps:// (the URL these manifests document, or the trigger's own host): KEDA
            # dials TLS with the CA and client certificate only with tls = enable.
            k8s_text = "".join((DEPLOY / n).read_text() for n in {n for n, _ in k8s_docs})
            amqps = "amqps://" in meta.get("host", "") or re.search(
                r"amqp-url='?amqps://", k8s_text
            )
            if amqps:
                tls = params.get("tls")
                check(
                    tls is not None and secret_value(tls.get("name"), tls.get("key")) == "enable",
                    "KEDA: the broker is amqps://: the TriggerAuthentication needs `tls` from a "
                    "Secret (in these manifests) whose value is `enable`",
                )
                check("ca" in params, "KEDA: amqps:// needs the broker's CA (`ca`)")
                check(
                    ("cert" in params) == ("key" in params),
                    "KEDA: a client certificate needs both `cert` and `key`",
                )
                # The workers and KEDA trust the same CA and present the same certificate.
                if container is not None:
                    env = env_of(container)
                    for param, var in (
                        ("ca", "MIDNIT_TLS_CA_FILE"),
                        ("cert", "MIDNIT_TLS_CERT_FILE"),
                        ("key", "MIDNIT_TLS_KEY_FILE"),
                    ):
                        if param not in params:
                            continue
                        path = env.get(var, "")
                        mount = next(
                            (m for m in mounts if path.startswith(m.rstrip("/") + "/")), None
                        )
                        secret = volumes.get(mounts.get(mount, ""), {}).get("secret", {})
                        rel = path[len(mount.rstrip("/")) + 1 :] if mount else ""
                        items = {i["path"]: i["key"] for i in secret.get("items", [])}
                        key = items.get(rel, rel if not items else None)
                        check(
                            (secret.get("secretName"), key)
                            == (params[param]["name"], params[param]["key"]),
                            f"k8s: the worker's {var} is key {params[param]['key']!r} of Secret "
                            f"{params[param]['name']!r}, as KEDA's `{param}`",
                        )
    else:
        unknown = set(spec) - AUTH_SPEC
        check(not unknown, f"KEDA: {name}: unknown TriggerAuthentication fields {sorted(unknown)}")
        refs = spec.get("secretTargetRef", [])
        check(isinstance(refs, list), f"KEDA: {name}: secretTargetRef is a list")
        for r in refs if isinstance(refs, list) else []:
            check(
                isinstance(r, dict)
                and set(r) == {"parameter", "name", "key"}
                and all(isinstance(v, str) for v in r.values()),
                f"KEDA: {name}: secretTargetRef entries have exactly parameter, name, key (strings): {r}",
            )
check(scaled is not None, "k8s: a KEDA ScaledObject")
if scaled and deploy:
    check(
        scaled["spec"]["scaleTargetRef"]["name"] == deploy["metadata"]["name"],
        "KEDA: scales the worker Deployment",
    )
    check(scaled["spec"]["triggers"][0]["type"] == "rabbitmq", "KEDA: a rabbitmq trigger")


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


# 6. The systemd units.
MAX_EXPOSURE = 2.5
UNITS = sorted(DEPLOY.glob("*.service")) + sorted(DEPLOY.glob("*.timer"))


def unit_settings(path):
    """[(section, key, value)] in file order (keys may repeat)."""
    out, section = [], None
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


def size_bytes(value):
    value = value.strip()
    if value == "infinity":
        return float("inf")
    m = re.fullmatch(r"(\d+)\s*([KMGT]?)i?B?", value, re.I)
    if not m:
        return None
    return int(m.group(1)) * 1024 ** "_KMGT".index(m.group(2).upper() or "_")


syscall_groups = {}
analyze = shutil.which("systemd-analyze")
check(
    analyze is not None,
    "systemd: systemd-analyze is missing, so the units cannot be verified or scored "
    "(apt-get install systemd)",
)
if analyze:
    out = subprocess.run(
        [analyze, "syscall-filter", "--no-pager"], capture_output=True, text=True
    ).stdout
    group = None
    for line in out.splitlines():
        if line.startswith("@"):
            group = line.strip()
            syscall_groups[group] = []
        elif group and line.strip() and not line.strip().startswith("#"):
            syscall_groups[group].append(line.strip())


def expand(names, depth=0):
    result = set()
    for n in names:
        if n.startswith("@") and depth < 10:
            result |= expand(syscall_groups.get(n, []), depth + 1)
        elif not n.startswith("@"):
            result.add(n.split(":")[0])
    return result


def syscall_allowed(settings):
    """A predicate: does this unit's SystemCallFilter= let a system call through?"""
    allow, names = None, set()
    for _, key, value in settings:
        if key != "SystemCallFilter":
            continue
        if not value:
            allow, names = None, set()
            continue
        negative = value.startswith("~")
        listed = expand(value.lstrip("~").split())
        if allow is None:
            allow = not negative
        if allow:
            names = names - listed if negative else names | listed
        else:
            names = names | listed if negative else names - listed
    if allow is None:
        return lambda call: True
    return (lambda call: call in names) if allow else (lambda call: call not in names)


# What each unit's processes do, so its sandbox must allow it. The worker: TCP to the broker
# and its listener, Unix socket pairs, pipes and memfds to its renderers, starting its own
# binary as renderers (posix_spawn: clone/clone3/vfork + execve), which lower their rlimits,
# set PR_SET_DUMPABLE / PR_SET_NO_NEW_PRIVS and install their own seccomp filter; one mlocked
# page. The key rotation: rewrite one file.
NEEDS = {
    "midnit-worker.service": {
        "syscalls": """socket connect bind listen accept4 sendmsg recvmsg socketpair pipe2
            memfd_create execve clone clone3 vfork wait4 kill prctl seccomp prlimit64 setrlimit
            mlock munlock mmap mprotect madvise openat statfs fstatfs getrandom futex
            epoll_wait""".split(),
        "families": {"AF_INET", "AF_INET6", "AF_UNIX"},
        "network": True,
        "exec": ["/usr/local/bin/midnit-worker", "/usr/lib"],
    },
    "midnit-keys-rotate.service": {
        "syscalls": "openat read write fsync rename renameat unlink prctl prlimit64 getrandom".split(),
        "families": set(),
        "network": False,
        "exec": ["/usr/local/bin/midnit-worker"],
    },
}

scores = {}
for path in UNITS:
    settings = unit_settings(path)
    service = [(k, v) for s, k, v in settings if s == "Service"]
    values = {}
    for k, v in service:
        values.setdefault(k, []).append(v)

    def one(key, default=None, values=values):
        return values.get(key, [default])[-1]

    unit = path.name
    if path.suffix == ".service":
        for needed in ("ExecStart", "LimitCORE"):
            check(needed in values, f"systemd: {unit}: {needed}=")
        check(one("LimitCORE") == "0", f"systemd: {unit}: LimitCORE=0 (no core dumps)")
        check(one("NoNewPrivileges") == "yes", f"systemd: {unit}: NoNewPrivileges=yes")
        # A dynamic user cannot read root-owned files (/etc/midnit/*: 0640 root): they reach it
        # as credentials, copied by systemd into a directory only the service can read.
        credentials = {
            v.split(":", 1)[0]
            for v in values.get("LoadCredential", []) + values.get("SetCredential", [])
        }
        if one("DynamicUser") == "yes":
            for k, v in service:
                if k.startswith("Exec"):
                    words = shlex.split(v.lstrip("-@:+!"))[1:]
                elif k == "Environment":
                    words = [w.split("=", 1)[-1] for w in shlex.split(v)]
                else:
                    continue
                for w in words:
                    check(
                        not w.startswith("/etc/"),
                        f"systemd: {unit}: {k}= names {w}, which the dynamic user cannot read: "
                        "LoadCredential= it and use ${CREDENTIALS_DIRECTORY}/NAME (or %d/NAME)",
                    )
                    for name in re.findall(
                        r"(?:\$\{CREDENTIALS_DIRECTORY\}|\$CREDENTIALS_DIRECTORY|%d)/([\w.-]+)", w
                    ):
                        check(
                            name in credentials,
                            f"systemd: {unit}: {k}= uses credential {name!r} without LoadCredential={name}:...",
                        )
        needs = NEEDS.get(unit)
        if needs:
            allowed = syscall_allowed(settings)
            if syscall_groups:
                blocked = [c for c in needs["syscalls"] if not allowed(c)]
                check(
                    not blocked,
                    f"systemd: {unit}: SystemCallFilter= blocks {blocked}, which it needs",
                )
            families = " ".join(values.get("RestrictAddressFamilies", [])).split()
            if families and families[0] != "~":
                missing = needs["families"] - set(families)
                check(
                    not missing,
                    f"systemd: {unit}: RestrictAddressFamilies= lacks {sorted(missing)}",
                )
            if needs["network"]:
                check(
                    one("PrivateNetwork") != "yes",
                    f"systemd: {unit}: needs the network (no PrivateNetwork=)",
                )
            hidden = " ".join(
                values.get("InaccessiblePaths", []) + values.get("NoExecPaths", [])
            ).split()
            exec_ok = " ".join(values.get("ExecPaths", [])).split()
            for p in needs["exec"]:
                covered = [
                    h for h in hidden if (p + "/").startswith(h.lstrip("-").rstrip("/") + "/")
                ]
                reopened = [
                    e for e in exec_ok if (p + "/").startswith(e.lstrip("-").rstrip("/") + "/")
                ]
                check(
                    not covered or reopened, f"systemd: {unit}: {p} must stay executable/readable"
                )
        if unit == "midnit-worker.service":
            check(
                any(sec == "Install" and k == "WantedBy" for sec, k, _ in settings),
                f"systemd: {unit}: [Install] WantedBy=",
            )
            check(one("KillSignal") == "SIGTERM", f"systemd: {unit}: KillSignal=SIGTERM")
            stop = re.fullmatch(r"(\d+)s?", one("TimeoutStopSec", ""))
            check(
                stop and int(stop.group(1)) > DRAIN,
                f"systemd: {unit}: TimeoutStopSec above the drain timeout",
            )
            env = {}
            for v in values.get("Environment", []):
                env.update(w.split("=", 1) for w in shlex.split(v) if "=" in w)
            check(
                env.get("MIDNIT_SPILL_REQUIRE_TMPFS") == "true",
                f"systemd: {unit}: Environment=MIDNIT_SPILL_REQUIRE_TMPFS=true",
            )
            config = re.search(r"--config[= ](\S+)", one("ExecStart", "")) or re.match(
                r"(.*)", env.get("MIDNIT_CONFIG", "")
            )
            check(
                config is not None
                and re.match(r"(\$\{?CREDENTIALS_DIRECTORY\}?|%d)/", config.group(1)),
                f"systemd: {unit}: the configuration file comes in as a credential "
                "(LoadCredential=worker.toml:/etc/midnit/worker.toml, --config ${CREDENTIALS_DIRECTORY}/worker.toml)",
            )
            memlock = size_bytes(one("LimitMEMLOCK", ""))
            check(
                memlock is not None and memlock >= 64 * 1024,
                f"systemd: {unit}: LimitMEMLOCK= at least 64K (the key page is mlocked)",
            )
    if not analyze:
        continue
    if path.suffix == ".service":
        cmd = [
            analyze,
            "security",
            "--offline=true",
            f"--threshold={int(MAX_EXPOSURE * 10)}",
            "--no-pager",
            str(path),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if "threshold" in out.stderr and "unrecognized" in out.stderr:  # an older systemd
            cmd.remove(f"--threshold={int(MAX_EXPOSURE * 10)}")
            out = subprocess.run(cmd, capture_output=True, text=True)
        m = re.search(r"Overall exposure level for \S+: ([\d.]+)", out.stdout + out.stderr)
        if check(m is not None, f"systemd-analyze security {unit}: no score: {out.stderr.strip()}"):
            scores[unit] = float(m.group(1))
            open_settings = [
                l.split(None, 2)[1] for l in out.stdout.splitlines() if l.startswith("✗")
            ]
            check(
                scores[unit] <= MAX_EXPOSURE,
                f"systemd-analyze security --offline=true deploy/{unit}: exposure {scores[unit]}, "
                f"above {MAX_EXPOSURE}; {len(open_settings)} settings open, among them "
                + ", ".join(open_settings[:8]),
            )

if analyze:
    out = subprocess.run([analyze, "verify", *map(str, UNITS)], capture_output=True, text=True)
    # The binary is not installed here; every other complaint is a problem.
    complaints = [
        l
        for l in out.stderr.splitlines()
        if l.strip()
        and not re.search(
            r"Command /usr/local/bin/midnit-worker is not executable: No such file", l
        )
    ]
    check(not complaints, f"systemd-analyze verify: {complaints}")

if problems:
    print("deploy check FAILED:")
    for p in problems:
        print("  -", p)
    sys.exit(1)
print(
    f"deploy check ok: {len(docs)} YAML/JSON files; Dockerfile (the build stage copies all "
    f"{context_counts[0] if context_counts else '?'} files the build reads, "
    f"{context_counts[1] if context_counts else '?'} of them embedded); Kubernetes manifests; "
    "systemd units, exposure " + ", ".join(f"{u} {s}" for u, s in sorted(scores.items()))
)
