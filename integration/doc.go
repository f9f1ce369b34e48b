// Package integration holds the tests that run the robust producer
// (package github.com/walpub/walpub/adapter/kafka) against a real Apache
// Kafka 4.x broker in KRaft mode, and check what reached the broker with an
// independent consumer, kcat.
//
// The tests skip unless KAFKA_BROKERS names a broker. To run them locally
// (Java 17, Maven and kcat installed):
//
//	scripts/kafka.sh start
//	eval "$(scripts/kafka.sh env)"
//	go test -race -count=1 -v ./integration/
//	scripts/kafka.sh stop
//
// .ci/run does the same. The environment that scripts/kafka.sh env prints:
//
//	KAFKA_BROKERS          PLAINTEXT listener, host:port
//	KAFKA_SCRAM_BROKERS    SASL_PLAINTEXT listener with SCRAM-SHA-512
//	KAFKA_SCRAM_USER       the SCRAM user created when the storage was formatted
//	KAFKA_SCRAM_PASSWORD   its password
//	KAFKA_SCRAM_MECHANISM  SCRAM-SHA-512
//	KAFKA_SSL_BROKERS      SASL_SSL listener (TLS + the same SCRAM user)
//	KAFKA_SSL_CA           the PEM file of the test CA that signed its certificate
//	KAFKA_SCRIPT           absolute path of scripts/kafka.sh, which the
//	                       broker-restart test calls to stop and start the broker
//
// What the tests prove, each time by reading the topic back with
// `kcat -C -e`: every record whose Write returned is on the broker once
// Flush (or a later producer on the same journal) has confirmed it;
// duplicates from resends are counted and logged, never a loss; per
// partition the first copy of each record arrives in write order. The
// faults:
//
//   - TestIntegrationProduce: none, the baseline.
//   - TestIntegrationKill9: a child process producing through the journal is
//     killed with SIGKILL at random moments, round after round, each round
//     restarting on the same journal; a last producer drains it.
//   - TestIntegrationBrokerRestart: the broker is stopped and started again
//     ($KAFKA_SCRIPT stop / start) while records are written.
//   - TestIntegrationProxyFaults: a TCP proxy between producer and broker cuts
//     every connection, and swallows the broker's responses for a while.
//   - TestIntegrationSCRAM: SCRAM-SHA-512 with the right password delivers;
//     with a wrong one nothing is delivered, the authentication error is
//     logged, and the records stay in the journal until a producer with the
//     right password sends them.
//   - TestIntegrationSCRAMDeniedRetried (issue 17 item 1): a DENY WRITE ACL
//     for the SCRAM user on the topic (the broker's authorizer): the refused
//     records are retried, none dead-lettered; once the ACL is removed all
//     are delivered, once.
//
// Two tests run hop-client itself (SCiMMA's Python client, whose
// RobustProducer walpub's producer follows); they skip unless HOP_PYTHON
// names the Python of a venv with hop-client 0.13.0 (python3 -m venv V &&
// V/bin/pip install hop-client==0.13.0 six; hop needs six but does not
// declare it), which .ci/run's hop stage sets up:
//
//   - TestHopClientReadsWalpub: with one auth.toml, as `hop auth add`
//     writes it, walpub publishes over the SASL_SSL listener (TLS + SCRAM)
//     with the credential it chooses from the file, and hop's consumer,
//     choosing the same one, decodes what `walpub --hop-format json` sent as
//     JSONBlob models, each with the _id walpub journaled and the user as
//     _sender, skipping the --test message by default.
//   - TestHopClientJournalImported: hop's RobustProducer is killed with
//     SIGKILL while publishing; `walcat import-hop` moves what its journal
//     holds to a walpub journal, `walpub --journal` sends it, and every
//     message whose hop write() returned is on the topic, each copy with the
//     _id hop gave it; a second import appends nothing.
//
// The tests share one broker and the broker-restart test stops it, so none
// of them runs in parallel with another.
//
// # The cluster tests
//
// The tests named TestCluster* need the three-node cluster of
// scripts/kafka.sh and skip unless KAFKA_BROKER_COUNT=3:
//
//	KAFKA_BROKER_COUNT=3 scripts/kafka.sh start
//	eval "$(KAFKA_BROKER_COUNT=3 scripts/kafka.sh env)"
//	go test -race -count=1 -v -run '^TestCluster' ./integration/
//	scripts/kafka.sh stop
//
// Every topic is replicated on the three nodes with min.insync.replicas=2,
// and the tests kill nodes with `$KAFKA_SCRIPT kill-broker N` (SIGKILL):
//
//   - TestClusterLeaderKill: the robust producer writes while the leader of
//     partition 0 is killed and restarted, three times.
//   - TestClusterWalpubLeaderKill: the same for the walpub tool (built with
//     go build), fed lines on its standard input; it must exit 0.
//   - TestClusterExactlyOnceLeaderKill: a producer WithExactlyOnce through
//     a leader kill; read_committed, no duplicate.
//   - TestClusterTwoBrokersDown: with two nodes killed, Write goes on
//     journaling and nothing is confirmed; once a second node is back,
//     everything is.
//   - TestClusterKill9DuringFailover: the child process of
//     TestIntegrationKill9 is killed with SIGKILL while the cluster fails
//     over from a killed leader, two rounds on one journal.
//   - TestClusterHealthyPartitionsFlow (issue 17 item 4): a topic with one
//     unreplicated partition per node; with one node killed, the other
//     partitions' records are all confirmed and a too-large record is
//     dead-lettered while the dead node's records wait; all are delivered,
//     in order, once it is back. (Its topic has replication factor 1 and
//     min.insync.replicas=1, unlike the others.)
//
// Each logs a "FAILOVER FIGURES" line (records, kills, lost, duplicates,
// and the longest time between two delivery confirmations where measured).
// .ci/run runs them in its cluster stage, and leaves them out of the
// integration stage, which runs against a single broker.
package integration
