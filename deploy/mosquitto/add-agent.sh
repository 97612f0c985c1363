#!/usr/bin/env bash
# Enrol an edge agent at the broker: its ACL block (own site and agent id
# only), its password, and optionally its client certificate.
#
# Usage:
#   add-agent.sh SITE AGENT [--acl FILE] [--passwd FILE] [--password-file FILE]
#                           [--certs DIR] [--out DIR]
#
#   --acl FILE            ACL file to append to      (default /etc/mosquitto/throughline.acl)
#   --passwd FILE         Mosquitto password file    (default /etc/mosquitto/throughline.passwd;
#                                                     made if missing)
#   --password-file FILE  the agent's password, first line; without it a random
#                         password is made
#   --certs DIR           the CA directory of make-certs.sh: also issue the agent's
#                         client certificate there (DIR/clients/AGENT.pem, .key)
#   --out DIR             where to put what goes onto the gateway (default ./AGENT):
#                         mqtt.password, and with --certs ca.pem, agent.pem, agent.key
#
# Example, on the broker host as root:
#   deploy/mosquitto/add-agent.sh plant-a gw-press-01 --certs /root/plant-ca --out /root/gw-press-01
#   systemctl reload mosquitto
#   then copy /root/gw-press-01/* to the gateway's /etc/throughline/ (docs/raspberry-pi.md)
#
# Running it again for the same agent sets a new password and keeps the ACL
# block and certificate; an agent already enrolled at another site is refused.
# mosquitto_passwd takes the password as an argument (-b), so it is visible in
# the process list for that instant: run this on the broker host only.
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}
die() { echo "add-agent.sh: $*" >&2; exit 1; }

args=()
acl=/etc/mosquitto/throughline.acl
passwd=/etc/mosquitto/throughline.passwd
password_file=""
certs=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --acl) [ $# -ge 2 ] || usage; acl="$2"; shift 2 ;;
    --passwd) [ $# -ge 2 ] || usage; passwd="$2"; shift 2 ;;
    --password-file) [ $# -ge 2 ] || usage; password_file="$2"; shift 2 ;;
    --certs) [ $# -ge 2 ] || usage; certs="$2"; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
    -h|--help) usage ;;
    -*) echo "add-agent.sh: unknown option $1" >&2; usage ;;
    *) args+=("$1"); shift ;;
  esac
done
[ ${#args[@]} -eq 2 ] || usage
site="${args[0]}"
agent="${args[1]}"
id_re='^[A-Za-z0-9_-]{1,64}$'
[[ "$site" =~ $id_re ]] || die "site '$site': use letters, digits, '_' and '-' (at most 64)"
[[ "$agent" =~ $id_re ]] || die "agent '$agent': use letters, digits, '_' and '-' (at most 64)"
[ "$agent" != throughline-aggregator ] || die "'throughline-aggregator' is the aggregator's user, not an agent"
command -v mosquitto_passwd >/dev/null || die "mosquitto_passwd not found (apt-get install mosquitto)"
[ -f "$acl" ] || die "$acl does not exist: start from deploy/mosquitto/throughline.acl"
out="${out:-./$agent}"
[ -z "$certs" ] || [ -f "$certs/ca.pem" ] || die "$certs/ca.pem not found: make the CA first with make-certs.sh $certs --host BROKER"

umask 077

# 1. ACL: the agent may write its status and its assets' telemetry and read
# its resend requests and notices, nothing else.
existing="$(awk -v a="$agent" '$1 == "user" && $2 == a { found = 1; next }
  $1 == "user" || $1 == "pattern" { found = 0 }
  found && $1 == "topic" { print $NF }' "$acl")"
if [ -n "$existing" ]; then
  grep -qx "throughline/v1/$site/$agent/status" <<<"$existing" ||
    die "$agent is already in $acl with other topics (another site?):"$'\n'"$existing"
  # Enrolled before resend requests or notices: Mosquitto adds a second
  # block of the same user to the first.
  missing=()
  for t in resend notice; do
    grep -qx "throughline/v1/$site/$agent/$t" <<<"$existing" || missing+=("$t")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "kept the ACL block of $agent in $acl"
  else
    {
      echo
      echo "# $agent at $site: ${missing[*]} (add-agent.sh, $(date -u +%Y-%m-%d))"
      echo "user $agent"
      for t in "${missing[@]}"; do
        echo "topic read throughline/v1/$site/$agent/$t"
      done
    } >>"$acl"
    echo "kept the ACL block of $agent in $acl and added: read ${missing[*]/#/throughline/v1/$site/$agent/}"
  fi
else
  {
    echo
    echo "# $agent at $site (add-agent.sh, $(date -u +%Y-%m-%d))"
    echo "user $agent"
    echo "topic write throughline/v1/$site/$agent/status"
    echo "topic write throughline/v1/$site/$agent/+/telemetry"
    echo "topic read throughline/v1/$site/$agent/resend"
    echo "topic read throughline/v1/$site/$agent/notice"
  } >>"$acl"
  echo "added $agent to $acl: write throughline/v1/$site/$agent/status and .../+/telemetry, read .../resend and .../notice"
fi

# 2. Password.
mkdir -p "$out"
if [ -n "$password_file" ]; then
  password="$(head -n 1 "$password_file")"
  [ -n "$password" ] || die "$password_file: the first line is empty"
else
  password="$(openssl rand -base64 33 | tr -d '/+=\n')"
fi
if [ -f "$passwd" ]; then
  mosquitto_passwd -b "$passwd" "$agent" "$password"
else
  mosquitto_passwd -c -b "$passwd" "$agent" "$password"
  # Mosquitto reads it as its own user: root:mosquitto, not world-readable.
  chmod 640 "$passwd"
  chgrp mosquitto "$passwd" 2>/dev/null || true
fi
printf '%s\n' "$password" >"$out/mqtt.password"
echo "set the password of $agent in $passwd; copy for the gateway: $out/mqtt.password"

# 3. Client certificate.
if [ -n "$certs" ]; then
  "$(dirname "$0")/make-certs.sh" "$certs" --client "$agent"
  cp "$certs/ca.pem" "$out/ca.pem"
  cp "$certs/clients/$agent.pem" "$out/agent.pem"
  cp "$certs/clients/$agent.key" "$out/agent.key"
  echo "copied ca.pem, agent.pem and agent.key for the gateway to $out/"
fi

echo "now reload the broker (systemctl reload mosquitto) and install $out/ on the gateway"
