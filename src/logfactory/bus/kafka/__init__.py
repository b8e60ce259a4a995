"""The Apache Kafka bus (see :mod:`logfactory.bus.kafka.bus` for how the contract maps).

Parts, bottom to top, each depending only on those below it and on the narrow protocols of
``sites`` (never on :class:`KafkaBus` itself): ``config`` (librdkafka settings), ``errors``,
``sites``, ``group_offsets``, ``maintenance``, ``txn`` (the transactional producer),
``consumer``, ``transaction``, and ``bus`` (:class:`KafkaBus` and its plain producer).
"""

from logfactory.bus.kafka.bus import KafkaBus, KafkaProducer
from logfactory.bus.kafka.consumer import KafkaConsumer
from logfactory.bus.kafka.transaction import KafkaTransaction

__all__ = ["KafkaBus", "KafkaConsumer", "KafkaProducer", "KafkaTransaction"]
