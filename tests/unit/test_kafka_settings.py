"""KASSA_KAFKA_* settings become the relay's client options (a real cluster's SASL/TLS)."""

from __future__ import annotations

import ssl
from types import SimpleNamespace
from typing import Any

from kassa import bootstrap
from kassa.config import Settings
from kassa.events.kafka import KafkaPublisher


def relay_for(**env: Any):  # type: ignore[no-untyped-def]
    return bootstrap.build_relay(Settings(**env), SimpleNamespace(pool=None))  # type: ignore[arg-type]


def test_no_bootstrap_no_relay():
    assert relay_for() is None


def test_sasl_ssl_cluster_options():
    relay = relay_for(kafka_bootstrap="k1:9093,k2:9093", kafka_topic="payments.events",
                      kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
                      kafka_sasl_username="kassa", kafka_sasl_password="s3cret",
                      kafka_replication_factor=3, relay_name="dc2", relay_batch_size=1000)
    assert relay is not None and (relay.name, relay.batch_size) == ("dc2", 1000)
    assert isinstance(relay.publisher, KafkaPublisher)
    options = relay.publisher.options
    assert (options.topic, options.replication_factor, options.idempotence) == (
        "payments.events", 3, True)
    kwargs = options.connection_kwargs()
    assert kwargs["bootstrap_servers"] == "k1:9093,k2:9093"
    assert (kwargs["security_protocol"], kwargs["sasl_mechanism"]) == ("SASL_SSL",
                                                                       "SCRAM-SHA-512")
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("kassa", "s3cret")
    assert isinstance(kwargs["ssl_context"], ssl.SSLContext)
    assert "s3cret" not in repr(Settings(kafka_sasl_password="s3cret"))  # a SecretStr


def test_plaintext_has_no_tls_or_sasl():
    relay = relay_for(kafka_bootstrap="127.0.0.1:9092")
    assert relay is not None
    kwargs = relay.publisher.options.connection_kwargs()  # type: ignore[attr-defined]
    assert kwargs["security_protocol"] == "PLAINTEXT"
    assert "ssl_context" not in kwargs and "sasl_mechanism" not in kwargs
