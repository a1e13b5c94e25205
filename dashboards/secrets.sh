#!/bin/sh
# Generates the secrets compose.yaml mounts (`make secrets`, or `sh dashboards/secrets.sh DIR`).
#
# Only missing files are created, so a second run changes nothing; delete a file to rotate
# it (secrets/README.md says who must learn of the change). Needs only openssl.
#
# The directory is 0700: no other account on the host can read it. The files inside are
# 0644 because compose mounts file secrets as they are on the host, and the containers'
# own unprivileged users (kafka 1000, reachwatch 10001, prometheus 65534, grafana 472)
# must read them.
set -eu

dir=${1:-secrets}
umask 077
mkdir -p "$dir"
chmod 700 "$dir"

created=""
random_secret() {
  if [ ! -s "$dir/$1" ]; then
    openssl rand -hex 32 > "$dir/$1.new"
    mv "$dir/$1.new" "$dir/$1"
    created="$created $1"
  fi
}

# Hex only: the values go into JAAS lines and kafka-configs arguments unquoted.
for name in reachwatch_web_token reachwatch_alerts_token grafana_admin_password kafka_admin_password \
    kafka_reachwatch_password kafka_siem_password kafka_shipper_password \
    kafka_keystore_password; do
  random_secret "$name"
done

# TLS for both Kafka listeners: a CA whose key is thrown away once it has signed the
# broker certificate (names: kafka on the compose network, localhost for the published
# port). Rotate by deleting kafka_ca.pem: every client then needs the new CA file.
if [ ! -s "$dir/kafka_ca.pem" ] || [ ! -s "$dir/kafka_broker.p12" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  openssl req -x509 -newkey rsa:3072 -nodes -days 825 -subj "/CN=reachwatch kafka CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
  openssl req -newkey rsa:3072 -nodes -subj "/CN=kafka" \
    -keyout "$work/broker.key" -out "$work/broker.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
    "subjectAltName=DNS:kafka,DNS:localhost" > "$work/broker.ext"
  openssl x509 -req -in "$work/broker.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 825 -extfile "$work/broker.ext" \
    -out "$work/broker.pem" 2>/dev/null
  openssl pkcs12 -export -name kafka -in "$work/broker.pem" -inkey "$work/broker.key" \
    -certfile "$work/ca.pem" -passout "file:$dir/kafka_keystore_password" \
    -out "$dir/kafka_broker.p12"
  mv "$work/ca.pem" "$dir/kafka_ca.pem"
  created="$created kafka_ca.pem kafka_broker.p12"
fi

chmod 644 "$dir"/*
echo "secrets in $dir/:${created:- nothing new (all present)}"
