#!/usr/bin/env bash
# Make the plant's TLS material for Mosquitto and the edge agents with openssl:
#
#   DIR/ca.pem, DIR/ca.key                 the plant CA (10 years); keep ca.key offline
#   DIR/broker.pem, DIR/broker.key         the broker's certificate, for every --host
#                                          given plus 127.0.0.1 and localhost (825 days)
#   DIR/clients/NAME.pem, NAME.key         a client certificate per --client (825 days)
#
# Usage:
#   make-certs.sh DIR [--host NAME_OR_IP]... [--client NAME]... [--days N]
#
# Examples:
#   make-certs.sh /root/plant-ca --host mqtt.plant-a.example --host 10.20.0.5 --client throughline-aggregator
#   make-certs.sh /root/plant-ca --client gw-press-01        # later: one more client
#
# Only missing files are made, so the script can be run again to add clients
# without touching the CA or what was issued before. To renew a certificate,
# delete its .pem (and .key) and run the script again. Without --host the
# broker certificate is made for this machine's host name. Each CA gets a
# name of its own (date and a random tag), so a certificate of another CA is
# reported as from an unknown issuer rather than as a bad signature.
#
# Keys are EC P-256 (fast on a Raspberry Pi, supported by Mosquitto/OpenSSL
# and by the agent's rustls). They are written with mode 600: give the
# broker's key to the user Mosquitto runs as (see docs/raspberry-pi.md).
set -euo pipefail

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
  exit 2
}

dir=""
hosts=()
clients=()
days=825
while [ $# -gt 0 ]; do
  case "$1" in
    --host) [ $# -ge 2 ] || usage; hosts+=("$2"); shift 2 ;;
    --client) [ $# -ge 2 ] || usage; clients+=("$2"); shift 2 ;;
    --days) [ $# -ge 2 ] || usage; days="$2"; shift 2 ;;
    -h|--help) usage ;;
    -*) echo "make-certs.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$dir" ] || usage; dir="$1"; shift ;;
  esac
done
[ -n "$dir" ] || usage
command -v openssl >/dev/null || { echo "make-certs.sh: openssl is not installed (apt-get install openssl)" >&2; exit 1; }
for c in "${clients[@]}"; do
  [[ "$c" =~ ^[A-Za-z0-9_-]{1,64}$ ]] || {
    echo "make-certs.sh: client name '$c': use letters, digits, '_' and '-' (at most 64), as agent ids do" >&2
    exit 2
  }
done
[[ "$days" =~ ^[0-9]+$ ]] || { echo "make-certs.sh: --days must be a number" >&2; exit 2; }

umask 077
mkdir -p "$dir/clients"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
serial() { echo "0x$(openssl rand -hex 16)"; }
made() { echo "made $1: $(openssl x509 -in "$1" -noout -subject -enddate | tr '\n' ' ')"; }

# The plant CA.
if [ ! -f "$dir/ca.pem" ]; then
  [ ! -f "$dir/ca.key" ] || { echo "make-certs.sh: $dir/ca.key exists without ca.pem; refusing to guess" >&2; exit 1; }
  newkey "$dir/ca.key"
  openssl req -x509 -new -sha256 -days 3650 -key "$dir/ca.key" -out "$dir/ca.pem" \
    -subj "/O=Throughline/CN=Throughline plant CA $(date -u +%Y-%m-%d) $(openssl rand -hex 3)" \
    -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
  chmod 644 "$dir/ca.pem"
  made "$dir/ca.pem"
fi

# sign OUT_PEM KEY CN EXTFILE: a certificate for KEY, signed by the CA.
sign() {
  [ -f "$dir/ca.key" ] || { echo "make-certs.sh: $dir/ca.key is not here (kept offline?): cannot issue $1" >&2; exit 1; }
  openssl req -new -key "$2" -subj "/O=Throughline/CN=$3" -out "$tmp/req.csr"
  openssl x509 -req -sha256 -days "$days" -in "$tmp/req.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" \
    -set_serial "$(serial)" -extfile "$4" -out "$1" 2>/dev/null
  chmod 644 "$1"
  made "$1"
}

# The broker.
if [ ! -f "$dir/broker.pem" ]; then
  [ ${#hosts[@]} -gt 0 ] || hosts=("$(hostname -f 2>/dev/null || hostname)")
  san="IP:127.0.0.1,DNS:localhost"
  for h in "${hosts[@]}"; do
    if [[ "$h" =~ ^[0-9.]+$ || "$h" == *:* ]]; then san="$san,IP:$h"; else san="$san,DNS:$h"; fi
  done
  [ -f "$dir/broker.key" ] || newkey "$dir/broker.key"
  cat >"$tmp/broker.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san
EOF
  sign "$dir/broker.pem" "$dir/broker.key" "${hosts[0]}" "$tmp/broker.ext"
  echo "     names: $san"
elif [ ${#hosts[@]} -gt 0 ]; then
  echo "kept $dir/broker.pem (delete it to make one for ${hosts[*]})"
fi

# The clients (agents, the aggregator).
cat >"$tmp/client.ext" <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
EOF
for c in "${clients[@]}"; do
  pem="$dir/clients/$c.pem"
  key="$dir/clients/$c.key"
  if [ -f "$pem" ]; then
    echo "kept $pem"
    continue
  fi
  [ -f "$key" ] || newkey "$key"
  sign "$pem" "$key" "$c" "$tmp/client.ext"
done
