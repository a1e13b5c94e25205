#!/bin/bash
# Entrypoint of the compose `kafka` service (apache/kafka image): KRaft single node with
# SASL_SSL + SCRAM-SHA-512 on both client listeners and ACLs enforced.
#
#   CONTROLLER  localhost:9093  PLAINTEXT   the node talking to itself; loopback of this
#                                           container only, so no other container reaches it
#   INTERNAL    :9092 (kafka)   SASL_SSL    workers, kafka-init, inter-broker (admin)
#   EXTERNAL    :9094 (localhost, published on the host's 127.0.0.1) SASL_SSL: the log
#                               shipper (writes access-events) and the SIEM (reads alerts)
#
# Passwords come from the Docker secrets in /run/secrets; the rendered config lives in
# /run/kafka (tmpfs), never in the image or the data volume. The image's own start
# scripts are bypassed because they cannot bootstrap a SCRAM user: kafka-storage format
# --add-scram stores the admin credential in the metadata log before the first start
# (KRaft has no other way to create the user the broker itself logs in with).
set -euo pipefail
umask 077

# Paths as mounted by compose.yaml (overridable for tests/dashboards/test_kafka_stack.py).
secrets=${SECRETS_DIR:-/run/secrets}
run=${RUN_DIR:-/run/kafka}
bin=${KAFKA_BIN:-/opt/kafka/bin}
secret() { tr -d '\r\n' < "$secrets/$1"; }
admin=$(secret kafka_admin_password)
keystore=$(secret kafka_keystore_password)
conf=$run/server.properties
scram='org.apache.kafka.common.security.scram.ScramLoginModule required'

cat > "$conf" <<PROPERTIES
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@localhost:9093
listeners=CONTROLLER://localhost:9093,INTERNAL://:9092,EXTERNAL://:9094
advertised.listeners=INTERNAL://kafka:9092,EXTERNAL://localhost:9094
listener.security.protocol.map=CONTROLLER:PLAINTEXT,INTERNAL:SASL_SSL,EXTERNAL:SASL_SSL
controller.listener.names=CONTROLLER
inter.broker.listener.name=INTERNAL
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.internal.scram-sha-512.sasl.jaas.config=$scram username="admin" password="$admin";
listener.name.external.scram-sha-512.sasl.jaas.config=$scram;
ssl.keystore.type=PKCS12
ssl.keystore.location=$secrets/kafka_broker_keystore
ssl.keystore.password=$keystore
ssl.key.password=$keystore
ssl.truststore.type=PEM
ssl.truststore.location=$secrets/kafka_ca
ssl.client.auth=none
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
# ANONYMOUS is only ever the principal of the loopback CONTROLLER listener (every other
# listener authenticates with SCRAM): the node's own broker registering with its controller.
super.users=User:admin;User:ANONYMOUS
auto.create.topics.enable=false
log.dirs=/var/lib/kafka/data
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
PROPERTIES

# The client config the healthcheck (and an operator's `docker compose exec`) uses.
cat > "$run/admin.properties" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$scram username="admin" password="$admin";
ssl.truststore.type=PEM
ssl.truststore.location=$secrets/kafka_ca
PROPERTIES

"$bin/kafka-storage.sh" format --ignore-formatted --cluster-id "$CLUSTER_ID" \
  --config "$conf" --add-scram "SCRAM-SHA-512=[name=admin,password=$admin]"
exec "$bin/kafka-server-start.sh" "$conf"
