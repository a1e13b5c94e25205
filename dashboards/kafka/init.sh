#!/bin/bash
# The compose `kafka-init` one-shot: SCRAM users, topics (topics.txt) and ACLs (acls.txt),
# as the admin super user over SASL_SSL. Idempotent: users' passwords are (re)set from the
# secrets, topics created if missing and their config re-applied, ACLs added (adding
# an existing ACL is a no-op). Rotating a password = new secret file + re-run.
set -euo pipefail
umask 077

# Paths as mounted by compose.yaml (overridable for tests/dashboards/test_kafka_stack.py).
secrets=${SECRETS_DIR:-/run/secrets}
here=${CONFIG_DIR:-/etc/reachwatch/kafka}
bin=${KAFKA_BIN:-/opt/kafka/bin}
server=${BOOTSTRAP_SERVER:-kafka:9092}
admin=${RUN_DIR:-/run/kafka}/admin.properties
secret() { tr -d '\r\n' < "$secrets/$1"; }

cat > "$admin" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(secret kafka_admin_password)";
ssl.truststore.type=PEM
ssl.truststore.location=$secrets/kafka_ca
PROPERTIES

for user in reachwatch shipper siem; do
  "$bin/kafka-configs.sh" --bootstrap-server "$server" --command-config "$admin" --alter \
    --entity-type users --entity-name "$user" \
    --add-config "SCRAM-SHA-512=[iterations=8192,password=$(secret "kafka_${user}_password")]"
done

grep -v '^[[:space:]]*\(#\|$\)' "$here/topics.txt" | while read -r topic partitions configs _; do
  args=()
  for config in ${configs//,/ }; do args+=(--config "$config"); done
  "$bin/kafka-topics.sh" --bootstrap-server "$server" --command-config "$admin" \
    --create --if-not-exists --topic "$topic" --partitions "$partitions" \
    --replication-factor 1 "${args[@]}"
  "$bin/kafka-configs.sh" --bootstrap-server "$server" --command-config "$admin" --alter \
    --entity-type topics --entity-name "$topic" --add-config "$configs"
done

grep -v '^[[:space:]]*\(#\|$\)' "$here/acls.txt" | while read -r principal kind pattern name operations _; do
  args=()
  for operation in ${operations//,/ }; do args+=(--operation "$operation"); done
  "$bin/kafka-acls.sh" --bootstrap-server "$server" --command-config "$admin" --add \
    --allow-principal "$principal" "--$kind" "$name" --resource-pattern-type "$pattern" \
    "${args[@]}"
done
echo "kafka-init: users, topics and ACLs in place"
