#!/usr/bin/env bash
# Checks the container image that deploy/Dockerfile describes, without a container engine.
#
#   deploy/image-check.sh BINARY          build (or reuse) the runtime root filesystem, run
#                                         BINARY in it as the image runs, check it
#   deploy/image-check.sh --rootfs-only   only build (or reuse) the root filesystem
#
# What it does, read from the Dockerfile's last stage each run (nothing about the image is
# written down here):
#
# 1. Root filesystem. `debootstrap --variant=minbase` of the Debian release the stage's FROM
#    names (debian:<release>[-slim], the variant the official images are made from), apt
#    sources as in the official image (release, -updates, -security), the slim variant's dpkg
#    excludes; then every RUN instruction of the stage in a chroot, as `docker build` runs it
#    (/bin/sh -c, as root, with the ENV set before it). Kept in $MIDNIT_ROOTFS_CACHE under a
#    hash of FROM and the RUN instructions, so a changed package list builds a new one. Built
#    in a temporary directory and renamed into place.
# 2. The binary. BINARY is copied, every run, into a layer of its own at the path the stage's
#    COPY names; the layers are stacked with overlayfs as a container engine stacks them.
# 3. Container. ENTRYPOINT + CMD as PID 1 of new mount, PID, UTS and IPC namespaces (the host
#    network, as `docker run --network host`), chroot to the layers mounted read-only
#    (--read-only), a tmpfs at /spill, /proc, read-only /sys, a minimal /dev with /dev/shm and
#    /dev/pts, Docker's masked and read-only /proc paths, the host's /etc/hosts and
#    /etc/resolv.conf; the image's ENV plus MIDNIT_AMQP_URL and a queue of its own (-e); as
#    the stage's USER with no supplementary groups, every capability dropped from all sets
#    (--cap-drop ALL) and no_new_privs (--security-opt no-new-privileges).
# 4. Checks, one line each, closing with "N passed, N failed, N skipped"; exit status 0 only
#    when none failed. The packages the RUN installs and the user it creates; every library
#    the binary and libheif need resolves in the image; the worker starts and consumes; its
#    identity, capabilities and mounts; its renderers confined (seccomp, no_new_privs); the
#    HEALTHCHECK command (and /readyz), run inside as the engine runs it; the EXPOSEd port;
#    jobs sent through the broker from outside (docs/examples/thumbnail.json with its receipt
#    verified, an input above the spill threshold, an AVIF output, that AVIF as input through
#    libheif); the root is read-only for the worker and for root inside; no ERROR in its log;
#    STOPSIGNAL ends it cleanly; and, where the binary has the `spill_require_tmpfs` setting,
#    that the image refuses to start with /spill on a disk (skipped, saying so, otherwise).
#
# Not like `docker build` + `docker run`: no image is built or pulled (the base is
# debootstrapped, not debian:<release>-slim itself, so its file list differs slightly, and
# the build stage is not run: BINARY stands for its output), no cgroup (no memory or CPU
# limit, no /sys/fs/cgroup), no seccomp profile of the engine's (the worker's own renderer
# filter is installed as usual), no AppArmor/SELinux, no network namespace (when the
# listener's port is taken on the host, another is given with -e MIDNIT_HTTP_ADDR), and the
# engine's default capability set is dropped entirely, as compose.yaml and k8s drop it.
#
# Environment (the worker refuses MIDNIT_* variables it does not know, and never sees these):
#   MIDNIT_ROOTFS_CACHE         built root filesystems (default /var/cache/midnit-rootfs)
#   MIDNIT_AMQP_URL             the broker (default amqp://guest:guest@127.0.0.1:5672/%2f)
#   IMAGE_CHECK_REBUILD=1       build again even when the cache has a root filesystem
#   IMAGE_CHECK_MIRROR          default http://deb.debian.org/debian
#   IMAGE_CHECK_SECURITY_MIRROR default http://deb.debian.org/debian-security
#   IMAGE_CHECK_SPILL_TMPFS     the /spill tmpfs options (default as in compose.yaml)
#   IMAGE_CHECK_KEEP=1          keep the run directory (logs, outputs)
#   IMAGE_CHECK_DOCKERFILE      another Dockerfile (default: deploy/Dockerfile beside this)
#
# Needs root, debootstrap, util-linux (unshare, nsenter, setpriv in the image), python3, ss;
# rabbitmqctl (optional) deletes the test queue afterwards. Takes about 80 s to build a root
# filesystem, then a few seconds a run.
set -uo pipefail

SELF=$(realpath "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
DOCKERFILE=${IMAGE_CHECK_DOCKERFILE:-$REPO/deploy/Dockerfile}
# Bump when the way a root filesystem is made changes: cached ones are then built again.
RECIPE=2
CACHE=${MIDNIT_ROOTFS_CACHE:-/var/cache/midnit-rootfs}
MIRROR=${IMAGE_CHECK_MIRROR:-http://deb.debian.org/debian}
SECURITY=${IMAGE_CHECK_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
AMQP_URL=${MIDNIT_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/%2f}

die() { echo "image-check: $*" >&2; exit 2; }
note() { echo ".. $*"; }

# ---------------------------------------------------------------------------------------
# Inside a private mount namespace: the mounts a container gets, on root filesystem $1.
# ---------------------------------------------------------------------------------------
make_dev() { # $1: the container's /dev (a fresh tmpfs)
    local d=$1 spec name major minor
    for spec in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
        IFS=: read -r name major minor <<<"$spec"
        if ! mknod -m 666 "$d/$name" c "$major" "$minor" 2>/dev/null; then
            touch "$d/$name" && mount --bind "/dev/$name" "$d/$name"
        fi
    done
    ln -s /proc/self/fd "$d/fd"
    ln -s /proc/self/fd/0 "$d/stdin"
    ln -s /proc/self/fd/1 "$d/stdout"
    ln -s /proc/self/fd/2 "$d/stderr"
    ln -s /proc/kcore "$d/core"
    mkdir -p "$d/pts" "$d/shm" "$d/mqueue"
    mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$d/pts" 2>/dev/null &&
        ln -s pts/ptmx "$d/ptmx"
    mount -t tmpfs -o nosuid,nodev,noexec,mode=1777,size=65536k shm "$d/shm"
    mount -t mqueue -o nosuid,nodev,noexec mqueue "$d/mqueue" 2>/dev/null || true
}

mount_api_filesystems() { # $1: root; $2: 1 for Docker's masked and read-only paths
    local r=$1 p
    mount -t proc -o nosuid,nodev,noexec proc "$r/proc"
    mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
    mount -t tmpfs -o nosuid,mode=755,size=65536k tmpfs "$r/dev"
    make_dev "$r/dev"
    [[ $2 == 1 ]] || return 0
    for p in /proc/asound /proc/acpi /proc/scsi /sys/firmware /sys/devices/virtual/powercap; do
        [[ -d $r$p ]] && mount -t tmpfs -o ro,nosuid,nodev,noexec tmpfs "$r$p" 2>/dev/null || true
    done
    for p in /proc/kcore /proc/keys /proc/latency_stats /proc/timer_list /proc/timer_stats /proc/sched_debug; do
        [[ -f $r$p ]] && mount --bind "$r/dev/null" "$r$p" 2>/dev/null || true
    done
    for p in /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger; do
        [[ -e $r$p ]] && mount --bind "$r$p" "$r$p" 2>/dev/null &&
            mount -o remount,bind,ro "$r$p" 2>/dev/null || true
    done
    return 0
}

# One RUN instruction of the stage, as `docker build` runs it: in the chroot, as root, with
# the ENV set so far, the host's resolv.conf, no terminal.
build_run() { # ROOTFS RUN_FILE ENV_FILE SHELL_FILE
    set -e
    local r=$1 argv env sh
    mount_api_filesystems "$r" 0
    rm -f "$r/etc/resolv.conf"
    touch "$r/etc/resolv.conf"
    mount --bind /etc/resolv.conf "$r/etc/resolv.conf"
    mapfile -d '' argv <"$2"
    mapfile -d '' env <"$3"
    mapfile -d '' sh <"$4"
    exec chroot "$r" /usr/bin/env -i "${env[@]}" "${sh[@]}" "${argv[@]}" </dev/null
}

# A container: PID 1 of fresh namespaces (the caller's unshare made them).
launch() {
    set -e
    local r=$L_DIR/merged env argv
    mount -t overlay overlay -o "lowerdir=$L_LOWER,upperdir=$L_DIR/upper,workdir=$L_DIR/work" "$r"
    mount --bind "$r" "$r"
    mount -o remount,bind,ro "$r"
    mount_api_filesystems "$r" 1
    case $L_SPILL in
        tmpfs) mount -t tmpfs -o "$L_SPILL_OPTS" tmpfs "$r$L_SPILL_DIR" ;;
        none) ;;
        *) mount --bind "$L_SPILL" "$r$L_SPILL_DIR" ;;
    esac
    mount --bind "$L_DIR/hosts" "$r/etc/hosts"
    mount --bind "$L_DIR/resolv.conf" "$r/etc/resolv.conf"
    mount --bind "$L_DIR/hostname" "$r/etc/hostname"
    hostname "$(cat "$L_DIR/hostname")"
    mapfile -d '' env <"$L_ENV"
    mapfile -d '' argv <"$L_ARGV"
    if [[ $L_USER == root ]]; then
        exec chroot "$r" /usr/bin/env -i --chdir="$L_WORKDIR" "${env[@]}" "${argv[@]}"
    fi
    exec chroot "$r" /usr/bin/env -i --chdir="$L_WORKDIR" "${env[@]}" \
        /usr/bin/setpriv --reuid="${L_USER%%:*}" --regid="${L_USER##*:}" --clear-groups \
        --inh-caps=-all --bounding-set=-all --no-new-privs -- "${argv[@]}"
}

case ${1:-} in
    __build_run) shift; build_run "$@"; exit ;;
    __launch) launch; exit ;;
esac

# ---------------------------------------------------------------------------------------
# The Dockerfile's last stage.
# ---------------------------------------------------------------------------------------
parse_dockerfile() { # DOCKERFILE OUT_DIR
    python3 - "$1" "$2" "$RECIPE" <<'PY'
import hashlib, json, os, re, shlex, sys

path, out, recipe = sys.argv[1:4]
instrs, cur = [], None
for raw in open(path).read().splitlines():
    s = raw.strip()
    if s.startswith("#") or (cur is None and not s):
        continue  # comments (also inside a continued instruction) and blank lines
    line = raw.rstrip()
    if line.endswith("\\"):
        cur = (cur or "") + line[:-1]
        continue
    instrs.append(((cur or "") + line).strip())
    cur = None
if cur:
    instrs.append(cur.strip())

def kw(i): return i.split(None, 1)[0].upper()
def rest(i):
    p = i.split(None, 1)
    return p[1].strip() if len(p) > 1 else ""
def exec_form(r):
    if r.startswith("["):
        try:
            v = json.loads(r)
            if isinstance(v, list) and all(isinstance(x, str) for x in v):
                return v
        except ValueError:
            pass
    return None

froms = [n for n, i in enumerate(instrs) if kw(i) == "FROM"]
if not froms:
    sys.exit("no FROM")
stage = instrs[froms[-1]:]
words = [w for w in rest(stage[0]).split() if not w.startswith("--")]
image = words[0]
m = re.fullmatch(r"(?:docker\.io/)?(?:library/)?debian:([a-z0-9.]+?)(-slim)?(?:@sha256:[0-9a-f]+)?", image)
if not m:
    sys.exit(f"the runtime stage is FROM {image}: only debian:<release>[-slim] can be made with debootstrap")
release = {"10": "buster", "11": "bullseye", "12": "bookworm", "13": "trixie"}.get(m.group(1), m.group(1))

def expand(s, env):
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)",
                  lambda g: env.get(g.group(1) or g.group(2), ""), s)

env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
shell = ["/bin/sh", "-c"]
runs, packages, problems = [], [], []
user, workdir, entrypoint, cmd, health, copy_dest = "root", "/", None, None, None, None
stopsignal, volumes, expose = "SIGTERM", [], []
for i in stage[1:]:
    k, r = kw(i), rest(i)
    if k == "ENV":
        first = r.split(None, 1)[0]
        if "=" not in first:
            env[first] = expand(r.split(None, 1)[1].strip(), env)
        else:
            for tok in shlex.split(r):
                key, _, val = tok.partition("=")
                env[key] = expand(val, env)
    elif k == "RUN":
        argv = exec_form(r)
        runs.append({"shell": [] if argv else list(shell), "argv": argv or [r], "env": dict(env)})
        for part in re.split(r"&&|\|\||;|\||\n", r):
            try:
                toks = shlex.split(part)
            except ValueError:
                continue
            if "apt-get" in toks and "install" in toks[toks.index("apt-get"):]:
                after = toks[toks.index("install", toks.index("apt-get")) + 1:]
                packages += [t for t in after if not t.startswith("-")]
    elif k == "SHELL":
        shell = exec_form(r) or shell
    elif k == "USER":
        user = expand(r, env)
    elif k == "WORKDIR":
        workdir = os.path.join(workdir, expand(r, env))
    elif k == "ENTRYPOINT":
        entrypoint = exec_form(r) or ["/bin/sh", "-c", r]
        cmd = None  # an ENTRYPOINT resets a CMD set before it
    elif k == "CMD":
        cmd = exec_form(r) or ["/bin/sh", "-c", r]
    elif k == "HEALTHCHECK":
        if r.upper() == "NONE":
            health = None
            continue
        opts, body = {}, r
        while body.startswith("--"):
            opt, body = body.split(None, 1)
            name, _, val = opt[2:].partition("=")
            opts[name] = val
        assert body.upper().startswith("CMD"), i
        body = body[3:].strip()
        health = {"argv": exec_form(body) or ["/bin/sh", "-c", body], "opts": opts}
    elif k in ("COPY", "ADD"):
        toks = [t for t in r.split() if not t.startswith("--")]
        srcs, dest = toks[:-1], toks[-1]
        if dest.endswith("/"):
            dest += os.path.basename(srcs[-1])
        if os.path.basename(dest) == "midnit-worker" and len(srcs) == 1:
            copy_dest = os.path.join(workdir, dest)
        else:
            problems.append(f"{i}: not reproduced here (only the worker binary is copied in)")
    elif k == "VOLUME":
        volumes += exec_form(r) or r.split()
    elif k == "EXPOSE":
        expose += r.split()
    elif k == "STOPSIGNAL":
        stopsignal = r
    elif k in ("LABEL", "MAINTAINER", "ARG", "ONBUILD"):
        pass
    else:
        problems.append(f"{i}: instruction not understood here")

if entrypoint is None and cmd is None:
    problems.append("no ENTRYPOINT or CMD")
argv = (entrypoint or []) + (cmd or [])
if copy_dest is None:
    problems.append("the runtime stage copies no midnit-worker binary")

def nul(name, items):
    with open(os.path.join(out, name), "w") as f:
        f.write("".join(x + "\0" for x in items))
def text(name, s):
    with open(os.path.join(out, name), "w") as f:
        f.write(s)

os.makedirs(os.path.join(out, "runs"), exist_ok=True)
for n, run in enumerate(runs):
    nul(f"runs/{n}.argv", run["argv"])
    nul(f"runs/{n}.shell", run["shell"])
    nul(f"runs/{n}.env", [f"{k}={v}" for k, v in run["env"].items()] + ["HOME=/root"])
nul("env", [f"{k}={v}" for k, v in env.items()])
nul("argv", argv)
nul("health_argv", health["argv"] if health else [])
text("health_opts", "".join(f"{k}={v}\n" for k, v in (health or {}).get("opts", {}).items()))
text("image", image)
text("release", release)
text("slim", "1" if m.group(2) else "0")
text("user", user)
text("workdir", workdir)
text("copy_dest", copy_dest or "")
text("stopsignal", stopsignal)
text("volumes", "\n".join(volumes))
text("expose", "\n".join(expose))
text("packages", "\n".join(packages))
text("problems", "\n".join(problems))
text("nruns", str(len(runs)))
material = json.dumps({"recipe": recipe, "from": image,
                       "runs": [[r["shell"], r["argv"], sorted(r["env"].items())] for r in runs]}, sort_keys=True)
text("key", hashlib.sha256(material.encode()).hexdigest()[:16])
text("summary", f"FROM {image}, {len(runs)} RUN, USER {user}, ENTRYPOINT+CMD {json.dumps(argv)}")
PY
}

# ---------------------------------------------------------------------------------------
# The root filesystem: built once per key, into a temporary directory, then renamed.
# ---------------------------------------------------------------------------------------
slimify() { # ROOTFS: the slim variant's dpkg excludes, and the files they exclude removed
    local r=$1
    mkdir -p "$r/etc/dpkg/dpkg.cfg.d"
    cat >"$r/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# The "slim" variant: files unnecessary in containers are excluded.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
    find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null
    find "$r/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null
    rm -rf "$r"/usr/share/{groff,info,linda,lintian/overrides,locale,man}/*
}

build_rootfs() { # DF_DIR DEST: DEST must not exist
    local df=$1 dest=$2 release tmp n t0
    release=$(cat "$df/release")
    mkdir -p "$CACHE"
    rm -rf "$CACHE"/.build.* # what failed builds left (the lock is held: none is running)
    tmp=$(mktemp -d "$CACHE/.build.XXXXXX") || return 1
    t0=$SECONDS
    note "building the root filesystem: debootstrap $release (minbase) into $tmp (log: $tmp/build.log)"
    if ! debootstrap --variant=minbase --arch="$(dpkg --print-architecture)" "$release" \
        "$tmp/rootfs" "$MIRROR" >"$tmp/build.log" 2>&1 9>&-; then
        tail -20 "$tmp/build.log" >&2
        echo "debootstrap failed; kept $tmp" >&2
        return 1
    fi
    [[ $(cat "$df/slim") == 1 ]] && slimify "$tmp/rootfs"
    # The official images' apt settings: no package files or caches kept, no translations.
    cat >"$tmp/rootfs/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
    echo 'Acquire::Languages "none";' >"$tmp/rootfs/etc/apt/apt.conf.d/docker-no-languages"
    echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$tmp/rootfs/etc/apt/apt.conf.d/docker-autoremove-suggests"
    rm -rf "$tmp/rootfs"/var/cache/apt/archives/*.deb "$tmp/rootfs"/var/cache/apt/*.bin \
        "$tmp/rootfs"/var/lib/apt/lists/*
    rm -f "$tmp/rootfs/etc/apt/sources.list"
    cat >"$tmp/rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $release $release-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY
Suites: $release-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    for ((n = 0; n < $(cat "$df/nruns"); n++)); do
        note "RUN $((n + 1)) of the runtime stage, in the chroot"
        {
            echo "== RUN $((n + 1))"
            tr '\0' ' ' <"$df/runs/$n.argv"
            echo
        } >>"$tmp/build.log"
        if ! unshare --mount --propagation private -- "$SELF" __build_run "$tmp/rootfs" \
            "$df/runs/$n.argv" "$df/runs/$n.env" "$df/runs/$n.shell" >>"$tmp/build.log" 2>&1 9>&-; then
            tail -20 "$tmp/build.log" >&2
            echo "RUN $((n + 1)) failed; kept $tmp" >&2
            return 1
        fi
    done
    # What the engine provides at run time is not part of the image.
    rm -f "$tmp/rootfs/etc/hostname" "$tmp/rootfs/etc/resolv.conf"
    : >"$tmp/rootfs/etc/hostname"
    : >"$tmp/rootfs/etc/resolv.conf"
    {
        echo "image: $(cat "$df/image")"
        echo "key: $(basename "$dest")"
        echo "built: $(date -u +%FT%TZ) in $((SECONDS - t0)) s"
        echo "mirror: $MIRROR"
    } >"$tmp/meta"
    chroot "$tmp/rootfs" dpkg-query -W -f '${Package} ${Version}\n' >"$tmp/packages" 2>/dev/null
    chmod 755 "$tmp"
    mv -T "$tmp" "$dest" || return 1
    note "built in $((SECONDS - t0)) s: $dest"
}

# ---------------------------------------------------------------------------------------
# Containers.
# ---------------------------------------------------------------------------------------
# Every container is a background job of this shell (its unshare process); a pid is only
# signalled while its job is running, so never after it was reaped and perhaps reused.
running() { jobs -rp | grep -qx "$1"; }
C_UNSHARE=
C_PID=
C_LOG=

# start_container NAME USER SPILL ARGV_FILE: SPILL is tmpfs, none, or a host directory.
start_container() {
    local name=$1 user=$2 spill=$3 argv_file=$4 dir=$RUN_DIR/containers/$1 i
    mkdir -p "$dir"/{upper,work,merged}
    # Mount points the engine makes in the container's own layer.
    mkdir -p "$dir/upper$SPILL_DIR" "$dir/upper$WORKDIR" "$dir/upper/etc"
    for f in hosts resolv.conf hostname; do
        [[ -e $ROOTFS/etc/$f ]] || touch "$dir/upper/etc/$f"
    done
    cp /etc/hosts "$dir/hosts"
    cp /etc/resolv.conf "$dir/resolv.conf"
    hostname >"$dir/hostname"
    C_LOG=$dir/log
    L_DIR=$dir L_LOWER="$LAYER:$ROOTFS" L_SPILL=$spill L_SPILL_DIR=$SPILL_DIR \
        L_SPILL_OPTS=$SPILL_OPTS L_ENV=$RUN_DIR/container.env L_ARGV=$argv_file L_USER=$user \
        L_WORKDIR=$WORKDIR \
        unshare --mount --pid --uts --ipc --fork --propagation private -- "$SELF" __launch \
        >"$C_LOG" 2>&1 </dev/null 9>&- &
    C_UNSHARE=$!
    C_PID=
    for ((i = 0; i < 100; i++)); do
        C_PID=$(cat "/proc/$C_UNSHARE/task/$C_UNSHARE/children" 2>/dev/null | awk '{print $1}')
        [[ -n $C_PID ]] && break
        running "$C_UNSHARE" || break
        sleep 0.05
    done
}

# stop_container [SIGNAL] [SECONDS]: signals the container's PID 1 (NONE: does not), waits
# for it to end, kills it after SECONDS; sets C_RC.
C_RC=
signal_pid1() { # SIGNAL: to the container's PID 1, while it is still its unshare's child
    running "$C_UNSHARE" && [[ -n $C_PID ]] &&
        grep -qw "$C_PID" "/proc/$C_UNSHARE/task/$C_UNSHARE/children" 2>/dev/null &&
        kill -s "$1" "$C_PID" 2>/dev/null
}
stop_container() {
    local sig=${1:-TERM} secs=${2:-10} i
    [[ $sig != NONE ]] && signal_pid1 "$sig"
    for ((i = 0; i < secs * 10; i++)); do
        running "$C_UNSHARE" || break
        sleep 0.1
    done
    if running "$C_UNSHARE"; then
        signal_pid1 KILL
        kill -KILL "$C_UNSHARE" 2>/dev/null
    fi
    wait "$C_UNSHARE" 2>/dev/null
    C_RC=$?
}

# run_once NAME USER ARGV...: a container that runs ARGV and is gone (docker run --rm).
run_once() {
    local name=$1 user=$2
    shift 2
    mkdir -p "$RUN_DIR/containers"
    printf '%s\0' "$@" >"$RUN_DIR/containers/$name.argv"
    start_container "$name" "$user" tmpfs "$RUN_DIR/containers/$name.argv"
    stop_container NONE 60 # waits for it to end by itself, a minute at most
    return "$C_RC"
}

# container_exec PID USER ARGV...: like `docker exec`: the container's namespaces, root and
# environment; USER is root or uid:gid (then no capabilities, no_new_privs). CE_TIMEOUT: a
# time limit.
container_exec() {
    local pid=$1 user=$2
    shift 2
    local -a env limit=()
    mapfile -d '' env <"$RUN_DIR/container.env"
    [[ -n ${CE_TIMEOUT:-} ]] && limit=(timeout -k 2 "$CE_TIMEOUT")
    if [[ $user == root ]]; then
        "${limit[@]}" nsenter --target "$pid" --mount --uts --ipc --pid --root --wd -- \
            /usr/bin/env -i "${env[@]}" "$@"
    else
        "${limit[@]}" nsenter --target "$pid" --mount --uts --ipc --pid --root --wd -- \
            /usr/bin/env -i "${env[@]}" /usr/bin/setpriv --reuid="${user%%:*}" \
            --regid="${user##*:}" --clear-groups --inh-caps=-all --bounding-set=-all \
            --no-new-privs -- "$@"
    fi
}

# wait_for_log PATTERN SECONDS: until the container's log matches or it exits.
wait_for_log() {
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        grep -q -- "$1" "$C_LOG" 2>/dev/null && return 0
        running "$C_UNSHARE" || return 1
        sleep 0.1
    done
    return 1
}

# The binary on the host, with none of this shell's MIDNIT_* variables (the worker takes
# every one as a setting); `client` with the broker's.
host_bin() { env -i PATH="$PATH" HOME="${HOME:-/root}" "$BINARY" "$@"; }
client() {
    env -i PATH="$PATH" HOME="${HOME:-/root}" MIDNIT_AMQP_URL="$AMQP_URL" MIDNIT_QUEUE="$QUEUE" \
        MIDNIT_HTTP_ADDR= "$BINARY" "$@"
}

# ---------------------------------------------------------------------------------------
# Results.
# ---------------------------------------------------------------------------------------
PASSED=0 FAILED=0 SKIPPED=0
pass() { printf 'PASS  %-16s %s\n' "$1" "$2"; PASSED=$((PASSED + 1)); }
fail() { printf 'FAIL  %-16s %s\n' "$1" "$2"; FAILED=$((FAILED + 1)); }
skip() { printf 'SKIP  %-16s %s\n' "$1" "$2"; SKIPPED=$((SKIPPED + 1)); }
indent() { sed 's/^/        | /' | head -"${1:-20}"; }

RUN_DIR=
QUEUE=
cleanup() {
    local pid
    for pid in $(jobs -rp); do # only containers run as jobs
        C_UNSHARE=$pid
        C_PID=$(awk '{print $1}' "/proc/$pid/task/$pid/children" 2>/dev/null)
        signal_pid1 KILL
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    if [[ -n $QUEUE ]] && command -v rabbitmqctl >/dev/null &&
        [[ $AMQP_URL =~ @(127\.0\.0\.1|localhost)(:|/) ]]; then
        timeout 30 rabbitmqctl -q delete_queue "$QUEUE" >/dev/null 2>&1
        timeout 30 rabbitmqctl -q delete_queue "$QUEUE.dead" >/dev/null 2>&1
        timeout 30 rabbitmqctl -q eval "rabbit_exchange:delete(rabbit_misc:r(<<\"/\">>, exchange, <<\"$QUEUE.dlx\">>), false, <<\"image-check\">>)." >/dev/null 2>&1
    fi
    if [[ -n $RUN_DIR && -d $RUN_DIR ]]; then
        # Every mount was made in a namespace of its own; none should be left on the host.
        findmnt -rn -o TARGET | grep -F "$RUN_DIR" | sort -r | xargs -r umount -l 2>/dev/null
        if [[ ${IMAGE_CHECK_KEEP:-0} == 1 ]]; then
            echo ".. kept $RUN_DIR"
        else
            rm -rf "$RUN_DIR"
        fi
    fi
}

# ---------------------------------------------------------------------------------------
# Main.
# ---------------------------------------------------------------------------------------
ROOTFS_ONLY=0
case ${1:-} in
    --rootfs-only) ROOTFS_ONLY=1 ;;
    "" | -h | --help) sed -n '2,/^set -uo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 2 ;;
    *) BINARY=$(realpath "$1") || die "no such binary: $1"
        [[ -x $BINARY ]] || die "not an executable: $1" ;;
esac
[[ $(id -u) == 0 ]] || die "needs root (namespaces, mounts, chroot)"
if ! command -v debootstrap >/dev/null && command -v apt-get >/dev/null; then
    note "installing debootstrap"
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends debootstrap; } >/dev/null 2>&1
fi
for tool in debootstrap unshare nsenter setpriv python3 chroot ss flock; do
    command -v "$tool" >/dev/null || die "needs $tool"
done
[[ -f $DOCKERFILE ]] || die "no Dockerfile at $DOCKERFILE"

T_START=$SECONDS
RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/midnit-image-check.XXXXXX")
chmod 755 "$RUN_DIR"
trap cleanup EXIT
trap 'exit 130' INT TERM

DF=$RUN_DIR/dockerfile
mkdir -p "$DF"
parse_dockerfile "$DOCKERFILE" "$DF" || die "cannot read the runtime stage of $DOCKERFILE"
if [[ -s $DF/problems ]]; then
    fail dockerfile "$(paste -sd ';' "$DF/problems")"
    exit 1
fi
pass dockerfile "$(cat "$DF/summary")"

KEY=$(cat "$DF/key")
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
T_ROOTFS=$SECONDS
if [[ -d $CACHE/$KEY/rootfs && ${IMAGE_CHECK_REBUILD:-0} != 1 ]]; then
    pass rootfs "cached $CACHE/$KEY ($(sed -n 's/^built: //p' "$CACHE/$KEY/meta"))"
else
    if [[ -e $CACHE/$KEY ]]; then
        mv -T "$CACHE/$KEY" "$CACHE/.old.$KEY.$$" && rm -rf "$CACHE/.old.$KEY.$$"
    fi
    if build_rootfs "$DF" "$CACHE/$KEY"; then
        pass rootfs "built $CACHE/$KEY in $((SECONDS - T_ROOTFS)) s"
    else
        fail rootfs "the runtime stage could not be built"
        exit 1
    fi
fi
flock -s 9 # shared while it is used: another run may reuse it, not replace it
ROOTFS=$CACHE/$KEY/rootfs
for old in "$CACHE"/*/meta; do
    [[ $old == "$CACHE/$KEY/meta" ]] || note "another cached root filesystem: ${old%/meta} (remove it when unused)"
done
[[ $ROOTFS_ONLY == 1 ]] && { echo "image-check: $PASSED passed, $FAILED failed"; exit 0; }

# The image's settings, read from the stage and the root filesystem.
COPY_DEST=$(cat "$DF/copy_dest")
WORKDIR=$(cat "$DF/workdir")
USER_SPEC=$(cat "$DF/user")
uid=${USER_SPEC%%:*}
gid=${USER_SPEC#*:}
[[ $USER_SPEC == *:* ]] || gid=
pw=$(awk -F: -v u="$uid" '$1 == u || $3 == u' "$ROOTFS/etc/passwd" | head -1)
[[ $uid =~ ^[0-9]+$ ]] || uid=$(cut -d: -f3 <<<"$pw")
[[ -z $gid ]] && gid=$(cut -d: -f4 <<<"$pw")
[[ -z $gid && $USER_SPEC != *:* ]] && gid=0 # no passwd entry: the engine uses group 0
[[ $gid =~ ^[0-9]+$ ]] || gid=$(awk -F: -v g="$gid" '$1 == g {print $3}' "$ROOTFS/etc/group")
[[ -n $uid && -n $gid ]] || die "USER $USER_SPEC does not resolve in the image"
RUN_AS=$uid:$gid
HOME_DIR=$(cut -d: -f6 <<<"$pw")
mapfile -d '' IMAGE_ENV <"$DF/env"
SPILL_DIR=/spill
for kv in "${IMAGE_ENV[@]}"; do
    [[ $kv == MIDNIT_SPILL_DIR=* ]] && SPILL_DIR=${kv#*=}
done
SPILL_OPTS=${IMAGE_CHECK_SPILL_TMPFS:-rw,nosuid,nodev,noexec,size=512m,mode=0700,uid=$uid}
QUEUE=midnit.image-check.$(date +%s).$$

# The port the image's listener takes: in use on this host, another one (-e), as the
# network is the host's.
HTTP_ADDR=
for kv in "${IMAGE_ENV[@]}"; do
    [[ $kv == MIDNIT_HTTP_ADDR=* ]] && HTTP_ADDR=${kv#*=}
done
EXTRA_ENV=(MIDNIT_AMQP_URL="$AMQP_URL" MIDNIT_QUEUE="$QUEUE")
if [[ -n $HTTP_ADDR ]] && ss -Hltn "sport = :${HTTP_ADDR##*:}" | grep -q .; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    note "port ${HTTP_ADDR##*:} is taken on this host: -e MIDNIT_HTTP_ADDR=${HTTP_ADDR%:*}:$port"
    EXTRA_ENV+=(MIDNIT_HTTP_ADDR="${HTTP_ADDR%:*}:$port")
fi
# The container's environment: the image's, HOSTNAME and HOME as the engine sets them, -e.
printf '%s\0' "${IMAGE_ENV[@]}" "HOSTNAME=$(hostname)" "HOME=${HOME_DIR:-/}" "${EXTRA_ENV[@]}" \
    >"$RUN_DIR/container.env"
cp "$DF/argv" "$RUN_DIR/worker.argv"

# The COPY layer: the binary, copied in fresh.
LAYER=$RUN_DIR/layer-copy
mkdir -p "$LAYER$(dirname "$COPY_DEST")"
install -m 0755 -o 0 -g 0 "$BINARY" "$LAYER$COPY_DEST"
note "equivalent: docker run --network host --read-only --tmpfs $SPILL_DIR:$SPILL_OPTS --cap-drop ALL --security-opt no-new-privileges $(printf -- '-e %q ' "${EXTRA_ENV[@]}" | sed 's/guest:guest@/***@/')IMAGE"
note "binary: $BINARY -> $COPY_DEST ($(stat -c %s "$BINARY") bytes); queue $QUEUE"

# -- The RUN's packages and user.
mapfile -t PACKAGES <"$DF/packages"
if ((${#PACKAGES[@]})); then
    missing=()
    for p in "${PACKAGES[@]}"; do
        st=$(chroot "$ROOTFS" dpkg-query -W -f '${Status} ${Version}' "$p" 2>/dev/null)
        [[ $st == "install ok installed "* ]] || missing+=("$p")
    done
    if ((${#missing[@]})); then
        fail packages "not installed: ${missing[*]}"
    else
        pass packages "$(for p in "${PACKAGES[@]}"; do printf '%s %s, ' "$p" "$(chroot "$ROOTFS" dpkg-query -W -f '${Version}' "$p")"; done | sed 's/, $//') ($(wc -l <"$CACHE/$KEY/packages") packages in all)"
    fi
else
    skip packages "the runtime stage installs no package"
fi
if [[ $uid == 0 ]]; then
    fail user "USER $USER_SPEC: the image runs as root"
elif [[ -n $pw ]]; then
    grp=$(awk -F: -v g="$gid" '$3 == g {print $1}' "$ROOTFS/etc/group")
    own=$(awk -F: -v n="$(cut -d: -f1 <<<"$pw")" '$1 == n {print $3}' "$ROOTFS/etc/group")
    pass user "USER $USER_SPEC: passwd $pw; gid $gid ${grp:+is group $grp}${grp:-has no group entry (group $(cut -d: -f1 <<<"$pw") is gid ${own:-none})}"
else
    pass user "USER $USER_SPEC, a uid with no passwd entry"
fi

# -- Libraries: the binary's, and libheif's (opened at run time) where the image has it.
run_once ldd root /usr/bin/ldd "$COPY_DEST"
out=$(cat "$C_LOG")
if [[ $C_RC == 0 ]] && ! grep -q 'not found' <<<"$out"; then
    pass libraries "$COPY_DEST: $(grep -c '=>' <<<"$out") shared libraries, all in the image ($(grep -o 'lib[a-z0-9_+-]*\.so[.0-9]*' <<<"$out" | sort -u | paste -sd ' '))"
else
    fail libraries "$COPY_DEST does not load in the image"
    indent <<<"$out"
fi
if printf '%s\n' "${PACKAGES[@]}" | grep -q '^libheif'; then
    run_once ldconfig root /bin/sh -c 'p=$(/sbin/ldconfig -p | sed -n "s/.*libheif\.so\.1 .*=> //p" | head -1); [ -n "$p" ] || { echo "libheif.so.1 is not in the loader cache"; exit 1; }; echo "$p"; /usr/bin/ldd "$p"'
    out=$(cat "$C_LOG")
    if [[ $C_RC == 0 ]] && ! grep -q 'not found' <<<"$out"; then
        pass libheif "libheif.so.1 -> $(head -1 <<<"$out"), its $(grep -c '=>' <<<"$out") libraries all in the image"
    else
        fail libheif "libheif.so.1 cannot be opened in the image"
        indent <<<"$out"
    fi
fi

# -- The worker, as the image runs it.
start_container worker "$RUN_AS" tmpfs "$RUN_DIR/worker.argv"
WORKER=$C_PID
WORKER_UNSHARE=$C_UNSHARE
WORKER_LOG=$C_LOG
t0=$SECONDS
if [[ -n $WORKER ]] && wait_for_log '"consuming"' 90; then
    pass start "$(tr '\0' ' ' <"$RUN_DIR/worker.argv")as PID $(awk '/^NSpid:/ {print $NF}' "/proc/$WORKER/status") of its namespace (host pid $WORKER): consuming $QUEUE after $((SECONDS - t0)) s"
else
    stop_container KILL 1
    fail start "no \"consuming\" in 90 s (exit status $C_RC); the container's output:"
    indent 40 <"$WORKER_LOG"
    echo "image-check: $PASSED passed, $FAILED failed, $SKIPPED skipped"
    exit 1
fi

# Identity and privileges, read by the kernel's account of the process.
st=/proc/$WORKER/status
ids=$(awk '/^Uid:/ {print $2,$3,$4,$5} /^Gid:/ {print $2,$3,$4,$5}' "$st" | paste -sd ' ')
groups=$(awk '/^Groups:/ {$1=""; print}' "$st" | xargs)
caps=$(awk '/^Cap(Inh|Prm|Eff|Bnd|Amb):/ {printf "%s%s ", $1, $2}' "$st")
nnp=$(awk '/^NoNewPrivs:/ {print $2}' "$st")
if [[ $ids == "$uid $uid $uid $uid $gid $gid $gid $gid" && -z $groups && $nnp == 1 ]] &&
    ! grep -Eq '[1-9a-f]' <<<"$(awk '/^Cap(Inh|Prm|Eff|Bnd|Amb):/ {print $2}' "$st")"; then
    pass identity "uid/gid $uid/$gid (real, effective, saved, fs), no groups, NoNewPrivs 1, every capability set empty"
else
    fail identity "uids/gids: $ids; groups: ${groups:-none}; NoNewPrivs $nnp; $caps"
fi

# Mounts as the worker sees them.
mi=/proc/$WORKER/mountinfo
root_opts=$(awk '$5 == "/" {print $6}' "$mi" | tail -1)
spill_line=$(awk -v d="$SPILL_DIR" '$5 == d {for (i = 7; $i != "-"; i++); print $(i+1), $6, $(i+3)}' "$mi" | tail -1)
if [[ $root_opts == ro,* && $spill_line == tmpfs\ rw,* ]]; then
    pass mounts "/ $root_opts; $SPILL_DIR $spill_line; $(awk '{print $5}' "$mi" | grep -c .) mounts in its namespace"
else
    fail mounts "/ ${root_opts:-?}; $SPILL_DIR ${spill_line:-not mounted}"
fi

# The renderers the worker starts (pre-started ones wait for their job, already confined).
renderers() {
    local t c
    for t in /proc/"$WORKER"/task/*/children; do cat "$t" 2>/dev/null; done | tr ' ' '\n' | grep . |
        while read -r c; do
            tr '\0' ' ' <"/proc/$c/cmdline" 2>/dev/null | grep -q -- '__render-child' && echo "$c"
        done
}
for ((i = 0; i < 100; i++)); do
    [[ -n $(renderers) ]] && break
    sleep 0.1
done
mapfile -t RENDERERS < <(renderers)
if ((${#RENDERERS[@]})); then
    bad=
    for c in "${RENDERERS[@]}"; do
        s=$(awk '/^(Uid|Seccomp|NoNewPrivs):/ {printf "%s%s ", $1, $2}' "/proc/$c/status")
        [[ $s == *"Uid:$uid "* && $s == *"Seccomp:2 "* && $s == *"NoNewPrivs:1 "* ]] || bad+="$c: $s; "
    done
    exe=$(readlink "/proc/${RENDERERS[0]}/exe")
    exe=${exe#"$RUN_DIR/containers/worker/merged"}
    if [[ -z $bad ]]; then
        pass renderers "${#RENDERERS[@]} pre-started ($exe __render-child), each uid $uid, seccomp filter on (Seccomp 2), NoNewPrivs 1"
    else
        fail renderers "$bad"
    fi
else
    fail renderers "no __render-child process under the worker after 10 s"
fi

# -- HEALTHCHECK, run inside as the engine runs it.
mapfile -d '' HEALTH <"$DF/health_argv"
if ((${#HEALTH[@]})); then
    hc_timeout=$(sed -n 's/^timeout=//p' "$DF/health_opts")
    hc_timeout=${hc_timeout:-30s}
    out=$(CE_TIMEOUT=$hc_timeout container_exec "$WORKER" "$RUN_AS" "${HEALTH[@]}" 2>&1)
    rc=$?
    if [[ $rc == 0 ]]; then
        pass healthcheck "${HEALTH[*]} (inside, as $RUN_AS, timeout $hc_timeout): $(tail -1 <<<"$out")"
    else
        fail healthcheck "${HEALTH[*]}: exit $rc"
        indent <<<"$out"
    fi
    out=$(CE_TIMEOUT=$hc_timeout container_exec "$WORKER" "$RUN_AS" "${HEALTH[0]}" healthcheck --path /readyz 2>&1)
    rc=$?
    if [[ $rc == 0 ]]; then
        pass readyz "the same with --path /readyz: $(tail -1 <<<"$out")"
    else
        fail readyz "the same with --path /readyz: exit status $rc"
        indent <<<"$out"
    fi
else
    skip healthcheck "the image has no HEALTHCHECK"
fi

# -- EXPOSE: the worker listens on the ports the image declares.
mapfile -t EXPOSE <"$DF/expose"
for e in "${EXPOSE[@]}"; do
    [[ -n $e ]] || continue
    want=${e%/*}
    for kv in "${EXTRA_ENV[@]}"; do [[ $kv == MIDNIT_HTTP_ADDR=* ]] && want=${kv##*:}; done
    l=$(ss -Hltnp "sport = :$want" | grep "pid=$WORKER," | awk '{print $4}' | head -1)
    if [[ -n $l ]]; then
        pass expose "EXPOSE $e: the worker listens on $l$([[ ${l##*:} == "${e%/*}" ]] || echo " (-e MIDNIT_HTTP_ADDR above: ${e%/*} is taken on this host)")"
    else
        fail expose "EXPOSE $e: the worker does not listen on port $want"
    fi
done

# -- Jobs through the broker, from outside.
JOBS=$RUN_DIR/jobs
mkdir -p "$JOBS"
PUBLIC_KEY=$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        j = json.loads(line)
    except ValueError:
        continue
    k = j.get("fields", {}).get("public_key")
    if k:
        print(k)
        break' "$WORKER_LOG")

# submit NAME REQUEST: the printed reply in $JOBS/NAME.reply.json, the outputs in $JOBS/NAME/;
# prints what came back, fails unless the status is ok and every output was written.
submit() {
    local name=$1 req=$2
    client submit "$req" --out "$JOBS/$name" --timeout 60 >"$JOBS/$name.reply.json" 2>"$JOBS/$name.err"
    local rc=$?
    python3 - "$JOBS/$name.reply.json" "$JOBS/$name" "$rc" <<'PY'
import json, os, sys
path, out, rc = sys.argv[1], sys.argv[2], sys.argv[3]
try:
    r = json.load(open(path))
except ValueError:
    print(f"no reply (submit exit status {rc})"); sys.exit(1)
if r["status"] != "ok":
    print(f"status {r['status']}: {r.get('error')}"); sys.exit(1)
desc = []
for o in r["outputs"]:
    ext = "jpg" if o["format"] == "jpeg" else o["format"]
    f = os.path.join(out, f"{o['name']}.{ext}")
    if not os.path.exists(f) or os.path.getsize(f) != o["bytes"]:
        print(f"output {o['name']} missing or of the wrong size at {f}"); sys.exit(1)
    desc.append(f"{o['name']} {o['format']} {o['width']}x{o['height']} {o['bytes']} B")
print("ok: " + ", ".join(desc))
PY
}

EXAMPLE=$REPO/docs/examples/thumbnail.json
t0=$SECONDS
if out=$(submit thumbnail "$EXAMPLE"); then
    pass job "docs/examples/thumbnail.json in $((SECONDS - t0)) s: $out"
    if [[ -n $PUBLIC_KEY ]]; then
        out=$(host_bin verify-receipt "$JOBS/thumbnail.reply.json" --public-key "$PUBLIC_KEY" 2>&1)
        rc=$?
        if [[ $rc == 0 ]]; then
            pass receipt "$out"
        else
            fail receipt "verify-receipt refused the reply (exit status $rc)"
            indent <<<"$out"
        fi
    else
        fail receipt "the worker logged no receipt public key"
    fi
else
    fail job "docs/examples/thumbnail.json: $out"
    indent <"$JOBS/thumbnail.err"
fi

# An input above the spill threshold: spilled to the tmpfs and wiped, as the receipt says.
threshold=$(host_bin settings | awk -F'|' '/`spill_threshold_bytes`/ {gsub(/[ `]/, "", $5); print $5}')
for kv in "${IMAGE_ENV[@]}"; do [[ $kv == MIDNIT_SPILL_THRESHOLD_BYTES=* ]] && threshold=${kv#*=}; done
if [[ $threshold =~ ^[0-9]+$ ]]; then
    python3 - "$JOBS/noise.png" "$threshold" <<'PY'
import math, os, struct, sys, zlib
side = math.isqrt(int(sys.argv[2]) * 9 // 8 // 3) + 1  # raw RGB about 12 % above the threshold
raw = b"".join(b"\0" + os.urandom(side * 3) for _ in range(side))
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(raw, 0)) + chunk(b"IEND", b"")
open(sys.argv[1], "wb").write(png)
PY
    cat >"$JOBS/request-spill.json" <<'EOF'
{ "v": 1, "inputs": { "photo": "noise.png" },
  "outputs": [ { "name": "small", "format": "png", "width": 64 } ] }
EOF
    t0=$SECONDS
    if out=$(submit spill "$JOBS/request-spill.json"); then
        how=$(python3 -c '
import json, sys
w = [e for e in json.load(open(sys.argv[1]))["receipt"]["wiped"] if e["artifact"].startswith("spill.")]
print(" ".join("%s %d B %s" % (e["artifact"], e["bytes"], e["method"]) for e in w))' "$JOBS/spill.reply.json")
        if [[ -n $how && $how != *failed* ]]; then
            pass spill "a $(stat -c %s "$JOBS/noise.png") B input (threshold $threshold) in $((SECONDS - t0)) s: $out; spilled to $SPILL_DIR and wiped ($how)"
        else
            fail spill "the receipt records no spill file, or a failed wipe: ${how:-none}"
        fi
    else
        fail spill "$out"
        indent <"$JOBS/spill.err"
    fi
else
    skip spill "no spill_threshold_bytes in the binary's settings"
fi

# AVIF out (rav1e, in the binary), then that AVIF in (libheif and its decoders, from the
# image's packages, opened by a renderer).
cp "$REPO/docs/examples/figure.jpg" "$JOBS/figure.jpg"
cat >"$JOBS/request-to-avif.json" <<'EOF'
{ "v": 1, "inputs": { "photo": "figure.jpg" },
  "outputs": [ { "name": "small", "format": "avif", "width": 320 } ] }
EOF
cat >"$JOBS/request-from-avif.json" <<'EOF'
{ "v": 1, "inputs": { "photo": "to-avif/small.avif" },
  "outputs": [ { "name": "decoded", "format": "png", "width": 160 } ] }
EOF
t0=$SECONDS
if out=$(submit to-avif "$JOBS/request-to-avif.json"); then
    pass avif-output "figure.jpg to AVIF in $((SECONDS - t0)) s: $out"
    if printf '%s\n' "${PACKAGES[@]}" | grep -q '^libheif'; then
        t0=$SECONDS
        if out=$(submit from-avif "$JOBS/request-from-avif.json"); then
            pass heif-input "that AVIF as input (libheif in a renderer) in $((SECONDS - t0)) s: $out"
        else
            fail heif-input "$out"
            indent <"$JOBS/from-avif.err"
        fi
    else
        skip heif-input "the image installs no libheif: HEIC and AVIF inputs are off"
    fi
else
    fail avif-output "$out"
    indent <"$JOBS/to-avif.err"
fi

# -- Read-only root: for the worker's user, and for root inside (so not mere permissions).
ro_try() { # USER PATH: prints the shell's error, succeeds if the write was refused as EROFS
    local o
    o=$(container_exec "$WORKER" "$1" /bin/sh -c "echo probe > '$2' && rm -f '$2'" 2>&1)
    [[ $? != 0 ]] && grep -q 'Read-only file system' <<<"$o"
}
ro_ok=1 ro_detail=
targets=("$RUN_AS /.image-check-probe" "$RUN_AS /tmp/.image-check-probe"
    "root /.image-check-probe" "root $(dirname "$COPY_DEST")/.image-check-probe")
[[ $WORKDIR == / ]] || targets+=("$RUN_AS $WORKDIR/.image-check-probe")
for target in "${targets[@]}"; do
    read -r who path <<<"$target"
    if ro_try "$who" "$path"; then
        ro_detail+="$who $(dirname "$path"): EROFS; "
    else
        ro_ok=0
        ro_detail+="$who $(dirname "$path"): WRITABLE; "
    fi
done
# The control: where the container may write, the same probe works.
if container_exec "$WORKER" "$RUN_AS" /bin/sh -c 'echo probe > /dev/shm/.probe && rm /dev/shm/.probe' 2>/dev/null; then
    ro_detail+="control: $RUN_AS can write /dev/shm"
else
    ro_ok=0
    ro_detail+="control: $RUN_AS cannot write /dev/shm either (the probe itself is broken)"
fi
if [[ $ro_ok == 1 ]]; then pass read-only "$ro_detail"; else fail read-only "$ro_detail"; fi

# -- Worker log: no error lines.
errors=$(grep -c '"level":"ERROR"' "$WORKER_LOG")
warns=$(grep '"level":"WARN"' "$WORKER_LOG")
if [[ $errors == 0 ]]; then
    pass log "$(grep -c . "$WORKER_LOG") lines, no ERROR$( [[ -n $warns ]] && echo ", $(grep -c . <<<"$warns") WARN (below)")"
    [[ -n $warns ]] && indent 10 <<<"$warns"
else
    fail log "$errors ERROR lines:"
    grep '"level":"ERROR"' "$WORKER_LOG" | indent 10
fi

# -- STOPSIGNAL: a clean exit.
sig=$(cat "$DF/stopsignal")
t0=$SECONDS
C_PID=$WORKER C_UNSHARE=$WORKER_UNSHARE stop_container "${sig#SIG}" 40
if [[ $C_RC == 0 ]]; then
    pass stop "$sig to PID 1: exit status 0 after $((SECONDS - t0)) s ($(python3 -c '
import json, sys
msgs = [json.loads(l).get("fields", {}).get("message", "") for l in open(sys.argv[1]) if l.startswith("{")]
print(msgs[-1] if msgs else "no log")' "$WORKER_LOG"))"
else
    fail stop "$sig to PID 1: exit status $C_RC"
    tail -5 "$WORKER_LOG" | indent
fi

# -- /spill on a disk: the image must refuse to start (once the worker has the setting).
if host_bin settings 2>/dev/null | grep -q 'spill_require_tmpfs'; then
    # A directory on a disk, as a named volume would be (-v spill:/spill).
    disk=$RUN_DIR/volume-on-disk
    if [[ $(stat -f -c %T "$RUN_DIR") == tmpfs ]]; then
        disk=$CACHE/.volume-on-disk.$$
    fi
    mkdir -p "$disk"
    chown "$uid:$gid" "$disk"
    chmod 0700 "$disk"
    start_container spill-on-disk "$RUN_AS" "$disk" "$RUN_DIR/worker.argv"
    if wait_for_log '"consuming"' 30; then
        stop_container KILL 1
        fail spill-on-disk "the worker started with $SPILL_DIR on a disk ($(stat -f -c %T "$disk"), as -v volume:$SPILL_DIR)"
    else
        stop_container KILL 1
        why=$(grep -i 'tmpfs' "$C_LOG" | tail -1)
        left=$(find "$disk" -mindepth 1 | wc -l)
        if [[ $C_RC != 0 && $C_RC -lt 128 && -n $why ]]; then
            pass spill-on-disk "with $SPILL_DIR on a disk ($(stat -f -c %T "$disk"), as -v volume:$SPILL_DIR) it refused to start (exit status $C_RC, $left files left there): $(python3 -c '
import json, sys
l = sys.argv[1]
try:
    j = json.loads(l); print(j.get("fields", {}).get("message", l))
except ValueError:
    print(l)' "$why")"
        else
            fail spill-on-disk "exit status $C_RC, nothing about tmpfs in its output:"
            indent <"$C_LOG"
        fi
    fi
    [[ $disk == "$CACHE"/* ]] && rm -rf "$disk"
else
    skip spill-on-disk "this binary has no spill_require_tmpfs setting ('settings' does not list it): cannot refuse a disk at $SPILL_DIR yet"
fi

echo "image-check: $PASSED passed, $FAILED failed, $SKIPPED skipped ($((SECONDS - T_START)) s)"
[[ $FAILED == 0 ]]
