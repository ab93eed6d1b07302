#!/bin/sh
# The compose broker's entrypoint: writes the definitions RabbitMQ loads at boot, then runs
# its arguments (the image's own entrypoint and `rabbitmq-server`).
#
# A node that loads definitions at boot creates no default user (no guest), and a definitions
# file cannot read the environment. So this writes, into MIDNIT_DEFINITIONS_DIR (a tmpfs that
# `load_definitions` in compose.conf points at):
#
#   00-topology.json  a copy of MIDNIT_TOPOLOGY_DEFINITIONS (queues, exchange, policies)
#   10-users.json     MIDNIT_BROKER_USER (the workers' user: AMQP only, all rights on vhost /)
#                     and MIDNIT_BROKER_ADMIN_USER (tag administrator: the management UI),
#                     stored as RabbitMQ's salted SHA-256 hashes of MIDNIT_BROKER_PASSWORD and
#                     MIDNIT_BROKER_ADMIN_PASSWORD, never as the passwords
#
# and removes the passwords from the environment before the broker starts. RabbitMQ imports
# every file of the directory in name order on each boot, so a changed password takes effect
# when the container is recreated. With no arguments it only writes the files (the local
# check, tests/rabbitmq-node.sh compose-check, runs it so).
set -eu

: "${MIDNIT_BROKER_PASSWORD:?is not set}"
: "${MIDNIT_BROKER_ADMIN_PASSWORD:?is not set}"
: "${MIDNIT_TOPOLOGY_DEFINITIONS:?is not set}"
: "${MIDNIT_DEFINITIONS_DIR:?is not set}"
user=${MIDNIT_BROKER_USER:-midnit}
admin=${MIDNIT_BROKER_ADMIN_USER:-midnit-admin}
dir=$MIDNIT_DEFINITIONS_DIR

for name in "$user" "$admin"; do
  case $name in
    '' | *[!A-Za-z0-9._-]*)
      echo "broker-entrypoint: user name '$name': use letters, digits, '.', '_', '-'" >&2
      exit 1
      ;;
  esac
done
if [ "$user" = "$admin" ]; then
  echo "broker-entrypoint: MIDNIT_BROKER_USER and MIDNIT_BROKER_ADMIN_USER must differ" >&2
  exit 1
fi

umask 077
mkdir -p "$dir"
work=$(mktemp -d "$dir/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT

# RabbitMQ's rabbit_password_hashing_sha256: base64(salt ‖ SHA-256(salt ‖ password)), with a
# random 4-byte salt. The password goes through a pipe, never a command line.
hash_password() {
  head -c 4 /dev/urandom >"$work/salt"
  { cat "$work/salt"; printf '%s' "$1"; } | openssl dgst -sha256 -binary >"$work/digest"
  cat "$work/salt" "$work/digest" | openssl base64 -A
}
user_hash=$(hash_password "$MIDNIT_BROKER_PASSWORD")
admin_hash=$(hash_password "$MIDNIT_BROKER_ADMIN_PASSWORD")

cp "$MIDNIT_TOPOLOGY_DEFINITIONS" "$work/00-topology.json"
cat >"$work/10-users.json" <<EOF
{
  "users": [
    {
      "name": "$user",
      "password_hash": "$user_hash",
      "hashing_algorithm": "rabbit_password_hashing_sha256",
      "tags": []
    },
    {
      "name": "$admin",
      "password_hash": "$admin_hash",
      "hashing_algorithm": "rabbit_password_hashing_sha256",
      "tags": ["administrator"]
    }
  ],
  "vhosts": [{ "name": "/" }],
  "permissions": [
    { "user": "$user", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*" },
    { "user": "$admin", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*" }
  ]
}
EOF
mv -f "$work/00-topology.json" "$work/10-users.json" "$dir/"
# Nothing but definitions may stay in the directory: RabbitMQ reads every entry.
rm -rf "$work"
trap - EXIT
# The broker runs as the rabbitmq user.
if [ "$(id -u)" = 0 ] && id rabbitmq >/dev/null 2>&1; then
  chown rabbitmq:rabbitmq "$dir" "$dir/00-topology.json" "$dir/10-users.json"
fi

unset MIDNIT_BROKER_PASSWORD MIDNIT_BROKER_ADMIN_PASSWORD
if [ "$#" -gt 0 ]; then
  exec "$@"
fi
